package diff

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the want section of golden files in testdata/golden")

// A golden case is a txtar-style file: a comment, then sections that each
// start with a "-- name --" line:
//
//	-- rules --   optional JSON: {"headers":[], "ignore":[], "unordered":{},
//	              "tolerance":{"$.total":"0.005"}, "timestamps":true, "numeric_strings":true}
//	-- legacy --  first line "<status> [truncated]", then "Name: value" headers,
//	-- new --     a blank line, and the body (a final newline is dropped)
//	-- want --    one line per difference, as formatDiff prints it
type goldenCase struct {
	comment  string
	sections []section
}

type section struct {
	name string
	data string
}

func parseGolden(tb testing.TB, data string) goldenCase {
	tb.Helper()
	var gc goldenCase
	lines := strings.SplitAfter(data, "\n")
	cur := -1
	var b strings.Builder
	flush := func() {
		if cur < 0 {
			gc.comment = b.String()
		} else {
			gc.sections[cur].data = b.String()
		}
		b.Reset()
	}
	for _, l := range lines {
		t := strings.TrimRight(l, "\n")
		if strings.HasPrefix(t, "-- ") && strings.HasSuffix(t, " --") && len(t) > 6 {
			flush()
			gc.sections = append(gc.sections, section{name: strings.TrimSpace(t[3 : len(t)-3])})
			cur = len(gc.sections) - 1
			continue
		}
		b.WriteString(l)
	}
	flush()
	return gc
}

func (gc goldenCase) get(name string) (string, bool) {
	for _, s := range gc.sections {
		if s.name == name {
			return s.data, true
		}
	}
	return "", false
}

func (gc goldenCase) format() string {
	var b strings.Builder
	b.WriteString(gc.comment)
	for _, s := range gc.sections {
		fmt.Fprintf(&b, "-- %s --\n%s", s.name, s.data)
	}
	return b.String()
}

// goldenRules is the rules section: Rules with tolerance written as strings.
type goldenRules struct {
	Headers        []string          `json:"headers"`
	Ignore         []string          `json:"ignore"`
	Unordered      map[string]string `json:"unordered"`
	Tolerance      map[string]string `json:"tolerance"`
	Timestamps     bool              `json:"timestamps"`
	NumericStrings bool              `json:"numeric_strings"`
}

func parseRules(tb testing.TB, s string) Rules {
	tb.Helper()
	if strings.TrimSpace(s) == "" {
		return Rules{}
	}
	var gr goldenRules
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&gr); err != nil {
		tb.Fatalf("rules: %v", err)
	}
	r := Rules{Headers: gr.Headers, Ignore: gr.Ignore, Unordered: gr.Unordered,
		Timestamps: gr.Timestamps, NumericStrings: gr.NumericStrings}
	if gr.Tolerance != nil {
		r.Tolerance = map[string]Tolerance{}
		for p, v := range gr.Tolerance {
			t, err := ParseTolerance(v)
			if err != nil {
				tb.Fatal(err)
			}
			r.Tolerance[p] = t
		}
	}
	return r
}

func parseResponse(tb testing.TB, s string) Response {
	tb.Helper()
	head, body, _ := strings.Cut(s, "\n\n")
	lines := strings.Split(head, "\n")
	fields := strings.Fields(lines[0])
	if len(fields) == 0 {
		tb.Fatalf("response %q: no status line", s)
	}
	status, err := strconv.Atoi(fields[0])
	if err != nil {
		tb.Fatalf("status line %q: %v", lines[0], err)
	}
	r := Response{Status: status, Header: map[string][]string{}}
	if len(fields) > 1 && fields[1] == "truncated" {
		r.Truncated = true
	}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			tb.Fatalf("header line %q", l)
		}
		r.Header[k] = append(r.Header[k], strings.TrimSpace(v))
	}
	r.Body = []byte(strings.TrimSuffix(body, "\n"))
	return r
}

// formatDiff prints one difference as a golden line.
func formatDiff(d Difference) string {
	val := func(v any) string {
		if v == nil {
			return "-"
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return fmt.Sprintf("!%v", err)
		}
		return strings.TrimSuffix(b.String(), "\n")
	}
	s := fmt.Sprintf("%s %s %s %s", d.Kind, d.Path, val(d.Legacy), val(d.New))
	if d.Kind == More {
		s = fmt.Sprintf("%s %s %d lines", d.Kind, d.Path, d.Lines)
	}
	if d.Noise {
		s += " noise"
	}
	return s
}

func formatDiffs(diffs []Difference) string {
	var b strings.Builder
	for _, d := range diffs {
		b.WriteString(formatDiff(d))
		b.WriteByte('\n')
	}
	return b.String()
}

func TestComparer_Compare_golden(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 15 {
		t.Fatalf("found %d golden files, want at least 15", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			gc := parseGolden(t, string(data))
			rulesText, _ := gc.get("rules")
			legacyText, ok1 := gc.get("legacy")
			newText, ok2 := gc.get("new")
			if !ok1 || !ok2 {
				t.Fatal("golden file needs legacy and new sections")
			}
			c, err := Compile(parseRules(t, rulesText))
			if err != nil {
				t.Fatal(err)
			}
			legacy, candidate := parseResponse(t, legacyText), parseResponse(t, newText)
			got := formatDiffs(c.Compare(legacy, candidate))

			// The same pair compared twice gives the same answer, and each
			// side compared with itself gives none.
			if again := formatDiffs(c.Compare(legacy, candidate)); again != got {
				t.Errorf("second Compare differs:\n%s\nfirst:\n%s", again, got)
			}
			for _, r := range []Response{legacy, candidate} {
				if d := c.Compare(r, r); len(d) != 0 {
					t.Errorf("side compared with itself: %s", formatDiffs(d))
				}
			}

			if *update {
				found := false
				for i := range gc.sections {
					if gc.sections[i].name == "want" {
						gc.sections[i].data, found = got, true
					}
				}
				if !found {
					gc.sections = append(gc.sections, section{name: "want", data: got})
				}
				if err := os.WriteFile(file, []byte(gc.format()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, ok := gc.get("want")
			if !ok {
				t.Fatal("no want section; run go test ./diff -update")
			}
			if got != want {
				t.Errorf("differences:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestParseGolden_roundTrip(t *testing.T) {
	in := "comment\n-- rules --\n{}\n-- legacy --\n200\n\n{}\n-- want --\n"
	if got := parseGolden(t, in).format(); got != in {
		t.Errorf("format(parse(x)) = %q, want %q", got, in)
	}
	if !bytes.Equal([]byte(parseResponse(t, "200\nContent-Type: text/plain\n\nhi\n").Body), []byte("hi")) {
		t.Error("body parse")
	}
}
