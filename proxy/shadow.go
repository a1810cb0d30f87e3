package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/banyanhq/banyan/diff"
	"github.com/banyanhq/banyan/routes"
)

// ShadowHeader marks every mirrored request, so the receiving service can
// tell it apart and, for dry-run writes, skip side effects.
const ShadowHeader = "X-Banyan-Shadow"

// Recorder receives every compared pair. Record must not block; it returns
// false when it had to drop the outcome.
type Recorder interface {
	Record(o diff.Outcome) bool
}

// ShadowOptions size the shadow worker pool.
type ShadowOptions struct {
	Workers int
	Queue   int
	// CompareBody caps how much of each answer is kept for comparison.
	CompareBody int64
	// MaxQueuedBytes bounds the bodies held by queued jobs (default 64 MiB);
	// beyond it new mirrors are dropped.
	MaxQueuedBytes int64
	// Recorder stores outcomes; nil only counts them.
	Recorder Recorder
}

// Drop reasons, the reason label of banyan_shadow_dropped_total.
const (
	dropQueueFull      = "queue_full"
	dropMemory         = "memory"
	dropWriteSkipped   = "write_skipped"
	dropBodyTooLarge   = "body_too_large"
	dropBodyIncomplete = "body_incomplete"
	dropRecorder       = "recorder_full"
	dropShutdown       = "shutdown"
	// A dry-run write mirrored to the comparator: sent to the new side,
	// not compared (see Comparator).
	dropWriteNotCompared = "write_not_compared"
)

// shadowPool runs comparisons off the request path.
type shadowPool struct {
	opts    ShadowOptions
	jobs    chan *shadowJob
	queued  atomic.Int64 // bytes held by queued jobs
	pending atomic.Int64 // jobs queued or being compared
	cancel  context.CancelFunc
	quit    chan struct{} // closed by Close: drain the queue, then stop
	closed  sync.Once
	wg      sync.WaitGroup

	mu     sync.Mutex
	routes map[string]*routeShadow
}

// routeShadow is a route's compiled rules and learned noise. Noise
// survives weight edits and reloads while the route's rules are unchanged.
type routeShadow struct {
	rules   routes.DiffConfig
	cmp     *diff.Comparer
	noise   *diff.Noise
	samples atomic.Int64 // noise samples taken
}

// noiseWarmup is how many noise samples a route takes, one per mirrored
// request, before dropping to its noise_percent.
const noiseWarmup = 20

type shadowJob struct {
	table   *routes.Table
	route   *routes.Route
	rs      *routeShadow
	primary string
	peer    string
	req     *http.Request // detached copy: method, URL, Host, headers, RemoteAddr
	body    []byte
	resp    diff.Response
	bytes   int64
	// fetchPrimary: nobody has the primary's answer yet (a request
	// mirrored to the comparator); the worker calls the primary first.
	fetchPrimary bool
	// newOnly: a dry-run write from the comparator; sent to the new side,
	// nothing compared.
	newOnly bool
}

// StartShadow starts the shadow workers. Without it, routes with shadow
// settings are served but never mirrored.
func (p *Proxy) StartShadow(opts ShadowOptions) {
	if opts.Workers < 1 {
		opts.Workers = 8
	}
	if opts.Queue < 1 {
		opts.Queue = 1000
	}
	if opts.CompareBody <= 0 {
		opts.CompareBody = 1 << 20
	}
	if opts.MaxQueuedBytes <= 0 {
		opts.MaxQueuedBytes = 64 << 20
	}
	ctx, cancel := context.WithCancel(context.Background())
	sp := &shadowPool{opts: opts, jobs: make(chan *shadowJob, opts.Queue), cancel: cancel, quit: make(chan struct{}), routes: map[string]*routeShadow{}}
	run := func(j *shadowJob) {
		sp.queued.Add(-j.bytes)
		p.compare(ctx, j)
		sp.pending.Add(-1)
	}
	for range opts.Workers {
		sp.wg.Add(1)
		go func() {
			defer sp.wg.Done()
			for {
				select {
				case j := <-sp.jobs:
					run(j)
				case <-sp.quit:
					for {
						select {
						case j := <-sp.jobs:
							run(j)
						default:
							return
						}
					}
				}
			}
		}()
	}
	p.shadow = sp
}

// Close stops the shadow workers after they have compared what is queued;
// when ctx ends first, calls in flight are cancelled and the rest is
// dropped (counted as shutdown). The proxy must have stopped serving.
func (p *Proxy) Close(ctx context.Context) error {
	sp := p.shadow
	if sp == nil {
		return nil
	}
	sp.closed.Do(func() { close(sp.quit) })
	done := make(chan struct{})
	go func() { sp.wg.Wait(); close(done) }()
	select {
	case <-done:
		sp.cancel()
		return nil
	case <-ctx.Done():
		sp.cancel()
		<-done
		return fmt.Errorf("shadow pool: %w; unfinished comparisons dropped", ctx.Err())
	}
}

