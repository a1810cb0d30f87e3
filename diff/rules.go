package diff

import (
	"errors"
	"fmt"
	"net/textproto"
	"sort"
	"strings"
)

// DefaultHeaders are the headers compared when Rules.Headers is nil. Date,
// Set-Cookie, Server and the like differ on every answer and are compared
// only when a route lists them. Treat it as read-only.
var DefaultHeaders = []string{"Content-Type"}

// Rules configure one route's comparison. The zero value compares status,
// DefaultHeaders and the whole body strictly.
type Rules struct {
	// Headers are the header names compared. Nil means DefaultHeaders; an
	// empty, non-nil slice compares no header.
	Headers []string
	// Ignore lists JSON path patterns whose differences, at the path and
	// below it, are dropped. Patterns start at $ and may use * (any one key
	// or index) and .. (any depth): "$.meta.request_id", "$..updated_at",
	// "$.items[*].etag", "$.*.debug", `$["odd key"]`.
	Ignore []string
	// Unordered maps array path patterns to a key field. With an empty key
	// the arrays compare as multisets of whole values, and objects left
	// unmatched on both sides that are each other's best match by the
	// members they share are compared field by field; with a key ("sku")
	// elements are paired by that field's value (when a value repeats, an
	// equal element of that value first) and each pair is compared,
	// with differences reported at the legacy element's index. Unpaired
	// elements are Missing (at the legacy index) or Extra (at the new index).
	Unordered map[string]string
	// Tolerance maps number path patterns to how far apart the numbers may
	// be. If several patterns match a path, being within any one suffices.
	Tolerance map[string]Tolerance
	// Timestamps makes two strings equal when both are timestamps of the
	// same instant. Recognised formats (a fraction of a second is accepted
	// after the seconds in each; a time without a zone is taken as UTC):
	// RFC 3339 / RFC3339Nano ("2006-01-02T15:04:05.999Z07:00"),
	// "2006-01-02T15:04:05", "2006-01-02 15:04:05" followed by nothing,
	// "Z07:00", " Z07:00" or " -0700", RFC 1123 with a numeric zone or
	// with GMT/UTC (other zone abbreviations are ambiguous and rejected),
	// and unix seconds as exactly 10 digits with an optional fraction.
	Timestamps bool
	// NumericStrings makes a string holding a JSON number ("10.00") equal a
	// number or numeric string of the same value (10); tolerance applies.
	NumericStrings bool
}

// ErrBadRule is wrapped by every RuleError.
var ErrBadRule = errors.New("bad diff rule")

// RuleError is one invalid rule: the field it is in ("ignore", "unordered",
// "tolerance", "headers"), the path or value, and why.
type RuleError struct {
	Field  string
	Path   string
	Reason string
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("diff %s %q: %s", e.Field, e.Path, e.Reason)
}

// Unwrap lets errors.Is(err, ErrBadRule) find a RuleError.
func (e *RuleError) Unwrap() error { return ErrBadRule }

type unorderedRule struct {
	pat *pattern
	key string
}

type toleranceRule struct {
	pat *pattern
	tol Tolerance
}

// Comparer compares answers by one route's Rules. It is immutable and safe
// for concurrent use.
type Comparer struct {
	headers        []string // canonical names
	ignore         []*pattern
	unordered      []unorderedRule
	tolerance      []toleranceRule
	timestamps     bool
	numericStrings bool
}

// Compile validates the rules and prepares them for comparing. The error
// lists every bad rule (errors.Join of *RuleError), not just the first.
func Compile(r Rules) (*Comparer, error) {
	c := &Comparer{timestamps: r.Timestamps, numericStrings: r.NumericStrings}
	var errs []error
	bad := func(field, path, reason string) {
		errs = append(errs, &RuleError{Field: field, Path: path, Reason: reason})
	}

	headers := r.Headers
	if headers == nil {
		headers = DefaultHeaders
	}
	seen := map[string]bool{}
	for _, h := range headers {
		name := strings.TrimSpace(h)
		if name == "" || strings.ContainsAny(name, " :\t\r\n") {
			bad("headers", h, "not a header name")
			continue
		}
		name = textproto.CanonicalMIMEHeaderKey(name)
		if !seen[name] {
			seen[name] = true
			c.headers = append(c.headers, name)
		}
	}

	for _, s := range r.Ignore {
		p, err := parsePattern(s)
		if err != nil {
			bad("ignore", s, err.Error())
			continue
		}
		c.ignore = append(c.ignore, p)
	}

	for _, s := range sortedKeys(r.Unordered) {
		p, err := parsePattern(s)
		if err != nil {
			bad("unordered", s, err.Error())
			continue
		}
		c.unordered = append(c.unordered, unorderedRule{pat: p, key: r.Unordered[s]})
	}
	// Exact patterns win over wildcard ones; otherwise the first in sorted order.
	sort.SliceStable(c.unordered, func(i, j int) bool {
		return !c.unordered[i].pat.wild && c.unordered[j].pat.wild
	})

	for _, s := range sortedKeys(r.Tolerance) {
		p, err := parsePattern(s)
		if err != nil {
			bad("tolerance", s, err.Error())
			continue
		}
		t := r.Tolerance[s]
		if err := t.validate(); err != nil {
			bad("tolerance", s, err.Error())
			continue
		}
		c.tolerance = append(c.tolerance, toleranceRule{pat: p, tol: t})
	}

	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (c *Comparer) ignored(path []seg) bool {
	for _, p := range c.ignore {
		if p.match(path, true) {
			return true
		}
	}
	return false
}

func (c *Comparer) unorderedKey(path []seg) (string, bool) {
	for _, u := range c.unordered {
		if u.pat.match(path, false) {
			return u.key, true
		}
	}
	return "", false
}

func (c *Comparer) withinTolerance(path []seg, a, b string) bool {
	for _, t := range c.tolerance {
		if t.pat.match(path, false) && withinTolerance(a, b, t.tol) {
			return true
		}
	}
	return false
}
