package canary

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/diff"
	"github.com/banyanhq/banyan/internal/testdb"
	"github.com/go-sql-driver/mysql"
)

var pair *testdb.Pair

// TestMain shares one server pair across the package's tests, except
// when fuzzing: the fuzz targets need no server, and every fuzz worker
// process would otherwise start its own pair.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run())
	}
	os.Exit(testdb.RunWithPair(m, &pair))
}

// shopSchema: customers 1..6 across two regions; customer 5 has no
// orders; one guest order has a NULL customer_id (the NOT IN trap);
// amounts whose third decimal after *1.1 tells ROUND from TRUNCATE.
var shopSchema = []string{
	`CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, region VARCHAR(10) NOT NULL) ENGINE=InnoDB`,
	`CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NULL, amount DECIMAL(10,2) NOT NULL, status VARCHAR(10) NOT NULL, KEY (customer_id)) ENGINE=InnoDB`,
	`INSERT INTO customers VALUES (1,'ada','eu'),(2,'bob','eu'),(3,'cy','us'),(4,'dee','us'),(5,'eve','eu'),(6,'fay','us')`,
	`INSERT INTO orders VALUES (1,1,10.05,'paid'),(2,1,20.00,'paid'),(3,2,7.15,'open'),(4,3,99.99,'paid'),(5,3,1.05,'open'),(6,4,3.35,'paid'),(7,NULL,5.00,'paid'),(8,6,0.45,'open')`,
}

// shop creates the shop schema in a fresh database on the source server
// and returns a pool on it.
func shop(t *testing.T) (*sql.DB, string) {
	t.Helper()
	p := testdb.Need(t, pair)
	name := testdb.TempDatabase(t, p.Source)
	if err := p.Source.Exec(t.Context(), append([]string{"USE " + name}, shopSchema...)...); err != nil {
		t.Fatal(err)
	}
	return openOn(t, p.Source, name), name
}

// shopOn creates database name on server s, replacing one an earlier run
// left: the given statements, then the shop schema. The database is
// dropped when the test ends. The mode 2 tests (Servers) make it on both
// servers with the same name, as a workload names its schema.
func shopOn(t *testing.T, s *testdb.Server, name string, first ...string) {
	t.Helper()
	stmts := append([]string{"DROP DATABASE IF EXISTS " + name, "CREATE DATABASE " + name, "USE " + name}, first...)
	if err := s.Exec(t.Context(), append(stmts, shopSchema...)...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name) })
}

