package proxy_test

// Regression tests from a review of the fast path: each failed before the
// fix named in its comment and passes on both paths now.

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/proxy"
)

// Slow client body: head at once, body after ReadHeaderTimeout.
func TestServerReview_SlowBodyPastHeaderDeadline(t *testing.T) {
	api := newBackend(t, "api", pathEcho)
	p, _, reg := newProxy(t, oneRoute("api"), api)
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: time.Minute}))
	rc.send("POST /x HTTP/1.1\r\nHost: shop\r\nContent-Length: 4\r\n\r\nab")
	time.Sleep(600 * time.Millisecond)
	rc.send("cd")
	resp, body := rc.read("POST")
	if resp.StatusCode != 200 {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
	t.Log(requestCounts(t, reg))
}

// Two POSTs 400 ms apart on one client connection should share one backend connection.
func TestServerReview_PostReuse(t *testing.T) {
	api, conns := countingBackend(t, "api", pathEcho)
	p, _, _ := newProxy(t, oneRoute("api"), api)
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{}))
	for i := 0; i < 3; i++ {
		resp, body := rc.do(withBody("POST /x HTTP/1.1\r\nHost: shop\r\n", "hi"))
		if resp.StatusCode != 200 {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		time.Sleep(400 * time.Millisecond)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("backend connections = %d, want 1", n)
	}
}

// A backend that answers HEAD with a body: the leftover bytes stay in the
// pooled connection's buffer and are read as the next answer.
func TestServerReview_LeftoverBytesInPool(t *testing.T) {
	rb := answerEach(t, func(c net.Conn, req *http.Request) {
		if req.Method == "HEAD" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
		} else {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	p, _, _ := newProxy(t, oneRoute("api"), &backend{name: "api", URL: rb.URL})
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{}))
	resp, _ := rc.do("HEAD /x HTTP/1.1\r\nHost: shop\r\n\r\n")
	t.Logf("HEAD: %d", resp.StatusCode)
	time.Sleep(50 * time.Millisecond)
	resp, body := rc.do("GET /y HTTP/1.1\r\nHost: shop\r\n\r\n")
	if resp.StatusCode != 200 || body != "ok" {
		t.Errorf("GET after HEAD: %d %q, want 200 ok", resp.StatusCode, body)
	}
}

// A 12-byte response head makes statusOf index past the end.
func TestServerReview_ShortStatusLinePanics(t *testing.T) {
	rb := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 2\n\n")
	})
	p, _, _ := newProxy(t, oneRoute("api"), &backend{name: "api", URL: rb.URL})
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{}))
	rc.send("GET /y HTTP/1.1\r\nHost: shop\r\n\r\n")
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	if resp.StatusCode != 502 {
		t.Errorf("status %d, want 502", resp.StatusCode)
	}
}

var _ = strings.NewReader

// A backend answering 204 with a stray body that looks like an answer:
// another client then gets that "answer".
func TestServerReview_CrossClientDesync(t *testing.T) {
	rb := answerEach(t, func(c net.Conn, req *http.Request) {
		if req.URL.Path == "/nocontent" {
			io.WriteString(c, "HTTP/1.1 204 No Content\r\nContent-Length: 38\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nleak")
		} else {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"+req.URL.Path)
		}
	})
	p, _, _ := newProxy(t, oneRoute("api"), &backend{name: "api", URL: rb.URL})
	base := serve(t, p, proxy.ServerOptions{})
	a := dialRaw(t, base)
	resp, _ := a.do("GET /nocontent HTTP/1.1\r\nHost: shop\r\n\r\n")
	t.Logf("A: %d", resp.StatusCode)
	time.Sleep(50 * time.Millisecond)
	b := dialRaw(t, base)
	resp, body := b.do("GET /mine HTTP/1.1\r\nHost: shop\r\n\r\n")
	if body != "/mine" {
		t.Errorf("client B got %d %q, want its own answer", resp.StatusCode, body)
	}
	c := dialRaw(t, base)
	resp, body = c.do("GET /cccc HTTP/1.1\r\nHost: shop\r\n\r\n")
	if body != "/cccc" {
		t.Errorf("client C got %d %q, want its own answer", resp.StatusCode, body)
	}
}

func deadURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

// Primary unreachable, POST with a body, dry-run shadow: net/http never
// read the body and drops the mirror (body_incomplete); what does the
// fast path send to the peer?
func TestServerReview_ShadowPostPrimaryDown(t *testing.T) {
	var nj journal
	next := newBackend(t, "new", nj.record(jsonAPI))
	legacy := &backend{name: "legacy", URL: deadURL(t)}
	h := newShadowHarness(t, shadowOrders+`
    split: {legacy: 100, new: 0}
    shadow: {percent: 100, writes: dry-run}
`, proxy.ShadowOptions{}, legacy, next)
	req, _ := http.NewRequest("POST", h.URL+"/api/orders/7", strings.NewReader(`{"qty":1}`))
	resp, body, err := fetch(h.client, req)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("customer: %d %q", resp.StatusCode, body)
	time.Sleep(500 * time.Millisecond)
	_ = h.stop(context.Background())
	for _, c := range nj.list(mirrored) {
		t.Errorf("new received a mirror: %s %s body=%q", c.Method, c.URI, c.Body)
	}
	for _, o := range h.rec.outcomes() {
		t.Logf("outcome: %s legacyErr=%q verdict=%s", o.Method, o.Legacy.Err, o.Verdict)
	}
	t.Log(series(t, h.reg, "banyan_shadow_dropped_total"))
}

// Client sends half its body and leaves: net/http drops the mirror
// (body_incomplete).
func TestServerReview_ShadowTruncatedUpload(t *testing.T) {
	h, _, nj := journaledShadow(t, `
    split: {legacy: 100, new: 0}
    shadow: {percent: 100, writes: dry-run}
`)
	rc := dialRaw(t, h.URL)
	rc.send("POST /api/orders/7 HTTP/1.1\r\nHost: shop\r\nContent-Length: 20\r\n\r\n{\"qty\":")
	time.Sleep(100 * time.Millisecond)
	rc.c.Close()
	time.Sleep(500 * time.Millisecond)
	_ = h.stop(context.Background())
	for _, c := range nj.list(mirrored) {
		t.Errorf("new received a mirror: %s %s body=%q", c.Method, c.URI, c.Body)
	}
	for _, o := range h.rec.outcomes() {
		t.Errorf("outcome recorded: %s legacy=%d err=%q verdict=%s", o.Method, o.Legacy.Status, o.Legacy.Err, o.Verdict)
	}
	t.Log(series(t, h.reg, "banyan_shadow_dropped_total"))
}

func TestServerReview_ShadowURIEncoding(t *testing.T) {
	h, lj, nj := journaledShadow(t, `
    split: {legacy: 100, new: 0}
    shadow: {percent: 100}
`)
	rc := dialRaw(t, h.URL)
	rc.do("GET /api/orders/it's(1)*! HTTP/1.1\r\nHost: shop\r\n\r\n")
	h.rec.wait(t, 1)
	time.Sleep(100 * time.Millisecond)
	_ = h.stop(context.Background())
	const want = "/api/orders/it's(1)*!"
	for _, c := range lj.list(customer) {
		if c.URI != want {
			t.Errorf("legacy got %s, want %s", c.URI, want)
		}
	}
	for _, c := range nj.list(mirrored) {
		if c.URI != want {
			t.Errorf("the mirror to new went to %s, want %s (as the customer's request)", c.URI, want)
		}
	}
	for _, o := range h.rec.outcomes() {
		if o.URL != want {
			t.Errorf("outcome URL %s, want %s", o.URL, want)
		}
	}
}

