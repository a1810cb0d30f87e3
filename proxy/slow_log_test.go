package proxy_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banyanhq/banyan/proxy"
)

// stuckLog is a log handler whose writes hang until released, as on a
// pipe nobody drains.
type stuckLog struct {
	entered chan struct{} // a write began
	release chan struct{}
}

func (h *stuckLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *stuckLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *stuckLog) WithGroup(string) slog.Handler            { return h }
func (h *stuckLog) Handle(context.Context, slog.Record) error {
	select {
	case h.entered <- struct{}{}:
	default:
	}
	<-h.release
	return nil
}

// A log write that hangs (a backend down makes every request log) holds
// the connection whose request logs, and no other. On io_uring the fast
// path logs off the loop's thread: on it, every connection of the loop
// would wait.
func TestServer_StuckLogHoldsOnlyItsConnection(t *testing.T) {
	log := newStuckLog()
	up := newBackend(t, "up", pathEcho)
	p, _, _ := newProxyLogging(t, downAndUp(t), log, up)
	holdsOnlyItsConnection(t, p, log, func(stuck *rawClient) {
		stuck.send("GET /down HTTP/1.1\r\nHost: shop\r\n\r\n")
	})
}

// The log of a panic the fast path recovers from is written off the
// loop's thread as well (it was on the loop's before).
func TestServer_StuckPanicLogHoldsOnlyItsConnection(t *testing.T) {
	log := newStuckLog()
	up := newBackend(t, "up", pathEcho)
	p, _, _ := newProxyLogging(t, oneRoute("up"), log, up)
	// The hook runs after an answer went out, so a warm-up's may run
	// after its client has the answer: the stuck request's is the one
	// after every warm-up's.
	var answered atomic.Int64
	warmups := int64(runtime.GOMAXPROCS(0) + 1)
	proxy.SetTestHookAnswered(t, func() {
		if answered.Add(1) == warmups+1 {
			panic("a test's panic")
		}
	})
	holdsOnlyItsConnection(t, p, log, func(stuck *rawClient) {
		if !proxy.WaitFor(5*time.Second, func() bool { return answered.Load() == warmups }) {
			t.Fatalf("%d of the %d warm-ups' answers seen by the hook", answered.Load(), warmups)
		}
		stuck.send("GET /boom HTTP/1.1\r\nHost: shop\r\n\r\n")
	})
}

func newStuckLog() *stuckLog {
	return &stuckLog{entered: make(chan struct{}, 1), release: make(chan struct{})}
}

// holdsOnlyItsConnection serves p on the fast path, opens a connection and
// GOMAXPROCS+1 more, one per loop and one over (they are handed to the loops in turn),
// has one answer on each of the others, then lets makeLog make the first
// write into log, which hangs, and checks that the others are still
// answered meanwhile.
func holdsOnlyItsConnection(t *testing.T, p *proxy.Proxy, log *stuckLog, makeLog func(stuck *rawClient)) {
	t.Helper()
	_, base := serveFastOnly(t, p)
	stuck := dialRaw(t, base)
	others := make([]*rawClient, runtime.GOMAXPROCS(0)+1)
	for i := range others {
		others[i] = dialRaw(t, base)
		resp, body := others[i].do("GET /warm HTTP/1.1\r\nHost: shop\r\n\r\n")
		expect200(t, resp, body, "GET /warm ")
	}
	makeLog(stuck)
	select {
	case <-log.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("nothing was logged")
	}
	defer close(log.release)
	for i, rc := range others {
		_ = rc.c.SetDeadline(time.Now().Add(3 * time.Second))
		resp, body := rc.do(fmt.Sprintf("GET /x%d HTTP/1.1\r\nHost: shop\r\n\r\n", i))
		expect200(t, resp, body, fmt.Sprintf("GET /x%d ", i))
	}
}
