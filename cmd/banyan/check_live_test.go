package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banyanhq/banyan/cdc"
	"github.com/banyanhq/banyan/cdc/check"
	"github.com/banyanhq/banyan/internal/testdb"
)

// liveRows is the size of the table the live check test starts with.
const liveRows = 2000

// TestCheckCmd_NoFalseAlarmsWhileCDCRuns: with `banyan cdc run` streaming
// a renamed, yuan_to_cents-converted table and a writer inserting, updating
// and deleting source rows the whole time, three checks in a row report the
// target consistent (in-flight rows are re-checked, not reported). Then an
// out-of-band UPDATE on the target, on a row the writer never touches, is
// reported by the next check at exactly that key and column, with the fix.
func TestCheckCmd_NoFalseAlarmsWhileCDCRuns(t *testing.T) {
	testdb.Need(t, pair)
	ctx := context.Background()
	src, dst, srcDB, dstDB := tempDBs(t)
	mustExecDB(t, src, `CREATE TABLE t_order (ord_id INT PRIMARY KEY, usr_id INT NOT NULL, amt DECIMAL(10,2), memo VARCHAR(50), note VARCHAR(50) NULL, created DATETIME(6))`)
	mustExecDB(t, dst, `CREATE TABLE orders (id INT PRIMARY KEY, user_id INT NOT NULL, total_cents BIGINT, note VARCHAR(50) NULL, created DATETIME(6))`)
	vals := make([]string, liveRows)
	for i := range vals {
		id := i + 1
		note := fmt.Sprintf("'n%d'", id)
		if id%5 == 0 {
			note = "NULL"
		}
		vals[i] = fmt.Sprintf("(%d, %d, %d.%02d, 'm', %s, '2026-01-01 00:00:00' + INTERVAL %d SECOND)", id, id%97, id, id%100, note, id)
	}
	mustExecDB(t, src, "INSERT INTO t_order VALUES "+strings.Join(vals, ", "))

	dir := t.TempDir()
	path := filepath.Join(dir, "banyan.yaml")
	writeOrdersCDC(t, path, 7311, srcDB, dstDB)

	cdcCtx, stopCDC := context.WithCancel(ctx)
	defer stopCDC()
	var cdcErr syncBuffer
	cdcDone := make(chan int, 1)
	go func() { cdcDone <- run(cdcCtx, []string{"cdc", "run", "--config", path}, &bytes.Buffer{}, &cdcErr) }()
	waitStreaming(t, path, &cdcErr)

	w := startWriter(t, src)

	checkOnce := func(extra ...string) (int, check.Result, string) {
		t.Helper()
		var out, errb bytes.Buffer
		args := append([]string{"check", "--config", path, "--chunk-size", "200", "--recheck-after", "20s", "--format", "json",
			"--state", filepath.Join(dir, "check.state.json")}, extra...)
		code := run(ctx, args, &out, &errb)
		var res check.Result
		if code != exitCannotRun {
			if err := json.Unmarshal(out.Bytes(), &res); err != nil {
				t.Fatalf("check JSON: %v\n%s\nstderr:\n%s", err, out.String(), errb.String())
			}
		}
		return code, res, out.String() + errb.String()
	}

	var rechecked int64
	for i := range 3 {
		before := w.ops.Load()
		code, res, out := checkOnce()
		during := w.ops.Load() - before
		if code != exitOK || !res.Consistent {
			t.Fatalf("check %d while CDC runs: exit %d, want %d (no false differences)\n%s\ncdc stderr:\n%s", i+1, code, exitOK, out, cdcErr.String())
		}
		tr := res.Tables[0]
		if tr.Rows < liveRows/2 || tr.Mismatched+tr.Missing+tr.Extra != 0 {
			t.Errorf("check %d: %+v, want about %d rows compared and no difference", i+1, tr, liveRows)
		}
		if during == 0 {
			t.Errorf("check %d: the writer made no change while it ran; the test proves nothing", i+1)
		}
		t.Logf("check %d: %d rows, %d chunks, %d in-flight rows re-checked, %d source writes during the check", i+1, tr.Rows, tr.Chunks, tr.Rechecked, during)
		rechecked += tr.Rechecked
	}
	if rechecked == 0 {
		// Otherwise the checks never met a row in flight, and passing says
		// nothing about how the checker treats one.
		t.Errorf("no check met a row in flight (0 rows re-checked in 3 checks)")
	}

	// An out-of-band change on the target: CDC never undoes it, because the
	// writer never touches ord_id 1.
	mustExecDB(t, dst, `UPDATE orders SET user_id = 1001 WHERE id = 1`)
	fixPath := filepath.Join(dir, "fix.sql")
	before := w.ops.Load()
	code, res, out := checkOnce("--fix-sql", fixPath)
	if code != exitFound {
		t.Fatalf("check after an out-of-band UPDATE: exit %d, want %d\n%s", code, exitFound, out)
	}
	if w.ops.Load() == before {
		t.Error("the writer made no change during the last check")
	}
	tr := res.Tables[0]
	if tr.Mismatched != 1 || tr.Missing != 0 || tr.Extra != 0 || res.Consistent || tr.Consistent {
		t.Errorf("table result = %+v, want exactly 1 mismatched row", tr)
	}
	wantDiff := []check.RowDiff{{Key: map[string]string{"id": "1"}, Kind: "changed", Columns: []check.ColumnDiff{{Column: "user_id", Source: `"1"`, Target: `"1001"`}}}}
	if got, _ := json.Marshal(tr.Sample); string(got) != string(mustJSON(t, wantDiff)) {
		t.Errorf("reported differences = %s, want %s", got, mustJSON(t, wantDiff))
	}
	fix, err := os.ReadFile(fixPath)
	if err != nil {
		t.Fatal(err)
	}
	wantFix := fmt.Sprintf("UPDATE `%s`.`orders` SET `user_id` = 1 WHERE `id` = 1;", dstDB)
	if stmts := fixStatements(string(fix)); len(stmts) != 2 || stmts[0] != "SET NAMES utf8mb4;" || stmts[1] != wantFix {
		t.Errorf("fix SQL = %q, want only SET NAMES utf8mb4 and %q", stmts, wantFix)
	}

	w.stop()
	stopCDC()
	select {
	case code := <-cdcDone:
		if code != exitOK {
			t.Errorf("cdc run exit %d after cancel, want %d\n%s", code, exitOK, cdcErr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("cdc run did not stop")
	}
}

// writer changes random source rows (never ord_id 1) until stopped.
type writer struct {
	ops  atomic.Int64
	stop func()
}

func startWriter(tb testing.TB, src *sql.DB) *writer {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{}
	var wg sync.WaitGroup
	var werr error
	wg.Go(func() {
		next := 100_000
		for ctx.Err() == nil {
			some := func(k int) string { // k random keys, never 1
				ids := make([]string, k)
				for i := range ids {
					ids[i] = fmt.Sprint(2 + rand.IntN(liveRows-1))
				}
				return strings.Join(ids, ", ")
			}
			var err error
			switch r := rand.IntN(8); {
			case r < 4: // one transaction updating several rows
				note := fmt.Sprintf("'u%d'", rand.IntN(1000))
				if r == 0 {
					note = "NULL"
				}
				_, err = src.ExecContext(ctx, fmt.Sprintf("UPDATE t_order SET amt = %d.%02d, note = %s, created = NOW(6) WHERE ord_id IN (%s)", rand.IntN(10000), rand.IntN(100), note, some(5)))
			case r < 6: // new rows past the end of the table
				_, err = src.ExecContext(ctx, fmt.Sprintf("INSERT INTO t_order VALUES (%d, 1, 0.05, 'w', '', NOW(6)), (%d, 2, 1.10, 'w', NULL, NOW(6)), (%d, 3, 2.15, 'w', 'x', NOW(6))", next+1, next+2, next+3))
				next += 3
			case r == 6:
				_, err = src.ExecContext(ctx, fmt.Sprintf("DELETE FROM t_order WHERE ord_id IN (%s)", some(2)))
			default:
				_, err = src.ExecContext(ctx, fmt.Sprintf("UPDATE t_order SET usr_id = usr_id + 1 WHERE ord_id IN (%s)", some(5)))
			}
			if err != nil {
				if ctx.Err() == nil {
					werr = err
				}
				return
			}
			w.ops.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	})
	var once sync.Once
	w.stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			if werr != nil && !errors.Is(werr, context.Canceled) {
				tb.Errorf("writer: %v", werr)
			}
		})
	}
	tb.Cleanup(w.stop)
	return w
}

