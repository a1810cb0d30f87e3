package routes

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAPI_EditJSONSameAsHistory: the entry an edit answers with is the
// entry the history shows later, byte for byte, so a script can match
// them. The edit's time came out in the server's local zone
// (2026-11-28T01:00:00.5+01:00) and the history's in UTC
// (2026-11-28T00:00:00.5Z).
func TestAPI_EditJSONSameAsHistory(t *testing.T) {
	m := openManager(t, filepath.Join(t.TempDir(), "state.db"), mustParse(t, managerConfig))
	cet := time.FixedZone("CET", 3600)
	m.now = func() time.Time { return time.Date(2026, 11, 28, 1, 0, 0, 500_000_000, cet) }
	srv := httptest.NewServer(NewAPI(m, nil))
	t.Cleanup(srv.Close)

	raw := func(method, path, body string) map[string]json.RawMessage {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		var out map[string]json.RawMessage
		if err := json.Unmarshal(data, &out); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: status %d, %v\n%s", method, path, resp.StatusCode, err, data)
		}
		return out
	}
	for _, call := range []struct{ method, path, body string }{
		{http.MethodPut, "/api/routes/orders/split", `{"split":{"legacy":80,"new":20},"reason":"ramp"}`},
		{http.MethodPost, "/api/routes/orders/rollback", `{"reason":"errors"}`},
	} {
		edit := raw(call.method, call.path, call.body)["edit"]
		var hist []json.RawMessage
		if err := json.Unmarshal(raw(http.MethodGet, "/api/history?limit=1", "")["history"], &hist); err != nil || len(hist) != 1 {
			t.Fatalf("history: %v, %d entries", err, len(hist))
		}
		if got, want := compact(t, edit), compact(t, hist[0]); got != want {
			t.Errorf("%s %s answered\n  %s\nthe history shows\n  %s", call.method, call.path, got, want)
		}
	}
}

func compact(tb testing.TB, m json.RawMessage) string {
	tb.Helper()
	var v any
	if err := json.Unmarshal(m, &v); err != nil {
		tb.Fatal(err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// TestAPI_UnchangedEditAnswer: a set to the split the route already has
// answers changed false, no edit, and the live split — it answered an
// empty edit dated 0001-01-01 with no route and null splits, which a
// script logging the answer recorded as an edit of year 1. Every answer
// carries the route's live split after the call.
func TestAPI_UnchangedEditAnswer(t *testing.T) {
	m := openManager(t, filepath.Join(t.TempDir(), "state.db"), mustParse(t, managerConfig))
	srv := httptest.NewServer(NewAPI(m, nil))
	t.Cleanup(srv.Close)
	put := func() map[string]json.RawMessage {
		t.Helper()
		req, err := http.NewRequest(http.MethodPut, srv.URL+"/api/routes/orders/split", strings.NewReader(`{"split":{"legacy":80,"new":20}}`))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	first := put()
	if _, ok := first["edit"]; !ok || string(first["changed"]) != "true" {
		t.Errorf("first set answered %v, want changed true with the edit", first)
	}
	again := put()
	if string(again["changed"]) != "false" {
		t.Errorf("second set changed = %s, want false", again["changed"])
	}
	if e, ok := again["edit"]; ok {
		t.Errorf("an unchanged set answered an edit: %s", e)
	}
	for name, ans := range map[string]map[string]json.RawMessage{"first": first, "second": again} {
		if got, want := compact(t, ans["split"]), `{"legacy":80,"new":20}`; got != want {
			t.Errorf("%s answer: split %s, want the live %s", name, got, want)
		}
	}
}
