package cdc

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/banyanhq/banyan/routes"
)

// SourceDB is the legacy database as seen over SQL: its schema, its
// current binlog position, and keyset-paginated reads for the copy.
type SourceDB struct {
	DB     *sql.DB
	Flavor string
}

// Columns lists a table's columns in order, with primary key membership.
func (s *SourceDB) Columns(ctx context.Context, schema, table string) ([]SourceColumn, error) {
	rows, err := s.DB.QueryContext(ctx, `
		SELECT c.COLUMN_NAME, c.COLUMN_TYPE, COALESCE(k.ORDINAL_POSITION, 0)
		FROM information_schema.COLUMNS c
		LEFT JOIN information_schema.KEY_COLUMN_USAGE k
		  ON k.TABLE_SCHEMA = c.TABLE_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME
		 AND k.COLUMN_NAME = c.COLUMN_NAME AND k.CONSTRAINT_NAME = 'PRIMARY'
		WHERE c.TABLE_SCHEMA = ? AND c.TABLE_NAME = ?
		ORDER BY c.ORDINAL_POSITION`, schema, table)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s.%s: %w", schema, table, err)
	}
	defer rows.Close()
	var cols []SourceColumn
	for rows.Next() {
		var c SourceColumn
		if err := rows.Scan(&c.Name, &c.DataType, &c.KeySeq); err != nil {
			return nil, fmt.Errorf("read columns of %s.%s: %w", schema, table, err)
		}
		c.Key = c.KeySeq > 0
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

// Position returns the source's current binlog position (GTID and file:pos).
func (s *SourceDB) Position(ctx context.Context) (Position, error) {
	var p Position
	q := "SELECT @@GLOBAL.gtid_binlog_pos"
	if s.Flavor == "mysql" {
		q = "SELECT @@GLOBAL.gtid_executed"
	}
	if err := s.DB.QueryRowContext(ctx, q).Scan(&p.GTID); err != nil {
		return p, fmt.Errorf("read source gtid position: %w", err)
	}
	rows, err := QueryRows(ctx, s.DB, "SHOW MASTER STATUS")
	if err != nil {
		// MySQL 8.4 renamed it.
		rows, err = QueryRows(ctx, s.DB, "SHOW BINARY LOG STATUS")
	}
	if err != nil {
		return p, fmt.Errorf("read source binlog position: %w", err)
	}
	if len(rows) == 0 || len(rows[0]) < 2 {
		return p, fmt.Errorf("source has no binary log: start it with log_bin, binlog_format=ROW and binlog_row_image=FULL")
	}
	p.File = asString(rows[0][0])
	var pos uint64
	fmt.Sscan(asString(rows[0][1]), &pos)
	p.Pos = uint32(pos)
	return p, nil
}

// CheckBinlog verifies the settings CDC depends on and says how to fix
// each wrong one.
func (s *SourceDB) CheckBinlog(ctx context.Context) error {
	want := map[string]string{"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL", "binlog_row_metadata": "FULL"}
	var problems []string
	for name, w := range want {
		var got string
		if err := s.DB.QueryRowContext(ctx, "SELECT @@GLOBAL."+name).Scan(&got); err != nil {
			problems = append(problems, fmt.Sprintf("%s: cannot read (%v)", name, err))
			continue
		}
		if got == "1" {
			got = "ON"
		}
		if !strings.EqualFold(got, w) {
			problems = append(problems, fmt.Sprintf("%s is %s, must be %s", name, got, w))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("source binlog settings: %s (set them in the server config and restart it)", strings.Join(problems, "; "))
	}
	return nil
}

func asString(v any) string {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case string:
		return x
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// KeyBound writes "(a, b) > (x, y)" (after) or "(a, b) <= (x, y)" (not
// after) for the key columns cols and the values vals, spelled out as ORs
// of ANDs: MariaDB does not use an index for a row comparison, so that
// form scans the whole table, where this one reads only the key range.
func KeyBound(cols []string, vals []any, after bool) (string, []any) {
	var b strings.Builder
	var args []any
	op := " < ?"
	if after {
		op = " > ?"
	}
	b.WriteString("(")
	for i := range cols {
		if i > 0 {
			b.WriteString(" OR ")
		}
		b.WriteString("(")
		for j := 0; j < i; j++ {
			b.WriteString(quoteIdent(cols[j]) + " = ? AND ")
			args = append(args, vals[j])
		}
		b.WriteString(quoteIdent(cols[i]) + op + ")")
		args = append(args, vals[i])
	}
	if !after {
		b.WriteString(" OR (")
		for j := range cols {
			if j > 0 {
				b.WriteString(" AND ")
			}
			b.WriteString(quoteIdent(cols[j]) + " = ?")
			args = append(args, vals[j])
		}
		b.WriteString(")")
	}
	b.WriteString(")")
	return b.String(), args
}

// Chunk reads up to n rows of m's source table with primary key after
// last (nil = from the start), in key order. Values come back as the
// driver gives them.
func (s *SourceDB) Chunk(ctx context.Context, m *TableMap, last []any, n int) ([][]any, error) {
	exprs := make([]string, len(m.Cols))
	for i, c := range m.Cols {
		exprs[i] = sourceReadExpr(c)
	}
	var bound []any
	if last != nil {
		bound = sourceKeyArgs(m, last)
	}
	return s.ChunkOf(ctx, m, strings.Join(exprs, ", "), bound, n)
}

// ChunkOf reads up to n rows of m's source table, selecting selectList,
// in primary key order after the key whose query arguments are bound
// (nil: from the start). Chunk is the copy's use of it; the checker reads
// with its own select list and key arguments.
func (s *SourceDB) ChunkOf(ctx context.Context, m *TableMap, selectList string, bound []any, n int) ([][]any, error) {
	keys := make([]string, len(m.PK))
	for i, k := range m.PK {
		keys[i] = m.Cols[k].Source
	}
	var b strings.Builder
	fmt.Fprintf(&b, "SELECT %s FROM %s.%s", selectList, quoteIdent(m.SourceSchema), quoteIdent(m.SourceTable))
	var args []any
	if bound != nil {
		var cond string
		cond, args = KeyBound(keys, bound, true)
		b.WriteString(" WHERE " + cond)
	}
	b.WriteString(" ORDER BY ")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(k))
	}
	fmt.Fprintf(&b, " LIMIT %d", n)
	out, err := QueryRows(ctx, s.DB, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", m.SourceName(), err)
	}
	return out, nil
}

// sourceReadExpr is how the copy selects a column. A FLOAT or DOUBLE is
// multiplied by one as a DOUBLE (`f * 1e0`: exact, and -0 keeps its
// sign): a chunk read without arguments comes back as text, and the
// server prints a FLOAT with 6 significant digits, so 1234567 was copied
// as 1234570 and 1.000001 as 1. A DOUBLE is printed with every digit it
// needs, so the whole stored value arrives.
func sourceReadExpr(c ColMap) string {
	if columnTypeIn(c.DataType, "float", "double", "real", "double precision") {
		return quoteIdent(c.Source) + " * 1e0"
	}
	return quoteIdent(c.Source)
}

// sourceKeyArgs makes a key read from the source (or saved from one) fit
// to page by (see QueryArg): as the []byte the driver reads a text value
// as, it went as a _binary literal, whose UTF-8 bytes a latin1 column
// took for latin1 text ('Åsa' became 'Ã\u0085sa', which sorts before it),
// so a chunk restarted at the row it had ended with.
func sourceKeyArgs(m *TableMap, key []any) []any {
	out := make([]any, len(key))
	for i, v := range key {
		out[i] = BoundArg(m.Cols[m.PK[i]].DataType, v)
	}
	return out
}

// BoundArg is QueryArg for a key bound to page by ("k > ?"): an ENUM or
// SET value goes as the number the column sorts by (an ENUM's member
// position, a SET's bit mask), which the server compares with the column
// as that number. As a label it was compared as text while ORDER BY
// sorted by position: with ENUM('z','a','m'), the page after 'z' asked
// for labels after 'z' as text, and 'a' and 'm' were never copied (nor
// looked up by a resnapshot's delete pass).
func BoundArg(columnType string, v any) any {
	if n, ok := enumNumber(columnType, v); ok {
		return n
	}
	return QueryArg(columnType, v)
}

// enumNumber returns the number an ENUM or SET column (columnType is its
// COLUMN_TYPE, e.g. "enum('z','a')") holds for the label v; ok is false
// for another column type or a label not among its members.
func enumNumber(columnType string, v any) (uint64, bool) {
	t := strings.ToLower(columnType)
	isSet := strings.HasPrefix(t, "set(")
	if !isSet && !strings.HasPrefix(t, "enum(") {
		return 0, false
	}
	members, ok := enumMembers(columnType[strings.IndexByte(columnType, '(')+1:])
	if !ok {
		return 0, false
	}
	label := asString(v)
	if !isSet {
		// An ENUM that lists '' stores it as that member's number; the
		// error value 0 also reads as '', but strict mode refuses it.
		if i := slices.Index(members, label); i >= 0 {
			return uint64(i + 1), true
		}
		if label == "" {
			return 0, true // the ENUM's error value
		}
		return 0, false
	}
	if label == "" {
		return 0, true // the empty SET
	}
	var n uint64
	for _, l := range strings.Split(label, ",") {
		i := slices.Index(members, l)
		if i < 0 || i >= 64 {
			return 0, false
		}
		n |= 1 << i
	}
	return n, true
}

// enumMembers reads the rest of an ENUM or SET COLUMN_TYPE after its
// opening parenthesis (quoted members, a quote in one doubled and a
// backslash escaped, then the closing parenthesis) into its members; ok
// is false for anything else.
func enumMembers(s string) ([]string, bool) {
	var out []string
	for {
		if !strings.HasPrefix(s, "'") {
			return nil, false
		}
		s = s[1:]
		var b strings.Builder
		for {
			if s == "" {
				return nil, false
			}
			c := s[0]
			switch {
			case c == '\\' && len(s) > 1 && (s[1] == '\\' || s[1] == '\''):
				b.WriteByte(s[1])
				s = s[2:]
				continue
			case c == '\\':
				return nil, false // another escape: not read here
			case c == '\'' && len(s) > 1 && s[1] == '\'':
				b.WriteByte('\'')
				s = s[2:]
				continue
			case c == '\'':
				s = s[1:]
			default:
				b.WriteByte(c)
				s = s[1:]
				continue
			}
			break
		}
		out = append(out, b.String())
		switch {
		case s == ")":
			return out, true
		case strings.HasPrefix(s, ","):
			s = s[1:]
		default:
			return nil, false
		}
	}
}

// QueryArg turns v, a value as the driver reads it (or as a saved key
// gives it back), into the query argument that a column of columnType
// (information_schema COLUMN_TYPE) compares as its own type. Text travels
// as a string, which the server converts to the column's character set
// and compares by its collation: the driver sends []byte as a _binary
// literal, which a latin1 column takes for latin1 (UTF-8 'Åsa' is
// 'Ã\u0085sa' there) and a gbk column refuses ("Invalid gbk character
// string"). Bytes of a binary column travel as bytes. Anything else is
// left as it is.
func QueryArg(columnType string, v any) any {
	switch x := v.(type) {
	case []byte:
		if textColumnType(columnType) {
			return string(x)
		}
	case string:
		if binaryColumnType(columnType) {
			return []byte(x)
		}
	}
	return v
}

// textColumnType reports whether a COLUMN_TYPE holds text (a character
// set's characters), which the driver reads as UTF-8 bytes. Every other
// type (binary strings, BIT, spatial types and any type banyan does not
// know) keeps its bytes.
func textColumnType(columnType string) bool {
	return columnTypeIn(columnType, "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json")
}

// binaryColumnType reports whether a COLUMN_TYPE holds bytes.
func binaryColumnType(columnType string) bool {
	return columnTypeIn(columnType, "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob")
}

func columnTypeIn(columnType string, types ...string) bool {
	t := strings.ToLower(columnType)
	for _, p := range types {
		if t == p || strings.HasPrefix(t, p+"(") || strings.HasPrefix(t, p+" ") {
			return true
		}
	}
	return false
}

// QueryRows runs a query and returns every row's values as the driver
// gives them.
func QueryRows(ctx context.Context, db *sql.DB, q string, args ...any) ([][]any, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, vals)
	}
	return out, rows.Err()
}

// Count returns the table's row count (for the progress bar's ETA).
func (s *SourceDB) Count(ctx context.Context, m *TableMap) (int64, error) {
	var n int64
	err := s.DB.QueryRowContext(ctx, fmt.Sprintf("SELECT COUNT(*) FROM %s.%s", quoteIdent(m.SourceSchema), quoteIdent(m.SourceTable))).Scan(&n)
	return n, err
}

// Maps compiles every table mapping against the source's columns, in
// config order.
func (s *SourceDB) Maps(ctx context.Context, tables []routes.TableMapping, zone *time.Location) ([]*TableMap, error) {
	convs := Converters(zone)
	var out []*TableMap
	for _, t := range tables {
		db, tbl, _ := strings.Cut(t.Source, ".")
		cols, err := s.Columns(ctx, db, tbl)
		if err != nil {
			return nil, err
		}
		m, err := Compile(t, cols, convs)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}
