package reports

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banyanhq/banyan/diff"
)

// testNow is the fixed clock of test stores.
var testNow = time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)

func openTestStore(tb testing.TB, o Options) (*Store, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "reports.db")
	s, err := open(path, o, func() time.Time { return testNow })
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return s, path
}

func flush(tb testing.TB, s *Store) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		tb.Fatalf("flush: %v", err)
	}
}

func record(tb testing.TB, s *Store, os ...diff.Outcome) {
	tb.Helper()
	for _, o := range os {
		if !s.Record(o) {
			tb.Fatalf("Record dropped %s %s", o.Route, o.URL)
		}
	}
}

// outcome builds a compared pair of route at t with the given latencies.
func outcome(route string, t time.Time, v diff.Verdict, legacyMS, newMS int, ds ...diff.Difference) diff.Outcome {
	return diff.Outcome{
		Time: t, Route: route, Method: "GET", Path: "/api/" + route + "/{id}", URL: fmt.Sprintf("/api/%s/%d", route, t.Unix()%1000),
		Legacy:  diff.Response{Backend: "legacy", Status: 200, Latency: time.Duration(legacyMS) * time.Millisecond, Body: []byte(`{"id":1}`)},
		New:     diff.Response{Backend: "svc", Status: 200, Latency: time.Duration(newMS) * time.Millisecond, Body: []byte(`{"id":1}`)},
		Verdict: v, Differences: ds,
	}
}

