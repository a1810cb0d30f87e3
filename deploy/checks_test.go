package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A small estate that passes every check; each case below breaks one
// thing and the check must name it.
const goodCompose = `
name: t
x-img: &img
  image: banyan:t
  build: {context: ., dockerfile: Dockerfile}
services:
  db:
    image: mysql:8.0
    ports: ["127.0.0.1:3306:3306"]
    healthcheck: {test: ["CMD", "true"]}
  app:
    <<: *img
    command: ["serve", "--config", "/etc/banyan/banyan.yaml"]
    environment: {BANYAN_ADMIN_TOKEN: "${TOKEN:-secret}"}
    volumes: ["./banyan.yaml:/etc/banyan/banyan.yaml:ro", "data:/var/lib/banyan"]
    ports: ["127.0.0.1:8080:8080", "127.0.0.1:9901:9901"]
    expose: ["9903", "18000"]
    depends_on: {db: {condition: service_healthy}}
  cdc:
    <<: *img
    command: ["cdc", "run", "--config", "/etc/banyan/banyan.yaml", "--metrics-listen", "0.0.0.0:9902"]
    volumes: ["./banyan.yaml:/etc/banyan/banyan.yaml:ro"]
    expose: ["9902"]
    depends_on: [db]
  prometheus:
    image: prom/prometheus
    volumes: ["./prometheus.yml:/etc/prometheus/prometheus.yml:ro"]
    ports: ["127.0.0.1:9090:9090"]
volumes:
  data:
`

const goodConfig = `
listen: 0.0.0.0:8080
admin: {listen: 0.0.0.0:9901}
state: /tmp/state.db
backends:
  legacy: {url: "http://db:3306"}
routes:
  - name: all
    split: {legacy: 100}
comparator: {listen: 0.0.0.0:9903}
xds: {listen: 0.0.0.0:18000, comparator: "app:9903"}
cdc:
  source: {dsn: "u:p@tcp(db:3306)/shop", flavor: mysql}
  target: {dsn: "u:p@tcp(db:3306)/orders"}
  tables: [{source: shop.t, target: orders.t}]
`

const goodPrometheus = `
scrape_configs:
  - job_name: app
    static_configs: [{targets: ["app:9901", "cdc:9902"]}]
  - job_name: self
    static_configs: [{targets: ["localhost:9090"]}]
`

const goodBootstrap = `
node: {id: envoy-1, cluster: demo}
dynamic_resources:
  ads_config:
    api_type: GRPC
    grpc_services: [{envoy_grpc: {cluster_name: xds}}]
static_resources:
  clusters:
    - name: xds
      type: STRICT_DNS
      load_assignment:
        cluster_name: xds
        endpoints:
          - lb_endpoints:
              - endpoint: {address: {socket_address: {address: app, port_value: 18000}}}
`

