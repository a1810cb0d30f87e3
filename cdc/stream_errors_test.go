package cdc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
	driver "github.com/go-sql-driver/mysql"
)

// TestPermanent: the errors the same row will always repeat stop the
// pipeline; those a later try can get past are retried.
func TestPermanent(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"incorrect string value", &driver.MySQLError{Number: 1366}, true},
		{"out of range", &driver.MySQLError{Number: 1264}, true},
		{"data too long", &driver.MySQLError{Number: 1406}, true},
		{"null into not null", &driver.MySQLError{Number: 1048}, true},
		{"duplicate on a unique key", fmt.Errorf("apply to x.t: %w", &driver.MySQLError{Number: 1062}), true},
		{"unmappable row", fmt.Errorf("x.t: %w", &RowError{Key: "(id=1)", Err: errors.New("no label")}), true},
		{"deadlock", &driver.MySQLError{Number: 1213}, false},
		{"lock wait timeout", fmt.Errorf("apply to x.t: %w", &driver.MySQLError{Number: 1205}), false},
		{"read-only", &driver.MySQLError{Number: 1290}, false},
		{"read-only mode", &driver.MySQLError{Number: 1836}, false},
		{"connection killed", &driver.MySQLError{Number: 1927}, false},
		{"server gone", fmt.Errorf("apply: %w", driver.ErrInvalidConn), false},
		{"connection lost", io.ErrUnexpectedEOF, false},
	}
	for _, tt := range tests {
		if got := permanent(tt.err); got != tt.want {
			t.Errorf("permanent(%s: %v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// stopped waits for Run's result, failing the test if Run goes on.
func stopped(tb testing.TB, done <-chan error, d time.Duration, what string) error {
	tb.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		tb.Fatalf("Run neither applied nor reported %s after %v (retried forever)", what, d)
		return nil
	}
}

// appliedGTID is the GTID set of the checkpoint stored in the target.
func appliedGTID(tb testing.TB, dst *sql.DB) string {
	tb.Helper()
	cp, ok, err := (&Target{DB: dst, Pipeline: "default"}).Checkpoint(context.Background())
	if err != nil || !ok {
		tb.Fatalf("checkpoint: %v, %v", ok, err)
	}
	return cp.Applied.GTID
}

// TestStream_UnmappableRowStops: a streamed row the mapping cannot convert
// stops Run with an error naming the table, the row's key and the cause,
// as the copy does; the checkpoint stays before it, so once the operator
// has fixed the mapping the next run applies it and everything after.
func TestStream_UnmappableRowStops(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE t (id INT PRIMARY KEY, st TINYINT)`, `INSERT INTO t VALUES (1, 1)`)
	mustExec(t, dst, `CREATE TABLE t (id INT PRIMARY KEY, st VARCHAR(20))`)
	mapping := routes.TableMapping{Source: srcName + ".t", Target: dstName + ".t", Convert: map[string]string{"st": "enum:1=paid,2=shipped"}}
	done := startRun(t, cdcConfig(srcName, dstName, mapping))
	untilStreaming(t, dst)
	mustExec(t, src, `INSERT INTO t VALUES (2, 2)`)
	waitFor(t, 10*time.Second, "row 2", func() bool { return len(dump(t, dst, "t", "id")) == 2 })
	before := gtidPos(t, src)
	mustExec(t, src, `INSERT INTO t VALUES (3, 7)`, `INSERT INTO t VALUES (4, 2)`)

	err := stopped(t, done, 15*time.Second, "the unmappable row")
	if err == nil {
		t.Fatal("Run returned nil, want an error about row 3")
	}
	t.Logf("Run: %v", err)
	for _, want := range []string{srcName + ".t", "(id=3)", `no label for "7"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %q:\n%v", want, err)
		}
	}
	if got, want := appliedGTID(t, dst), before; got != want {
		t.Errorf("checkpoint after the stop: %s, want %s (before the unmappable row)", got, want)
	}

	mapping.Convert = map[string]string{"st": "enum:1=paid,2=shipped,7=lost"}
	startRun(t, cdcConfig(srcName, dstName, mapping))
	want := []string{`"1"|"paid"`, `"2"|"shipped"`, `"3"|"lost"`, `"4"|"shipped"`}
	waitEqual(t, 10*time.Second, func() []string { return want }, func() []string { return dump(t, dst, "t", "id") })
}

