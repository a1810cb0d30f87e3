package cdc

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/banyanhq/banyan/routes"
)

// TestPipeline_CopyChildOfParentAddedAfterItsCopy: the target's items
// reference its orders by a foreign key, and the config lists orders
// first, as ADR 0003 asks. While the copy runs, the legacy application
// places an order with its item after the orders table was copied and
// before items is: the copy reads the item, whose order only the stream
// will bring. The copy must get past it, not stop every run at that chunk
// (error 1452), and the target must end equal to the source.
func TestPipeline_CopyChildOfParentAddedAfterItsCopy(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE orders (id INT PRIMARY KEY, v INT)`, `INSERT INTO orders VALUES (1, 1)`,
		`CREATE TABLE items (id INT PRIMARY KEY, order_id INT NOT NULL)`, `INSERT INTO items VALUES (10, 1)`)
	mustExec(t, dst, `CREATE TABLE orders (id INT PRIMARY KEY, v INT)`,
		`CREATE TABLE items (id INT PRIMARY KEY, order_id INT NOT NULL, FOREIGN KEY (order_id) REFERENCES orders (id))`)
	cfg := cdcConfig(srcName, dstName,
		routes.TableMapping{Source: srcName + ".orders", Target: dstName + ".orders"},
		routes.TableMapping{Source: srcName + ".items", Target: dstName + ".items"})

	// The first run copies orders and is stopped there, as a crash or a
	// slow copy of a large orders table would leave it.
	ctx := context.Background()
	p, err := Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.target.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.reconcile(ctx, true); err != nil {
		t.Fatal(err)
	}
	start, err := p.source.Position(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.target.Reset(ctx, start, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.copyTable(ctx, p.order[0]); err != nil {
		t.Fatal(err)
	}
	p.Close()

	mustExec(t, src, `INSERT INTO orders VALUES (2, 2)`, `INSERT INTO items VALUES (20, 2)`)
	at := gtidPos(t, src)
	done := startRun(t, cfg)
	untilApplied(t, dst, done, at, "orders", "items")
	checkSameRows(t, src, dst, "orders", "items")
}

// TestPipeline_HandoffReplayChildOfDeletedParent: the stream replays from
// the position read before the copy. An item placed on order 2 after that
// position, then removed with its order before the copy read either
// table, is replayed onto a target where order 2 never arrived: the
// replay must get past the item's insert (its delete follows), not stop
// every run on it with error 1452, and the target must end equal to the
// source, with the target's cascade still on afterwards.
func TestPipeline_HandoffReplayChildOfDeletedParent(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	mustExec(t, src, `CREATE TABLE orders (id INT PRIMARY KEY, v INT)`, `INSERT INTO orders VALUES (1, 1), (2, 2)`,
		`CREATE TABLE items (id INT PRIMARY KEY, order_id INT NOT NULL, FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE)`,
		`INSERT INTO items VALUES (10, 1)`)
	mustExec(t, dst, `CREATE TABLE orders (id INT PRIMARY KEY, v INT)`,
		`CREATE TABLE items (id INT PRIMARY KEY, order_id INT NOT NULL, FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE)`)
	cfg := cdcConfig(srcName, dstName,
		routes.TableMapping{Source: srcName + ".orders", Target: dstName + ".orders"},
		routes.TableMapping{Source: srcName + ".items", Target: dstName + ".items"})
	resetToSourcePosition(t, src, dst)
	mustExec(t, src, `INSERT INTO items VALUES (20, 2)`, `DELETE FROM items WHERE id = 20`, `DELETE FROM orders WHERE id = 2`)
	at := gtidPos(t, src)
	done := startRun(t, cfg)
	untilApplied(t, dst, done, at, "orders", "items")
	checkSameRows(t, src, dst, "orders", "items")
	// The source's cascade is not in its binlog: deleting order 1 there
	// sends no delete of item 10, and only the target's own cascade can
	// remove it. The replay above must not have left it off.
	mustExec(t, src, `DELETE FROM orders WHERE id = 1`)
	untilApplied(t, dst, done, gtidPos(t, src), "orders", "items")
	checkSameRows(t, src, dst, "orders", "items")
}

// TestPipeline_HandoffReplayChildOfSourceCascade: a note placed on order
// 3 after the copy's start, and removed on the source by the cascade of
// order 3's delete, before the copy read either table. The replay writes
// the note onto a target where order 3 never arrived (without the check,
// as above), and the source's cascade is not in its binlog: only the
// target's cascade on order 3's delete can remove the note, and that
// order is not there to delete. The target must end equal to the source,
// without the note.
func TestPipeline_HandoffReplayChildOfSourceCascade(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	ddl := []string{`CREATE TABLE orders (id INT PRIMARY KEY, v INT)`,
		`CREATE TABLE notes (id INT PRIMARY KEY, order_id INT NOT NULL, FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE)`}
	mustExec(t, src, ddl...)
	mustExec(t, dst, ddl...)
	mustExec(t, src, `INSERT INTO orders VALUES (1, 1), (3, 3)`)
	cfg := cdcConfig(srcName, dstName,
		routes.TableMapping{Source: srcName + ".orders", Target: dstName + ".orders"},
		routes.TableMapping{Source: srcName + ".notes", Target: dstName + ".notes"})
	resetToSourcePosition(t, src, dst)
	mustExec(t, src, `INSERT INTO notes VALUES (30, 3), (10, 1)`, `DELETE FROM orders WHERE id = 3`)
	at := gtidPos(t, src)
	done := startRun(t, cfg)
	untilApplied(t, dst, done, at, "orders", "notes")
	checkSameRows(t, src, dst, "orders", "notes")
}

// TestPipeline_ParentKeyChangeKeepsChildren: the source renumbers order 1
// to 5, and its ON UPDATE CASCADE moves item 10 to order 5 without a row
// in the binlog. The target, with the same foreign key, must end with item
// 10 on order 5 as the source has it: applied as a delete of order 1 and
// an insert of order 5, the delete's ON DELETE CASCADE removed item 10 and
// nothing brought it back.
func TestPipeline_ParentKeyChangeKeepsChildren(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	ddl := []string{`CREATE TABLE orders (id INT PRIMARY KEY, v INT)`,
		`CREATE TABLE items (id INT PRIMARY KEY, order_id INT NOT NULL, FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE ON UPDATE CASCADE)`}
	mustExec(t, src, ddl...)
	mustExec(t, dst, ddl...)
	mustExec(t, src, `INSERT INTO orders VALUES (1, 1), (2, 2)`, `INSERT INTO items VALUES (10, 1), (20, 2)`)
	cfg := cdcConfig(srcName, dstName,
		routes.TableMapping{Source: srcName + ".orders", Target: dstName + ".orders"},
		routes.TableMapping{Source: srcName + ".items", Target: dstName + ".items"})
	done := startRun(t, cfg)
	untilApplied(t, dst, done, gtidPos(t, src), "orders", "items")
	// Past the copy's end, then the renumbering; and a delete still
	// cascades afterwards.
	mustExec(t, src, `UPDATE orders SET id = 5, v = 55 WHERE id = 1`)
	untilApplied(t, dst, done, gtidPos(t, src), "orders", "items")
	checkSameRows(t, src, dst, "orders", "items")
	mustExec(t, src, `DELETE FROM orders WHERE id = 2`)
	untilApplied(t, dst, done, gtidPos(t, src), "orders", "items")
	checkSameRows(t, src, dst, "orders", "items")
}

// TestPipeline_HandoffParentKeyChangeKeepsChildren: the same renumbering
// during the copy. Order 1 and its item 10 are placed after the copy's
// start, then order 1 becomes 5 (the source's cascade moves item 10
// along, without a row in the binlog), before the copy reads the tables:
// the replay writes order 1 and item 10 on it onto a target that already
// holds order 5, copied, and then meets the renumbering. Item 10 must end
// on order 5, not be removed with order 1; so must the items of order 4,
// renumbered to 8 before the copy, and of order 3, renumbered twice.
func TestPipeline_HandoffParentKeyChangeKeepsChildren(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	ddl := []string{`CREATE TABLE orders (id INT PRIMARY KEY, v INT)`,
		`CREATE TABLE items (id INT PRIMARY KEY, order_id INT NOT NULL, FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE ON UPDATE CASCADE)`}
	mustExec(t, src, ddl...)
	mustExec(t, dst, ddl...)
	mustExec(t, src, `INSERT INTO orders VALUES (2, 2), (4, 4)`, `INSERT INTO items VALUES (20, 2), (40, 4)`)
	cfg := cdcConfig(srcName, dstName,
		routes.TableMapping{Source: srcName + ".orders", Target: dstName + ".orders"},
		routes.TableMapping{Source: srcName + ".items", Target: dstName + ".items"})
	resetToSourcePosition(t, src, dst)
	mustExec(t, src,
		// order 4, renumbered before the copy read it: the replay meets
		// the renumbering with order 4 missing and order 8 there
		`UPDATE orders SET id = 8 WHERE id = 4`,
		`INSERT INTO orders VALUES (1, 1)`, `INSERT INTO items VALUES (10, 1)`,
		`UPDATE orders SET id = 5, v = 55 WHERE id = 1`,
		// and one renumbered twice, whose first move the target can
		// take (no order 6 there) and whose second meets order 7, copied
		`INSERT INTO orders VALUES (3, 3)`, `INSERT INTO items VALUES (30, 3)`,
		`UPDATE orders SET id = 6 WHERE id = 3`, `UPDATE orders SET id = 7 WHERE id = 6`)
	at := gtidPos(t, src)
	done := startRun(t, cfg)
	untilApplied(t, dst, done, at, "orders", "items")
	checkSameRows(t, src, dst, "orders", "items")
}
