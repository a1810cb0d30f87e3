package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banyanhq/banyan/proxy"
	"github.com/banyanhq/banyan/routes"
)

const twoBackends = `
backends:
  legacy: {url: "${legacy}"}
  new:    {url: "${new}"}
`

// TestProxy_Split checks that, without a sticky key, traffic divides
// between the backends as the route's weights say.
func TestProxy_Split(t *testing.T) {
	t.Parallel()
	legacy, next := newBackend(t, "legacy", nil), newBackend(t, "new", nil)
	h := newHarness(t, twoBackends+`
routes:
  - name: orders
    split: {legacy: 70, new: 30}
`, legacy, next)

	const requests, workers = 10000, 8
	var (
		mu  sync.Mutex
		got = map[string]int{}
		wg  sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			local := map[string]int{}
			defer func() {
				mu.Lock()
				defer mu.Unlock()
				for k, v := range local {
					got[k] += v
				}
			}()
			for range requests / workers {
				resp, _, err := h.try(http.MethodGet, "/api/orders/7", nil)
				if err != nil {
					t.Error(err)
					return
				}
				local[resp.Header.Get("X-Backend")]++
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if got, want := got["legacy"]+got["new"], requests; got != want {
		t.Fatalf("answers from legacy or new = %d, want %d (all: %v)", got, want, got)
	}
	for name, weight := range map[string]int{"legacy": 70, "new": 30} {
		share := 100 * float64(got[name]) / requests
		if math.Abs(share-float64(weight)) > 3 {
			t.Errorf("%s got %.1f%% of %d requests, want %d%% ± 3", name, share, requests, weight)
		}
	}
	// The backends agree: each received exactly the requests answered in its name.
	for _, b := range []*backend{legacy, next} {
		if got, want := b.hits.Load(), int64(got[b.name]); got != want {
			t.Errorf("%s received %d requests, answers name it %d times", b.name, got, want)
		}
	}
}

// visit sends n requests for each of users (keyed by header(uid)) through
// the proxy and returns the backend each user landed on. A user who lands
// on two different backends fails the test.
func visit(t *testing.T, h *harness, users, n int, path string, header func(uid string) http.Header) map[string]string {
	t.Helper()
	var (
		mu   sync.Mutex
		seen = make(map[string]string, users)
		wg   sync.WaitGroup
		next = make(chan string)
	)
	for range 8 {
		wg.Go(func() {
			for uid := range next {
				first := ""
				for i := range n {
					resp, _, err := h.try(http.MethodGet, path, header(uid))
					if err != nil {
						t.Error(err)
						break
					}
					b := resp.Header.Get("X-Backend")
					if i == 0 {
						first = b
					} else if b != first {
						t.Errorf("user %s: request %d went to %s, request 1 to %s", uid, i+1, b, first)
					}
				}
				mu.Lock()
				seen[uid] = first
				mu.Unlock()
			}
		})
	}
	for i := range users {
		next <- fmt.Sprintf("user-%d", i)
	}
	close(next)
	wg.Wait()
	return seen
}

// checkShare fails the test when backend's share of seen is not weight ± tol
// percentage points, and returns how many users are on backend.
func checkShare(t *testing.T, seen map[string]string, backend string, weight, tol float64) int {
	t.Helper()
	n := 0
	for _, b := range seen {
		if b == backend {
			n++
		}
	}
	if share := 100 * float64(n) / float64(len(seen)); math.Abs(share-weight) > tol {
		t.Errorf("%s has %.1f%% of %d users, want %.0f%% ± %.0f", backend, share, len(seen), weight, tol)
	}
	return n
}

// TestProxy_Sticky checks that a user keyed by cookie or header always
// reaches the same backend, and that ramping the new backend up only ever
// moves users from legacy to new.
func TestProxy_Sticky(t *testing.T) {
	t.Parallel()
	legacy, next := newBackend(t, "legacy", nil), newBackend(t, "new", nil)
	h := newHarness(t, twoBackends+`
routes:
  - name: checkout
    match: {path_prefix: /checkout}
    split: {legacy: 80, new: 20}
    sticky: {cookie: uid}
  - name: search
    match: {path_prefix: /search}
    split: {legacy: 80, new: 20}
    sticky: {header: X-User-Id}
`, legacy, next)
	const users = 1000

	t.Run("cookie, through a ramp from 20 to 50", func(t *testing.T) {
		byCookie := func(uid string) http.Header { return hdr("Cookie", "uid="+uid) }
		before := visit(t, h, users, 3, "/checkout", byCookie)
		route := h.mgr.Table().Route("checkout")
		for uid, b := range before {
			if want := route.BackendFor(uid); b != want {
				t.Errorf("at 80/20 user %s went to %s, its bucket belongs to %s", uid, b, want)
			}
		}
		onNew := checkShare(t, before, "new", 20, 5)

		if _, err := h.mgr.SetSplit(context.Background(), "checkout", routes.Split{"legacy": 50, "new": 50}, "test", "ramp"); err != nil {
			t.Fatalf("SetSplit: %v", err)
		}
		after := visit(t, h, users, 3, "/checkout", byCookie)
		route = h.mgr.Table().Route("checkout")
		for uid, b := range after {
			if want := route.BackendFor(uid); b != want {
				t.Errorf("at 50/50 user %s went to %s, its bucket belongs to %s", uid, b, want)
			}
			if before[uid] == "new" && b != "new" {
				t.Errorf("user %s was on new at 20%% and went back to %s at 50%%", uid, b)
			}
		}
		if got := checkShare(t, after, "new", 50, 5); got <= onNew {
			t.Errorf("users on new: %d at 20%%, %d at 50%%; the ramp moved nobody", onNew, got)
		}
	})

	t.Run("header", func(t *testing.T) {
		byHeader := func(uid string) http.Header { return hdr("X-User-Id", uid) }
		seen := visit(t, h, 300, 3, "/search", byHeader)
		route := h.mgr.Table().Route("search")
		for uid, b := range seen {
			if want := route.BackendFor(uid); b != want {
				t.Errorf("user %s went to %s, its bucket belongs to %s", uid, b, want)
			}
		}
		checkShare(t, seen, "new", 20, 8)
	})
}

// TestProxy_Override checks the header that lets a tester force a backend.
func TestProxy_Override(t *testing.T) {
	t.Parallel()
	legacy, next, other := newBackend(t, "legacy", nil), newBackend(t, "new", nil), newBackend(t, "other", nil)
	const routesYAML = `
  other: {url: "${other}"}
routes:
  - name: reports
    match: {path_prefix: /reports}
    split: {other: 100}
  - name: orders
    split: {legacy: 100, new: 0}
`
	// backendsOf sends 20 requests to /orders with header and returns the
	// distinct backends that answered.
	backendsOf := func(t *testing.T, h *harness, header http.Header) []string {
		t.Helper()
		seen := map[string]bool{}
		for range 20 {
			resp, _ := h.get(t, "/orders", header)
			seen[resp.Header.Get("X-Backend")] = true
		}
		return slices.Sorted(maps.Keys(seen))
	}

	h := newHarness(t, twoBackends+routesYAML, legacy, next, other)
	tests := []struct {
		name, value string
		want        []string
	}{
		{"reaches a backend at weight 0", "new", []string{"new"}},
		{"names the backend the split picks anyway", "legacy", []string{"legacy"}},
		{"backend of another route is ignored", "other", []string{"legacy"}},
		{"unknown backend is ignored", "nope", []string{"legacy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := backendsOf(t, h, hdr("X-Banyan-Backend", tt.value)), tt.want; !slices.Equal(got, want) {
				t.Errorf("X-Banyan-Backend: %s reached %v, want %v", tt.value, got, want)
			}
		})
	}

	t.Run("disabled", func(t *testing.T) {
		h := newHarness(t, "override: {disabled: true}\n"+twoBackends+routesYAML, legacy, next, other)
		if got, want := backendsOf(t, h, hdr("X-Banyan-Backend", "new")), []string{"legacy"}; !slices.Equal(got, want) {
			t.Errorf("with override disabled X-Banyan-Backend: new reached %v, want %v", got, want)
		}
	})

	t.Run("renamed header", func(t *testing.T) {
		h := newHarness(t, "override: {header: X-Test-Backend}\n"+twoBackends+routesYAML, legacy, next, other)
		if got, want := backendsOf(t, h, hdr("X-Test-Backend", "new")), []string{"new"}; !slices.Equal(got, want) {
			t.Errorf("X-Test-Backend: new reached %v, want %v", got, want)
		}
		if got, want := backendsOf(t, h, hdr("X-Banyan-Backend", "new")), []string{"legacy"}; !slices.Equal(got, want) {
			t.Errorf("default header X-Banyan-Backend: new reached %v once renamed, want %v", got, want)
		}
	})
}

// TestProxy_Match checks which route, and so which backend, each request
// reaches: routes are tried in order and the first that matches wins.
func TestProxy_Match(t *testing.T) {
	t.Parallel()
	names := []string{"export", "order", "beta", "orders", "fallback"}
	var bs []*backend
	var conf strings.Builder
	conf.WriteString("backends:\n")
	for _, n := range names {
		bs = append(bs, newBackend(t, n, nil))
		fmt.Fprintf(&conf, "  %s: {url: \"${%s}\"}\n", n, n)
	}
	const matched = `
routes:
  - name: export
    match: {path: /api/orders/export}
    split: {export: 100}
  - name: order
    match: {path_template: "/api/orders/{id}", methods: [GET, HEAD]}
    split: {order: 100}
  - name: beta
    match: {path_prefix: /api, headers: {X-Beta: "on"}}
    split: {beta: 100}
  - name: orders
    match: {path_prefix: /api/orders/}
    split: {orders: 100}
`
	h := newHarness(t, conf.String()+matched+`
  - name: fallback
    split: {fallback: 100}
`, bs...)

	tests := []struct {
		method, path string
		header       http.Header
		want         string
	}{
		{"GET", "/api/orders/export", nil, "export"},
		{"POST", "/api/orders/export", nil, "export"}, // no methods: any method
		{"GET", "/api/orders/export/", nil, "orders"}, // exact means exact
		{"GET", "/api/orders/7", nil, "order"},
		{"GET", "/api/orders/7", hdr("X-Beta", "on"), "order"}, // first match wins
		{"DELETE", "/api/orders/7", nil, "orders"},             // method not listed
		{"GET", "/api/orders/7/items", nil, "orders"},          // template is whole path
		{"GET", "/api/orders", nil, "orders"},                  // prefix without its slash
		{"GET", "/api/orders", hdr("X-Beta", "on"), "beta"},
		{"GET", "/api/users", hdr("X-Beta", "off"), "fallback"},
		{"GET", "/api/ordersX", nil, "fallback"}, // prefix matches whole segments
		{"GET", "/", nil, "fallback"},
	}
	for _, tt := range tests {
		name := tt.method + " " + tt.path
		if v := tt.header.Get("X-Beta"); v != "" {
			name += " X-Beta:" + v
		}
		t.Run(name, func(t *testing.T) {
			resp, body, err := h.try(tt.method, tt.path, tt.header)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := resp.Header.Get("X-Backend"), tt.want; got != want {
				t.Errorf("reached %q (status %d, %q), want %q", got, resp.StatusCode, body, want)
			}
		})
	}

	t.Run("no route matches", func(t *testing.T) {
		h := newHarness(t, conf.String()+matched, bs...)
		resp, body := h.get(t, "/nowhere", nil)
		if got, want := resp.StatusCode, http.StatusNotFound; got != want {
			t.Errorf("status = %d, want %d", got, want)
		}
		if got, want := strings.TrimSpace(body), "banyan: no route matches GET /nowhere"; got != want {
			t.Errorf("body = %q, want %q", got, want)
		}
		if got := resp.Header.Get("X-Backend"); got != "" {
			t.Errorf("backend %s answered an unrouted request", got)
		}
	})
}

// echoed is what the echo backend saw of a request.
type echoed struct {
	Host   string      `json:"host"`
	Header http.Header `json:"header"`
}

func echo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(echoed{Host: r.Host, Header: r.Header})
}

