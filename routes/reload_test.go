package routes

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

const zeroBackendConfig = `
backends:
  legacy: {url: http://127.0.0.1:1}
  a:      {url: http://127.0.0.1:2}
  b:      {url: http://127.0.0.1:3}
routes:
  - name: orders
    match: {path_prefix: /api/orders}
    split: SPLIT
    sticky: {cookie: uid}
`

func zeroConfig(tb testing.TB, split string) *Config {
	tb.Helper()
	return mustParse(tb, strings.Replace(zeroBackendConfig, "SPLIT", split, 1))
}

// overridePick is the backend the override header reaches on route orders.
func overridePick(m *Manager, backend string) (string, Decision) {
	req := httptest.NewRequest("GET", "/api/orders/1", nil)
	req.Header.Set(DefaultOverrideHeader, backend)
	t := m.Table()
	return t.Pick(t.Route("orders"), req)
}

// TestManager_ReloadZeroWeightBackends: a backend the file adds to a
// route's split at weight 0 (so testers can reach it with the override
// header before any user goes there) is in the live split after the
// reload, and a live edit stays as it was; a backend at weight 0 the file
// drops with its definition does not undo the live edit. Before the fix
// the file split counted as unchanged (a missing backend weighs 0), so the
// override header could not reach the added backend, and the dropped one
// reset the live edit to the file's split.
func TestManager_ReloadZeroWeightBackends(t *testing.T) {
	ctx := context.Background()
	t.Run("added", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		m := openManager(t, path, zeroConfig(t, "{legacy: 100, a: 0}"))
		if _, err := m.SetSplit(ctx, "orders", Split{"legacy": 60, "a": 40}, "alice", "ramp"); err != nil {
			t.Fatal(err)
		}
		before := m.Table().Route("orders").Assignment()
		if err := m.Reload(ctx, zeroConfig(t, "{legacy: 100, a: 0, b: 0}"), "config file"); err != nil {
			t.Fatal(err)
		}
		rt := m.Table().Route("orders")
		if got, want := rt.Split(), (Split{"legacy": 60, "a": 40, "b": 0}); !got.Equal(want) || len(got) != 3 {
			t.Errorf("live split = %s, want %s", got, want)
		}
		if got, want := len(rt.FileSplit()), 3; got != want {
			t.Errorf("file split = %s, want the three backends of the file", rt.FileSplit())
		}
		if rt.Assignment() != before {
			t.Error("adding a backend at weight 0 moved users")
		}
		if got, how := overridePick(m, "b"); got != "b" || how != DecidedOverride {
			t.Errorf("override to b picks %s (%s), want b (override)", got, how)
		}
		// Also after a restart on the same state file.
		m.store.Close()
		m = openManager(t, path, zeroConfig(t, "{legacy: 100, a: 0, b: 0}"))
		if got, how := overridePick(m, "b"); got != "b" || how != DecidedOverride {
			t.Errorf("after restart: override to b picks %s (%s), want b (override)", got, how)
		}
		if got, want := m.Table().Route("orders").Split(), (Split{"legacy": 60, "a": 40, "b": 0}); !got.Equal(want) {
			t.Errorf("after restart: live split = %s, want %s", got, want)
		}
	})
	t.Run("dropped", func(t *testing.T) {
		m := openManager(t, filepath.Join(t.TempDir(), "state.db"), zeroConfig(t, "{legacy: 100, a: 0, b: 0}"))
		if _, err := m.SetSplit(ctx, "orders", Split{"legacy": 60, "a": 40, "b": 0}, "alice", "ramp"); err != nil {
			t.Fatal(err)
		}
		before := m.Table().Route("orders").Assignment()
		cfg := zeroConfig(t, "{legacy: 100, a: 0}")
		delete(cfg.Backends, "b")
		if err := m.Reload(ctx, cfg, "config file"); err != nil {
			t.Fatal(err)
		}
		rt := m.Table().Route("orders")
		if got, want := rt.Split(), (Split{"legacy": 60, "a": 40}); !got.Equal(want) || len(got) != 2 {
			t.Errorf("live split = %s, want %s (the live edit kept, b gone)", got, want)
		}
		if rt.Assignment() != before {
			t.Error("dropping a backend at weight 0 moved users")
		}
	})
}