// TestStream_TargetRefusalStops: a streamed row the target refuses for
// good (strict mode's checks, a unique key the source does not have) stops
// Run with an error naming the table, the row's key and the server's
// error, instead of being retried forever while the lag grows; the
// checkpoint stays before it, so once the operator has fixed the target
// the next run applies it and everything after.
func TestStream_TargetRefusalStops(t *testing.T) {
	tests := []struct {
		name     string
		src, dst string // CREATE TABLE t (id INT PRIMARY KEY, v …) on each side
		bad      string // the change to row 2 the target refuses, with others
		code     string
		fix      string // on the target
	}{
		{"data too long", "VARCHAR(20)", "VARCHAR(3)", "INSERT INTO t VALUES (3, 'ok'), (2, 'abcdef')", "Error 1406", "ALTER TABLE t MODIFY v VARCHAR(20)"},
		{"out of range", "INT", "TINYINT", "INSERT INTO t VALUES (3, 30), (2, 1000)", "Error 1264", "ALTER TABLE t MODIFY v INT"},
		{"incorrect string value", "VARCHAR(20) CHARACTER SET utf8mb4", "VARCHAR(20) CHARACTER SET latin1", "INSERT INTO t VALUES (3, 'ok'), (2, 'caf\u00e9 \U0001F600')", "Error 1366", "ALTER TABLE t MODIFY v VARCHAR(20) CHARACTER SET utf8mb4"},
		{"null into not null", "INT NULL", "INT NOT NULL", "INSERT INTO t VALUES (3, 30), (2, NULL)", "Error 1048", "ALTER TABLE t MODIFY v INT NULL"},
		// Rows 2 and 3 exist: the upsert's update of row 2 collides on uv.
		{"duplicate on another unique key", "INT", "INT, UNIQUE KEY uv (v)", "UPDATE t SET v = IF(id = 2, 10, 30) WHERE id IN (2, 3) ORDER BY id DESC", "Error 1062", "ALTER TABLE t DROP KEY uv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srcName, dstName, src, dst := dbs(t)
			mustExec(t, src, `CREATE TABLE t (id INT PRIMARY KEY, v `+tt.src+`)`, `INSERT INTO t VALUES (1, 10)`)
			if strings.HasPrefix(tt.bad, "UPDATE") {
				mustExec(t, src, `INSERT INTO t VALUES (2, 20), (3, 3)`)
			}
			mustExec(t, dst, `CREATE TABLE t (id INT PRIMARY KEY, v `+tt.dst+`)`)
			cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".t", Target: dstName + ".t"})
			done := startRun(t, cfg)
			untilStreaming(t, dst)
			s := func() []string { return dump(t, src, "t", "id") }
			d := func() []string { return dump(t, dst, "t", "id") }
			waitEqual(t, 10*time.Second, s, d)
			before := gtidPos(t, src)
			mustExec(t, src, tt.bad, `INSERT INTO t VALUES (4, 40)`)

			err := stopped(t, done, 15*time.Second, "the refused row")
			if err == nil {
				t.Fatal("Run returned nil, want an error about row 2")
			}
			t.Logf("Run: %v", err)
			for _, want := range []string{srcName + ".t", "(id=2)", tt.code} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the error does not name %q:\n%v", want, err)
				}
			}
			if got, want := appliedGTID(t, dst), before; got != want {
				t.Errorf("checkpoint after the stop: %s, want %s (before the refused row)", got, want)
			}

			mustExec(t, dst, tt.fix)
			startRun(t, cfg)
			waitEqual(t, 10*time.Second, s, d)
		})
	}
}

