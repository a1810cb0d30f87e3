package check

import (
	"bytes"
	"flag"
	"hash/crc32"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/internal/testdb"
)

// pair serves the benchmarks only (bench_test.go); the unit tests need no
// server, so the servers start only when -test.bench asks for benchmarks.
var pair *testdb.Pair

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		os.Exit(testdb.RunWithPair(m, &pair))
	}
	os.Exit(m.Run())
}

func TestNormalize(t *testing.T) {
	day := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name  string
		a, b  any
		kind  colKind
		scale int
		equal bool
		want  string // canonical text of a, when set
	}{
		{"decimal scale: 1.5 = 1.50 at scale 2", "1.5", []byte("1.50"), kindDecimal, 2, true, "1.50"},
		{"decimal integer source = 7.00", int64(7), "7.00", kindDecimal, 2, true, "7.00"},
		{"decimal rounded half away at the target scale", "1.005", "1.01", kindDecimal, 2, true, "1.01"},
		{"decimal last place differs", "12.50", "12.51", kindDecimal, 2, false, ""},
		{"FLOAT: a double compares at single precision", 0.1, float32(0.1), kindFloat, 0, true, "0.1"},
		{"FLOAT: digits beyond float32 are not data", 1.00000001, float32(1), kindFloat, 0, true, "1"},
		{"FLOAT: text from the server", "1.5", float32(1.5), kindFloat, 0, true, "1.5"},
		{"DOUBLE keeps double precision", 0.1, float64(float32(0.1)), kindDouble, 0, false, "0.1"},
		{"DOUBLE: text = float64", "2.25", 2.25, kindDouble, 0, true, "2.25"},
		{"CHAR padding trimmed", "ab   ", []byte("ab"), kindChar, 0, true, "ab"},
		{"CHAR leading space is data", " ab", "ab", kindChar, 0, false, " ab"},
		{"VARCHAR trailing space kept", "ab ", "ab", kindText, 0, false, "ab "},
		{"datetime fraction canonicalised", "2026-01-01 10:00:00", "2026-01-01 10:00:00.000000", kindTime, 0, true, "2026-01-01 10:00:00.000000"},
		{"datetime short fraction padded", "2026-01-01 10:00:00.5", "2026-01-01 10:00:00.500000", kindTime, 0, true, "2026-01-01 10:00:00.500000"},
		{"datetime time.Time = text", day, "2026-01-01 10:00:00.000000", kindTime, 0, true, "2026-01-01 10:00:00.000000"},
		{"datetime time.Time in another zone is the same instant", day.In(time.FixedZone("CST", 8*3600)), "2026-01-01 10:00:00", kindTime, 0, true, ""},
		{"datetime one microsecond apart", "2026-01-01 10:00:00.123456", "2026-01-01 10:00:00.123457", kindTime, 0, false, ""},
		{"TIME fraction", "10:00:00", "10:00:00.000000", kindTime, 0, true, "10:00:00.000000"},
		{"DATE untouched", "2026-01-01", []byte("2026-01-01"), kindTime, 0, true, "2026-01-01"},
		{"NULL != '' (text)", nil, "", kindText, 0, false, ""},
		{"NULL != '' (binary)", nil, []byte{}, kindBinary, 0, false, ""},
		{"NULL != 0", nil, int64(0), kindInt, 0, false, ""},
		{"NULL = NULL", nil, nil, kindText, 0, true, ""},
		{"BIT bytes = integer", []byte{0x15}, int64(21), kindBit, 0, true, "21"},
		{"BIT big-endian bytes", []byte{0x01, 0x00}, "256", kindBit, 0, true, "256"},
		{"BIT differs", []byte{0x15}, []byte{0x14}, kindBit, 0, false, ""},
		{"binary as hex", []byte{0x00, 0xff}, "\x00\xff", kindBinary, 0, true, "00ff"},
		{"binary one byte differs", []byte{0x00, 0xff}, []byte{0x00, 0xfe}, kindBinary, 0, false, ""},
		{"binary trailing zero byte is data", []byte{0x01, 0x00}, []byte{0x01}, kindBinary, 0, false, "0100"},
		{"int: text = int64", []byte("42"), int64(42), kindInt, 0, true, "42"},
		{"int: bool (tinyint_to_bool) = 1", true, int64(1), kindInt, 0, true, "1"},
		{"int: unsigned beyond int64", "18446744073709551615", uint64(18446744073709551615), kindInt, 0, true, "18446744073709551615"},
		{"utf8mb4 text byte for byte", "你好🎉", []byte("你好🎉"), kindText, 0, true, "你好🎉"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, err := normalize(tt.a, tt.kind, tt.scale)
			if err != nil {
				t.Fatalf("normalize(%#v): %v", tt.a, err)
			}
			b, err := normalize(tt.b, tt.kind, tt.scale)
			if err != nil {
				t.Fatalf("normalize(%#v): %v", tt.b, err)
			}
			if got := a == b; got != tt.equal {
				t.Errorf("normalize(%#v) = %v, normalize(%#v) = %v; equal = %v, want %v", tt.a, a, tt.b, b, got, tt.equal)
			}
			if tt.want != "" && (a.Null || a.Text != tt.want) {
				t.Errorf("normalize(%#v) = %v, want %q", tt.a, a, tt.want)
			}
		})
	}
}

