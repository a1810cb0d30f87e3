package routes

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
)

var (
	nameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	tokenRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// Validate returns a *ValidationError naming every problem, or nil.
func (c *Config) Validate() error {
	var ps []Problem
	add := func(field, format string, args ...any) {
		ps = append(ps, Problem{Field: field, Why: fmt.Sprintf(format, args...)})
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen", "%q is not host:port (%v)", c.Listen, err)
	}
	switch c.FastPath {
	case "on", "off", "io_uring", "goroutines":
	default:
		add("fast_path", "%q must be on, off, io_uring or goroutines", c.FastPath)
	}
	if _, _, err := net.SplitHostPort(c.Admin.Listen); err != nil {
		add("admin.listen", "%q is not host:port (%v)", c.Admin.Listen, err)
	}
	if !c.Override.Disabled && !tokenRE.MatchString(c.Override.Header) {
		add("override.header", "%q is not a valid header name", c.Override.Header)
	}
	cdcOnly := len(c.CDC.Tables) > 0 && len(c.Routes) == 0 && len(c.Backends) == 0
	if len(c.Backends) == 0 && !cdcOnly {
		add("backends", "at least one backend is required")
	}
	for _, name := range sortedKeys(c.Backends) {
		b := c.Backends[name]
		f := "backends." + name
		if !nameRE.MatchString(name) {
			add(f, "name must be letters, digits, '.', '_' or '-'")
		}
		u, err := url.Parse(b.URL)
		switch {
		case b.URL == "":
			add(f+".url", "is required")
		case err != nil:
			add(f+".url", "%q does not parse: %v", b.URL, err)
		case u.Scheme != "http" && u.Scheme != "https":
			add(f+".url", "%q must start with http:// or https://", b.URL)
		case u.Host == "":
			add(f+".url", "%q has no host", b.URL)
		case u.RawQuery != "" || u.Fragment != "":
			add(f+".url", "%q must not have a query or fragment", b.URL)
		}
		if b.Timeout < 0 {
			add(f+".timeout", "must not be negative")
		}
		if strings.ContainsAny(b.Host, " /\t") {
			add(f+".host", "%q must be preserve, backend or a host name", b.Host)
		}
	}
	if len(c.Routes) == 0 && !cdcOnly {
		add("routes", "at least one route is required")
	}
	for _, p := range c.CDC.validate() {
		add("cdc"+p.Field, "%s", p.Why)
	}
	for _, a := range []struct{ field, v string }{{"xds.listen", c.XDS.Listen}, {"xds.listener_address", c.XDS.ListenerAddress}, {"xds.comparator", c.XDS.Comparator}, {"comparator.listen", c.Comparator.Listen}} {
		if a.v == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			add(a.field, "%q is not host:port (%v)", a.v, err)
		}
	}
	if c.XDS.Listen != "" && c.XDS.Comparator == "" {
		for _, r := range c.Routes {
			if r.Shadow.Percent > 0 {
				add("xds.comparator", "route %s is shadowed, so Envoy needs a comparator to mirror to: set comparator.listen (or xds.comparator)", r.Name)
				break
			}
		}
	}
	if c.XDS.NodeGroup != "cluster" && c.XDS.NodeGroup != "id" {
		add("xds.node_group", "%q must be cluster or id", c.XDS.NodeGroup)
	}
	seen := map[string]int{}
	// Each route's field name, and whether its match is valid, for the
	// routes after it that it may shadow.
	fields := make([]string, len(c.Routes))
	matchOK := make([]bool, len(c.Routes))
	for i, r := range c.Routes {
		f := fmt.Sprintf("routes[%d]", i)
		if r.Name != "" {
			f = fmt.Sprintf("routes[%s]", r.Name)
		}
		fields[i] = f
		switch {
		case r.Name == "":
			add(f+".name", "is required")
		case !nameRE.MatchString(r.Name):
			add(f+".name", "%q must be letters, digits, '.', '_' or '-'", r.Name)
		}
		if j, dup := seen[r.Name]; dup && r.Name != "" {
			add(f+".name", "duplicate route name (also routes[%d])", j)
		}
		seen[r.Name] = i
		mps := validateMatch(r.Match)
		for _, p := range mps {
			add(f+".match"+p.Field, "%s", p.Why)
		}
		matchOK[i] = len(mps) == 0
		if r.Match.IsEmpty() && i != len(c.Routes)-1 {
			add(f+".match", "an empty match catches every request, so it must be the last route (routes after it can never match)")
		}
		for j, e := range c.Routes[:i] {
			if !matchOK[i] || !matchOK[j] || e.Match.IsEmpty() || !e.Match.takesAll(r.Match) {
				continue // an empty match is reported above
			}
			add(f+".match", "never matches: %s comes first and takes every request this match selects (first match wins); move this route above it, or narrow %s", fields[j], fields[j])
			break
		}
		for _, p := range validateSplit(r.Split, c.Backends) {
			add(f+".split"+p.Field, "%s", p.Why)
		}
		if r.Sticky.Cookie != "" && r.Sticky.Header != "" {
			add(f+".sticky", "set cookie or header, not both")
		}
		if r.Sticky.Header != "" && !tokenRE.MatchString(r.Sticky.Header) {
			add(f+".sticky.header", "%q is not a valid header name", r.Sticky.Header)
		}
		if r.Sticky.Cookie != "" && !tokenRE.MatchString(r.Sticky.Cookie) {
			add(f+".sticky.cookie", "%q is not a valid cookie name", r.Sticky.Cookie)
		}
		for _, p := range validateShadow(r) {
			add(f+".shadow"+p.Field, "%s", p.Why)
		}
	}
	if c.Shadow.Workers < 1 || c.Shadow.Queue < 1 {
		add("shadow", "workers and queue must be at least 1")
	}
	if c.Reports.MaxOutcomes < 0 || c.Reports.Examples < 0 || c.Reports.MaxAge < 0 {
		add("reports", "max_age, max_outcomes and examples must not be negative")
	}
	if len(ps) == 0 {
		return nil
	}
	return &ValidationError{Problems: ps}
}

