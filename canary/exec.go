package canary

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/banyanhq/banyan/diff"
	"github.com/go-sql-driver/mysql"
)

// session is one connection the canary runs statements on, so that
// SHOW WARNINGS sees the statement just run and USE carries over.
type session struct {
	conn    *sql.Conn
	home    string // the DSN's database, "" for none
	current string
	writes  bool // run each statement in a transaction that is rolled back
	// noBackslash: the session's sql_mode has NO_BACKSLASH_ESCAPES, so
	// parameters are bound without backslash escapes.
	noBackslash bool
	// checked caches nonTransactional's answer per schema and
	// statement fingerprint.
	checked map[string][]string
}

func newSession(ctx context.Context, db *sql.DB, allowWrites bool) (*session, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	var home sql.NullString
	var mode string
	if err := conn.QueryRowContext(ctx, "SELECT DATABASE(), @@SESSION.sql_mode").Scan(&home, &mode); err != nil {
		conn.Close()
		return nil, err
	}
	// A query cache would answer every repeated timed run from memory,
	// a full scan as fast as a lookup. MySQL 8 has none (unknown
	// variable), and a server started without one refuses the setting:
	// both are fine.
	if _, err := conn.ExecContext(ctx, "SET SESSION query_cache_type = OFF"); err != nil && !isStatementError(err) {
		conn.Close()
		return nil, err
	}
	return &session{conn: conn, home: home.String, current: home.String, writes: allowWrites,
		noBackslash: slices.Contains(strings.Split(strings.ToUpper(mode), ","), "NO_BACKSLASH_ESCAPES")}, nil
}

// Close gives the connection back to its pool with the query cache
// setting newSession changed restored.
func (s *session) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.conn.ExecContext(ctx, "SET SESSION query_cache_type = DEFAULT")
	return s.conn.Close()
}

// serverClock reads the server's clock.
func (s *session) serverClock(ctx context.Context) (time.Time, error) {
	var us int64
	if err := s.conn.QueryRowContext(ctx, "SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)").Scan(&us); err != nil {
		return time.Time{}, err
	}
	return time.UnixMicro(us), nil
}

// setClock pins the session's clock (NOW(), CURRENT_TIMESTAMP) at t, to
// the microsecond; the zero t gives it back the server's clock.
func (s *session) setClock(ctx context.Context, t time.Time) error {
	v := "DEFAULT"
	if !t.IsZero() {
		v = fmt.Sprintf("%d.%06d", t.Unix(), t.Nanosecond()/1000)
	}
	_, err := s.conn.ExecContext(ctx, "SET @@SESSION.timestamp = "+v)
	return err
}

// outcome is what one execution returned.
type outcome struct {
	rows     diff.Rows
	err      error
	warnings []string
	elapsed  time.Duration
	// effects is what a write did to the table it writes (a read writes
	// nothing). effectsKnown is false when that could not be read, and
	// effectsNote then says why; the write is then compared by rows
	// affected only.
	effects      []effect
	effectsKnown bool
	effectsNote  string
}