// openOn opens a pool on database name of server s ("": none), closed
// when the test ends.
func openOn(t *testing.T, s *testdb.Server, name string) *sql.DB {
	t.Helper()
	db, err := s.Open(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// mustExec runs stmts on db in order, failing the test at the first
// error.
func mustExec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// writingFunction makes a table hits and a stored function touch(x) that
// inserts x into it and returns x: a SELECT that calls touch writes.
var writingFunction = []string{
	`CREATE TABLE hits (customer_id INT) ENGINE=InnoDB`,
	`CREATE FUNCTION touch(x INT) RETURNS INT DETERMINISTIC BEGIN INSERT INTO hits VALUES (x); RETURN x; END`,
}

// hitsRows is the number of rows in db's hits table, each one a write
// through touch (writingFunction).
func hitsRows(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM hits`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func quick() Options {
	o := DefaultOptions()
	o.Runs, o.Warmup = 6, 1
	return o
}

// untimed is quick without the latency check, for tests of two servers
// that are about results and effects: the test's two MariaDB servers are
// alike, but on a loaded machine one of them can be slower by more than
// the 500 µs the check allows (CI once saw an UPDATE at 923 µs against
// 393 µs, p = 0.0025), which says nothing about the SQL.
func untimed() Options {
	o := quick()
	o.Runs, o.Warmup = 0, 0
	return o
}

func ids(vals ...any) [][]any {
	out := make([][]any, len(vals))
	for i, v := range vals {
		out[i] = []any{v}
	}
	return out
}

func TestQueries_equivalentRewritePasses(t *testing.T) {
	db, _ := shop(t)
	cases := []struct{ name, old, new string }{
		{"correlated subquery to join",
			`SELECT c.id, c.name, (SELECT COUNT(*) FROM orders o WHERE o.customer_id = c.id) AS n FROM customers c WHERE c.id = ?`,
			`SELECT c.id, c.name, COUNT(o.id) AS n FROM customers c LEFT JOIN orders o ON o.customer_id = c.id WHERE c.id = ? GROUP BY c.id, c.name`},
		{"decimal scale widened compares by value",
			`SELECT id, amount FROM orders WHERE customer_id = ?`,
			`SELECT id, CAST(amount AS DECIMAL(12,4)) AS amount FROM orders WHERE customer_id = ? ORDER BY id DESC`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Queries(t.Context(), db, tc.old, tc.new, ids(int64(1), int64(2), int64(3), int64(5), int64(6), int64(42)), quick())
			if err != nil {
				t.Fatal(err)
			}
			c := rep.Checks[0]
			if !rep.Pass {
				t.Fatalf("equivalent rewrite failed: %v; first failure %+v", rep.Reasons, c.FirstFailure)
			}
			if got, want := c.Executions, 6; got != want {
				t.Errorf("executions = %d, want %d", got, want)
			}
			if c.Latency == nil || c.Latency.Old.Runs != 6 || c.Latency.Test == "" {
				t.Errorf("latency not measured: %+v", c.Latency)
			}
			if len(c.Explain.Old.Rows) == 0 || len(c.Explain.New.Rows) == 0 {
				t.Errorf("explain missing: %+v", c.Explain)
			}
		})
	}
}

func TestQueries_wrongRewriteFailsWithParamsAndRows(t *testing.T) {
	db, _ := shop(t)
	cases := []struct {
		name, old, new string
		params         [][]any
		wantParams     string // the first failing parameters
		wantDiff       func(d diff.Difference) bool
	}{
		{
			name:       "lost DISTINCT",
			old:        `SELECT DISTINCT c.id, c.name FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.region = ?`,
			new:        `SELECT c.id, c.name FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.region = ?`,
			params:     ids("eu", "us"),
			wantParams: "[eu]", // ada has two orders
			wantDiff: func(d diff.Difference) bool {
				m, _ := d.New.(map[string]any)
				return d.Kind == diff.Extra && m["name"] == "ada"
			},
		},
		{
			name:       "NOT IN vs NOT EXISTS with a NULL customer_id",
			old:        `SELECT c.id, c.name FROM customers c WHERE c.region = ? AND c.id NOT IN (SELECT o.customer_id FROM orders o)`,
			new:        `SELECT c.id, c.name FROM customers c WHERE c.region = ? AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)`,
			params:     ids("us", "eu"),
			wantParams: "[eu]", // eve has no orders: NOT IN sees the NULL and returns nothing
			wantDiff: func(d diff.Difference) bool {
				m, _ := d.New.(map[string]any)
				return d.Kind == diff.Extra && m["name"] == "eve"
			},
		},
		{
			name:       "rounding change",
			old:        `SELECT id, ROUND(amount * 1.1, 2) AS gross FROM orders WHERE customer_id = ?`,
			new:        `SELECT id, TRUNCATE(amount * 1.1, 2) AS gross FROM orders WHERE customer_id = ?`,
			params:     ids(int64(2), int64(1), int64(3)), // 7.15*1.1 = 7.865
			wantParams: "[2]",
			wantDiff: func(d diff.Difference) bool {
				return d.Path == "rows[0].gross" && d.Legacy == "7.87" && d.New == "7.86"
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Queries(t.Context(), db, tc.old, tc.new, tc.params, quick())
			if err != nil {
				t.Fatal(err)
			}
			if rep.Pass {
				t.Fatal("wrong rewrite passed")
			}
			c := rep.Checks[0]
			f := c.FirstFailure
			if f == nil {
				t.Fatalf("no first failure; reasons %v", rep.Reasons)
			}
			if got := fmt.Sprint(f.Params); got != tc.wantParams {
				t.Errorf("first failing params = %s, want %s", got, tc.wantParams)
			}
			found := false
			for _, d := range f.Differences {
				found = found || tc.wantDiff(d)
			}
			if !found {
				t.Errorf("differing row not shown: %+v", f.Differences)
			}
			if !strings.Contains(strings.Join(c.Reasons, ";"), "results differ") {
				t.Errorf("reasons = %v", c.Reasons)
			}
		})
	}
}

func TestQueries_errorInNewQuery(t *testing.T) {
	db, _ := shop(t)
	rep, err := Queries(t.Context(), db,
		`SELECT id, name FROM customers WHERE id = ?`,
		`SELECT id, nmae FROM customers WHERE id = ?`, ids(int64(1), int64(2)), quick())
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Checks[0]
	if rep.Pass || c.NewErrors != 2 || c.OldErrors != 0 {
		t.Fatalf("pass=%v new errors=%d old errors=%d", rep.Pass, c.NewErrors, c.OldErrors)
	}
	if r := strings.Join(c.Reasons, ";"); !strings.Contains(r, "new failed where old did not for 2 of 2") || !strings.Contains(r, "Unknown column 'nmae'") {
		t.Errorf("reasons = %q", r)
	}
	if c.FirstFailure == nil || !strings.Contains(c.FirstFailure.NewError, "1054") {
		t.Errorf("first failure = %+v", c.FirstFailure)
	}
	if c.Latency != nil {
		t.Errorf("latency measured for a failing query: %+v", c.Latency)
	}
}

func TestQueries_warningsCompared(t *testing.T) {
	db, _ := shop(t)
	rep, err := Queries(t.Context(), db,
		`SELECT id FROM customers WHERE id = ?`,
		`SELECT id FROM customers WHERE id = ? AND CAST('12abc' AS SIGNED) > 0`, ids(int64(1)), quick())
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Checks[0]
	if rep.Pass || c.WarningDiffs != 1 || len(c.FirstFailure.NewWarnings) == 0 {
		t.Fatalf("pass=%v warning diffs=%d failure=%+v", rep.Pass, c.WarningDiffs, c.FirstFailure)
	}
}

func checksum(t *testing.T, db *sql.DB) string {
	t.Helper()
	var n int
	var sum, st string
	if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*), SUM(amount), GROUP_CONCAT(status ORDER BY id) FROM orders`).Scan(&n, &sum, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(n, sum, st)
}

func TestQueries_writes(t *testing.T) {
	db, _ := shop(t)
	before := checksum(t, db)
	oldQ := `UPDATE orders SET status = 'void', amount = amount * 2 WHERE customer_id = ?`
	newQ := `UPDATE orders SET status = 'void', amount = amount * 2 WHERE customer_id = ? AND status <> 'void'`
	_, err := Queries(t.Context(), db, oldQ, newQ, ids(int64(1)), quick())
	if !errors.Is(err, ErrWriteRefused) {
		t.Fatalf("write without AllowWrites: err = %v, want ErrWriteRefused", err)
	}
	for _, q := range []string{"/* harmless */ DELETE FROM orders", "select 1; delete from orders", "SELECT * FROM orders INTO OUTFILE '/tmp/x'", "DROP TABLE orders"} {
		if _, err := Queries(t.Context(), db, q, `SELECT 1`, nil, quick()); err == nil {
			t.Errorf("%q was not refused", q)
		}
	}
	o := quick()
	o.AllowWrites = true
	rep, err := Queries(t.Context(), db, oldQ, newQ, ids(int64(1), int64(3)), o)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Pass {
		t.Errorf("equivalent updates failed: %v", rep.Reasons)
	}
	if after := checksum(t, db); after != before {
		t.Errorf("data changed by --allow-writes runs: before %s, after %s", before, after)
	}
	if _, err := Queries(t.Context(), db, `DROP TABLE orders`, `DROP TABLE orders`, nil, o); err == nil {
		t.Error("DDL ran with AllowWrites")
	}
}

// TestQueries_writeEffectsCompared: with AllowWrites a write is compared
// by what it did to the table it writes, not only by rows affected: an
// UPDATE that zeroes amounts and a DELETE of the same rows both affect
// two rows for customer 1 and must still differ.
func TestQueries_writeEffectsCompared(t *testing.T) {
	db, _ := shop(t)
	before := checksum(t, db)
	o := quick()
	o.AllowWrites = true
	const zero = `UPDATE orders SET amount = 0 WHERE customer_id = ?`
	cases := []struct {
		name, old, new string
		pass           bool
		wantDiff       func(d diff.Difference) bool
		wantNote       string
	}{
		{name: "UPDATE vs DELETE of the same rows", old: zero, new: `DELETE FROM orders WHERE customer_id = ?`,
			wantDiff: func(d diff.Difference) bool {
				m, _ := d.Legacy.(map[string]any)
				return strings.HasPrefix(d.Path, "effect[orders].rows[") && d.Kind == diff.Missing && m["change"] == "inserted" && m["amount"] == "0.00"
			}},
		{name: "UPDATE to another value", old: zero, new: `UPDATE orders SET amount = 1 WHERE customer_id = ?`,
			wantDiff: func(d diff.Difference) bool {
				return strings.HasPrefix(d.Path, "effect[orders].rows[") && strings.HasSuffix(d.Path, "].amount") && d.Legacy == "0.00" && d.New == "1.00"
			}},
		{name: "same effect, other text", old: zero, new: `UPDATE orders o SET o.amount = 0.00 WHERE o.customer_id = ? AND o.customer_id IS NOT NULL`, pass: true},
		{name: "multi-table UPDATE falls back to rows affected", old: zero,
			new:  `UPDATE orders o JOIN customers c ON c.id = o.customer_id SET o.amount = 0 WHERE c.id = ?`,
			pass: true, wantNote: "writes compared by rows affected only: the written table cannot be determined"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Queries(t.Context(), db, tc.old, tc.new, ids(int64(1), int64(5)), o)
			if err != nil {
				t.Fatal(err)
			}
			c := rep.Checks[0]
			if got, want := rep.Pass, tc.pass; got != want {
				t.Fatalf("pass = %v, want %v; reasons %v, first failure %+v", got, want, rep.Reasons, c.FirstFailure)
			}
			if tc.wantDiff != nil {
				if c.FirstFailure == nil || fmt.Sprint(c.FirstFailure.Params) != "[1]" {
					t.Fatalf("first failure = %+v, want parameters [1]", c.FirstFailure)
				}
				found := false
				for _, d := range c.FirstFailure.Differences {
					found = found || tc.wantDiff(d)
				}
				if !found {
					t.Errorf("changed row not shown: %+v", c.FirstFailure.Differences)
				}
			}
			if notes := strings.Join(c.Notes, ";"); tc.wantNote != "" && !strings.Contains(notes, tc.wantNote) || tc.wantNote == "" && strings.Contains(notes, "rows affected only") {
				t.Errorf("notes = %q, want %q", notes, tc.wantNote)
			}
		})
	}
	if after := checksum(t, db); after != before {
		t.Errorf("data changed by --allow-writes runs: before %s, after %s", before, after)
	}
}

