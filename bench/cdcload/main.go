// Command cdcload writes to a MariaDB source at a fixed rate of row changes
// (open loop) and measures, end to end, how far behind one or more
// replicated targets are.
//
// Each transaction has the shape of a sysbench oltp_write_only transaction on
// the sysbench tables (sbtestN: one UPDATE of the indexed column k, one
// UPDATE of c, one DELETE and one INSERT of the same id) plus one INSERT into
// a heartbeat table, bench.beat(seq, sent_us), holding the transaction's
// *scheduled* send time: 5 row changes per transaction, so -rate 2000 rows/s
// is 400 transactions/s, one every 2.5 ms. Workers own disjoint ids (id mod
// workers), so transactions never collide and every statement changes
// exactly one row.
//
// Every -sample interval, each target is asked for its newest applied
// heartbeat (SELECT ... ORDER BY seq DESC LIMIT 1); lag = the time the answer
// arrived minus that heartbeat's scheduled send time. Until the first
// heartbeat of this run has arrived, lag counts from the first scheduled
// send. So lag includes the source's own commit time and up to one send
// interval; the source commit latency is reported apart (commit_*).
//
// Output, for bench/cdc.sh: one line for the load and one per target,
// key=value pairs, latencies in milliseconds:
//
//	load rate=2000 duration=60s tx=24000 rows=120000 errors=0 commit_p50=... commit_p99=... late_p99=...
//	target=banyan samples=590 p50=... p90=... p99=... max=... drain=...
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/go-sql-driver/mysql"
)

const rowsPerTx = 5

type targetFlag []string

func (t *targetFlag) String() string     { return strings.Join(*t, ",") }
func (t *targetFlag) Set(v string) error { *t = append(*t, v); return nil }

func main() {
	source := flag.String("source", "", "source DSN (go-sql-driver), required")
	var targets targetFlag
	flag.Var(&targets, "target", "NAME=DSN of a target to sample (repeatable)")
	rate := flag.Int("rate", 2000, "row changes per second (5 per transaction)")
	duration := flag.Duration("duration", 60*time.Second, "how long to write")
	warmup := flag.Duration("warmup", time.Second, "lag samples in the first WARMUP are not counted")
	sample := flag.Duration("sample", 100*time.Millisecond, "lag sampling interval")
	workers := flag.Int("workers", 8, "source connections sending transactions")
	tables := flag.Int("tables", 4, "sysbench tables sbtest1..N")
	tableSize := flag.Int("table-size", 100000, "ids 1..N in each sysbench table")
	db := flag.String("db", "sbtest", "sysbench database")
	drainMax := flag.Duration("drain-timeout", 60*time.Second, "after the load, wait at most this long for the targets to apply its last heartbeat")
	flag.Parse()
	if *source == "" || *rate < rowsPerTx || *workers <= 0 || *duration <= 0 {
		fmt.Fprintln(os.Stderr, "usage: cdcload -source DSN [-target NAME=DSN]... [-rate ROWS/S] [-duration D]")
		os.Exit(2)
	}
	if err := run(*source, targets, *rate, *duration, *warmup, *sample, *workers, *tables, *tableSize, *db, *drainMax); err != nil {
		fmt.Fprintln(os.Stderr, "cdcload:", err)
		os.Exit(1)
	}
}

type target struct {
	name string
	db   *sql.DB
	lags []time.Duration
	errs int
	// drain: from the last scheduled send to the moment the target had
	// applied the last heartbeat (-1: not within the drain timeout).
	drain time.Duration
}

