package routes

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodConfig = `
listen: 127.0.0.1:8080
admin: {listen: 127.0.0.1:9901}
backends:
  legacy:     {url: http://127.0.0.1:8081}
  orders-svc: {url: http://127.0.0.1:8082, timeout: 2s, host: backend}
routes:
  - name: orders-read
    match: {path_template: "/api/orders/{id}", methods: [GET]}
    split: {legacy: 80, orders-svc: 20}
    sticky: {cookie: uid}
  - name: default
    split: {legacy: 100}
`

func TestParse_Valid(t *testing.T) {
	cfg, err := Parse([]byte(goodConfig))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got, want := len(cfg.Routes), 2; got != want {
		t.Fatalf("routes = %d, want %d", got, want)
	}
	if got, want := cfg.Backends["orders-svc"].Timeout.String(), "2s"; got != want {
		t.Errorf("orders-svc timeout = %s, want %s", got, want)
	}
	if got, want := cfg.Backends["legacy"].Timeout, DefaultBackendTimeout; got != want {
		t.Errorf("legacy timeout default = %s, want %s", got, want)
	}
	if got, want := cfg.Backends["legacy"].Host, "preserve"; got != want {
		t.Errorf("legacy host default = %q, want %q", got, want)
	}
	if got, want := cfg.Override.Header, DefaultOverrideHeader; got != want {
		t.Errorf("override header = %q, want %q", got, want)
	}
	// Backend names keep their case (viper would lower-case them).
	cfg, err = Parse([]byte(strings.ReplaceAll(goodConfig, "orders-svc", "OrdersSvc")))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if _, ok := cfg.Backends["OrdersSvc"]; !ok {
		t.Errorf("backend name case lost: %v", sortedKeys(cfg.Backends))
	}
}

// TestConfig_Validate checks that each mistake is reported with its field,
// and that a config with many mistakes lists all of them at once.
func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name   string
		yaml   string
		fields []string // every field that must be named
	}{
		{"unknown backend", `
backends: {legacy: {url: http://a}}
routes: [{name: r, match: {path: /x}, split: {legacy: 50, ghost: 50}}]`, []string{"routes[r].split.ghost"}},
		{"weights not 100", `
backends: {legacy: {url: http://a}, new: {url: http://b}}
routes: [{name: r, match: {path: /x}, split: {legacy: 50, new: 40}}]`, []string{"routes[r].split"}},
		{"duplicate route", `
backends: {legacy: {url: http://a}}
routes:
  - {name: r, match: {path: /x}, split: {legacy: 100}}
  - {name: r, match: {path: /y}, split: {legacy: 100}}`, []string{"routes[r].name"}},
		{"bad url", `
backends: {legacy: {url: "ftp://a"}, other: {url: "http://"}}
routes: [{name: r, split: {legacy: 100}}]`, []string{"backends.legacy.url", "backends.other.url"}},
		{"bad template", `
backends: {legacy: {url: http://a}}
routes:
  - {name: a, match: {path_template: "/api/{id}x"}, split: {legacy: 100}}
  - {name: b, match: {path_template: "/api/{id}/{id}"}, split: {legacy: 100}}
  - {name: c, match: {path_template: "api/{id}"}, split: {legacy: 100}}`, []string{"routes[a].match.path_template", "routes[b].match.path_template", "routes[c].match.path_template"}},
		{"catch-all not last", `
backends: {legacy: {url: http://a}}
routes:
  - {name: all, split: {legacy: 100}}
  - {name: x, match: {path: /x}, split: {legacy: 100}}`, []string{"routes[all].match"}},
		{"two path kinds and bad method", `
backends: {legacy: {url: http://a}}
routes: [{name: r, match: {path: /x, path_prefix: /y, methods: [get]}, split: {legacy: 100}}]`, []string{"routes[r].match", "routes[r].match.methods[0]"}},
		{"sticky both", `
backends: {legacy: {url: http://a}}
routes: [{name: r, split: {legacy: 100}, sticky: {cookie: uid, header: X-User}}]`, []string{"routes[r].sticky"}},
		{"many at once", `
listen: nonsense
backends: {legacy: {url: http://a}}
routes:
  - {name: "", split: {legacy: 100}}
  - {name: b, match: {path: /b}, split: {legacy: 101}}
  - {name: c, match: {path: /c}}`, []string{"listen", "routes[0].name", "routes[b].split.legacy", "routes[b].split", "routes[c].split", "routes[0].match"}},
		{"no routes no backends", `listen: 127.0.0.1:1`, []string{"backends", "routes"}},
		{"unknown key", `
backends: {legacy: {url: http://a}}
routes: [{name: r, spilt: {legacy: 100}}]`, []string{"yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse err = %v, want *ValidationError", err)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("errors.Is(err, ErrInvalidConfig) = false")
			}
			got := map[string]bool{}
			for _, p := range ve.Problems {
				got[p.Field] = true
				if p.Why == "" {
					t.Errorf("problem for %s has no reason", p.Field)
				}
			}
			for _, f := range tt.fields {
				if !got[f] {
					t.Errorf("no problem reported for field %s; got:\n%v", f, err)
				}
			}
		})
	}
}

