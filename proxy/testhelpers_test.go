package proxy_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banyanhq/banyan/proxy"
	"github.com/banyanhq/banyan/routes"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// backend is a real HTTP server standing in for one upstream service. Every
// answer carries its name in the X-Backend header; unless handle is set the
// body is the name too.
type backend struct {
	name string
	URL  string
	hits atomic.Int64
}

// newBackend starts a backend called name, closed when the test ends.
// handle, when not nil, writes the answer (X-Backend is already set).
func newBackend(tb testing.TB, name string, handle http.HandlerFunc) *backend {
	tb.Helper()
	b := &backend{name: name}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		w.Header().Set("X-Backend", name)
		if handle != nil {
			handle(w, r)
			return
		}
		_, _ = io.WriteString(w, name)
	}))
	tb.Cleanup(srv.Close)
	b.URL = srv.URL
	return b
}

// newTwoPartBackend starts a backend that answers "first\n", flushes, and
// sends "second\n" only once release is called (or the request ends). The
// caller registers release with t.Cleanup after whatever must close after
// it (the proxy), so nothing waits on a held answer.
func newTwoPartBackend(tb testing.TB, name string) (*backend, func()) {
	tb.Helper()
	held := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(held) }) }
	b := newBackend(tb, name, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		if err := http.NewResponseController(w).Flush(); err != nil {
			return
		}
		select {
		case <-held:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "second\n")
	})
	return b, release
}

// harness is banyan's proxy on a real socket in front of real backends,
// with its route manager, metrics registry and a client to call it.
type harness struct {
	URL    string
	mgr    *routes.Manager
	reg    *prometheus.Registry
	client *http.Client
}

// newHarness starts the proxy for config, a banyan YAML config in which
// ${name} stands for the URL of the backend called name. State lives in a
// temporary folder; everything is closed when the test ends.
func newHarness(tb testing.TB, config string, backends ...*backend) *harness {
	tb.Helper()
	p, mgr, reg := newProxy(tb, config, backends...)
	return &harness{URL: serve(tb, p, proxy.ServerOptions{}), mgr: mgr, reg: reg, client: newClient(tb)}
}

// serve runs p behind a proxy.Server, as `banyan serve` does, on a
// loopback port until the test ends, and returns its base URL. With
// BANYAN_TEST_FAST_PATH=off in the environment every test runs on
// net/http alone.
func serve(tb testing.TB, p *proxy.Proxy, opts proxy.ServerOptions) string {
	tb.Helper()
	_, url := serveWith(tb, p, opts)
	return url
}

// newRecordingBackend starts a backend called name that answers as
// pathEcho does and records "METHOD /path" of every request it serves;
// seen returns those so far.
func newRecordingBackend(tb testing.TB, name string) (b *backend, seen func() []string) {
	tb.Helper()
	var mu sync.Mutex
	var got []string
	b = newBackend(tb, name, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path)
		mu.Unlock()
		pathEcho(w, r)
	})
	return b, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

// serveFastOnly serves p with the fast path's loop, whatever
// BANYAN_TEST_FAST_PATH says (a 10 s header timeout, a minute's idle one),
// until the test ends.
func serveFastOnly(tb testing.TB, p *proxy.Proxy) (*proxy.Server, string) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := proxy.NewServer(p, proxy.ServerOptions{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	tb.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return srv, "http://" + ln.Addr().String()
}

// pauseOnce returns a test hook that, the first time it runs, closes
// reached, waits for release, then sleeps d.
func pauseOnce(reached, release chan struct{}, d time.Duration) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			close(reached)
			<-release
			time.Sleep(d)
		})
	}
}

// serveWith is serve, returning the server too.
func serveWith(tb testing.TB, p *proxy.Proxy, opts proxy.ServerOptions) (*proxy.Server, string) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	if opts.ReadHeaderTimeout == 0 {
		opts.ReadHeaderTimeout = 10 * time.Second
	}
	opts.NetHTTPOnly = opts.NetHTTPOnly || os.Getenv("BANYAN_TEST_FAST_PATH") == "off"
	srv := proxy.NewServer(p, opts)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	tb.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			tb.Errorf("proxy server: %v", err)
		}
	})
	return srv, "http://" + ln.Addr().String()
}

