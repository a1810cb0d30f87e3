package cdc

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
	"github.com/go-mysql-org/go-mysql/mysql"
)

// lockedBuffer collects a pipeline's log lines across goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// resnapshot runs `cdc run --resnapshot` in the background until the test
// ends. hook, when set, becomes the pipeline's pruneLookedUp. It returns
// the log and Run's result.
func resnapshot(tb testing.TB, cfg routes.CDCConfig, hook func(m *TableMap, absent [][]any)) (*lockedBuffer, <-chan error) {
	tb.Helper()
	return runLogged(tb, cfg, true, hook)
}

// runLogged is resnapshot with the --resnapshot flag given by resnap.
func runLogged(tb testing.TB, cfg routes.CDCConfig, resnap bool, hook func(m *TableMap, absent [][]any)) (*lockedBuffer, <-chan error) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &lockedBuffer{}
	p, err := Open(ctx, cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		cancel()
		tb.Fatalf("cdc.Open: %v", err)
	}
	p.pruneLookedUp = hook
	done := make(chan error, 1)
	result := make(chan error, 1)
	go func() { err := p.Run(ctx, resnap); done <- err; result <- err }()
	tb.Cleanup(func() { cancel(); <-done; p.Close() })
	return logs, result
}

// deletedLogged returns the count the resnapshot logged as deleted from
// table's target, or -1 when it logged none.
func deletedLogged(logs string, table string) int {
	re := regexp.MustCompile(`msg="cdc: resnapshot removed the target rows the source no longer has" table=` + regexp.QuoteMeta(table) + ` .*deleted=(\d+)`)
	m := re.FindStringSubmatch(logs)
	if m == nil {
		return -1
	}
	var n int
	fmt.Sscan(m[1], &n)
	return n
}

