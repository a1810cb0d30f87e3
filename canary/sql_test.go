package canary

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestFingerprint(t *testing.T) {
	cases := []struct{ in, want string }{
		{"SELECT * FROM t WHERE id = 5", "select * from t where id = ?"},
		{"select  *\n\tfrom T where ID=42;", "select * from t where id = ?"},
		{"SELECT name FROM users WHERE email = 'a@b.c' AND x = \"y\"", "select name from users where email = ? and x = ?"},
		{"SELECT * FROM t WHERE id IN (1, 2, 3)", "select * from t where id in(?+)"},
		{"SELECT * FROM t WHERE id IN ('a','b') AND c IN (1)", "select * from t where id in(?+) and c in(?+)"},
		{"INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')", "insert into t(a, b) values(?, ?)"},
		{"SELECT a FROM t -- trailing\nWHERE b = -1.5e3 /* c */", "select a from t where b = ?"},
		{"SELECT a - 1 FROM t1 LIMIT 10", "select a - ? from t1 limit ?"},
		{"SELECT `Col` FROM `T` WHERE x = 0xFF OR y = X'0A'", "select `col` from `t` where x = ? or y = ?"},
		{"SELECT 'it''s', 'a\\'b' FROM t", "select ?, ? from t"},
		{"SELECT * FROM t WHERE a = ? AND b IS NULL", "select * from t where a = ? and b is null"},
		{"SELECT COUNT(*) FROM t", "select count(*) from t"},
		{"SELECT a FROM t WHERE b>=1 AND c <> 'x' AND d<=>NULL", "select a from t where b >= ? and c <> ? and d <=> null"},
	}
	for _, tc := range cases {
		if got := Fingerprint(tc.in); got != tc.want {
			t.Errorf("Fingerprint(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
		if got := Fingerprint(Fingerprint(tc.in)); got != tc.want {
			t.Errorf("Fingerprint not idempotent on %q: %q", tc.in, got)
		}
	}
}

func FuzzFingerprint(f *testing.F) {
	for _, s := range []string{
		"SELECT * FROM t WHERE id IN (1,2,3)", "insert into t values (1,'a'),(2,'b')", "select 'unterminated",
		"/* open comment", "select -1, +2, 3e-4, .5, 0x1g, b'01' from t# x", "select `a``b` from t where x in (?, ?)",
		"SELECT /*!40001 SQL_NO_CACHE */ a FROM t", "values (1) , (", "in ( ? + )",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fp := Fingerprint(s)
		if again := Fingerprint(fp); again != fp {
			t.Fatalf("not idempotent:\n in  %q\n fp  %q\n fp2 %q", s, fp, again)
		}
		if got := Fingerprint("/* leading comment */ " + s); got != fp {
			t.Fatalf("a leading comment changed the fingerprint of %q: %q vs %q", s, got, fp)
		}
	})
}

func TestClassify(t *testing.T) {
	cases := []struct {
		in   string
		want Class
		err  bool
	}{
		{"SELECT 1", ReadOnly, false},
		{"  /* hi */ select * from t;", ReadOnly, false},
		{"(SELECT a FROM t) UNION (SELECT b FROM u)", ReadOnly, false},
		{"WITH x AS (SELECT 1) SELECT * FROM x", ReadOnly, false},
		{"SHOW TABLES", ReadOnly, false},
		{"EXPLAIN SELECT 1", ReadOnly, false},
		{"-- c\nDELETE FROM t", Write, false},
		{"update t set a = 1", Write, false},
		{"INSERT INTO t VALUES (1)", Write, false},
		{"WITH x AS (SELECT 1) UPDATE t JOIN x SET a = 1", Write, false},
		{"/*!50000 DELETE */ FROM t", Write, false},
		{"SELECT a INTO @v FROM t", Other, false},
		{"SELECT * FROM t INTO OUTFILE '/tmp/x'", Other, false},
		{"DROP TABLE t", Other, false},
		{"SET @a = 1", Other, false},
		{"CALL p()", Other, false},
		{"SELECT 1; DELETE FROM t", Other, true},
		{"SELECT ';' FROM t", ReadOnly, false},
		{"", Other, true},
	}
	for _, tc := range cases {
		got, err := Classify(tc.in)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("Classify(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestWriteTarget(t *testing.T) {
	cases := []struct{ in, want string }{
		{"UPDATE orders SET amount = 0 WHERE customer_id = 1", "orders"},
		{"update low_priority ignore `shop`.`order``s` AS o set o.a = 1", "shop.order`s"},
		{"/* c */ DELETE FROM orders WHERE id = 1;", "orders"},
		{"DELETE QUICK FROM shop.orders o WHERE o.id = 1 LIMIT 1", "shop.orders"},
		{"DELETE FROM orders", "orders"},
		{"INSERT INTO orders (id) VALUES (1)", "orders"},
		{"insert ignore orders set id = 1", "orders"},
		{"INSERT INTO orders SELECT * FROM old_orders", "orders"},
		{"REPLACE INTO `orders` VALUES (1)", "orders"},
		{"/*!50000 DELETE */ FROM orders WHERE id = 1", "orders"},
		// not a single table the parser can be sure of
		{"UPDATE orders o JOIN customers c ON c.id = o.customer_id SET o.amount = 0", ""},
		{"UPDATE orders, customers SET orders.amount = 0", ""},
		{"DELETE o FROM orders o JOIN customers c ON c.id = o.customer_id", ""},
		{"DELETE FROM orders USING orders JOIN customers", ""},
		{"DELETE FROM orders, customers USING orders JOIN customers", ""},
		{"WITH x AS (SELECT 1) UPDATE orders JOIN x SET a = 1", ""},
		{"SELECT 1", ""},
	}
	for _, tc := range cases {
		got, err := WriteTarget(tc.in)
		if tc.want == "" {
			if !errors.Is(err, ErrNoWriteTarget) {
				t.Errorf("WriteTarget(%q) = %q, %v; want ErrNoWriteTarget", tc.in, got, err)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("WriteTarget(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestHasOrderBy(t *testing.T) {
	cases := []struct {
		in   string
		want bool
	}{
		{"SELECT a FROM t ORDER BY a", true},
		{"SELECT a FROM t order\nby a LIMIT 3", true},
		{"SELECT a FROM (SELECT a FROM t ORDER BY a) x", false},
		{"SELECT a, ROW_NUMBER() OVER (ORDER BY a) FROM t", false},
		{"SELECT a FROM t WHERE b = 'ORDER BY'", false},
		{"SELECT a FROM t -- ORDER BY a", false},
		{"(SELECT a FROM t ORDER BY a)", true},
		{"SELECT a FROM t GROUP BY a", false},
		// ORDER BY NULL asks for no order (the MySQL idiom that drops
		// GROUP BY's implicit sort): rows come in any order.
		{"SELECT a, COUNT(*) FROM t GROUP BY a ORDER BY NULL", false},
		{"SELECT a FROM t order by null LIMIT 3", false},
		{"SELECT a FROM t ORDER BY NULL, a", true},
		{"SELECT a FROM t ORDER BY NULLIF(a, 0)", true},
	}
	for _, tc := range cases {
		if got := HasOrderBy(tc.in); got != tc.want {
			t.Errorf("HasOrderBy(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestBind(t *testing.T) {
	got, err := Bind("SELECT '?', a FROM t WHERE a = ? AND b = ? AND c = ? -- ?", []any{int64(5), "it's \\ \n", nil})
	if err != nil {
		t.Fatal(err)
	}
	if want := `SELECT '?', a FROM t WHERE a = 5 AND b = 'it\'s \\ \n' AND c = NULL -- ?`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if _, err := Bind("SELECT ?", nil); err == nil {
		t.Error("missing parameter not reported")
	}
}

func TestSplit(t *testing.T) {
	got := Split("SELECT 1;\n-- only a comment;\nSELECT 'a;b' FROM t ; /* x; */ SELECT 2")
	want := []string{"SELECT 1", "-- only a comment;\nSELECT 'a;b' FROM t", "/* x; */ SELECT 2"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Split = %q, want %q", got, want)
	}
}

func TestReadParams(t *testing.T) {
	cases := []struct {
		name, csv string
		want      string
	}{
		{"header skipped", "id,region\n1,eu\n2,us\n", "[[1 eu] [2 us]]"},
		{"no header", "1,eu\n2,us\n", "[[1 eu] [2 us]]"},
		{"all identifiers is all data", "paid\nopen\n", "[[paid] [open]]"},
		{"NULL and empty", "a,b\n\\N,\n007,1.50\n", "[[<nil> ] [007 1.50]]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadParams(strings.NewReader(tc.csv))
			if err != nil {
				t.Fatal(err)
			}
			if s := sprint(got); s != tc.want {
				t.Errorf("got %s, want %s", s, tc.want)
			}
		})
	}
}

func sprint(v [][]any) string {
	var b strings.Builder
	b.WriteString("[")
	for i, r := range v {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString("[")
		for j, x := range r {
			if j > 0 {
				b.WriteString(" ")
			}
			if x == nil {
				b.WriteString("<nil>")
			} else {
				b.WriteString(strings.TrimSpace(strings.ReplaceAll(fmtAny(x), "\n", "")))
			}
		}
		b.WriteString("]")
	}
	b.WriteString("]")
	return b.String()
}

func fmtAny(x any) string {
	switch v := x.(type) {
	case string:
		return v
	case int64:
		return literal(v, false)
	}
	return "?"
}

// TestReadParams_badRecordNamesItsLine: a record with the wrong number of
// values is reported by its line in the file, counting the header and
// lines inside quoted values.
func TestReadParams_badRecordNamesItsLine(t *testing.T) {
	cases := []struct{ name, csv, want string }{
		{"after a header", "id,region\n1,eu\n2\n", "line 3"},
		{"without a header", "1,eu\n2,us,x\n", "line 2"},
		{"after a quoted newline", "id,note\n1,\"two\nlines\"\n2\n", "line 4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadParams(strings.NewReader(tc.csv))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to name %s", err, tc.want)
			}
		})
	}
}

// TestReadParams_byteOrderMark: a spreadsheet's UTF-8 CSV starts with a
// byte order mark; the header must still be recognised, not bound as a
// parameter set.
func TestReadParams_byteOrderMark(t *testing.T) {
	got, err := ReadParams(strings.NewReader("\ufeffcustomer_id\n1\n2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s, want := sprint(got), "[[1] [2]]"; s != want {
		t.Errorf("got %s, want %s", s, want)
	}
}

// TestQueries_refusalNamesTheStatement: a statement that is never run is
// refused with a reason that fits it: SELECT ... INTO and COMMIT are not
// DDL.
func TestQueries_refusalNamesTheStatement(t *testing.T) {
	cases := map[string]string{
		"SELECT id INTO @x FROM t LIMIT 1": "INTO",
		"COMMIT":                           "transaction",
		"DROP TABLE t":                     "DDL",
	}
	for q, want := range cases {
		_, err := Queries(t.Context(), nil, q, q, nil, DefaultOptions())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want it to mention %s", q, err, want)
		}
	}
}

func TestOrderKeys(t *testing.T) {
	cases := []struct{ in, want string }{
		{"SELECT a, b FROM t ORDER BY a DESC LIMIT 3", "[{a 0}]"},
		{"SELECT a, b FROM t ORDER BY `t`.`b`, 1 FOR UPDATE", "[{b 0} { 1}]"},
		{"SELECT a FROM t ORDER BY NULL, s.t.a ASC", "[{a 0}]"},
		{"SELECT a FROM t ORDER BY a COLLATE utf8mb4_bin", "[]"},
		{"SELECT a FROM t ORDER BY a + 1", "[]"},
		{"SELECT a FROM (SELECT a FROM t ORDER BY a) x", "[]"},
		{"SELECT a FROM t", "[]"},
	}
	for _, tc := range cases {
		if got := fmt.Sprint(OrderKeys(tc.in)); got != tc.want {
			t.Errorf("OrderKeys(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
