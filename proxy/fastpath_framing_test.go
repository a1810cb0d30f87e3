package proxy_test

// Tests from an adversarial review of how the proxy frames what it relays:
// each failed on one path (the fast path or net/http) before its fix and
// passes on both.

import (
	"bufio"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/proxy"
)

// TestServer_CloseDelimitedAnswerBreaksOff checks an answer without
// Content-Length or chunking whose backend connection is reset mid-body:
// the client must see the answer break off, not an answer that ended
// where the backend failed (on a checkout page, half an order summary
// taken for all of it).
func TestServer_CloseDelimitedAnswerBreaksOff(t *testing.T) {
	t.Parallel()
	raw := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		if _, _, err := readReq(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst half of the answer")
		// A reset, not a close: the backend failed.
		c.(*net.TCPConn).SetLinger(0)
	})
	p, _, _ := newProxy(t, oneRoute("raw"), &backend{name: "raw", URL: raw.URL})
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{}))
	rc.send("GET /dump HTTP/1.1\r\nHost: shop\r\n\r\n")
	resp := rc.head("GET")
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode == http.StatusOK {
		t.Errorf("client read %q as a whole answer; want an error for the broken-off body", body)
	}
}

// TestServer_ChunkedAnswerLineEnds checks chunked answers whose chunk
// lines do not end in CRLF. RFC 9112 takes a bare LF for a line end in a
// head but not in chunked framing (erratum 7633), and a bare CR is never
// a line end: a parser that is lenient there frames the stream otherwise
// than a strict one would, the opening for smuggling. Each must reach the
// client as a broken answer, never as a whole one.
func TestServer_ChunkedAnswerLineEnds(t *testing.T) {
	t.Parallel()
	const head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
	answers := map[string]string{
		"/lf-after-data":  head + "2\r\nok\n0\r\n\r\n",
		"/cr-after-data":  head + "2\r\nok\r\r\n0\r\n\r\n",
		"/lf-size-line":   head + "2\nok\r\n0\r\n\r\n",
		"/cr-in-size":     head + "2\r\r\nok\r\n0\r\n\r\n",
		"/lf-last-chunk":  head + "2\r\nok\r\n0\n\r\n",
		"/cr-end-trailer": head + "2\r\nok\r\n0\r\n\r\r\n",
	}
	b := cannedBackend(t, answers, false)
	p, _, _ := newProxy(t, oneRoute("raw"), b)
	base := serve(t, p, proxy.ServerOptions{})
	for _, path := range slices.Sorted(maps.Keys(answers)) {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			rc := dialRaw(t, base)
			_ = rc.c.SetDeadline(time.Now().Add(5 * time.Second))
			rc.send("GET " + path + " HTTP/1.1\r\nHost: shop\r\n\r\n")
			resp, err := http.ReadResponse(rc.br, &http.Request{Method: "GET"})
			if err != nil {
				return // no answer: broken, as it should be
			}
			body, err := io.ReadAll(resp.Body)
			if err == nil && resp.StatusCode == http.StatusOK {
				t.Errorf("client read %q as a whole answer; want a broken one or a 502", body)
			}
		})
	}
}

// TestServer_StatusBelow100 checks a backend whose status line carries a
// code under 100 (RFC 9110 allows 100 to 599): the client gets banyan's
// 502, not a connection dropped without an answer (net/http's server
// panics on such a code, and the panic tore the connection down).
func TestServer_StatusBelow100(t *testing.T) {
	t.Parallel()
	b := cannedBackend(t, map[string]string{
		"/099": "HTTP/1.1 099 Odd\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
		"/000": "HTTP/1.1 000 Odd\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
	}, false)
	p, _, reg := newProxy(t, oneRoute("raw"), b)
	base := serve(t, p, proxy.ServerOptions{})
	for _, path := range []string{"/099", "/000"} {
		rc := dialRaw(t, base)
		_ = rc.c.SetDeadline(time.Now().Add(5 * time.Second))
		rc.send("GET " + path + " HTTP/1.1\r\nHost: shop\r\n\r\n")
		resp, err := http.ReadResponse(rc.br, &http.Request{Method: "GET"})
		if err != nil {
			t.Errorf("%s: no answer (%v), want a 502", path, err)
			continue
		}
		if got, want := resp.StatusCode, http.StatusBadGateway; got != want {
			t.Errorf("%s: status %d, want %d", path, got, want)
		}
	}
	const series = `route="raw" backend="raw" code="502"`
	waitFor(2*time.Second, func() bool { return requestCounts(t, reg)[series] >= 2 })
	if got, want := requestCounts(t, reg)[series], 2.0; got != want {
		t.Errorf("502s counted = %v, want %v", got, want)
	}
}

// serveFastPath runs p behind a proxy.Server with its fast path on,
// whatever BANYAN_TEST_FAST_PATH says: what it checks is the fast path's
// own reading of a head before net/http sees it.
func serveFastPath(tb testing.TB, p *proxy.Proxy) string {
	tb.Helper()
	_, base := serveFastOnly(tb, p)
	return base
}

