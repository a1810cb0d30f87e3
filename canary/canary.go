// Package canary runs a changed query beside the old one — or one
// workload against two servers — and says whether answers, errors,
// warnings and latency agree, before the change rolls out.
//
// Mode 1 (Queries) runs two versions of a query on one server for many
// parameter sets. Mode 2 (Servers) runs the statements of a workload (a
// .sql file, a slow log or a general log) on two servers, grouped by
// fingerprint. Both share one comparison: rows through diff.CompareRows,
// errors, SHOW WARNINGS, EXPLAIN side by side and interleaved timed runs
// judged with a one-sided Mann-Whitney U test (docs/adr/0005-sql-canary.md).
package canary

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/banyanhq/banyan/diff"
	"github.com/banyanhq/banyan/internal/progress"
)

// ErrWriteRefused is returned when a statement that is not read-only is
// to be run without Options.AllowWrites.
var ErrWriteRefused = errors.New("refusing to run a statement that is not SELECT/SHOW/EXPLAIN; pass --allow-writes to run it in a transaction that is rolled back")

// ErrNotTransactional is returned when a write would change a table whose
// engine cannot roll back (MyISAM, Aria, MEMORY...): the rollback that
// keeps --allow-writes harmless would not undo it.
var ErrNotTransactional = errors.New("refusing to write a table whose engine cannot roll back (the rollback would not undo the write); run the canary on a copy where the table is InnoDB")

// Options tune a canary run. The zero value is not useful; start from
// DefaultOptions.
type Options struct {
	Runs   int // timed runs per side
	Warmup int // untimed runs per side before timing
	// MaxLatencyRegression is the allowed slowdown of new's median over
	// old's (0.2 = 20 %). A larger slowdown fails only when it is also
	// significant (p < Alpha) and larger than MinLatencyDelta.
	MaxLatencyRegression float64
	Alpha                float64
	MinLatencyDelta      time.Duration
	AllowWrites          bool
	// Samples caps the statements compared per fingerprint in mode 2
	// (0 = every statement; the default).
	Samples int
	// Progress, when set, receives a progress bar.
	Progress io.Writer
}

// DefaultOptions are the CLI's defaults.
func DefaultOptions() Options {
	return Options{Runs: 30, Warmup: 3, MaxLatencyRegression: 0.2, Alpha: 0.01, MinLatencyDelta: 500 * time.Microsecond}
}

// Report is the outcome of a canary run; its JSON form is documented in
// docs/canary-json.md and stable.
type Report struct {
	Mode    string   `json:"mode"` // "queries" (mode 1) or "servers" (mode 2)
	Pass    bool     `json:"pass"`
	Reasons []string `json:"reasons,omitempty"`
	Checks  []*Check `json:"checks"`
	// Skipped lists workload statements not run (mode 2): writes without
	// AllowWrites, and statements that are never run (DDL, SET, CALL...).
	Skipped []Skipped `json:"skipped,omitempty"`
	Options struct {
		Runs                 int     `json:"runs"`
		Warmup               int     `json:"warmup"`
		MaxLatencyRegression float64 `json:"max_latency_regression"`
		Alpha                float64 `json:"alpha"`
		MinLatencyDeltaNS    int64   `json:"min_latency_delta_ns"`
		AllowWrites          bool    `json:"allow_writes"`
		Samples              int     `json:"samples"` // mode 2; 0 = every statement
	} `json:"options"`
}

// Skipped is a group of workload statements that was not run.
type Skipped struct {
	Fingerprint string `json:"fingerprint"`
	Count       int    `json:"count"`
	Reason      string `json:"reason"`
}

