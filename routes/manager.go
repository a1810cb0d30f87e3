package routes

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by Manager edits.
var (
	ErrUnknownRoute      = errors.New("unknown route")
	ErrNothingToRollback = errors.New("nothing to roll back")
	// ErrNotLatestEdit refuses a rollback of a named edit that is no
	// longer the one a rollback would undo.
	ErrNotLatestEdit = errors.New("not the latest edit left to roll back")
)

// Manager owns the live route table: it applies config reloads, weight
// edits and rollbacks, persists them with their history, and publishes each
// new Table atomically. It is safe for concurrent use; readers call Table
// and never block on an edit.
type Manager struct {
	store *Store
	now   func() time.Time

	table atomic.Pointer[Table]

	mu     sync.Mutex // serialises writers
	cfg    *Config
	states map[string]routeState
	seq    int64
	subs   []func(*Table)
}

// NewManager loads the live state from store and applies cfg on top of it.
func NewManager(ctx context.Context, cfg *Config, store *Store) (*Manager, error) {
	states, seq, err := store.load(ctx)
	if err != nil {
		return nil, err
	}
	m := &Manager{store: store, now: time.Now, states: states, seq: seq}
	if err := m.Reload(ctx, cfg, "config"); err != nil {
		return nil, err
	}
	return m, nil
}

// stamp is an edit's time as the history stores and shows it: UTC, so
// the answer to an edit shows the same entry as the history later.
func (m *Manager) stamp() time.Time { return m.now().UTC() }

// Table returns the current table. It never blocks.
func (m *Manager) Table() *Table { return m.table.Load() }

// Config returns the config the current table was built from.
func (m *Manager) Config() *Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg
}

// Subscribe registers fn to be called with every new table, in order, after
// it is published. fn runs while edits are held off, so it must be quick.
func (m *Manager) Subscribe(fn func(*Table)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.subs = append(m.subs, fn)
	if t := m.table.Load(); t != nil {
		fn(t)
	}
}

