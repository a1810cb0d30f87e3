package cdc

import (
	"context"
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
	ctx := context.Background()

	// A first run copies the table and streams; it stops caught up.
	stop := runPipeline(t, cfg)
	waitFor(t, 30*time.Second, "the copy to finish", func() bool {
		p, err := copyProgress(dst, srcName+".hits")
		return err == nil && p.Done
	})
	waitEqual(t, 20*time.Second,
		func() []string { return dump(t, src, "hits", "id") },
		func() []string { return dump(t, dst, "hits", "id") })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	target := &Target{DB: dst, Pipeline: "default"}
	before, ok, err := target.Checkpoint(ctx)
	if err != nil || !ok || before.Phase != PhaseStream {
		t.Fatalf("checkpoint after the first run: %+v, %v, %v; want one in the stream phase", before, ok, err)
	}

	// Ten new rows on the source, and the killed run's batch that applied
	// them: all sent, the commit not landed yet.
	mustExec(t, src, `INSERT INTO hits (id, v) SELECT seq, seq FROM seq_101_to_110`)
	after, err := (&SourceDB{DB: src, Flavor: "mariadb"}).Position(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old, err := dst.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Rollback()
	if _, err := old.Exec(`INSERT INTO hits (id, v) SELECT seq, seq FROM seq_101_to_110`); err != nil {
		t.Fatal(err)
	}
	applied, _ := json.Marshal(after)
	if _, err := old.Exec(`UPDATE banyan_cdc_checkpoint SET applied_pos = ? WHERE pipeline = 'default'`, string(applied)); err != nil {
		t.Fatal(err)
	}

	stop = runPipeline(t, cfg)
	// One of the next run's statements has waited half a second on the
	// killed run's locks.
	var waiting string
	waitFor(t, 20*time.Second, "the next run to wait on the killed run's locks", func() bool {
		err := dst.QueryRow("SELECT COALESCE(MAX(CONCAT(STATE, ': ', INFO)), '') FROM information_schema.PROCESSLIST" +
			" WHERE ID <> CONNECTION_ID() AND COMMAND = 'Query' AND TIME_MS >= 500 AND DB = DATABASE()").Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		return waiting != ""
	})
	t.Logf("the next run waits: %.120s", waiting)
	if err := old.Commit(); err != nil {
		t.Fatal(err)
	}
	// Later rows still arrive, so the run is known to have gone on.
	mustExec(t, src, `INSERT INTO hits (id, v) VALUES (111, 111)`)
	waitEqual(t, 20*time.Second,
		func() []string { return dump(t, src, "hits", "id") },
		func() []string { return dump(t, dst, "hits", "id") })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkHitsWrittenOnce(t, dst, 11)
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
	stop := runPipeline(t, cfg)
	waitEqual(t, 30*time.Second,
		func() []string { return dump(t, src, "hits", "id") },
		func() []string { return dump(t, dst, "hits", "id") })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	res, err := dst.Exec(`UPDATE banyan_cdc_checkpoint SET applied_pos = REPLACE(REPLACE(applied_pos, '{', '{ '), ':', ': ') WHERE pipeline = 'default' AND phase = 'stream'`)
	if n, _ := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("respelling the checkpoint: %v, %d rows", err, n)
	}
	mustExec(t, src, `INSERT INTO hits (id, v) VALUES (101, 101)`)
	stop = runPipeline(t, cfg)
	waitEqual(t, 20*time.Second,
		func() []string { return dump(t, src, "hits", "id") },
		func() []string { return dump(t, dst, "hits", "id") })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkHitsWrittenOnce(t, dst, 1)
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
	ctx := context.Background()
	stop := runPipeline(t, cfg)
	waitEqual(t, 30*time.Second,
		func() []string { return dump(t, src, "parent", "id") },
		func() []string { return dump(t, dst, "parent", "id") })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	mustExec(t, src,
		`INSERT INTO child VALUES (1, 7)`,
		`DELETE FROM child WHERE id = 1`,
		`DELETE FROM parent WHERE id = 7`)
	after, err := (&SourceDB{DB: src, Flavor: "mariadb"}).Position(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The killed run's batch of those three: child 1 came and went,
	// parent 7 is gone; the commit has not landed yet.
	old, err := dst.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Rollback()
	applied, _ := json.Marshal(after)
	for _, q := range []string{`DELETE FROM parent WHERE id = 7`, `UPDATE banyan_cdc_checkpoint SET applied_pos = '` + string(applied) + `' WHERE pipeline = 'default'`} {
		if _, err := old.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	stop = runPipeline(t, cfg)
	stopped := false
	defer func() {
		// A wait below that failed shows why the run ended.
		if !stopped {
			if err := stop(); err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}()
	var waiting string
	waitFor(t, 20*time.Second, "the next run to wait on the killed run's locks", func() bool {
		err := dst.QueryRow("SELECT COALESCE(MAX(CONCAT(STATE, ': ', INFO)), '') FROM information_schema.PROCESSLIST" +
			" WHERE ID <> CONNECTION_ID() AND COMMAND = 'Query' AND TIME_MS >= 500 AND DB = DATABASE()").Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		return waiting != ""
	})
	t.Logf("the next run waits: %.120s", waiting)
	if err := old.Commit(); err != nil {
		t.Fatal(err)
	}
	// The run goes on: the row after the late batch arrives.
	mustExec(t, src, `INSERT INTO child VALUES (2, 8)`)
	waitEqual(t, 15*time.Second,
		func() []string { return dump(t, src, "child", "id") },
		func() []string { return dump(t, dst, "child", "id") })
	stopped = true
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	waitEqual(t, time.Second,
		func() []string { return dump(t, src, "parent", "id") },
		func() []string { return dump(t, dst, "parent", "id") })
}
