package cdc

import (
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/banyanhq/banyan/routes"
)

// Converter reshapes one legacy value into the new schema's form. It gets
// the value as the source driver or binlog produced it (integers, floats,
// string or []byte, nil) and must pass nil through.
type Converter func(v any) (any, error)

// Converters are the named reshapings a mapping may use.
func Converters(sourceZone *time.Location) map[string]Converter {
	return map[string]Converter{
		"yuan_to_cents":   yuanToCents,
		"tinyint_to_bool": tinyintToBool,
		"local_to_utc":    func(v any) (any, error) { return localToUTC(v, sourceZone) },
	}
}

// converter resolves a converter name: one of Converters, or
// "enum:1=paid,2=shipped,9=cancelled" (a legacy magic number to a label).
func converter(name string, convs map[string]Converter) (Converter, error) {
	if c, ok := convs[name]; ok {
		return c, nil
	}
	spec, ok := strings.CutPrefix(name, "enum:")
	if !ok {
		return nil, fmt.Errorf("unknown converter %q (known: yuan_to_cents, tinyint_to_bool, local_to_utc, enum:1=a,2=b)", name)
	}
	labels := map[string]string{}
	for _, pair := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("converter %q: %q is not CODE=LABEL", name, pair)
		}
		labels[k] = v
	}
	return func(v any) (any, error) {
		if v == nil {
			return nil, nil
		}
		s, ok := text(v)
		if !ok {
			s = fmt.Sprint(v)
		}
		label, ok := labels[strings.TrimSpace(s)]
		if !ok {
			return nil, fmt.Errorf("%s: no label for %q", name, s)
		}
		return label, nil
	}, nil
}

// CheckConfig reports converter names the mapping does not know, for the
// config loader.
func CheckConfig(cfg *routes.Config) []routes.Problem {
	var ps []routes.Problem
	known := Converters(time.UTC)
	for i, t := range cfg.CDC.Tables {
		for col, name := range t.Convert {
			if _, err := converter(name, known); err != nil {
				ps = append(ps, routes.Problem{Field: fmt.Sprintf("cdc.tables[%d].convert.%s", i, col), Why: err.Error()})
			}
		}
	}
	if tz := cfg.CDC.SourceTimezone; tz != "" {
		if _, err := time.LoadLocation(tz); err != nil {
			ps = append(ps, routes.Problem{Field: "cdc.source_timezone", Why: err.Error()})
		}
	}
	return ps
}

func text(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case []byte:
		return string(x), true
	}
	return "", false
}

