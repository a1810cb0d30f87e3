//go:build !linux

package proxy

import (
	"bufio"
	"net"
	"time"

	"github.com/banyanhq/banyan/internal/uring"
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

// hungUp: only the peek's view of the peer's close is had here.
func (s *sockIO) hungUp() bool { return s.peek() == peekClosed }

// abort closes the connection.
func (s *sockIO) abort() { s.Conn.Close() }

// close closes the connection.
func (s *sockIO) close() { s.Conn.Close() }

// closeWrite ends the connection's sending side (a half-close).
func (s *sockIO) closeWrite() {
	if cw, ok := s.Conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// setReadDeadline and setWriteDeadline are net.Conn's.
func (s *sockIO) setReadDeadline(t time.Time)  { _ = s.Conn.SetReadDeadline(t) }
func (s *sockIO) setWriteDeadline(t time.Time) { _ = s.Conn.SetWriteDeadline(t) }

// There are no io_uring loops here: a connection is never on one.
func (s *sockIO) onTask(*uring.Task)         {}
func (s *sockIO) task() *uring.Task          { return nil }
func (s *sockIO) netConn() (net.Conn, error) { return s.Conn, nil }
func (s *sockIO) blocking(f func())          { f() }
func blockingOn(_ *uring.Task, f func())     { f() }
func ringSockIO(c net.Conn) (*sockIO, error) { return nil, uring.ErrUnsupported }
