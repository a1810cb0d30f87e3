package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// chunkReader gives its data in the pieces sizes lists (0 is a read that
// returns nothing), then end.
type chunkReader struct {
	data  []byte
	sizes []int
	end   error
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, c.end
	}
	n := len(c.data)
	if len(c.sizes) > 0 {
		n = min(n, c.sizes[0])
		c.sizes = c.sizes[1:]
	}
	n = copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// TestClientBuf_ActsAsBufioReader runs the same random calls on a
// clientBuf and a bufio.Reader of the same size over the same pieces and
// wants the same answers from both.
func TestClientBuf_ActsAsBufioReader(t *testing.T) {
	const size = 64
	ends := []error{io.EOF, io.ErrUnexpectedEOF}
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 7))
		data := make([]byte, rng.IntN(400))
		for i := range data {
			data[i] = byte(rng.IntN(256))
		}
		var sizes []int
		for range 200 {
			sizes = append(sizes, rng.IntN(size+20))
		}
		end := ends[rng.IntN(len(ends))]
		want := bufio.NewReaderSize(&chunkReader{data: data, sizes: sizes, end: end}, size)
		got := newClientBuf(size)
		got.Reset(&chunkReader{data: data, sizes: sizes, end: end})
		for step := range 60 {
			k := rng.IntN(size + 10)
			var wb, gb []byte
			var we, ge error
			op := rng.IntN(4)
			switch op {
			case 0:
				wb, we = want.Peek(k)
				gb, ge = got.Peek(k)
			case 1:
				var wn, gn int
				wn, we = want.Discard(k)
				gn, ge = got.Discard(k)
				wb, gb = []byte{byte(wn)}, []byte{byte(gn)}
			case 2:
				wp, gp := make([]byte, k), make([]byte, k)
				wn, werr := want.Read(wp)
				gn, gerr := got.Read(gp)
				wb, gb, we, ge = wp[:wn], gp[:gn], werr, gerr
			case 3:
				wb, gb = []byte{byte(want.Buffered())}, []byte{byte(got.Buffered())}
			}
			if !bytes.Equal(wb, gb) || we != ge {
				t.Fatalf("seed %d step %d op %d(%d): bufio gave %q, %v; clientBuf gave %q, %v", seed, step, op, k, wb, we, gb, ge)
			}
			if got, want := got.Buffered(), want.Buffered(); got != want {
				t.Fatalf("seed %d step %d op %d(%d): Buffered %d, bufio %d", seed, step, op, k, got, want)
			}
		}
	}
}

// TestClientBuf_NoReadInside: while the connection's read is held, a call
// that would have to read fails at once instead of waiting for ever.
func TestClientBuf_NoReadInside(t *testing.T) {
	b := newClientBuf(16)
	b.Reset(&chunkReader{data: []byte("0123456789abcdefghij"), end: io.EOF})
	copy(b.free(), "ab")
	b.got(2)
	b.inside = true
	if p, err := b.Peek(2); err != nil || string(p) != "ab" {
		t.Fatalf("Peek(2) of what is buffered = %q, %v", p, err)
	}
	if _, err := b.Peek(3); !errors.Is(err, errReadInside) {
		t.Fatalf("Peek(3) inside = %v, want errReadInside", err)
	}
	b.err = nil
	if n, err := b.Discard(5); n != 2 || !errors.Is(err, errReadInside) {
		t.Fatalf("Discard(5) inside = %d, %v, want 2, errReadInside", n, err)
	}
	if _, err := b.Read(make([]byte, 32)); !errors.Is(err, errReadInside) {
		t.Fatalf("large Read inside = %v, want errReadInside", err)
	}
	if _, err := b.Read(make([]byte, 4)); !errors.Is(err, errReadInside) {
		t.Fatalf("small Read inside = %v, want errReadInside", err)
	}
	b.inside = false
	if p, err := b.Peek(4); err != nil || string(p) != "0123" {
		t.Fatalf("Peek(4) after = %q, %v", p, err)
	}
}
