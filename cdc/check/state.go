package check

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/banyanhq/banyan/cdc"
)

// state is a check's progress, saved after every chunk for --resume.
type state struct {
	// Check names the servers and the mapping the progress belongs to; a
	// resume against anything else starts over instead of trusting it.
	Check  string                 `json:"check"`
	Tables map[string]*tableState `json:"tables"`
}

type tableState struct {
	LastPK   []any       `json:"last_pk"`
	Rows     int64       `json:"rows"`
	Chunks   int         `json:"chunks"`
	Suspects [][]any     `json:"suspects"`
	Done     bool        `json:"done"`
	Result   TableResult `json:"result"`
}

func loadState(path string, resume bool, check string) (*state, error) {
	st := &state{Check: check, Tables: map[string]*tableState{}}
	if path == "" || !resume {
		return st, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil // nothing to resume: start from the beginning
	}
	if err != nil {
		return nil, fmt.Errorf("read check state: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber() // keys beyond 2^53 stay exact
	if err := dec.Decode(st); err != nil {
		return nil, fmt.Errorf("read check state %s: %w (delete it to start over)", path, err)
	}
	if st.Check != check {
		return nil, fmt.Errorf("check state %s belongs to another check (%s), not this one (%s): run without --resume, or delete it", path, orNone(st.Check), check)
	}
	if st.Tables == nil {
		st.Tables = map[string]*tableState{}
	}
	for name, ts := range st.Tables {
		var err error
		if ts.LastPK, err = cdc.KeyFromJSON(ts.LastPK); err != nil {
			return nil, fmt.Errorf("read check state %s: table %s: %w (delete it to start over)", path, name, err)
		}
		for i, k := range ts.Suspects {
			if ts.Suspects[i], err = cdc.KeyFromJSON(k); err != nil {
				return nil, fmt.Errorf("read check state %s: table %s: %w (delete it to start over)", path, name, err)
			}
		}
	}
	return st, nil
}

func (s *state) table(name string) *tableState {
	ts := s.Tables[name]
	if ts == nil {
		ts = &tableState{}
		s.Tables[name] = ts
	}
	return ts
}

func orNone(s string) string {
	if s == "" {
		return "unnamed"
	}
	return s
}

// checkID names a check: both servers (host:port as each reports itself)
// and a digest of the table mappings.
func (c *Checker) checkID(ctx context.Context) (string, error) {
	server := func(db *sql.DB) (string, error) {
		var host string
		var port int
		if err := db.QueryRowContext(ctx, "SELECT @@hostname, @@port").Scan(&host, &port); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s:%d", host, port), nil
	}
	src, err := server(c.Source.DB)
	if err != nil {
		return "", fmt.Errorf("source: %w", err)
	}
	dst, err := server(c.Target)
	if err != nil {
		return "", fmt.Errorf("target: %w", err)
	}
	h := sha256.New()
	for _, m := range c.Maps {
		fmt.Fprintf(h, "%s>%s %v|", m.SourceName(), m.TargetName(), m.PK)
		for _, col := range m.Cols {
			fmt.Fprintf(h, "%s>%s:%s,", col.Source, col.Target, col.ConvertName)
		}
	}
	return fmt.Sprintf("source %s, target %s, mapping %x", src, dst, h.Sum(nil)[:6]), nil
}

// save writes the state atomically (rename), so a kill never leaves half
// a file.
func (s *state) save(path string) error {
	if path == "" {
		return nil
	}
	// A copy: the keys in s are the check's query arguments.
	out := state{Check: s.Check, Tables: make(map[string]*tableState, len(s.Tables))}
	for name, ts := range s.Tables {
		c := *ts
		c.LastPK = cdc.KeyToJSON(ts.LastPK)
		c.Suspects = make([][]any, len(ts.Suspects))
		for i, k := range ts.Suspects {
			c.Suspects[i] = cdc.KeyToJSON(k)
		}
		out.Tables[name] = &c
	}
	data, err := json.Marshal(out)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	err = os.WriteFile(tmp, data, 0o600)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("%w to %s (give a writable path with --state): %w", ErrStateNotSaved, path, err)
	}
	return nil
}

// ErrStateNotSaved is returned when the progress file cannot be written:
// the check cannot be resumed from it, so it stops before reading a row.
var ErrStateNotSaved = errors.New("cannot save the check's progress")

// fixOrder orders the differences for the fix SQL: every DELETE (extra,
// duplicate) before the UPDATEs and the INSERTs (missing), each group in
// key order. A target key that its collation calls equal to a source key
// but that differs in bytes ('åsa' for 'Åsa', 'Bo ' for 'Bo') is an extra
// row and a missing one; inserted first, the source's row was refused as
// a duplicate of the target's, which the DELETE then removed, and the row
// was gone.
func fixOrder(diffs []rowDiff) []rowDiff {
	rank := func(d rowDiff) int {
		switch d.Kind {
		case "extra", "duplicate":
			return 0
		case "missing":
			return 2
		}
		return 1
	}
	out := slices.Clone(diffs)
	slices.SortStableFunc(out, func(a, b rowDiff) int { return rank(a) - rank(b) })
	return out
}

// fixSQL is the statement that makes the target row match the source, in
// the target's mapped form.
func fixSQL(t *table, d rowDiff) string {
	tbl := qualified(t.m.TargetSchema, t.m.TargetTable)
	where := make([]string, len(t.m.PK))
	for i, idx := range t.m.PK {
		where[i] = equals(t.cols[idx], t.kinds[idx], t.keyValue(d, i))
	}
	switch d.Kind {
	case "duplicate":
		// One copy too many: delete exactly one row equal to this copy.
		// A FLOAT or DOUBLE printed as text may not equal the stored
		// value, so those columns are left out of the match (a copy that
		// differs only there is as good to delete as this one).
		var all []string
		for i, c := range t.cols {
			if k := t.kinds[i]; k != kindFloat && k != kindDouble {
				all = append(all, equals(c, k, d.dst.vals[i]))
			}
		}
		return fmt.Sprintf("DELETE FROM %s WHERE %s LIMIT 1;", tbl, strings.Join(all, " AND "))
	case "extra":
		return fmt.Sprintf("DELETE FROM %s WHERE %s;", tbl, strings.Join(where, " AND "))
	case "missing":
		cols := make([]string, len(t.cols))
		vals := make([]string, len(t.cols))
		for i, c := range t.cols {
			cols[i] = quoteIdent(c.Name)
			vals[i] = literal(t.kinds[i], d.src.vals[i])
		}
		return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s);", tbl, strings.Join(cols, ", "), strings.Join(vals, ", "))
	}
	var sets []string
	for i, c := range t.cols {
		for _, cd := range d.Columns {
			if cd.Column == c.Name {
				sets = append(sets, fmt.Sprintf("%s = %s", quoteIdent(c.Name), literal(t.kinds[i], d.src.vals[i])))
			}
		}
	}
	return fmt.Sprintf("UPDATE %s SET %s WHERE %s;", tbl, strings.Join(sets, ", "), strings.Join(where, " AND "))
}