// Connection: Content-Length makes the fast path drop the Content-Length
// line but still send the body: the backend reads the body as a second
// request, and its answer is left on the pooled connection.
func TestServerReview_SmuggleViaConnectionContentLength(t *testing.T) {
	api, seen := newRecordingBackend(t, "api")
	p, _, _ := newProxy(t, oneRoute("api"), api)
	base := serve(t, p, proxy.ServerOptions{})
	attacker := dialRaw(t, base)
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: shop\r\n\r\n"
	resp, body := attacker.do(withBody("POST /a HTTP/1.1\r\nHost: shop\r\nConnection: Content-Length\r\n", smuggled))
	t.Logf("attacker: %d %q", resp.StatusCode, body)
	time.Sleep(50 * time.Millisecond)
	victim := dialRaw(t, base)
	resp, body = victim.do("GET /victim HTTP/1.1\r\nHost: shop\r\n\r\n")
	t.Logf("victim: %d %q", resp.StatusCode, body)
	t.Logf("backend saw %q", seen())
	for _, s := range seen() {
		if s == "GET /smuggled" {
			t.Errorf("backend served a smuggled request")
		}
	}
	if body != "GET /victim " {
		t.Errorf("victim got %q, want its own answer", body)
	}
}

func TestServerReview_RespConnectionContentLength(t *testing.T) {
	rb := answerEach(t, func(c net.Conn, req *http.Request) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 2\r\n\r\nok")
	})
	p, _, _ := newProxy(t, oneRoute("api"), &backend{name: "api", URL: rb.URL})
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{}))
	rc.c.SetDeadline(time.Now().Add(time.Second))
	rc.send("GET /x HTTP/1.1\r\nHost: shop\r\n\r\n")
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "ok" || resp.ContentLength != 2 {
		t.Errorf("answer: Content-Length %d, body %q, %v; want 2, \"ok\" (a Connection token must not strip the framing)", resp.ContentLength, b, err)
	}
}

// A backend slower than what is left of the client connection's read
// deadline (ReadHeaderTimeout from accept, for the first request) must
// still answer.
func TestServerReview_SlowBackendPastHeaderDeadline(t *testing.T) {
	api := newBackend(t, "api", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(900 * time.Millisecond)
		w.Write([]byte("ok"))
	})
	p, _, reg := newProxy(t, oneRoute("api"), api)
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: time.Minute}))
	resp, body := rc.do("GET /slow HTTP/1.1\r\nHost: shop\r\n\r\n")
	if resp.StatusCode != 200 || body != "ok" {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
	t.Log(requestCounts(t, reg))
}

// answerEach starts a raw backend that reads each request on a connection,
// body and all, and lets answer write whatever bytes it likes back.
func answerEach(tb testing.TB, answer func(c net.Conn, req *http.Request)) *rawBackend {
	tb.Helper()
	return newRawBackend(tb, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			answer(c, req)
		}
	})
}

// A connection that turns idle while Shutdown runs must still be closed by
// it. The connection's goroutine checks for shutdown and then marks itself
// idle; when Shutdown ran in between, it skipped the not-yet-idle
// connection and then waited for its context to end. The hook holds the
// goroutine in that gap until Shutdown has run past it.
func TestServerReview_ShutdownWhileTurningIdle(t *testing.T) {
	api := newBackend(t, "api", pathEcho)
	p, _, _ := newProxy(t, oneRoute("api"), api)
	srv, base := serveFastOnly(t, p)
	inGap, shutStarted := make(chan struct{}), make(chan struct{})
	// Shutdown closes the idle connections during the pause.
	proxy.SetTestHookIdle(t, pauseOnce(inGap, shutStarted, 200*time.Millisecond))
	rc := dialRaw(t, base)
	defer rc.c.Close()
	if resp, body := rc.do("GET /x HTTP/1.1\r\nHost: shop\r\n\r\n"); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, body %q", resp.StatusCode, body)
	}
	recv(t, inGap, "the connection between its shutdown check and turning idle")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	close(shutStarted)
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v after %s with one idle connection, want nil at once", err, time.Since(start).Round(time.Millisecond))
	}
}
