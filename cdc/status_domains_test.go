package cdc

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/internal/testdb"
	"github.com/banyanhq/banyan/routes"
)

// TestReadStatus_CaughtUpAcrossDomains: a MariaDB source whose writes
// come in several GTID domains (multi-source replication into it, or
// gtid_domain_id set by sessions). Once the stream has applied every
// transaction, `banyan cdc status` must say caught up, whatever order the
// server and banyan list the domains in.
func TestReadStatus_CaughtUpAcrossDomains(t *testing.T) {
	// A source of its own: the GTID domains a server has seen stay in its
	// position for good, and the other tests compare positions as text.
	_, dstName, _, dst := dbs(t)
	own, err := testdb.Start(context.Background(), testdb.Options{Name: "domains"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { own.Stop() })
	srcName := testdb.TempDatabase(t, own)
	src, err := OpenDB(own.DSN(srcName))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	mustExec(t, src, `CREATE TABLE r (id INT PRIMARY KEY, v INT)`)
	mustExec(t, dst, `CREATE TABLE r (id INT PRIMARY KEY, v INT)`)
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".r", Target: dstName + ".r"})
	cfg.Source.DSN = own.DSN(srcName)
	runPipeline(t, cfg)
	untilStreaming(t, dst)
	var stmts []string
	for i, domain := range []int{10, 2, 0} {
		stmts = append(stmts, fmt.Sprintf("SET SESSION gtid_domain_id = %d", domain), fmt.Sprintf("INSERT INTO r VALUES (%d, %d)", i, domain))
	}
	execOnOneConn(t, src, stmts...)
	waitEqual(t, 15*time.Second, func() []string { return dump(t, src, "r", "id") }, func() []string { return dump(t, dst, "r", "id") })
	time.Sleep(time.Second)
	st, err := ReadStatus(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !st.CaughtUp {
		t.Errorf("status: not caught up, lag %.1fs; applied %s, source %s", st.LagSeconds, st.Applied, st.Source)
	}
}

// TestReadStatus_LagDuringCopy: while the initial copy runs (hours, for a
// large table) nothing is streamed yet, and `banyan cdc status` showed
// "lag: 0.0s" beside "not caught up". The target can miss every change
// since the copy began: that is the lag to show.
func TestReadStatus_LagDuringCopy(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE r (id INT PRIMARY KEY, v INT)`)
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".r", Target: dstName + ".r"})
	resetToSourcePosition(t, src, dst)
	mustExec(t, src, `INSERT INTO r VALUES (1, 1)`)
	time.Sleep(2 * time.Second)
	st, err := ReadStatus(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.CaughtUp || st.LagSeconds < 2 {
		t.Errorf("status two seconds into the copy: caught up %v, lag %.1fs; want not caught up, lag at least 2s", st.CaughtUp, st.LagSeconds)
	}
}

// TestReadStatus_CheckpointTableOfEarlierVersion: `banyan cdc status`
// run after an upgrade, before the new version's first `cdc run`, reads a
// checkpoint table that lacks the columns added since; it must still show
// the checkpoint, and the next run keeps it and resumes from it.
func TestReadStatus_CheckpointTableOfEarlierVersion(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE r (id INT PRIMARY KEY, v INT)`, `INSERT INTO r VALUES (1, 1)`)
	mustExec(t, dst, `CREATE TABLE r (id INT PRIMARY KEY, v INT)`, `INSERT INTO r VALUES (1, 1)`)
	pos := gtidPos(t, src)
	mustExec(t, dst, `CREATE TABLE banyan_cdc_checkpoint (
		pipeline    VARCHAR(64) NOT NULL PRIMARY KEY,
		phase       VARCHAR(16) NOT NULL,
		start_pos   TEXT NOT NULL,
		applied_pos TEXT NOT NULL,
		source_ts   BIGINT NOT NULL DEFAULT 0,
		updated_at  DATETIME(6) NOT NULL
	) ENGINE=InnoDB`,
		`INSERT INTO banyan_cdc_checkpoint VALUES ('default', 'stream', '{"gtid":"`+pos+`"}', '{"gtid":"`+pos+`"}', 0, NOW(6))`)
	// The other bookkeeping tables as they are now.
	for _, stmt := range strings.Split(targetSchema, ";") {
		mustExec(t, dst, stmt)
	}
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".r", Target: dstName + ".r"})
	st, err := ReadStatus(context.Background(), cfg)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if st.Phase != PhaseStream || st.Applied.GTID != pos {
		t.Errorf("status: phase %s, applied %s; want stream at %s", st.Phase, st.Applied, pos)
	}
	mustExec(t, src, `INSERT INTO r VALUES (2, 2)`)
	runPipeline(t, cfg)
	waitEqual(t, 20*time.Second, func() []string { return dump(t, src, "r", "id") }, func() []string { return dump(t, dst, "r", "id") })
}
