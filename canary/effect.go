package canary

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/banyanhq/banyan/diff"
)

// effectRowLimit bounds the rows of one written table held in memory to
// list what a write changed. A larger table, or a write inserting more
// rows, is compared by net row count and checksum only. A variable so
// that tests can lower it.
var effectRowLimit int64 = 100_000

// effect is what one write did to the table it writes, read inside its
// transaction just before the rollback.
type effect struct {
	key  string // schema.table, pairs the two sides
	name string // as the statement named it
	// rows holds one row per deleted or inserted row (an UPDATE is both):
	// a "change" column, then the table's columns. Only when exact.
	rows  diff.Rows
	exact bool
	net   int64  // rows after − rows before
	sum   uint64 // Σ hash(row after) − Σ hash(row before), mod 2^64
}

// generated stands in an effect for an AUTO_INCREMENT value above the
// column's largest value before the write: the server generates it, and
// InnoDB does not roll the counter back, so old and new get different
// values for the same insert.
const generated = "(generated)"

// snapshot is a table's contents before a write.
type snapshot struct {
	table Table
	key   string
	rows  map[string]*counted // nil when the table holds more than effectRowLimit rows
	count int64
	sum   uint64
	// auto is the AUTO_INCREMENT column's index (-1 for none), autoMax
	// its largest value before the write.
	auto    int
	autoMax uint64
}

type counted struct {
	vals []any
	n    int
}

// takeSnapshot reads table t in full on q (inside the write's
// transaction), keeping its rows when there are at most effectRowLimit.
func takeSnapshot(ctx context.Context, q querier, t Table, current string) (*snapshot, error) {
	schema := cmp.Or(t.Schema, current)
	s := &snapshot{table: t, key: schema + "." + t.Name, rows: map[string]*counted{}, auto: -1}
	var auto sql.NullInt64
	err := q.QueryRowContext(ctx, "SELECT ORDINAL_POSITION - 1 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?"+
		" AND TABLE_NAME = ? AND EXTRA LIKE '%auto_increment%'", schema, t.Name).Scan(&auto)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	if auto.Valid {
		s.auto = int(auto.Int64)
	}
	_, _, err = scanTable(ctx, q, t, nil, func(key string, vals []any) {
		if v, ok := autoValue(vals, s.auto); ok {
			s.autoMax = max(s.autoMax, v)
		}
		s.count++
		s.sum += rowHash(key)
		if s.rows == nil {
			return
		}
		if s.count > effectRowLimit {
			s.rows = nil
			return
		}
		c := s.rows[key]
		if c == nil {
			c = &counted{vals: vals}
			s.rows[key] = c
		}
		c.n++
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// effect reads the table again after the write and returns the change.
// It consumes the snapshot.
func (s *snapshot) effect(ctx context.Context, q querier) (effect, error) {
	e := effect{key: s.key, name: s.table.String(), exact: s.rows != nil}
	var inserted [][]any
	var count int64
	var sum uint64
	mask := func(vals []any) {
		if v, ok := autoValue(vals, s.auto); ok && v > s.autoMax {
			vals[s.auto] = generated
		}
	}
	cols, types, err := scanTable(ctx, q, s.table, mask, func(key string, vals []any) {
		count++
		sum += rowHash(key)
		if !e.exact {
			return
		}
		if c := s.rows[key]; c != nil && c.n > 0 {
			c.n--
			return
		}
		if int64(len(inserted)) >= effectRowLimit {
			e.exact, inserted = false, nil
			return
		}
		inserted = append(inserted, vals)
	})
	if err != nil {
		return effect{}, err
	}
	e.net, e.sum = count-s.count, sum-s.sum
	if !e.exact {
		return e, nil
	}
	e.rows.Columns = append([]string{"change"}, cols...)
	e.rows.Types = append([]string{"VARCHAR"}, types...)
	keys := make([]string, 0, len(s.rows))
	for k, c := range s.rows {
		if c.n > 0 {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		c := s.rows[k]
		for range c.n {
			e.rows.Values = append(e.rows.Values, append([]any{"deleted"}, c.vals...))
		}
	}
	for _, v := range inserted {
		e.rows.Values = append(e.rows.Values, append([]any{"inserted"}, v...))
	}
	return e, nil
}

// autoValue returns the AUTO_INCREMENT column's value in a row.
func autoValue(vals []any, i int) (uint64, bool) {
	if i < 0 || i >= len(vals) {
		return 0, false
	}
	switch x := vals[i].(type) {
	case string:
		v, err := strconv.ParseUint(x, 10, 64)
		return v, err == nil
	case int64:
		return uint64(x), x >= 0
	case uint64: // BIGINT UNSIGNED
		return x, true
	}
	return 0, false
}

// scanTable streams every row of t to fn with its canonical key; mask,
// when set, may rewrite a row before its key is made; fn may keep vals.
func scanTable(ctx context.Context, q querier, t Table, mask func([]any), fn func(key string, vals []any)) (cols, types []string, err error) {
	name := quoteIdent(t.Name)
	if t.Schema != "" {
		name = quoteIdent(t.Schema) + "." + name
	}
	return eachRow(ctx, q, "SELECT * FROM "+name, func(vals []any) {
		if mask != nil {
			mask(vals)
		}
		fn(rowKey(vals), vals)
	})
}

// rowKey encodes a row so that two rows share a key only when every value
// is the same, NULL distinct from any string.
func rowKey(vals []any) string {
	var b strings.Builder
	for _, v := range vals {
		switch x := v.(type) {
		case nil:
			b.WriteString("N;")
		case string:
			fmt.Fprintf(&b, "S%d:%s", len(x), x)
		default:
			s := fmt.Sprint(x)
			fmt.Fprintf(&b, "%T%d:%s", x, len(s), s)
		}
	}
	return b.String()
}

func rowHash(key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return h.Sum64()
}

// compareEffects compares what two writes did to the tables they write.
// When either side's effect is unknown it returns no differences and the
// reason, so the caller can say the writes were compared by rows affected
// only.
func compareEffects(a, b outcome) ([]diff.Difference, string) {
	if !a.effectsKnown || !b.effectsKnown {
		return nil, cmp.Or(a.effectsNote, b.effectsNote)
	}
	var order []string
	ea, eb := map[string]effect{}, map[string]effect{}
	for _, e := range a.effects {
		ea[e.key] = e
		order = append(order, e.key)
	}
	for _, e := range b.effects {
		eb[e.key] = e
		if _, ok := ea[e.key]; !ok {
			order = append(order, e.key)
		}
	}
	var out []diff.Difference
	for _, k := range order {
		x, okx := ea[k]
		y, oky := eb[k]
		if !okx {
			x = effect{key: k, name: y.name, exact: true, rows: diff.Rows{Columns: y.rows.Columns, Types: y.rows.Types}}
		}
		if !oky {
			y = effect{key: k, name: x.name, exact: true, rows: diff.Rows{Columns: x.rows.Columns, Types: x.rows.Types}}
		}
		path := "effect[" + x.name + "]"
		if x.exact && y.exact {
			if len(x.rows.Values) == 0 && len(y.rows.Values) == 0 {
				continue
			}
			for _, d := range diff.CompareRows(x.rows, y.rows, false) {
				d.Path = path + "." + d.Path
				out = append(out, d)
			}
			continue
		}
		if x.net != y.net || x.sum != y.sum {
			out = append(out, diff.Difference{Path: path, Kind: diff.Changed, Legacy: x.summary(), New: y.summary()})
		}
	}
	return out, ""
}

func (e effect) summary() string {
	return fmt.Sprintf("%+d rows, checksum %016x", e.net, e.sum)
}