// seenBy sends a GET for path with header and returns what the backend saw.
func seenBy(t *testing.T, h *harness, path string, header http.Header) echoed {
	t.Helper()
	resp, body := h.get(t, path, header)
	var e echoed
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", path, resp.StatusCode, body)
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
	return e
}

// TestProxy_Forwarding checks the request the backend receives.
func TestProxy_Forwarding(t *testing.T) {
	t.Parallel()
	preserve := newBackend(t, "preserve", echo)
	byBackend := newBackend(t, "bybackend", echo)
	literal := newBackend(t, "literal", echo)
	const conf = `
backends:
  preserve:  {url: "${preserve}"}
  bybackend: {url: "${bybackend}", host: backend}
  literal:   {url: "${literal}", host: api.internal}
routes:
  - name: backend-host
    match: {path_prefix: /backend-host}
    split: {bybackend: 100}
  - name: literal-host
    match: {path_prefix: /literal-host}
    split: {literal: 100}
  - name: default
    split: {preserve: 100}
`
	h := newHarness(t, conf, preserve, byBackend, literal)
	spoofed := hdr("Host", "shop.example.com",
		"X-Forwarded-For", "203.0.113.9",
		"X-Forwarded-For", "198.51.100.7",
		"X-Forwarded-Host", "evil.example",
		"X-Forwarded-Proto", "https")

	t.Run("X-Forwarded-* set, client's dropped", func(t *testing.T) {
		e := seenBy(t, h, "/", spoofed)
		if got, want := strings.Join(e.Header.Values("X-Forwarded-For"), ", "), "127.0.0.1"; got != want {
			t.Errorf("X-Forwarded-For = %q, want %q (the client's address only)", got, want)
		}
		if got, want := strings.Join(e.Header.Values("X-Forwarded-Proto"), ", "), "http"; got != want {
			t.Errorf("X-Forwarded-Proto = %q, want %q", got, want)
		}
		if got, want := strings.Join(e.Header.Values("X-Forwarded-Host"), ", "), "shop.example.com"; got != want {
			t.Errorf("X-Forwarded-Host = %q, want %q", got, want)
		}
	})

	t.Run("X-Forwarded-For kept and appended when trusted", func(t *testing.T) {
		h := newHarness(t, "forwarded: {trust: true}\n"+conf, preserve, byBackend, literal)
		e := seenBy(t, h, "/", spoofed)
		if got, want := strings.Join(e.Header.Values("X-Forwarded-For"), ", "), "203.0.113.9, 198.51.100.7, 127.0.0.1"; got != want {
			t.Errorf("X-Forwarded-For = %q, want %q", got, want)
		}
		if got, want := strings.Join(e.Header.Values("X-Forwarded-Host"), ", "), "shop.example.com"; got != want {
			t.Errorf("X-Forwarded-Host = %q, want %q (only For is trusted)", got, want)
		}
	})

	// A backend that reads headers as CGI variables (PHP's
	// $_SERVER['HTTP_X_FORWARDED_FOR'], WSGI, Rack) reads X_Forwarded_For
	// as X-Forwarded-For: a client must not get its own in that way.
	t.Run("underscore spellings of X-Forwarded-* dropped", func(t *testing.T) {
		for _, trusted := range []bool{false, true} {
			h := h
			if trusted {
				h = newHarness(t, "forwarded: {trust: true}\n"+conf, preserve, byBackend, literal)
			}
			e := seenBy(t, h, "/", hdr("Host", "shop.example.com",
				"X_Forwarded_For", "203.0.113.9",
				"x-forwarded_for", "203.0.113.10",
				"X_Forwarded_Host", "evil.example",
				"X_FORWARDED_PROTO", "https",
				"X_Request_Id", "r-1"))
			for name, v := range e.Header {
				switch http.CanonicalHeaderKey(strings.ReplaceAll(name, "_", "-")) {
				case "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
					if strings.Contains(name, "_") {
						t.Errorf("trust %v: backend received %s: %q", trusted, name, v)
					}
				}
			}
			if got, want := strings.Join(e.Header.Values("X-Forwarded-For"), ", "), "127.0.0.1"; got != want {
				t.Errorf("trust %v: X-Forwarded-For = %q, want %q", trusted, got, want)
			}
			if got := e.Header.Values("X_request_id"); len(got) != 1 || got[0] != "r-1" {
				t.Errorf("trust %v: other underscore headers must pass: X_Request_Id = %q", trusted, got)
			}
		}
	})

	t.Run("hop-by-hop headers dropped", func(t *testing.T) {
		e := seenBy(t, h, "/", hdr(
			"Connection", "X-Session-Secret",
			"Keep-Alive", "timeout=5",
			"TE", "gzip",
			"Proxy-Authorization", "Basic dXNlcjpwYXNz",
			"X-Session-Secret", "s3cret",
			"X-Request-Id", "r-1"))
		for _, name := range []string{"Connection", "Keep-Alive", "Te", "Proxy-Authorization", "X-Session-Secret"} {
			if v, ok := e.Header[name]; ok {
				t.Errorf("backend received hop-by-hop header %s: %q", name, v)
			}
		}
		if got, want := e.Header.Get("X-Request-Id"), "r-1"; got != want {
			t.Errorf("end-to-end header X-Request-Id = %q, want %q", got, want)
		}
	})

	t.Run("Host", func(t *testing.T) {
		u, err := url.Parse(byBackend.URL)
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct{ path, want string }{
			{"/", "shop.example.com"},
			{"/backend-host", u.Host},
			{"/literal-host", "api.internal"},
		}
		for _, tt := range tests {
			if got, want := seenBy(t, h, tt.path, hdr("Host", "shop.example.com")).Host, tt.want; got != want {
				t.Errorf("GET %s: backend saw Host %q, want %q", tt.path, got, want)
			}
		}
	})
}

