package check

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// colKind is how a target column's values are compared.
type colKind uint8

const (
	kindText    colKind = iota // VARCHAR, TEXT...: every byte counts, trailing spaces too
	kindChar                   // CHAR: trailing spaces are padding, not data
	kindInt                    // integers, BIT, YEAR, BOOL
	kindDecimal                // DECIMAL(p,s): compared at the column's scale
	kindFloat                  // FLOAT: single precision
	kindDouble                 // DOUBLE
	kindTime                   // DATE, DATETIME, TIMESTAMP, TIME: fraction to 6 digits
	kindBinary                 // BINARY, VARBINARY, BLOB: bytes
	kindBit                    // BIT(n): big-endian bytes or an integer
)

// TargetColumn is a target column as information_schema describes it.
type TargetColumn struct {
	Name      string
	DataType  string // DATA_TYPE, e.g. "decimal"
	ColType   string // COLUMN_TYPE, e.g. "decimal(10,2)"
	Scale     int    // NUMERIC_SCALE
	Collation string // "" for non-text
}

func kindOf(c TargetColumn) colKind {
	switch strings.ToLower(c.DataType) {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year", "bool", "boolean":
		return kindInt
	case "bit":
		return kindBit
	case "decimal", "numeric":
		return kindDecimal
	case "float":
		return kindFloat
	case "double", "real":
		return kindDouble
	case "date", "datetime", "timestamp", "time":
		return kindTime
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		return kindBinary
	case "char":
		return kindChar
	}
	if c.Collation == "binary" {
		return kindBinary
	}
	return kindText
}

// Value is a normalised cell: Null, or the canonical text of the value.
type Value struct {
	Null bool
	Text string
}

func (v Value) String() string {
	if v.Null {
		return "NULL"
	}
	return strconv.Quote(v.Text)
}

func raw(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case []byte:
		return string(x), true
	case string:
		return x, true
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04:05.999999"), true
	case bool:
		if x {
			return "1", true
		}
		return "0", true
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32), true
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), true
	}
	return fmt.Sprint(v), true
}

// normalize turns a driver value into the canonical form of its target
// column, so that equal data compares equal however each server spells it:
// 1.5 = 1.50 in DECIMAL(10,2), '10:00:00' = '10:00:00.000000', CHAR
// padding ignored. NULL and ” stay distinct.
func normalize(v any, k colKind, scale int) (Value, error) {
	s, ok := raw(v)
	if !ok {
		return Value{Null: true}, nil
	}
	switch k {
	case kindChar:
		return Value{Text: strings.TrimRight(s, " ")}, nil
	case kindBit:
		if b, isBytes := v.([]byte); isBytes && len(b) <= 8 {
			var buf [8]byte
			copy(buf[8-len(b):], b)
			return Value{Text: strconv.FormatUint(binary.BigEndian.Uint64(buf[:]), 10)}, nil
		}
		fallthrough
	case kindInt:
		n, ok := new(big.Int).SetString(strings.TrimSpace(s), 10)
		if !ok {
			return Value{}, fmt.Errorf("%q is not an integer", s)
		}
		return Value{Text: n.String()}, nil
	case kindDecimal:
		r, ok := new(big.Rat).SetString(strings.TrimSpace(s))
		if !ok {
			return Value{}, fmt.Errorf("%q is not a decimal", s)
		}
		text := r.FloatString(scale)
		if strings.Trim(text, "-0.") == "" {
			text = strings.TrimPrefix(text, "-") // -0.001 at scale 2 is stored as 0.00
		}
		return Value{Text: text}, nil
	case kindFloat, kindDouble:
		bits := 64
		if k == kindFloat {
			bits = 32
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(s), bits)
		if err != nil {
			return Value{}, fmt.Errorf("%q is not a number", s)
		}
		if math.IsNaN(f) {
			return Value{Text: "NaN"}, nil
		}
		if k == kindFloat {
			// Single precision, every digit of it: a FLOAT is read as
			// "f + 0e0" (selectList), not at the 6 digits the server
			// prints, which hid 1234567 ≠ 1234568.
			return Value{Text: strconv.FormatFloat(f, 'g', -1, 32)}, nil
		}
		return Value{Text: strconv.FormatFloat(f, 'g', -1, 64)}, nil
	case kindTime:
		return Value{Text: canonicalTime(s)}, nil
	case kindBinary:
		return Value{Text: hex.EncodeToString([]byte(s))}, nil
	}
	return Value{Text: s}, nil
}

// canonicalTime writes a temporal value with a 6-digit fraction; the zone
// is the session's (UTC on both sides).
func canonicalTime(s string) string {
	s = strings.TrimSpace(strings.Replace(s, "T", " ", 1))
	s = strings.TrimSuffix(s, "Z")
	if !strings.ContainsAny(s, ":") {
		return s // a DATE
	}
	whole, frac, _ := strings.Cut(s, ".")
	frac = (frac + "000000")[:6]
	return whole + "." + frac
}

// encodeRow appends a row's canonical encoding: per cell a NULL marker or
// a length-prefixed value, so ('ab','c') and ('a','bc') differ and NULL
// differs from ”.
func encodeRow(buf *bytes.Buffer, row []Value) {
	var n [binary.MaxVarintLen64]byte
	for _, v := range row {
		if v.Null {
			buf.WriteByte(0)
			continue
		}
		buf.WriteByte(1)
		buf.Write(n[:binary.PutUvarint(n[:], uint64(len(v.Text)))])
		buf.WriteString(v.Text)
	}
}
