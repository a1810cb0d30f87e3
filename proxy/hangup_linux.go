//go:build linux

package proxy

import (
	"syscall"
	"unsafe"
)

// Poll events (poll(2)); package syscall does not name them.
const (
	pollErr   = 0x8
	pollHup   = 0x10
	pollRDHup = 0x2000
)

// pollFd is struct pollfd.
type pollFd struct {
	fd      int32
	events  int16
	revents int16
}

// hungUpFD reports, without blocking, whether the peer of socket fd has
// shut its sending side down or the connection failed, also while bytes
// the peer sent before that wait unread (where a peek sees those first).
func hungUpFD(fd uintptr) bool {
	p := pollFd{fd: int32(fd), events: pollRDHup}
	var zero syscall.Timespec
	for {
		n, _, e := syscall.RawSyscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&p)), 1, uintptr(unsafe.Pointer(&zero)), 0, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		return e != 0 || n == 1 && p.revents&(pollRDHup|pollHup|pollErr) != 0
	}
}

// hungUp is hungUpFD for the connection (true when it cannot be asked).
func (s *sockIO) hungUp() bool {
	if s.ring != nil {
		return hungUpFD(uintptr(s.ring.fd))
	}
	if s.rc == nil {
		return false
	}
	up := true
	_ = s.rc.Control(func(fd uintptr) { up = hungUpFD(fd) })
	return up
}
