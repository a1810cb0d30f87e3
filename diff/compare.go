package diff

// Engine notes. go-cmp is not used: it walks Go values by reflection, so it
// would need both bodies unmarshalled into any first (a map per object, a box
// per value), it reports differences as text rather than JSON paths and
// kinds, and rules such as keyed unordered arrays, tolerance per path and
// timestamp equality would all be custom Comparers/Transformers on top. The
// engine instead decodes each body once into a flat arena (json.go) and walks
// both trees side by side, rendering a path string only when a difference is
// kept. BenchmarkDiff against BenchmarkUnmarshalPair shows the cost.

import (
	"bytes"
	"mime"
	"strconv"
	"strings"
)

// Compare compares legacy and new: the status code ("status"), the compared
// headers ("header.Content-Type") and the body (JSON paths such as
// "$.items[2].price", or "body" / "body:L<n>" for non-JSON bodies, and
// "body:L<n>.<k>" for the k-th piece of an HTML line split between tags). It
// returns nil when they agree. Responses with Err set have no answer to
// compare; Judge reports them as Error. Compare is safe for concurrent use.
//
// Bodies are compared as JSON when both Content-Types are JSON
// (application/json or +json), when neither names a non-JSON type and
// both bodies parse, or when one names JSON and both bodies parse (JSON
// labelled text/html by one side). A truncated body is never parsed as JSON: both bodies
// are cut to the shortest truncated length and compared as text.
func (c *Comparer) Compare(legacy, new Response) []Difference {
	return c.CompareWithNoise(legacy, new, nil)
}

// CompareWithNoise is Compare for a route whose noise n has learned (n
// may be nil). Where the engine decides which elements of two arrays are
// the same (a reordering, elements added or removed, unordered arrays),
// elements that differ only where n has learned noise count as the same:
// a newest-first page whose items each carry a signed URL that varies is
// still seen to have moved along. The differences returned are not marked;
// Judge does that. Safe for concurrent use with n's Learn.
func (c *Comparer) CompareWithNoise(legacy, new Response, n *Noise) []Difference {
	if n != nil {
		n.mu.RLock()
		defer n.mu.RUnlock()
	}
	var diffs []Difference
	if legacy.Status != new.Status {
		diffs = append(diffs, Difference{Path: "status", Kind: Changed, Legacy: legacy.Status, New: new.Status})
	}
	for _, h := range c.headers {
		lv, lok := headerValue(legacy.Header, h)
		nv, nok := headerValue(new.Header, h)
		if h == "Content-Type" {
			lv, nv = normalizeMediaType(lv), normalizeMediaType(nv)
		}
		switch {
		case lok && !nok:
			diffs = append(diffs, Difference{Path: "header." + h, Kind: Missing, Legacy: lv})
		case !lok && nok:
			diffs = append(diffs, Difference{Path: "header." + h, Kind: Extra, New: nv})
		case lv != nv:
			diffs = append(diffs, Difference{Path: "header." + h, Kind: Changed, Legacy: lv, New: nv})
		}
	}
	return c.compareBody(diffs, legacy, new, n)
}

// headerValue returns the header's values joined by ", ", looking the name
// up canonically and then case-insensitively.
func headerValue(h map[string][]string, name string) (string, bool) {
	v, ok := h[name]
	if !ok {
		for k, vv := range h {
			if strings.EqualFold(k, name) {
				v, ok = vv, true
				break
			}
		}
	}
	if !ok {
		return "", false
	}
	if len(v) == 1 {
		return strings.TrimSpace(v[0]), true
	}
	parts := make([]string, len(v))
	for i, s := range v {
		parts[i] = strings.TrimSpace(s)
	}
	return strings.Join(parts, ", "), true
}

// normalizeMediaType lower-cases the type, the parameter names and the
// charset value (charset names are case-insensitive), so
// "Application/JSON;charset=UTF-8" equals "application/json; charset=utf-8".
// A JSON type drops charset=utf-8: JSON is always UTF-8 and the parameter
// has no effect on a client (RFC 8259 §11), so "application/json" equals
// "application/json; charset=utf-8".
func normalizeMediaType(v string) string {
	mt, params, err := mime.ParseMediaType(v)
	if err != nil {
		return v
	}
	if cs, ok := params["charset"]; ok {
		params["charset"] = strings.ToLower(cs)
		if isJSONType(mt) && (params["charset"] == "utf-8" || params["charset"] == "utf8") {
			delete(params, "charset")
		}
	}
	if f := mime.FormatMediaType(mt, params); f != "" {
		return f
	}
	return v
}

