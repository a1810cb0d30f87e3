package proxy

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// pastEnd is a body that fails a read made after it delivered all its
// bytes, as net/http's server body does once the server has closed it.
type pastEnd struct {
	r    io.Reader
	left int
}

var errPastEnd = errors.New("read past the end of the body")

func (p *pastEnd) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, errPastEnd
	}
	n, err := p.r.Read(b[:min(len(b), p.left)])
	p.left -= n
	return n, err
}

func (p *pastEnd) Close() error { return nil }

// A body of known length ends at that length without reading its source
// again, however many reads come after (http.Transport makes one more to
// check the length).
func TestSizedBody_EndsAtItsLengthWithoutReadingOn(t *testing.T) {
	for _, size := range []int{1, 10, 4096, 5000} {
		src := strings.Repeat("x", size)
		b := &sizedBody{ReadCloser: &pastEnd{r: strings.NewReader(src), left: size}, left: int64(size)}
		got, err := io.ReadAll(io.LimitReader(b, int64(size)))
		if err != nil || string(got) != src {
			t.Fatalf("size %d: read %d bytes, %v", size, len(got), err)
		}
		for range 2 {
			if n, err := b.Read(make([]byte, 512)); n != 0 || err != io.EOF {
				t.Fatalf("size %d: a read past the length gave %d, %v; want 0, io.EOF", size, n, err)
			}
		}
	}
	// A source that ends short still says so.
	b := &sizedBody{ReadCloser: io.NopCloser(io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(io.ErrUnexpectedEOF))), left: 10}
	if got, err := io.ReadAll(b); string(got) != "abc" || err != io.ErrUnexpectedEOF {
		t.Fatalf("short source: %q, %v; want \"abc\", io.ErrUnexpectedEOF", got, err)
	}
}
