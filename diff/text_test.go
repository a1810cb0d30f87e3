package diff

import (
	"fmt"
	"strings"
	"testing"
)

func TestCompareText_largeBodies(t *testing.T) {
	var a, b strings.Builder
	for i := range 20000 {
		fmt.Fprintf(&a, "row %d\n", i)
		fmt.Fprintf(&b, "row %d\n", (i*7919)%20000)
	}
	diffs := compareText(nil, a.String(), b.String(), false)
	if got, want := len(diffs), maxLineDiffs+1; got != want {
		t.Fatalf("got %d differences, want %d (capped plus summary)", got, want)
	}
	if last := diffs[len(diffs)-1]; last.Path != "body" || last.Kind != More || last.Lines < 1 || last.Legacy != nil || last.New != nil {
		t.Errorf("last difference = %+v, want the summary at body, of kind more with a line count and no values", last)
	}
}

func TestCompareText_insertionKeepsAlignment(t *testing.T) {
	a := "a\nb\nc\nd\n"
	b := "a\nX\nb\nc\nd\n"
	got := formatDiffs(compareText(nil, a, b, false))
	if want := "extra body:L2 - \"X\"\n"; got != want {
		t.Errorf("differences = %q, want %q", got, want)
	}
}

func TestComparer_Compare_bigReversedArray(t *testing.T) {
	c, err := Compile(Rules{})
	if err != nil {
		t.Fatal(err)
	}
	var a, b strings.Builder
	a.WriteString("[")
	b.WriteString("[")
	for i := range 300 {
		if i > 0 {
			a.WriteString(",")
			b.WriteString(",")
		}
		fmt.Fprintf(&a, `{"id":%d}`, i)
		fmt.Fprintf(&b, `{"id":%d}`, 299-i)
	}
	a.WriteString("]")
	b.WriteString("]")
	got := c.Compare(Response{Body: []byte(a.String())}, Response{Body: []byte(b.String())})
	if len(got) != 1 || got[0].Kind != Order || got[0].Path != "$" {
		t.Errorf("reversed array: %d differences, first %+v; want one order at $", len(got), got[0])
	}
}
