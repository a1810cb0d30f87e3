package canary

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// tokKind is the kind of one lexical token of MySQL SQL.
type tokKind uint8

const (
	tWord    tokKind = iota // keyword or bare identifier
	tIdent                  // `quoted identifier`
	tString                 // 'x' or "x"
	tNumber                 // 12, 1.5, 1e3, 0x1F, X'1F', b'01'
	tPlace                  // ? placeholder
	tPunct                  // any other single character (, ) , ; = ...
	tComment                // -- x, # x, /* x */
	tSpace
)

type token struct {
	kind tokKind
	text string
}

// lex splits s into tokens. It never fails: an unterminated string or
// comment runs to the end of s. MySQL executable comments (/*! ... */,
// /*M! ... */) are lexed as code, since the server runs them.
func lex(s string) []token { return lexMode(s, false) }

// lexMode is lex; noBackslash lexes strings as a server whose sql_mode
// has NO_BACKSLASH_ESCAPES reads them: a backslash is an ordinary
// character, so 'C:' ends at its second quote.
func lexMode(s string, noBackslash bool) []token {
	var toks []token
	i := 0
	for i < len(s) {
		c := s[i]
		start := i
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			for i < len(s) && strings.IndexByte(" \t\n\r\f\v", s[i]) >= 0 {
				i++
			}
			toks = append(toks, token{tSpace, s[start:i]})
		case c == '#' || (c == '-' && strings.HasPrefix(s[i:], "--") && (i+2 == len(s) || strings.IndexByte(" \t\n\r", s[i+2]) >= 0)):
			for i < len(s) && s[i] != '\n' {
				i++
			}
			toks = append(toks, token{tComment, s[start:i]})
		case c == '/' && strings.HasPrefix(s[i:], "/*"):
			if rest := s[i+2:]; strings.HasPrefix(rest, "!") || strings.HasPrefix(rest, "M!") {
				// Executable comment: drop the markers, keep the code.
				j := i + 2 + strings.IndexByte(rest, '!') + 1
				for j < len(s) && s[j] >= '0' && s[j] <= '9' {
					j++
				}
				end := strings.Index(s[j:], "*/")
				inner := s[j:]
				if end >= 0 {
					inner = s[j : j+end]
					i = j + end + 2
				} else {
					i = len(s)
				}
				toks = append(toks, token{tSpace, " "})
				toks = append(toks, lexMode(inner, noBackslash)...)
				toks = append(toks, token{tSpace, " "})
				continue
			}
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				i = len(s)
			} else {
				i += 2 + end + 2
			}
			toks = append(toks, token{tComment, s[start:i]})
		case c == '\'' || c == '"' || c == '`':
			i = quoted(s, i, noBackslash)
			k := tString
			if c == '`' {
				k = tIdent
			}
			toks = append(toks, token{k, s[start:i]})
		case (c == 'x' || c == 'X' || c == 'b' || c == 'B') && i+1 < len(s) && s[i+1] == '\'':
			i = quoted(s, i+1, noBackslash)
			toks = append(toks, token{tNumber, s[start:i]})
		case c >= '0' && c <= '9' || (c == '.' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9'):
			i = number(s, i)
			if i < len(s) && isWordByte(s[i]) { // 1abc is an identifier in MySQL
				for i < len(s) && isWordByte(s[i]) {
					i++
				}
				toks = append(toks, token{tWord, s[start:i]})
				continue
			}
			toks = append(toks, token{tNumber, s[start:i]})
		case isWordByte(c):
			for i < len(s) && isWordByte(s[i]) {
				i++
			}
			toks = append(toks, token{tWord, s[start:i]})
		case c == '?':
			i++
			toks = append(toks, token{tPlace, "?"})
		default:
			i++
			for _, op := range []string{"<=>", "<=", ">=", "<>", "!=", ":=", "||", "&&", "<<", ">>", "->>", "->"} {
				if strings.HasPrefix(s[start:], op) {
					i = start + len(op)
					break
				}
			}
			toks = append(toks, token{tPunct, s[start:i]})
		}
	}
	return toks
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c == '@' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80
}

