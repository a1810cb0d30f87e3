// Package check proves that the new database holds the same data as the
// legacy one, through the CDC mapping: chunk by chunk, a row count and a
// SHA-256 digest of the normalised rows on each side; a chunk whose digests
// differ is compared row by row and column by column. Differences are
// re-checked before they are reported, so rows in flight while CDC runs are
// not false alarms. See docs/adr/0004-consistency-check.md.
package check

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/banyanhq/banyan/cdc"
	"github.com/banyanhq/banyan/internal/progress"
	"github.com/go-mysql-org/go-mysql/mysql"
)

// Options tune a check.
type Options struct {
	ChunkSize     int           // rows per chunk (default 1000)
	MaxRowsPerSec int           // throttle; 0 = as fast as possible
	RecheckAfter  time.Duration // wait before re-checking a difference (default 2s)
	Sample        int           // differing rows kept per table for the report (default 10)
	// StatePath keeps progress for --resume ("" = none).
	StatePath string
	Resume    bool
	Progress  io.Writer
	// Fix receives the SQL that makes the target match (nil = none).
	Fix io.Writer
	Log *slog.Logger
}

// ColumnDiff is one column of a row that differs.
type ColumnDiff struct {
	Column string `json:"column"`
	Source string `json:"source"`
	Target string `json:"target"`
}

// RowDiff is one differing row, identified by its target primary key.
type RowDiff struct {
	Key     map[string]string `json:"key"`
	Kind    string            `json:"kind"` // changed, missing (in target), extra (in target), duplicate (a second target row with a source row's key)
	Columns []ColumnDiff      `json:"columns,omitempty"`
}

// TableResult is one table's outcome.
type TableResult struct {
	Source     string    `json:"source"`
	Target     string    `json:"target"`
	Rows       int64     `json:"rows_compared"`
	Chunks     int       `json:"chunks"`
	Mismatched int64     `json:"mismatched"`
	Missing    int64     `json:"missing_in_target"`
	Extra      int64     `json:"extra_in_target"`
	Rechecked  int64     `json:"rechecked"`
	Sample     []RowDiff `json:"sample"`
	Consistent bool      `json:"consistent"`
}

// Result is a whole check.
type Result struct {
	Tables     []TableResult `json:"tables"`
	Consistent bool          `json:"consistent"`
}

// Checker compares mapped tables between a source and a target.
type Checker struct {
	Source *cdc.SourceDB
	Target *sql.DB
	Maps   []*cdc.TableMap
	Opts   Options
}

// table is a mapped table with its target column types.
type table struct {
	m     *cdc.TableMap
	cols  []TargetColumn
	kinds []colKind
	// pkNames are the target key column names.
	pkNames []string
	// srcIndex maps source column names to their place in a source row.
	srcIndex map[string]int
}

