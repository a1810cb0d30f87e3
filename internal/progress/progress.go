// Package progress draws the one-line progress bars of banyan's long jobs
// (initial copy, consistency check, canary runs): done/total, rate and ETA.
package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Bar is a single-line progress bar. It redraws at most every 200 ms.
// Safe for concurrent use. A nil *Bar does nothing.
type Bar struct {
	mu    sync.Mutex
	w     io.Writer
	label string
	unit  string
	total int64
	done  int64
	start time.Time
	last  time.Time
	now   func() time.Time
}

// New starts a bar writing to w; total <= 0 means unknown (no ETA).
func New(w io.Writer, label, unit string, total int64) *Bar {
	if w == nil {
		return nil
	}
	b := &Bar{w: w, label: label, unit: unit, total: total, now: time.Now}
	b.start = b.now()
	return b
}

// Add records n more units done.
func (b *Bar) Add(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	if t := b.now(); t.Sub(b.last) >= 200*time.Millisecond {
		b.last = t
		b.draw(false)
	}
}

// Done draws the final line and ends it.
func (b *Bar) Done() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.draw(true)
}

// Line renders the bar's text as it would be drawn now.
func (b *Bar) Line() string {
	elapsed := b.now().Sub(b.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(b.done) / elapsed
	}
	var s strings.Builder
	fmt.Fprintf(&s, "%s %d", b.label, b.done)
	if b.total > 0 {
		pct := min(100, 100*float64(b.done)/float64(b.total))
		fmt.Fprintf(&s, "/%d %s (%.0f%%)", b.total, b.unit, pct)
	} else {
		fmt.Fprintf(&s, " %s", b.unit)
	}
	fmt.Fprintf(&s, "  %.0f %s/s", rate, b.unit)
	if b.total > 0 && rate > 0 && b.done < b.total {
		eta := time.Duration(float64(b.total-b.done) / rate * float64(time.Second))
		fmt.Fprintf(&s, "  ETA %s", eta.Round(time.Second))
	}
	return s.String()
}

func (b *Bar) draw(final bool) {
	end := ""
	if final {
		end = "\n"
	}
	fmt.Fprintf(b.w, "\r%s\x1b[K%s", b.Line(), end)
}
