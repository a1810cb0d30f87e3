package diff

import (
	"strconv"
	"strings"
)

// maxLineDiffs is how many line differences a text comparison reports
// before summing up the rest in one More difference at "body". It is well above
// what a report shows (maxShownLines) so that noise is learned, and
// judged, line by line on long pages too.
const maxLineDiffs = 1000

// maxShownLines is how many line differences, of those that are noise and
// of those that are not, Judge keeps; it sums up the rest in one More
// difference at "body".
const maxShownLines = 20

// maxEdits bounds the Myers search; beyond it lines are paired by position.
const maxEdits = 256

// line is one normalised line, its line number in the original body and,
// for HTML split between tags, which piece of that line it is (1-based).
type line struct {
	text  string
	no    int
	piece int
}

// path is the line's difference path: "body:L12", or "body:L12.3" for
// the third piece of an HTML line split between tags, so that each piece
// of a one-line (minified) page is its own place in reports and noise.
func (l line) path() string {
	if l.piece <= 1 {
		return bodyLine(l.no)
	}
	return bodyLine(l.no) + "." + strconv.Itoa(l.piece)
}

// normalizeText splits a body into comparable lines: CRLF and CR become LF,
// trailing spaces and tabs are trimmed, runs of blank lines collapse to one
// and trailing blank lines are dropped. For HTML, leading whitespace and
// blank lines are dropped too, and a line is split between adjacent tags
// ("<ul><li>" is "<ul>" and "<li>"), so whitespace between tags, including
// line breaks, does not count.
func normalizeText(s string, html bool) []line {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	var out []line
	blank := false
	no := 0
	for raw := range strings.SplitSeq(s, "\n") {
		no++
		t := strings.TrimRight(raw, " \t")
		if html {
			t = strings.TrimLeft(t, " \t")
			if t == "" {
				continue
			}
			for piece := 1; t != ""; piece++ {
				i := tagBoundary(t)
				out = append(out, line{text: t[:i], no: no, piece: piece})
				t = strings.TrimLeft(t[i:], " \t")
			}
			continue
		}
		if t == "" {
			if blank {
				continue
			}
			blank = true
		} else {
			blank = false
		}
		out = append(out, line{text: t, no: no})
	}
	for len(out) > 0 && out[len(out)-1].text == "" {
		out = out[:len(out)-1]
	}
	return out
}

// tagBoundary returns the end of the first piece of t that ends with '>'
// followed by optional spaces and '<', or len(t).
func tagBoundary(t string) int {
	for i := 0; i < len(t); i++ {
		if t[i] != '>' {
			continue
		}
		j := i + 1
		for j < len(t) && (t[j] == ' ' || t[j] == '\t') {
			j++
		}
		if j < len(t) && t[j] == '<' {
			return i + 1
		}
	}
	return len(t)
}

type opKind uint8

const (
	opEqual opKind = iota
	opDelete
	opInsert
)

type edit struct {
	op   opKind
	a, b int // line indices in a and b (a for equal/delete, b for equal/insert)
}

// compareText appends a compact line diff of two non-JSON bodies.
func compareText(diffs []Difference, a, b string, html bool) []Difference {
	la, lb := normalizeText(a, html), normalizeText(b, html)
	edits := lineEdits(la, lb)
	reported := 0
	total := 0
	add := func(d Difference) {
		total++
		if reported < maxLineDiffs {
			reported++
			diffs = append(diffs, d)
		}
	}
	// legacyPath is the legacy line's path at edit position ai: the line
	// itself, or for an insertion the legacy line it comes before.
	legacyPath := func(ai int) string {
		if ai < len(la) {
			return la[ai].path()
		}
		if len(la) == 0 {
			return bodyLine(1)
		}
		return bodyLine(la[len(la)-1].no + 1)
	}
	for i := 0; i < len(edits); {
		if edits[i].op == opEqual {
			i++
			continue
		}
		// A hunk: deletes and inserts between two equal lines.
		var dels, ins []edit
		pos := edits[i].a
		for ; i < len(edits) && edits[i].op != opEqual; i++ {
			if edits[i].op == opDelete {
				dels = append(dels, edits[i])
			} else {
				ins = append(ins, edits[i])
			}
		}
		if len(dels) > 0 {
			pos = dels[0].a
		}
		for k := 0; k < max(len(dels), len(ins)); k++ {
			switch {
			case k < len(dels) && k < len(ins):
				add(Difference{Path: la[dels[k].a].path(), Kind: Changed, Legacy: la[dels[k].a].text, New: lb[ins[k].b].text})
			case k < len(dels):
				add(Difference{Path: la[dels[k].a].path(), Kind: Missing, Legacy: la[dels[k].a].text})
			default:
				add(Difference{Path: legacyPath(pos + len(dels)), Kind: Extra, New: lb[ins[k].b].text})
			}
		}
	}
	if total > reported {
		diffs = append(diffs, Difference{Path: "body", Kind: More, Lines: total - reported})
	}
	return diffs
}