// yuanToCents turns DECIMAL yuan ("12.50") into integer cents (1250),
// exactly; more than two decimals round half away from zero.
func yuanToCents(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	var r *big.Rat
	switch x := v.(type) {
	case float32:
		r = new(big.Rat).SetFloat64(float64(x))
	case float64:
		r = new(big.Rat).SetFloat64(x)
	default:
		if n, ok := integer(v); ok {
			r = new(big.Rat).SetInt(n)
			break
		}
		s, ok := text(v)
		if !ok {
			return nil, fmt.Errorf("yuan_to_cents: %T is not a decimal", v)
		}
		var okr bool
		if r, okr = new(big.Rat).SetString(strings.TrimSpace(s)); !okr {
			return nil, fmt.Errorf("yuan_to_cents: %q is not a decimal", s)
		}
	}
	if r == nil { // NaN or ±Inf
		return nil, fmt.Errorf("yuan_to_cents: %v is not a decimal", v)
	}
	r.Mul(r, big.NewRat(100, 1))
	num, den := new(big.Int).Set(r.Num()), r.Denom()
	q, m := new(big.Int).QuoRem(num, den, new(big.Int))
	if new(big.Int).Mul(new(big.Int).Abs(m), big.NewInt(2)).Cmp(den) >= 0 {
		if num.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	if !q.IsInt64() {
		return nil, fmt.Errorf("yuan_to_cents: %s cents does not fit in BIGINT", q)
	}
	return q.Int64(), nil
}

// tinyintToBool turns 0/1 (any integer; non-zero is true) into a bool.
func tinyintToBool(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if n, ok := integer(v); ok {
		return n.Sign() != 0, nil
	}
	s, ok := text(v)
	if !ok {
		return nil, fmt.Errorf("tinyint_to_bool: %T is not an integer", v)
	}
	n, ok := new(big.Int).SetString(strings.TrimSpace(s), 10)
	if !ok {
		return nil, fmt.Errorf("tinyint_to_bool: %q is not an integer", s)
	}
	return n.Sign() != 0, nil
}

// integer returns v exactly when it is a Go integer of any size and sign.
// The copy reads integer columns as int64, but the binlog decodes each
// column to its own width: TINYINT int8, SMALLINT UNSIGNED uint16, INT
// int32, INT UNSIGNED uint32, BIGINT UNSIGNED uint64 (above MaxInt64 too),
// so a converter that knew only int64 failed every streamed row.
func integer(v any) (*big.Int, bool) {
	switch x := v.(type) {
	case int:
		return big.NewInt(int64(x)), true
	case int8:
		return big.NewInt(int64(x)), true
	case int16:
		return big.NewInt(int64(x)), true
	case int32:
		return big.NewInt(int64(x)), true
	case int64:
		return big.NewInt(x), true
	case uint:
		return new(big.Int).SetUint64(uint64(x)), true
	case uint8:
		return new(big.Int).SetUint64(uint64(x)), true
	case uint16:
		return new(big.Int).SetUint64(uint64(x)), true
	case uint32:
		return new(big.Int).SetUint64(uint64(x)), true
	case uint64:
		return new(big.Int).SetUint64(x), true
	}
	return nil, false
}

// localToUTC reads a DATETIME written in the legacy zone and returns the
// same instant as a UTC DATETIME, keeping the fraction digits. Zero dates
// pass through.
func localToUTC(v any, zone *time.Location) (any, error) {
	if v == nil {
		return nil, nil
	}
	s, ok := text(v)
	if !ok {
		if t, isTime := v.(time.Time); isTime {
			// A driver that parsed the DATETIME labelled its wall clock
			// with its own zone; the reading is legacy local time.
			local := time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), zone)
			return local.UTC().Format("2006-01-02 15:04:05.999999"), nil
		}
		return nil, fmt.Errorf("local_to_utc: %T is not a datetime", v)
	}
	if strings.HasPrefix(s, "0000-00-00") {
		return s, nil
	}
	layout := "2006-01-02 15:04:05"
	if i := strings.IndexByte(s, '.'); i >= 0 {
		layout += "." + strings.Repeat("0", len(s)-i-1)
	}
	t, err := time.ParseInLocation(layout, s, zone)
	if err != nil {
		return nil, fmt.Errorf("local_to_utc: %q: %w", s, err)
	}
	return t.UTC().Format(layout), nil
}

// TableMap is one compiled table mapping.
type TableMap struct {
	SourceSchema, SourceTable string
	TargetSchema, TargetTable string
	// Cols are the copied columns in source order.
	Cols []ColMap
	// PK are indexes into Cols of the primary key, in key order.
	PK []int
	// Compact: the target table has no secondary unique key and no foreign
	// key, so a batch may be applied by each row's final state.
	Compact bool
}

// ColMap maps one source column.
type ColMap struct {
	Source      string    `json:"source"`
	Target      string    `json:"target"`
	Convert     Converter `json:"-"`
	ConvertName string    `json:"convert,omitempty"`
	// DataType is the source column's type as information_schema says
	// (e.g. "decimal(10,2)"), to notice schema changes.
	DataType string `json:"type"`
}

// SourceName is "db.table".
func (m *TableMap) SourceName() string { return m.SourceSchema + "." + m.SourceTable }

// TargetName is "db.table".
func (m *TableMap) TargetName() string { return m.TargetSchema + "." + m.TargetTable }

// SourceColumn is a column of a source table as information_schema shows it.
type SourceColumn struct {
	Name     string
	DataType string // COLUMN_TYPE
	Key      bool   // part of the primary key
	KeySeq   int
}

