package proxy_test

// Whatever happens after a request (the client pipelines another or
// half-closes, the idle deadline has passed, Shutdown or Close begins, the
// client reads slowly), the answer it was sent reaches it whole and in
// order. Written for a6bf12e, which held an answer's last bytes for the
// next read, and for the review that had it reverted (ADR 0006); they
// run on both paths unless they say otherwise.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banyanhq/banyan/proxy"
)

// An idle timeout so short that it has passed before the next read starts:
// the read fails at once, and the answer held for it must still go out
// before the connection closes.
func TestServer_AnswerSentWhenIdleDeadlineHasPassed(t *testing.T) {
	t.Parallel()
	api := newBackend(t, "api", pathEcho)
	p, _, _ := newProxy(t, oneRoute("api"), api)
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{IdleTimeout: time.Nanosecond}))
	resp, body := rc.do("GET /x HTTP/1.1\r\nHost: shop\r\n\r\n")
	expect200(t, resp, body, "GET /x ")
	// Then the idle timeout closes the connection.
	if n, err := rc.br.Read(make([]byte, 1)); err == nil {
		t.Errorf("read %d bytes after the answer; want the connection closed", n)
	}
}

// Answers of many sizes on one connection, to a client that reads the big
// ones slowly through a small receive buffer, so that the proxy's writes
// fill the socket: every answer arrives whole and in order.
func TestServer_AnswersWholeAndInOrderToSlowReader(t *testing.T) {
	t.Parallel()
	api := newBackend(t, "api", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Write(pattern(n, r.URL.Query().Get("seed")))
	})
	p, _, _ := newProxy(t, oneRoute("api"), api)
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{}))
	if err := rc.c.(*net.TCPConn).SetReadBuffer(32 << 10); err != nil {
		t.Fatal(err)
	}
	for i, n := range []int{0, 1, 100, 4095, 4096, 4097, 64 << 10, 1 << 20, 7, 3 << 20, 10} {
		seed := strconv.Itoa(i)
		rc.send(fmt.Sprintf("GET /b?n=%d&seed=%s HTTP/1.1\r\nHost: shop\r\n\r\n", n, seed))
		if n > 32<<10 {
			time.Sleep(50 * time.Millisecond) // the proxy's writes back up meanwhile
		}
		resp, body := rc.read(http.MethodGet)
		want := pattern(n, seed)
		if resp.StatusCode != http.StatusOK || !bytes.Equal([]byte(body), want) {
			t.Fatalf("answer %d (%d bytes): status %d, %d bytes, sha256 %x; want 200, sha256 %x",
				i+1, n, resp.StatusCode, len(body), sha256.Sum256([]byte(body)), sha256.Sum256(want))
		}
	}
}

// newSlowPathBackend echoes the path, except that a request for /slow
// is announced on got and then held until release is closed.
func newSlowPathBackend(tb testing.TB) (b *backend, got, release chan struct{}) {
	got, release = make(chan struct{}, 4), make(chan struct{})
	b = newBackend(tb, "api", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			got <- struct{}{}
			<-release
		}
		pathEcho(w, r)
	})
	return b, got, release
}

// expectSlowThenSecond reads, within 3 s, the answers to GET /slow and
// GET /second, in that order.
func expectSlowThenSecond(t *testing.T, rc *rawClient) {
	t.Helper()
	_ = rc.c.SetDeadline(time.Now().Add(3 * time.Second))
	resp, body := rc.read(http.MethodGet)
	expect200(t, resp, body, "GET /slow ")
	resp, body = rc.read(http.MethodGet)
	expect200(t, resp, body, "GET /second ")
}

// pattern is n bytes that differ by seed and position.
func pattern(n int, seed string) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + (i+len(seed)*7+int(seed[len(seed)-1]))%26)
	}
	return b
}