// Check is the comparison of one query (mode 1) or one fingerprint
// (mode 2).
type Check struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint,omitempty"`
	Schema      string `json:"schema,omitempty"`
	OldSQL      string `json:"old_sql"`
	NewSQL      string `json:"new_sql"`
	Ordered     bool   `json:"ordered"` // rows compared in order (top-level ORDER BY)
	Pass        bool   `json:"pass"`
	// Reasons say why the check failed, one line each.
	Reasons []string `json:"reasons,omitempty"`
	// Executions is how many parameter sets (mode 1) or statements
	// (mode 2) were compared; the counters below count among them.
	Executions   int `json:"executions"`
	ResultDiffs  int `json:"result_diffs"`
	ErrorDiffs   int `json:"error_diffs"`
	WarningDiffs int `json:"warning_diffs"`
	OldErrors    int `json:"old_errors"`
	NewErrors    int `json:"new_errors"`
	// BothErrors counts executions where both sides failed with the same
	// error: not a difference, but nothing was compared. BothError is the
	// first such error.
	BothErrors int    `json:"both_errors"`
	BothError  string `json:"both_error,omitempty"`
	// Notes qualify a verdict without failing it: executions that failed
	// on both sides, writes compared by rows affected only.
	Notes        []string       `json:"notes,omitempty"`
	FirstFailure *Failure       `json:"first_failure,omitempty"`
	Latency      *LatencyResult `json:"latency,omitempty"`
	Explain      struct {
		Old Explain `json:"old"`
		New Explain `json:"new"`
	} `json:"explain"`
}

// Failure is the first parameter set (or statement) whose answers differ.
type Failure struct {
	Params      []any             `json:"params,omitempty"` // mode 1; NULL as null
	OldSQL      string            `json:"old_sql"`          // as run, parameters bound
	NewSQL      string            `json:"new_sql"`
	Differences []diff.Difference `json:"differences"`
	OldError    string            `json:"old_error,omitempty"`
	NewError    string            `json:"new_error,omitempty"`
	OldWarnings []string          `json:"old_warnings,omitempty"`
	NewWarnings []string          `json:"new_warnings,omitempty"`
}

// LatencyResult compares the timed runs of both sides.
type LatencyResult struct {
	Old Latency `json:"old"`
	New Latency `json:"new"`
	// Ratio is new p50 / old p50.
	Ratio float64 `json:"ratio"`
	// Test names the significance test; PValue is its one-sided p-value
	// for "new is slower than old".
	Test   string  `json:"test"`
	PValue float64 `json:"p_value"`
	// Paired compares the runs pair by pair: old and new timed one after
	// the other on the same parameters.
	Paired    *PairedLatency `json:"paired,omitempty"`
	Regressed bool           `json:"regressed"`
}

// PairedLatency compares timed runs pair by pair, so that parameter sets
// of different cost do not hide a slowdown in their spread.
type PairedLatency struct {
	// Ratio is the median of new/old over the pairs; MeanDeltaNS the mean
	// of new − old, the time new adds to an execution on average (a
	// median would sit in the cheap parameters' half and miss what the
	// dear ones add).
	Ratio       float64 `json:"ratio"`
	MeanDeltaNS int64   `json:"mean_delta_ns"`
	// Test names the significance test, PValue its one-sided p-value for
	// "new is slower than old" (on the log of each pair's ratio).
	Test   string  `json:"test"`
	PValue float64 `json:"p_value"`
}

// pairRun is one execution pair: the old side's and the new side's
// statement (parameters bound), with the parameters for reports.
type pairRun struct {
	params         []any
	oldSQL, newSQL string
	schema         string
}

