package deploy

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/banyanhq/banyan/cdc"
	"github.com/banyanhq/banyan/proxy"
	"github.com/banyanhq/banyan/reports"
	"github.com/banyanhq/banyan/routes"
	"github.com/go-sql-driver/mysql"
	"gopkg.in/yaml.v3"
)

// Each check returns every problem it finds, one line each, naming the
// service and field.

// checkKeys reports misspelt top-level and service keys, which Compose
// would reject.
func checkKeys(c *composeFile) []string {
	var ps []string
	for k := range c.Rest {
		if k != "name" && k != "networks" && k != "configs" && k != "secrets" && !strings.HasPrefix(k, "x-") {
			ps = append(ps, fmt.Sprintf("top level: unknown key %q", k))
		}
	}
	for _, name := range c.names() {
		for k := range c.Services[name].Rest {
			if !knownServiceKeys[k] {
				ps = append(ps, fmt.Sprintf("services.%s: unknown key %q", name, k))
			}
		}
	}
	ps = append(ps, nullServiceKeys(c.root)...)
	sort.Strings(ps)
	return ps
}

// nullServiceKeys reports service attributes written with nothing after
// the colon ("environment:" with every entry removed or commented out):
// YAML makes that null, and Compose refuses the whole file
// ("services.x.environment must be a mapping").
func nullServiceKeys(root *yaml.Node) []string {
	if root == nil || len(root.Content) == 0 {
		return nil
	}
	var ps []string
	services := mappingValue(root.Content[0], "services")
	if services == nil || services.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(services.Content); i += 2 {
		name, svc := services.Content[i].Value, services.Content[i+1]
		if svc.Kind != yaml.MappingNode {
			continue
		}
		for j := 0; j+1 < len(svc.Content); j += 2 {
			if v := svc.Content[j+1]; v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				ps = append(ps, fmt.Sprintf("services.%s.%s: empty (null), which Compose rejects (line %d): remove the key or give it a value", name, svc.Content[j].Value, v.Line))
			}
		}
	}
	return ps
}

// mappingValue returns the value of key in a mapping node, or nil.
func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// checkImages: every service has an image or a build whose context and
// Dockerfile exist; services sharing an image name build it the same way.
func checkImages(c *composeFile) []string {
	var ps []string
	builds := map[string]buildSpec{} // image -> build
	for _, name := range c.names() {
		s := c.Services[name]
		f := "services." + name
		if s.Image == "" && s.Build == nil {
			ps = append(ps, f+": neither image nor build")
			continue
		}
		if s.Build == nil {
			continue
		}
		ctx := c.path(s.Build.Context)
		if st, err := os.Stat(ctx); err != nil || !st.IsDir() {
			ps = append(ps, fmt.Sprintf("%s.build.context: %s is not a folder in the repo", f, s.Build.Context))
			continue
		}
		df := s.Build.Dockerfile
		if df == "" {
			df = "Dockerfile"
		}
		if _, err := os.Stat(filepath.Join(ctx, df)); err != nil {
			ps = append(ps, fmt.Sprintf("%s.build.dockerfile: %s not found in %s", f, df, s.Build.Context))
		}
		if s.Image != "" {
			if prev, ok := builds[s.Image]; ok && prev != *s.Build {
				ps = append(ps, fmt.Sprintf("%s: image %s is also built from another context or Dockerfile", f, s.Image))
			}
			builds[s.Image] = *s.Build
		}
	}
	return ps
}

// checkMounts: every bind-mounted host path exists, every named volume is
// declared, and no two mounts of a service share a target.
func checkMounts(c *composeFile) []string {
	var ps []string
	for _, name := range c.names() {
		targets := map[string]bool{}
		for i, v := range c.Services[name].Volumes {
			f := fmt.Sprintf("services.%s.volumes[%d]", name, i)
			if targets[v.Target] {
				ps = append(ps, fmt.Sprintf("%s: %s is mounted twice", f, v.Target))
			}
			targets[v.Target] = true
			if !strings.HasPrefix(v.Target, "/") {
				ps = append(ps, fmt.Sprintf("%s: target %q must be an absolute path", f, v.Target))
			}
			switch v.Type {
			case "bind":
				if strings.HasPrefix(v.Source, "~") {
					ps = append(ps, fmt.Sprintf("%s: %s is outside the repo", f, v.Source))
					continue
				}
				if _, err := os.Stat(c.path(v.Source)); err != nil {
					ps = append(ps, fmt.Sprintf("%s: host path %s does not exist in the repo", f, v.Source))
				}
			case "volume":
				if v.Source == "" {
					continue // anonymous
				}
				if _, ok := c.Volumes[v.Source]; !ok {
					ps = append(ps, fmt.Sprintf("%s: named volume %q is not declared under volumes:", f, v.Source))
				}
			}
		}
	}
	return ps
}

