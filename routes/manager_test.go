package routes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

const managerConfig = `
backends:
  legacy: {url: http://127.0.0.1:1}
  new:    {url: http://127.0.0.1:2}
routes:
  - name: orders
    match: {path_prefix: /api/orders}
    split: {legacy: 100, new: 0}
    sticky: {cookie: uid}
`

func mustParse(tb testing.TB, y string) *Config {
	tb.Helper()
	cfg, err := Parse([]byte(y))
	if err != nil {
		tb.Fatalf("Parse: %v", err)
	}
	return cfg
}

// openManager opens a manager on the state file at path (a restart is
// closing and opening again on the same path).
func openManager(tb testing.TB, path string, cfg *Config) *Manager {
	tb.Helper()
	st, err := OpenStore(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	m, err := NewManager(context.Background(), cfg, st)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestManager_SetSplitRollbackHistory(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	m := openManager(t, path, mustParse(t, managerConfig))

	if _, err := m.SetSplit(ctx, "orders", Split{"legacy": 80, "new": 20}, "alice", "step 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.SetSplit(ctx, "orders", Split{"legacy": 50, "new": 50}, "alice", "step 2"); err != nil {
		t.Fatal(err)
	}
	e, err := m.SetSplit(ctx, "orders", Split{"legacy": 50, "new": 50}, "alice", "again")
	if err != nil || e.Seq != 0 {
		t.Errorf("setting the same split = %+v, %v; want no edit", e, err)
	}

	rb, err := m.Rollback(ctx, "orders", "bob", "errors up")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Table().Route("orders").Split(), (Split{"legacy": 80, "new": 20}); !got.Equal(want) {
		t.Errorf("after rollback split = %s, want %s", got, want)
	}
	if got, want := rb.Who, "bob"; got != want {
		t.Errorf("rollback who = %q, want %q", got, want)
	}
	// A second rollback walks further back, a third has nothing left.
	if _, err := m.Rollback(ctx, "orders", "bob", ""); err != nil {
		t.Fatal(err)
	}
	if got, want := m.Table().Route("orders").Split(), (Split{"legacy": 100, "new": 0}); !got.Equal(want) {
		t.Errorf("after second rollback split = %s, want %s", got, want)
	}
	if _, err := m.Rollback(ctx, "orders", "bob", ""); !errors.Is(err, ErrNothingToRollback) {
		t.Errorf("third rollback err = %v, want ErrNothingToRollback", err)
	}

	// Bad edits are refused with the problem named.
	_, err = m.SetSplit(ctx, "orders", Split{"legacy": 50, "ghost": 50}, "alice", "")
	var ve *ValidationError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "ghost") {
		t.Errorf("edit with unknown backend err = %v", err)
	}
	if _, err := m.SetSplit(ctx, "orders", Split{"legacy": 50, "new": 40}, "alice", ""); !errors.As(err, &ve) {
		t.Errorf("edit summing to 90 err = %v", err)
	}
	if _, err := m.SetSplit(ctx, "nope", Split{"legacy": 100}, "alice", ""); !errors.Is(err, ErrUnknownRoute) {
		t.Errorf("edit of unknown route err = %v", err)
	}

	hist, err := m.History(ctx, "orders", 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, h := range hist {
		actions = append(actions, h.Action+":"+h.New.String())
	}
	if got, want := strings.Join(actions, ", "), "rollback:legacy=100 new=0, rollback:legacy=80 new=20, set:legacy=50 new=50, set:legacy=80 new=20, config:legacy=100 new=0"; got != want {
		t.Errorf("history =\n  %s\nwant\n  %s", got, want)
	}
	if got, want := hist[2].Reason, "step 2"; got != want {
		t.Errorf("reason = %q, want %q", got, want)
	}
	if got, want := m.Table().Version(), hist[0].Seq; got != want {
		t.Errorf("table version = %d, want newest history seq %d", got, want)
	}
}

// TestManager_SurvivesRestart: the live split, the sticky assignment and
// the history come back after the process restarts.
func TestManager_SurvivesRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	cfg := mustParse(t, managerConfig)
	m := openManager(t, path, cfg)
	if _, err := m.SetSplit(ctx, "orders", Split{"legacy": 70, "new": 30}, "alice", "ramp"); err != nil {
		t.Fatal(err)
	}
	before := m.Table().Route("orders").Assignment()
	m.store.Close()

	m2 := openManager(t, path, cfg)
	rt := m2.Table().Route("orders")
	if got, want := rt.Split(), (Split{"legacy": 70, "new": 30}); !got.Equal(want) {
		t.Errorf("split after restart = %s, want %s", got, want)
	}
	if rt.Assignment() != before {
		t.Error("sticky assignment changed across restart")
	}
	hist, err := m2.History(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].Who != "alice" || hist[0].Reason != "ramp" {
		t.Errorf("history after restart = %+v", hist)
	}
	// Rollback still knows the previous split.
	if _, err := m2.Rollback(ctx, "orders", "bob", ""); err != nil {
		t.Fatal(err)
	}
	if got, want := m2.Table().Route("orders").Split(), (Split{"legacy": 100, "new": 0}); !got.Equal(want) {
		t.Errorf("rollback after restart = %s, want %s", got, want)
	}
}

func TestManager_ReloadKeepsLiveEditUntilFileChanges(t *testing.T) {
	ctx := context.Background()
	m := openManager(t, filepath.Join(t.TempDir(), "state.db"), mustParse(t, managerConfig))
	if _, err := m.SetSplit(ctx, "orders", Split{"legacy": 60, "new": 40}, "alice", ""); err != nil {
		t.Fatal(err)
	}
	// Same file split (another part of the file changed): the edit stays.
	cfg2 := mustParse(t, managerConfig+"  - {name: other, match: {path: /x}, split: {legacy: 100}}\n")
	if err := m.Reload(ctx, cfg2, "config file"); err != nil {
		t.Fatal(err)
	}
	if got, want := m.Table().Route("orders").Split(), (Split{"legacy": 60, "new": 40}); !got.Equal(want) {
		t.Errorf("after unrelated reload split = %s, want %s", got, want)
	}
	// The file's split of the route changed: the file wins, and it is history.
	cfg3 := mustParse(t, strings.Replace(managerConfig, "{legacy: 100, new: 0}", "{legacy: 90, new: 10}", 1))
	if err := m.Reload(ctx, cfg3, "config file"); err != nil {
		t.Fatal(err)
	}
	if got, want := m.Table().Route("orders").Split(), (Split{"legacy": 90, "new": 10}); !got.Equal(want) {
		t.Errorf("after file change split = %s, want %s", got, want)
	}
	hist, _ := m.History(ctx, "orders", 1)
	if len(hist) != 1 || hist[0].Action != ActionConfig || hist[0].Who != "config file" {
		t.Errorf("newest history = %+v, want a config edit by 'config file'", hist)
	}
	// An invalid config is refused and the table stays.
	bad := mustParse(t, managerConfig)
	bad.Routes[0].Split = map[string]int{"legacy": 10}
	if err := m.Reload(ctx, bad, "config file"); err == nil {
		t.Error("invalid config accepted")
	}
	if got, want := m.Table().Route("orders").Split(), (Split{"legacy": 90, "new": 10}); !got.Equal(want) {
		t.Errorf("after refused reload split = %s, want %s", got, want)
	}
}

func TestAPI_Auth(t *testing.T) {
	m := openManager(t, filepath.Join(t.TempDir(), "state.db"), mustParse(t, managerConfig))
	srv := httptest.NewServer(NewAPI(m, ParseTokens("ops:s3cret, ci:other")))
	t.Cleanup(srv.Close)
	ctx := context.Background()

	for _, tok := range []string{"", "wrong"} {
		c := &Client{Base: srv.URL, Token: tok}
		_, err := c.Routes(ctx)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
			t.Errorf("token %q: err = %v, want 401", tok, err)
		}
		if _, err := c.SetSplit(ctx, "orders", Split{"legacy": 0, "new": 100}, "sneaky"); err == nil {
			t.Errorf("token %q: edit accepted", tok)
		}
	}
	if got := m.Table().Route("orders").Split(); got["new"] != 0 {
		t.Fatalf("unauthorised edit changed the split to %s", got)
	}

	c := &Client{Base: srv.URL, Token: "s3cret", User: "alice"}
	resp, err := c.SetSplit(ctx, "orders", Split{"legacy": 90, "new": 10}, "first step")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resp.Edit.Who, "ops (alice)"; got != want {
		t.Errorf("who = %q, want %q", got, want)
	}
	_, err = c.SetSplit(ctx, "orders", Split{"legacy": 90, "new": 20}, "")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || len(ae.Problems) == 0 {
		t.Errorf("bad split err = %v, want 400 with problems", err)
	}
	if _, err := c.Rollback(ctx, "nope", ""); !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
		t.Errorf("rollback unknown route err = %v, want 404", err)
	}
	h, err := c.History(ctx, "orders")
	if err != nil || len(h.History) != 2 {
		t.Errorf("history = %+v, %v", h, err)
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9901": true, "[::1]:9901": true, "localhost:9901": true,
		"0.0.0.0:9901": false, ":9901": false, "10.0.0.5:9901": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

const threeBackendConfig = `
backends:
  legacy:      {url: http://127.0.0.1:1}
  checkout-v1: {url: http://127.0.0.1:2}
  checkout-v2: {url: http://127.0.0.1:3}
routes:
  - name: checkout
    match: {path_prefix: /api/checkout}
    split: {legacy: 100, checkout-v1: 0, checkout-v2: 0}
    sticky: {cookie: uid}
`

// TestManager_RollbackWithThreeBackendsIsExact: a step that takes users
// from two backends at once (legacy and checkout-v1 both give to
// checkout-v2), rolled back, returns every user to the backend they were
// on before the step, also across a restart. Before the fix the rollback
// handed the freed buckets out in backend-name order, so 20 users who had
// only ever been on legacy landed on checkout-v1, and checkout-v1's users
// on legacy.
func TestManager_RollbackWithThreeBackendsIsExact(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	cfg := mustParse(t, threeBackendConfig)
	m := openManager(t, path, cfg)
	if _, err := m.SetSplit(ctx, "checkout", Split{"legacy": 80, "checkout-v1": 20}, "alice", "v1 at 20"); err != nil {
		t.Fatal(err)
	}
	before := m.Table().Route("checkout").Assignment()
	if _, err := m.SetSplit(ctx, "checkout", Split{"legacy": 60, "checkout-v1": 0, "checkout-v2": 40}, "alice", "v2 instead"); err != nil {
		t.Fatal(err)
	}
	m.store.Close()
	m = openManager(t, path, cfg)
	if _, err := m.Rollback(ctx, "checkout", "bob", "v2 errors"); err != nil {
		t.Fatal(err)
	}
	rt := m.Table().Route("checkout")
	if got, want := rt.Split(), (Split{"legacy": 80, "checkout-v1": 20, "checkout-v2": 0}); !got.Equal(want) {
		t.Fatalf("split after rollback = %s, want %s", got, want)
	}
	moved := 0
	for b := range Buckets {
		if got, was := rt.Assignment().Owner[b], before.Owner[b]; got != was {
			moved++
			if moved <= 3 {
				t.Errorf("bucket %d: on %s after the rollback, was on %s before the rolled-back step", b, got, was)
			}
		}
	}
	if moved > 0 {
		t.Errorf("%d of %d buckets are not back on their backend", moved, Buckets)
	}
	// A second rollback walks back to legacy alone.
	if _, err := m.Rollback(ctx, "checkout", "bob", ""); err != nil {
		t.Fatal(err)
	}
	if a := m.Table().Route("checkout").Assignment(); a.Counts()["legacy"] != Buckets {
		got := a.Counts()["legacy"]
		t.Errorf("after the second rollback legacy owns %d buckets, want %d", got, Buckets)
	}
}

// TestAPI_CrossSiteEditRefused: a web page the engineer visits cannot edit
// routes through their browser. A cross-site form POST needs no preflight,
// and reaches a loopback admin without a token, or one whose token the
// browser holds from the dashboard's basic-auth prompt; before the fix it
// rolled the route back. The CLI (no Origin, no Sec-Fetch-Site) and the
// dashboard's same-origin calls still work.
func TestAPI_CrossSiteEditRefused(t *testing.T) {
	ctx := context.Background()
	for _, tokens := range []Tokens{nil, ParseTokens("ops:s3cret")} {
		m := openManager(t, filepath.Join(t.TempDir(), "state.db"), mustParse(t, managerConfig))
		if _, err := m.SetSplit(ctx, "orders", Split{"legacy": 50, "new": 50}, "alice", "ramp"); err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(NewAPI(m, tokens))
		t.Cleanup(srv.Close)
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/routes/orders/rollback", strings.NewReader(`{"reason":"csrf"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Origin", "https://evil.example")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		req.SetBasicAuth("", "s3cret")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got, want := resp.StatusCode, http.StatusForbidden; got != want {
			t.Errorf("tokens %v: cross-site rollback: status %d, want %d", len(tokens), got, want)
		}
		if got, want := m.Table().Route("orders").Split(), (Split{"legacy": 50, "new": 50}); !got.Equal(want) {
			t.Errorf("tokens %v: a cross-site page changed the split to %s", len(tokens), got)
		}
		c := &Client{Base: srv.URL, Token: "s3cret"}
		if _, err := c.Rollback(ctx, "orders", "from the CLI"); err != nil {
			t.Errorf("tokens %v: CLI rollback: %v", len(tokens), err)
		}
	}
}

// TestAPI_RoutesJSONIsSnakeCase: GET /api/routes (and so `banyan routes
// list --format json`) names every field in snake_case, the match and
// sticky settings as the config file spells them, leaving out those not
// set. They came out with Go's field names ("PathPrefix", "Cookie"),
// beside "file_split".
func TestAPI_RoutesJSONIsSnakeCase(t *testing.T) {
	m := openManager(t, filepath.Join(t.TempDir(), "state.db"), mustParse(t, managerConfig))
	srv := httptest.NewServer(NewAPI(m, nil))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/api/routes")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Routes []map[string]json.RawMessage `json:"routes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Routes) == 0 {
		t.Fatalf("decode: %v, %d routes", err, len(body.Routes))
	}
	for field, want := range map[string]string{"match": `{"path_prefix":"/api/orders"}`, "sticky": `{"cookie":"uid"}`} {
		var got bytes.Buffer
		if err := json.Compact(&got, body.Routes[0][field]); err != nil || got.String() != want {
			t.Errorf("%s = %s (%v), want %s", field, body.Routes[0][field], err, want)
		}
	}
}