// Queries runs mode 1: old and new on db for every parameter set. Each
// query uses ? placeholders bound in order from a parameter set. It
// returns ErrWriteRefused (wrapped) before running anything if either
// query is not read-only and AllowWrites is off.
func Queries(ctx context.Context, db *sql.DB, oldQuery, newQuery string, params [][]any, o Options) (*Report, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	classes := [2]Class{}
	for i, q := range []string{oldQuery, newQuery} {
		c, err := Classify(q)
		if err != nil {
			return nil, fmt.Errorf("%s query: %w", [2]string{"old", "new"}[i], err)
		}
		if err := allowed(c, o.AllowWrites); err != nil {
			return nil, fmt.Errorf("%s query: %w", [2]string{"old", "new"}[i], err)
		}
		classes[i] = c
	}
	if len(params) == 0 {
		if Placeholders(oldQuery) > 0 || Placeholders(newQuery) > 0 {
			return nil, errors.New("the queries have ? placeholders but no parameter sets were given: give --params FILE.csv or --params-query 'SELECT ...'")
		}
		params = [][]any{nil}
	}
	var runs []pairRun
	for i, p := range params {
		os, err := Bind(oldQuery, p)
		if err != nil {
			return nil, fmt.Errorf("old query, parameter set %d: %w", i+1, err)
		}
		ns, err := Bind(newQuery, p)
		if err != nil {
			return nil, fmt.Errorf("new query, parameter set %d: %w", i+1, err)
		}
		runs = append(runs, pairRun{params: p, oldSQL: os, newSQL: ns})
	}
	sess, err := newSession(ctx, db, o.AllowWrites)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer sess.Close()
	if sess.noBackslash {
		for i := range runs {
			runs[i].oldSQL, _ = bind(oldQuery, runs[i].params, true)
			runs[i].newSQL, _ = bind(newQuery, runs[i].params, true)
		}
	}
	rep := newReport("queries", o)
	bar := progress.New(o.Progress, "canary", "executions", int64(2*len(runs)+2*(o.Warmup+o.Runs)))
	c := &Check{Name: "old vs new", OldSQL: oldQuery, NewSQL: newQuery, Ordered: HasOrderBy(oldQuery)}
	r := checker{o: o, a: sess, b: sess, bar: bar, classA: classes[0], classB: classes[1],
		orderDropped: c.Ordered && !HasOrderBy(newQuery) && classes[0] == ReadOnly && classes[1] == ReadOnly}
	if err := r.run(ctx, c, runs); err != nil {
		return nil, err
	}
	bar.Done()
	rep.add(c)
	return rep, nil
}

// Servers runs mode 2: every statement of the workload on oldDB and on
// newDB, grouped by fingerprint, at most Samples statements compared per
// group and Runs timed runs per side per group.
func Servers(ctx context.Context, oldDB, newDB *sql.DB, stmts []Statement, o Options) (*Report, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if len(stmts) == 0 {
		return nil, errors.New("the workload holds no statements")
	}
	rep := newReport("servers", o)
	type job struct {
		g     *Group
		class Class
		runs  []pairRun
	}
	var jobs []job
	total := 0
	for _, g := range GroupByFingerprint(stmts) {
		class, err := Classify(g.Statements[0].SQL)
		if err == nil {
			err = allowed(class, o.AllowWrites)
		}
		if err != nil {
			rep.Skipped = append(rep.Skipped, Skipped{Fingerprint: g.Fingerprint, Count: len(g.Statements), Reason: err.Error()})
			continue
		}
		j := job{g: g, class: class}
		for i, s := range g.Statements {
			if o.Samples > 0 && i >= o.Samples {
				break
			}
			j.runs = append(j.runs, pairRun{oldSQL: s.SQL, newSQL: s.SQL, schema: s.Schema})
		}
		jobs = append(jobs, j)
	}
	if len(jobs) == 0 {
		return nil, fmt.Errorf("none of the workload's %d statements can be run: %s", len(stmts), rep.Skipped[0].Reason)
	}
	a, err := newSession(ctx, oldDB, o.AllowWrites)
	if err != nil {
		return nil, fmt.Errorf("connect --dsn: %w", err)
	}
	defer a.Close()
	b, err := newSession(ctx, newDB, o.AllowWrites)
	if err != nil {
		return nil, fmt.Errorf("connect --target-dsn: %w", err)
	}
	defer b.Close()
	// A write to a table that cannot roll back on either server is
	// skipped before anything runs: the rollback would not undo it.
	runnable := jobs[:0]
	for _, j := range jobs {
		if j.class == Write {
			var bad []string
			for _, s := range []*session{a, b} {
				if err := s.use(ctx, j.g.Schema); err != nil {
					return nil, err
				}
				nt, err := s.nonTransactional(ctx, j.g.Statements[0].SQL)
				if err != nil {
					return nil, err
				}
				bad = append(bad, nt...)
			}
			if len(bad) > 0 {
				slices.Sort(bad)
				bad = slices.Compact(bad)
				rep.Skipped = append(rep.Skipped, Skipped{Fingerprint: j.g.Fingerprint, Count: len(j.g.Statements),
					Reason: fmt.Sprintf("%s: %s", ErrNotTransactional, strings.Join(bad, ", "))})
				continue
			}
		}
		total += 2*len(j.runs) + 2*(o.Warmup+o.Runs)
		runnable = append(runnable, j)
	}
	jobs = runnable
	if len(jobs) == 0 {
		return nil, fmt.Errorf("none of the workload's %d statements can be run: %s", len(stmts), rep.Skipped[len(rep.Skipped)-1].Reason)
	}
	bar := progress.New(o.Progress, "canary", "executions", int64(total))
	for _, j := range jobs {
		first := j.g.Statements[0]
		c := &Check{Name: shorten(first.SQL, 80), Fingerprint: j.g.Fingerprint, Schema: j.g.Schema,
			OldSQL: first.SQL, NewSQL: first.SQL, Ordered: HasOrderBy(first.SQL)}
		r := checker{o: o, a: a, b: b, bar: bar, classA: j.class, classB: j.class}
		if err := r.run(ctx, c, j.runs); err != nil {
			if errors.Is(err, ErrWriteRefused) { // a read that writes, through a stored function
				rep.Skipped = append(rep.Skipped, Skipped{Fingerprint: j.g.Fingerprint, Count: len(j.g.Statements), Reason: err.Error()})
				continue
			}
			return nil, err
		}
		rep.add(c)
	}
	bar.Done()
	if n := len(rep.Skipped); n > 0 {
		count := 0
		for _, s := range rep.Skipped {
			count += s.Count
		}
		rep.Reasons = append(rep.Reasons, fmt.Sprintf("note: %d statements in %d fingerprints not run (see skipped)", count, n))
	}
	return rep, nil
}

