package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banyanhq/banyan/proxy"
	"github.com/prometheus/client_golang/prometheus"
)

// These tests talk to banyan's proxy.Server over raw sockets, so that they
// control exactly what is sent and on which connection. Most hold on both
// paths (BANYAN_TEST_FAST_PATH=off runs them on net/http alone); the
// assertions about the fast path itself are skipped there, under
// fastPathOn.

// fastPathOn reports whether serve runs the fast path.
func fastPathOn() bool { return os.Getenv("BANYAN_TEST_FAST_PATH") != "off" }

// oneRoute is a config sending everything to the backend called name.
func oneRoute(name string) string {
	return fmt.Sprintf("backends:\n  %[1]s: {url: \"${%[1]s}\"}\nroutes:\n  - name: %[1]s\n    split: {%[1]s: 100}\n", name)
}

// fastRequests reads banyan_proxy_fast_path_requests_total.
func fastRequests(tb testing.TB, reg *prometheus.Registry) float64 {
	tb.Helper()
	return series(tb, reg, "banyan_proxy_fast_path_requests_total")[""]
}

// handoffs reads banyan_proxy_handoffs_total as reason -> count.
func handoffs(tb testing.TB, reg *prometheus.Registry) map[string]float64 {
	tb.Helper()
	out := map[string]float64{}
	for k, v := range series(tb, reg, "banyan_proxy_handoffs_total") {
		out[strings.TrimSuffix(strings.TrimPrefix(k, `reason="`), `"`)] = v
	}
	return out
}

// expectFastPath checks, when the fast path is on, that it answered
// exactly fast requests and handed off exactly the connections in hand
// (reason -> count). The fast path counts a request just after its answer
// went out, so the count is awaited briefly.
func expectFastPath(tb testing.TB, reg *prometheus.Registry, fast float64, hand map[string]float64) {
	tb.Helper()
	if !fastPathOn() {
		return
	}
	waitFor(2*time.Second, func() bool { return fastRequests(tb, reg) >= fast })
	if got, want := fastRequests(tb, reg), fast; got != want {
		tb.Errorf("banyan_proxy_fast_path_requests_total = %v, want %v", got, want)
	}
	if hand == nil {
		hand = map[string]float64{}
	}
	if got := handoffs(tb, reg); !maps.Equal(got, hand) {
		tb.Errorf("banyan_proxy_handoffs_total = %v, want %v", got, hand)
	}
}

// rawClient is one client connection to the proxy, written and read by
// hand. Every read and write must finish within 5s of dialing.
type rawClient struct {
	tb testing.TB
	c  net.Conn
	br *bufio.Reader
}

// expect200 checks that an answer is a 200 with body want.
func expect200(t *testing.T, resp *http.Response, body, want string) {
	t.Helper()
	if resp.StatusCode != http.StatusOK || body != want {
		t.Errorf("status %d, body %q; want 200, %q", resp.StatusCode, body, want)
	}
}

func dialRaw(tb testing.TB, baseURL string) *rawClient {
	tb.Helper()
	u, err := url.Parse(baseURL)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		tb.Fatal(err)
	}
	return &rawClient{tb: tb, c: c, br: bufio.NewReader(c)}
}

func (rc *rawClient) send(s string) {
	rc.tb.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.tb.Fatalf("send %q: %v", firstLineOf(s), err)
	}
}

// head reads the next response head; the body is left in resp.Body.
func (rc *rawClient) head(method string) *http.Response {
	rc.tb.Helper()
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		rc.tb.Fatalf("read answer to %s: %v", method, err)
	}
	return resp
}

// read reads the next response, whole.
func (rc *rawClient) read(method string) (*http.Response, string) {
	rc.tb.Helper()
	resp := rc.head(method)
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.tb.Fatalf("read body of answer to %s (status %d): %v", method, resp.StatusCode, err)
	}
	return resp, string(b)
}

// answersUntilClose reads answers to method until one says the connection
// closes or none comes, each as "STATUS BODY", with " (read: ERR)" added
// when its body broke off.
func (rc *rawClient) answersUntilClose(method string) []string {
	var answers []string
	for {
		resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
		if err != nil {
			return answers
		}
		body, err := io.ReadAll(resp.Body)
		a := fmt.Sprintf("%d %s", resp.StatusCode, body)
		if err != nil {
			a += fmt.Sprintf(" (read: %v)", err)
		}
		answers = append(answers, a)
		if err != nil || resp.Close {
			return answers
		}
	}
}

// do sends a request and reads its whole answer.
func (rc *rawClient) do(req string) (*http.Response, string) {
	rc.tb.Helper()
	rc.send(req)
	method, _, _ := strings.Cut(req, " ")
	return rc.read(method)
}

// expectClosed checks that the proxy closes the connection: the next read
// finds its end, not data and not a timeout.
func (rc *rawClient) expectClosed() {
	rc.tb.Helper()
	if b, err := rc.br.ReadByte(); err != io.EOF {
		rc.tb.Errorf("connection still open after the answer: read %q, %v; want EOF", b, err)
	}
}

// expectClosingAnswer checks that resp says Connection: close and that the
// proxy then closes the connection.
func (rc *rawClient) expectClosingAnswer(resp *http.Response) {
	rc.tb.Helper()
	if !resp.Close {
		rc.tb.Error("answer does not say Connection: close")
	}
	rc.expectClosed()
}

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

// withBody completes head (without its empty line) with a Content-Length
// and body.
func withBody(head, body string) string {
	return fmt.Sprintf("%sContent-Length: %d\r\n\r\n%s", head, len(body), body)
}

// rawBackend is a TCP server answering by hand: handle serves one
// connection and returns when done with it (the connection is closed
// then). It counts the connections it accepted.
type rawBackend struct {
	URL   string
	conns atomic.Int64
}

// cannedBackend is a raw backend that answers each request with the bytes
// answers holds for its path, byte for byte; keepAlive serves every
// request of a connection, else only its first.
func cannedBackend(tb testing.TB, answers map[string]string, keepAlive bool) *backend {
	tb.Helper()
	raw := newRawBackend(tb, func(c net.Conn, br *bufio.Reader) {
		for {
			req, _, err := readReq(br)
			if err != nil {
				return
			}
			io.WriteString(c, answers[req.URL.Path])
			if !keepAlive {
				return
			}
		}
	})
	return &backend{name: "raw", URL: raw.URL}
}