// quoted returns the index after the quoted token starting at s[i]
// (backslash escapes, unless noBackslash, and doubled quotes allowed).
func quoted(s string, i int, noBackslash bool) int {
	q := s[i]
	i++
	for i < len(s) {
		switch s[i] {
		case '\\':
			if q != '`' && !noBackslash {
				i += 2
				continue
			}
		case q:
			if i+1 < len(s) && s[i+1] == q {
				i += 2
				continue
			}
			return i + 1
		}
		i++
	}
	return len(s)
}

func number(s string, i int) int {
	if strings.HasPrefix(s[i:], "0x") || strings.HasPrefix(s[i:], "0X") {
		i += 2
		for i < len(s) && strings.IndexByte("0123456789abcdefABCDEF", s[i]) >= 0 {
			i++
		}
		return i
	}
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && s[j] >= '0' && s[j] <= '9' {
			i = j
			for i < len(s) && s[i] >= '0' && s[i] <= '9' {
				i++
			}
		}
	}
	return i
}

// code returns the tokens that are neither space nor comment.
func code(toks []token) []token {
	out := toks[:0:0]
	for _, t := range toks {
		if t.kind != tSpace && t.kind != tComment {
			out = append(out, t)
		}
	}
	return out
}

// Class says what a statement may do to the data.
type Class int

// Statement classes.
const (
	ReadOnly Class = iota // SELECT, SHOW, EXPLAIN, DESCRIBE, WITH ... SELECT
	Write                 // INSERT, UPDATE, DELETE, REPLACE: run only with AllowWrites, in a rolled-back transaction
	Other                 // DDL, SET, CALL, LOCK, LOAD...: never run (DDL commits implicitly; CALL may commit)
)

func (c Class) String() string {
	switch c {
	case ReadOnly:
		return "read-only"
	case Write:
		return "write"
	}
	return "other"
}

// ErrMultiStatement is returned for text holding more than one statement.
var ErrMultiStatement = errors.New("more than one statement")

// Classify says whether stmt only reads, writes rows, or does anything
// else, after stripping comments. SELECT ... INTO OUTFILE/DUMPFILE and
// SELECT ... INTO @var count as Other; a WITH clause counts as what its
// statement does. Text holding more than one statement is an error.
// The text is read both as a default server and as one with
// NO_BACKSLASH_ESCAPES reads it ('C:\' ends differently), and the more
// dangerous answer wins, so a backslash cannot hide a statement.
func Classify(stmt string) (Class, error) {
	a, err := classify(code(lex(stmt)))
	if err != nil {
		return a, err
	}
	b, err := classify(code(lexMode(stmt, true)))
	if err != nil {
		return b, err
	}
	return max(a, b), nil
}

func classify(toks []token) (Class, error) {
	for len(toks) > 0 && toks[len(toks)-1].text == ";" {
		toks = toks[:len(toks)-1]
	}
	for _, t := range toks {
		if t.text == ";" {
			return Other, ErrMultiStatement
		}
	}
	for len(toks) > 0 && toks[0].text == "(" {
		toks = toks[1:]
	}
	if len(toks) == 0 {
		return Other, errors.New("empty statement")
	}
	first := strings.ToUpper(toks[0].text)
	hasWord := func(words ...string) bool {
		for _, t := range toks {
			if t.kind == tWord {
				for _, w := range words {
					if strings.EqualFold(t.text, w) {
						return true
					}
				}
			}
		}
		return false
	}
	switch first {
	case "SELECT", "WITH", "VALUES", "TABLE":
		if hasWord("INSERT", "UPDATE", "DELETE", "REPLACE") && first == "WITH" {
			return Write, nil
		}
		for i, t := range toks {
			if t.kind == tWord && strings.EqualFold(t.text, "INTO") && i+1 < len(toks) {
				return Other, nil // INTO OUTFILE / DUMPFILE / @var
			}
		}
		return ReadOnly, nil
	case "SHOW", "EXPLAIN", "DESCRIBE", "DESC":
		if first == "EXPLAIN" && hasWord("ANALYZE") {
			// EXPLAIN ANALYZE (MySQL) / ANALYZE (MariaDB) executes the statement.
			if hasWord("INSERT", "UPDATE", "DELETE", "REPLACE") {
				return Write, nil
			}
		}
		return ReadOnly, nil
	case "INSERT", "UPDATE", "DELETE", "REPLACE":
		return Write, nil
	}
	return Other, nil
}

