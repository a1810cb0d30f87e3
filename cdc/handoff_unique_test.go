package cdc

import (
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
)

// handoffUniqueDDL is a table whose e is unique on both sides.
const handoffUniqueDDL = `CREATE TABLE u (id INT PRIMARY KEY, e VARCHAR(20) NOT NULL, v INT, UNIQUE KEY (e))`

// TestPipeline_HandoffReplayUniqueKey: the stream replays from the
// position read before the copy, onto rows the copy wrote in a later
// state. A unique value that one row held for a while after that position
// and another row took before the copy read it is, during the replay, on
// two target rows at once: row 2 was copied holding 'v', and the replay
// inserts row 1 with 'v' before it replays row 1's delete and row 2's
// update. The source never held 'v' twice; the target must end equal to
// it, not stop for good on a collision the source does not have.
func TestPipeline_HandoffReplayUniqueKey(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, handoffUniqueDDL, `INSERT INTO u VALUES (2, 'b', 2), (3, 'c', 3)`)
	mustExec(t, dst, handoffUniqueDDL)
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".u", Target: dstName + ".u"})

	// A copy that begins at start and reads the table only after the
	// source changed: what a copy of a large table meets.
	resetToSourcePosition(t, src, dst)
	mustExec(t, src,
		`INSERT INTO u VALUES (1, 'v', 1)`,
		`DELETE FROM u WHERE id = 1`,
		`UPDATE u SET e = 'v' WHERE id = 2`,
		// and a swap of two values through a third
		`UPDATE u SET e = 'tmp' WHERE id = 3`,
		`UPDATE u SET e = 'c' WHERE id = 2`,
		`UPDATE u SET e = 'v' WHERE id = 3`)
	at := gtidPos(t, src)
	done := startRun(t, cfg)
	s := func() []string { return dump(t, src, "u", "id") }
	d := func() []string { return dump(t, dst, "u", "id") }
	untilApplied(t, dst, done, at, "u")
	if got, want := d(), s(); !equalRows(got, want) {
		t.Fatalf("target %v, want the source's %v", got, want)
	}
	// And it goes on streaming.
	mustExec(t, src, `INSERT INTO u VALUES (4, 'b', 4)`)
	waitEqual(t, 20*time.Second, s, d)

	// Past the copy's end every target row is in the source's state, so a
	// row met on the key is none of the source's: that still stops the
	// stream, and the row stays.
	mustExec(t, dst, `INSERT INTO u VALUES (99, 'w', 0)`)
	mustExec(t, src, `INSERT INTO u VALUES (5, 'w', 5)`)
	select {
	case err := <-done:
		if !Stopped(err) || !strings.Contains(err.Error(), "(id=5)") {
			t.Fatalf("Run: %v, want a stop naming row id=5", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("Run goes on after the stream's copy window; target %v", d())
	}
	if got := strings.Join(d(), " "); !strings.Contains(got, `"99"|"w"|"0"`) {
		t.Errorf("target = %s, want row 99 kept", got)
	}
}

// TestPipeline_ResnapshotSwappedUniqueValues: while the binlog was lost,
// two rows swapped a unique value. The resnapshot's copy writes row 1 with
// the value the target's stale row 2 still holds: the copy must get past
// it (row 2 is copied next), not stop every run at that chunk.
func TestPipeline_ResnapshotSwappedUniqueValues(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, handoffUniqueDDL, `INSERT INTO u VALUES (1, 'a', 1), (2, 'b', 2)`)
	mustExec(t, dst, handoffUniqueDDL)
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".u", Target: dstName + ".u"})
	cfg.ChunkRows = 1
	s := func() []string { return dump(t, src, "u", "id") }
	d := func() []string { return dump(t, dst, "u", "id") }
	stop := runPipeline(t, cfg)
	waitEqual(t, 20*time.Second, s, d)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, src, `UPDATE u SET e = 'x' WHERE id = 2`, `UPDATE u SET e = 'b' WHERE id = 1`, `UPDATE u SET e = 'a' WHERE id = 2`)
	at := gtidPos(t, src)
	_, done := resnapshot(t, cfg, nil)
	untilApplied(t, dst, done, at, "u")
	if got, want := d(), s(); !equalRows(got, want) {
		t.Fatalf("target %v, want the source's %v", got, want)
	}
}

func equalRows(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

// TestPipeline_HandoffUniqueKeyKeepsChildren: the row the hand-off
// deletes to settle a unique value (settle.go) is referenced by another
// target table with ON DELETE CASCADE. The stream re-creates that row,
// but nothing re-creates rows a cascade removed with it: the delete must
// not cascade.
func TestPipeline_HandoffUniqueKeyKeepsChildren(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, handoffUniqueDDL, `INSERT INTO u VALUES (2, 'b', 2)`,
		`CREATE TABLE o (id INT PRIMARY KEY, u_id INT NOT NULL)`, `INSERT INTO o VALUES (20, 2)`)
	mustExec(t, dst, handoffUniqueDDL,
		`CREATE TABLE o (id INT PRIMARY KEY, u_id INT NOT NULL, FOREIGN KEY (u_id) REFERENCES u (id) ON DELETE CASCADE)`)
	cfg := cdcConfig(srcName, dstName,
		routes.TableMapping{Source: srcName + ".u", Target: dstName + ".u"},
		routes.TableMapping{Source: srcName + ".o", Target: dstName + ".o"})
	resetToSourcePosition(t, src, dst)
	mustExec(t, src, `INSERT INTO u VALUES (1, 'v', 1)`, `DELETE FROM u WHERE id = 1`, `UPDATE u SET e = 'v' WHERE id = 2`)
	at := gtidPos(t, src)
	done := startRun(t, cfg)
	untilApplied(t, dst, done, at, "u", "o")
	checkSameRows(t, src, dst, "u", "o")
}
