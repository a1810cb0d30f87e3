package proxy_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/banyanhq/banyan/proxy"
)

// TestServer_ClientShadowHeaderDropped: X-Banyan-Shadow tells the new
// service a request is banyan's mirror, so that a dry-run write skips its
// side effects. A customer who sends it on a real checkout must not get
// the same treatment (an order confirmed, no payment taken), so banyan
// drops it from what customers send, on both paths, as it drops a
// client's X-Forwarded-For.
func TestServer_ClientShadowHeaderDropped(t *testing.T) {
	t.Parallel()
	seen := make(chan []string, 16)
	checkout := newBackend(t, "checkout", func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Values(proxy.ShadowHeader)
	})
	for _, netHTTP := range []bool{false, true} {
		p, _, _ := newProxy(t, oneRoute("checkout"), checkout)
		rc := dialRaw(t, serve(t, p, proxy.ServerOptions{NetHTTPOnly: netHTTP}))
		for _, req := range []string{
			withBody("POST /api/checkout HTTP/1.1\r\nHost: shop\r\nX-Banyan-Shadow: 1\r\n", `{"cart":7}`),
			"GET /api/checkout HTTP/1.1\r\nHost: shop\r\nx-banyan-shadow: 1\r\n\r\n",
		} {
			resp, body := rc.do(req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("net/http only %v: %s: status %d, body %q", netHTTP, firstLineOf(req), resp.StatusCode, body)
			}
			if got := recv(t, seen, "the request at the backend"); len(got) != 0 {
				t.Errorf("net/http only %v: %s: the backend received %s: %q from the client", netHTTP, firstLineOf(req), proxy.ShadowHeader, got)
			}
		}
	}
}

// TestServer_NoBareCRToClient: RFC 9112 forbids sending a bare CR, and a
// client (or a cache in front of banyan) that ends a line at one reads a
// header the backend never sent. The fast path copied the backend's
// reason phrase and trailer lines byte for byte, bare CR and folded lines
// included; net/http writes its own status line and drops such trailers.
func TestServer_NoBareCRToClient(t *testing.T) {
	t.Parallel()
	answers := map[string]string{
		"/reason":  "HTTP/1.1 200 OK\rSet-Cookie: session=attacker\r\nContent-Length: 2\r\n\r\nok",
		"/trailer": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 1\rSet-Cookie: session=attacker\r\n folded: x\r\nX-Ok: yes\r\n\r\n",
	}
	b := cannedBackend(t, answers, true)
	for _, netHTTP := range []bool{false, true} {
		p, _, _ := newProxy(t, oneRoute("raw"), b)
		base := serve(t, p, proxy.ServerOptions{NetHTTPOnly: netHTTP})
		for _, path := range []string{"/reason", "/trailer"} {
			rc := dialRaw(t, base)
			rc.send("GET " + path + " HTTP/1.1\r\nHost: shop\r\nTe: trailers\r\nConnection: close\r\n\r\n")
			all, err := io.ReadAll(rc.br)
			if err != nil {
				t.Fatalf("net/http only %v: %s: %v", netHTTP, path, err)
			}
			if !bytes.HasPrefix(all, []byte("HTTP/1.1 200 ")) || !bytes.Contains(all, []byte("ok")) {
				t.Errorf("net/http only %v: %s: answer %q, want the 200 with its body", netHTTP, path, all)
			}
			for i, c := range all {
				if c == '\r' && (i+1 == len(all) || all[i+1] != '\n') {
					t.Errorf("net/http only %v: %s: bare CR at byte %d of %q", netHTTP, path, i, all)
					break
				}
			}
			if bytes.Contains(all, []byte("\n folded")) {
				t.Errorf("net/http only %v: %s: a folded line reached the client: %q", netHTTP, path, all)
			}
		}
	}
}

// TestServer_FoldedFramingHeaderFromBackend: a backend that folds its
// Transfer-Encoding or Content-Length value onto a continuation line
// (obs-fold, which RFC 9112 lets a proxy replace with a space) is read as
// net/http reads it. The fast path joined the fold with a leading space
// (" chunked", " 2") and answered 502 where net/http relayed the answer.
func TestServer_FoldedFramingHeaderFromBackend(t *testing.T) {
	t.Parallel()
	answers := map[string]string{
		"/te": "HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"/cl": "HTTP/1.1 200 OK\r\nContent-Length:\r\n\t2\r\n\r\nok",
	}
	b := cannedBackend(t, answers, true)
	for _, netHTTP := range []bool{false, true} {
		p, _, _ := newProxy(t, oneRoute("raw"), b)
		rc := dialRaw(t, serve(t, p, proxy.ServerOptions{NetHTTPOnly: netHTTP}))
		for _, path := range []string{"/te", "/cl"} {
			resp, body := rc.do("GET " + path + " HTTP/1.1\r\nHost: shop\r\n\r\n")
			if resp.StatusCode != http.StatusOK || body != "ok" {
				t.Errorf("net/http only %v: %s: status %d, body %q; want 200, %q", netHTTP, path, resp.StatusCode, body, "ok")
			}
		}
	}
}

