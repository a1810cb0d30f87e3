package cdc

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
)

// A run killed right after it sent the commit of a copy chunk can leave
// that commit still landing on the target when the next run starts. The
// next run must not copy the chunk again: its rows were written once, and
// a second write fires the target's triggers twice (most likely what made
// TestPipeline_CrashSafety fail once, on a loaded machine). Here the
// killed run's last transaction is held open by hand, the next run starts
// and reaches the killed run's locks, and then the transaction commits.
func TestPipeline_CopyChunkCommittedLateByAKilledRun(t *testing.T) {
	for _, c := range []struct {
		name              string
		chunk, done, held int // chunk size, rows committed before, rows in the late chunk
	}{
		{"the last chunk", 500, 0, 100},
		{"a chunk in the middle", 40, 40, 40},
	} {
		t.Run(c.name, func(t *testing.T) {
			srcName, dstName, src, dst := dbs(t)
			createOrdersWithAuditedHits(t, src, dst)
			cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".hits", Target: dstName + ".hits"})
			cfg.ChunkRows = c.chunk
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
			// chunk writes hits rows from+1..to and the progress after them,
			// as CopyChunk does.
			chunk := func(exec func(string, ...any) (sql.Result, error), from, to int) {
				t.Helper()
				if _, err := exec(fmt.Sprintf("INSERT INTO hits (id, v) SELECT seq, seq FROM seq_%d_to_%d", from+1, to)); err != nil {
					t.Fatal(err)
				}
				if _, err := exec(`INSERT INTO banyan_cdc_copy (pipeline, source_table, last_pk, rows_copied, done) VALUES ('default', ?, ?, ?, ?)
					ON DUPLICATE KEY UPDATE last_pk=VALUES(last_pk), rows_copied=VALUES(rows_copied), done=VALUES(done)`,
					srcName+".hits", storedKey([]any{int64(to)}), to, to-from < c.chunk); err != nil {
					t.Fatal(err)
				}
			}
			if c.done > 0 {
				chunk(dst.Exec, 0, c.done)
			}
			// The killed run's last transaction: all sent, the commit not
			// landed yet.
			old, err := dst.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer old.Rollback()
			chunk(old.Exec, c.done, c.done+c.held)

			stop := runPipeline(t, cfg)
			t.Logf("the next run waits: %.120s", waitingOnLocks(t, dst))
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
			if p, err := copyProgress(dst, srcName+".hits"); err != nil || p.Rows != 100 {
				t.Errorf("hits' copy progress: %+v, %v; want 100 rows", p, err)
			}
		})
	}
}
