package cdc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	driver "github.com/go-sql-driver/mysql"
)

// Settling a unique-key collision while the target holds rows from
// several moments.
//
// The copy reads each chunk at its own moment, and the stream then
// replays from the position read before the copy: until the stream has
// passed the position read when the copy ended (Checkpoint.CopyEnd), a
// target row may hold a later state than the one being written. With a
// secondary unique key, a value the source moved from one row to another
// can then sit on two target rows at once: the replay writes row 1 with
// 'v' (the source held it there for a while) onto a target whose row 2 the
// copy wrote with 'v' (taken later). The source never held 'v' twice, and
// before this, every run stopped on that row for good.
//
// When the source enforces the same unique key (same columns, no
// converter, same collations, no prefix), the row met holds a state the
// source had only later, or never: the stream re-creates it from the
// change that gave it that value (every change carries the full row), or
// the copy does when it reaches it. So, in the copy and in that window
// only, the rows met on such a key under another primary key are deleted
// before the row is written. A key the source does not enforce still
// stops the stream, naming the row: there the source may really hold the
// value twice, and deleting one row would lose it.

// A foreign key on the target meets the same window: an item placed on
// order 2 after the copy's start and removed with its order before the
// copy read either table is replayed onto a target where order 2 never
// arrived (error 1452, at every run). In the window, a row whose
// referenced row is missing is written without the check, that statement
// alone (deletes keep the check, so the target's cascades still run): the
// source later removes it or brings the row it references, as it did
// before the copy read them.

// The other way round: order 1, deleted on the source after the copy's
// start and placed again with item 10 before the copy read either table,
// is deleted by the replay while the target already holds item 10,
// copied on the new order 1. A RESTRICT or NO ACTION key on the target
// refuses that delete (error 1451, at every run), though the source never
// held item 10 on a deleted order. In the window, a row so refused is
// deleted without the check, that row alone: the replay then brings the
// new order 1 back, which item 10 references. The target's cascades do not
// run for that one row; rows the source's cascade took with it, if any,
// stay on the target, where `banyan check` reports them. Nothing the
// source holds is deleted.

// And a row the replay wrote without the check may have gone on the
// source by a cascade, which the binlog does not hold: a note placed on
// order 3 after the copy's start, then order 3 deleted before the copy
// read either table. The replay writes the note onto a target without
// order 3 and then deletes an order that is not there, so the target's
// cascade never ran and the note stayed for good. In the window, a
// delete that finds its row missing writes the row as the source had it
// and deletes it again, so the target's cascades (or SET NULL) act as the
// source's did.

// stillReferenced reports whether err is a foreign key refusing to delete
// a row that another row references (RESTRICT or NO ACTION).
func stillReferenced(err error) bool {
	return serverError(err, 1451, 1217)
}

// missingReferenced reports whether err is a foreign key refusing a row
// whose referenced row is missing.
func missingReferenced(err error) bool {
	return serverError(err, 1452, 1216)
}

// serverError reports whether err is a MySQL server error numbered one of
// codes.
func serverError(err error, codes ...uint16) bool {
	var me *driver.MySQLError
	return errors.As(err, &me) && slices.Contains(codes, me.Number)
}

// unchecked runs write with the session's foreign key checks off, then
// puts back what they were (the copy's connection has them off already).
// When that fails, the connection is broken and the pool drops it.
func unchecked(ctx context.Context, x execer, write func() error) error {
	if _, err := x.ExecContext(ctx, "SET @banyan_fk_checks = @@SESSION.foreign_key_checks, SESSION foreign_key_checks = 0"); err != nil {
		return err
	}
	werr := write()
	// Even when ctx has ended, but not for ever on a target gone silent.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := x.ExecContext(rctx, "SET SESSION foreign_key_checks = @banyan_fk_checks"); err != nil {
		return errors.Join(werr, fmt.Errorf("turn foreign key checks back on: %w", err))
	}
	return werr
}

// settler returns the unique keys of m's target (as indexes into m.Cols)
// that the source enforces too, checked when a collision happens; nil
// means collisions are errors.
type settler func(ctx context.Context, m *TableMap) ([][]int, error)

// collision reports whether err is a write meeting another row on a
// unique key: a duplicate entry, or upsert's guard.
func collision(m *TableMap, err error) bool {
	return serverError(err, 1062) || guardTripped(m, err)
}