// recv waits up to 5 s for a value from c.
func recv[T any](t testing.TB, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s within 5s", what)
		panic("unreachable")
	}
}

// TestProxy_Streaming checks that neither the request body nor the
// response is buffered whole: each part reaches the other side while the
// rest is still to come.
func TestProxy_Streaming(t *testing.T) {
	t.Parallel()

	t.Run("request body", func(t *testing.T) {
		chunks := make(chan string, 16)
		up := newBackend(t, "upload", func(w http.ResponseWriter, r *http.Request) {
			buf := make([]byte, 64)
			total := 0
			for {
				n, err := r.Body.Read(buf)
				if n > 0 {
					total += n
					chunks <- string(buf[:n])
				}
				if err != nil {
					break
				}
			}
			fmt.Fprintf(w, "received %d bytes", total)
		})
		h := newHarness(t, "backends:\n  upload: {url: \"${upload}\"}\nroutes:\n  - name: upload\n    split: {upload: 100}\n", up)

		pr, pw := io.Pipe()
		t.Cleanup(func() { pw.Close() })
		req, err := http.NewRequest(http.MethodPost, h.URL+"/upload", pr)
		if err != nil {
			t.Fatal(err)
		}
		type result struct {
			body string
			err  error
		}
		done := make(chan result, 1)
		go func() {
			_, body, err := fetch(h.client, req)
			done <- result{body, err}
		}()

		if _, err := io.WriteString(pw, "first chunk\n"); err != nil {
			t.Fatal(err)
		}
		got := ""
		for !strings.Contains(got, "\n") {
			got += recv(t, chunks, "first chunk at the backend while the body is still open")
		}
		if got, want := got, "first chunk\n"; got != want {
			t.Fatalf("backend received %q first, want %q", got, want)
		}
		if _, err := io.WriteString(pw, "second chunk\n"); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		res := recv(t, done, "answer")
		if res.err != nil {
			t.Fatal(res.err)
		}
		if got, want := res.body, "received 25 bytes"; got != want {
			t.Errorf("answer = %q, want %q", got, want)
		}
	})

	t.Run("response", func(t *testing.T) {
		feed, releaseBackend := newTwoPartBackend(t, "feed")
		t.Cleanup(releaseBackend) // before the backend is closed
		h := newHarness(t, "backends:\n  feed: {url: \"${feed}\"}\nroutes:\n  - name: feed\n    split: {feed: 100}\n", feed)

		expectStreamed(t, h.client, h.URL+"/events", releaseBackend)
	})
}