// TestStream_TransientTargetErrorRetried: a lock wait timeout on the
// target (another session holds the row) is retried until it clears; it
// does not stop Run.
func TestStream_TransientTargetErrorRetried(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE t (id INT PRIMARY KEY, v INT)`, `INSERT INTO t VALUES (1, 1)`)
	mustExec(t, dst, `CREATE TABLE t (id INT PRIMARY KEY, v INT)`)
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".t", Target: dstName + ".t"})
	cfg.Target.DSN += "&innodb_lock_wait_timeout=1"
	done := startRun(t, cfg)
	untilStreaming(t, dst)
	s := func() []string { return dump(t, src, "t", "id") }
	d := func() []string { return dump(t, dst, "t", "id") }
	waitEqual(t, 10*time.Second, s, d)

	lock, err := dst.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback()
	if _, err := lock.Exec(`SELECT * FROM t WHERE id = 1 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	mustExec(t, src, `UPDATE t SET v = 2 WHERE id = 1`)
	select {
	case err := <-done:
		t.Fatalf("Run stopped on a lock wait timeout: %v", err)
	case <-time.After(4 * time.Second): // a few 1 s timeouts and retries
	}
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	waitEqual(t, 20*time.Second, s, d)
}

// TestStream_ConvertedIntegerColumns: converters on integer columns keep
// working once the binlog, not the copy, delivers the values: the binlog
// decodes INT as int32, SMALLINT UNSIGNED as uint16 and BIGINT UNSIGNED as
// uint64, and every such row used to fail.
func TestStream_ConvertedIntegerColumns(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE t (id INT PRIMARY KEY, yuan INT, flag SMALLINT UNSIGNED, big BIGINT UNSIGNED)`, `INSERT INTO t VALUES (1, 12, 1, 0)`)
	mustExec(t, dst, `CREATE TABLE t (id INT PRIMARY KEY, yuan BIGINT, flag BOOL, big BOOL)`)
	done := startRun(t, cdcConfig(srcName, dstName, routes.TableMapping{
		Source: srcName + ".t", Target: dstName + ".t",
		Convert: map[string]string{"yuan": "yuan_to_cents", "flag": "tinyint_to_bool", "big": "tinyint_to_bool"},
	}))
	untilStreaming(t, dst)
	mustExec(t, src, `INSERT INTO t VALUES (2, -3, 0, 18446744073709551615)`, `UPDATE t SET yuan = 13 WHERE id = 1`)
	want := strings.Join([]string{`"1"|"1300"|"1"|"0"`, `"2"|"-300"|"0"|"1"`}, " ")
	waitFor(t, 10*time.Second, "the streamed rows "+want, func() bool {
		select {
		case err := <-done:
			t.Fatalf("Run stopped: %v", err)
		default:
		}
		return strings.Join(dump(t, dst, "t", "id"), " ") == want
	})
}

// openSpillFiles counts this process's open files in dir: spill files,
// unlinked, show as "dir/banyan-cdc-tx-… (deleted)".
func openSpillFiles(tb testing.TB, dir string) int {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Skipf("no /proc/self/fd here: %v", err)
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(target, dir+"/banyan-cdc-tx-") {
			n++
		}
	}
	return n
}

// TestStream_SpillFilesFreedWhenRunStops: when a run stops (here at a row
// the target refuses), the spill files of the transactions it had read
// but not applied are closed at once, those in the batch, those queued
// behind it and one the stream was handing over, and with them their disk
// space. Left to the garbage collector, they held the space while the
// next run spilled the same transactions again.
func TestStream_SpillFilesFreedWhenRunStops(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))`)
	mustExec(t, dst, `CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(3))`)
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".t", Target: dstName + ".t"})
	cfg.SpillRows, cfg.SpillDir, cfg.BatchRows = 1, t.TempDir(), 2
	done := startRun(t, cfg)
	untilStreaming(t, dst)
	stmts := []string{`INSERT INTO t VALUES (1, 'ok'), (2, 'far too long')`}
	for i := range 30 {
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO t VALUES (%d, 'a'), (%d, 'b'), (%d, 'c')`, 10+3*i, 11+3*i, 12+3*i))
	}
	mustExec(t, src, stmts...)
	if err := stopped(t, done, 15*time.Second, "the refused row"); err == nil || !strings.Contains(err.Error(), "(id=2)") {
		t.Fatalf("Run: %v, want it stopped at row 2", err)
	}
	if n := openSpillFiles(t, cfg.SpillDir); n != 0 {
		t.Errorf("%d spill files still open after Run returned, want none", n)
	}
}