// TestQueries_writeEffectsOverRowLimit: a table larger than the rows the
// canary holds in memory is compared by net row count and checksum, which
// still tells an UPDATE from a DELETE and an equivalent UPDATE from
// itself.
func TestQueries_writeEffectsOverRowLimit(t *testing.T) {
	db, _ := shop(t)
	defer func(n int64) { effectRowLimit = n }(effectRowLimit)
	effectRowLimit = 3 // orders holds 8 rows
	o := quick()
	o.AllowWrites = true
	const zero = `UPDATE orders SET amount = 0 WHERE customer_id = ?`
	rep, err := Queries(t.Context(), db, zero, `DELETE FROM orders WHERE customer_id = ?`, ids(int64(1)), o)
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Checks[0]
	if rep.Pass || c.FirstFailure == nil {
		t.Fatalf("UPDATE vs DELETE passed over the row limit: %v", rep.Reasons)
	}
	found := false
	for _, d := range c.FirstFailure.Differences {
		old, _ := d.Legacy.(string)
		nw, _ := d.New.(string)
		found = found || d.Path == "effect[orders]" && strings.HasPrefix(old, "+0 rows, checksum") && strings.HasPrefix(nw, "-2 rows, checksum")
	}
	if !found {
		t.Errorf("checksum difference not shown: %+v", c.FirstFailure.Differences)
	}
	rep, err = Queries(t.Context(), db, zero, `UPDATE orders SET amount = 0.00 WHERE customer_id = ? AND customer_id IS NOT NULL`, ids(int64(1), int64(3)), o)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Pass {
		t.Errorf("equivalent updates failed over the row limit: %v", rep.Reasons)
	}
}

// TestQueries_writeEffectsAutoIncrement: InnoDB does not roll back the
// AUTO_INCREMENT counter, so old and new inserting the same row get
// different ids; that must not fail the check, listed rows or checksum,
// while a different value inserted still must.
func TestQueries_writeEffectsAutoIncrement(t *testing.T) {
	db, _ := shop(t)
	mustExec(t, db,
		`CREATE TABLE notes (id INT AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL, body VARCHAR(20) NOT NULL) ENGINE=InnoDB`,
		`INSERT INTO notes (customer_id, body) VALUES (1, 'a'), (2, 'b')`)
	o := quick()
	o.AllowWrites = true
	const insert = `INSERT INTO notes (customer_id, body) VALUES (?, 'hi')`
	for _, limit := range []int64{effectRowLimit, 1} {
		t.Run(fmt.Sprintf("row limit %d", limit), func(t *testing.T) {
			defer func(n int64) { effectRowLimit = n }(effectRowLimit)
			effectRowLimit = limit
			rep, err := Queries(t.Context(), db, insert, `INSERT INTO notes SET customer_id = ?, body = 'hi'`, ids(int64(1), int64(2)), o)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Pass {
				t.Errorf("equivalent inserts failed: %v; first failure %+v", rep.Reasons, rep.Checks[0].FirstFailure)
			}
			rep, err = Queries(t.Context(), db, insert, `INSERT INTO notes (customer_id, body) VALUES (?, 'Hi')`, ids(int64(1)), o)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Pass {
				t.Error("inserts of different values passed")
			}
		})
	}
}

// TestQueries_errorsOnBothSides: the same error on both sides is not a
// difference, but when no execution succeeded on both sides nothing was
// compared and the check must not pass; when only some failed, a note
// says how many.
func TestQueries_errorsOnBothSides(t *testing.T) {
	db, _ := shop(t)
	t.Run("every execution", func(t *testing.T) {
		rep, err := Queries(t.Context(), db,
			`SELECT id, amount FROM missing_orders WHERE customer_id = ?`,
			`SELECT id, amount * 2 AS amount FROM missing_orders WHERE customer_id = ?`, ids(int64(1), int64(2)), quick())
		if err != nil {
			t.Fatal(err)
		}
		c := rep.Checks[0]
		if rep.Pass || c.Pass {
			t.Fatalf("nothing was compared, yet pass; reasons %v", rep.Reasons)
		}
		if got, want := c.BothErrors, 2; got != want {
			t.Errorf("both errors = %d, want %d", got, want)
		}
		if r := strings.Join(c.Reasons, ";"); !strings.Contains(r, "every execution failed on both sides") || !strings.Contains(r, "1146") || !strings.Contains(r, "nothing was compared") {
			t.Errorf("reasons = %q", r)
		}
	})
	t.Run("some executions", func(t *testing.T) {
		// Customer 1 has two orders: the scalar subquery fails (1242) on
		// both sides for customer 1 only.
		rep, err := Queries(t.Context(), db,
			`SELECT c.id, (SELECT o.id FROM orders o WHERE o.customer_id = c.id) AS order_id FROM customers c WHERE c.id = ?`,
			`SELECT c.id, (SELECT o.id FROM orders o WHERE o.customer_id = c.id AND o.id > 0) AS order_id FROM customers c WHERE c.id = ?`,
			ids(int64(1), int64(2), int64(4)), quick())
		if err != nil {
			t.Fatal(err)
		}
		c := rep.Checks[0]
		if !rep.Pass {
			t.Fatalf("same answers and same errors failed: %v", rep.Reasons)
		}
		if n := strings.Join(c.Notes, ";"); !strings.Contains(n, "errors on both sides for 1 of 3 parameter sets") || !strings.Contains(n, "1242") {
			t.Errorf("notes = %q", n)
		}
	})
}

// TestQueries_latencyGate: on 200k rows an indexed point lookup against a
// predicate the index cannot serve (k + 0 = ?) is a full scan, tens of
// times slower — the gate must fail it; an equally fast rewrite (aliases,
// same plan) must pass.
func TestQueries_latencyGate(t *testing.T) {
	p := testdb.Need(t, pair)
	name := testdb.TempDatabase(t, p.Source)
	if err := p.Source.Exec(t.Context(), "USE "+name,
		`CREATE TABLE big (id INT AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL, pad CHAR(100) NOT NULL, KEY (k)) ENGINE=InnoDB`,
		`SET SESSION max_recursive_iterations = 1000000`,
		`INSERT INTO big (k, pad) WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 200000) SELECT n, REPEAT('x', 100) FROM seq`,
		`ANALYZE TABLE big`,
	); err != nil {
		t.Fatal(err)
	}
	db := openOn(t, p.Source, name)
	params := ids(int64(17), int64(99_000), int64(150_001), int64(3))
	o := DefaultOptions()
	o.Runs, o.Warmup = 15, 2
	const old = `SELECT id, k, pad FROM big WHERE k = ?`

	slow, err := Queries(t.Context(), db, old, `SELECT id, k, pad FROM big WHERE k + 0 = ?`, params, o)
	if err != nil {
		t.Fatal(err)
	}
	c := slow.Checks[0]
	t.Logf("full scan: old p50 %s, new p50 %s, p=%.2g", c.Latency.Old.P50, c.Latency.New.P50, c.Latency.PValue)
	if slow.Pass || c.Latency == nil || !c.Latency.Regressed {
		t.Fatalf("full scan passed the latency gate: %+v reasons %v", c.Latency, slow.Reasons)
	}
	if c.ResultDiffs != 0 || !strings.Contains(strings.Join(c.Reasons, ";"), "latency") {
		t.Errorf("want only a latency failure: %v", c.Reasons)
	}
	if got := c.Explain.New.Rows[0].Type; got != "ALL" {
		t.Errorf("new access type = %q, want ALL", got)
	}
	if got := c.Explain.Old.Rows[0].Key; got != "k" {
		t.Errorf("old key = %q, want k", got)
	}

	same, err := Queries(t.Context(), db, old, `SELECT b.id, b.k, b.pad FROM big AS b WHERE b.k = ?`, params, o)
	if err != nil {
		t.Fatal(err)
	}
	l := same.Checks[0].Latency
	t.Logf("same plan: old p50 %s, new p50 %s, p=%.2g", l.Old.P50, l.New.P50, l.PValue)
	if !same.Pass {
		t.Fatalf("equally fast rewrite failed: %v (latency %+v)", same.Reasons, same.Checks[0].Latency)
	}
}

