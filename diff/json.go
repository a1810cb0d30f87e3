package diff

import (
	"encoding/json"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// This file holds a small JSON decoder that builds a flat tree in one
// reusable arena. It exists because json.Unmarshal into any allocates a map
// per object and a box per value; the comparison only needs to walk both
// trees once. Strings without escapes are views into the body (no copy):
// nodes never outlive the Compare call that decoded them, and anything
// handed back to the caller is copied out by materialize.

type vkind uint8

const (
	vNull vkind = iota
	vFalse
	vTrue
	vNumber
	vString
	vObject
	vArray
)

// jsonType names a value's JSON type; true and false share "boolean".
func (k vkind) jsonType() string {
	switch k {
	case vNull:
		return "null"
	case vFalse, vTrue:
		return "boolean"
	case vNumber:
		return "number"
	case vString:
		return "string"
	case vObject:
		return "object"
	default:
		return "array"
	}
}

func sameType(a, b vkind) bool {
	return a == b || (a == vFalse && b == vTrue) || (a == vTrue && b == vFalse)
}

// node is one JSON value. Containers' children are nodes[first:first+n] of
// the arena they were decoded into; an object's children carry their key.
type node struct {
	key   string // member key, when the node is an object member
	str   string // number literal or string value
	first int32
	n     int32
	kind  vkind
}

// maxDepth matches encoding/json's nesting limit.
const maxDepth = 10000

type decoder struct {
	data  []byte
	pos   int
	depth int
	nodes []node // arena of children
	stack []node // children of the containers being decoded
	esc   []byte // scratch for strings with escapes
}

var decoderPool = sync.Pool{New: func() any { return new(decoder) }}

func getDecoder() *decoder { return decoderPool.Get().(*decoder) }

func putDecoder(d *decoder) {
	if cap(d.nodes) > 1<<16 { // do not pin huge arenas
		d.nodes, d.stack = nil, nil
	}
	clear(d.nodes[:cap(d.nodes)])
	clear(d.stack[:cap(d.stack)])
	d.nodes, d.stack, d.data = d.nodes[:0], d.stack[:0], nil
	decoderPool.Put(d)
}

// decode parses data as one JSON value; ok is false when data is not valid
// JSON (RFC 8259; as json.Valid, except that duplicate keys keep the last
// value and invalid UTF-8 in a string reads as U+FFFD, as json.Unmarshal
// does).
func (d *decoder) decode(data []byte) (root node, ok bool) {
	d.data, d.pos, d.depth = data, 0, 0
	d.nodes, d.stack = d.nodes[:0], d.stack[:0]
	d.skipSpace()
	root, ok = d.value()
	if !ok {
		return node{}, false
	}
	d.skipSpace()
	return root, d.pos == len(d.data)
}

func (d *decoder) kids(n *node) []node {
	return d.nodes[n.first : n.first+n.n]
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) value() (node, bool) {
	if d.pos >= len(d.data) {
		return node{}, false
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		s, ok := d.string()
		return node{kind: vString, str: s}, ok
	case c == '-' || (c >= '0' && c <= '9'):
		n := scanNumber(d.data[d.pos:])
		if n == 0 {
			return node{}, false
		}
		s := view(d.data[d.pos : d.pos+n])
		d.pos += n
		return node{kind: vNumber, str: s}, true
	case c == 't':
		return node{kind: vTrue}, d.literal("true")
	case c == 'f':
		return node{kind: vFalse}, d.literal("false")
	case c == 'n':
		return node{kind: vNull}, d.literal("null")
	}
	return node{}, false
}

func (d *decoder) literal(lit string) bool {
	if len(d.data)-d.pos < len(lit) || string(d.data[d.pos:d.pos+len(lit)]) != lit {
		return false
	}
	d.pos += len(lit)
	return true
}

// closeContainer moves the children collected since mark into the arena.
func (d *decoder) closeContainer(kind vkind, mark int) node {
	first := len(d.nodes)
	d.nodes = append(d.nodes, d.stack[mark:]...)
	d.stack = d.stack[:mark] // stale entries are cleared by putDecoder
	return node{kind: kind, first: int32(first), n: int32(len(d.nodes) - first)}
}

func (d *decoder) object() (node, bool) {
	mark, empty, ok := d.open('}')
	if !ok {
		return node{}, false
	}
	if empty {
		return d.closeContainer(vObject, mark), true
	}
	for {
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return node{}, false
		}
		key, ok := d.string()
		if !ok {
			return node{}, false
		}
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return node{}, false
		}
		d.pos++
		d.skipSpace()
		v, ok := d.value()
		if !ok {
			return node{}, false
		}
		v.key = key
		d.stack = append(d.stack, v)
		closed, ok := d.next('}')
		if !ok {
			return node{}, false
		}
		if closed {
			d.stack = dedupe(d.stack, mark)
			return d.closeContainer(vObject, mark), true
		}
	}
}

// open enters the container whose opening bracket is at d.pos and reports
// where its members start on the stack and whether it is empty (closer
// comes first); ok is false past maxDepth.
func (d *decoder) open(closer byte) (mark int, empty, ok bool) {
	if d.depth++; d.depth > maxDepth {
		return 0, false, false
	}
	d.pos++
	mark = len(d.stack)
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == closer {
		d.pos++
		d.depth--
		return mark, true, true
	}
	return mark, false, true
}