// TestPipeline_ResnapshotRemovesRowsGoneFromSource: a target holding rows
// the source no longer has (deleted while the binlog was lost) ends equal
// to the source after a resnapshot. The key is composite, renamed by the
// mapping, and made of a BIGINT UNSIGNED and a VARBINARY: the extra rows
// differ from kept ones only above 2^53 (equal as float64), by one byte, by
// a trailing zero byte or by the case of a byte, which a binary key
// distinguishes. Batches of 2 rows page across all of them.
func TestPipeline_ResnapshotRemovesRowsGoneFromSource(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE legacy_item (tenant BIGINT UNSIGNED NOT NULL, code VARBINARY(8) NOT NULL, qty INT, note VARCHAR(20), PRIMARY KEY (tenant, code))`,
		`INSERT INTO legacy_item VALUES
			(1, X'61', 1, 'a'),
			(9007199254740992, X'00FF', 2, 'b'),
			(9007199254740992, X'0100', 3, 'c'),
			(18446744073709551615, X'FF', 4, 'd')`)
	mustExec(t, dst, `CREATE TABLE items (tenant_id BIGINT UNSIGNED NOT NULL, item_code VARBINARY(8) NOT NULL, quantity INT, PRIMARY KEY (tenant_id, item_code))`,
		`INSERT INTO items VALUES
			(1, X'41', 10),
			(1, X'61', 10),
			(9007199254740992, X'00FE', 20),
			(9007199254740992, X'00FF', 20),
			(9007199254740992, X'00FF00', 20),
			(9007199254740993, X'00FF', 20),
			(9007199254740992, X'0100', 30),
			(18446744073709551614, X'FF', 40),
			(18446744073709551615, X'FF', 40)`)
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{
		Source:  srcName + ".legacy_item",
		Target:  dstName + ".items",
		Columns: map[string]string{"tenant": "tenant_id", "code": "item_code", "qty": "quantity"},
		Skip:    []string{"note"},
	})
	cfg.ChunkRows = 2
	logs, done := resnapshot(t, cfg, nil)
	s := func() []string {
		return dump(t, src, "(SELECT tenant, HEX(code) AS code, qty FROM legacy_item) AS x", "tenant, code")
	}
	d := func() []string {
		return dump(t, dst, "(SELECT tenant_id, HEX(item_code) AS code, quantity FROM items) AS x", "tenant_id, code")
	}
	waitEqual(t, 20*time.Second, s, d)
	untilStreaming(t, dst)
	if got, want := deletedLogged(logs.String(), srcName+".legacy_item"), 5; got != want {
		t.Errorf("logged %d rows deleted from the target, want %d; log:\n%s", got, want, logs.String())
	}
	select {
	case err := <-done:
		t.Fatalf("Run ended: %v", err)
	default:
	}
}

// TestPipeline_ResnapshotKeepsRowsTheSourceCallsEqual: whether a target
// key still exists is the source's call, made with the source column's
// collation. Under utf8mb4_general_ci and latin1_swedish_ci (both
// case-insensitive, PAD SPACE) 'ABC' and 'pad ' are the source's 'abc' and
// 'pad': those target rows are kept, with their key exactly as it was
// (a look-up in Go deleted them, and the copy then wrote 'abc' instead).
// 'gone', which the source has in no spelling, is deleted, and so is
// 'Äsa', which latin1_swedish_ci tells from the source's 'Åsa' (the
// connection's utf8mb4_general_ci would call them equal).
func TestPipeline_ResnapshotKeepsRowsTheSourceCallsEqual(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src,
		`CREATE TABLE u (k VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci PRIMARY KEY, v INT)`,
		`INSERT INTO u VALUES ('abc', 1), ('pad', 2), ('keep', 3)`,
		`CREATE TABLE l (k VARCHAR(20) CHARACTER SET latin1 COLLATE latin1_swedish_ci PRIMARY KEY, v INT)`,
		`INSERT INTO l VALUES ('abc', 1), ('Åsa', 2)`)
	mustExec(t, dst,
		`CREATE TABLE u (k VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci PRIMARY KEY, v INT)`,
		`INSERT INTO u VALUES ('ABC', 0), ('pad ', 0), ('keep', 0), ('gone', 0)`,
		`CREATE TABLE l (k VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_swedish_ci PRIMARY KEY, v INT)`,
		`INSERT INTO l VALUES ('ABC  ', 0), ('åsa', 0), ('gone', 0), ('Äsa', 0)`)
	cfg := cdcConfig(srcName, dstName,
		routes.TableMapping{Source: srcName + ".u", Target: dstName + ".u"},
		routes.TableMapping{Source: srcName + ".l", Target: dstName + ".l"})
	cfg.ChunkRows = 2
	logs, done := resnapshot(t, cfg, nil)
	untilStreaming(t, dst)
	keys := func(table string) []string {
		return dump(t, dst, "(SELECT HEX(k) AS k, v FROM "+table+") AS x", "k")
	}
	hexRow := func(k string, v int) string { return fmt.Sprintf("%q|%q", fmt.Sprintf("%X", k), fmt.Sprint(v)) }
	for _, tt := range []struct {
		table string
		want  []string // in HEX(k) order
	}{
		{"u", []string{hexRow("ABC", 1), hexRow("keep", 3), hexRow("pad ", 2)}},
		// 'Äsa' is not 'Åsa' in Swedish (nor in latin1_swedish_ci); 'åsa' is.
		{"l", []string{hexRow("ABC  ", 1), hexRow("åsa", 2)}},
	} {
		if got := keys(tt.table); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("target %s after the resnapshot:\n%s\nwant (the source's rows under the target's spelling of their keys):\n%s", tt.table, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
		}
	}
	for table, want := range map[string]int{"u": 1, "l": 2} {
		if got := deletedLogged(logs.String(), srcName+"."+table); got != want {
			t.Errorf("logged %d rows deleted from %s, want %d; log:\n%s", got, table, want, logs.String())
		}
	}
	select {
	case err := <-done:
		t.Fatalf("Run ended: %v", err)
	default:
	}
}

// TestPipeline_ResnapshotRowInsertedDuringPrune: the stream resumes from
// the position read before the delete pass looked at the source, so a row
// inserted on the source after the look-up said "absent" (and the target
// row deleted) comes back, and so does one inserted anywhere during the
// pass. The hook runs between the source's answer and the target delete.
func TestPipeline_ResnapshotRowInsertedDuringPrune(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))`, `INSERT INTO t VALUES (1, 'one'), (2, 'two')`)
	mustExec(t, dst, `CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))`, `INSERT INTO t VALUES (1, 'old'), (5, 'stale'), (6, 'gone')`)
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".t", Target: dstName + ".t"})
	var once sync.Once
	var hookErr error
	var startGTID, insertedGTID string
	hook := func(m *TableMap, absent [][]any) {
		once.Do(func() {
			var got []string
			for _, k := range absent {
				got = append(got, fmt.Sprint(k...))
			}
			if strings.Join(got, ",") != "5,6" {
				hookErr = fmt.Errorf("the source said %v are absent, want 5 and 6", got)
				return
			}
			cp, ok, err := (&Target{DB: dst, Pipeline: "default"}).Checkpoint(context.Background())
			if err != nil || !ok || cp.Phase != PhaseCopy {
				hookErr = fmt.Errorf("checkpoint during the pass: %+v %v %v, want phase copy", cp, ok, err)
				return
			}
			startGTID = cp.Start.GTID
			if _, err := src.Exec(`INSERT INTO t VALUES (5, 'new'), (7, 'seven')`); err != nil {
				hookErr = err
				return
			}
			hookErr = src.QueryRow("SELECT @@GLOBAL.gtid_binlog_pos").Scan(&insertedGTID)
		})
	}
	_, done := resnapshot(t, cfg, hook)
	waitEqual(t, 20*time.Second, func() []string { return dump(t, src, "t", "id") }, func() []string { return dump(t, dst, "t", "id") })
	if hookErr != nil {
		t.Fatal(hookErr)
	}
	// The position the stream starts from was read before the look-up:
	// it does not hold the insert made after it, which the stream replays.
	start, err1 := mysql.ParseGTIDSet("mariadb", startGTID)
	ins, err2 := mysql.ParseGTIDSet("mariadb", insertedGTID)
	if err1 != nil || err2 != nil || start.Contain(ins) {
		t.Errorf("stream start %q holds the insert made during the pass (%q) (%v %v): the position must be read before the look-up", startGTID, insertedGTID, err1, err2)
	}
	got := dump(t, dst, "t", "id")
	if want := []string{`"1"|"one"`, `"2"|"two"`, `"5"|"new"`, `"7"|"seven"`}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("target %v, want %v", got, want)
	}
	select {
	case err := <-done:
		t.Fatalf("Run ended: %v", err)
	default:
	}
}

