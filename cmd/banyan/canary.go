package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/banyanhq/banyan/canary"
	"github.com/banyanhq/banyan/cdc"
	"github.com/banyanhq/banyan/diff"
	"github.com/spf13/cobra"
)

type canaryFlags struct {
	dsn, targetDSN, oldFile, newFile, params, paramsQuery, queries, format string
	maxRegression                                                          string
	runs, warmup, samples                                                  int
	alpha                                                                  float64
	minDelta                                                               time.Duration
	allowWrites                                                            bool
}

func newCanaryCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "canary",
		Short: "Validate a change before it rolls out",
	}
	cmd.AddCommand(newCanarySQLCmd())
	return cmd
}

func newCanarySQLCmd() *cobra.Command {
	var f canaryFlags
	cmd := &cobra.Command{
		Use:   "sql (--dsn DSN --old old.sql --new new.sql [--params p.csv | --params-query SQL] | --dsn DSN --target-dsn DSN2 --queries FILE)",
		Short: "Run a changed query beside the old one (or a workload on two servers); exit 0 same answers and latency, 1 differences, 2 could not run",
		Example: "  banyan canary sql --dsn 'root@tcp(127.0.0.1:3306)/shop' --old old.sql --new new.sql --params-query 'SELECT id FROM customers LIMIT 500'\n" +
			"  banyan canary sql --dsn 'root@tcp(db-10-6:3306)/shop' --target-dsn 'root@tcp(db-11-4:3306)/shop' --queries slow.log --format json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCanarySQL(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	d := canary.DefaultOptions()
	fl := cmd.Flags()
	fl.StringVar(&f.dsn, "dsn", "", "server to run on (mode 1), or the current server (mode 2)")
	fl.StringVar(&f.oldFile, "old", "", "file holding the current query (mode 1); ? placeholders")
	fl.StringVar(&f.newFile, "new", "", "file holding the changed query (mode 1)")
	fl.StringVar(&f.params, "params", "", "CSV of parameter sets bound to ? in column order (header row allowed; \\N is NULL)")
	fl.StringVar(&f.paramsQuery, "params-query", "", "SELECT on --dsn whose rows are the parameter sets")
	fl.StringVar(&f.targetDSN, "target-dsn", "", "the new server (mode 2)")
	fl.StringVar(&f.queries, "queries", "", "workload for mode 2: a .sql file, a slow query log or a general query log")
	fl.StringVar(&f.format, "format", "text", "output: text or json")
	fl.IntVar(&f.runs, "runs", d.Runs, "timed runs per side and query, old and new interleaved (0 = no latency check; at --alpha 0.01 at least 5)")
	fl.IntVar(&f.warmup, "warmup", d.Warmup, "untimed runs per side before timing")
	fl.StringVar(&f.maxRegression, "max-latency-regression", "20%", "fail when new's median is slower than old's by more than this (and the difference is significant)")
	fl.Float64Var(&f.alpha, "alpha", d.Alpha, "significance level of the one-sided Mann-Whitney U test")
	fl.DurationVar(&f.minDelta, "min-latency-delta", d.MinLatencyDelta, "ignore slowdowns of the median smaller than this")
	fl.IntVar(&f.samples, "samples", d.Samples, "at most this many statements compared per fingerprint (mode 2; 0 = every statement)")
	fl.BoolVar(&f.allowWrites, "allow-writes", false, "run INSERT/UPDATE/DELETE/REPLACE too, each in a transaction that is rolled back")
	return cmd
}

func runCanarySQL(ctx context.Context, stdout, stderr io.Writer, f canaryFlags) error {
	if f.format != "text" && f.format != "json" {
		return fmt.Errorf("unknown --format %q: use text or json", f.format)
	}
	o := canary.DefaultOptions()
	o.Runs, o.Warmup, o.Samples, o.Alpha, o.MinLatencyDelta, o.AllowWrites = f.runs, f.warmup, f.samples, f.alpha, f.minDelta, f.allowWrites
	reg, err := parseRegression(f.maxRegression)
	if err != nil {
		return err
	}
	o.MaxLatencyRegression = reg
	if f.runs < 0 || f.warmup < 0 || f.samples < 0 {
		return errors.New("--runs, --warmup and --samples must not be negative")
	}
	if f.format == "text" {
		o.Progress = stderr
	}
	mode1 := f.oldFile != "" || f.newFile != ""
	mode2 := f.queries != "" || f.targetDSN != ""
	switch {
	case f.dsn == "":
		return errors.New("give --dsn")
	case mode1 && mode2:
		return errors.New("give either --old/--new (two queries, one server) or --target-dsn/--queries (one workload, two servers), not both")
	case mode1 && (f.oldFile == "" || f.newFile == ""):
		return errors.New("give both --old and --new")
	case mode2 && (f.queries == "" || f.targetDSN == ""):
		return errors.New("give both --target-dsn and --queries")
	case !mode1 && !mode2:
		return errors.New("give --old and --new (mode 1) or --target-dsn and --queries (mode 2)")
	case f.params != "" && f.paramsQuery != "":
		return errors.New("give --params or --params-query, not both")
	case mode2 && f.params != "":
		return errors.New("--params binds the ? of --old and --new (mode 1); a --queries workload carries its own values: drop --params")
	case mode2 && f.paramsQuery != "":
		return errors.New("--params-query binds the ? of --old and --new (mode 1); a --queries workload carries its own values: drop --params-query")
	}
	db, err := cdc.OpenDB(f.dsn)
	if err != nil {
		return fmt.Errorf("--dsn: %w", err)
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("could not connect to --dsn: %w", err)
	}
	var rep *canary.Report
	if mode1 {
		oldQ, err := os.ReadFile(f.oldFile)
		if err != nil {
			return fmt.Errorf("--old: %w", err)
		}
		newQ, err := os.ReadFile(f.newFile)
		if err != nil {
			return fmt.Errorf("--new: %w", err)
		}
		var params [][]any
		switch {
		case f.params != "":
			pf, err := os.Open(f.params)
			if err != nil {
				return fmt.Errorf("--params: %w", err)
			}
			params, err = canary.ReadParams(pf)
			pf.Close()
			if err != nil {
				return fmt.Errorf("--params %s: %w", f.params, err)
			}
		case f.paramsQuery != "":
			if params, err = canary.QueryParams(ctx, db, f.paramsQuery); err != nil {
				return err
			}
			if len(params) == 0 {
				return errors.New("--params-query returned no rows: nothing to compare")
			}
		}
		rep, err = canary.Queries(ctx, db, trimStmt(string(oldQ)), trimStmt(string(newQ)), params, o)
		if err != nil {
			return err
		}
		rep.Checks[0].Name = f.oldFile + " vs " + f.newFile
		for i, r := range rep.Reasons {
			rep.Reasons[i] = strings.Replace(r, "old vs new", rep.Checks[0].Name, 1)
		}
	} else {
		tdb, err := cdc.OpenDB(f.targetDSN)
		if err != nil {
			return fmt.Errorf("--target-dsn: %w", err)
		}
		defer tdb.Close()
		if err := tdb.PingContext(ctx); err != nil {
			return fmt.Errorf("could not connect to --target-dsn: %w", err)
		}
		qf, err := os.Open(f.queries)
		if err != nil {
			return fmt.Errorf("--queries: %w", err)
		}
		format, stmts, err := canary.ParseWorkload(qf)
		qf.Close()
		if err != nil {
			return fmt.Errorf("--queries: %w", err)
		}
		if f.format == "text" {
			fmt.Fprintf(stderr, "%s: %s, %d statements\n", f.queries, format, len(stmts))
		}
		if rep, err = canary.Servers(ctx, db, tdb, stmts, o); err != nil {
			return err
		}
	}
	if f.format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printCanary(stdout, rep)
	}
	if !rep.Pass {
		return failed(errors.New("the changed SQL does not behave like the current one"))
	}
	return nil
}

