// Package cdc keeps the new services' database consistent with the legacy
// one: an initial copy of the mapped tables, then the source's binlog
// applied as idempotent upserts and deletes, batched into target
// transactions that also store the checkpoint, so a crash at any moment
// resumes with nothing lost and nothing applied twice.
//
// go-mysql sits behind one seam, Source.Stream; everything else sees only
// the Event values defined here.
package cdc

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// Op is a row change kind.
type Op uint8

// Row operations.
const (
	Insert Op = iota + 1
	Update
	Delete
)

func (o Op) String() string {
	switch o {
	case Insert:
		return "insert"
	case Update:
		return "update"
	case Delete:
		return "delete"
	}
	return "unknown"
}

// Position is where in the source's binlog a committed transaction ends:
// a GTID set (MariaDB "0-1-42" style or MySQL UUID sets) and the file:pos
// of the same point. Either is enough to resume; GTID is preferred.
type Position struct {
	GTID string `json:"gtid,omitempty"`
	File string `json:"file,omitempty"`
	Pos  uint32 `json:"pos,omitempty"`
}

// IsZero reports whether the position is unset.
func (p Position) IsZero() bool { return p.GTID == "" && p.File == "" }

func (p Position) String() string {
	var parts []string
	if p.GTID != "" {
		parts = append(parts, "gtid "+p.GTID)
	}
	if p.File != "" {
		parts = append(parts, fmt.Sprintf("%s:%d", p.File, p.Pos))
	}
	if len(parts) == 0 {
		return "(start)"
	}
	return strings.Join(parts, ", ")
}

// Column is one column of a source table as the binlog describes it.
type Column struct {
	Name     string
	Type     byte // MySQL wire type code
	Meta     uint16
	Unsigned bool
}

// Change is one row change on a source table, with full row images.
type Change struct {
	Op     Op
	Schema string
	Table  string
	// Columns describe Before and After, in table order.
	Columns []Column
	Before  []any // Update, Delete
	After   []any // Insert, Update
}

// Tx is one committed source transaction (its mapped-table row changes may
// be empty: the position still advances).
type Tx struct {
	// Changes are the row changes held in memory. When the transaction
	// outgrew cdc.spill_rows, the ones before them are in a spill file:
	// Each reads them all, in order, and Len counts them all.
	Changes []Change
	spilled *spill
	held    int // changes counted against the stream's rowGate
	// End is the position right after the transaction's commit.
	End Position
	// Timestamp is the source commit time (unix seconds), for lag.
	Timestamp uint32
}

// DDL is a schema change statement seen in the binlog.
type DDL struct {
	Schema    string
	Statement string
	End       Position
	Timestamp uint32
}

// Len is the number of row changes, spilled or not.
func (tx *Tx) Len() int {
	if tx.spilled == nil {
		return len(tx.Changes)
	}
	return tx.spilled.n + len(tx.Changes)
}

// Each calls fn with every row change in order, the spilled ones first,
// and stops at fn's first error.
func (tx *Tx) Each(fn func(Change) error) error {
	if tx.spilled != nil {
		if err := tx.spilled.each(fn); err != nil {
			return err
		}
	}
	for _, c := range tx.Changes {
		if err := fn(c); err != nil {
			return err
		}
	}
	return nil
}

// SpilledBytes is the size of the transaction's spill file, 0 without one.
func (tx *Tx) SpilledBytes() int64 {
	if tx.spilled == nil {
		return 0
	}
	return tx.spilled.size
}

// Release frees the transaction's spill file; the Tx must not be read
// after it. A Tx without one is left as it is.
func (tx *Tx) Release() {
	if tx.spilled != nil {
		tx.spilled.close()
		tx.spilled = nil
		tx.Changes = nil
	}
}

// spillPolicy says when a transaction's changes leave memory: once rows of
// them are held (0: never), into a file in dir ("": the system's).
type spillPolicy struct {
	rows int
	dir  string
}

// check moves the changes held in memory to the spill file once there are
// rows of them.
func (p spillPolicy) check(tx *Tx) error {
	if p.rows <= 0 || len(tx.Changes) < p.rows {
		return nil
	}
	if tx.spilled == nil {
		sp, err := newSpill(p.dir)
		if err != nil {
			return err
		}
		tx.spilled = sp
	}
	if err := tx.spilled.write(tx.Changes); err != nil {
		return err
	}
	clear(tx.Changes)
	tx.Changes = tx.Changes[:0]
	return nil
}

// undo drops the changes from the nth on, except those keep returns
// (changes on tables without transactions, which a rollback leaves in
// place). When the nth is in the spill file, the changes are written to a
// new one.
func (p spillPolicy) undo(tx *Tx, n int, keep func([]Change) []Change) error {
	base := tx.Len() - len(tx.Changes)
	if n >= base {
		k := n - base
		tx.Changes = append(tx.Changes[:k:k], keep(tx.Changes[k:])...)
		return nil
	}
	old, mem := tx.spilled, tx.Changes
	defer old.close()
	tx.spilled, tx.Changes = nil, nil
	var rest []Change
	flush := func() error {
		tx.Changes = append(tx.Changes, keep(rest)...)
		rest = rest[:0]
		return p.check(tx)
	}
	i := 0
	err := old.each(func(c Change) error {
		if i++; i <= n {
			tx.Changes = append(tx.Changes, c)
			return p.check(tx)
		}
		if rest = append(rest, c); len(rest) >= max(p.rows, 1) {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	rest = append(rest, mem...)
	return flush()
}

// rowGate bounds the row changes held in memory between the stream and
// the apply. Transactions queued while a batch is applied each held up to
// spill_rows changes, and catching up on a backlog of medium-sized ones
// (a job writing 5,000 rows at a time) filled the queue's 1,024 places:
// gigabytes. A transaction waits for room unless nothing is held, so one
// larger than the limit still passes.
type rowGate struct {
	mu    sync.Mutex
	held  int
	limit int
	freed chan struct{} // one waiter: the stream
}

func newRowGate(limit int) *rowGate {
	return &rowGate{limit: limit, freed: make(chan struct{}, 1)}
}

func (g *rowGate) acquire(ctx context.Context, n int) error {
	for {
		g.mu.Lock()
		if g.held == 0 || g.held+n <= g.limit {
			g.held += n
			g.mu.Unlock()
			return nil
		}
		g.mu.Unlock()
		select {
		case <-g.freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (g *rowGate) release(n int) {
	if n == 0 {
		return
	}
	g.mu.Lock()
	g.held -= n
	g.mu.Unlock()
	select {
	case g.freed <- struct{}{}:
	default:
	}
}
