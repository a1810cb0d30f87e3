package cdc

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetrics_LagGrowsWhileTargetDown: banyan_cdc_lag_seconds is what an
// alert watches. When the target server stops, the stream retries with
// backoff and nothing lands; the gauge stayed at its last value — 0 for
// a pipeline that was caught up — for as long as the target was gone. It
// must grow while the stream is down and come back once it streams again.
func TestMetrics_LagGrowsWhileTargetDown(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE r (id INT PRIMARY KEY, v INT)`, `INSERT INTO r VALUES (1, 1)`)
	mustExec(t, dst, `CREATE TABLE r (id INT PRIMARY KEY, v INT)`)
	t.Cleanup(func() { // the pair is shared: never leave the target down
		if pair.Target.Pid() == 0 {
			if err := pair.Target.Restart(context.Background()); err != nil {
				t.Error(err)
			}
		}
	})
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".r", Target: dstName + ".r"})
	ctx, cancel := context.WithCancel(context.Background())
	p, err := Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	p.Metrics = NewMetrics(prometheus.NewRegistry())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, false) }()
	t.Cleanup(func() { cancel(); <-done; p.Close() })
	lag := func() float64 { return testutil.ToFloat64(p.Metrics.lag) }

	untilStreaming(t, dst)
	waitFor(t, 10*time.Second, "lag 0 while caught up", func() bool { return lag() == 0 })
	if err := pair.Target.Kill(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, src, `INSERT INTO r VALUES (2, 2)`)
	time.Sleep(4 * time.Second)
	if got := lag(); got < 2 {
		t.Errorf("lag 4 s after the target went down: %.1fs, want at least 2s", got)
	}
	if err := pair.Target.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitEqual(t, 60*time.Second, func() []string { return dump(t, src, "r", "id") }, func() []string { return dump(t, dst, "r", "id") })
	waitFor(t, 10*time.Second, "lag 0 once caught up again", func() bool { return lag() == 0 })
}
