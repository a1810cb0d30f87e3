package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banyanhq/banyan/internal/uring"
	"github.com/banyanhq/banyan/proxy"
	"github.com/banyanhq/banyan/routes"
)

// namedBackend answers every request with its own name.
func namedBackend(tb testing.TB, name string) *httptest.Server {
	tb.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		io.WriteString(w, name)
	}))
	tb.Cleanup(s.Close)
	return s
}

// testEstate is two backends, a config file and a running server.
type testEstate struct {
	dir, path string
	a, b      *httptest.Server
	srv       *server
	stop      func()
}

func configYAML(a, b string, wa, wb int) string {
	return fmt.Sprintf(`listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0}
state: state.db
backends:
  a: {url: %s}
  b: {url: %s}
routes:
  - name: r
    match: {path_prefix: /}
    split: {a: %d, b: %d}
    sticky: {header: X-User}
`, a, b, wa, wb)
}

// writeAtomic replaces a file the way careful editors and config
// management do, so a reader never sees half a file.
func writeAtomic(tb testing.TB, path, data string) {
	tb.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
}

func newEstate(tb testing.TB) *testEstate {
	tb.Helper()
	e := &testEstate{dir: tb.TempDir(), a: namedBackend(tb, "a"), b: namedBackend(tb, "b")}
	e.path = filepath.Join(e.dir, "banyan.yaml")
	writeAtomic(tb, e.path, configYAML(e.a.URL, e.b.URL, 100, 0))
	e.start(tb)
	return e
}

// start runs a server on the estate's config; stop ends it (a restart is
// stop then start).
func (e *testEstate) start(tb testing.TB) {
	tb.Helper()
	e.srv, e.stop = startServer(tb, e.path, io.Discard)
}

// startServer runs banyan serve on a config file, logging to logs; stop
// (also run at cleanup) shuts it down and waits.
func startServer(tb testing.TB, path string, logs io.Writer) (*server, func()) {
	tb.Helper()
	srv, err := newServer(context.Background(), path, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		tb.Fatalf("newServer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.run(ctx) }()
	stop := sync.OnceFunc(func() { cancel(); <-done })
	tb.Cleanup(stop)
	return srv, stop
}

func (e *testEstate) cli(tb testing.TB, args ...string) (int, string, string) {
	tb.Helper()
	var out, errb bytes.Buffer
	args = append(args, "--admin", "http://"+e.srv.adminAddr())
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestServe_HistorySurvivesRestart(t *testing.T) {
	e := newEstate(t)
	code, out, stderr := e.cli(t, "routes", "set", "r", "a=80", "b=20", "--reason", "ramp step 1")
	if code != 0 {
		t.Fatalf("routes set exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "a=100 b=0 -> a=80 b=20") {
		t.Errorf("routes set output = %q", out)
	}
	e.stop()
	e.start(t)

	code, out, stderr = e.cli(t, "routes", "history", "r", "--format", "json")
	if code != 0 {
		t.Fatalf("routes history exit %d: %s", code, stderr)
	}
	var h routes.HistoryResponse
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		t.Fatalf("history JSON: %v\n%s", err, out)
	}
	if len(h.History) != 2 || h.History[0].Reason != "ramp step 1" || !h.History[0].New.Equal(routes.Split{"a": 80, "b": 20}) {
		t.Fatalf("history after restart = %+v", h.History)
	}
	code, out, _ = e.cli(t, "routes", "list")
	if code != 0 || !strings.Contains(out, "a=80 b=20") {
		t.Errorf("routes list after restart exit %d:\n%s", code, out)
	}

	code, out, stderr = e.cli(t, "routes", "rollback", "r")
	if code != 0 || !strings.Contains(out, "a=80 b=20 -> a=100 b=0") {
		t.Errorf("rollback exit %d out %q err %q", code, out, stderr)
	}
	code, out, _ = e.cli(t, "routes", "history")
	if code != 0 || !strings.Contains(out, "rollback") || !strings.Contains(out, "ramp step 1") {
		t.Errorf("history table exit %d:\n%s", code, out)
	}
}

func TestRoutesCLI_Errors(t *testing.T) {
	e := newEstate(t)
	tests := []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{"routes", "set", "r", "a=80", "b=30"}, exitFound, "sum to 110"},
		{[]string{"routes", "set", "r", "a=80", "ghost=20"}, exitFound, `unknown backend "ghost"`},
		{[]string{"routes", "set", "r", "a80"}, exitFound, "BACKEND=WEIGHT"},
		{[]string{"routes", "set", "nope", "a=100"}, exitFound, "unknown route"},
		{[]string{"routes", "rollback", "r"}, exitFound, "nothing to roll back"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, stderr := e.cli(t, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.inStderr) {
				t.Errorf("exit %d (want %d), stderr %q (want it to contain %q)", code, tt.code, stderr, tt.inStderr)
			}
		})
	}
	t.Run("admin down", func(t *testing.T) {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"routes", "list", "--admin", e.a.URL + "/nowhere"}, &out, &errb)
		if code != exitCannotRun {
			t.Errorf("exit %d, want %d", code, exitCannotRun)
		}
		code = run(context.Background(), []string{"routes", "list", "--admin", "http://127.0.0.1:1"}, &out, &errb)
		if code != exitCannotRun || !strings.Contains(errb.String(), "banyan serve") {
			t.Errorf("exit %d, stderr %q", code, errb.String())
		}
	})
}

