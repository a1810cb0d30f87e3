package proxy

import (
	"strconv"
	"sync"
	"time"

	"github.com/banyanhq/banyan/diff"
	"github.com/banyanhq/banyan/routes"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the data plane's Prometheus series. Safe for concurrent use.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	weight   *prometheus.GaugeVec
	reloads  *prometheus.CounterVec
	shadowed *prometheus.CounterVec
	drops    *prometheus.CounterVec
	diffRate *prometheus.GaugeVec
	fast     prometheus.Counter
	handoffs *prometheus.CounterVec
	rates    sync.Map // route -> *rateCounter

	// counters caches resolved series so the request path does no label
	// hashing or string formatting after the first hit.
	counters sync.Map // seriesKey -> prometheus.Counter
	hists    sync.Map // seriesKey{code: 0} -> prometheus.Observer
}

type seriesKey struct {
	route, backend string
	code           int
}

// NewMetrics registers banyan's proxy series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "banyan_proxy_requests_total",
			Help: "Requests proxied, by route, backend and response status code.",
		}, []string{"route", "backend", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "banyan_proxy_request_duration_seconds",
			Help:    "Time from request arrival to the end of the response body, by route and backend.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "backend"}),
		weight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "banyan_route_weight",
			Help: "Current weight (percent) of each backend of each route.",
		}, []string{"route", "backend"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "banyan_config_reloads_total",
			Help: "Config reloads, by result (ok or failed).",
		}, []string{"result"}),
	}
	m.shadowed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "banyan_shadow_compared_total",
		Help: "Mirrored requests compared, by route and verdict (match, diff, noise-only, error).",
	}, []string{"route", "verdict"})
	m.drops = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "banyan_shadow_dropped_total",
		Help: "Requests sampled for shadowing but not compared, by route and reason.",
	}, []string{"route", "reason"})
	m.diffRate = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "banyan_shadow_diff_ratio",
		Help: "Share of compared requests whose verdict was diff, over the last 1,000 comparisons per route.",
	}, []string{"route"})
	m.fast = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "banyan_proxy_fast_path_requests_total",
		Help: "Requests answered on the fast path (banyan's own HTTP/1.1 loop) rather than by net/http.",
	})
	m.handoffs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "banyan_proxy_handoffs_total",
		Help: "Client connections handed from the fast path to net/http, by the reason of the request that needed it.",
	}, []string{"reason"})
	reg.MustRegister(m.requests, m.duration, m.weight, m.reloads, m.shadowed, m.drops, m.diffRate, m.fast, m.handoffs)
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("failed")
	return m
}

func (m *Metrics) observe(route, backend string, code int, d time.Duration) {
	c, h := m.series(route, backend, code)
	c.Inc()
	if code != 101 { // an upgraded connection's lifetime is not a request latency
		h.Observe(d.Seconds())
	}
}

// series returns the request counter and the latency histogram of a
// route, backend and status.
func (m *Metrics) series(route, backend string, code int) (prometheus.Counter, prometheus.Observer) {
	k := seriesKey{route, backend, code}
	c, ok := m.counters.Load(k)
	if !ok {
		c, _ = m.counters.LoadOrStore(k, m.requests.WithLabelValues(route, backend, strconv.Itoa(code)))
	}
	k.code = 0
	h, ok := m.hists.Load(k)
	if !ok {
		h, _ = m.hists.LoadOrStore(k, m.duration.WithLabelValues(route, backend))
	}
	return c.(prometheus.Counter), h.(prometheus.Observer)
}

// seriesCache remembers the series of the last request on one fast-path
// connection, so the next one with the same route, backend and status
// skips the lookups. Not safe for concurrent use.
type seriesCache struct {
	key  seriesKey
	reqs prometheus.Counter
	lat  prometheus.Observer
}

// observe counts a fast-path request as Metrics.observe does.
func (sc *seriesCache) observe(m *Metrics, route, backend string, code int, d time.Duration) {
	if sc.reqs == nil || sc.key != (seriesKey{route, backend, code}) {
		sc.key = seriesKey{route, backend, code}
		sc.reqs, sc.lat = m.series(route, backend, code)
	}
	sc.reqs.Inc()
	sc.lat.Observe(d.Seconds())
	m.fast.Inc()
}

// ObserveTable publishes the weights of a newly active table.
func (m *Metrics) ObserveTable(t *routes.Table) {
	m.weight.Reset()
	for _, rt := range t.Routes() {
		for b, w := range rt.Split() {
			m.weight.WithLabelValues(rt.Name, b).Set(float64(w))
		}
	}
}

// Reloaded counts a config reload attempt.
func (m *Metrics) Reloaded(ok bool) {
	if ok {
		m.reloads.WithLabelValues("ok").Inc()
	} else {
		m.reloads.WithLabelValues("failed").Inc()
	}
}

func (m *Metrics) handoff(reason string) { m.handoffs.WithLabelValues(reason).Inc() }

func (m *Metrics) dropped(route, reason string) { m.drops.WithLabelValues(route, reason).Inc() }

// compared counts a verdict and updates the route's recent diff ratio.
func (m *Metrics) compared(route string, v diff.Verdict) {
	m.shadowed.WithLabelValues(route, string(v)).Inc()
	rc, _ := m.rates.LoadOrStore(route, &rateCounter{})
	m.diffRate.WithLabelValues(route).Set(rc.(*rateCounter).add(v == diff.Diff))
}

// rateCounter is the share of true over the last 1,000 observations.
type rateCounter struct {
	mu     sync.Mutex
	ring   [1000]bool
	n, pos int
	hits   int
}

func (r *rateCounter) add(hit bool) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == len(r.ring) && r.ring[r.pos] {
		r.hits--
	}
	r.ring[r.pos] = hit
	if hit {
		r.hits++
	}
	r.pos = (r.pos + 1) % len(r.ring)
	r.n = min(r.n+1, len(r.ring))
	return float64(r.hits) / float64(r.n)
}
