package diff

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// benchOrder returns a ~2 KB order: ten items, addresses, totals and
// metadata. The variant for the new side differs in a request id, a
// timestamp format, one item's price and the total.
func benchOrder(newSide bool) []byte {
	var b strings.Builder
	reqID, created, price3, total := "c0ffee-1111", "2024-03-01T10:00:00Z", "12.50", "181.45"
	if newSide {
		reqID, created, price3, total = "c0ffee-2222", "2024-03-01 11:00:00 +0100", "12.55", "181.453"
	}
	fmt.Fprintf(&b, `{"meta":{"request_id":%q,"version":"2.3.1","served_by":"orders"},`, reqID)
	fmt.Fprintf(&b, `"order":{"id":982341,"number":"SO-2024-000982341","status":"shipped","created_at":%q,`, created)
	b.WriteString(`"customer":{"id":55123,"name":"Ada Lovelace","email":"ada@example.com","tier":"gold"},`)
	b.WriteString(`"shipping":{"name":"Ada Lovelace","line1":"12 St James's Square","city":"London","postcode":"SW1Y 4LB","country":"GB"},`)
	b.WriteString(`"items":[`)
	for i := range 10 {
		if i > 0 {
			b.WriteByte(',')
		}
		price := fmt.Sprintf("%d.%02d", 5+i*2, (i*37)%100)
		if i == 3 {
			price = price3
		}
		fmt.Fprintf(&b, `{"sku":"SKU-%05d","name":"Widget model %d","qty":%d,"price":%s,"currency":"GBP","tags":["sale","warehouse-%d"],"image":"https://cdn.example.com/p/SKU-%05d.jpg","in_stock":true}`, 1000+i, i, 1+i%3, price, i%4, 1000+i)
	}
	fmt.Fprintf(&b, `],"totals":{"subtotal":170.45,"shipping":4.99,"tax":6.01,"total":%s},"notes":null}}`, total)
	return []byte(b.String())
}

func benchPair() (Response, Response) {
	h := map[string][]string{"Content-Type": {"application/json; charset=utf-8"}}
	return Response{Status: 200, Header: h, Body: benchOrder(false)},
		Response{Status: 200, Header: h, Body: benchOrder(true)}
}

func benchComparer(tb testing.TB) *Comparer {
	c, err := Compile(Rules{
		Ignore:     []string{"$.meta.request_id"},
		Unordered:  map[string]string{"$.order.items": "sku"},
		Tolerance:  map[string]Tolerance{"$..total": {Abs: 0.005}},
		Timestamps: true,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func TestBenchPair(t *testing.T) {
	legacy, candidate := benchPair()
	if n := len(legacy.Body); n < 1800 || n > 2600 {
		t.Errorf("bench body is %d bytes, want about 2 KB", n)
	}
	got := formatDiffs(benchComparer(t).Compare(legacy, candidate))
	if want := "changed $.order.items[3].price 12.50 12.55\n"; got != want {
		t.Errorf("bench differences:\n%s\nwant:\n%s", got, want)
	}
}

// BenchmarkDiff is the full Compare, decoding both bodies included.
func BenchmarkDiff(b *testing.B) {
	legacy, candidate := benchPair()
	c := benchComparer(b)
	b.SetBytes(int64(len(legacy.Body) + len(candidate.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if d := c.Compare(legacy, candidate); len(d) != 1 {
			b.Fatalf("got %d differences", len(d))
		}
	}
}

// BenchmarkUnmarshalPair is the baseline: json.Unmarshal of both bodies
// into any, nothing else.
func BenchmarkUnmarshalPair(b *testing.B) {
	legacy, candidate := benchPair()
	b.SetBytes(int64(len(legacy.Body) + len(candidate.Body)))
	b.ReportAllocs()
	for b.Loop() {
		var x, y any
		if err := json.Unmarshal(legacy.Body, &x); err != nil {
			b.Fatal(err)
		}
		if err := json.Unmarshal(candidate.Body, &y); err != nil {
			b.Fatal(err)
		}
	}
}