// Reload applies a validated config. Live edits of a route are kept while
// the file's weights for that route are unchanged (a backend the file adds
// or drops at weight 0 joins or leaves the live split at 0); when the
// file's weights change, the file wins and the change is recorded in the
// history as made by who. A route renamed in the file (a new name with
// the match of a route the file no longer has) keeps that route's live
// split and users. On error the current table stays.
func (m *Manager) Reload(ctx context.Context, cfg *Config, who string) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := map[string]routeState{}
	var edits []Edit
	seq := m.seq
	isIn := routeSet(cfg)
	var wasIn map[string]bool // nil before the first config
	if m.cfg != nil {
		wasIn = routeSet(m.cfg)
	}
	renamed := m.renamedRoutes(cfg, isIn, wasIn)
	for _, rc := range cfg.Routes {
		file := Split(rc.Split).Clone()
		st, ok := m.states[rc.Name]
		from, isRename := renamed[rc.Name]
		if isRename {
			st, ok = m.states[from], true
		}
		// A route with state that the last config did not have is back.
		back := false
		if ok && !isRename && !wasIn[rc.Name] {
			var err error
			if back, err = m.leftConfig(ctx, rc.Name); err != nil {
				return err
			}
		}
		var old Split
		reason := ""
		switch {
		case !ok:
			reason = "route added by config"
		case !st.FileSplit.Equal(file):
			old, reason = st.Split, "split changed in config file"
			if isRename {
				reason = fmt.Sprintf("route renamed from %q in config, and its split changed there", from)
			} else if back {
				reason = "route back in config, with its split changed there"
			}
		case isRename || back:
			// The same traffic under a new name, or the route back: the
			// live split and every user's backend carry over, and the
			// history says so.
			what := "route back in config"
			if isRename {
				what = fmt.Sprintf("route renamed from %q in config", from)
			}
			live := zeroBackends(st.Split, file, cfg.Backends)
			if validateSplit(live, cfg.Backends) != nil {
				old, reason = st.Split, what+"; its live split names a backend the config no longer has"
				break
			}
			seq++
			prior := st.Assign
			edits = append(edits, Edit{Seq: seq, At: m.stamp(), Who: who, Route: rc.Name, Action: ActionConfig, Old: st.Split, New: live,
				Reason: what + "; live split and users kept", prior: &prior})
			changed[rc.Name] = routeState{Split: live, FileSplit: file, Assign: st.Assign}
			continue
		default:
			// The file's weights are unchanged, but it may name a backend
			// at weight 0 that the live split lacks (for testers to reach
			// with the override header), or drop one at weight 0. Neither
			// moves a user, so the live weights stay and no edit is made.
			live := zeroBackends(st.Split, file, cfg.Backends)
			if validateSplit(live, cfg.Backends) != nil {
				old, reason = st.Split, "live split names a backend the config no longer has"
				break
			}
			if !sameBackends(live, st.Split) || !sameBackends(file, st.FileSplit) {
				changed[rc.Name] = routeState{Split: live, FileSplit: file, Assign: st.Assign}
			}
			continue
		}
		seq++
		e := Edit{Seq: seq, At: m.stamp(), Who: who, Route: rc.Name, Action: ActionConfig, Old: old, New: file, Reason: reason}
		if ok {
			prior := st.Assign
			e.prior = &prior
		}
		st = routeState{Split: file, FileSplit: file, Assign: Rebalance(st.Assign, file, seq)}
		changed[rc.Name] = st
		edits = append(edits, e)
	}
	// A route that leaves the file keeps its state for when it comes back;
	// its leaving is history (once: at the first config, a route already
	// gone says so in its newest entry).
	renamedTo := map[string]string{}
	for to, from := range renamed {
		renamedTo[from] = to
	}
	for _, name := range sortedKeys(m.states) {
		if isIn[name] || (wasIn != nil && !wasIn[name]) {
			continue
		}
		if wasIn == nil {
			gone, err := m.leftConfig(ctx, name)
			if err != nil {
				return err
			}
			if gone {
				continue
			}
		}
		reason := reasonRemoved
		if to, ok := renamedTo[name]; ok {
			reason = fmt.Sprintf("%s %q in config", reasonRenamedTo, to)
		}
		seq++
		st := m.states[name]
		edits = append(edits, Edit{Seq: seq, At: m.stamp(), Who: who, Route: name, Action: ActionConfig, Old: st.Split, New: st.Split, Reason: reason})
	}
	return m.commit(ctx, cfg, changed, edits, seq)
}

// Reasons of the history entries that say a route left the config.
const (
	reasonRemoved   = "route removed from config; its live split is kept for when it comes back"
	reasonRenamedTo = "route renamed to"
)

// leftConfig reports whether route's newest history entry says it left
// the config. Caller holds m.mu.
func (m *Manager) leftConfig(ctx context.Context, route string) (bool, error) {
	h, err := m.store.History(ctx, route, 1)
	if err != nil {
		return false, err
	}
	return len(h) == 1 && h[0].Action == ActionConfig && (h[0].Reason == reasonRemoved || strings.HasPrefix(h[0].Reason, reasonRenamedTo+" ")), nil
}

func routeSet(cfg *Config) map[string]bool {
	names := make(map[string]bool, len(cfg.Routes))
	for _, rc := range cfg.Routes {
		names[rc.Name] = true
	}
	return names
}

// renamedRoutes pairs each route of cfg that the current config does not
// have with the route of the current config that cfg no longer has and
// that has the same match: the same traffic under a new name (also a name
// the route had before, whose state is older). It returns new name -> old
// name; nothing before the first config (a rename made while banyan was
// down is a new route). isIn and wasIn are the route names of cfg and of
// the current config (nil before the first). Caller holds m.mu.
func (m *Manager) renamedRoutes(cfg *Config, isIn, wasIn map[string]bool) map[string]string {
	if m.cfg == nil {
		return nil
	}
	var gone []RouteConfig
	for _, rc := range m.cfg.Routes {
		if _, has := m.states[rc.Name]; has && !isIn[rc.Name] {
			gone = append(gone, rc)
		}
	}
	out := map[string]string{}
	for _, rc := range cfg.Routes {
		if wasIn[rc.Name] {
			continue
		}
		for i, g := range gone {
			if sameMatch(g.Match, rc.Match) {
				out[rc.Name] = g.Name
				gone = slices.Delete(gone, i, i+1)
				break
			}
		}
	}
	return out
}