// checkPorts: published ports are on 127.0.0.1 only, name a host port,
// and no two collide.
func checkPorts(c *composeFile) []string {
	var ps []string
	seen := map[string]string{} // proto/ip:port -> service
	for _, name := range c.names() {
		for i, p := range c.Services[name].Ports {
			f := fmt.Sprintf("services.%s.ports[%d] %q", name, i, p.raw)
			if p.HostIP != "127.0.0.1" {
				ps = append(ps, fmt.Sprintf("%s: publish on 127.0.0.1 only (host IP is %q)", f, p.HostIP))
			}
			if _, err := strconv.ParseUint(p.Container, 10, 16); err != nil {
				ps = append(ps, fmt.Sprintf("%s: container port %q is not a port number", f, p.Container))
			}
			if p.Host == "" {
				ps = append(ps, fmt.Sprintf("%s: no host port; name one so the docs' addresses hold", f))
				continue
			}
			if _, err := strconv.ParseUint(p.Host, 10, 16); err != nil {
				ps = append(ps, fmt.Sprintf("%s: host port %q is not a port number", f, p.Host))
				continue
			}
			// 0.0.0.0 would take the port on every address, 127.0.0.1 too.
			for _, ip := range []string{p.HostIP, "0.0.0.0", ""} {
				key := p.Protocol + "/" + ip + ":" + p.Host
				if other, ok := seen[key]; ok {
					ps = append(ps, fmt.Sprintf("%s: host port %s is also published by %s", f, p.Host, other))
					break
				}
			}
			seen[p.Protocol+"/"+p.HostIP+":"+p.Host] = name
		}
	}
	return ps
}

// checkDependsOn: dependencies exist, conditions are valid, and
// service_healthy waits on a service that has a healthcheck.
func checkDependsOn(c *composeFile) []string {
	var ps []string
	for _, name := range c.names() {
		deps := c.Services[name].DependsOn
		var keys []string
		for d := range deps {
			keys = append(keys, d)
		}
		sort.Strings(keys)
		for _, d := range keys {
			f := fmt.Sprintf("services.%s.depends_on.%s", name, d)
			dep, ok := c.Services[d]
			switch {
			case !ok:
				ps = append(ps, f+": no such service")
				continue
			case d == name:
				ps = append(ps, f+": a service cannot depend on itself")
			}
			switch deps[d] {
			case "service_started", "service_completed_successfully":
			case "service_healthy":
				if dep.Healthcheck == nil || dep.Healthcheck.Disable || len(dep.Healthcheck.Test) == 0 {
					ps = append(ps, f+": waits for service_healthy but "+d+" has no healthcheck")
				}
			default:
				ps = append(ps, fmt.Sprintf("%s: unknown condition %q", f, deps[d]))
			}
		}
	}
	return ps
}

// banyanServices are the services that run the image built from the
// repo's Dockerfile (the banyan binary).
func (c *composeFile) banyanServices() []string {
	images := map[string]bool{}
	var out []string
	for _, name := range c.names() {
		s := c.Services[name]
		if s.Build != nil && filepath.Clean(c.path(s.Build.Context)) == filepath.Clean(c.dir) {
			out = append(out, name)
			if s.Image != "" {
				images[s.Image] = true
			}
		}
	}
	for _, name := range c.names() {
		s := c.Services[name]
		if s.Build == nil && images[s.Image] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// serviceRunning returns the banyan service whose command starts with
// the given subcommand words ("" when none).
func (c *composeFile) serviceRunning(words ...string) string {
	for _, name := range c.banyanServices() {
		cmd := c.Services[name].Command
		if len(cmd) >= len(words) && strings.Join(cmd[:len(words)], " ") == strings.Join(words, " ") {
			return name
		}
	}
	return ""
}

// cliCommands are the subcommand names and flag names defined in the
// banyan CLI's source (cmd/banyan): the first word of every cobra Use and
// every flag declared through Flags() or PersistentFlags().
func cliCommands(dir string) (cmds, flags map[string]bool, err error) {
	fset := token.NewFileSet()
	matches, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, nil, err
	}
	cmds, flags = map[string]bool{}, map[string]bool{}
	for _, path := range matches {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return nil, nil, err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.KeyValueExpr:
				if id, ok := x.Key.(*ast.Ident); ok && id.Name == "Use" {
					if s, ok := stringLit(x.Value); ok && s != "" {
						cmds[strings.Fields(s)[0]] = true
					}
				}
			case *ast.CallExpr:
				// A pflag definer, on cmd.Flags() or a variable holding it.
				sel, ok := x.Fun.(*ast.SelectorExpr)
				if !ok || !flagDefiner.MatchString(sel.Sel.Name) {
					return true
				}
				// The name is the first string argument: String("admin", ...)
				// or StringVar(&v, "config", ...).
				for _, a := range x.Args {
					if s, ok := stringLit(a); ok {
						flags[s] = true
						break
					}
				}
			}
			return true
		})
	}
	if len(cmds) == 0 {
		return nil, nil, errors.New("no cobra commands found in " + dir)
	}
	return cmds, flags, nil
}