// next reads what follows a member: a comma (more come) or the closer.
func (d *decoder) next(closer byte) (closed, ok bool) {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return false, false
	}
	switch d.data[d.pos] {
	case ',':
		d.pos++
		d.skipSpace()
		return false, true
	case closer:
		d.pos++
		d.depth--
		return true, true
	}
	return false, false
}

// dedupe removes earlier members whose key appears again later in
// stack[mark:], keeping the first position and the last value.
func dedupe(stack []node, mark int) []node {
	m := stack[mark:]
	if len(m) < 2 {
		return stack
	}
	if len(m) <= 32 {
		out := m[:0]
	next:
		for i := range m {
			for j := range out {
				if out[j].key == m[i].key {
					out[j] = m[i]
					continue next
				}
			}
			out = append(out, m[i])
		}
		clear(m[len(out):])
		return stack[:mark+len(out)]
	}
	pos := make(map[string]int, len(m))
	out := m[:0]
	for i := range m {
		if j, ok := pos[m[i].key]; ok {
			out[j] = m[i]
			continue
		}
		pos[m[i].key] = len(out)
		out = append(out, m[i])
	}
	clear(m[len(out):])
	return stack[:mark+len(out)]
}

func (d *decoder) array() (node, bool) {
	mark, empty, ok := d.open(']')
	if !ok {
		return node{}, false
	}
	if empty {
		return d.closeContainer(vArray, mark), true
	}
	for {
		v, ok := d.value()
		if !ok {
			return node{}, false
		}
		d.stack = append(d.stack, v)
		closed, ok := d.next(']')
		if !ok {
			return node{}, false
		}
		if closed {
			return d.closeContainer(vArray, mark), true
		}
	}
}

// string decodes the string starting at the opening quote. Invalid UTF-8
// reads as U+FFFD, one per bad byte, as encoding/json and JSON clients
// read it, so a raw bad byte and the escape \ufffd are the same text.
func (d *decoder) string() (string, bool) {
	start := d.pos + 1
	i := start
	ascii := true
	for i < len(d.data) {
		c := d.data[i]
		if c == '"' {
			d.pos = i + 1
			if s := d.data[start:i]; !ascii && !utf8.Valid(s) {
				return string(validUTF8(nil, s)), true
			}
			return view(d.data[start:i]), true
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
		if c == '\\' {
			return d.escaped(start)
		}
		if c < 0x20 {
			return "", false
		}
		i++
	}
	return "", false
}

// escaped decodes a string that holds escapes, from its first byte.
func (d *decoder) escaped(start int) (string, bool) {
	b := d.esc[:0]
	i := start
	for i < len(d.data) {
		c := d.data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			d.esc = b
			if !utf8.Valid(b) {
				return string(validUTF8(nil, b)), true
			}
			return string(b), true
		case c < 0x20:
			return "", false
		case c != '\\':
			b = append(b, c)
			i++
			continue
		}
		if i+1 >= len(d.data) {
			return "", false
		}
		i++
		switch d.data[i] {
		case '"', '\\', '/':
			b = append(b, d.data[i])
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := hex4(d.data[i+1:])
			if !ok {
				return "", false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2, ok2 := rune(0), false
				if i+6 < len(d.data) && d.data[i+1] == '\\' && d.data[i+2] == 'u' {
					r2, ok2 = hex4(d.data[i+3:])
				}
				if dec := utf16.DecodeRune(r, r2); ok2 && dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			b = utf8.AppendRune(b, r)
		default:
			return "", false
		}
		i++
	}
	return "", false
}

// validUTF8 appends s to dst with every byte that is not part of valid
// UTF-8 replaced by U+FFFD.
func validUTF8(dst, s []byte) []byte {
	for len(s) > 0 {
		r, n := utf8.DecodeRune(s)
		if r == utf8.RuneError && n == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, s[:n]...)
		}
		s = s[n:]
	}
	return dst
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// scanNumber returns the length of the JSON number at the start of b, or 0
// when b does not start with one.
func scanNumber(b []byte) int {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return 0
	}
	if i < len(b) && b[i] == '.' {
		i++
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == j {
			return 0
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == j {
			return 0
		}
	}
	return i
}

// isNumber reports whether s is exactly one JSON number.
func isNumber(s string) bool {
	return s != "" && scanNumber(unsafe.Slice(unsafe.StringData(s), len(s))) == len(s)
}

// view returns b as a string without copying. The caller must not let the
// string outlive the Compare call (see materialize).
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// materialize copies a node out of the arena into plain Go values: nil,
// bool, json.Number, string, map[string]any, []any. A nil node gives nil.
func (d *decoder) materialize(n *node) any {
	if n == nil {
		return nil
	}
	switch n.kind {
	case vNull:
		return nil
	case vFalse:
		return false
	case vTrue:
		return true
	case vNumber:
		return json.Number(strings.Clone(n.str))
	case vString:
		return strings.Clone(n.str)
	case vObject:
		m := make(map[string]any, n.n)
		for i := range d.kids(n) {
			k := &d.kids(n)[i]
			m[strings.Clone(k.key)] = d.materialize(k)
		}
		return m
	default:
		a := make([]any, n.n)
		for i := range d.kids(n) {
			a[i] = d.materialize(&d.kids(n)[i])
		}
		return a
	}
}