// HasOrderBy reports whether the statement's outermost query has an ORDER
// BY, so its rows come in a defined order. An ORDER BY inside a subquery or
// a window's OVER (...) does not count, nor does ORDER BY NULL, which asks
// for no order (the idiom that drops GROUP BY's sort).
func HasOrderBy(stmt string) bool {
	toks := code(lex(stmt))
	for _, k := range topOrderBys(toks) {
		orderByNull := k < len(toks) && toks[k].kind == tWord && strings.EqualFold(toks[k].text, "NULL") &&
			(k+1 == len(toks) || toks[k+1].text != ",")
		if !orderByNull {
			return true
		}
	}
	// (SELECT ... ORDER BY ...) wrapped in parentheses as a whole
	if len(toks) > 2 && toks[0].text == "(" {
		inner := toks
		for len(inner) > 0 && (inner[len(inner)-1].text == ";") {
			inner = inner[:len(inner)-1]
		}
		if len(inner) > 0 && inner[len(inner)-1].text == ")" && matching(inner) {
			var b strings.Builder
			for _, t := range inner[1 : len(inner)-1] {
				b.WriteString(t.text)
				b.WriteByte(' ')
			}
			return HasOrderBy(b.String())
		}
	}
	return false
}

// topOrderBys returns, for each ORDER BY outside parentheses in toks, the
// index of the token after its BY.
func topOrderBys(toks []token) []int {
	var starts []int
	depth := 0
	for i, t := range toks {
		switch {
		case t.text == "(":
			depth++
		case t.text == ")":
			depth--
		case depth == 0 && t.kind == tWord && strings.EqualFold(t.text, "ORDER") &&
			i+1 < len(toks) && strings.EqualFold(toks[i+1].text, "BY"):
			starts = append(starts, i+2)
		}
	}
	return starts
}

// OrderKey is one key of a top-level ORDER BY that names a result
// column: by name or alias (Name, a qualified name's last part) or by
// position (Pos, 1-based).
type OrderKey struct {
	Name string
	Pos  int
}

// OrderKeys returns the keys of the statement's top-level ORDER BY when
// each is a plain column name, alias or position (ASC/DESC allowed;
// NULL keys, which order nothing, left out), and nil otherwise: for an
// expression key, or no ORDER BY.
func OrderKeys(stmt string) []OrderKey {
	toks := code(lex(stmt))
	starts := topOrderBys(toks)
	if len(starts) == 0 {
		return nil
	}
	start := starts[len(starts)-1]
	var keys []OrderKey
	var item []token
	flush := func() bool {
		if n := len(item); n > 0 && item[n-1].kind == tWord && (strings.EqualFold(item[n-1].text, "ASC") || strings.EqualFold(item[n-1].text, "DESC")) {
			item = item[:n-1]
		}
		defer func() { item = item[:0] }()
		switch {
		case len(item) == 1 && item[0].kind == tWord && strings.EqualFold(item[0].text, "NULL"):
			return true
		case len(item) == 1 && item[0].kind == tNumber:
			n, err := strconv.Atoi(item[0].text)
			if err != nil || n < 1 {
				return false
			}
			keys = append(keys, OrderKey{Pos: n})
			return true
		}
		// name, or qualifier . name (. name)
		for j, t := range item {
			if j%2 == 1 {
				if t.text != "." {
					return false
				}
				continue
			}
			if t.kind != tWord && t.kind != tIdent {
				return false
			}
		}
		if len(item)%2 == 0 || len(item) > 5 {
			return false
		}
		name, _ := identText(item[len(item)-1])
		keys = append(keys, OrderKey{Name: name})
		return true
	}
	depth := 0
	for _, t := range toks[start:] {
		if depth == 0 {
			if t.text == ";" || t.text == ")" || t.kind == tWord && slices.ContainsFunc([]string{"LIMIT", "OFFSET", "FETCH", "FOR", "LOCK", "INTO", "PROCEDURE"}, func(w string) bool { return strings.EqualFold(t.text, w) }) {
				break
			}
			if t.text == "," {
				if !flush() {
					return nil
				}
				continue
			}
		}
		switch t.text {
		case "(":
			depth++
		case ")":
			depth--
		}
		item = append(item, t)
	}
	if !flush() || len(keys) == 0 {
		return nil
	}
	return keys
}