func count(tb testing.TB, s *Store, q string, args ...any) int64 {
	tb.Helper()
	var n int64
	if err := s.db.QueryRow(q, args...).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestStore_Report(t *testing.T) {
	s, _ := openTestStore(t, Options{})
	base := testNow.Add(-30 * time.Minute)
	// orders: 100 pairs, latencies 1..100 ms legacy and 2..200 ms new.
	// 10 differ in items[*].price (once at two indices), 3 in total as
	// well, 20 only in the noisy request_id, 2 are errors.
	for i := 1; i <= 100; i++ {
		at := base.Add(time.Duration(i) * time.Second)
		o := outcome("orders", at, diff.Match, i, 2*i)
		switch {
		case i <= 10:
			o.Verdict = diff.Diff
			o.Differences = []diff.Difference{
				{Path: "$.items[0].price", Kind: diff.Changed, Legacy: 10, New: 11},
				{Path: "$.meta.request_id", Kind: diff.Changed, Legacy: "a", New: "b", Noise: true},
			}
			if i == 1 {
				o.Differences = append(o.Differences, diff.Difference{Path: "$.items[1].price", Kind: diff.Changed, Legacy: 5, New: 6})
			}
			if i <= 3 {
				o.Differences = append(o.Differences, diff.Difference{Path: "$.total", Kind: diff.Missing, Legacy: 15})
			}
		case i <= 30:
			o.Verdict = diff.NoiseOnly
			o.Differences = []diff.Difference{{Path: "$.meta.request_id", Kind: diff.Changed, Legacy: "a", New: "b", Noise: true}}
		case i <= 32:
			o.Verdict = diff.Error
			o.New = diff.Response{Backend: "svc", Err: "timeout"}
		}
		record(t, s, o)
	}
	// users: all match; one pair from before the report window.
	record(t, s, outcome("users", base, diff.Match, 5, 5), outcome("users", testNow.Add(-3*time.Hour), diff.Diff, 5, 5,
		diff.Difference{Path: "$.name", Kind: diff.Changed, Legacy: "a", New: "b"}))
	flush(t, s)

	rep, err := s.Report(context.Background(), Query{Since: testNow.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(rep.Routes), 2; got != want {
		t.Fatalf("routes = %d, want %d: %+v", got, want, rep.Routes)
	}
	o := rep.Routes[0]
	if o.Route != "orders" {
		t.Fatalf("first route = %q, want orders (sorted)", o.Route)
	}
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"compared", o.Compared, 100}, {"matched", o.Matched, 68}, {"diffs", o.Diffs, 10},
		{"noise_only", o.NoiseOnly, 20}, {"errors", o.Errors, 2},
	} {
		if c.got != c.want {
			t.Errorf("orders %s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if got, want := o.MatchRate, 0.88; got != want {
		t.Errorf("match rate = %v, want %v", got, want)
	}
	wantFields := []struct {
		path  string
		kind  diff.Kind
		count int64
		noise bool
	}{
		{"$.items[*].price", diff.Changed, 10, false},
		{"$.total", diff.Missing, 3, false},
		{"$.meta.request_id", diff.Changed, 30, true},
	}
	if len(o.Fields) != len(wantFields) {
		t.Fatalf("fields = %+v, want %d", o.Fields, len(wantFields))
	}
	for i, w := range wantFields {
		f := o.Fields[i]
		if f.Path != w.path || f.Kind != w.kind || f.Count != w.count || f.Noise != w.noise {
			t.Errorf("field %d = %s %s %d noise=%v, want %s %s %d noise=%v", i, f.Path, f.Kind, f.Count, f.Noise, w.path, w.kind, w.count, w.noise)
		}
		if f.Example == nil || f.Example.URL == "" {
			t.Errorf("field %s has no example", f.Path)
		}
	}
	if ex := o.Fields[1].Example; ex != nil && (fmt.Sprint(ex.Legacy) != "15" || ex.New != nil) {
		t.Errorf("$.total example = %v -> %v, want 15 -> absent", ex.Legacy, ex.New)
	}
	// Legacy 1..100 ms: p50 = 50, p99 = 99. New answered for all but the
	// two errors (i = 31, 32): 2..200 step 2 without 62 and 64, 98
	// values: rank 49 is 102, rank 98 is 200.
	if got, want := o.LatencyMS.Legacy, (Percentiles{P50: 50, P99: 99}); got != want {
		t.Errorf("legacy latency = %+v, want %+v", got, want)
	}
	if got, want := o.LatencyMS.New, (Percentiles{P50: 102, P99: 200}); got != want {
		t.Errorf("new latency = %+v, want %+v", got, want)
	}
	u := rep.Routes[1]
	if u.Compared != 1 || u.Matched != 1 || len(u.Fields) != 0 {
		t.Errorf("users = %+v, want 1 matched pair and no fields (the older diff is outside since)", u)
	}
	if rep.Clean() {
		t.Error("Clean() = true with diffs")
	}

	t.Run("route filter and no since", func(t *testing.T) {
		rep, err := s.Report(context.Background(), Query{Route: "users"})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Routes) != 1 || rep.Routes[0].Compared != 2 || rep.Routes[0].Diffs != 1 {
			t.Fatalf("users report = %+v, want 2 compared, 1 diff", rep.Routes)
		}
		if !rep.Since.IsZero() {
			t.Errorf("since = %v, want zero", rep.Since)
		}
	})
	t.Run("latency bins", func(t *testing.T) {
		for _, c := range [][2]int64{{0, 0}, {999, 999}, {1234, 1230}, {98765, 98700}, {1234567, 1230000}} {
			if got := latencyBin(c[0]); got != c[1] {
				t.Errorf("latencyBin(%d) = %d, want %d", c[0], got, c[1])
			}
		}
	})
}

func TestStore_ReportKeepsLargeIntegers(t *testing.T) {
	s, _ := openTestStore(t, Options{})
	c, err := diff.Compile(diff.Rules{})
	if err != nil {
		t.Fatal(err)
	}
	ct := map[string][]string{"Content-Type": {"application/json"}}
	ds := c.Compare(diff.Response{Status: 200, Header: ct, Body: []byte(`{"order_id":1234567890123456789}`)},
		diff.Response{Status: 200, Header: ct, Body: []byte(`{"order_id":1234567890123456788}`)})
	if len(ds) != 1 {
		t.Fatalf("differences = %+v, want one at $.order_id", ds)
	}
	record(t, s, outcome("orders", testNow.Add(-time.Minute), diff.Diff, 1, 1, ds...))
	flush(t, s)
	ctx := context.Background()

	t.Run("text report", func(t *testing.T) {
		rep, err := s.Report(ctx, Query{})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := WriteText(&b, rep); err != nil {
			t.Fatal(err)
		}
		if want := "1234567890123456789 -> 1234567890123456788"; !strings.Contains(b.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, b.String())
		}
	})
	t.Run("examples", func(t *testing.T) {
		ex, err := s.Examples(ctx, "orders", "$.order_id")
		if err != nil || len(ex) != 1 || len(ex[0].Differences) != 1 {
			t.Fatalf("examples = %+v, %v; want one with one difference", ex, err)
		}
		d := ex[0].Differences[0]
		if got, want := fmt.Sprint(d.Legacy, " -> ", d.New), "1234567890123456789 -> 1234567890123456788"; got != want {
			t.Errorf("example difference = %s (%T), want %s", got, d.Legacy, want)
		}
	})
}

func TestStore_ExamplesBounded(t *testing.T) {
	s, _ := openTestStore(t, Options{Examples: 3})
	for i := range 10 {
		record(t, s, outcome("orders", testNow.Add(time.Duration(i)*time.Second), diff.Diff, 1, 1,
			diff.Difference{Path: fmt.Sprintf("$.items[%d].price", i), Kind: diff.Changed, Legacy: i, New: i + 1},
			diff.Difference{Path: "$.total", Kind: diff.Changed, Legacy: 1, New: 2}))
		if i == 4 {
			flush(t, s) // the bound holds across batches too
		}
	}
	record(t, s, outcome("users", testNow, diff.Diff, 1, 1, diff.Difference{Path: "$.total", Kind: diff.Changed, Legacy: 1, New: 2}))
	flush(t, s)
	for _, c := range []struct {
		route, field string
		want         int
	}{{"orders", "$.items[*].price", 3}, {"orders", "$.total", 3}, {"users", "$.total", 1}} {
		ex, err := s.Examples(context.Background(), c.route, c.field)
		if err != nil {
			t.Fatal(err)
		}
		if len(ex) != c.want {
			t.Errorf("examples of %s %s = %d, want %d", c.route, c.field, len(ex), c.want)
		}
	}
	// One outcome row holds both fields' first examples: 3 rows, not 6.
	if got := count(t, s, `SELECT count(*) FROM examples WHERE route='orders'`); got != 3 {
		t.Errorf("orders example rows = %d, want 3", got)
	}
	ex, _ := s.Examples(context.Background(), "orders", "$.total")
	if len(ex) > 0 && (ex[0].Legacy.Body != `{"id":1}` || ex[0].Legacy.Status != 200 || len(ex[0].Differences) != 2) {
		t.Errorf("example = %+v, want both bodies, statuses and differences", ex[0])
	}
}

func TestStore_RetentionByCount(t *testing.T) {
	s, _ := openTestStore(t, Options{MaxOutcomes: 100})
	for i := range 250 {
		v, ds := diff.Match, []diff.Difference(nil)
		if i%2 == 0 {
			v, ds = diff.Diff, []diff.Difference{{Path: "$.x", Kind: diff.Changed, Legacy: 1, New: 2}}
		}
		record(t, s, outcome("orders", testNow.Add(time.Duration(i)*time.Second-time.Hour), v, i, i, ds...))
		if i%60 == 0 {
			flush(t, s)
		}
	}
	flush(t, s)
	if got := count(t, s, `SELECT count(*) FROM outcomes`); got != 100 {
		t.Fatalf("outcomes = %d, want 100", got)
	}
	if got := count(t, s, `SELECT min(legacy_us) FROM outcomes`); got != 150_000 {
		t.Errorf("oldest kept legacy latency = %dus, want 150000 (the newest 100 kept)", got)
	}
	rep, err := s.Report(context.Background(), Query{})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Routes[0]
	if r.Compared != 100 || r.Diffs != 50 || r.Matched != 50 || len(r.Fields) != 1 || r.Fields[0].Count != 50 {
		t.Errorf("report after pruning = %+v, want 100 compared, 50 diffs in $.x", r)
	}
	if got, want := r.LatencyMS.Legacy, (Percentiles{P50: 199, P99: 248}); got != want {
		t.Errorf("latency after pruning = %+v, want %+v", got, want)
	}
}

func TestStore_RetentionByAge(t *testing.T) {
	s, _ := openTestStore(t, Options{MaxAge: 24 * time.Hour})
	old := testNow.Add(-48 * time.Hour)
	for i := range 5 {
		record(t, s, outcome("orders", old.Add(time.Duration(i)*time.Minute), diff.Diff, 1, 1,
			diff.Difference{Path: "$.old", Kind: diff.Changed, Legacy: 1, New: 2}))
	}
	record(t, s, outcome("orders", testNow.Add(-time.Hour), diff.Diff, 1, 1, diff.Difference{Path: "$.new", Kind: diff.Changed, Legacy: 1, New: 2}))
	ctx := context.Background()
	if err := s.flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got := count(t, s, `SELECT count(*) FROM outcomes`); got != 1 {
		t.Errorf("outcomes = %d, want 1", got)
	}
	if got := count(t, s, `SELECT count(*) FROM examples`); got != 1 {
		t.Errorf("examples = %d, want 1", got)
	}
	rep, err := s.Report(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Routes) != 1 || rep.Routes[0].Compared != 1 || len(rep.Routes[0].Fields) != 1 || rep.Routes[0].Fields[0].Path != "$.new" {
		t.Errorf("report = %+v, want only the recent pair", rep.Routes)
	}
	// Pruned examples make room for new ones of the same field.
	record(t, s, outcome("orders", testNow, diff.Diff, 1, 1, diff.Difference{Path: "$.old", Kind: diff.Changed, Legacy: 1, New: 2}))
	flush(t, s)
	if ex, _ := s.Examples(ctx, "orders", "$.old"); len(ex) != 1 {
		t.Errorf("examples of $.old after pruning = %d, want 1", len(ex))
	}
}

func TestStore_RecordNeverBlocks(t *testing.T) {
	s, _ := openTestStore(t, Options{Queue: 10})
	ctx := context.Background()
	// Hold the only connection: the writer stalls on its next transaction
	// (after at most batchMax outcomes), as on a slow disk.
	conn, err := s.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	var accepted, refused int64
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for g := range 4 {
		wg.Go(func() {
			var a, r int64
			for i := range n / 4 {
				if s.Record(outcome("orders", testNow.Add(time.Duration(g*n+i)*time.Millisecond), diff.Match, 1, 1)) {
					a++
				} else {
					r++
				}
			}
			mu.Lock()
			accepted, refused = accepted+a, refused+r
			mu.Unlock()
		})
	}
	wg.Wait()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("%d Records took %v with the writer stalled", n, took)
	}
	if refused == 0 {
		t.Fatalf("no Record refused with the writer stalled and a queue of 10 (accepted %d)", accepted)
	}
	if accepted > batchMax+10+1 {
		t.Errorf("accepted %d, more than a batch plus the queue", accepted)
	}
	if got := s.Dropped(); got != refused {
		t.Errorf("Dropped() = %d, want %d", got, refused)
	}
	conn.Close()
	flush(t, s)
	if got := count(t, s, `SELECT count(*) FROM outcomes`); got != accepted {
		t.Errorf("stored %d outcomes, want the %d accepted", got, accepted)
	}
}