// TestManager_RollbackAcrossRemovedBackend: a rollback to a split that
// held a backend the config has since dropped at weight 0 leaves that
// backend out (it carried no user) — it was refused as an invalid split
// naming the backend, and every later rollback of the route with it. A
// split that gave users to a dropped backend cannot come back: the refusal
// names the edit and the backend and says what to do instead.
func TestManager_RollbackAcrossRemovedBackend(t *testing.T) {
	ctx := context.Background()
	t.Run("dropped at weight 0", func(t *testing.T) {
		m := openManager(t, filepath.Join(t.TempDir(), "state.db"), zeroConfig(t, "{legacy: 100, a: 0, b: 0}"))
		if _, err := m.SetSplit(ctx, "orders", Split{"legacy": 60, "a": 40}, "alice", "ramp a"); err != nil {
			t.Fatal(err)
		}
		cfg := zeroConfig(t, "{legacy: 100, a: 0}")
		delete(cfg.Backends, "b")
		if err := m.Reload(ctx, cfg, "config file"); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Rollback(ctx, "orders", "bob", "a errors"); err != nil {
			t.Fatalf("rollback: %v", err)
		}
		if got, want := m.Table().Route("orders").Split(), (Split{"legacy": 100, "a": 0}); !got.Equal(want) || len(got) != 2 {
			t.Errorf("split after rollback = %s, want %s", got, want)
		}
	})
	t.Run("users on the dropped backend", func(t *testing.T) {
		m := openManager(t, filepath.Join(t.TempDir(), "state.db"), zeroConfig(t, "{legacy: 100, a: 0, b: 0}"))
		if _, err := m.SetSplit(ctx, "orders", Split{"legacy": 60, "b": 40}, "alice", "ramp b"); err != nil {
			t.Fatal(err)
		}
		if _, err := m.SetSplit(ctx, "orders", Split{"legacy": 60, "a": 40, "b": 0}, "alice", "a instead"); err != nil {
			t.Fatal(err)
		}
		cfg := zeroConfig(t, "{legacy: 100, a: 0}")
		delete(cfg.Backends, "b")
		if err := m.Reload(ctx, cfg, "config file"); err != nil {
			t.Fatal(err)
		}
		_, err := m.Rollback(ctx, "orders", "bob", "")
		if !errors.Is(err, ErrNothingToRollback) || !strings.Contains(err.Error(), `"b"`) || !strings.Contains(err.Error(), "routes set") {
			t.Errorf("rollback to a split with users on a dropped backend: err = %v; want ErrNothingToRollback naming b and saying to use routes set", err)
		}
		if got, want := m.Table().Route("orders").Split(), (Split{"legacy": 60, "a": 40}); !got.Equal(want) {
			t.Errorf("split after the refused rollback = %s, want %s", got, want)
		}
	})
}

// TestManager_RollbackSkipsFileCatchingUp: once the engineer writes the
// live split into the config file, the reload is history but moves no one;
// a rollback then undoes the ramp step before it. It undid the reload
// instead, "changing" 80/20 to 80/20, so the engineer who rolled back
// because of errors still had 20 % on the new backend.
func TestManager_RollbackSkipsFileCatchingUp(t *testing.T) {
	ctx := context.Background()
	m := openManager(t, filepath.Join(t.TempDir(), "state.db"), mustParse(t, managerConfig))
	if _, err := m.SetSplit(ctx, "orders", Split{"legacy": 80, "new": 20}, "alice", "ramp"); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(ctx, mustParse(t, strings.Replace(managerConfig, "{legacy: 100, new: 0}", "{legacy: 80, new: 20}", 1)), "config file"); err != nil {
		t.Fatal(err)
	}
	rb, err := m.Rollback(ctx, "orders", "bob", "errors up")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Table().Route("orders").Split(), (Split{"legacy": 100, "new": 0}); !got.Equal(want) {
		t.Errorf("split after rollback = %s, want %s (rollback edit %+v)", got, want, rb)
	}
}

