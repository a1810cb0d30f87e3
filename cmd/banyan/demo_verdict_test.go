package main

import (
	"strings"
	"testing"

	"github.com/banyanhq/banyan/routes"
)

// users returns the set of user numbers from..to-1.
func users(from, to int) map[int]bool {
	m := map[int]bool{}
	for u := from; u < to; u++ {
		m[u] = true
	}
	return m
}

// TestDemoOutcome_Verdict: the demo's verdict fails when the demo did not
// show what it claims, not only when a request failed.
func TestDemoOutcome_Verdict(t *testing.T) {
	s100 := routes.Split{"legacy": 100, "orders-svc": 0}
	s80 := routes.Split{"legacy": 80, "orders-svc": 20}
	s50 := routes.Split{"legacy": 50, "orders-svc": 50}
	good := func() demoOutcome {
		return demoOutcome{
			overrideOK: true,
			users:      200,
			steps: []stepResult{
				{requests: 500, onNew: map[int]bool{}, expectNew: map[int]bool{}, split: s100, want: s100},
				{requests: 500, onNew: users(0, 40), expectNew: users(0, 40), split: s80, want: s80},
				{requests: 500, onNew: users(0, 100), expectNew: users(0, 100), split: s50, want: s50},
				{requests: 500, onNew: users(0, 40), expectNew: users(0, 40), split: s80, want: s80},
			},
			found:      []string{"$.total"},
			consistent: true,
		}
	}
	if err := good().verdict(); err != nil {
		t.Fatalf("a demo that showed everything: verdict %v, want OK", err)
	}
	for _, tc := range []struct {
		name, inErr string
		spoil       func(*demoOutcome)
	}{
		{"orders-svc at weight 0 served users at the start", "start", func(oc *demoOutcome) { oc.steps[0].onNew = users(0, 3) }},
		{"the rollback sent everybody back to legacy", "rollback", func(oc *demoOutcome) { oc.steps[3].onNew = map[int]bool{} }},
		{"the rollback left some of the 50% users on orders-svc", "rollback", func(oc *demoOutcome) { oc.steps[3].onNew = users(0, 41) }},
		{"the 50% step moved users back to legacy", "ramp", func(oc *demoOutcome) { oc.steps[2].onNew = users(1, 100) }},
		{"the planted bug was not found", "$.total", func(oc *demoOutcome) { oc.found = nil }},
		{"the proxy ignored the ramp: nobody reached orders-svc", "bucket map", func(oc *demoOutcome) {
			for i := range oc.steps {
				oc.steps[i].onNew = map[int]bool{}
			}
		}},
		{"the weight edit never reached the live table", "live split", func(oc *demoOutcome) {
			oc.steps[1].split = routes.Split{"legacy": 100, "orders-svc": 0}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oc := good()
			tc.spoil(&oc)
			err := oc.verdict()
			if err == nil || !strings.Contains(err.Error(), tc.inErr) {
				t.Errorf("verdict = %v, want a FAIL naming %q", err, tc.inErr)
			}
		})
	}
}
