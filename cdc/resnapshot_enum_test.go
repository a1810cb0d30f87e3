package cdc

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
)

// TestPipeline_ResnapshotEnumKey: an ENUM key sorts by its members' order
// in the definition ('z' before 'a'), while a bound compared with a label
// compares text. Paged one row at a time, the copy and the delete pass
// must still see every row: the source's rows all land, the target's row
// the source lacks ('q') is deleted. With members in capitals, as most
// legacy ENUMs are written, the delete pass once read the column's
// definition lower-cased, found no member for the label 'Z' and bounded
// the next page by the label as text, which no key after 'Z' passed: the
// target's 'Q' was never looked up and stayed.
func TestPipeline_ResnapshotEnumKey(t *testing.T) {
	for _, m := range []string{"z q a m", "Z Q A M"} {
		t.Run(m, func(t *testing.T) {
			f := strings.Fields(m)
			z, q, a, mm := f[0], f[1], f[2], f[3]
			srcName, dstName, src, dst := dbs(t)
			ddl := fmt.Sprintf(`CREATE TABLE e (k ENUM('%s','%s','%s','%s') NOT NULL PRIMARY KEY, v INT)`, z, q, a, mm)
			mustExec(t, src, ddl, fmt.Sprintf(`INSERT INTO e VALUES ('%s', 1), ('%s', 2), ('%s', 3)`, a, z, mm))
			mustExec(t, dst, ddl, fmt.Sprintf(`INSERT INTO e VALUES ('%s', 0), ('%s', 0), ('%s', 0), ('%s', 0)`, a, z, mm, q))
			cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".e", Target: dstName + ".e"})
			cfg.ChunkRows = 1
			_, done := resnapshot(t, cfg, nil)
			waitCopied(t, dst, srcName, "e", "k", fmt.Sprintf(`"%s"|"2" "%s"|"1" "%s"|"3"`, z, a, mm), done)
		})
	}
}

// waitCopied waits up to 15 s for table (ordered by order) on dst to dump
// as want with the copy from srcName done, failing if Run ends first.
func waitCopied(t *testing.T, dst *sql.DB, srcName, table, order, want string, done <-chan error) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		got := strings.Join(dump(t, dst, table, order), " ")
		if got == want && copyDone(t, dst, srcName) {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("Run ended: %v (target %s)", err, got)
		case <-deadline:
			t.Fatalf("copy not done within 15s: target %s, want %s", got, want)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestEnumNumber(t *testing.T) {
	for _, tt := range []struct {
		columnType string
		v          any
		want       uint64
		ok         bool
	}{
		{"enum('z','q','a','m')", []byte("z"), 1, true},
		{"enum('z','q','a','m')", "m", 4, true},
		{"enum('z','q','a','m')", []byte(""), 0, true},
		{"enum('','a')", []byte(""), 1, true}, // '' is a member here, not the error value
		{"enum('z','q','a','m')", "x", 0, false},
		{"ENUM('it''s','a\\\\b','x,y')", "it's", 1, true},
		{"enum('it''s','a\\\\b','x,y')", `a\b`, 2, true},
		{"enum('it''s','a\\\\b','x,y')", "x,y", 3, true},
		{"set('z','a','m')", []byte("z,m"), 5, true},
		{"set('z','a','m')", "a", 2, true},
		{"set('z','a','m')", "", 0, true},
		{"set('z','a','m')", "z,q", 0, false},
		{"enum('a\\nb')", "a", 0, false}, // an escape not read: left as a label
		{"varchar(10)", "a", 0, false},
	} {
		got, ok := enumNumber(tt.columnType, tt.v)
		if got != tt.want || ok != tt.ok {
			t.Errorf("enumNumber(%q, %q) = %d, %v, want %d, %v", tt.columnType, tt.v, got, ok, tt.want, tt.ok)
		}
	}
}