// TestManager_ReloadRenamedRouteKeepsLiveEdit: a route renamed in the
// file (same match, new name) keeps its live split and every user's
// backend, and the history says so under the new name. It was taken for
// a new route: the file's split replaced the live ramp and the buckets
// were dealt afresh, so users the ramp had moved to the new backend went
// back to legacy, recorded only as "route added by config".
func TestManager_ReloadRenamedRouteKeepsLiveEdit(t *testing.T) {
	ctx := context.Background()
	m := openManager(t, filepath.Join(t.TempDir(), "state.db"), mustParse(t, managerConfig))
	if _, err := m.SetSplit(ctx, "orders", Split{"legacy": 80, "new": 20}, "alice", "step 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.SetSplit(ctx, "orders", Split{"legacy": 50, "new": 50}, "alice", "step 2"); err != nil {
		t.Fatal(err)
	}
	before := m.Table().Route("orders").Assignment()
	renamed := strings.Replace(managerConfig, "name: orders", "name: orders-read", 1)
	if err := m.Reload(ctx, mustParse(t, renamed), "config file"); err != nil {
		t.Fatal(err)
	}
	rt := m.Table().Route("orders-read")
	if got, want := rt.Split(), (Split{"legacy": 50, "new": 50}); !got.Equal(want) {
		t.Errorf("split of the renamed route = %s, want the live %s", got, want)
	}
	moved := 0
	for b := range Buckets {
		if rt.Assignment().Owner[b] != before.Owner[b] {
			moved++
		}
	}
	if moved > 0 {
		t.Errorf("the rename moved %d of %d buckets to another backend", moved, Buckets)
	}
	hist, err := m.History(ctx, "orders-read", 1)
	if err != nil || len(hist) != 1 || !strings.Contains(hist[0].Reason, `renamed from "orders"`) {
		t.Errorf("history of orders-read = %+v, %v; want an entry saying it was renamed from orders", hist, err)
	}
	// Renamed back after an edit under the new name: the edit comes along,
	// not the state the old name had before the first rename.
	if _, err := m.SetSplit(ctx, "orders-read", Split{"legacy": 30, "new": 70}, "alice", "step 3"); err != nil {
		t.Fatal(err)
	}
	at70 := m.Table().Route("orders-read").Assignment()
	if err := m.Reload(ctx, mustParse(t, managerConfig), "config file"); err != nil {
		t.Fatal(err)
	}
	if rt := m.Table().Route("orders"); !rt.Split().Equal(Split{"legacy": 30, "new": 70}) || rt.Assignment() != at70 {
		t.Errorf("renamed back: split %s (users kept: %v), want legacy=30 new=70 with the users of orders-read", rt.Split(), rt.Assignment() == at70)
	}
	// A route whose match changed too is a new route.
	other := strings.Replace(strings.Replace(managerConfig, "name: orders", "name: carts", 1), "/api/orders", "/api/carts", 1)
	if err := m.Reload(ctx, mustParse(t, other), "config file"); err != nil {
		t.Fatal(err)
	}
	if got, want := m.Table().Route("carts").Split(), (Split{"legacy": 100, "new": 0}); !got.Equal(want) {
		t.Errorf("split of a new route with another match = %s, want the file's %s", got, want)
	}
}

// TestManager_RouteLeavingAndComingBackIsHistory: a route the file drops
// keeps its live split (for when it comes back), and both its leaving and
// its coming back are in its history — also when it left while banyan was
// stopped. Before, neither was: a route re-added weeks later came back at
// its old 50/50 ramp, sending half its users to the new backend at once,
// while its newest history entry was alice's edit of weeks ago.
func TestManager_RouteLeavingAndComingBackIsHistory(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	withOther := managerConfig + "  - {name: other, match: {path: /x}, split: {legacy: 100}}\n"
	withoutOrders := mustParse(t, withOther)
	withoutOrders.Routes = withoutOrders.Routes[1:]
	m := openManager(t, path, mustParse(t, withOther))
	if _, err := m.SetSplit(ctx, "orders", Split{"legacy": 50, "new": 50}, "alice", "ramp"); err != nil {
		t.Fatal(err)
	}
	before := m.Table().Route("orders").Assignment()
	newest := func(m *Manager) Edit {
		t.Helper()
		h, err := m.History(ctx, "orders", 1)
		if err != nil || len(h) != 1 {
			t.Fatalf("history: %v, %d entries", err, len(h))
		}
		return h[0]
	}
	if err := m.Reload(ctx, withoutOrders, "config file"); err != nil {
		t.Fatal(err)
	}
	if e := newest(m); !strings.Contains(e.Reason, "removed from config") || e.Who != "config file" {
		t.Errorf("newest entry after the route left the file = %+v, want one saying it was removed", e)
	}
	// A restart without it records nothing more.
	m.store.Close()
	m = openManager(t, path, withoutOrders)
	h, _ := m.History(ctx, "orders", 0)
	removed := 0
	for _, e := range h {
		if strings.Contains(e.Reason, "removed from config") {
			removed++
		}
	}
	if removed != 1 {
		t.Errorf("%d entries say the route was removed, want 1", removed)
	}
	// Back in the file (after a restart, too): the live split and users
	// are kept, and it is history.
	m.store.Close()
	m = openManager(t, path, mustParse(t, withOther))
	rt := m.Table().Route("orders")
	if got, want := rt.Split(), (Split{"legacy": 50, "new": 50}); !got.Equal(want) || rt.Assignment() != before {
		t.Errorf("split back in the file = %s (users kept: %v), want %s", got, rt.Assignment() == before, want)
	}
	if e := newest(m); !strings.Contains(e.Reason, "back in config") || !e.New.Equal(Split{"legacy": 50, "new": 50}) {
		t.Errorf("newest entry after the route came back = %+v, want one saying it is back at legacy=50 new=50", e)
	}
	// Rolling back walks past both to the ramp.
	if _, err := m.Rollback(ctx, "orders", "bob", ""); err != nil {
		t.Fatal(err)
	}
	if got, want := m.Table().Route("orders").Split(), (Split{"legacy": 100, "new": 0}); !got.Equal(want) {
		t.Errorf("after rollback split = %s, want %s", got, want)
	}
}
