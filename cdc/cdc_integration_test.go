package cdc

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/internal/testdb"
	"github.com/banyanhq/banyan/routes"
)

var pair *testdb.Pair

func TestMain(m *testing.M) { os.Exit(testdb.RunWithPair(m, &pair)) }

// dbs gives a test its own source and target databases on the shared
// servers.
func dbs(tb testing.TB) (srcName, dstName string, src, dst *sql.DB) {
	tb.Helper()
	testdb.Need(tb, pair)
	ctx := context.Background()
	srcName = testdb.TempDatabase(tb, pair.Source)
	dstName = testdb.TempDatabase(tb, pair.Target)
	var err error
	if src, err = OpenDB(pair.Source.DSN(srcName)); err != nil {
		tb.Fatal(err)
	}
	if dst, err = OpenDB(pair.Target.DSN(dstName)); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { src.Close(); dst.Close() })
	_ = ctx
	return
}

func mustExec(tb testing.TB, db *sql.DB, stmts ...string) {
	tb.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			tb.Fatalf("%s: %v", s, err)
		}
	}
}

// runPipeline runs a pipeline in the background until the test ends or
// stop is called; the returned channel yields Run's result.
func runPipeline(tb testing.TB, cfg routes.CDCConfig) (stop func() error) {
	tb.Helper()
	if cfg.BatchRows == 0 {
		cfg.BatchRows = 1000
	}
	if cfg.ChunkRows == 0 {
		cfg.ChunkRows = 1000
	}
	if cfg.Source.Flavor == "" {
		cfg.Source.Flavor = "mariadb"
	}
	if cfg.Source.Position == "" {
		cfg.Source.Position = "gtid"
	}
	if cfg.Source.ServerID == 0 {
		cfg.Source.ServerID = 9000 + uint32(time.Now().UnixNano()%1000)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		tb.Fatalf("cdc.Open: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, false) }()
	var result error
	stopped := false
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			result = <-done
			p.Close()
		}
		return result
	}
	tb.Cleanup(func() { stop() })
	return stop
}