func TestLoad_NamesFileAndEnvOverrides(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "banyan.yaml")
	if err := os.WriteFile(path, []byte(goodConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BANYAN_LISTEN", "127.0.0.1:18080")
	t.Setenv("BANYAN_ADMIN_LISTEN", "127.0.0.1:19901")
	t.Setenv("BANYAN_FAST_PATH", "off")
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got, want := cfg.FastPath, "off"; got != want {
		t.Errorf("fast_path = %q, want %q (BANYAN_FAST_PATH)", got, want)
	}
	if got, want := cfg.Listen, "127.0.0.1:18080"; got != want {
		t.Errorf("listen = %q, want %q (BANYAN_LISTEN)", got, want)
	}
	if got, want := cfg.Admin.Listen, "127.0.0.1:19901"; got != want {
		t.Errorf("admin.listen = %q, want %q (BANYAN_ADMIN_LISTEN)", got, want)
	}
	if got, want := cfg.StatePath(), filepath.Join(dir, DefaultState); got != want {
		t.Errorf("state path = %q, want %q (beside the config)", got, want)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("routes: [{name: x}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if err == nil || !strings.HasPrefix(err.Error(), bad+":") {
		t.Errorf("Load(bad) = %v, want an error starting with the file name", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(goodConfig))
	f.Add([]byte("routes: [{name: r, match: {path_template: '/a/{b}/c'}, split: {x: 100}}]"))
	f.Add([]byte("backends: {a: {url: 'http://h'}}\nroutes: [{name: r, split: {a: 100}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			var ve *ValidationError
			if errors.As(err, &ve) && len(ve.Problems) == 0 {
				t.Fatalf("validation error without problems")
			}
			return
		}
		// A config that parses must compile into a table.
		states := map[string]routeState{}
		for _, r := range cfg.Routes {
			s := Split(r.Split)
			states[r.Name] = routeState{Split: s, FileSplit: s, Assign: Rebalance(Assignment{}, s, 1)}
		}
		if _, err := newTable(cfg, states, 1); err != nil {
			t.Fatalf("valid config does not compile: %v", err)
		}
	})
}

func TestParse_ShadowAndDiff(t *testing.T) {
	cfg, err := Parse([]byte(`
backends: {legacy: {url: http://a}, orders-svc: {url: http://b}, third: {url: http://c}}
shadow: {workers: 4, queue: 50, compare_body: 256KiB}
reports: {store: reports.db, redact: ["$..card_number"]}
routes:
  - name: orders-read
    match: {path_prefix: /api/orders}
    split: {legacy: 80, orders-svc: 20}
    shadow: {percent: 100, max_body: 2MiB}
    diff:
      ignore: ["$.meta.request_id"]
      unordered: {"$.items": sku}
      tolerance: {"$.total": 0.005, "$.tax": "1%"}
  - name: list
    match: {path: /api/list}
    split: {legacy: 100, orders-svc: 0}
    shadow: {percent: 10, writes: dry-run, noise_percent: 0}
    diff: {unordered: ["$.rows"]}
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	r := cfg.Routes[0]
	if got, want := r.Shadow.MaxBody, Size(2<<20); got != want {
		t.Errorf("max_body = %d, want %d", got, want)
	}
	if got, want := cfg.Shadow.CompareBody, Size(256<<10); got != want {
		t.Errorf("compare_body = %d, want %d", got, want)
	}
	if got, want := r.Diff.Unordered["$.items"], "sku"; got != want {
		t.Errorf("unordered key = %q, want %q", got, want)
	}
	if got, want := r.Diff.Tolerance["$.total"], "0.005"; got != want {
		t.Errorf("tolerance = %q, want %q", got, want)
	}
	if _, ok := cfg.Routes[1].Diff.Unordered["$.rows"]; !ok {
		t.Errorf("unordered list form lost: %v", cfg.Routes[1].Diff.Unordered)
	}
	if got, want := *cfg.Routes[1].Shadow.NoisePercent, 0; got != want {
		t.Errorf("noise_percent = %d, want explicit %d", got, want)
	}
	if got, want := *r.Shadow.NoisePercent, 10; got != want {
		t.Errorf("noise_percent default = %d, want %d", got, want)
	}
	legacy, newer, err := r.ShadowPair()
	if err != nil || legacy != "legacy" || newer != "orders-svc" {
		t.Errorf("ShadowPair = %q, %q, %v", legacy, newer, err)
	}
	if got, want := r.Shadow.Writes, WritesSkip; got != want {
		t.Errorf("writes default = %q, want %q", got, want)
	}

	_, err = Parse([]byte(`
backends: {legacy: {url: http://a}, b: {url: http://b}, c: {url: http://c}}
routes:
  - {name: three, match: {path: /x}, split: {legacy: 50, b: 25, c: 25}, shadow: {percent: 5}}
  - {name: bad, match: {path: /y}, split: {b: 50, c: 50}, shadow: {percent: 150, writes: always, max_body: lots}}
`))
	for _, want := range []string{"routes[three].shadow: the split has 3 backends; set shadow.new", "routes[bad].shadow.percent", "routes[bad].shadow.writes", `line 5: size "lots"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
}

func TestValidate_FastPath(t *testing.T) {
	for _, tc := range []struct {
		value   string
		problem bool
	}{{"", false}, {"on", false}, {"off", false}, {"fast", true}} {
		cfg, err := Parse([]byte("fast_path: \"" + tc.value + "\"\n" + goodConfig))
		if tc.value == "" {
			cfg, err = Parse([]byte(goodConfig))
		}
		if got := err != nil && strings.Contains(err.Error(), "fast_path"); got != tc.problem {
			t.Errorf("fast_path %q: problem reported = %v, want %v (err: %v)", tc.value, got, tc.problem, err)
		}
		if err == nil && cfg.FastPath == "" {
			t.Errorf("fast_path %q: no default applied", tc.value)
		}
	}
}

func TestTable_RoutingHeaders(t *testing.T) {
	compile := func(t *testing.T, yml string) *Table {
		t.Helper()
		cfg, err := Parse([]byte(yml))
		if err != nil {
			t.Fatal(err)
		}
		states := map[string]routeState{}
		for _, r := range cfg.Routes {
			s := Split(r.Split)
			states[r.Name] = routeState{Split: s, FileSplit: s, Assign: Rebalance(Assignment{}, s, 1)}
		}
		tbl, err := newTable(cfg, states, 1)
		if err != nil {
			t.Fatal(err)
		}
		return tbl
	}
	tbl := compile(t, `
backends: {a: {url: http://a}, b: {url: http://b}}
routes:
  - name: by-user
    match: {path_prefix: /api, headers: {x-tenant: acme, ACCEPT: "*"}}
    split: {a: 50, b: 50}
    sticky: {header: x-user-id}
  - name: by-cookie
    match: {path_prefix: /shop}
    split: {a: 50, b: 50}
    sticky: {cookie: uid}
  - name: rest
    split: {a: 100}
`)
	got := strings.Join(tbl.RoutingHeaders(), ",")
	if want := "X-Banyan-Backend,X-User-Id,Accept,X-Tenant,Cookie"; got != want {
		t.Errorf("routing headers = %s, want %s", got, want)
	}
	tbl = compile(t, "override: {disabled: true}\nbackends: {a: {url: http://a}}\nroutes: [{name: rest, split: {a: 100}}]\n")
	if got := tbl.RoutingHeaders(); len(got) != 0 {
		t.Errorf("routing headers = %v, want none: no override header, no sticky key, no header match", got)
	}
}

func TestParse_DSNSecretsFromEnv(t *testing.T) {
	const conf = `
cdc:
  source: {dsn: "repl:${BANYAN_TEST_SRC_PW}@tcp(127.0.0.1:3306)/shop"}
  target: {dsn: "banyan:pa$word@tcp(127.0.0.1:3307)/orders"}
  tables: [{source: shop.t_order, target: orders.orders, columns: {id: id}}]
`
	t.Run("set", func(t *testing.T) {
		t.Setenv("BANYAN_TEST_SRC_PW", "s3cr$t")
		cfg, err := Parse([]byte(conf))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := cfg.CDC.Source.DSN, "repl:s3cr$t@tcp(127.0.0.1:3306)/shop"; got != want {
			t.Errorf("source dsn = %q, want %q", got, want)
		}
		if got, want := cfg.CDC.Target.DSN, "banyan:pa$word@tcp(127.0.0.1:3307)/orders"; got != want {
			t.Errorf("target dsn = %q, want %q (a lone $ is not expanded)", got, want)
		}
	})
	t.Run("unset", func(t *testing.T) {
		_, err := Parse([]byte(conf))
		if err == nil || !strings.Contains(err.Error(), "cdc.source.dsn: refers to ${BANYAN_TEST_SRC_PW}, but the environment variable BANYAN_TEST_SRC_PW is not set") {
			t.Errorf("err = %v, want the unset variable named", err)
		}
	})
}

// A key written twice in one mapping makes yaml.v3 drop that whole
// mapping. The duplicate is a problem, but the rest of the mapping is
// still read (the first of the two keys counts) and checked: no "at least
// one backend is required" for a file that has backends, and bad values
// beside the duplicates are listed.
func TestParse_DuplicateKeysKeepTheRest(t *testing.T) {
	_, err := Parse([]byte(`backends:
  legacy: {url: http://127.0.0.1:8081}
  legacy: {url: http://127.0.0.1:8082}
  new: {url: "ftp://x"}
routes:
  - name: all
    match: {path_template: "/x/{id"}
    split: {legacy: 100}
    split: {legacy: 50, new: 50}
`))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want a ValidationError", err)
	}
	text := ve.Error()
	for _, want := range []string{`mapping key "legacy" already defined at line 2`, `mapping key "split" already defined at line 8`, "backends.new.url", "path_template"} {
		if !strings.Contains(text, want) {
			t.Errorf("problems lack %q:\n%s", want, text)
		}
	}
	for _, not := range []string{"at least one backend", "at least one route"} {
		if strings.Contains(text, not) {
			t.Errorf("problems say %q for a file that has them:\n%s", not, text)
		}
	}
}

// TestParse_CDCSpill: spill_rows defaults to 10000 and must be at least 1.
// spill_dir is read as it is: only `cdc run` needs it (cdc.Open checks
// it), so a missing one is no config problem.
func TestParse_CDCSpill(t *testing.T) {
	const base = `
cdc:
  source: {dsn: "repl:pw@tcp(127.0.0.1:3306)/shop"}
  target: {dsn: "banyan:pw@tcp(127.0.0.1:3307)/orders"}
  tables: [{source: shop.t_order, target: orders.orders}]
`
	cfg, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CDC.SpillRows != 10000 || cfg.CDC.SpillDir != "" {
		t.Errorf("spill_rows %d, spill_dir %q; want the default 10000 and the system's temp dir", cfg.CDC.SpillRows, cfg.CDC.SpillDir)
	}
	dir := t.TempDir()
	cfg, err = Parse([]byte(base + "  spill_rows: 500\n  spill_dir: " + dir + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CDC.SpillRows != 500 || cfg.CDC.SpillDir != dir {
		t.Errorf("spill_rows %d, spill_dir %q; want 500, %q", cfg.CDC.SpillRows, cfg.CDC.SpillDir, dir)
	}
	_, err = Parse([]byte(base + "  spill_rows: -1\n  spill_dir: " + dir + "/missing\n"))
	if want := "cdc.spill_rows: -1 must be at least 1"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want it to say %q", err, want)
	}
	if err != nil && strings.Contains(err.Error(), "spill_dir") {
		t.Errorf("err = %v; a missing spill_dir is cdc run's to report", err)
	}
}
