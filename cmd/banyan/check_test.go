package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/banyanhq/banyan/cdc/check"
	"github.com/banyanhq/banyan/internal/testdb"
)

const checkTable = `CREATE TABLE t (
	id INT PRIMARY KEY,
	name VARCHAR(50),
	note VARCHAR(50) NULL,
	amt DECIMAL(10,2),
	ts DATETIME(6),
	txt VARCHAR(100) CHARACTER SET utf8mb4,
	bin VARBINARY(16),
	a INT,
	c CHAR(10)
) DEFAULT CHARSET=utf8mb4`

// TestCheckCmd_FindsEveryKindOfDifference: identical tables are consistent;
// then each kind of difference is reported at its key and column, the fix
// SQL makes the target equal, and the next check is consistent again.
func TestCheckCmd_FindsEveryKindOfDifference(t *testing.T) {
	testdb.Need(t, pair)
	ctx := context.Background()
	srcDB, dstDB := testdb.TempDatabase(t, pair.Source), testdb.TempDatabase(t, pair.Target)
	rows := []string{
		`(1, 'alice', 'n', 1.00, '2026-01-01 10:00:00.000000', 'a', X'01', 1, 'x')`,
		`(2, 'bob', 'n', 2.00, '2026-01-01 10:00:00.000000', 'b', X'02', 2, 'x')`,
		`(3, 'carol', NULL, 3.00, '2026-01-01 10:00:00.000000', 'c', X'03', 3, 'x')`,
		`(4, 'dave', 'n', 4.00, '2026-01-01 10:00:00.000000', 'd', X'04', 4, 'x')`,
		`(5, 'erin', 'n', 12.50, '2026-01-01 10:00:00.000000', 'e', X'05', 5, 'x')`,
		`(6, 'frank', 'n', 6.00, '2026-01-01 10:00:00.123456', 'f', X'06', 6, 'x')`,
		`(7, 'grace', 'n', 7.00, '2026-01-01 10:00:00.000000', '你好🎉', X'07', 7, 'x')`,
		`(8, 'heidi', 'n', 8.00, '2026-01-01 10:00:00.000000', 'h', X'00FF', 8, 'x')`,
		`(9, 'ivan', 'n', 9.00, '2026-01-01 10:00:00.000000', 'i', X'09', 5, 'x')`,
		`(10, 'judy', 'n', 10.00, '2026-01-01 10:00:00.000000', 'j', X'0A', 6, 'x')`,
	}
	for _, s := range []*testdb.Server{pair.Source, pair.Target} {
		db := srcDB
		if s == pair.Target {
			db = dstDB
		}
		if err := s.Exec(ctx, "USE "+db, checkTable, "INSERT INTO t VALUES "+strings.Join(rows, ", ")); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	fixPath := filepath.Join(dir, "fix.sql")
	runChk := func(extra ...string) (int, string, string) {
		return checkTables(t, ctx, srcDB, dstDB, append([]string{"--chunk-size", "3", "--recheck-after", "10ms", "--state", filepath.Join(dir, "state.json")}, extra...)...)
	}
	if code, out, stderr := runChk(); code != exitOK || !strings.Contains(out, "verdict: CONSISTENT") {
		t.Fatalf("identical tables: exit %d\n%s%s", code, out, stderr)
	}

	if err := pair.Target.Exec(ctx, "USE "+dstDB,
		`UPDATE t SET name = 'alicE' WHERE id = 1`,                             // one changed cell
		`DELETE FROM t WHERE id = 2`,                                           // one missing row
		`INSERT INTO t VALUES (100, 'mallory', 'n', 0, NULL, '', NULL, 0, '')`, // one extra row
		`UPDATE t SET note = '' WHERE id = 3`,                                  // NULL vs ''
		`UPDATE t SET name = 'dave ' WHERE id = 4`,                             // trailing space in a VARCHAR is data
		`UPDATE t SET amt = 12.51 WHERE id = 5`,                                // last decimal place
		`UPDATE t SET ts = '2026-01-01 10:00:00.123457' WHERE id = 6`,          // one microsecond
		`UPDATE t SET txt = '你好🎊' WHERE id = 7`,                                // utf8mb4 text
		`UPDATE t SET bin = X'00FE' WHERE id = 8`,                              // binary column
		`UPDATE t SET a = 6 WHERE id = 9`, `UPDATE t SET a = 5 WHERE id = 10`,  // swap: a column XOR fold is unchanged
	); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runChk("--format", "json", "--fix-sql", fixPath, "--sample", "20")
	if code != exitFound {
		t.Fatalf("check after changes: exit %d, want %d\n%s%s", code, exitFound, out, stderr)
	}
	var res check.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("JSON: %v\n%s", err, out)
	}
	tr := res.Tables[0]
	if tr.Mismatched != 9 || tr.Missing != 1 || tr.Extra != 1 || tr.Rows != 10 || res.Consistent {
		t.Errorf("table result = %+v, want 9 mismatched, 1 missing, 1 extra, 10 rows compared", tr)
	}
	got := map[string]string{}
	for _, d := range tr.Sample {
		cols := []string{d.Kind}
		for _, c := range d.Columns {
			cols = append(cols, c.Column+":"+c.Source+">"+c.Target)
		}
		got[d.Key["id"]] = strings.Join(cols, " ")
	}
	want := map[string]string{
		"1":   `changed name:"alice">"alicE"`,
		"2":   `missing`,
		"3":   `changed note:NULL>""`,
		"4":   `changed name:"dave">"dave "`,
		"5":   `changed amt:"12.50">"12.51"`,
		"6":   `changed ts:"2026-01-01 10:00:00.123456">"2026-01-01 10:00:00.123457"`,
		"7":   `changed txt:"你好🎉">"你好🎊"`,
		"8":   `changed bin:"00ff">"00fe"`,
		"9":   `changed a:"5">"6"`,
		"10":  `changed a:"6">"5"`,
		"100": `extra`,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("key id=%s: reported %q, want %q", k, got[k], w)
		}
	}
	if len(tr.Sample) != len(want) {
		t.Errorf("sample has %d rows, want %d: %v", len(tr.Sample), len(want), got)
	}

	fix, _ := applyFixSQL(t, ctx, dstDB, fixPath)
	if code, out, stderr := runChk(); code != exitOK {
		t.Fatalf("after applying the fix SQL: exit %d\n%s%s\nfix SQL:\n%s", code, out, stderr, fix)
	}
}