// dump returns every row of a table as text, in key order.
func dump(tb testing.TB, db *sql.DB, table, order string) []string {
	tb.Helper()
	rows, err := db.Query(fmt.Sprintf("SELECT * FROM %s ORDER BY %s", table, order))
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			tb.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			if v == nil {
				parts[i] = "NULL"
			} else {
				parts[i] = fmt.Sprintf("%q", string(v))
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	return out
}

// waitEqual polls until both dumps are equal.
func waitEqual(tb testing.TB, d time.Duration, src, dst func() []string) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for {
		a, b := src(), dst()
		if reflect.DeepEqual(a, b) {
			return
		}
		if time.Now().After(deadline) {
			n := min(len(a), len(b))
			for i := 0; i < n; i++ {
				if a[i] != b[i] {
					tb.Fatalf("target differs from source at row %d:\n source %s\n target %s\n(%d source rows, %d target rows)", i, a[i], b[i], len(a), len(b))
				}
			}
			tb.Fatalf("row counts differ: source %d, target %d", len(a), len(b))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// resetToSourcePosition makes the target's bookkeeping tables and resets
// its checkpoint to a copy starting at the source's current position, as
// a first run does before it copies: what the source commits after this
// is replayed by the stream onto what the copy writes.
func resetToSourcePosition(tb testing.TB, src, dst *sql.DB) {
	tb.Helper()
	ctx := context.Background()
	target := &Target{DB: dst, Pipeline: "default"}
	if err := target.Init(ctx); err != nil {
		tb.Fatal(err)
	}
	start, err := (&SourceDB{DB: src, Flavor: "mariadb"}).Position(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if err := target.Reset(ctx, start, nil); err != nil {
		tb.Fatal(err)
	}
}

// untilApplied waits until the pipeline's checkpoint is streaming at gtid,
// failing if Run ends first or it takes over 20 seconds; a failure shows
// the target's tables.
func untilApplied(tb testing.TB, dst *sql.DB, done <-chan error, gtid string, tables ...string) {
	tb.Helper()
	shown := func() string {
		var b strings.Builder
		for _, table := range tables {
			fmt.Fprintf(&b, "\ntarget %s %v", table, dump(tb, dst, table, "id"))
		}
		return b.String()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-done:
			tb.Fatalf("Run stopped: %v%s", err, shown())
		default:
		}
		cp, ok, err := (&Target{DB: dst, Pipeline: "default"}).Checkpoint(context.Background())
		if err == nil && ok && cp.Phase == PhaseStream && cp.Applied.GTID == gtid {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("checkpoint %+v (%v), want streaming at %s%s", cp, err, gtid, shown())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkSameRows fails the test for each table whose rows in the target
// differ from the source's.
func checkSameRows(tb testing.TB, src, dst *sql.DB, tables ...string) {
	tb.Helper()
	for _, table := range tables {
		if got, want := strings.Join(dump(tb, dst, table, "id"), " "), strings.Join(dump(tb, src, table, "id"), " "); got != want {
			tb.Errorf("target %s = %s, want %s", table, got, want)
		}
	}
}

const allTypesDDL = `CREATE TABLE t (
	id INT PRIMARY KEY,
	i BIGINT UNSIGNED,
	d DECIMAL(12,4),
	f FLOAT,
	db DOUBLE,
	vc VARCHAR(100),
	tx TEXT,
	bl BLOB,
	vb VARBINARY(16),
	dt DATE,
	dtm DATETIME(6),
	ts TIMESTAMP NULL,
	js JSON,
	en ENUM('new','paid','shipped'),
	st SET('a','b','c'),
	ti TINYINT,
	yr YEAR,
	bt BIT(5)
) DEFAULT CHARSET=utf8mb4`

func TestPipeline_AllTypesRoundTrip(t *testing.T) { allTypesRoundTrip(t, 0) }

// TestPipeline_AllTypesRoundTripSpilled: the same changes, each of its
// transactions past cdc.spill_rows 1, so every row image but the last of
// a transaction goes through the spill file and back before it is
// applied.
func TestPipeline_AllTypesRoundTripSpilled(t *testing.T) { allTypesRoundTrip(t, 1) }

func allTypesRoundTrip(t *testing.T, spillRows int) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, allTypesDDL)
	mustExec(t, dst, allTypesDDL)
	mustExec(t, src, `INSERT INTO t VALUES (1, 18446744073709551615, -12345678.1234, 1.5, 2.25, 'héllo 世界 🎉', 'long text 你好', X'00FF10', X'DEADBEEF', '2026-11-27', '2026-11-27 10:11:12.123456', '2026-11-27 01:02:03', '{"a": [1, 2, {"b": null}]}', 'paid', 'a,c', -5, 2026, b'10101')`,
		`INSERT INTO t (id) VALUES (2)`)
	stop := runPipeline(t, routes.CDCConfig{
		Source:    routes.CDCSource{DSN: pair.Source.DSN(srcName)},
		Target:    routes.CDCTarget{DSN: pair.Target.DSN(dstName)},
		Tables:    []routes.TableMapping{{Source: srcName + ".t", Target: dstName + ".t"}},
		SpillRows: spillRows,
	})
	s := func() []string { return dump(t, src, "t", "id") }
	d := func() []string { return dump(t, dst, "t", "id") }
	waitEqual(t, 20*time.Second, s, d) // initial copy
	// One transaction of several changes, so that with spill_rows 1 most of
	// them are read back from the file; then each on its own.
	execOnOneConn(t, src, `BEGIN`,
		`INSERT INTO t VALUES (5, 0, 0, 0, 0, 'five', NULL, X'', NULL, NULL, NULL, NULL, NULL, 'paid', '', 0, NULL, NULL)`,
		`UPDATE t SET vc = '', bl = X'' WHERE id = 5`,
		`INSERT INTO t (id, bl, vb) VALUES (6, X'00', '')`,
		`UPDATE t SET d = -0.0001, f = -0, db = -1.5e-300 WHERE id = 1`,
		`COMMIT`)
	mustExec(t, src,
		`INSERT INTO t VALUES (3, 42, 0.0001, -0.5, 1e100, '', '', '', X'', '1999-12-31', '1999-12-31 23:59:59.000001', '2038-01-19 03:14:07', '[]', 'new', '', 127, 1999, b'1')`,
		`UPDATE t SET vc = '更新 ✓', d = 99999999.9999, en = 'shipped', st = 'b', js = '{"x": 1}', bl = NULL WHERE id = 1`,
		`UPDATE t SET vc = 'was null' WHERE id = 2`,
		`DELETE FROM t WHERE id = 2`,
		`INSERT INTO t (id, vc) VALUES (4, NULL)`,
		`UPDATE t SET id = 40 WHERE id = 4`) // primary key change
	waitEqual(t, 20*time.Second, s, d)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestPipeline_BatchFinalStateAndUniqueKeys: many changes of the same rows
// in one batch land as their final state on a plain table, and a table
// with a secondary unique key keeps the binlog's order, so a swap of
// unique values (valid on the source, step by step) never collides.
func TestPipeline_BatchFinalStateAndUniqueKeys(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE plain (id INT PRIMARY KEY, v INT)`, `CREATE TABLE uniq (id INT PRIMARY KEY, email VARCHAR(20) UNIQUE)`,
		`INSERT INTO plain VALUES (1, 1), (2, 2)`, `INSERT INTO uniq VALUES (1, 'a'), (2, 'b')`)
	mustExec(t, dst, `CREATE TABLE plain (id INT PRIMARY KEY, v INT)`, `CREATE TABLE uniq (id INT PRIMARY KEY, email VARCHAR(20) UNIQUE)`)
	runPipeline(t, routes.CDCConfig{
		Source: routes.CDCSource{DSN: pair.Source.DSN(srcName)},
		Target: routes.CDCTarget{DSN: pair.Target.DSN(dstName)},
		Tables: []routes.TableMapping{{Source: srcName + ".plain", Target: dstName + ".plain"}, {Source: srcName + ".uniq", Target: dstName + ".uniq"}},
	})
	plainS := func() []string { return dump(t, src, "plain", "id") }
	plainD := func() []string { return dump(t, dst, "plain", "id") }
	uniqS := func() []string { return dump(t, src, "uniq", "id") }
	uniqD := func() []string { return dump(t, dst, "uniq", "id") }
	waitEqual(t, 20*time.Second, plainS, plainD)
	waitEqual(t, 20*time.Second, uniqS, uniqD)

	tx, err := src.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO plain VALUES (3, 30)`, `UPDATE plain SET v = 31 WHERE id = 3`, `UPDATE plain SET v = 32 WHERE id = 3`,
		`DELETE FROM plain WHERE id = 1`, `INSERT INTO plain VALUES (1, 100)`, // deleted and back
		`INSERT INTO plain VALUES (4, 4)`, `DELETE FROM plain WHERE id = 4`, // born and gone
		`UPDATE plain SET id = 20 WHERE id = 2`, // key change
		`UPDATE uniq SET email = 'tmp' WHERE id = 1`, `UPDATE uniq SET email = 'a' WHERE id = 2`, `UPDATE uniq SET email = 'b' WHERE id = 1`,
	} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	waitEqual(t, 20*time.Second, plainS, plainD)
	waitEqual(t, 20*time.Second, uniqS, uniqD)
	if got, want := strings.Join(plainD(), " "), `"1"|"100" "3"|"32" "20"|"2"`; got != want {
		t.Errorf("plain = %s, want %s", got, want)
	}
}
