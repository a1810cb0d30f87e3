package xds

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/banyanhq/banyan/routes"
)

var update = flag.Bool("update", false, "rewrite the expected output of testdata/*.xdstest")

// goldenSep separates a test case's config from the resources it must
// translate to.
const goldenSep = "-----\n"

// newManager builds a route manager on a throwaway state store.
func newManager(tb testing.TB, yaml string) (*routes.Manager, *routes.Config) {
	tb.Helper()
	cfg, err := routes.Parse([]byte(yaml))
	if err != nil {
		tb.Fatalf("parse config: %v", err)
	}
	store, err := routes.OpenStore(filepath.Join(tb.TempDir(), "state.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	m, err := routes.NewManager(context.Background(), cfg, store)
	if err != nil {
		tb.Fatal(err)
	}
	return m, cfg
}

func TestTranslate_Golden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.xdstest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test cases: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".xdstest"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := strings.Cut(string(data), goldenSep)
			if !ok {
				t.Fatalf("%s has no %q separator", file, strings.TrimSpace(goldenSep))
			}
			m, cfg := newManager(t, input)
			res, err := Translate(m.Table(), OptionsFrom(cfg.XDS))
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			raw, err := json.Marshal(res)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := json.Indent(&got, raw, "", "  "); err != nil {
				t.Fatal(err)
			}
			got.WriteString("\n")
			if *update {
				if err := os.WriteFile(file, []byte(input+goldenSep+got.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got.String() != want {
				t.Errorf("%s: generated resources differ from the golden file (go test ./xds -run TestTranslate_Golden -update to accept):\n%s", file, lineDiff(want, got.String()))
			}
		})
	}
}

// lineDiff shows the first differing lines of two texts.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "line " + itoa(i+1) + ":\n  want: " + wl + "\n  got:  " + gl
		}
	}
	return "(same lines, different length)"
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

const shadowConfig = `
override: {disabled: true}
backends:
  legacy: {url: http://127.0.0.1:8081}
  new:    {url: http://127.0.0.1:8082}
routes:
  - name: orders-read
    match: {path_prefix: /api/orders}
    split: {legacy: 80, new: 20}
    shadow: {percent: 50}
`

func TestTranslate_ShadowNeedsComparator(t *testing.T) {
	m, _ := newManager(t, shadowConfig)
	_, err := Translate(m.Table(), Options{})
	if !errors.Is(err, ErrInvalidResources) {
		t.Fatalf("Translate without a comparator: err = %v, want ErrInvalidResources", err)
	}
	if !strings.Contains(err.Error(), "route orders-read") || !strings.Contains(err.Error(), "comparator") {
		t.Errorf("error %q should name the route and the missing comparator", err)
	}
	if _, err := Translate(m.Table(), Options{Comparator: "127.0.0.1:9902"}); err != nil {
		t.Errorf("Translate with a comparator: %v", err)
	}
}

func TestResources_Validate(t *testing.T) {
	m, _ := newManager(t, shadowConfig)
	good, err := Translate(m.Table(), Options{Comparator: "127.0.0.1:9902"})
	if err != nil {
		t.Fatal(err)
	}
	mirrors := func(r Resources) []*routev3.RouteAction_RequestMirrorPolicy {
		var out []*routev3.RouteAction_RequestMirrorPolicy
		for _, rt := range r.Routes[0].VirtualHosts[0].Routes {
			out = append(out, rt.GetRoute().GetRequestMirrorPolicies()...)
		}
		return out
	}
	if len(mirrors(good)) == 0 {
		t.Fatal("shadowed route has no mirror policy")
	}
	tests := []struct {
		name   string
		break_ func(r *Resources)
		want   string
	}{
		{"mirror to a missing cluster", func(r *Resources) {
			for _, m := range mirrors(*r) {
				m.Cluster = "comparator-typo"
			}
		}, `request_mirror_policies names cluster "comparator-typo"`},
		{"comparator cluster dropped", func(r *Resources) {
			var keep []*clusterv3.Cluster
			for _, c := range r.Clusters {
				if c.Name != ComparatorCluster {
					keep = append(keep, c)
				}
			}
			r.Clusters = keep
		}, `names cluster "` + ComparatorCluster + `"`},
		{"weighted cluster missing", func(r *Resources) {
			r.Clusters = r.Clusters[1:] // "_banyan_comparator" sorts first, then legacy
			r.Clusters = r.Clusters[1:]
		}, `weighted_clusters names cluster "legacy"`},
		{"route configuration missing", func(r *Resources) { r.Routes[0].Name = "other" }, `route configuration "banyan_routes" is not in the snapshot`},
		{"ValidateAll fails", func(r *Resources) { r.Clusters[0].Name = "" }, "Name: value length must be at least 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Translate(m.Table(), Options{Comparator: "127.0.0.1:9902"})
			if err != nil {
				t.Fatal(err)
			}
			tc.break_(&r)
			err = r.Validate()
			if !errors.Is(err, ErrInvalidResources) {
				t.Fatalf("Validate = %v, want ErrInvalidResources", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %q, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestRouteMatch_Template(t *testing.T) {
	re, err := templateRegex("/api/orders/{id}/lines.json")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := re, `^/api/orders/[^/]+/lines\.json$`; got != want {
		t.Errorf("templateRegex = %q, want %q", got, want)
	}
}