// TestServer_FaultyFramingRefused checks requests whose framing RFC 9112
// section 6.1 calls faulty: Content-Length beside Transfer-Encoding, or
// Transfer-Encoding in an HTTP/1.0 request. net/http reads the first by
// its chunks and ignores the second's Transfer-Encoding, and keeps the
// connection open for the next request either way; a front end that
// framed the bytes otherwise then has its "body" run as a request of its
// own here. banyan answers 400 and closes the connection instead, so
// nothing after such a head reaches a backend, also when the head is
// padded past the fast path's 8 KiB buffer.
func TestServer_FaultyFramingRefused(t *testing.T) {
	t.Parallel()
	api, seen := newRecordingBackend(t, "api")
	p, _, _ := newProxy(t, oneRoute("api"), api)
	base := serveFastPath(t, p)
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: shop\r\n\r\n"
	pad := "X-Pad: " + strings.Repeat("p", 9000) + "\r\n"
	tests := []struct{ name, req string }{
		{"length and chunked", "POST /a HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
		{"chunked and length", "POST /a HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\ncontent-length: 5\r\n\r\n0\r\n\r\n" + smuggled},
		{"padded past 8 KiB", "POST /a HTTP/1.1\r\nHost: shop\r\n" + pad + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled},
		{"HTTP/1.0 chunked", "POST /a HTTP/1.0\r\nHost: shop\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" + smuggled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, base)
			rc.send(tt.req)
			answers := rc.answersUntilClose(http.MethodPost)
			if len(answers) != 1 || !strings.HasPrefix(answers[0], "400 ") || strings.Contains(answers[0], "(read: ") {
				t.Errorf("answers %q; want one 400, then the connection closed", answers)
			}
		})
	}
	if got := seen(); len(got) != 0 {
		t.Errorf("the backend served %q; want nothing from a faulty head", got)
	}
}

// TestServer_ChunkedRequestEndsItsConnection checks the requests the fast
// path does not read itself: net/http answers them (fast_path: off, or a
// connection handed over), and it reads Transfer-Encoding beside
// Content-Length by its chunks, drops the length, and would read on from
// the connection. After a chunked request banyan closes the connection,
// as RFC 9112 section 6.1 asks after that faulty pair; so bytes a front
// end took for the body never run here as a request of their own.
func TestServer_ChunkedRequestEndsItsConnection(t *testing.T) {
	t.Parallel()
	api, seen := newRecordingBackend(t, "api")
	p, _, _ := newProxy(t, oneRoute("api"), api)
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: shop\r\n\r\n"
	tests := []struct{ name, base, req, want string }{
		{"net/http only, length and chunked", serve(t, p, proxy.ServerOptions{NetHTTPOnly: true}),
			"POST /a HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, "POST /a "},
		{"net/http only, chunked", serve(t, p, proxy.ServerOptions{NetHTTPOnly: true}),
			"POST /b HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + smuggled, "POST /b abc"},
		// The fast path hands a chunked upload over with its connection;
		// the faulty pair that follows is net/http's to read.
		{"handed over, then length and chunked", serveFastPath(t, p),
			"POST /c HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
				"POST /d HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, "POST /c abc"},
	}
	for _, tt := range tests {
		rc := dialRaw(t, tt.base)
		rc.send(tt.req)
		answers := rc.answersUntilClose(http.MethodPost)
		if want := "200 " + tt.want; len(answers) != 1 || answers[0] != want {
			t.Errorf("%s: answers %q; want only %q, then the connection closed", tt.name, answers, want)
		}
	}
	for _, s := range seen() {
		if s != "POST /a" && s != "POST /b" && s != "POST /c" {
			t.Errorf("the backend served %q after a chunked request on the same connection", s)
		}
	}
}

// TestServer_LongHeadTimesOut checks a head over 8 KiB that never ends,
// sent on a kept-alive connection of a server without an idle timeout:
// the header timeout must still close the connection (as net/http's
// does), or a client could hold it, and a goroutine, for ever.
func TestServer_LongHeadTimesOut(t *testing.T) {
	t.Parallel()
	api := newBackend(t, "api", pathEcho)
	p, _, _ := newProxy(t, oneRoute("api"), api)
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{ReadHeaderTimeout: 300 * time.Millisecond}))
	if resp, body := rc.do("GET /first HTTP/1.1\r\nHost: shop\r\n\r\n"); resp.StatusCode != http.StatusOK {
		t.Fatalf("first request: status %d, body %q", resp.StatusCode, body)
	}
	rc.send("GET /second HTTP/1.1\r\nHost: shop\r\nX-Pad: " + strings.Repeat("p", 9000) + "\r\n")
	_ = rc.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	_, err := io.ReadAll(rc.br)
	if err != nil {
		t.Errorf("connection still open %s after an unfinished head (%v); want it closed by the 300ms header timeout", time.Since(start).Round(time.Millisecond), err)
	}
}
