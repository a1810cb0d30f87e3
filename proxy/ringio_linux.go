//go:build linux

package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/banyanhq/banyan/internal/uring"
)

// ringIO is a sockIO's connection when it runs on an io_uring loop (ADR
// 0006): a socket descriptor of its own, kept out of Go's poller (whose
// epoll would otherwise wake for every segment that arrives), read and
// written by the loop task using it now. Its deadlines are kept here and
// handed to the ring with each operation.
type ringIO struct {
	t            *uring.Task // the task using the connection; set by onTask
	fd           int
	rdl, wdl     time.Time
	laddr, raddr net.Addr

	// mu makes shutdown, from any goroutine, and close, from the task,
	// exclusive, so a shutdown never reaches a descriptor number that was
	// closed and given to another connection.
	mu     sync.Mutex
	closed bool
}

// newRingSockIO returns the sockIO of socket fd, which it owns from here.
func newRingSockIO(fd int, laddr, raddr net.Addr) *sockIO {
	return &sockIO{ring: &ringIO{fd: fd, laddr: laddr, raddr: raddr}}
}

// detachFD takes c's socket out of Go's poller: it returns a descriptor
// of its own for the socket and closes c (the socket stays open: the new
// descriptor holds it).
func detachFD(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		c.Close()
		return -1, errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		c.Close()
		return -1, err
	}
	fd := -1
	var derr error
	cerr := rc.Control(func(s uintptr) {
		r, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, s, syscall.F_DUPFD_CLOEXEC, 0)
		if e != 0 {
			derr = os.NewSyscallError("fcntl", e)
			return
		}
		fd = int(r)
	})
	c.Close()
	return fd, errors.Join(cerr, derr)
}

// ringSockIO detaches c and returns its sockIO on the ring.
func ringSockIO(c net.Conn) (*sockIO, error) {
	laddr, raddr := c.LocalAddr(), c.RemoteAddr()
	fd, err := detachFD(c)
	if err != nil {
		return nil, err
	}
	return newRingSockIO(fd, laddr, raddr), nil
}

// onTask makes t the task that uses the connection from here (a pooled
// backend connection moves between client connections, and loops).
func (s *sockIO) onTask(t *uring.Task) {
	if s.ring != nil {
		s.ring.t = t
	}
}

// task is the loop task using the connection, or nil when it is not on
// a ring.
func (s *sockIO) task() *uring.Task {
	if s.ring == nil {
		return nil
	}
	return s.ring.t
}

// ringErr is the error a net.Conn would return for err, from op; a short
// write stays io.ErrShortWrite, as the goroutine engine's Write returns it.
func (s *sockIO) ringErr(op string, err error) error {
	if errors.Is(err, io.ErrShortWrite) {
		return err
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		err = os.NewSyscallError(op, errno)
	}
	r := s.ring
	return &net.OpError{Op: op, Net: r.laddr.Network(), Source: r.laddr, Addr: r.raddr, Err: err}
}

// ringRead is Read on the ring: it sends what flushOnRead held first, in
// the same submission.
func (s *sockIO) ringRead(b []byte) (int, error) {
	r := s.ring
	var n int
	var err error
	if out := s.pending; out != nil {
		s.pending = nil
		var sent int
		var serr error
		sent, serr, n, err = r.t.SendRecv(r.fd, out, r.wdl, r.fd, b, r.rdl)
		if serr != nil {
			if errors.Is(serr, os.ErrDeadlineExceeded) {
				// As on goroutines: the next Read sends the rest.
				s.pending = out[sent:]
			}
			return 0, s.ringErr("write", serr)
		}
	} else {
		n, err = r.t.Recv(r.fd, b, r.rdl)
	}
	switch {
	case err != nil:
		return 0, s.ringErr("read", err)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// ringWrite is Write on the ring.
func (s *sockIO) ringWrite(b []byte) (int, error) {
	r := s.ring
	n, err := r.t.Send(r.fd, b, r.wdl)
	if err != nil {
		err = s.ringErr("write", err)
	}
	return n, err
}

// shutdown shuts the socket down (how: syscall.SHUT_*) unless the
// task closed it already.
func (r *ringIO) shutdown(how int) {
	r.mu.Lock()
	if !r.closed {
		_ = syscall.Shutdown(r.fd, how)
	}
	r.mu.Unlock()
}

// release gives up the descriptor: closes it, or hands it to the caller
// (keep) when it was still open.
func (r *ringIO) release(keep bool) (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return -1, false
	}
	r.closed = true
	if keep {
		return r.fd, true
	}
	syscall.Close(r.fd)
	return -1, false
}

// peek is sockIO.peek on the ring's descriptor.
func (r *ringIO) peek() peekState { return peekFD(uintptr(r.fd)) }

// netConn turns the connection back into a net.Conn, in Go's poller (for
// a handoff to net/http); the sockIO is done with it then.
func (s *sockIO) netConn() (net.Conn, error) {
	if s.ring == nil {
		return s.c, nil
	}
	fd, ok := s.ring.release(true)
	if !ok {
		return nil, net.ErrClosed
	}
	f := os.NewFile(uintptr(fd), "client")
	c, err := net.FileConn(f)
	f.Close()
	return c, err
}

// blocking runs f where it may block: on a goroutine of its own when the
// connection is on a ring (the loop's other tasks run meanwhile), else
// right here.
func (s *sockIO) blocking(f func()) { blockingOn(s.task(), f) }

// blockingOn runs f in t.Block, or right here when t is nil.
func blockingOn(t *uring.Task, f func()) {
	if t != nil {
		t.Block(f)
		return
	}
	f()
}