var flagDefiner = regexp.MustCompile(`^(String|Bool|Int|Int64|Uint|Uint32|Uint64|Float64|Duration|StringSlice|StringArray|StringToString|Count)(Var)?P?$`)

func stringLit(e ast.Expr) (string, bool) {
	bl, ok := e.(*ast.BasicLit)
	if !ok || bl.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(bl.Value)
	return s, err == nil
}

// checkCommands: the banyan services run subcommands and flags the CLI
// has.
func checkCommands(c *composeFile, cmds, flags map[string]bool) []string {
	var ps []string
	for _, name := range c.banyanServices() {
		cmd := c.Services[name].Command
		f := "services." + name + ".command"
		if len(cmd) == 0 {
			ps = append(ps, f+": empty; the image's default only prints help")
			continue
		}
		if !cmds[cmd[0]] {
			ps = append(ps, fmt.Sprintf("%s: banyan has no subcommand %q", f, cmd[0]))
		}
		for _, a := range cmd {
			if fl, ok := strings.CutPrefix(a, "--"); ok {
				fl, _, _ = strings.Cut(fl, "=")
				if !flags[fl] {
					ps = append(ps, fmt.Sprintf("%s: banyan has no flag --%s", f, fl))
				}
			}
		}
	}
	return ps
}

// loadBanyanConfig loads the config file the service's --config names,
// through its bind mount, with the checks `banyan validate` runs
// (cmd/banyan/serve.go loadConfig).
func loadBanyanConfig(c *composeFile, name string) (*routes.Config, []string) {
	f := "services." + name
	s := c.Services[name]
	p, ok := s.flag("config")
	if !ok {
		return nil, []string{f + ".command: no --config"}
	}
	host := c.hostPath(s, p)
	if host == "" {
		return nil, []string{fmt.Sprintf("%s: --config %s is not bind-mounted from the repo", f, p)}
	}
	// BANYAN_* variables override the file; the container's apply, not ours.
	for _, k := range []string{"BANYAN_LISTEN", "BANYAN_ADMIN_LISTEN", "BANYAN_ADMIN_TOKEN_ENV", "BANYAN_STATE", "BANYAN_OVERRIDE_HEADER"} {
		if v, ok := s.Environment[k]; ok {
			os.Setenv(k, v)
			defer os.Unsetenv(k)
		} else if v, ok := os.LookupEnv(k); ok {
			os.Unsetenv(k)
			defer os.Setenv(k, v)
		}
	}
	cfg, err := routes.Load(host, proxy.CheckDiffRules, checkRedact, cdc.CheckConfig)
	if err != nil {
		return nil, []string{fmt.Sprintf("%s: %s does not pass banyan validate: %v", f, host, err)}
	}
	return cfg, nil
}

// checkRedact is cmd/banyan's checkRedact.
func checkRedact(cfg *routes.Config) []routes.Problem {
	if _, err := reports.NewRedactor(cfg.Reports.Redact); err != nil {
		return []routes.Problem{{Field: "reports.redact", Why: err.Error()}}
	}
	return nil
}

// checkAddr: addr (host:port) names a compose service listening on port.
func checkAddr(c *composeFile, field, addr string) []string {
	host, port, err := splitHostPort(addr)
	if err != nil {
		return []string{fmt.Sprintf("%s: %q is not host:port: %v", field, addr, err)}
	}
	s, ok := c.Services[host]
	if !ok {
		return []string{fmt.Sprintf("%s: host %q is not a compose service (services: %s)", field, host, strings.Join(c.names(), ", "))}
	}
	if !s.containerPorts()[port] {
		return []string{fmt.Sprintf("%s: service %s does not publish or expose port %s", field, host, port)}
	}
	return nil
}