func open(dsn string, conns int) (*sql.DB, error) {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func run(sourceDSN string, targetSpecs []string, rate int, duration, warmup, sample time.Duration, workers, tables, tableSize int, dbName string, drainMax time.Duration) error {
	src, err := open(sourceDSN, workers+1)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer src.Close()
	var ts []*target
	for _, spec := range targetSpecs {
		name, dsn, ok := strings.Cut(spec, "=")
		if !ok {
			return fmt.Errorf("-target %q: want NAME=DSN", spec)
		}
		db, err := open(dsn, 1)
		if err != nil {
			return fmt.Errorf("target %s: %w", name, err)
		}
		defer db.Close()
		ts = append(ts, &target{name: name, db: db})
	}

	ctx := context.Background()
	var base int64
	if err := src.QueryRowContext(ctx, "SELECT COALESCE(MAX(seq), 0) FROM bench.beat").Scan(&base); err != nil {
		return fmt.Errorf("source: read bench.beat: %w", err)
	}

	txRate := float64(rate) / rowsPerTx
	interval := time.Duration(float64(time.Second) / txRate)
	n := int(duration / interval)

	type job struct {
		seq   int64
		sched time.Time
	}
	jobs := make([]chan job, workers)
	for i := range jobs {
		jobs[i] = make(chan job, n/workers+2)
	}
	var (
		mu       sync.Mutex
		commits  []time.Duration // scheduled send -> commit returned
		late     []time.Duration // scheduled send -> worker started
		txOK     atomic.Int64
		txErr    atomic.Int64
		firstErr atomic.Value
	)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
			// An id owned by this worker in 1..tableSize.
			id := func() int {
				k := rng.IntN(tableSize / workers)
				v := k*workers + w + 1
				if v > tableSize {
					v = w + 1
				}
				return v
			}
			for j := range jobs[w] {
				if d := time.Until(j.sched); d > 0 {
					time.Sleep(d)
				}
				started := time.Now()
				err := oneTx(ctx, src, rng, dbName, 1+rng.IntN(tables), id, j.seq, j.sched)
				done := time.Now()
				if err != nil {
					txErr.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				txOK.Add(1)
				mu.Lock()
				commits = append(commits, done.Sub(j.sched))
				late = append(late, started.Sub(j.sched))
				mu.Unlock()
			}
		}()
	}

	start := time.Now().Add(50 * time.Millisecond)
	end := start.Add(time.Duration(n) * interval)
	// Hand out the whole schedule up front: worker i takes every i-th
	// transaction; a worker that falls behind sends late, and the
	// lateness counts.
	for i := range n {
		jobs[i%workers] <- job{seq: base + int64(i) + 1, sched: start.Add(time.Duration(i) * interval)}
	}
	for _, c := range jobs {
		close(c)
	}
	lastSeq := base + int64(n)

	// Samplers.
	var swg sync.WaitGroup
	stop := make(chan struct{})
	for _, t := range ts {
		swg.Add(1)
		go func() {
			defer swg.Done()
			tick := time.NewTicker(sample)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				seq, sent, err := newest(ctx, t.db)
				now := time.Now()
				if err != nil {
					t.errs++
					continue
				}
				if now.Before(start.Add(warmup)) {
					continue
				}
				var lag time.Duration
				if seq > base {
					lag = now.Sub(sent)
				} else {
					lag = now.Sub(start)
				}
				t.lags = append(t.lags, lag)
			}
		}()
	}

	wg.Wait()
	close(stop)
	swg.Wait()

	// Drain: how long after the last scheduled send each target has the
	// last heartbeat (all transactions are committed by now).
	var dwg sync.WaitGroup
	for _, t := range ts {
		dwg.Add(1)
		go func() {
			defer dwg.Done()
			t.drain = -1
			deadline := time.Now().Add(drainMax)
			for time.Now().Before(deadline) {
				seq, _, err := newest(ctx, t.db)
				if err == nil && seq >= lastSeq {
					t.drain = time.Since(end)
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	dwg.Wait()

	elapsed := time.Since(start)
	slices.Sort(commits)
	slices.Sort(late)
	fmt.Printf("load rate=%d duration=%s tx=%d rows=%d errors=%d achieved_rows_per_s=%.0f commit_p50=%.2f commit_p99=%.2f commit_max=%.2f late_p99=%.2f\n",
		rate, duration, txOK.Load(), txOK.Load()*rowsPerTx, txErr.Load(),
		float64(txOK.Load()*rowsPerTx)/min(elapsed, end.Sub(start)+time.Second).Seconds(),
		pct(commits, 0.5), pct(commits, 0.99), pct(commits, 1), pct(late, 0.99))
	for _, t := range ts {
		slices.Sort(t.lags)
		drain := "none"
		if t.drain >= 0 {
			drain = fmt.Sprintf("%.1f", ms(t.drain))
		}
		fmt.Printf("target=%s samples=%d sample_errors=%d p50=%.1f p90=%.1f p99=%.1f max=%.1f drain=%s\n",
			t.name, len(t.lags), t.errs, pct(t.lags, 0.5), pct(t.lags, 0.9), pct(t.lags, 0.99), pct(t.lags, 1), drain)
	}
	if e := firstErr.Load(); e != nil {
		fmt.Fprintln(os.Stderr, "cdcload: first transaction error:", e)
	}
	if txOK.Load() == 0 {
		return errors.New("no transaction committed")
	}
	return nil
}

// newest returns the newest heartbeat a target has applied.
func newest(ctx context.Context, db *sql.DB) (seq int64, sent time.Time, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var us int64
	err = db.QueryRowContext(ctx, "SELECT seq, sent_us FROM bench.beat ORDER BY seq DESC LIMIT 1").Scan(&seq, &us)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	return seq, time.UnixMicro(us), err
}

const letters = "0123456789abcdefghijklmnopqrstuvwxyz"

func randStr(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[rng.IntN(len(letters))]
	}
	return string(b)
}

// oneTx is a sysbench oltp_write_only transaction on sbtest<t> plus the
// heartbeat: exactly 5 row changes.
func oneTx(ctx context.Context, db *sql.DB, rng *rand.Rand, dbName string, t int, id func() int, seq int64, sched time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	tbl := fmt.Sprintf("`%s`.`sbtest%d`", dbName, t)
	did := id()
	stmts := []struct {
		q    string
		args []any
	}{
		{"UPDATE " + tbl + " SET k = k + 1 WHERE id = ?", []any{id()}},
		{"UPDATE " + tbl + " SET c = ? WHERE id = ?", []any{randStr(rng, 119), id()}},
		{"DELETE FROM " + tbl + " WHERE id = ?", []any{did}},
		{"INSERT INTO " + tbl + " (id, k, c, pad) VALUES (?, ?, ?, ?)", []any{did, rng.IntN(100000), randStr(rng, 119), randStr(rng, 59)}},
		{"INSERT INTO bench.beat (seq, sent_us) VALUES (?, ?)", []any{seq, sched.UnixMicro()}},
	}
	for _, s := range stmts {
		res, err := tx.ExecContext(ctx, s.q, s.args...)
		if err != nil {
			return fmt.Errorf("%s: %w", s.q, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("%s %v: %d rows changed, want 1", s.q, s.args[len(s.args)-1], n)
		}
	}
	return tx.Commit()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pct returns the p-quantile of sorted ds in milliseconds.
func pct(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	i := int(p*float64(len(ds))+0.5) - 1
	i = max(0, min(i, len(ds)-1))
	return ms(ds[i])
}
