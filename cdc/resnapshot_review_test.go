package cdc

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
)

// wrongDeletes records, through the pruneLookedUp hook, every key the
// delete pass called absent from the source.
type wrongDeletes struct {
	mu   sync.Mutex
	keys []string
}

func (w *wrongDeletes) hook(m *TableMap, absent [][]any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range absent {
		parts := make([]string, len(k))
		for i, v := range k {
			if b, ok := v.([]byte); ok {
				parts[i] = fmt.Sprintf("0x%X", b)
			} else {
				parts[i] = fmt.Sprint(v)
			}
		}
		w.keys = append(w.keys, m.TargetTable+":"+strings.Join(parts, ","))
	}
}

func (w *wrongDeletes) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.keys, " ")
}

// TestPipeline_ResnapshotForeignKeys: the target's items reference its
// orders (a foreign key, ON DELETE RESTRICT), and the config lists orders
// before items, as a first copy into such a target needs. While the binlog
// was lost, order 2 and its item were deleted on the source. The delete
// pass of orders must not stop on the item still referencing order 2: the
// resnapshot ends with the target equal to the source.
func TestPipeline_ResnapshotForeignKeys(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE orders (id INT PRIMARY KEY, v INT)`, `INSERT INTO orders VALUES (1, 1)`,
		`CREATE TABLE items (id INT PRIMARY KEY, order_id INT NOT NULL)`, `INSERT INTO items VALUES (10, 1)`)
	mustExec(t, dst, `CREATE TABLE orders (id INT PRIMARY KEY, v INT)`, `INSERT INTO orders VALUES (1, 0), (2, 0)`,
		`CREATE TABLE items (id INT PRIMARY KEY, order_id INT NOT NULL, FOREIGN KEY (order_id) REFERENCES orders (id))`,
		`INSERT INTO items VALUES (10, 1), (20, 2)`)
	cfg := cdcConfig(srcName, dstName,
		routes.TableMapping{Source: srcName + ".orders", Target: dstName + ".orders"},
		routes.TableMapping{Source: srcName + ".items", Target: dstName + ".items"})
	_, done := resnapshot(t, cfg, nil)
	deadline := time.After(20 * time.Second)
	for {
		d := strings.Join(dump(t, dst, "orders", "id"), " ") + " / " + strings.Join(dump(t, dst, "items", "id"), " ")
		if d == `"1"|"1" / "10"|"1"` {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Run ended before the target was equal to the source (target %s): %v", d, err)
		case <-deadline:
			t.Fatalf("target %s, want orders 1 and item 10 only", d)
		case <-time.After(50 * time.Millisecond):
		}
	}
	untilStreaming(t, dst)
}
