package proxy_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banyanhq/banyan/diff"
	"github.com/banyanhq/banyan/proxy"
	"github.com/prometheus/client_golang/prometheus"
)

// fakeRecorder is a proxy.Recorder that keeps every outcome it accepts.
// When refuse is set and returns true the outcome is turned away, as a
// full store would.
type fakeRecorder struct {
	refuse func(diff.Outcome) bool

	mu  sync.Mutex
	got []diff.Outcome
}

var _ proxy.Recorder = (*fakeRecorder)(nil)

func (f *fakeRecorder) Record(o diff.Outcome) bool {
	if f.refuse != nil && f.refuse(o) {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, o)
	return true
}

// outcomes returns a copy of the outcomes recorded so far.
func (f *fakeRecorder) outcomes() []diff.Outcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

// wait returns the outcomes once there are at least n, and stops the test
// when they do not come within 5 s.
func (f *fakeRecorder) wait(tb testing.TB, n int) []diff.Outcome {
	tb.Helper()
	var got []diff.Outcome
	if !waitFor(5*time.Second, func() bool { got = f.outcomes(); return len(got) >= n }) {
		tb.Fatalf("%d outcome(s) recorded within 5s, want %d: %v", len(got), n, verdicts(got))
	}
	return got
}

func verdicts(os []diff.Outcome) []diff.Verdict {
	out := make([]diff.Verdict, len(os))
	for i, o := range os {
		out[i] = o.Verdict
	}
	return out
}

// shadowHarness is a harness whose proxy mirrors traffic, recording the
// comparisons in a fakeRecorder.
type shadowHarness struct {
	*harness
	rec    *fakeRecorder
	srv    *proxy.Server
	p      *proxy.Proxy
	closed atomic.Bool
}

// newShadowHarness is newHarness with the shadow pool started with opts;
// a nil opts.Recorder becomes a new fakeRecorder. When the test ends the
// proxy stops serving and its pool drains, before the backends close.
func newShadowHarness(tb testing.TB, config string, opts proxy.ShadowOptions, backends ...*backend) *shadowHarness {
	tb.Helper()
	p, mgr, reg := newProxy(tb, config, backends...)
	if opts.Recorder == nil {
		opts.Recorder = &fakeRecorder{}
	}
	rec, _ := opts.Recorder.(*fakeRecorder)
	p.StartShadow(opts)
	srv, url := serveWith(tb, p, proxy.ServerOptions{})
	h := &shadowHarness{
		harness: &harness{URL: url, mgr: mgr, reg: reg, client: newClient(tb)},
		rec:     rec, srv: srv, p: p,
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.stop(ctx); err != nil {
			tb.Errorf("close proxy: %v", err)
		}
	})
	return h
}

// journaledShadow is the orders route, with route's split and shadow
// lines, in front of a legacy and a new backend that both answer with
// jsonAPI and journal what reached them.
func journaledShadow(tb testing.TB, route string) (h *shadowHarness, lj, nj *journal) {
	tb.Helper()
	lj, nj = new(journal), new(journal)
	legacy, next := newBackend(tb, "legacy", lj.record(jsonAPI)), newBackend(tb, "new", nj.record(jsonAPI))
	return newShadowHarness(tb, shadowOrders+route, proxy.ShadowOptions{}, legacy, next), lj, nj
}

// stop stops serving, waiting for requests in flight (and so for their
// mirrors to be queued), then closes the shadow pool with ctx. Calls after
// the first do nothing and return nil.
func (h *shadowHarness) stop(ctx context.Context) error {
	if !h.closed.CompareAndSwap(false, true) {
		return nil
	}
	return errors.Join(h.srv.Shutdown(ctx), h.p.Close(ctx))
}

// send makes a request with body through the proxy and stops the test on
// a transport error or a status other than 200.
func (h *shadowHarness) send(tb testing.TB, method, path string, body io.Reader) string {
	tb.Helper()
	req, err := http.NewRequest(method, h.URL+path, body)
	if err != nil {
		tb.Fatal(err)
	}
	resp, got, err := fetch(h.client, req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("%s %s: status %d: %q", method, path, resp.StatusCode, got)
	}
	return got
}

// call is one request as a backend received it.
type call struct {
	Method, URI, Body string
	Header            http.Header
}

// shadow reports whether the request was a mirror.
func (c call) shadow() bool { return c.Header.Get(proxy.ShadowHeader) == "1" }

// journal keeps the requests a backend received.
type journal struct {
	mu    sync.Mutex
	calls []call
}

// record returns a handler that notes the request, body included, then
// lets next answer (next sees the body again).
func (j *journal) record(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		j.mu.Lock()
		j.calls = append(j.calls, call{Method: r.Method, URI: r.RequestURI, Body: string(body), Header: r.Header.Clone()})
		j.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		next(w, r)
	}
}

// list returns the calls received so far that keep says to keep.
func (j *journal) list(keep func(call) bool) []call {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []call
	for _, c := range j.calls {
		if keep(c) {
			out = append(out, c)
		}
	}
	return out
}

func mirrored(c call) bool { return c.shadow() }
func customer(c call) bool { return !c.shadow() }

// series reads the metric called name from reg as
// `label="value" ...` (labels sorted by name) -> value, the way a scrape
// would see it. Counters and gauges only.
func series(tb testing.TB, reg *prometheus.Registry, name string) map[string]float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatalf("gather metrics: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(labels)
			v := m.GetCounter().GetValue()
			if m.GetGauge() != nil {
				v = m.GetGauge().GetValue()
			}
			out[strings.Join(labels, " ")] = v
		}
	}
	return out
}

