package cdc

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
	driver "github.com/go-sql-driver/mysql"
)

// The legacy habit of issue 4: a table with cryptic names, money in DECIMAL
// yuan, local (Asia/Shanghai) DATETIMEs and a TINYINT flag, mapped to the new
// service's orders table.
const (
	legacyOrdersDDL = `CREATE TABLE t_order (
		ord_id  INT PRIMARY KEY AUTO_INCREMENT,
		usr_id  INT,
		amt     DECIMAL(10,2),
		created DATETIME,
		status  TINYINT,
		note    VARCHAR(100)
	) DEFAULT CHARSET=utf8mb4`
	newOrdersDDL = `CREATE TABLE orders (
		id          INT PRIMARY KEY,
		user_id     INT,
		total_cents BIGINT,
		created_utc DATETIME,
		paid        BOOL,
		note        VARCHAR(100)
	) DEFAULT CHARSET=utf8mb4`

	// mappedOrders is the source's t_order with the mapping applied in SQL,
	// as a derived table with the target's column names, for dump and
	// checksum. The test servers have no time zone tables, so Asia/Shanghai
	// is written as its fixed offset (UTC+8, no DST since 1991).
	mappedOrders = `(SELECT ord_id AS id, usr_id AS user_id, CAST(ROUND(amt*100) AS SIGNED) AS total_cents,
		CONVERT_TZ(created, '+08:00', '+00:00') AS created_utc, status <> 0 AS paid, note FROM t_order) AS mapped`

	// ordersChecksum is a row count and a checksum over every column,
	// NULLs included, of the target orders table or mappedOrders.
	ordersChecksum = `SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', id, IFNULL(user_id, 'N'), IFNULL(total_cents, 'N'),
		IFNULL(created_utc, 'N'), IFNULL(paid, 'N'), IFNULL(note, 'N')))), 0) FROM %s`
)

func ordersMapping(srcName, dstName string) routes.TableMapping {
	return routes.TableMapping{
		Source:  srcName + ".t_order",
		Target:  dstName + ".orders",
		Columns: map[string]string{"ord_id": "id", "usr_id": "user_id", "amt": "total_cents", "created": "created_utc", "status": "paid"},
		Convert: map[string]string{"amt": "yuan_to_cents", "created": "local_to_utc", "status": "tinyint_to_bool"},
	}
}

// cdcConfig is a pipeline from srcName to dstName on the shared pair, with
// the defaults runPipeline would fill in.
func cdcConfig(srcName, dstName string, tables ...routes.TableMapping) routes.CDCConfig {
	return routes.CDCConfig{
		Source:         routes.CDCSource{DSN: pair.Source.DSN(srcName), Flavor: "mariadb", Position: "gtid", ServerID: 9000 + uint32(time.Now().UnixNano()%1000)},
		Target:         routes.CDCTarget{DSN: pair.Target.DSN(dstName)},
		Tables:         tables,
		BatchRows:      1000,
		ChunkRows:      1000,
		SourceTimezone: "Asia/Shanghai",
	}
}

// randomOrder is one legacy row (usr_id, amt, created, status, note), with
// a NULL now and then.
func randomOrder(rng *rand.Rand) []any {
	maybe := func(v any) any {
		if rng.IntN(40) == 0 {
			return nil
		}
		return v
	}
	sign := ""
	if rng.IntN(20) == 0 {
		sign = "-"
	}
	created := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.Int64N(10*365*24*3600)) * time.Second)
	return []any{
		rng.IntN(10000),
		maybe(fmt.Sprintf("%s%d.%02d", sign, rng.IntN(1000000), rng.IntN(100))),
		maybe(created.Format(time.DateTime)),
		maybe(rng.IntN(3)), // 2 is "true" too
		maybe(fmt.Sprintf("单 %d ✓🎉", rng.IntN(1000000))),
	}
}

// seedOrders inserts n legacy rows with multi-row INSERTs of 1,000.
func seedOrders(tb testing.TB, db *sql.DB, n int, rng *rand.Rand) {
	tb.Helper()
	for done := 0; done < n; {
		k := min(1000, n-done)
		args := make([]any, 0, 5*k)
		for range k {
			args = append(args, randomOrder(rng)...)
		}
		q := "INSERT INTO t_order (usr_id, amt, created, status, note) VALUES " + strings.TrimSuffix(strings.Repeat("(?,?,?,?,?),", k), ",")
		if _, err := db.Exec(q, args...); err != nil {
			tb.Fatalf("seed t_order: %v", err)
		}
		done += k
	}
}

// hitsBase is the first id the writer inserts into hits.
const hitsBase = 1_000_000

// legacyWriter plays the legacy application on the source: inserts,
// updates and deletes of random t_order rows and, now and then, a primary
// key change; once hitsOn is set it also inserts unique ids into hits
// (never updating them). Its statements never run under a cancelled
// context, so every counted statement committed and every committed one is
// counted.
type legacyWriter struct {
	db    *sql.DB
	rng   *rand.Rand
	maxID int64
	// hitsOn starts the hits inserts (nil: never).
	hitsOn *atomic.Bool
	// pace is a pause between steps.
	pace time.Duration
	// observe, when set, sees every t_order statement with the key it
	// addressed, in the writer's goroutine.
	observe func(op string, id int64)

	counts  writerCounts
	nextNeg int64
}

