package diff

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Rows is one result set as a database returned it: column names, their
// database type names ("DECIMAL", "VARCHAR", as database/sql's
// ColumnType.DatabaseTypeName gives them) and the rows. A value is nil for
// SQL NULL, or a string, []byte, int64, uint64, float64, bool or time.Time.
type Rows struct {
	Columns []string `json:"columns"`
	Types   []string `json:"types"`
	Values  [][]any  `json:"-"`
}

// numericTypes are the database type names whose values compare by number.
var numericTypes = map[string]bool{
	"TINYINT": true, "SMALLINT": true, "MEDIUMINT": true, "INT": true, "INTEGER": true, "BIGINT": true,
	"DECIMAL": true, "NUMERIC": true, "FLOAT": true, "DOUBLE": true, "REAL": true, "YEAR": true, "BIT": false,
	"UNSIGNED TINYINT": true, "UNSIGNED SMALLINT": true, "UNSIGNED MEDIUMINT": true, "UNSIGNED INT": true,
	"UNSIGNED BIGINT": true, "UNSIGNED DECIMAL": true, "UNSIGNED FLOAT": true, "UNSIGNED DOUBLE": true,
}

// IsNumericType reports whether values of the database type name compare
// by numeric value in CompareRows.
func IsNumericType(t string) bool { return numericTypes[strings.ToUpper(t)] }

// maxRowDiffs caps the differences CompareRows lists for the rows
// themselves (one More difference at "rows" then counts the rest);
// row_count and columns differences are always reported.
const maxRowDiffs = 100

// CompareRows compares two result sets and returns nil when they agree.
//
// Paths: "row_count" (counts differ), "columns" (names differ, Legacy/New
// hold the name lists), "columns[i].type" (type of column i differs),
// "rows" (ordered: same rows in a different order, Kind Order),
// "rows[i]" (a whole row only in old, Kind Missing, or only in new, Kind
// Extra; Legacy/New hold the row as a column→value map) and
// "rows[i].col" (one cell differs, Kind Changed). i is the row's index in
// old (for Extra, in new).
//
// Values compare as follows: NULL equals only NULL (never ” or 0); in a
// column whose type is numeric on either side, two values that are both
// numbers compare by exact decimal value, as JSON numbers do in Compare
// (10 = 10.0 = "10.00"); everything else compares by its exact text
// (so 'a' and 'A' differ whatever the collation, and trailing spaces
// count). Unordered comparison (ordered false) matches rows as a
// multiset; rows left unmatched are paired in sorted order to show the
// differing cells, and the rest are reported as missing or extra. At most
// 100 differences about the rows are listed; beyond them one more, at
// "rows" with Kind More, says in Lines how many were left out.
func CompareRows(old, new Rows, ordered bool) []Difference {
	var diffs []Difference
	if len(old.Values) != len(new.Values) {
		diffs = append(diffs, Difference{Path: "row_count", Kind: Changed, Legacy: len(old.Values), New: len(new.Values)})
	}
	if !slices.Equal(old.Columns, new.Columns) {
		diffs = append(diffs, Difference{Path: "columns", Kind: Changed, Legacy: old.Columns, New: new.Columns})
	}
	for i := range min(len(old.Types), len(new.Types)) {
		if !strings.EqualFold(old.Types[i], new.Types[i]) {
			diffs = append(diffs, Difference{Path: fmt.Sprintf("columns[%d].type", i), Kind: Type, Legacy: old.Types[i], New: new.Types[i]})
		}
	}
	if len(old.Columns) != len(new.Columns) {
		return diffs // rows cannot be lined up column by column
	}
	numeric := make([]bool, len(old.Columns))
	for i := range numeric {
		numeric[i] = (i < len(old.Types) && IsNumericType(old.Types[i])) || (i < len(new.Types) && IsNumericType(new.Types[i]))
	}
	rc := rowComparer{old: old, new: new, numeric: numeric}
	if ordered {
		rc.ordered()
	} else {
		rc.unordered()
	}
	diffs = append(diffs, rc.diffs...)
	if rc.more > 0 {
		diffs = append(diffs, Difference{Path: "rows", Kind: More, Lines: rc.more})
	}
	return diffs
}

type rowComparer struct {
	old, new Rows
	numeric  []bool
	diffs    []Difference
	more     int // differences found past maxRowDiffs, not listed
}

func (rc *rowComparer) add(d Difference) {
	if len(rc.diffs) >= maxRowDiffs {
		rc.more++
		return
	}
	rc.diffs = append(rc.diffs, d)
}

// ordered compares row i with row i; when the two sides hold the same
// multiset of rows it reports one Order difference instead of cells.
func (rc *rowComparer) ordered() {
	n := min(len(rc.old.Values), len(rc.new.Values))
	differ := false
	for i := range n {
		if !rc.rowEqual(rc.old.Values[i], rc.new.Values[i]) {
			differ = true
			break
		}
	}
	if !differ {
		rc.tail(n)
		return
	}
	if len(rc.old.Values) == len(rc.new.Values) && rc.sameMultiset() {
		rc.add(Difference{Path: "rows", Kind: Order})
		return
	}
	for i := range n {
		rc.cells(i, rc.old.Values[i], rc.new.Values[i])
	}
	rc.tail(n)
}

