package canary

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/csv"
	"fmt"
	"io"
	"regexp"
	"strconv"

	"github.com/banyanhq/banyan/diff"
)

var headerCell = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ReadParams reads parameter sets from CSV, one set per record, values
// bound in column order. \N is NULL (as mysqldump and LOAD DATA write it);
// an empty cell is the empty string. Integers are bound as numbers (so
// "LIMIT ?" works), everything else as strings. The first record is taken
// as a header and skipped when every cell is an identifier and some later
// record has a cell that is not one (so "id" above 1, 2, 3 is a header,
// while a file of status names is all data). A leading UTF-8 byte order
// mark is dropped.
//
// Errors name the line of the file where the bad record starts.
func ReadParams(r io.Reader) ([][]any, error) {
	br := bufio.NewReader(r)
	if head, err := br.Peek(3); err == nil && string(head) == "\ufeff" {
		br.Discard(3) // a spreadsheet's UTF-8 byte order mark, not data
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	var records [][]string
	var lines []int // the line each record starts on
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("params CSV: %w", err)
		}
		line, _ := cr.FieldPos(0)
		records, lines = append(records, rec), append(lines, line)
	}
	if len(records) > 1 && allIdents(records[0]) {
		for _, rec := range records[1:] {
			if !allIdents(rec) {
				records, lines = records[1:], lines[1:]
				break
			}
		}
	}
	out := make([][]any, 0, len(records))
	for i, rec := range records {
		if i > 0 && len(rec) != len(records[0]) {
			return nil, fmt.Errorf("params CSV: line %d has %d values, the first parameter set (line %d) has %d", lines[i], len(rec), lines[0], len(records[0]))
		}
		set := make([]any, len(rec))
		for j, v := range rec {
			set[j] = paramValue(v)
		}
		out = append(out, set)
	}
	return out, nil
}

func allIdents(rec []string) bool {
	for _, c := range rec {
		if !headerCell.MatchString(c) {
			return false
		}
	}
	return true
}

func paramValue(v string) any {
	if v == `\N` {
		return nil
	}
	return typed(v)
}

// typed returns v as an int64 when it is one, written canonically.
func typed(v string) any {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && strconv.FormatInt(n, 10) == v {
		return n
	}
	return v
}

// QueryParams runs query (which must be read-only) on db, in a READ ONLY
// transaction, and returns its rows as parameter sets, in column order:
// integers of a numeric column as numbers, NULL as nil, everything else
// as strings (a VARCHAR's digits too).
func QueryParams(ctx context.Context, db *sql.DB, query string) ([][]any, error) {
	c, err := Classify(query)
	if err != nil {
		return nil, fmt.Errorf("params query: %w", err)
	}
	if c != ReadOnly {
		return nil, fmt.Errorf("params query: %w", ErrWriteRefused)
	}
	// In a READ ONLY transaction: a stored function it calls cannot write.
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("params query: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return nil, paramsQueryError(err)
	}
	defer rows.Close()
	cols, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	// A text column's digits stay text: '0123' and '123' are different
	// values, and the number 123 would compare a VARCHAR numerically,
	// past its index.
	numeric := make([]bool, len(cols))
	for i, c := range cols {
		numeric[i] = diff.IsNumericType(c.DatabaseTypeName())
	}
	raw := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	var out [][]any
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		set := make([]any, len(raw))
		for i, b := range raw {
			switch {
			case b == nil:
			case numeric[i]:
				set[i] = typed(string(b))
			default:
				set[i] = string(b)
			}
		}
		out = append(out, set)
	}
	if err := rows.Err(); err != nil {
		return nil, paramsQueryError(err)
	}
	return out, nil
}

func paramsQueryError(err error) error {
	if writeRefused(err) {
		return fmt.Errorf("params query: it tried to write (a stored function or a sequence?), which the READ ONLY transaction it runs in refused (%v): %w", err, ErrWriteRefused)
	}
	return fmt.Errorf("params query: %w", err)
}