// TestServer_FaultyFramingClosesBackendConn: a backend answer with both
// Transfer-Encoding and Content-Length, or with Transfer-Encoding in
// HTTP/1.0, is relayed by its chunked framing and its connection is not
// used again (RFC 9112 6.1 and 6.3: the framing is faulty, close after
// it), so what the backend meant by its length cannot become the start
// of the next customer's answer. The fast path kept such connections.
//
// This holds on the fast path only. net/http's Transport (fast_path: off,
// and TLS backends) reuses the connection after Transfer-Encoding with
// Content-Length, and reads an HTTP/1.0 answer's body, whatever its
// Transfer-Encoding says, until the backend closes; neither is visible
// to banyan after the Transport has read the head.
func TestServer_FaultyFramingClosesBackendConn(t *testing.T) {
	t.Parallel()
	answers := map[string]string{
		"/plain":     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"/te-and-cl": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"/te-in-1.0": "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	}
	want := map[string]int64{"/plain": 1, "/te-and-cl": 2, "/te-in-1.0": 2}
	if !fastPathOn() {
		want = map[string]int64{"/plain": 1, "/te-and-cl": 1}
	}
	for path, wantConns := range want {
		rb := answerEach(t, func(c net.Conn, req *http.Request) { io.WriteString(c, answers[req.URL.Path]) })
		p, _, _ := newProxy(t, oneRoute("raw"), &backend{name: "raw", URL: rb.URL})
		rc := dialRaw(t, serve(t, p, proxy.ServerOptions{}))
		for range 2 {
			resp, body := rc.do("GET " + path + " HTTP/1.1\r\nHost: shop\r\n\r\n")
			if resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("%s: %d %q, want 200 ok", path, resp.StatusCode, body)
			}
		}
		if got := rb.conns.Load(); got != wantConns {
			t.Errorf("%s: backend connections = %d, want %d", path, got, wantConns)
		}
	}
}

// TestServer_EndlessInformationalAnswers: a backend that sends 1xx answers
// without end is cut off after five (banyan's own limit), and the client,
// which has had only interim answers, gets a final 502 rather than a
// closed connection or 103s until the backend's timeout. On both paths.
func TestServer_EndlessInformationalAnswers(t *testing.T) {
	t.Parallel()
	rb := answerEach(t, func(c net.Conn, req *http.Request) {
		for range 1000 {
			if _, err := io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"); err != nil {
				return
			}
		}
	})
	for _, netHTTP := range []bool{false, true} {
		p, _, _ := newProxy(t, oneRoute("raw"), &backend{name: "raw", URL: rb.URL})
		rc := dialRaw(t, serve(t, p, proxy.ServerOptions{NetHTTPOnly: netHTTP}))
		rc.send("GET / HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n")
		all, err := io.ReadAll(rc.br)
		if err != nil {
			t.Errorf("net/http only %v: %v after %d 103s", netHTTP, err, bytes.Count(all, []byte("HTTP/1.1 103 ")))
		}
		if n := bytes.Count(all, []byte("HTTP/1.1 103 ")); n != 5 {
			t.Errorf("net/http only %v: %d 103 answers reached the client, want 5", netHTTP, n)
		}
		i := bytes.Index(all, []byte("HTTP/1.1 502 "))
		if i < 0 {
			t.Errorf("net/http only %v: no final 502 after the 103s; the client got %q", netHTTP, tail(all, 200))
			continue
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(all[i:])), nil)
		if err != nil {
			t.Errorf("net/http only %v: the 502 does not parse: %v", netHTTP, err)
		} else if body, _ := io.ReadAll(resp.Body); !bytes.Contains(body, []byte("raw")) {
			t.Errorf("net/http only %v: the 502's body %q does not name the backend", netHTTP, body)
		}
	}
}

// TestServer_FiveInformationalAnswers: five 1xx answers, the limit, and
// then the final one all reach the client, on both paths.
func TestServer_FiveInformationalAnswers(t *testing.T) {
	t.Parallel()
	rb := answerEach(t, func(c net.Conn, req *http.Request) {
		io.WriteString(c, strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n", 5)+
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	for _, netHTTP := range []bool{false, true} {
		p, _, _ := newProxy(t, oneRoute("raw"), &backend{name: "raw", URL: rb.URL})
		rc := dialRaw(t, serve(t, p, proxy.ServerOptions{NetHTTPOnly: netHTTP}))
		rc.send("GET / HTTP/1.1\r\nHost: shop\r\n\r\n")
		for i := range 5 {
			if resp := rc.head(http.MethodGet); resp.StatusCode != http.StatusEarlyHints {
				t.Fatalf("net/http only %v: answer %d is %d, want 103", netHTTP, i+1, resp.StatusCode)
			}
		}
		if resp, body := rc.read(http.MethodGet); resp.StatusCode != 200 || body != "ok" {
			t.Errorf("net/http only %v: final answer %d %q, want 200 ok", netHTTP, resp.StatusCode, body)
		}
	}
}

// tail is the last n bytes of b.
func tail(b []byte, n int) []byte {
	return b[max(0, len(b)-n):]
}
