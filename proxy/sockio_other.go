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

// readServe reads into next() and calls got with the count until got
// returns false (nil) or a read fails (its error, io.EOF at the end).
func (s *sockIO) readServe(next func() []byte, got func(n int) bool) error {
	return s.readServeSlow(next, got)
}

// shutdown reports false: here connections are closed.
func (s *sockIO) shutdown() bool { return false }

// abort closes the connection.
func (s *sockIO) abort() { s.Conn.Close() }
