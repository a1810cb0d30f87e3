//go:build linux && !(amd64 || arm64)

package proxy

import "syscall"

// peekFD is the 64-bit one's look at socket fd, through syscall's
// Recvfrom: 32-bit x86 has no recvfrom system call of its own.
func peekFD(fd uintptr) peekState {
	var buf [1]byte
	for {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return peekQuiet
		case err == nil && n > 0:
			return peekData
		}
		return peekClosed
	}
}
