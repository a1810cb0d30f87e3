package cdc

import (
	"context"
	"database/sql"
	"encoding/json"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
)

// TestPipeline_StreamBatchCommittedLateByAKilledRun: a run killed just
// after it sent a batch's commit can leave that commit landing after the
// next run read the checkpoint. The next run then streams the same
// transactions again from the older checkpoint; applied, they would fire
// the target's insert triggers a second time. The batch's checkpoint
// update only succeeds from the checkpoint the batch was read after, so
// the next run gives the batch up and resumes from the one that landed.
func TestPipeline_StreamBatchCommittedLateByAKilledRun(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	createOrdersWithAuditedHits(t, src, dst)
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".hits", Target: dstName + ".hits"})
	runUntilEqual(t, cfg, src, dst, "hits")

	// Ten new rows on the source, and the killed run's batch that applied
	// them: all sent, the commit not landed yet.
	mustExec(t, src, `INSERT INTO hits (id, v) SELECT seq, seq FROM seq_101_to_110`)
	old := lateBatch(t, src, dst, `INSERT INTO hits (id, v) SELECT seq, seq FROM seq_101_to_110`)
	stop := runPipeline(t, cfg)
	t.Logf("the next run waits: %.120s", waitingOnLocks(t, dst))
	if err := old.Commit(); err != nil {
		t.Fatal(err)
	}
	// Later rows still arrive, so the run is known to have gone on.
	mustExec(t, src, `INSERT INTO hits (id, v) VALUES (111, 111)`)
	stopWhenEqual(t, stop, src, dst, "hits")
	checkHitsWrittenOnce(t, dst, 11)
}

// TestPipeline_StreamLateCommitBeforeARowTheReplayCannotWrite: the batch
// the next run streams again can meet a row it cannot write on the state
// the late commit left (a child whose parent the late batch deleted). The
// moved checkpoint is found first, so the run resumes from it rather than
// stopping on that row with a checkpoint it no longer holds.
func TestPipeline_StreamLateCommitBeforeARowTheReplayCannotWrite(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src,
		`CREATE TABLE parent (id INT PRIMARY KEY)`,
		`CREATE TABLE child (id INT PRIMARY KEY, parent_id INT NOT NULL)`,
		`INSERT INTO parent VALUES (7), (8)`)
	mustExec(t, dst,
		`CREATE TABLE parent (id INT PRIMARY KEY)`,
		`CREATE TABLE child (id INT PRIMARY KEY, parent_id INT NOT NULL, FOREIGN KEY (parent_id) REFERENCES parent (id))`)
	cfg := cdcConfig(srcName, dstName,
		routes.TableMapping{Source: srcName + ".parent", Target: dstName + ".parent"},
		routes.TableMapping{Source: srcName + ".child", Target: dstName + ".child"})
	runUntilEqual(t, cfg, src, dst, "parent")

	mustExec(t, src,
		`INSERT INTO child VALUES (1, 7)`,
		`DELETE FROM child WHERE id = 1`,
		`DELETE FROM parent WHERE id = 7`)
	// The killed run's batch of those three: child 1 came and went,
	// parent 7 is gone.
	old := lateBatch(t, src, dst, `DELETE FROM parent WHERE id = 7`)
	stop := runPipeline(t, cfg)
	t.Logf("the next run waits: %.120s", waitingOnLocks(t, dst))
	if err := old.Commit(); err != nil {
		t.Fatal(err)
	}
	// The run goes on: the row after the late batch arrives.
	mustExec(t, src, `INSERT INTO child VALUES (2, 8)`)
	stopWhenEqual(t, stop, src, dst, "child")
	waitEqual(t, time.Second,
		func() []string { return dump(t, src, "parent", "id") },
		func() []string { return dump(t, dst, "parent", "id") })
}

