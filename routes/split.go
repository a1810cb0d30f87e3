package routes

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Buckets is the number of sticky buckets a user key is hashed into; a
// weight of 1 is one bucket.
const Buckets = 100

// Split is a route's backend weights, summing to 100. A backend with weight
// 0 stays in the split so the override header can still reach it.
type Split map[string]int

// Equal reports whether both splits give every backend the same weight
// (a missing backend counts as weight 0).
func (s Split) Equal(o Split) bool {
	for k, v := range s {
		if o[k] != v {
			return false
		}
	}
	for k, v := range o {
		if s[k] != v {
			return false
		}
	}
	return true
}

// String renders "legacy=80 orders-svc=20" in name order.
func (s Split) String() string {
	keys := sortedKeys(s)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Itoa(s[k])
	}
	return strings.Join(parts, " ")
}

// Clone returns a copy.
func (s Split) Clone() Split {
	c := make(Split, len(s))
	for k, v := range s {
		c[k] = v
	}
	return c
}

// ParseSplit reads "legacy=80" style arguments as typed on the command line.
func ParseSplit(args []string) (Split, error) {
	s := Split{}
	for _, a := range args {
		name, w, ok := strings.Cut(a, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("%q is not BACKEND=WEIGHT", a)
		}
		n, err := strconv.Atoi(w)
		if err != nil {
			return nil, fmt.Errorf("%q: weight %q is not a whole number", a, w)
		}
		if _, dup := s[name]; dup {
			return nil, fmt.Errorf("backend %q is given twice", name)
		}
		s[name] = n
	}
	return s, nil
}

// Assignment maps each of the 100 sticky buckets to a backend. Seq records
// when a bucket last changed hands, so that a weight decrease gives back
// the buckets a backend gained most recently.
type Assignment struct {
	Owner [Buckets]string `json:"owner"`
	Seq   [Buckets]int64  `json:"seq"`
}

// Rebalance moves buckets so that each backend owns exactly its weight,
// changing as few buckets as possible: only a backend whose weight fell
// gives buckets up, and only one whose weight rose receives them. So a ramp
// of the new backend 20 -> 50 moves users only from legacy to new, never
// back, and a rollback 50 -> 20 returns exactly the users the ramp moved
// (last in, first out). seq stamps the buckets that move. split must sum to
// Buckets.
func Rebalance(prev Assignment, split Split, seq int64) Assignment {
	next := prev
	held := map[string][]int{}
	for b, owner := range prev.Owner {
		held[owner] = append(held[owner], b)
	}
	var pool []int
	for _, owner := range sortedKeys(held) {
		bs := held[owner]
		keep := 0
		if owner != "" {
			keep = split[owner]
		}
		if len(bs) <= keep {
			continue
		}
		// Give up the most recently gained buckets first; among equals the
		// highest-numbered.
		sort.Slice(bs, func(i, j int) bool {
			if prev.Seq[bs[i]] != prev.Seq[bs[j]] {
				return prev.Seq[bs[i]] > prev.Seq[bs[j]]
			}
			return bs[i] > bs[j]
		})
		pool = append(pool, bs[:len(bs)-keep]...)
	}
	sort.Ints(pool)
	for _, name := range sortedKeys(split) {
		need := split[name] - len(held[name])
		for ; need > 0 && len(pool) > 0; need-- {
			b := pool[0]
			pool = pool[1:]
			next.Owner[b] = name
			next.Seq[b] = seq
		}
	}
	return next
}

// Counts returns how many buckets each backend owns.
func (a *Assignment) Counts() Split {
	c := Split{}
	for _, o := range a.Owner {
		if o != "" {
			c[o]++
		}
	}
	return c
}

// BucketOf hashes a user key into one of the 100 buckets (FNV-1a, no
// allocation). The bucket depends only on the key, so a user keeps the same
// bucket on every route and across restarts and replicas.
func BucketOf(key string) int { return int(fnv1a(fnvOffset, key) % Buckets) }

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnv1a(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// shadowBucketOf is BucketOf with a salt, so whether a user is in the
// shadow sample does not depend on which backend the user is on.
func shadowBucketOf(key string) int {
	return int(fnv1a(fnv1a(fnvOffset, "banyan-shadow\x00"), key) % Buckets)
}
