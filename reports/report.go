package reports

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/banyanhq/banyan/diff"
)

// Query selects what a report covers.
type Query struct {
	Route string    // one route; "" for every route
	Since time.Time // outcomes from this time on (rounded down to the minute); zero for all kept
}

// Report is the aggregate of compared pairs per route. Its JSON form is
// stable:
//
//	{"generated": "2025-01-02T15:04:05Z", "since": "...",
//	 "routes": [{"route": "orders-read", "compared": 100, "matched": 90,
//	   "diffs": 5, "noise_only": 3, "errors": 2, "match_rate": 0.93,
//	   "fields": [{"path": "$.items[*].price", "count": 5, "kind": "changed",
//	     "noise": false, "example": {"time": "...", "url": "/api/orders/7",
//	     "legacy": 10, "new": 11}}],
//	   "latency_ms": {"legacy": {"p50": 12, "p99": 40},
//	                  "new": {"p50": 9, "p99": 31}}}]}
//
// Rates share one denominator, compared (every pair, errors included);
// match_rate counts matched and noise-only pairs as matching, to 4
// decimals, and is 1 only when every pair matches. A field's
// count is how many pairs differed at that path pattern (indices shown as
// [*]) with that kind; noise fields differ between two answers of the same
// side too and do not make a pair differ. Latencies are nearest-rank
// percentiles in milliseconds of the answers received, within 1 %.
type Report struct {
	Generated time.Time     `json:"generated"`
	Since     time.Time     `json:"since,omitzero"`
	Routes    []RouteReport `json:"routes"`
}

// RouteReport is one route's part of a Report.
type RouteReport struct {
	Route     string        `json:"route"`
	Compared  int64         `json:"compared"`
	Matched   int64         `json:"matched"`
	Diffs     int64         `json:"diffs"`
	NoiseOnly int64         `json:"noise_only"`
	Errors    int64         `json:"errors"`
	MatchRate float64       `json:"match_rate"`
	Fields    []FieldReport `json:"fields"`
	LatencyMS Latencies     `json:"latency_ms"`
}

// FieldReport is one differing field path pattern of a route.
type FieldReport struct {
	Path    string        `json:"path"`
	Count   int64         `json:"count"`
	Kind    diff.Kind     `json:"kind"`
	Noise   bool          `json:"noise"`
	Example *FieldExample `json:"example,omitempty"`
}

// FieldExample is the latest kept example of a field's difference,
// redacted.
//
// Legacy and New are null both for a JSON null and for a side that has no
// value, which the field's kind tells apart (legacy of "extra", new of
// "missing"). For kind "more" (line differences of a text body summed up)
// both are null and Lines says how many lines the example summed up.
type FieldExample struct {
	Time   time.Time `json:"time"`
	URL    string    `json:"url"`
	Legacy any       `json:"legacy"`
	New    any       `json:"new"`
	Lines  int       `json:"lines,omitempty"`
	kind   diff.Kind // of the example's difference, for rendering "(absent)"
}

// Latencies compares both sides' answer times.
type Latencies struct {
	Legacy Percentiles `json:"legacy"`
	New    Percentiles `json:"new"`
}

// Percentiles of a latency distribution, in milliseconds (0 without data).
type Percentiles struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

// Clean reports whether no route has a difference that is not noise and no
// pair failed to compare: the state in which a ramp may go on.
func (r *Report) Clean() bool {
	for _, rt := range r.Routes {
		if rt.Diffs > 0 || rt.Errors > 0 {
			return false
		}
	}
	return true
}