func TestStore_Close(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	record(t, s, outcome("orders", now, diff.Match, 1, 1), outcome("orders", now, diff.Match, 1, 1))
	ctx := context.Background()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Record(outcome("orders", testNow, diff.Match, 1, 1)) {
		t.Error("Record after Close accepted")
	}
	if err := s.Flush(ctx); err != ErrClosed {
		t.Errorf("Flush after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("second Close = %v", err)
	}
	// Close wrote what was queued; a read-only reopen sees it.
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close(ctx)
	rep, err := ro.Report(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Routes) != 1 || rep.Routes[0].Compared != 2 {
		t.Errorf("after reopen: %+v, want 2 compared", rep.Routes)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing.db"), Options{ReadOnly: true}); !errors.Is(err, ErrNoStore) {
		t.Errorf("read-only open of a missing file = %v, want ErrNoStore", err)
	}
}

func TestOpen_BadRedactPath(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "r.db"), Options{Redact: []string{"email"}}); !errors.Is(err, ErrBadRedactPath) {
		t.Errorf("err = %v, want ErrBadRedactPath", err)
	}
}

// BenchmarkStore_Record measures recording throughput end to end: redact,
// queue, batch insert with aggregates, one differing field in five pairs.
func BenchmarkStore_Record(b *testing.B) {
	s, _ := openTestStore(b, Options{Queue: 100_000})
	o := outcome("orders", testNow, diff.Match, 10, 12)
	o.Legacy.Body = []byte(`{"id":1,"items":[{"sku":"a","price":10}],"customer":{"email":"a@b.io"},"note":"order 1234567812345678"}`)
	o.New.Body = o.Legacy.Body
	d := outcome("orders", testNow, diff.Diff, 10, 12, diff.Difference{Path: "$.items[0].price", Kind: diff.Changed, Legacy: 10, New: 11})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		x := o
		if i%5 == 0 {
			x = d
		}
		x.Time = testNow.Add(time.Duration(i) * time.Millisecond)
		for !s.Record(x) {
			time.Sleep(time.Millisecond) // benchmark the writer, not drops
		}
	}
	flush(b, s)
}

