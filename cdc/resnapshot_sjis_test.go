package cdc

import (
	"strings"
	"testing"

	"github.com/banyanhq/banyan/routes"
)

// TestPipeline_ResnapshotSjisBackslashKey: in MariaDB's sjis, 0x5C and
// 0x815F both read as U+005C '\', which converts back to 0x815F. A legacy
// sjis key 'a\' (0x615C) is 'a\' in the target, and asked for it the
// source compared 0x61815F with 0x615C, called it absent and the row was
// deleted. Such a table is copied but not pruned, with a warning.
func TestPipeline_ResnapshotSjisBackslashKey(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE s (k VARCHAR(10) CHARACTER SET sjis PRIMARY KEY, v INT)`, `INSERT INTO s VALUES (_sjis X'615C', 1)`)
	mustExec(t, dst, `CREATE TABLE s (k VARCHAR(10) CHARACTER SET utf8mb4 PRIMARY KEY, v INT, added_by_new_service VARCHAR(10) NOT NULL DEFAULT '')`,
		`INSERT INTO s VALUES ('a\\', 0, 'keep me')`)
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".s", Target: dstName + ".s"})
	var w wrongDeletes
	logs, _ := resnapshot(t, cfg, w.hook)
	untilStreaming(t, dst)
	if got := w.String(); got != "" {
		t.Errorf("the delete pass called absent keys the source holds: %s", got)
	}
	if got, want := strings.Join(dump(t, dst, "s", "k"), " "), `"a\\"|"1"|"keep me"`; got != want {
		t.Errorf("target %s, want %s", got, want)
	}
	if !strings.Contains(logs.String(), "sjis") || !strings.Contains(logs.String(), "banyan check --fix-sql") {
		t.Errorf("the log does not say why %s.s was not pruned and what to run:\n%s", srcName, logs)
	}
}
