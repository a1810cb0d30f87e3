package reports

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/diff"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// goldenStore records a small, fixed estate: orders-read differs in one
// field and has a noisy request_id; checkout matches; search has an error.
func goldenStore(tb testing.TB) *Store {
	tb.Helper()
	s, _ := openTestStore(tb, Options{Redact: []string{"$..email"}})
	base := testNow.Add(-20 * time.Minute)
	for i := 1; i <= 20; i++ {
		at := base.Add(time.Duration(i) * time.Second)
		o := outcome("orders-read", at, diff.NoiseOnly, 10+i, 8+i,
			diff.Difference{Path: "$.meta.request_id", Kind: diff.Changed, Legacy: "req-a", New: "req-b", Noise: true})
		o.URL = "/api/orders/" + strings.Repeat("7", i%3+1)
		if i%5 == 0 {
			o.Verdict = diff.Diff
			o.Differences = append(o.Differences,
				diff.Difference{Path: "$.items[0].price", Kind: diff.Changed, Legacy: 1999, New: 2000},
				diff.Difference{Path: "$.customer.email", Kind: diff.Changed, Legacy: "jane@example.com", New: "JANE@example.com"})
		}
		record(tb, s, o)
		record(tb, s, outcome("checkout", at, diff.Match, 30, 25))
	}
	e := outcome("search", base, diff.Error, 40, 0)
	e.New = diff.Response{Backend: "svc", Err: "timeout after 5s"}
	record(tb, s, e, outcome("search", base.Add(time.Second), diff.Match, 42, 21))
	flush(tb, s)
	return s
}