// Shutdown in the middle of steady traffic: every request the backend
// answered reached its client whole, wherever Shutdown caught the
// connection (reading a request, waiting for the backend, sending the
// answer, or between the answer and the next read).
func TestServer_ShutdownUnderLoadLosesNoAnswer(t *testing.T) {
	t.Parallel()
	for round := range 5 {
		api := newBackend(t, "api", pathEcho)
		p, _, _ := newProxy(t, oneRoute("api"), api)
		srv, base := serveWith(t, p, proxy.ServerOptions{IdleTimeout: time.Minute})
		addr := strings.TrimPrefix(base, "http://")
		var answered atomic.Int64
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.Dial("tcp", addr)
				if err != nil {
					return // the listener closed first
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				for {
					if _, err := io.WriteString(c, "GET /x HTTP/1.1\r\nHost: shop\r\n\r\n"); err != nil {
						return
					}
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						return // closed before this request was read, or its answer lost (counted below)
					}
					body, err := io.ReadAll(resp.Body)
					if err != nil || resp.StatusCode != http.StatusOK || string(body) != "GET /x " {
						t.Errorf("round %d: status %d, body %q, err %v; want 200, %q", round, resp.StatusCode, body, err, "GET /x ")
						return
					}
					answered.Add(1)
					if resp.Close {
						return
					}
				}
			}()
		}
		time.Sleep(100 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := srv.Shutdown(ctx)
		cancel()
		if err != nil {
			t.Errorf("round %d: Shutdown = %v", round, err)
		}
		wg.Wait()
		if hits, got := api.hits.Load(), answered.Load(); hits != got || got == 0 {
			t.Errorf("round %d: the backend answered %d requests, the clients got %d answers", round, hits, got)
		}
	}
}

// Shutdown that begins right after an exchange ended: the answer reaches
// the client before the connection closes. (Not parallel: the hook is the
// package's.)
func TestServer_ShutdownRightAfterAnExchange(t *testing.T) {
	api := newBackend(t, "api", pathEcho)
	p, _, _ := newProxy(t, oneRoute("api"), api)
	srv, base := serveFastOnly(t, p)
	answered, shutStarted := make(chan struct{}), make(chan struct{})
	// Shutdown sets closing during the pause.
	proxy.SetTestHookAnswered(t, pauseOnce(answered, shutStarted, 100*time.Millisecond))
	rc := dialRaw(t, base)
	rc.send("GET /x HTTP/1.1\r\nHost: shop\r\n\r\n")
	recv(t, answered, "the end of the exchange")
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		close(shutStarted)
		shut <- srv.Shutdown(ctx)
	}()
	resp, body := rc.read(http.MethodGet)
	expect200(t, resp, body, "GET /x ")
	if err := recv(t, shut, "Shutdown's return"); err != nil {
		t.Errorf("Shutdown = %v, want nil", err)
	}
}

// A client that pipelines its second request while the backend still works
// on the first: the second is on the socket, not yet in the proxy's buffer,
// when the first answer is done. Both are answered. (With a6bf12e the
// second waited out the idle timeout: its arrival was known only to the
// poller, whose readiness the next read cleared.)
func TestServer_PipelinedWhileBackendWorks(t *testing.T) {
	t.Parallel()
	api, got, release := newSlowPathBackend(t)
	p, _, _ := newProxy(t, oneRoute("api"), api)
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{IdleTimeout: time.Minute}))
	rc.send("GET /slow HTTP/1.1\r\nHost: shop\r\n\r\n")
	recv(t, got, "the first request at the backend")
	rc.send("GET /second HTTP/1.1\r\nHost: shop\r\n\r\n")
	time.Sleep(50 * time.Millisecond) // the poller sees the second request arrive
	close(release)
	expectSlowThenSecond(t, rc)
}

// A client that half-closes after its request: it gets its answer and then
// the proxy closes, without waiting out the idle timeout. Fast path only:
// net/http drops the answer to a half-closed client.
func TestServer_HalfCloseAfterRequest(t *testing.T) {
	t.Parallel()
	got, release := make(chan struct{}, 4), make(chan struct{})
	api := newBackend(t, "api", func(w http.ResponseWriter, r *http.Request) {
		got <- struct{}{}
		<-release
		pathEcho(w, r)
	})
	p, _, _ := newProxy(t, oneRoute("api"), api)
	_, base := serveFastOnly(t, p)
	rc := dialRaw(t, base)
	rc.send("GET /x HTTP/1.1\r\nHost: shop\r\n\r\n")
	recv(t, got, "the request at the backend")
	if err := rc.c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	_ = rc.c.SetDeadline(time.Now().Add(3 * time.Second))
	resp, body := rc.read(http.MethodGet)
	expect200(t, resp, body, "GET /x ")
	rc.expectClosed()
}

