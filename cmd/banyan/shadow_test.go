package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banyanhq/banyan/proxy"
	"github.com/banyanhq/banyan/reports"
)

// orderAPI answers GET /api/orders/{id} like a shop would, with a random
// request_id on every answer. When buggy is set, new answers ids divisible
// by 5 with a wrong discount; everything else is identical.
func orderAPI(name string, buggy bool, delay time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		id, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/api/orders/"))
		discount := 0.0
		if buggy && id%5 == 0 {
			discount = 0.5
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Served-By", name)
		json.NewEncoder(w).Encode(map[string]any{
			"id":       id,
			"items":    []map[string]any{{"sku": "TEA-1", "qty": id % 3}, {"sku": "CUP-2", "qty": 1}},
			"total":    float64(id) + 0.99,
			"discount": discount,
			"customer": map[string]any{"email": "jane.doe@example.com", "card_number": "4111 1111 1111 1111"},
			"meta":     map[string]any{"request_id": fmt.Sprintf("req-%016x", rand.Uint64())},
		})
	})
}

// shadowEstate runs banyan with shadowing between legacy and new handlers.
type shadowEstate struct {
	dir, path string
	srv       *server
	logs      *syncBuffer
	stop      func()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newShadowEstate(tb testing.TB, legacy, newer http.Handler, newURL string, shadow string) *shadowEstate {
	tb.Helper()
	l := httptest.NewServer(legacy)
	tb.Cleanup(l.Close)
	if newer != nil {
		n := httptest.NewServer(newer)
		tb.Cleanup(n.Close)
		newURL = n.URL
	}
	e := &shadowEstate{dir: tb.TempDir(), logs: &syncBuffer{}}
	e.path = filepath.Join(e.dir, "banyan.yaml")
	writeAtomic(tb, e.path, fmt.Sprintf(`listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0}
backends:
  legacy: {url: %s}
  orders-svc: {url: %s}
reports: {store: reports.db, redact: ["$..card_number"]}
routes:
  - name: orders-read
    match: {path_template: "/api/orders/{id}", methods: [GET]}
    split: {legacy: 100, orders-svc: 0}
    sticky: {cookie: uid}
    shadow: %s
`, l.URL, newURL, shadow))
	e.srv, e.stop = startServer(tb, e.path, e.logs)
	return e
}

func (e *shadowEstate) get(tb testing.TB, c *http.Client, id int) (*http.Response, string) {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/api/orders/%d", e.srv.proxyAddr(), id), nil)
	req.AddCookie(&http.Cookie{Name: "uid", Value: fmt.Sprintf("u%d", id)})
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatalf("GET order %d: %v", id, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// TestShadow_ReportShowsOnlyTheRealDifference: new differs in one field for
// one id in five, both sides emit a random request_id. The report must show
// the one field with the right count, request_id only as noise, and every
// other pair as matched.
func TestShadow_ReportShowsOnlyTheRealDifference(t *testing.T) {
	e := newShadowEstate(t, orderAPI("legacy", false, 0), orderAPI("orders-svc", true, 0), "", "{percent: 100}")
	c := &http.Client{Transport: proxy.NewTransport(5 * time.Second)}
	const n int64 = 200
	for id := 1; id <= int(n); id++ {
		if resp, _ := e.get(t, c, id); resp.StatusCode != http.StatusOK || resp.Header.Get("X-Served-By") != "legacy" {
			t.Fatalf("order %d: %d from %q", id, resp.StatusCode, resp.Header.Get("X-Served-By"))
		}
	}
	e.stop() // flushes the shadow pool and the store

	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"report", "--config", e.path, "--format", "json"}, &out, &errb)
	if code != exitFound {
		t.Fatalf("report exit %d (want %d: differences found)\n%s", code, exitFound, errb.String())
	}
	var rep reports.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report JSON: %v\n%s", err, out.String())
	}
	if len(rep.Routes) != 1 {
		t.Fatalf("report routes = %d, want 1", len(rep.Routes))
	}
	r := rep.Routes[0]
	if got, want := r.Compared, n; got != want {
		t.Errorf("compared = %d, want %d", got, want)
	}
	if got, want := r.Diffs, n/5; got != want {
		t.Errorf("diffs = %d, want %d (ids divisible by 5)", got, want)
	}
	if got, want := r.Matched+r.NoiseOnly, n-n/5; got != want {
		t.Errorf("matched+noise-only = %d, want %d", got, want)
	}
	var real []string
	noiseSeen := false
	for _, f := range r.Fields {
		switch {
		case f.Noise && strings.Contains(f.Path, "request_id"):
			noiseSeen = true
		case f.Noise:
		default:
			real = append(real, fmt.Sprintf("%s=%d", f.Path, f.Count))
		}
	}
	if got, want := strings.Join(real, ","), fmt.Sprintf("$.discount=%d", n/5); got != want {
		t.Errorf("differing fields = %q, want %q", got, want)
	}
	if !noiseSeen {
		t.Errorf("request_id not reported as noise: %+v", r.Fields)
	}

	// Nothing secret is stored, reported or logged unmasked.
	var text bytes.Buffer
	run(context.Background(), []string{"report", "--config", e.path}, &text, &errb)
	t.Logf("banyan report:\n%s", text.String())
	files, _ := filepath.Glob(filepath.Join(e.dir, "reports.db*"))
	if len(files) == 0 {
		t.Fatal("no reports store written")
	}
	for _, f := range files {
		data, _ := os.ReadFile(f)
		for _, secret := range []string{"4111 1111 1111 1111", "4111111111111111", "jane.doe@example.com"} {
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("%s holds %q unmasked", filepath.Base(f), secret)
			}
		}
	}
	for where, s := range map[string]string{"json report": out.String(), "text report": text.String(), "logs": e.logs.String()} {
		for _, secret := range []string{"4111 1111 1111 1111", "jane.doe@example.com"} {
			if strings.Contains(s, secret) {
				t.Errorf("%s holds %q unmasked", where, secret)
			}
		}
	}
}