// settle writes rows one at a time after deleting, for each, the target
// rows that hold its values of a key in keys under another primary key.
func settle(ctx context.Context, x execer, m *TableMap, rows [][]any, keys [][]int) error {
	for _, r := range rows {
		// Without the foreign key checks: the rows deleted here come back
		// (settle.go's comment), but nothing would bring back the rows a
		// cascade took with them, and a RESTRICT would stop the stream.
		err := unchecked(ctx, x, func() error {
			for _, k := range keys {
				if err := clearUnique(ctx, x, m, k, r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := upsertOrphans(ctx, x, m, [][]any{r}); err != nil {
			return err
		}
	}
	return nil
}

// clearUnique deletes the target rows holding row's values of the unique
// key cols under a primary key other than row's.
func clearUnique(ctx context.Context, x execer, m *TableMap, cols []int, row []any) error {
	var b strings.Builder
	var args []any
	b.WriteString("DELETE FROM ")
	b.WriteString(targetTable(m))
	if slices.ContainsFunc(cols, func(c int) bool { return row[c] == nil }) {
		return nil // NULLs never collide
	}
	b.WriteString(" WHERE ")
	args = writeMatch(&b, m, cols, row, args)
	b.WriteString(" AND NOT (")
	args = writeMatch(&b, m, m.PK, row, args)
	b.WriteString(")")
	if _, err := x.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("clear a unique value for %s: %w", m.TargetName(), err)
	}
	return nil
}

// sharedUniqueKeys returns the unique keys of m's target table, other
// than the mapped key, that the source table enforces as well: every
// column mapped without a converter, the source has a unique key on
// exactly those columns, neither key has a prefix part, and each column
// pair has the same collation.
func sharedUniqueKeys(ctx context.Context, src, dst *sql.DB, m *TableMap) ([][]int, error) {
	tkeys, err := uniqueKeys(ctx, dst, m.TargetSchema, m.TargetTable)
	if err != nil {
		return nil, err
	}
	skeys, err := uniqueKeys(ctx, src, m.SourceSchema, m.SourceTable)
	if err != nil {
		return nil, err
	}
	tcoll, err := collations(ctx, dst, m.TargetSchema, m.TargetTable)
	if err != nil {
		return nil, err
	}
	scoll, err := collations(ctx, src, m.SourceSchema, m.SourceTable)
	if err != nil {
		return nil, err
	}
	var pk []string
	for _, k := range m.PK {
		pk = append(pk, strings.ToLower(m.Cols[k].Target))
	}
	slices.Sort(pk)
	var out [][]int
next:
	for _, tcols := range tkeys {
		if slices.Equal(tcols, pk) {
			continue
		}
		var idx []int
		var scols []string
		for _, tc := range tcols {
			i := slices.IndexFunc(m.Cols, func(c ColMap) bool { return strings.EqualFold(c.Target, tc) })
			if i < 0 || m.Cols[i].Convert != nil || tcoll[tc] != scoll[strings.ToLower(m.Cols[i].Source)] {
				continue next
			}
			idx = append(idx, i)
			scols = append(scols, strings.ToLower(m.Cols[i].Source))
		}
		slices.Sort(scols)
		if slices.ContainsFunc(skeys, func(s []string) bool { return slices.Equal(s, scols) }) {
			out = append(out, idx)
		}
	}
	return out, nil
}

// uniqueKeys lists a table's unique keys without prefix parts, each as
// its sorted lower-case column names.
func uniqueKeys(ctx context.Context, db *sql.DB, schema, table string) ([][]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT INDEX_NAME, COLUMN_NAME, SUB_PART IS NOT NULL FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME`, schema, table)
	if err != nil {
		return nil, fmt.Errorf("read unique keys of %s.%s: %w", schema, table, err)
	}
	defer rows.Close()
	keys := map[string][]string{}
	prefix := map[string]bool{}
	for rows.Next() {
		var index, col string
		var part bool
		if err := rows.Scan(&index, &col, &part); err != nil {
			return nil, err
		}
		keys[index] = append(keys[index], strings.ToLower(col))
		prefix[index] = prefix[index] || part
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out [][]string
	for index, cols := range keys {
		if !prefix[index] {
			slices.Sort(cols)
			out = append(out, cols)
		}
	}
	return out, nil
}

// collations maps a table's lower-case column names to their collation
// ("" for columns without one).
func collations(ctx context.Context, db *sql.DB, schema, table string) (map[string]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME, COALESCE(COLLATION_NAME, '') FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`, schema, table)
	if err != nil {
		return nil, fmt.Errorf("read collations of %s.%s: %w", schema, table, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var col, coll string
		if err := rows.Scan(&col, &coll); err != nil {
			return nil, err
		}
		out[strings.ToLower(col)] = coll
	}
	return out, rows.Err()
}

// reached reports whether the stream at applied has passed end, by GTID
// when the pipeline follows GTIDs, else by file and position.
func reached(flavor string, gtid bool, applied, end Position) bool {
	if gtid {
		a, err1 := mysql.ParseGTIDSet(flavor, applied.GTID)
		e, err2 := mysql.ParseGTIDSet(flavor, end.GTID)
		return err1 == nil && err2 == nil && a.Contain(e)
	}
	if applied.File != end.File {
		return binlogNumber(applied.File) > binlogNumber(end.File)
	}
	return applied.Pos >= end.Pos
}

// binlogNumber is the sequence number a binlog file name ends with.
func binlogNumber(file string) int64 {
	n, _ := strconv.ParseInt(file[strings.LastIndexByte(file, '.')+1:], 10, 64)
	return n
}