// Close right after an exchange ended (the backend answered, the answer
// is counted): its bytes are already in the kernel and still reach the
// client. (With a6bf12e's held bytes they were dropped.) Not parallel: the
// hook is the package's.
func TestServer_CloseRightAfterAnExchange(t *testing.T) {
	api := newBackend(t, "api", pathEcho)
	p, _, _ := newProxy(t, oneRoute("api"), api)
	srv, base := serveFastOnly(t, p)
	answered, release := make(chan struct{}), make(chan struct{})
	proxy.SetTestHookAnswered(t, pauseOnce(answered, release, 0))
	rc := dialRaw(t, base)
	rc.send("GET /x HTTP/1.1\r\nHost: shop\r\n\r\n")
	recv(t, answered, "the end of the exchange")
	srv.Close()
	close(release)
	_ = rc.c.SetDeadline(time.Now().Add(3 * time.Second))
	resp, body := rc.read(http.MethodGet)
	expect200(t, resp, body, "GET /x ")
}

// A burst of pipelined requests larger than the fast path's 8 KiB read
// buffer, cut so that the buffer holds exactly 128 whole requests: the
// proxy answers those, and must then read on at once, since the rest
// already waits in the socket and no new arrival will announce it. All
// 200 are answered, in order, well before the idle timeout.
func TestServer_PipelinedBurstLargerThanReadBuffer(t *testing.T) {
	t.Parallel()
	api := newBackend(t, "api", pathEcho)
	p, _, _ := newProxy(t, oneRoute("api"), api)
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{IdleTimeout: time.Minute}))
	resp, body := rc.do("GET /warm HTTP/1.1\r\nHost: shop\r\n\r\n") // the proxy now waits for more
	expect200(t, resp, body, "GET /warm ")
	const n, size = 200, 64
	var burst strings.Builder
	for i := range n {
		req := fmt.Sprintf("GET /p/%04d HTTP/1.1\r\nHost: shop\r\nX-Pad: ", i)
		req += strings.Repeat("x", size-len(req)-4) + "\r\n\r\n"
		if len(req) != size {
			t.Fatalf("request %d is %d bytes; the test wants %d", i, len(req), size)
		}
		burst.WriteString(req)
	}
	rc.send(burst.String())
	for i := range n {
		resp, body := rc.read(http.MethodGet)
		if want := fmt.Sprintf("GET /p/%04d ", i); resp.StatusCode != http.StatusOK || body != want {
			t.Fatalf("answer %d: status %d, body %q; want 200, %q", i, resp.StatusCode, body, want)
		}
	}
}

// Close while a backend works on a request: Close returns at once, the
// client sees its connection end, and the backend sees its request given
// up, all without waiting for the backend's answer. (Answering from inside
// the read that took the request holds the connection; a plain Close
// then waited for the whole exchange.)
func TestServer_CloseWhileBackendWorks(t *testing.T) {
	t.Parallel()
	srv, rc, arrived, gaveUp := serveGiveUp(t)
	rc.do("GET /warm HTTP/1.1\r\nHost: shop\r\n\r\n") // the next request comes while the proxy waits
	rc.send("GET /slow HTTP/1.1\r\nHost: shop\r\n\r\n")
	recv(t, arrived, "the request at the backend")
	start := time.Now()
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("Close still waiting after 2s")
	}
	// Under the 250 ms at which the fast path looks for a gone client: a
	// Close that waited for the exchange would return only after that.
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("Close took %v; want it at once", d)
	}
	_ = rc.c.SetDeadline(time.Now().Add(2 * time.Second))
	if b, err := rc.br.ReadByte(); err == nil || proxy.IsTimeout(err) {
		t.Errorf("client read %q, %v after Close; want its connection ended", b, err)
	}
	recv(t, gaveUp, "the backend's request given up")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close, the client's end and the backend's took %v; want well under 2s", d)
	}
}

// serveGiveUp serves, with a client connected, a backend that answers at
// once, except that it holds a request for /slow (announced on arrived)
// until its context ends (announced on gaveUp) or the test does.
func serveGiveUp(t *testing.T) (srv *proxy.Server, rc *rawClient, arrived, gaveUp chan struct{}) {
	arrived, gaveUp, release := make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{})
	t.Cleanup(func() { close(release) })
	api := newBackend(t, "api", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			return
		}
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
			gaveUp <- struct{}{}
		case <-release:
		}
	})
	p, _, _ := newProxy(t, oneRoute("api"), api)
	srv, base := serveWith(t, p, proxy.ServerOptions{IdleTimeout: time.Minute})
	return srv, dialRaw(t, base), arrived, gaveUp
}