// trimStmt drops surrounding space and one trailing semicolon.
func trimStmt(s string) string {
	return strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), ";"))
}

// parseRegression reads "20%" or "0.2".
func parseRegression(s string) (float64, error) {
	t := strings.TrimSpace(s)
	pct := strings.HasSuffix(t, "%")
	v, err := strconv.ParseFloat(strings.TrimSuffix(t, "%"), 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("--max-latency-regression %q: want a percentage (20%%) or a fraction (0.2)", s)
	}
	if pct {
		v /= 100
	}
	return v, nil
}

func printCanary(w io.Writer, rep *canary.Report) {
	shownFailure := false
	for _, c := range rep.Checks {
		status := "PASS"
		if !c.Pass {
			status = "FAIL"
		}
		order := "unordered"
		if c.Ordered {
			order = "ordered (ORDER BY)"
		}
		fmt.Fprintf(w, "%s  %s\n", status, c.Name)
		fmt.Fprintf(w, "  compared %d, rows %s; result diffs %d, error diffs %d, warning diffs %d",
			c.Executions, order, c.ResultDiffs, c.ErrorDiffs, c.WarningDiffs)
		if c.BothErrors > 0 {
			fmt.Fprintf(w, ", same error on both sides %d", c.BothErrors)
		}
		fmt.Fprintln(w)
		if l := c.Latency; l != nil {
			fmt.Fprintf(w, "  latency  old p50 %s p95 %s p99 %s | new p50 %s p95 %s p99 %s | new/old %.2fx, Mann-Whitney U p=%.2g\n",
				dur(l.Old.P50), dur(l.Old.P95), dur(l.Old.P99), dur(l.New.P50), dur(l.New.P95), dur(l.New.P99), l.Ratio, l.PValue)
		}
		printExplain(w, c)
		for _, r := range c.Reasons {
			fmt.Fprintf(w, "  ✗ %s\n", r)
		}
		for _, n := range c.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
		if f := c.FirstFailure; f != nil && !shownFailure {
			shownFailure = true
			if f.Params != nil {
				b, _ := json.Marshal(f.Params)
				fmt.Fprintf(w, "  first failing parameters: %s\n", b)
			} else {
				fmt.Fprintf(w, "  first failing statement: %s\n", f.OldSQL)
			}
			for i, d := range f.Differences {
				if i == 20 {
					fmt.Fprintf(w, "    … %d more (see --format json)\n", len(f.Differences)-i)
					break
				}
				fmt.Fprintf(w, "    %s\n", formatDifference(d))
			}
		}
	}
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "SKIP  %s (%d statements): %s\n", s.Fingerprint, s.Count, s.Reason)
	}
	if rep.Pass {
		untimed := 0
		for _, c := range rep.Checks {
			if c.Latency == nil {
				untimed++
			}
		}
		latency := "no significant slowdown"
		switch {
		case untimed == len(rep.Checks) && rep.Options.Runs == 0:
			latency = "latency not measured (--runs 0)"
		case untimed == len(rep.Checks):
			latency = "latency not measured"
		case untimed > 0:
			latency += fmt.Sprintf(" (latency not measured for %d)", untimed)
		}
		fmt.Fprintf(w, "verdict: PASS — %d %s, same answers, %s\n", len(rep.Checks), plural(len(rep.Checks), "query", "queries"), latency)
		for _, r := range rep.Reasons {
			fmt.Fprintf(w, "  %s\n", r)
		}
		return
	}
	failedN := 0
	for _, c := range rep.Checks {
		if !c.Pass {
			failedN++
		}
	}
	fmt.Fprintf(w, "verdict: FAIL — %d of %d %s: %s\n", failedN, len(rep.Checks), plural(len(rep.Checks), "query", "queries"), strings.Join(rep.Reasons, "; "))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func dur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