func TestServe_AdminToken(t *testing.T) {
	t.Setenv(routes.DefaultTokenEnv, "ops:s3cret")
	e := newEstate(t)
	resp, err := http.Get("http://" + e.srv.adminAddr() + "/api/routes")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.StatusCode, http.StatusUnauthorized; got != want {
		t.Errorf("GET /api/routes without token = %d, want %d", got, want)
	}
	// The CLI sends the token from the environment.
	code, out, stderr := e.cli(t, "routes", "set", "r", "a=90", "b=10")
	if code != 0 || !strings.Contains(out, "by ops (") {
		t.Errorf("CLI with token: exit %d out %q err %q", code, out, stderr)
	}
	t.Setenv(routes.DefaultTokenEnv, "wrong")
	code, _, stderr = e.cli(t, "routes", "set", "r", "a=50", "b=50")
	if code == 0 || !strings.Contains(stderr, "401") {
		t.Errorf("CLI with wrong token: exit %d err %q", code, stderr)
	}
	if got := e.srv.mgr.Table().Route("r").Split(); got["b"] != 10 {
		t.Errorf("split after refused edit = %s", got)
	}
	// /healthz and /metrics stay open for probes and scrapers.
	for _, p := range []string{"/healthz", "/metrics"} {
		resp, err := http.Get("http://" + e.srv.adminAddr() + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d", p, resp.StatusCode)
		}
	}
}

// TestServe_DebugNeedsTheToken: the CPU profile and the execution trace
// (what an operator takes to see where a latency went) are behind the
// admin token, and with it the trace comes back as a Go trace.
func TestServe_DebugNeedsTheToken(t *testing.T) {
	t.Setenv(routes.DefaultTokenEnv, "ops:s3cret")
	e := newEstate(t)
	get := func(path, token string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+e.srv.adminAddr()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/profile?seconds=1", "/debug/pprof/trace?seconds=1"} {
		if code, _ := get(p, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token = %d, want 401", p, code)
		}
	}
	code, body := get("/debug/pprof/trace?seconds=0.2", "s3cret")
	if code != http.StatusOK || !bytes.HasPrefix(body, []byte("go 1.")) {
		t.Errorf("GET /debug/pprof/trace with the token = %d, %d bytes starting %q; want 200 and a Go trace", code, len(body), body[:min(len(body), 16)])
	}
}

func TestServe_RefusesExposedAdminWithoutToken(t *testing.T) {
	t.Setenv(routes.DefaultTokenEnv, "")
	dir := t.TempDir()
	path := filepath.Join(dir, "banyan.yaml")
	cfg := strings.Replace(configYAML("http://127.0.0.1:1", "http://127.0.0.1:2", 100, 0), "admin: {listen: 127.0.0.1:0}", "admin: {listen: 0.0.0.0:0}", 1)
	writeAtomic(t, path, cfg)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"serve", "--config", path}, &out, &errb)
	if code != exitCannotRun {
		t.Errorf("exit %d, want %d", code, exitCannotRun)
	}
	for _, want := range []string{"not on loopback", "BANYAN_ADMIN_TOKEN", "0.0.0.0:0"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr %q does not say %q", errb.String(), want)
		}
	}
}

