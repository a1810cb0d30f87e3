package cdc

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
)

// TestPipeline_CrashInsideLargeTransaction: one source transaction many
// times larger than batch_rows (inserts, updates that change the key,
// updates of rows it then deletes, deletes) is streamed by a child killed
// again and again while it applies it. The checkpoint must never land
// inside the transaction: after every kill the target holds either none
// of it or all of it, never a part, and at the end the target equals the
// source.
func TestPipeline_CrashInsideLargeTransaction(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE b (id INT PRIMARY KEY, v INT, tag VARCHAR(10))`)
	mustExec(t, dst, `CREATE TABLE b (id INT PRIMARY KEY, v INT, tag VARCHAR(10))`)
	var values []string
	for i := 1; i <= 2000; i++ {
		values = append(values, fmt.Sprintf("(%d, %d, 'old')", i, i))
	}
	mustExec(t, src, "INSERT INTO b VALUES "+strings.Join(values, ","))
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".b", Target: dstName + ".b"})
	cfg.BatchRows = 100

	child := newChildPipeline(t, cfg)
	child.start()
	waitFor(t, 30*time.Second, "the copy to finish", func() bool {
		phase, _, _ := phaseAt(t, dst, srcName)
		return phase == PhaseStream
	})

	// Each round is one transaction of about 10,000 row changes, all
	// tagged with the round: none or all of them may be in the target.
	rng := rand.New(rand.NewPCG(rand.Uint64(), 1))
	partial := func(round int) (tagged int, done bool) {
		tag := fmt.Sprintf("r%d", round)
		if err := dst.QueryRow(`SELECT COUNT(*) FROM b WHERE tag = ?`, tag).Scan(&tagged); err != nil {
			t.Fatal(err)
		}
		var want int
		if err := src.QueryRow(`SELECT COUNT(*) FROM b WHERE tag = ?`, tag).Scan(&want); err != nil {
			t.Fatal(err)
		}
		return tagged, tagged == want
	}
	const rounds = 4
	for round := 1; round <= rounds; round++ {
		tag := fmt.Sprintf("r%d", round)
		base := 100000 * round
		tx, err := src.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			fmt.Sprintf("INSERT INTO b (id, v, tag) SELECT %d + seq, seq, '%s' FROM seq_1_to_3000", base, tag),
			// key changes of old rows, into the round's range
			fmt.Sprintf("UPDATE b SET id = id + %d + 50000, tag = '%s' WHERE id BETWEEN %d AND %d", base, tag, 1+(round-1)*400, 200+(round-1)*400),
			// rows updated, then deleted, in the same transaction
			fmt.Sprintf("UPDATE b SET v = -v, tag = '%s' WHERE id BETWEEN %d AND %d", tag, base+1, base+1000),
			fmt.Sprintf("DELETE FROM b WHERE id BETWEEN %d AND %d", base+1, base+500),
			fmt.Sprintf("UPDATE b SET v = v + 1, tag = '%s' WHERE id BETWEEN %d AND %d", tag, base+2001, base+3000),
		} {
			if _, err := tx.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		// Kill the child a few times while it applies the transaction.
		for k := 0; k < 3; k++ {
			time.Sleep(time.Duration(50+rng.IntN(250)) * time.Millisecond)
			child.killAndReap(fmt.Sprintf("round %d kill %d", round, k))
			tagged, all := partial(round)
			t.Logf("round %d kill %d: %d rows of the transaction in the target (all: %v)", round, k, tagged, all)
			if tagged != 0 && !all {
				t.Fatalf("round %d: the target holds %d rows of the transaction, a part of it: the checkpoint landed inside it", round, tagged)
			}
			child.start()
		}
		waitFor(t, 30*time.Second, "the transaction to land", func() bool { _, all := partial(round); return all })
	}
	waitEqual(t, 30*time.Second,
		func() []string { return dump(t, src, "b", "id") },
		func() []string { return dump(t, dst, "b", "id") })
}