// validate refuses options under which the verdict would mislead: a
// significance level outside (0, 1), or so few timed runs that the
// latency test could not fail even if every new run were slower than
// every old one.
func (o Options) validate() error {
	if o.Runs < 0 || o.Warmup < 0 || o.Samples < 0 {
		return errors.New("--runs, --warmup and --samples must not be negative")
	}
	if !(o.Alpha > 0 && o.Alpha < 1) {
		return fmt.Errorf("--alpha %g: want a significance level between 0 and 1, such as 0.01", o.Alpha)
	}
	if o.Runs > 0 {
		if best := bestPValue(o.Runs); best >= o.Alpha {
			need := o.Runs
			for need < 10_000 && bestPValue(need) >= o.Alpha {
				need++
			}
			return fmt.Errorf("--runs %d: with %d timed runs per side the latency test cannot reach p < %g even when every new run is slower than every old one (best p = %.2g); use --runs %d or more, or --runs 0 to skip the latency check",
				o.Runs, o.Runs, o.Alpha, best, need)
		}
	}
	return nil
}

// bestPValue is the smallest p-value mannWhitneyGreater gives n runs per
// side: every new run slower than every old one.
func bestPValue(n int) float64 {
	a, b := make([]time.Duration, n), make([]time.Duration, n)
	for i := range n {
		a[i], b[i] = time.Duration(i+1), time.Duration(n+i+1)
	}
	return mannWhitneyGreater(a, b)
}

func allowed(c Class, allowWrites bool) error {
	switch c {
	case ReadOnly:
		return nil
	case Write:
		if allowWrites {
			return nil
		}
		return ErrWriteRefused
	}
	return errors.New("refusing to run DDL, SET, CALL, LOCK, LOAD, transaction control (BEGIN, COMMIT...) or SELECT ... INTO, even with --allow-writes: DDL and COMMIT end the transaction the canary rolls back, a procedure may commit, INTO writes a file or a variable")
}

