package diff

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

func fuzzComparers(tb testing.TB) []*Comparer {
	tb.Helper()
	strict, err := Compile(Rules{})
	if err != nil {
		tb.Fatal(err)
	}
	loose, err := Compile(Rules{
		Ignore:         []string{"$..id", "$.meta.*"},
		Unordered:      map[string]string{"$.a": "", "$..items": "sku", "$[*]": ""},
		Tolerance:      map[string]Tolerance{"$..n": {Abs: 0.5}, "$.*": {Rel: 0.01}},
		Timestamps:     true,
		NumericStrings: true,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return []*Comparer{strict, loose}
}

func FuzzCompareJSON(f *testing.F) {
	seeds := [][2]string{
		{`{"a":[1,2,3],"b":{"c":"x"}}`, `{"a":[3,2,1],"b":{"c":"y"},"d":null}`},
		{`{"items":[{"sku":"A","n":1},{"sku":"B","n":2}]}`, `{"items":[{"sku":"B","n":2.4},{"sku":"C"}]}`},
		{`[1e400, -0, 0.1, 9007199254740993]`, `[1E400, 0, 1e-1, 9007199254740992]`},
		{`{"t":"2024-03-01T10:00:00Z","s":"10.00"}`, `{"t":"1709287200","s":10}`},
		{`{"a":"\ud83d\ude00\u00e9\n","a":1}`, `{"a":"😀"}`},
		{`{"x":[[[[]]]]}`, `{"x":[[[{}]]]}`},
		{"line 1\r\nline 2\n\n\nline 3", "line 1\nline 2 \nline 4"},
		{`<p>a</p> <p>b</p>`, `<p>a</p><p>c</p>`},
		{`{"bad":`, `{"bad":1}`},
		{``, `null`},
	}
	for _, s := range seeds {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	cs := fuzzComparers(f)
	f.Fuzz(func(t *testing.T, a, b []byte) {
		// The decoder agrees with encoding/json on what is JSON.
		d := getDecoder()
		_, ok := d.decode(a)
		putDecoder(d)
		if ok != json.Valid(a) {
			t.Fatalf("decode ok = %v, json.Valid = %v for %q", ok, !ok, a)
		}
		for _, c := range cs {
			la := Response{Status: 200, Body: a}
			nb := Response{Status: 200, Body: b}
			first := c.Compare(la, nb)
			if second := c.Compare(la, nb); !reflect.DeepEqual(first, second) {
				t.Fatalf("not deterministic:\n%v\n%v", first, second)
			}
			// A body compared with itself has no differences: through the
			// JSON walk (bypassing the equal-bytes shortcut), as text, and
			// against its compact form.
			if diffs := c.compareJSON(nil, a, bytes.Clone(a), false, nil); len(diffs) != 0 {
				t.Fatalf("self-compare of %q: %v", a, diffs)
			}
			if diffs := compareText(nil, string(a), string(a), true); len(diffs) != 0 {
				t.Fatalf("text self-compare of %q: %v", a, diffs)
			}
			if json.Valid(a) {
				var buf bytes.Buffer
				if err := json.Indent(&buf, a, "", "  "); err != nil {
					t.Fatal(err)
				}
				if diffs := c.Compare(la, Response{Status: 200, Body: buf.Bytes()}); len(diffs) != 0 {
					t.Fatalf("%q against its indented form: %v", a, diffs)
				}
			}
			for _, d := range first {
				if _, err := json.Marshal(d); err != nil {
					t.Fatalf("difference does not marshal: %v", err)
				}
			}
		}
	})
}

func FuzzPathRule(f *testing.F) {
	for _, s := range []string{
		"$", "$.meta.request_id", "$..updated_at", "$.items[*].etag", "$.*.debug", `$["a b"]`, `$['a\'b']`,
		"$..[0]", "$.a[12][3]", `$["\u00e9\n"].x`, "$..a..b", "$.", "$[", "0.5%", "1e-3",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = Pattern(s)
		_, _ = ParseTolerance(s)
		p, err := parsePattern(s)
		if err != nil {
			if _, cerr := Compile(Rules{Ignore: []string{s}}); cerr == nil {
				t.Fatalf("Compile accepted %q that parsePattern rejects", s)
			}
			return
		}
		if p.wild {
			return
		}
		segs := make([]seg, len(p.toks))
		for i, tok := range p.toks {
			segs[i] = tok.seg
		}
		if !p.match(segs, false) || !p.match(segs, true) {
			t.Fatalf("pattern %q does not match its own path", s)
		}
		// The rendered form parses back to the same path and still matches.
		rendered := renderPath(segs)
		back, ok := parseConcrete(rendered)
		if !ok || !reflect.DeepEqual(back, segs) && len(segs) > 0 {
			t.Fatalf("%q rendered as %q parses back to %v, %v", s, rendered, back, ok)
		}
		if !p.match(back, false) {
			t.Fatalf("pattern %q does not match its rendered path %q", s, rendered)
		}
		if got := Pattern(rendered); got != Pattern(Pattern(rendered)) {
			t.Fatalf("Pattern not idempotent on %q: %q", rendered, got)
		}
	})
}
