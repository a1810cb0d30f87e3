//go:build linux

package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{7})
	r.Read(b)
	return b
}

func TestSockIO_UsesRawCallsOnlyOnNetSockets(t *testing.T) {
	a, _ := tcpPair(t)
	if newSockIO(a).rc == nil {
		t.Error("*net.TCPConn: not on raw calls")
	}
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	u, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if newSockIO(u).rc == nil {
		t.Error("*net.UnixConn: not on raw calls")
	}
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if newSockIO(p1).rc != nil {
		t.Error("net.Pipe: on raw calls")
	}
	// A type that embeds a socket and changes Read must keep its Read.
	w := &upperReader{TCPConn: a}
	if newSockIO(w).rc != nil {
		t.Error("a wrapper of *net.TCPConn: on raw calls, which would go around its Read")
	}
}

type upperReader struct{ *net.TCPConn }

func (u *upperReader) Read(b []byte) (int, error) {
	n, err := u.TCPConn.Read(b)
	copy(b, bytes.ToUpper(b[:n]))
	return n, err
}

func TestSockIO_WrapperReadIsKept(t *testing.T) {
	a, b := tcpPair(t)
	s := newSockIO(&upperReader{TCPConn: a})
	go b.Write([]byte("quiet"))
	got := make([]byte, 5)
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != "QUIET" {
		t.Errorf("read %q through the wrapper, want %q", got, "QUIET")
	}
}

// Eight MiB each way, far more than the socket buffers hold, so both the
// write that must wait for room and the read that must wait for data run.
func TestSockIO_LargeTransfersBothWays(t *testing.T) {
	a, b := tcpPair(t)
	s := newSockIO(a)
	out := randomBytes(8 << 20)
	in := randomBytes(8<<20 + 13)

	peerGot := make(chan [32]byte, 1)
	go func() {
		time.Sleep(50 * time.Millisecond) // let the writer find the buffer full
		h := sha256.New()
		io.CopyN(h, b, int64(len(out)))
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		peerGot <- sum
	}()
	n, err := s.Write(out)
	if err != nil || n != len(out) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(out))
	}
	if got := <-peerGot; got != sha256.Sum256(out) {
		t.Error("the peer read other bytes than were written")
	}

	go func() {
		time.Sleep(50 * time.Millisecond) // let the reader wait first
		b.Write(in)
		b.CloseWrite()
	}()
	got, err := io.ReadAll(s) // stops at io.EOF
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if !bytes.Equal(got, in) {
		t.Errorf("read %d bytes, want the %d written", len(got), len(in))
	}
	if n, err := s.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("Read after the end = %d, %v; want 0, io.EOF", n, err)
	}
}

func TestSockIO_DeadlinesAreTimeouts(t *testing.T) {
	a, _ := tcpPair(t)
	s := newSockIO(a)
	a.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	start := time.Now()
	_, err := s.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past its deadline: %v, want a timeout", err)
	}
	if d := time.Since(start); d < 90*time.Millisecond || d > 3*time.Second {
		t.Errorf("Read returned after %s, want about 100ms", d)
	}

	// The peer reads nothing: the write fills the buffers and then waits
	// until its deadline. The buffer is made before the deadline is set,
	// and the deadline leaves a loaded machine room to start the write:
	// with 200ms set before making it, a run on a busy machine saw the
	// deadline pass before a byte was written.
	big := make([]byte, 64<<20)
	a.SetWriteDeadline(time.Now().Add(time.Second))
	n, err := s.Write(big)
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Write past its deadline: %v, want a timeout", err)
	}
	if n <= 0 || n >= len(big) {
		t.Errorf("Write wrote %d of %d bytes before its deadline, want some but not all", n, len(big))
	}
}

func TestSockIO_ClosedAndReset(t *testing.T) {
	a, b := tcpPair(t)
	s := newSockIO(a)
	b.SetLinger(0)
	b.Close() // sends a reset
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for err == nil && time.Now().Before(deadline) {
		_, err = s.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
		time.Sleep(5 * time.Millisecond)
	}
	if !staleConn(err) {
		t.Errorf("Write to a reset connection: %v; want what staleConn knows (ECONNRESET or EPIPE)", err)
	}

	c, _ := tcpPair(t)
	sc := newSockIO(c)
	c.Close()
	if _, err := sc.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read on a closed connection: %v, want net.ErrClosed", err)
	}
	if _, err := sc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write on a closed connection: %v, want net.ErrClosed", err)
	}
	if got := sc.peek(); got != peekClosed {
		t.Errorf("peek on a closed connection = %d, want peekClosed", got)
	}
}

