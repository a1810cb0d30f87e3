//go:build unix && !linux

package proxy

import (
	"net"
	"syscall"
)

// peekConn looks, without blocking and without reading, at what waits on c:
// nothing (the connection is open and quiet), data, or its end. It goes
// around the runtime's poller, so a read deadline that has passed does
// not make an open connection look closed.
func peekConn(c net.Conn) peekState {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return peekQuiet
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return peekClosed
	}
	state := peekClosed
	var buf [1]byte
	err = rc.Control(func(fd uintptr) {
		for {
			n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case rerr == syscall.EINTR:
				continue
			case rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK:
				state = peekQuiet
			case rerr == nil && n > 0:
				state = peekData
			}
			return
		}
	})
	if err != nil {
		return peekClosed
	}
	return state
}