type writerCounts struct {
	Inserts, Updates, Deletes, KeyChanges, Hits int
}

func (c writerCounts) String() string {
	return fmt.Sprintf("%d inserts, %d updates, %d deletes, %d key changes, %d hits", c.Inserts, c.Updates, c.Deletes, c.KeyChanges, c.Hits)
}

func (w *legacyWriter) step() error {
	if w.hitsOn != nil && w.hitsOn.Load() && w.rng.IntN(3) == 0 {
		if _, err := w.db.Exec("INSERT INTO hits (id, v) VALUES (?, ?)", hitsBase+w.counts.Hits, w.rng.IntN(1000)); err != nil {
			return fmt.Errorf("insert hits: %w", err)
		}
		w.counts.Hits++
	}
	id := 1 + w.rng.Int64N(max(w.maxID, 1))
	op := ""
	switch r := w.rng.IntN(100); {
	case r < 35:
		res, err := w.db.Exec("INSERT INTO t_order (usr_id, amt, created, status, note) VALUES (?,?,?,?,?)", randomOrder(w.rng)...)
		if err != nil {
			return fmt.Errorf("insert t_order: %w", err)
		}
		if id, err = res.LastInsertId(); err != nil {
			return err
		}
		w.maxID = max(w.maxID, id)
		op = "insert"
		w.counts.Inserts++
	case r < 75:
		if _, err := w.db.Exec("UPDATE t_order SET usr_id = ?, amt = ?, created = ?, status = ?, note = ? WHERE ord_id = ?", append(randomOrder(w.rng), id)...); err != nil {
			return fmt.Errorf("update t_order: %w", err)
		}
		op = "update"
		w.counts.Updates++
	case r < 93:
		if _, err := w.db.Exec("DELETE FROM t_order WHERE ord_id = ?", id); err != nil {
			return fmt.Errorf("delete t_order: %w", err)
		}
		op = "delete"
		w.counts.Deletes++
	default:
		// Negative keys never collide with AUTO_INCREMENT ones.
		w.nextNeg--
		if _, err := w.db.Exec("UPDATE t_order SET ord_id = ? WHERE ord_id = ?", w.nextNeg, id); err != nil {
			return fmt.Errorf("change key of t_order: %w", err)
		}
		op = "key"
		w.counts.KeyChanges++
	}
	if w.observe != nil {
		w.observe(op, id)
	}
	return nil
}

// start runs the writer until the returned stop is called; stop returns
// what it did and fails tb if a statement failed.
func (w *legacyWriter) start(tb testing.TB) (stop func() writerCounts) {
	if w.maxID == 0 {
		if err := w.db.QueryRow("SELECT COALESCE(MAX(ord_id), 0) FROM t_order").Scan(&w.maxID); err != nil {
			tb.Fatal(err)
		}
	}
	var quit atomic.Bool
	var wg sync.WaitGroup
	var err error
	wg.Go(func() {
		for !quit.Load() {
			if err = w.step(); err != nil {
				return
			}
			if w.pace > 0 {
				time.Sleep(w.pace)
			}
		}
	})
	var once sync.Once
	stop = func() writerCounts {
		once.Do(func() {
			quit.Store(true)
			wg.Wait()
			if err != nil {
				tb.Errorf("legacy writer: %v", err)
			}
		})
		return w.counts
	}
	tb.Cleanup(func() { stop() })
	return stop
}

// copyProgress reads a source table's copy progress from the target (none
// before the pipeline has created its tables).
func copyProgress(dst *sql.DB, sourceTable string) (TableProgress, error) {
	p, err := (&Target{DB: dst, Pipeline: "default"}).Progress(context.Background(), sourceTable)
	if err != nil && strings.Contains(err.Error(), "doesn't exist") {
		return TableProgress{Table: sourceTable}, nil
	}
	return p, err
}

// checksum runs ordersChecksum on table.
func checksum(tb testing.TB, db *sql.DB, table string) string {
	tb.Helper()
	var n, sum int64
	if err := db.QueryRow(fmt.Sprintf(ordersChecksum, table)).Scan(&n, &sum); err != nil {
		tb.Fatal(err)
	}
	return fmt.Sprintf("%d rows, checksum %d", n, sum)
}

