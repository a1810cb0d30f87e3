package cdc

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
	"github.com/go-sql-driver/mysql"
)

// TestStream_StatementLoggedDMLStops: binlog_format is a session
// variable, and a legacy batch job may set it to STATEMENT (or MIXED,
// where the server picks). Its changes then reach the binlog as SQL text,
// not rows, which banyan cannot apply: the stream must stop before them,
// naming the table and the statement, not read the statement as a
// harmless DDL and move the checkpoint past rows it never applied.
func TestStream_StatementLoggedDMLStops(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE t (id INT PRIMARY KEY, v INT)`, `INSERT INTO t VALUES (1, 1)`)
	mustExec(t, dst, `CREATE TABLE t (id INT PRIMARY KEY, v INT)`)
	done := startRun(t, cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".t", Target: dstName + ".t"}))
	untilStreaming(t, dst)
	mustExec(t, src, `INSERT INTO t VALUES (2, 2)`)
	before := gtidPos(t, src)
	execOnOneConn(t, src, `SET SESSION binlog_format = 'STATEMENT'`, `UPDATE t SET v = 10 WHERE id = 1`)
	mustExec(t, src, `INSERT INTO t VALUES (3, 3)`)
	select {
	case err := <-done:
		if !Stopped(err) || !strings.Contains(err.Error(), "UPDATE t SET v = 10") || !strings.Contains(err.Error(), srcName+".t") {
			t.Fatalf("Run: %v, want a stop naming %s.t and the statement", err, srcName)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("Run goes on past a statement-logged UPDATE of a mapped table; target: %v", dump(t, dst, "t", "id"))
	}
	if got := appliedGTID(t, dst); got != before {
		t.Errorf("checkpoint after the stop: %s, want %s, before the statement", got, before)
	}
}

// TestStream_StatementLoggedLoadDataStops: LOAD DATA run by a session
// with binlog_format STATEMENT reaches the binlog as its own events
// (Begin_load_query with the file's bytes, then Execute_load_query with
// the statement), not as rows: the stream must stop before it, as for
// any change logged as SQL, not pass over it.
func TestStream_StatementLoggedLoadDataStops(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE t (id INT PRIMARY KEY, v INT)`, `INSERT INTO t VALUES (1, 1)`)
	mustExec(t, dst, `CREATE TABLE t (id INT PRIMARY KEY, v INT)`)
	done := startRun(t, cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".t", Target: dstName + ".t"}))
	untilStreaming(t, dst)
	mysql.RegisterReaderHandler("banyan_load", func() io.Reader { return strings.NewReader("2\t2\n3\t3\n") })
	defer mysql.DeregisterReaderHandler("banyan_load")
	execOnOneConn(t, src, `SET SESSION binlog_format = 'STATEMENT'`, `LOAD DATA LOCAL INFILE 'Reader::banyan_load' INTO TABLE t`)
	mustExec(t, src, `INSERT INTO t VALUES (4, 4)`)
	select {
	case err := <-done:
		if !Stopped(err) || !strings.Contains(err.Error(), "LOAD DATA") || !strings.Contains(err.Error(), srcName+".t") {
			t.Fatalf("Run: %v, want a stop naming %s.t and the LOAD DATA", err, srcName)
		}
		t.Logf("Run: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatalf("Run goes on past a statement-logged LOAD DATA into a mapped table; target: %v", dump(t, dst, "t", "id"))
	}
}