// TestPipeline_ResnapshotSkipsKeysItCannotLookUp: a key whose equality
// banyan cannot have the source decide from the target's value (a DOUBLE
// printed back need not equal the stored one) deletes nothing and says so,
// pointing at `banyan check --fix-sql`; the copy still runs.
func TestPipeline_ResnapshotSkipsKeysItCannotLookUp(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE f (id DOUBLE PRIMARY KEY, v INT)`, `INSERT INTO f VALUES (0.1, 1)`)
	mustExec(t, dst, `CREATE TABLE f (id DOUBLE PRIMARY KEY, v INT)`, `INSERT INTO f VALUES (0.1, 0), (0.2, 0)`)
	logs, _ := resnapshot(t, cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".f", Target: dstName + ".f"}), nil)
	untilStreaming(t, dst)
	if got, want := strings.Join(dump(t, dst, "f", "id"), " "), `"0.1"|"1" "0.2"|"0"`; got != want {
		t.Errorf("target %s, want %s (copied, nothing deleted)", got, want)
	}
	if !strings.Contains(logs.String(), "deletes nothing from it") || !strings.Contains(logs.String(), "banyan check --fix-sql") || !strings.Contains(logs.String(), "key column id of "+srcName+".f is double") {
		t.Errorf("the log does not say the resnapshot skipped %s.f and what to do:\n%s", srcName, logs.String())
	}
}

// TestPipeline_ResnapshotDeletePassResumes: a resnapshot stopped in the
// middle of its delete pass (here the target refuses one delete once)
// finishes the pass when run again without --resnapshot, from the last
// key it saved, before copying the table; the count it logs covers both
// runs.
func TestPipeline_ResnapshotDeletePassResumes(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	ddl := `CREATE TABLE r (k VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci PRIMARY KEY, v INT)`
	mustExec(t, src, ddl, `INSERT INTO r VALUES ('a', 1), ('c', 3), ('e', 5)`)
	mustExec(t, dst, ddl, `INSERT INTO r VALUES ('a', 0), ('B', 0), ('c', 0), ('D', 0), ('e', 0), ('F', 0)`,
		`CREATE TABLE fail_once (n INT)`, `INSERT INTO fail_once VALUES (1)`,
		"CREATE TRIGGER boom BEFORE DELETE ON r FOR EACH ROW BEGIN IF OLD.k = 'D' AND (SELECT COUNT(*) FROM fail_once) > 0 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'interrupted'; END IF; END")
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".r", Target: dstName + ".r"})
	cfg.ChunkRows = 2
	_, done := resnapshot(t, cfg, nil)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "interrupted") {
			t.Fatalf("first run: %v, want the target's refusal", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("first run did not stop")
	}
	if got, want := strings.Join(dump(t, dst, "(SELECT k FROM r) AS x", "k"), " "), `"a" "c" "D" "e" "F"`; got != want {
		t.Fatalf("target after the interrupted pass: %s, want %s (B deleted, the rest not yet)", got, want)
	}
	mustExec(t, dst, `DELETE FROM fail_once`)
	logs, done := runLogged(t, cfg, false, nil)
	waitEqual(t, 15*time.Second, func() []string { return dump(t, src, "r", "k") }, func() []string { return dump(t, dst, "r", "k") })
	untilStreaming(t, dst)
	if got, want := deletedLogged(logs.String(), srcName+".r"), 3; got != want {
		t.Errorf("logged %d rows deleted, want %d; log:\n%s", got, want, logs.String())
	}
	select {
	case err := <-done:
		t.Fatalf("second run ended: %v", err)
	default:
	}
}

// TestPipeline_ResnapshotMergedShards: two legacy shards mapped into one
// target table. A target row stays when either shard holds its key; only
// the row neither has is deleted. Pruned shard by shard, the second
// shard's pass deleted every row the first shard's copy had just written.
func TestPipeline_ResnapshotMergedShards(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE order_0 (ord_id INT PRIMARY KEY, amt INT)`, `INSERT INTO order_0 VALUES (2, 20), (4, 40)`,
		`CREATE TABLE order_1 (ord_id INT PRIMARY KEY, amt INT)`, `INSERT INTO order_1 VALUES (1, 10), (3, 30)`)
	mustExec(t, dst, `CREATE TABLE orders (id INT PRIMARY KEY, total INT)`, `INSERT INTO orders VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0)`)
	shard := func(name string) routes.TableMapping {
		return routes.TableMapping{Source: srcName + "." + name, Target: dstName + ".orders", Columns: map[string]string{"ord_id": "id", "amt": "total"}}
	}
	logs, done := resnapshot(t, cdcConfig(srcName, dstName, shard("order_0"), shard("order_1")), nil)
	untilStreaming(t, dst)
	if got, want := strings.Join(dump(t, dst, "orders", "id"), " "), `"1"|"10" "2"|"20" "3"|"30" "4"|"40"`; got != want {
		t.Errorf("target %s, want %s", got, want)
	}
	if got := deletedLogged(logs.String(), srcName+".order_0"); got != 1 {
		t.Errorf("logged %d rows deleted, want 1; log:\n%s", got, logs.String())
	}
	select {
	case err := <-done:
		t.Fatalf("Run ended: %v", err)
	default:
	}
}