// TestProxy_Upgrade checks WebSocket passthrough: the 101 reaches the
// client and bytes then flow both ways over the upgraded connection.
func TestProxy_Upgrade(t *testing.T) {
	t.Parallel()
	ws := newBackend(t, "ws", func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Connection"), "upgrade") || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "want Connection: Upgrade, Upgrade: websocket", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Backend: ws\r\n\r\n")
		if brw.Flush() != nil {
			return
		}
		// Echo upper-cased, so the test knows the bytes went through the backend.
		buf := make([]byte, 1024)
		for {
			n, err := brw.Read(buf)
			if n > 0 {
				if _, werr := conn.Write(bytes.ToUpper(buf[:n])); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
	h := newHarness(t, "backends:\n  ws: {url: \"${ws}\"}\nroutes:\n  - name: ws\n    split: {ws: 100}\n", ws)

	u, err := url.Parse(h.URL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "GET /chat HTTP/1.1\r\nHost: shop.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read upgrade answer: %v", err)
	}
	if got, want := resp.StatusCode, http.StatusSwitchingProtocols; got != want {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("status = %d, want %d: %s", got, want, body)
	}
	if got, want := resp.Header.Get("Upgrade"), "websocket"; got != want {
		t.Errorf("Upgrade = %q, want %q", got, want)
	}
	if got, want := resp.Header.Get("X-Backend"), "ws"; got != want {
		t.Errorf("X-Backend = %q, want %q", got, want)
	}
	for _, msg := range []string{"hello", "over the same connection"} {
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(br, buf); err != nil {
			t.Fatalf("read echo of %q: %v", msg, err)
		}
		if got, want := string(buf), strings.ToUpper(msg); got != want {
			t.Errorf("echo = %q, want %q", got, want)
		}
	}
}

// TestProxy_BackendErrors checks the answers when a backend fails: quick,
// with the status a client expects and a body naming route and backend.
func TestProxy_BackendErrors(t *testing.T) {
	t.Parallel()
	canceled := make(chan struct{}, 1)
	slow := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
			io.WriteString(w, "too late")
		case <-r.Context().Done():
			canceled <- struct{}{}
		}
	})
	drops := newBackend(t, "drops", func(w http.ResponseWriter, r *http.Request) {
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	})
	tests := []struct {
		name, backend string
		status        int
		body          []string
		wait          time.Duration // the longest the answer may take
	}{
		{"backend down", "down", http.StatusBadGateway,
			[]string{`route "checkout"`, `backend "down"`, "unreachable"}, time.Second},
		{"backend slower than its timeout", "slow", http.StatusGatewayTimeout,
			[]string{`route "checkout"`, `backend "slow"`, "did not answer within its timeout of 200ms"}, 1500 * time.Millisecond},
		{"backend drops the connection", "drops", http.StatusBadGateway,
			[]string{`route "checkout"`, `backend "drops"`, "failed"}, time.Second},
	}
	stopped := stoppedURL(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, fmt.Sprintf(`
backends:
  down:  {url: %q}
  slow:  {url: "${slow}", timeout: 200ms}
  drops: {url: "${drops}"}
routes:
  - name: checkout
    split: {%s: 100}
`, stopped, tt.backend), slow, drops)
			start := time.Now()
			resp, body := h.get(t, "/checkout", nil)
			elapsed := time.Since(start)
			if got, want := resp.StatusCode, tt.status; got != want {
				t.Errorf("status = %d, want %d (body %q)", got, want, body)
			}
			if miss := missingFrom(body, tt.body...); len(miss) > 0 {
				t.Errorf("body %q lacks %q", body, miss)
			}
			if elapsed > tt.wait {
				t.Errorf("answer took %s, want at most %s", elapsed, tt.wait)
			}
		})
	}
	t.Run("slow backend's request is canceled", func(t *testing.T) {
		// The 504 subtest ran first; the proxy must not leave the backend
		// working for nobody.
		recv(t, canceled, "cancellation of the timed-out request at the backend")
	})
}

