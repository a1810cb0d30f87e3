package cdc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/banyanhq/banyan/internal/progress"
)

// A resnapshot (`banyan cdc run --resnapshot`, after the binlog at the
// checkpoint was lost) copies every source row again, but a row deleted on
// the source while the binlog was lost has no row to copy and no delete
// to replay. Before copying each table, the resnapshot therefore removes
// the target rows whose key the source no longer has: the prune pass.
//
// Whether a target key still exists is the source server's call, made
// with the source column's own type and collation — never a comparison in
// Go. Under a case-insensitive or PAD SPACE collation the source's 'abc'
// is the target's 'ABC' and 'abc ', and deleting those would delete a row
// the source still has. The pass pages the target's keys in key order,
// sends each batch to the source as a derived table and asks which
// entries have no matching row (NOT EXISTS on each source table mapped
// into the target), then deletes exactly those entries from the target,
// by the key as the target holds it.
//
// Ordering. The position the stream resumes from is read (Run, before
// Target.Reset) before the pass looks at the source, and nothing else
// writes the target while it runs. So for every key either the source
// changes it after that position, and the stream replays the change
// (re-creating a row inserted after the look-up said "absent"), or it does
// not, and the look-up saw the source's final answer for it. Rows the
// pass wrongly called absent would, besides, be copied again by the table's
// copy, which runs after the pass; the pass runs first so that rows gone
// from the source free their unique values before the copy writes the
// rows that took them.

// pruneLookupRows bounds one source look-up statement.
const pruneLookupRows = 500

// PruneProgress is one table's delete pass of a resnapshot.
type PruneProgress struct {
	Table   string `json:"table"`
	LastKey []any  `json:"-"`       // the last target key looked up; nil before the first batch
	Checked int64  `json:"checked"` // target rows looked up on the source
	Deleted int64  `json:"deleted"` // target rows deleted: their key is gone from the source
	Done    bool   `json:"done"`
}