// TestShadow_NeverHurtsThePrimary: with 100 % shadow to a backend that is
// down or answers after 2 s, every customer request succeeds at once.
func TestShadow_NeverHurtsThePrimary(t *testing.T) {
	var slowHits atomic.Int64
	slow := orderAPI("orders-svc", false, 2*time.Second)
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slowHits.Add(1)
		slow.ServeHTTP(w, r)
	})
	for _, tt := range []struct {
		name     string
		newer    http.Handler
		url      string
		mirrored func(e *shadowEstate) int64 // evidence that mirroring happened
	}{
		{"new down", nil, "http://127.0.0.1:1", func(e *shadowEstate) int64 {
			e.stop()
			var out, errb bytes.Buffer
			run(context.Background(), []string{"report", "--config", e.path, "--format", "json"}, &out, &errb)
			var rep reports.Report
			if json.Unmarshal(out.Bytes(), &rep) != nil || len(rep.Routes) != 1 {
				return 0
			}
			return rep.Routes[0].Errors
		}},
		{"new slow", counted, "", func(*shadowEstate) int64 { return slowHits.Load() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newShadowEstate(t, orderAPI("legacy", false, 0), tt.newer, tt.url, "{percent: 100, timeout: 3s}")
			c := &http.Client{Transport: proxy.NewTransport(5 * time.Second)}
			var slowest time.Duration
			for id := 1; id <= 100; id++ {
				start := time.Now()
				resp, body := e.get(t, c, id)
				slowest = max(slowest, time.Since(start))
				if resp.StatusCode != http.StatusOK || !strings.Contains(body, fmt.Sprintf(`"id":%d`, id)) {
					t.Fatalf("order %d: %d %q", id, resp.StatusCode, body)
				}
			}
			// A primary that waited for a 2 s shadow would take 2 s; the
			// bound is generous for a loaded CI machine, the benchmark
			// measures the real figure.
			if slowest > time.Second {
				t.Errorf("slowest primary request took %s; the shadow held it up", slowest)
			}
			if n := tt.mirrored(e); n == 0 {
				t.Error("no request was mirrored; the test proves nothing")
			}
		})
	}
}