// querier is what *sql.Conn and *sql.Tx have in common.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// use switches the session to schema ("" = the DSN's database).
func (s *session) use(ctx context.Context, schema string) error {
	want := schema
	if want == "" {
		want = s.home
	}
	if want == s.current || want == "" {
		return nil
	}
	if _, err := s.conn.ExecContext(ctx, "USE "+quoteIdent(want)); err != nil {
		return fmt.Errorf("use %s: %w", want, err)
	}
	s.current = want
	return nil
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// run executes one statement. keep says whether to keep the rows and read
// SHOW WARNINGS (the comparison pass) or only drain them (timed runs). A
// write runs in a transaction that is rolled back; with keep, the table it
// writes is read before and after it inside that transaction, so that
// outcome.effects holds the rows it deleted and inserted. A statement
// error is returned in outcome.err; a connection-level failure (context
// cancelled, connection lost) as the error. A read runs in a READ ONLY
// transaction (see below), so a read that tries to write returns
// ErrWriteRefused.
func (s *session) run(ctx context.Context, schema, stmt string, class Class, keep bool) (outcome, error) {
	if err := s.use(ctx, schema); err != nil {
		return outcome{}, err
	}
	var q querier = s.conn
	var tx *sql.Tx
	if class == Write {
		if !s.writes {
			return outcome{}, ErrWriteRefused
		}
		bad, err := s.nonTransactional(ctx, stmt)
		if err != nil {
			return outcome{}, err
		}
		if len(bad) > 0 {
			return outcome{}, fmt.Errorf("%w: %s", ErrNotTransactional, strings.Join(bad, ", "))
		}
		if tx, err = s.conn.BeginTx(ctx, nil); err != nil {
			return outcome{}, fmt.Errorf("begin: %w", err)
		}
		defer tx.Rollback()
		q = tx
	} else {
		// A read may still write, through a stored function. Without
		// AllowWrites it runs in a READ ONLY transaction, where the
		// server refuses that; with AllowWrites, or when it is a locking
		// read (FOR UPDATE, which READ ONLY refuses too), in one that is
		// rolled back like a write.
		var err error
		if tx, err = s.beginRead(ctx, stmt); err != nil {
			return outcome{}, fmt.Errorf("begin: %w", err)
		}
		defer tx.Rollback()
		q = tx
	}
	o := outcome{effectsKnown: class != Write}
	var before *snapshot
	if class == Write && keep {
		var err error
		if before, o.effectsNote, err = s.snapshot(ctx, q, stmt); err != nil {
			return o, err
		}
	}
	start := time.Now()
	if class == Write {
		res, err := q.ExecContext(ctx, stmt)
		o.elapsed = time.Since(start)
		if err != nil {
			o.err = err
		} else {
			n, _ := res.RowsAffected()
			o.rows = diff.Rows{Columns: []string{"rows_affected"}, Types: []string{"BIGINT"}, Values: [][]any{{n}}}
		}
	} else {
		o.rows, o.err = readRows(ctx, q, stmt, keep)
		o.elapsed = time.Since(start)
	}
	if o.err != nil && !isStatementError(o.err) {
		return o, o.err
	}
	if class != Write && writeRefused(o.err) {
		return o, fmt.Errorf("it tried to write (a stored function or a sequence?), which the READ ONLY transaction a read runs in refused (%v): %w", o.err, ErrWriteRefused)
	}
	if keep {
		w, err := warnings(ctx, q)
		if err != nil {
			return o, fmt.Errorf("show warnings: %w", err)
		}
		o.warnings = w
	}
	if before != nil && o.err == nil {
		// After SHOW WARNINGS: reading the table clears the warnings.
		e, err := before.effect(ctx, q)
		switch {
		case err == nil:
			o.effects, o.effectsKnown = []effect{e}, true
		case isStatementError(err):
			o.effectsNote = fmt.Sprintf("could not read %s after the write: %v", before.table, err)
		default:
			return o, fmt.Errorf("read %s after the write: %w", before.table, err)
		}
	}
	if tx != nil {
		if err := tx.Rollback(); err != nil {
			return o, fmt.Errorf("rollback: %w", err)
		}
		// A trigger, a view or a cascade may have written a table that
		// cannot roll back; the server says so on the ROLLBACK.
		w, err := warnings(ctx, s.conn)
		if err != nil {
			return o, fmt.Errorf("show warnings after rollback: %w", err)
		}
		for _, m := range w {
			if strings.Contains(m, " 1196: ") {
				return o, fmt.Errorf("%w: the write changed one through a trigger, a view or a cascade, and the rollback did not undo that (%s); stopped after this execution", ErrNotTransactional, m)
			}
		}
	}
	return o, nil
}

// nonTransactional returns the tables stmt names whose engine cannot roll
// back, as "schema.table (ENGINE)". It looks at every identifier of the
// statement (unqualified ones in the current database), so a column that
// shares a name with such a table refuses the write too: better a refusal
// than a write that stays.
func (s *session) nonTransactional(ctx context.Context, stmt string) ([]string, error) {
	key := s.current + "\x00" + Fingerprint(stmt)
	if bad, ok := s.checked[key]; ok {
		return bad, nil
	}
	toks := code(lex(stmt))
	var conds []string
	var args []any
	seen := map[[2]string]bool{}
	add := func(schema, table string) {
		if k := [2]string{schema, table}; !seen[k] {
			seen[k] = true
			conds, args = append(conds, "(t.TABLE_SCHEMA = ? AND t.TABLE_NAME = ?)"), append(args, schema, table)
		}
	}
	for i, t := range toks {
		name, ok := identText(t)
		if !ok {
			continue
		}
		if s.current != "" {
			add(s.current, name)
		}
		if i+2 < len(toks) && toks[i+1].text == "." {
			if table, ok := identText(toks[i+2]); ok {
				add(name, table)
			}
		}
	}
	var bad []string
	if len(conds) > 0 {
		rows, err := s.conn.QueryContext(ctx, "SELECT t.TABLE_SCHEMA, t.TABLE_NAME, t.ENGINE FROM information_schema.TABLES t"+
			" JOIN information_schema.ENGINES e ON e.ENGINE = t.ENGINE WHERE COALESCE(e.TRANSACTIONS, 'NO') <> 'YES' AND ("+
			strings.Join(conds, " OR ")+") ORDER BY t.TABLE_SCHEMA, t.TABLE_NAME", args...)
		if err != nil {
			return nil, fmt.Errorf("check the written tables' engines: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var schema, table, engine string
			if err := rows.Scan(&schema, &table, &engine); err != nil {
				return nil, err
			}
			bad = append(bad, fmt.Sprintf("%s.%s (%s)", schema, table, engine))
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("check the written tables' engines: %w", err)
		}
	}
	if s.checked == nil {
		s.checked = map[string][]string{}
	}
	s.checked[key] = bad
	return bad, nil
}

// identText returns the name a word or `quoted` identifier token stands
// for.
func identText(t token) (string, bool) {
	switch t.kind {
	case tIdent:
		return strings.ReplaceAll(t.text[1:max(len(t.text)-1, 1)], "``", "`"), true
	case tWord:
		return t.text, true
	}
	return "", false
}

// snapshot reads the table stmt writes, before it runs. It returns a nil
// snapshot and the reason when that table cannot be determined or read.
func (s *session) snapshot(ctx context.Context, q querier, stmt string) (*snapshot, string, error) {
	t, err := WriteTarget(stmt)
	if err != nil {
		return nil, err.Error(), nil
	}
	snap, err := takeSnapshot(ctx, q, t, s.current)
	if err != nil {
		if isStatementError(err) {
			return nil, fmt.Sprintf("could not read %s: %v", t, err), nil
		}
		return nil, "", fmt.Errorf("read %s before the write: %w", t, err)
	}
	return snap, "", nil
}

// beginRead begins the transaction the read stmt runs in, to be rolled
// back: READ ONLY, so that a stored function it calls cannot write,
// unless writes are allowed or stmt is a locking read (which READ ONLY
// refuses).
func (s *session) beginRead(ctx context.Context, stmt string) (*sql.Tx, error) {
	return s.conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: !s.writes && !lockingRead(stmt)})
}