// Compile builds a table map from the mapping config and the source
// table's columns (in table order).
func Compile(t routes.TableMapping, cols []SourceColumn, convs map[string]Converter) (*TableMap, error) {
	sdb, stbl, _ := strings.Cut(t.Source, ".")
	tdb, ttbl, _ := strings.Cut(t.Target, ".")
	m := &TableMap{SourceSchema: sdb, SourceTable: stbl, TargetSchema: tdb, TargetTable: ttbl}
	if len(cols) == 0 {
		return nil, fmt.Errorf("source table %s does not exist or has no columns", t.Source)
	}
	known := map[string]bool{}
	type keyCol struct{ seq, idx int }
	var keys []keyCol
	for _, c := range cols {
		known[c.Name] = true
		if slices.Contains(t.Skip, c.Name) {
			if c.Key {
				return nil, fmt.Errorf("table %s: primary key column %s cannot be skipped", t.Source, c.Name)
			}
			continue
		}
		target, renamed := t.Columns[c.Name]
		if !renamed {
			if t.Only && !c.Key {
				continue
			}
			target = c.Name
		}
		cm := ColMap{Source: c.Name, Target: target, DataType: c.DataType}
		if name, ok := t.Convert[c.Name]; ok {
			conv, err := converter(name, convs)
			if err != nil {
				return nil, fmt.Errorf("table %s: %w", t.Source, err)
			}
			cm.Convert, cm.ConvertName = conv, name
		}
		if c.Key {
			keys = append(keys, keyCol{c.KeySeq, len(m.Cols)})
		}
		m.Cols = append(m.Cols, cm)
	}
	if ps := t.Contradictions(); len(ps) > 0 {
		return nil, fmt.Errorf("table %s: %s", t.Source, ps[0].Why)
	}
	// Column names are case-insensitive in MySQL: "who" and "WHO" are one
	// target column, which the upsert would name twice.
	into := map[string]string{}
	for _, c := range m.Cols {
		k := strings.ToLower(c.Target)
		if other, ok := into[k]; ok {
			return nil, fmt.Errorf("table %s: source columns %s and %s both map to target column %s; rename or skip one of them", t.Source, other, c.Source, c.Target)
		}
		into[k] = c.Source
	}
	for name := range t.Columns {
		if !known[name] {
			return nil, fmt.Errorf("table %s: mapped column %s does not exist on the source", t.Source, name)
		}
	}
	for name := range t.Convert {
		if !known[name] {
			return nil, fmt.Errorf("table %s: converted column %s does not exist on the source", t.Source, name)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("table %s has no primary key; banyan needs one to apply changes idempotently", t.Source)
	}
	slices.SortFunc(keys, func(a, b keyCol) int { return a.seq - b.seq })
	for _, k := range keys {
		m.PK = append(m.PK, k.idx)
	}
	return m, nil
}

// RowError is a source row the mapping cannot convert: a mapped column
// missing from it, or a value its converter refuses. The same row fails
// the same way on every try, so it stops the pipeline rather than being
// retried.
type RowError struct {
	// Key is the row's primary key as the source holds it, as
	// "(col=value, …)", or empty when the row lacks a key column.
	Key string
	Err error
}

func (e *RowError) Error() string {
	if e.Key == "" {
		return e.Err.Error()
	}
	return fmt.Sprintf("row %s: %v", e.Key, e.Err)
}

func (e *RowError) Unwrap() error { return e.Err }

// Row maps a source row given by column names to the target columns'
// values, in Cols order. A row it cannot map is a *RowError.
func (m *TableMap) Row(index map[string]int, src []any) ([]any, error) {
	out := make([]any, len(m.Cols))
	for i, c := range m.Cols {
		j, ok := index[c.Source]
		if !ok || j >= len(src) {
			return nil, &RowError{Key: m.sourceKey(index, src), Err: fmt.Errorf("column %s is missing from the row", c.Source)}
		}
		v := src[j]
		if c.Convert != nil {
			cv, err := c.Convert(v)
			if err != nil {
				return nil, &RowError{Key: m.sourceKey(index, src), Err: fmt.Errorf("column %s: %w", c.Source, err)}
			}
			v = cv
		}
		out[i] = v
	}
	return out, nil
}

// sourceKey spells a source row's primary key for error messages, as
// "(id=7)" or "(a=1, b=0x0a0b)"; empty when a key column is missing.
func (m *TableMap) sourceKey(index map[string]int, src []any) string {
	var b strings.Builder
	b.WriteByte('(')
	for i, k := range m.PK {
		name := m.Cols[k].Source
		j, ok := index[name]
		if !ok || j >= len(src) {
			return ""
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(name)
		b.WriteByte('=')
		switch x := src[j].(type) {
		case nil:
			b.WriteString("NULL")
		case []byte:
			fmt.Fprintf(&b, "0x%x", x)
		case string:
			fmt.Fprintf(&b, "%q", x)
		default:
			fmt.Fprint(&b, x)
		}
	}
	b.WriteByte(')')
	return b.String()
}

// Key returns the primary key values of a mapped row.
func (m *TableMap) Key(row []any) []any {
	k := make([]any, len(m.PK))
	for i, idx := range m.PK {
		k[i] = row[idx]
	}
	return k
}