// matching reports whether the first token's "(" closes at the last token.
func matching(toks []token) bool {
	depth := 0
	for i, t := range toks {
		switch t.text {
		case "(":
			depth++
		case ")":
			depth--
			if depth == 0 {
				return i == len(toks)-1
			}
		}
	}
	return false
}

// Placeholders counts the ? placeholders outside strings and comments.
func Placeholders(stmt string) int {
	n := 0
	for _, t := range lex(stmt) {
		if t.kind == tPlace {
			n++
		}
	}
	return n
}

// Bind replaces the ? placeholders of stmt, in order, with args written
// as SQL literals: nil as NULL, int64 as a number, strings quoted with
// backslash escapes (a server whose sql_mode has NO_BACKSLASH_ESCAPES
// reads those differently; the canary binds for the session it runs on).
func Bind(stmt string, args []any) (string, error) { return bind(stmt, args, false) }

// bind is Bind; noBackslash writes strings for a session whose sql_mode
// has NO_BACKSLASH_ESCAPES: a quote doubled, a backslash as itself.
func bind(stmt string, args []any, noBackslash bool) (string, error) {
	toks := lexMode(stmt, noBackslash)
	n := 0
	for _, t := range toks {
		if t.kind == tPlace {
			n++
		}
	}
	if n != len(args) {
		return "", fmt.Errorf("query has %d ? placeholders, parameters have %d values", n, len(args))
	}
	var b strings.Builder
	k := 0
	for _, t := range toks {
		if t.kind != tPlace {
			b.WriteString(t.text)
			continue
		}
		b.WriteString(literal(args[k], noBackslash))
		k++
	}
	return b.String(), nil
}

// literal writes v as a SQL literal (see bind for noBackslash).
func literal(v any, noBackslash bool) string {
	q := quote
	if noBackslash {
		q = func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	}
	switch x := v.(type) {
	case nil:
		return "NULL"
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	case []byte:
		return q(string(x))
	case string:
		return q(x)
	default:
		return q(fmt.Sprint(x))
	}
}

// quote writes s as a single-quoted string literal, escaping the bytes
// MySQL's mysql_real_escape_string escapes.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0:
			b.WriteString(`\0`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case 0x1a:
			b.WriteString(`\Z`)
		case '\\', '\'', '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// Fingerprint reduces a statement to its shape, as pt-fingerprint does:
// comments dropped, whitespace collapsed, keywords and identifiers lower
// case, every literal (string, number, hex, NULL is kept) replaced by ?,
// IN (...) lists and multi-row VALUES collapsed, a trailing ; removed.
// Statements that differ only in their literals share a fingerprint.
func Fingerprint(stmt string) string {
	toks := code(lex(stmt))
	for len(toks) > 0 && toks[len(toks)-1].text == ";" {
		toks = toks[:len(toks)-1]
	}
	out := make([]string, 0, len(toks))
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch t.kind {
		case tString, tNumber, tPlace:
			// a sign directly before a number in value position is part of it
			if n := len(out); n > 0 && (out[n-1] == "-" || out[n-1] == "+") && n > 1 && isOperatorContext(out[n-2]) {
				out = out[:n-1]
			}
			out = append(out, "?")
		case tIdent:
			out = append(out, strings.ToLower(t.text))
		default:
			out = append(out, strings.ToLower(t.text))
		}
	}
	out = collapseLists(out)
	var b strings.Builder
	for i, s := range out {
		if i > 0 && needSpace(out[i-1], s) {
			b.WriteByte(' ')
		}
		b.WriteString(s)
	}
	return b.String()
}

