package routes

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// TestAPI_ErrorsSayWhatToDo: each refused call answers with the status
// that names its cause and a JSON error that says what to send instead. A
// body over the 1 MiB limit was a 400 "request body too large", a limit
// that is not a number was ignored (the whole history came back), and a
// mistyped field or an empty body told only the decoder's complaint.
func TestAPI_ErrorsSayWhatToDo(t *testing.T) {
	m := openManager(t, filepath.Join(t.TempDir(), "state.db"), mustParse(t, managerConfig))
	srv := httptest.NewServer(NewAPI(m, nil))
	t.Cleanup(srv.Close)
	big := `{"split":{"legacy":100},"reason":"` + strings.Repeat("x", 2<<20) + `"}`
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		says                     string
	}{
		{"body too large", http.MethodPut, "/api/routes/orders/split", big, http.StatusRequestEntityTooLarge, "1 MiB"},
		{"limit not a number", http.MethodGet, "/api/history?limit=ten", "", http.StatusBadRequest, "limit"},
		{"negative limit", http.MethodGet, "/api/history?limit=-1", "", http.StatusBadRequest, "limit"},
		{"mistyped field", http.MethodPut, "/api/routes/orders/split", `{"splits":{"legacy":100}}`, http.StatusBadRequest, `{"split": {"BACKEND": WEIGHT`},
		{"empty body", http.MethodPut, "/api/routes/orders/split", "", http.StatusBadRequest, `{"split": {"BACKEND": WEIGHT`},
		{"two documents", http.MethodPut, "/api/routes/orders/split", `{"split":{"legacy":90,"new":10}} {"split":{"legacy":0,"new":100}}`, http.StatusBadRequest, "one JSON object"},
		{"rollback body", http.MethodPost, "/api/routes/orders/rollback", `{"why":"x"}`, http.StatusBadRequest, `{"reason": "..."`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body bytes.Buffer
			body.ReadFrom(resp.Body)
			var e ErrorResponse
			if err := json.Unmarshal(body.Bytes(), &e); err != nil {
				t.Fatalf("status %d, body is not a JSON error: %v\n%s", resp.StatusCode, err, body.String())
			}
			if resp.StatusCode != tc.status || !strings.Contains(e.Error, tc.says) {
				t.Errorf("status %d, error %q; want %d saying %q", resp.StatusCode, e.Error, tc.status, tc.says)
			}
		})
	}
	if got := m.Table().Route("orders").Split(); got["new"] != 0 {
		t.Errorf("a refused call changed the split to %s", got)
	}
	// A rollback's body is optional, also when sent chunked and empty.
	c := &Client{Base: srv.URL}
	if _, err := c.SetSplit(t.Context(), "orders", Split{"legacy": 90, "new": 10}, "ramp"); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/routes/orders/rollback", struct{ io.Reader }{strings.NewReader("")})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.StatusCode, http.StatusOK; got != want {
		t.Errorf("rollback with an empty chunked body: status %d, want %d", got, want)
	}
}

// TestAPI_EveryRefusalIsJSON: a call the API does not have (404), a
// method a call does not take (405, with Allow) and a cross-site edit
// (403) answer a JSON error like every other refusal, saying what to do;
// they were net/http's plain-text pages, which the CLI printed raw.
func TestAPI_EveryRefusalIsJSON(t *testing.T) {
	m := openManager(t, filepath.Join(t.TempDir(), "state.db"), mustParse(t, managerConfig))
	srv := httptest.NewServer(NewAPI(m, nil))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		method, path string
		header       map[string]string
		status       int
		says, allow  string
	}{
		{http.MethodGet, "/api/route", nil, http.StatusNotFound, "GET /api/routes", ""},
		{http.MethodDelete, "/api/routes/orders/split", nil, http.StatusMethodNotAllowed, "PUT", "PUT"},
		{http.MethodPost, "/api/history", nil, http.StatusMethodNotAllowed, "GET", "GET, HEAD"},
		{http.MethodPost, "/api/routes/orders/rollback", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, http.StatusForbidden, "another site", ""},
	} {
		req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e ErrorResponse
		if err := json.Unmarshal(data, &e); err != nil || resp.StatusCode != tc.status || !strings.Contains(e.Error, tc.says) {
			t.Errorf("%s %s: status %d, body %q; want %d, a JSON error saying %q", tc.method, tc.path, resp.StatusCode, data, tc.status, tc.says)
		}
		if got := resp.Header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}
}
