package routes

import (
	"fmt"
	"net/http/httptest"
	"testing"
)

func owners(a Assignment) map[int]string {
	m := map[int]string{}
	for b, o := range a.Owner {
		m[b] = o
	}
	return m
}

func TestRebalance_ExactCounts(t *testing.T) {
	a := Rebalance(Assignment{}, Split{"legacy": 100}, 1)
	for _, s := range []Split{
		{"legacy": 80, "new": 20},
		{"legacy": 33, "new": 33, "third": 34},
		{"legacy": 0, "new": 100},
		{"legacy": 100, "new": 0},
	} {
		a = Rebalance(a, s, 2)
		for name, w := range s {
			if got := a.Counts()[name]; got != w {
				t.Errorf("after %s: %s owns %d buckets, want %d", s, name, got, w)
			}
		}
	}
}

// TestRebalance_MonotonicRamp walks new from 0 to 100 one point at a time:
// a bucket that reached new never goes back to legacy.
func TestRebalance_MonotonicRamp(t *testing.T) {
	a := Rebalance(Assignment{}, Split{"legacy": 100, "new": 0}, 1)
	for w := 1; w <= 100; w++ {
		prev := owners(a)
		a = Rebalance(a, Split{"legacy": 100 - w, "new": w}, int64(w+1))
		for b, o := range prev {
			if o == "new" && a.Owner[b] != "new" {
				t.Fatalf("ramp to new=%d moved bucket %d from new back to %s", w, b, a.Owner[b])
			}
		}
	}
}

// TestRebalance_RollbackIsExact: after 20 -> 50 -> 20, the buckets on new
// are exactly those of the first 20; ramping to 50 again brings back the
// same users as the first time.
func TestRebalance_RollbackIsExact(t *testing.T) {
	a := Rebalance(Assignment{}, Split{"legacy": 100}, 1)
	at20 := Rebalance(a, Split{"legacy": 80, "new": 20}, 2)
	at50 := Rebalance(at20, Split{"legacy": 50, "new": 50}, 3)
	back := Rebalance(at50, Split{"legacy": 80, "new": 20}, 4)
	again := Rebalance(back, Split{"legacy": 50, "new": 50}, 5)
	for b := range Buckets {
		if back.Owner[b] != at20.Owner[b] {
			t.Errorf("bucket %d: after rollback %s, at 20%% it was %s", b, back.Owner[b], at20.Owner[b])
		}
		if again.Owner[b] != at50.Owner[b] {
			t.Errorf("bucket %d: re-ramp gives %s, first ramp gave %s", b, again.Owner[b], at50.Owner[b])
		}
	}
}

// TestRebalance_OnlyLosersGiveUp: with three backends, a backend whose
// weight did not change keeps every one of its buckets.
func TestRebalance_OnlyLosersGiveUp(t *testing.T) {
	a := Rebalance(Assignment{}, Split{"legacy": 60, "a": 20, "b": 20}, 1)
	next := Rebalance(a, Split{"legacy": 40, "a": 20, "b": 40}, 2)
	for i := range Buckets {
		if a.Owner[i] == "a" && next.Owner[i] != "a" {
			t.Errorf("bucket %d moved off unchanged backend a to %s", i, next.Owner[i])
		}
		if a.Owner[i] == "b" && next.Owner[i] != "b" {
			t.Errorf("bucket %d moved off gaining backend b to %s", i, next.Owner[i])
		}
	}
}

func TestBucketOf_Spread(t *testing.T) {
	counts := make([]int, Buckets)
	const n = 100_000
	for i := range n {
		counts[BucketOf(fmt.Sprintf("user-%d", i))]++
	}
	for b, c := range counts {
		// Expected 1,000 each; a fair hash stays well inside ±20 %.
		if c < 800 || c > 1200 {
			t.Errorf("bucket %d got %d of %d keys", b, c, n)
		}
	}
	if BucketOf("user-42") != BucketOf("user-42") {
		t.Error("BucketOf is not deterministic")
	}
}

