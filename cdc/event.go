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
	"fmt"
	"strings"
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
	Changes []Change
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
