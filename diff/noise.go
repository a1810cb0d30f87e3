package diff

import (
	"sort"
	"strings"
	"sync"
)

// maxNoisePatterns bounds how many patterns one route learns, so a route
// whose answers vary everywhere cannot grow without limit.
const maxNoisePatterns = 1024

// Noise holds the path patterns learned as noise for one route: places
// where two answers of the same side to the same request already differ.
// It is safe for concurrent use; the zero value is not usable, use NewNoise.
type Noise struct {
	mu sync.RWMutex
	// patterns maps a learned pattern to whether everything below it is
	// noise too (learned from a Missing, Extra or Type difference, where
	// the whole value varied).
	patterns map[string]bool
}

// NewNoise returns an empty noise set.
func NewNoise() *Noise { return &Noise{patterns: map[string]bool{}} }

// Learn records the patterns of diffs (array indices become [*]) as noise.
// The diffs must come from comparing two answers of the same side to the
// same request. At most 1024 patterns are kept per Noise.
func (n *Noise) Learn(diffs []Difference) {
	if len(diffs) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, d := range diffs {
		p := Pattern(d.Path)
		subtree := d.Kind == Missing || d.Kind == Extra || d.Kind == Type
		if old, ok := n.patterns[p]; ok {
			n.patterns[p] = old || subtree
			continue
		}
		if len(n.patterns) < maxNoisePatterns {
			n.patterns[p] = subtree
		}
	}
}

// Paths returns the learned patterns, sorted.
func (n *Noise) Paths() []string {
	n.mu.RLock()
	defer n.mu.RUnlock()
	out := make([]string, 0, len(n.patterns))
	for p := range n.patterns {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// isNoise reports whether the path's pattern was learned, or lies below a
// pattern learned from a whole value that varied.
func (n *Noise) isNoise(path string) bool {
	p := Pattern(path)
	if _, ok := n.patterns[p]; ok {
		return true
	}
	for _, anc := range ancestors(p) {
		if n.patterns[anc] {
			return true
		}
	}
	return false
}

// ancestors returns the JSON path patterns above p, nearest first
// ("$.a[*].b" gives "$.a[*]", "$.a", "$"). Non-JSON paths have none.
func ancestors(p string) []string {
	if !strings.HasPrefix(p, "$") {
		return nil
	}
	pp, err := parsePattern(p)
	if err != nil || pp.hasSkip {
		return nil
	}
	segs := make([]seg, len(pp.toks))
	for i, t := range pp.toks {
		segs[i] = t.seg
	}
	out := make([]string, 0, len(segs))
	for i := len(segs) - 1; i >= 0; i-- {
		out = append(out, renderPath(segs[:i]))
	}
	return out
}

// Judge marks the differences whose pattern is learned noise (n may be nil)
// and gives the verdict: Error when either side has Err, Match when there
// is no difference, NoiseOnly when all are noise, Diff otherwise. It
// returns a marked copy and leaves diffs unchanged.
func Judge(legacy, new Response, diffs []Difference, n *Noise) ([]Difference, Verdict) {
	if legacy.Err != "" || new.Err != "" {
		return diffs, Error
	}
	if len(diffs) == 0 {
		return diffs, Match
	}
	out := make([]Difference, len(diffs))
	copy(out, diffs)
	allNoise := true
	if n != nil {
		n.mu.RLock()
		defer n.mu.RUnlock()
	}
	for i := range out {
		out[i].Noise = n != nil && n.isNoise(out[i].Path)
		allNoise = allNoise && out[i].Noise
	}
	if allNoise {
		return out, NoiseOnly
	}
	return out, Diff
}
