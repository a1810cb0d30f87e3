package cdc

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/routes"
)

// floatValues are FLOAT values whose text, as the server prints a FLOAT
// (6 significant digits), is not the stored value: 1234567 prints as
// 1234570, 1.000001 as 1, and 16777217 is stored as 16777216 (a float32
// cannot hold it). 3.402823466e38 is the largest FLOAT MariaDB takes.
// (MariaDB 10.11 stored -0e0 as 0 here, so the sign of zero is not
// exercised; `f * 1e0` is compared so that it would be.)
var floatValues = []string{
	"1234567", "1.000001", "3.402823466e38", "1.17549435e-38", "0.1", "-0e0",
	"16777217", "-1234567", "123456.789", "-3.4e-38",
}

// doubleValues are DOUBLE values that need up to 17 significant digits.
var doubleValues = []string{
	"1234567", "1.000001", "1.7976931348623157e308", "2.2250738585072014e-308", "0.1", "-0e0",
	"9007199254740993", "0.30000000000000004", "123456.78901234567", "-4.9e-324",
}

// TestPipeline_FloatDoubleExact: the copy, the stream and a resnapshot
// write FLOAT and DOUBLE columns with the source's stored values, bit for
// bit, not with the shorter text the server prints for them.
func TestPipeline_FloatDoubleExact(t *testing.T) {
	srcName, dstName, src, dst := dbs(t)
	ddl := `CREATE TABLE fl (id INT PRIMARY KEY, f FLOAT, d DOUBLE, fu FLOAT UNSIGNED, dc DECIMAL(30,10), b BIT(64))`
	mustExec(t, src, ddl)
	mustExec(t, dst, ddl)
	insert := func(base int) {
		var vals []string
		for i, v := range floatValues {
			u := strings.TrimPrefix(v, "-")
			vals = append(vals, fmt.Sprintf("(%d, %s, %s, %s, %s, %d)", base+i, v, doubleValues[i], u, "12345678901234567890.0123456789", uint64(1)<<63|uint64(i)))
		}
		mustExec(t, src, "INSERT INTO fl VALUES "+strings.Join(vals, ", "))
	}
	insert(100) // copied
	q := `SELECT id, f + 0e0, f * 1e0, d + 0e0, d * 1e0, fu + 0e0, dc, b + 0 FROM fl ORDER BY id`
	read := func(which string) []string {
		db := src
		if which == "target" {
			db = dst
		}
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var id, f, f1, d, d1, fu, dc, b string
			if err := rows.Scan(&id, &f, &f1, &d, &d1, &fu, &dc, &b); err != nil {
				t.Fatal(err)
			}
			out = append(out, strings.Join([]string{id, f, f1, d, d1, fu, dc, b}, "|"))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	cfg := cdcConfig(srcName, dstName, routes.TableMapping{Source: srcName + ".fl", Target: dstName + ".fl"})
	stop := runPipeline(t, cfg)
	waitEqual(t, 20*time.Second, func() []string { return read("source") }, func() []string { return read("target") })
	insert(200) // streamed
	mustExec(t, src, `UPDATE fl SET f = f, d = -d, fu = fu + 0, id = id + 1000 WHERE id BETWEEN 100 AND 199`)
	waitEqual(t, 20*time.Second, func() []string { return read("source") }, func() []string { return read("target") })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// A resnapshot copies every row again.
	_, done := resnapshot(t, cfg, nil)
	untilStreaming(t, dst)
	select {
	case err := <-done:
		t.Fatalf("resnapshot stopped: %v", err)
	default:
	}
	waitEqual(t, 20*time.Second, func() []string { return read("source") }, func() []string { return read("target") })
}
