package cdc

import (
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
)

// TestPipeline_ResnapshotSelfReferencingKey: the target's categories
// reference their parent in the same table (a foreign key, ON DELETE
// RESTRICT). The source lost category 2 and its child 3; deleting both in
// one statement fails on 3 still referencing 2 (InnoDB checks each row as
// it goes), and every run stopped there. The pass must not stop the run
// for good: it leaves that table's rows, says so and names what to run,
// and the copy and the stream go on.
func TestPipeline_ResnapshotSelfReferencingKey(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE cat (id INT PRIMARY KEY, parent INT NULL)`, `INSERT INTO cat VALUES (1, NULL)`)
	mustExec(t, dst, `CREATE TABLE cat (id INT PRIMARY KEY, parent INT NULL, FOREIGN KEY (parent) REFERENCES cat (id))`,
		`INSERT INTO cat VALUES (1, NULL), (2, NULL), (3, 2)`)
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".cat", Target: dstName + ".cat"})
	logs, done := resnapshot(t, cfg, nil)
	deadline := time.After(15 * time.Second)
	for {
		cp, ok, err := (&Target{DB: dst, Pipeline: "default"}).Checkpoint(t.Context())
		if err == nil && ok && cp.Phase == PhaseStream {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Run ended: %v", err)
		case <-deadline:
			t.Fatalf("the resnapshot did not reach streaming; log:\n%s", logs)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if !strings.Contains(logs.String(), "banyan check --fix-sql") || !strings.Contains(logs.String(), "1451") {
		t.Errorf("the log does not say why the table was not pruned and what to run:\n%s", logs)
	}
	mustExec(t, src, `INSERT INTO cat VALUES (4, 1)`)
	waitFor(t, 10*time.Second, "the stream", func() bool {
		return strings.Contains(strings.Join(dump(t, dst, "cat", "id"), " "), `"4"|"1"`)
	})
}