const slowLog = `/usr/sbin/mariadbd, Version: 10.11.6-MariaDB-0+deb12u1-log (Debian 12). started with:
Tcp port: 3306  Unix socket: /run/mysqld/mysqld.sock
Time                 Id Command    Argument
# Time: 260101 10:00:00
# User@Host: app[app] @ localhost []
# Thread_id: 31  Schema: canary_shop  QC_hit: No
# Query_time: 0.120000  Lock_time: 0.000100  Rows_sent: 2  Rows_examined: 8
# Rows_affected: 0  Bytes_sent: 120
use canary_shop;
SET timestamp=1767261600;
SELECT id, amount
  FROM orders
 WHERE customer_id = 1;
# User@Host: app[app] @ localhost []
# Thread_id: 31  Schema: canary_shop  QC_hit: No
# Query_time: 0.110000  Lock_time: 0.000100  Rows_sent: 1  Rows_examined: 8
SET timestamp=1767261601;
SELECT id, amount FROM orders WHERE customer_id = 3;
# Time: 260101 10:00:05
# User@Host: app[app] @ localhost []
# Thread_id: 32  Schema: canary_shop  QC_hit: No
# Query_time: 0.050000  Lock_time: 0.000100  Rows_sent: 1  Rows_examined: 1
SET timestamp=1767261605;
SELECT name FROM customers WHERE id = 3;
# User@Host: app[app] @ localhost []
# Thread_id: 32  Schema: canary_shop  QC_hit: No
# Query_time: 0.300000  Lock_time: 0.000100  Rows_sent: 0  Rows_examined: 1
SET timestamp=1767261606;
UPDATE orders SET status = 'paid' WHERE id = 3;
# User@Host: app[app] @ localhost []
# Thread_id: 32  Schema: canary_shop  QC_hit: No
# Query_time: 0.010000  Lock_time: 0.000100  Rows_sent: 1  Rows_examined: 8
SET timestamp=1767261607;
SELECT COUNT(*) FROM orders;
`