// lockingRead reports whether stmt has FOR UPDATE anywhere.
func lockingRead(stmt string) bool {
	toks := code(lex(stmt))
	for i := 0; i+1 < len(toks); i++ {
		if toks[i].kind == tWord && strings.EqualFold(toks[i].text, "FOR") && strings.EqualFold(toks[i+1].text, "UPDATE") {
			return true
		}
	}
	return false
}

// writeRefused reports whether err is a READ ONLY transaction refusing a
// write (ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION).
func writeRefused(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1792
}

// isStatementError reports whether err is the server refusing the
// statement (syntax, unknown column...) rather than a broken connection.
func isStatementError(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me)
}

func readRows(ctx context.Context, q querier, stmt string, keep bool) (diff.Rows, error) {
	var out diff.Rows
	var each func([]any)
	if keep {
		each = func(row []any) { out.Values = append(out.Values, row) }
	}
	var err error
	out.Columns, out.Types, err = eachRow(ctx, q, stmt, each)
	return out, err
}

// eachRow runs stmt and hands each row to fn as a new slice, text as
// strings, and returns the columns' names and types. A nil fn only reads
// the rows (a timed run).
func eachRow(ctx context.Context, q querier, stmt string, fn func(vals []any)) (cols, types []string, err error) {
	rows, err := q.QueryContext(ctx, stmt)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	cts, err := rows.ColumnTypes()
	if err != nil {
		return nil, nil, err
	}
	fsp := make([]int64, len(cts))
	for i, ct := range cts {
		cols = append(cols, ct.Name())
		types = append(types, ct.DatabaseTypeName())
		if _, scale, ok := ct.DecimalSize(); ok {
			fsp[i] = scale
		}
	}
	// Scan into any, not RawBytes: a DSN with parseTime=true hands
	// DATETIME over as time.Time, which RawBytes cannot hold.
	raw := make([]any, len(cts))
	ptrs := make([]any, len(cts))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return cols, types, err
		}
		if fn == nil {
			continue
		}
		row := make([]any, len(raw))
		for i, v := range raw {
			switch x := v.(type) {
			case []byte:
				row[i] = string(x)
			case time.Time:
				row[i] = temporalText(x, types[i], fsp[i])
			default:
				row[i] = v
			}
		}
		fn(row)
	}
	return cols, types, rows.Err()
}

