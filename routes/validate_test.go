package routes

import (
	"errors"
	"strings"
	"testing"
)

// TestValidate_RoutesThatCannotMatch: validate names every route that can
// never be chosen — one below a route that already takes all of its
// requests (first match wins: a /api prefix above /api/orders, a "/"
// prefix above anything, the same match twice), and a path holding a
// query, a fragment or dot segments, which a request path never does.
// Such a config was called valid, and the route's split did nothing.
func TestValidate_RoutesThatCannotMatch(t *testing.T) {
	const head = "backends: {legacy: {url: http://a}, new: {url: http://b}}\nroutes:\n"
	route := func(name, match string) string {
		return "  - {name: " + name + ", match: " + match + ", split: {legacy: 50, new: 50}}\n"
	}
	for _, tc := range []struct {
		name   string
		routes string
		fields []string // every field that must be named; none = valid
	}{
		{"prefix above a narrower prefix", route("api", "{path_prefix: /api}") + route("orders", "{path_prefix: /api/orders}"), []string{"routes[orders].match"}},
		{"prefix above an exact path", route("api", "{path_prefix: /api/}") + route("one", "{path: /api/orders/7}"), []string{"routes[one].match"}},
		{"prefix above a template", route("api", "{path_prefix: /api}") + route("t", `{path_template: "/api/orders/{id}"}`), []string{"routes[t].match"}},
		{"root prefix above all", route("all", "{path_prefix: /}") + route("x", "{path: /x, methods: [GET]}") + route("y", "{headers: {X-Canary: '1'}}"), []string{"routes[x].match", "routes[y].match"}},
		{"same match twice", route("a", "{path: /x, methods: [GET, POST]}") + route("b", "{path: /x, methods: [POST]}"), []string{"routes[b].match"}},
		{"template above the same template", route("a", `{path_template: "/o/{id}"}`) + route("b", `{path_template: "/o/{x}", headers: {X-A: "*"}}`), []string{"routes[b].match"}},
		{"query, fragment and dots in paths", route("q", `{path_prefix: "/api/orders?x=1"}`) + route("f", `{path: "/a#top"}`) + route("d", `{path_template: "/a/../{id}"}`), []string{"routes[q].match.path_prefix", "routes[f].match.path", "routes[d].match.path_template"}},

		{"narrower prefix first", route("orders", "{path_prefix: /api/orders}") + route("api", "{path_prefix: /api}"), nil},
		{"sibling prefix", route("api", "{path_prefix: /api}") + route("apix", "{path_prefix: /apix}"), nil},
		{"methods apart", route("get", "{path_prefix: /api, methods: [GET]}") + route("post", "{path_prefix: /api/orders, methods: [POST]}"), nil},
		{"header above without", route("canary", "{path_prefix: /api, headers: {X-Canary: '1'}}") + route("api", "{path_prefix: /api/orders}"), nil},
		{"template vs prefix below its variable", route("t", `{path_template: "/api/{id}"}`) + route("o", "{path_prefix: /api/orders}"), nil},
		{"default last", route("api", "{path_prefix: /api}") + "  - {name: rest, split: {legacy: 100}}\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(head + tc.routes))
			if len(tc.fields) == 0 {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse err = %v, want the problems %v", err, tc.fields)
			}
			got := map[string]string{}
			for _, p := range ve.Problems {
				got[p.Field] = p.Why
			}
			for _, f := range tc.fields {
				if got[f] == "" {
					t.Errorf("no problem for %s; got:\n%v", f, err)
				}
			}
			if why := got["routes[orders].match"]; why != "" && !strings.Contains(why, "routes[api]") {
				t.Errorf("problem %q does not name the route that takes the requests", why)
			}
		})
	}
}