// Run checks every table. It returns an error only when it could not
// check; differences are in the Result.
func (c *Checker) Run(ctx context.Context) (*Result, error) {
	o := &c.Opts
	if o.ChunkSize <= 0 {
		o.ChunkSize = 1000
	}
	if o.Sample <= 0 {
		o.Sample = 10
	}
	if o.RecheckAfter == 0 {
		o.RecheckAfter = 2 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	id, err := c.checkID(ctx)
	if err != nil {
		return nil, err
	}
	st, err := loadState(o.StatePath, o.Resume, id)
	if err != nil {
		return nil, err
	}
	// A progress file that cannot be written is found now, not after the
	// first chunk's reads.
	if err := st.save(o.StatePath); err != nil {
		return nil, err
	}
	res := &Result{Consistent: true}
	for _, m := range c.Maps {
		t, err := c.describe(ctx, m)
		if err != nil {
			return nil, err
		}
		tr, err := c.checkTable(ctx, t, st)
		if err != nil {
			return nil, err
		}
		res.Tables = append(res.Tables, *tr)
		res.Consistent = res.Consistent && tr.Consistent
	}
	if o.StatePath != "" {
		os.Remove(o.StatePath) // finished: nothing left to resume
	}
	return res, nil
}

func (c *Checker) describe(ctx context.Context, m *cdc.TableMap) (*table, error) {
	rows, err := c.Target.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, COALESCE(NUMERIC_SCALE, 0), COALESCE(COLLATION_NAME, '')
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`, m.TargetSchema, m.TargetTable)
	if err != nil {
		return nil, fmt.Errorf("describe target %s: %w", m.TargetName(), err)
	}
	defer rows.Close()
	byName := map[string]TargetColumn{}
	for rows.Next() {
		var tc TargetColumn
		if err := rows.Scan(&tc.Name, &tc.DataType, &tc.ColType, &tc.Scale, &tc.Collation); err != nil {
			return nil, err
		}
		byName[strings.ToLower(tc.Name)] = tc
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(byName) == 0 {
		return nil, fmt.Errorf("target table %s does not exist", m.TargetName())
	}
	t := &table{m: m, srcIndex: map[string]int{}}
	for i, mc := range m.Cols {
		t.srcIndex[mc.Source] = i
		tc, ok := byName[strings.ToLower(mc.Target)]
		if !ok {
			return nil, fmt.Errorf("target table %s has no column %s (mapped from %s.%s)", m.TargetName(), mc.Target, m.SourceName(), mc.Source)
		}
		if mc.Convert != nil && slices.Contains(m.PK, len(t.cols)) {
			return nil, fmt.Errorf("table %s: key column %s has a converter; the checker needs keys that are equal on both sides", m.SourceName(), mc.Source)
		}
		t.cols = append(t.cols, tc)
		t.kinds = append(t.kinds, kindOf(tc))
	}
	for _, k := range m.PK {
		t.pkNames = append(t.pkNames, m.Cols[k].Target)
	}
	return t, nil
}

// nrow is a normalised row with its key encoding.
type nrow struct {
	key  string
	vals []Value
	raw  []any // mapped values before normalisation, for fix SQL
}

func (t *table) fromSource(raw []any) (nrow, error) {
	for i, c := range t.m.Cols {
		// A FLOAT read as "f + 0e0" is its exact value as a double; the
		// binlog gives CDC that float32, and so the mapping gets it here.
		if b, ok := raw[i].([]byte); ok && isFloatType(c.DataType) {
			f, err := strconv.ParseFloat(string(b), 32)
			if err != nil {
				return nrow{}, fmt.Errorf("column %s: %q is not a number", c.Source, b)
			}
			raw[i] = float32(f)
		}
	}
	mapped, err := t.m.Row(t.srcIndex, raw)
	if err != nil {
		return nrow{}, err
	}
	return t.fromTarget(mapped)
}

func (t *table) fromTarget(vals []any) (nrow, error) {
	r := nrow{vals: make([]Value, len(vals)), raw: vals}
	for i, v := range vals {
		nv, err := normalize(v, t.kinds[i], t.cols[i].Scale)
		if err != nil {
			return nrow{}, fmt.Errorf("column %s: %w", t.cols[i].Name, err)
		}
		r.vals[i] = nv
	}
	var kb bytes.Buffer
	key := make([]Value, len(t.m.PK))
	for i, k := range t.m.PK {
		key[i] = r.vals[k]
	}
	encodeRow(&kb, key)
	r.key = kb.String()
	return r, nil
}

// digest is the chunk's count and SHA-256 over its rows in key order. An
// ordered cryptographic digest cannot call different data equal the way
// XOR-folded CRC32 sums can (duplicate rows cancel, values swap unseen).
func digest(rows []nrow) (int, [32]byte) {
	sorted := slices.Clone(rows)
	slices.SortFunc(sorted, func(a, b nrow) int { return strings.Compare(a.key, b.key) })
	h := sha256.New()
	var buf bytes.Buffer
	for _, r := range sorted {
		buf.Reset()
		encodeRow(&buf, r.vals)
		h.Write(buf.Bytes())
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return len(rows), sum
}

func (c *Checker) checkTable(ctx context.Context, t *table, st *state) (*TableResult, error) {
	o := c.Opts
	name := t.m.SourceName()
	ts := st.table(name)
	tr := &TableResult{Source: name, Target: t.m.TargetName()}
	if ts.Done {
		*tr = ts.Result
		return tr, nil
	}
	tr.Rows, tr.Chunks = ts.Rows, ts.Chunks
	suspects := map[string][]any{} // target key encoding -> source key values
	for _, k := range ts.Suspects {
		suspects[keyID(k)] = k
	}
	total, _ := c.Source.Count(ctx, t.m)
	bar := progress.New(o.Progress, "check "+name, "rows", total)
	bar.Add(ts.Rows)
	start := time.Now()
	var done int64
	last := ts.LastPK
	for {
		srcRows, err := c.sourceChunk(ctx, t, last, o.ChunkSize)
		if err != nil {
			return nil, err
		}
		var hi []any
		if len(srcRows) == o.ChunkSize {
			hi = keyOf(t.m, srcRows[len(srcRows)-1])
		}
		// The last chunk is open-ended, so target rows past the source's
		// last key are seen as extra.
		dstRows, err := c.targetRange(ctx, t, last, hi)
		if err != nil {
			return nil, err
		}
		src, err := normalizeAll(srcRows, t.fromSource)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		dst, err := normalizeAll(dstRows, t.fromTarget)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.m.TargetName(), err)
		}
		tr.Chunks++
		tr.Rows += int64(len(src))
		if n1, d1 := digest(src); true {
			if n2, d2 := digest(dst); n1 != n2 || d1 != d2 {
				for _, d := range compareRows(t, src, dst) {
					suspects[keyID(d.sourceKey)] = d.sourceKey
				}
			}
		}
		bar.Add(int64(len(src)))
		done += int64(len(src))
		if hi == nil {
			break
		}
		last = hi
		ts.LastPK, ts.Rows, ts.Chunks, ts.Suspects = last, tr.Rows, tr.Chunks, mapValues(suspects)
		if err := st.save(o.StatePath); err != nil {
			return nil, err
		}
		throttle(ctx, start, done, o.MaxRowsPerSec)
	}
	bar.Done()

	diffs, err := c.recheck(ctx, t, mapValues(suspects))
	if err != nil {
		return nil, err
	}
	tr.Rechecked = int64(len(suspects))
	for _, d := range diffs {
		switch d.Kind {
		case "missing":
			tr.Missing++
		case "extra", "duplicate":
			tr.Extra++
		default:
			tr.Mismatched++
		}
		if len(tr.Sample) < o.Sample {
			tr.Sample = append(tr.Sample, d.RowDiff)
		}
	}
	if o.Fix != nil {
		for _, d := range fixOrder(diffs) {
			fmt.Fprintln(o.Fix, fixSQL(t, d))
		}
	}
	tr.Consistent = len(diffs) == 0
	if tr.Sample == nil {
		tr.Sample = []RowDiff{}
	}
	ts.Done, ts.Result = true, *tr
	if err := st.save(o.StatePath); err != nil {
		return nil, err
	}
	return tr, nil
}

// keyID names a key in the suspects set: each value quoted, a NULL apart.
// As the list's plain text ("[a b c]"), the keys ('a b', 'c') and
// ('a', 'b c') were one suspect, so one of two differing rows was never
// re-checked nor reported.
func keyID(k []any) string {
	var b strings.Builder
	for _, v := range k {
		if v == nil {
			b.WriteString("N,")
			continue
		}
		b.WriteString(strconv.Quote(fmt.Sprint(v)) + ",")
	}
	return b.String()
}

func mapValues(m map[string][]any) [][]any {
	out := make([][]any, 0, len(m))
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}) {
		out = append(out, m[k])
	}
	return out
}

func normalizeAll(rows [][]any, f func([]any) (nrow, error)) ([]nrow, error) {
	out := make([]nrow, len(rows))
	for i, r := range rows {
		n, err := f(r)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

func keyOf(m *cdc.TableMap, row []any) []any {
	k := make([]any, len(m.PK))
	for i, idx := range m.PK {
		k[i] = row[idx]
	}
	return k
}

func throttle(ctx context.Context, start time.Time, done int64, perSec int) {
	if perSec <= 0 {
		return
	}
	want := time.Duration(float64(done) / float64(perSec) * float64(time.Second))
	if wait := want - time.Since(start); wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
}

// rowDiff is a RowDiff with what fix SQL needs.
type rowDiff struct {
	RowDiff
	sourceKey []any
	src       *nrow // the source row (changed, missing)
	dst       *nrow // the target row (extra, duplicate)
}

// compareRows matches rows by key and lists the differing ones. A target
// without a unique key can hold a source row twice: the copy equal to the
// source row (or else the first) is matched, the others are duplicates.
func compareRows(t *table, src, dst []nrow) []rowDiff {
	byKey := make(map[string][]int, len(dst))
	for i, r := range dst {
		byKey[r.key] = append(byKey[r.key], i)
	}
	used := make([]bool, len(dst))
	matched := map[string]bool{}
	var out []rowDiff
	for i := range src {
		s := src[i]
		pick := -1
		for _, j := range byKey[s.key] {
			if used[j] {
				continue
			}
			if pick < 0 {
				pick = j
			}
			if slices.Equal(dst[j].vals, s.vals) {
				pick = j
				break
			}
		}
		if pick < 0 {
			out = append(out, rowDiff{RowDiff: RowDiff{Key: t.keyMap(s), Kind: "missing"}, sourceKey: t.rawKey(s), src: &src[i]})
			continue
		}
		used[pick] = true
		matched[s.key] = true
		d := dst[pick]
		var cols []ColumnDiff
		for j := range s.vals {
			if s.vals[j] != d.vals[j] {
				cols = append(cols, ColumnDiff{Column: t.cols[j].Name, Source: s.vals[j].String(), Target: d.vals[j].String()})
			}
		}
		if len(cols) > 0 {
			out = append(out, rowDiff{RowDiff: RowDiff{Key: t.keyMap(s), Kind: "changed", Columns: cols}, sourceKey: t.rawKey(s), src: &src[i]})
		}
	}
	for j := range dst {
		if used[j] {
			continue
		}
		kind := "extra"
		if matched[dst[j].key] {
			kind = "duplicate"
		}
		out = append(out, rowDiff{RowDiff: RowDiff{Key: t.keyMap(dst[j]), Kind: kind}, sourceKey: t.rawKey(dst[j]), dst: &dst[j]})
	}
	slices.SortFunc(out, func(a, b rowDiff) int { return compareKeys(a.sourceKey, b.sourceKey) })
	return out
}

// compareKeys orders keys for reports: numbers by value, text by bytes.
func compareKeys(a, b []any) int {
	for i := range min(len(a), len(b)) {
		sa, sb := fmt.Sprint(a[i]), fmt.Sprint(b[i])
		if ra, ok := new(big.Rat).SetString(sa); ok {
			if rb, ok := new(big.Rat).SetString(sb); ok {
				if c := ra.Cmp(rb); c != 0 {
					return c
				}
				continue
			}
		}
		if c := strings.Compare(sa, sb); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

func (t *table) keyMap(r nrow) map[string]string {
	k := map[string]string{}
	for i, idx := range t.m.PK {
		if r.vals[idx].Null {
			k[t.pkNames[i]] = "NULL"
		} else {
			k[t.pkNames[i]] = r.vals[idx].Text
		}
	}
	return k
}

// rawKey is the row's key as a value both servers accept in a query.
func (t *table) rawKey(r nrow) []any {
	k := make([]any, len(t.m.PK))
	for i, idx := range t.m.PK {
		v := r.raw[idx]
		if b, ok := v.([]byte); ok {
			v = string(b)
		}
		k[i] = v
	}
	return k
}

// recheck re-reads suspect rows until their difference persists: each
// round reads the source rows, then (when CDC runs into this target) waits
// until CDC has applied everything up to the source position read after
// them, or RecheckAfter passed, then reads the target rows. A row is
// reported only when it still differs after three rounds.
func (c *Checker) recheck(ctx context.Context, t *table, keys [][]any) ([]rowDiff, error) {
	var diffs []rowDiff
	for round := 0; round < 3 && len(keys) > 0; round++ {
		srcRaw, err := c.rowsByKey(ctx, t, keys, true)
		if err != nil {
			return nil, err
		}
		if err := c.waitForCDC(ctx); err != nil {
			return nil, err
		}
		dstRaw, err := c.rowsByKey(ctx, t, keys, false)
		if err != nil {
			return nil, err
		}
		src, err := normalizeAll(srcRaw, t.fromSource)
		if err != nil {
			return nil, err
		}
		dst, err := normalizeAll(dstRaw, t.fromTarget)
		if err != nil {
			return nil, err
		}
		if want, ok := t.keySet(keys); ok {
			src, dst = onlyKeys(src, want), onlyKeys(dst, want)
		}
		diffs = compareRows(t, src, dst)
		keys = keys[:0]
		for _, d := range diffs {
			keys = append(keys, d.sourceKey)
		}
	}
	return diffs, nil
}

// keySet is the encodings of keys as rows carry them (nrow.key); ok is
// false when a key cannot be normalised, and then nothing is filtered.
func (t *table) keySet(keys [][]any) (map[string]bool, bool) {
	set := make(map[string]bool, len(keys))
	var kb bytes.Buffer
	for _, k := range keys {
		vals := make([]Value, len(k))
		for i, v := range k {
			idx := t.m.PK[i]
			if s, ok := v.(string); ok {
				v = []byte(s) // as the row read it (rawKey made it a string): a BIT's bytes are its number
			}
			nv, err := normalize(v, t.kinds[idx], t.cols[idx].Scale)
			if err != nil {
				return nil, false
			}
			vals[i] = nv
		}
		kb.Reset()
		encodeRow(&kb, vals)
		set[kb.String()] = true
	}
	return set, true
}

// onlyKeys keeps the rows whose key is one of the suspects, byte for
// byte. A side whose collation is looser than the other's answers a
// suspect's key with a row of another key ('abc' for an extra 'ABC' in a
// binary-keyed target), which the chunk pass found equal; compared
// again, it was reported missing and the fix SQL inserted it twice.
func onlyKeys(rows []nrow, want map[string]bool) []nrow {
	out := rows[:0]
	for _, r := range rows {
		if want[r.key] {
			out = append(out, r)
		}
	}
	return out
}

// waitForCDC waits until the target's CDC checkpoint has passed the
// source's current position, at most RecheckAfter (and at least
// RecheckAfter when there is no CDC checkpoint to wait for).
func (c *Checker) waitForCDC(ctx context.Context) error {
	pos, err := c.Source.Position(ctx)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(c.Opts.RecheckAfter)
	for {
		var applied string
		err := c.Target.QueryRowContext(ctx, `SELECT applied_pos FROM banyan_cdc_checkpoint WHERE pipeline = 'default'`).Scan(&applied)
		if err == nil && covers(c.Source.Flavor, applied, pos) {
			return nil
		}
		if time.Now().After(deadline) {
			return nil
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func covers(flavor, appliedJSON string, want cdc.Position) bool {
	var applied cdc.Position
	if json.Unmarshal([]byte(appliedJSON), &applied) != nil || applied.GTID == "" || want.GTID == "" {
		return false
	}
	a, err1 := mysql.ParseGTIDSet(flavor, applied.GTID)
	w, err2 := mysql.ParseGTIDSet(flavor, want.GTID)
	return err1 == nil && err2 == nil && a.Contain(w)
}

// targetKeyArgs makes a key (read from the source, or saved) fit to
// compare with the target's key columns, each as its own type: a text
// value as a string, converted to the column's character set and
// compared by its collation (cdc.QueryArg). As the []byte the driver
// reads, it went as a _binary literal: a gbk target refused a non-ASCII
// one (the check stopped), and a latin1 target took its UTF-8 bytes for
// latin1 text, so each chunk of the target was read at the wrong range.
func (t *table) targetKeyArgs(key []any) []any {
	out := make([]any, len(key))
	for i, idx := range t.m.PK {
		out[i] = keyArg(t.cols[idx].ColType, key[i], cdc.QueryArg)
	}
	return out
}

// keyArg is arg(columnType, v), but a BIT key's bytes go as the unsigned
// number the column compares with. As text ('1' for b'00110001', which is
// 49) the chunk bounds read overlapping ranges and every suspect re-read
// matched no row on either side, so changed rows were dropped and the
// verdict was CONSISTENT.
func keyArg(columnType string, v any, arg func(string, any) any) any {
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(columnType)), "bit") {
		var b []byte
		switch x := v.(type) {
		case []byte:
			b = x
		case string:
			b = []byte(x)
		}
		if b != nil && len(b) <= 8 {
			var buf [8]byte
			copy(buf[8-len(b):], b)
			return binary.BigEndian.Uint64(buf[:])
		}
	}
	return arg(columnType, v)
}

// targetBoundArgs is targetKeyArgs for a range bound ("k > ?"): an ENUM or
// SET key column sorts by member number, so the bound is that number
// (cdc.BoundArg). As a label it was compared as text, every target row
// of an ENUM-keyed table fell outside its chunk, and each was re-read by
// key as a suspect.
func (t *table) targetBoundArgs(key []any) []any {
	out := make([]any, len(key))
	for i, idx := range t.m.PK {
		out[i] = keyArg(t.cols[idx].ColType, key[i], cdc.BoundArg)
	}
	return out
}

// sourceKeyArgs is targetKeyArgs for the source's key columns.
func (t *table) sourceKeyArgs(key []any) []any {
	out := make([]any, len(key))
	for i, idx := range t.m.PK {
		out[i] = keyArg(t.m.Cols[idx].DataType, key[i], cdc.QueryArg)
	}
	return out
}

// targetRange reads target rows with key in (lo, hi]; nil bounds are open.
// The target may not enforce the key: rows with a NULL in a key column
// fall in no range, so the first range (lo nil) takes them all, and the
// others none, and they are reported as extra.
func (c *Checker) targetRange(ctx context.Context, t *table, lo, hi []any) ([][]any, error) {
	var where []string
	var args []any
	if lo != nil {
		cond, a := cdc.KeyBound(t.pkNames, t.targetBoundArgs(lo), true)
		where, args = append(where, cond), append(args, a...)
	}
	if hi != nil {
		cond, a := cdc.KeyBound(t.pkNames, t.targetBoundArgs(hi), false)
		where, args = append(where, cond), append(args, a...)
	}
	var isNull, notNull []string
	for _, k := range quoteAll(t.pkNames) {
		isNull = append(isNull, k+" IS NULL")
		notNull = append(notNull, k+" IS NOT NULL")
	}
	cond := strings.Join(append(where, notNull...), " AND ")
	if lo == nil {
		cond = "(" + cond + ") OR " + strings.Join(isNull, " OR ")
	}
	q := "SELECT " + t.selectList(false) + " FROM " + qualified(t.m.TargetSchema, t.m.TargetTable) + " WHERE " + cond
	return cdc.QueryRows(ctx, c.Target, q, args...)
}

// rowsByKey reads the rows with the given keys from one side. Each key
// value travels as its column's type (targetKeyArgs, sourceKeyArgs): a
// key a check resumes with comes back from the state file as bytes. A
// key of several columns is matched as ORs of ANDs, not as a row IN
// list: MariaDB 10.11 matches no non-ASCII text of a latin1 (or any
// non-utf8mb4) column in "(a, b) IN ((?, ?), (?, ?))" from a utf8mb4
// session, so every suspect on such a key read as absent on both sides
// and the check called differing tables consistent.
func (c *Checker) rowsByKey(ctx context.Context, t *table, keys [][]any, source bool) ([][]any, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	keyNames, tbl, db, keyArgs := t.pkNames, qualified(t.m.TargetSchema, t.m.TargetTable), c.Target, t.targetKeyArgs
	if source {
		keyNames, tbl, db, keyArgs = nil, qualified(t.m.SourceSchema, t.m.SourceTable), c.Source.DB, t.sourceKeyArgs
		for _, k := range t.m.PK {
			keyNames = append(keyNames, t.m.Cols[k].Source)
		}
	}
	var out [][]any
	for start := 0; start < len(keys); start += 500 {
		batch := keys[start:min(start+500, len(keys))]
		var phs, conds []string
		var args, condArgs []any
		for _, k := range batch {
			k = keyArgs(k)
			if len(keyNames) == 1 && k[0] != nil {
				phs = append(phs, "?")
				args = append(args, k[0])
				continue
			}
			// A key of several columns is matched column by column; IN
			// never matches NULL, so a key with one (a target that does
			// not enforce its key) is matched with <=>.
			op := " = ?"
			if slices.Contains(k, nil) {
				op = " <=> ?"
			}
			eq := make([]string, len(keyNames))
			for i, n := range quoteAll(keyNames) {
				eq[i] = n + op
			}
			conds = append(conds, "("+strings.Join(eq, " AND ")+")")
			condArgs = append(condArgs, k...)
		}
		if len(phs) > 0 {
			conds = append([]string{fmt.Sprintf("%s IN (%s)", quoteIdent(keyNames[0]), strings.Join(phs, ", "))}, conds...)
		}
		args = append(args, condArgs...)
		q := fmt.Sprintf("SELECT %s FROM %s WHERE %s", t.selectList(source), tbl, strings.Join(conds, " OR "))
		rows, err := cdc.QueryRows(ctx, db, q, args...)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
}

// selectList is the mapped columns of one side as the checker reads them.
// A FLOAT is read as "f + 0e0", the double its stored single-precision
// value is exactly: as itself it comes over the text protocol at the 6
// significant digits the server prints, and 1234567 and 1234568 were
// both 1234570, so a real difference was called equal.
func (t *table) selectList(source bool) string {
	exprs := make([]string, len(t.m.Cols))
	for i, c := range t.m.Cols {
		name, float := c.Target, t.kinds[i] == kindFloat
		if source {
			name, float = c.Source, isFloatType(c.DataType)
		}
		exprs[i] = quoteIdent(name)
		if float {
			exprs[i] += " + 0e0"
		}
	}
	return strings.Join(exprs, ", ")
}

// isFloatType reports whether a COLUMN_TYPE is FLOAT (single precision).
func isFloatType(columnType string) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(columnType)), "float")
}

// sourceChunk reads up to n source rows after the key last, in key order,
// with the checker's select list and key arguments (cdc.SourceDB.ChunkOf,
// which the CDC copy reads through too).
func (c *Checker) sourceChunk(ctx context.Context, t *table, last []any, n int) ([][]any, error) {
	var bound []any
	if last != nil {
		bound = make([]any, len(last))
		for i, v := range last {
			bound[i] = keyArg(t.m.Cols[t.m.PK[i]].DataType, v, cdc.BoundArg)
		}
	}
	return c.Source.ChunkOf(ctx, t.m, t.selectList(true), bound, n)
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = quoteIdent(n)
	}
	return out
}

func qualified(db, table string) string { return quoteIdent(db) + "." + quoteIdent(table) }