// dropped is banyan_shadow_dropped_total for route and reason.
func dropped(tb testing.TB, reg *prometheus.Registry, route, reason string) float64 {
	tb.Helper()
	return series(tb, reg, "banyan_shadow_dropped_total")[fmt.Sprintf("reason=%q route=%q", reason, route)]
}

// order answers GET /api/orders/{id} with the order as JSON; total(id)
// gives its total and, when requestID is set, a random request_id is added
// the way many services stamp their answers.
func order(total func(id string) int, requestID bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		w.Header().Set("Content-Type", "application/json")
		if requestID {
			fmt.Fprintf(w, `{"id":%q,"total":%d,"request_id":"%016x"}`, id, total(id), rand.Uint64())
			return
		}
		fmt.Fprintf(w, `{"id":%q,"total":%d}`, id, total(id))
	}
}

// sleepy waits d, or until the request is abandoned, then answers 200.
func sleepy(d time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(d):
			jsonAPI(w, r)
		case <-r.Context().Done():
		}
	}
}

const shadowOrders = twoBackends + `
routes:
  - name: orders
    match: {path_template: "/api/orders/{id}"}
`

// TestProxy_Shadow checks that reads are mirrored to the side the split
// did not pick and compared, always expressed legacy → new.
func TestProxy_Shadow(t *testing.T) {
	t.Parallel()

	t.Run("reads mirrored to new", func(t *testing.T) {
		t.Parallel()
		h, lj, nj := journaledShadow(t, `
    split: {legacy: 100, new: 0}
    shadow: {percent: 100}
`)

		const n = 5
		for range n {
			if got, want := h.send(t, http.MethodGet, "/api/orders/7?view=full", nil), benchJSON; got != want {
				t.Fatalf("customer got %q, want %q", got, want)
			}
		}
		outcomes := h.rec.wait(t, n)
		expectFastPath(t, h.reg, n, nil) // mirrored from the fast path, no handoff

		if got, want := len(lj.list(customer)), n; got != want {
			t.Errorf("legacy served %d customer requests, want %d", got, want)
		}
		if got := nj.list(customer); len(got) != 0 {
			t.Errorf("new served %d customer requests at weight 0, want none", len(got))
		}
		mirrors := nj.list(mirrored)
		if got, want := len(mirrors), n; got != want {
			t.Errorf("new received %d mirrors with %s: 1, want %d", got, proxy.ShadowHeader, want)
		}
		for _, c := range mirrors {
			if got, want := c.Method+" "+c.URI, "GET /api/orders/7?view=full"; got != want {
				t.Errorf("mirror = %s, want %s", got, want)
			}
		}
		if got, want := len(outcomes), n; got != want {
			t.Errorf("%d outcomes, want %d", got, want)
		}
		for _, o := range outcomes {
			for _, c := range []struct{ field, got, want string }{
				{"Route", o.Route, "orders"},
				{"Method", o.Method, "GET"},
				{"Path", o.Path, "/api/orders/{id}"},
				{"URL", o.URL, "/api/orders/7?view=full"},
				{"Legacy.Backend", o.Legacy.Backend, "legacy"},
				{"New.Backend", o.New.Backend, "new"},
				{"Legacy.Body", string(o.Legacy.Body), benchJSON},
				{"New.Body", string(o.New.Body), benchJSON},
				{"Verdict", string(o.Verdict), string(diff.Match)},
			} {
				if c.got != c.want {
					t.Errorf("outcome %s = %q, want %q", c.field, c.got, c.want)
				}
			}
			if o.Legacy.Status != http.StatusOK || o.New.Status != http.StatusOK {
				t.Errorf("outcome statuses legacy %d, new %d, want 200 and 200", o.Legacy.Status, o.New.Status)
			}
			if len(o.Differences) != 0 {
				t.Errorf("identical answers gave differences %+v", o.Differences)
			}
		}
	})

	t.Run("after cutover legacy is the mirror", func(t *testing.T) {
		t.Parallel()
		served := func(name string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"served_by":%q}`, name)
			}
		}
		var lj, nj journal
		legacy, next := newBackend(t, "legacy", lj.record(served("legacy"))), newBackend(t, "new", nj.record(served("new")))
		h := newShadowHarness(t, shadowOrders+`
    split: {legacy: 0, new: 100}
    shadow: {percent: 100}
`, proxy.ShadowOptions{}, legacy, next)

		if got, want := h.send(t, http.MethodGet, "/api/orders/7", nil), `{"served_by":"new"}`; got != want {
			t.Fatalf("customer got %q, want %q", got, want)
		}
		o := h.rec.wait(t, 1)[0]
		// The compared mirror, and the route's first noise sample: legacy
		// asked twice more (noise is learned from legacy alone).
		if got, want := len(lj.list(mirrored)), 3; got != want {
			t.Errorf("legacy received %d mirrors, want %d", got, want)
		}
		if got := nj.list(mirrored); len(got) != 0 {
			t.Errorf("new, the primary, was asked %d more times, want none: noise is not learned from new", len(got))
		}
		if got := lj.list(customer); len(got) != 0 {
			t.Errorf("legacy served %d customer requests at weight 0, want none", len(got))
		}
		if got, want := o.Legacy.Backend+" → "+o.New.Backend, "legacy → new"; got != want {
			t.Errorf("outcome compares %s, want %s", got, want)
		}
		if got, want := string(o.Legacy.Body), `{"served_by":"legacy"}`; got != want {
			t.Errorf("Legacy.Body = %q, want %q", got, want)
		}
		if got, want := o.Verdict, diff.Diff; got != want {
			t.Fatalf("verdict = %s, want %s", got, want)
		}
		if got, want := fmt.Sprint(o.Differences), fmt.Sprint([]diff.Difference{{Path: "$.served_by", Kind: diff.Changed, Legacy: "legacy", New: "new"}}); got != want {
			t.Errorf("differences = %s, want %s", got, want)
		}
	})
}

// TestProxy_ShadowWrites checks that writes are mirrored only in dry-run
// mode, marked, and never sent twice to the primary.
func TestProxy_ShadowWrites(t *testing.T) {
	t.Parallel()
	bodies := []string{`{"sku":"A-1","qty":2}`, `{"sku":"B-7","qty":1}`, `{"sku":"C-3","qty":9}`}

	// A write is not mirrored: by default, and under dry-run once new is
	// the primary (new has done the customer's write, and legacy knows
	// nothing of X-Banyan-Shadow and would take a second order). Reads
	// still are.
	for _, tt := range []struct {
		name, route string
		newPrimary  bool
	}{
		{"skipped by default", `
    split: {legacy: 100, new: 0}
    shadow: {percent: 100}
`, false},
		{"dry-run with new as primary", `
    split: {legacy: 0, new: 100}
    shadow: {percent: 100, writes: dry-run}
`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, lj, nj := journaledShadow(t, tt.route)
			primary, peer, peerName := lj, nj, "new"
			if tt.newPrimary {
				primary, peer, peerName = nj, lj, "legacy"
			}
			h.send(t, http.MethodPost, "/api/orders/7", strings.NewReader(bodies[0]))
			h.send(t, http.MethodGet, "/api/orders/7", nil)
			h.rec.wait(t, 1)
			if err := h.stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			posts := func(j *journal) []call { return j.list(func(c call) bool { return c.Method == http.MethodPost }) }
			// With legacy the peer, the route's first noise sample asks it
			// twice more (noise is learned from legacy alone).
			wantMirrors := "[GET]"
			if tt.newPrimary {
				wantMirrors = "[GET GET GET]"
			}
			if got, want := fmt.Sprint(methods(peer.list(mirrored))), wantMirrors; got != want {
				t.Errorf("%s received mirrors %s, want %s", peerName, got, want)
			}
			if got := posts(peer); len(got) != 0 {
				t.Errorf("%s received %d POSTs: %v", peerName, len(got), bodiesOf(got))
			}
			if got, want := len(posts(primary)), 1; got != want {
				t.Errorf("the primary received %d POSTs, want %d (the customer's)", got, want)
			}
			if got, want := dropped(t, h.reg, "orders", "write_skipped"), 1.0; got != want {
				t.Errorf(`banyan_shadow_dropped_total{reason="write_skipped"} = %v, want %v`, got, want)
			}
		})
	}

	t.Run("dry-run", func(t *testing.T) {
		t.Parallel()
		h, lj, nj := journaledShadow(t, `
    split: {legacy: 100, new: 0}
    shadow: {percent: 100, writes: dry-run}
`)

		for _, b := range bodies {
			h.send(t, http.MethodPost, "/api/orders/7", strings.NewReader(b))
		}
		outcomes := h.rec.wait(t, len(bodies))
		if err := h.stop(context.Background()); err != nil {
			t.Fatal(err)
		}

		// The noise sampler calls the primary a second time during its
		// warm-up; for a write that would be a second order.
		posts := lj.list(func(c call) bool { return c.Method == http.MethodPost })
		if got, want := len(posts), len(bodies); got != want {
			t.Errorf("legacy received %d POSTs for %d customer POSTs: %v", got, want, bodiesOf(posts))
		}
		mirrors := nj.list(mirrored)
		if got, want := bodiesOf(mirrors), slices.Sorted(slices.Values(bodies)); !slices.Equal(got, want) {
			t.Errorf("new received bodies %q with %s: 1, want %q", got, proxy.ShadowHeader, want)
		}
		if got, want := fmt.Sprint(methods(mirrors)), "[POST POST POST]"; got != want {
			t.Errorf("mirrors = %s, want %s", got, want)
		}
		if got := nj.list(customer); len(got) != 0 {
			t.Errorf("new received %d requests without %s", len(got), proxy.ShadowHeader)
		}
		for _, o := range outcomes {
			if o.Method != http.MethodPost || o.Verdict != diff.Match {
				t.Errorf("outcome %s %s: %s, want POST: match", o.Method, o.URL, o.Verdict)
			}
		}
		if got := dropped(t, h.reg, "orders", "write_skipped"); got != 0 {
			t.Errorf(`banyan_shadow_dropped_total{reason="write_skipped"} = %v in dry-run, want 0`, got)
		}
	})
}

func methods(cs []call) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Method)
	}
	return out
}

// bodiesOf returns the request bodies of cs, sorted.
func bodiesOf(cs []call) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Body)
	}
	slices.Sort(out)
	return out
}

// unsized hides a reader's length from http.NewRequest, so the body is
// sent chunked, with no Content-Length.
type unsized struct{ io.Reader }

// TestProxy_ShadowMaxBody checks that a request body larger than max_body
// is not mirrored, whether its length is announced or not, while the
// customer's request goes through whole.
func TestProxy_ShadowMaxBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		size         int
		chunked      bool
		wantMirrored bool
	}{
		{"Content-Length over max_body", 2048, false, false},
		{"chunked body growing past max_body", 2048, true, false},
		{"Content-Length of exactly max_body", 1024, false, true},
		{"chunked body under max_body", 1000, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, lj, nj := journaledShadow(t, `
    split: {legacy: 100, new: 0}
    shadow: {percent: 100, writes: dry-run, max_body: 1KiB}
`)

			payload := strings.Repeat("x", tt.size)
			var body io.Reader = strings.NewReader(payload)
			if tt.chunked {
				// Several reads, as a client streaming its upload.
				body = unsized{io.MultiReader(strings.NewReader(payload[:300]), strings.NewReader(payload[300:700]), strings.NewReader(payload[700:]))}
			}
			h.send(t, http.MethodPut, "/api/orders/7", body)
			if err := h.stop(context.Background()); err != nil {
				t.Fatal(err)
			}

			if got := bodiesOf(lj.list(customer)); len(got) != 1 || got[0] != payload {
				t.Errorf("legacy received bodies of %v bytes, want one of %d", lens(got), tt.size)
			}
			wantMirrors, wantDrops := 0, 1.0
			if tt.wantMirrored {
				wantMirrors, wantDrops = 1, 0
			}
			mirrors := bodiesOf(nj.list(mirrored))
			if got, want := len(mirrors), wantMirrors; got != want {
				t.Errorf("new received %d mirrors of a %d-byte body, want %d", got, tt.size, want)
			}
			if len(mirrors) == 1 && mirrors[0] != payload {
				t.Errorf("mirrored body is %d bytes, want the %d sent", len(mirrors[0]), tt.size)
			}
			if got, want := dropped(t, h.reg, "orders", "body_too_large"), wantDrops; got != want {
				t.Errorf(`banyan_shadow_dropped_total{reason="body_too_large"} = %v, want %v`, got, want)
			}
		})
	}
}

func lens(ss []string) []int {
	var out []int
	for _, s := range ss {
		out = append(out, len(s))
	}
	return out
}

// TestProxy_ShadowQueue checks that a slow shadow side never slows the
// customer: when the one worker and one queue slot are taken, mirrors are
// dropped and counted.
func TestProxy_ShadowQueue(t *testing.T) {
	t.Parallel()
	const delay = 500 * time.Millisecond
	legacy, next := newBackend(t, "legacy", jsonAPI), newBackend(t, "new", sleepy(delay))
	h := newShadowHarness(t, shadowOrders+`
    split: {legacy: 100, new: 0}
    shadow: {percent: 100}
`, proxy.ShadowOptions{Workers: 1, Queue: 1}, legacy, next)

	const requests = 50
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		slowest time.Duration
		start   = make(chan struct{})
	)
	for i := range requests {
		wg.Go(func() {
			<-start
			began := time.Now()
			resp, body, err := h.try(http.MethodGet, fmt.Sprintf("/api/orders/%d", i), nil)
			took := time.Since(began)
			if err != nil {
				t.Error(err)
				return
			}
			if resp.StatusCode != http.StatusOK || body != benchJSON {
				t.Errorf("customer got %d %q, want 200 %q", resp.StatusCode, body, benchJSON)
			}
			mu.Lock()
			slowest = max(slowest, took)
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	if slowest >= delay {
		t.Errorf("slowest customer answer took %s; the shadow side takes %s and must not be waited for", slowest, delay)
	}
	full := dropped(t, h.reg, "orders", "queue_full")
	if full == 0 {
		t.Errorf(`banyan_shadow_dropped_total{reason="queue_full"} = 0 after %d requests on 1 worker and 1 queue slot`, requests)
	}
	if err := h.stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	compared := 0.0
	for _, v := range series(t, h.reg, "banyan_shadow_compared_total") {
		compared += v
	}
	if got, want := compared+full, float64(requests); got != want {
		t.Errorf("compared %v + dropped for a full queue %v = %v, want every request (%v)", compared, full, got, want)
	}
	t.Logf("slowest customer answer %s; %v compared, %v dropped", slowest, compared, full)
}

// TestProxy_ShadowSticky checks that with a sticky key a user is always or
// never mirrored, and that the share of mirrored users is the percent.
func TestProxy_ShadowSticky(t *testing.T) {
	t.Parallel()
	var nj journal
	legacy, next := newBackend(t, "legacy", nil), newBackend(t, "new", nj.record(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "new") }))
	h := newShadowHarness(t, twoBackends+`
routes:
  - name: checkout
    split: {legacy: 100, new: 0}
    sticky: {cookie: uid}
    shadow: {percent: 30}
`, proxy.ShadowOptions{Queue: 5000}, legacy, next)

	const users, perUser = 500, 3
	seen := visit(t, h.harness, users, perUser, "/checkout", func(uid string) http.Header { return hdr("Cookie", "uid="+uid) })
	if err := h.stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	perUID := map[string]int{}
	for _, c := range nj.list(mirrored) {
		ck, err := (&http.Request{Header: c.Header}).Cookie("uid")
		if err != nil {
			t.Fatalf("mirror without the uid cookie: %v", c.Header)
		}
		perUID[ck.Value]++
	}
	if got := nj.list(customer); len(got) != 0 {
		t.Errorf("new served %d customer requests at weight 0", len(got))
	}
	n := 0
	for uid := range seen {
		switch perUID[uid] {
		case 0:
		case perUser:
			n++
		default:
			t.Errorf("user %s: %d of %d requests mirrored, want all or none", uid, perUID[uid], perUser)
		}
	}
	if share := 100 * float64(n) / users; math.Abs(share-30) > 8 {
		t.Errorf("%.1f%% of %d users mirrored, want 30%% ± 8", share, users)
	}
}

// TestProxy_ShadowNoise checks noise cancellation: a field that differs
// between two answers of the primary to the same request is learned as
// noise and never reported as a diff, while a real difference is.
func TestProxy_ShadowNoise(t *testing.T) {
	t.Parallel()
	var lj journal
	same := func(string) int { return 100 }
	// New gets the total wrong for even ids above 20.
	wrong := func(id string) int {
		var n int
		fmt.Sscan(id, &n)
		if n > 20 && n%2 == 0 {
			return 101
		}
		return 100
	}
	legacy, next := newBackend(t, "legacy", lj.record(order(same, true))), newBackend(t, "new", order(wrong, true))
	// One worker and noise_percent 0: exactly the 20 warm-up samples.
	h := newShadowHarness(t, shadowOrders+`
    split: {legacy: 100, new: 0}
    shadow: {percent: 100, noise_percent: 0}
`, proxy.ShadowOptions{Workers: 1}, legacy, next)

	for id := 1; id <= 20; id++ {
		h.send(t, http.MethodGet, fmt.Sprintf("/api/orders/%d", id), nil)
	}
	warm := h.rec.wait(t, 20)
	t.Run("warm-up", func(t *testing.T) {
		for _, o := range warm {
			if o.Verdict != diff.NoiseOnly {
				t.Errorf("%s: verdict %s (%+v), want %s", o.URL, o.Verdict, o.Differences, diff.NoiseOnly)
			}
		}
		// The route's first sample takes a second one at once (a place
		// is noise once two samples show it varying).
		if got, want := len(lj.list(mirrored)), 20+1; got != want {
			t.Errorf("legacy was called again %d times for the first 20 requests, want %d (the warm-up, and the first sample's second)", got, want)
		}
	})

	for id := 21; id <= 40; id++ {
		h.send(t, http.MethodGet, fmt.Sprintf("/api/orders/%d", id), nil)
	}
	after := h.rec.wait(t, 40)[20:]
	t.Run("after warm-up", func(t *testing.T) {
		if got, want := len(lj.list(mirrored)), 20+1; got != want {
			t.Errorf("legacy was called again %d times in all, want only the %d of the warm-up at noise_percent 0", got, want)
		}
		for _, o := range after {
			var id int
			fmt.Sscanf(o.URL, "/api/orders/%d", &id)
			want := []string{"$.request_id noise"}
			wantVerdict := diff.NoiseOnly
			if id%2 == 0 {
				want = []string{"$.request_id noise", "$.total changed 100→101"}
				wantVerdict = diff.Diff
			}
			var got []string
			for _, d := range o.Differences {
				switch {
				case d.Noise:
					got = append(got, d.Path+" noise")
				default:
					got = append(got, fmt.Sprintf("%s %s %v→%v", d.Path, d.Kind, d.Legacy, d.New))
				}
			}
			slices.Sort(got)
			if o.Verdict != wantVerdict || !slices.Equal(got, want) {
				t.Errorf("%s: %s %q, want %s %q", o.URL, o.Verdict, got, wantVerdict, want)
			}
		}
	})
}

// TestProxy_ShadowErrors checks that a failing shadow side is an error
// outcome and nothing the customer notices.
func TestProxy_ShadowErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		newURL  func(t *testing.T) string
		shadow  string
		status  int
		errText string
	}{
		{"new is down", stoppedURL, "{percent: 100}", http.StatusBadGateway, "unreachable"},
		{"new slower than the shadow timeout", func(t *testing.T) string { return newBackend(t, "new", sleepy(2*time.Second)).URL },
			"{percent: 100, timeout: 200ms}", http.StatusGatewayTimeout, "did not answer within the shadow timeout of 200ms"},
		{"new breaks off its body", func(t *testing.T) string {
			return newBackend(t, "new", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "100")
				io.WriteString(w, benchJSON[:10])
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler)
			}).URL
		}, "{percent: 100}", http.StatusBadGateway, "broke off its answer"},
		{"new stalls after its headers", func(t *testing.T) string {
			return newBackend(t, "new", func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "first\n")
				w.(http.Flusher).Flush()
				select {
				case <-time.After(2 * time.Second):
				case <-r.Context().Done():
				}
			}).URL
		}, "{percent: 100, timeout: 300ms}", http.StatusGatewayTimeout, "shadow timeout of 300ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			legacy := newBackend(t, "legacy", jsonAPI)
			h := newShadowHarness(t, fmt.Sprintf(`
backends:
  legacy: {url: "${legacy}"}
  new: {url: %q}
routes:
  - name: orders
    split: {legacy: 100, new: 0}
    shadow: %s
`, tt.newURL(t), tt.shadow), proxy.ShadowOptions{}, legacy)

			start := time.Now()
			if got, want := h.send(t, http.MethodGet, "/api/orders/7", nil), benchJSON; got != want {
				t.Errorf("customer got %q, want %q", got, want)
			}
			if took := time.Since(start); took > 500*time.Millisecond {
				t.Errorf("customer waited %s", took)
			}
			o := h.rec.wait(t, 1)[0]
			if took := time.Since(start); took > time.Second {
				t.Errorf("outcome recorded after %s, want within 1s", took)
			}
			if got, want := o.Verdict, diff.Error; got != want {
				t.Errorf("verdict = %s, want %s", got, want)
			}
			if got, want := o.New.Status, tt.status; got != want {
				t.Errorf("New.Status = %d, want %d", got, want)
			}
			if !strings.Contains(o.New.Err, tt.errText) {
				t.Errorf("New.Err = %q, want it to say %q", o.New.Err, tt.errText)
			}
			if o.Legacy.Err != "" || o.Legacy.Status != http.StatusOK {
				t.Errorf("Legacy = %d %q, want 200 without error", o.Legacy.Status, o.Legacy.Err)
			}
		})
	}
}

// TestProxy_ShadowCompareBody checks that only compare_body bytes of each
// answer are kept for comparison, and that the customer still gets all.
func TestProxy_ShadowCompareBody(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("0123456789abcdef", 640) // 10 KiB
	answer := func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, big) }
	legacy, next := newBackend(t, "legacy", answer), newBackend(t, "new", answer)
	h := newShadowHarness(t, shadowOrders+`
    split: {legacy: 100, new: 0}
    shadow: {percent: 100}
`, proxy.ShadowOptions{CompareBody: 1024}, legacy, next)

	if got := h.send(t, http.MethodGet, "/api/orders/7", nil); got != big {
		t.Errorf("customer got %d bytes, want all %d", len(got), len(big))
	}
	o := h.rec.wait(t, 1)[0]
	for _, side := range []diff.Response{o.Legacy, o.New} {
		if got, want := len(side.Body), 1024; got != want {
			t.Errorf("%s: outcome body is %d bytes, want %d", side.Backend, got, want)
		}
		if !side.Truncated {
			t.Errorf("%s: outcome body not marked truncated", side.Backend)
		}
	}
	if got, want := o.Verdict, diff.Match; got != want {
		t.Errorf("verdict = %s, want %s", got, want)
	}
}

// TestProxy_ShadowStreaming checks that mirroring does not buffer the
// primary's answer: the customer reads the first part while the backend
// still holds the rest.
func TestProxy_ShadowStreaming(t *testing.T) {
	t.Parallel()
	feed, releaseBackend := newTwoPartBackend(t, "legacy")
	next := newBackend(t, "new", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "first\nsecond\n") })
	h := newShadowHarness(t, shadowOrders+`
    split: {legacy: 100, new: 0}
    shadow: {percent: 100}
`, proxy.ShadowOptions{}, feed, next)
	t.Cleanup(releaseBackend) // runs before the harness and backends close

	expectStreamed(t, h.client, h.URL+"/api/orders/7", releaseBackend)
	o := h.rec.wait(t, 1)[0]
	if got, want := string(o.Legacy.Body), "first\nsecond\n"; got != want {
		t.Errorf("compared legacy body = %q, want %q", got, want)
	}
	if got, want := o.Verdict, diff.Match; got != want {
		t.Errorf("verdict = %s, want %s", got, want)
	}
}

// TestProxy_Close checks that Close compares what is queued, and that
// when its deadline passes the rest is dropped, not reported as errors.
// queueMirrors sends n reads through a proxy with one shadow worker whose
// new side answers with newer, so that most mirrors are still queued.
func queueMirrors(t *testing.T, n int, newer http.HandlerFunc) *shadowHarness {
	t.Helper()
	legacy, next := newBackend(t, "legacy", jsonAPI), newBackend(t, "new", newer)
	h := newShadowHarness(t, shadowOrders+`
    split: {legacy: 100, new: 0}
    shadow: {percent: 100}
`, proxy.ShadowOptions{Workers: 1, Queue: 10}, legacy, next)
	for id := range n {
		h.send(t, http.MethodGet, fmt.Sprintf("/api/orders/%d", id), nil)
	}
	return h
}

func TestProxy_Close(t *testing.T) {
	t.Parallel()
	const jobs = 5

	t.Run("drains the queue", func(t *testing.T) {
		t.Parallel()
		h := queueMirrors(t, jobs, sleepy(200*time.Millisecond))
		before := len(h.rec.outcomes())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.stop(ctx); err != nil {
			t.Fatalf("Close with a generous deadline: %v", err)
		}
		if before >= jobs {
			t.Fatalf("all %d comparisons were done before Close; nothing was left to drain", jobs)
		}
		got := h.rec.outcomes()
		if len(got) != jobs {
			t.Errorf("Close returned with %d outcomes (%d before it), want all %d queued", len(got), before, jobs)
		}
		// A second Close (a deferred cleanup, a repeated signal) is harmless.
		if err := h.p.Close(ctx); err != nil {
			t.Errorf("second Close: %v", err)
		}
		for _, o := range got {
			if o.Verdict != diff.Match {
				t.Errorf("%s: verdict %s, want %s", o.URL, o.Verdict, diff.Match)
			}
		}
	})

	t.Run("deadline drops the rest", func(t *testing.T) {
		t.Parallel()
		h := queueMirrors(t, jobs, sleepy(2*time.Second))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := h.stop(ctx)
		took := time.Since(start)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close past its deadline = %v, want an error wrapping %v", err, context.DeadlineExceeded)
		}
		if took > time.Second {
			t.Errorf("Close took %s with a 50ms deadline; the call in flight was not cancelled", took)
		}
		recorded := h.rec.outcomes()
		for _, o := range recorded {
			if o.Verdict == diff.Error {
				t.Errorf("%s: cancelled comparison recorded as %s (%q)", o.URL, o.Verdict, o.New.Err)
			}
		}
		shutdown := dropped(t, h.reg, "orders", "shutdown")
		if got, want := float64(len(recorded))+shutdown, float64(jobs); got != want {
			t.Errorf("%d outcomes + %v dropped at shutdown = %v, want %v", len(recorded), shutdown, got, want)
		}
		if shutdown == 0 {
			t.Errorf(`banyan_shadow_dropped_total{reason="shutdown"} = 0 after Close cut %d slow comparisons short`, jobs)
		}
		time.Sleep(100 * time.Millisecond)
		if late := h.rec.outcomes(); len(late) != len(recorded) {
			t.Errorf("%d outcomes recorded after Close returned", len(late)-len(recorded))
		}
	})
}

// TestProxy_ShadowMetrics checks the shadow series against the outcomes.
func TestProxy_ShadowMetrics(t *testing.T) {
	t.Parallel()
	same := func(string) int { return 100 }
	// New is wrong for every third id, and breaks the connection for id 7.
	wrong := func(id string) int {
		var n int
		fmt.Sscan(id, &n)
		if n%3 == 0 {
			return 101
		}
		return 100
	}
	newAnswer := order(wrong, true)
	legacy := newBackend(t, "legacy", order(same, true))
	next := newBackend(t, "new", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/orders/7" {
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		newAnswer(w, r)
	})
	// The store turns away one outcome; it is still compared.
	rec := &fakeRecorder{refuse: func(o diff.Outcome) bool { return o.URL == "/api/orders/5" }}
	h := newShadowHarness(t, shadowOrders+`
    split: {legacy: 100, new: 0}
    shadow: {percent: 100}
`, proxy.ShadowOptions{Recorder: rec}, legacy, next)

	const requests = 30
	for id := 1; id <= requests; id++ {
		h.send(t, http.MethodGet, fmt.Sprintf("/api/orders/%d", id), nil)
	}
	if err := h.stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	outcomes := rec.outcomes()
	if got, want := len(outcomes), requests-1; got != want {
		t.Errorf("%d outcomes recorded, want %d", got, want)
	}
	byVerdict := map[string]float64{}
	for _, o := range outcomes {
		byVerdict[fmt.Sprintf("route=%q verdict=%q", o.Route, o.Verdict)]++
	}
	byVerdict[`route="orders" verdict="noise-only"`]++ // the refused one, /api/orders/5
	compared := series(t, h.reg, "banyan_shadow_compared_total")
	if got, want := fmt.Sprint(compared), fmt.Sprint(byVerdict); got != want {
		t.Errorf("banyan_shadow_compared_total = %s, outcomes say %s", got, want)
	}
	want := map[string]float64{
		`route="orders" verdict="diff"`:       10, // ids 3, 6, ... 30
		`route="orders" verdict="error"`:      1,  // id 7
		`route="orders" verdict="noise-only"`: 19, // the rest differ only in request_id
	}
	if got := compared; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("banyan_shadow_compared_total = %v, want %v", got, want)
	}
	if got, want := series(t, h.reg, "banyan_shadow_diff_ratio")[`route="orders"`], 10.0/30; math.Abs(got-want) > 1e-9 {
		t.Errorf("banyan_shadow_diff_ratio = %v, want %v", got, want)
	}
	if got, want := dropped(t, h.reg, "orders", "recorder_full"), 1.0; got != want {
		t.Errorf(`banyan_shadow_dropped_total{reason="recorder_full"} = %v, want %v`, got, want)
	}
}

// BenchmarkProxy_GetShadow is BenchmarkProxy_Get with every request
// mirrored to a second fast backend and compared: the difference is what
// shadowing costs the customer path (the comparisons share the CPUs).
func BenchmarkProxy_GetShadow(b *testing.B) {
	legacy, next := newBackend(b, "legacy", jsonAPI), newBackend(b, "new", jsonAPI)
	h := newShadowHarness(b, twoBackends+`
routes:
  - name: orders
    match: {path_template: "/api/orders/{id}", methods: [GET]}
    split: {legacy: 100, new: 0}
    sticky: {cookie: uid}
    shadow: {percent: 100}
`, proxy.ShadowOptions{}, legacy, next)
	benchGet(b, h.client, h.URL+"/api/orders/7")
	b.StopTimer()
	if err := h.stop(context.Background()); err != nil {
		b.Fatal(err)
	}
	compared := 0.0
	for _, v := range series(b, h.reg, "banyan_shadow_compared_total") {
		compared += v
	}
	b.ReportMetric(compared/float64(b.N), "compared/op")
}

// gzipped serves h's answer gzip-compressed to a request that accepts
// gzip, as most servers in front of a monolith do.
func gzipped(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			h(w, r)
			return
		}
		var plain bytes.Buffer
		cw := &captureHeaders{header: http.Header{}, body: &plain, code: http.StatusOK}
		h(cw, r)
		for k, v := range cw.header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Encoding", "gzip")
		w.WriteHeader(cw.code)
		zw := gzip.NewWriter(w)
		zw.Write(plain.Bytes())
		zw.Close()
	}
}

type captureHeaders struct {
	header http.Header
	body   *bytes.Buffer
	code   int
}

func (c *captureHeaders) Header() http.Header         { return c.header }
func (c *captureHeaders) Write(b []byte) (int, error) { return c.body.Write(b) }
func (c *captureHeaders) WriteHeader(code int)        { c.code = code }

// TestProxy_ShadowComparesCompressedAnswers: customers' browsers ask for
// gzip, so both sides answer compressed; the pair is compared and stored
// decompressed, and a real difference in the JSON is found and not taken
// for noise (compared as compressed bytes it once came out noise-only).
// banyan's own request to the mirror asks for gzip only.
func TestProxy_ShadowComparesCompressedAnswers(t *testing.T) {
	t.Parallel()
	var mirrorAE atomic.Value
	legacy := newBackend(t, "legacy", gzipped(order(func(string) int { return 100 }, true)))
	next := newBackend(t, "new", func(w http.ResponseWriter, r *http.Request) {
		mirrorAE.Store(r.Header.Get("Accept-Encoding"))
		gzipped(order(func(string) int { return 101 }, true))(w, r)
	})
	h := newShadowHarness(t, shadowOrders+`
    split: {legacy: 100, new: 0}
    shadow: {percent: 100}
`, proxy.ShadowOptions{Workers: 1}, legacy, next)
	const n = 30 // past the noise warm-up of 20
	for id := 1; id <= n; id++ {
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/orders/%d", h.URL, id), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept-Encoding", "br, gzip")
		resp, body, err := fetch(h.client, req)
		if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("request %d: %v, status %v, Content-Encoding %q", id, err, resp.StatusCode, resp.Header.Get("Content-Encoding"))
		}
		if strings.Contains(body, "total") {
			t.Fatalf("the customer's answer was decompressed on the way: %q", body)
		}
	}
	all := h.rec.wait(t, n)
	for _, o := range all {
		var total *diff.Difference
		for i, d := range o.Differences {
			if d.Path == "$.total" {
				total = &o.Differences[i]
			}
		}
		if o.Verdict != diff.Diff || total == nil || total.Noise {
			t.Errorf("%s: verdict %s, differences %+v; want diff with $.total 100 -> 101, not noise", o.URL, o.Verdict, o.Differences)
		}
		if !bytes.Contains(o.Legacy.Body, []byte(`"total":100`)) || !bytes.Contains(o.New.Body, []byte(`"total":101`)) {
			t.Errorf("%s: stored bodies %q and %q, want the decompressed JSON", o.URL, o.Legacy.Body, o.New.Body)
		}
		if o.Legacy.Header["Content-Encoding"] != nil || o.New.Header["Content-Encoding"] != nil {
			t.Errorf("%s: stored headers still say Content-Encoding: %v %v", o.URL, o.Legacy.Header, o.New.Header)
		}
	}
	if got, _ := mirrorAE.Load().(string); got != "gzip" {
		t.Errorf("the mirror was asked with Accept-Encoding %q, want gzip", got)
	}
}

// TestProxy_ShadowConditionalRead: a browser revalidating its cached copy
// gets a 304 from the primary; the pair compared is the two full answers
// (the mirror asked without the condition, the primary asked again), not
// a 304 against the other side's 200.
func TestProxy_ShadowConditionalRead(t *testing.T) {
	t.Parallel()
	etagged := func(etag string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", etag)
			if r.Header.Get("If-None-Match") == etag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":"7","total":100}`)
		}
	}
	// Each side computes its own ETag, as two implementations do.
	legacy, next := newBackend(t, "legacy", etagged(`"l-1"`)), newBackend(t, "new", etagged(`"n-1"`))
	h, req := oneReadShadowed(t, legacy, next)
	req.Header.Set("If-None-Match", `"l-1"`)
	resp, _, err := fetch(h.client, req)
	if err != nil || resp.StatusCode != http.StatusNotModified {
		t.Fatalf("customer's revalidation: %v, status %v, want 304", err, resp.StatusCode)
	}
	o := h.rec.wait(t, 1)[0]
	if o.Verdict != diff.Match || o.Legacy.Status != http.StatusOK || o.New.Status != http.StatusOK {
		t.Errorf("verdict %s (legacy %d, new %d), differences %+v; want match of two 200s", o.Verdict, o.Legacy.Status, o.New.Status, o.Differences)
	}
}