func newReport(mode string, o Options) *Report {
	r := &Report{Mode: mode, Pass: true, Checks: []*Check{}}
	r.Options.Runs, r.Options.Warmup = o.Runs, o.Warmup
	r.Options.MaxLatencyRegression, r.Options.Alpha = o.MaxLatencyRegression, o.Alpha
	r.Options.MinLatencyDeltaNS, r.Options.AllowWrites = int64(o.MinLatencyDelta), o.AllowWrites
	r.Options.Samples = o.Samples
	return r
}

func (r *Report) add(c *Check) {
	r.Checks = append(r.Checks, c)
	if !c.Pass {
		r.Pass = false
		for _, reason := range c.Reasons {
			r.Reasons = append(r.Reasons, c.Name+": "+reason)
		}
	}
}

func shorten(s string, n int) string {
	f := []rune(Fingerprint(s))
	if len(f) <= n {
		return string(f)
	}
	return string(f[:n-1]) + "…"
}

// checker runs one Check: the comparison pass, EXPLAIN, then the timed
// runs.
type checker struct {
	o              Options
	a, b           *session
	bar            *progress.Bar
	classA, classB Class
	// orderDropped: old has a top-level ORDER BY and new does not.
	// multiRow counts the executions compared with more than one row.
	orderDropped bool
	multiRow     int
	// compared counts the executions whose answers were compared, empty
	// those among them where both sides returned no rows.
	compared, empty int
	// The executions whose errors differ: only new failed, only old
	// failed, both failed with different errors.
	newOnly, oldOnly, different tally
}

// tally counts occurrences and keeps the first one's text.
type tally struct {
	n     int
	first string
}

func (t *tally) add(s string) {
	if t.n == 0 {
		t.first = s
	}
	t.n++
}

