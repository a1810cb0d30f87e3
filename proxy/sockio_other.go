//go:build !linux

package proxy

import (
	"bufio"
	"net"
)

// sockIO is how the fast path reads, writes and peeks at one connection;
// here it reads and writes through the connection itself.
type sockIO struct{ net.Conn }

func newSockIO(c net.Conn) *sockIO { return &sockIO{c} }

// peek looks, without blocking and without reading, at what waits on the
// connection: nothing (it is open and quiet), data, or its end.
func (s *sockIO) peek() peekState { return peekConn(s.Conn) }

// flushOnRead flushes w.
func (s *sockIO) flushOnRead(w *bufio.Writer) error { return w.Flush() }
