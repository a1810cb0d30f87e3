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
// unless the target then holds every row's new value. BANYAN_BENCH_SPILL_ROWS
// sets cdc.spill_rows (default 10000); above the rows changed, the whole
// transaction is held in memory, the baseline.
//
//	go test -run '^$' -bench BigTransactionMemory -benchtime 1x ./cdc/
func BenchmarkPipeline_BigTransactionMemory(b *testing.B) {
	n := benchEnv(b, "BANYAN_BENCH_TX_ROWS", 200000)
	cfg, src, dst := bigTable(b, n)
	cfg.SpillRows = benchEnv(b, "BANYAN_BENCH_SPILL_ROWS", routes.DefaultSpillRows)
	done := startRun(b, cfg)
	untilApplied(b, dst, done, gtidPos(b, src), "big")

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		value := string(rune('b' + i%20))
		peak := sampleHeap()
		b.StartTimer()
		mustExec(b, src, `UPDATE big SET pad = REPEAT('`+value+`', 500)`)
		untilCheckpoint(b, dst, done, gtidPos(b, src), 10*time.Minute)
		b.StopTimer()
		peak.report(b)
		checkAllRows(b, dst, value, n)
		b.ReportMetric(float64(n), "rows")
		b.StartTimer()
	}
}

// BenchmarkPipeline_BacklogMemory measures what catching up on a backlog
// costs in memory: BANYAN_BENCH_BACKLOG_TXS transactions (default 100),
// each an UPDATE of every row of a table of BANYAN_BENCH_BACKLOG_ROWS rows
// (default 5000, under spill_rows, so none of them spills) with a
// 500-byte column, written while no pipeline runs; then the pipeline
// starts and reads them much faster than it applies them. Reported as
// BigTransactionMemory reports, from before the pipeline starts.
// BANYAN_BENCH_SPILL_ROWS sets cdc.spill_rows, which with batch_rows sets
// how many changes may wait in memory (4 × the larger); set high, that is
// the queue's 1,024 transactions, the baseline.
//
//	go test -run '^$' -bench BacklogMemory -benchtime 1x ./cdc/
func BenchmarkPipeline_BacklogMemory(b *testing.B) {
	n := benchEnv(b, "BANYAN_BENCH_BACKLOG_ROWS", 5000)
	txs := benchEnv(b, "BANYAN_BENCH_BACKLOG_TXS", 100)
	if b.N != 1 {
		b.Fatal("run with -benchtime 1x: each run needs its own backlog")
	}
	cfg, src, dst := bigTable(b, n)
	cfg.SpillRows = benchEnv(b, "BANYAN_BENCH_SPILL_ROWS", routes.DefaultSpillRows)
	b.StopTimer()
	var value string
	for i := range txs {
		value = string(rune('b' + i%20))
		mustExec(b, src, `UPDATE big SET pad = REPEAT('`+value+`', 500)`)
	}
	at := gtidPos(b, src)
	peak := sampleHeap()
	b.StartTimer()
	done := startRun(b, cfg)
	untilCheckpoint(b, dst, done, at, 20*time.Minute)
	b.StopTimer()
	peak.report(b)
	checkAllRows(b, dst, value, n)
	b.ReportMetric(float64(n*txs), "rows")
}

func benchEnv(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		b.Fatalf("%s=%q: %v", name, s, err)
	}
	return v
}

// heapPeak samples the heap in use every 5 ms from its start.
type heapPeak struct {
	base, alloc0 uint64
	peak         atomic.Uint64
	stop         chan struct{}
	wg           sync.WaitGroup
}

func sampleHeap() *heapPeak {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h := &heapPeak{base: ms.HeapInuse, alloc0: ms.TotalAlloc, stop: make(chan struct{})}
	h.wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > h.peak.Load() {
				h.peak.Store(ms.HeapInuse)
			}
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
		}
	})
	return h
}

// report stops the sampling and reports peak-heap-MB and alloc-MB.
func (h *heapPeak) report(b *testing.B) {
	close(h.stop)
	h.wg.Wait()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	peak := h.peak.Load()
	b.ReportMetric(float64(peak-min(h.base, peak))/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(ms.TotalAlloc-h.alloc0)/(1<<20), "alloc-MB")
}

// untilCheckpoint waits until the target's checkpoint is at GTID at.
func untilCheckpoint(b *testing.B, dst *sql.DB, done <-chan error, at string, limit time.Duration) {
	target := &Target{DB: dst, Pipeline: "default"}
	deadline := time.Now().Add(limit)
	for {
		cp, ok, err := target.Checkpoint(context.Background())
		if err == nil && ok && cp.Applied.GTID == at {
			return
		}
		select {
		case err := <-done:
			b.Fatalf("Run stopped: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Fatalf("the target's checkpoint is not at %s after %s", at, limit)
		}
	}
}

// checkAllRows fails unless all n rows of big hold value, 500 times.
func checkAllRows(b *testing.B, dst *sql.DB, value string, n int) {
	var got int
	if err := dst.QueryRow(`SELECT COUNT(*) FROM big WHERE pad = REPEAT(?, 500)`, value).Scan(&got); err != nil {
		b.Fatal(err)
	}
	if got != n {
		b.Fatalf("target holds %d rows with the new value, want %d", got, n)
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
