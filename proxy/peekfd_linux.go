//go:build linux && (amd64 || arm64)

package proxy

import (
	"syscall"
	"unsafe"
)

// peekFD looks, without blocking and without reading, at what waits on
// socket fd: nothing, data, or its end (or a failure). It is a raw
// system call: it cannot block, so the scheduler need not hear of it.
func peekFD(fd uintptr) peekState {
	var buf [1]byte
	for {
		n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), 1, syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			return peekQuiet
		case e == 0 && n > 0:
			return peekData
		}
		return peekClosed
	}
}