func TestNormalize_RejectsGarbage(t *testing.T) {
	for _, tt := range []struct {
		v    any
		kind colKind
	}{
		{"12a", kindInt},
		{"1.2.3", kindDecimal},
		{"fast", kindFloat},
	} {
		if v, err := normalize(tt.v, tt.kind, 2); err == nil {
			t.Errorf("normalize(%q, kind %d) = %v, want an error", tt.v, tt.kind, v)
		}
	}
}

// TestNormalize_DecimalNegativeZero guards against a false alarm: a source
// DECIMAL(10,3) value -0.001 copied into a target DECIMAL(10,2) is stored
// by MariaDB as 0.00, but normalize renders the source value at scale 2 as
// "-0.00" (big.Rat.FloatString keeps the sign of a value that rounds to
// zero); the check must not report a difference that does not exist.
func TestNormalize_DecimalNegativeZero(t *testing.T) {
	src, _ := normalize("-0.001", kindDecimal, 2)
	dst, _ := normalize([]byte("0.00"), kindDecimal, 2) // what MariaDB returns
	if src != dst {
		t.Errorf("source -0.001 at scale 2 = %v, target 0.00 = %v; want equal", src, dst)
	}
}

// mkrow builds a normalised row whose first value is its key.
func mkrow(vals ...string) nrow {
	r := nrow{vals: make([]Value, len(vals))}
	for i, v := range vals {
		if v == "NULL" {
			r.vals[i] = Value{Null: true}
		} else {
			r.vals[i] = Value{Text: v}
		}
	}
	var kb bytes.Buffer
	encodeRow(&kb, r.vals[:1])
	r.key = kb.String()
	return r
}

func rows(rs ...[]string) []nrow {
	out := make([]nrow, len(rs))
	for i, r := range rs {
		out[i] = mkrow(r...)
	}
	return out
}

// rowXOR is pt-table-checksum's chunk checksum computed in Go:
// BIT_XOR(CRC32(CONCAT_WS('#', cols...))) with the row count.
func rowXOR(rs []nrow) (int, uint32) {
	var x uint32
	for _, r := range rs {
		texts := make([]string, len(r.vals))
		for i, v := range r.vals {
			texts[i] = v.Text
		}
		x ^= crc32.ChecksumIEEE([]byte(strings.Join(texts, "#")))
	}
	return len(rs), x
}

// columnXOR folds each column separately (a per-column checksum): the
// row count and, per column, the XOR of its values' CRC32.
func columnXOR(rs []nrow) (int, []uint32) {
	var x []uint32
	for _, r := range rs {
		if x == nil {
			x = make([]uint32, len(r.vals))
		}
		for i, v := range r.vals {
			x[i] ^= crc32.ChecksumIEEE([]byte(v.Text))
		}
	}
	return len(rs), x
}

func TestDigest(t *testing.T) {
	base := rows([]string{"1", "alice", "5"}, []string{"2", "bob", "6"}, []string{"3", "carol", "7"})

	t.Run("same rows in another order are equal", func(t *testing.T) {
		// The target is read without ORDER BY; the digest sorts by key.
		shuffled := []nrow{base[2], base[0], base[1]}
		if n1, d1 := digest(base); true {
			if n2, d2 := digest(shuffled); n1 != n2 || d1 != d2 {
				t.Errorf("digest depends on row order: %d %x vs %d %x", n1, d1, n2, d2)
			}
		}
	})

	for _, tt := range []struct {
		name string
		a, b []nrow
		// fooled names the XOR fold that calls a and b equal.
		fooled string
	}{
		{
			name:   "value swapped between rows",
			a:      base,
			b:      rows([]string{"1", "alice", "6"}, []string{"2", "bob", "5"}, []string{"3", "carol", "7"}),
			fooled: "column",
		},
		{
			name:   "duplicated row replaces another",
			a:      rows([]string{"1", "alice", "5"}, []string{"2", "bob", "6"}, []string{"2", "bob", "6"}),
			b:      rows([]string{"1", "alice", "5"}, []string{"3", "carol", "7"}, []string{"3", "carol", "7"}),
			fooled: "row",
		},
		{
			name:   "CRC32 collision (plumless/buckeroo)",
			a:      rows([]string{"1", "plumless"}),
			b:      rows([]string{"1", "buckeroo"}),
			fooled: "row",
		},
		{
			name: "value boundary moved ('ab','c') vs ('a','bc')",
			a:    rows([]string{"1", "ab", "c"}),
			b:    rows([]string{"1", "a", "bc"}),
		},
		{
			name: "NULL vs ''",
			a:    rows([]string{"1", "NULL"}),
			b:    rows([]string{"1", ""}),
		},
		{
			name: "one changed cell",
			a:    base,
			b:    rows([]string{"1", "alice", "5"}, []string{"2", "bob", "6"}, []string{"3", "carol", "8"}),
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n1, d1 := digest(tt.a)
			n2, d2 := digest(tt.b)
			if n1 == n2 && d1 == d2 {
				t.Errorf("digest calls different chunks equal: %x", d1)
			}
			// Prove the case is the trap it claims to be.
			switch tt.fooled {
			case "row":
				if c1, x1 := rowXOR(tt.a); true {
					if c2, x2 := rowXOR(tt.b); c1 != c2 || x1 != x2 {
						t.Errorf("case does not fool a row XOR fold: %d/%08x vs %d/%08x", c1, x1, c2, x2)
					}
				}
			case "column":
				c1, x1 := columnXOR(tt.a)
				c2, x2 := columnXOR(tt.b)
				if c1 != c2 || !slices.Equal(x1, x2) {
					t.Errorf("case does not fool a column XOR fold: %v vs %v", x1, x2)
				}
			}
		})
	}
}