// checkListen: a listener other containers reach binds every address and
// its port is published or exposed.
func checkListen(c *composeFile, name, field, addr string) []string {
	host, port, err := splitHostPort(addr)
	if err != nil {
		return []string{fmt.Sprintf("%s: %q is not host:port: %v", field, addr, err)}
	}
	var ps []string
	if routes.IsLoopback(addr) || (host != "" && host != "0.0.0.0" && host != "::") {
		ps = append(ps, fmt.Sprintf("%s: %s binds %q, unreachable from other containers; use 0.0.0.0", field, addr, host))
	}
	if !c.Services[name].containerPorts()[port] {
		ps = append(ps, fmt.Sprintf("%s: port %s is neither in services.%s.ports nor expose", field, port, name))
	}
	return ps
}

// checkServeConfig checks the config of the service running banyan serve
// against the compose file: listeners reachable, admin token set, backend
// hosts and the xDS comparator are compose services.
func checkServeConfig(c *composeFile, name string, cfg *routes.Config) []string {
	f := "services." + name + " config "
	var ps []string
	ps = append(ps, checkListen(c, name, f+"listen", cfg.Listen)...)
	ps = append(ps, checkListen(c, name, f+"admin.listen", cfg.Admin.Listen)...)
	if cfg.Comparator.Listen != "" {
		ps = append(ps, checkListen(c, name, f+"comparator.listen", cfg.Comparator.Listen)...)
	}
	if cfg.XDS.Listen != "" {
		ps = append(ps, checkListen(c, name, f+"xds.listen", cfg.XDS.Listen)...)
	}
	// banyan serve refuses an admin listener off loopback without a token.
	if !routes.IsLoopback(cfg.Admin.Listen) {
		if v := c.Services[name].Environment[cfg.Admin.TokenEnv]; len(routes.ParseTokens(v)) == 0 {
			ps = append(ps, fmt.Sprintf("services.%s.environment: %s (admin.token_env) must be set: admin.listen %s is off loopback", name, cfg.Admin.TokenEnv, cfg.Admin.Listen))
		}
	}
	for _, b := range sortedKeys(cfg.Backends) {
		u, err := url.Parse(cfg.Backends[b].URL)
		if err != nil {
			continue // validation already said so
		}
		addr := u.Host
		if u.Port() == "" {
			addr = map[string]string{"http": u.Hostname() + ":80", "https": u.Hostname() + ":443"}[u.Scheme]
		}
		ps = append(ps, checkAddr(c, f+"backends."+b+".url", addr)...)
	}
	if cfg.XDS.Listen != "" && cfg.XDS.Comparator != "" {
		field := f + "xds.comparator"
		ps = append(ps, checkAddr(c, field, cfg.XDS.Comparator)...)
		host, port, _ := splitHostPort(cfg.XDS.Comparator)
		if _, cport, err := splitHostPort(cfg.Comparator.Listen); err != nil || host != name || port != cport {
			ps = append(ps, fmt.Sprintf("%s: %s is not this banyan's comparator.listen (%s on service %s)", field, cfg.XDS.Comparator, cfg.Comparator.Listen, name))
		}
	}
	return ps
}

// checkCDCConfig checks the cdc service: DSN hosts are compose services
// listening on the DSN's port, and its metrics listener is reachable.
func checkCDCConfig(c *composeFile, name string, cfg *routes.Config) []string {
	f := "services." + name + " config "
	var ps []string
	if len(cfg.CDC.Tables) == 0 {
		ps = append(ps, f+"cdc.tables: empty; banyan cdc run refuses a config without tables")
	}
	for _, d := range []struct{ field, dsn string }{{"cdc.source.dsn", cfg.CDC.Source.DSN}, {"cdc.target.dsn", cfg.CDC.Target.DSN}} {
		ps = append(ps, checkDSN(c, f+d.field, d.dsn)...)
	}
	if m, ok := c.Services[name].flag("metrics-listen"); ok {
		ps = append(ps, checkListen(c, name, "services."+name+".command --metrics-listen", m)...)
	}
	return ps
}

// checkDSN: a go-sql-driver DSN's TCP host is a compose service.
func checkDSN(c *composeFile, field, dsn string) []string {
	d, err := mysql.ParseDSN(dsn)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", field, err)}
	}
	if d.Net != "tcp" {
		return []string{fmt.Sprintf("%s: protocol %q; containers reach each other over tcp(service:port)", field, d.Net)}
	}
	return checkAddr(c, field, d.Addr)
}