func bodyLine(no int) string { return "body:L" + strconv.Itoa(no) }

// lineEdits returns an edit script from a to b. The common prefix and
// suffix are matched first; the middle uses Myers' algorithm, or pairs
// lines by position when it needs more than maxEdits edits.
func lineEdits(a, b []line) []edit {
	var edits []edit
	p := 0
	for p < len(a) && p < len(b) && a[p].text == b[p].text {
		edits = append(edits, edit{op: opEqual, a: p, b: p})
		p++
	}
	s := 0
	for s < len(a)-p && s < len(b)-p && a[len(a)-1-s].text == b[len(b)-1-s].text {
		s++
	}
	ma, mb := a[p:len(a)-s], b[p:len(b)-s]
	mid, ok := myers(ma, mb, maxEdits)
	if !ok {
		mid = positional(ma, mb)
	}
	for _, e := range mid {
		e.a += p
		e.b += p
		edits = append(edits, e)
	}
	for k := 0; k < s; k++ {
		edits = append(edits, edit{op: opEqual, a: len(a) - s + k, b: len(b) - s + k})
	}
	return edits
}

// positional pairs lines by index: differing pairs become delete+insert.
func positional(a, b []line) []edit {
	var edits []edit
	for i := 0; i < max(len(a), len(b)); i++ {
		switch {
		case i < len(a) && i < len(b) && a[i].text == b[i].text:
			edits = append(edits, edit{op: opEqual, a: i, b: i})
		case i < len(a) && i < len(b):
			edits = append(edits, edit{op: opDelete, a: i, b: i}, edit{op: opInsert, a: i + 1, b: i})
		case i < len(a):
			edits = append(edits, edit{op: opDelete, a: i, b: len(b)})
		default:
			edits = append(edits, edit{op: opInsert, a: len(a), b: i})
		}
	}
	return edits
}

// myers computes a shortest edit script, giving up (ok false) beyond
// limit edits. Memory is O(limit²).
func myers(a, b []line, limit int) ([]edit, bool) {
	n, m := len(a), len(b)
	limit = min(limit, n+m)
	off := limit + 1
	v := make([]int, 2*limit+3)
	var trace [][]int
	for d := 0; d <= limit; d++ {
		trace = append(trace, append([]int(nil), v...))
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
				x = v[off+k+1]
			} else {
				x = v[off+k-1] + 1
			}
			y := x - k
			for x < n && y < m && a[x].text == b[y].text {
				x++
				y++
			}
			v[off+k] = x
			if x >= n && y >= m {
				return backtrack(trace, off, n, m), true
			}
		}
	}
	return nil, false
}

func backtrack(trace [][]int, off, x, y int) []edit {
	var rev []edit
	for d := len(trace) - 1; d > 0; d-- {
		v := trace[d]
		k := x - y
		var pk int
		if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
			pk = k + 1
		} else {
			pk = k - 1
		}
		px := v[off+pk]
		py := px - pk
		for x > px && y > py {
			x--
			y--
			rev = append(rev, edit{op: opEqual, a: x, b: y})
		}
		if pk == k+1 {
			y--
			rev = append(rev, edit{op: opInsert, a: x, b: y})
		} else {
			x--
			rev = append(rev, edit{op: opDelete, a: x, b: y})
		}
	}
	for x > 0 && y > 0 {
		x--
		y--
		rev = append(rev, edit{op: opEqual, a: x, b: y})
	}
	edits := make([]edit, len(rev))
	for i, e := range rev {
		edits[len(rev)-1-i] = e
	}
	return edits
}
