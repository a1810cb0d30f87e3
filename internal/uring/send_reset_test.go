//go:build linux && (amd64 || arm64)

package uring_test

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/banyanhq/banyan/internal/uring"
)

// A Send cut off by a reset after part of it went out: net.Conn's Write
// reports the reset (ECONNRESET/EPIPE, which the proxy's staleConn looks
// for), and so does a Send on the ring, not io.ErrShortWrite.
func TestLoop_SendCutByAReset(t *testing.T) {
	l := startLoop(t)
	_, fd, peer := pipe(t)
	go func() {
		_, _ = io.ReadFull(peer, make([]byte, 1<<20))
		_ = peer.(*net.TCPConn).SetLinger(0)
		peer.Close() // RST
	}()
	type result struct {
		n   int
		err error
	}
	res := make(chan result, 1)
	if err := l.Go(func(task *uring.Task) {
		n, err := task.Send(fd, make([]byte, 64<<20), time.Now().Add(5*time.Second))
		res <- result{n, err}
	}); err != nil {
		t.Fatal(err)
	}
	r := <-res
	t.Logf("Send: n=%d err=%v", r.n, r.err)
	if !errors.Is(r.err, syscall.ECONNRESET) && !errors.Is(r.err, syscall.EPIPE) {
		t.Errorf("Send cut off by a reset: %d, %v; want ECONNRESET or EPIPE as net.Conn gives", r.n, r.err)
	}
}
