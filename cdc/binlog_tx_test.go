package cdc

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
)

// untilStreaming waits until the pipeline has finished its copy and its
// stream has had time to connect.
func untilStreaming(tb testing.TB, dst *sql.DB) {
	tb.Helper()
	waitFor(tb, 20*time.Second, "streaming phase", func() bool {
		cp, ok, err := (&Target{DB: dst, Pipeline: "default"}).Checkpoint(context.Background())
		return err == nil && ok && cp.Phase == PhaseStream
	})
	time.Sleep(300 * time.Millisecond)
}

// execOnOneConn runs stmts in order on one connection of db, so that
// session settings and transactions the first ones start hold for the
// rest.
func execOnOneConn(tb testing.TB, db *sql.DB, stmts ...string) {
	tb.Helper()
	conn, err := db.Conn(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	for _, q := range stmts {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
	}
}

// TestStream_TransactionWithSavepoints: MariaDB logs SAVEPOINT, ROLLBACK TO
// and RELEASE SAVEPOINT inside a transaction's group (Django's atomic(),
// Rails' requires_new and JTA nesting use them). They are not DDL: every
// row the transaction committed lands, the ones rolled back to a savepoint
// do not appear in the binlog, and no checkpoint falls inside the
// transaction (a review found the rows before the savepoint dropped).
// With spill_rows 1 the same holds for changes read back from the spill
// file.
func TestStream_TransactionWithSavepoints(t *testing.T) {
	for _, spillRows := range []int{0, 1} {
		t.Run(fmt.Sprintf("spill_rows %d", spillRows), func(t *testing.T) { transactionWithSavepoints(t, spillRows) })
	}
}

func transactionWithSavepoints(t *testing.T, spillRows int) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE t (id INT PRIMARY KEY, v INT)`)
	mustExec(t, dst, `CREATE TABLE t (id INT PRIMARY KEY, v INT)`)
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".t", Target: dstName + ".t"})
	cfg.SpillRows = spillRows
	runPipeline(t, cfg)
	untilStreaming(t, dst)
	tx, err := src.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO t VALUES (1, 1)`,
		`SAVEPOINT sp1`,
		`INSERT INTO t VALUES (2, 2)`,
		`RELEASE SAVEPOINT sp1`,
		`SAVEPOINT sp2`,
		`INSERT INTO t VALUES (3, 3)`,
		`ROLLBACK TO SAVEPOINT sp2`,
		`UPDATE t SET v = 10 WHERE id = 1`,
	} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	s := func() []string { return dump(t, src, "t", "id") }
	d := func() []string { return dump(t, dst, "t", "id") }
	waitEqual(t, 10*time.Second, s, d)
	if got := strings.Join(d(), " "); got != `"1"|"10" "2"|"2"` {
		t.Errorf("target = %s, want rows 1 (v 10) and 2", got)
	}
}

