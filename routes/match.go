package routes

import (
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
)

// matcher is the compiled form of a MatchConfig.
type matcher struct {
	exact    string
	prefix   string
	template []segment // nil when no template
	methods  []string
	headers  []headerMatch
}

type segment struct {
	literal string
	isVar   bool
}

type headerMatch struct {
	name  string // canonical
	value string // "*" means present with any value
}

func compileMatch(m MatchConfig) (matcher, error) {
	c := matcher{exact: m.Path, prefix: strings.TrimSuffix(m.PathPrefix, "/"), methods: m.RequestMethods()}
	if m.PathPrefix == "/" {
		c.prefix = "/"
	}
	if m.PathTemplate != "" {
		segs, err := compileTemplate(m.PathTemplate)
		if err != nil {
			return matcher{}, err
		}
		c.template = segs
	}
	for _, name := range sortedKeys(m.Headers) {
		c.headers = append(c.headers, headerMatch{name: textproto.CanonicalMIMEHeaderKey(name), value: m.Headers[name]})
	}
	return c, nil
}

// compileTemplate parses "/api/orders/{id}": literal segments and {name}
// segments that match exactly one non-empty path segment.
func compileTemplate(t string) ([]segment, error) {
	if !strings.HasPrefix(t, "/") {
		return nil, fmt.Errorf("%q must start with /", t)
	}
	parts := strings.Split(t[1:], "/")
	segs := make([]segment, 0, len(parts))
	vars := map[string]bool{}
	for _, p := range parts {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			name := p[1 : len(p)-1]
			if !nameRE.MatchString(name) {
				return nil, fmt.Errorf("%q: variable {%s} must be a plain name", t, name)
			}
			if vars[name] {
				return nil, fmt.Errorf("%q: variable {%s} appears twice", t, name)
			}
			vars[name] = true
			segs = append(segs, segment{isVar: true})
			continue
		}
		if strings.ContainsAny(p, "{}") {
			return nil, fmt.Errorf("%q: a variable must be a whole segment like {id}", t)
		}
		segs = append(segs, segment{literal: p})
	}
	return segs, nil
}

// matches reports whether r is selected. Path prefixes match whole
// segments: /api/orders matches /api/orders and /api/orders/7, not
// /api/ordersX.
func (m *matcher) matches(r *http.Request) bool {
	return m.matchesPath(r, requestPath(r.URL))
}

// matchesPath is matches with r's path already as requestPath gives it,
// so a table works it out once per request, not once per route.
func (m *matcher) matchesPath(r *http.Request, path string) bool {
	switch {
	case m.exact != "":
		if path != m.exact {
			return false
		}
	case m.prefix == "/":
	case m.prefix != "":
		if !strings.HasPrefix(path, m.prefix) || (len(path) > len(m.prefix) && path[len(m.prefix)] != '/') {
			return false
		}
	case m.template != nil:
		if !matchTemplate(m.template, path) {
			return false
		}
	}
	if len(m.methods) > 0 {
		ok := false
		for _, meth := range m.methods {
			if r.Method == meth {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, h := range m.headers {
		vs, ok := r.Header[h.name]
		if !ok {
			return false
		}
		if h.value == "*" {
			continue
		}
		found := false
		for _, v := range vs {
			if v == h.value {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// requestPath returns u's path as routes match it: u.Path, or routingPath
// when it holds a dot segment or an escaped slash.
func requestPath(u *url.URL) string {
	if strings.Contains(u.Path, "/.") || (u.RawPath != "" && hasEscapedSlash(u.RawPath)) {
		return routingPath(u)
	}
	return u.Path
}

// routingPath returns u's path as routes match it: cut into segments at
// the slashes sent, each segment unescaped but an escaped slash (%2F) kept
// escaped, so it stays inside its segment as backends' routers read it
// (/api/orders/a%2Fb is one id under /api/orders/{id}); and "." and ".."
// segments resolved as RFC 3986 (5.2.4) does, so /api/orders/../checkout
// is routed as the /api/checkout a backend serves for it (dots sent as
// %2E count, as RFC 3986 makes them equivalent).
func routingPath(u *url.URL) string {
	raw := strings.Split(u.EscapedPath(), "/")
	out := make([]string, 0, len(raw))
	for i, seg := range raw {
		if i == 0 {
			continue // before the leading slash
		}
		dec, err := url.PathUnescape(seg)
		if err != nil {
			dec = seg
		}
		last := i == len(raw)-1
		switch dec {
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			fallthrough
		case ".":
			if last {
				out = append(out, "") // a/b/.. is a/, not a
			}
		default:
			out = append(out, strings.ReplaceAll(dec, "/", "%2F"))
		}
	}
	return "/" + strings.Join(out, "/")
}

// hasEscapedSlash reports whether a raw path holds %2F (in any case).
func hasEscapedSlash(raw string) bool {
	for i := 0; i+2 < len(raw); i++ {
		if raw[i] == '%' && raw[i+1] == '2' && (raw[i+2] == 'F' || raw[i+2] == 'f') {
			return true
		}
	}
	return false
}

func matchTemplate(segs []segment, path string) bool {
	if len(path) == 0 || path[0] != '/' {
		return false
	}
	rest := path[1:]
	last := len(segs) - 1
	for i, s := range segs {
		part := rest
		j := strings.IndexByte(rest, '/')
		switch {
		case j >= 0 && i == last:
			return false // more segments than the template has
		case j >= 0:
			part, rest = rest[:j], rest[j+1:]
		case i != last:
			return false // fewer segments than the template has
		}
		if s.isVar {
			if part == "" {
				return false
			}
		} else if part != s.literal {
			return false
		}
	}
	return true
}
