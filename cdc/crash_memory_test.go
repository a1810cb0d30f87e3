package cdc

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPipeline_OutOfMemoryInsideLargeTransaction: the stream holds a
// source transaction in memory in full before it applies it (ADR 0003,
// "One transaction in memory"). A child whose address space is capped
// below what one UPDATE of 50,000 rows of 500 bytes needs runs out of
// memory while it reads that transaction: it must die before writing any
// of it, with the checkpoint before the transaction, so nothing is lost;
// a child with the memory it needs then applies all of it.
func TestPipeline_OutOfMemoryInsideLargeTransaction(t *testing.T) {
	const n = 50000
	cfg, src, dst := bigTable(t, n)
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
	// Go says "fatal error: out of memory". Built with -race, the runtime
	// words a heap mapping the cap refused as an address space collision,
	// or the race detector runs out first ("ThreadSanitizer: out of
	// memory").
	if !strings.Contains(string(out), "out of memory") && !strings.Contains(string(out), "too many address space collisions for -race mode") {
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