func sameMatch(a, b MatchConfig) bool {
	return a.Path == b.Path && a.PathPrefix == b.PathPrefix && a.PathTemplate == b.PathTemplate &&
		slices.Equal(a.Methods, b.Methods) && maps.Equal(a.Headers, b.Headers)
}

// zeroBackends returns live with each backend of file it lacks added at
// weight 0, and each backend at weight 0 that backends no longer has left
// out.
func zeroBackends(live, file Split, backends map[string]BackendConfig) Split {
	out := live.Clone()
	for name, w := range out {
		if _, ok := backends[name]; !ok && w == 0 {
			delete(out, name)
		}
	}
	for name := range file {
		if _, ok := out[name]; !ok {
			out[name] = 0
		}
	}
	return out
}

// sameBackends reports whether both splits name the same backends.
func sameBackends(a, b Split) bool {
	if len(a) != len(b) {
		return false
	}
	for name := range a {
		if _, ok := b[name]; !ok {
			return false
		}
	}
	return true
}

// commit persists changes, then builds and publishes the new table. Caller
// holds m.mu.
func (m *Manager) commit(ctx context.Context, cfg *Config, changed map[string]routeState, edits []Edit, seq int64) error {
	states := make(map[string]routeState, len(m.states)+len(changed))
	for k, v := range m.states {
		states[k] = v
	}
	for k, v := range changed {
		states[k] = v
	}
	t, err := newTable(cfg, states, seq)
	if err != nil {
		return err
	}
	if len(changed) > 0 || len(edits) > 0 {
		if err := m.store.save(ctx, changed, edits); err != nil {
			return err
		}
	}
	m.cfg, m.states, m.seq = cfg, states, seq
	m.table.Store(t)
	for _, fn := range m.subs {
		fn(t)
	}
	return nil
}

// SetSplit changes a route's live weights. Backends of the old split that
// split leaves out stay with weight 0. It returns the history entry, or a
// zero Edit when split equals the current one.
func (m *Manager) SetSplit(ctx context.Context, route string, split Split, who, reason string) (Edit, error) {
	return m.edit(ctx, route, who, reason, ActionSet, func(Split) (Split, int64, *Assignment, error) { return split, 0, nil, nil })
}

// Rollback returns a route to the split it had before its most recent edit
// that has not been rolled back yet and changed a weight (a reload that
// wrote the live split into the file changed none); repeated rollbacks
// walk further back.
// Every user goes back to the backend they were on before that edit (the
// edit's stored assignment), even when the edit moved users off several
// backends at once. A backend the config has dropped since is left out of
// the restored split when it had weight 0 there; when it had users, the
// rollback is refused with ErrNothingToRollback naming it.
func (m *Manager) Rollback(ctx context.Context, route, who, reason string) (Edit, error) {
	return m.RollbackEdit(ctx, route, 0, who, reason)
}

