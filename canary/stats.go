package canary

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// Latency summarises one side's timed runs.
type Latency struct {
	Runs int           `json:"runs"`
	P50  time.Duration `json:"p50_ns"`
	P95  time.Duration `json:"p95_ns"`
	P99  time.Duration `json:"p99_ns"`
}

func summarise(samples []time.Duration) Latency {
	s := slices.Clone(samples)
	slices.Sort(s)
	return Latency{Runs: len(s), P50: percentile(s, 0.50), P95: percentile(s, 0.95), P99: percentile(s, 0.99)}
}

// percentile returns the nearest-rank percentile of sorted samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(rank, len(sorted)-1))]
}

// mannWhitneyGreater returns the one-sided p-value of the Mann-Whitney U
// test for "b's values tend to be larger than a's", with the normal
// approximation, average ranks for ties, the tie-corrected variance and a
// continuity correction. It returns 1 when either sample has fewer than
// 2 values.
func mannWhitneyGreater(a, b []time.Duration) float64 {
	n1, n2 := len(a), len(b)
	if n1 < 2 || n2 < 2 {
		return 1
	}
	type obs struct {
		v     time.Duration
		fromB bool
	}
	all := make([]obs, 0, n1+n2)
	for _, v := range a {
		all = append(all, obs{v, false})
	}
	for _, v := range b {
		all = append(all, obs{v, true})
	}
	slices.SortFunc(all, func(x, y obs) int {
		switch {
		case x.v < y.v:
			return -1
		case x.v > y.v:
			return 1
		}
		return 0
	})
	n := float64(n1 + n2)
	var rankB float64
	ties := averageRanks(len(all), func(i, j int) bool { return all[i].v == all[j].v }, func(k int, rank float64) {
		if all[k].fromB {
			rankB += rank
		}
	})
	u := rankB - float64(n2)*float64(n2+1)/2
	mean := float64(n1) * float64(n2) / 2
	variance := float64(n1) * float64(n2) / 12 * ((n + 1) - ties/(n*(n-1)))
	if variance <= 0 {
		return 1
	}
	z := (u - mean - 0.5) / math.Sqrt(variance)
	return 0.5 * math.Erfc(z/math.Sqrt2)
}

// signedRankGreater returns the one-sided p-value of the Wilcoxon
// signed-rank test for "d's values tend to be above 0", with the normal
// approximation, zeros dropped, average ranks for ties, the tie-corrected
// variance and a continuity correction. It returns 1 when fewer than 2
// values are not 0.
func signedRankGreater(d []float64) float64 {
	var nz []float64
	for _, v := range d {
		if v != 0 {
			nz = append(nz, v)
		}
	}
	n := len(nz)
	if n < 2 {
		return 1
	}
	slices.SortFunc(nz, func(x, y float64) int { return cmp.Compare(math.Abs(x), math.Abs(y)) })
	var wPlus float64
	ties := averageRanks(n, func(i, j int) bool { return math.Abs(nz[i]) == math.Abs(nz[j]) }, func(k int, rank float64) {
		if nz[k] > 0 {
			wPlus += rank
		}
	})
	fn := float64(n)
	mean := fn * (fn + 1) / 4
	variance := fn*(fn+1)*(2*fn+1)/24 - ties/48
	if variance <= 0 {
		return 1
	}
	z := (wPlus - mean - 0.5) / math.Sqrt(variance)
	return 0.5 * math.Erfc(z/math.Sqrt2)
}

// averageRanks ranks n sorted values, where same(i, j) says whether the
// values at i and j are equal: it calls rank(k, r) for each position k
// with r its 1-based rank, equal values sharing the average of their
// ranks, and returns the sum of t³ − t over the groups of t equal values
// (the ties' share of a rank test's variance).
func averageRanks(n int, same func(i, j int) bool, rank func(k int, r float64)) (ties float64) {
	for i := 0; i < n; {
		j := i
		for j < n && same(j, i) {
			j++
		}
		avg := float64(i+j+1) / 2 // ranks i+1..j
		for k := i; k < j; k++ {
			rank(k, avg)
		}
		t := float64(j - i)
		ties += t*t*t - t
		i = j
	}
	return ties
}
