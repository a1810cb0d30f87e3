package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banyanhq/banyan/canary"
	"github.com/banyanhq/banyan/internal/testdb"
)

// TestCanarySQLCmd: exit 0 for an equivalent rewrite, 1 with the failing
// parameters and rows for a wrong one (text and JSON), 2 for a write
// without --allow-writes.
func TestCanarySQLCmd(t *testing.T) {
	testdb.Need(t, pair)
	ctx := t.Context()
	db := testdb.TempDatabase(t, pair.Source)
	if err := pair.Source.Exec(ctx, "USE "+db,
		`CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, amount DECIMAL(10,2))`,
		`INSERT INTO orders VALUES (1, 1, 10.05), (2, 1, 7.15), (3, 2, 3.00)`,
	); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	old := write("old.sql", "SELECT id, ROUND(amount * 1.1, 2) AS gross FROM orders WHERE customer_id = ?;\n")
	same := write("same.sql", "SELECT o.id, ROUND(o.amount * 1.1, 2) AS gross FROM orders o WHERE o.customer_id = ?")
	wrong := write("wrong.sql", "SELECT id, TRUNCATE(amount * 1.1, 2) AS gross FROM orders WHERE customer_id = ?")
	upd := write("upd.sql", "UPDATE orders SET amount = 0 WHERE customer_id = ?")
	params := write("params.csv", "customer_id\n2\n1\n")
	canaryRun := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(ctx, append([]string{"canary", "sql", "--dsn", pair.Source.DSN(db), "--runs", "5", "--warmup", "1"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}

	if code, out, stderr := canaryRun("--old", old, "--new", same, "--params", params); code != exitOK || !strings.Contains(out, "verdict: PASS") {
		t.Fatalf("equivalent: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr := canaryRun("--old", old, "--new", wrong, "--params", params)
	if code != exitFound {
		t.Fatalf("wrong rewrite: exit %d, want 1\n%s%s", code, out, stderr)
	}
	for _, want := range []string{"verdict: FAIL", "results differ for 1 of 2 parameter sets", `first failing parameters: ["1"]`, `rows[1].gross: old "7.87", new "7.86"`, "explain"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = canaryRun("--old", old, "--new", wrong, "--params-query", "SELECT DISTINCT customer_id FROM orders ORDER BY customer_id", "--format", "json")
	var rep canary.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitFound {
		t.Fatalf("json: exit %d, %v\n%s", code, err, out)
	}
	if rep.Pass || rep.Checks[0].FirstFailure == nil || rep.Checks[0].FirstFailure.Params[0] != "1" {
		t.Errorf("json report: %+v", rep.Checks[0])
	}
	if code, _, stderr := canaryRun("--old", upd, "--new", upd, "--params", params); code != exitCannotRun || !strings.Contains(stderr, "--allow-writes") {
		t.Errorf("write without --allow-writes: exit %d, %s", code, stderr)
	}
	if code, _, stderr := canaryRun("--old", old); code != exitCannotRun {
		t.Errorf("missing --new: exit %d, %s", code, stderr)
	}
}

// canaryFiles writes the named files into a temporary directory and
// returns their paths by name.
func canaryFiles(t testing.TB, files map[string]string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	paths := map[string]string{}
	for name, s := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		paths[name] = p
	}
	return paths
}

// TestCanarySQLCmd_writesComparedByEffect: with --allow-writes an UPDATE
// that zeroes a customer's orders and a DELETE of them affect as many
// rows; the canary must still fail them, showing the changed rows.
func TestCanarySQLCmd_writesComparedByEffect(t *testing.T) {
	testdb.Need(t, pair)
	ctx := t.Context()
	db := testdb.TempDatabase(t, pair.Source)
	if err := pair.Source.Exec(ctx, "USE "+db,
		`CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, amount DECIMAL(10,2)) ENGINE=InnoDB`,
		`INSERT INTO orders VALUES (1, 1, 10.05), (2, 1, 7.15), (3, 2, 3.00)`,
	); err != nil {
		t.Fatal(err)
	}
	f := canaryFiles(t, map[string]string{
		"update.sql": "UPDATE orders SET amount = 0 WHERE customer_id = ?",
		"delete.sql": "DELETE FROM orders WHERE customer_id = ?",
		"params.csv": "customer_id\n1\n2\n",
	})
	var out, errb bytes.Buffer
	code := run(ctx, []string{"canary", "sql", "--dsn", pair.Source.DSN(db), "--runs", "0", "--allow-writes",
		"--old", f["update.sql"], "--new", f["delete.sql"], "--params", f["params.csv"]}, &out, &errb)
	if code != exitFound {
		t.Fatalf("UPDATE ... SET amount = 0 vs DELETE: exit %d, want %d\n%s%s", code, exitFound, out.String(), errb.String())
	}
	for _, want := range []string{"verdict: FAIL", "results differ for 2 of 2 parameter sets", `first failing parameters: ["1"]`, "effect[orders].rows["} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestCanarySQLCmd_allExecutionsFailedFails: a missing table fails every
// execution on both sides with the same error; nothing was compared, so
// the verdict is FAIL (exit 1) with the error, not PASS.
func TestCanarySQLCmd_allExecutionsFailedFails(t *testing.T) {
	testdb.Need(t, pair)
	ctx := t.Context()
	db := testdb.TempDatabase(t, pair.Source)
	f := canaryFiles(t, map[string]string{
		"old.sql":    "SELECT id, amount FROM orders WHERE customer_id = ?",
		"new.sql":    "SELECT id, amount * 2 AS amount FROM orders WHERE customer_id = ?",
		"params.csv": "customer_id\n1\n2\n",
	})
	var out, errb bytes.Buffer
	code := run(ctx, []string{"canary", "sql", "--dsn", pair.Source.DSN(db), "--runs", "5", "--warmup", "1",
		"--old", f["old.sql"], "--new", f["new.sql"], "--params", f["params.csv"]}, &out, &errb)
	if code != exitFound {
		t.Fatalf("table orders does not exist: exit %d, want %d\n%s%s", code, exitFound, out.String(), errb.String())
	}
	for _, want := range []string{"verdict: FAIL", "every execution failed on both sides (Error 1146", "nothing was compared"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestCanarySQLCmd_paramsErrorsSayWhatToDo: queries with ? and no
// parameters, or a bad parameter file, end with exit 2 and a message
// naming the flag and file to fix.
func TestCanarySQLCmd_paramsErrorsSayWhatToDo(t *testing.T) {
	testdb.Need(t, pair)
	ctx := t.Context()
	db := testdb.TempDatabase(t, pair.Source)
	f := canaryFiles(t, map[string]string{
		"q.sql":   "SELECT ? + 1 AS n",
		"bad.csv": "n\n1\n2,3\n",
	})
	canaryRun := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(ctx, append([]string{"canary", "sql", "--dsn", pair.Source.DSN(db), "--runs", "0", "--old", f["q.sql"], "--new", f["q.sql"]}, args...), &out, &errb)
		return code, errb.String()
	}
	if code, stderr := canaryRun(); code != exitCannotRun || !strings.Contains(stderr, "--params") || !strings.Contains(stderr, "--params-query") {
		t.Errorf("no parameters: exit %d, stderr %q; want exit 2 naming --params and --params-query", code, stderr)
	}
	if code, stderr := canaryRun("--params", f["bad.csv"]); code != exitCannotRun || !strings.Contains(stderr, f["bad.csv"]) || !strings.Contains(stderr, "line 3") {
		t.Errorf("bad params file: exit %d, stderr %q; want exit 2 naming the file and line 3", code, stderr)
	}
}

// TestCanarySQLCmd_passWithoutLatencySaysSo: with --runs 0 nothing was
// timed, so the PASS verdict must not claim "no significant slowdown".
func TestCanarySQLCmd_passWithoutLatencySaysSo(t *testing.T) {
	testdb.Need(t, pair)
	ctx := t.Context()
	db := testdb.TempDatabase(t, pair.Source)
	f := canaryFiles(t, map[string]string{"q.sql": "SELECT 1 AS n"})
	var out, errb bytes.Buffer
	code := run(ctx, []string{"canary", "sql", "--dsn", pair.Source.DSN(db), "--runs", "0", "--old", f["q.sql"], "--new", f["q.sql"]}, &out, &errb)
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	if s := out.String(); strings.Contains(s, "no significant slowdown") || !strings.Contains(s, "latency not measured") {
		t.Errorf("verdict with --runs 0:\n%s", s)
	}
}

// TestCanarySQLCmd_paramsInMode2Refused: --params binds ? of --old/--new;
// given with --queries it was silently ignored, so the user believed
// parameters were used. It is refused, saying which mode takes it.
func TestCanarySQLCmd_paramsInMode2Refused(t *testing.T) {
	testdb.Need(t, pair)
	ctx := t.Context()
	db := testdb.TempDatabase(t, pair.Source)
	f := canaryFiles(t, map[string]string{"w.sql": "SELECT 1;\n", "p.csv": "1\n"})
	for _, extra := range [][]string{{"--params", f["p.csv"]}, {"--params-query", "SELECT 1"}} {
		var out, errb bytes.Buffer
		code := run(ctx, append([]string{"canary", "sql", "--dsn", pair.Source.DSN(db), "--target-dsn", pair.Source.DSN(db),
			"--queries", f["w.sql"], "--runs", "0"}, extra...), &out, &errb)
		if code != exitCannotRun || !strings.Contains(errb.String(), extra[0]) || !strings.Contains(errb.String(), "--old") {
			t.Errorf("%s with --queries: exit %d, stderr %q; want exit 2 saying it goes with --old/--new", extra[0], code, errb.String())
		}
	}
}
