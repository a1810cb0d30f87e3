package cdc

import (
	"math/rand/v2"
	"sync/atomic"
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
	createOrdersWithAuditedHits(t, src, dst)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	seedOrders(t, src, 2000, rng)
	cfg := cdcConfig(srcName, dstName,
		routes.TableMapping{Source: srcName + ".hits", Target: dstName + ".hits"},
		ordersMapping(srcName, dstName))
	cfg.Source.Position = "file"
	cfg.ChunkRows, cfg.BatchRows = 500, 50

	child := newChildPipeline(t, cfg)
	child.start()
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
		child.kill(k)
		_, _, applied := phaseAt(t, dst, srcName)
		t.Logf("kill %d %s: applied up to %s (source at %s)", k, how, applied, masterFile(t, src))
		child.start()
	}
	time.Sleep(300 * time.Millisecond)
	counts := stopHitsWriter(t, stopWriter)
	waitOrdersAndHitsEqual(t, src, dst)
	child.stop()
	if got, want := checksum(t, dst, "orders"), checksum(t, src, mappedOrders); got != want {
		t.Errorf("target orders: %s, want %s", got, want)
	}
	checkHitsWrittenOnce(t, dst, counts.Hits)
}