func goldenReport(tb testing.TB) *Report {
	tb.Helper()
	rep, err := goldenStore(tb).Report(context.Background(), Query{Since: testNow.Add(-time.Hour)})
	if err != nil {
		tb.Fatal(err)
	}
	return rep
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./reports -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (go test ./reports -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// rendered returns rep as write renders it.
func rendered(tb testing.TB, write func(io.Writer, *Report) error, rep *Report) *bytes.Buffer {
	tb.Helper()
	var b bytes.Buffer
	if err := write(&b, rep); err != nil {
		tb.Fatal(err)
	}
	return &b
}

// plainComparer returns a comparer without rules.
func plainComparer(tb testing.TB) *diff.Comparer {
	tb.Helper()
	c, err := diff.Compile(diff.Rules{})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// recordedReport records o in s and returns the report of all s holds.
func recordedReport(tb testing.TB, s *Store, o diff.Outcome) *Report {
	tb.Helper()
	record(tb, s, o)
	flush(tb, s)
	rep, err := s.Report(context.Background(), Query{})
	if err != nil {
		tb.Fatal(err)
	}
	return rep
}

// examplesPage serves the dashboard page at target (a route's examples).
func examplesPage(s *Store, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.Dashboard(func() []RouteWeights { return nil }).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec
}

func TestWriteText(t *testing.T) {
	b := rendered(t, WriteText, goldenReport(t))
	checkGolden(t, "report.txt.golden", b.Bytes())
}

func TestWriteJSON(t *testing.T) {
	b := rendered(t, WriteJSON, goldenReport(t))
	checkGolden(t, "report.json.golden", b.Bytes())
}

func TestWriteHTML(t *testing.T) {
	b := rendered(t, WriteHTML, goldenReport(t))
	page := b.String()
	for _, want := range []string{"<!DOCTYPE html>", "orders-read", "$.items[*].price", "$.meta.request_id", "(noise)", "DIFFERS", "ERRORS"} {
		if !strings.Contains(page, want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "http://", "https://"} {
		if strings.Contains(page, bad) {
			t.Errorf("HTML report is not standalone: holds %q", bad)
		}
	}
}

// TestRender_NullAndAbsent records a pair where legacy has null members
// that new sets or lacks, and new a member legacy lacks: null is shown as
// null, and only the side a kind says has no value as absent.
func TestRender_NullAndAbsent(t *testing.T) {
	s, _ := openTestStore(t, Options{})
	c := plainComparer(t)
	ct := map[string][]string{"Content-Type": {"application/json"}}
	ds := c.Compare(diff.Response{Status: 200, Header: ct, Body: []byte(`{"coupon":null,"gift":null}`)},
		diff.Response{Status: 200, Header: ct, Body: []byte(`{"coupon":"SAVE10","note":"x"}`)})
	rep := recordedReport(t, s, outcome("orders", testNow.Add(-time.Minute), diff.Diff, 1, 1, ds...))

	t.Run("text", func(t *testing.T) {
		b := rendered(t, WriteText, rep)
		for _, want := range []string{`null -> "SAVE10"`, `null -> (absent)`, `(absent) -> "x"`} {
			if !strings.Contains(b.String(), want) {
				t.Errorf("text report lacks %q:\n%s", want, b.String())
			}
		}
	})
	t.Run("JSON", func(t *testing.T) {
		b := rendered(t, WriteJSON, rep)
		var got struct {
			Routes []struct {
				Fields []struct {
					Path    string
					Kind    diff.Kind
					Example struct{ Legacy, New json.RawMessage }
				}
			}
		}
		if err := json.Unmarshal(b.Bytes(), &got); err != nil || len(got.Routes) != 1 {
			t.Fatalf("JSON report: %v\n%s", err, b.String())
		}
		// Absent and null are both null; the kind tells them apart.
		want := map[string]string{"$.coupon": `type null "SAVE10"`, "$.gift": `missing null null`, "$.note": `extra null "x"`}
		for _, f := range got.Routes[0].Fields {
			if got := fmt.Sprintf("%s %s %s", f.Kind, f.Example.Legacy, f.Example.New); got != want[f.Path] {
				t.Errorf("%s = %s, want %s", f.Path, got, want[f.Path])
			}
			delete(want, f.Path)
		}
		if len(want) > 0 {
			t.Errorf("JSON report lacks %v:\n%s", want, b.String())
		}
	})
	t.Run("HTML", func(t *testing.T) {
		b := rendered(t, WriteHTML, rep)
		for _, want := range []string{`<code>null</code> &rarr; <code>&#34;SAVE10&#34;</code>`,
			`<code>null</code> &rarr; <code>(absent)</code>`, `<code>(absent)</code> &rarr; <code>&#34;x&#34;</code>`} {
			if !strings.Contains(b.String(), want) {
				t.Errorf("HTML report lacks %s:\n%s", want, b.String())
			}
		}
	})
	t.Run("examples page", func(t *testing.T) {
		rec := examplesPage(s, "/?route=orders&path="+url.QueryEscape("$.gift"))
		if want := `<td><code>$.gift</code></td><td>missing</td><td><code>null</code></td><td><code>(absent)</code></td>`; !strings.Contains(rec.Body.String(), want) {
			t.Errorf("examples page lacks %s:\n%s", want, rec.Body.String())
		}
	})
}

// TestRender_MoreDifferingLines records a text page of which 30 lines
// differ: the report shows 20 and sums up the other 10 as "… and 10 more
// differing lines", not as a value that changed to null, and the JSON
// says what it is (kind "more", with the line count).
func TestRender_MoreDifferingLines(t *testing.T) {
	s, _ := openTestStore(t, Options{})
	c := plainComparer(t)
	page := func(v string) diff.Response {
		var b strings.Builder
		for i := 1; i <= 30; i++ {
			fmt.Fprintf(&b, "line %d %s\n", i, v)
		}
		return diff.Response{Status: 200, Header: map[string][]string{"Content-Type": {"text/plain"}}, Body: []byte(b.String())}
	}
	legacy, newer := page("old"), page("new")
	ds, v := diff.Judge(legacy, newer, c.Compare(legacy, newer), nil)
	o := outcome("pages", testNow.Add(-time.Minute), v, 1, 1, ds...)
	o.Legacy.Body, o.New.Body = legacy.Body, newer.Body
	rep := recordedReport(t, s, o)
	const summary = "… and 10 more differing lines"

	t.Run("text", func(t *testing.T) {
		b := rendered(t, WriteText, rep)
		if !strings.Contains(b.String(), summary) || strings.Contains(b.String(), "-> null") {
			t.Errorf("text report does not say %q (or shows a null):\n%s", summary, b.String())
		}
	})
	t.Run("JSON", func(t *testing.T) {
		b := rendered(t, WriteJSON, rep)
		var got struct {
			Routes []struct {
				Fields []struct {
					Path    string
					Kind    diff.Kind
					Example struct{ Lines int }
				}
			}
		}
		if err := json.Unmarshal(b.Bytes(), &got); err != nil || len(got.Routes) != 1 {
			t.Fatalf("JSON report: %v\n%s", err, b.String())
		}
		found := false
		for _, f := range got.Routes[0].Fields {
			if f.Path == "body" {
				found = true
				if f.Kind != diff.More || f.Example.Lines != 10 {
					t.Errorf("body: kind %q with %d lines, want %q with 10:\n%s", f.Kind, f.Example.Lines, diff.More, b.String())
				}
			}
		}
		if !found {
			t.Errorf("JSON report has no body field:\n%s", b.String())
		}
	})
	t.Run("HTML", func(t *testing.T) {
		b := rendered(t, WriteHTML, rep)
		if !strings.Contains(b.String(), summary) || strings.Contains(b.String(), "<code>null</code>") {
			t.Errorf("HTML report does not say %q (or shows a null):\n%s", summary, b.String())
		}
	})
	t.Run("examples page", func(t *testing.T) {
		rec := examplesPage(s, "/?route=pages&path=body")
		if !strings.Contains(rec.Body.String(), summary) || strings.Contains(rec.Body.String(), "<code>null</code>") {
			t.Errorf("examples page does not say %q (or shows a null):\n%s", summary, rec.Body.String())
		}
	})
}

// TestRouteVerdict_moreIsNotAFieldPath: the summary of line differences
// not listed is not a field path of its own: the verdict neither counts
// it nor names it as the place pairs differ most often.
func TestRouteVerdict_moreIsNotAFieldPath(t *testing.T) {
	rt := RouteReport{Compared: 5, Diffs: 5, Fields: []FieldReport{
		{Path: "body", Kind: diff.More, Count: 5},
		{Path: "body:L3", Kind: diff.Changed, Count: 5},
		{Path: "body:L7", Kind: diff.Changed, Count: 2},
	}}
	if got, want := routeVerdict(rt), "DIFFERS, 5 of 5 pairs (100.0%) differ in 2 field paths, most often body:L3"; got != want {
		t.Errorf("verdict = %q, want %q", got, want)
	}
}

func TestValueText(t *testing.T) {
	tests := []struct {
		name        string
		kind        diff.Kind
		legacy, new any
		want        string
	}{
		{"extra has no legacy", diff.Extra, nil, "x", `(absent) -> "x"`},
		{"missing has no new", diff.Missing, nil, nil, `null -> (absent)`},
		{"null changed", diff.Type, nil, json.Number("1"), `null -> 1`},
		{"large integers as written", diff.Changed, json.Number("1234567890123456789"), json.Number("1e400"), `1234567890123456789 -> 1e400`},
		{"order of rows carries no values", diff.Order, nil, nil, `- -> -`},
		{"markup and ampersands as sent", diff.Changed, "<li>Tea & cake</li>", map[string]any{"a": "<b>"}, `"<li>Tea & cake</li>" -> {"a":"<b>"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := legacyText(tt.kind, tt.legacy) + " -> " + newText(tt.kind, tt.new); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestReport_Clean(t *testing.T) {
	for _, c := range []struct {
		name string
		r    RouteReport
		want bool
	}{
		{"matches and noise", RouteReport{Compared: 3, Matched: 2, NoiseOnly: 1}, true},
		{"diffs", RouteReport{Compared: 3, Diffs: 1}, false},
		{"errors", RouteReport{Compared: 3, Errors: 1}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := (&Report{Routes: []RouteReport{c.r}}).Clean(); got != c.want {
				t.Errorf("Clean() = %v, want %v", got, c.want)
			}
		})
	}
}

func TestDashboard_Handler(t *testing.T) {
	s := goldenStore(t)
	h := s.Dashboard(func() []RouteWeights {
		return []RouteWeights{{Name: "orders-read", Split: map[string]int{"legacy": 80, "orders-svc": 20}}, {Name: "idle"}}
	})
	get := func(target string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		return rec.Code, rec.Body.String()
	}
	code, page := get("/")
	if code != http.StatusOK {
		t.Fatalf("GET / = %d: %s", code, page)
	}
	for _, want := range []string{"legacy=80, orders-svc=20", "<svg", "<circle", "$.items[*].price",
		`href="?route=orders-read&amp;path=%24.items%5b%2a%5d.price"`, "idle", "checkout", "search"} {
		if !strings.Contains(page, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	if strings.Contains(page, "<script") {
		t.Error("dashboard has a script")
	}
	code, page = get("/?route=orders-read&path=" + url.QueryEscape("$.items[*].price"))
	if code != http.StatusOK {
		t.Fatalf("drill-down = %d: %s", code, page)
	}
	for _, want := range []string{"/api/orders/", "1999", "2000", "$.items[0].price", "<pre>"} {
		if !strings.Contains(page, want) {
			t.Errorf("drill-down lacks %q:\n%s", want, page)
		}
	}
	if n := strings.Count(page, "<h2>GET"); n != 4 {
		t.Errorf("drill-down shows %d examples, want 4", n)
	}
	if code, _ := get("/other"); code != http.StatusNotFound {
		t.Errorf("GET /other = %d, want 404", code)
	}
	if code, _ := get("/?since=banana"); code != http.StatusBadRequest {
		t.Errorf("bad since = %d, want 400", code)
	}
}

func TestChart(t *testing.T) {
	since := testNow.Add(-time.Hour)
	svg := string(chart([]point{
		{At: since.Add(10 * time.Minute), Compared: 10, Matching: 10},
		{At: since.Add(20 * time.Minute), Compared: 0},
		{At: since.Add(30 * time.Minute), Compared: 4, Matching: 2},
	}, since, testNow))
	if got := strings.Count(svg, "<circle"); got != 2 {
		t.Errorf("%d points drawn, want 2 (empty steps skipped):\n%s", got, svg)
	}
	// x spans 36..604 over the hour, y 18..122 for 100..0 %.
	for _, want := range []string{`points="130.7,18.0 320.0,70.0"`, "100.0% of 10", "50.0% of 4"} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q:\n%s", want, svg)
		}
	}
	if empty := string(chart(nil, since, testNow)); !strings.Contains(empty, "no compared pairs") {
		t.Errorf("empty chart does not say so:\n%s", empty)
	}
}

// TestRender_SmallSharesAreNotRoundedAway: one differing pair in 100,000
// is not "0.0%" of them, and the match rate is not "100.0%" (nor 1 in
// JSON) while a pair differs; all and none still print as 100.0% and 0.0%.
func TestRender_SmallSharesAreNotRoundedAway(t *testing.T) {
	rt := RouteReport{Route: "orders-read", Compared: 100_000, Matched: 99_999, Diffs: 1, Fields: []FieldReport{}}
	rt.MatchRate = matchRate(rt.Matched+rt.NoiseOnly, rt.Compared)
	if rt.MatchRate >= 1 {
		t.Errorf("match_rate = %v with a differing pair, want below 1", rt.MatchRate)
	}
	if got := matchRate(1, 100_000); got <= 0 {
		t.Errorf("match_rate of 1 matching pair in 100,000 = %v, want above 0", got)
	}
	if got := matchRate(5, 5); got != 1 {
		t.Errorf("match_rate of all = %v, want 1", got)
	}
	rep := &Report{Generated: testNow, Routes: []RouteReport{rt}}
	var text, page bytes.Buffer
	if err := WriteText(&text, rep); err != nil {
		t.Fatal(err)
	}
	if err := WriteHTML(&page, rep); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"text": text.String(), "html": page.String()} {
		for _, bad := range []string{"1 (0.0%)", "(0.0%) differ", "match rate 100.0%", ">100.0%<"} {
			if strings.Contains(out, bad) {
				t.Errorf("%s shows %q:\n%s", name, bad, out)
			}
		}
		if !strings.Contains(out, "99999 (&gt;99.9%)") && !strings.Contains(out, "99999 (>99.9%)") {
			t.Errorf("%s does not show 99999 matched as >99.9%%:\n%s", name, out)
		}
	}
	if all := pct(20, 20); all != "100.0%" {
		t.Errorf("pct(20, 20) = %q", all)
	}
	if none := pct(0, 20); none != "0.0%" {
		t.Errorf("pct(0, 20) = %q", none)
	}
}

// TestWriteHTML_EscapesValues: values are shown as sent in text, and the
// HTML page escapes them: markup in a service's answer is never markup in
// the report.
func TestWriteHTML_EscapesValues(t *testing.T) {
	rep := &Report{Generated: testNow, Routes: []RouteReport{{Route: "pages", Compared: 1, Diffs: 1, Fields: []FieldReport{{
		Path: "body:L3", Count: 1, Kind: diff.Changed,
		Example: &FieldExample{URL: "/p?a=1&b=2", Legacy: `<script>alert("x")</script>`, New: "<b>ok</b>", kind: diff.Changed},
	}}}}}
	var page bytes.Buffer
	if err := WriteHTML(&page, rep); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(page.String(), "<script>") || strings.Contains(page.String(), "<b>ok") {
		t.Errorf("markup from a value reached the page:\n%s", page.String())
	}
	if !strings.Contains(page.String(), "&lt;script&gt;") {
		t.Errorf("the value is not shown escaped:\n%s", page.String())
	}
}