// isOperatorContext reports whether a sign after tok is unary.
func isOperatorContext(tok string) bool {
	switch tok {
	case "(", ",", "=", "<", ">", "in", "and", "or", "not", "by", "limit", "values", "between", "then", "else", "when", "return", "select", "where", "set":
		return true
	}
	return false
}

// collapseLists turns "in ( ? , ? , ? )" into "in(?+)" and
// "values ( ... ) , ( ... )" into "values(...)" (the first tuple kept),
// so multi-row inserts share the single-row shape.
func collapseLists(t []string) []string {
	out := make([]string, 0, len(t))
	for i := 0; i < len(t); i++ {
		if t[i] == "in" && i+1 < len(t) && t[i+1] == "(" {
			j := i + 2
			n := 0
			for j < len(t) && (t[j] == "?" || t[j] == "?+") {
				n++
				j++
				if j < len(t) && t[j] == "+" { // an already collapsed list
					j++
				}
				if j < len(t) && t[j] == "," {
					j++
					continue
				}
				break
			}
			if n > 0 && j < len(t) && t[j] == ")" {
				out = append(out, "in", "(", "?+", ")")
				i = j
				continue
			}
		}
		if (t[i] == "values" || t[i] == "value") && i+1 < len(t) && t[i+1] == "(" {
			end := closeParen(t, i+1)
			if end > 0 {
				out = append(out, t[i:end+1]...)
				j := end + 1
				for j+1 < len(t) && t[j] == "," && t[j+1] == "(" {
					e := closeParen(t, j+1)
					if e < 0 {
						break
					}
					j = e + 1
				}
				i = j - 1
				continue
			}
		}
		out = append(out, t[i])
	}
	return out
}