// A request and a half-close that reach the proxy together, while it is
// busy with an earlier request, are taken by one read: the poller
// announced the end before that read, and nothing announces it after.
// The proxy still answers both and closes within its client check
// (250 ms), not at the idle timeout (a minute here). Fast path only:
// net/http drops the answers to a half-closed client. (A review found
// 584dc7c waiting out the idle timeout here.)
func TestServer_RequestAndHalfCloseTakenByOneRead(t *testing.T) {
	t.Parallel()
	api, got, release := newSlowPathBackend(t)
	p, _, _ := newProxy(t, oneRoute("api"), api)
	_, base := serveFastOnly(t, p)
	rc := dialRaw(t, base)
	rc.send("GET /slow HTTP/1.1\r\nHost: shop\r\n\r\n")
	recv(t, got, "the first request at the backend")
	rc.send("GET /second HTTP/1.1\r\nHost: shop\r\n\r\n")
	if err := rc.c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // both are in the proxy's socket
	close(release)
	expectSlowThenSecond(t, rc)
	start := time.Now()
	_ = rc.c.SetDeadline(start.Add(time.Second))
	rc.expectClosed()
	t.Logf("closed %v after the last answer", time.Since(start))
}

// Clients that send a request and half-close at once (nc -N, some health
// checkers) get their answer and a closed connection, every time.
func TestServer_RequestThenHalfCloseAtOnce(t *testing.T) {
	t.Parallel()
	api := newBackend(t, "api", pathEcho)
	p, _, _ := newProxy(t, oneRoute("api"), api)
	_, base := serveFastOnly(t, p)
	for i := range 20 {
		rc := dialRaw(t, base)
		rc.send("GET /x HTTP/1.1\r\nHost: shop\r\n\r\n")
		if err := rc.c.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		_ = rc.c.SetDeadline(time.Now().Add(time.Second))
		resp, body := rc.read(http.MethodGet)
		expect200(t, resp, body, "GET /x ")
		if b, err := rc.br.ReadByte(); err != io.EOF {
			t.Errorf("connection %d: read %q, %v after the answer; want EOF", i, b, err)
		}
	}
}

// Requests spaced around the 250 ms client check on one connection (the
// check's deadline comes while the proxy waits, and while it answers):
// every one is answered on that connection, which stays open.
func TestServer_KeepAliveAcrossClientChecks(t *testing.T) {
	t.Parallel()
	api := newBackend(t, "api", pathEcho)
	p, _, _ := newProxy(t, oneRoute("api"), api)
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{IdleTimeout: time.Minute}))
	for i, gap := range []time.Duration{0, 60, 60, 60, 60, 60, 300, 10, 240, 260, 5, 400} {
		time.Sleep(gap * time.Millisecond)
		_ = rc.c.SetDeadline(time.Now().Add(2 * time.Second))
		resp, body := rc.do(fmt.Sprintf("GET /k/%d HTTP/1.1\r\nHost: shop\r\n\r\n", i))
		expect200(t, resp, body, fmt.Sprintf("GET /k/%d ", i))
	}
}

// The deadlines of the idle timeout, the first request's header timeout
// and the fast path's look at the client (250 ms after an answer) take
// turns on one connection; none of them may close it before its idle
// timeout, and the idle timeout still closes it. (A review found 93cbbd6
// closing each of these early.)
func TestServer_KeepAliveUntilIdleTimeout(t *testing.T) {
	t.Parallel()
	api := newBackend(t, "api", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(900 * time.Millisecond)
		}
		pathEcho(w, r)
	})
	p, _, _ := newProxy(t, oneRoute("api"), api)
	cases := []struct {
		name string
		opts proxy.ServerOptions
		// each request's path and the pause before it
		reqs []string
		gaps []time.Duration
	}{
		// The look finds the client quiet; the idle end is less than a
		// second after the look's deadline, which has passed.
		{"idle timeout 1s", proxy.ServerOptions{IdleTimeout: time.Second},
			[]string{"/a", "/b"}, []time.Duration{0, 500 * time.Millisecond}},
		// The header deadline comes just before the first answer's look.
		{"header timeout just after the first answer", proxy.ServerOptions{ReadHeaderTimeout: time.Second, IdleTimeout: time.Minute},
			[]string{"/slow", "/b"}, []time.Duration{0, 400 * time.Millisecond}},
		// A request in the last 250 ms of the idle timeout: the old idle
		// deadline comes before that answer's look.
		{"request near the idle end", proxy.ServerOptions{IdleTimeout: 2 * time.Second},
			[]string{"/a", "/b", "/c"}, []time.Duration{0, 1880 * time.Millisecond, 400 * time.Millisecond}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := dialRaw(t, serve(t, p, tc.opts))
			_ = rc.c.SetDeadline(time.Now().Add(10 * time.Second))
			for i, path := range tc.reqs {
				time.Sleep(tc.gaps[i])
				resp, body := rc.do("GET " + path + " HTTP/1.1\r\nHost: shop\r\n\r\n")
				expect200(t, resp, body, "GET "+path+" ")
			}
			if idle := tc.opts.IdleTimeout; idle <= 2*time.Second {
				start := time.Now()
				_ = rc.c.SetDeadline(start.Add(idle + time.Second))
				rc.expectClosed()
				if d := time.Since(start); d < idle-time.Second/2 {
					t.Errorf("closed %v after the last answer; the idle timeout is %v", d, idle)
				}
			}
		})
	}
}

