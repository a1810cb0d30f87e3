package cdc

import (
	"context"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
)

// A run killed right after it sent the commit of a copy chunk can leave
// that commit still landing on the target when the next run starts. The
// next run must not copy the chunk again: its rows were written once, and
// a second write fires the target's triggers twice (TestPipeline_
// CrashSafety met this once, on a loaded machine). Here the killed run's
// last transaction is held open by hand, the next run starts, and the
// transaction commits once the next run has had time to read the
// progress.
func TestPipeline_CopyChunkCommittedLateByAKilledRun(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	createOrdersWithAuditedHits(t, src, dst)
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".hits", Target: dstName + ".hits"})
	ctx := context.Background()
	target := &Target{DB: dst, Pipeline: "default"}
	if err := target.Init(ctx); err != nil {
		t.Fatal(err)
	}
	start, err := (&SourceDB{DB: src, Flavor: "mariadb"}).Position(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := target.Reset(ctx, start, nil); err != nil {
		t.Fatal(err)
	}
	// The killed run's last transaction: hits' one chunk and the progress
	// saying it is done, all sent, the commit not landed yet.
	old, err := dst.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Rollback()
	if _, err := old.Exec("INSERT INTO hits (id, v) SELECT seq, seq FROM seq_1_to_100"); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Exec(`INSERT INTO banyan_cdc_copy (pipeline, source_table, last_pk, rows_copied, done) VALUES ('default', ?, ?, 100, 1)`,
		srcName+".hits", storedKey([]any{int64(100)})); err != nil {
		t.Fatal(err)
	}

	stop := runPipeline(t, cfg)
	// The next run has got as far as the killed run's locks: one of its
	// statements has waited half a second (row or metadata locks, which
	// ever it meets first; the killed run's connection sleeps).
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
	waitEqual(t, 20*time.Second,
		func() []string { return dump(t, src, "hits", "id") },
		func() []string { return dump(t, dst, "hits", "id") })
	waitFor(t, 20*time.Second, "the copy to finish", func() bool {
		p, err := copyProgress(dst, srcName+".hits")
		return err == nil && p.Done
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkHitsWrittenOnce(t, dst, 0)
}
