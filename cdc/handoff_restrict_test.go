package cdc

import (
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
)

// TestPipeline_HandoffReplayDeletesRestrictedParent: the stream replays
// from the position read before the copy, onto rows the copy wrote in a
// later state. Order 1 was deleted on the source after that position and
// placed again, with item 10, before the copy read the tables: the replay
// deletes order 1 while the target already holds item 10, copied on the
// new order 1, and the target's foreign key is RESTRICT (or NO ACTION).
// The source never held item 10 on a deleted order; the hand-off must get
// past that delete, not stop every run on it with error 1451, and the
// target must end equal to the source. Order 3, deleted in the same
// statement and placed again too, still cascades to its note on the
// target (the source's cascade is not in its binlog). Past the copy's end a delete the target
// restricts stops the stream again, and the row stays.
func TestPipeline_HandoffReplayDeletesRestrictedParent(t *testing.T) {
	for _, action := range []string{"RESTRICT", "NO ACTION"} {
		t.Run(strings.ReplaceAll(action, " ", "_"), func(t *testing.T) {
			srcName, dstName, src, dst := dbs(t)
			ddl := []string{`CREATE TABLE orders (id INT PRIMARY KEY, v INT)`,
				`CREATE TABLE items (id INT PRIMARY KEY, order_id INT NOT NULL, FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE ` + action + `)`,
				`CREATE TABLE notes (id INT PRIMARY KEY, order_id INT NOT NULL, FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE)`}
			mustExec(t, src, ddl...)
			mustExec(t, dst, ddl...)
			mustExec(t, src, `INSERT INTO orders VALUES (1, 1), (3, 3)`)
			cfg := cdcConfig(srcName, dstName,
				routes.TableMapping{Source: srcName + ".orders", Target: dstName + ".orders"},
				routes.TableMapping{Source: srcName + ".items", Target: dstName + ".items"},
				routes.TableMapping{Source: srcName + ".notes", Target: dstName + ".notes"})
			resetToSourcePosition(t, src, dst)
			mustExec(t, src,
				`INSERT INTO notes VALUES (30, 3)`,
				`DELETE FROM orders WHERE id IN (1, 3)`,
				`INSERT INTO orders VALUES (1, 11), (3, 33)`,
				`INSERT INTO items VALUES (10, 1)`)
			at := gtidPos(t, src)
			done := startRun(t, cfg)
			untilApplied(t, dst, done, at, "orders", "items", "notes")
			checkSameRows(t, src, dst, "orders", "items", "notes")

			// Past the copy's end: a target-only item on order 1 restricts
			// the source's delete of order 1, which stops the stream.
			mustExec(t, dst, `INSERT INTO items VALUES (99, 1)`)
			mustExec(t, src, `DELETE FROM items WHERE id = 10`, `DELETE FROM orders WHERE id = 1`)
			select {
			case err := <-done:
				if !Stopped(err) || !strings.Contains(err.Error(), "(id=1)") {
					t.Fatalf("Run: %v, want a stop naming order id=1", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("Run goes on after the copy window; target orders %v items %v", dump(t, dst, "orders", "id"), dump(t, dst, "items", "id"))
			}
			if got := strings.Join(dump(t, dst, "orders", "id"), " "); !strings.Contains(got, `"1"|"11"`) {
				t.Errorf("target orders = %s, want order 1 kept", got)
			}
		})
	}
}
