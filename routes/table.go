package routes

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/textproto"
)

// Decision says how a backend was chosen for a request.
type Decision uint8

const (
	// DecidedRandom: no sticky key, a random bucket was drawn.
	DecidedRandom Decision = iota
	// DecidedSticky: the user's key picked the bucket.
	DecidedSticky
	// DecidedOverride: the override header named the backend.
	DecidedOverride
)

func (d Decision) String() string {
	switch d {
	case DecidedSticky:
		return "sticky"
	case DecidedOverride:
		return "override"
	}
	return "random"
}

// Table is an immutable, compiled route table. It is safe for concurrent
// use; edits and reloads build a new Table and swap it in whole.
type Table struct {
	routes   []*Route
	byName   map[string]*Route
	backends map[string]BackendConfig
	override string // "" when the override header is disabled
	trustXFF bool
	version  int64
	// routingHeaders are the canonical names of the request headers
	// Match and Pick read.
	routingHeaders []string
}

// Route is one compiled route.
type Route struct {
	Name   string
	Match  MatchConfig
	Sticky StickyConfig
	Shadow ShadowConfig
	Diff   DiffConfig
	// Legacy and New are the compared pair when Shadow.Percent > 0.
	Legacy, New string
	split       Split
	fileSplit   Split
	assign      Assignment
	match       matcher
	owner       [Buckets]string
}

// Split returns a copy of the route's live weights.
func (r *Route) Split() Split { return r.split.Clone() }

// FileSplit returns the weights the config file declares.
func (r *Route) FileSplit() Split { return r.fileSplit.Clone() }

// Assignment returns the route's bucket assignment.
func (r *Route) Assignment() Assignment { return r.assign }

// routeState is a route's live state, kept in the store.
type routeState struct {
	Split     Split
	FileSplit Split
	Assign    Assignment
}

// newTable compiles cfg with the live state of each route.
func newTable(cfg *Config, states map[string]routeState, version int64) (*Table, error) {
	t := &Table{
		byName:   make(map[string]*Route, len(cfg.Routes)),
		backends: make(map[string]BackendConfig, len(cfg.Backends)),
		trustXFF: cfg.Forward.Trust,
		version:  version,
	}
	if !cfg.Override.Disabled {
		t.override = cfg.Override.Header
	}
	for k, v := range cfg.Backends {
		t.backends[k] = v
	}
	for _, rc := range cfg.Routes {
		m, err := compileMatch(rc.Match)
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", rc.Name, err)
		}
		st, ok := states[rc.Name]
		if !ok {
			return nil, fmt.Errorf("route %s: no state", rc.Name)
		}
		r := &Route{
			Name: rc.Name, Match: rc.Match, Sticky: rc.Sticky, Shadow: rc.Shadow, Diff: rc.Diff,
			split: st.Split, fileSplit: st.FileSplit, assign: st.Assign, match: m,
			owner: st.Assign.Owner,
		}
		if rc.Shadow.Percent > 0 {
			if r.Legacy, r.New, err = rc.ShadowPair(); err != nil {
				return nil, fmt.Errorf("route %s: %w", rc.Name, err)
			}
		}
		t.routes = append(t.routes, r)
		t.byName[r.Name] = r
	}
	t.routingHeaders = t.readHeaders()
	return t, nil
}

// RoutingHeaders returns the canonical names of the request headers that
// Match, Pick and Route.Shadowed read (the override header, sticky headers,
// Cookie for sticky cookies, matched headers); a request whose Header holds
// only these is routed the same as one with all of its headers.
func (t *Table) RoutingHeaders() []string { return t.routingHeaders }

func (t *Table) readHeaders() []string {
	seen := map[string]bool{}
	var names []string
	add := func(name string) {
		if name = textproto.CanonicalMIMEHeaderKey(name); name != "" && !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	add(t.override)
	for _, r := range t.routes {
		switch {
		case r.Sticky.Header != "":
			add(r.Sticky.Header)
		case r.Sticky.Cookie != "":
			add("Cookie")
		}
		for _, h := range r.match.headers {
			add(h.name)
		}
	}
	return names
}

// Version is the history sequence number of the newest edit the table
// reflects.
func (t *Table) Version() int64 { return t.version }

// Routes returns the routes in match order.
func (t *Table) Routes() []*Route { return append([]*Route(nil), t.routes...) }

// Route returns the named route or nil.
func (t *Table) Route(name string) *Route { return t.byName[name] }

// Backend returns a backend's config.
func (t *Table) Backend(name string) (BackendConfig, bool) {
	b, ok := t.backends[name]
	return b, ok
}

// Backends returns every backend's config by name.
func (t *Table) Backends() map[string]BackendConfig {
	c := make(map[string]BackendConfig, len(t.backends))
	for k, v := range t.backends {
		c[k] = v
	}
	return c
}

// TrustForwarded reports whether incoming X-Forwarded-For is kept.
func (t *Table) TrustForwarded() bool { return t.trustXFF }

// OverrideHeader is the header that forces a backend, "" when disabled.
func (t *Table) OverrideHeader() string { return t.override }

// Match returns the first route that selects r, or nil.
func (t *Table) Match(r *http.Request) *Route {
	path := requestPath(r.URL)
	for _, rt := range t.routes {
		if rt.match.matchesPath(r, path) {
			return rt
		}
	}
	return nil
}

// Pick chooses the backend for r on route rt: the override header if it
// names a backend of the route, else the bucket of the user's sticky key,
// else a random bucket.
func (t *Table) Pick(rt *Route, r *http.Request) (string, Decision) {
	if t.override != "" {
		if name := r.Header.Get(t.override); name != "" {
			if _, ok := rt.split[name]; ok {
				return name, DecidedOverride
			}
		}
	}
	if key := rt.StickyKey(r); key != "" {
		return rt.owner[BucketOf(key)], DecidedSticky
	}
	return rt.owner[rand.IntN(Buckets)], DecidedRandom
}

// BackendFor returns the backend a user key lands on.
func (r *Route) BackendFor(key string) string { return r.owner[BucketOf(key)] }

// StickyKey returns the user's key from the sticky cookie or header, or "".
func (r *Route) StickyKey(req *http.Request) string {
	switch {
	case r.Sticky.Header != "":
		return req.Header.Get(r.Sticky.Header)
	case r.Sticky.Cookie != "":
		if c, err := req.Cookie(r.Sticky.Cookie); err == nil {
			return c.Value
		}
	}
	return ""
}

// Shadowed reports whether req falls in the route's shadow sample. With a
// sticky key the user decides, so a user is always or never mirrored;
// without one each request is drawn.
func (r *Route) Shadowed(req *http.Request) bool {
	p := r.Shadow.Percent
	switch {
	case p <= 0:
		return false
	case p >= 100:
		return true
	}
	if key := r.StickyKey(req); key != "" {
		return shadowBucketOf(key) < p
	}
	return rand.IntN(Buckets) < p
}