// TestServers_slowLog: the same slow log against two servers, the target
// without the customer_id index and with one customer renamed.
func TestServers_slowLog(t *testing.T) {
	p := testdb.Need(t, pair)
	const name = "canary_shop"
	for _, s := range []*testdb.Server{p.Source, p.Target} {
		shopOn(t, s, name)
	}
	if err := p.Target.Exec(t.Context(), "USE "+name, "ALTER TABLE orders DROP KEY customer_id", "UPDATE customers SET name = 'cyd' WHERE id = 3"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "slow.log")
	if err := os.WriteFile(path, []byte(slowLog), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	format, stmts, err := ParseWorkload(f)
	if err != nil || format != FormatSlow || len(stmts) != 5 {
		t.Fatalf("parse: %s, %d statements, %v", format, len(stmts), err)
	}
	// Connect to neither database: the log's schema must be used.
	oldDB, newDB := openOn(t, p.Source, ""), openOn(t, p.Target, "")
	rep, err := Servers(t.Context(), oldDB, newDB, stmts, untimed())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pass {
		t.Fatal("pass, want a failure for the renamed customer")
	}
	if got, want := len(rep.Checks), 3; got != want {
		t.Fatalf("%d checks, want %d (two customer_id lookups share a fingerprint)", got, want)
	}
	byFP := map[string]*Check{}
	for _, c := range rep.Checks {
		byFP[c.Fingerprint] = c
	}
	lookup := byFP["select id, amount from orders where customer_id = ?"]
	if lookup == nil || !lookup.Pass || lookup.Executions != 2 {
		t.Fatalf("customer_id lookup: %+v", lookup)
	}
	if o, n := lookup.Explain.Old.Rows[0], lookup.Explain.New.Rows[0]; o.Key != "customer_id" || n.Type != "ALL" {
		t.Errorf("explain old %+v new %+v: want the index on the old side, a full scan on the new", o, n)
	}
	name3 := byFP["select name from customers where id = ?"]
	if name3 == nil || name3.Pass || name3.FirstFailure == nil {
		t.Fatalf("renamed customer: %+v", name3)
	}
	if d := name3.FirstFailure.Differences[0]; d.Path != "rows[0].name" || d.Legacy != "cy" || d.New != "cyd" {
		t.Errorf("difference = %+v", d)
	}
	if len(rep.Skipped) != 1 || !strings.HasPrefix(rep.Skipped[0].Fingerprint, "update orders") {
		t.Errorf("skipped = %+v, want the UPDATE", rep.Skipped)
	}
}

// TestServers_writesCompared: mode 2 with --allow-writes runs a
// workload's UPDATE on both servers inside rolled-back transactions and
// compares what it did to the table. The same data and schema pass; a
// target whose trigger also zeroes the amount fails on that column; both
// servers hold what they held before.
func TestServers_writesCompared(t *testing.T) {
	p := testdb.Need(t, pair)
	const name = "canary_shop_w"
	for _, s := range []*testdb.Server{p.Source, p.Target} {
		shopOn(t, s, name)
	}
	oldDB, newDB := openOn(t, p.Source, name), openOn(t, p.Target, name)
	stmts := []Statement{
		{SQL: "UPDATE orders SET status = 'paid' WHERE id = 3", Schema: name, Line: 1},
		{SQL: "UPDATE orders SET status = 'paid' WHERE id = 5", Schema: name, Line: 2},
		{SQL: "SELECT COUNT(*) FROM orders WHERE status = 'paid'", Schema: name, Line: 3},
	}
	o := untimed()
	rep, err := Servers(t.Context(), oldDB, newDB, stmts, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Checks) != 1 || len(rep.Skipped) != 1 || rep.Skipped[0].Count != 2 {
		t.Fatalf("without --allow-writes: %d checks, skipped %+v; want the two UPDATEs skipped", len(rep.Checks), rep.Skipped)
	}
	o.AllowWrites = true
	before := [2]string{checksum(t, oldDB), checksum(t, newDB)}

	rep, err = Servers(t.Context(), oldDB, newDB, stmts, o)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Pass || len(rep.Checks) != 2 || len(rep.Skipped) != 0 {
		t.Fatalf("equal servers: pass %v, %d checks, skipped %+v, reasons %v", rep.Pass, len(rep.Checks), rep.Skipped, rep.Reasons)
	}
	for _, c := range rep.Checks {
		if strings.HasPrefix(c.Fingerprint, "update") && (c.Executions != 2 || strings.Contains(strings.Join(c.Notes, ";"), "rows affected only")) {
			t.Errorf("update check: %d executions, notes %v; want 2 compared by effect", c.Executions, c.Notes)
		}
	}

	if err := p.Target.Exec(t.Context(), "USE "+name,
		"CREATE TRIGGER orders_zero BEFORE UPDATE ON orders FOR EACH ROW SET NEW.amount = 0"); err != nil {
		t.Fatal(err)
	}
	rep, err = Servers(t.Context(), oldDB, newDB, stmts, o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pass {
		t.Fatal("pass, want a failure: the target's trigger zeroes the amount")
	}
	var upd *Check
	for _, c := range rep.Checks {
		if strings.HasPrefix(c.Fingerprint, "update") {
			upd = c
		} else if !c.Pass {
			t.Errorf("read check failed: %+v", c.FirstFailure)
		}
	}
	if upd == nil || upd.Pass || upd.FirstFailure == nil {
		t.Fatalf("update check: %+v", upd)
	}
	found := false
	for _, d := range upd.FirstFailure.Differences {
		found = found || strings.HasPrefix(d.Path, "effect[orders].rows[") && strings.HasSuffix(d.Path, "].amount") && d.Legacy == "7.15" && d.New == "0.00"
	}
	if !found {
		t.Errorf("zeroed amount not shown: %+v", upd.FirstFailure.Differences)
	}
	if after := [2]string{checksum(t, oldDB), checksum(t, newDB)}; after != before {
		t.Errorf("data changed by --allow-writes runs: before %v, after %v", before, after)
	}
}

// TestQueries_orderByNullIsUnordered: ORDER BY NULL promises no order,
// so new returning the same rows in another order is the same answer.
func TestQueries_orderByNullIsUnordered(t *testing.T) {
	db, _ := shop(t)
	rep, err := Queries(t.Context(), db,
		`SELECT region, COUNT(*) AS n FROM customers GROUP BY region ORDER BY NULL`,
		`SELECT region, COUNT(*) AS n FROM customers GROUP BY region ORDER BY region DESC`, nil, quick())
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Checks[0]
	if c.Ordered {
		t.Error("ORDER BY NULL compared in order")
	}
	if !rep.Pass {
		t.Errorf("same rows in another order failed after ORDER BY NULL: %v; %+v", rep.Reasons, c.FirstFailure)
	}
}

// TestQueries_writesToNonTransactionalTableRefused: a MyISAM table cannot
// roll back, so --allow-writes must refuse to write it (directly or in a
// multi-table UPDATE) and leave its rows as they were; a write that
// reaches one only through a trigger stops the run after the first
// execution, saying the data changed.
func TestQueries_writesToNonTransactionalTableRefused(t *testing.T) {
	db, _ := shop(t)
	mustExec(t, db,
		`CREATE TABLE notes (id INT PRIMARY KEY, customer_id INT, body VARCHAR(20)) ENGINE=MyISAM`,
		`INSERT INTO notes VALUES (1, 1, 'hello'), (2, 2, 'hi')`,
		`CREATE TABLE audit (n INT) ENGINE=MyISAM`,
		`CREATE TABLE tagged (id INT PRIMARY KEY, tag VARCHAR(10)) ENGINE=InnoDB`,
		`INSERT INTO tagged VALUES (1, 'a')`,
		`CREATE TRIGGER tagged_audit AFTER UPDATE ON tagged FOR EACH ROW INSERT INTO audit VALUES (NEW.id)`,
	)
	notes := func() string {
		var s string
		if err := db.QueryRowContext(t.Context(), `SELECT GROUP_CONCAT(id, body ORDER BY id) FROM notes`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	o := quick()
	o.AllowWrites = true
	for _, q := range []string{
		`UPDATE notes SET body = 'x' WHERE customer_id = ?`,
		`UPDATE customers c JOIN notes n ON n.customer_id = c.id SET n.body = 'x' WHERE c.id = ?`,
	} {
		_, err := Queries(t.Context(), db, q, q, ids(int64(1), int64(2)), o)
		if !errors.Is(err, ErrNotTransactional) || !strings.Contains(err.Error(), "notes") {
			t.Errorf("%s: err = %v, want ErrNotTransactional naming notes", q, err)
		}
		if got, want := notes(), "1hello,2hi"; got != want {
			t.Fatalf("%s changed the MyISAM table: %s, want %s", q, got, want)
		}
	}
	q := `UPDATE tagged SET tag = 'b' WHERE id = ?`
	_, err := Queries(t.Context(), db, q, q, ids(int64(1)), o)
	if !errors.Is(err, ErrNotTransactional) {
		t.Errorf("write through a trigger into MyISAM: err = %v, want ErrNotTransactional", err)
	}
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM audit`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n > 1 {
		t.Errorf("the run went on after the first write that could not be rolled back: audit holds %d rows", n)
	}
}

// TestServers_writesToNonTransactionalTableSkipped: in mode 2 a write to a
// table that is MyISAM on one server is skipped and listed, not run (nor
// fatal); the rest of the workload is compared.
func TestServers_writesToNonTransactionalTableSkipped(t *testing.T) {
	p := testdb.Need(t, pair)
	const name = "canary_shop_myisam"
	for i, s := range []*testdb.Server{p.Source, p.Target} {
		engine := []string{"InnoDB", "MyISAM"}[i]
		shopOn(t, s, name, "CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(20)) ENGINE="+engine, "INSERT INTO notes VALUES (1, 'hello')")
	}
	oldDB, newDB := openOn(t, p.Source, name), openOn(t, p.Target, name)
	stmts := []Statement{
		{SQL: "UPDATE notes SET body = 'x' WHERE id = 1", Schema: name, Line: 1},
		{SQL: "SELECT COUNT(*) FROM orders WHERE status = 'paid'", Schema: name, Line: 2},
	}
	o := quick()
	o.AllowWrites = true
	rep, err := Servers(t.Context(), oldDB, newDB, stmts, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Checks) != 1 || len(rep.Skipped) != 1 || !strings.Contains(rep.Skipped[0].Reason, "notes (MyISAM)") {
		t.Errorf("%d checks, skipped %+v; want the UPDATE of notes skipped, naming notes (MyISAM)", len(rep.Checks), rep.Skipped)
	}
	var body string
	if err := newDB.QueryRowContext(t.Context(), "SELECT body FROM notes WHERE id = 1").Scan(&body); err != nil {
		t.Fatal(err)
	}
	if body != "hello" {
		t.Errorf("the MyISAM table was written: body = %q", body)
	}
}

// TestQueries_temporalValuesAsSent: the pool parses DATETIME into
// time.Time (parseTime=true), which drops what the server sent: a
// DATETIME(6) column's ".000000" and a DATE's missing time. Values must
// compare as the text protocol sends them.
func TestQueries_temporalValuesAsSent(t *testing.T) {
	db, _ := shop(t)
	cases := []struct{ name, old, new, wantOld, wantNew string }{
		{"fractional seconds appear",
			`SELECT CAST('2024-01-01 10:00:00' AS DATETIME) AS t`,
			`SELECT CAST('2024-01-01 10:00:00' AS DATETIME(6)) AS t`,
			"2024-01-01 10:00:00", "2024-01-01 10:00:00.000000"},
		{"fractional digits kept",
			`SELECT CAST('2024-01-01 10:00:00.5' AS DATETIME(1)) AS t`,
			`SELECT CAST('2024-01-01 10:00:00.5' AS DATETIME(3)) AS t`,
			"2024-01-01 10:00:00.5", "2024-01-01 10:00:00.500"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Queries(t.Context(), db, tc.old, tc.new, nil, quick())
			if err != nil {
				t.Fatal(err)
			}
			f := rep.Checks[0].FirstFailure
			if rep.Pass || f == nil {
				t.Fatalf("%s vs %s passed", tc.wantOld, tc.wantNew)
			}
			if d := f.Differences[len(f.Differences)-1]; d.Legacy != tc.wantOld || d.New != tc.wantNew {
				t.Errorf("difference %+v, want old %q new %q", d, tc.wantOld, tc.wantNew)
			}
		})
	}
	rep, err := Queries(t.Context(), db, `SELECT DATE '2024-02-29' AS d, CAST('2024-01-01 10:00:00.25' AS DATETIME(2)) AS t`,
		`SELECT DATE('2024-02-29 00:00:00') AS d, CAST('2024-01-01 10:00:00.250' AS DATETIME(2)) AS t`, nil, quick())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Pass {
		t.Errorf("same dates failed: %v %+v", rep.Reasons, rep.Checks[0].FirstFailure)
	}
}

// TestQueries_paramsOnNoBackslashEscapesServer: under sql_mode
// NO_BACKSLASH_ESCAPES a backslash in a string literal is itself, so
// parameters must be bound without backslash escapes: O'Brien must not
// become a syntax error, nor a\b a search for a\\b.
func TestQueries_paramsOnNoBackslashEscapesServer(t *testing.T) {
	_, name := shop(t)
	p := testdb.Need(t, pair)
	cfg, err := mysql.ParseDSN(p.Source.DSN(name))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Params = map[string]string{"sql_mode": "'NO_BACKSLASH_ESCAPES'"}
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), `INSERT INTO customers VALUES (7, 'O''Brien', 'eu'), (8, 'a\b', 'eu')`); err != nil {
		t.Fatal(err)
	}
	rep, err := Queries(t.Context(), db,
		`SELECT name FROM customers WHERE name = ?`,
		`SELECT ? AS name`, ids("O'Brien", `a\b`), quick())
	if err != nil {
		t.Fatal(err)
	}
	if c := rep.Checks[0]; !rep.Pass {
		t.Errorf("each parameter is the stored name, yet: %v; %+v", rep.Reasons, c.FirstFailure)
	}
}

// TestQueries_sameErrorDifferentWordingIsNotAWarningDiff: errors compare
// by number; SHOW WARNINGS repeats the error with its text, which names
// the expression as each query wrote it. The same error on both sides
// must not come back as a warnings difference.
func TestQueries_sameErrorDifferentWordingIsNotAWarningDiff(t *testing.T) {
	db, _ := shop(t)
	// id - 5 is out of range for BIGINT UNSIGNED for customers 1..4 (1690,
	// whose message quotes the expression), fine for customer 6.
	rep, err := Queries(t.Context(), db,
		`SELECT CAST(id AS UNSIGNED) - 5 AS d FROM customers WHERE id = ?`,
		`SELECT CAST(c.id AS UNSIGNED) - 5 AS d FROM customers c WHERE c.id = ?`,
		ids(int64(1), int64(6)), quick())
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Checks[0]
	if c.BothErrors != 1 {
		t.Fatalf("both errors = %d, want 1 (error %q)", c.BothErrors, c.BothError)
	}
	if !rep.Pass || c.WarningDiffs != 0 {
		t.Errorf("same error on both sides failed: %v; %+v", rep.Reasons, c.FirstFailure)
	}
}

// TestQueries_droppedOrderByFails: old promises an order (ORDER BY) and
// new no longer asks for one; new may return the same order on today's
// data by chance (here the primary key's), but nothing guarantees it, so
// the rewrite fails — unless no execution returned more than one row.
func TestQueries_droppedOrderByFails(t *testing.T) {
	db, _ := shop(t)
	rep, err := Queries(t.Context(), db,
		`SELECT id, amount FROM orders WHERE customer_id = ? ORDER BY id`,
		`SELECT id, amount FROM orders WHERE customer_id = ?`, ids(int64(1), int64(3)), quick())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pass || !strings.Contains(strings.Join(rep.Reasons, ";"), "ORDER BY") {
		t.Errorf("dropped ORDER BY passed: reasons %v", rep.Reasons)
	}
	rep, err = Queries(t.Context(), db,
		`SELECT id, amount FROM orders WHERE id = ? ORDER BY id`,
		`SELECT id, amount FROM orders WHERE id = ?`, ids(int64(1), int64(3)), quick())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Pass {
		t.Errorf("dropped ORDER BY on single rows failed: %v", rep.Reasons)
	}
}

// TestQueries_tooFewRunsForTheLatencyTest: with 3 timed runs per side the
// one-sided Mann-Whitney U test cannot reach p < 0.01 even when every new
// run is slower than every old one, so a 50 ms slowdown passed as "no
// significant slowdown". A latency check that cannot fail must be
// refused, saying how many runs it needs; --runs 0 (no latency check)
// stays allowed, and so does an alpha the runs can reach.
func TestQueries_tooFewRunsForTheLatencyTest(t *testing.T) {
	db, _ := shop(t)
	const old = `SELECT id FROM orders WHERE customer_id = ?`
	const slow = `SELECT id FROM orders WHERE customer_id = ? AND SLEEP(0.05) = 0`
	o := DefaultOptions()
	o.Runs, o.Warmup = 3, 0
	rep, err := Queries(t.Context(), db, old, slow, ids(int64(1)), o)
	switch {
	case err == nil && rep.Pass:
		t.Errorf("a 50 ms slowdown passed with 3 runs per side (p = %.3g)", rep.Checks[0].Latency.PValue)
	case err != nil && !strings.Contains(err.Error(), "--runs 5"):
		t.Errorf("err = %v, want it to ask for --runs 5", err)
	}
	o.Runs = 0
	if _, err := Queries(t.Context(), db, old, old, ids(int64(1)), o); err != nil {
		t.Errorf("--runs 0: %v", err)
	}
	o.Runs, o.Alpha = 3, 0.06
	if _, err := Queries(t.Context(), db, old, old, ids(int64(1)), o); err != nil {
		t.Errorf("3 runs at alpha 0.06: %v", err)
	}
	for _, alpha := range []float64{0, -0.1, 1, 1.5} {
		o.Runs, o.Alpha = 6, alpha
		if _, err := Queries(t.Context(), db, old, old, ids(int64(1)), o); err == nil || !strings.Contains(err.Error(), "alpha") {
			t.Errorf("alpha %g: err = %v, want it refused", alpha, err)
		}
	}
}

// TestQueries_readThatWritesIsRefused: a SELECT may write through a
// stored function; without AllowWrites nothing may be written, so such a
// query is refused (it runs in a READ ONLY transaction); with AllowWrites
// it runs in a transaction that is rolled back. Either way the table
// holds what it held.
func TestQueries_readThatWritesIsRefused(t *testing.T) {
	db, _ := shop(t)
	mustExec(t, db, writingFunction...)
	const q = `SELECT id, touch(id) AS t FROM customers WHERE id = ?`
	_, err := Queries(t.Context(), db, q, q, ids(int64(1), int64(2)), quick())
	if !errors.Is(err, ErrWriteRefused) {
		t.Errorf("a SELECT that writes, without AllowWrites: err = %v, want ErrWriteRefused", err)
	}
	if n := hitsRows(t, db); n != 0 {
		t.Fatalf("a SELECT run without AllowWrites wrote %d rows", n)
	}
	o := quick()
	o.AllowWrites = true
	rep, err := Queries(t.Context(), db, q, q, ids(int64(1), int64(2)), o)
	if err != nil || !rep.Pass {
		t.Fatalf("with AllowWrites: err %v, reasons %v", err, rep)
	}
	if n := hitsRows(t, db); n != 0 {
		t.Errorf("with AllowWrites the SELECT's writes stayed: %d rows", n)
	}
	// A locking read is a read: the READ ONLY transaction refuses it, so
	// it runs in one that is rolled back.
	const lock = `SELECT id FROM orders WHERE customer_id = ? FOR UPDATE`
	if rep, err := Queries(t.Context(), db, lock, lock, ids(int64(1)), quick()); err != nil || !rep.Pass || len(rep.Checks[0].Explain.Old.Rows) == 0 {
		t.Errorf("SELECT ... FOR UPDATE: err %v, report %+v", err, rep)
	}
}

// TestServers_readThatWritesIsSkipped: in mode 2 a SELECT that writes
// through a stored function is skipped and listed, and writes nothing;
// the rest of the workload is compared.
func TestServers_readThatWritesIsSkipped(t *testing.T) {
	p := testdb.Need(t, pair)
	const name = "canary_shop_fn"
	for _, s := range []*testdb.Server{p.Source, p.Target} {
		shopOn(t, s, name, writingFunction...)
	}
	oldDB, newDB := openOn(t, p.Source, name), openOn(t, p.Target, name)
	stmts := []Statement{
		{SQL: "SELECT id, touch(id) FROM customers WHERE id = 1", Schema: name, Line: 1},
		{SQL: "SELECT COUNT(*) FROM orders WHERE status = 'paid'", Schema: name, Line: 2},
	}
	rep, err := Servers(t.Context(), oldDB, newDB, stmts, quick())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Checks) != 1 || len(rep.Skipped) != 1 || !strings.Contains(rep.Skipped[0].Fingerprint, "touch") {
		t.Errorf("%d checks, skipped %+v; want the SELECT touch(...) skipped", len(rep.Checks), rep.Skipped)
	}
	for _, db := range []*sql.DB{oldDB, newDB} {
		if n := hitsRows(t, db); n != 0 {
			t.Errorf("the SELECT wrote %d rows", n)
		}
	}
}

// TestQueryParams_readThatWritesIsRefused: the parameter query is a read
// and must not write either, even through a stored function.
func TestQueryParams_readThatWritesIsRefused(t *testing.T) {
	db, _ := shop(t)
	mustExec(t, db, writingFunction...)
	if _, err := QueryParams(t.Context(), db, `SELECT touch(id) FROM customers`); !errors.Is(err, ErrWriteRefused) {
		t.Errorf("err = %v, want ErrWriteRefused", err)
	}
	if n := hitsRows(t, db); n != 0 {
		t.Errorf("the parameter query wrote %d rows", n)
	}
	if p, err := QueryParams(t.Context(), db, `SELECT id FROM customers WHERE id < 3 ORDER BY id`); err != nil || len(p) != 2 {
		t.Errorf("plain parameter query: %v, %v", p, err)
	}
}

// TestQueryParams_textColumnsStayText: a VARCHAR holding digits ('0123',
// '123') is text; bound as the number 123 it compares numerically — it
// matches '0123' too and cannot use the column's index, so the canary
// would time a full scan the application never runs. Integer columns
// still bind as numbers.
func TestQueryParams_textColumnsStayText(t *testing.T) {
	db, _ := shop(t)
	mustExec(t, db,
		`CREATE TABLE products (id INT PRIMARY KEY, sku VARCHAR(20) NOT NULL, UNIQUE KEY (sku)) ENGINE=InnoDB`,
		`INSERT INTO products VALUES (1, '123'), (2, '0123'), (3, 'x-1')`,
	)
	params, err := QueryParams(t.Context(), db, `SELECT sku, id FROM products WHERE id = 1`)
	if err != nil {
		t.Fatal(err)
	}
	if len(params) != 1 || params[0][0] != "123" || params[0][1] != int64(1) {
		t.Fatalf("params = %#v, want [[\"123\" 1]]", params)
	}
	const q = `SELECT id FROM products WHERE sku = ?`
	rep, err := Queries(t.Context(), db, q, q, [][]any{{params[0][0]}}, quick())
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Checks[0].Explain.Old.Rows[0]; r.Key != "sku" || r.Type != "const" {
		t.Errorf("sku = ? bound from a VARCHAR is not a lookup in the sku index: explain %+v", r)
	}
}

// TestQueries_explainWritesNothing: MariaDB evaluates a constant stored
// function call while it plans, so EXPLAIN of a write that calls one
// writes; EXPLAIN must run inside the rolled-back transaction too.
func TestQueries_explainWritesNothing(t *testing.T) {
	db, _ := shop(t)
	mustExec(t, db, writingFunction...)
	o := quick()
	o.AllowWrites = true
	const q = `UPDATE customers SET region = 'xx' WHERE id = touch(?)`
	rep, err := Queries(t.Context(), db, q, q, ids(int64(1)), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Checks[0].Explain.Old.Rows) == 0 {
		t.Errorf("no EXPLAIN: %+v", rep.Checks[0].Explain)
	}
	if n := hitsRows(t, db); n != 0 {
		t.Errorf("the run left %d rows written by the stored function", n)
	}
}

// TestQueries_sameClockOnBothSides: old and new run a moment apart, so
// NOW(6), and an ON UPDATE CURRENT_TIMESTAMP(6) column a write touches,
// differed on every execution and failed identical queries; both sides
// of a comparison must see the same clock.
func TestQueries_sameClockOnBothSides(t *testing.T) {
	db, _ := shop(t)
	if _, err := db.ExecContext(t.Context(), `ALTER TABLE orders ADD updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)`); err != nil {
		t.Fatal(err)
	}
	o := quick()
	o.AllowWrites = true
	for _, q := range []string{
		`SELECT id, NOW(6) AS at FROM orders WHERE customer_id = ?`,
		`UPDATE orders SET status = 'void' WHERE customer_id = ?`,
	} {
		rep, err := Queries(t.Context(), db, q, q, ids(int64(1), int64(3)), o)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Pass {
			t.Errorf("%s against itself failed: %v; %+v", q, rep.Reasons, rep.Checks[0].FirstFailure)
		}
	}
	var at time.Time
	if err := db.QueryRowContext(t.Context(), `SELECT NOW()`).Scan(&at); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(at); d > time.Minute || d < -time.Minute {
		t.Errorf("the server's clock is off after the run: NOW() = %s", at)
	}
}

// TestQueries_errorReasonsCountEachSide: the reasons must say how often
// each side failed where the other did not; they described only the
// first failure's kind, so old failing where new did not went unnamed.
func TestQueries_errorReasonsCountEachSide(t *testing.T) {
	db, _ := shop(t)
	// x - 5 is out of range for x < 5 on old; 10 - x for x > 10 on new.
	rep, err := Queries(t.Context(), db,
		`SELECT CAST(? AS UNSIGNED) - 5 AS d`,
		`SELECT 10 - CAST(? AS UNSIGNED) AS d`, ids(int64(12), int64(4), int64(2), int64(7)), quick())
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Checks[0]
	r := strings.Join(c.Reasons, ";")
	for _, want := range []string{"new failed where old did not for 1 of 4 parameter sets", "old failed where new did not for 2 of 4 parameter sets"} {
		if !strings.Contains(r, want) {
			t.Errorf("reasons %q lack %q", r, want)
		}
	}
}

// TestQueries_orderByTiesMayComeInAnyOrder: ORDER BY status leaves the
// order of orders with the same status open; new returning them in
// another order (here by a tie-breaker) is the same answer. The order of
// the ORDER BY key itself still counts.
func TestQueries_orderByTiesMayComeInAnyOrder(t *testing.T) {
	db, _ := shop(t)
	cases := []struct {
		name, old, new string
		pass           bool
	}{
		{"ties reordered", `SELECT id, status FROM orders ORDER BY status`, `SELECT id, status FROM orders ORDER BY status, id DESC`, true},
		{"by position and alias", `SELECT o.id, o.status AS s FROM orders o ORDER BY 2`, `SELECT o.id, o.status AS s FROM orders o ORDER BY s, o.id DESC`, true},
		{"qualified key", `SELECT o.id, o.status FROM orders o ORDER BY o.status ASC`, `SELECT o.id, o.status FROM orders o ORDER BY o.status, o.id DESC`, true},
		{"key order reversed", `SELECT id, status FROM orders ORDER BY status`, `SELECT id, status FROM orders ORDER BY status DESC, id`, false},
		{"expression key stays strict", `SELECT id, status FROM orders ORDER BY LENGTH(status)`, `SELECT id, status FROM orders ORDER BY LENGTH(status), id DESC`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Queries(t.Context(), db, tc.old, tc.new, nil, quick())
			if err != nil {
				t.Fatal(err)
			}
			if rep.Pass != tc.pass {
				t.Errorf("pass = %v, want %v: %v %+v", rep.Pass, tc.pass, rep.Reasons, rep.Checks[0].FirstFailure)
			}
		})
	}
}

// TestQueries_nothingReturnedIsNoted: parameters that match nothing (a
// stray space, the wrong column) make every execution return no rows on
// both sides; that passes, but the check must say it compared only
// empty results.
func TestQueries_nothingReturnedIsNoted(t *testing.T) {
	db, _ := shop(t)
	const q = `SELECT id FROM customers WHERE region = ?`
	rep, err := Queries(t.Context(), db, q, q, ids(" eu", " us"), quick())
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Join(rep.Checks[0].Notes, ";"); !strings.Contains(n, "no rows") {
		t.Errorf("notes %q do not say every execution returned no rows", n)
	}
	rep, err = Queries(t.Context(), db, q, q, ids("eu", "nowhere"), quick())
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Join(rep.Checks[0].Notes, ";"); strings.Contains(n, "no rows") {
		t.Errorf("notes %q, yet one execution returned rows", n)
	}
}

// TestQueries_writeEffectsBigintUnsignedAutoIncrement: the driver hands
// a BIGINT UNSIGNED over as uint64; its generated AUTO_INCREMENT ids
// (old gets 3, new 4: InnoDB does not roll the counter back) must compare
// as "(generated)" like an INT's.
func TestQueries_writeEffectsBigintUnsignedAutoIncrement(t *testing.T) {
	db, _ := shop(t)
	mustExec(t, db,
		`CREATE TABLE notes (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL, body VARCHAR(20) NOT NULL) ENGINE=InnoDB`,
		`INSERT INTO notes (customer_id, body) VALUES (1, 'a'), (2, 'b')`,
	)
	o := quick()
	o.AllowWrites = true
	const insert = `INSERT INTO notes (customer_id, body) VALUES (?, 'hi')`
	for _, limit := range []int64{effectRowLimit, 1} {
		t.Run(fmt.Sprintf("row limit %d", limit), func(t *testing.T) {
			defer func(n int64) { effectRowLimit = n }(effectRowLimit)
			effectRowLimit = limit
			rep, err := Queries(t.Context(), db, insert, insert, ids(int64(1), int64(2)), o)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Pass {
				t.Errorf("the same insert failed: %v; first failure %+v", rep.Reasons, rep.Checks[0].FirstFailure)
			}
		})
	}
}

// TestServers_optionsRecordSamples: --samples decides how many statements
// per fingerprint were compared, so the report's options must record it.
func TestServers_optionsRecordSamples(t *testing.T) {
	db, _ := shop(t)
	o := quick()
	o.Samples = 1
	stmts := []Statement{{SQL: "SELECT 1", Line: 1}, {SQL: "SELECT 2", Line: 2}}
	rep, err := Servers(t.Context(), db, db, stmts, o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"samples":1`) || rep.Checks[0].Executions != 1 {
		t.Errorf("options %s, executions %d; want samples 1 recorded and 1 execution", b[strings.Index(string(b), `"options"`):], rep.Checks[0].Executions)
	}
}

// TestQueries_latencyWithQueryCacheOn: on a server whose query cache is
// on (a legacy default), each repeated timed run of old and new is
// answered from the cache, so a full scan replacing an index lookup
// timed like it and passed the latency gate. The timed runs must reach
// the tables.
func TestQueries_latencyWithQueryCacheOn(t *testing.T) {
	testdb.Need(t, pair)
	srv, err := testdb.Start(t.Context(), testdb.Options{Name: "qcache", ExtraArgs: []string{"--query-cache-type=1", "--query-cache-size=16777216"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	const name = "qc"
	if err := srv.Exec(t.Context(), "CREATE DATABASE "+name, "USE "+name,
		`CREATE TABLE big (id INT AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL, pad CHAR(100) NOT NULL, KEY (k)) ENGINE=InnoDB`,
		`SET SESSION max_recursive_iterations = 1000000`,
		`INSERT INTO big (k, pad) WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 50000) SELECT n, REPEAT('x', 100) FROM seq`,
		`ANALYZE TABLE big`,
	); err != nil {
		t.Fatal(err)
	}
	db, err := srv.Open(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var qc string
	if err := db.QueryRowContext(t.Context(), "SELECT @@GLOBAL.query_cache_type").Scan(&qc); err != nil || qc != "ON" {
		t.Fatalf("query cache not on: %q %v", qc, err)
	}
	o := DefaultOptions()
	o.Runs, o.Warmup = 15, 2
	rep, err := Queries(t.Context(), db, `SELECT id, k, pad FROM big WHERE k = ?`, `SELECT id, k, pad FROM big WHERE k + 0 = ?`,
		ids(int64(17), int64(49_000), int64(25_001)), o)
	if err != nil {
		t.Fatal(err)
	}
	l := rep.Checks[0].Latency
	t.Logf("old p50 %s, new p50 %s, p=%.2g", l.Old.P50, l.New.P50, l.PValue)
	if rep.Pass || !l.Regressed {
		t.Errorf("a full scan passed the latency gate with the query cache on: %+v", l)
	}
}

// TestQueries_noBackslashEscapesCannotHideAStatement: under sql_mode
// NO_BACKSLASH_ESCAPES 'C:\' is a whole string, so the text below is a
// SELECT, then DROP TABLE, then a comment. Classified with backslash
// escapes it looked like one SELECT and ran on a DSN allowing several
// statements: the table was dropped. It must be refused.
func TestQueries_noBackslashEscapesCannotHideAStatement(t *testing.T) {
	_, name := shop(t)
	p := testdb.Need(t, pair)
	cfg, err := mysql.ParseDSN(p.Source.DSN(name)) // MultiStatements on
	if err != nil {
		t.Fatal(err)
	}
	cfg.Params = map[string]string{"sql_mode": "'NO_BACKSLASH_ESCAPES'"}
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const q = `SELECT id FROM customers WHERE name = 'C:\'; DROP TABLE orders; -- '`
	if _, err := Queries(t.Context(), db, q, q, nil, quick()); !errors.Is(err, ErrMultiStatement) {
		t.Errorf("err = %v, want ErrMultiStatement", err)
	}
	var n int
	if err := db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM orders").Scan(&n); err != nil {
		t.Fatalf("orders is gone: %v", err)
	}
}
