package cdc

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPipeline_OutOfMemoryInsideLargeTransaction: the stream reads a
// whole source transaction before it applies it (ADR 0003). With
// cdc.spill_rows above the transaction's size, all of it is held in
// memory, and a child whose address space is capped below what one UPDATE
// of 50,000 rows of 500 bytes then needs runs out of memory while it reads
// that transaction: it must die before writing any of it, with the
// checkpoint before the transaction, so nothing is lost; a child with the
// memory it needs then applies all of it.
func TestPipeline_OutOfMemoryInsideLargeTransaction(t *testing.T) {
	const n = 50000
	cfg, src, dst := bigTable(t, n)
	cfg.SpillRows = 10 * n
	ctx := context.Background()
	target := &Target{DB: dst, Pipeline: "default"}
	before := gtidPos(t, src)
	mustExec(t, src, `UPDATE big SET pad = REPEAT('b', 500)`)
	after := gtidPos(t, src)
	changed := func() int {
		var got int
		if err := dst.QueryRow(`SELECT COUNT(*) FROM big WHERE pad = REPEAT('b', 500)`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		return got
	}

	child := newChildPipeline(t, cfg)
	child.memMB = 64
	child.start()
	exited := make(chan error, 1)
	go func() { exited <- child.cmd.Wait() }()
	select {
	case err := <-exited:
		ws, _ := child.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if err == nil || ws.ExitStatus() == 0 {
			t.Fatalf("the capped child ended cleanly (%v); it was meant to run out of memory", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the capped child still runs after 60 s; it was meant to run out of memory")
	}
	out, err := os.ReadFile(child.log.Name())
	if err != nil {
		t.Fatal(err)
	}
	// Go says "fatal error: out of memory" when the heap cannot grow, and
	// "fatal error: runtime: cannot allocate memory" when a mapping it
	// needs (a heap page, a thread's stack) is refused. Built with -race,
	// the runtime may word a refused heap mapping as an address space
	// collision, or the race detector runs out first ("ThreadSanitizer:
	// out of memory", or "ThreadSanitizer failed to allocate ... (errno:
	// 12)", ENOMEM).
	if o := string(out); !strings.Contains(o, "out of memory") && !strings.Contains(o, "runtime: cannot allocate memory") &&
		!strings.Contains(o, "too many address space collisions for -race mode") &&
		!(strings.Contains(o, "ThreadSanitizer failed to allocate") && strings.Contains(o, "(errno: 12)")) {
		t.Fatalf("the capped child ended, but not out of memory:\n%s", out)
	}
	cp, ok, err := target.Checkpoint(ctx)
	if err != nil || !ok {
		t.Fatalf("checkpoint: %v (found %v)", err, ok)
	}
	if cp.Applied.GTID != before {
		t.Fatalf("checkpoint at %s after the child ran out of memory, want %s, before the transaction", cp.Applied.GTID, before)
	}
	if got := changed(); got != 0 {
		t.Fatalf("the target holds %d rows of the transaction after the child ran out of memory, want none", got)
	}

	child.memMB = 0
	child.start()
	waitFor(t, 120*time.Second, "the transaction to land", func() bool {
		cp, ok, err := target.Checkpoint(ctx)
		return err == nil && ok && cp.Applied.GTID == after
	})
	if got := changed(); got != n {
		t.Fatalf("target holds %d rows of the transaction, want %d", got, n)
	}
}

// TestPipeline_LargeTransactionSpilledWithinCappedMemory: with the default
// cdc.spill_rows, the same UPDATE of 50,000 rows is applied whole by a
// child capped at the 64 MB above its start that the test above shows is
// too little to hold it in memory: the changes past spill_rows wait in a
// temporary file. Before spilling, every start of such a child died at
// the same transaction. The transaction then changes rows 1 and 2 again
// and adds one: their last state must win over the one the UPDATE gave
// them, though the UPDATE's final rows are written in parts (the table
// is applied by final state, at most finalStateRows rows at a time).
func TestPipeline_LargeTransactionSpilledWithinCappedMemory(t *testing.T) {
	const n = 50000
	cfg, src, dst := bigTable(t, n)
	cfg.SpillDir = t.TempDir()
	ctx := context.Background()
	target := &Target{DB: dst, Pipeline: "default"}
	execOnOneConn(t, src, `BEGIN`, `UPDATE big SET pad = REPEAT('b', 500)`,
		`UPDATE big SET pad = 'last' WHERE id = 1`, `DELETE FROM big WHERE id = 2`,
		fmt.Sprintf(`INSERT INTO big VALUES (%d, 'added')`, n+1), `COMMIT`)
	after := gtidPos(t, src)

	child := newChildPipeline(t, cfg)
	child.memMB = 64
	child.start()
	exited := make(chan error, 1)
	go func() { exited <- child.cmd.Wait() }()
	defer func() {
		// Reaped here, not by the child's cleanup: one Wait at a time.
		child.cmd.Process.Kill()
		<-exited
	}()
	landed := func() bool {
		cp, ok, err := target.Checkpoint(ctx)
		return err == nil && ok && cp.Applied.GTID == after
	}
	deadline := time.After(120 * time.Second)
	for !landed() {
		select {
		case err := <-exited:
			exited <- err // for the deferred reap
			out, _ := os.ReadFile(child.log.Name())
			t.Fatalf("the capped child exited (%v) before the transaction landed:\n%s", err, out)
		case <-deadline:
			t.Fatal("the transaction has not landed after 120 s")
		case <-time.After(200 * time.Millisecond):
		}
	}
	var got int
	if err := dst.QueryRow(`SELECT COUNT(*) FROM big WHERE pad = REPEAT('b', 500)`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != n-2 {
		t.Fatalf("target holds %d rows of the UPDATE, want %d", got, n-2)
	}
	if got, want := strings.Join(dump(t, dst, "big WHERE id IN (1, 2, 50001)", "id"), " "), `"1"|"last" "50001"|"added"`; got != want {
		t.Errorf("target rows 1, 2 and %d = %s, want %s", n+1, got, want)
	}
	if ents, err := os.ReadDir(cfg.SpillDir); err != nil || len(ents) != 0 {
		t.Errorf("spill directory holds %v (%v) after the transaction, want nothing", ents, err)
	}
}
