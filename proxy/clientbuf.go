package proxy

import (
	"bufio"
	"errors"
	"io"
)

// clientBuf is the fast path's read buffer on a client connection. It
// behaves as a bufio.Reader for the calls the fast path makes (Peek,
// Buffered, Discard, Read), and besides lets a read made elsewhere land
// in its free space (free, got): the connection's wait for its next
// request reads and answers inside one system-level read callback
// (fastConn.await), where a bufio.Reader's fill cannot run.
type clientBuf struct {
	buf  []byte
	r, w int // buf[r:w] is buffered
	src  io.Reader
	err  error // from src, returned once the buffer is drained
	// inside is set while the caller holds the connection's read: a fill
	// then would wait for that read and never return, so it fails instead.
	inside bool
}

// errReadInside is what a read from the client returns while an answer
// is being made from inside the read that took its request. The fast path
// answers there only requests that are whole in the buffer, so it is a
// bug to see it.
var errReadInside = errors.New("fast path: client read while inside a read")

func newClientBuf(size int) *clientBuf { return &clientBuf{buf: make([]byte, size)} }

// Reset drops what is buffered and reads from src from now on.
func (b *clientBuf) Reset(src io.Reader) {
	*b = clientBuf{buf: b.buf, src: src}
}

// Buffered returns how many bytes can be read without reading from src.
func (b *clientBuf) Buffered() int { return b.w - b.r }

// free returns the buffer's free space, after moving what is buffered to
// its start.
func (b *clientBuf) free() []byte {
	if b.r > 0 {
		copy(b.buf, b.buf[b.r:b.w])
		b.w -= b.r
		b.r = 0
	}
	return b.buf[b.w:]
}

// got takes n bytes read into free's slice.
func (b *clientBuf) got(n int) { b.w += n }

// fill reads once from src into the free space.
func (b *clientBuf) fill() {
	if b.inside {
		b.err = errReadInside
		return
	}
	p := b.free()
	for range 100 { // as bufio: a reader that keeps returning nothing is broken
		n, err := b.src.Read(p)
		b.w += n
		if err != nil {
			b.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	b.err = io.ErrNoProgress
}

func (b *clientBuf) readErr() error {
	err := b.err
	b.err = nil
	return err
}

// Peek returns the next n bytes without taking them, reading from src
// until they are there. With fewer it also returns why: src's error, or
// bufio.ErrBufferFull when n is more than the buffer holds.
func (b *clientBuf) Peek(n int) ([]byte, error) {
	for b.w-b.r < n && b.w-b.r < len(b.buf) && b.err == nil {
		b.fill()
	}
	if n > len(b.buf) {
		return b.buf[b.r:b.w], bufio.ErrBufferFull
	}
	if avail := b.w - b.r; avail < n {
		err := b.readErr()
		if err == nil {
			err = bufio.ErrBufferFull
		}
		return b.buf[b.r:b.w], err
	}
	return b.buf[b.r : b.r+n], nil
}

// Discard skips the next n bytes, reading from src as needed, and returns
// how many it skipped.
func (b *clientBuf) Discard(n int) (int, error) {
	done := 0
	for {
		skip := min(b.w-b.r, n-done)
		b.r += skip
		done += skip
		if done == n {
			return done, nil
		}
		if b.err != nil {
			return done, b.readErr()
		}
		b.fill()
	}
}

// Read reads what is buffered, or reads once from src: straight into p
// when p is at least as large as the buffer.
func (b *clientBuf) Read(p []byte) (int, error) {
	if len(p) == 0 {
		if b.Buffered() > 0 {
			return 0, nil
		}
		return 0, b.readErr()
	}
	if b.r == b.w {
		if b.err != nil {
			return 0, b.readErr()
		}
		b.r, b.w = 0, 0
		if len(p) >= len(b.buf) {
			if b.inside {
				return 0, errReadInside
			}
			return b.src.Read(p)
		}
		if b.inside {
			return 0, errReadInside
		}
		n, err := b.src.Read(b.buf) // once, as bufio: nothing read is no error
		b.w, b.err = n, err
		if n == 0 {
			return 0, b.readErr()
		}
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	return n, nil
}

// readServeSlow is readServe with plain reads, for what is not a socket:
// each wait has a read that finds nothing before it.
func (s *sockIO) readServeSlow(next func() []byte, got func(n int) bool) error {
	for {
		b := next()
		if len(b) == 0 {
			return nil
		}
		n, err := s.Read(b)
		if n > 0 && !got(n) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