// applyFixSQL runs every statement of the fix SQL file on the target
// database db and returns the file and an open handle on that database.
func applyFixSQL(tb testing.TB, ctx context.Context, db, path string) (string, *sql.DB) {
	tb.Helper()
	fix, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	h, err := pair.Target.Open(ctx, db)
	if err != nil {
		tb.Fatal(err)
	}
	for _, stmt := range strings.Split(string(fix), "\n") {
		if stmt = strings.TrimSpace(stmt); stmt == "" || strings.HasPrefix(stmt, "--") {
			continue
		}
		if _, err := h.Exec(stmt); err != nil {
			tb.Fatalf("fix statement %s: %v", stmt, err)
		}
	}
	return string(fix), h
}

// checkTables runs `banyan check` of table t from srcDB on the source to
// dstDB on the target, with flags; it returns the exit code, stdout and
// stderr. Without --state in flags the progress file goes in a temp dir
// of tb's, not in the current folder (this package's source folder, shared
// by every test running beside it).
func checkTables(tb testing.TB, ctx context.Context, srcDB, dstDB string, flags ...string) (int, string, string) {
	var out, errb bytes.Buffer
	if !slices.Contains(flags, "--state") {
		flags = append(flags, "--state", filepath.Join(tb.TempDir(), "state.json"))
	}
	args := append([]string{"check", "--source", pair.Source.DSN(srcDB), "--target", pair.Target.DSN(dstDB), "--tables", "t"}, flags...)
	code := run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}