// estate writes a throwaway repo with the given files and loads its
// compose file.
func estate(t *testing.T, compose, config string) *composeFile {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"docker-compose.yml": compose, "banyan.yaml": config, "prometheus.yml": goodPrometheus, "Dockerfile": "FROM scratch\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := loadCompose(filepath.Join(dir, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// allProblems runs every check the repo's compose file gets.
func allProblems(t *testing.T, c *composeFile) []string {
	t.Helper()
	cmds := map[string]bool{"serve": true, "cdc": true, "run": true}
	flags := map[string]bool{"config": true, "metrics-listen": true}
	ps := append(checkKeys(c), checkImages(c)...)
	ps = append(ps, checkMounts(c)...)
	ps = append(ps, checkPorts(c)...)
	ps = append(ps, checkDependsOn(c)...)
	ps = append(ps, checkServiceDSNs(c)...)
	ps = append(ps, checkCommands(c, cmds, flags)...)
	for _, svc := range []string{"app", "cdc"} {
		if _, ok := c.Services[svc]; !ok {
			continue
		}
		cfg, lps := loadBanyanConfig(c, svc)
		ps = append(ps, lps...)
		if cfg == nil {
			continue
		}
		if svc == "app" {
			ps = append(ps, checkServeConfig(c, svc, cfg)...)
		} else {
			ps = append(ps, checkCDCConfig(c, svc, cfg)...)
		}
	}
	ps = append(ps, checkPrometheus(c, "prometheus", []byte(goodPrometheus), []string{"app:9901", "cdc:9902"})...)
	return ps
}

func TestChecks_GoodEstatePasses(t *testing.T) {
	c := estate(t, goodCompose, goodConfig)
	if ps := allProblems(t, c); len(ps) > 0 {
		t.Fatalf("the good estate has problems:\n%s", strings.Join(ps, "\n"))
	}
	if got, want := strings.Join(c.banyanServices(), ","), "app,cdc"; got != want {
		t.Errorf("banyanServices = %s, want %s (the x- anchor's build must merge in)", got, want)
	}
	if ps := checkEnvoyBootstrap([]byte(goodBootstrap), "app:18000"); len(ps) > 0 {
		t.Errorf("good bootstrap: %v", ps)
	}
}

func TestChecks_BrokenEstate(t *testing.T) {
	tests := []struct {
		name            string
		compose, config string // replace old with new in the good file: "old=>new"
		want            string
	}{
		{"service without image or build", `image: prom/prometheus=>restart: "no"`, "", "services.prometheus: neither image nor build"},
		{"build context missing", "context: .,=>context: ./nowhere,", "", "services.app.build.context: ./nowhere is not a folder"},
		{"Dockerfile missing", "dockerfile: Dockerfile=>dockerfile: Dockerfile.missing", "", "Dockerfile.missing not found"},
		{"bind mount missing", "./prometheus.yml:=>./deploy/prom.yml:", "", "host path ./deploy/prom.yml does not exist"},
		{"named volume undeclared", "data:/var/lib/banyan=>cache:/var/lib/banyan", "", `named volume "cache" is not declared`},
		{"host ports collide", `"127.0.0.1:9090:9090"=>"127.0.0.1:8080:9090"`, "", "host port 8080 is also published by app"},
		{"port published on every address", `"127.0.0.1:3306:3306"=>"3306:3306"`, "", "publish on 127.0.0.1 only"},
		{"depends on an unknown service", "depends_on: [db]=>depends_on: [dbx]", "", "services.cdc.depends_on.dbx: no such service"},
		{"service_healthy without healthcheck", `healthcheck: {test: ["CMD", "true"]}=>restart: always`, "", "db has no healthcheck"},
		{"misspelt service key", "depends_on: [db]=>dependson: [db]", "", `unknown key "dependson"`},
		// "environment:" with nothing under it is null, and Compose refuses
		// the whole file: "services.cdc.environment must be a mapping".
		{"service key left empty", `expose: ["9902"]=>environment:
    expose: ["9902"]`, "", "services.cdc.environment: empty (null)"},
		{"unknown subcommand", `command: ["serve",=>command: ["server",`, "", `banyan has no subcommand "server"`},
		{"unknown flag", `"--metrics-listen"=>"--metrics"`, "", "banyan has no flag --metrics"},
		{"config not mounted", `"./banyan.yaml:/etc/banyan/banyan.yaml:ro", =>`, "", "--config /etc/banyan/banyan.yaml is not bind-mounted"},
		{"config fails validation", "", "split: {legacy: 100}=>split: {legacy: 90}", "does not pass banyan validate"},
		{"admin token env not set", `environment: {BANYAN_ADMIN_TOKEN: "${TOKEN:-secret}"}=>environment: {OTHER: x}`, "", "BANYAN_ADMIN_TOKEN (admin.token_env) must be set"},
		{"admin token defaults to empty", `${TOKEN:-secret}=>${TOKEN}`, "", "BANYAN_ADMIN_TOKEN (admin.token_env) must be set"},
		{"backend host is not a service", "", "http://db:3306=>http://legacy:8081", `backends.legacy.url: host "legacy" is not a compose service`},
		{"backend port not listened on", "", "http://db:3306=>http://db:3307", "service db does not publish or expose port 3307"},
		{"proxy listens on loopback only", "", "listen: 0.0.0.0:8080=>listen: 127.0.0.1:8080", "unreachable from other containers"},
		{"xds port not exposed", `expose: ["9903", "18000"]=>expose: ["9903"]`, "", "xds.listen: port 18000 is neither"},
		{"xds comparator is another service", "", `comparator: "app:9903"=>comparator: "db:3306"`, "is not this banyan's comparator.listen"},
		{"cdc dsn host unknown", "", "tcp(db:3306)/shop=>tcp(mysql:3306)/shop", `cdc.source.dsn: host "mysql" is not a compose service`},
		{"cdc dsn on a unix socket", "", "u:p@tcp(db:3306)/orders=>u:p@unix(/run/mysqld.sock)/orders", `cdc.target.dsn: protocol "unix"`},
		{"cdc metrics port not exposed", `expose: ["9902"]=>expose: ["9903"]`, "", "--metrics-listen: port 9902 is neither"},
		{"prometheus target unknown", `"127.0.0.1:9090:9090"=>"127.0.0.1:9091:9091"`, "", "localhost:9090 is not a port of prometheus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := estate(t, edit(t, goodCompose, tt.compose), edit(t, goodConfig, tt.config))
			ps := allProblems(t, c)
			for _, p := range ps {
				if strings.Contains(p, tt.want) {
					return
				}
			}
			t.Errorf("no problem mentions %q; got:\n%s", tt.want, strings.Join(ps, "\n"))
		})
	}
}