func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPipeline_CopyWhileWriting(t *testing.T) {
	began := time.Now()
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, legacyOrdersDDL)
	mustExec(t, dst, newOrdersDDL)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	const existing = 100_000
	seedOrders(t, src, existing, rng)
	t.Logf("%d rows inserted in %v", existing, time.Since(began).Round(time.Millisecond))

	// Updates are classified against the copy's cursor (refreshed every 50
	// statements): ahead of it the row is not copied yet, behind it it is.
	var ahead, behind, beforeDone writerCounts
	var copyDone atomic.Bool
	cursor, seen := int64(0), 0
	w := &legacyWriter{db: src, rng: rand.New(rand.NewPCG(seed, 2)), observe: func(op string, id int64) {
		if copyDone.Load() {
			return
		}
		if seen++; seen%50 == 0 {
			if p, err := copyProgress(dst, srcName+".t_order"); err == nil && len(p.LastPK) == 1 {
				if n, ok := p.LastPK[0].(int64); ok {
					cursor = n
				}
			}
		}
		switch op {
		case "insert":
			beforeDone.Inserts++
		case "delete":
			beforeDone.Deletes++
		case "update":
			beforeDone.Updates++
			if id > cursor {
				ahead.Updates++
			} else {
				behind.Updates++
			}
		}
	}}
	stopWriter := w.start(t)
	copyStart := time.Now()
	stop := runPipeline(t, cdcConfig(srcName, dstName, ordersMapping(srcName, dstName)))

	waitFor(t, 45*time.Second, "the copy to finish", func() bool {
		p, err := copyProgress(dst, srcName+".t_order")
		if err != nil {
			t.Fatal(err)
		}
		return p.Done
	})
	copyDone.Store(true)
	t.Logf("copy done in %v", time.Since(copyStart).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond) // and a bit after
	counts := stopWriter()
	t.Logf("writer: %s; during the copy %d inserts, %d deletes, %d updates (%d of rows not yet copied, %d of copied rows)",
		counts, beforeDone.Inserts, beforeDone.Deletes, beforeDone.Updates, ahead.Updates, behind.Updates)
	if ahead.Updates == 0 || behind.Updates == 0 || beforeDone.Deletes == 0 {
		t.Fatalf("the writer did not update rows on both sides of the copy cursor and delete rows while the copy ran (%d ahead, %d behind, %d deletes): the test proves nothing", ahead.Updates, behind.Updates, beforeDone.Deletes)
	}

	catchUp := time.Now()
	waitEqual(t, 30*time.Second,
		func() []string { return dump(t, src, mappedOrders, "id") },
		func() []string { return dump(t, dst, "orders", "id") })
	t.Logf("caught up %v after the writer stopped", time.Since(catchUp).Round(time.Millisecond))
	if got, want := checksum(t, dst, "orders"), checksum(t, src, mappedOrders); got != want {
		t.Errorf("target orders: %s, want %s", got, want)
	}

	p, err := copyProgress(dst, srcName+".t_order")
	if err != nil {
		t.Fatal(err)
	}
	// The copy saw every pre-existing row it reached before the writer
	// deleted it, and at most the rows inserted while it ran on top.
	if !p.Done || p.Rows < int64(existing-beforeDone.Deletes) || p.Rows > int64(existing+beforeDone.Inserts) {
		t.Errorf("banyan_cdc_copy for t_order: done %v, %d rows; want done, between %d and %d rows", p.Done, p.Rows, existing-beforeDone.Deletes, existing+beforeDone.Inserts)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("copied rows %d; test took %v", p.Rows, time.Since(began).Round(time.Millisecond))
}

// The crash test's child is this test binary run again with childEnv set.
// It is caught in init, before TestMain, which would otherwise start a
// server pair of its own in every child (and leak it on SIGKILL).
const (
	childEnv    = "BANYAN_CDC_CHILD"
	childCfgEnv = "BANYAN_CDC_CHILD_CONFIG"
	// childMemEnv, when set, caps the child's writable memory at that many
	// MiB above what it had at start (RLIMIT_DATA), so it runs out of
	// memory as a host or container limit would make it.
	childMemEnv = "BANYAN_CDC_CHILD_MEM_MB"
)

func init() {
	if os.Getenv(childEnv) == "1" {
		os.Exit(cdcChild())
	}
}

// cdcChild is `banyan cdc run`: Open and Run with the config from the
// environment, until killed or, on SIGTERM, cancelled.
func cdcChild() int {
	var cfg routes.CDCConfig
	if err := json.Unmarshal([]byte(os.Getenv(childCfgEnv)), &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "cdc child: config: %v\n", err)
		return 2
	}
	if mb := os.Getenv(childMemEnv); mb != "" {
		if err := smallThreadStacks(); err != nil {
			fmt.Fprintf(os.Stderr, "cdc child: thread stacks: %v\n", err)
			return 2
		}
		if err := capMemory(mb); err != nil {
			fmt.Fprintf(os.Stderr, "cdc child: cap memory: %v\n", err)
			return 2
		}
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err := Open(ctx, cfg, log)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cdc child: %v\n", err)
		return 1
	}
	defer p.Close()
	if err := p.Run(ctx, false); err != nil {
		fmt.Fprintf(os.Stderr, "cdc child: %v\n", err)
		return 1
	}
	return 0
}

// smallThreadStacks runs the child again, once, with a 512 KiB stack
// limit. With cgo linked in (the default here), each of the runtime's
// threads is a pthread, whose stack glibc sizes by RLIMIT_STACK as the
// process starts: 8 MiB by default, so a few more threads used up the
// address-space cap meant for the heap (a child died with 8 MB of heap in
// use). The runtime runs Go code on stacks of its own; the threads' own
// stacks need little.
func smallThreadStacks() error {
	const limit = 512 << 10
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_STACK, &rl); err != nil {
		return err
	}
	if rl.Cur <= limit {
		return nil
	}
	rl.Cur = limit
	if err := syscall.Setrlimit(syscall.RLIMIT_STACK, &rl); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return syscall.Exec(exe, os.Args, os.Environ())
}

