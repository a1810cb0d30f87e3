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
		if err == nil || !strings.Contains(err.Error(), "no PRIMARY or UNIQUE key on (id) with NOT NULL columns") {
			t.Fatalf("Run: %v, want a refusal naming the missing key", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("Run started on a target without a key; target: %v", dump(t, dst, "t", "id"))
	}
	if got := dump(t, dst, "t", "id"); len(got) != 0 {
		t.Errorf("target after the refusal: %v, want it untouched", got)
	}

	// A UNIQUE key on a nullable column does not do: a NULL key gets in,
	// and upsert's guard needs the key NOT NULL.
	mustExec(t, dst, `ALTER TABLE t MODIFY id INT NULL, ADD UNIQUE KEY (id)`)
	select {
	case err := <-startRun(t, cfg):
		if err == nil || !strings.Contains(err.Error(), "no PRIMARY or UNIQUE key on (id) with NOT NULL columns") {
			t.Fatalf("Run with a nullable UNIQUE key: %v, want a refusal", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run started on a target whose only key is nullable")
	}
	mustExec(t, dst, `ALTER TABLE t MODIFY id INT NOT NULL`)
	runPipeline(t, cfg)
	s := func() []string { return dump(t, src, "t", "id") }
	d := func() []string { return dump(t, dst, "t", "id") }
	waitEqual(t, 20*time.Second, s, d)
	mustExec(t, src, `UPDATE t SET v = 2 WHERE id = 1`, `UPDATE t SET v = 3 WHERE id = 1`)
	waitEqual(t, 10*time.Second, s, d)
}

// TestStream_UniqueKeyCollisionStops: the target has a unique key the
// source does not enforce. A new row that collides with another target
// row on it must stop the stream, not overwrite that row and vanish (the
// upsert's ON DUPLICATE KEY UPDATE did exactly that, silently).
func TestStream_UniqueKeyCollisionStops(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE t (id INT PRIMARY KEY, email VARCHAR(40), v INT)`, `INSERT INTO t VALUES (1, 'a@x', 1)`)
	mustExec(t, dst, `CREATE TABLE t (id INT PRIMARY KEY, email VARCHAR(40), v INT, UNIQUE KEY (email))`)
	done := startRun(t, cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".t", Target: dstName + ".t"}))
	untilStreaming(t, dst)
	mustExec(t, src, `INSERT INTO t VALUES (2, 'a@x', 2)`)
	select {
	case err := <-done:
		if !Stopped(err) || !strings.Contains(err.Error(), "collides with another row") || !strings.Contains(err.Error(), "(id=2)") {
			t.Fatalf("Run: %v, want a stop naming row id=2 and the collision", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("Run goes on; target: %v", dump(t, dst, "t", "id"))
	}
	if got := strings.Join(dump(t, dst, "t", "id"), " "); got != `"1"|"a@x"|"1"` {
		t.Errorf("target = %s, want row 1 untouched and no row 2", got)
	}
}