// tail reports the rows past the shorter side's end.
func (rc *rowComparer) tail(n int) {
	for i := n; i < len(rc.old.Values); i++ {
		rc.add(Difference{Path: rowPath(i), Kind: Missing, Legacy: rc.rowMap(rc.old, i)})
	}
	for i := n; i < len(rc.new.Values); i++ {
		rc.add(Difference{Path: rowPath(i), Kind: Extra, New: rc.rowMap(rc.new, i)})
	}
}

func (rc *rowComparer) sameMultiset() bool {
	counts := map[string]int{}
	for _, r := range rc.old.Values {
		counts[rc.key(r)]++
	}
	for _, r := range rc.new.Values {
		k := rc.key(r)
		if counts[k] == 0 {
			return false
		}
		counts[k]--
	}
	return true
}

// unordered matches rows by their canonical key, then pairs the leftovers.
func (rc *rowComparer) unordered() {
	byKey := map[string][]int{}
	for i, r := range rc.old.Values {
		k := rc.key(r)
		byKey[k] = append(byKey[k], i)
	}
	type left struct {
		idx int
		key string
	}
	var extra []left
	for i, r := range rc.new.Values {
		k := rc.key(r)
		if ids := byKey[k]; len(ids) > 0 {
			byKey[k] = ids[1:]
			continue
		}
		extra = append(extra, left{i, k})
	}
	var missing []left
	for k, ids := range byKey {
		for _, i := range ids {
			missing = append(missing, left{i, k})
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return
	}
	// Pair leftovers in sorted order so a changed cell shows as a cell;
	// sort by the old side's index to keep reports stable.
	cmp := func(a, b left) int { return strings.Compare(a.key, b.key) }
	slices.SortFunc(missing, cmp)
	slices.SortFunc(extra, cmp)
	n := min(len(missing), len(extra))
	type pairIdx struct{ o, n int }
	pairs := make([]pairIdx, n)
	for i := range n {
		pairs[i] = pairIdx{missing[i].idx, extra[i].idx}
	}
	slices.SortFunc(pairs, func(a, b pairIdx) int { return a.o - b.o })
	for _, p := range pairs {
		rc.cells(p.o, rc.old.Values[p.o], rc.new.Values[p.n])
	}
	rest := missing[n:]
	slices.SortFunc(rest, func(a, b left) int { return a.idx - b.idx })
	for _, m := range rest {
		rc.add(Difference{Path: rowPath(m.idx), Kind: Missing, Legacy: rc.rowMap(rc.old, m.idx)})
	}
	restE := extra[n:]
	slices.SortFunc(restE, func(a, b left) int { return a.idx - b.idx })
	for _, e := range restE {
		rc.add(Difference{Path: rowPath(e.idx), Kind: Extra, New: rc.rowMap(rc.new, e.idx)})
	}
}

func (rc *rowComparer) cells(i int, a, b []any) {
	for c := range min(len(a), len(b)) {
		if !rc.valueEqual(c, a[c], b[c]) {
			rc.add(Difference{Path: rowPath(i) + "." + rc.colName(c), Kind: Changed, Legacy: Display(a[c]), New: Display(b[c])})
		}
	}
}

func (rc *rowComparer) colName(c int) string {
	name := rc.old.Columns[c]
	if isIdent(name) {
		return name
	}
	return "[" + strconv.Quote(name) + "]"
}

func (rc *rowComparer) rowEqual(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for c := range a {
		if !rc.valueEqual(c, a[c], b[c]) {
			return false
		}
	}
	return true
}

func (rc *rowComparer) valueEqual(c int, a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	sa, sb := text(a), text(b)
	if sa == sb {
		return true
	}
	if rc.numeric[c] && isNumber(sa) && isNumber(sb) {
		return numbersEqual(sa, sb)
	}
	return false
}

// key is a row's canonical form: equal rows (by valueEqual) have equal keys.
func (rc *rowComparer) key(r []any) string {
	var b strings.Builder
	for c, v := range r {
		if v == nil {
			b.WriteString("N")
		} else {
			s := text(v)
			if c < len(rc.numeric) && rc.numeric[c] && isNumber(s) {
				s = canonicalNumber(s)
			}
			b.WriteString("V")
			b.WriteString(strconv.Itoa(len(s)))
			b.WriteByte(':')
			b.WriteString(s)
		}
		b.WriteByte(0)
	}
	return b.String()
}

func (rc *rowComparer) rowMap(rs Rows, i int) map[string]any {
	m := make(map[string]any, len(rs.Columns))
	for c, v := range rs.Values[i] {
		if c < len(rs.Columns) {
			m[rs.Columns[c]] = Display(v)
		}
	}
	return m
}

// canonicalNumber renders a number literal so that numbersEqual literals
// render alike.
func canonicalNumber(s string) string {
	var buf [32]byte
	d, ok := parseDecimal(s, buf[:0])
	if !ok {
		return s
	}
	sign := ""
	if d.neg {
		sign = "-"
	}
	return sign + string(d.digits) + "e" + strconv.FormatInt(d.exp, 10)
}

func rowPath(i int) string { return "rows[" + strconv.Itoa(i) + "]" }

// text renders a non-NULL value as the text MySQL's text protocol sends.
func text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case int:
		return strconv.Itoa(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case bool:
		if x {
			return "1"
		}
		return "0"
	case time.Time:
		return x.Format("2006-01-02 15:04:05.999999999")
	default:
		return fmt.Sprint(x)
	}
}

// Display returns a value as a report shows it: nil for NULL, otherwise
// its text.
func Display(v any) any {
	if v == nil {
		return nil
	}
	return text(v)
}