// Report aggregates the stored outcomes selected by q. It reads only the
// per-minute aggregates and one example per field, so its cost does not
// grow with the number of outcomes.
func (s *Store) Report(ctx context.Context, q Query) (*Report, error) {
	rep := &Report{Generated: s.now().UTC(), Routes: []RouteReport{}}
	minute := int64(math.MinInt64)
	if !q.Since.IsZero() {
		minute = floorDiv(q.Since.UnixNano(), nanosPerMin)
		rep.Since = time.Unix(0, minute*nanosPerMin).UTC()
	}
	byRoute := map[string]*RouteReport{}
	rows, err := s.db.QueryContext(ctx, `SELECT route, SUM(compared), SUM(matched), SUM(diffs), SUM(noise_only), SUM(errors)
		FROM route_minutes WHERE minute >= ? AND (? = '' OR route = ?) GROUP BY route ORDER BY route`, minute, q.Route, q.Route)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	for rows.Next() {
		var r RouteReport
		if err := rows.Scan(&r.Route, &r.Compared, &r.Matched, &r.Diffs, &r.NoiseOnly, &r.Errors); err != nil {
			rows.Close()
			return nil, fmt.Errorf("report: %w", err)
		}
		r.MatchRate = matchRate(r.Matched+r.NoiseOnly, r.Compared)
		r.Fields = []FieldReport{}
		rep.Routes = append(rep.Routes, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	for i := range rep.Routes {
		byRoute[rep.Routes[i].Route] = &rep.Routes[i]
	}
	if err := s.reportFields(ctx, q, minute, byRoute); err != nil {
		return nil, err
	}
	if err := s.reportLatency(ctx, q, minute, byRoute); err != nil {
		return nil, err
	}
	for _, r := range byRoute {
		for i := range r.Fields {
			ex, err := s.fieldExample(ctx, r.Route, r.Fields[i].Path, r.Fields[i].Kind)
			if err != nil {
				return nil, err
			}
			r.Fields[i].Example = ex
		}
	}
	return rep, nil
}

func (s *Store) reportFields(ctx context.Context, q Query, minute int64, byRoute map[string]*RouteReport) error {
	rows, err := s.db.QueryContext(ctx, `SELECT route, field, kind, noise, SUM(count) FROM field_minutes
		WHERE minute >= ? AND (? = '' OR route = ?) GROUP BY route, field, kind, noise`, minute, q.Route, q.Route)
	if err != nil {
		return fmt.Errorf("report fields: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var route string
		var f FieldReport
		if err := rows.Scan(&route, &f.Path, &f.Kind, &f.Noise, &f.Count); err != nil {
			return fmt.Errorf("report fields: %w", err)
		}
		if r := byRoute[route]; r != nil && f.Count > 0 {
			r.Fields = append(r.Fields, f)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("report fields: %w", err)
	}
	for _, r := range byRoute {
		slices.SortFunc(r.Fields, compareFields)
	}
	return nil
}

// matchRate is matching/compared rounded to 4 decimals (0 for nothing
// compared), except that it is 1 only when every pair matches and 0 only
// when none does: one differing pair in 100,000 is not rounded away.
func matchRate(matching, compared int64) float64 {
	if compared <= 0 {
		return 0
	}
	r := math.Round(float64(matching)/float64(compared)*1e4) / 1e4
	switch {
	case matching < compared && r >= 1:
		return 0.9999
	case matching > 0 && r <= 0:
		return 0.0001
	}
	return r
}

// compareFields orders differences before noise, then by count (highest
// first), path and kind.
func compareFields(a, b FieldReport) int {
	if a.Noise != b.Noise {
		if a.Noise {
			return 1
		}
		return -1
	}
	return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Path, b.Path), cmp.Compare(a.Kind, b.Kind))
}

func (s *Store) reportLatency(ctx context.Context, q Query, minute int64, byRoute map[string]*RouteReport) error {
	rows, err := s.db.QueryContext(ctx, `SELECT route, side, bin, SUM(count) FROM latency_minutes
		WHERE minute >= ? AND (? = '' OR route = ?) GROUP BY route, side, bin ORDER BY route, side, bin`, minute, q.Route, q.Route)
	if err != nil {
		return fmt.Errorf("report latency: %w", err)
	}
	defer rows.Close()
	type key struct {
		route string
		side  int
	}
	hist := map[key][][2]int64{}
	for rows.Next() {
		var k key
		var bin, n int64
		if err := rows.Scan(&k.route, &k.side, &bin, &n); err != nil {
			return fmt.Errorf("report latency: %w", err)
		}
		if n > 0 {
			hist[k] = append(hist[k], [2]int64{bin, n})
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("report latency: %w", err)
	}
	for k, h := range hist {
		r := byRoute[k.route]
		if r == nil {
			continue
		}
		p := Percentiles{P50: percentile(h, 50), P99: percentile(h, 99)}
		if k.side == latencyLegacy {
			r.LatencyMS.Legacy = p
		} else {
			r.LatencyMS.New = p
		}
	}
	return nil
}

// percentile is the nearest-rank percentile of a histogram of
// (microseconds, count) sorted by value, in milliseconds.
func percentile(h [][2]int64, p float64) float64 {
	var total int64
	for _, b := range h {
		total += b[1]
	}
	if total == 0 {
		return 0
	}
	rank := int64(math.Ceil(p / 100 * float64(total)))
	var seen int64
	for _, b := range h {
		seen += b[1]
		if seen >= rank {
			return float64(b[0]) / 1000
		}
	}
	return float64(h[len(h)-1][0]) / 1000
}

func (s *Store) fieldExample(ctx context.Context, route, field string, kind diff.Kind) (*FieldExample, error) {
	var at int64
	var url, dj string
	err := s.db.QueryRowContext(ctx, `SELECT e.at, e.url, f.difference FROM example_fields f JOIN examples e ON e.id = f.example_id
		WHERE f.route = ? AND f.field = ? ORDER BY f.kind = ? DESC, e.at DESC, e.id DESC LIMIT 1`, route, field, string(kind)).Scan(&at, &url, &dj)
	if err == sql.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("report example: %w", err)
	}
	var d diff.Difference
	if err := decodeStored(dj, &d); err != nil {
		return nil, fmt.Errorf("report example: %w", err)
	}
	return &FieldExample{Time: time.Unix(0, at).UTC(), URL: url, Legacy: d.Legacy, New: d.New, Lines: d.Lines, kind: d.Kind}, nil
}

// decodeStored decodes stored JSON into v keeping numbers as written
// (json.Number), so that two 64-bit IDs that differ in their last digit
// are not shown as one float64.
func decodeStored(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	return dec.Decode(v)
}

// Example is one stored compared pair, redacted, kept because it showed a
// difference at a field path pattern.
type Example struct {
	Time        time.Time         `json:"time"`
	Route       string            `json:"route"`
	Method      string            `json:"method"`
	Pattern     string            `json:"pattern"`
	URL         string            `json:"url"`
	Verdict     diff.Verdict      `json:"verdict"`
	Legacy      ExampleSide       `json:"legacy"`
	New         ExampleSide       `json:"new"`
	Differences []diff.Difference `json:"differences"`
}

// ExampleSide is one side's answer in an Example. Body is text (invalid
// UTF-8 replaced), so the stored bytes are searchable and readable.
type ExampleSide struct {
	Backend   string              `json:"backend"`
	Status    int                 `json:"status"`
	LatencyMS float64             `json:"latency_ms"`
	Header    map[string][]string `json:"header,omitempty"`
	Body      string              `json:"body"`
	Truncated bool                `json:"truncated,omitempty"`
	Err       string              `json:"error,omitempty"`
}

func exampleOf(o *diff.Outcome) Example {
	side := func(r diff.Response) ExampleSide {
		return ExampleSide{Backend: r.Backend, Status: r.Status, LatencyMS: float64(r.Latency.Microseconds()) / 1000,
			Header: r.Header, Body: string(r.Body), Truncated: r.Truncated, Err: r.Err}
	}
	return Example{Time: o.Time.UTC(), Route: o.Route, Method: o.Method, Pattern: o.Path, URL: o.URL,
		Verdict: verdictOf(o), Legacy: side(o.Legacy), New: side(o.New), Differences: o.Differences}
}

// Examples returns the kept examples of a route's field path pattern,
// newest first.
func (s *Store) Examples(ctx context.Context, route, field string) ([]Example, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT e.outcome FROM example_fields f JOIN examples e ON e.id = f.example_id
		WHERE f.route = ? AND f.field = ? ORDER BY e.at DESC, e.id DESC`, route, field)
	if err != nil {
		return nil, fmt.Errorf("examples: %w", err)
	}
	defer rows.Close()
	var out []Example
	for rows.Next() {
		var js string
		if err := rows.Scan(&js); err != nil {
			return nil, fmt.Errorf("examples: %w", err)
		}
		var e Example
		if err := decodeStored(js, &e); err != nil {
			return nil, fmt.Errorf("examples: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// point is one step of a route's match rate over time.
type point struct {
	At       time.Time
	Compared int64
	Matching int64 // matched + noise-only
}

// series returns per route the compared and matching counts in steps of
// step from since on.
func (s *Store) series(ctx context.Context, since time.Time, step time.Duration) (map[string][]point, error) {
	from := floorDiv(since.UnixNano(), nanosPerMin)
	stepMin := max(int64(step/time.Minute), 1)
	rows, err := s.db.QueryContext(ctx, `SELECT route, minute, compared, matched + noise_only FROM route_minutes
		WHERE minute >= ? ORDER BY route, minute`, from)
	if err != nil {
		return nil, fmt.Errorf("dashboard series: %w", err)
	}
	defer rows.Close()
	out := map[string][]point{}
	for rows.Next() {
		var route string
		var minute, compared, matching int64
		if err := rows.Scan(&route, &minute, &compared, &matching); err != nil {
			return nil, fmt.Errorf("dashboard series: %w", err)
		}
		b := from + (minute-from)/stepMin*stepMin
		at := time.Unix(0, b*nanosPerMin).UTC()
		ps := out[route]
		if n := len(ps); n > 0 && ps[n-1].At.Equal(at) {
			ps[n-1].Compared += compared
			ps[n-1].Matching += matching
		} else {
			ps = append(ps, point{At: at, Compared: compared, Matching: matching})
		}
		out[route] = ps
	}
	return out, rows.Err()
}
