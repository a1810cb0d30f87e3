package cdc

import (
	"strings"
	"testing"

	"github.com/banyanhq/banyan/routes"
)

// TestPipeline_ResnapshotDecimalKeyBeyondSource: the target's DECIMAL key
// is wider than the source's (more digits, more scale), and holds rows no
// source row has: 1000.00 and 12.345. Cast to the source's DECIMAL(4,2)
// they became 99.99 and 12.35 (clipped, rounded), which the source has,
// so they were kept for good; a value the target holds must be compared
// as it is. A DECIMAL(20,0) target of a BIGINT source is cast too
// (MySQL documents text compared with an integer as doubles, where
// 9007199254740993 is 9007199254740992; MariaDB 10.11 compares it
// exactly, so that case passes here without the cast).
func TestPipeline_ResnapshotDecimalKeyBeyondSource(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE p (price DECIMAL(4,2) PRIMARY KEY, v INT)`, `INSERT INTO p VALUES (99.99, 1), (12.35, 2)`,
		`CREATE TABLE n (id BIGINT PRIMARY KEY, v INT)`, `INSERT INTO n VALUES (9007199254740992, 1)`)
	mustExec(t, dst, `CREATE TABLE p (price DECIMAL(8,3) PRIMARY KEY, v INT)`,
		`INSERT INTO p VALUES (99.99, 0), (1000, 0), (12.35, 0), (12.345, 0)`,
		`CREATE TABLE n (id DECIMAL(20,0) PRIMARY KEY, v INT)`, `INSERT INTO n VALUES (9007199254740992, 0), (9007199254740993, 0)`)
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".p", Target: dstName + ".p"},
		routes.TableMapping{Source: srcName + ".n", Target: dstName + ".n"})
	var w wrongDeletes
	resnapshot(t, cfg, w.hook)
	untilStreaming(t, dst)
	if got, want := w.String(), "n:9007199254740993 p:12.345 p:1000.000"; got != want {
		t.Errorf("the delete pass called absent %q, want %q", got, want)
	}
	if got, want := strings.Join(dump(t, dst, "p", "price"), " "), `"12.350"|"2" "99.990"|"1"`; got != want {
		t.Errorf("target %s, want %s", got, want)
	}
}
