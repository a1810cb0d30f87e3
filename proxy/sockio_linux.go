//go:build linux

package proxy

import (
	"bufio"
	"io"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// sockIO is how the fast path reads, writes and peeks at one connection.
//
// On a socket it makes the read, write and peek system calls itself,
// through the connection's RawConn, as raw system calls: the socket is
// non-blocking, so none of them can block, and the runtime's poller still
// does the waiting and enforces the deadlines set on the net.Conn. What
// this saves over net.Conn's Read and Write is the scheduler's
// entersyscall/exitsyscall around every call. On a loaded machine a
// loopback write takes long enough (it runs the receiver's side of TCP
// too) that the scheduler's monitor takes the P away from a goroutine in
// it and hands it to another thread, and waking and parking those threads
// cost more than the write; see ADR 0006.
//
// A Read (or readServe) and a Write may run at the same time, as on a
// net.Conn, except a Read that sends what flushOnRead held; a peek must
// not run beside another peek.
//
// On an io_uring loop (ring set, c nil) it queues them on the ring
// instead, as the loop task using the connection (ringio_linux.go).
type sockIO struct {
	c    net.Conn
	rc   syscall.RawConn // nil: not a socket, use c
	ring *ringIO

	rbuf  []byte
	rn    int
	rerr  syscall.Errno
	readF func(fd uintptr) bool

	wbuf   []byte
	wn     int
	werr   syscall.Errno
	writeF func(fd uintptr) bool

	pstate peekState
	peekF  func(fd uintptr)

	// readServe's arguments and end
	next   func() []byte
	got    func(n int) bool
	eof    bool
	serveF func(fd uintptr) bool

	// hold makes Write keep what it is given in pending, for the next
	// Read to send (flushOnRead).
	hold      bool
	pending   []byte
	sendReadF func(fd uintptr) bool
}

func newSockIO(c net.Conn) *sockIO {
	s := &sockIO{c: c}
	// Only the net package's own sockets: a type that wraps one may
	// change what Read and Write do, and its SyscallConn would go around
	// that.
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return s
	}
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		return s
	}
	s.rc = rc
	s.readF = s.readFD
	s.writeF = s.writeFD
	s.peekF = s.peekFD
	s.sendReadF = s.sendReadFD
	s.serveF = s.serveFD
	return s
}

func (s *sockIO) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if s.ring != nil {
		return s.ringRead(b)
	}
	if s.rc == nil {
		return s.c.Read(b)
	}
	s.rbuf, s.rn, s.rerr = b, 0, 0
	var err error
	if s.pending != nil {
		err = s.sendThenRead()
	} else {
		err = s.rc.Read(s.readF)
	}
	n, errno := s.rn, s.rerr
	s.rbuf = nil
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, s.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// opError is what net.Conn's Read and Write return for errno.
func (s *sockIO) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: s.c.LocalAddr().Network(), Source: s.c.LocalAddr(), Addr: s.c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}

// rawRead reads once from fd into b (which must not be empty), again
// when a signal interrupted it.
func rawRead(fd uintptr, b []byte) (int, syscall.Errno) {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}

// readFD reads once into s.rbuf; false asks the poller to wait.
func (s *sockIO) readFD(fd uintptr) bool {
	n, e := rawRead(fd, s.rbuf)
	switch e {
	case syscall.EAGAIN:
		return false
	case 0:
		s.rn = n
	default:
		s.rerr = e
	}
	return true
}

// readServe waits for the connection to be readable, reads once into
// next() and calls got with the count, and goes on while got returns
// true: it waits again and reads into next() again. It returns nil when
// got returns false, io.EOF at the end of the connection (got is not
// called), or the read's error.
//
// got runs inside the read: the poller cleared what it knew of the
// socket's readiness before the read, so bytes that come while got
// works wake the next wait, and that wait needs no read that finds
// nothing before it. A read that fills next() may leave bytes behind,
// which no wake-up would announce: after one, the next read is made at
// once. got must not read from this connection (its read lock is held),
// nor call Read here.
func (s *sockIO) readServe(next func() []byte, got func(n int) bool) error {
	if s.rc == nil { // on a ring too: there a read does not wait first
		return s.readServeSlow(next, got)
	}
	s.next, s.got, s.rerr, s.eof = next, got, 0, false
	err := s.rc.Read(s.serveF)
	s.next, s.got = nil, nil
	switch {
	case err != nil:
		return err
	case s.rerr != 0:
		return s.opError("read", s.rerr)
	case s.eof:
		return io.EOF
	}
	return nil
}

// serveFD is readServe's callback; false asks the poller to wait.
func (s *sockIO) serveFD(fd uintptr) bool {
	for {
		b := s.next()
		if len(b) == 0 {
			return true // nowhere to read into: got must say false first
		}
		n, e := rawRead(fd, b)
		switch {
		case e == syscall.EAGAIN:
			return false
		case e != 0:
			s.rerr = e
			return true
		case n == 0:
			s.eof = true
			return true
		case !s.got(n):
			return true
		}
		if n < len(b) {
			return false // the socket was drained: wait
		}
	}
}

