package cdc

import (
	"context"
	"database/sql"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
)

// BenchmarkPipeline_BigTransactionMemory measures what one large source
// transaction costs the stream in memory: a table of rows rows (env
// BANYAN_BENCH_TX_ROWS, 200000 by default) with a 500-byte column, all
// rewritten by one UPDATE, the nightly batch job's shape. It reports the
// peak heap in use above the level before the UPDATE (peak-heap-MB,
// sampled every 5 ms), the bytes allocated meanwhile (alloc-MB) and the
// time until the target's checkpoint is past the transaction, and fails
// unless the target then holds every row's new value.
//
//	go test -run '^$' -bench BigTransactionMemory -benchtime 1x ./cdc/
func BenchmarkPipeline_BigTransactionMemory(b *testing.B) {
	n := 200000
	if s := os.Getenv("BANYAN_BENCH_TX_ROWS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatalf("BANYAN_BENCH_TX_ROWS=%q: %v", s, err)
		}
	}
	cfg, src, dst := bigTable(b, n)
	ctx := context.Background()
	target := &Target{DB: dst, Pipeline: "default"}
	done := startRun(b, cfg)
	untilApplied(b, dst, done, gtidPos(b, src), "big")

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		value := string(rune('b' + i%20))
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base, alloc0 := ms.HeapInuse, ms.TotalAlloc
		var peak atomic.Uint64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
		b.StartTimer()
		mustExec(b, src, `UPDATE big SET pad = REPEAT('`+value+`', 500)`)
		at := gtidPos(b, src)
		deadline := time.Now().Add(10 * time.Minute)
		for {
			cp, ok, err := target.Checkpoint(ctx)
			if err == nil && ok && cp.Applied.GTID == at {
				break
			}
			select {
			case err := <-done:
				b.Fatalf("Run stopped: %v", err)
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				b.Fatalf("the transaction of %d rows was not applied in 10 minutes", n)
			}
		}
		b.StopTimer()
		close(stop)
		wg.Wait()
		runtime.ReadMemStats(&ms)
		var got int
		if err := dst.QueryRow(`SELECT COUNT(*) FROM big WHERE pad = REPEAT(?, 500)`, value).Scan(&got); err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("target holds %d rows with the new value, want %d", got, n)
		}
		b.ReportMetric(float64(peak.Load()-min(base, peak.Load()))/(1<<20), "peak-heap-MB")
		b.ReportMetric(float64(ms.TotalAlloc-alloc0)/(1<<20), "alloc-MB")
		b.ReportMetric(float64(n), "rows")
		b.StartTimer()
	}
}

// bigTable gives source and target the same table big of n rows with a
// 500-byte column, and a checkpoint streaming from the source's current
// position: a pipeline for it starts streaming without a copy.
func bigTable(tb testing.TB, n int) (cfg routes.CDCConfig, src, dst *sql.DB) {
	tb.Helper()
	srcName, dstName, src, dst := dbs(tb)
	ddl := `CREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(600) NOT NULL)`
	fill := `INSERT INTO big SELECT seq, REPEAT('a', 500) FROM seq_1_to_` + strconv.Itoa(n)
	mustExec(tb, src, ddl, fill)
	mustExec(tb, dst, ddl, fill)
	cfg = cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".big", Target: dstName + ".big"})
	ctx := context.Background()
	resetToSourcePosition(tb, src, dst)
	target := &Target{DB: dst, Pipeline: "default"}
	cp, _, err := target.Checkpoint(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	cp.Phase, cp.Applied = PhaseStream, cp.Start
	if err := target.SetPhase(ctx, cp); err != nil {
		tb.Fatal(err)
	}
	return cfg, src, dst
}
