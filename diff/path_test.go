package diff

import (
	"errors"
	"strings"
	"testing"
)

func TestPattern(t *testing.T) {
	tests := []struct{ in, want string }{
		{"$.items[2].price", "$.items[*].price"},
		{"$[0][1]", "$[*][*]"},
		{`$["a[2]"][3]`, `$["a[2]"][*]`},
		{"$.meta.request_id", "$.meta.request_id"},
		{"status", "status"},
		{"header.Content-Type", "header.Content-Type"},
		{"body:L12", "body:L12"},
		{"$.v2.a1b2", "$.v2.a1b2"},     // names with digits stay
		{"$.a1b2c3d4e5f60718", "$[*]"}, // 16 hex digits: an id
		{"$.sku_2024.price", "$.sku_2024.price"},
	}
	for _, tt := range tests {
		if got := Pattern(tt.in); got != tt.want {
			t.Errorf("Pattern(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestPattern_idKeys: an object keyed by ids (order numbers, UUIDs) is one
// field in reports and noise, not one per id, as an array is.
func TestPattern_idKeys(t *testing.T) {
	c, err := Compile(Rules{})
	if err != nil {
		t.Fatal(err)
	}
	resp := func(body string) Response {
		return Response{Status: 200, Header: map[string][]string{"Content-Type": {"application/json"}}, Body: []byte(body)}
	}
	for _, tt := range []struct{ legacy, new, want string }{
		{`{"orders":{"1042":{"total":1}}}`, `{"orders":{"1042":{"total":2}}}`, "$.orders[*].total"},
		{`{"carts":{"3f2b8c1e-9d4a-4b7e-8f00-1c2d3e4f5a6b":{"n":1}}}`, `{"carts":{"3f2b8c1e-9d4a-4b7e-8f00-1c2d3e4f5a6b":{"n":2}}}`, "$.carts[*].n"},
		{`{"totals":{"EUR":1}}`, `{"totals":{"EUR":2}}`, "$.totals.EUR"},
	} {
		ds := c.Compare(resp(tt.legacy), resp(tt.new))
		if len(ds) != 1 || Pattern(ds[0].Path) != tt.want {
			t.Errorf("%s vs %s: differences %+v, pattern want %s", tt.legacy, tt.new, ds, tt.want)
		}
	}
}

func TestPathPattern_Match(t *testing.T) {
	tests := []struct {
		pattern, path string
		match, covers bool
	}{
		{"$.meta.request_id", "$.meta.request_id", true, true},
		{"$.meta.request_id", "$.meta", false, false},
		{"$.meta", "$.meta.request_id", false, true},
		{"$..updated_at", "$.updated_at", true, true},
		{"$..updated_at", "$.a[3].b.updated_at", true, true},
		{"$..updated_at", "$.a[3].b.updated_at.x", false, true},
		{"$..updated_at", "$.updated", false, false},
		{"$.items[*].etag", "$.items[12].etag", true, true},
		{"$.items[*].etag", "$.items.etag", false, false},
		{"$.*.debug", "$.user.debug", true, true},
		{"$.*.debug", "$[4].debug", true, true},
		{"$.*.debug", "$.a.b.debug", false, false},
		{`$["a b"]`, `$["a b"]`, true, true},
		{`$['a b'].c`, `$["a b"].c`, true, true},
		{"$..[0]", "$.x.y[0]", true, true},
		{"$..a..b", "$.a.x.y.b", true, true},
		{"$..a..b", "$.b.a", false, false},
		{"$", "$.anything", false, true},
		{"$.a.b", "$.a", false, false},
	}
	for _, tt := range tests {
		p, err := CompilePath(tt.pattern)
		if err != nil {
			t.Fatalf("CompilePath(%q): %v", tt.pattern, err)
		}
		if got := p.Match(tt.path); got != tt.match {
			t.Errorf("%q.Match(%q) = %v, want %v", tt.pattern, tt.path, got, tt.match)
		}
		if got := p.Covers(tt.path); got != tt.covers {
			t.Errorf("%q.Covers(%q) = %v, want %v", tt.pattern, tt.path, got, tt.covers)
		}
	}
}

func TestCompilePath_errors(t *testing.T) {
	bad := []string{"", "meta", "$meta", "$.", "$..", "$...a", "$.a[", "$.a[x]", "$.a[01]", `$["a]`, `$["a"`,
		"$.a.[0]", "$ a", "$[*", "$['a\\q']", "$" + strings.Repeat(".a", 64)}
	for _, s := range bad {
		_, err := CompilePath(s)
		if err == nil {
			t.Errorf("CompilePath(%q) = nil error", s)
			continue
		}
		if !errors.Is(err, ErrBadRule) {
			t.Errorf("CompilePath(%q) = %v, want ErrBadRule", s, err)
		}
	}
}

func TestRenderPath_roundTrip(t *testing.T) {
	segs := []seg{{kind: segKey, key: "a"}, {kind: segIndex, index: 3}, {kind: segKey, key: "odd key"},
		{kind: segKey, key: "x.y"}, {kind: segKey, key: `q"[]`}, {kind: segKey, key: "*"}, {kind: segKey, key: ""}, {kind: segKey, key: "\xff"}}
	s := renderPath(segs)
	if want := `$.a[3]["odd key"]["x.y"]["q\"[]"]["*"][""]["\xff"]`; s != want {
		t.Errorf("renderPath = %s, want %s", s, want)
	}
	got, ok := parseConcrete(s)
	if !ok || len(got) != len(segs) {
		t.Fatalf("parseConcrete(%s) = %v, %v", s, got, ok)
	}
	for i := range segs {
		if got[i] != segs[i] {
			t.Errorf("segment %d = %+v, want %+v", i, got[i], segs[i])
		}
	}
}