func mediaType(h map[string][]string) string {
	v, ok := headerValue(h, "Content-Type")
	if !ok || v == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(v)
	if err != nil {
		mt, _, _ = strings.Cut(strings.ToLower(v), ";")
		mt = strings.TrimSpace(mt)
	}
	return mt
}

func isJSONType(mt string) bool {
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

func isHTMLType(mt string) bool {
	return mt == "text/html" || mt == "application/xhtml+xml"
}

func (c *Comparer) compareBody(diffs []Difference, legacy, new Response, n *Noise) []Difference {
	lb, nb := legacy.Body, new.Body
	lt, nt := mediaType(legacy.Header), mediaType(new.Header)
	html := isHTMLType(lt) || isHTMLType(nt)
	if legacy.Truncated || new.Truncated {
		limit := -1
		if legacy.Truncated {
			limit = len(lb)
		}
		if new.Truncated && (limit < 0 || len(nb) < limit) {
			limit = len(nb)
		}
		lb, nb = lb[:min(limit, len(lb))], nb[:min(limit, len(nb))]
		if bytes.Equal(lb, nb) {
			return diffs
		}
		return compareText(diffs, string(lb), string(nb), html)
	}
	if bytes.Equal(lb, nb) {
		return diffs
	}
	if (lt != "" && !isJSONType(lt)) || (nt != "" && !isJSONType(nt)) {
		// One side names another type. When the other says JSON and both
		// bodies are JSON (a legacy app that labels its JSON text/html),
		// clients parse it as JSON whatever the label: compare fields.
		if isJSONType(lt) || isJSONType(nt) {
			if out, lok, nok := c.walkJSON(diffs, lb, nb, n); lok && nok {
				return out
			}
		}
		return compareText(diffs, string(lb), string(nb), html)
	}
	return c.compareJSON(diffs, lb, nb, html, n)
}

// compareJSON compares two bodies as JSON when both parse (after a UTF-8
// byte order mark, which is skipped); one parsing and the other not is a
// Type difference at "body"; neither parsing falls back to text. n is the
// route's learned noise (nil for none), read-locked by the caller, for
// deciding which array elements are the same.
func (c *Comparer) compareJSON(diffs []Difference, lb, nb []byte, html bool, n *Noise) []Difference {
	out, lok, nok := c.walkJSON(diffs, lb, nb, n)
	switch {
	case lok && nok:
		return out
	case lok != nok:
		return append(diffs, Difference{Path: "body", Kind: Type, Legacy: bodyType(lok), New: bodyType(nok)})
	default:
		return compareText(diffs, string(lb), string(nb), html)
	}
}

// walkJSON parses both bodies as JSON (after a UTF-8 byte order mark,
// which is skipped) and, when both parse, appends their differences to
// diffs; lok and nok report which parsed. When either does not, diffs is
// returned as it was.
func (c *Comparer) walkJSON(diffs []Difference, lb, nb []byte, n *Noise) (out []Difference, lok, nok bool) {
	ld, nd := getDecoder(), getDecoder()
	defer putDecoder(ld)
	defer putDecoder(nd)
	lroot, lok := ld.decode(trimBOM(lb))
	nroot, nok := nd.decode(trimBOM(nb))
	if !lok || !nok {
		return diffs, lok, nok
	}
	w := walker{c: c, ld: ld, nd: nd, diffs: diffs, noise: n}
	w.walk(&lroot, &nroot)
	return w.diffs, true, true
}

// trimBOM drops a UTF-8 byte order mark before a JSON body: RFC 8259
// lets a parser ignore it, and clients (browsers' fetch, most JSON
// libraries) do, so it is no difference and must not hide the fields.
func trimBOM(b []byte) []byte {
	return bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
}

func bodyType(isJSON bool) string {
	if isJSON {
		return "json"
	}
	return "not json"
}

// walker compares two decoded trees. In check mode it records nothing and
// stops at the first difference that is not ignored; that answers "are
// these equal under the rules?" for order and multiset matching.
type walker struct {
	c      *Comparer
	ld, nd *decoder // arenas of the legacy and new trees
	segs   []seg    // path of the values being compared
	diffs  []Difference
	check  bool
	found  bool
	noise  *Noise // learned noise, read-locked; in check mode what it covers is no difference
}

func (w *walker) push(s seg) { w.segs = append(w.segs, s) }
func (w *walker) pop()       { w.segs = w.segs[:len(w.segs)-1] }
func (w *walker) stop() bool { return w.check && w.found }

// emit records a difference at the current path unless it is ignored.
func (w *walker) emit(kind Kind, a, b *node) {
	if w.c.ignored(w.segs) {
		return
	}
	if w.check {
		if w.noise != nil {
			path := renderPath(w.segs)
			if w.noise.isNoise(Difference{Path: path, Kind: kind}, Pattern(path), nodeType(a)|nodeType(b)) {
				return // the same element, but for learned noise
			}
		}
		w.found = true
		return
	}
	w.diffs = append(w.diffs, Difference{
		Path:   renderPath(w.segs),
		Kind:   kind,
		Legacy: w.ld.materialize(a),
		New:    w.nd.materialize(b),
	})
}

// equal reports whether a and b have no difference under the rules.
func (w *walker) equal(a, b *node) bool {
	check, found := w.check, w.found
	w.check, w.found = true, false
	w.walk(a, b)
	eq := !w.found
	w.check, w.found = check, found
	return eq
}

func (w *walker) walk(a, b *node) {
	if !sameType(a.kind, b.kind) {
		if w.c.numericStrings && w.numericPair(a, b) {
			if !w.numbersEqual(a.str, b.str) {
				w.emit(Changed, a, b)
			}
			return
		}
		w.emit(Type, a, b)
		return
	}
	switch a.kind {
	case vFalse, vTrue:
		if a.kind != b.kind {
			w.emit(Changed, a, b)
		}
	case vNumber:
		if !w.numbersEqual(a.str, b.str) {
			w.emit(Changed, a, b)
		}
	case vString:
		if a.str != b.str && !w.stringsEqual(a.str, b.str) {
			w.emit(Changed, a, b)
		}
	case vObject:
		w.object(a, b)
	case vArray:
		if key, ok := w.c.unorderedKey(w.segs); ok {
			w.unordered(a, b, key)
		} else {
			w.array(a, b)
		}
	}
}

// numericPair reports whether a and b are a number and a numeric string.
func (w *walker) numericPair(a, b *node) bool {
	return (a.kind == vNumber && b.kind == vString && isNumber(b.str)) ||
		(a.kind == vString && b.kind == vNumber && isNumber(a.str))
}

func (w *walker) numbersEqual(a, b string) bool {
	return numbersEqual(a, b) || (len(w.c.tolerance) > 0 && w.c.withinTolerance(w.segs, a, b))
}

func (w *walker) stringsEqual(a, b string) bool {
	if w.c.numericStrings && isNumber(a) && isNumber(b) {
		return w.numbersEqual(a, b)
	}
	return w.c.timestamps && sameInstant(a, b)
}

// lookup finds key among kids, trying position hint first.
func lookup(kids []node, hint int, key string, index map[string]int) int {
	if hint < len(kids) && kids[hint].key == key {
		return hint
	}
	if index != nil {
		if i, ok := index[key]; ok {
			return i
		}
		return -1
	}
	for i := range kids {
		if kids[i].key == key {
			return i
		}
	}
	return -1
}

// bigObject is the member count above which objects are indexed by key.
const bigObject = 32

func keyIndex(kids []node) map[string]int {
	if len(kids) <= bigObject {
		return nil
	}
	m := make(map[string]int, len(kids))
	for i := range kids {
		m[kids[i].key] = i
	}
	return m
}

func (w *walker) object(a, b *node) {
	ka, kb := w.ld.kids(a), w.nd.kids(b)
	ia, ib := keyIndex(ka), keyIndex(kb)
	for i := range ka {
		m := &ka[i]
		w.push(seg{kind: segKey, key: m.key})
		if j := lookup(kb, i, m.key, ib); j < 0 {
			w.emit(Missing, m, nil)
		} else {
			w.walk(m, &kb[j])
		}
		w.pop()
		if w.stop() {
			return
		}
	}
	for j := range kb {
		if lookup(ka, j, kb[j].key, ia) >= 0 {
			continue
		}
		w.push(seg{kind: segKey, key: kb[j].key})
		w.emit(Extra, nil, &kb[j])
		w.pop()
		if w.stop() {
			return
		}
	}
}

// maxOrderCheck bounds the number of mismatched elements for which an
// ordered array is checked for being a reordering (quadratic work).
const maxOrderCheck = 1000

// array compares ordered arrays element by element; when the elements that
// differ are the same multiset in another order, it reports one Order
// difference at the array instead.
func (w *walker) array(a, b *node) {
	ea, eb := w.ld.kids(a), w.nd.kids(b)
	if len(ea) != len(eb) {
		if gone, came, ok := w.align(ea, eb); ok {
			w.aligned(ea, eb, gone, came)
			return
		}
	}
	n := min(len(ea), len(eb))
	mark := len(w.diffs)
	var mismatched []int
	for i := 0; i < n; i++ {
		before := len(w.diffs)
		w.push(seg{kind: segIndex, index: i})
		w.walk(&ea[i], &eb[i])
		w.pop()
		if w.stop() {
			return
		}
		// A pair that differs only where noise was learned is the same
		// element in its place: were it counted, alike elements (prices
		// that vary, items alike but for a signed URL) would look like a
		// reordering, and two answers that differ only in noise would
		// differ in order.
		if len(w.diffs) > before && (w.noise == nil || !w.elemEqual(ea, eb, i, i)) {
			mismatched = append(mismatched, i)
		}
	}
	w.emitRanges(ea, eb, [2]int{n, len(ea)}, [2]int{n, len(eb)})
	if w.check || len(mismatched) < 2 || len(ea) != len(eb) || len(mismatched) > maxOrderCheck {
		return
	}
	if w.reordered(ea, eb, mismatched) {
		w.diffs = w.diffs[:mark]
		w.emit(Order, a, b)
		return
	}
	// Not the same elements: maybe the same list moved along.
	if gone, came, ok := w.align(ea, eb); ok {
		w.diffs = w.diffs[:mark]
		w.aligned(ea, eb, gone, came)
	}
}

// reordered reports whether the mismatched elements of two ordered
// arrays of one length are the same multiset in another order.
func (w *walker) reordered(ea, eb []node, mismatched []int) bool {
	used := make([]bool, len(mismatched))
	for _, i := range mismatched {
		found := false
		w.push(seg{kind: segIndex, index: i})
		for k, j := range mismatched {
			if !used[k] && j != i && w.equal(&ea[i], &eb[j]) {
				used[k], found = true, true
				break
			}
		}
		w.pop()
		if !found {
			return false
		}
	}
	return true
}

// maxShift is how many places align looks for a list that moved along.
const maxShift = 32

// maxAlignChecks bounds the element pairs alignChanged compares, so that
// a long list of alike elements costs no more than a few milliseconds.
const maxAlignChecks = 4 * maxOrderCheck

// align finds how two ordered arrays that differ are the same list with
// elements added or removed: one block added or removed in one place (a
// list, newest first, that gained an element at the front), or, after the
// common beginning and end, up to maxShift elements gone at the front and
// others come at the back or the other way round (a fixed-size page,
// newest first, after a new element came in). gone are legacy index
// ranges whose elements are not in new, came new index ranges whose
// elements are not in legacy. ok is false when no such alignment exists;
// the arrays are then compared index by index. Without it, every element
// after the change would be compared with its neighbour and differ, and
// noise learned from such a pair would hide every field of the list.
func (w *walker) align(ea, eb []node) (gone, came [2]int, ok bool) {
	n := min(len(ea), len(eb))
	if max(len(ea), len(eb)) > maxOrderCheck {
		return gone, came, false
	}
	p := 0
	for p < n && w.elemEqual(ea, eb, p, p) {
		p++
	}
	s := 0
	for p+s < n && w.elemEqual(ea, eb, len(ea)-1-s, len(eb)-1-s) {
		s++
	}
	la, lb := len(ea)-s, len(eb)-s // the middles are ea[p:la] and eb[p:lb]
	if p == la && p == lb {
		return gone, came, false // the same but for learned noise: compare index by index
	}
	if p == la || p == lb {
		return [2]int{p, la}, [2]int{p, lb}, true
	}
	ma, mb := la-p, lb-p
	for k := 1; k <= maxShift; k++ {
		// k came at the front; legacy's middle follows them, its end gone.
		if m := mb - k; m >= 1 && m <= ma && w.rangeEqual(ea, eb, p, p+k, m) {
			return [2]int{p + m, la}, [2]int{p, p + k}, true
		}
		// k went from the front; new's middle follows, its end came.
		if m := ma - k; m >= 1 && m <= mb && w.rangeEqual(ea, eb, p+k, p, m) {
			return [2]int{p, p + k}, [2]int{p + m, lb}, true
		}
	}
	return w.alignChanged(ea, eb, p, la, lb)
}

// alignChanged is align's last resort: the same shifts, where an element
// may also have changed in place (an order paid while another came in at
// the front) as long as most of its members are equal, and at least half
// of the elements that follow each other are equal whole. Of those shifts
// it takes the one with the most elements equal whole. Compared index by
// index instead, every element would differ from its neighbour, and noise
// learned from such a pair would hide every field of the list. It looks
// at no more than maxAlignChecks element pairs in all.
func (w *walker) alignChanged(ea, eb []node, p, la, lb int) (gone, came [2]int, ok bool) {
	ma, mb := la-p, lb-p
	best := -1
	checks := 0
	for k := 1; k <= maxShift && checks < maxAlignChecks; k++ {
		checks += 2 * min(ma, mb)
		if m := mb - k; m >= 1 && m <= ma {
			if e, same := w.rangeSame(ea, eb, p, p+k, m); same && e > best {
				best, gone, came = e, [2]int{p + m, la}, [2]int{p, p + k}
			}
		}
		if m := ma - k; m >= 1 && m <= mb {
			if e, same := w.rangeSame(ea, eb, p+k, p, m); same && e > best {
				best, gone, came = e, [2]int{p, p + k}, [2]int{p + m, lb}
			}
		}
	}
	return gone, came, best >= 0
}

// rangeSame reports whether ea[i:i+m] and eb[j:j+m] are the same elements
// pair by pair: each pair equal, or objects with most members equal, and
// at least half of the pairs equal. exact is how many pairs are equal.
func (w *walker) rangeSame(ea, eb []node, i, j, m int) (exact int, same bool) {
	for d := range m {
		if w.elemEqual(ea, eb, i+d, j+d) {
			exact++
			continue
		}
		if 2*(d+1-exact) > m || !w.elemSimilar(ea, eb, i+d, j+d) {
			return 0, false // more than half not equal, or not the same
		}
	}
	return exact, 2*exact >= m
}

// elemSimilar reports whether legacy element i and new element j are
// objects more than half of whose members are equal, at legacy index i.
func (w *walker) elemSimilar(ea, eb []node, i, j int) bool {
	a, b := &ea[i], &eb[j]
	if a.kind != vObject || b.kind != vObject {
		return false
	}
	w.push(seg{kind: segIndex, index: i})
	n := w.shared(a, b)
	w.pop()
	return 2*n > int(max(a.n, b.n))
}

// rangeEqual reports whether ea[i:i+m] equals eb[j:j+m] element by element.
func (w *walker) rangeEqual(ea, eb []node, i, j, m int) bool {
	for d := range m {
		if !w.elemEqual(ea, eb, i+d, j+d) {
			return false
		}
	}
	return true
}

// aligned reports what align found: legacy elements gone as Missing at
// their legacy index, new ones as Extra at their new index. The others
// correspond in order; they may differ in learned noise, or in place
// (alignChanged), and are compared (at the legacy index) so that it is
// shown.
func (w *walker) aligned(ea, eb []node, gone, came [2]int) {
	j := 0
	for i := range ea {
		if i >= gone[0] && i < gone[1] {
			continue
		}
		for j >= came[0] && j < came[1] {
			j++
		}
		w.push(seg{kind: segIndex, index: i})
		w.walk(&ea[i], &eb[j])
		w.pop()
		if w.stop() {
			return
		}
		j++
	}
	w.emitRanges(ea, eb, gone, came)
}

// emitRanges reports the legacy elements ea[gone[0]:gone[1]] as Missing
// at their legacy index and the new elements eb[came[0]:came[1]] as
// Extra at their new index.
func (w *walker) emitRanges(ea, eb []node, gone, came [2]int) {
	for i := gone[0]; i < gone[1]; i++ {
		w.push(seg{kind: segIndex, index: i})
		w.emit(Missing, &ea[i], nil)
		w.pop()
		if w.stop() {
			return
		}
	}
	for j := came[0]; j < came[1]; j++ {
		w.push(seg{kind: segIndex, index: j})
		w.emit(Extra, nil, &eb[j])
		w.pop()
		if w.stop() {
			return
		}
	}
}

// elemEqual reports whether legacy element i equals new element j under
// the rules, at legacy index i.
func (w *walker) elemEqual(ea, eb []node, i, j int) bool {
	w.push(seg{kind: segIndex, index: i})
	eq := w.equal(&ea[i], &eb[j])
	w.pop()
	return eq
}

// unordered compares arrays as multisets, pairing elements by key when key
// is set and by whole-value equality otherwise.
func (w *walker) unordered(a, b *node, key string) {
	ea, eb := w.ld.kids(a), w.nd.kids(b)
	pairA := make([]int, len(ea)) // index in eb, or -1
	usedB := make([]bool, len(eb))
	for i := range pairA {
		pairA[i] = -1
	}
	keyed := make([]bool, len(ea)) // compare the pair: paired by key, by shared members, or equal but for noise
	if key != "" {
		byKey := map[elemKey][]int{}
		for j := range eb {
			if k, ok := w.elementKey(w.nd, &eb[j], key); ok {
				byKey[k] = append(byKey[k], j)
			}
		}
		keys := make([]elemKey, len(ea))
		hasKey := make([]bool, len(ea))
		legacyCount := map[elemKey]int{}
		for i := range ea {
			if keys[i], hasKey[i] = w.elementKey(w.ld, &ea[i], key); hasKey[i] {
				legacyCount[keys[i]]++
			}
		}
		// A key that repeats (one sku on two lines): pair equal elements
		// first, so the same lines in another order do not differ.
		for i := range ea {
			js := byKey[keys[i]]
			if !hasKey[i] || len(js) == 0 || (len(js) == 1 && legacyCount[keys[i]] == 1) {
				continue
			}
			w.push(seg{kind: segIndex, index: i})
			for p, j := range js {
				if w.equal(&ea[i], &eb[j]) {
					pairA[i], usedB[j], keyed[i] = j, true, true
					byKey[keys[i]] = append(js[:p:p], js[p+1:]...)
					break
				}
			}
			w.pop()
		}
		for i := range ea {
			if !hasKey[i] || pairA[i] >= 0 {
				continue
			}
			if js := byKey[keys[i]]; len(js) > 0 {
				pairA[i], usedB[js[0]], keyed[i] = js[0], true, true
				byKey[keys[i]] = js[1:]
			}
		}
	}
	// Whole-value matching for what is left, trying the same index first.
	for i := range ea {
		if pairA[i] >= 0 {
			continue
		}
		w.push(seg{kind: segIndex, index: i})
		// Equal but for learned noise: compared, so that it is shown.
		if i < len(eb) && !usedB[i] && w.equal(&ea[i], &eb[i]) {
			pairA[i], usedB[i], keyed[i] = i, true, w.noise != nil
		} else {
			for j := range eb {
				if !usedB[j] && j != i && w.equal(&ea[i], &eb[j]) {
					pairA[i], usedB[j], keyed[i] = j, true, w.noise != nil
					break
				}
			}
		}
		w.pop()
	}
	if key == "" && !w.check {
		// With a key, leftovers hold other keys: other elements, not
		// changed ones.
		w.pairLeftovers(ea, eb, pairA, usedB, keyed)
	}
	for i := range ea {
		w.push(seg{kind: segIndex, index: i})
		switch {
		case pairA[i] < 0:
			w.emit(Missing, &ea[i], nil)
		case keyed[i]:
			w.walk(&ea[i], &eb[pairA[i]])
		}
		w.pop()
		if w.stop() {
			return
		}
	}
	for j := range eb {
		if usedB[j] {
			continue
		}
		w.push(seg{kind: segIndex, index: j})
		w.emit(Extra, nil, &eb[j])
		w.pop()
		if w.stop() {
			return
		}
	}
}

// maxLeftoverPairs bounds the element pairs pairLeftovers scores.
const maxLeftoverPairs = 10_000

// pairLeftovers pairs the objects an unordered comparison left unmatched
// on both sides that are each other's best match by members they share
// with equal values (an element whose price changed, or whose time varies
// as noise), and marks them in keyed to be compared field by field.
// Otherwise such an element is reported missing and extra whole, and noise
// learned from two answers whose elements hold a varying time would make
// every element's presence noise: a real change in one would be hidden.
func (w *walker) pairLeftovers(ea, eb []node, pairA []int, usedB, keyed []bool) {
	var ls, rs []int
	for i := range ea {
		if pairA[i] < 0 && ea[i].kind == vObject {
			ls = append(ls, i)
		}
	}
	for j := range eb {
		if !usedB[j] && eb[j].kind == vObject {
			rs = append(rs, j)
		}
	}
	if len(ls) == 0 || len(rs) == 0 || len(ls)*len(rs) > maxLeftoverPairs {
		return
	}
	score := make([][]int, len(ls))
	for a, i := range ls {
		score[a] = make([]int, len(rs))
		w.push(seg{kind: segIndex, index: i})
		for b, j := range rs {
			score[a][b] = w.shared(&ea[i], &eb[j])
		}
		w.pop()
	}
	for a, i := range ls {
		best := -1
		for b := range rs {
			if score[a][b] > 0 && (best < 0 || score[a][b] > score[a][best]) {
				best = b
			}
		}
		if best < 0 {
			continue
		}
		mutual := true
		for a2 := range ls {
			if score[a2][best] > score[a][best] || (score[a2][best] == score[a][best] && a2 < a) {
				mutual = false
				break
			}
		}
		if j := rs[best]; mutual && !usedB[j] {
			pairA[i], usedB[j], keyed[i] = j, true, true
		}
	}
}

// shared counts the members of object a that object b has with an equal
// value, under the rules.
func (w *walker) shared(a, b *node) int {
	ka, kb := w.ld.kids(a), w.nd.kids(b)
	ib := keyIndex(kb)
	n := 0
	for i := range ka {
		j := lookup(kb, i, ka[i].key, ib)
		if j < 0 {
			continue
		}
		w.push(seg{kind: segKey, key: ka[i].key})
		if w.equal(&ka[i], &kb[j]) {
			n++
		}
		w.pop()
	}
	return n
}

// elementKey returns the value of an object element's key field as a map
// key; ok is false when the element is not an object or the field is
// missing or not a scalar.
func (w *walker) elementKey(d *decoder, n *node, key string) (elemKey, bool) {
	if n.kind != vObject {
		return elemKey{}, false
	}
	kids := d.kids(n)
	for i := len(kids) - 1; i >= 0; i-- {
		if kids[i].key != key {
			continue
		}
		switch k := &kids[i]; k.kind {
		case vString:
			return elemKey{kind: vString, s: k.str}, true
		case vNumber:
			var buf [32]byte
			if dec, ok := parseDecimal(k.str, buf[:0]); ok {
				sign := "+"
				if dec.neg {
					sign = "-"
				}
				return elemKey{kind: vNumber, s: sign + string(dec.digits) + "e" + strconv.FormatInt(dec.exp, 10)}, true
			}
			return elemKey{kind: vNumber, s: k.str}, true
		case vTrue, vFalse, vNull:
			return elemKey{kind: k.kind}, true
		}
		return elemKey{}, false
	}
	return elemKey{}, false
}

// elemKey is a keyed element's key value: its kind and canonical text.
type elemKey struct {
	kind vkind
	s    string
}
