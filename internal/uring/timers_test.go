//go:build linux && (amd64 || arm64)

package uring

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// The heap gives timers back soonest first, whatever was removed from its
// middle on the way (operations that completed before their deadline).
func TestTimerHeap(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 0))
	var h timerHeap
	var live []*timer
	for step := range 20000 {
		switch op := r.IntN(3); {
		case op == 0 || len(live) == 0:
			tm := &timer{when: int64(r.IntN(1000))}
			h.push(tm)
			live = append(live, tm)
		case op == 1:
			i := r.IntN(len(live))
			h.remove(live[i])
			h.remove(live[i]) // a second remove does nothing
			live = slices.Delete(live, i, i+1)
		default:
			tm := h.pop()
			soonest := slices.MinFunc(live, func(a, b *timer) int { return int(a.when - b.when) })
			if tm.when != soonest.when {
				t.Fatalf("seed %d, step %d: pop gave %d, the soonest is %d", seed, step, tm.when, soonest.when)
			}
			live = slices.DeleteFunc(live, func(x *timer) bool { return x == tm })
		}
		if len(h) != len(live) {
			t.Fatalf("seed %d, step %d: heap holds %d, want %d", seed, step, len(h), len(live))
		}
		for i, tm := range h {
			if tm.idx != i || !tm.in {
				t.Fatalf("seed %d, step %d: timer at %d says %d (in %v)", seed, step, i, tm.idx, tm.in)
			}
			if p := (i - 1) / 2; i > 0 && h[p].when > tm.when {
				t.Fatalf("seed %d, step %d: heap order broken at %d", seed, step, i)
			}
		}
	}
}
