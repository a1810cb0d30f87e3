package proxy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/banyanhq/banyan/diff"
	"github.com/banyanhq/banyan/proxy"
)

// orderJSON answers like a shop: a fixed order, plus whatever extra adds.
func orderJSON(extra func(id string, o map[string]any)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		o := map[string]any{"id": id, "total": 12.5, "items": []any{map[string]any{"sku": "A", "qty": 1}}}
		if extra != nil {
			extra(id, o)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(o)
	}
}

// comparable strips what legitimately differs between two runs of the
// same comparison (time, latency, random values) and keeps the verdict
// and each difference's path, kind and noise flag.
func comparable(o diff.Outcome) string {
	parts := []string{string(o.Verdict), fmt.Sprint(o.Legacy.Status, o.New.Status), o.Legacy.Backend + ">" + o.New.Backend, o.URL}
	for _, d := range o.Differences {
		parts = append(parts, fmt.Sprintf("%s %s noise=%v", d.Path, d.Kind, d.Noise))
	}
	return strings.Join(parts, " | ")
}

// TestComparator_SameDiffsAsBuiltInShadow: for each pair of backends in
// one shared table, a request mirrored by Envoy to banyan's comparator
// yields the same verdict and the same differences as banyan's own
// shadowing of that request.
func TestComparator_SameDiffsAsBuiltInShadow(t *testing.T) {
	t.Parallel()
	randomID := func(id string, o map[string]any) { o["request_id"] = fmt.Sprintf("%x", rand.Uint64()) }
	tests := []struct {
		name          string
		legacy, newer http.HandlerFunc
		newDown       bool
		want          diff.Verdict
	}{
		{"identical", orderJSON(nil), orderJSON(nil), false, diff.Match},
		{"one field differs", orderJSON(nil), orderJSON(func(id string, o map[string]any) { o["total"] = 12.49 }), false, diff.Diff},
		{"random request_id only", orderJSON(randomID), orderJSON(randomID), false, diff.NoiseOnly},
		{"field differs beside noise", orderJSON(randomID), orderJSON(func(id string, o map[string]any) { randomID(id, o); o["items"] = []any{} }), false, diff.Diff},
		{"status differs", orderJSON(nil), func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) }, false, diff.Diff},
		{"new down", orderJSON(nil), nil, true, diff.Error},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			legacy := newBackend(t, "legacy", tt.legacy)
			next := newBackend(t, "new", tt.newer)
			if tt.newDown {
				next.URL = stoppedURL(t)
			}
			config := shadowOrders + `
    split: {legacy: 100, new: 0}
    shadow: {percent: 100, timeout: 2s}
`
			// Built-in: the customer's request through banyan's proxy.
			builtin := newShadowHarness(t, config, proxy.ShadowOptions{Workers: 1}, legacy, next)
			// Comparator: the same request as Envoy mirrors it.
			cmp := newShadowHarness(t, config, proxy.ShadowOptions{Workers: 1}, legacy, next)
			mirror := httptest.NewServer(cmp.p.Comparator())
			t.Cleanup(mirror.Close)

			const n = 3
			for i := 1; i <= n; i++ {
				path := fmt.Sprintf("/api/orders/%d", i)
				builtin.send(t, http.MethodGet, path, nil)
				req, _ := http.NewRequest(http.MethodGet, mirror.URL+path, nil)
				req.Host = "shop.example" + proxy.EnvoyShadowSuffix
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					t.Fatalf("comparator answered %d, want %d at once", resp.StatusCode, http.StatusAccepted)
				}
			}
			a, b := builtin.rec.wait(t, n), cmp.rec.wait(t, n)
			sortByURL := func(os []diff.Outcome) {
				slices.SortFunc(os, func(x, y diff.Outcome) int { return strings.Compare(x.URL, y.URL) })
			}
			sortByURL(a)
			sortByURL(b)
			for i := range n {
				if a[i].Verdict != tt.want {
					t.Errorf("built-in verdict for %s = %s, want %s", a[i].URL, a[i].Verdict, tt.want)
				}
				if got, want := comparable(b[i]), comparable(a[i]); got != want {
					t.Errorf("comparator and built-in shadow disagree:\n comparator %s\n built-in   %s", got, want)
				}
			}
		})
	}
}

// TestComparator_NeverReplaysWritesToLegacy: a write Envoy mirrors is not
// sent to legacy (the customer's write already reached it); with
// writes: dry-run it goes to the new side only, marked as a shadow call.
func TestComparator_NeverReplaysWritesToLegacy(t *testing.T) {
	t.Parallel()
	for _, writes := range []string{"skip", "dry-run"} {
		t.Run(writes, func(t *testing.T) {
			t.Parallel()
			var newShadowHeader []string
			legacy := newBackend(t, "legacy", orderJSON(nil))
			next := newBackend(t, "new", func(w http.ResponseWriter, r *http.Request) {
				newShadowHeader = append(newShadowHeader, r.Header.Get(proxy.ShadowHeader))
				orderJSON(nil)(w, r)
			})
			h := newShadowHarness(t, shadowOrders+`
    split: {legacy: 100, new: 0}
    shadow: {percent: 100, writes: `+writes+`}
`, proxy.ShadowOptions{Workers: 1}, legacy, next)
			mirror := httptest.NewServer(h.p.Comparator())
			t.Cleanup(mirror.Close)
			resp, err := http.Post(mirror.URL+"/api/orders/1", "application/json", strings.NewReader(`{"qty": 2}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if err := h.stop(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := legacy.hits.Load(); got != 0 {
				t.Errorf("legacy received %d replayed writes, want 0", got)
			}
			wantNew := []string(nil)
			if writes == "dry-run" {
				wantNew = []string{"1"}
			}
			if !slices.Equal(newShadowHeader, wantNew) {
				t.Errorf("new side received writes with %s = %q, want %q", proxy.ShadowHeader, newShadowHeader, wantNew)
			}
			if got := len(h.rec.outcomes()); got != 0 {
				t.Errorf("%d outcomes recorded for a write, want none (there is no primary answer to compare)", got)
			}
		})
	}
}