// capMemory limits the process's writable private memory (RLIMIT_DATA,
// which Linux counts over every such mapping) to mb MiB above what it has
// now (VmData). Not its address space (RLIMIT_AS): the Go runtime reserves
// its heap in 64 MiB arenas and glibc its malloc arenas in 64 MiB pieces,
// so one more reservation, none of it in use, ran past a cap of 64 MiB
// with 8 MB of heap in use. Reservations are not writable until used, so
// this cap counts what is used, as a container's limit does.
func capMemory(mb string) error {
	extra, err := strconv.ParseUint(mb, 10, 64)
	if err != nil {
		return err
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return err
	}
	var kb uint64
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmData:"); ok {
			kb, err = strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return err
			}
		}
	}
	if kb == 0 {
		return errors.New("no VmData in /proc/self/status")
	}
	limit := kb<<10 + extra<<20
	return syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: limit, Max: limit})
}

// childPipeline is cfg's pipeline run as a child process (cdcChild) that
// a crash test kills and starts again. Every child's output goes to one
// log file, shown if the test fails; a child still running when the test
// ends is killed.
type childPipeline struct {
	tb  testing.TB
	cfg routes.CDCConfig
	log *os.File
	cmd *exec.Cmd // the child started last
	// memMB, when set, caps the children started next (childMemEnv)
	// and sets their GOMEMLIMIT.
	memMB int
}

// newChildPipeline prepares the child pipeline for cfg; start runs it.
func newChildPipeline(tb testing.TB, cfg routes.CDCConfig) *childPipeline {
	tb.Helper()
	logf, err := os.Create(tb.TempDir() + "/child.log")
	if err != nil {
		tb.Fatal(err)
	}
	c := &childPipeline{tb: tb, cfg: cfg, log: logf}
	tb.Cleanup(func() {
		if c.cmd != nil && c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
		logf.Close()
		if tb.Failed() {
			b, _ := os.ReadFile(logf.Name())
			tb.Logf("child output:\n%s", b)
		}
	})
	return c
}

// start starts a child, its output appended to the log.
func (c *childPipeline) start() {
	c.tb.Helper()
	b, err := json.Marshal(c.cfg)
	if err != nil {
		c.tb.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childCfgEnv+"="+string(b))
	if c.memMB > 0 {
		// GOMEMLIMIT at three quarters of the cap, as a Go service in a
		// container of that size is run: without it the collector lets the
		// heap grow to twice what is live before it collects, and a child
		// with 33 MB live reached the cap for that reason alone.
		cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", childMemEnv, c.memMB), fmt.Sprintf("GOMEMLIMIT=%dMiB", c.memMB*3/4))
	}
	cmd.Stdout, cmd.Stderr = c.log, c.log
	if err := cmd.Start(); err != nil {
		c.tb.Fatal(err)
	}
	c.cmd = cmd
}

// killAndReap sends the child SIGKILL and waits for it, returning Wait's
// error: nil if the child had already exited cleanly. what names the kill
// in a failure.
func (c *childPipeline) killAndReap(what string) error {
	c.tb.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.tb.Fatalf("%s: %v", what, err)
	}
	return c.cmd.Wait()
}

// kill is kill number k: killAndReap, failing the test unless the child
// was still running, since killing a child that had ended tests nothing.
func (c *childPipeline) kill(k int) {
	c.tb.Helper()
	what := fmt.Sprintf("kill %d", k)
	if err := c.killAndReap(what); err == nil || c.cmd.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		c.tb.Fatalf("%s: the child was not running when killed (%v); see its output", what, err)
	}
}

// stop sends the child SIGTERM; it must end cleanly.
func (c *childPipeline) stop() {
	c.tb.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.tb.Fatal(err)
	}
	if err := c.cmd.Wait(); err != nil {
		c.tb.Fatalf("the last child did not stop cleanly on SIGTERM: %v", err)
	}
}

// createOrdersWithAuditedHits creates the legacy t_order on the source
// and orders on the target, and hits on both, the source's holding ids 1
// to 100.
//
// hits in the target has a BEFORE INSERT trigger that counts, per id,
// every row write banyan commits: an INSERT ... ON DUPLICATE KEY UPDATE
// fires it for each row whether the row is new or already there, in
// the same transaction, so a rolled-back batch counts nothing.
//
// What "applied twice" would look like: a source insert committed to
// the target in two target transactions (a batch whose checkpoint did
// not land with it, replayed after the crash). The upsert makes that
// invisible in the rows; the audit counts it (checkHitsWrittenOnce).
func createOrdersWithAuditedHits(tb testing.TB, src, dst *sql.DB) {
	tb.Helper()
	mustExec(tb, src, legacyOrdersDDL,
		`CREATE TABLE hits (id INT PRIMARY KEY, v INT)`,
		`INSERT INTO hits (id, v) SELECT seq, seq FROM seq_1_to_100`)
	mustExec(tb, dst, newOrdersDDL,
		`CREATE TABLE hits (id INT PRIMARY KEY, v INT)`,
		`CREATE TABLE hits_audit (id INT PRIMARY KEY, writes INT NOT NULL)`,
		`CREATE TRIGGER hits_audit BEFORE INSERT ON hits FOR EACH ROW
			INSERT INTO hits_audit (id, writes) VALUES (NEW.id, 1) ON DUPLICATE KEY UPDATE writes = writes + 1`)
}