func (r *checker) run(ctx context.Context, c *Check, runs []pairRun) error {
	ok := make([]bool, len(runs)) // both sides answered without error
	sessions := []*session{r.a}
	if r.b != r.a {
		sessions = append(sessions, r.b)
	}
	// Both sides of a pair see one clock (NOW(), CURRENT_TIMESTAMP
	// defaults and ON UPDATE columns): run a moment apart, they would
	// differ on every execution.
	defer func() {
		for _, s := range sessions {
			s.setClock(context.WithoutCancel(ctx), time.Time{})
		}
	}()
	// The old side's server clock, advanced by the client's.
	serverNow, err := r.a.serverClock(ctx)
	if err != nil {
		return fmt.Errorf("read the server's clock: %w", err)
	}
	start := time.Now()
	for i, p := range runs {
		now := serverNow.Add(time.Since(start))
		for _, s := range sessions {
			if err := s.setClock(ctx, now); err != nil {
				return fmt.Errorf("set the session clock: %w", err)
			}
		}
		oa, err := r.a.run(ctx, p.schema, p.oldSQL, r.classA, true)
		if err != nil {
			return fmt.Errorf("old side: %w", err)
		}
		ob, err := r.b.run(ctx, p.schema, p.newSQL, r.classB, true)
		if err != nil {
			return fmt.Errorf("new side: %w", err)
		}
		r.bar.Add(2)
		c.Executions++
		f := Failure{Params: displayParams(p.params), OldSQL: p.oldSQL, NewSQL: p.newSQL}
		bad := false
		switch {
		case oa.err != nil || ob.err != nil:
			if oa.err != nil {
				c.OldErrors++
			}
			if ob.err != nil {
				c.NewErrors++
			}
			if oa.err != nil && ob.err != nil && sameError(oa.err, ob.err) {
				c.BothErrors++
				if c.BothError == "" {
					c.BothError = errorText(oa.err)
				}
			} else {
				c.ErrorDiffs++
				switch {
				case oa.err == nil:
					r.newOnly.add(errorText(ob.err))
				case ob.err == nil:
					r.oldOnly.add(errorText(oa.err))
				default:
					r.different.add("old " + errorText(oa.err) + ", new " + errorText(ob.err))
				}
				bad = true
				f.OldError, f.NewError = errorText(oa.err), errorText(ob.err)
				f.Differences = append(f.Differences, diff.Difference{Path: "error", Kind: diff.Changed, Legacy: nilIfEmpty(f.OldError), New: nilIfEmpty(f.NewError)})
			}
		default:
			ok[i] = true
			if max(len(oa.rows.Values), len(ob.rows.Values)) > 1 {
				r.multiRow++
			}
			if len(oa.rows.Values) == 0 && len(ob.rows.Values) == 0 {
				r.empty++
			}
			r.compared++
			d := diff.CompareRows(oa.rows, ob.rows, c.Ordered)
			if c.Ordered && onlyOrder(d) && tiesOnly(oa.rows, ob.rows, OrderKeys(c.OldSQL)) {
				d = nil // rows that tie on every ORDER BY key, in another order
			}
			if len(d) > 0 {
				c.ResultDiffs++
				bad = true
				f.Differences = append(f.Differences, d...)
			}
			if r.classA == Write || r.classB == Write {
				d, note := compareEffects(oa, ob)
				if note != "" {
					c.note("writes compared by rows affected only: " + note)
				}
				if len(d) > 0 {
					if !bad {
						c.ResultDiffs++
					}
					bad = true
					f.Differences = append(f.Differences, d...)
				}
			}
		}
		// SHOW WARNINGS repeats a failed statement's error, worded with the
		// expression as each side wrote it; errors are compared above.
		if !equalStrings(notErrors(oa.warnings), notErrors(ob.warnings)) {
			c.WarningDiffs++
			bad = true
			f.OldWarnings, f.NewWarnings = oa.warnings, ob.warnings
			f.Differences = append(f.Differences, diff.Difference{Path: "warnings", Kind: diff.Changed, Legacy: oa.warnings, New: ob.warnings})
		}
		if bad && c.FirstFailure == nil {
			c.FirstFailure = &f
		}
	}
	for _, s := range sessions {
		if err := s.setClock(ctx, time.Time{}); err != nil {
			return fmt.Errorf("reset the session clock: %w", err)
		}
	}
	c.Explain.Old = r.a.explain(ctx, runs[0].schema, runs[0].oldSQL)
	c.Explain.New = r.b.explain(ctx, runs[0].schema, runs[0].newSQL)
	var timed []pairRun
	for i, p := range runs {
		if ok[i] {
			timed = append(timed, p)
		}
	}
	if len(timed) > 0 && r.o.Runs > 0 {
		lat, err := r.time(ctx, timed)
		if err != nil {
			return err
		}
		c.Latency = lat
	} else {
		r.bar.Add(int64(2 * (r.o.Warmup + r.o.Runs)))
	}
	r.judge(c)
	return nil
}

// time runs Warmup untimed pairs, then Runs timed pairs, alternating which
// side goes first so that neither always meets a cache the other warmed
// or a machine the other slowed.
func (r *checker) time(ctx context.Context, runs []pairRun) (*LatencyResult, error) {
	one := func(s *session, schema, stmt string, class Class) (time.Duration, error) {
		o, err := s.run(ctx, schema, stmt, class, false)
		if err != nil {
			return 0, err
		}
		if o.err != nil {
			return 0, fmt.Errorf("timed run failed where the comparison run did not: %w", o.err)
		}
		return o.elapsed, nil
	}
	var oldT, newT []time.Duration
	for i := range r.o.Warmup + r.o.Runs {
		p := runs[i%len(runs)]
		var da, db time.Duration
		var err error
		if i%2 == 0 {
			if da, err = one(r.a, p.schema, p.oldSQL, r.classA); err == nil {
				db, err = one(r.b, p.schema, p.newSQL, r.classB)
			}
		} else {
			if db, err = one(r.b, p.schema, p.newSQL, r.classB); err == nil {
				da, err = one(r.a, p.schema, p.oldSQL, r.classA)
			}
		}
		if err != nil {
			return nil, err
		}
		r.bar.Add(2)
		if i >= r.o.Warmup {
			oldT, newT = append(oldT, da), append(newT, db)
		}
	}
	return compareLatency(oldT, newT, r.o), nil
}