// stoppedURL returns the URL of a server that has stopped: connecting to
// it is refused.
func stoppedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// TestProxy_Metrics checks that banyan_proxy_requests_total counts every
// request by route, backend and status code.
func TestProxy_Metrics(t *testing.T) {
	t.Parallel()
	legacy, next := newBackend(t, "legacy", nil), newBackend(t, "new", nil)
	broken := newBackend(t, "broken", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	})
	// cut promises 1,000 bytes, sends 10 and breaks off.
	cut := newBackend(t, "cut", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "0123456789")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	h := newHarness(t, twoBackends+`
  broken: {url: "${broken}"}
  cut: {url: "${cut}"}
routes:
  - name: orders
    match: {path_prefix: /orders}
    split: {legacy: 100, new: 0}
  - name: flaky
    match: {path_prefix: /flaky}
    split: {broken: 100}
  - name: cut
    match: {path_prefix: /cut}
    split: {cut: 100}
`, legacy, next, broken, cut)

	send := func(n int, path string, header http.Header, wantStatus int) {
		t.Helper()
		for range n {
			if resp, body := h.get(t, path, header); resp.StatusCode != wantStatus {
				t.Fatalf("GET %s: status %d (%q), want %d", path, resp.StatusCode, body, wantStatus)
			}
		}
	}
	send(13, "/orders/1", nil, http.StatusOK)
	send(7, "/orders/2", hdr("X-Banyan-Backend", "new"), http.StatusOK)
	send(4, "/flaky", nil, http.StatusServiceUnavailable)
	send(3, "/nowhere", nil, http.StatusNotFound)
	for range 2 {
		// The client sees a truncated body; banyan counts it as a failure.
		if _, _, err := h.try(http.MethodGet, "/cut", nil); err == nil {
			t.Fatal("GET /cut: a body cut short was read without error")
		}
	}

	want := map[string]float64{
		`route="orders" backend="legacy" code="200"`: 13,
		`route="orders" backend="new" code="200"`:    7,
		`route="flaky" backend="broken" code="503"`:  4,
		`route="" backend="" code="404"`:             3,
	}
	var got map[string]float64
	waitFor(2*time.Second, func() bool {
		got = requestCounts(t, h.reg)
		sum := 0.0
		for _, v := range got {
			sum += v
		}
		return sum >= 29
	})
	// The client may retry a GET whose body broke off, so at least 2.
	if n := got[`route="cut" backend="cut" code="502"`]; n < 2 {
		t.Errorf("aborted responses counted %v times as 502, want at least 2", n)
	}
	delete(got, `route="cut" backend="cut" code="502"`)
	if !maps.Equal(got, want) {
		t.Errorf("banyan_proxy_requests_total:\n got %v\nwant %v", got, want)
	}
}