// waitOrdersAndHitsEqual waits for the target's orders, then its hits, to
// equal the source's.
func waitOrdersAndHitsEqual(tb testing.TB, src, dst *sql.DB) {
	tb.Helper()
	waitEqual(tb, 60*time.Second,
		func() []string { return dump(tb, src, mappedOrders, "id") },
		func() []string { return dump(tb, dst, "orders", "id") })
	waitEqual(tb, 10*time.Second,
		func() []string { return dump(tb, src, "hits", "id") },
		func() []string { return dump(tb, dst, "hits", "id") })
}

// stopHitsWriter stops a legacyWriter by its stop function and returns
// its counts; a writer that inserted no hits rows fails the test, since
// checkHitsWrittenOnce would then prove nothing.
func stopHitsWriter(tb testing.TB, stop func() writerCounts) writerCounts {
	tb.Helper()
	counts := stop()
	tb.Logf("writer: %s", counts)
	if counts.Hits == 0 {
		tb.Fatal("the writer inserted no hits rows: the double-application check proves nothing")
	}
	return counts
}

// checkHitsWrittenOnce fails the test unless the target's audit counts
// each hits row, the 100 seeded ones and the writer's inserted ones,
// written exactly once.
func checkHitsWrittenOnce(tb testing.TB, dst *sql.DB, inserted int) {
	tb.Helper()
	var audited, writes, most int
	if err := dst.QueryRow("SELECT COUNT(*), COALESCE(SUM(writes), 0), COALESCE(MAX(writes), 0) FROM hits_audit").Scan(&audited, &writes, &most); err != nil {
		tb.Fatal(err)
	}
	if want := 100 + inserted; audited != want || writes != want || most != 1 {
		twice := dump(tb, dst, "(SELECT * FROM hits_audit WHERE writes > 1) AS a", "id")
		tb.Errorf("hits rows written to the target: %d ids, %d writes, at most %d per id; want %d ids written once each. Written more than once (id|writes): %v", audited, writes, most, want, twice)
	}
}

// phaseAt reads what a killed child had committed: the checkpoint's phase
// ("none" before the first checkpoint) and the rows t_order's copy holds.
func phaseAt(tb testing.TB, dst *sql.DB, srcName string) (phase string, copied int64, applied Position) {
	tb.Helper()
	cp, ok, err := (&Target{DB: dst, Pipeline: "default"}).Checkpoint(context.Background())
	if err != nil && !strings.Contains(err.Error(), "doesn't exist") {
		tb.Fatal(err)
	}
	if !ok {
		return "none", 0, Position{}
	}
	p, err := copyProgress(dst, srcName+".t_order")
	if err != nil {
		tb.Fatal(err)
	}
	return cp.Phase, p.Rows, cp.Applied
}

func TestPipeline_CrashSafety(t *testing.T) {
	began := time.Now()
	srcName, dstName, src, dst := dbs(t)
	createOrdersWithAuditedHits(t, src, dst)
	// What may legitimately be applied twice (ADR 0003): rows the copy
	// wrote that changed after the copy's start position are replayed by
	// the stream. So the writer inserts into hits only once hits' copy is
	// done (hits is copied first, in one chunk): every one of those
	// inserts is after the start position and after the copy, and must be
	// written exactly once, by the stream. The 100 seeded rows predate the
	// start and are written exactly once, by the copy.
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	const existing = 50_000
	seedOrders(t, src, existing, rng)

	cfg := cdcConfig(srcName, dstName,
		routes.TableMapping{Source: srcName + ".hits", Target: dstName + ".hits"},
		ordersMapping(srcName, dstName))
	cfg.ChunkRows, cfg.BatchRows = 500, 200
	child := newChildPipeline(t, cfg)

	var hitsOn atomic.Bool
	stopWriter := (&legacyWriter{db: src, rng: rand.New(rand.NewPCG(seed, 2)), hitsOn: &hitsOn}).start(t)

	// Kills come at random delays after each start. Once copyKills have
	// landed in the copy, the next child is left to finish it first, so
	// the test's length does not depend on how fast this machine copies;
	// then streamKills more.
	const copyKills, streamKills = 6, 8
	kills := map[string]int{}
	lastCopied := int64(-1)
	for k := 1; kills[PhaseStream] < streamKills; k++ {
		child.start()
		if kills[PhaseCopy] >= copyKills {
			waitFor(t, 60*time.Second, "the copy to finish", func() bool {
				phase, _, _ := phaseAt(t, dst, srcName)
				return phase == PhaseStream
			})
		}
		delay := time.Duration(100+rng.IntN(600)) * time.Millisecond
		if kills[PhaseCopy] < copyKills && !copyDone(t, dst, srcName) {
			// While the copy runs, kill once this child has copied at least
			// one more chunk, a few ms later: on a fast, quiet machine the
			// whole copy can take less than the random delays above.
			start := time.Now()
			waitFor(t, 60*time.Second, "the copy to make progress", func() bool {
				phase, copied, _ := phaseAt(t, dst, srcName)
				return phase == PhaseStream || (phase == PhaseCopy && copied > lastCopied)
			})
			time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
			delay = time.Since(start)
		} else {
			time.Sleep(delay)
		}
		// Two kills in three while streaming wait, after the random delay,
		// for a batch to land and kills right then: the instant a
		// checkpoint written apart from its rows would be missing.
		how := "at random"
		if k%3 != 0 && hitsOn.Load() {
			if phase, _, _ := phaseAt(t, dst, srcName); phase == PhaseStream {
				how = "just after a batch committed"
				from := auditWrites(t, dst)
				for end := time.Now().Add(time.Second); auditWrites(t, dst) == from && time.Now().Before(end); {
				}
			}
		}
		child.kill(k)
		phase, copied, applied := phaseAt(t, dst, srcName)
		kills[phase]++
		t.Logf("kill %d %s after %v: phase %s, t_order rows copied %d, applied up to %s", k, how, delay, phase, copied, applied)
		if phase != "none" && copied < lastCopied {
			t.Fatalf("the copy went back from %d to %d rows after a crash: it started over instead of resuming", lastCopied, copied)
		}
		lastCopied = copied
		if !hitsOn.Load() {
			if p, err := copyProgress(dst, srcName+".hits"); err == nil && p.Done {
				hitsOn.Store(true)
			}
		}
	}
	t.Logf("kills by phase: %v", kills)
	if kills[PhaseCopy] < 2 {
		t.Errorf("only %d kills landed during the copy; want at least 2 (the copy is too fast for the kill delays)", kills[PhaseCopy])
	}

	child.start()
	time.Sleep(500 * time.Millisecond)
	counts := stopHitsWriter(t, stopWriter)
	catchUp := time.Now()
	waitOrdersAndHitsEqual(t, src, dst)
	t.Logf("caught up %v after the writer stopped", time.Since(catchUp).Round(time.Millisecond))
	child.stop()

	if got, want := checksum(t, dst, "orders"), checksum(t, src, mappedOrders); got != want {
		t.Errorf("target orders: %s, want %s", got, want)
	}
	checkHitsWrittenOnce(t, dst, counts.Hits)
	// Resumed, not restarted: a copy that began again from the first key
	// after a crash would count the early chunks twice.
	if p, err := copyProgress(dst, srcName+".t_order"); err != nil || !p.Done || p.Rows > int64(existing+counts.Inserts) {
		t.Errorf("banyan_cdc_copy for t_order: %+v, %v; want done with at most %d rows", p, err, existing+counts.Inserts)
	}
	stats, err := (&Target{DB: dst, Pipeline: "default"}).Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(stats[dstName+".hits"]), fmt.Sprint(map[string]int64{"insert": int64(counts.Hits)}); got != want {
		t.Errorf("banyan_cdc_stats for hits: %s, want %s (each streamed insert counted once)", got, want)
	}
	t.Logf("test took %v", time.Since(began).Round(time.Millisecond))
}