// compareLatency summarises both sides' timed runs and judges whether new
// regressed.
func compareLatency(oldT, newT []time.Duration, o Options) *LatencyResult {
	l := &LatencyResult{Old: summarise(oldT), New: summarise(newT), Test: "mann-whitney-u-one-sided"}
	if l.Old.P50 > 0 {
		l.Ratio = float64(l.New.P50) / float64(l.Old.P50)
	}
	l.PValue = mannWhitneyGreater(oldT, newT)
	l.Paired = comparePairs(oldT, newT)
	// Either view may show the slowdown: the two samples when new is
	// slower across the board, the pairs when parameter sets of different
	// cost spread both samples out.
	l.Regressed = l.samplesRegressed(o) || l.Paired.regressed(o)
	return l
}

// samplesRegressed: new's median is slower than old's by more than the
// limit and the minimum delta, and Mann-Whitney says so.
func (l *LatencyResult) samplesRegressed(o Options) bool {
	// Multiplied, not divided: an old median of 0 (below a coarse clock's
	// resolution) leaves Ratio at 0 but must not hide a slowdown.
	return float64(l.New.P50) > float64(l.Old.P50)*(1+o.MaxLatencyRegression) && l.PValue < o.Alpha &&
		l.New.P50-l.Old.P50 > o.MinLatencyDelta
}

// regressed: pair by pair new is slower by more than the limit, adds more
// than the minimum delta on average, and the signed-rank test says so.
func (p *PairedLatency) regressed(o Options) bool {
	return p != nil && p.Ratio > 1+o.MaxLatencyRegression && p.PValue < o.Alpha &&
		time.Duration(p.MeanDeltaNS) > o.MinLatencyDelta
}

// comparePairs compares oldT[i] with newT[i]; nil with fewer than two
// pairs.
func comparePairs(oldT, newT []time.Duration) *PairedLatency {
	n := min(len(oldT), len(newT))
	if n < 2 {
		return nil
	}
	ratios := make([]float64, n)
	logs := make([]float64, n)
	var sum time.Duration
	for i := range n {
		// A run below the clock's resolution counts as 1 ns, so that a
		// ratio stays finite.
		ratios[i] = float64(max(newT[i], 1)) / float64(max(oldT[i], 1))
		logs[i] = math.Log(ratios[i])
		sum += newT[i] - oldT[i]
	}
	slices.Sort(ratios)
	return &PairedLatency{
		Ratio: ratios[(n-1)/2], MeanDeltaNS: int64(sum / time.Duration(n)),
		Test: "wilcoxon-signed-rank-one-sided", PValue: signedRankGreater(logs),
	}
}

