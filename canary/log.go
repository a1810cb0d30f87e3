package canary

import (
	"bufio"
	"io"
	"regexp"
	"strings"
)

// Statement is one statement of a workload.
type Statement struct {
	SQL string `json:"sql"`
	// Schema is the database the statement ran in, from the log's
	// "use db;", "# ... Schema: db" or "Init DB" lines; empty means the
	// DSN's database.
	Schema string `json:"schema,omitempty"`
	Line   int    `json:"line"` // 1-based line where the statement starts in the file
}

// Workload formats.
const (
	FormatSQL     = "sql"
	FormatSlow    = "slow-log"
	FormatGeneral = "general-log"
)

var (
	slowHeader = regexp.MustCompile(`^# (Time|User@Host|Query_time|Thread_id|Schema|QC_hit|Rows_affected|Bytes_sent|Full_scan|Filesort|Tmp_table|Log_slow_rate_limit)\b`)
	// general log: [time] id command<TAB>argument. MariaDB writes
	// "240101 10:00:00\t    5 Query\t..." or "\t\t    5 Query\t...";
	// MySQL "2024-01-01T10:00:00.123456Z\t    5 Query\t...".
	generalLine   = regexp.MustCompile(`^(?:\d{6}\s+\d{1,2}:\d{2}:\d{2}|\d{4}-\d{2}-\d{2}T[\d:.]+(?:Z|[+-]\d{2}:\d{2})?)?\s+(\d+) ([A-Z][a-z]+(?: [A-Za-z]+)*)\t?(.*)$`)
	logBanner     = regexp.MustCompile(`(?i)^(\S+, Version: .*started with:|Tcp port: \d+|Time\s+Id\s+Command\s+Argument)`)
	useStatement  = regexp.MustCompile("(?i)^use\\s+`?([^`;\\s]+)`?\\s*;?\\s*$")
	setTimestamp  = regexp.MustCompile(`(?i)^SET\s+(timestamp|insert_id|last_insert_id)\s*=\s*\d+\s*;\s*$`)
	schemaInSlow  = regexp.MustCompile(`\bSchema: (\S+)`)
	generalConnDB = regexp.MustCompile(` on (\S+)(?: using|$)`)
)

// DetectFormat guesses a workload's format from its first lines: a slow
// log has "# Time:"/"# User@Host:"/"# Query_time:" lines, a general log
// has "<id> Query<TAB>" lines, anything else is plain SQL.
func DetectFormat(head string) string {
	sc := bufio.NewScanner(strings.NewReader(head))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for n := 0; sc.Scan() && n < 200; n++ {
		line := sc.Text()
		if slowHeader.MatchString(line) {
			return FormatSlow
		}
		if m := generalLine.FindStringSubmatch(line); m != nil && isGeneralCommand(m[2]) {
			return FormatGeneral
		}
	}
	return FormatSQL
}

func isGeneralCommand(c string) bool {
	switch c {
	case "Query", "Connect", "Quit", "Init DB", "Execute", "Prepare", "Close stmt", "Field List", "Statistics", "Ping", "Reset stmt", "Long Data", "Change user", "Refresh", "Shutdown", "Killed", "Binlog Dump", "Set option":
		return true
	}
	return false
}

// ParseWorkload reads a plain .sql file, a slow query log or a general
// query log (DetectFormat) and returns its statements in file order.
// Session-only statements a log carries (use, SET timestamp) are applied
// as context, not returned.
func ParseWorkload(r io.Reader) (format string, stmts []Statement, err error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return "", nil, err
	}
	text := string(data)
	format = DetectFormat(text)
	switch format {
	case FormatSlow:
		stmts = parseSlow(text)
	case FormatGeneral:
		stmts = parseGeneral(text)
	default:
		stmts = parseSQL(text)
	}
	return format, stmts, nil
}

func parseSQL(text string) []Statement {
	var out []Statement
	line, rest, schema := 1, text, ""
	for _, s := range Split(text) {
		if idx := strings.Index(rest, s); idx >= 0 {
			line += strings.Count(rest[:idx], "\n")
			rest = rest[idx:]
		}
		if m := useStatement.FindStringSubmatch(s); m != nil {
			schema = m[1] // a plain file's "use db;" applies to what follows
			continue
		}
		out = append(out, Statement{SQL: s, Schema: schema, Line: line})
	}
	return out
}