func printExplain(w io.Writer, c *canary.Check) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  explain\tOLD TABLE\tTYPE\tKEY\tROWS\t|\tNEW TABLE\tTYPE\tKEY\tROWS")
	o, n := c.Explain.Old, c.Explain.New
	cell := func(e canary.Explain, i int) string {
		switch {
		case e.Error != "" && i == 0:
			return "(" + shortErr(e.Error) + ")\t\t\t"
		case i < len(e.Rows):
			r := e.Rows[i]
			return fmt.Sprintf("%s\t%s\t%s\t%s", orDash(r.Table), orDash(r.Type), orDash(r.Key), orDash(r.Rows))
		}
		return "\t\t\t"
	}
	for i := range max(len(o.Rows), len(n.Rows), 1) {
		fmt.Fprintf(tw, "  \t%s\t|\t%s\n", cell(o, i), cell(n, i))
	}
	tw.Flush()
}

func shortErr(s string) string {
	if len(s) > 60 {
		return s[:59] + "…"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func formatDifference(d diff.Difference) string {
	v := func(x any) string {
		if x == nil {
			return "NULL"
		}
		if s, ok := x.(string); ok {
			return strconv.Quote(s)
		}
		b, _ := json.Marshal(x)
		return string(b)
	}
	switch d.Kind {
	case diff.Missing:
		return fmt.Sprintf("%s only in old: %s", d.Path, v(d.Legacy))
	case diff.Extra:
		return fmt.Sprintf("%s only in new: %s", d.Path, v(d.New))
	case diff.Order:
		return fmt.Sprintf("%s: same rows, different order", d.Path)
	case diff.More:
		return fmt.Sprintf("%s: … and %d more row differences", d.Path, d.Lines)
	}
	return fmt.Sprintf("%s: old %s, new %s", d.Path, v(d.Legacy), v(d.New))
}