func (c CDCConfig) validate() []Problem {
	var ps []Problem
	if len(c.Tables) == 0 {
		return nil // no CDC configured
	}
	if c.Source.DSN == "" {
		ps = append(ps, Problem{".source.dsn", "is required"})
	}
	if c.Target.DSN == "" {
		ps = append(ps, Problem{".target.dsn", "is required"})
	}
	if c.Source.Flavor != "mysql" && c.Source.Flavor != "mariadb" {
		ps = append(ps, Problem{".source.flavor", fmt.Sprintf("%q must be mysql or mariadb", c.Source.Flavor)})
	}
	if c.Source.Position != "gtid" && c.Source.Position != "file" {
		ps = append(ps, Problem{".source.position", fmt.Sprintf("%q must be gtid or file", c.Source.Position)})
	}
	if c.BatchRows < 1 || c.ChunkRows < 1 {
		ps = append(ps, Problem{"", "batch_rows and chunk_rows must be at least 1"})
	}
	if c.SpillRows < 1 {
		ps = append(ps, Problem{".spill_rows", fmt.Sprintf("%d must be at least 1 (row changes of one source transaction held in memory)", c.SpillRows)})
	}
	seen := map[string]bool{}
	for i, t := range c.Tables {
		f := fmt.Sprintf(".tables[%d]", i)
		for _, side := range []struct{ name, v string }{{"source", t.Source}, {"target", t.Target}} {
			db, tbl, ok := strings.Cut(side.v, ".")
			if !ok || db == "" || tbl == "" || strings.Contains(tbl, ".") {
				ps = append(ps, Problem{f + "." + side.name, fmt.Sprintf("%q must be database.table", side.v)})
			}
		}
		if seen[t.Source] {
			ps = append(ps, Problem{f + ".source", fmt.Sprintf("table %s is mapped twice", t.Source)})
		}
		seen[t.Source] = true
		for _, p := range t.Contradictions() {
			ps = append(ps, Problem{f + p.Field, p.Why})
		}
	}
	return ps
}