// auditWrites is the number of hits rows the target has committed.
func auditWrites(tb testing.TB, dst *sql.DB) int64 {
	tb.Helper()
	var n int64
	if err := dst.QueryRow("SELECT COALESCE(SUM(writes), 0) FROM hits_audit").Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// startRun opens a pipeline and runs it in the background; the channel
// yields Run's result. It stops when the test ends.
func startRun(tb testing.TB, cfg routes.CDCConfig) <-chan error {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p, err := Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		tb.Fatalf("cdc.Open: %v", err)
	}
	done := make(chan error, 1)
	result := make(chan error, 1)
	go func() { err := p.Run(ctx, false); done <- err; result <- err }()
	tb.Cleanup(func() { cancel(); <-done; p.Close() })
	return result
}

func gtidPos(tb testing.TB, db *sql.DB) string {
	tb.Helper()
	var pos string
	if err := db.QueryRow("SELECT @@GLOBAL.gtid_binlog_pos").Scan(&pos); err != nil {
		tb.Fatal(err)
	}
	return pos
}

func TestPipeline_DDL(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE t (id INT PRIMARY KEY, x INT, y VARCHAR(20))`, `INSERT INTO t VALUES (1, 10, 'a')`)
	mustExec(t, dst, `CREATE TABLE t (id INT PRIMARY KEY, x INT, y VARCHAR(20))`)
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".t", Target: dstName + ".t"})
	done := startRun(t, cfg)
	running := func() {
		t.Helper()
		select {
		case err := <-done:
			t.Fatalf("Run stopped: %v", err)
		default:
		}
	}
	srcRows := func(cols string) func() []string {
		return func() []string { return dump(t, src, "(SELECT "+cols+" FROM t) AS s", "id") }
	}
	dstRows := func() []string { return dump(t, dst, "t", "id") }
	waitEqual(t, 20*time.Second, srcRows("id, x, y"), dstRows)

	t.Run("absorbed", func(t *testing.T) {
		mustExec(t, src,
			`ALTER TABLE t ADD COLUMN z INT`, // not in the target: the mapping was compiled without it
			`ALTER TABLE t ADD INDEX by_y (y)`,
			`INSERT INTO t (id, x, y, z) VALUES (2, 20, 'b', 7)`,
			`UPDATE t SET y = 'a2', z = 8 WHERE id = 1`)
		waitEqual(t, 20*time.Second, srcRows("id, x, y"), dstRows)
		running()
	})

	t.Run("stops", func(t *testing.T) {
		mustExec(t, src, `INSERT INTO t (id, x, y) VALUES (3, 30, 'c')`, `UPDATE t SET x = 21 WHERE id = 2`)
		before := gtidPos(t, src)
		const stmt = "ALTER TABLE t DROP COLUMN x"
		mustExec(t, src, stmt)
		at := gtidPos(t, src)
		mustExec(t, src, `INSERT INTO t (id, y) VALUES (4, 'd')`, `UPDATE t SET y = 'c2' WHERE id = 3`)

		var err error
		select {
		case err = <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("Run goes on after a mapped column was dropped")
		}
		var se *SchemaError
		if !errors.As(err, &se) {
			t.Fatalf("Run: %v, want a *SchemaError", err)
		}
		msg := err.Error()
		for _, want := range []string{srcName + ".t", stmt, at} {
			if !strings.Contains(msg, want) {
				t.Errorf("the error does not name %q:\n%s", want, msg)
			}
		}
		cp, ok, cerr := (&Target{DB: dst, Pipeline: "default"}).Checkpoint(context.Background())
		if cerr != nil || !ok {
			t.Fatalf("checkpoint: %v, %v", ok, cerr)
		}
		if got, want := cp.Applied.GTID, before; got != want {
			t.Errorf("checkpoint after the stop: %s, want %s (just before the DDL, which is %s)", got, want, at)
		}
		// Changes before the statement landed, those after it did not.
		if got, want := strings.Join(dstRows(), "\n"), strings.Join([]string{
			`"1"|"10"|"a2"`, `"2"|"21"|"b"`, `"3"|"30"|"c"`,
		}, "\n"); got != want {
			t.Errorf("target after the stop:\n%s\nwant\n%s", got, want)
		}
	})

	t.Run("operator fixes mapping and target", func(t *testing.T) {
		mustExec(t, dst, `ALTER TABLE t DROP COLUMN x`)
		fixed := cfg
		fixed.Tables = []routes.TableMapping{{Source: srcName + ".t", Target: dstName + ".t", Skip: []string{"z"}}}
		startRun(t, fixed)
		waitEqual(t, 20*time.Second, srcRows("id, y"), dstRows)
	})
}

func TestPipeline_ConnectionCut(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, legacyOrdersDDL)
	mustExec(t, dst, newOrdersDDL)
	rng := rand.New(rand.NewPCG(rand.Uint64(), 1))
	seedOrders(t, src, 1000, rng)
	t.Cleanup(func() { // the pair is shared: never leave the target down
		if pair.Target.Pid() == 0 {
			if err := pair.Target.Restart(context.Background()); err != nil {
				t.Error(err)
			}
		}
	})
	runPipeline(t, cdcConfig(srcName, dstName, ordersMapping(srcName, dstName)))
	stopWriter := (&legacyWriter{db: src, rng: rng, pace: 2 * time.Millisecond}).start(t)
	waitFor(t, 20*time.Second, "streaming", func() bool {
		cp, ok, err := (&Target{DB: dst, Pipeline: "default"}).Checkpoint(context.Background())
		return err == nil && ok && cp.Phase == PhaseStream
	})

	dumpThreads := func(t testing.TB) []int64 {
		rows, err := src.Query(`SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%' ORDER BY ID`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		return ids
	}
	// applied counts the rows streaming has applied to orders.
	applied := func() int64 {
		stats, err := (&Target{DB: dst, Pipeline: "default"}).Stats(context.Background())
		if err != nil {
			return -1 // the target is down
		}
		var n int64
		for _, c := range stats[dstName+".orders"] {
			n += c
		}
		return n
	}
	progresses := func(t testing.TB, what string) {
		t.Helper()
		from := applied()
		waitFor(t, 30*time.Second, "rows applied after "+what, func() bool { return applied() > from+100 })
	}

	t.Run("source connection killed", func(t *testing.T) {
		progresses(t, "start")
		threads := dumpThreads(t)
		if len(threads) != 1 {
			t.Fatalf("binlog dump threads on the source: %v, want the pipeline's one", threads)
		}
		mustExec(t, src, fmt.Sprintf("KILL %d", threads[0]))
		waitFor(t, 20*time.Second, "the pipeline to reconnect", func() bool {
			now := dumpThreads(t)
			return len(now) == 1 && now[0] != threads[0]
		})
		progresses(t, "the reconnect")
	})

	t.Run("target crashed and restarted", func(t *testing.T) {
		before := gtidPos(t, src)
		if err := pair.Target.Kill(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		if err := pair.Target.Restart(context.Background()); err != nil {
			t.Fatal(err)
		}
		if during := gtidPos(t, src); during == before {
			t.Fatal("no source writes while the target was down")
		}
		progresses(t, "the target's restart")
	})

	counts := stopWriter()
	t.Logf("writer: %s", counts)
	waitEqual(t, 30*time.Second,
		func() []string { return dump(t, src, mappedOrders, "id") },
		func() []string { return dump(t, dst, "orders", "id") })
}