func TestCheckPrometheus_MissingAndUnknownTargets(t *testing.T) {
	c := estate(t, goodCompose, goodConfig)
	prom := strings.Replace(goodPrometheus, `"cdc:9902"`, `"cdc-metrics:9902"`, 1)
	ps := strings.Join(checkPrometheus(c, "prometheus", []byte(prom), []string{"app:9901", "cdc:9902"}), "\n")
	for _, want := range []string{`host "cdc-metrics" is not a compose service`, "cdc:9902 is not scraped"} {
		if !strings.Contains(ps, want) {
			t.Errorf("problems do not mention %q:\n%s", want, ps)
		}
	}
}

func TestCheckEnvoyBootstrap_Broken(t *testing.T) {
	tests := []struct{ name, edit, want string }{
		{"wrong port", "port_value: 18000=>port_value: 18001", "points at app:18001, want banyan's xDS at app:18000"},
		{"wrong host", "address: app,=>address: 127.0.0.1,", "points at 127.0.0.1:18000"},
		{"ads cluster missing", "cluster_name: xds}=>cluster_name: control}", `ADS cluster "control" is not in static_resources.clusters`},
		{"no ads", "ads_config:=>lds_config:", "no dynamic_resources.ads_config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := strings.Join(checkEnvoyBootstrap([]byte(edit(t, goodBootstrap, tt.edit)), "app:18000"), "\n")
			if !strings.Contains(ps, tt.want) {
				t.Errorf("problems do not mention %q:\n%s", tt.want, ps)
			}
		})
	}
}

func TestInterpolate(t *testing.T) {
	env := map[string]string{"SET": "v", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"$$HOME", "$HOME"},
		{"${SET}", "v"},
		{"$SET/x", "v/x"},
		{"${UNSET}", ""},
		{"${UNSET:-d}", "d"},
		{"${EMPTY:-d}", "d"},
		{"${EMPTY-d}", ""},
		{"${UNSET-d}", "d"},
		{"${SET:-d}", "v"},
		{"a ${SET} $$ b", "a v $ b"},
	}
	for _, tt := range tests {
		got, err := interpolate(tt.in, lookup)
		if err != nil {
			t.Errorf("interpolate(%q): %v", tt.in, err)
		}
		if got != tt.want {
			t.Errorf("interpolate(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if _, err := interpolate("${UNSET:?set it}", lookup); err == nil {
		t.Error("${UNSET:?...} must be an error")
	}
}

func TestPortSpec_Forms(t *testing.T) {
	c, err := parseCompose([]byte(`
services:
  s:
    image: x
    ports:
      - "8080"
      - "127.0.0.1:9000:9001/udp"
      - "[::1]:7000:7001"
      - {target: 80, published: 8000, host_ip: 127.0.0.1}
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range c.Services["s"].Ports {
		got = append(got, p.HostIP+"|"+p.Host+"|"+p.Container+"|"+p.Protocol)
	}
	want := "||8080|tcp 127.0.0.1|9000|9001|udp ::1|7000|7001|tcp 127.0.0.1|8000|80|tcp"
	if g := strings.Join(got, " "); g != want {
		t.Errorf("ports = %s, want %s", g, want)
	}
}

// edit applies "old=>new" to s; the old text must be there, so a case
// that no longer breaks anything fails loudly.
func edit(t *testing.T, s, e string) string {
	t.Helper()
	if e == "" {
		return s
	}
	old, repl, ok := strings.Cut(e, "=>")
	if !ok || !strings.Contains(s, old) {
		t.Fatalf("edit %q: %q not in the good file", e, old)
	}
	return strings.Replace(s, old, repl, 1)
}

func TestCLICommands_FindsSubcommandsAndFlags(t *testing.T) {
	cmds, flags, err := cliCommands("../cmd/banyan")
	if err != nil {
		t.Fatal(err)
	}
	// serve and cdc run are what the compose file's banyan services run;
	// --source is declared through a variable (fl := cmd.Flags()).
	for _, c := range []string{"serve", "cdc", "run", "validate", "check"} {
		if !cmds[c] {
			t.Errorf("subcommand %q not found", c)
		}
	}
	for _, f := range []string{"config", "metrics-listen", "admin", "reason", "source"} {
		if !flags[f] {
			t.Errorf("flag --%s not found", f)
		}
	}
	if cmds["no-such-command"] || flags["no-such-flag"] {
		t.Error("found what is not there")
	}
}
