package cdc

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
)

// TestPipeline_CrashSafetyByFilePosition is TestPipeline_CrashSafety's
// streaming half with file:pos checkpoints, and with the binlog rotated
// (FLUSH BINARY LOGS) just before half of the kills, or once the
// checkpoint has followed the rotation: the checkpoint's
// file:pos, a new file's opening events and a rotation that has or has
// not reached the checkpoint are where a file:pos resume could skip or
// repeat a transaction. After every kill the next child resumes; at the
// end the target equals the source and every hits row the stream wrote
// was written exactly once (the audit trigger counts each write).
func TestPipeline_CrashSafetyByFilePosition(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, legacyOrdersDDL,
		`CREATE TABLE hits (id INT PRIMARY KEY, v INT)`,
		`INSERT INTO hits (id, v) SELECT seq, seq FROM seq_1_to_100`)
	mustExec(t, dst, newOrdersDDL,
		`CREATE TABLE hits (id INT PRIMARY KEY, v INT)`,
		`CREATE TABLE hits_audit (id INT PRIMARY KEY, writes INT NOT NULL)`,
		`CREATE TRIGGER hits_audit BEFORE INSERT ON hits FOR EACH ROW
			INSERT INTO hits_audit (id, writes) VALUES (NEW.id, 1) ON DUPLICATE KEY UPDATE writes = writes + 1`)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	seedOrders(t, src, 2000, rng)
	cfg := cdcConfig(srcName, dstName,
		routes.TableMapping{Source: srcName + ".hits", Target: dstName + ".hits"},
		ordersMapping(srcName, dstName))
	cfg.Source.Position = "file"
	cfg.ChunkRows, cfg.BatchRows = 500, 50

	logf, err := os.Create(t.TempDir() + "/child.log")
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	var child *exec.Cmd
	t.Cleanup(func() {
		if child != nil && child.ProcessState == nil {
			child.Process.Kill()
			child.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("child output:\n%s", b)
		}
	})
	child = startChild(t, cfg, logf)
	waitFor(t, 60*time.Second, "the copy to finish", func() bool { return copyDone(t, dst, srcName) })
	// Every hits insert from here is after the copy: the stream writes it,
	// once.
	var hitsOn atomic.Bool
	hitsOn.Store(true)
	stopWriter := (&legacyWriter{db: src, rng: rand.New(rand.NewPCG(seed, 2)), hitsOn: &hitsOn, pace: time.Millisecond}).start(t)

	const kills = 8
	for k := 1; k <= kills; k++ {
		// Each child first applies something of its own, then is killed
		// a random moment later, or right after a rotation, or once the
		// rotation has reached the checkpoint.
		_, _, was := phaseAt(t, dst, srcName)
		waitFor(t, 30*time.Second, "the child to apply a batch", func() bool {
			_, _, now := phaseAt(t, dst, srcName)
			return now != was
		})
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		how := "at random"
		switch k % 4 {
		case 2:
			mustExec(t, src, `FLUSH BINARY LOGS`)
			time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
			how = "just after a rotation"
		case 0:
			mustExec(t, src, `FLUSH BINARY LOGS`)
			file := masterFile(t, src)
			waitFor(t, 30*time.Second, "the checkpoint to reach "+file, func() bool {
				_, _, now := phaseAt(t, dst, srcName)
				return now.File == file
			})
			how = "once the checkpoint reached the new file"
		}
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", k, err)
		}
		if err := child.Wait(); err == nil || child.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("kill %d: the child was not running when killed (%v); see its output", k, err)
		}
		_, _, applied := phaseAt(t, dst, srcName)
		t.Logf("kill %d %s: applied up to %s (source at %s)", k, how, applied, masterFile(t, src))
		child = startChild(t, cfg, logf)
	}
	time.Sleep(300 * time.Millisecond)
	counts := stopWriter()
	t.Logf("writer: %s", counts)
	if counts.Hits == 0 {
		t.Fatal("the writer inserted no hits rows: the double-application check proves nothing")
	}
	waitEqual(t, 60*time.Second,
		func() []string { return dump(t, src, mappedOrders, "id") },
		func() []string { return dump(t, dst, "orders", "id") })
	waitEqual(t, 10*time.Second,
		func() []string { return dump(t, src, "hits", "id") },
		func() []string { return dump(t, dst, "hits", "id") })
	if err := child.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := child.Wait(); err != nil {
		t.Fatalf("the last child did not stop cleanly on SIGTERM: %v", err)
	}
	if got, want := checksum(t, dst, "orders"), checksum(t, src, mappedOrders); got != want {
		t.Errorf("target orders: %s, want %s", got, want)
	}
	var audited, writes, most int
	if err := dst.QueryRow("SELECT COUNT(*), COALESCE(SUM(writes), 0), COALESCE(MAX(writes), 0) FROM hits_audit").Scan(&audited, &writes, &most); err != nil {
		t.Fatal(err)
	}
	if want := 100 + counts.Hits; audited != want || writes != want || most != 1 {
		twice := dump(t, dst, "(SELECT * FROM hits_audit WHERE writes > 1) AS a", "id")
		t.Errorf("hits rows written to the target: %d ids, %d writes, at most %d per id; want %d ids written once each. Written more than once (id|writes): %v", audited, writes, most, want, twice)
	}
}