// TestPipeline_LocalToUTCWithParseTimeDSN shows that the copy converts
// local DATETIMEs like the stream does when the source DSN asks the driver
// for parseTime=true (testdb's DSNs do, and so do many users').
func TestPipeline_LocalToUTCWithParseTimeDSN(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, legacyOrdersDDL, `INSERT INTO t_order VALUES (1, 7, 12.50, '2026-03-01 08:00:00', 1, 'copied')`)
	mustExec(t, dst, newOrdersDDL)
	cfg := cdcConfig(srcName, dstName, ordersMapping(srcName, dstName))
	if !strings.Contains(cfg.Source.DSN, "parseTime=true") {
		t.Fatalf("testdb DSN %q no longer asks for parseTime: rewrite this test with a DSN that does", cfg.Source.DSN)
	}
	runPipeline(t, cfg)
	mustExec(t, src, `INSERT INTO t_order VALUES (2, 7, 12.50, '2026-03-01 08:00:00', 1, 'streamed')`)
	waitEqual(t, 20*time.Second,
		func() []string { return dump(t, src, mappedOrders, "id") },
		func() []string { return dump(t, dst, "orders", "id") })
}

// TestPipeline_DDLAcrossRestart shows that what the DDL check decided still
// holds when banyan is restarted with the same config and target (a crash,
// a deploy, a supervisor's restart): an absorbed new column stays absorbed,
// and a stop stays a stop until the operator changes something.
func TestPipeline_DDLAcrossRestart(t *testing.T) {
	t.Run("absorbed column", func(t *testing.T) {
		srcName, dstName, src, dst := dbs(t)
		mustExec(t, src, `CREATE TABLE t (id INT PRIMARY KEY, x INT)`, `INSERT INTO t VALUES (1, 10)`)
		mustExec(t, dst, `CREATE TABLE t (id INT PRIMARY KEY, x INT)`)
		cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".t", Target: dstName + ".t"})
		s := func() []string { return dump(t, src, "(SELECT id, x FROM t) AS s", "id") }
		d := func() []string { return dump(t, dst, "t", "id") }
		stop := runPipeline(t, cfg)
		mustExec(t, src, `ALTER TABLE t ADD COLUMN z INT`, `INSERT INTO t VALUES (2, 20, 2)`)
		waitEqual(t, 20*time.Second, s, d)
		if err := stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		runPipeline(t, cfg)
		mustExec(t, src, `INSERT INTO t VALUES (3, 30, 3)`)
		waitEqual(t, 10*time.Second, s, d)
	})
	t.Run("stop", func(t *testing.T) {
		srcName, dstName, src, dst := dbs(t)
		mustExec(t, src, `CREATE TABLE t (id INT PRIMARY KEY, x INT, y INT)`, `INSERT INTO t VALUES (1, 10, 1)`)
		mustExec(t, dst, `CREATE TABLE t (id INT PRIMARY KEY, x INT, y INT)`)
		cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".t", Target: dstName + ".t"})
		done := startRun(t, cfg)
		waitEqual(t, 20*time.Second, func() []string { return dump(t, src, "t", "id") }, func() []string { return dump(t, dst, "t", "id") })
		mustExec(t, src, `ALTER TABLE t DROP COLUMN x`, `INSERT INTO t VALUES (2, 2)`)
		for run := 1; run <= 2; run++ {
			var se *SchemaError
			select {
			case err := <-done:
				if !errors.As(err, &se) {
					t.Fatalf("run %d: Run: %v, want a *SchemaError", run, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("run %d goes on past the DROP COLUMN of a mapped column; target now %v", run, dump(t, dst, "t", "id"))
			}
			done = startRun(t, cfg) // same config, same target
		}
	})
}