// BenchmarkStore_Report reports over a store of 200,000 pairs spread over
// a week: it reads aggregates only.
func BenchmarkStore_Report(b *testing.B) {
	s, _ := openTestStore(b, Options{Queue: 100_000})
	const n = 200_000
	for i := range n {
		at := testNow.Add(-time.Duration(i) * 7 * 24 * time.Hour / n)
		o := outcome([]string{"orders", "users", "checkout"}[i%3], at, diff.Match, i%100, i%120)
		if i%7 == 0 {
			o.Verdict = diff.Diff
			o.Differences = []diff.Difference{{Path: fmt.Sprintf("$.items[%d].price", i%4), Kind: diff.Changed, Legacy: 1, New: 2}}
		}
		for !s.Record(o) {
			time.Sleep(time.Millisecond)
		}
	}
	flush(b, s)
	ctx := context.Background()
	for b.Loop() {
		if _, err := s.Report(ctx, Query{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestStore_ExampleOfEachKind: a field path that differed first in one
// way (null vs a number) and later in another (two numbers) shows an
// example of each kind: the "changed" row of the report is not
// illustrated by a "type" difference because the type examples filled
// the field's quota first.
func TestStore_ExampleOfEachKind(t *testing.T) {
	s, _ := openTestStore(t, Options{Examples: 2})
	for i := range 3 {
		record(t, s, outcome("orders", testNow.Add(time.Duration(i-10)*time.Minute), diff.Diff, 1, 1,
			diff.Difference{Path: "$.total", Kind: diff.Type, Legacy: nil, New: json.Number("1")}))
	}
	record(t, s, outcome("orders", testNow.Add(-time.Minute), diff.Diff, 1, 1,
		diff.Difference{Path: "$.total", Kind: diff.Changed, Legacy: json.Number("10"), New: json.Number("11")}))
	flush(t, s)
	rep, err := s.Report(context.Background(), Query{})
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, f := range rep.Routes[0].Fields {
		ex := f.Example
		if ex == nil {
			t.Errorf("%s %s: no example", f.Path, f.Kind)
			continue
		}
		switch f.Kind {
		case diff.Changed:
			found++
			if fmt.Sprint(ex.Legacy) != "10" || fmt.Sprint(ex.New) != "11" {
				t.Errorf("changed $.total example = %v -> %v, want 10 -> 11", ex.Legacy, ex.New)
			}
		case diff.Type:
			found++
			if ex.Legacy != nil || fmt.Sprint(ex.New) != "1" {
				t.Errorf("type $.total example = %v -> %v, want null -> 1", ex.Legacy, ex.New)
			}
		}
	}
	if found != 2 {
		t.Errorf("fields = %+v, want $.total changed and type", rep.Routes[0].Fields)
	}
}
