package cdc

import (
	"strings"
	"testing"

	"github.com/banyanhq/banyan/routes"
)

// TestPipeline_ResnapshotZeroInDateKey: a legacy DATETIME key may hold a
// date with a zero month or day ('2019-05-00 00:00:00', a month bucket)
// written before the source's sql_mode got NO_ZERO_IN_DATE (MySQL 8 has it
// by default). With it in the source session, CAST('2019-05-00 …' AS
// DATETIME(6)) is NULL, so the pass called such a key absent and deleted
// a row the source holds.
func TestPipeline_ResnapshotZeroInDateKey(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `SET SESSION sql_mode = ''`, `CREATE TABLE m (bucket DATETIME PRIMARY KEY, v INT)`,
		`INSERT INTO m VALUES ('2019-05-00 00:00:00', 1), ('2019-06-01 00:00:00', 2)`)
	mustExec(t, dst, `SET SESSION sql_mode = ''`, `CREATE TABLE m (bucket DATETIME PRIMARY KEY, v INT, added_by_new_service VARCHAR(10) NOT NULL DEFAULT '')`,
		`INSERT INTO m VALUES ('2019-05-00 00:00:00', 0, 'keep me'), ('2019-06-01 00:00:00', 0, 'keep me'), ('2019-07-00 00:00:00', 0, 'gone')`)
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".m", Target: dstName + ".m"})
	cfg.Source.DSN += "&sql_mode=%27NO_ZERO_IN_DATE%2CNO_ZERO_DATE%27"
	var w wrongDeletes
	resnapshot(t, cfg, w.hook)
	untilStreaming(t, dst)
	if got, want := w.String(), "m:2019-07-00 00:00:00"; got != want {
		t.Errorf("the delete pass called absent %q, want %q", got, want)
	}
	if got, want := strings.Join(dump(t, dst, "m", "bucket"), " "), `"2019-05-00 00:00:00"|"1"|"keep me" "2019-06-01 00:00:00"|"2"|"keep me"`; got != want {
		t.Errorf("target %s, want %s", got, want)
	}
}