func newRawBackend(tb testing.TB, handle func(c net.Conn, br *bufio.Reader)) *rawBackend {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	rb := &rawBackend{URL: "http://" + ln.Addr().String()}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		open = map[net.Conn]bool{}
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			rb.conns.Add(1)
			mu.Lock()
			open[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					c.Close()
					mu.Lock()
					delete(open, c)
					mu.Unlock()
				}()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				handle(c, bufio.NewReader(c))
			})
		}
	})
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return rb
}

// readReq reads one request and its body off a raw backend connection.
func readReq(br *bufio.Reader) (*http.Request, string, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(req.Body)
	return req, string(b), err
}

// countingBackend is newBackend whose connections are counted as the
// backend accepts them.
func countingBackend(tb testing.TB, name string, handle http.HandlerFunc) (*backend, *atomic.Int64) {
	tb.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		handle(w, r)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	tb.Cleanup(srv.Close)
	return &backend{name: name, URL: srv.URL}, &conns
}

// pathEcho answers "METHOD /path?query body".
func pathEcho(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), b)
}

// TestServer_SameAsNetHTTP sends the same requests through a fast-path
// server and a net/http-only one in front of the same backend: the backend
// must receive the same request, and the client the same answer, from
// both. Every request is one the fast path takes, and the test checks it
// did.
func TestServer_SameAsNetHTTP(t *testing.T) {
	t.Parallel()
	type received struct {
		Method, RequestURI, Host string
		Header                   http.Header
		ContentLength            int64
		TransferEncoding         []string
		Body                     string
	}
	arrivals := make(chan received, 16)
	echo := newBackend(t, "echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		arrivals <- received{r.Method, r.RequestURI, r.Host, r.Header, r.ContentLength, r.TransferEncoding, string(body)}
		h := w.Header()
		switch r.URL.Query().Get("answer") {
		case "created":
			h.Set("Location", "/api/orders/8")
			h.Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"id":8}`)
		case "sniff":
			h["Content-Type"] = nil // sent without one
			io.WriteString(w, "<html><body>hello</body></html>")
		case "hop":
			h.Set("Connection", "X-Hop")
			h.Set("X-Hop", "backend-only")
			h.Set("Keep-Alive", "timeout=5")
			h.Set("Proxy-Authenticate", "Basic")
			h.Set("X-End", "to-end")
			io.WriteString(w, "hop")
		case "trailer":
			h.Set("Trailer", "X-Sum")
			h.Set("Content-Type", "text/plain")
			io.WriteString(w, "part one, ")
			http.NewResponseController(w).Flush()
			io.WriteString(w, "part two")
			h.Set("X-Sum", "42")
		default:
			h.Set("Content-Type", "application/json")
			h.Add("Set-Cookie", "a=1; Path=/")
			h.Add("Set-Cookie", "b=2; Path=/")
			h.Add("X-Multi", "1")
			h.Add("X-Multi", "2")
			h.Set("Cache-Control", "no-store")
			io.WriteString(w, `{"ok":true}`)
		}
	})
	const conf = `
backends:
  echo:  {url: "${echo}"}
  based: {url: "${echo}/base"}
routes:
  - name: based
    match: {path_prefix: /based}
    split: {based: 100}
  - name: all
    split: {echo: 100}
`
	const host = "Host: shop.example.com\r\n"
	cases := []struct{ name, req string }{
		{"GET with query", "GET /api/orders?id=7&sort=desc&empty=&x=%2F HTTP/1.1\r\n" + host + "User-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"},
		{"HEAD", "HEAD /api/orders/7 HTTP/1.1\r\n" + host + "\r\n"},
		{"POST small JSON", withBody("POST /api/orders?answer=created HTTP/1.1\r\n"+host+"Content-Type: application/json\r\n", `{"id":8,"items":[1,2]}`)},
		{"PUT empty body", "PUT /api/orders/7 HTTP/1.1\r\n" + host + "Content-Length: 0\r\n\r\n"},
		{"POST without body or Content-Length", "POST /api/ping HTTP/1.1\r\n" + host + "\r\n"},
		{"DELETE", "DELETE /api/orders/7 HTTP/1.1\r\n" + host + "\r\n"},
		{"GET with Content-Length: 0", "GET /api/orders HTTP/1.1\r\n" + host + "Content-Length: 0\r\n\r\n"},
		{"OPTIONS, lower-case method", "options /api HTTP/1.1\r\n" + host + "\r\n"},
		{"Connection: close, keep-alive", "GET /x HTTP/1.1\r\n" + host + "Connection: close, keep-alive\r\nKeep-Alive: timeout=5\r\nX-Other: kept\r\n\r\n"},
		{"client's forwarding headers", "GET /x HTTP/1.1\r\n" + host + "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-For: 198.51.100.7, 192.0.2.1\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\nForwarded: for=192.0.2.60\r\n\r\n"},
		{"hop-by-hop headers", "GET /x HTTP/1.1\r\n" + host + "Keep-Alive: 300\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic dXNlcjpwYXNz\r\nTrailer: X-T\r\nTE: trailers, deflate\r\nX-Kept: 1\r\n\r\n"},
		{"Te: trailers", "GET /x HTTP/1.1\r\n" + host + "Te: trailers\r\n\r\n"},
		{"TE without trailers", "GET /x HTTP/1.1\r\n" + host + "TE: gzip\r\n\r\n"},
		{"percent-encoded path", "GET /files/a%2Fb/%41%7e/c%20d?q=%3B&r=a+b&s=%E2%82%AC HTTP/1.1\r\n" + host + "\r\n"},
		{"odd path characters", "GET //double//slash/./../it's(1)*!$&+,=:@~ HTTP/1.1\r\n" + host + "\r\n"},
		{"empty query", "GET /search? HTTP/1.1\r\n" + host + "\r\n"},
		{"header details", "GET /x HTTP/1.1\r\nhost: Shop.Example.COM:8080\r\nx-lower: 1\r\nX-Empty:\r\nX-Pad:  \t v \t \r\nAccept: a\r\nAccept: b\r\nCookie: a=1\r\nCookie: b=2\r\nX-Utf8: caf\xc3\xa9\r\n\r\n"},
		{"Pragma: no-cache", "GET /x HTTP/1.1\r\n" + host + "Pragma: no-cache\r\n\r\n"},
		{"backend base path", "GET /based/x?y=1 HTTP/1.1\r\n" + host + "\r\n"},
		{"backend base path, bare prefix", "GET /based HTTP/1.1\r\n" + host + "\r\n"},
		{"backend base path, escaped", "GET /based/a%2Fb HTTP/1.1\r\n" + host + "\r\n"},
		{"answer without Content-Type", "GET /x?answer=sniff HTTP/1.1\r\n" + host + "\r\n"},
		{"answer with hop-by-hop headers", "GET /x?answer=hop HTTP/1.1\r\n" + host + "\r\n"},
		{"answer with trailer", "GET /x?answer=trailer HTTP/1.1\r\n" + host + "Te: trailers\r\n\r\n"},
	}

	for _, trust := range []bool{false, true} {
		config := conf
		if trust {
			config = "forwarded: {trust: true}\n" + conf
		}
		fastP, _, fastReg := newProxy(t, config, echo)
		fastURL := serve(t, fastP, proxy.ServerOptions{})
		netP, _, _ := newProxy(t, config, echo)
		netURL := serve(t, netP, proxy.ServerOptions{NetHTTPOnly: true})

		for i, tt := range cases {
			t.Run(fmt.Sprintf("trust=%v/%s", trust, tt.name), func(t *testing.T) {
				method, _, _ := strings.Cut(tt.req, " ")
				send := func(base string) (*http.Response, string, received) {
					t.Helper()
					rc := dialRaw(t, base)
					resp, body := rc.do(tt.req)
					seen := recv(t, arrivals, "the request at the backend")
					if n := len(arrivals); n > 0 {
						t.Fatalf("the backend received the request %d more times", n)
					}
					return resp, body, seen
				}
				fastResp, fastBody, fastSeen := send(fastURL)
				expectFastPath(t, fastReg, float64(i+1), nil)
				netResp, netBody, netSeen := send(netURL)

				// (a) What the backend received.
				for _, c := range []struct{ what, fast, net string }{
					{"method", fastSeen.Method, netSeen.Method},
					{"request target", fastSeen.RequestURI, netSeen.RequestURI},
					{"Host", fastSeen.Host, netSeen.Host},
					{"Content-Length", fmt.Sprint(fastSeen.ContentLength), fmt.Sprint(netSeen.ContentLength)},
					{"Transfer-Encoding", fmt.Sprint(fastSeen.TransferEncoding), fmt.Sprint(netSeen.TransferEncoding)},
					{"body", fastSeen.Body, netSeen.Body},
				} {
					if c.fast != c.net {
						t.Errorf("backend received %s %q from the fast path, %q from net/http", c.what, c.fast, c.net)
					}
				}
				if method == http.MethodGet || method == http.MethodHead {
					// net/http drops a GET's or HEAD's "Content-Length: 0"
					// (no body either way); the fast path forwards the
					// header as the client sent it.
					for _, h := range []http.Header{fastSeen.Header, netSeen.Header} {
						if slices.Equal(h["Content-Length"], []string{"0"}) {
							delete(h, "Content-Length")
						}
					}
				}
				if d := headerDiff(fastSeen.Header, netSeen.Header); d != "" {
					t.Errorf("backend received different headers (fast path, net/http):\n%s", d)
				}

				// (b) What the client got.
				if got, want := fastResp.StatusCode, netResp.StatusCode; got != want {
					t.Errorf("status %d on the fast path, %d on net/http", got, want)
				}
				if fastBody != netBody {
					t.Errorf("body %q on the fast path, %q on net/http", fastBody, netBody)
				}
				fastH, netH := endToEnd(fastResp.Header), endToEnd(netResp.Header)
				if _, sent := fastH["Content-Type"]; !sent && method != http.MethodHead {
					// The backend sent none; net/http sniffs one from the
					// body, the fast path relays the answer as it came.
					if got, want := netH.Get("Content-Type"), http.DetectContentType([]byte(netBody)); got != want {
						t.Errorf("net/http's Content-Type = %q, want the sniffed %q", got, want)
					}
					delete(netH, "Content-Type")
				}
				if d := headerDiff(fastH, netH); d != "" {
					t.Errorf("client received different headers (fast path, net/http):\n%s", d)
				}
				if d := headerDiff(fastResp.Trailer, netResp.Trailer); d != "" {
					t.Errorf("client received different trailers (fast path, net/http):\n%s", d)
				}
				if got, want := fastResp.Close, netResp.Close; got != want {
					t.Errorf("answer closes the connection: %v on the fast path, %v on net/http", got, want)
				}
			})
		}
	}
}

// endToEnd is h without Date (a clock reading) and the hop-by-hop
// headers that describe one connection.
func endToEnd(h http.Header) http.Header {
	h = h.Clone()
	for _, k := range []string{"Date", "Connection", "Keep-Alive"} {
		delete(h, k)
	}
	return h
}

// headerDiff lists the headers whose values differ between a and b, one
// line each; "" when they are equal.
func headerDiff(a, b http.Header) string {
	var out strings.Builder
	keys := slices.Sorted(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		if !slices.Equal(a[k], b[k]) {
			fmt.Fprintf(&out, "  %s: %q, %q\n", k, a[k], b[k])
		}
	}
	return out.String()
}

// TestServer_KeepAlive checks that one client connection carries many
// requests, forwarded on one kept-alive backend connection.
func TestServer_KeepAlive(t *testing.T) {
	t.Parallel()
	api, conns := countingBackend(t, "api", pathEcho)
	p, _, reg := newProxy(t, oneRoute("api"), api)
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{}))
	const n = 100
	for i := range n {
		resp, body := rc.do(fmt.Sprintf("GET /items/%d HTTP/1.1\r\nHost: shop\r\n\r\n", i))
		if got, want := body, fmt.Sprintf("GET /items/%d ", i); resp.StatusCode != http.StatusOK || got != want {
			t.Fatalf("request %d: status %d, body %q; want 200, %q", i, resp.StatusCode, got, want)
		}
	}
	expectFastPath(t, reg, n, nil)
	// The fast path forwards a connection's requests one after the other
	// and puts the backend connection back before reading the next one;
	// http.Transport may dial again while a connection is being put back.
	want := int64(1)
	if !fastPathOn() {
		want = 10
	}
	if got := conns.Load(); got > want {
		t.Errorf("%d requests in a row used %d backend connections, want at most %d", n, got, want)
	}
}

// TestServer_Pipelining checks that requests sent back to back, before any
// answer, are answered in order, bodies kept apart; the last one, handed
// to net/http with the bytes already read, too.
func TestServer_Pipelining(t *testing.T) {
	t.Parallel()
	api := newBackend(t, "api", pathEcho)
	p, _, reg := newProxy(t, oneRoute("api"), api)
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{}))
	rc.send("GET /first HTTP/1.1\r\nHost: shop\r\n\r\n" +
		withBody("POST /second HTTP/1.1\r\nHost: shop\r\n", "GET /smuggled HTTP/1.1\r\nHost: shop\r\n\r\n") +
		"GET /third HTTP/1.1\r\nHost: shop\r\n\r\n" +
		"POST /fourth HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nlast\r\n0\r\n\r\n")
	for _, want := range []struct{ method, body string }{
		{"GET", "GET /first "},
		{"POST", "POST /second GET /smuggled HTTP/1.1\r\nHost: shop\r\n\r\n"},
		{"GET", "GET /third "},
		{"POST", "POST /fourth last"},
	} {
		resp, body := rc.read(want.method)
		if resp.StatusCode != http.StatusOK || body != want.body {
			t.Errorf("answer: status %d, body %q; want 200, %q", resp.StatusCode, body, want.body)
		}
	}
	if got, want := api.hits.Load(), int64(4); got != want {
		t.Errorf("backend received %d requests, want %d", got, want)
	}
	expectFastPath(t, reg, 3, map[string]float64{"chunked-body": 1})
}

// TestServer_Handoff checks requests the fast path does not take, sent on
// a connection it has already served: net/http answers them (and the
// requests after them) correctly, and the handoff is counted by reason.
func TestServer_Handoff(t *testing.T) {
	t.Parallel()
	api := newBackend(t, "api", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "websocket" {
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			if brw.Flush() != nil {
				return
			}
			buf := make([]byte, 64)
			n, _ := brw.Read(buf)
			conn.Write(bytes.ToUpper(buf[:n]))
			return
		}
		pathEcho(w, r)
		fmt.Fprintf(w, " X-Huge:%d", len(r.Header.Get("X-Huge")))
	})
	// Every path the subtests use has a route, but /nowhere.
	var conf strings.Builder
	conf.WriteString("backends:\n  api: {url: \"${api}\"}\nroutes:\n")
	for _, prefix := range []string{"before", "after", "upload", "big", "chat"} {
		fmt.Fprintf(&conf, "  - name: %[1]s\n    match: {path_prefix: /%[1]s}\n    split: {api: 100}\n", prefix)
	}
	const host = "Host: shop\r\n"
	huge := strings.Repeat("h", 9000)
	tests := []struct {
		name, reason string
		// exchange sends the request on rc and checks its answer.
		exchange func(t *testing.T, rc *rawClient)
		after    bool // the connection carries another request after it
	}{
		{"Expect: 100-continue", "expect", func(t *testing.T, rc *rawClient) {
			rc.send("POST /upload HTTP/1.1\r\n" + host + "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n")
			resp := rc.head("POST")
			if got, want := resp.StatusCode, http.StatusContinue; got != want {
				t.Fatalf("status = %d, want %d before the body is sent", got, want)
			}
			rc.send("hello")
			for resp.StatusCode == http.StatusContinue {
				resp = rc.head("POST")
			}
			body, _ := io.ReadAll(resp.Body)
			expect200(t, resp, string(body), "POST /upload hello X-Huge:0")
		}, true},
		{"chunked request body", "chunked-body", func(t *testing.T, rc *rawClient) {
			resp, body := rc.do("POST /upload HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
			expect200(t, resp, body, "POST /upload hello world X-Huge:0")
			// A chunked request ends its connection
			// (TestServer_ChunkedRequestEndsItsConnection).
			if !resp.Close {
				t.Error("the answer to a chunked request keeps the connection; want Connection: close")
			}
		}, false},
		{"head larger than 8 KiB", "head-too-large", func(t *testing.T, rc *rawClient) {
			resp, body := rc.do("GET /big HTTP/1.1\r\n" + host + "X-Huge: " + huge + "\r\n\r\n")
			expect200(t, resp, body, "GET /big  X-Huge:9000")
		}, true},
		{"no route", "no-route", func(t *testing.T, rc *rawClient) {
			resp, body := rc.do("GET /nowhere HTTP/1.1\r\n" + host + "\r\n")
			if got, want := strings.TrimSpace(body), "banyan: no route matches GET /nowhere"; resp.StatusCode != http.StatusNotFound || got != want {
				t.Errorf("status %d, body %q; want 404, %q", resp.StatusCode, got, want)
			}
		}, true},
		{"WebSocket upgrade", "upgrade", func(t *testing.T, rc *rawClient) {
			rc.send("GET /chat HTTP/1.1\r\n" + host + "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
			resp := rc.head("GET")
			if got, want := resp.StatusCode, http.StatusSwitchingProtocols; got != want {
				t.Fatalf("status = %d, want %d", got, want)
			}
			rc.send("hello")
			buf := make([]byte, 5)
			if _, err := io.ReadFull(rc.br, buf); err != nil {
				t.Fatalf("read over the upgraded connection: %v", err)
			}
			if got, want := string(buf), "HELLO"; got != want {
				t.Errorf("echo = %q, want %q", got, want)
			}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, _, reg := newProxy(t, conf.String(), api)
			rc := dialRaw(t, serve(t, p, proxy.ServerOptions{}))
			if resp, body := rc.do("GET /before HTTP/1.1\r\n" + host + "\r\n"); resp.StatusCode != http.StatusOK || body != "GET /before  X-Huge:0" {
				t.Fatalf("first request: status %d, body %q", resp.StatusCode, body)
			}
			tt.exchange(t, rc)
			if tt.after {
				if resp, body := rc.do("GET /after HTTP/1.1\r\n" + host + "\r\n"); resp.StatusCode != http.StatusOK || body != "GET /after  X-Huge:0" {
					t.Errorf("request after the handoff: status %d, body %q", resp.StatusCode, body)
				}
			}
			expectFastPath(t, reg, 1, map[string]float64{tt.reason: 1})
		})
	}
}

// TestServer_Malformed checks that a request net/http rejects gets the
// same answer whichever path reads it, and never reaches the backend.
func TestServer_Malformed(t *testing.T) {
	t.Parallel()
	api := newBackend(t, "api", pathEcho)
	fastP, _, _ := newProxy(t, oneRoute("api"), api)
	fastURL := serve(t, fastP, proxy.ServerOptions{})
	netP, _, _ := newProxy(t, oneRoute("api"), api)
	netURL := serve(t, netP, proxy.ServerOptions{NetHTTPOnly: true})
	tests := []struct {
		name, req string
		status    int // what net/http answers, and so banyan
	}{
		{"two Content-Lengths", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
		{"negative Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
		{"NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"bad Host", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
		{"HTTP/2.0 request line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
		{"unknown Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := api.hits.Load()
			var answers [2]string
			for i, base := range []string{fastURL, netURL} {
				resp, body := dialRaw(t, base).do(tt.req)
				answers[i] = fmt.Sprintf("%d %q", resp.StatusCode, body)
				if got, want := resp.StatusCode, tt.status; got != want {
					t.Errorf("%s: status %d (%q), want %d", base, got, body, want)
				}
			}
			if answers[0] != answers[1] {
				t.Errorf("fast-path server: %s\nnet/http server:  %s", answers[0], answers[1])
			}
			if got := api.hits.Load() - before; got != 0 {
				t.Errorf("the backend received %d malformed requests", got)
			}
		})
	}
}

// TestServer_LenientHeads checks requests that are not plain HTTP/1.1 but
// that net/http answers: the fast-path server must answer them too, the
// same way, rather than leave the client waiting.
func TestServer_LenientHeads(t *testing.T) {
	t.Parallel()
	api := newBackend(t, "api", pathEcho)
	fastP, _, _ := newProxy(t, oneRoute("api"), api)
	fastURL := serve(t, fastP, proxy.ServerOptions{})
	netP, _, _ := newProxy(t, oneRoute("api"), api)
	netURL := serve(t, netP, proxy.ServerOptions{NetHTTPOnly: true})
	tests := []struct{ name, req string }{
		{"HTTP/1.0", "GET /old HTTP/1.0\r\nHost: a\r\n\r\n"},
		{"obs-fold", "GET /fold HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n"},
		{"semicolon in query", "GET /q?a=1;b=2 HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"absolute-form", "GET http://a/abs HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"bare LF after the request line", "GET /lf HTTP/1.1\nHost: a\r\n\r\n"},
		{"bare LF line ends", "GET /lf HTTP/1.1\nHost: a\n\n"},
		{"bare LF ends the head", "GET /lf HTTP/1.1\r\nHost: a\r\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var answers [2]string
			for i, base := range []string{fastURL, netURL} {
				rc := dialRaw(t, base)
				// 2s: net/http answers at once; more is a client left waiting.
				_ = rc.c.SetDeadline(time.Now().Add(2 * time.Second))
				rc.send(tt.req)
				resp, err := http.ReadResponse(rc.br, &http.Request{Method: "GET"})
				if err != nil {
					answers[i] = fmt.Sprintf("no answer (%v)", err)
					continue
				}
				body, err := io.ReadAll(resp.Body)
				answers[i] = fmt.Sprintf("%d %q %v", resp.StatusCode, body, err)
			}
			if answers[0] != answers[1] {
				t.Errorf("fast-path server: %s\nnet/http server:  %s", answers[0], answers[1])
			}
		})
	}
}

// TestServer_OddBackendAnswers checks answers that are valid HTTP/1.1
// without being tidy, or that are broken: the client gets the same from
// both paths (the answer, or the same 502).
func TestServer_OddBackendAnswers(t *testing.T) {
	t.Parallel()
	answers := map[string]string{
		"/no-reason":      "HTTP/1.1 200\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
		"/bare-lf":        "HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 2\n\nok",
		"/obs-fold":       "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
		"/same-lengths":   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
		"/two-lengths":    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
		"/chunk-ext":      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\nA;name=value\r\n0123456789\r\n0\r\n\r\n",
		"/te-and-length":  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"/gzip-chunked":   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"/http10":         "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nsaid in 1.0",
		"/space-in-name":  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A : 1\r\nContent-Length: 2\r\n\r\nok",
		"/not-http":       "SSH-2.0-OpenSSH_9.6\r\n",
		"/status-101":     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"/closes-quietly": "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
	}
	b := cannedBackend(t, answers, false)
	fastP, _, fastReg := newProxy(t, oneRoute("raw"), b)
	fastURL := serve(t, fastP, proxy.ServerOptions{})
	netP, _, _ := newProxy(t, oneRoute("raw"), b)
	netURL := serve(t, netP, proxy.ServerOptions{NetHTTPOnly: true})
	for _, path := range slices.Sorted(maps.Keys(answers)) {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			var got [2]string
			for i, base := range []string{fastURL, netURL} {
				rc := dialRaw(t, base)
				rc.send("GET " + path + " HTTP/1.1\r\nHost: shop\r\n\r\n")
				resp, err := http.ReadResponse(rc.br, &http.Request{Method: "GET"})
				if err != nil {
					got[i] = fmt.Sprintf("no answer (%v)", err)
					continue
				}
				body, err := io.ReadAll(resp.Body)
				got[i] = fmt.Sprintf("%d %q (%v)\n%s", resp.StatusCode, body, err, headerDiff(endToEnd(resp.Header), nil))
			}
			if got[0] != got[1] {
				t.Errorf("fast-path server: %s\nnet/http server:  %s", got[0], got[1])
			}
		})
	}
	expectFastPath(t, fastReg, float64(len(answers)), nil)
}

// TestServer_ChunkedAnswer checks a chunked answer sent in pieces: each
// piece reaches the client before the backend sends the next, and the
// trailer arrives.
func TestServer_ChunkedAnswer(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	stop := make(chan struct{})
	feed := newBackend(t, "feed", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/events" {
			io.WriteString(w, "not a feed")
			return
		}
		w.Header().Set("Trailer", "X-Checksum")
		w.Header().Set("Content-Type", "text/plain")
		for i := 1; i <= 3; i++ {
			fmt.Fprintf(w, "piece %d\n", i)
			if http.NewResponseController(w).Flush() != nil {
				return
			}
			select {
			case <-release:
			case <-stop:
				return
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("X-Checksum", "c0ffee")
	})
	t.Cleanup(func() { close(stop) }) // before the backend is closed
	p, _, reg := newProxy(t, oneRoute("feed"), feed)
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{}))
	rc.send("GET /events HTTP/1.1\r\nHost: shop\r\nTe: trailers\r\n\r\n")
	resp := rc.head("GET")
	if got, want := resp.TransferEncoding, []string{"chunked"}; !slices.Equal(got, want) {
		t.Errorf("Transfer-Encoding = %q, want %q", got, want)
	}
	br := bufio.NewReader(resp.Body)
	for i := 1; i <= 3; i++ {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("piece %d, which the backend flushed, did not arrive: %v (read %q)", i, err, line)
		}
		if got, want := line, fmt.Sprintf("piece %d\n", i); got != want {
			t.Fatalf("piece %d = %q, want %q", i, got, want)
		}
		release <- struct{}{}
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) > 0 {
		t.Fatalf("after the last piece: %q, %v; want the end of the body", rest, err)
	}
	if got, want := resp.Trailer.Get("X-Checksum"), "c0ffee"; got != want {
		t.Errorf("trailer X-Checksum = %q, want %q", got, want)
	}
	// The connection is still in step.
	if resp, body := rc.do("GET /again HTTP/1.1\r\nHost: shop\r\n\r\n"); resp.StatusCode != http.StatusOK {
		t.Errorf("next request: status %d, body %q", resp.StatusCode, body)
	}
	expectFastPath(t, reg, 2, nil)
}

// TestServer_CloseDelimitedAnswer checks an answer without Content-Length
// or chunking, which ends when the backend closes: the client gets all of
// it, chunked (so it can tell a whole answer from a broken one), and the
// connection carries the next request.
func TestServer_CloseDelimitedAnswer(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("0123456789abcdef", 4096) // 64 KiB, written in pieces
	raw := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		if _, _, err := readReq(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
		for i := 0; i < len(body); i += 16 << 10 {
			if _, err := io.WriteString(c, body[i:i+16<<10]); err != nil {
				return
			}
		}
	})
	p, _, reg := newProxy(t, oneRoute("raw"), &backend{name: "raw", URL: raw.URL})
	base := serve(t, p, proxy.ServerOptions{})
	rc := dialRaw(t, base)
	for i := range 2 {
		resp, got := rc.do("GET /dump HTTP/1.1\r\nHost: shop\r\n\r\n")
		if resp.StatusCode != http.StatusOK || got != body {
			t.Fatalf("request %d: status %d, %d bytes of body; want 200, %d bytes", i+1, resp.StatusCode, len(got), len(body))
		}
		if got, want := resp.TransferEncoding, []string{"chunked"}; !slices.Equal(got, want) {
			t.Errorf("request %d: Transfer-Encoding = %q, want %q", i+1, got, want)
		}
		if resp.Close {
			t.Errorf("request %d: answer says Connection: close; the client connection is still in step", i+1)
		}
	}
	expectFastPath(t, reg, 2, nil)
}

// TestServer_EarlyHints checks that a 103 reaches the client, with its
// Link header, before the final answer.
func TestServer_EarlyHints(t *testing.T) {
	t.Parallel()
	api := newBackend(t, "api", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/page" {
			w.Header().Set("Link", "</app.css>; rel=preload; as=style")
			w.WriteHeader(http.StatusEarlyHints)
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "page")
	})
	p, _, reg := newProxy(t, oneRoute("api"), api)
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{}))
	rc.send("GET /page HTTP/1.1\r\nHost: shop\r\n\r\n")
	hints := rc.head("GET")
	if got, want := hints.StatusCode, http.StatusEarlyHints; got != want {
		t.Fatalf("first answer status = %d, want %d", got, want)
	}
	if got, want := hints.Header.Get("Link"), "</app.css>; rel=preload; as=style"; got != want {
		t.Errorf("103 Link = %q, want %q", got, want)
	}
	resp, body := rc.read("GET")
	if resp.StatusCode != http.StatusOK || body != "page" {
		t.Errorf("final answer: status %d, body %q; want 200, %q", resp.StatusCode, body, "page")
	}
	if resp, body := rc.do("GET /next HTTP/1.1\r\nHost: shop\r\n\r\n"); resp.StatusCode != http.StatusOK {
		t.Errorf("next request: status %d, body %q", resp.StatusCode, body)
	}
	expectFastPath(t, reg, 2, nil)
}

// TestServer_AnswersWithoutBody checks HEAD, 204 and 304: no body is
// relayed (their Content-Length describes another answer), and the
// connection carries the next request.
func TestServer_AnswersWithoutBody(t *testing.T) {
	t.Parallel()
	api := newBackend(t, "api", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/notmodified":
			w.Header().Set("ETag", `"v1"`)
			w.WriteHeader(http.StatusNotModified)
		default:
			io.WriteString(w, "hello")
		}
	})
	p, _, reg := newProxy(t, oneRoute("api"), api)
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{}))
	tests := []struct {
		req    string
		status int
		body   string
		check  func(*http.Response) string
	}{
		{"HEAD /page HTTP/1.1\r\nHost: shop\r\n\r\n", 200, "", func(r *http.Response) string {
			if r.ContentLength != 5 {
				return fmt.Sprintf("Content-Length %d, want 5 (the GET's)", r.ContentLength)
			}
			return ""
		}},
		{"GET /nocontent HTTP/1.1\r\nHost: shop\r\n\r\n", 204, "", nil},
		{"GET /notmodified HTTP/1.1\r\nHost: shop\r\nIf-None-Match: \"v1\"\r\n\r\n", 304, "", func(r *http.Response) string {
			if got := r.Header.Get("ETag"); got != `"v1"` {
				return fmt.Sprintf("ETag %q, want %q", got, `"v1"`)
			}
			return ""
		}},
		{"GET /page HTTP/1.1\r\nHost: shop\r\n\r\n", 200, "hello", nil},
	}
	for _, tt := range tests {
		resp, body := rc.do(tt.req)
		if resp.StatusCode != tt.status || body != tt.body {
			t.Errorf("%s: status %d, body %q; want %d, %q", firstLineOf(tt.req), resp.StatusCode, body, tt.status, tt.body)
		}
		if tt.check != nil {
			if msg := tt.check(resp); msg != "" {
				t.Errorf("%s: %s", firstLineOf(tt.req), msg)
			}
		}
	}
	// Nothing stray is left on the connection to be read as an answer.
	_ = rc.c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if b, err := rc.br.ReadByte(); err == nil {
		t.Errorf("stray byte %q after the last answer", b)
	}
	expectFastPath(t, reg, 4, nil)
}

// TestServer_StaleBackendConnection checks kept-alive backend connections
// the backend closes while idle, or as it reads a request: an idempotent
// request is sent again on a fresh connection, a POST never twice.
func TestServer_StaleBackendConnection(t *testing.T) {
	t.Parallel()
	var (
		mu       sync.Mutex
		receipts = map[string]int{}
		closed   = make(chan string, 8)
	)
	raw := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, _, err := readReq(br)
			if err != nil {
				return
			}
			key := req.Method + " " + req.URL.Path
			mu.Lock()
			receipts[key]++
			mu.Unlock()
			switch req.URL.Path {
			case "/drop": // read, then close without a word
				c.Close()
				closed <- key
				return
			case "/close-after": // answer, then close without saying so
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				c.Close()
				closed <- key
				return
			}
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
				return
			}
		}
	})
	received := func(key string) int {
		mu.Lock()
		defer mu.Unlock()
		return receipts[key]
	}
	p, _, reg := newProxy(t, oneRoute("raw"), &backend{name: "raw", URL: raw.URL})
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{}))
	expect := func(req string, status int) {
		t.Helper()
		if resp, body := rc.do(req); resp.StatusCode != status {
			t.Fatalf("%s: status %d (%q), want %d", firstLineOf(req), resp.StatusCode, body, status)
		}
	}
	const host = "Host: shop\r\n"

	// The backend closes its connection after answering; the next GET,
	// sent on it, is retried on a new one.
	expect("GET /close-after HTTP/1.1\r\n"+host+"\r\n", 200)
	recv(t, closed, "backend closing its connection")
	expect("GET /ok HTTP/1.1\r\n"+host+"\r\n", 200)
	if got, want := received("GET /ok"), 1; got != want {
		t.Errorf("backend received GET /ok %d times, want %d", got, want)
	}

	// Same, but a POST: it must not be written to the dead connection.
	expect("GET /close-after HTTP/1.1\r\n"+host+"\r\n", 200)
	recv(t, closed, "backend closing its connection")
	expect(withBody("POST /write HTTP/1.1\r\n"+host, "order"), 200)
	if got, want := received("POST /write"), 1; got != want {
		t.Errorf("backend received POST /write %d times, want %d", got, want)
	}

	// The backend reads a POST on a kept-alive connection and closes it:
	// the POST may have taken effect, so it is not sent again.
	expect(withBody("POST /drop HTTP/1.1\r\n"+host, "order"), http.StatusBadGateway)
	recv(t, closed, "backend dropping the POST")
	if got, want := received("POST /drop"), 1; got != want {
		t.Errorf("backend received POST /drop %d times, want %d", got, want)
	}
	// Nor when it has no body, which the fast path could resend as it
	// resends a GET.
	expect("GET /ok HTTP/1.1\r\n"+host+"\r\n", 200) // a kept-alive connection again
	expect("POST /drop HTTP/1.1\r\n"+host+"Content-Length: 0\r\n\r\n", http.StatusBadGateway)
	recv(t, closed, "backend dropping the POST")
	if got, want := received("POST /drop"), 2; got != want {
		t.Errorf("backend received the empty POST /drop %d times, want once", got-1)
	}

	// A GET in the same spot is sent again, once, on a new connection.
	expect("GET /ok HTTP/1.1\r\n"+host+"\r\n", 200)
	expect("GET /drop HTTP/1.1\r\n"+host+"\r\n", http.StatusBadGateway)
	if fastPathOn() {
		// http.Transport retries too, but only if its connection was
		// back in the pool in time; the fast path's always is.
		if got, want := received("GET /drop"), 2; got != want {
			t.Errorf("backend received GET /drop %d times, want %d (sent, then retried once)", got, want)
		}
	}
	expectFastPath(t, reg, 9, nil)
}

// TestServer_BackendErrors checks that a failing backend gets the client
// the same answer from both paths, and that an answer broken off midway
// reaches the client broken, not as a clean short answer.
func TestServer_BackendErrors(t *testing.T) {
	t.Parallel()
	stop := make(chan struct{})
	slow := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(stop) })
	cut := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		req, _, err := readReq(br)
		if err != nil {
			return
		}
		if req.URL.Path == "/chunked" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
	})
	conf := fmt.Sprintf(`
backends:
  down: {url: %q}
  slow: {url: "${slow}", timeout: 200ms}
  cut:  {url: "${cut}"}
routes:
  - name: down
    match: {path_prefix: /down}
    split: {down: 100}
  - name: slow
    match: {path_prefix: /slow}
    split: {slow: 100}
  - name: cut
    match: {path_prefix: /cut}
    split: {cut: 100}
`, stoppedURL(t))
	backends := []*backend{slow, {name: "cut", URL: cut.URL}}
	fastP, _, fastReg := newProxy(t, conf, backends...)
	fastURL := serve(t, fastP, proxy.ServerOptions{})
	netP, _, _ := newProxy(t, conf, backends...)
	netURL := serve(t, netP, proxy.ServerOptions{NetHTTPOnly: true})

	for _, tt := range []struct {
		name, path string
		status     int
	}{
		{"backend down", "/down", http.StatusBadGateway},
		{"backend slower than its timeout", "/slow", http.StatusGatewayTimeout},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var answers [2]string
			for i, base := range []string{fastURL, netURL} {
				rc := dialRaw(t, base)
				resp, body := rc.do("GET " + tt.path + " HTTP/1.1\r\nHost: shop\r\n\r\n")
				if got, want := resp.StatusCode, tt.status; got != want {
					t.Errorf("%s: status %d, want %d", base, got, want)
				}
				answers[i] = fmt.Sprintf("%d %q Content-Type=%q X-Banyan-Error=%q Content-Length=%d",
					resp.StatusCode, body, resp.Header.Get("Content-Type"), resp.Header.Get("X-Banyan-Error"), resp.ContentLength)
				// The connection carries on after banyan's own answer.
				if resp, body := rc.do("GET /down/again HTTP/1.1\r\nHost: shop\r\n\r\n"); resp.StatusCode != http.StatusBadGateway {
					t.Errorf("%s: next request: status %d, body %q", base, resp.StatusCode, body)
				}
			}
			if answers[0] != answers[1] {
				t.Errorf("fast path answered %s\nnet/http answered  %s", answers[0], answers[1])
			}
		})
	}

	for _, path := range []string{"/cut", "/cut/chunked"} {
		t.Run("backend dies mid-body "+path, func(t *testing.T) {
			rc := dialRaw(t, fastURL)
			rc.send("GET " + path + " HTTP/1.1\r\nHost: shop\r\n\r\n")
			// The fast path relays the head and what came of the body, then
			// breaks the connection off; net/http may not even send the head.
			var body []byte
			resp, err := http.ReadResponse(rc.br, &http.Request{Method: "GET"})
			if err == nil {
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d, want the backend's 200 or nothing", resp.StatusCode)
				}
				body, err = io.ReadAll(resp.Body)
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
				t.Errorf("client read %q, %v; want the answer broken off (unexpected EOF)", body, err)
			}
		})
	}
	want := float64(2)
	var got float64
	waitFor(2*time.Second, func() bool {
		got = requestCounts(t, fastReg)[`route="cut" backend="cut" code="502"`]
		return got >= want
	})
	if got != want {
		t.Errorf("answers broken off counted %v times as 502, want %v", got, want)
	}
}

// TestServer_ClientConnectionClose checks that a client's Connection:
// close is honoured: the answer says so and the proxy closes.
func TestServer_ClientConnectionClose(t *testing.T) {
	t.Parallel()
	api := newBackend(t, "api", pathEcho)
	p, _, reg := newProxy(t, oneRoute("api"), api)
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{}))
	resp, body := rc.do("GET /bye HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != http.StatusOK || body != "GET /bye " {
		t.Errorf("status %d, body %q", resp.StatusCode, body)
	}
	rc.expectClosingAnswer(resp)
	expectFastPath(t, reg, 1, nil)
}

// TestServer_Shutdown checks a graceful shutdown: idle connections are
// closed at once, new ones refused, and a request in flight completes.
func TestServer_Shutdown(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}, 1), make(chan struct{})
	api := newBackend(t, "api", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, "done "+r.URL.Path)
	})
	p, _, _ := newProxy(t, oneRoute("api"), api)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := proxy.NewServer(p, proxy.ServerOptions{ReadHeaderTimeout: 5 * time.Second, NetHTTPOnly: !fastPathOn()})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	base := "http://" + ln.Addr().String()

	idle := dialRaw(t, base)
	if resp, body := idle.do("GET /quick HTTP/1.1\r\nHost: shop\r\n\r\n"); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, body %q", resp.StatusCode, body)
	}
	busy := dialRaw(t, base)
	busy.send("GET /slow HTTP/1.1\r\nHost: shop\r\n\r\n")
	recv(t, started, "the slow request at the backend")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()

	idle.expectClosed()
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("a new connection was accepted during shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	close(release)
	resp, body := busy.read("GET")
	if resp.StatusCode != http.StatusOK || body != "done /slow" {
		t.Errorf("request in flight: status %d, body %q; want 200, %q", resp.StatusCode, body, "done /slow")
	}
	busy.expectClosingAnswer(resp)
	if err := recv(t, shut, "Shutdown's return"); err != nil {
		t.Errorf("Shutdown = %v, want nil", err)
	}
	if err := recv(t, served, "Serve's return"); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve = %v, want http.ErrServerClosed", err)
	}
}

// TestServer_BodyLimit checks the edge of the fast path's body limit: a
// 64 KiB body goes on the fast path, one byte more is handed to net/http,
// and both arrive whole.
func TestServer_BodyLimit(t *testing.T) {
	t.Parallel()
	api := newBackend(t, "api", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d %x", len(b), sha256.Sum256(b))
	})
	p, _, reg := newProxy(t, oneRoute("api"), api)
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{}))
	for i, n := range []int{64 << 10, 64<<10 + 1} {
		body := bytes.Repeat([]byte{byte('a' + i)}, n)
		for j := range body {
			body[j] += byte(j % 7)
		}
		resp, got := rc.do(withBody("POST /upload HTTP/1.1\r\nHost: shop\r\n", string(body)))
		if want := fmt.Sprintf("%d %x", n, sha256.Sum256(body)); resp.StatusCode != http.StatusOK || got != want {
			t.Errorf("%d-byte body: status %d, backend got %q; want 200, %q", n, resp.StatusCode, got, want)
		}
	}
	expectFastPath(t, reg, 1, map[string]float64{"large-body": 1})
}

// TestServer_ClientGoneWhileBackendWorks checks that when a client hangs up
// while the backend is still working on its request, the proxy notices
// within a second and cancels the backend's request (its connection
// closes, so the backend's request context ends), and counts a 499.
func TestServer_ClientGoneWhileBackendWorks(t *testing.T) {
	t.Parallel()
	started, cancelled := make(chan struct{}, 1), make(chan struct{})
	api := newBackend(t, "api", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(10 * time.Second):
		}
	})
	p, _, reg := newProxy(t, oneRoute("api"), api)
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{}))
	rc.send("GET /slow HTTP/1.1\r\nHost: shop\r\n\r\n")
	recv(t, started, "the backend's receipt of the request")
	left := time.Now()
	rc.c.Close()
	select {
	case <-cancelled:
		t.Logf("backend request cancelled %v after the client left", time.Since(left).Round(time.Millisecond))
	case <-time.After(3 * time.Second):
		t.Fatal("the backend was still working 3s after the client left")
	}
	key := `route="api" backend="api" code="499"`
	if !waitFor(3*time.Second, func() bool { return requestCounts(t, reg)[key] == 1 }) {
		t.Errorf("banyan_proxy_requests_total: %v, want %s counted once", requestCounts(t, reg), key)
	}
}
