package proxy_test

import (
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/banyanhq/banyan/diff"
	"github.com/banyanhq/banyan/proxy"
)

// TestProxy_ShadowNoiseOneOddAnswer: the route's first noise sample
// re-fetches the primary twice at once. One odd answer among them (a busy
// legacy that answers 200 {"error":"busy"}) is one event, not two
// samples: it must not make every field it lacks noise for good, so a
// $.total that new gets wrong stays a difference.
func TestProxy_ShadowNoiseOneOddAnswer(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	normal := order(func(string) int { return 100 }, true)
	legacy := newBackend(t, "legacy", func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 2 { // the first sample's first re-fetch
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"error":"busy"}`)
			return
		}
		normal(w, r)
	})
	next := newBackend(t, "new", order(func(string) int { return 101 }, true))
	h := newShadowHarness(t, shadowOrders+`
    split: {legacy: 100, new: 0}
    shadow: {percent: 100, noise_percent: 0}
`, proxy.ShadowOptions{Workers: 1}, legacy, next)

	h.send(t, http.MethodGet, "/api/orders/1", nil)
	h.rec.wait(t, 1) // the first sample done before anything else reaches legacy
	for id := 2; id <= 5; id++ {
		h.send(t, http.MethodGet, fmt.Sprintf("/api/orders/%d", id), nil)
	}
	for _, o := range h.rec.wait(t, 5) {
		var total *diff.Difference
		for i, d := range o.Differences {
			if d.Path == "$.total" {
				total = &o.Differences[i]
			}
		}
		if o.Verdict != diff.Diff || total == nil || total.Noise {
			t.Errorf("%s: verdict %s, differences %+v; want diff with $.total 100 -> 101 not noise", o.URL, o.Verdict, o.Differences)
		}
	}
}

// TestProxy_ShadowNoiseLearnsFromLegacyOnly: noise is what the reference
// side varies in on its own. With the route ramped to new, the customer's
// answer comes from new; a new service whose $.total is random (a bug)
// must not teach $.total as noise by being asked twice, or every pair
// would read noise-only and the ramp would look safe.
func TestProxy_ShadowNoiseLearnsFromLegacyOnly(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	legacy := newBackend(t, "legacy", order(func(string) int { return 100 }, true))
	next := newBackend(t, "new", order(func(string) int { return 100 + int(n.Add(1)) }, true))
	h := newShadowHarness(t, shadowOrders+`
    split: {legacy: 0, new: 100}
    shadow: {percent: 100, noise_percent: 100}
`, proxy.ShadowOptions{Workers: 1}, legacy, next)

	const requests = 30
	for id := 1; id <= requests; id++ {
		h.send(t, http.MethodGet, fmt.Sprintf("/api/orders/%d", id), nil)
	}
	diffs := 0
	for _, o := range h.rec.wait(t, requests) {
		if o.Verdict == diff.Diff {
			diffs++
		}
		for _, d := range o.Differences {
			if d.Path == "$.total" && d.Noise {
				t.Errorf("%s: $.total %v -> %v marked noise, learned from new's own answers", o.URL, d.Legacy, d.New)
			}
		}
	}
	if diffs != requests {
		t.Errorf("%d of %d pairs judged diff, want all: new's $.total never equals legacy's", diffs, requests)
	}
}
