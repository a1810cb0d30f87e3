package routes

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenStore_OneProcessAtATime: a second banyan on a state file another
// one holds is refused, naming the file. It was let in: both kept their
// own idea of the live splits, and each edit of one took a history number
// the other had used, so the first's edits failed from then on (a primary
// key conflict, answered 500) until it was restarted.
func TestOpenStore_OneProcessAtATime(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	cfg := mustParse(t, managerConfig)
	m := openManager(t, path, cfg)

	st, err := OpenStore(path)
	if err == nil {
		// What the second process went on to do.
		m2, err2 := NewManager(ctx, cfg, st)
		if err2 == nil {
			_, err2 = m2.SetSplit(ctx, "orders", Split{"legacy": 90, "new": 10}, "bob", "")
		}
		_, err3 := m.SetSplit(ctx, "orders", Split{"legacy": 80, "new": 20}, "alice", "")
		st.Close()
		t.Fatalf("a second store opened on a held state file (its edit: %v; then the first's edit: %v)", err2, err3)
	}
	if !errors.Is(err, ErrStateInUse) || !strings.Contains(err.Error(), path) {
		t.Errorf("second open: %v; want ErrStateInUse naming %s", err, path)
	}
	// The holder works on, and once it closes the file is free again.
	if _, err := m.SetSplit(ctx, "orders", Split{"legacy": 80, "new": 20}, "alice", ""); err != nil {
		t.Fatal(err)
	}
	m.store.Close()
	m = openManager(t, path, cfg)
	if got, want := m.Table().Route("orders").Split(), (Split{"legacy": 80, "new": 20}); !got.Equal(want) {
		t.Errorf("after reopening split = %s, want %s", got, want)
	}
}
