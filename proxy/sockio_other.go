//go:build !linux

package proxy

import (
	"bufio"
	"net"
)

// sockIO is how the fast path reads, writes and peeks at one connection;
// here it reads and writes through the connection itself.
type sockIO struct {
	net.Conn
	onSent func() bool // unused: nothing is held here
}

func newSockIO(c net.Conn) *sockIO { return &sockIO{Conn: c} }

// peek looks, without blocking and without reading, at what waits on the
// connection: nothing (it is open and quiet), data, or its end.
func (s *sockIO) peek() peekState { return peekConn(s.Conn) }

// flushOnRead flushes w.
func (s *sockIO) flushOnRead(w *bufio.Writer) error { return w.Flush() }

// holding reports whether bytes wait for the next Read: never here.
func (s *sockIO) holding() bool { return false }

// sendPending has nothing to send here.
func (s *sockIO) sendPending() error { return nil }
