package diff

import (
	"errors"
	"strings"
	"testing"
)

func TestParseTolerance(t *testing.T) {
	tests := []struct {
		in   string
		want Tolerance
		err  bool
	}{
		{"0.005", Tolerance{Abs: 0.005}, false},
		{"1%", Tolerance{Rel: 0.01}, false},
		{" 0.5 % ", Tolerance{Rel: 0.005}, false},
		{"0", Tolerance{}, false},
		{"-1", Tolerance{}, true},
		{"abc", Tolerance{}, true},
		{"%", Tolerance{}, true},
		{"NaN", Tolerance{}, true},
		{"Inf", Tolerance{}, true},
	}
	for _, tt := range tests {
		got, err := ParseTolerance(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseTolerance(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestCompile_listsEveryBadRule(t *testing.T) {
	_, err := Compile(Rules{
		Headers:   []string{"Content-Type", "bad header"},
		Ignore:    []string{"$.ok", "meta.request_id", "$.a["},
		Unordered: map[string]string{"$.items": "sku", "items": ""},
		Tolerance: map[string]Tolerance{"$.total": {Abs: -1}, "$..": {Abs: 1}},
	})
	if err == nil {
		t.Fatal("Compile accepted bad rules")
	}
	if !errors.Is(err, ErrBadRule) {
		t.Errorf("errors.Is(err, ErrBadRule) = false for %v", err)
	}
	var re *RuleError
	if !errors.As(err, &re) {
		t.Errorf("errors.As(err, *RuleError) = false")
	}
	msg := err.Error()
	for _, want := range []string{`headers "bad header"`, `ignore "meta.request_id"`, `ignore "$.a["`, `unordered "items"`, `tolerance "$.total"`, `tolerance "$.."`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not name %s:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, `"$.ok"`) || strings.Contains(msg, `"$.items"`) {
		t.Errorf("error names a good rule:\n%s", msg)
	}
}

func TestComparer_Compare_headersEmptyList(t *testing.T) {
	c, err := Compile(Rules{Headers: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	a := Response{Status: 200, Header: map[string][]string{"Content-Type": {"text/plain"}}}
	b := Response{Status: 200, Header: map[string][]string{"Content-Type": {"text/html"}}}
	if d := c.Compare(a, b); len(d) != 0 {
		t.Errorf("empty header list compared headers: %v", d)
	}
}

func TestComparer_Compare_lowercaseHeaderKeys(t *testing.T) {
	c, err := Compile(Rules{})
	if err != nil {
		t.Fatal(err)
	}
	a := Response{Status: 200, Header: map[string][]string{"content-type": {"text/plain"}}, Body: []byte("x")}
	b := Response{Status: 200, Header: map[string][]string{"Content-Type": {"text/plain"}}, Body: []byte("x")}
	if d := c.Compare(a, b); len(d) != 0 {
		t.Errorf("non-canonical header key: %v", d)
	}
}

func TestComparer_Compare_materializedValuesAreCopies(t *testing.T) {
	c, err := Compile(Rules{})
	if err != nil {
		t.Fatal(err)
	}
	lb := []byte(`{"name":"alpha","obj":{"k":"v"}}`)
	nb := []byte(`{"name":"beta"}`)
	d := c.Compare(Response{Body: lb}, Response{Body: nb})
	for i := range lb {
		lb[i] = 'X'
	}
	for i := range nb {
		nb[i] = 'X'
	}
	if got, want := formatDiffs(d), "changed $.name \"alpha\" \"beta\"\nmissing $.obj {\"k\":\"v\"} -\n"; got != want {
		t.Errorf("after overwriting bodies, differences = %q, want %q", got, want)
	}
}

func TestNumbersEqual(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"10", "10.0", true},
		{"10", "1e1", true},
		{"0.001", "1E-3", true},
		{"-0", "0", true},
		{"0e5", "0.000", true},
		{"1.5", "15e-1", true},
		{"9007199254740993", "9007199254740992", false},
		{"12345678901234567890123", "1.2345678901234567890123e22", true},
		{"1", "-1", false},
		{"1e1000000000000000000", "1e1000000000000000001", false},
	}
	for _, tt := range tests {
		if got := numbersEqual(tt.a, tt.b); got != tt.want {
			t.Errorf("numbersEqual(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestWithinTolerance(t *testing.T) {
	tests := []struct {
		a, b string
		tol  Tolerance
		want bool
	}{
		{"10", "10.005", Tolerance{Abs: 0.005}, true},
		{"10", "10.0051", Tolerance{Abs: 0.005}, false},
		{"100", "101", Tolerance{Rel: 0.01}, true},
		{"100", "102", Tolerance{Rel: 0.01}, false},
		{"9007199254740993", "9007199254740992", Tolerance{Abs: 0.5}, false},
		{"9007199254740993", "9007199254740992", Tolerance{Abs: 1}, true},
		{"1e500", "1.0001e500", Tolerance{Rel: 0.01}, false}, // float64 fallback overflows: not within
		{"1", "2", Tolerance{}, false},
	}
	for _, tt := range tests {
		if got := withinTolerance(tt.a, tt.b, tt.tol); got != tt.want {
			t.Errorf("withinTolerance(%s, %s, %+v) = %v, want %v", tt.a, tt.b, tt.tol, got, tt.want)
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	same := [][2]string{
		{"2024-03-01T10:00:00Z", "2024-03-01T12:00:00+02:00"},
		{"2024-03-01T10:00:00.123456789Z", "2024-03-01 10:00:00.123456789"},
		{"2024-03-01 10:00:00Z", "2024-03-01T10:00:00"},
		{"2024-03-01 12:00:00 +02:00", "2024-03-01 12:00:00 +0200"},
		{"Fri, 01 Mar 2024 10:00:00 GMT", "Fri, 01 Mar 2024 10:00:00 UTC"},
		{"1709287200", "2024-03-01T10:00:00Z"},
		{"1709287200.5", "2024-03-01T10:00:00.5Z"},
	}
	for _, p := range same {
		if !sameInstant(p[0], p[1]) {
			t.Errorf("sameInstant(%q, %q) = false", p[0], p[1])
		}
	}
	for _, s := range []string{"Fri, 01 Mar 2024 10:00:00 PST", "170928720", "17092872000", "2024-03-01", "hello world", "2024-13-01T10:00:00Z", "1709287200.", "1709287200.1234567890"} {
		if _, ok := parseTimestamp(s); ok {
			t.Errorf("parseTimestamp(%q) ok, want rejected", s)
		}
	}
}
