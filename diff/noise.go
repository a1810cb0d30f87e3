package diff

import (
	"encoding/json"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// maxNoisePatterns bounds how many patterns one route learns, so a route
// whose answers vary everywhere cannot grow without limit.
const maxNoisePatterns = 1024

// noiseRule says which differences at one learned pattern are noise.
type noiseRule uint8

const (
	// noiseChanged: the value at the pattern changed between two samples.
	noiseChanged noiseRule = 1 << iota
	// noisePresence: an array element, object member or header at the
	// pattern was there in one sample and not in the other (a list that
	// grew, an optional coupon); only its presence is noise, not what it
	// holds when both sides have it.
	noisePresence
	// noiseType: the value at the pattern was of another JSON type in one
	// sample (a coupon that is null or an object); only a difference
	// between types seen there is noise, not what it holds when both
	// sides have one type.
	noiseType
	// noiseOrder: an ordered array at the pattern held the same elements
	// in another order; only its order is noise, not what its elements
	// hold.
	noiseOrder
)

// lineNoise is what was learned of one text line: how many tokens it has
// and, per token, in how many samples it varied. A later difference in
// that line is noise only when it has as many tokens and differs in none
// but those confirmed to vary, each on its own samples (as a JSON field).
//
// A line is known by its number, which other lines before it move: a
// page that gains a line above it brings another line to that number. So
// the line also keeps its template: each token that was the same in every
// sample learned ("" where one varied, within a sample or between
// samples, as a product's price does from page to page). A difference is
// noise only in a line that still has those tokens where they were;
// another line that happened to land on the number, with as many tokens,
// is compared as it is.
type lineNoise struct {
	vary  []int
	fixed []string
}

// Noise holds what was learned as noise for one route: places where two
// answers of the same side to the same request already differ. It is safe
// for concurrent use; the zero value is not usable, use NewNoise.
//
// A place counts as noise once MinSamples samples showed it varying, and
// at least MinSharePercent of all samples: a few odd answers among
// thousands (a busy legacy answering 200 {"error":"busy"}, which lacks
// every field) do not make the fields they lack noise.
// What is never learned: the status code, the line count of a text body
// ("body"), a whole text line that came or went, what the elements of a
// list whose order varies hold (only its order), and anything from two
// answers whose status codes differ (an error or a flapping backend is not
// noise), whose media types differ, or of which one body is JSON and the
// other not (a maintenance page served with 200 is not noise either). A
// text line learns only which of its tokens vary, each on samples of its
// own, so a line that holds a request id and a total still differs when
// the total does, also after the total once changed between the two
// answers of a sample.
//
// Noise is learned per place and per kind of difference, and never covers
// what lies below the place: a key (or header) that comes and goes makes
// only its coming and going noise, and a value whose JSON type varies (a
// coupon that is null or an object) only a difference between types that
// samples showed there, each as often as a place needs (not a coupon that
// is a string). When both sides have the key, of one type, what it holds
// is still compared, so a discount new gets wrong under an optional
// coupon still differs. A value whose members vary too is learned member
// by member, as they vary. Nor does noise hide more elements (or members)
// coming or going at a place than MinSamples samples showed: a feed that
// gained one entry between two answers makes one entry more or less
// noise, not a new side that answers it empty.
type Noise struct {
	mu       sync.RWMutex
	patterns map[string]noiseRule
	lines    map[string]*lineNoise
	// samples counts, per pattern or line, the samples it varied in; it
	// is noise from MinSamples on, and while that is MinSharePercent of
	// total, so one change that happened to fall between the two answers
	// of one sample (an order updated meanwhile) does not hide that field
	// for good, nor do a few odd answers.
	samples map[string]int
	total   int // samples learned from (calls of Learn)
	// presence holds, per pattern learned from elements or members that
	// came or went, the most that came, or that went, there in one
	// sample, for the MinSamples samples with the most, largest first: a
	// pair in which more came, or more went, than the last of them (what
	// MinSamples samples showed) is not noise there (a feed that gains one
	// entry at a time, answered empty; one sample that lost the whole
	// feed is not enough to hide that).
	presence map[string]*[MinSamples]int
	// types counts, per pattern learned from a value whose type varied
	// and per JSON type (valueType), the samples that showed that type
	// there: a pair with a type that fewer samples than a place needs
	// showed (one odd answer) is not noise there.
	types map[string]*[numTypes]int
}

// MinSamples is how many samples (calls of Learn) must show a place
// varying before its differences count as noise.
const MinSamples = 2

// MinSharePercent is the share of all samples that must show a place
// varying for its differences to count as noise.
const MinSharePercent = 1

// NewNoise returns an empty noise set.
func NewNoise() *Noise {
	return &Noise{patterns: map[string]noiseRule{}, lines: map[string]*lineNoise{}, samples: map[string]int{}, presence: map[string]*[MinSamples]int{}, types: map[string]*[numTypes]int{}}
}

// Learn records diffs (array indices become [*]) as noise, within the
// limits above. The diffs must come from comparing two answers of the same
// side to the same request; two answers of different kinds (status code,
// media type, a JSON body beside one that is not) teach nothing. At most
// 1024 patterns and lines are kept per Noise.
func (n *Noise) Learn(diffs []Difference) {
	for _, d := range diffs {
		if otherAnswer(d) {
			return
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.total++
	seen := map[string]bool{}
	var came, went map[string]int // elements or members per pattern
	types := map[string]uint8{}   // JSON types of values whose type varied, per pattern
	defer func() {
		for p, t := range types {
			n.noteTypes(p, t)
		}
		for k := range seen {
			n.samples[k]++
		}
		for p, c := range came {
			n.notePresence(p, max(c, went[p]))
		}
		for p, c := range went {
			if _, ok := came[p]; !ok {
				n.notePresence(p, c)
			}
		}
	}()
	for _, d := range diffs {
		if strings.HasPrefix(d.Path, "body") {
			if n.learnLine(d) {
				seen[d.Path] = true
			}
			continue
		}
		p := Pattern(d.Path)
		var r noiseRule
		switch {
		case d.Kind == Changed:
			r = noiseChanged
		case d.Kind == Missing || d.Kind == Extra:
			r = noisePresence
		case d.Kind == Order:
			r = noiseOrder
		case d.Kind == Type:
			r = noiseType
		default:
			continue
		}
		if old, ok := n.patterns[p]; ok || n.size() < maxNoisePatterns {
			n.patterns[p] = old | r
			seen[p] = true
			came, went = countPresence(came, went, d, p)
			if d.Kind == Type {
				types[p] |= valueType(d.Legacy) | valueType(d.New)
			}
		}
	}
}

// otherAnswer reports whether d shows two answers of different kinds,
// from which nothing is learned: their status codes differ, their media
// types differ (a maintenance page served with 200 beside JSON), or one
// body is JSON and the other is not.
func otherAnswer(d Difference) bool {
	switch d.Path {
	case "status":
		return true
	case "header.Content-Type":
		l, _ := d.Legacy.(string)
		nv, _ := d.New.(string)
		lt, _, _ := strings.Cut(l, ";")
		nt, _, _ := strings.Cut(nv, ";")
		return d.Kind != Changed || !strings.EqualFold(strings.TrimSpace(lt), strings.TrimSpace(nt))
	case "body":
		return d.Kind == Type
	}
	return false
}

func (n *Noise) size() int { return len(n.patterns) + len(n.lines) }

// notePresence records that c elements or members came, or went, at
// pattern p in one sample.
func (n *Noise) notePresence(p string, c int) {
	top := entry(n.presence, p)
	for i := range top {
		if c > top[i] {
			c, top[i] = top[i], c
		}
	}
}

// entry returns m[p], adding a zero one first when m has none.
func entry[T any](m map[string]*T, p string) *T {
	v := m[p]
	if v == nil {
		v = new(T)
		m[p] = v
	}
	return v
}

// presenceLimit is how many elements or members may come, or go, at
// pattern p in one pair and still be noise: as many as MinSamples
// samples showed.
func (n *Noise) presenceLimit(p string) int {
	if top := n.presence[p]; top != nil {
		return top[MinSamples-1]
	}
	return 0
}

// countPresence counts d, at pattern p, in came when it is Extra and in
// went when it is Missing, making the maps as needed.
func countPresence(came, went map[string]int, d Difference, p string) (map[string]int, map[string]int) {
	switch d.Kind {
	case Extra:
		if came == nil {
			came = map[string]int{}
		}
		came[p]++
	case Missing:
		if went == nil {
			went = map[string]int{}
		}
		went[p]++
	}
	return came, went
}

// Common returns the differences of a that b also has at the same path
// and of the same kind. A caller that learns twice from three answers of
// one request (a, b, c) learns Compare(a, b) and Common(Compare(b, c),
// Compare(a, c)): a place that varies in all three counts twice, while
// one odd answer b, which differs from a and c alike, counts once, as
// does a change that happened between two of the answers.
func Common(a, b []Difference) []Difference {
	type at struct {
		path string
		kind Kind
	}
	in := make(map[at]bool, len(b))
	for _, d := range b {
		in[at{d.Path, d.Kind}] = true
	}
	var out []Difference
	for _, d := range a {
		if in[at{d.Path, d.Kind}] {
			out = append(out, d)
		}
	}
	return out
}

// learnLine learns which tokens of a changed text line vary.
func (n *Noise) learnLine(d Difference) bool {
	lv, lok := d.Legacy.(string)
	nv, nok := d.New.(string)
	if d.Kind != Changed || !lok || !nok || !strings.HasPrefix(d.Path, "body:L") {
		return false
	}
	lt, nt := lineTokens(lv), lineTokens(nv)
	if len(lt) != len(nt) {
		return false
	}
	ln := n.lines[d.Path]
	if ln == nil {
		if n.size() >= maxNoisePatterns {
			return false
		}
		ln = &lineNoise{vary: make([]int, len(lt)), fixed: slices.Clone(lt)}
		n.lines[d.Path] = ln
	}
	if len(ln.vary) != len(lt) {
		return false
	}
	for i := range lt {
		if lt[i] != nt[i] {
			ln.vary[i]++
		}
		if lt[i] != nt[i] || ln.fixed[i] != lt[i] {
			ln.fixed[i] = ""
		}
	}
	return true
}

// confirmed reports whether enough samples, and a large enough share of
// them, showed k varying.
func (n *Noise) confirmed(k string) bool { return n.enough(n.samples[k]) }

// enough reports whether c samples, of all learned from, are enough to
// make a place, or a token of a line, noise.
func (n *Noise) enough(c int) bool {
	return c >= MinSamples && c*100 >= n.total*MinSharePercent
}

// lineTokens splits a text line into runs of letters, digits and the
// characters of base64 and URL encodings ('_', '-', '+', '/', '%'), and
// single other characters; spaces only separate. A nonce or signature
// ("Ab+cD/ef==") is one word however many '+' and '/' it happens to hold,
// so a line that differs only in it keeps its token count.
func lineTokens(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case isWordByte(c):
			j := i + 1
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			out = append(out, s[i:j])
			i = j
		default:
			out = append(out, s[i:i+1])
			i++
		}
	}
	return out
}

func isWordByte(c byte) bool {
	switch c {
	case '_', '-', '+', '/', '%':
		return true
	}
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// Paths returns the learned patterns, sorted; a text line shows as its
// path and the positions of the tokens that vary ("body:L3 tokens 5,9").
func (n *Noise) Paths() []string {
	n.mu.RLock()
	defer n.mu.RUnlock()
	out := make([]string, 0, n.size())
	for p := range n.patterns {
		if n.confirmed(p) {
			out = append(out, p)
		}
	}
	for p, ln := range n.lines {
		if !n.confirmed(p) {
			continue
		}
		var idx []string
		for i, c := range ln.vary {
			if n.enough(c) {
				idx = append(idx, strconv.Itoa(i+1))
			}
		}
		if len(idx) > 0 {
			out = append(out, p+" tokens "+strings.Join(idx, ","))
		}
	}
	sort.Strings(out)
	return out
}

// JSON types as bits, for what Noise.types holds.
const (
	typeNull uint8 = 1 << iota
	typeBool
	typeNumber
	typeString
	typeObject
	typeArray
	typeOther // a value that is none of the above (not from a JSON body)
	numTypes  = iota
)

// noteTypes counts a sample that showed the types (bits) at pattern p.
func (n *Noise) noteTypes(p string, types uint8) {
	c := entry(n.types, p)
	for i := range numTypes {
		if types&(1<<i) != 0 {
			c[i]++
		}
	}
}

// typesSeen reports whether enough samples showed each of types at p.
func (n *Noise) typesSeen(p string, types uint8) bool {
	c := n.types[p]
	if c == nil {
		return false
	}
	for i := range numTypes {
		if types&(1<<i) != 0 && !n.enough(c[i]) {
			return false
		}
	}
	return true
}

// valueType is the JSON type of a value as Compare gives it.
func valueType(v any) uint8 {
	switch v.(type) {
	case nil:
		return typeNull
	case bool:
		return typeBool
	case json.Number, float64, int, int64, uint64:
		return typeNumber
	case string:
		return typeString
	case map[string]any:
		return typeObject
	case []any:
		return typeArray
	}
	return typeOther
}

// nodeType is the JSON type of a decoded value.
func nodeType(n *node) uint8 {
	if n == nil {
		return 0
	}
	switch n.kind {
	case vNull:
		return typeNull
	case vFalse, vTrue:
		return typeBool
	case vNumber:
		return typeNumber
	case vString:
		return typeString
	case vObject:
		return typeObject
	}
	return typeArray
}

// isNoise reports whether d is at a learned pattern and of a kind learned
// there (for a Type difference, between types seen varying there), or is
// a text line that differs only in tokens learned to vary. What was
// learned at a pattern never covers the paths below it.
// p is Pattern(d.Path) and types the JSON types of d's two values (bits).
func (n *Noise) isNoise(d Difference, p string, types uint8) bool {
	if strings.HasPrefix(d.Path, "body") {
		return n.lineIsNoise(d)
	}
	var r noiseRule
	if n.confirmed(p) {
		r = n.patterns[p]
	}
	switch {
	case d.Kind == Changed && r&noiseChanged != 0:
		return true
	case (d.Kind == Missing || d.Kind == Extra) && r&noisePresence != 0:
		return true
	case d.Kind == Order && r&noiseOrder != 0:
		return true
	case d.Kind == Type && r&noiseType != 0:
		return n.typesSeen(p, types)
	}
	return false
}

func (n *Noise) lineIsNoise(d Difference) bool {
	ln := n.lines[d.Path]
	if !n.confirmed(d.Path) {
		return false
	}
	lv, lok := d.Legacy.(string)
	nv, nok := d.New.(string)
	if ln == nil || d.Kind != Changed || !lok || !nok {
		return false
	}
	lt, nt := lineTokens(lv), lineTokens(nv)
	if len(lt) != len(ln.vary) || len(nt) != len(ln.vary) {
		return false
	}
	for i := range lt {
		if lt[i] != nt[i] && !n.enough(ln.vary[i]) {
			return false
		}
		if f := ln.fixed[i]; f != "" && (lt[i] != f || nt[i] != f) {
			return false // another line at this number
		}
	}
	return true
}

// Judge marks the differences whose pattern is learned noise (n may be
// nil) — elements or members that came or went only while no more came,
// or went, at their pattern than in MinSamples samples — and gives the
// verdict: Error when either side has Err, Match when there is no
// difference, NoiseOnly when all are noise, Diff otherwise. It returns a
// marked copy and leaves diffs unchanged.
func Judge(legacy, new Response, diffs []Difference, n *Noise) ([]Difference, Verdict) {
	if legacy.Err != "" || new.Err != "" {
		return diffs, Error
	}
	if len(diffs) == 0 {
		return diffs, Match
	}
	out := make([]Difference, len(diffs))
	copy(out, diffs)
	allNoise := true
	var pats []string // each difference's pattern, worked out once
	var came, went map[string]int
	if n != nil {
		n.mu.RLock()
		defer n.mu.RUnlock()
		pats = make([]string, len(out))
		for i, d := range out {
			pats[i] = Pattern(d.Path)
			if (d.Kind == Missing || d.Kind == Extra) && !strings.HasPrefix(d.Path, "body") {
				came, went = countPresence(came, went, d, pats[i])
			}
		}
	}
	for i := range out {
		d := &out[i]
		d.Noise = n != nil && n.isNoise(*d, pats[i], valueType(d.Legacy)|valueType(d.New))
		if d.Noise && (d.Kind == Missing || d.Kind == Extra) {
			// More came, or went, than in any sample: not noise.
			limit := n.presenceLimit(pats[i])
			d.Noise = came[pats[i]] <= limit && went[pats[i]] <= limit
		}
		allNoise = allNoise && d.Noise
	}
	out = shownLines(out)
	if allNoise {
		return out, NoiseOnly
	}
	return out, Diff
}

// shownLines keeps the first maxShownLines line differences that are not
// noise and the first maxShownLines that are, and sums up the rest in one
// More difference at "body" (merged with the one compareText may have
// made), marked noise when all it sums up is.
func shownLines(diffs []Difference) []Difference {
	var real, noise, more int
	allNoise := true
	out := diffs[:0]
	for _, d := range diffs {
		if d.Kind == More {
			more += d.Lines
			allNoise = false // lines never compared cannot be noise
			continue
		}
		if !strings.HasPrefix(d.Path, "body:L") {
			out = append(out, d)
			continue
		}
		switch {
		case d.Noise && noise < maxShownLines:
			noise++
		case !d.Noise && real < maxShownLines:
			real++
		default:
			more++
			allNoise = allNoise && d.Noise
			continue
		}
		out = append(out, d)
	}
	if more > 0 {
		out = append(out, Difference{Path: "body", Kind: More, Lines: more, Noise: allNoise})
	}
	return out
}
