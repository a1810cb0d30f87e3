package check

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// state is a check's progress, saved after every chunk for --resume.
type state struct {
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

func loadState(path string, resume bool) (*state, error) {
	st := &state{Tables: map[string]*tableState{}}
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
	if st.Tables == nil {
		st.Tables = map[string]*tableState{}
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

// save writes the state atomically (rename), so a kill never leaves half
// a file.
func (s *state) save(path string) error {
	if path == "" {
		return nil
	}
	for _, ts := range s.Tables {
		ts.LastPK = jsonKey(ts.LastPK)
		for i, k := range ts.Suspects {
			ts.Suspects[i] = jsonKey(k)
		}
	}
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("save check state: %w", err)
	}
	return os.Rename(tmp, path)
}

// jsonKey keeps key values JSON-safe: bytes become strings.
func jsonKey(k []any) []any {
	for i, v := range k {
		switch x := v.(type) {
		case []byte:
			k[i] = string(x)
		case time.Time:
			k[i] = x.UTC().Format("2006-01-02 15:04:05.999999")
		}
	}
	return k
}

// fixSQL is the statement that makes the target row match the source, in
// the target's mapped form.
func fixSQL(t *table, d rowDiff) string {
	tbl := qualified(t.m.TargetSchema, t.m.TargetTable)
	where := make([]string, len(t.m.PK))
	for i, idx := range t.m.PK {
		where[i] = fmt.Sprintf("%s = %s", quoteIdent(t.pkNames[i]), literal(t.kinds[idx], t.keyValue(d, i)))
	}
	switch d.Kind {
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

func (t *table) keyValue(d rowDiff, i int) Value {
	if d.src != nil {
		return d.src.vals[t.m.PK[i]]
	}
	return Value{Text: d.Key[t.pkNames[i]]}
}

// literal writes a normalised value as SQL: numbers bare, bytes as hex,
// text as an escaped string.
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
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`, "\n", `\n`, "\r", `\r`, "\x1a", `\Z`)
	return "'" + r.Replace(v.Text) + "'"
}
