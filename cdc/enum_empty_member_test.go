package cdc

import (
	"testing"

	"github.com/banyanhq/banyan/routes"
)

// TestPipeline_CopyEnumKeyWithEmptyMember: an ENUM that lists the empty
// string as a member (as in ENUM("", "Y", "N"), common in legacy schemas)
// stores it as that member's number, 1, not as the error value 0. A page
// ending on an empty key was bounded by 0, so the next page began again
// at the first empty-keyed row: with two or more of them per page the
// copy read the same page for ever and never reached "a".
func TestPipeline_CopyEnumKeyWithEmptyMember(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	ddl := `CREATE TABLE e (k ENUM('','a') NOT NULL, id INT NOT NULL, v INT, PRIMARY KEY (k, id))`
	mustExec(t, src, ddl, `INSERT INTO e VALUES ('', 1, 1), ('', 2, 2), ('', 3, 3), ('a', 1, 4)`)
	mustExec(t, dst, ddl)
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".e", Target: dstName + ".e"})
	cfg.ChunkRows = 2
	done := startRun(t, cfg)
	waitCopied(t, dst, srcName, "e", "k, id", `""|"1"|"1" ""|"2"|"2" ""|"3"|"3" "a"|"1"|"4"`, done)
}