// parseSlow parses a MySQL/MariaDB slow query log: each entry is a block
// of "# ..." header lines, optional "use db;" and "SET timestamp=N;"
// lines, then the statement (possibly many lines) ending with ";".
func parseSlow(text string) []Statement {
	var (
		out     []Statement
		cur     strings.Builder
		curLine int
		schema  string // from this entry's header or use line
		inBody  bool
	)
	flush := func() {
		s := strings.TrimSpace(cur.String())
		cur.Reset()
		if s != "" {
			for _, part := range Split(s) {
				out = append(out, Statement{SQL: part, Schema: schema, Line: curLine})
			}
		}
		inBody = false
	}
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case logBanner.MatchString(line):
			flush()
			continue
		case strings.HasPrefix(line, "# ") || line == "#":
			if inBody || cur.Len() > 0 {
				flush()
			}
			if strings.HasPrefix(line, "# Time:") || strings.HasPrefix(line, "# User@Host:") {
				schema = ""
			}
			if m := schemaInSlow.FindStringSubmatch(line); m != nil {
				schema = m[1]
			}
			continue // includes "# administrator command: Quit;"
		}
		if !inBody {
			t := strings.TrimSpace(line)
			if t == "" {
				continue
			}
			if m := useStatement.FindStringSubmatch(t); m != nil {
				schema = m[1]
				continue
			}
			if setTimestamp.MatchString(t) {
				continue
			}
			inBody = true
			curLine = n + 1
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	flush()
	return out
}

// parseGeneral parses a MySQL/MariaDB general query log, keeping Query
// and Execute lines (and their continuation lines; Prepare lines, with
// ?, are not statements run) and tracking each connection's
// database from Connect ("... on db") and Init DB lines.
func parseGeneral(text string) []Statement {
	var (
		out     []Statement
		cur     *Statement
		body    strings.Builder
		schemas = map[string]string{}
	)
	flush := func() {
		if cur == nil {
			return
		}
		s := strings.TrimSpace(body.String())
		s = strings.TrimSpace(strings.TrimSuffix(s, ";"))
		if s != "" {
			if m := useStatement.FindStringSubmatch(s); m == nil {
				cur.SQL = s
				out = append(out, *cur)
			}
		}
		cur = nil
		body.Reset()
	}
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		if logBanner.MatchString(line) {
			flush()
			continue
		}
		m := generalLine.FindStringSubmatch(line)
		if m == nil || !isGeneralCommand(m[2]) {
			if cur != nil {
				body.WriteByte('\n')
				body.WriteString(line)
			}
			continue
		}
		flush()
		id, cmd, arg := m[1], m[2], m[3]
		switch cmd {
		case "Connect":
			if mm := generalConnDB.FindStringSubmatch(arg); mm != nil {
				schemas[id] = mm[1]
			}
		case "Init DB":
			schemas[id] = strings.TrimSpace(arg)
		case "Query", "Execute": // Execute: a prepared statement, its values bound
			if um := useStatement.FindStringSubmatch(strings.TrimSpace(arg)); um != nil {
				schemas[id] = um[1]
				continue
			}
			cur = &Statement{Schema: schemas[id], Line: n + 1}
			body.WriteString(arg)
		case "Quit":
			delete(schemas, id)
		}
	}
	flush()
	return out
}

// Group is the statements of one fingerprint and schema, in file order.
type Group struct {
	Fingerprint string      `json:"fingerprint"`
	Schema      string      `json:"schema,omitempty"`
	Statements  []Statement `json:"-"`
}

// GroupByFingerprint groups statements by schema and Fingerprint, in order
// of first appearance.
func GroupByFingerprint(stmts []Statement) []*Group {
	var groups []*Group
	idx := map[[2]string]*Group{}
	for _, s := range stmts {
		k := [2]string{s.Schema, Fingerprint(s.SQL)}
		g, ok := idx[k]
		if !ok {
			g = &Group{Fingerprint: k[1], Schema: s.Schema}
			idx[k] = g
			groups = append(groups, g)
		}
		g.Statements = append(g.Statements, s)
	}
	return groups
}