// waitStreaming waits until `banyan cdc run` has copied the tables.
func waitStreaming(tb testing.TB, path string, cdcErr *syncBuffer) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out, errb bytes.Buffer
		if run(context.Background(), []string{"cdc", "status", "--config", path, "--format", "json"}, &out, &errb) == exitOK {
			var st cdc.Status
			if err := json.Unmarshal(out.Bytes(), &st); err == nil && st.Phase == cdc.PhaseStream {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("cdc copy did not finish; stderr:\n%s", cdcErr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustExecDB(tb testing.TB, db *sql.DB, stmts ...string) {
	tb.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			tb.Fatalf("%.200s: %v", s, err)
		}
	}
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// fixStatements lists the statements of a --fix-sql file.
func fixStatements(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "--") {
			out = append(out, l)
		}
	}
	return out
}

// identicalTables creates the same n-row table t on both servers.
func identicalTables(tb testing.TB, n int) (srcDB, dstDB string) {
	tb.Helper()
	testdb.Need(tb, pair)
	ctx := context.Background()
	srcDB, dstDB = testdb.TempDatabase(tb, pair.Source), testdb.TempDatabase(tb, pair.Target)
	vals := make([]string, n)
	for i := range vals {
		vals[i] = fmt.Sprintf("(%d, 'name %d', %d.%02d, '2026-01-01 10:00:00.%06d')", i+1, i+1, i, i%100, i)
	}
	for _, s := range []struct {
		srv *testdb.Server
		db  string
	}{{pair.Source, srcDB}, {pair.Target, dstDB}} {
		if err := s.srv.Exec(ctx, "USE "+s.db,
			`CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(50), amt DECIMAL(10,2), ts DATETIME(6))`,
			"INSERT INTO t VALUES "+strings.Join(vals, ", ")); err != nil {
			tb.Fatal(err)
		}
	}
	return srcDB, dstDB
}

