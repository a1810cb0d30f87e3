package cdc

import (
	"context"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// spillRowsAll is every Go type go-mysql hands a row value as, with the
// values where a careless encoding goes wrong: NULL beside an empty
// string and empty bytes, -0 and NaN, the extremes of each width.
func spillRowsAll() []any {
	return []any{
		nil, int8(-128), int16(math.MinInt16), int32(math.MaxInt32), int64(math.MinInt64), int(-7),
		uint8(255), uint16(65535), uint32(math.MaxUint32), uint64(math.MaxUint64),
		float32(-1.5), math.Copysign(0, -1), math.NaN(), math.Inf(1), math.SmallestNonzeroFloat64,
		"", "héllo 世界", string([]byte{0xff, 0x00, 'a'}), []byte{}, []byte(nil), []byte{0, 0xde, 0xad},
	}
}

// sameChange compares two changes value for value, Go types included;
// NaN equals NaN, and an empty []byte differs from a nil one.
func sameChange(a, b Change) bool {
	if a.Op != b.Op || a.Schema != b.Schema || a.Table != b.Table || !reflect.DeepEqual(a.Columns, b.Columns) {
		return false
	}
	return sameImage(a.Before, b.Before) && sameImage(a.After, b.After)
}

func sameImage(a, b []any) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if reflect.TypeOf(a[i]) != reflect.TypeOf(b[i]) {
			return false
		}
		switch x := a[i].(type) {
		case float64:
			y := b[i].(float64)
			if math.Float64bits(x) != math.Float64bits(y) {
				return false
			}
		case []byte:
			y := b[i].([]byte)
			if (x == nil) != (y == nil) || string(x) != string(y) {
				return false
			}
		default:
			if a[i] != b[i] {
				return false
			}
		}
	}
	return true
}

