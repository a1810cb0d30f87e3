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