// checkServiceDSNs: every --dsn a service's command passes reaches a
// compose service.
func checkServiceDSNs(c *composeFile) []string {
	var ps []string
	for _, name := range c.banyanServices() {
		if d, ok := c.Services[name].flag("dsn"); ok {
			ps = append(ps, checkDSN(c, "services."+name+".command --dsn", d)...)
		}
		if l, ok := c.Services[name].flag("listen"); ok {
			ps = append(ps, checkListen(c, name, "services."+name+".command --listen", l)...)
		}
	}
	return ps
}

// checkPrometheus: every scrape target is a compose service and a port
// it listens on (localhost only for Prometheus' own), and the wanted
// targets are all scraped.
func checkPrometheus(c *composeFile, promService string, data []byte, want []string) []string {
	var pc struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(data, &pc); err != nil {
		return []string{"prometheus config: " + err.Error()}
	}
	var ps []string
	scraped := map[string]bool{}
	for _, sc := range pc.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, t := range st.Targets {
				field := fmt.Sprintf("prometheus scrape_configs[%s] target", sc.JobName)
				scraped[t] = true
				if h, p, err := splitHostPort(t); err == nil && (h == "localhost" || h == "127.0.0.1") {
					if !c.Services[promService].containerPorts()[p] {
						ps = append(ps, fmt.Sprintf("%s: %s is not a port of %s", field, t, promService))
					}
					continue
				}
				ps = append(ps, checkAddr(c, field, t)...)
			}
		}
	}
	for _, w := range want {
		if !scraped[w] {
			ps = append(ps, fmt.Sprintf("prometheus: %s is not scraped", w))
		}
	}
	return ps
}

// checkEnvoyBootstrap: the cluster(s) Envoy's ADS config names point at
// the banyan serve service's xDS port.
func checkEnvoyBootstrap(data []byte, xdsAddr string) []string {
	var b map[string]any
	if err := yaml.Unmarshal(data, &b); err != nil {
		return []string{"envoy bootstrap: " + err.Error()}
	}
	// The ADS cluster names: dynamic_resources.ads_config.grpc_services[].envoy_grpc.cluster_name.
	var adsClusters []string
	var direct []string // google_grpc target_uri, when used instead
	ads := dig(b, "dynamic_resources", "ads_config")
	if ads == nil {
		return []string{"envoy bootstrap: no dynamic_resources.ads_config; Envoy would not ask banyan for its config"}
	}
	for _, g := range asList(dig(ads, "grpc_services")) {
		if n, ok := dig(g, "envoy_grpc", "cluster_name").(string); ok {
			adsClusters = append(adsClusters, n)
		}
		if u, ok := dig(g, "google_grpc", "target_uri").(string); ok {
			direct = append(direct, u)
		}
	}
	if len(adsClusters)+len(direct) == 0 {
		return []string{"envoy bootstrap: ads_config has no grpc_services"}
	}
	var ps []string
	for _, u := range direct {
		if u != xdsAddr {
			ps = append(ps, fmt.Sprintf("envoy bootstrap: ADS google_grpc target %s, want banyan's xDS at %s", u, xdsAddr))
		}
	}
	clusters := map[string]any{}
	for _, cl := range asList(dig(b, "static_resources", "clusters")) {
		if n, ok := dig(cl, "name").(string); ok {
			clusters[n] = cl
		}
	}
	for _, name := range adsClusters {
		cl, ok := clusters[name]
		if !ok {
			ps = append(ps, fmt.Sprintf("envoy bootstrap: ADS cluster %q is not in static_resources.clusters", name))
			continue
		}
		var addrs []string
		for _, ep := range asList(dig(cl, "load_assignment", "endpoints")) {
			for _, lb := range asList(dig(ep, "lb_endpoints")) {
				sa := dig(lb, "endpoint", "address", "socket_address")
				addrs = append(addrs, fmt.Sprintf("%v:%v", dig(sa, "address"), dig(sa, "port_value")))
			}
		}
		if len(addrs) == 0 {
			ps = append(ps, fmt.Sprintf("envoy bootstrap: ADS cluster %q has no endpoints", name))
		}
		for _, a := range addrs {
			if a != xdsAddr {
				ps = append(ps, fmt.Sprintf("envoy bootstrap: ADS cluster %q points at %s, want banyan's xDS at %s", name, a, xdsAddr))
			}
		}
	}
	return ps
}

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