// RollbackEdit is Rollback of the edit with history number seq: when that
// is not the edit a rollback would undo (it was rolled back already, or a
// newer edit came after it), it is refused with ErrNotLatestEdit, so two
// people rolling back the same step undo it once. seq 0 is any edit.
func (m *Manager) RollbackEdit(ctx context.Context, route string, seq int64, who, reason string) (Edit, error) {
	return m.edit(ctx, route, who, reason, ActionRollback, func(Split) (Split, int64, *Assignment, error) {
		hist, err := m.store.History(ctx, route, 0)
		if err != nil {
			return nil, 0, nil, err
		}
		reverted := map[int64]bool{}
		for _, e := range hist {
			if e.Action == ActionRollback {
				reverted[e.Reverts] = true
				continue
			}
			if reverted[e.Seq] {
				continue
			}
			if e.Old != nil && e.Old.Equal(e.New) {
				continue // moved no weight (the file caught up with the live split)
			}
			if e.Old == nil {
				break
			}
			if seq != 0 && e.Seq != seq {
				return nil, 0, nil, fmt.Errorf("route %s: edit #%d is %w (that is #%d: %s %s -> %s by %s at %s); it was rolled back already or a newer edit came after it: check `banyan routes history %s`",
					route, seq, ErrNotLatestEdit, e.Seq, e.Action, e.Old, e.New, e.Who, e.At.UTC().Format(time.DateTime), route)
			}
			// A backend the config has dropped since is left out when it
			// carried no user; one that did cannot come back.
			target := e.Old.Clone()
			for _, name := range sortedKeys(target) {
				if _, ok := m.cfg.Backends[name]; ok {
					continue
				}
				if w := target[name]; w > 0 {
					return nil, 0, nil, fmt.Errorf("route %s: %w: the split before edit #%d gave %d%% to backend %q, which the config no longer has; set the split you want with `banyan routes set`", route, ErrNothingToRollback, e.Seq, w, name)
				}
				delete(target, name)
			}
			return target, e.Seq, e.prior, nil
		}
		return nil, 0, nil, fmt.Errorf("route %s: %w: no earlier split in its history", route, ErrNothingToRollback)
	})
}

// edit applies the split target returns. When target also returns the
// assignment to restore (a rollback's), it is used if it moves users only
// from backends whose weight falls to backends whose weight rises;
// otherwise the buckets are rebalanced.
func (m *Manager) edit(ctx context.Context, route, who, reason, action string, target func(cur Split) (Split, int64, *Assignment, error)) (Edit, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.states[route]
	if _, inTable := m.table.Load().byName[route]; !ok || !inTable {
		return Edit{}, fmt.Errorf("%w %q", ErrUnknownRoute, route)
	}
	split, reverts, restore, err := target(st.Split)
	if err != nil {
		return Edit{}, err
	}
	next := split.Clone()
	for name := range st.Split {
		if _, ok := next[name]; !ok {
			next[name] = 0
		}
	}
	if ps := validateSplit(next, m.cfg.Backends); ps != nil {
		for i := range ps {
			ps[i].Field = "split" + ps[i].Field
		}
		return Edit{}, &ValidationError{Problems: ps}
	}
	if next.Equal(st.Split) && action == ActionSet {
		return Edit{}, nil
	}
	seq := m.seq + 1
	prior := st.Assign
	e := Edit{Seq: seq, At: m.stamp(), Who: who, Route: route, Action: action, Old: st.Split, New: next, Reason: reason, Reverts: reverts, prior: &prior}
	assign := Rebalance(st.Assign, next, seq)
	if restore != nil && restorable(st.Assign, *restore, next) {
		assign = *restore
	}
	st = routeState{Split: next, FileSplit: st.FileSplit, Assign: assign}
	if err := m.commit(ctx, m.cfg, map[string]routeState{route: st}, []Edit{e}, seq); err != nil {
		return Edit{}, err
	}
	return e, nil
}

// restorable reports whether going from assignment cur to to gives every
// backend its weight in split and moves buckets only from backends that
// lose weight to backends that gain it (as Rebalance does).
func restorable(cur, to Assignment, split Split) bool {
	if !to.Counts().Equal(split) {
		return false
	}
	have := cur.Counts()
	for b, owner := range to.Owner {
		if from := cur.Owner[b]; from != owner && (from != "" && have[from] <= split[from] || have[owner] >= split[owner]) {
			return false
		}
	}
	return true
}

// History returns edits newest first (of one route when route != "").
func (m *Manager) History(ctx context.Context, route string, limit int) ([]Edit, error) {
	return m.store.History(ctx, route, limit)
}
