package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/internal/testdb"
)

// TestCDCCmd_ResnapshotLeavesTargetEqual: rows deleted on the source while
// banyan could not follow the binlog are gone from the target after
// `banyan cdc run --resnapshot`, which says how many it deleted per table
// (in its log and in `banyan cdc status`), and `banyan check` then finds
// the tables consistent. A resnapshot
// streams from a new position, so the deletes made before it are never
// replayed, exactly as when the binlog holding them was purged
// (TestPipeline_PurgedBinlog purges it for real).
func TestCDCCmd_ResnapshotLeavesTargetEqual(t *testing.T) {
	testdb.Need(t, pair)
	ctx := context.Background()
	src, dst, srcDB, dstDB := tempDBs(t)
	mustExecDB(t, src, `CREATE TABLE t_order (ord_id INT PRIMARY KEY, usr_id INT, amt DECIMAL(10,2), memo VARCHAR(50))`,
		`INSERT INTO t_order VALUES (1, 7, 12.50, 'a'), (2, 8, 0.99, 'b'), (3, 9, 1.00, 'c'), (4, 9, 2.00, 'd'), (5, 9, 3.00, 'e')`)
	mustExecDB(t, dst, `CREATE TABLE orders (id INT PRIMARY KEY, user_id INT, total_cents BIGINT)`)
	path := filepath.Join(t.TempDir(), "banyan.yaml")
	writeOrdersCDC(t, path, 7321, srcDB, dstDB)

	// First run: copy, stream, stop.
	runCtx, cancel := context.WithCancel(ctx)
	var errb syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(runCtx, []string{"cdc", "run", "--config", path}, &bytes.Buffer{}, &errb) }()
	waitStreaming(t, path, &errb)
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("cdc run exit %d\n%s", code, errb.String())
	}

	// While banyan is down, orders are deleted, added and changed.
	mustExecDB(t, src, `DELETE FROM t_order WHERE ord_id IN (2, 4)`, `INSERT INTO t_order VALUES (6, 1, 5.00, 'f')`, `UPDATE t_order SET amt = 9.99 WHERE ord_id = 1`)

	runCtx, cancel = context.WithCancel(ctx)
	defer cancel()
	var rerr syncBuffer
	done = make(chan int, 1)
	go func() {
		done <- run(runCtx, []string{"cdc", "run", "--config", path, "--resnapshot"}, &bytes.Buffer{}, &rerr)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(rerr.String(), "initial copy done; streaming") {
		if time.Now().After(deadline) {
			t.Fatalf("resnapshot did not finish its copy; stderr:\n%s", rerr.String())
		}
		select {
		case code := <-done:
			t.Fatalf("cdc run --resnapshot exit %d\n%s", code, rerr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	log := rerr.String()
	for _, want := range []string{
		fmt.Sprintf(`msg="cdc: resnapshot removed the target rows the source no longer has" table=%s.t_order target=%s.orders checked=5 deleted=2`, srcDB, dstDB),
		fmt.Sprintf("resnapshot: look up %s.orders keys on the source 5/5 rows", dstDB),
	} {
		if !strings.Contains(log, want) {
			t.Errorf("cdc run --resnapshot stderr lacks %q:\n%s", want, log)
		}
	}

	var status, serr bytes.Buffer
	if code := run(ctx, []string{"cdc", "status", "--config", path}, &status, &serr); code != exitOK {
		t.Fatalf("cdc status exit %d\n%s", code, serr.String())
	}
	if !regexp.MustCompile(`(?m)^RESNAPSHOT TABLE\s+KEYS LOOKED UP\s+DELETED \(GONE FROM SOURCE\)\s+DONE\n` + regexp.QuoteMeta(srcDB) + `\.t_order\s+5\s+2\s+true$`).MatchString(status.String()) {
		t.Errorf("cdc status does not show the resnapshot's 2 deletes from %s.t_order:\n%s", srcDB, status.String())
	}

	var out, cerr bytes.Buffer
	if code := run(ctx, []string{"check", "--config", path, "--recheck-after", "100ms"}, &out, &cerr); code != exitOK {
		t.Errorf("banyan check after the resnapshot: exit %d, want %d (consistent)\n%s%s", code, exitOK, out.String(), cerr.String())
	}
	var ids []string
	rows, err := dst.Query(`SELECT id, total_cents FROM orders ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, cents int64
		rows.Scan(&id, &cents)
		ids = append(ids, fmt.Sprintf("%d:%d", id, cents))
	}
	rows.Close()
	if got, want := strings.Join(ids, " "), "1:999 3:100 5:300 6:500"; got != want {
		t.Errorf("target orders %s, want %s", got, want)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("cdc run --resnapshot exit %d after the stop\n%s", code, rerr.String())
	}
}