func (s *sockIO) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if s.hold {
		s.hold, s.pending = false, b
		return len(b), nil
	}
	if s.ring != nil {
		return s.ringWrite(b)
	}
	if s.rc == nil {
		return s.c.Write(b)
	}
	s.wbuf, s.wn, s.werr = b, 0, 0
	err := s.rc.Write(s.writeF)
	n, errno := s.wn, s.werr
	s.wbuf = nil
	if err == nil && errno != 0 {
		err = s.opError("write", errno)
	}
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	return n, err
}

// writeFD writes what is left of s.wbuf; false asks the poller to wait
// until the socket takes more.
func (s *sockIO) writeFD(fd uintptr) bool {
	for s.wn < len(s.wbuf) {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&s.wbuf[s.wn])), uintptr(len(s.wbuf)-s.wn))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case 0:
			s.wn += int(n)
		default:
			s.werr = e
			return true
		}
	}
	return true
}

// flushOnRead flushes w, whose last bytes the caller is about to wait
// for an answer to, into the next Read: that Read sends them from inside
// its first callback and only then lets the poller wait. The poller
// clears what it knew of the socket's readiness before it calls back, so
// a Read after a Write always tries a read that finds nothing first; an
// answer to bytes sent from inside the callback can only come after that
// clear, so the wait needs no such try. The bytes stay in w's buffer,
// which the caller must not write to before that Read.
func (s *sockIO) flushOnRead(w *bufio.Writer) error {
	if s.rc == nil && s.ring == nil {
		return w.Flush()
	}
	s.hold = true
	err := w.Flush()
	s.hold = false
	return err
}

// sendThenRead sends s.pending and reads the answer into s.rbuf.
func (s *sockIO) sendThenRead() error {
	s.wbuf, s.wn, s.werr, s.pending = s.pending, 0, 0, nil
	err := s.rc.Read(s.sendReadF)
	rest, errno := s.wbuf, s.werr
	s.wbuf = nil
	switch {
	case errno != 0:
		return s.opError("write", errno)
	case err != nil:
		if rest != nil {
			// The read failed (its deadline had passed) before its
			// callback sent the bytes: the next Read sends them.
			s.pending = rest[s.wn:]
		}
		return err
	case rest == nil:
		return nil
	}
	// The socket took only part: send the rest the usual way, then read.
	if _, err := s.Write(rest[s.wn:]); err != nil {
		return err
	}
	return s.rc.Read(s.readF)
}

// sendReadFD first sends s.wbuf (false then asks the poller to wait for
// the answer), then reads; a send the socket takes only part of, or that
// fails, ends the call with s.wbuf left set.
func (s *sockIO) sendReadFD(fd uintptr) bool {
	if s.wbuf != nil {
		if !s.writeFD(fd) || s.werr != 0 {
			return true
		}
		s.wbuf = nil
		return false
	}
	return s.readFD(fd)
}

// shutdown ends the connection both ways without closing it: the peer
// sees it closed, and a read here finds its end and a write fails, at once
// and also in a wait already begun. It reports false where it cannot.
func (s *sockIO) shutdown() bool {
	if s.ring != nil {
		s.ring.shutdown(syscall.SHUT_RDWR)
		return true
	}
	if s.rc == nil {
		return false
	}
	return s.rc.Control(func(fd uintptr) { _ = syscall.Shutdown(int(fd), syscall.SHUT_RDWR) }) == nil
}

// close closes the connection.
func (s *sockIO) close() {
	if s.ring != nil {
		s.ring.release(false)
		return
	}
	s.c.Close()
}

// closeWrite ends the connection's sending side (a half-close).
func (s *sockIO) closeWrite() {
	if s.ring != nil {
		s.ring.shutdown(syscall.SHUT_WR)
		return
	}
	if cw, ok := s.c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// setReadDeadline and setWriteDeadline are net.Conn's.
func (s *sockIO) setReadDeadline(t time.Time) {
	if s.ring != nil {
		s.ring.rdl = t
		return
	}
	_ = s.c.SetReadDeadline(t)
}

func (s *sockIO) setWriteDeadline(t time.Time) {
	if s.ring != nil {
		s.ring.wdl = t
		return
	}
	_ = s.c.SetWriteDeadline(t)
}

// abort ends the connection both ways at once: shut down where it can
// (a Close would wait for a read in progress, see fastConn.abort), closed
// where it cannot.
func (s *sockIO) abort() {
	if !s.shutdown() {
		s.c.Close()
	}
}

// peek looks, without blocking and without reading, at what waits on the
// connection: nothing (it is open and quiet), data, or its end. It goes
// around the runtime's poller, so a read deadline that has passed does
// not make an open connection look closed. On what is not a socket it
// says quiet, and a closed connection shows up when it is used.
func (s *sockIO) peek() peekState {
	if s.ring != nil {
		return s.ring.peek()
	}
	if s.rc == nil {
		return peekQuiet
	}
	s.pstate = peekClosed
	if err := s.rc.Control(s.peekF); err != nil {
		return peekClosed
	}
	return s.pstate
}

func (s *sockIO) peekFD(fd uintptr) { s.pstate = peekFD(fd) }
