package proxy_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/banyanhq/banyan/internal/uring"
	"github.com/banyanhq/banyan/proxy"
)

// The fast path's tests run on the engine they were asked for: a server
// that quietly fell back to goroutines would leave io_uring untested.
func TestServer_RunsTheEngineAskedFor(t *testing.T) {
	want := proxy.Engine(os.Getenv("BANYAN_TEST_ENGINE"))
	ci := os.Getenv("CI") == "true"
	switch {
	case want == "" && runtime.GOMAXPROCS(0) >= 2 && (uring.Probe() == nil || ci):
		// The default where io_uring runs; CI's machine has it, so there
		// a fall-back to goroutines fails.
		want = proxy.EngineURing
	case want == "":
		want = proxy.EngineGoroutines
	case want == proxy.EngineURing && !ci && uring.Probe() != nil:
		t.Skipf("io_uring is not available here (%v); CI=true makes this a failure", uring.Probe())
	}
	if got := serveOneAPI(t).Engine(); got != want {
		t.Fatalf("engine %q, want %q", got, want)
	}
}

// An unknown engine is refused by Serve, naming the ones it knows.
func TestServer_UnknownEngine(t *testing.T) {
	api := newBackend(t, "api", nil)
	p, _, _ := newProxy(t, oneRoute("api"), api)
	srv := proxy.NewServer(p, proxy.ServerOptions{Engine: "epoll"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = srv.Serve(ln)
	if err == nil {
		t.Fatal("Serve took an unknown engine")
	}
	for _, s := range []string{`"epoll"`, `"io_uring"`, `"goroutines"`} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Serve's error %q does not name %s", err, s)
		}
	}
}

// Where the kernel refuses io_uring, a server asked for it does not
// start, and says why and what runs instead; the goroutines engine runs.
// Not parallel: the probe is the package's.
func TestServer_URingRefused(t *testing.T) {
	proxy.SetURingProbe(t, func() error { return syscall.EPERM })
	api := newBackend(t, "api", nil)
	p, _, _ := newProxy(t, oneRoute("api"), api)
	srv := proxy.NewServer(p, proxy.ServerOptions{Engine: proxy.EngineURing})
	if got := srv.Engine(); got != proxy.EngineAuto {
		t.Errorf("engine %q of a server that cannot run", got)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = srv.Serve(ln)
	if err == nil || !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), "goroutines engine") {
		t.Fatalf("Serve: %v; want the kernel's refusal and the way out", err)
	}
	if srv := proxy.NewServer(p, proxy.ServerOptions{Engine: proxy.EngineGoroutines}); srv.Engine() != proxy.EngineGoroutines {
		t.Errorf("the goroutines engine is %q with io_uring refused", srv.Engine())
	}
}

// The default engine falls back to goroutines where the kernel refuses
// io_uring, and serves.
func TestServer_DefaultEngineWhereURingIsRefused(t *testing.T) {
	proxy.SetURingProbe(t, func() error { return syscall.EPERM })
	proxy.SetDefaultEngine(t, proxy.EngineAuto)
	if got := serveOneAPI(t).Engine(); got != proxy.EngineGoroutines {
		t.Fatalf("engine %q with io_uring refused, want %q", got, proxy.EngineGoroutines)
	}
}

// serveOneAPI serves, on the fast path, a proxy whose one route goes to a
// backend answering "api", checks that a GET gets that answer, and
// returns the server.
func serveOneAPI(t *testing.T) *proxy.Server {
	t.Helper()
	api := newBackend(t, "api", nil)
	p, _, _ := newProxy(t, oneRoute("api"), api)
	srv, url := serveFastOnly(t, p)
	resp, err := http.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "api" {
		t.Fatalf("body %q", body)
	}
	return srv
}