// temporalText writes a DATE, DATETIME or TIMESTAMP value that the driver
// parsed (a DSN with parseTime=true) back as the text protocol sends it:
// a DATE without a time, fsp fractional digits however many are zero,
// and the zero date as zeros. (The driver parses '0000-00-00' and
// '0001-01-01' in UTC to the same time.Time; the CLI's DSNs do not parse.)
func temporalText(t time.Time, dbType string, fsp int64) string {
	frac := ""
	if fsp > 0 && fsp <= 6 {
		frac = "." + strings.Repeat("0", int(fsp))
	}
	if t.IsZero() {
		if dbType == "DATE" {
			return "0000-00-00"
		}
		return "0000-00-00 00:00:00" + frac
	}
	if dbType == "DATE" {
		return t.Format("2006-01-02")
	}
	return t.Format("2006-01-02 15:04:05" + frac) // ".000" is fsp fixed digits
}

func warnings(ctx context.Context, q querier) ([]string, error) {
	rows, err := q.QueryContext(ctx, "SHOW WARNINGS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var level, msg string
		var code int
		if err := rows.Scan(&level, &code, &msg); err != nil {
			return nil, err
		}
		out = append(out, fmt.Sprintf("%s %d: %s", level, code, msg))
	}
	slices.Sort(out)
	return out, rows.Err()
}

// ExplainRow is one row of EXPLAIN.
type ExplainRow struct {
	Table string `json:"table"`
	Type  string `json:"type"` // access type: const, ref, range, index, ALL...
	Key   string `json:"key"`
	Rows  string `json:"rows"`
	Extra string `json:"extra,omitempty"`
}

// Explain is EXPLAIN of one side's statement.
type Explain struct {
	Rows  []ExplainRow `json:"rows,omitempty"`
	Error string       `json:"error,omitempty"`
}

func (s *session) explain(ctx context.Context, schema, stmt string) Explain {
	if err := s.use(ctx, schema); err != nil {
		return Explain{Error: err.Error()}
	}
	// Planning may call a stored function (a constant argument is
	// evaluated while planning), which may write: EXPLAIN runs in a
	// transaction that is rolled back, READ ONLY as the statement runs.
	tx, err := s.beginRead(ctx, stmt)
	if err != nil {
		return Explain{Error: err.Error()}
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, "EXPLAIN "+stmt)
	if err != nil {
		return Explain{Error: err.Error()}
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	raw := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	var e Explain
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return Explain{Error: err.Error()}
		}
		var r ExplainRow
		for i, c := range cols {
			v := raw[i].String
			switch strings.ToLower(c) {
			case "table":
				r.Table = v
			case "type":
				r.Type = v
			case "key":
				r.Key = v
			case "rows":
				r.Rows = v
			case "extra":
				r.Extra = v
			}
		}
		e.Rows = append(e.Rows, r)
	}
	if err := rows.Err(); err != nil {
		return Explain{Error: err.Error()}
	}
	return e
}

// errorText renders a statement error for reports.
func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// sameError reports whether two statement errors are the same server error.
func sameError(a, b error) bool {
	var ma, mb *mysql.MySQLError
	if errors.As(a, &ma) && errors.As(b, &mb) {
		return ma.Number == mb.Number
	}
	return errorText(a) == errorText(b)
}
