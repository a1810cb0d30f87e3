package diff

import (
	"fmt"
	"testing"
)

func rs(types []string, rows ...[]any) Rows {
	cols := []string{"id", "price", "note"}[:len(types)]
	return Rows{Columns: cols, Types: types, Values: rows}
}

func TestCompareRows(t *testing.T) {
	num := []string{"INT", "DECIMAL", "VARCHAR"}
	cases := []struct {
		name     string
		old, new Rows
		ordered  bool
		want     string // the differences, formatted
	}{
		{"equal, other order, unordered",
			rs(num, []any{"1", "10.00", "a"}, []any{"2", "5", nil}),
			rs(num, []any{"2", "5.0", nil}, []any{"1", "10", "a"}), false, "[]"},
		{"decimal scale is not a difference", rs(num, []any{int64(1), "10.50", ""}), rs(num, []any{"1", "10.5000", ""}), true, "[]"},
		{"NULL is not empty string", rs(num, []any{"1", "1", nil}), rs(num, []any{"1", "1", ""}), true,
			"[rows[0].note changed <nil> → ]"},
		{"text compares exactly", rs(num, []any{"1", "1", "10"}), rs(num, []any{"1", "1", "10.0"}), true,
			"[rows[0].note changed 10 → 10.0]"},
		{"changed cell, unordered", rs(num, []any{"1", "7.87", "a"}, []any{"2", "1", "b"}),
			rs(num, []any{"2", "1", "b"}, []any{"1", "7.86", "a"}), false, "[rows[0].price changed 7.87 → 7.86]"},
		{"extra row", rs(num, []any{"1", "1", "a"}), rs(num, []any{"1", "1", "a"}, []any{"1", "1", "a"}), false,
			"[row_count changed 1 → 2 rows[1] extra <nil> → map[id:1 note:a price:1]]"},
		{"order only", rs(num, []any{"1", "1", "a"}, []any{"2", "2", "b"}), rs(num, []any{"2", "2", "b"}, []any{"1", "1", "a"}), true,
			"[rows order <nil> → <nil>]"},
		{"columns and types", Rows{Columns: []string{"a"}, Types: []string{"INT"}, Values: [][]any{{"1"}}},
			Rows{Columns: []string{"b"}, Types: []string{"VARCHAR"}, Values: [][]any{{"1"}}}, false,
			"[columns changed [a] → [b] columns[0].type type INT → VARCHAR]"},
		{"numbers in a text column compare as text", Rows{Columns: []string{"a"}, Types: []string{"VARCHAR"}, Values: [][]any{{"1.0"}}},
			Rows{Columns: []string{"a"}, Types: []string{"VARCHAR"}, Values: [][]any{{"1"}}}, false, "[rows[0].a changed 1.0 → 1]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, d := range CompareRows(tc.old, tc.new, tc.ordered) {
				got = append(got, fmt.Sprintf("%s %s %v → %v", d.Path, d.Kind, d.Legacy, d.New))
			}
			if s := fmt.Sprint(got); s != tc.want {
				t.Errorf("got  %s\nwant %s", s, tc.want)
			}
		})
	}
}

func TestCompareRows_capped(t *testing.T) {
	var a, b [][]any
	for i := range 1000 {
		a = append(a, []any{fmt.Sprint(i)})
		b = append(b, []any{fmt.Sprint(i + 5000)})
	}
	ty := []string{"INT"}
	for _, ordered := range []bool{false, true} {
		d := CompareRows(Rows{Columns: []string{"id"}, Types: ty, Values: a}, Rows{Columns: []string{"id"}, Types: ty, Values: b}, ordered)
		// The cap, then one difference that says how many more there are:
		// a reader of the first 100 must not take them for all.
		if len(d) != maxRowDiffs+1 {
			t.Fatalf("ordered %v: %d differences, want the cap %d and a summary", ordered, len(d), maxRowDiffs)
		}
		if last := d[len(d)-1]; last.Path != "rows" || last.Kind != More || last.Lines != 900 || last.Legacy != nil || last.New != nil {
			t.Errorf("ordered %v: last difference %+v, want rows, kind more, 900 more", ordered, last)
		}
	}
}
