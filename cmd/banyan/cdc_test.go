package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/cdc"
	"github.com/banyanhq/banyan/internal/testdb"
)

// pair is one legacy (source) and one new (target) MariaDB server shared
// by the package's database tests.
var pair *testdb.Pair

func TestMain(m *testing.M) { os.Exit(testdb.RunWithPair(m, &pair)) }

// tempDBs makes a fresh database on each server of the pair and opens a
// pool on each (closed when the test ends).
func tempDBs(t *testing.T) (src, dst *sql.DB, srcDB, dstDB string) {
	t.Helper()
	testdb.Need(t, pair)
	srcDB, dstDB = testdb.TempDatabase(t, pair.Source), testdb.TempDatabase(t, pair.Target)
	var err error
	if src, err = pair.Source.Open(t.Context(), srcDB); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	if dst, err = pair.Target.Open(t.Context(), dstDB); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dst.Close() })
	return src, dst, srcDB, dstDB
}

func TestCDCCmd_RunStatusAndSchemaStop(t *testing.T) {
	testdb.Need(t, pair)
	ctx := context.Background()
	src, dst, srcDB, dstDB := tempDBs(t)
	exec := func(db *sql.DB, stmts ...string) {
		t.Helper()
		for _, s := range stmts {
			if _, err := db.Exec(s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
	exec(src, `CREATE TABLE t_order (ord_id INT PRIMARY KEY, usr_id INT, amt DECIMAL(10,2), memo VARCHAR(50))`,
		`INSERT INTO t_order VALUES (1, 7, 12.50, 'a'), (2, 8, 0.99, 'b')`)
	exec(dst, `CREATE TABLE orders (id INT PRIMARY KEY, user_id INT, total_cents BIGINT)`)

	path := filepath.Join(t.TempDir(), "banyan.yaml")
	writeOrdersCDC(t, path, 7301, srcDB, dstDB)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := mln.Addr().String()
	mln.Close()
	go func() {
		done <- run(runCtx, []string{"cdc", "run", "--config", path, "--metrics-listen", metricsAddr}, &out, &errb)
	}()

	status := func() (cdc.Status, bool) {
		var st cdc.Status
		var sout, serr bytes.Buffer
		if code := run(ctx, []string{"cdc", "status", "--config", path, "--format", "json"}, &sout, &serr); code != exitOK {
			return st, false
		}
		if err := json.Unmarshal(sout.Bytes(), &st); err != nil {
			t.Fatalf("status JSON: %v\n%s", err, sout.String())
		}
		// Field names are snake_case, as everywhere else in the JSON.
		var raw struct {
			Copy []map[string]json.RawMessage `json:"copy"`
		}
		if err := json.Unmarshal(sout.Bytes(), &raw); err != nil {
			t.Fatal(err)
		}
		for _, c := range raw.Copy {
			for _, k := range []string{"table", "last_pk", "rows", "done"} {
				if _, ok := c[k]; !ok {
					t.Fatalf("status JSON: a copy entry lacks %q:\n%s", k, sout.String())
				}
			}
		}
		return st, true
	}
	// Changes are made once the copy is done, so they travel by the stream.
	deadline := time.Now().Add(20 * time.Second)
	for st, ok := status(); !ok || st.Phase != cdc.PhaseStream; st, ok = status() {
		if time.Now().After(deadline) {
			t.Fatalf("copy did not finish; stderr:\n%s", errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	exec(src, `INSERT INTO t_order VALUES (3, 9, 100.01, 'c')`, `UPDATE t_order SET amt = 13.00 WHERE ord_id = 1`, `DELETE FROM t_order WHERE ord_id = 2`)
	want := "1 7 1300|3 9 10001"
	deadline = time.Now().Add(20 * time.Second)
	for {
		var rows []string
		r, err := dst.Query(`SELECT id, user_id, total_cents FROM orders ORDER BY id`)
		if err == nil {
			for r.Next() {
				var id, user, cents int64
				r.Scan(&id, &user, &cents)
				rows = append(rows, fmt.Sprintf("%d %d %d", id, user, cents))
			}
			r.Close()
		}
		if got := strings.Join(rows, "|"); got == want {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("target rows %q, want %q\nstderr:\n%s", got, want, errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	var st cdc.Status
	deadline = time.Now().Add(10 * time.Second)
	for {
		var ok bool
		if st, ok = status(); !ok {
			t.Fatal("cdc status failed")
		}
		if st.CaughtUp || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	table := dstDB + ".orders"
	// The running pipeline's Prometheus series count the same rows.
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatalf("cdc metrics: %v", err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, w := range []string{
		fmt.Sprintf(`banyan_cdc_rows_applied_total{op="insert",table=%q} 1`, dstDB+".orders"),
		fmt.Sprintf(`banyan_cdc_rows_applied_total{op="delete",table=%q} 1`, dstDB+".orders"),
		fmt.Sprintf(`banyan_cdc_copy_rows_total{table=%q} 2`, dstDB+".orders"),
		"banyan_cdc_lag_seconds",
	} {
		if !strings.Contains(string(metrics), w) {
			t.Errorf("/metrics of cdc run lacks %s:\n%s", w, metrics)
		}
	}
	if !st.CaughtUp || st.Phase != cdc.PhaseStream || st.LagSeconds != 0 {
		t.Errorf("status = phase %s caught up %v lag %.1f, want stream, caught up, 0", st.Phase, st.CaughtUp, st.LagSeconds)
	}
	if got := st.Applies[table]; got["insert"] != 1 || got["update"] != 1 || got["delete"] != 1 {
		t.Errorf("rows applied to %s = %v, want 1 insert, 1 update, 1 delete", table, got)
	}
	if len(st.Copy) != 1 || st.Copy[0].Rows != 2 || !st.Copy[0].Done {
		t.Errorf("copy progress = %+v, want one table, 2 rows, done", st.Copy)
	}
	var text bytes.Buffer
	run(ctx, []string{"cdc", "status", "--config", path}, &text, &errb)
	for _, w := range []string{"phase:      stream", "lag:        0s (caught up)", table} {
		if !strings.Contains(text.String(), w) {
			t.Errorf("status text lacks %q:\n%s", w, text.String())
		}
	}

	// Dropping a mapped column stops the stream with exit 1 and says where.
	exec(src, `ALTER TABLE t_order DROP COLUMN usr_id`)
	select {
	case code := <-done:
		if code != exitFound {
			t.Errorf("cdc run after a breaking DDL exit %d, want %d", code, exitFound)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("cdc run did not stop on a breaking DDL")
	}
	t.Logf("stop message:\n%s", errb.String())
	for _, w := range []string{"t_order", "DROP COLUMN usr_id", "mapped column usr_id no longer exists", "gtid"} {
		if !strings.Contains(errb.String(), w) {
			t.Errorf("stop message lacks %q:\n%s", w, errb.String())
		}
	}
}

// writeOrdersCDC writes a config whose cdc section maps srcDB.t_order
// (ord_id, usr_id, amt in yuan, memo) to dstDB.orders (id, user_id,
// total_cents), registering as replica serverID.
func writeOrdersCDC(tb testing.TB, path string, serverID int, srcDB, dstDB string) {
	tb.Helper()
	writeAtomic(tb, path, fmt.Sprintf(`cdc:
  source: {dsn: %q, server_id: %d}
  target: {dsn: %q}
  tables:
    - source: %s.t_order
      target: %s.orders
      columns: {ord_id: id, usr_id: user_id, amt: total_cents}
      convert: {amt: yuan_to_cents}
      skip: [memo]
`, pair.Source.DSN(srcDB), serverID, pair.Target.DSN(dstDB), srcDB, dstDB))
}

func TestCDCCmd_Errors(t *testing.T) {
	dir := t.TempDir()
	noCDC := filepath.Join(dir, "nocdc.yaml")
	writeAtomic(t, noCDC, configYAML("http://127.0.0.1:1", "http://127.0.0.1:2", 100, 0))
	down := filepath.Join(dir, "down.yaml")
	writeAtomic(t, down, `cdc:
  source: {dsn: "root@tcp(127.0.0.1:1)/shop"}
  target: {dsn: "root@tcp(127.0.0.1:1)/orders"}
  tables: [{source: shop.t, target: orders.t}]
`)
	noSpillDir := filepath.Join(dir, "nospill.yaml")
	writeAtomic(t, noSpillDir, `cdc:
  source: {dsn: "root@tcp(127.0.0.1:1)/shop"}
  target: {dsn: "root@tcp(127.0.0.1:1)/orders"}
  tables: [{source: shop.t, target: orders.t}]
  spill_dir: `+filepath.Join(dir, "missing")+`
`)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"cdc", "run", "--config", noCDC}, "has no cdc.tables"},
		{[]string{"cdc", "run", "--config", down}, "cdc source unreachable"},
		{[]string{"cdc", "run", "--config", noSpillDir}, "cdc.spill_dir: keep a large source transaction's changes in a temporary file in " + filepath.Join(dir, "missing")},
		{[]string{"cdc", "status", "--config", down}, "connect"},
	} {
		var out, errb bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		code := run(ctx, tt.args, &out, &errb)
		cancel()
		if code != exitCannotRun || !strings.Contains(errb.String(), tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", tt.args, code, errb.String(), exitCannotRun, tt.want)
		}
	}
}
