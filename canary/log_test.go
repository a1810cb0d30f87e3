package canary

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseWorkload_slowLog(t *testing.T) {
	format, stmts, err := ParseWorkload(strings.NewReader(slowLog))
	if err != nil {
		t.Fatal(err)
	}
	if format != FormatSlow {
		t.Fatalf("format = %s", format)
	}
	want := []Statement{
		{SQL: "SELECT id, amount\n  FROM orders\n WHERE customer_id = 1", Schema: "canary_shop", Line: 11},
		{SQL: "SELECT id, amount FROM orders WHERE customer_id = 3", Schema: "canary_shop", Line: 18},
		{SQL: "SELECT name FROM customers WHERE id = 3", Schema: "canary_shop", Line: 24},
		{SQL: "UPDATE orders SET status = 'paid' WHERE id = 3", Schema: "canary_shop", Line: 29},
		{SQL: "SELECT COUNT(*) FROM orders", Schema: "canary_shop", Line: 34},
	}
	if len(stmts) != len(want) {
		t.Fatalf("got %d statements: %+v", len(stmts), stmts)
	}
	for i := range want {
		if stmts[i] != want[i] {
			t.Errorf("statement %d = %+v, want %+v", i, stmts[i], want[i])
		}
	}
}

// A MySQL 8 slow log: ISO times, no Schema field, "use" sets the database,
// an administrator command entry is not a statement.
func TestParseWorkload_mysqlSlowLog(t *testing.T) {
	log := `# Time: 2026-01-01T10:00:00.123456Z
# User@Host: app[app] @ localhost []  Id:    12
# Query_time: 1.500000  Lock_time: 0.000002 Rows_sent: 1  Rows_examined: 100000
use shop;
SET timestamp=1767261600;
SELECT *
FROM t
WHERE a = 'x;y';
# Time: 2026-01-01T10:00:01.000000Z
# User@Host: app[app] @ localhost []  Id:    12
# Query_time: 0.000100  Lock_time: 0.000000 Rows_sent: 0  Rows_examined: 0
SET timestamp=1767261601;
# administrator command: Quit;
`
	_, stmts, err := ParseWorkload(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if len(stmts) != 1 || stmts[0].SQL != "SELECT *\nFROM t\nWHERE a = 'x;y'" || stmts[0].Schema != "shop" {
		t.Fatalf("got %+v", stmts)
	}
}

func TestParseWorkload_generalLog(t *testing.T) {
	cases := map[string]string{
		"mariadb": "/usr/sbin/mariadbd, Version: 10.11.6-MariaDB-log (Debian 12). started with:\n" +
			"Tcp port: 3306  Unix socket: /run/mysqld/mysqld.sock\n" +
			"Time\t\t    Id Command\tArgument\n" +
			"260101 10:00:00\t    5 Connect\tapp@localhost on shop using TCP/IP\n" +
			"\t\t    5 Query\tSELECT a FROM t WHERE id = 1\n" +
			"\t\t    6 Connect\tapp@localhost on  using TCP/IP\n" +
			"\t\t    6 Init DB\tother\n" +
			"260101 10:00:01\t    6 Query\tSELECT b\nFROM u\n  WHERE x = 2\n" +
			"\t\t    5 Quit\t\n",
		"mysql": "/usr/sbin/mysqld, Version: 8.0.36 (MySQL Community Server - GPL). started with:\n" +
			"Tcp port: 3306  Unix socket: /var/run/mysqld/mysqld.sock\n" +
			"Time                 Id Command    Argument\n" +
			"2026-01-01T10:00:00.000001Z\t    5 Connect\tapp@localhost on shop using TCP/IP\n" +
			"2026-01-01T10:00:00.000002Z\t    5 Query\tSELECT a FROM t WHERE id = 1\n" +
			"2026-01-01T10:00:00.000003Z\t    6 Connect\tapp@localhost on  using TCP/IP\n" +
			"2026-01-01T10:00:00.000004Z\t    6 Query\tuse `other`\n" +
			"2026-01-01T10:00:00.000005Z\t    6 Query\tSELECT b\nFROM u\n  WHERE x = 2\n" +
			"2026-01-01T10:00:00.000006Z\t    5 Quit\t\n",
	}
	for name, log := range cases {
		t.Run(name, func(t *testing.T) {
			format, stmts, err := ParseWorkload(strings.NewReader(log))
			if err != nil || format != FormatGeneral {
				t.Fatalf("format %s, err %v", format, err)
			}
			if len(stmts) != 2 {
				t.Fatalf("got %+v", stmts)
			}
			if s := stmts[0]; s.SQL != "SELECT a FROM t WHERE id = 1" || s.Schema != "shop" {
				t.Errorf("first = %+v", s)
			}
			if s := stmts[1]; s.SQL != "SELECT b\nFROM u\n  WHERE x = 2" || s.Schema != "other" {
				t.Errorf("second = %+v", s)
			}
		})
	}
}

func TestParseWorkload_sqlFile(t *testing.T) {
	_, stmts, err := ParseWorkload(strings.NewReader("-- report queries\nSELECT 1;\nuse shop;\nSELECT a\nFROM t;\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(stmts) != 2 || stmts[0].Schema != "" || stmts[1].Schema != "shop" || stmts[1].Line != 4 {
		t.Fatalf("got %+v", stmts)
	}
}

func TestGroupByFingerprint(t *testing.T) {
	g := GroupByFingerprint([]Statement{
		{SQL: "SELECT * FROM t WHERE id = 1"}, {SQL: "select * from t where id=2"},
		{SQL: "SELECT * FROM t WHERE id IN (1,2)"}, {SQL: "SELECT * FROM t WHERE id = 1", Schema: "b"},
	})
	if len(g) != 3 || len(g[0].Statements) != 2 {
		t.Fatalf("groups: %+v", g)
	}
}

func TestMannWhitneyGreater(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	if p := mannWhitneyGreater(ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), ms(11, 12, 13, 14, 15, 16, 17, 18, 19, 20)); p > 0.001 {
		t.Errorf("clearly slower: p = %g", p)
	}
	if p := mannWhitneyGreater(ms(11, 12, 13, 14, 15, 16, 17, 18, 19, 20), ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)); p < 0.99 {
		t.Errorf("clearly faster: p = %g", p)
	}
	if p := mannWhitneyGreater(ms(5, 5, 5, 5), ms(5, 5, 5, 5)); p != 1 {
		t.Errorf("all ties: p = %g, want 1", p)
	}
	if p := mannWhitneyGreater(ms(1, 3, 5, 7, 9, 11), ms(2, 4, 6, 8, 10, 12)); p < 0.1 {
		t.Errorf("interleaved: p = %g, want not significant", p)
	}
}