// TestStream_XAPrepareStops: a two-phase XA transaction's rows are logged
// at XA PREPARE and committed by a later XA COMMIT (or rolled back).
// banyan cannot stream that; it must stop with an error that says so,
// never drop the rows quietly (a review found them lost).
func TestStream_XAPrepareStops(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE t (id INT PRIMARY KEY, v INT)`)
	mustExec(t, dst, `CREATE TABLE t (id INT PRIMARY KEY, v INT)`)
	done := startRun(t, cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".t", Target: dstName + ".t"}))
	untilStreaming(t, dst)
	execOnOneConn(t, src, `XA START 'x1'`, `INSERT INTO t VALUES (1, 1)`, `XA END 'x1'`, `XA PREPARE 'x1'`, `XA COMMIT 'x1'`)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "XA") {
			t.Fatalf("Run: %v, want an error about the XA transaction", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("Run goes on past an XA PREPARE; target: %v", dump(t, dst, "t", "id"))
	}
}

// TestCopy_ResumeKeepsExactKeys: a copy interrupted after a chunk resumes
// after exactly the last key it saved, for keys JSON would alter: bytes
// that are not UTF-8, and integers beyond 2^53. A review found both
// resumed past rows that were never copied.
func TestCopy_ResumeKeepsExactKeys(t *testing.T) {
	tests := []struct {
		name, keyType string
		keys          []string // SQL literals, in key order
		failAt        string   // the first key of the chunk that fails once
	}{
		{"binary", "VARBINARY(4)", []string{"X'10'", "X'90'", "X'A0'", "X'B0'", "X'F0'"}, "X'A0'"},
		{"bigint", "BIGINT", []string{"1234567890123456898", "1234567890123456899", "1234567890123456900", "1234567890123456901", "1234567890123456902", "1234567890123456903", "1234567890123456904"}, "1234567890123456900"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srcName, dstName, src, dst := dbs(t)
			var rows []string
			for i, k := range tt.keys {
				rows = append(rows, fmt.Sprintf("(%s, %d)", k, i))
			}
			mustExec(t, src, fmt.Sprintf(`CREATE TABLE t (id %s PRIMARY KEY, v INT)`, tt.keyType), "INSERT INTO t VALUES "+strings.Join(rows, ", "))
			// The target refuses the second chunk once, as a crash or a
			// lost connection would end the copy after the first.
			mustExec(t, dst, fmt.Sprintf(`CREATE TABLE t (id %s PRIMARY KEY, v INT)`, tt.keyType),
				`CREATE TABLE fail_once (n INT)`, `INSERT INTO fail_once VALUES (1)`,
				fmt.Sprintf("CREATE TRIGGER boom BEFORE INSERT ON t FOR EACH ROW BEGIN IF NEW.id = %s AND (SELECT COUNT(*) FROM fail_once) > 0 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'interrupted'; END IF; END", tt.failAt))
			cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".t", Target: dstName + ".t"})
			cfg.ChunkRows = 2
			select {
			case err := <-startRun(t, cfg):
				if err == nil || !strings.Contains(err.Error(), "interrupted") {
					t.Fatalf("first run: %v, want the target's refusal", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("first run did not stop")
			}
			if p, err := copyProgress(dst, srcName+".t"); err != nil || p.Rows != 2 || p.Done {
				t.Fatalf("saved progress %+v (%v), want 2 rows copied", p, err)
			}
			mustExec(t, dst, `DELETE FROM fail_once`)
			done := startRun(t, cfg)
			waitEqual(t, 15*time.Second, func() []string { return dump(t, src, "t", "id") }, func() []string { return dump(t, dst, "t", "id") })
			select {
			case err := <-done:
				t.Fatalf("second run ended: %v", err)
			default:
			}
		})
	}
}

// TestStream_BinaryKeyWithTrailingZeros: the binlog carries a BINARY(n)
// value without its trailing zero bytes; the table holds them. Updates
// and deletes by such a key must still find the row (a review found the
// deleted row left in the target).
func TestStream_BinaryKeyWithTrailingZeros(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	for _, db := range []*sql.DB{src, dst} {
		mustExec(t, db, `CREATE TABLE t (id BINARY(4) PRIMARY KEY, code BINARY(3), v INT)`)
	}
	runPipeline(t, cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".t", Target: dstName + ".t"}))
	untilStreaming(t, dst)
	s := func() []string { return dump(t, src, "t", "id") }
	d := func() []string { return dump(t, dst, "t", "id") }
	mustExec(t, src, `INSERT INTO t VALUES (X'01020000', X'0100', 1), (X'0A0B0C0D', X'000000', 2), (X'00000000', NULL, 3)`)
	waitEqual(t, 10*time.Second, s, d)
	mustExec(t, src, `UPDATE t SET v = 10 WHERE id = X'01020000'`, `DELETE FROM t WHERE id = X'00000000'`,
		`UPDATE t SET id = X'0A000000' WHERE id = X'0A0B0C0D'`)
	waitEqual(t, 10*time.Second, s, d)
	if got := len(d()); got != 2 {
		t.Errorf("target has %d rows, want 2: %q", got, d())
	}
}

// TestStream_TextInLegacyCharsets: a ten-year-old schema keeps text in
// latin1 (MySQL's default before 8.0) or gbk. The copy reads it converted
// over SQL; the stream gets the raw bytes and must convert them the same
// way, ENUM labels too (a review found a strict utf8mb4 target refusing
// every streamed row).
func TestStream_TextInLegacyCharsets(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE t (id INT PRIMARY KEY,
		name VARCHAR(20) CHARACTER SET latin1,
		city VARCHAR(20) CHARACTER SET gbk,
		note TEXT CHARACTER SET latin1,
		kind ENUM('crème','brûlée') CHARACTER SET latin1) DEFAULT CHARSET=latin1`,
		`INSERT INTO t VALUES (1, 'café', '上海', 'naïve', 'crème')`)
	mustExec(t, dst, `SET SESSION sql_mode = 'STRICT_ALL_TABLES'`, `CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20), city VARCHAR(20),
		note TEXT, kind ENUM('crème','brûlée')) DEFAULT CHARSET=utf8mb4`)
	runPipeline(t, cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".t", Target: dstName + ".t"}))
	untilStreaming(t, dst)
	mustExec(t, src, `INSERT INTO t VALUES (2, 'Ærø €5', '北京市', 'façade', 'brûlée')`, `UPDATE t SET city = '广州' WHERE id = 1`)
	s := func() []string { return dump(t, src, "t", "id") }
	d := func() []string { return dump(t, dst, "t", "id") }
	waitEqual(t, 10*time.Second, s, d)
	if got := strings.Join(d(), " "); !strings.Contains(got, "Ærø €5") || !strings.Contains(got, "广州") || !strings.Contains(got, "brûlée") {
		t.Errorf("target = %s", got)
	}
}