const benchJSON = `{"id":7,"status":"shipped","total_cents":12999,"currency":"EUR","items":3,"customer":"c-1042"}`

func jsonAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, benchJSON)
}

// BenchmarkProxy_Get measures a GET through banyan on real sockets, on
// the fast path and on net/http alone; compare with BenchmarkDirect_Get,
// the same client straight to the backend. Allocations count the whole
// process: client, proxy and backend.
func BenchmarkProxy_Get(b *testing.B) {
	onBothPaths(b, jsonAPI, `
backends:
  api: {url: "${api}"}
routes:
  - name: orders
    match: {path_template: "/api/orders/{id}", methods: [GET]}
    split: {api: 100}
    sticky: {cookie: uid}
`, func(b *testing.B, url string) { benchGet(b, newClient(b), url+"/api/orders/7") })
}

// onBothPaths runs bench against banyan in front of a backend called api
// (handled by handle) with config, once on the fast path and once on
// net/http alone; url is banyan's.
func onBothPaths(b *testing.B, handle http.HandlerFunc, config string, bench func(b *testing.B, url string)) {
	for _, mode := range []struct {
		name    string
		netHTTP bool
	}{{"fast-path", false}, {"net-http", true}} {
		b.Run(mode.name, func(b *testing.B) {
			p, _, _ := newProxy(b, config, newBackend(b, "api", handle))
			bench(b, serve(b, p, proxy.ServerOptions{NetHTTPOnly: mode.netHTTP}))
		})
	}
}

