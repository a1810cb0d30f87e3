//go:build linux && (amd64 || arm64)

package uring_test

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/banyanhq/banyan/internal/uring"
)

// The receive of a SendRecv whose deadline passes while the linked send
// is still going (the peer reads slowly) must still end at its deadline
// once the send completes. The loop's ASYNC_CANCEL cannot reach a linked
// request the kernel has not started, and the timer is gone by then.
func TestLoop_SendRecvDeadlinePassesDuringTheSend(t *testing.T) {
	l := startLoop(t)
	_, fd, peer := pipe(t)
	big := make([]byte, 32<<20) // more than the socket buffers hold
	go func() {
		time.Sleep(600 * time.Millisecond) // past the receive's deadline
		_, _ = io.ReadFull(peer, make([]byte, len(big)))
		// and never answers
	}()
	type result struct {
		sent, n    int
		serr, rerr error
		elapsed    time.Duration
	}
	res := make(chan result, 1)
	if err := l.Go(func(task *uring.Task) {
		start := time.Now()
		sent, serr, n, rerr := task.SendRecv(fd, big, time.Time{}, fd, make([]byte, 8), start.Add(200*time.Millisecond))
		res <- result{sent, n, serr, rerr, time.Since(start)}
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-res:
		if r.serr != nil || !errors.Is(r.rerr, os.ErrDeadlineExceeded) {
			t.Fatalf("sent %d (%v), got %d (%v) after %v; want the receive's os.ErrDeadlineExceeded", r.sent, r.serr, r.n, r.rerr, r.elapsed)
		}
	case <-time.After(4 * time.Second):
		peer.Close() // lets the task end (EOF) so the loop can close
		r := <-res
		t.Fatalf("SendRecv with a 200 ms receive deadline had not returned after 4 s (the send was done at ~0.6 s); "+
			"once the peer closed: sent %d (%v), got %d (%v) after %v", r.sent, r.serr, r.n, r.rerr, r.elapsed)
	}
}
