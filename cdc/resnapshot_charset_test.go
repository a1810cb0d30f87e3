package cdc

import (
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
)

// TestPipeline_ResnapshotSourceConnectionCharset: the source's DSN asks
// for a latin1 connection (a legacy latin1 database's DSN often does).
// The pass sends the target's keys as UTF-8 text; read as latin1 'Åsa'
// became 'Ã…sa', which the source does not have, and the row was deleted.
func TestPipeline_ResnapshotSourceConnectionCharset(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE l (k VARCHAR(20) CHARACTER SET latin1 PRIMARY KEY, v INT)`, `INSERT INTO l VALUES ('Åsa', 1), ('Bo', 2)`)
	mustExec(t, dst, `CREATE TABLE l (k VARCHAR(20) CHARACTER SET utf8mb4 PRIMARY KEY, v INT, added_by_new_service VARCHAR(10) NOT NULL DEFAULT '')`,
		`INSERT INTO l VALUES ('Åsa', 0, 'keep me'), ('Bo', 0, 'keep me'), ('Öre', 0, 'gone')`)
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".l", Target: dstName + ".l"})
	cfg.Source.DSN = strings.Replace(cfg.Source.DSN, "collation=utf8mb4_unicode_ci", "charset=latin1", 1)
	if !strings.Contains(cfg.Source.DSN, "charset=latin1") {
		t.Fatalf("DSN %s has no charset=latin1", cfg.Source.DSN)
	}
	var w wrongDeletes
	logs, _ := resnapshot(t, cfg, w.hook)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	})
	waitFor(t, 20*time.Second, "the delete pass", func() bool { return strings.Contains(logs.String(), "resnapshot removed") })
	if got, want := w.String(), "l:Öre"; got != want {
		t.Errorf("the delete pass called absent %q, want %q", got, want)
	}
	untilStreaming(t, dst)
	if got, want := strings.Join(dump(t, dst, "l", "k"), " "), `"Åsa"|"1"|"keep me" "Bo"|"2"|"keep me"`; got != want {
		t.Errorf("target %s, want %s", got, want)
	}
}
