package cdc

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
)

// TestStream_FilePositionFollowsRotation: with file:pos checkpoints, a
// source that rotates its binlog (FLUSH BINARY LOGS, a size limit, a
// restart) and then stays quiet left the checkpoint at the end of the old
// file: `banyan cdc status` said not caught up, with a lag growing for as
// long as the source was quiet, and once the old file was purged (an
// expire_logs_days later) the next run stopped with "purged" and asked
// for a resnapshot, though nothing had been lost. The checkpoint now
// follows the rotation into the new file.
func TestStream_FilePositionFollowsRotation(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE r (id INT PRIMARY KEY, v INT)`, `INSERT INTO r VALUES (1, 1)`)
	mustExec(t, dst, `CREATE TABLE r (id INT PRIMARY KEY, v INT)`)
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".r", Target: dstName + ".r"})
	cfg.Source.Position = "file"
	s := func() []string { return dump(t, src, "r", "id") }
	d := func() []string { return dump(t, dst, "r", "id") }
	stop := runPipeline(t, cfg)
	untilStreaming(t, dst)
	mustExec(t, src, `INSERT INTO r VALUES (2, 2)`)
	waitEqual(t, 20*time.Second, s, d)

	mustExec(t, src, `FLUSH BINARY LOGS`)
	file := masterFile(t, src)
	var st *Status
	deadline := time.Now().Add(15 * time.Second)
	for {
		var err error
		if st, err = ReadStatus(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		if st.CaughtUp || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !st.CaughtUp || st.Applied.File != file {
		t.Errorf("status after the rotation: caught up %v, applied %s, lag %.1fs; want caught up at the source's %s", st.CaughtUp, st.Applied, st.LagSeconds, st.Source)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	purgeBefore(t, src, file)
	mustExec(t, src, `INSERT INTO r VALUES (3, 3)`, `UPDATE r SET v = 10 WHERE id = 1`)
	done := startRun(t, cfg)
	deadline = time.Now().Add(20 * time.Second)
	for !equalRows(s(), d()) {
		select {
		case err := <-done:
			t.Fatalf("Run after the old binlog was purged: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("target %v, want the source's %v", d(), s())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// masterFile is the source's current binlog file.
func masterFile(tb testing.TB, db *sql.DB) string {
	tb.Helper()
	var file string
	if err := db.QueryRow(`SHOW MASTER STATUS`).Scan(&file, new(any), new(any), new(any)); err != nil {
		tb.Fatal(err)
	}
	return file
}

// purgeBefore purges the source's binlogs before file. A binlog dump
// thread still reading an old file keeps it from being purged; it retries
// until the server has let go of them.
func purgeBefore(tb testing.TB, db *sql.DB, file string) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mustExec(tb, db, `PURGE BINARY LOGS TO '`+file+`'`)
		var first string
		if err := db.QueryRow(`SHOW BINARY LOGS`).Scan(&first, new(any)); err != nil {
			tb.Fatal(err)
		}
		if first == file {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("could not purge binlogs before %s (oldest is still %s)", file, first)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStream_FilePositionKeepsGTID: with file:pos checkpoints the
// checkpoint's GTID stayed the one read before the copy, while its
// file:pos moved on: `banyan cdc status` showed a GTID hundreds of
// transactions behind next to a current file:pos, and a switch to GTID
// positions would have replayed from the copy's start. The GTID follows
// the stream too.
func TestStream_FilePositionKeepsGTID(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE r (id INT PRIMARY KEY, v INT)`, `INSERT INTO r VALUES (1, 1)`)
	mustExec(t, dst, `CREATE TABLE r (id INT PRIMARY KEY, v INT)`)
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".r", Target: dstName + ".r"})
	cfg.Source.Position = "file"
	runPipeline(t, cfg)
	untilStreaming(t, dst)
	mustExec(t, src, `INSERT INTO r VALUES (2, 2)`, `UPDATE r SET v = 3 WHERE id = 1`)
	want := gtidPos(t, src)
	waitFor(t, 15*time.Second, "status caught up", func() bool {
		st, err := ReadStatus(context.Background(), cfg)
		return err == nil && st.CaughtUp
	})
	if got := appliedGTID(t, dst); got != want {
		t.Errorf("checkpoint GTID with file:pos checkpoints: %s, want the source's %s", got, want)
	}
}