// BenchmarkDirect_Get is BenchmarkProxy_Get's baseline.
func BenchmarkDirect_Get(b *testing.B) {
	api := newBackend(b, "api", jsonAPI)
	benchGet(b, newClient(b), api.URL+"/api/orders/7")
}

// benchPostBody is what BenchmarkProxy_Post sends: 2 KiB, as an order
// form or a JSON document would be.
var benchPostBody = strings.Repeat("x", 2048)

// readThenJSON reads the request body whole, then answers as jsonAPI.
func readThenJSON(w http.ResponseWriter, r *http.Request) {
	if n, err := io.Copy(io.Discard, r.Body); err != nil || n != int64(len(benchPostBody)) {
		http.Error(w, fmt.Sprintf("read %d bytes: %v", n, err), http.StatusBadRequest)
		return
	}
	jsonAPI(w, r)
}

// BenchmarkProxy_Post measures a POST with a 2 KiB body through banyan,
// to a backend with a timeout (so the fast path sets write deadlines as
// the body goes out), on both paths; compare with BenchmarkDirect_Post.
func BenchmarkProxy_Post(b *testing.B) {
	onBothPaths(b, readThenJSON, `
backends:
  api: {url: "${api}", timeout: 5s}
routes:
  - name: orders
    split: {api: 100}
`, func(b *testing.B, url string) {
		benchRequest(b, newClient(b), http.MethodPost, url+"/api/orders", benchPostBody)
	})
}

// BenchmarkDirect_Post is BenchmarkProxy_Post's baseline.
func BenchmarkDirect_Post(b *testing.B) {
	api := newBackend(b, "api", readThenJSON)
	benchRequest(b, newClient(b), http.MethodPost, api.URL+"/api/orders", benchPostBody)
}

func benchGet(b *testing.B, c *http.Client, url string) {
	benchRequest(b, c, http.MethodGet, url, "")
}

// benchRequest sends method to url with body (none when empty) from
// parallel clients, and checks each answer is benchJSON.
func benchRequest(b *testing.B, c *http.Client, method, url, body string) {
	do := func() error {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, url, rd)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || n != int64(len(benchJSON)) {
			return fmt.Errorf("%s %s: status %d, %d bytes", method, url, resp.StatusCode, n)
		}
		return nil
	}
	if err := do(); err != nil { // warm up connections and the proxy's upstream
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := do(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