// equals is "col = literal", or "col IS NULL". Text under a collation
// other than binary is also matched byte for byte: "k = 'ABC'" holds for
// 'abc' and "k = 'bo '" for 'bo' under a _ci, PAD SPACE collation, and a
// target that does not enforce its key can hold both, so a DELETE of the
// extra row removed the source's own row with it. The collation's match
// comes first, so the server still reads the key's index.
func equals(c TargetColumn, k colKind, v Value) string {
	col := quoteIdent(c.Name)
	if v.Null {
		return col + " IS NULL"
	}
	eq := col + " = " + literal(k, v)
	if (k == kindText || k == kindChar) && c.Collation != "" && c.Collation != "binary" {
		eq += fmt.Sprintf(" AND CAST(CONVERT(%s USING utf8mb4) AS BINARY) = X'%s'", col, hex.EncodeToString([]byte(v.Text)))
	}
	return eq
}

func (t *table) keyValue(d rowDiff, i int) Value {
	if d.src != nil {
		return d.src.vals[t.m.PK[i]]
	}
	return d.dst.vals[t.m.PK[i]]
}

// literal writes a normalised value as SQL: numbers bare, bytes as hex,
// text as a quoted string (or a hex literal, see below).
func literal(k colKind, v Value) string {
	if v.Null {
		return "NULL"
	}
	switch k {
	case kindInt, kindDecimal, kindBit:
		if _, err := strconv.ParseFloat(v.Text, 64); err == nil {
			return v.Text
		}
	case kindFloat, kindDouble:
		if v.Text != "NaN" {
			return v.Text
		}
	case kindBinary:
		if _, err := hex.DecodeString(v.Text); err == nil {
			if v.Text == "" {
				return "''"
			}
			return "X'" + v.Text + "'"
		}
	}
	// Written so that it means the same with and without the
	// NO_BACKSLASH_ESCAPES sql_mode: a quote is doubled, and text holding a
	// backslash or a control character is a hex literal with the utf8mb4
	// introducer (a literal still, so it takes the column's collation,
	// and one line of the fix file).
	if strings.ContainsFunc(v.Text, func(r rune) bool { return r == '\\' || r < 0x20 || r == 0x7f }) {
		return "_utf8mb4 X'" + hex.EncodeToString([]byte(v.Text)) + "'"
	}
	return "'" + strings.ReplaceAll(v.Text, "'", "''") + "'"
}