// TestStream_RollbackWithNonTransactionalTable: when a transaction also
// writes a table without transactions (MyISAM), the server logs it even if
// it rolls back, whole or to a savepoint, with the undone rows in the
// group followed by ROLLBACK or ROLLBACK TO. The rows of the InnoDB table
// were undone and must not land; the MyISAM rows persisted and must (a
// review found the undone rows applied). With spill_rows 1 the rollback
// points fall among changes already in the spill file.
func TestStream_RollbackWithNonTransactionalTable(t *testing.T) {
	for _, spillRows := range []int{0, 1} {
		t.Run(fmt.Sprintf("spill_rows %d", spillRows), func(t *testing.T) { rollbackWithNonTransactionalTable(t, spillRows) })
	}
}

func rollbackWithNonTransactionalTable(t *testing.T, spillRows int) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB`, `CREATE TABLE audit (id INT PRIMARY KEY) ENGINE=MyISAM`)
	mustExec(t, dst, `CREATE TABLE t (id INT PRIMARY KEY, v INT)`, `CREATE TABLE audit (id INT PRIMARY KEY)`)
	cfg := cdcConfig(srcName, dstName,
		routes.TableMapping{Source: srcName + ".t", Target: dstName + ".t"},
		routes.TableMapping{Source: srcName + ".audit", Target: dstName + ".audit"})
	cfg.SpillRows = spillRows
	runPipeline(t, cfg)
	untilStreaming(t, dst)
	conn, err := src.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{
		`BEGIN`, `INSERT INTO t VALUES (1, 1)`, `INSERT INTO audit VALUES (1)`, `SAVEPOINT sp`,
		`INSERT INTO t VALUES (3, 3)`, `INSERT INTO audit VALUES (3)`, `ROLLBACK TO SAVEPOINT sp`, `COMMIT`,
		`BEGIN`, `INSERT INTO t VALUES (7, 7)`, `INSERT INTO audit VALUES (7)`, `ROLLBACK`,
		`INSERT INTO t VALUES (9, 9)`, // a last change to wait for
	} {
		if _, err := conn.ExecContext(context.Background(), q); err != nil && !strings.HasPrefix(q, "ROLLBACK") {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, table := range []string{"t", "audit"} {
		waitEqual(t, 10*time.Second, func() []string { return dump(t, src, table, "id") }, func() []string { return dump(t, dst, table, "id") })
	}
	if got := strings.Join(dump(t, dst, "t", "id"), " ") + " / " + strings.Join(dump(t, dst, "audit", "id"), " "); got != `"1"|"1" "9"|"9" / "1" "3" "7"` {
		t.Errorf("target t / audit = %s", got)
	}
}

// TestCopy_PagesLegacyCharsetKeys: the copy pages a latin1 key by the
// column's collation and writes latin1 text as text. The driver reads text
// as UTF-8 bytes; sent back as bytes (a _binary literal) the server took
// them for latin1: 'Åsa' as the chunk's last key became 'Ã\u0085sa', which
// sorts before it, so the next chunk began at the same row again and the
// copy never ended; and a latin1 target stored 'Ã\u0084sa' for 'Äsa'.
func TestCopy_PagesLegacyCharsetKeys(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	ddl := `CREATE TABLE n (k VARCHAR(10) CHARACTER SET latin1 COLLATE latin1_swedish_ci PRIMARY KEY, v INT)`
	mustExec(t, src, ddl, `INSERT INTO n VALUES ('a', 1), ('z', 2), ('Åsa', 3), ('Äsa', 4), ('Örn', 5)`)
	mustExec(t, dst, ddl)
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".n", Target: dstName + ".n"})
	cfg.ChunkRows = 1
	startRun(t, cfg)
	untilStreaming(t, dst)
	if p, err := copyProgress(dst, srcName+".n"); err != nil || p.Rows != 5 || !p.Done {
		t.Errorf("copy progress %+v (%v), want 5 rows, done", p, err)
	}
	waitEqual(t, 5*time.Second, func() []string { return dump(t, src, "n", "k") }, func() []string { return dump(t, dst, "n", "k") })
}
