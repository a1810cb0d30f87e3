package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestBar_Line(t *testing.T) {
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	var out bytes.Buffer
	b := New(&out, "copy shop.t_order", "rows", 1000)
	b.now = func() time.Time { return now }
	b.start = now
	now = now.Add(2 * time.Second)
	b.Add(250)
	if got, want := b.Line(), "copy shop.t_order 250/1000 rows (25%)  125 rows/s  ETA 6s"; got != want {
		t.Errorf("Line() = %q, want %q", got, want)
	}
	b.Done()
	if !strings.HasSuffix(out.String(), "\n") || !strings.Contains(out.String(), "250/1000") {
		t.Errorf("output %q: want the final line drawn and ended", out.String())
	}

	unknown := New(&out, "check", "rows", 0)
	unknown.now = func() time.Time { return now }
	unknown.start = now.Add(-time.Second)
	unknown.Add(10)
	if got, want := unknown.Line(), "check 10 rows  10 rows/s"; got != want {
		t.Errorf("Line() without a total = %q, want %q", got, want)
	}
	var nilBar *Bar
	nilBar.Add(1) // a nil bar (no output wanted) does nothing
	nilBar.Done()
	if New(nil, "x", "rows", 1) != nil {
		t.Error("New(nil writer) should give a nil bar")
	}
}
