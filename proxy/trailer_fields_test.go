package proxy_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/banyanhq/banyan/proxy"
)

// forbiddenTrailers are fields RFC 9110 section 6.5.1 keeps out of
// trailers: framing, routing, hop-by-hop and those a recipient needs before
// the body. A trailer line carrying one would reach a client or a backend
// that might merge it into the head it already acted on.
var forbiddenTrailers = []string{"Content-Length", "Transfer-Encoding", "Host", "Trailer", "Connection", "Content-Type", "Authorization"}

// trailerBlock is a chunked body's last-chunk and trailer section with
// every forbidden field and one allowed one, X-Ok.
func trailerBlock() string {
	var b strings.Builder
	b.WriteString("0\r\n")
	for _, name := range forbiddenTrailers {
		fmt.Fprintf(&b, "%s: 99\r\n", name)
	}
	b.WriteString("X-Ok: yes\r\n\r\n")
	return b.String()
}

// TestServer_ForbiddenTrailersDropped: a backend's trailer section that
// names Content-Length, Transfer-Encoding, Host and the like is relayed
// without those lines, on the fast path and on net/http (fast_path: off).
// Both relayed them: the fast path copied every well-formed line, and
// net/http passes on every trailer the backend did not announce.
func TestServer_ForbiddenTrailersDropped(t *testing.T) {
	t.Parallel()
	answers := map[string]string{
		"/t": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n" + trailerBlock(),
	}
	b := cannedBackend(t, answers, true)
	for _, netHTTP := range []bool{false, true} {
		all := readAllOn(t, b, "raw", netHTTP, "GET /t HTTP/1.1\r\nHost: shop\r\nTe: trailers\r\nConnection: close\r\n\r\n")
		_, tail, ok := bytes.Cut(all, []byte("\r\n0\r\n"))
		if !ok {
			t.Fatalf("net/http only %v: no last chunk in %q", netHTTP, all)
		}
		if !bytes.Contains(tail, []byte("X-Ok: yes\r\n")) {
			t.Errorf("net/http only %v: allowed trailer X-Ok missing from %q", netHTTP, tail)
		}
		for _, name := range forbiddenTrailers {
			if bytes.Contains(bytes.ToLower(tail), []byte(strings.ToLower(name)+":")) {
				t.Errorf("net/http only %v: trailer %s reached the client: %q", netHTTP, name, tail)
			}
		}
	}
}

// TestServer_RequestTrailersForwarded: the trailer fields of a chunked
// request reach the backend, declared or not, on both paths (the fast
// path hands chunked requests to net/http), without the fields
// trailerAllowed refuses. httputil.ReverseProxy sends the trailers as they
// were before the body was read, so the values were lost, and a backend
// that checks a body's digest from its trailer refused every such request.
func TestServer_RequestTrailersForwarded(t *testing.T) {
	t.Parallel()
	type seen struct {
		body    string
		trailer http.Header
	}
	got := make(chan seen, 2)
	b := newBackend(t, "api", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("backend: read body: %v", err)
		}
		got <- seen{string(body), r.Trailer.Clone()}
	})
	for _, netHTTP := range []bool{false, true} {
		readAllOn(t, b, "api", netHTTP, "POST /upload HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum, Authorization\r\nConnection: close\r\n\r\n"+
			"3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 42\r\nX-Late: undeclared\r\nAuthorization: Bearer smuggled\r\nHost: evil\r\n\r\n")
		s := <-got
		if s.body != "abcde" {
			t.Errorf("net/http only %v: backend read body %q, want %q", netHTTP, s.body, "abcde")
		}
		if v := s.trailer.Get("X-Sum"); v != "42" {
			t.Errorf("net/http only %v: backend saw trailer X-Sum %q, want 42 (trailers %v)", netHTTP, v, s.trailer)
		}
		if v := s.trailer.Get("X-Late"); v != "undeclared" {
			t.Errorf("net/http only %v: backend saw trailer X-Late %q, want undeclared (trailers %v)", netHTTP, v, s.trailer)
		}
		for _, name := range []string{"Authorization", "Host"} {
			if v, ok := s.trailer[name]; ok {
				t.Errorf("net/http only %v: forbidden trailer %s reached the backend (declared or sent): %q", netHTTP, name, v)
			}
		}
	}
}

// TestServer_ChunkedRequestClosesAfterInterimAnswer: the connection of a
// chunked request ends after its answer (proxy.go, ServeHTTP) also when
// the backend sends a 1xx first. ReverseProxy empties the header map after
// relaying a 1xx, which took the Connection: close set for the final
// answer with it, and the connection stayed open (found by a review).
func TestServer_ChunkedRequestClosesAfterInterimAnswer(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "api", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Write([]byte("ok"))
	})
	for _, netHTTP := range []bool{false, true} {
		// Ends only when the proxy closes.
		all := readAllOn(t, b, "api", netHTTP, "POST /x HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
		_, final, ok := bytes.Cut(all, []byte("\r\n\r\nHTTP/1.1 200"))
		if !ok {
			t.Fatalf("net/http only %v: no 103 then 200 in %q", netHTTP, all)
		}
		if !bytes.Contains(final, []byte("Connection: close\r\n")) {
			t.Errorf("net/http only %v: the final answer does not say Connection: close: %q", netHTTP, all)
		}
	}
}

// readAllOn sends request to a proxy with one route to b, on the fast path
// or on net/http only, and returns all the client reads until the proxy
// closes the connection.
func readAllOn(t *testing.T, b *backend, route string, netHTTP bool, request string) []byte {
	t.Helper()
	p, _, _ := newProxy(t, oneRoute(route), b)
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{NetHTTPOnly: netHTTP}))
	rc.send(request)
	all, err := io.ReadAll(rc.br)
	if err != nil {
		t.Fatalf("net/http only %v: %v", netHTTP, err)
	}
	return all
}