// collect reads a transaction's changes through Each.
func collect(t *testing.T, tx *Tx) []Change {
	t.Helper()
	var got []Change
	if err := tx.Each(func(c Change) error { got = append(got, c); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != tx.Len() {
		t.Fatalf("Each gave %d changes, Len says %d", len(got), tx.Len())
	}
	return got
}

// testChanges is n changes on two tables with their own column lists,
// alternating in runs as rows events would; value i of each row is i.
func testChanges(n int) []Change {
	colsA := []Column{{Name: "id", Type: 3}, {Name: "v", Type: 15, Meta: 600}}
	colsB := []Column{{Name: "id", Type: 8, Unsigned: true}, {Name: "all", Type: 252, Meta: 4}}
	var cs []Change
	for i := range n {
		switch {
		case i%7 < 4:
			cs = append(cs, Change{Op: Update, Schema: "shop", Table: "orders", Columns: colsA, Before: []any{int32(i), "old"}, After: []any{int32(i), "new"}})
		case i%7 < 6:
			cs = append(cs, Change{Op: Insert, Schema: "shop", Table: "all", Columns: colsB, After: append([]any{uint64(i)}, spillRowsAll()...)})
		default:
			cs = append(cs, Change{Op: Delete, Schema: "shop", Table: "orders", Columns: colsA, Before: []any{int32(i), nil}})
		}
	}
	return cs
}

// fill adds cs to tx one at a time under policy, as the stream does.
func fill(t *testing.T, tx *Tx, policy spillPolicy, cs []Change) {
	t.Helper()
	for _, c := range cs {
		tx.Changes = append(tx.Changes, c)
		if err := policy.check(tx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSpill_RoundTrip: changes kept in the spill file read back exactly
// as they went in, in order, with the ones still in memory after them;
// the file is gone from its directory from the start and its descriptor
// is closed on Release.
func TestSpill_RoundTrip(t *testing.T) {
	dir := t.TempDir()
	want := testChanges(50)
	tx := &Tx{}
	fill(t, tx, spillPolicy{rows: 8, dir: dir}, want)
	if tx.spilled == nil || tx.spilled.n != 48 || len(tx.Changes) != 2 {
		t.Fatalf("after 50 changes with spill_rows 8: spilled %v, in memory %d; want 48 spilled, 2 in memory", tx.spilled != nil, len(tx.Changes))
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Fatalf("spill directory holds %v (%v); want the file unlinked at once", ents, err)
	}
	for pass := range 2 { // the apply and refusedRow each read it
		got := collect(t, tx)
		for i := range want {
			if !sameChange(got[i], want[i]) {
				t.Fatalf("pass %d: change %d read back as %#v, want %#v", pass, i, got[i], want[i])
			}
		}
	}
	if tx.SpilledBytes() <= 0 {
		t.Errorf("SpilledBytes = %d, want the file's size", tx.SpilledBytes())
	}
	f := tx.spilled.f
	tx.Release()
	if _, err := f.Stat(); err == nil {
		t.Error("spill file still open after Release")
	}
}

// TestSpill_Undo: a ROLLBACK TO a savepoint set before the spilled
// changes, and a whole ROLLBACK, keep the changes before it and, of those
// after it, only what keep returns (rows of tables without transactions),
// whether the cut falls in the file or in memory.
func TestSpill_Undo(t *testing.T) {
	keepAll := func(cs []Change) []Change { return append([]Change(nil), cs...) }
	keepTableAll := func(cs []Change) []Change {
		var kept []Change
		for _, c := range cs {
			if c.Table == "all" {
				kept = append(kept, c)
			}
		}
		return kept
	}
	for _, tc := range []struct {
		name string
		at   int
		keep func([]Change) []Change
	}{
		{"in the file, nothing kept", 13, func([]Change) []Change { return nil }},
		{"in the file, the table without transactions kept", 13, keepTableAll},
		{"at 0, the table without transactions kept", 0, keepTableAll},
		{"in memory", 49, keepTableAll},
		{"in the file, all kept", 5, keepAll},
	} {
		t.Run(tc.name, func(t *testing.T) {
			all := testChanges(50)
			policy := spillPolicy{rows: 8, dir: t.TempDir()}
			tx := &Tx{}
			fill(t, tx, policy, all)
			if err := policy.undo(tx, tc.at, tc.keep); err != nil {
				t.Fatal(err)
			}
			defer tx.Release()
			want := append(append([]Change(nil), all[:tc.at]...), tc.keep(all[tc.at:])...)
			got := collect(t, tx)
			if len(got) != len(want) {
				t.Fatalf("%d changes after the rollback, want %d", len(got), len(want))
			}
			for i := range want {
				if !sameChange(got[i], want[i]) {
					t.Fatalf("change %d is %#v, want %#v", i, got[i], want[i])
				}
			}
			if len(tx.Changes) >= policy.rows {
				t.Errorf("%d changes in memory after the rollback, want fewer than spill_rows %d", len(tx.Changes), policy.rows)
			}
		})
	}
}

// TestSpill_RefusesUnknownType: a value of a type the file cannot hold
// stops the stream with an error naming it, rather than being written
// wrongly or dropped.
func TestSpill_RefusesUnknownType(t *testing.T) {
	tx := &Tx{Changes: []Change{{Op: Insert, Schema: "shop", Table: "t", Columns: []Column{{Name: "x"}}, After: []any{struct{}{}}}}}
	err := spillPolicy{rows: 1, dir: t.TempDir()}.check(tx)
	defer tx.Release()
	if err == nil || !permanent(err) || !strings.Contains(err.Error(), "struct {}") || !strings.Contains(err.Error(), "shop.t") {
		t.Fatalf("spilling a struct{} value: %v; want a permanent error naming the table and the type", err)
	}
}

// TestSpill_MissingDirectory: a spill directory that is not there is an
// error that names it and says what to do.
func TestSpill_MissingDirectory(t *testing.T) {
	dir := t.TempDir() + "/gone"
	tx := &Tx{Changes: testChanges(3)}
	err := spillPolicy{rows: 2, dir: dir}.check(tx)
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "cdc.spill_dir") {
		t.Fatalf("spilling into a missing directory: %v; want an error naming it and cdc.spill_dir", err)
	}
	if tx.Len() != 3 {
		t.Errorf("after the failed spill the transaction holds %d changes, want its 3", tx.Len())
	}
}

// TestRowGate: the stream waits while the changes held in memory would
// pass the limit, goes on when the apply gives some back, always lets a
// transaction through when nothing is held (one larger than the limit
// must not wait for ever), and stops waiting when its context ends.
func TestRowGate(t *testing.T) {
	g := newRowGate(100)
	ctx := context.Background()
	if err := g.acquire(ctx, 250); err != nil {
		t.Fatalf("a transaction larger than the limit, nothing held: %v", err)
	}
	got := make(chan error, 1)
	go func() { got <- g.acquire(ctx, 1) }()
	select {
	case err := <-got:
		t.Fatalf("acquire with 250 of 100 held returned %v; want it to wait", err)
	case <-time.After(50 * time.Millisecond):
	}
	g.release(250)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("acquire still waits after the held changes were given back")
	}
	if err := g.acquire(ctx, 99); err != nil { // 1 + 99 = 100: fits
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { got <- g.acquire(cctx, 1) }()
	cancel()
	select {
	case err := <-got:
		if err != context.Canceled {
			t.Fatalf("acquire after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("acquire still waits after its context ended")
	}
}

// TestCheckSpillDir: cdc run checks cdc.spill_dir when it opens: a
// directory that is not there, or a file, is an error that names it; a
// usable one is left as it was.
func TestCheckSpillDir(t *testing.T) {
	dir := t.TempDir()
	if err := CheckSpillDir(dir); err != nil {
		t.Fatalf("an empty temp dir: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("CheckSpillDir left %v behind", ents)
	}
	file := dir + "/f"
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{dir + "/missing", file} {
		if err := CheckSpillDir(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("CheckSpillDir(%q) = %v, want an error naming it", bad, err)
		}
	}
}