// CheckDiffRules compiles every route's diff rules, so a config with a bad
// rule is refused at load with the others' problems.
func CheckDiffRules(cfg *routes.Config) []routes.Problem {
	var ps []routes.Problem
	for _, r := range cfg.Routes {
		// Both steps run, so a bad tolerance does not hide a bad path;
		// each problem is its own line.
		rules, err := diffRules(r.Diff)
		_, cerr := diff.Compile(rules)
		if err = errors.Join(err, cerr); err != nil {
			for _, why := range strings.Split(err.Error(), "\n") {
				ps = append(ps, routes.Problem{Field: "routes[" + r.Name + "].diff", Why: why})
			}
		}
	}
	return ps
}

func diffRules(c routes.DiffConfig) (diff.Rules, error) {
	r := diff.Rules{Headers: c.Headers, Ignore: c.Ignore, Unordered: c.Unordered, Timestamps: c.Timestamps, NumericStrings: c.NumericStrings}
	var errs []error
	if len(c.Tolerance) > 0 {
		r.Tolerance = map[string]diff.Tolerance{}
		for path, s := range c.Tolerance {
			t, err := diff.ParseTolerance(s)
			if err != nil {
				errs = append(errs, err)
			}
			r.Tolerance[path] = t
		}
	}
	return r, errors.Join(errs...)
}