func TestSignedRankGreater(t *testing.T) {
	// Ten positive differences of ranks 1..10: W+ = 55, mean 27.5, sd
	// 9.81, so z = 2.75 and p = 0.003.
	up := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if p := signedRankGreater(up); math.Abs(p-0.003) > 0.0005 {
		t.Errorf("all ten above 0: p = %g, want 0.003", p)
	}
	down := []float64{-1, -2, -3, -4, -5, -6, -7, -8, -9, -10}
	if p := signedRankGreater(down); p < 0.99 {
		t.Errorf("all below 0: p = %g, want near 1", p)
	}
	if p := signedRankGreater([]float64{0, 0, 0, 0}); p != 1 {
		t.Errorf("all 0: p = %g, want 1", p)
	}
	if p := signedRankGreater([]float64{1, -2, 3, -4, 5, -6, 7, -8}); p < 0.1 {
		t.Errorf("balanced: p = %g, want not significant", p)
	}
}

// TestParseWorkload_generalLogPreparedStatements: an application using
// server-side prepared statements leaves Prepare lines (with ?) and
// Execute lines (with the values bound) in the general log; the Execute
// lines are the statements it ran and must be in the workload.
func TestParseWorkload_generalLogPreparedStatements(t *testing.T) {
	log := "/usr/sbin/mariadbd, Version: 10.11.6-MariaDB-log (Debian 12). started with:\n" +
		"Tcp port: 3306  Unix socket: /run/mysqld/mysqld.sock\n" +
		"Time\t\t    Id Command\tArgument\n" +
		"260101 10:00:00\t    5 Connect\tapp@localhost on shop using TCP/IP\n" +
		"\t\t    5 Prepare\tSELECT a FROM t WHERE id = ?\n" +
		"\t\t    5 Execute\tSELECT a FROM t WHERE id = 1\n" +
		"\t\t    5 Execute\tSELECT a FROM t WHERE id = 2\n" +
		"\t\t    5 Close stmt\t\n" +
		"\t\t    5 Query\tSELECT 1\n"
	_, stmts, err := ParseWorkload(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range stmts {
		got = append(got, s.Schema+": "+s.SQL)
	}
	if want := []string{"shop: SELECT a FROM t WHERE id = 1", "shop: SELECT a FROM t WHERE id = 2", "shop: SELECT 1"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("statements %q, want %q", got, want)
	}
}

// TestCompareLatency_zeroOldMedian: on a coarse clock a fast old query
// measures 0 ns more than half the time; new at 5 ms every run is a
// regression all the same, not a ratio of 0 that can never exceed the
// limit.
func TestCompareLatency_zeroOldMedian(t *testing.T) {
	o := DefaultOptions()
	old := make([]time.Duration, 10)
	old[9] = time.Millisecond
	slow := make([]time.Duration, 10)
	for i := range slow {
		slow[i] = 5 * time.Millisecond
	}
	l := compareLatency(old, slow, o)
	if !l.Regressed {
		t.Errorf("0 ns → 5 ms not a regression: %+v", l)
	}
	if _, err := json.Marshal(l); err != nil {
		t.Errorf("latency does not encode as JSON: %v", err)
	}
	if l := compareLatency(old, old, o); l.Regressed {
		t.Errorf("same runs regressed: %+v", l)
	}
}

// TestCompareLatency_mixedParameters: parameter sets of very different
// cost (0.3 ms and 50 ms) taken in turn, new twice as slow on every one.
// Compared as two unrelated samples, each side's runs are half fast and
// half slow, so the difference drowns in the spread between parameters;
// compared pair by pair (old and new on the same parameters), every pair
// is twice as slow. A new side as fast as old must still pass.
func TestCompareLatency_mixedParameters(t *testing.T) {
	o := DefaultOptions()
	var old, slow, same []time.Duration
	for i := range o.Runs {
		cost := 300 * time.Microsecond
		if i%2 == 1 {
			cost = 50 * time.Millisecond
		}
		jitter := time.Duration(i%5) * 7 * time.Microsecond
		old = append(old, cost+jitter)
		slow = append(slow, 2*cost+jitter)
		same = append(same, cost+time.Duration((i+2)%5)*7*time.Microsecond)
	}
	l := compareLatency(old, slow, o)
	if !l.Regressed {
		t.Errorf("every pair twice as slow, not a regression: %+v", l)
	}
	if l.Paired == nil || l.Paired.Ratio < 1.9 || l.Paired.PValue >= o.Alpha {
		t.Errorf("paired comparison: %+v, want a ratio near 2 and p < %g", l.Paired, o.Alpha)
	}
	if l := compareLatency(old, same, o); l.Regressed {
		t.Errorf("new as fast as old regressed: %+v (paired %+v)", l, l.Paired)
	}
}