func closeParen(t []string, open int) int {
	depth := 0
	for i := open; i < len(t); i++ {
		switch t[i] {
		case "(":
			depth++
		case ")":
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

func needSpace(prev, cur string) bool {
	if cur == "," || cur == ")" || prev == "(" || cur == "." || prev == "." {
		return false
	}
	if cur == "(" {
		return !isWord(prev) || isKeywordBeforeParen(prev)
	}
	if cur == "?+" || prev == "?+" {
		return false
	}
	return true
}

func isWord(s string) bool { return s != "" && isWordByte(s[0]) }

// isKeywordBeforeParen: "in (", "values (" keep no space for pt's style,
// but keep "where (" and "and (" readable.
func isKeywordBeforeParen(s string) bool {
	switch s {
	case "in", "values", "value":
		return false
	case "where", "and", "or", "not", "on", "select", "from", "join", "exists", "as", "by", "having", "union", "then", "else", "when":
		return true
	}
	return false
}

// Split splits a .sql file into statements on top-level semicolons
// (outside strings and comments). DELIMITER is not supported. Statements
// consisting only of comments are dropped.
func Split(text string) []string {
	var out []string
	var b strings.Builder
	hasCode := false
	flush := func() {
		if s := strings.TrimSpace(b.String()); hasCode && s != "" {
			out = append(out, s)
		}
		b.Reset()
		hasCode = false
	}
	for _, t := range lex(text) {
		if t.kind == tPunct && t.text == ";" {
			flush()
			continue
		}
		if t.kind != tSpace && t.kind != tComment {
			hasCode = true
		}
		b.WriteString(t.text)
	}
	flush()
	return out
}

// Table names a table a write statement writes to. Schema is empty when
// the statement did not qualify the name.
type Table struct {
	Schema, Name string
}

// String writes the table as the statement named it.
func (t Table) String() string {
	if t.Schema == "" {
		return t.Name
	}
	return t.Schema + "." + t.Name
}

// ErrNoWriteTarget is returned by WriteTarget when the table a statement
// writes cannot be told from its text.
var ErrNoWriteTarget = errors.New("the written table cannot be determined (multi-table UPDATE or DELETE, WITH, or unusual syntax)")

// WriteTarget returns the one table a single-table INSERT, REPLACE,
// UPDATE or DELETE writes, after stripping comments. Multi-table UPDATE
// and DELETE, statements starting with WITH and anything it cannot parse
// return ErrNoWriteTarget. Rows changed by triggers or foreign key
// cascades in other tables are not named.
func WriteTarget(stmt string) (Table, error) {
	toks := code(lex(stmt))
	for len(toks) > 0 && toks[len(toks)-1].text == ";" {
		toks = toks[:len(toks)-1]
	}
	if len(toks) == 0 || toks[0].kind != tWord {
		return Table{}, ErrNoWriteTarget
	}
	is := func(i int, words ...string) bool {
		if i >= len(toks) || toks[i].kind != tWord {
			return false
		}
		for _, w := range words {
			if strings.EqualFold(toks[i].text, w) {
				return true
			}
		}
		return false
	}
	i := 1
	skip := func(words ...string) {
		for is(i, words...) {
			i++
		}
	}
	switch strings.ToUpper(toks[0].text) {
	case "INSERT", "REPLACE":
		skip("LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE")
		skip("INTO")
		t, next, ok := tableName(toks, i)
		if !ok {
			return Table{}, ErrNoWriteTarget
		}
		// What may follow the table of an INSERT: a column list, the rows,
		// a partition list, or nothing a parser would accept.
		if next < len(toks) && toks[next].text != "(" && !is(next, "VALUES", "VALUE", "SET", "SELECT", "PARTITION", "TABLE", "WITH") {
			return Table{}, ErrNoWriteTarget
		}
		return t, nil
	case "UPDATE":
		skip("LOW_PRIORITY", "IGNORE")
		t, next, ok := tableName(toks, i)
		if !ok {
			return Table{}, ErrNoWriteTarget
		}
		next = skipAlias(toks, next, is)
		if !is(next, "SET") {
			return Table{}, ErrNoWriteTarget // a join or a list of tables
		}
		return t, nil
	case "DELETE":
		skip("LOW_PRIORITY", "QUICK", "IGNORE")
		if !is(i, "FROM") {
			return Table{}, ErrNoWriteTarget // DELETE t1, t2 FROM ...
		}
		t, next, ok := tableName(toks, i+1)
		if !ok {
			return Table{}, ErrNoWriteTarget
		}
		next = skipAlias(toks, next, is)
		if next < len(toks) && !is(next, "WHERE", "ORDER", "LIMIT", "RETURNING", "PARTITION", "FOR") {
			return Table{}, ErrNoWriteTarget // DELETE FROM t1, t2 USING ...
		}
		return t, nil
	}
	return Table{}, ErrNoWriteTarget
}

// tableName reads [schema.]table at toks[i] and returns the index after it.
func tableName(toks []token, i int) (Table, int, bool) {
	part := func(i int) (string, bool) {
		if i >= len(toks) {
			return "", false
		}
		switch t := toks[i]; t.kind {
		case tIdent:
			return strings.ReplaceAll(t.text[1:max(len(t.text)-1, 1)], "``", "`"), true
		case tWord:
			if isReserved(t.text) {
				return "", false
			}
			return t.text, true
		}
		return "", false
	}
	name, ok := part(i)
	if !ok {
		return Table{}, i, false
	}
	if i+2 < len(toks) && toks[i+1].text == "." {
		table, ok := part(i + 2)
		if !ok {
			return Table{}, i, false
		}
		return Table{Schema: name, Name: table}, i + 3, true
	}
	return Table{Name: name}, i + 1, true
}

// skipAlias steps over "[AS] alias" after a table name.
func skipAlias(toks []token, i int, is func(int, ...string) bool) int {
	if is(i, "AS") {
		return i + 2
	}
	if i < len(toks) && (toks[i].kind == tIdent || toks[i].kind == tWord && !isReserved(toks[i].text)) {
		return i + 1
	}
	return i
}

// isReserved reports whether w is a keyword that can follow or replace a
// table name in a write statement, so it is not read as a name or alias.
func isReserved(w string) bool {
	switch strings.ToUpper(w) {
	case "SET", "WHERE", "ORDER", "LIMIT", "RETURNING", "PARTITION", "FOR", "USING", "JOIN", "INNER", "LEFT",
		"RIGHT", "CROSS", "STRAIGHT_JOIN", "NATURAL", "VALUES", "VALUE", "SELECT", "TABLE", "WITH", "FROM", "AS", "ON", "INTO":
		return true
	}
	return false
}