func TestParseSplit(t *testing.T) {
	s, err := ParseSplit([]string{"legacy=80", "orders-svc=20"})
	if err != nil || !s.Equal(Split{"legacy": 80, "orders-svc": 20}) {
		t.Fatalf("ParseSplit = %v, %v", s, err)
	}
	for _, bad := range [][]string{{"legacy"}, {"legacy=x"}, {"=5"}, {"a=1", "a=2"}} {
		if _, err := ParseSplit(bad); err == nil {
			t.Errorf("ParseSplit(%q) accepted", bad)
		}
	}
}

func TestMatcher(t *testing.T) {
	tests := []struct {
		match  MatchConfig
		method string
		path   string
		header map[string]string
		want   bool
	}{
		{MatchConfig{PathPrefix: "/api/orders"}, "GET", "/api/orders", nil, true},
		{MatchConfig{PathPrefix: "/api/orders"}, "GET", "/api/orders/7", nil, true},
		{MatchConfig{PathPrefix: "/api/orders"}, "GET", "/api/ordersX", nil, false},
		{MatchConfig{PathPrefix: "/api/orders/"}, "GET", "/api/orders/7", nil, true},
		{MatchConfig{PathPrefix: "/"}, "GET", "/anything", nil, true},
		{MatchConfig{Path: "/health"}, "GET", "/health", nil, true},
		{MatchConfig{Path: "/health"}, "GET", "/health/x", nil, false},
		{MatchConfig{PathTemplate: "/api/orders/{id}"}, "GET", "/api/orders/7", nil, true},
		{MatchConfig{PathTemplate: "/api/orders/{id}"}, "GET", "/api/orders/", nil, false},
		{MatchConfig{PathTemplate: "/api/orders/{id}"}, "GET", "/api/orders/7/", nil, false},
		{MatchConfig{PathTemplate: "/api/orders/{id}"}, "GET", "/api/orders/7/items", nil, false},
		{MatchConfig{PathTemplate: "/api/orders/{id}"}, "GET", "/api/orders", nil, false},
		{MatchConfig{PathTemplate: "/api/{kind}/{id}/items"}, "GET", "/api/orders/7/items", nil, true},
		{MatchConfig{PathPrefix: "/api", Methods: []string{"GET", "HEAD"}}, "POST", "/api/x", nil, false},
		{MatchConfig{PathPrefix: "/api", Methods: []string{"GET", "HEAD"}}, "HEAD", "/api/x", nil, true},
		// A HEAD is a GET without the body (RFC 9110 9.3.2): it goes where
		// the GET would, or monitors and caches probing with HEAD would
		// reach another backend than the customers' GETs.
		{MatchConfig{PathPrefix: "/api", Methods: []string{"GET"}}, "HEAD", "/api/x", nil, true},
		{MatchConfig{PathPrefix: "/api", Methods: []string{"POST"}}, "HEAD", "/api/x", nil, false},
		{MatchConfig{PathPrefix: "/api", Methods: []string{"HEAD"}}, "GET", "/api/x", nil, false},
		{MatchConfig{Headers: map[string]string{"x-beta": "1"}}, "GET", "/", map[string]string{"X-Beta": "1"}, true},
		{MatchConfig{Headers: map[string]string{"X-Beta": "1"}}, "GET", "/", map[string]string{"X-Beta": "2"}, false},
		{MatchConfig{Headers: map[string]string{"X-Beta": "*"}}, "GET", "/", map[string]string{"X-Beta": "yes"}, true},
		{MatchConfig{Headers: map[string]string{"X-Beta": "*"}}, "GET", "/", nil, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%+v %s %s", tt.match, tt.method, tt.path), func(t *testing.T) {
			m, err := compileMatch(tt.match)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(tt.method, tt.path, nil)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			if got := m.matches(r); got != tt.want {
				t.Errorf("matches = %v, want %v", got, tt.want)
			}
		})
	}
}
