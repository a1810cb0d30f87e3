package cdc

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
)

func TestYuanToCents(t *testing.T) {
	tests := []struct {
		in   any
		want any
	}{
		{"12.50", int64(1250)},
		{[]byte("0.01"), int64(1)},
		{"-3.10", int64(-310)},
		{"99999999.99", int64(9999999999)},
		{"1.005", int64(101)},   // half away from zero
		{"-1.005", int64(-101)}, // half away from zero
		{"1.004", int64(100)},
		{int64(7), int64(700)},
		{nil, nil},
	}
	for _, tt := range tests {
		got, err := yuanToCents(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("yuanToCents(%v) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if _, err := yuanToCents("12,50"); err == nil {
		t.Error("yuanToCents accepted 12,50")
	}
}

func TestTinyintToBool(t *testing.T) {
	for in, want := range map[any]any{int8(0): false, int8(1): true, int64(2): true, "0": false, "1": true} {
		if got, err := tinyintToBool(in); err != nil || got != want {
			t.Errorf("tinyintToBool(%v) = %v, %v; want %v", in, got, err, want)
		}
	}
	if got, _ := tinyintToBool(nil); got != nil {
		t.Errorf("tinyintToBool(nil) = %v", got)
	}
}

func TestLocalToUTC(t *testing.T) {
	sh := time.FixedZone("CST", 8*3600)
	tests := []struct{ in, want string }{
		{"2026-11-01 08:00:00", "2026-11-01 00:00:00"},
		{"2026-01-01 03:30:00.125000", "2025-12-31 19:30:00.125000"},
		{"0000-00-00 00:00:00", "0000-00-00 00:00:00"},
	}
	for _, tt := range tests {
		got, err := localToUTC(tt.in, sh)
		if err != nil || got != tt.want {
			t.Errorf("localToUTC(%q) = %v, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestCompile(t *testing.T) {
	cols := []SourceColumn{
		{Name: "ord_id", DataType: "int(11)", Key: true, KeySeq: 1},
		{Name: "usr_id", DataType: "int(11)"},
		{Name: "amt", DataType: "decimal(10,2)"},
		{Name: "memo", DataType: "varchar(200)"},
		{Name: "legacy_flag", DataType: "tinyint(4)"},
	}
	m, err := Compile(routes.TableMapping{
		Source: "shop.t_order", Target: "orders.orders",
		Columns: map[string]string{"ord_id": "id", "usr_id": "user_id", "amt": "total_cents"},
		Skip:    []string{"memo"},
		Convert: map[string]string{"amt": "yuan_to_cents"},
	}, cols, Converters(time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, c := range m.Cols {
		targets = append(targets, c.Target)
	}
	if got, want := strings.Join(targets, ","), "id,user_id,total_cents,legacy_flag"; got != want {
		t.Errorf("target columns = %s, want %s", got, want)
	}
	row, err := m.Row(map[string]int{"ord_id": 0, "usr_id": 1, "amt": 2, "memo": 3, "legacy_flag": 4}, []any{int32(7), int32(42), "12.50", "x", int8(1)})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := row[2], any(int64(1250)); got != want {
		t.Errorf("converted amt = %v, want %v", got, want)
	}
	if got := m.Key(row); len(got) != 1 || got[0] != int32(7) {
		t.Errorf("key = %v", got)
	}
	// A row missing a mapped column is an error, never a silent NULL.
	if _, err := m.Row(map[string]int{"ord_id": 0}, []any{int32(7)}); err == nil {
		t.Error("row without mapped columns accepted")
	}

	for name, tm := range map[string]routes.TableMapping{
		"skip pk":        {Source: "shop.t_order", Target: "o.o", Skip: []string{"ord_id"}},
		"unknown column": {Source: "shop.t_order", Target: "o.o", Columns: map[string]string{"nope": "x"}},
		"bad converter":  {Source: "shop.t_order", Target: "o.o", Convert: map[string]string{"amt": "magic"}},
		// Two source columns landing in one target column: the upsert
		// would name it twice, or one would overwrite the other.
		"two renames to one column": {Source: "shop.t_order", Target: "o.o", Columns: map[string]string{"usr_id": "who", "memo": "WHO"}},
		"rename onto a kept column": {Source: "shop.t_order", Target: "o.o", Columns: map[string]string{"usr_id": "memo"}},
		"skipped and renamed":       {Source: "shop.t_order", Target: "o.o", Columns: map[string]string{"memo": "note"}, Skip: []string{"memo"}},
		"skipped and converted":     {Source: "shop.t_order", Target: "o.o", Convert: map[string]string{"amt": "yuan_to_cents"}, Skip: []string{"amt"}},
	} {
		if _, err := Compile(tm, cols, Converters(time.UTC)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A rename onto a column that is itself renamed away or skipped is fine.
	for name, tm := range map[string]routes.TableMapping{
		"swap":               {Source: "shop.t_order", Target: "o.o", Columns: map[string]string{"usr_id": "memo", "memo": "usr_id"}},
		"onto a skipped one": {Source: "shop.t_order", Target: "o.o", Columns: map[string]string{"usr_id": "memo"}, Skip: []string{"memo"}},
	} {
		if _, err := Compile(tm, cols, Converters(time.UTC)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Compile(routes.TableMapping{Source: "a.b", Target: "c.d"}, []SourceColumn{{Name: "x", DataType: "int"}}, Converters(time.UTC)); err == nil || !strings.Contains(err.Error(), "no primary key") {
		t.Errorf("table without primary key: err = %v", err)
	}
}

func TestDDLTarget(t *testing.T) {
	tests := []struct{ stmt, verb, table string }{
		{"ALTER TABLE t_order ADD COLUMN note TEXT", "ALTER", "shop.t_order"},
		{"alter table `shop`.`t_order` drop column amt", "ALTER", "shop.t_order"},
		{"DROP TABLE IF EXISTS t_order", "DROP", "shop.t_order"},
		{"TRUNCATE TABLE other.t", "TRUNCATE", "other.t"},
		{"RENAME TABLE t_order TO t_order_old", "RENAME", "shop.t_order"},
	}
	for _, tt := range tests {
		verb, table, ok := ddlTarget("shop", tt.stmt)
		if !ok || verb != tt.verb || table != tt.table {
			t.Errorf("ddlTarget(%q) = %q, %q, %v; want %q, %q", tt.stmt, verb, table, ok, tt.verb, tt.table)
		}
	}
	if _, _, ok := ddlTarget("shop", "CREATE INDEX i ON t(x)"); ok {
		t.Error("CREATE INDEX recognised as a table statement")
	}
}

func TestEnumConverter(t *testing.T) {
	c, err := converter("enum:1=paid,2=shipped,9=cancelled", Converters(time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ in, want any }{{int8(1), "paid"}, {[]byte("9"), "cancelled"}, {"2", "shipped"}, {nil, nil}} {
		if got, err := c(tt.in); err != nil || got != tt.want {
			t.Errorf("enum(%v) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if _, err := c(int8(5)); err == nil {
		t.Error("enum accepted a code it has no label for")
	}
	for _, bad := range []string{"enum:", "enum:1", "enum:=x", "magic"} {
		if _, err := converter(bad, Converters(time.UTC)); err == nil {
			t.Errorf("converter(%q) accepted", bad)
		}
	}
}

// TestConverters_AcceptEveryIntegerType: the copy reads integer columns as
// int64, the binlog as the column's own width (INT int32, SMALLINT
// UNSIGNED uint16, INT UNSIGNED uint32, BIGINT UNSIGNED uint64). A
// converter that knows only some of them copies a table and then fails
// every streamed row.
func TestConverters_AcceptEveryIntegerType(t *testing.T) {
	for _, v := range []any{int(12), int8(12), int16(12), int32(12), int64(12), uint(12), uint8(12), uint16(12), uint32(12), uint64(12)} {
		if got, err := yuanToCents(v); err != nil || got != int64(1200) {
			t.Errorf("yuanToCents(%T %v) = %v, %v; want 1200", v, v, got, err)
		}
		if got, err := tinyintToBool(v); err != nil || got != true {
			t.Errorf("tinyintToBool(%T %v) = %v, %v; want true", v, v, got, err)
		}
	}
	for _, v := range []any{int32(0), uint16(0), uint64(0)} {
		if got, err := tinyintToBool(v); err != nil || got != false {
			t.Errorf("tinyintToBool(%T 0) = %v, %v; want false", v, got, err)
		}
	}
	if got, err := yuanToCents(int32(-3)); err != nil || got != int64(-300) {
		t.Errorf("yuanToCents(int32 -3) = %v, %v; want -300", got, err)
	}
	// Beyond BIGINT: an error, never a value wrapped around.
	for _, v := range []any{uint64(math.MaxUint64), uint64(math.MaxInt64 + 1), int64(math.MaxInt64), int64(math.MinInt64)} {
		if got, err := yuanToCents(v); err == nil {
			t.Errorf("yuanToCents(%T %v) = %v, want an error (the cents do not fit in BIGINT)", v, v, got)
		}
	}
	if got, err := tinyintToBool(uint64(math.MaxUint64)); err != nil || got != true {
		t.Errorf("tinyintToBool(uint64 max) = %v, %v; want true", got, err)
	}
	if got, err := tinyintToBool("18446744073709551615"); err != nil || got != true {
		t.Errorf("tinyintToBool(\"18446744073709551615\") = %v, %v; want true", got, err)
	}
}