// Prunes returns every table's delete pass of the last resnapshot (none
// after a first copy).
func (t *Target) Prunes(ctx context.Context) ([]PruneProgress, error) {
	rows, err := t.DB.QueryContext(ctx, `SELECT source_table, rows_checked, rows_deleted, done FROM banyan_cdc_prune WHERE pipeline = ? ORDER BY source_table`, t.Pipeline)
	if err != nil {
		return nil, fmt.Errorf("read resnapshot delete progress: %w", err)
	}
	defer rows.Close()
	var out []PruneProgress
	for rows.Next() {
		var p PruneProgress
		if err := rows.Scan(&p.Table, &p.Checked, &p.Deleted, &p.Done); err != nil {
			return nil, fmt.Errorf("read resnapshot delete progress: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// pruneProgress reads a table's delete pass; ok is false when the running
// copy has none (a first copy, not a resnapshot).
func (t *Target) pruneProgress(ctx context.Context, table string) (p PruneProgress, ok bool, err error) {
	p.Table = table
	var last sql.NullString
	err = t.DB.QueryRowContext(ctx, `SELECT last_key, rows_checked, rows_deleted, done FROM banyan_cdc_prune WHERE pipeline = ? AND source_table = ?`, t.Pipeline, table).
		Scan(&last, &p.Checked, &p.Deleted, &p.Done)
	if errors.Is(err, sql.ErrNoRows) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("read resnapshot delete progress of %s: %w", table, err)
	}
	if p.LastKey, err = loadKey(last); err != nil {
		return p, false, fmt.Errorf("read resnapshot delete progress of %s: %w", table, err)
	}
	return p, true, nil
}

// pruneChunk deletes the given target keys and records the pass's
// progress in the same transaction.
func (t *Target) pruneChunk(ctx context.Context, m *TableMap, keys [][]any, p PruneProgress) error {
	tx, err := t.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("resnapshot %s: %w", m.TargetName(), err)
	}
	defer tx.Rollback()
	for start := 0; start < len(keys); start += pruneLookupRows {
		if err := deleteKeys(ctx, tx, m, keys[start:min(start+pruneLookupRows, len(keys))]); err != nil {
			return fmt.Errorf("resnapshot: delete from %s: %w", m.TargetName(), err)
		}
	}
	if err := savePrune(ctx, tx, t.Pipeline, p); err != nil {
		return err
	}
	return tx.Commit()
}

func savePrune(ctx context.Context, x execer, pipeline string, p PruneProgress) error {
	_, err := x.ExecContext(ctx, `INSERT INTO banyan_cdc_prune (pipeline, source_table, last_key, rows_checked, rows_deleted, done) VALUES (?,?,?,?,?,?)
		ON DUPLICATE KEY UPDATE last_key=VALUES(last_key), rows_checked=VALUES(rows_checked), rows_deleted=VALUES(rows_deleted), done=VALUES(done)`,
		pipeline, p.Table, storedKey(p.LastKey), p.Checked, p.Deleted, p.Done)
	if err != nil {
		return fmt.Errorf("resnapshot %s: save progress: %w", p.Table, err)
	}
	return nil
}

// keyColumn is what the delete pass needs to know of one key column on
// one side: how its values must travel so the server compares them as the
// column's type.
type keyColumn struct {
	Name       string
	DataType   string // information_schema DATA_TYPE, lower case
	ColumnType string // information_schema COLUMN_TYPE, as written: ENUM and SET members keep their case
	Charset    string // text columns
	Collation  string // text columns
	Precision  int64  // DECIMAL
	Scale      int64  // DECIMAL
	Length     int64  // CHARACTER_MAXIMUM_LENGTH: BINARY(n)
	Fraction   int64  // DATETIME_PRECISION: DATETIME, TIMESTAMP, TIME
}

// keyClass groups the key types whose values the copy writes unchanged
// from one into another.
func (c keyColumn) keyClass() string {
	switch {
	case c.DataType == "enum" || c.DataType == "set":
		return c.DataType
	case c.text():
		return "text"
	case c.bytes():
		return "bytes"
	}
	switch c.DataType {
	case "tinyint", "smallint", "mediumint", "int", "bigint":
		return "integer"
	case "datetime", "timestamp":
		return "datetime"
	}
	return c.DataType
}

// noPad reports whether a collation compares trailing spaces (MariaDB's
// *_nopad_* collations, MySQL 8's *_0900_* ones).
func noPad(collation string) bool {
	c := strings.ToLower(collation)
	return strings.Contains(c, "nopad") || strings.Contains(c, "_0900_")
}

// manyToOneCharsets are the character sets in which the server reads two
// characters as one Unicode character, which converts back to only one
// of them: in sjis 0x5C and 0x815F are both U+005C, which converts to
// 0x815F, so the delete pass asked the source for 'a' 0x815F where it had
// 'a' 0x5C and deleted the row (MariaDB 10.11; armscii8 and tis620 have
// such bytes too). A key in one cannot be asked about.
var manyToOneCharsets = map[string]bool{"sjis": true, "armscii8": true, "tis620": true}

// keyTypesDiffer returns why the value a target key column holds may not
// be the value its source key column holds (the copy converted it into
// another type), or "" when it is the same value. Asked for a converted
// value, the source may say "absent" for a row it has: a legacy CHAR id
// '007' is 7 in an INT target, a VARBINARY id 'a' is 'a\0\0\0' in a
// BINARY(4) target, a DATETIME(6) rounded into DATETIME is another instant.
func keyTypesDiffer(src, dst keyColumn) string {
	sc, dc := src.keyClass(), dst.keyClass()
	ok := false
	switch {
	case sc == "integer" && (dc == "integer" || dc == "decimal"):
		ok = true
	case sc == "decimal" && dc == "decimal":
		ok = dst.Scale >= src.Scale
	case sc == "decimal" && dc == "integer":
		ok = src.Scale == 0
	case sc == "year":
		ok = dc == "year" || dc == "integer"
	case (sc == "text" || sc == "enum" || sc == "set") && dc == "text":
		// A CHAR target drops trailing spaces, which a NO PAD source
		// collation tells apart.
		ok = dst.DataType != "char" || src.DataType == "char" || !noPad(src.Collation)
	case sc == "enum" || sc == "set":
		ok = dc == sc && dst.ColumnType == src.ColumnType
	case (sc == "text" || sc == "bytes") && dc == "bytes":
		// BINARY(n) pads with zero bytes.
		ok = dst.DataType != "binary" || (src.DataType == "binary" && src.Length == dst.Length)
	case sc == "date":
		ok = dc == "date" || dc == "datetime"
	case sc == "datetime" || sc == "time":
		ok = dc == sc && dst.Fraction >= src.Fraction
	}
	if ok {
		return ""
	}
	return fmt.Sprintf("key column %s is %s on the source but %s on the target (%s), so the target may hold another value than the source", src.Name, src.ColumnType, dst.ColumnType, dst.Name)
}

func (c keyColumn) text() bool {
	switch c.DataType {
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set":
		return c.Charset != "" && c.Charset != "binary"
	}
	return false
}

func (c keyColumn) bytes() bool {
	switch c.DataType {
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit":
		return true
	}
	return c.Charset == "binary"
}

// arg turns a key value read from the target into the query argument
// this target column compares as its own type. Text must travel as a string:
// the driver sends []byte as a _binary literal, which a server may compare
// byte by byte instead of by the column's collation. Bytes travel as
// bytes (a string would be read as text in the connection's character
// set). Integers stay integers, so a BIGINT beyond 2^53 is exact.
func (c keyColumn) arg(v any) any {
	switch x := v.(type) {
	case []byte:
		if c.bytes() {
			return x
		}
		return string(x)
	case string:
		if c.bytes() {
			return []byte(x)
		}
		return x
	case int64, uint64:
		if c.bytes() {
			return []byte(fmt.Sprint(x))
		}
		if c.text() {
			return fmt.Sprint(x)
		}
	}
	return v
}

// safeName is what information_schema gives as a character set or
// collation name; anything else is refused rather than written into SQL.
var safeName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// match is the SQL expression that turns ref, a target key value as the
// target column holds it (text as a utf8mb4 string, bytes as bytes), into
// this source column's type and collation, so that the source column's
// equality decides. Text is read as UTF-8 (what the copy writes into a
// binary target column too), converted to the column's character set and
// given its collation explicitly: an explicit COLLATE outranks every other
// coercibility, so neither the connection's collation nor a binary literal
// can win. ok is false for a type whose equality banyan cannot reproduce
// exactly from the target's value (FLOAT, DOUBLE, BIT and the like).
func (c keyColumn) match(ref string, target keyColumn) (string, bool) {
	switch {
	case c.text():
		if !safeName.MatchString(c.Charset) || !safeName.MatchString(c.Collation) {
			return "", false
		}
		return fmt.Sprintf("CONVERT(CONVERT(%s USING utf8mb4) USING %s) COLLATE %s", ref, c.Charset, c.Collation), true
	case c.bytes() && c.DataType != "bit":
		return fmt.Sprintf("CAST(%s AS BINARY)", ref), true
	}
	switch c.DataType {
	case "tinyint", "smallint", "mediumint", "int", "bigint", "year":
		if target.DataType == "decimal" && target.Scale <= 30 {
			// MySQL documents text compared with an integer as
			// doubles (inexact above 2^53); the cast keeps it exact.
			return fmt.Sprintf("CAST(%s AS DECIMAL(%d,%d))", ref, max(20, target.Precision-target.Scale)+target.Scale, target.Scale), true
		}
		return ref, true
	case "decimal":
		// Wide enough for the target's value too (keyTypesDiffer lets it
		// have more digits and scale): cast to the source's own width,
		// the target's 1000.00 and 12.345 became 99.99 and 12.35 of a
		// DECIMAL(4,2) source, which held those, and stayed for good.
		scale, digits := c.Scale, c.Precision-c.Scale
		if target.DataType == "decimal" {
			scale = max(scale, target.Scale)
			digits = max(digits, target.Precision-target.Scale)
		} else {
			digits = max(digits, 20) // an integer target: BIGINT's digits
		}
		if scale > 30 || digits+scale > 65 {
			return "", false
		}
		return fmt.Sprintf("CAST(%s AS DECIMAL(%d,%d))", ref, digits+scale, scale), true
	case "date", "datetime", "timestamp", "time":
		// The target's text is compared with the column as it is: the
		// server reads it as the column's temporal type (and uses the
		// key). A CAST was NULL for a legacy date with a zero month or
		// day ('2019-05-00') when the source session's sql_mode had
		// NO_ZERO_IN_DATE (MySQL 8's default), and the row was called
		// absent. Both sessions run with time_zone '+00:00', so a
		// TIMESTAMP reads and compares as the same UTC wall clock on both
		// sides.
		return ref, true
	}
	return "", false
}

// keyColumns reads the key columns names of schema.table, in order.
func keyColumns(ctx context.Context, db *sql.DB, schema, table string, names []string) ([]keyColumn, error) {
	rows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME, LOWER(DATA_TYPE), COLUMN_TYPE, COALESCE(CHARACTER_SET_NAME, ''), COALESCE(COLLATION_NAME, ''),
		COALESCE(NUMERIC_PRECISION, 0), COALESCE(NUMERIC_SCALE, 0), COALESCE(CHARACTER_MAXIMUM_LENGTH, 0), COALESCE(DATETIME_PRECISION, 0)
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`, schema, table)
	if err != nil {
		return nil, fmt.Errorf("read key columns of %s.%s: %w", schema, table, err)
	}
	defer rows.Close()
	byName := map[string]keyColumn{}
	for rows.Next() {
		var c keyColumn
		if err := rows.Scan(&c.Name, &c.DataType, &c.ColumnType, &c.Charset, &c.Collation, &c.Precision, &c.Scale, &c.Length, &c.Fraction); err != nil {
			return nil, fmt.Errorf("read key columns of %s.%s: %w", schema, table, err)
		}
		byName[strings.ToLower(c.Name)] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read key columns of %s.%s: %w", schema, table, err)
	}
	out := make([]keyColumn, len(names))
	for i, n := range names {
		c, ok := byName[strings.ToLower(n)]
		if !ok {
			return nil, fmt.Errorf("%s.%s has no column %s", schema, table, n)
		}
		out[i] = c
	}
	return out, nil
}

// prunePlan is what the delete pass of one target table needs: its key
// columns, and for each source table mapped into it (several when, say,
// sharded legacy tables are merged) how to find a target key there.
type prunePlan struct {
	target  []keyColumn
	sources []pruneSource
}

// pruneSource is one source table mapped into the pruned target table.
type pruneSource struct {
	m *TableMap
	// cols and match are, per target key column (in the plan's order), the
	// source column and the target value turned into its type and
	// collation (keyColumn.match of "d.k<i>").
	cols, match []string
}

// planPrune reads the key columns of m's target and of every source table
// mapped into that target (group). why is non-empty when the source
// cannot be asked about the target's keys: a key column with a converter
// (the target holds a value the source does not), of a type whose
// equality cannot be reproduced from the target's value, or source
// tables mapped into the target on different key columns.
func (p *Pipeline) planPrune(ctx context.Context, m *TableMap, group []*TableMap) (plan prunePlan, why string, err error) {
	keyNames := keyTargets(m)
	if plan.target, err = keyColumns(ctx, p.target.DB, m.TargetSchema, m.TargetTable, keyNames); err != nil {
		return plan, "", err
	}
	for _, g := range group {
		if len(g.PK) != len(keyNames) {
			return plan, fmt.Sprintf("the source tables mapped into %s have different keys (%s: %s)", m.TargetName(), g.SourceName(), strings.Join(keyTargets(g), ", ")), nil
		}
		src := pruneSource{m: g}
		for _, name := range keyNames {
			j := slices.IndexFunc(g.PK, func(k int) bool { return strings.EqualFold(g.Cols[k].Target, name) })
			if j < 0 {
				return plan, fmt.Sprintf("the source tables mapped into %s have different keys (%s: %s)", m.TargetName(), g.SourceName(), strings.Join(keyTargets(g), ", ")), nil
			}
			c := g.Cols[g.PK[j]]
			if c.Convert != nil {
				return plan, fmt.Sprintf("key column %s of %s has the converter %s, so the target's key is not a value the source holds", c.Source, g.SourceName(), c.ConvertName), nil
			}
			src.cols = append(src.cols, c.Source)
		}
		cols, err := keyColumns(ctx, p.source.DB, g.SourceSchema, g.SourceTable, src.cols)
		if err != nil {
			return plan, "", err
		}
		for i, c := range cols {
			expr, ok := c.match(fmt.Sprintf("d.k%d", i), plan.target[i])
			if !ok {
				return plan, fmt.Sprintf("key column %s of %s is %s, whose equality banyan cannot ask the source about exactly", c.Name, g.SourceName(), c.DataType), nil
			}
			if c.text() && manyToOneCharsets[strings.ToLower(c.Charset)] {
				return plan, fmt.Sprintf("key column %s of %s is in character set %s, in which two characters read as one Unicode character, so the target's value may convert back to another one than the source holds", c.Name, g.SourceName(), c.Charset), nil
			}
			if why := keyTypesDiffer(c, plan.target[i]); why != "" {
				return plan, fmt.Sprintf("%s: %s", g.SourceName(), why), nil
			}
			src.match = append(src.match, expr)
		}
		plan.sources = append(plan.sources, src)
	}
	return plan, "", nil
}

// targetKeys reads up to n target keys after last (nil: from the start),
// in the target's key order, each value as its target column compares.
func (p *Pipeline) targetKeys(ctx context.Context, m *TableMap, plan prunePlan, last []any, n int) ([][]any, error) {
	names := make([]string, len(plan.target))
	for i, c := range plan.target {
		names[i] = quoteIdent(c.Name)
	}
	q := "SELECT " + strings.Join(names, ", ") + " FROM " + targetTable(m)
	var args []any
	if last != nil {
		cols := make([]string, len(plan.target))
		for i, c := range plan.target {
			cols[i] = c.Name
		}
		var cond string
		bound := targetArgs(plan, last)
		for i, c := range plan.target {
			if n, ok := enumNumber(c.ColumnType, bound[i]); ok {
				bound[i] = n // as BoundArg: ENUM and SET sort by number
			}
		}
		cond, args = KeyBound(cols, bound, true)
		q += " WHERE " + cond
	}
	q += fmt.Sprintf(" ORDER BY %s LIMIT %d", strings.Join(names, ", "), n)
	rows, err := QueryRows(ctx, p.target.DB, q, args...)
	if err != nil {
		return nil, fmt.Errorf("resnapshot: read keys of %s: %w", m.TargetName(), err)
	}
	for i, r := range rows {
		rows[i] = targetArgs(plan, r)
	}
	return rows, nil
}

func targetArgs(plan prunePlan, key []any) []any {
	out := make([]any, len(key))
	for i, v := range key {
		out[i] = plan.target[i].arg(v)
	}
	return out
}

// absentOnSource returns the indexes of the keys (target keys, in target
// key column order, as targetKeys returns them) that no source table of
// the plan holds: no row there has an equal key, equal as that source's
// key columns compare. The keys travel as a derived table, one statement
// per pruneLookupRows keys:
//
//	SELECT d.i FROM (SELECT ? AS i, ? AS k0, ? AS k1 UNION ALL SELECT ?, ?, ? …) AS d
//	WHERE NOT EXISTS (SELECT 1 FROM src AS s WHERE s.a = CONVERT(CONVERT(d.k0 USING utf8mb4)
//	                  USING latin1) COLLATE latin1_swedish_ci AND s.b = CAST(d.k1 AS BINARY))
//	  [AND NOT EXISTS (… each other source table mapped into the target)]
func (p *Pipeline) absentOnSource(ctx context.Context, m *TableMap, plan prunePlan, keys [][]any) ([]int, error) {
	var where []string
	for _, src := range plan.sources {
		eq := make([]string, len(src.cols))
		for i, c := range src.cols {
			eq[i] = fmt.Sprintf("s.%s = %s", quoteIdent(c), src.match[i])
		}
		where = append(where, fmt.Sprintf("NOT EXISTS (SELECT 1 FROM %s.%s AS s WHERE %s)",
			quoteIdent(src.m.SourceSchema), quoteIdent(src.m.SourceTable), strings.Join(eq, " AND ")))
	}
	var absent []int
	for start := 0; start < len(keys); start += pruneLookupRows {
		batch := keys[start:min(start+pruneLookupRows, len(keys))]
		var b strings.Builder
		args := make([]any, 0, len(batch)*(len(plan.target)+1))
		b.WriteString("SELECT d.i FROM (")
		for j, key := range batch {
			if j == 0 {
				b.WriteString("SELECT ? AS i")
				for i := range key {
					fmt.Fprintf(&b, ", ? AS k%d", i)
				}
			} else {
				b.WriteString(" UNION ALL SELECT ?")
				b.WriteString(strings.Repeat(", ?", len(key)))
			}
			args = append(args, int64(start+j))
			args = append(args, key...)
		}
		b.WriteString(") AS d WHERE " + strings.Join(where, " AND "))
		rows, err := QueryRows(ctx, p.source.DB, b.String(), args...)
		if err != nil {
			return nil, fmt.Errorf("resnapshot: look up keys of %s on the source: %w", m.TargetName(), err)
		}
		for _, r := range rows {
			i, err := strconv.Atoi(asString(r[0]))
			if err != nil || i < start || i >= start+len(batch) {
				return nil, fmt.Errorf("resnapshot: look up keys of %s on the source: unexpected entry %v", m.TargetName(), r[0])
			}
			absent = append(absent, i)
		}
	}
	return absent, nil
}

// pruneOrder is the order of the resnapshot's delete passes: a table
// before every mapped table its target rows reference (a foreign key on
// the target), otherwise the reverse of config order, which lists the
// tables a first copy must fill first. Pruned in config order, a parent
// whose key the source lost could not be deleted while its children,
// pruned only later, still referenced it (error 1451), and every run
// stopped there.
func (p *Pipeline) pruneOrder(ctx context.Context) ([]*TableMap, error) {
	byTarget := map[string][]*TableMap{}
	schemas := map[string]bool{}
	for _, m := range p.order {
		byTarget[strings.ToLower(m.TargetName())] = append(byTarget[strings.ToLower(m.TargetName())], m)
		schemas[m.TargetSchema] = true
	}
	// children[parent] are the mapped target tables referencing parent.
	children := map[string][]string{}
	for schema := range schemas {
		rows, err := QueryRows(ctx, p.target.DB, `SELECT DISTINCT TABLE_SCHEMA, TABLE_NAME, REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME
			FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? AND REFERENCED_TABLE_NAME IS NOT NULL
			ORDER BY TABLE_SCHEMA, TABLE_NAME, REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME`, schema)
		if err != nil {
			return nil, fmt.Errorf("resnapshot: read the target's foreign keys: %w", err)
		}
		for _, r := range rows {
			child := strings.ToLower(asString(r[0]) + "." + asString(r[1]))
			parent := strings.ToLower(asString(r[2]) + "." + asString(r[3]))
			if child != parent && byTarget[child] != nil {
				children[parent] = append(children[parent], child)
			}
		}
	}
	var out []*TableMap
	seen := map[string]bool{}
	var visit func(target string)
	visit = func(target string) {
		if seen[target] {
			return
		}
		seen[target] = true
		for _, c := range children[target] {
			visit(c)
		}
		out = append(out, byTarget[target]...)
	}
	for i := len(p.order) - 1; i >= 0; i-- {
		visit(strings.ToLower(p.order[i].TargetName()))
	}
	return out, nil
}

// pruneTable runs m's delete pass of a resnapshot, resuming where it
// stopped; a table without one (a first copy) is left alone. Each batch
// of target keys is looked up on the source and the absent ones deleted
// in one target transaction with the pass's progress.
//
// When several source tables are mapped into m's target (sharded tables
// merged), a target row stays when any of them holds its key: the pass
// runs once, with the first of them in config order, before any of them
// is copied; pruning per source table would delete, at the second one's
// turn, every row the first had just copied.
func (p *Pipeline) pruneTable(ctx context.Context, m *TableMap) error {
	prog, ok, err := p.target.pruneProgress(ctx, m.SourceName())
	if err != nil || !ok || prog.Done {
		return err
	}
	var group []*TableMap
	for _, g := range p.order {
		if strings.EqualFold(g.TargetName(), m.TargetName()) {
			group = append(group, g)
		}
	}
	if group[0] != m {
		// The first of the group ran the pass for the whole target.
		prog.Done = true
		return savePrune(ctx, p.target.DB, p.target.Pipeline, prog)
	}
	var sources []string
	for _, g := range group {
		sources = append(sources, g.SourceName())
	}
	plan, why, err := p.planPrune(ctx, m, group)
	if err != nil {
		return err
	}
	if why != "" {
		p.log.Warn("cdc: resnapshot cannot look up this table's target keys on the source and deletes nothing from it; rows deleted on the source while the binlog was lost may remain: run `banyan check --fix-sql` after the copy",
			"table", m.SourceName(), "target", m.TargetName(), "why", why)
		prog.Done = true
		return savePrune(ctx, p.target.DB, p.target.Pipeline, prog)
	}
	var total int64
	_ = p.target.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+targetTable(m)).Scan(&total)
	bar := progress.New(p.Progress, "resnapshot: look up "+m.TargetName()+" keys on the source", "rows", total)
	bar.Add(prog.Checked)
	for {
		keys, err := p.targetKeys(ctx, m, plan, prog.LastKey, p.cfg.ChunkRows)
		if err != nil {
			return err
		}
		absent, err := p.absentOnSource(ctx, m, plan, keys)
		if err != nil {
			return err
		}
		gone := make([][]any, 0, len(absent))
		for _, i := range absent {
			gone = append(gone, keys[i])
		}
		if p.pruneLookedUp != nil {
			p.pruneLookedUp(m, gone)
		}
		if len(keys) > 0 {
			prog.LastKey = keys[len(keys)-1]
		}
		before := prog
		prog.Checked += int64(len(keys))
		prog.Deleted += int64(len(gone))
		prog.Done = len(keys) < p.cfg.ChunkRows
		if err := p.target.pruneChunk(ctx, m, gone, prog); err != nil {
			if !serverError(err, 1451) {
				return err
			}
			// A row the pass does not delete first (of this table, or
			// of a target table no source feeds) references one it
			// deletes. Stopping would stop every run here; the page is
			// rolled back and the rest of the table left to the check.
			p.log.Warn("cdc: resnapshot cannot delete this table's rows the source no longer has: other target rows reference them; the rest of the table is copied but not pruned: run `banyan check --fix-sql` after the copy",
				"table", m.SourceName(), "target", m.TargetName(), "checked", before.Checked, "deleted", before.Deleted, "err", err)
			before.Done = true
			return savePrune(ctx, p.target.DB, p.target.Pipeline, before)
		}
		bar.Add(int64(len(keys)))
		p.Metrics.pruned(m.TargetName(), len(gone))
		if prog.Done {
			bar.Done()
			p.log.Info("cdc: resnapshot removed the target rows the source no longer has",
				"table", m.SourceName(), "target", m.TargetName(), "checked", prog.Checked, "deleted", prog.Deleted, "sources", strings.Join(sources, ","))
			return nil
		}
	}
}