// TestServe_ReloadsUnderLoad reloads the config 100 times while clients
// keep sending; no request may fail, a broken file mid-run keeps the last
// good table, and the file watcher picks up a plain edit on its own.
func TestServe_ReloadsUnderLoad(t *testing.T) {
	e := newEstate(t)
	ctx := context.Background()
	var sent, failedReqs atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Transport: proxy.NewTransport(5 * time.Second)}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, "http://"+e.srv.proxyAddr()+"/x", nil)
				req.Header.Set("X-User", fmt.Sprintf("u%d-%d", w, i%50))
				resp, err := client.Do(req)
				sent.Add(1)
				if err != nil {
					failedReqs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failedReqs.Add(1)
					firstErr.CompareAndSwap(nil, resp.Status)
				}
			}
		}()
	}
	for i := range 100 {
		w := (i * 7) % 101
		writeAtomic(t, e.path, configYAML(e.a.URL, e.b.URL, 100-w, w))
		if err := e.srv.reload(ctx, "test"); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		if got := e.srv.mgr.Table().Route("r").Split()["b"]; got != w {
			t.Fatalf("reload %d: b weight %d, want %d", i, got, w)
		}
		if i == 50 {
			before := e.srv.mgr.Table()
			writeAtomic(t, e.path, configYAML(e.a.URL, e.b.URL, 90, 0)+"  - name: r\n    split: {ghost: 100}\n")
			err := e.srv.reload(ctx, "test")
			if err == nil || !strings.Contains(err.Error(), "sum to 90") || !strings.Contains(err.Error(), "ghost") || !strings.Contains(err.Error(), "duplicate") {
				t.Fatalf("broken config: err = %v, want every problem listed", err)
			}
			if e.srv.mgr.Table() != before {
				t.Fatal("broken config replaced the route table")
			}
		}
	}
	// The watcher alone (no reload call) applies an edit of the file.
	writeAtomic(t, e.path, configYAML(e.a.URL, e.b.URL, 33, 67))
	deadline := time.Now().Add(10 * time.Second)
	for e.srv.mgr.Table().Route("r").Split()["b"] != 67 {
		if time.Now().After(deadline) {
			t.Fatal("file watcher did not reload the edited config within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if n := failedReqs.Load(); n > 0 {
		t.Errorf("%d of %d requests failed during reloads; first: %v", n, sent.Load(), firstErr.Load())
	}
	if sent.Load() < 200 {
		t.Errorf("only %d requests sent during 100 reloads; the load did not overlap the reloads", sent.Load())
	}
	t.Logf("%d requests during 101 reloads, none failed", sent.Load())

	resp, err := http.Get("http://" + e.srv.adminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`banyan_config_reloads_total{result="failed"} 1`, `banyan_route_weight{backend="b",route="r"} 67`, `banyan_proxy_requests_total{backend="a",code="200",route="r"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestValidateCmd(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeAtomic(t, good, configYAML("http://127.0.0.1:1", "http://127.0.0.1:2", 80, 20))
	bad := filepath.Join(dir, "bad.yaml")
	writeAtomic(t, bad, `backends: {a: {url: "ftp://x"}}
routes:
  - {name: r, split: {a: 50, zz: 40}}
  - {name: r, match: {path_template: "/x/{id"}, split: {a: 100}}
`)
	tests := []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"validate", "--config", good}, exitOK, []string{"valid (1 routes, 2 backends)"}},
		{[]string{"validate", "--config", "../../banyan.example.yaml"}, exitOK, []string{"valid (3 routes, 2 backends)"}},
		{[]string{"validate", "--config", bad}, exitFound, []string{"backends.a.url", "routes[r].split.zz", "sum to 90", "duplicate route name", "path_template", "must be the last route"}},
		{[]string{"validate", "--config", filepath.Join(dir, "missing.yaml")}, exitCannotRun, []string{"no such file"}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.args[2]), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tt.args, &out, &errb)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, errb.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String()+errb.String(), w) {
					t.Errorf("output lacks %q:\n%s%s", w, out.String(), errb.String())
				}
			}
		})
	}
}

// TestDemo is the end-to-end run of the whole estate: 2,000 mixed requests
// (order views, browsing, checkouts written to the legacy database) through
// banyan with shadowing, a ramp 0 -> 20 -> 50 % and a rollback driven by
// `banyan routes`, CDC from the legacy to the new database, `banyan report`
// and `banyan check`. The demo itself fails (exit 1) when any of those
// does not hold; the test also checks the transcript says so.
func TestDemo(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"demo", "--requests", "2000", "--users", "200", "--exit"}, &out, &errb)
	if code != exitOK {
		t.Fatalf("demo exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	want := []string{"answered by orders-svc", "$ banyan routes set orders-read legacy=50 orders-svc=50", "$ banyan routes rollback orders-read",
		"demo verdict: OK", "$.total", "changed (noise)", "users on orders-svc stayed there"}
	if os.Getenv("CI") == "true" || pair != nil {
		// With MariaDB (always under CI) the database half runs too.
		want = append(want, "CDC: initial copy of shop.t_order done", "verdict: CONSISTENT", "banyan check: consistent")
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			t.Errorf("demo output lacks %q:\n%s", w, out.String())
		}
	}
}

func TestDemoServiceCmd(t *testing.T) {
	for _, tt := range []struct{ service, servedBy string }{{"legacy", "legacy"}, {"orders", "orders-svc"}} {
		t.Run(tt.service, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan int, 1)
			var out, errb syncBuffer
			go func() {
				done <- run(ctx, []string{"demo-service", tt.service, "--listen", addr, "--seed", "10"}, &out, &errb)
			}()
			var resp *http.Response
			for i := 0; i < 100; i++ {
				if resp, err = http.Get("http://" + addr + "/api/orders/4"); err == nil {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("demo-service %s never answered: %v\n%s", tt.service, err, errb.String())
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Served-By") != tt.servedBy || !strings.Contains(string(body), `"id":4`) {
				t.Errorf("GET order 4: %d from %q: %s", resp.StatusCode, resp.Header.Get("X-Served-By"), body)
			}
			cancel()
			if code := <-done; code != exitOK {
				t.Errorf("demo-service exit %d after cancel", code)
			}
		})
	}
}

func TestServe_FastPathSetting(t *testing.T) {
	// The default, and on, run on io_uring where the kernel runs it with
	// a CPU to spare (CI's machine does: a fall-back there fails).
	auto := proxy.EngineGoroutines
	if runtime.GOMAXPROCS(0) >= 2 && (uring.Probe() == nil || os.Getenv("CI") == "true") {
		auto = proxy.EngineURing
	}
	for _, tc := range []struct {
		setting string
		want    int          // requests the fast path answers out of 20
		engine  proxy.Engine // what serves them (EngineAuto: net/http)
	}{
		{"", 20, auto},
		{"fast_path: on\n", 20, auto},
		{"fast_path: off\n", 0, proxy.EngineAuto},
		{"fast_path: goroutines\n", 20, proxy.EngineGoroutines},
		{"fast_path: io_uring\n", 20, proxy.EngineURing},
	} {
		t.Run("setting="+strings.TrimSpace(tc.setting), func(t *testing.T) {
			if tc.engine == proxy.EngineURing && os.Getenv("CI") != "true" {
				if err := uring.Probe(); err != nil {
					t.Skipf("io_uring is not available here (%v); CI=true makes this a failure", err)
				}
			}
			a := namedBackend(t, "a")
			path := filepath.Join(t.TempDir(), "banyan.yaml")
			writeAtomic(t, path, tc.setting+configYAML(a.URL, a.URL, 100, 0))
			srv, _ := startServer(t, path, io.Discard)
			if got := srv.proxySrv.Engine(); got != tc.engine {
				t.Fatalf("engine %q, want %q", got, tc.engine)
			}
			for i := range 20 {
				resp, err := http.Get("http://" + srv.proxyAddr() + fmt.Sprintf("/x/%d", i))
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || string(body) != "a" {
					t.Fatalf("request %d: %s %q, want 200 \"a\"", i, resp.Status, body)
				}
			}
			// The fast path counts a request just after its answer went
			// out, so the last one may lag the client by a moment.
			want := fmt.Sprintf("banyan_proxy_fast_path_requests_total %d\n", tc.want)
			var metrics []byte
			for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				resp, err := http.Get("http://" + srv.adminAddr() + "/metrics")
				if err != nil {
					t.Fatal(err)
				}
				metrics, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				if strings.Contains(string(metrics), want) || time.Now().After(deadline) {
					break
				}
			}
			if !strings.Contains(string(metrics), want) {
				t.Errorf("/metrics lacks %q", want)
			}
		})
	}
}