// newProxy builds, without serving it, the proxy newHarness starts.
func newProxy(tb testing.TB, config string, backends ...*backend) (*proxy.Proxy, *routes.Manager, *prometheus.Registry) {
	tb.Helper()
	return newProxyLogging(tb, config, slog.DiscardHandler, backends...)
}

// newProxyLogging is newProxy with the proxy's log going to h.
func newProxyLogging(tb testing.TB, config string, h slog.Handler, backends ...*backend) (*proxy.Proxy, *routes.Manager, *prometheus.Registry) {
	tb.Helper()
	urls := make(map[string]string, len(backends))
	for _, b := range backends {
		urls[b.name] = b.URL
	}
	var missing []string
	yml := os.Expand(config, func(k string) string {
		u, ok := urls[k]
		if !ok {
			missing = append(missing, k)
		}
		return u
	})
	if len(missing) > 0 {
		tb.Fatalf("config names backends that were not started: %v", missing)
	}
	cfg, err := routes.Parse([]byte(yml))
	if err != nil {
		tb.Fatalf("parse config: %v\n%s", err, yml)
	}
	store, err := routes.OpenStore(filepath.Join(tb.TempDir(), "state.db"))
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { _ = store.Close() })
	mgr, err := routes.NewManager(context.Background(), cfg, store)
	if err != nil {
		tb.Fatalf("new manager: %v", err)
	}
	reg := prometheus.NewRegistry()
	p := proxy.New(mgr.Table, proxy.NewMetrics(reg), slog.New(h))
	return p, mgr, reg
}

// newClient returns a client with banyan's tuned transport, so that many
// concurrent requests reuse connections instead of exhausting ports.
func newClient(tb testing.TB) *http.Client {
	tr := proxy.NewTransport(0)
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// try sends a request through the proxy and returns the answer with its
// whole body; a Host entry in header sets the request's Host. It does not
// stop the test, so goroutines may call it.
func (h *harness) try(method, path string, header http.Header) (*http.Response, string, error) {
	req, err := http.NewRequest(method, h.URL+path, nil)
	if err != nil {
		return nil, "", err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if host := header.Get("Host"); host != "" {
		req.Host = host
	}
	return fetch(h.client, req)
}

// get is try for the test goroutine: it stops the test on a transport error.
func (h *harness) get(tb testing.TB, path string, header http.Header) (*http.Response, string) {
	tb.Helper()
	resp, body, err := h.try(http.MethodGet, path, header)
	if err != nil {
		tb.Fatalf("GET %s: %v", path, err)
	}
	return resp, body
}

func fetch(c *http.Client, req *http.Request) (*http.Response, string, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", fmt.Errorf("%s %s: read body: %w", req.Method, req.URL.Path, err)
	}
	return resp, string(b), nil
}

// hdr builds a header from name, value pairs.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// requestCounts reads banyan_proxy_requests_total from reg as
// "route backend code" -> count, the way a scrape would see it.
func requestCounts(tb testing.TB, reg *prometheus.Registry) map[string]float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatalf("gather metrics: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "banyan_proxy_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[seriesName(m)] = m.GetCounter().GetValue()
		}
	}
	return out
}

func seriesName(m *dto.Metric) string {
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	return fmt.Sprintf("route=%q backend=%q code=%q", labels["route"], labels["backend"], labels["code"])
}

// waitFor is the package's own, shared with its internal tests.
var waitFor = proxy.WaitFor

// missingFrom returns the strings of want that s does not contain.
func missingFrom(s string, want ...string) []string {
	var out []string
	for _, w := range want {
		if !strings.Contains(s, w) {
			out = append(out, w)
		}
	}
	return out
}

// expectStreamed GETs url from a backend that writes "first\n", flushes and
// waits for release before writing "second\n": the client must read the
// first line before release, so nothing in between buffered the answer.
func expectStreamed(tb testing.TB, c *http.Client, url string, release func()) {
	tb.Helper()
	resp, err := c.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	lines := make(chan string, 1)
	go func() {
		line, _ := br.ReadString('\n')
		lines <- line
	}()
	if got, want := recv(tb, lines, "first line while the backend holds the rest"), "first\n"; got != want {
		tb.Fatalf("first line = %q, want %q", got, want)
	}
	release()
	rest, err := io.ReadAll(br)
	if err != nil {
		tb.Fatal(err)
	}
	if got, want := string(rest), "second\n"; got != want {
		tb.Errorf("rest = %q, want %q", got, want)
	}
}