func TestSockIO_Peek(t *testing.T) {
	a, b := tcpPair(t)
	s := newSockIO(a)
	if got := s.peek(); got != peekQuiet {
		t.Errorf("open and quiet: peek = %d, want peekQuiet", got)
	}
	// A read deadline that has passed must not make it look closed.
	a.SetReadDeadline(time.Now().Add(-time.Second))
	if got := s.peek(); got != peekQuiet {
		t.Errorf("quiet, deadline passed: peek = %d, want peekQuiet", got)
	}
	a.SetReadDeadline(time.Time{})
	b.Write([]byte("x"))
	if !waitFor(2*time.Second, func() bool { return s.peek() == peekData }) {
		t.Errorf("data waiting: peek = %d, want peekData", s.peek())
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(s, buf); err != nil || buf[0] != 'x' {
		t.Fatalf("peek consumed the byte: read %q, %v", buf, err)
	}
	b.Close()
	if !waitFor(2*time.Second, func() bool { return s.peek() == peekClosed }) {
		t.Errorf("peer closed: peek = %d, want peekClosed", s.peek())
	}
}

// flushOnRead: the bytes go out inside the next Read, which then waits for
// and returns the answer; a send larger than the socket takes at once
// finishes the usual way first.
func TestSockIO_FlushOnRead(t *testing.T) {
	for _, size := range []int{100, 8 << 20} {
		a, b := tcpPair(t)
		// A send that loses bytes must fail the test, not hang it.
		a.SetDeadline(time.Now().Add(10 * time.Second))
		b.SetDeadline(time.Now().Add(10 * time.Second))
		s := newSockIO(a)
		req := randomBytes(size)
		peerGot := make(chan []byte, 1)
		go func() {
			got := make([]byte, size)
			if _, err := io.ReadFull(b, got); err == nil {
				b.Write([]byte("answer"))
			}
			peerGot <- got
		}()
		w := bufio.NewWriterSize(s, size) // all of it is held for the Read
		w.Write(req)
		if err := s.flushOnRead(w); err != nil {
			t.Fatalf("size %d: flushOnRead: %v", size, err)
		}
		if len(s.pending) != size {
			t.Errorf("size %d: %d bytes held for the next Read, want all", size, len(s.pending))
		}
		if s.hold {
			t.Errorf("size %d: still holding after flushOnRead", size)
		}
		got := make([]byte, 6)
		if _, err := io.ReadFull(s, got); err != nil || string(got) != "answer" {
			t.Fatalf("size %d: read %q, %v; want the answer", size, got, err)
		}
		if !bytes.Equal(<-peerGot, req) {
			t.Errorf("size %d: the peer got other bytes than were sent", size)
		}
		if s.pending != nil || s.wbuf != nil {
			t.Errorf("size %d: a buffer is still referenced after the Read", size)
		}
		// The next write goes out at once.
		if _, err := s.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		one := make([]byte, 1)
		if _, err := io.ReadFull(b, one); err != nil || one[0] != 'x' {
			t.Errorf("size %d: a later Write was not sent: %q, %v", size, one, err)
		}
	}
}

func TestSockIO_FlushOnReadToAResetConnection(t *testing.T) {
	a, b := tcpPair(t)
	s := newSockIO(a)
	b.SetLinger(0)
	b.Close()
	time.Sleep(50 * time.Millisecond) // let the reset arrive
	w := bufio.NewWriter(s)
	w.WriteString("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if err := s.flushOnRead(w); err != nil {
		t.Fatalf("flushOnRead: %v (the send happens in the Read)", err)
	}
	_, err := s.Read(make([]byte, 10))
	if !staleConn(err) {
		t.Errorf("Read after a send to a reset connection: %v; want what staleConn knows", err)
	}
}

// A Read that holds bytes from flushOnRead and finds its deadline already
// past fails before it can send them; they are sent by the next Read, not
// lost (the exchange waits on after such a timeout, for an answer to a
// request the backend would otherwise never have got).
func TestSockIO_FlushOnReadPastDeadlineKeepsTheBytes(t *testing.T) {
	a, b := tcpPair(t)
	b.SetDeadline(time.Now().Add(10 * time.Second))
	s := newSockIO(a)
	w := bufio.NewWriter(s)
	w.WriteString("request")
	if err := s.flushOnRead(w); err != nil {
		t.Fatal(err)
	}
	a.SetReadDeadline(time.Now().Add(-time.Second))
	one := make([]byte, 6)
	if _, err := s.Read(one); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past its deadline: %v, want a deadline error", err)
	}
	a.SetReadDeadline(time.Now().Add(10 * time.Second))
	peerGot := make(chan string, 1)
	go func() {
		got := make([]byte, 7)
		_, err := io.ReadFull(b, got)
		if err == nil {
			b.Write([]byte("answer"))
		}
		peerGot <- string(got)
	}()
	if _, err := io.ReadFull(s, one); err != nil || string(one) != "answer" {
		t.Fatalf("next Read: %q, %v; want the answer to the held bytes", one, err)
	}
	if got := <-peerGot; got != "request" {
		t.Errorf("the peer got %q, want the held bytes", got)
	}
}
