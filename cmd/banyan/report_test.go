package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/diff"
	"github.com/banyanhq/banyan/reports"
)

// reportStore writes a report store holding one matching pair of route
// orders-read, compared at the given time, and returns its path.
func reportStore(t *testing.T, at time.Time) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "banyan.db")
	st, err := reports.Open(path, reports.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ok := st.Record(diff.Outcome{Time: at, Route: "orders-read", Method: "GET", Path: "/api/orders", URL: "/api/orders/1",
		Legacy: diff.Response{Status: 200}, New: diff.Response{Status: 200}, Verdict: diff.Match})
	if !ok {
		t.Fatal("record dropped")
	}
	if err := st.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReport_NothingComparedIsNoVerdict: a report over no compared pair —
// a misspelt --route, or a window in which shadowing compared nothing —
// proves nothing, so it must not exit 0 ("no differences") and let a CI
// gate pass; it exits 2 and says why. A route with matching pairs exits 0.
func TestReport_NothingComparedIsNoVerdict(t *testing.T) {
	path := reportStore(t, time.Now().Add(-3*time.Hour))
	for _, tt := range []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"route with pairs", []string{"--route", "orders-read"}, exitOK, ""},
		{"misspelt route", []string{"--route", "orders-raed"}, exitCannotRun, `"orders-raed"`},
		{"empty window", []string{"--since", "1h"}, exitCannotRun, "nothing compared"},
		{"empty window, json", []string{"--since", "1h", "--format", "json"}, exitCannotRun, "nothing compared"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"report", "--store", path}, tt.args...), &out, &errb)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, out.String(), errb.String())
			}
			if !strings.Contains(errb.String(), tt.wantErr) {
				t.Errorf("stderr %q does not say %q", errb.String(), tt.wantErr)
			}
		})
	}
}