// Contradictions lists what a table mapping says against itself, whatever
// the source's columns are: a column both skipped and renamed or
// converted, and two renames onto one target column (column names are
// case-insensitive in MySQL, so "who" and "WHO" are one). Fields are
// relative to the mapping (".skip", ".columns").
func (t TableMapping) Contradictions() []Problem {
	var ps []Problem
	for _, col := range t.Skip {
		if to, ok := t.Columns[col]; ok {
			ps = append(ps, Problem{".skip", fmt.Sprintf("column %s is both skipped and renamed to %s; remove it from skip or from columns", col, to)})
		}
		if conv, ok := t.Convert[col]; ok {
			ps = append(ps, Problem{".skip", fmt.Sprintf("column %s is both skipped and converted with %s; remove it from skip or from convert", col, conv)})
		}
	}
	into := map[string]string{}
	for _, from := range slices.Sorted(maps.Keys(t.Columns)) {
		k := strings.ToLower(t.Columns[from])
		if other, ok := into[k]; ok {
			ps = append(ps, Problem{".columns", fmt.Sprintf("source columns %s and %s are both renamed to %s; a target column takes only one", other, from, t.Columns[from])})
			continue
		}
		into[k] = from
	}
	return ps
}

func validateShadow(r RouteConfig) []Problem {
	sh := r.Shadow
	var ps []Problem
	if sh.Percent < 0 || sh.Percent > 100 {
		ps = append(ps, Problem{".percent", fmt.Sprintf("%d is outside 0..100", sh.Percent)})
	}
	if sh.Writes != WritesSkip && sh.Writes != WritesDryRun {
		ps = append(ps, Problem{".writes", fmt.Sprintf("%q must be %s or %s", sh.Writes, WritesSkip, WritesDryRun)})
	}
	if sh.Timeout < 0 {
		ps = append(ps, Problem{".timeout", "must not be negative"})
	}
	if sh.NoisePercent != nil && (*sh.NoisePercent < 0 || *sh.NoisePercent > 100) {
		ps = append(ps, Problem{".noise_percent", fmt.Sprintf("%d is outside 0..100", *sh.NoisePercent)})
	}
	if sh.Percent > 0 && len(r.Split) > 0 {
		if _, _, err := r.ShadowPair(); err != nil {
			ps = append(ps, Problem{"", err.Error()})
		}
	}
	return ps
}

// ShadowPair names the legacy and new backends a route's shadowing
// compares: shadow.legacy (default "legacy") and shadow.new, or the other
// backend when the split has exactly two.
func (r RouteConfig) ShadowPair() (legacy, newer string, err error) {
	legacy, newer = r.Shadow.Legacy, r.Shadow.New
	if legacy == "" {
		legacy = "legacy"
	}
	if _, ok := r.Split[legacy]; !ok {
		return "", "", fmt.Errorf("legacy backend %q is not in the split; set shadow.legacy", legacy)
	}
	if newer == "" {
		if len(r.Split) != 2 {
			return "", "", fmt.Errorf("the split has %d backends; set shadow.new to the one compared with %s", len(r.Split), legacy)
		}
		for name := range r.Split {
			if name != legacy {
				newer = name
			}
		}
	}
	if _, ok := r.Split[newer]; !ok || newer == legacy {
		return "", "", fmt.Errorf("new backend %q must be another backend of the split", newer)
	}
	return legacy, newer, nil
}