// Without an idle timeout, a connection the fast path has looked at (250
// ms after its answer) still waits for its client, and Shutdown closes it
// at once. (With the passed deadline left in place, a first form of the
// look's fix spun on it and Shutdown never returned.)
func TestServer_ShutdownAfterALookWithoutIdleTimeout(t *testing.T) {
	t.Parallel()
	api := newBackend(t, "api", pathEcho)
	p, _, _ := newProxy(t, oneRoute("api"), api)
	srv, base := serveWith(t, p, proxy.ServerOptions{})
	rc := dialRaw(t, base)
	resp, body := rc.do("GET /a HTTP/1.1\r\nHost: shop\r\n\r\n")
	expect200(t, resp, body, "GET /a ")
	time.Sleep(400 * time.Millisecond)
	resp, body = rc.do("GET /b HTTP/1.1\r\nHost: shop\r\n\r\n")
	expect200(t, resp, body, "GET /b ")
	time.Sleep(400 * time.Millisecond)
	shutdownClosing(t, srv, rc)
}

// shutdownClosing shuts srv down and wants it done within 2 s, with the
// connection of rc closed.
func shutdownClosing(t *testing.T, srv *proxy.Server, rc *rawClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	rc.expectClosed()
}

// An idle timeout under the 250 ms look: each request, sent within the
// idle timeout of the answer before, is answered on the same connection.
// The third comes after the look and sets the idle end 200 ms on from
// its answer while the second's idle deadline still stands; the fourth
// comes after that deadline. (b3fe258 closed the connection there.)
func TestServer_ShortIdleTimeoutMovesOn(t *testing.T) {
	t.Parallel()
	api := newBackend(t, "api", pathEcho)
	p, _, _ := newProxy(t, oneRoute("api"), api)
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{IdleTimeout: 200 * time.Millisecond}))
	for i, gap := range []time.Duration{0, 150, 150, 120} { // after the previous answer
		time.Sleep(gap * time.Millisecond)
		resp, body := rc.do(fmt.Sprintf("GET /s/%d HTTP/1.1\r\nHost: shop\r\n\r\n", i))
		expect200(t, resp, body, fmt.Sprintf("GET /s/%d ", i))
	}
}

// Shutdown while a kept-alive client is in the middle of its next head:
// the connection counts as idle, as on net/http, and Shutdown returns at
// once instead of waiting out the header timeout.
func TestServer_ShutdownWithPartOfTheNextHead(t *testing.T) {
	t.Parallel()
	api := newBackend(t, "api", pathEcho)
	p, _, _ := newProxy(t, oneRoute("api"), api)
	srv, base := serveWith(t, p, proxy.ServerOptions{IdleTimeout: time.Minute})
	rc := dialRaw(t, base)
	resp, body := rc.do("GET /a HTTP/1.1\r\nHost: shop\r\n\r\n")
	expect200(t, resp, body, "GET /a ")
	rc.send("GET /b HTTP/1.1\r\n")
	time.Sleep(50 * time.Millisecond)
	shutdownClosing(t, srv, rc)
}

// Close while a backend works on a request and the client has already
// pipelined its next one: the backend's request is given up within the
// client check too, though the bytes waiting in the buffer keep the fast
// path from seeing the client's end by a peek.
func TestServer_CloseWithPipelinedRequestWaiting(t *testing.T) {
	t.Parallel()
	srv, rc, arrived, gaveUp := serveGiveUp(t)
	rc.send("GET /slow HTTP/1.1\r\nHost: shop\r\n\r\nGET /next HTTP/1.1\r\nHost: shop\r\n\r\n")
	recv(t, arrived, "the request at the backend")
	srv.Close()
	select {
	case <-gaveUp:
	case <-time.After(2 * time.Second):
		t.Fatal("the backend's request not given up 2s after Close")
	}
}