// checkState is the part of the --resume state file the tests read.
type checkState struct {
	Tables map[string]struct {
		LastPK []any `json:"last_pk"`
		Rows   int64 `json:"rows"`
		Chunks int   `json:"chunks"`
		Done   bool  `json:"done"`
	} `json:"tables"`
}

// TestCheckCmd_ResumeContinuesInterruptedCheck: a throttled check is
// interrupted after a few chunks; its state file holds the last key
// checked; `--resume` finishes from there (rows compared = the table's
// size, chunks = a full run's, and a difference planted in the part
// already checked is not re-read), then removes the state file.
func TestCheckCmd_ResumeContinuesInterruptedCheck(t *testing.T) {
	const n, chunk = 1000, 50
	srcDB, dstDB := identicalTables(t, n)
	dir := t.TempDir()
	statePath := filepath.Join(dir, "state.json")
	args := func(extra ...string) []string {
		return append([]string{"check", "--source", pair.Source.DSN(srcDB), "--target", pair.Target.DSN(dstDB), "--tables", "t",
			"--chunk-size", fmt.Sprint(chunk), "--recheck-after", "10ms", "--state", statePath, "--format", "json"}, extra...)
	}
	table := srcDB + ".t"

	// Interrupt a slow check once it has saved a few chunks.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errb syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, args("--max-rows-per-sec", "500"), &bytes.Buffer{}, &errb) }()
	readState := func() (checkState, bool) {
		var st checkState
		data, err := os.ReadFile(statePath)
		return st, err == nil && json.Unmarshal(data, &st) == nil
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, ok := readState(); ok && st.Tables[table].Chunks >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no state file with 4 chunks after 20s; stderr:\n%s", errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case code := <-done:
		if code != exitCannotRun || !strings.Contains(errb.String(), "--resume") {
			t.Fatalf("interrupted check: exit %d, want %d with a hint to --resume; stderr:\n%s", code, exitCannotRun, errb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("check did not stop when its context was cancelled")
	}
	st, ok := readState()
	if !ok {
		t.Fatal("no readable state file after the interruption")
	}
	ts := st.Tables[table]
	if len(ts.LastPK) != 1 || ts.Done || ts.Rows != int64(ts.Chunks*chunk) || ts.Rows <= 0 || ts.Rows >= n {
		t.Fatalf("state after interruption = %+v, want last_pk set, not done, 0 < rows = chunks×%d < %d", ts, chunk, n)
	}
	lastPK := fmt.Sprint(ts.LastPK[0])
	t.Logf("interrupted after %d chunks, %d rows, last_pk %s", ts.Chunks, ts.Rows, lastPK)

	// A difference in the part already checked: a resumed check does not
	// read it again (a check that started over would report it).
	if err := pair.Target.Exec(context.Background(), "USE "+dstDB, `UPDATE t SET name = 'changed' WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	var out, errb2 bytes.Buffer
	code := run(context.Background(), args("--resume"), &out, &errb2)
	var res check.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("resumed check: exit %d, JSON %v\n%s%s", code, err, out.String(), errb2.String())
	}
	tr := res.Tables[0]
	if code != exitOK || tr.Rows != n || tr.Chunks != n/chunk+1 {
		t.Errorf("resumed check: exit %d, %d rows in %d chunks; want exit %d, %d rows (the table, not more) in %d chunks (as a full run)\n%s",
			code, tr.Rows, tr.Chunks, exitOK, n, n/chunk+1, out.String())
	}
	if _, err := os.Stat(statePath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file after a finished check: %v, want it removed", err)
	}

	// A fresh check starts over and sees the change.
	out.Reset()
	code = run(context.Background(), args(), &out, &errb2)
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("fresh check: exit %d, JSON %v\n%s", code, err, out.String())
	}
	if tr := res.Tables[0]; code != exitFound || tr.Rows != n || tr.Chunks != n/chunk+1 || tr.Mismatched != 1 || tr.Sample[0].Key["id"] != "1" {
		t.Errorf("fresh check: exit %d, %+v; want exit %d, %d rows in %d chunks, id 1 mismatched", code, tr, exitFound, n, n/chunk+1)
	}
}

// TestCheckCmd_MaxRowsPerSecThrottles: checking N rows at R rows/s takes
// at least about N/R seconds (a loose lower bound; no upper bound).
func TestCheckCmd_MaxRowsPerSecThrottles(t *testing.T) {
	const n, rate, chunk = 600, 300, 50
	srcDB, dstDB := identicalTables(t, n)
	var out, errb bytes.Buffer
	start := time.Now()
	code := run(context.Background(), []string{"check", "--source", pair.Source.DSN(srcDB), "--target", pair.Target.DSN(dstDB), "--tables", "t",
		"--chunk-size", fmt.Sprint(chunk), "--max-rows-per-sec", fmt.Sprint(rate), "--state", filepath.Join(t.TempDir(), "state.json")}, &out, &errb)
	elapsed := time.Since(start)
	if code != exitOK {
		t.Fatalf("throttled check: exit %d\n%s%s", code, out.String(), errb.String())
	}
	// The last chunk is not waited for: (n-chunk)/rate is the exact floor;
	// 80% of n/rate leaves room below it.
	if floor := time.Duration(0.8 * float64(n) / rate * float64(time.Second)); elapsed < floor {
		t.Errorf("%d rows at --max-rows-per-sec %d took %v, want at least %v", n, rate, elapsed, floor)
	}
	t.Logf("%d rows at %d rows/s: %v", n, rate, elapsed)
}

// TestCheckCmd_DoubleIntoFloatNoFalseAlarm guards against a false alarm: a source
// DOUBLE copied into a target FLOAT holds the double rounded to single
// precision; read as its text (6 significant digits: "3.14159") it once
// differed from the source double rounded the same way ("3.1415927").
// Both are now compared at full single precision (cdc/check selectList
// and normalize, kindFloat).
func TestCheckCmd_DoubleIntoFloatNoFalseAlarm(t *testing.T) {
	testdb.Need(t, pair)
	ctx := context.Background()
	srcDB, dstDB := testdb.TempDatabase(t, pair.Source), testdb.TempDatabase(t, pair.Target)
	if err := pair.Source.Exec(ctx, "USE "+srcDB, `CREATE TABLE t (id INT PRIMARY KEY, x DOUBLE)`, `INSERT INTO t VALUES (1, 3.14159265), (2, 0.1), (3, 123456789)`); err != nil {
		t.Fatal(err)
	}
	if err := pair.Target.Exec(ctx, "USE "+dstDB, `CREATE TABLE t (id INT PRIMARY KEY, x FLOAT)`, `INSERT INTO t VALUES (1, 3.14159265), (2, 0.1), (3, 123456789)`); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run(ctx, []string{"check", "--source", pair.Source.DSN(srcDB), "--target", pair.Target.DSN(dstDB), "--tables", "t",
		"--recheck-after", "10ms", "--state", filepath.Join(t.TempDir(), "state.json")}, &out, &errb)
	if code != exitOK {
		t.Errorf("DOUBLE into FLOAT, same values: exit %d, want %d\n%s%s", code, exitOK, out.String(), errb.String())
	}
}

// TestCheckCmd_FloatDifferenceBeyondSixDigits: two FLOATs that differ
// only past the 6 significant digits the server prints (1234567 and
// 1234568 are both shown as 1234570) are different data: an application
// computing with them or matching them in a WHERE sees it. The check read
// both as text and called the tables consistent; it now reads FLOATs at
// their stored single precision, reports both rows, and its fix SQL
// makes the next check consistent.
func TestCheckCmd_FloatDifferenceBeyondSixDigits(t *testing.T) {
	testdb.Need(t, pair)
	ctx := context.Background()
	srcDB, dstDB := testdb.TempDatabase(t, pair.Source), testdb.TempDatabase(t, pair.Target)
	sameTable(t, ctx, srcDB, dstDB, "CREATE TABLE t (k INT PRIMARY KEY, f FLOAT)",
		"INSERT INTO t VALUES (1, 1234567), (2, 1.000001), (3, 3.14159265), (4, NULL)",
		"UPDATE t SET f = 1234568 WHERE k = 1", "UPDATE t SET f = 1.000002 WHERE k = 2")
	chk := newFixCheck(t, ctx, srcDB, dstDB)
	var got []string
	for _, d := range chk.found().Sample {
		for _, c := range d.Columns {
			got = append(got, d.Kind+" k="+d.Key["k"]+" "+c.Column+": "+c.Source+" -> "+c.Target)
		}
	}
	if want := []string{`changed k=1 f: "1.234567e+06" -> "1.234568e+06"`, `changed k=2 f: "1.000001" -> "1.000002"`}; !slices.Equal(got, want) {
		t.Errorf("differences %q, want %q", got, want)
	}
	fix, db := chk.fixed()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM t WHERE (k = 1 AND f = 1234567) OR (k = 2 AND ABS(f - 1.000001) < 1e-7)").Scan(&n); err != nil || n != 2 {
		t.Errorf("target after the fix SQL: %d rows fixed (%v), want 2\nfix SQL:\n%s", n, err, fix)
	}
}

// TestCheckCmd_UnwritableStateStopsAtOnce: a progress file that cannot be
// written stops the check before it reads a row, with exit 2 and a message
// that points at --state (it said to run again with --resume, which reads
// the same unwritable place).
func TestCheckCmd_UnwritableStateStopsAtOnce(t *testing.T) {
	srcDB, dstDB := identicalTables(t, 10)
	statePath := filepath.Join(t.TempDir(), "no-such-dir", "state.json")
	code, out, errb := checkTables(t, t.Context(), srcDB, dstDB, "--state", statePath)
	if code != exitCannotRun {
		t.Errorf("exit %d, want %d\n%s%s", code, exitCannotRun, out, errb)
	}
	if !strings.Contains(errb, "--state") || strings.Contains(errb, "--resume") || !strings.Contains(errb, statePath) {
		t.Errorf("stderr = %q, want the path and a pointer to --state, not to --resume", errb)
	}
	if strings.Contains(errb, "rows") || strings.Contains(out, "rows") {
		t.Errorf("rows were read before the state was found unwritable:\n%s%s", out, errb)
	}
}
