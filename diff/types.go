// Package diff compares two answers to the same request — legacy and new —
// field by field, with per-route rules and learned noise, and says whether
// they match. It knows nothing of HTTP servers or MySQL: callers hand it
// status codes, headers and bodies (or, later, row sets).
package diff

import "time"

// Kind says how two values differ at a path.
type Kind string

// Kinds of difference.
const (
	Changed Kind = "changed" // both present, different values
	Missing Kind = "missing" // present in legacy, absent in new
	Extra   Kind = "extra"   // absent in legacy, present in new
	Type    Kind = "type"    // different JSON types (string vs number, object vs array...)
	Order   Kind = "order"   // same elements, different order (ordered array)
	// More sums up differences not listed one by one: line differences
	// of a text body (beyond what a comparison reports or a report
	// shows), or, at "rows", a result set's row differences past
	// CompareRows' cap. Lines says how many; it has no values.
	More Kind = "more"
)

// Difference is one place where legacy and new disagree.
type Difference struct {
	// Path is a JSON path into the body ("$.items[2].price"), "status",
	// "header.Content-Type", or "body" / "body:L12" for non-JSON bodies
	// ("body:L12.3": the third piece of an HTML line split between tags;
	// "body" with Kind More: the lines not listed).
	Path   string `json:"path"`
	Kind   Kind   `json:"kind"`
	Legacy any    `json:"legacy,omitempty"`
	New    any    `json:"new,omitempty"`
	// Lines is, for a More difference, how many differences it sums up
	// (text lines, or result-set row differences); 0 for every other kind.
	Lines int `json:"lines,omitempty"`
	// Noise is set when the path was learned as noise (it also differs
	// between two answers of the legacy side to the same request).
	Noise bool `json:"noise,omitempty"`
}

// Verdict is the outcome of one comparison.
type Verdict string

// Verdicts.
const (
	Match     Verdict = "match"      // no differences
	Diff      Verdict = "diff"       // at least one difference that is not noise
	NoiseOnly Verdict = "noise-only" // differences, all of them noise
	Error     Verdict = "error"      // one side could not be compared (transport error, timeout)
)

// Response is one side's answer, as captured by the caller.
type Response struct {
	Backend string              `json:"backend"`
	Status  int                 `json:"status"`
	Header  map[string][]string `json:"header,omitempty"` // canonical keys
	Body    []byte              `json:"body,omitempty"`
	// Truncated is set when Body was capped; a truncated body is compared
	// only up to the cap and never as JSON.
	Truncated bool          `json:"truncated,omitempty"`
	Latency   time.Duration `json:"latency_ns"`
	// Err is set when no answer came (timeout, refused, reset).
	Err string `json:"error,omitempty"`
}

// Outcome is one compared pair, the unit that reports store.
type Outcome struct {
	Time time.Time `json:"time"`
	// Route is the route's name, Method the request method and Path the
	// route's path pattern (template or prefix, not the raw URL).
	Route       string       `json:"route"`
	Method      string       `json:"method"`
	Path        string       `json:"path"`
	URL         string       `json:"url"` // the request's path and query, for examples
	Legacy      Response     `json:"legacy"`
	New         Response     `json:"new"`
	Verdict     Verdict      `json:"verdict"`
	Differences []Difference `json:"differences,omitempty"`
}