// judge fills Pass and Reasons.
func (r *checker) judge(c *Check) {
	what := "parameter sets"
	if c.Fingerprint != "" {
		what = "statements"
	}
	for _, e := range []struct {
		t    tally
		what string
	}{{r.newOnly, "new failed where old did not"}, {r.oldOnly, "old failed where new did not"}, {r.different, "old and new failed with different errors"}} {
		if e.t.n > 0 {
			c.Reasons = append(c.Reasons, fmt.Sprintf("%s for %d of %d %s: %s", e.what, e.t.n, c.Executions, what, e.t.first))
		}
	}
	switch compared := c.Executions - c.ErrorDiffs - c.BothErrors; {
	case c.BothErrors == 0:
	case compared == 0 && c.ErrorDiffs == 0:
		c.Reasons = append(c.Reasons, fmt.Sprintf("every execution failed on both sides (%s): nothing was compared", c.BothError))
	default:
		c.note(fmt.Sprintf("errors on both sides for %d of %d %s, not compared: %s", c.BothErrors, c.Executions, what, c.BothError))
	}
	if c.ResultDiffs > 0 {
		c.Reasons = append(c.Reasons, fmt.Sprintf("results differ for %d of %d %s", c.ResultDiffs, c.Executions, what))
	}
	if r.compared > 0 && r.empty == r.compared && r.classA == ReadOnly && r.classB == ReadOnly {
		c.note(fmt.Sprintf("every compared execution returned no rows on both sides: only empty results were compared; check the %s", what))
	}
	if c.WarningDiffs > 0 {
		c.Reasons = append(c.Reasons, fmt.Sprintf("warnings differ for %d of %d %s", c.WarningDiffs, c.Executions, what))
	}
	if r.orderDropped && r.multiRow > 0 {
		c.Reasons = append(c.Reasons, fmt.Sprintf("old has a top-level ORDER BY and new does not: new's row order is not guaranteed, whatever it was here (%d of %d %s returned more than one row); keep the ORDER BY",
			r.multiRow, c.Executions, what))
	}
	switch l := c.Latency; {
	case l == nil || !l.Regressed:
	case l.samplesRegressed(r.o):
		change := fmt.Sprintf("%+.0f%%", (l.Ratio-1)*100)
		if l.Old.P50 == 0 {
			change = "old below the clock's resolution"
		}
		c.Reasons = append(c.Reasons, fmt.Sprintf("latency: new p50 %s vs old %s (%s, limit +%.0f%%), Mann-Whitney U p=%.2g < %g",
			round(l.New.P50), round(l.Old.P50), change, r.o.MaxLatencyRegression*100, l.PValue, r.o.Alpha))
	default:
		p := l.Paired
		c.Reasons = append(c.Reasons, fmt.Sprintf("latency: new/old %.2fx on the same parameters (median over %d pairs; %s more an execution on average; limit +%.0f%%), Wilcoxon signed-rank p=%.2g < %g",
			p.Ratio, l.Old.Runs, round(time.Duration(p.MeanDeltaNS)), r.o.MaxLatencyRegression*100, p.PValue, r.o.Alpha))
	}
	c.Pass = len(c.Reasons) == 0
}

// note adds a note once.
func (c *Check) note(s string) {
	if !slices.Contains(c.Notes, s) {
		c.Notes = append(c.Notes, s)
	}
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

func displayParams(p []any) []any {
	if p == nil {
		return nil
	}
	out := make([]any, len(p))
	for i, v := range p {
		out[i] = diff.Display(v)
	}
	return out
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// onlyOrder reports whether d says only "same rows, different order".
func onlyOrder(d []diff.Difference) bool {
	return len(d) == 1 && d[0].Kind == diff.Order
}

// tiesOnly reports whether two results holding the same rows in a
// different order agree on the sequence of their ORDER BY keys, so that
// only rows that tie on every key moved. It is false when a key is not a
// result column (by name, alias or position) or keys is nil.
func tiesOnly(a, b diff.Rows, keys []OrderKey) bool {
	if len(keys) == 0 || !slices.Equal(a.Columns, b.Columns) {
		return false
	}
	var cols []int
	for _, k := range keys {
		i := k.Pos - 1
		if k.Pos == 0 {
			i = -1
			for j, c := range a.Columns {
				if strings.EqualFold(c, k.Name) {
					if i >= 0 {
						return false // two result columns of that name
					}
					i = j
				}
			}
		}
		if i < 0 || i >= len(a.Columns) {
			return false
		}
		cols = append(cols, i)
	}
	project := func(r diff.Rows) diff.Rows {
		p := diff.Rows{}
		for _, i := range cols {
			p.Columns = append(p.Columns, r.Columns[i])
			if i < len(r.Types) {
				p.Types = append(p.Types, r.Types[i])
			}
		}
		for _, v := range r.Values {
			row := make([]any, len(cols))
			for j, i := range cols {
				row[j] = v[i]
			}
			p.Values = append(p.Values, row)
		}
		return p
	}
	return len(diff.CompareRows(project(a), project(b), true)) == 0
}

// notErrors drops the Error-level lines of SHOW WARNINGS.
func notErrors(w []string) []string {
	return slices.DeleteFunc(slices.Clone(w), func(s string) bool { return strings.HasPrefix(s, "Error ") })
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