// routeShadow returns the compiled rules of rt, compiling them when the
// route is new or its rules changed.
func (sp *shadowPool) routeShadow(rt *routes.Route) *routeShadow {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if rs := sp.routes[rt.Name]; rs != nil && reflect.DeepEqual(rs.rules, rt.Diff) {
		return rs
	}
	rules, err := diffRules(rt.Diff)
	var cmp *diff.Comparer
	if err == nil {
		cmp, err = diff.Compile(rules)
	}
	if err != nil {
		// Validated at load; an empty rule set still compares.
		cmp, _ = diff.Compile(diff.Rules{})
	}
	// New rules start with no noise and warm up again: what was learned
	// under the old ones was learned from differences they may no longer
	// produce.
	rs := &routeShadow{rules: rt.Diff, cmp: cmp, noise: diff.NewNoise()}
	sp.routes[rt.Name] = rs
	return rs
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// shadowPlan decides, before forwarding, whether r is mirrored; it counts
// the reason when a sampled request is not.
func (p *Proxy) shadowPlan(rt *routes.Route, r *http.Request, primary string) (peer string, ok bool) {
	if p.shadow == nil || rt.Shadow.Percent <= 0 || !rt.Shadowed(r) {
		return "", false
	}
	switch primary {
	case rt.Legacy:
		peer = rt.New
	case rt.New:
		peer = rt.Legacy
	default:
		return "", false
	}
	// A write is mirrored only as a dry run, and only to the new service:
	// the legacy monolith knows nothing of X-Banyan-Shadow and would do it
	// for real, a second time.
	if !safeMethod(r.Method) && (rt.Shadow.Writes != routes.WritesDryRun || peer != rt.New) {
		p.metrics.dropped(rt.Name, dropWriteSkipped)
		return "", false
	}
	if r.ContentLength > int64(rt.Shadow.MaxBody) {
		p.metrics.dropped(rt.Name, dropBodyTooLarge)
		return "", false
	}
	if sp := p.shadow; len(sp.jobs) == cap(sp.jobs) {
		// submit would drop it: spare the customer's request the copying.
		p.metrics.dropped(rt.Name, dropQueueFull)
		return "", false
	}
	return peer, true
}

// teeBody copies the request body as the primary reads it, up to max.
type teeBody struct {
	io.ReadCloser
	buf      bytes.Buffer
	max      int64
	over     bool
	complete bool
}

func (t *teeBody) Read(b []byte) (int, error) {
	n, err := t.ReadCloser.Read(b)
	if n > 0 && !t.over {
		if int64(t.buf.Len()+n) > t.max {
			t.over = true
			t.buf = bytes.Buffer{}
		} else {
			t.buf.Write(b[:n])
		}
	}
	if err == io.EOF {
		t.complete = true
	}
	return n, err
}

// enqueue hands a finished primary exchange to the pool without blocking.
func (p *Proxy) enqueue(t *routes.Table, rt *routes.Route, r *http.Request, tee *teeBody, rec *recorder, primary, peer string, latency time.Duration) {
	var body []byte
	if tee != nil {
		switch {
		case tee.over:
			p.metrics.dropped(rt.Name, dropBodyTooLarge)
			return
		case !tee.complete:
			p.metrics.dropped(rt.Name, dropBodyIncomplete)
			return
		}
		body = tee.buf.Bytes()
	}
	p.submit(&shadowJob{
		table: t, route: rt, primary: primary, peer: peer, req: detach(r), body: body,
		resp: diff.Response{
			Backend: primary, Status: rec.code, Header: rec.Header().Clone(),
			Body: bytes.Clone(rec.capture.buf), Truncated: rec.capture.truncated, Latency: latency, Err: rec.errText,
		},
	})
}

// detach copies what a later call needs of r: method, URL, Host, headers
// and client address (the body is passed apart).
func detach(r *http.Request) *http.Request {
	return &http.Request{
		Method: r.Method, URL: cloneURL(r), Host: r.Host, Header: r.Header.Clone(),
		RemoteAddr: r.RemoteAddr, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}
}

// submit queues a job without blocking; a full queue or memory budget
// drops it and counts why.
func (p *Proxy) submit(j *shadowJob) {
	sp := p.shadow
	j.rs = sp.routeShadow(j.route)
	j.bytes = int64(len(j.body) + len(j.resp.Body))
	if sp.queued.Add(j.bytes) > sp.opts.MaxQueuedBytes {
		sp.queued.Add(-j.bytes)
		p.metrics.dropped(j.route.Name, dropMemory)
		return
	}
	sp.pending.Add(1)
	select {
	case sp.jobs <- j:
	default:
		sp.pending.Add(-1)
		sp.queued.Add(-j.bytes)
		p.metrics.dropped(j.route.Name, dropQueueFull)
	}
}

// Idle waits until every mirror queued so far has been compared and handed
// to the recorder, or ctx ends.
func (p *Proxy) Idle(ctx context.Context) error {
	if p.shadow == nil {
		return nil
	}
	for p.shadow.pending.Load() > 0 {
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func cloneURL(r *http.Request) *url.URL {
	u := *r.URL
	u.User = nil
	return &u
}

// compare runs one job on a worker: call the peer (and, for a noise
// sample, legacy again), diff, judge and record.
func (p *Proxy) compare(ctx context.Context, j *shadowJob) {
	rt, rs := j.route, j.rs
	if ctx.Err() != nil {
		p.metrics.dropped(rt.Name, dropShutdown)
		return
	}
	if j.newOnly {
		p.fetch(ctx, j, rt.New)
		p.metrics.dropped(rt.Name, dropWriteNotCompared)
		return
	}
	// A 304 answered the customer's cached copy: there is no body to
	// compare, and the mirror (asked without the condition) answers in
	// full. Ask the primary in full too.
	if j.fetchPrimary || j.resp.Status == http.StatusNotModified && safeMethod(j.req.Method) {
		j.resp = p.fetch(ctx, j, j.primary)
	}
	// Compared and stored as the client reads them: decompressed.
	limit := int(p.shadow.opts.CompareBody)
	if d := diff.Decoded(j.resp, limit); d.Err != "" && j.resp.Err == "" && safeMethod(j.req.Method) {
		// The customer's client took a coding banyan cannot decode (br,
		// zstd): ask the primary again, as the mirror is asked.
		j.resp = diff.Decoded(p.fetch(ctx, j, j.primary), limit)
	} else {
		j.resp = d
	}
	peerResp := diff.Decoded(p.fetch(ctx, j, j.peer), limit)
	legacy, newer, legacySide := j.resp, peerResp, j.primary
	if j.primary != rt.Legacy {
		legacy, newer, legacySide = peerResp, j.resp, j.peer
	}
	// Noise is learned from legacy alone, whichever side the customer got:
	// legacy is the reference, and a field new varies in on its own (a
	// total that comes out different each time) is a bug of new's, which
	// two answers of new's would teach as noise.
	sample := safeMethod(j.req.Method) && (rs.samples.Load() < noiseWarmup || rand.IntN(100) < *rt.Shadow.NoisePercent)
	if sample {
		again := diff.Decoded(p.fetch(ctx, j, legacySide), limit)
		if again.Err == "" && legacy.Err == "" {
			rs.noise.Learn(rs.cmp.CompareWithNoise(legacy, again, rs.noise))
			// A place is noise once two samples show it varying. The
			// route's first sample takes a second one at once: what
			// varies between the two re-fetched answers and also between
			// the first legacy answer and the third, so that neither a
			// change made between two answers nor one odd answer (a busy
			// legacy answering {"error":"busy"}) counts twice: what
			// always varies is noise from the first pair on.
			if rs.samples.Add(1) == 1 {
				if third := diff.Decoded(p.fetch(ctx, j, legacySide), limit); third.Err == "" {
					rs.noise.Learn(diff.Common(rs.cmp.CompareWithNoise(again, third, rs.noise), rs.cmp.CompareWithNoise(legacy, third, rs.noise)))
				}
			}
		}
	}
	if ctx.Err() != nil {
		// Cut short by shutdown: not the backend's fault, not an outcome.
		p.metrics.dropped(rt.Name, dropShutdown)
		return
	}
	var diffs []diff.Difference
	if legacy.Err == "" && newer.Err == "" {
		diffs = rs.cmp.CompareWithNoise(legacy, newer, rs.noise)
	}
	diffs, verdict := diff.Judge(legacy, newer, diffs, rs.noise)
	p.metrics.compared(rt.Name, verdict)
	if p.shadow.opts.Recorder == nil {
		return
	}
	o := diff.Outcome{
		Time: time.Now().UTC(), Route: rt.Name, Method: j.req.Method, Path: routePattern(rt), URL: j.req.URL.RequestURI(),
		Legacy: legacy, New: newer, Verdict: verdict, Differences: diffs,
	}
	if !p.shadow.opts.Recorder.Record(o) {
		p.metrics.dropped(rt.Name, dropRecorder)
	}
}

// conditionalHeaders make a read's answer depend on the client's cache.
var conditionalHeaders = []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range"}

// shadowAcceptEncoding leaves a request banyan sends itself asking for
// gzip when the client accepts gzip, and for no coding otherwise, so the
// answer is one the comparison can decode (diff.Decoded).
func shadowAcceptEncoding(h http.Header) {
	accept := false
	for _, c := range strings.Split(h.Get("Accept-Encoding"), ",") {
		name, params, _ := strings.Cut(c, ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		accept = true
		if k, v, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.EqualFold(strings.TrimSpace(k), "q") {
			if q, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && q == 0 {
				accept = false
			}
		}
	}
	h.Del("Accept-Encoding")
	if accept {
		h.Set("Accept-Encoding", "gzip")
	}
}

// fetch sends the job's request to backend through the same forwarding
// path as customer traffic, with the route's shadow timeout, and captures
// the answer.
func (p *Proxy) fetch(ctx context.Context, j *shadowJob, backend string) (resp diff.Response) {
	timeout := j.route.Shadow.Timeout
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// With a server in the context, ReverseProxy aborts (panics with
	// http.ErrAbortHandler) when the backend breaks off its body, as it
	// does for customers, instead of quietly returning half an answer.
	ctx = context.WithValue(ctx, http.ServerContextKey, shadowServer)
	req := j.req.Clone(ctx)
	req.Header.Set(ShadowHeader, "1")
	shadowAcceptEncoding(req.Header)
	if safeMethod(req.Method) {
		// Each side would answer the condition from its own validators
		// (a 304 from one, a 200 from the other): compare full answers.
		for _, h := range conditionalHeaders {
			req.Header.Del(h)
		}
	}
	if len(j.body) > 0 {
		req.Body = io.NopCloser(bytes.NewReader(j.body))
		req.ContentLength = int64(len(j.body))
	} else {
		req.Body = http.NoBody
	}
	cw := &captureWriter{header: http.Header{}, body: bodyCap{max: p.shadow.opts.CompareBody}}
	start := time.Now()
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			cw.setErr(http.StatusBadGateway, fmt.Sprintf("backend %s broke off its answer", backend))
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			cw.setErr(http.StatusGatewayTimeout, fmt.Sprintf("backend %s did not answer within the shadow timeout of %s", backend, timeout))
		}
		resp = diff.Response{Backend: backend, Status: cw.code, Header: cw.header, Body: cw.body.buf, Truncated: cw.body.truncated, Latency: time.Since(start), Err: cw.errText}
		if resp.Status == 0 && resp.Err == "" {
			resp.Status = http.StatusOK
		}
	}()
	p.upstream(j.table, backend).rp.ServeHTTP(cw, req)
	return resp
}

// shadowServer marks shadow requests as served, for ReverseProxy's abort
// behaviour; it is never started.
var shadowServer = &http.Server{}

// routePattern is the route's path pattern as reports show it.
func routePattern(rt *routes.Route) string {
	switch m := rt.Match; {
	case m.PathTemplate != "":
		return m.PathTemplate
	case m.Path != "":
		return m.Path
	case m.PathPrefix != "":
		return m.PathPrefix + "*"
	}
	return "*"
}

// captureWriter is the ResponseWriter of a shadow call: it keeps the
// status, headers and up to max bytes of body.
type captureWriter struct {
	header  http.Header
	code    int
	body    bodyCap
	errText string
}

func (c *captureWriter) Header() http.Header { return c.header }

func (c *captureWriter) WriteHeader(code int) {
	if c.code == 0 && code >= 200 {
		c.code = code
	}
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	c.body.add(b)
	return len(b), nil
}

// Flush is a no-op: nothing is sent anywhere.
func (c *captureWriter) Flush() {}

func (c *captureWriter) setErr(code int, msg string) {
	c.code, c.errText = code, msg
}
