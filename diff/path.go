package diff

import (
	"fmt"
	"strconv"
	"strings"
)

// A segment is one step of a JSON path: an object key or an array index.
// Patterns add two more: any one key or index (*), and "any depth before
// the next segment" (..), which is kept as a flag on that next segment.
type segKind uint8

const (
	segKey segKind = iota
	segIndex
	segAny
)

type seg struct {
	kind  segKind
	key   string
	index int
}

// maxPatternSegments bounds a pattern so matching can use a uint64 state set.
const maxPatternSegments = 63

// token is one pattern step; skip means ".." came before it: any number of
// path segments may be skipped before this one matches.
type token struct {
	seg
	skip bool
}

// pattern is a compiled JSON path pattern. It is immutable and safe for
// concurrent use.
type pattern struct {
	src     string
	toks    []token
	hasSkip bool
	wild    bool // contains * or ..
}

func (t token) matches(s seg) bool {
	switch t.kind {
	case segAny:
		return true
	case segKey:
		return s.kind == segKey && s.key == t.key
	default:
		return s.kind == segIndex && s.index == t.index
	}
}

// match reports whether the pattern matches path exactly or, with prefix,
// whether it matches path or one of its ancestors ("at or below").
func (p *pattern) match(path []seg, prefix bool) bool {
	n := len(p.toks)
	if !p.hasSkip {
		if len(path) < n || (!prefix && len(path) != n) {
			return false
		}
		for i, t := range p.toks {
			if !t.matches(path[i]) {
				return false
			}
		}
		return true
	}
	// NFA simulation: bit j set = "about to match token j"; bit n = done.
	accept := uint64(1) << n
	active := uint64(1)
	for _, s := range path {
		if prefix && active&accept != 0 {
			return true
		}
		var next uint64
		for j := 0; j < n; j++ {
			if active&(1<<j) == 0 {
				continue
			}
			t := p.toks[j]
			if t.skip {
				next |= 1 << j
			}
			if t.matches(s) {
				next |= 1 << (j + 1)
			}
		}
		active = next
		if active == 0 {
			return false
		}
	}
	return active&accept != 0
}

// parsePattern parses a JSON path pattern:
//
//	$                 the root
//	.name  ["name"]  ['name']   an object key (quoted form for any key)
//	[3]               an array index
//	.*  [*]           any one key or index
//	..name  ..*  ..[3]  ..["name"]   the step after .. may be preceded by any
//	                  number of segments (any depth)
func parsePattern(s string) (*pattern, error) {
	p := &pattern{src: s}
	if !strings.HasPrefix(s, "$") {
		return nil, fmt.Errorf("must start with $")
	}
	i := 1
	pendingSkip := false // ".." was read and its step is a bracket
	for i < len(s) {
		skip := false
		switch s[i] {
		case '.':
			if pendingSkip {
				return nil, fmt.Errorf("\"...\" at offset %d", i-2)
			}
			i++
			if i < len(s) && s[i] == '.' {
				skip = true
				i++
				if i >= len(s) {
					return nil, fmt.Errorf("\"..\" must be followed by a name, * or [...]")
				}
				if s[i] == '.' {
					return nil, fmt.Errorf("\"...\" at offset %d", i-2)
				}
			}
			if i < len(s) && s[i] == '[' {
				if !skip {
					return nil, fmt.Errorf("\".[\" at offset %d: write [ without the dot", i-1)
				}
				pendingSkip = true
				continue // the bracket is parsed next round, with skip
			}
			j := i
			for j < len(s) && s[j] != '.' && s[j] != '[' && s[j] != ']' {
				j++
			}
			if j == i {
				return nil, fmt.Errorf("empty name at offset %d", i)
			}
			name := s[i:j]
			t := token{seg: seg{kind: segKey, key: name}, skip: skip}
			if name == "*" {
				t.seg = seg{kind: segAny}
			}
			p.add(t)
			i = j
		case '[':
			t, n, err := parseBracket(s[i:])
			if err != nil {
				return nil, fmt.Errorf("offset %d: %w", i, err)
			}
			t.skip, pendingSkip = pendingSkip, false
			p.add(t)
			i += n
		default:
			return nil, fmt.Errorf("unexpected %q at offset %d", s[i], i)
		}
		if len(p.toks) > maxPatternSegments {
			return nil, fmt.Errorf("more than %d segments", maxPatternSegments)
		}
	}
	return p, nil
}

func (p *pattern) add(t token) {
	p.toks = append(p.toks, t)
	if t.skip {
		p.hasSkip = true
		p.wild = true
	}
	if t.kind == segAny {
		p.wild = true
	}
}

