package cdc

import (
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
)

// TestPipeline_RefusesTargetWithoutKey: the upserts and deletes by key
// need a PRIMARY or UNIQUE key on the target's mapped key columns; without
// one every update added a row (a review found three rows for one). Run
// refuses to start and says what to add; with a UNIQUE key it runs.
func TestPipeline_RefusesTargetWithoutKey(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE t (id INT PRIMARY KEY, v INT)`, `INSERT INTO t VALUES (1, 1)`)
	mustExec(t, dst, `CREATE TABLE t (id INT NOT NULL, v INT, KEY (id))`)
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".t", Target: dstName + ".t"})
	select {
	case err := <-startRun(t, cfg):
		if err == nil || !strings.Contains(err.Error(), "no PRIMARY or UNIQUE key on (id)") {
			t.Fatalf("Run: %v, want a refusal naming the missing key", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("Run started on a target without a key; target: %v", dump(t, dst, "t", "id"))
	}
	if got := dump(t, dst, "t", "id"); len(got) != 0 {
		t.Errorf("target after the refusal: %v, want it untouched", got)
	}

	mustExec(t, dst, `ALTER TABLE t ADD UNIQUE KEY (id)`)
	runPipeline(t, cfg)
	s := func() []string { return dump(t, src, "t", "id") }
	d := func() []string { return dump(t, dst, "t", "id") }
	waitEqual(t, 20*time.Second, s, d)
	mustExec(t, src, `UPDATE t SET v = 2 WHERE id = 1`, `UPDATE t SET v = 3 WHERE id = 1`)
	waitEqual(t, 10*time.Second, s, d)
}