// copyDone reports whether the t_order copy has finished.
func copyDone(tb testing.TB, dst *sql.DB, srcName string) bool {
	tb.Helper()
	phase, _, _ := phaseAt(tb, dst, srcName)
	return phase == PhaseStream
}

// TestPipeline_StopAtAnyMomentIsClean stops Run at a spread of moments, from
// its first query through the copy, the switch to streaming and the stream
// itself: every stop must end Run with nil, as its contract says, and the
// runs after it must lose nothing. A stop that landed while the end of the
// copy was being saved used to come back as "save checkpoint: context
// canceled", and one during the copy's first transaction as "start copy:
// sql: transaction has already been committed or rolled back".
func TestPipeline_StopAtAnyMomentIsClean(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE t (id INT PRIMARY KEY, x INT)`)
	mustExec(t, dst, `CREATE TABLE t (id INT PRIMARY KEY, x INT)`)
	var values []string
	for i := 1; i <= 2000; i++ {
		values = append(values, fmt.Sprintf("(%d, %d)", i, i*10))
	}
	mustExec(t, src, "INSERT INTO t VALUES "+strings.Join(values, ","))
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".t", Target: dstName + ".t"})
	cfg.ChunkRows = 50
	p, err := Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("cdc.Open: %v", err)
	}
	defer p.Close()
	streamed := false
	for i := 0; i < 40; i++ {
		mustExec(t, src, fmt.Sprintf("INSERT INTO t VALUES (%d, %d)", 10000+i, i))
		after := time.Duration(i) * 3 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), after)
		err := p.Run(ctx, false)
		cancel()
		if err != nil {
			t.Fatalf("stopped after %v: Run returned %v, want nil", after, err)
		}
		cp, ok, err := p.Target().Checkpoint(context.Background())
		var me *driver.MySQLError
		switch {
		case errors.As(err, &me) && me.Number == 1146:
			// Stopped before Run made its tables: nothing to resume yet.
		case err != nil:
			t.Fatal(err)
		case ok && cp.Phase == PhaseStream:
			streamed = true
		}
	}
	if !streamed {
		t.Fatal("no run got as far as streaming: the stops did not cover the switch from copy to stream")
	}
	runPipeline(t, cfg)
	waitEqual(t, 20*time.Second,
		func() []string { return dump(t, src, "t", "id") },
		func() []string { return dump(t, dst, "t", "id") })
}
