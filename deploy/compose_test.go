package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/banyanhq/banyan/cdc"
	"github.com/banyanhq/banyan/demo"
	"github.com/banyanhq/banyan/routes"
	"gopkg.in/yaml.v3"
)

// The repo's compose file; relative paths in it resolve against the repo root.
const composePath = "../docker-compose.yml"

func TestComposeFile(t *testing.T) {
	c, err := loadCompose(composePath)
	if err != nil {
		t.Fatal(err)
	}
	report := func(t *testing.T, ps []string) {
		t.Helper()
		for _, p := range ps {
			t.Error(p)
		}
	}
	t.Run("keys", func(t *testing.T) { report(t, checkKeys(c)) })
	t.Run("images", func(t *testing.T) { report(t, checkImages(c)) })
	t.Run("mounts", func(t *testing.T) { report(t, checkMounts(c)) })
	t.Run("ports", func(t *testing.T) { report(t, checkPorts(c)) })
	t.Run("depends_on", func(t *testing.T) { report(t, checkDependsOn(c)) })
	t.Run("service DSNs and listeners", func(t *testing.T) { report(t, checkServiceDSNs(c)) })
	t.Run("commands", func(t *testing.T) {
		cmds, flags, err := cliCommands("../cmd/banyan")
		if err != nil {
			t.Fatal(err)
		}
		report(t, checkCommands(c, cmds, flags))
	})

	serve, cdcRun := c.serviceRunning("serve"), c.serviceRunning("cdc", "run")
	if serve == "" || cdcRun == "" {
		t.Fatalf("want one banyan service running serve and one running cdc run; got serve=%q cdc run=%q", serve, cdcRun)
	}
	serveCfg, ps := loadBanyanConfig(c, serve)
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	cdcCfg, ps := loadBanyanConfig(c, cdcRun)
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	t.Run("banyan serve config", func(t *testing.T) {
		report(t, checkServeConfig(c, serve, serveCfg))
		if serveCfg.XDS.Listen == "" {
			t.Error("xds.listen is not set: Envoy has no control plane to connect to")
		}
	})
	t.Run("banyan cdc config", func(t *testing.T) {
		report(t, checkCDCConfig(c, cdcRun, cdcCfg))
		if _, ok := c.Services[cdcRun].flag("metrics-listen"); !ok {
			t.Errorf("services.%s: no --metrics-listen, so Prometheus cannot scrape CDC lag", cdcRun)
		}
	})
	t.Run("prometheus", func(t *testing.T) {
		prom, path := mountedFile(t, c, "prometheus", "prometheus.yml")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		_, adminPort, _ := splitHostPort(serveCfg.Admin.Listen)
		m, _ := c.Services[cdcRun].flag("metrics-listen")
		_, cdcPort, _ := splitHostPort(m)
		report(t, checkPrometheus(c, prom, data, []string{serve + ":" + adminPort, cdcRun + ":" + cdcPort}))
	})
	t.Run("envoy bootstrap", func(t *testing.T) {
		envoy, path := mountedFile(t, c, "envoy", "bootstrap.yaml")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		_, xdsPort, _ := splitHostPort(serveCfg.XDS.Listen)
		report(t, checkEnvoyBootstrap(data, serve+":"+xdsPort))
		// The listener banyan generates and Envoy's admin are published.
		envoyPorts := c.Services[envoy].containerPorts()
		if _, p, _ := splitHostPort(serveCfg.XDS.ListenerAddress); !envoyPorts[p] {
			t.Errorf("services.%s.ports: xds.listener_address port %s is not published", envoy, p)
		}
		var b map[string]any
		if err := yaml.Unmarshal(data, &b); err == nil {
			if p := dig(b, "admin", "address", "socket_address", "port_value"); p != nil && !envoyPorts[fmt.Sprint(p)] {
				t.Errorf("services.%s.ports: Envoy's admin port %v is not published", envoy, p)
			}
		}
	})
}

// mountedFile finds the service whose image name contains image and the
// host path of its bind mount whose file name is base.
func mountedFile(t *testing.T, c *composeFile, image, base string) (service, hostPath string) {
	t.Helper()
	for _, name := range c.names() {
		s := c.Services[name]
		if !strings.Contains(s.Image, image) {
			continue
		}
		for _, v := range s.Volumes {
			if v.Type == "bind" && filepath.Base(v.Source) == base {
				return name, c.path(v.Source)
			}
		}
		t.Fatalf("service %s mounts no %s", name, base)
	}
	t.Fatalf("no service runs an %s image", image)
	return "", ""
}

// The MySQL init scripts create the tables the demo services read and
// write, exactly as the demo package defines them.
func TestInitSQL_MatchesDemoSchemas(t *testing.T) {
	for _, tt := range []struct{ file, schema, name string }{
		{"mysql/legacy.sql", demo.LegacySchema, "demo.LegacySchema"},
		{"mysql/new.sql", demo.NewSchema, "demo.NewSchema"},
	} {
		data, err := os.ReadFile(tt.file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(squash(string(data)), squash(tt.schema)) {
			t.Errorf("deploy/%s does not create the table as %s does:\n%s", tt.file, tt.name, tt.schema)
		}
	}
}

// The compose estate copies the same tables the same way as the
// in-process demo, so `banyan check` and the diff report tell the same story.
func TestBanyanConfig_CDCMatchesDemo(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "demo.yaml")
	rendered := demo.Config(demo.ConfigParams{
		State: "s.db", Reports: "r.db", LegacyURL: "http://127.0.0.1:1", OrdersURL: "http://127.0.0.1:2",
		SourceDSN: "u@tcp(127.0.0.1:3306)/shop", TargetDSN: "u@tcp(127.0.0.1:3307)/orders",
	})
	if err := os.WriteFile(path, []byte(rendered), 0o644); err != nil {
		t.Fatal(err)
	}
	want, err := routes.Load(path, cdc.CheckConfig)
	if err != nil {
		t.Fatal(err)
	}
	got, err := routes.Load("banyan/banyan.yaml", cdc.CheckConfig)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.CDC.Tables, want.CDC.Tables) {
		t.Errorf("cdc.tables differ from the demo's:\n got %+v\nwant %+v", got.CDC.Tables, want.CDC.Tables)
	}
	if got, want := got.CDC.SourceTimezone, want.CDC.SourceTimezone; got != want {
		t.Errorf("cdc.source_timezone = %q, the demo's is %q", got, want)
	}
}

// squash drops white space and a trailing semicolon so layout does not matter.
func squash(s string) string {
	return strings.TrimSuffix(strings.Join(strings.Fields(s), ""), ";")
}
