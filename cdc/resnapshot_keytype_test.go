package cdc

import (
	"strings"
	"testing"

	"github.com/banyanhq/banyan/routes"
)

// TestPipeline_ResnapshotKeyTypeDiffersOnTarget: the mapping keeps a key
// whose target column has another type than the source's. The copy writes
// the source's key into the target's type (a legacy CHAR id '007' becomes
// INT 7, a VARBINARY(4) id is zero padded by a BINARY(4) target column),
// so the value the target holds is not the one the source holds, and
// asking the source for it says "absent" for a row it has: the pass must
// not delete those rows (their target-only column would be lost, and any
// row referencing them).
func TestPipeline_ResnapshotKeyTypeDiffersOnTarget(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src,
		`CREATE TABLE c (code CHAR(3) PRIMARY KEY, v INT)`, `INSERT INTO c VALUES ('007', 1)`,
		`CREATE TABLE b (id VARBINARY(4) PRIMARY KEY, v INT)`, `INSERT INTO b VALUES (X'61', 1)`)
	mustExec(t, dst,
		`CREATE TABLE c (code INT PRIMARY KEY, v INT, added_by_new_service VARCHAR(10) NOT NULL DEFAULT '')`, `INSERT INTO c VALUES (7, 0, 'keep me')`,
		`CREATE TABLE b (id BINARY(4) PRIMARY KEY, v INT, added_by_new_service VARCHAR(10) NOT NULL DEFAULT '')`, `INSERT INTO b VALUES (X'61', 0, 'keep me')`)
	cfg := cdcConfig(srcName, dstName,
		routes.TableMapping{Source: srcName + ".c", Target: dstName + ".c"},
		routes.TableMapping{Source: srcName + ".b", Target: dstName + ".b"})
	var w wrongDeletes
	logs, _ := resnapshot(t, cfg, w.hook)
	untilStreaming(t, dst)
	for _, want := range []string{"key column code is char(3) on the source but int(11) on the target", "key column id is varbinary(4) on the source but binary(4) on the target"} {
		if !strings.Contains(logs.String(), want) || !strings.Contains(logs.String(), "banyan check --fix-sql") {
			t.Errorf("the log does not say %q and what to run instead:\n%s", want, logs)
		}
	}
	if got := w.String(); got != "" {
		t.Errorf("the delete pass called absent keys the source holds: %s", got)
	}
	for _, table := range []string{"c", "b"} {
		if got, want := strings.Join(dump(t, dst, "(SELECT v, added_by_new_service FROM "+table+") AS x", "v"), " "), `"1"|"keep me"`; got != want {
			t.Errorf("target %s: %s, want %s (the row kept, updated by the copy)", table, got, want)
		}
	}
}
