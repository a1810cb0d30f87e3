//go:build linux && (amd64 || arm64)

package uring

// timer is the deadline of one operation in flight: slot (0 or 1) of
// task t, whose user data has kind.
type timer struct {
	when int64 // ns since the loop's base
	t    *Task
	slot int
	kind uint64
	idx  int  // its place in the heap, while in it
	in   bool // in the heap
}

// timerHeap is a binary min-heap of timers by when, each knowing its
// place, so that a completed operation's timer leaves in O(log n).
type timerHeap []*timer

func (h *timerHeap) push(tm *timer) {
	tm.idx, tm.in = len(*h), true
	*h = append(*h, tm)
	h.up(tm.idx)
}

// pop removes and returns the soonest timer; the heap must not be empty.
func (h *timerHeap) pop() *timer {
	tm := (*h)[0]
	h.remove(tm)
	return tm
}

// remove takes tm out of the heap, if it is in.
func (h *timerHeap) remove(tm *timer) {
	if !tm.in {
		return
	}
	i, last := tm.idx, len(*h)-1
	if i != last {
		h.swap(i, last)
	}
	(*h)[last] = nil
	*h = (*h)[:last]
	tm.in = false
	if i != last {
		if !h.down(i) {
			h.up(i)
		}
	}
}

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}

func (h timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p].when <= h[i].when {
			return
		}
		h.swap(i, p)
		i = p
	}
}

// down moves h[i] down to its place and reports whether it moved.
func (h timerHeap) down(i int) bool {
	start := i
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		c := l
		if r := l + 1; r < len(h) && h[r].when < h[l].when {
			c = r
		}
		if h[i].when <= h[c].when {
			break
		}
		h.swap(i, c)
		i = c
	}
	return i != start
}