// parseBracket parses "[...]" at the start of s and returns the token and
// the number of bytes consumed.
func parseBracket(s string) (token, int, error) {
	if len(s) < 2 {
		return token{}, 0, fmt.Errorf("unterminated [")
	}
	switch c := s[1]; {
	case c == '*':
		if len(s) < 3 || s[2] != ']' {
			return token{}, 0, fmt.Errorf("[* must be followed by ]")
		}
		return token{seg: seg{kind: segAny}}, 3, nil
	case c >= '0' && c <= '9':
		j := 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j >= len(s) || s[j] != ']' {
			return token{}, 0, fmt.Errorf("index must be digits followed by ]")
		}
		digits := s[1:j]
		if len(digits) > 1 && digits[0] == '0' {
			return token{}, 0, fmt.Errorf("index %s has a leading zero", digits)
		}
		n, err := strconv.Atoi(digits)
		if err != nil || int64(n) > 1<<31 {
			return token{}, 0, fmt.Errorf("index %s too large", digits)
		}
		return token{seg: seg{kind: segIndex, index: n}}, j + 1, nil
	case c == '"' || c == '\'':
		j := 2
		for j < len(s) && s[j] != c {
			if s[j] == '\\' {
				j++
			}
			j++
		}
		if j >= len(s) {
			return token{}, 0, fmt.Errorf("unterminated quoted key")
		}
		if j+1 >= len(s) || s[j+1] != ']' {
			return token{}, 0, fmt.Errorf("quoted key must be followed by ]")
		}
		var key string
		if c == '"' {
			k, err := strconv.Unquote(s[1 : j+1])
			if err != nil {
				return token{}, 0, fmt.Errorf("bad quoted key %s", s[1:j+1])
			}
			key = k
		} else {
			k, err := unquoteSingle(s[2:j])
			if err != nil {
				return token{}, 0, err
			}
			key = k
		}
		return token{seg: seg{kind: segKey, key: key}}, j + 2, nil
	default:
		return token{}, 0, fmt.Errorf("bracket must hold *, an index or a quoted key")
	}
}

// unquoteSingle undoes the escapes allowed in a single-quoted key: \' and \\.
func unquoteSingle(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			if i+1 >= len(s) || (s[i+1] != '\'' && s[i+1] != '\\') {
				return "", fmt.Errorf(`single-quoted key allows only \' and \\ escapes`)
			}
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String(), nil
}

// isIdent reports whether key can be written as .key in a path.
func isIdent(key string) bool {
	if key == "" {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return true
}

// renderPath writes segments as "$.a[2]["odd key"]"; segAny renders as [*].
func renderPath(segs []seg) string {
	n := 1
	for _, s := range segs {
		n += len(s.key) + 4
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteByte('$')
	for _, s := range segs {
		switch s.kind {
		case segKey:
			if isIdent(s.key) {
				b.WriteByte('.')
				b.WriteString(s.key)
			} else {
				b.WriteByte('[')
				b.WriteString(strconv.Quote(s.key))
				b.WriteByte(']')
			}
		case segIndex:
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.index))
			b.WriteByte(']')
		default:
			b.WriteString("[*]")
		}
	}
	return b.String()
}

// Pattern turns a difference path into its pattern by replacing every array
// index, and every object key that is an id (digits, a UUID, or 16 or more
// hex digits), with [*]: "$.items[2].price" and "$.orders['1042'].price"
// become "$.items[*].price" and "$.orders[*].price", so an object keyed by
// ids is one field in reports and noise, not one per id. Paths that are
// not JSON paths ("status", "header.Content-Type", "body:L3") are returned
// unchanged.
func Pattern(path string) string {
	if !strings.HasPrefix(path, "$") || !strings.ContainsAny(path, "[0123456789") {
		return path
	}
	p, err := parsePattern(path)
	if err != nil || p.wild {
		return path
	}
	segs := make([]seg, len(p.toks))
	for i, t := range p.toks {
		segs[i] = t.seg
		if t.kind == segIndex || t.kind == segKey && idKey(t.key) {
			segs[i] = seg{kind: segAny}
		}
	}
	return renderPath(segs)
}

// idKey reports whether an object key looks like an id rather than a
// field name: all digits, a UUID, or 16 or more hex digits.
func idKey(k string) bool {
	if k == "" {
		return false
	}
	digits, hexes, dashes := 0, 0, 0
	for i := 0; i < len(k); i++ {
		switch c := k[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F':
			hexes++
		case c == '-':
			dashes++
		default:
			return false
		}
	}
	switch {
	case digits == len(k):
		return true
	case len(k) == 36 && dashes == 4 && k[8] == '-' && k[13] == '-' && k[18] == '-' && k[23] == '-':
		return true
	}
	return dashes == 0 && len(k) >= 16
}

// PathPattern is a compiled JSON path pattern, as used by Rules.Ignore, for
// callers that match paths themselves (such as redaction). It is safe for
// concurrent use.
type PathPattern struct{ p *pattern }

// CompilePath parses a JSON path pattern ("$.meta.request_id",
// "$..card_number", "$.items[*].etag").
func CompilePath(s string) (*PathPattern, error) {
	p, err := parsePattern(s)
	if err != nil {
		return nil, &RuleError{Field: "path", Path: s, Reason: err.Error()}
	}
	return &PathPattern{p: p}, nil
}

// String returns the pattern as written.
func (pp *PathPattern) String() string { return pp.p.src }

// Match reports whether the concrete path (as found in Difference.Path) is
// matched by the pattern exactly.
func (pp *PathPattern) Match(path string) bool {
	segs, ok := parseConcrete(path)
	return ok && pp.p.match(segs, false)
}

// Covers reports whether the path is matched by the pattern or lies below a
// path that is ("$..email" covers "$.user.email.primary").
func (pp *PathPattern) Covers(path string) bool {
	segs, ok := parseConcrete(path)
	return ok && pp.p.match(segs, true)
}

// parseConcrete parses a path without wildcards into segments.
func parseConcrete(path string) ([]seg, bool) {
	p, err := parsePattern(path)
	if err != nil || p.wild {
		return nil, false
	}
	segs := make([]seg, len(p.toks))
	for i, t := range p.toks {
		segs[i] = t.seg
	}
	return segs, true
}