// TestPipeline_StreamResumesFromACheckpointWrittenByHand: the batch's
// checkpoint update matches the stored position as the target holds it,
// so one a DBA wrote by hand, in JSON spaced otherwise than banyan's,
// still lets the stream move on (compared with banyan's own spelling it
// would never match, and every batch would be given up).
func TestPipeline_StreamResumesFromACheckpointWrittenByHand(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	createOrdersWithAuditedHits(t, src, dst)
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".hits", Target: dstName + ".hits"})
	runUntilEqual(t, cfg, src, dst, "hits")
	res, err := dst.Exec(`UPDATE banyan_cdc_checkpoint SET applied_pos = REPLACE(REPLACE(applied_pos, '{', '{ '), ':', ': ') WHERE pipeline = 'default' AND phase = 'stream'`)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("respelling the checkpoint changed %d rows; want 1", n)
	}
	mustExec(t, src, `INSERT INTO hits (id, v) VALUES (101, 101)`)
	stopWhenEqual(t, runPipeline(t, cfg), src, dst, "hits")
	checkHitsWrittenOnce(t, dst, 1)
}

// runUntilEqual runs the pipeline until its copy is done (the checkpoint
// in the stream phase) and table is the same on both sides, then stops it.
func runUntilEqual(tb testing.TB, cfg routes.CDCConfig, src, dst *sql.DB, table string) {
	tb.Helper()
	stop := runPipeline(tb, cfg)
	target := &Target{DB: dst, Pipeline: "default"}
	waitFor(tb, 30*time.Second, "the copy to finish", func() bool {
		cp, ok, err := target.Checkpoint(context.Background())
		return err == nil && ok && cp.Phase == PhaseStream
	})
	stopWhenEqual(tb, stop, src, dst, table)
}

// stopWhenEqual waits for table to be the same on both sides, then stops
// the run; a run that ended with an error fails the test with it, also
// when the wait failed first.
func stopWhenEqual(tb testing.TB, stop func() error, src, dst *sql.DB, table string) {
	tb.Helper()
	stopped := false
	defer func() {
		if !stopped {
			if err := stop(); err != nil {
				tb.Errorf("Run: %v", err)
			}
		}
	}()
	waitEqual(tb, 20*time.Second,
		func() []string { return dump(tb, src, table, "id") },
		func() []string { return dump(tb, dst, table, "id") })
	stopped = true
	if err := stop(); err != nil {
		tb.Fatalf("Run: %v", err)
	}
}

// lateBatch is a killed run's last batch on dst: stmt, and the checkpoint
// moved to the source's position now, sent in a transaction whose commit
// has not landed (the caller commits it).
func lateBatch(tb testing.TB, src, dst *sql.DB, stmt string) *sql.Tx {
	tb.Helper()
	ctx := context.Background()
	after, err := (&SourceDB{DB: src, Flavor: "mariadb"}).Position(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	applied, _ := json.Marshal(after)
	old, err := dst.BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { old.Rollback() })
	if _, err := old.Exec(stmt); err != nil {
		tb.Fatal(err)
	}
	res, err := old.Exec(`UPDATE banyan_cdc_checkpoint SET applied_pos = ? WHERE pipeline = 'default' AND phase = 'stream'`, string(applied))
	if err != nil {
		tb.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		tb.Fatalf("the late batch moved %d checkpoints; want the stream phase's one", n)
	}
	return old
}

// waitingOnLocks waits until one of a run's statements on dst's database
// has waited half a second (on the row or metadata locks of a killed
// run's transaction, whichever it meets first), and returns it.
func waitingOnLocks(tb testing.TB, dst *sql.DB) string {
	tb.Helper()
	var waiting string
	waitFor(tb, 20*time.Second, "the next run to wait on the killed run's locks", func() bool {
		err := dst.QueryRow("SELECT COALESCE(MAX(CONCAT(STATE, ': ', INFO)), '') FROM information_schema.PROCESSLIST" +
			" WHERE ID <> CONNECTION_ID() AND COMMAND = 'Query' AND TIME_MS >= 500 AND DB = DATABASE()").Scan(&waiting)
		if err != nil {
			tb.Fatal(err)
		}
		return waiting != ""
	})
	return waiting
}