// TestProxy_ShadowPrimaryInUndecodableCoding: a browser accepts br and the
// primary answered it in br, which banyan cannot decode; the primary is
// asked again (for gzip at most) so the pair is still compared, not
// reported as an error.
func TestProxy_ShadowPrimaryInUndecodableCoding(t *testing.T) {
	t.Parallel()
	brotliOrPlain := func(total int) http.HandlerFunc {
		plain := order(func(string) int { return total }, false)
		return func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.Header.Get("Accept-Encoding"), "br") {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Encoding", "br")
				w.Write([]byte{0x1b, 0x03, 0x00, 0xf8}) // not decodable here
				return
			}
			plain(w, r)
		}
	}
	legacy, next := newBackend(t, "legacy", brotliOrPlain(100)), newBackend(t, "new", brotliOrPlain(101))
	h, req := oneReadShadowed(t, legacy, next)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	if resp, _, err := fetch(h.client, req); err != nil || resp.Header.Get("Content-Encoding") != "br" {
		t.Fatalf("customer's request: %v", err)
	}
	o := h.rec.wait(t, 1)[0]
	if o.Verdict != diff.Diff || len(o.Differences) != 1 || o.Differences[0].Path != "$.total" {
		t.Errorf("verdict %s, legacy err %q, differences %+v; want diff in $.total only", o.Verdict, o.Legacy.Err, o.Differences)
	}
}

// oneReadShadowed is the orders route on legacy, every read mirrored to
// next by one worker with no noise sampling, and a GET of order 7 to send
// through it.
func oneReadShadowed(t *testing.T, legacy, next *backend) (*shadowHarness, *http.Request) {
	t.Helper()
	h := newShadowHarness(t, shadowOrders+`
    split: {legacy: 100, new: 0}
    shadow: {percent: 100, noise_percent: 0}
`, proxy.ShadowOptions{Workers: 1}, legacy, next)
	req, err := http.NewRequest(http.MethodGet, h.URL+"/api/orders/7", nil)
	if err != nil {
		t.Fatal(err)
	}
	return h, req
}