func validateMatch(m MatchConfig) []Problem {
	var ps []Problem
	n := 0
	for _, s := range []string{m.Path, m.PathPrefix, m.PathTemplate} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		ps = append(ps, Problem{"", "set only one of path, path_prefix and path_template"})
	}
	if m.Path != "" && !strings.HasPrefix(m.Path, "/") {
		ps = append(ps, Problem{".path", fmt.Sprintf("%q must start with /", m.Path)})
	}
	if m.PathPrefix != "" && !strings.HasPrefix(m.PathPrefix, "/") {
		ps = append(ps, Problem{".path_prefix", fmt.Sprintf("%q must start with /", m.PathPrefix)})
	}
	for _, p := range []struct{ field, v string }{{".path", m.Path}, {".path_prefix", m.PathPrefix}, {".path_template", m.PathTemplate}} {
		switch {
		case strings.ContainsAny(p.v, "?#"):
			ps = append(ps, Problem{p.field, fmt.Sprintf("%q never matches: a request path holds no query (?) or fragment (#); match the path alone", p.v)})
		case hasDotSegment(p.v):
			ps = append(ps, Problem{p.field, fmt.Sprintf("%q never matches: requests are matched with their . and .. segments resolved; write the path they resolve to", p.v)})
		}
	}
	if m.PathTemplate != "" {
		if _, err := compileTemplate(m.PathTemplate); err != nil {
			ps = append(ps, Problem{".path_template", err.Error()})
		}
	}
	for i, meth := range m.Methods {
		if !tokenRE.MatchString(meth) || strings.ToUpper(meth) != meth {
			ps = append(ps, Problem{fmt.Sprintf(".methods[%d]", i), fmt.Sprintf("%q is not an upper-case HTTP method", meth)})
		}
	}
	for _, h := range sortedKeys(m.Headers) {
		if !tokenRE.MatchString(h) {
			ps = append(ps, Problem{".headers", fmt.Sprintf("%q is not a valid header name", h)})
		}
	}
	return ps
}

func hasDotSegment(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// takesAll reports whether every request m selects is also selected by
// e, so that a route with m placed after one with e never matches. It
// answers for the cases a config can be seen to hold without requests:
// paths under a prefix, equal paths and templates of the same shape.
func (e MatchConfig) takesAll(m MatchConfig) bool {
	for name, v := range e.Headers {
		mv, ok := headerOf(m.Headers, name)
		if !ok || (v != "*" && v != mv) {
			return false
		}
	}
	if len(e.Methods) > 0 {
		if len(m.Methods) == 0 {
			return false
		}
		for _, meth := range m.RequestMethods() {
			if !slices.Contains(e.RequestMethods(), meth) {
				return false
			}
		}
	}
	switch {
	case e.Path == "" && e.PathTemplate == "" && (e.PathPrefix == "" || e.PathPrefix == "/"):
		return true
	case e.PathPrefix != "":
		p := strings.TrimSuffix(e.PathPrefix, "/")
		switch {
		case m.Path != "":
			return underPrefix(m.Path, p)
		case m.PathPrefix != "" && m.PathPrefix != "/":
			return underPrefix(strings.TrimSuffix(m.PathPrefix, "/"), p)
		case m.PathTemplate != "":
			segs, err := compileTemplate(m.PathTemplate)
			if err != nil {
				return false
			}
			var lit []string
			for _, s := range segs {
				if s.isVar {
					break
				}
				lit = append(lit, s.literal)
			}
			return len(lit) > 0 && underPrefix("/"+strings.Join(lit, "/"), p)
		}
	case e.Path != "":
		return m.Path == e.Path
	case e.PathTemplate != "":
		segs, err := compileTemplate(e.PathTemplate)
		if err != nil {
			return false
		}
		switch {
		case m.Path != "":
			return matchTemplate(segs, m.Path)
		case m.PathTemplate != "":
			other, err := compileTemplate(m.PathTemplate)
			return err == nil && slices.Equal(segs, other)
		}
	}
	return false
}

// underPrefix reports whether path is prefix or under it, whole segments.
func underPrefix(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// headerOf looks a header up in a match's headers, whatever the case.
func headerOf(h map[string]string, name string) (string, bool) {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// validateSplit checks a split against the known backends: every name
// known, weights 0..100, sum exactly 100.
func validateSplit(split map[string]int, backends map[string]BackendConfig) []Problem {
	var ps []Problem
	if len(split) == 0 {
		return []Problem{{"", "is required: backend weights that sum to 100"}}
	}
	sum := 0
	for _, name := range sortedKeys(split) {
		w := split[name]
		if _, ok := backends[name]; !ok {
			ps = append(ps, Problem{"." + name, fmt.Sprintf("unknown backend %q (known: %s)", name, strings.Join(sortedKeys(backends), ", "))})
		}
		if w < 0 || w > 100 {
			ps = append(ps, Problem{"." + name, fmt.Sprintf("weight %d is outside 0..100", w)})
		}
		sum += w
	}
	if sum != 100 {
		ps = append(ps, Problem{"", fmt.Sprintf("weights sum to %d, they must sum to 100", sum)})
	}
	return ps
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
