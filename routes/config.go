// Package routes owns banyan's route table: the config file that declares it,
// its validation, the compiled immutable table the data plane reads, sticky
// backend assignment, live weight edits with their history, and rollback.
package routes

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"
)

// DefaultOverrideHeader is the request header that forces a backend when the
// config does not name another one.
const DefaultOverrideHeader = "X-Banyan-Backend"

// Defaults applied by Load before validation.
const (
	DefaultListen         = "127.0.0.1:8080"
	DefaultAdminListen    = "127.0.0.1:9901"
	DefaultTokenEnv       = "BANYAN_ADMIN_TOKEN"
	DefaultState          = "banyan-state.db"
	DefaultBackendTimeout = 30 * time.Second
	// DefaultSpillRows is cdc.spill_rows: row changes of one source
	// transaction held in memory before the rest go to a temporary file.
	DefaultSpillRows = 10000
)

// Config is the whole banyan config file. Sections for other jobs are added
// beside the ones here as those jobs land; an unknown key is a load error.
type Config struct {
	Listen string `yaml:"listen"`
	// FastPath is "on" (the default: plain HTTP/1.1 requests are served by
	// banyan's own connection loop, everything else by net/http) or "off"
	// (net/http and httputil.ReverseProxy serve every request). "on" runs
	// the loop on goroutines ("goroutines" says so too); "io_uring" runs
	// it on io_uring loops, one per CPU, and serve fails where the kernel
	// refuses io_uring (ADR 0006).
	FastPath string                   `yaml:"fast_path"`
	Admin    AdminConfig              `yaml:"admin"`
	State    string                   `yaml:"state"`
	Override OverrideConfig           `yaml:"override"`
	Forward  ForwardConfig            `yaml:"forwarded"`
	Backends map[string]BackendConfig `yaml:"backends"`
	Routes   []RouteConfig            `yaml:"routes"`
	Shadow   ShadowPoolConfig         `yaml:"shadow"`
	Reports  ReportsConfig            `yaml:"reports"`
	CDC      CDCConfig                `yaml:"cdc"`
	XDS      XDSConfig                `yaml:"xds"`
	// Comparator receives requests mirrored by Envoy and compares the
	// two sides itself, as the built-in shadowing does.
	Comparator ComparatorConfig `yaml:"comparator"`

	// Path is the file the config was read from ("" when built in code).
	Path string `yaml:"-"`
}

// AdminConfig is the admin listener: JSON API, metrics and health.
type AdminConfig struct {
	Listen string `yaml:"listen"`
	// TokenEnv names the environment variable holding the bearer token(s):
	// "TOKEN" or "label:TOKEN,label2:TOKEN2".
	TokenEnv string `yaml:"token_env"`
}

// OverrideConfig controls the header that lets testers force a backend.
type OverrideConfig struct {
	Header   string `yaml:"header"`
	Disabled bool   `yaml:"disabled"`
}

// ForwardConfig controls X-Forwarded-* handling.
type ForwardConfig struct {
	// Trust keeps an incoming X-Forwarded-For chain and appends the client
	// address; set it only when banyan sits behind a trusted load balancer.
	Trust bool `yaml:"trust"`
}

// BackendConfig is one upstream service.
type BackendConfig struct {
	URL string `yaml:"url"`
	// Timeout bounds the wait for response headers (504 when exceeded).
	Timeout time.Duration `yaml:"timeout"`
	// Host is "preserve" (send the client's Host, the default), "backend"
	// (the backend URL's host) or a literal host name.
	Host string `yaml:"host"`
}

// RouteConfig is one route as written in the file.
type RouteConfig struct {
	Name   string         `yaml:"name"`
	Match  MatchConfig    `yaml:"match"`
	Split  map[string]int `yaml:"split"`
	Sticky StickyConfig   `yaml:"sticky"`
	Shadow ShadowConfig   `yaml:"shadow"`
	Diff   DiffConfig     `yaml:"diff"`
}

// ShadowConfig mirrors a sample of a route's requests to the other side of
// its legacy/new pair and compares the answers.
type ShadowConfig struct {
	// Percent of requests mirrored (0 = off). With a sticky key the
	// sample is consistent per user.
	Percent int `yaml:"percent"`
	// Writes is "skip" (default: POST/PUT/PATCH/DELETE are never mirrored)
	// or "dry-run" (mirrored with X-Banyan-Shadow: 1).
	Writes string `yaml:"writes"`
	// Legacy names the legacy backend of the compared pair (default
	// "legacy"); the other backend of the split is the new side.
	Legacy string `yaml:"legacy"`
	// New names the new backend when the split has more than two.
	New string `yaml:"new"`
	// Timeout bounds each shadow call (default 5s).
	Timeout time.Duration `yaml:"timeout"`
	// MaxBody: requests with larger bodies are not mirrored (default 1 MiB).
	MaxBody Size `yaml:"max_body"`
	// NoisePercent of mirrored requests also call the legacy side a
	// second time to learn which fields differ on their own (default 10;
	// every request until the route has 20 such samples).
	NoisePercent *int `yaml:"noise_percent"`
}

// Shadow write modes.
const (
	WritesSkip   = "skip"
	WritesDryRun = "dry-run"
)

// DiffConfig holds a route's comparison rules (see package diff).
type DiffConfig struct {
	Headers        []string          `yaml:"headers" json:"headers,omitempty"`
	Ignore         []string          `yaml:"ignore" json:"ignore,omitempty"`
	Unordered      Unordered         `yaml:"unordered" json:"unordered,omitempty"`
	Tolerance      map[string]string `yaml:"tolerance" json:"tolerance,omitempty"`
	Timestamps     bool              `yaml:"timestamps" json:"timestamps,omitempty"`
	NumericStrings bool              `yaml:"numeric_strings" json:"numeric_strings,omitempty"`
}

// Unordered maps array paths to the field that keys their elements ("" =
// compare as a multiset). In YAML it is a list of paths or a path: key map.
type Unordered map[string]string

// UnmarshalYAML accepts ["$.items"] as well as {"$.items": "sku"}.
func (u *Unordered) UnmarshalYAML(n *yaml.Node) error {
	*u = Unordered{}
	if n.Kind == yaml.SequenceNode {
		var paths []string
		if err := n.Decode(&paths); err != nil {
			return err
		}
		for _, p := range paths {
			(*u)[p] = ""
		}
		return nil
	}
	var m map[string]string
	if err := n.Decode(&m); err != nil {
		return err
	}
	for k, v := range m {
		(*u)[k] = v
	}
	return nil
}

// ShadowPoolConfig sizes the shared shadow worker pool.
type ShadowPoolConfig struct {
	Workers int `yaml:"workers"` // default 8
	Queue   int `yaml:"queue"`   // default 1000; when full, new mirrors are dropped and counted
	// CompareBody caps how much of each answer is kept for comparison
	// (default 1 MiB); a longer body is compared as truncated text.
	CompareBody Size `yaml:"compare_body"`
}

// ReportsConfig is where compared pairs are stored.
type ReportsConfig struct {
	Store       string        `yaml:"store"`        // SQLite file, beside the config (default banyan.db)
	Redact      []string      `yaml:"redact"`       // JSON paths masked before anything is stored
	MaxAge      time.Duration `yaml:"max_age"`      // default 168h
	MaxOutcomes int           `yaml:"max_outcomes"` // default 1,000,000
	Examples    int           `yaml:"examples"`     // full examples per route and field path (default 5)
}

// XDSConfig serves the route table to an Envoy fleet over ADS.
type XDSConfig struct {
	// Listen is the ADS gRPC address ("" = xDS off).
	Listen string `yaml:"listen"`
	// NodeGroup groups Envoy nodes that share one snapshot: "cluster"
	// (the node's cluster name, default) or "id" (one snapshot per node).
	NodeGroup string `yaml:"node_group"`
	// ListenerAddress is where Envoy's generated listener binds
	// (default 0.0.0.0:10000).
	ListenerAddress string `yaml:"listener_address"`
	// Comparator is the host:port Envoy mirrors shadowed requests to: a
	// banyan running with comparator.listen (default comparator.listen).
	Comparator string `yaml:"comparator"`
}

// ComparatorConfig is banyan's comparator listener for Envoy mirrors.
type ComparatorConfig struct {
	Listen string `yaml:"listen"` // "" = off
}

// CDCConfig is the binlog pipeline from the legacy database to the new one.
type CDCConfig struct {
	Source CDCSource      `yaml:"source"`
	Target CDCTarget      `yaml:"target"`
	Tables []TableMapping `yaml:"tables"`
	// BatchRows caps the rows applied in one target transaction (default 1000).
	BatchRows int `yaml:"batch_rows"`
	// ChunkRows is the initial copy's chunk size (default 1000).
	ChunkRows int `yaml:"chunk_rows"`
	// SourceTimezone is the zone of the legacy DATETIME values, for the
	// local_to_utc converter (default Local).
	SourceTimezone string `yaml:"source_timezone"`
	// SpillRows is how many row changes of one source transaction are held
	// in memory; past it they go to a temporary file in SpillDir until the
	// transaction is applied (default 10000).
	SpillRows int `yaml:"spill_rows"`
	// SpillDir is where those files go (default: the system's temporary
	// directory, $TMPDIR or /tmp). It needs room for the largest source
	// transaction's row images.
	SpillDir string `yaml:"spill_dir"`
}

// CDCSource is the legacy MySQL/MariaDB server.
type CDCSource struct {
	// DSN is a go-sql-driver DSN; ${NAME} in it is replaced with the
	// environment variable NAME (e.g. a password).
	DSN      string `yaml:"dsn"`
	Flavor   string `yaml:"flavor"`    // mysql or mariadb (default mariadb)
	ServerID uint32 `yaml:"server_id"` // replica id banyan registers with (default 4051)
	// Position is "gtid" (default) or "file" to resume by file:pos.
	Position string `yaml:"position"`
}

// CDCTarget is the new service's database.
type CDCTarget struct {
	DSN string `yaml:"dsn"`
}

// TableMapping maps one legacy table to one new table.
type TableMapping struct {
	Source string `yaml:"source"` // db.table
	Target string `yaml:"target"` // db.table
	// Columns renames: source column -> target column. Columns not listed
	// keep their name unless Only is set.
	Columns map[string]string `yaml:"columns"`
	// Skip lists source columns not copied.
	Skip []string `yaml:"skip"`
	// Only, when set, copies just the columns named in Columns.
	Only bool `yaml:"only"`
	// Convert names a converter per source column: yuan_to_cents,
	// tinyint_to_bool, local_to_utc.
	Convert map[string]string `yaml:"convert"`
}

// Size is a byte count written as 1048576, "512KiB" or "1MiB".
type Size int64

// UnmarshalYAML parses plain numbers and KiB/MiB/GiB (or KB/MB/GB, the
// same powers of two) suffixes.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		// A TypeError lets the decoder go on, so other problems are listed too.
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*s = v
	return nil
}

// ParseSize reads a Size.
func ParseSize(str string) (Size, error) {
	t := strings.TrimSpace(str)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: write a byte count like 1048576, 512KiB or 1MiB", str)
	}
	return Size(n * mult), nil
}

// MatchConfig selects requests. An empty match is the catch-all default
// route and must come last.
type MatchConfig struct {
	Path         string            `yaml:"path" json:"path,omitempty"`
	PathPrefix   string            `yaml:"path_prefix" json:"path_prefix,omitempty"`
	PathTemplate string            `yaml:"path_template" json:"path_template,omitempty"`
	Methods      []string          `yaml:"methods" json:"methods,omitempty"`
	Headers      map[string]string `yaml:"headers" json:"headers,omitempty"`
}

// RequestMethods is the methods a request matching m may have: those
// listed and, with GET, HEAD too, since a HEAD is a GET without its body
// (RFC 9110 9.3.2) and must reach the backend the GET would. nil when m
// takes any method.
func (m MatchConfig) RequestMethods() []string {
	if slices.Contains(m.Methods, http.MethodGet) && !slices.Contains(m.Methods, http.MethodHead) {
		return append(slices.Clip(m.Methods), http.MethodHead)
	}
	return m.Methods
}

// IsEmpty reports whether the match selects every request.
func (m MatchConfig) IsEmpty() bool {
	return m.Path == "" && m.PathPrefix == "" && m.PathTemplate == "" && len(m.Methods) == 0 && len(m.Headers) == 0
}

// StickyConfig names where the user's key is read from.
type StickyConfig struct {
	Cookie string `yaml:"cookie" json:"cookie,omitempty"`
	Header string `yaml:"header" json:"header,omitempty"`
}

// Problem is one thing wrong with a config, naming the field.
type Problem struct {
	Field string `json:"field"`
	Why   string `json:"why"`
}

func (p Problem) String() string { return p.Field + ": " + p.Why }

// ValidationError lists every problem found in a config at once.
type ValidationError struct {
	File     string
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	name := e.File
	if name == "" {
		name = "config"
	}
	fmt.Fprintf(&b, "%s: %d problem(s):", name, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.String())
	}
	return b.String()
}

// ErrInvalidConfig is matched by errors.Is for every config load or
// validation failure.
var ErrInvalidConfig = errors.New("invalid config")

func (e *ValidationError) Is(target error) bool { return target == ErrInvalidConfig }

// Check is an extra validation that packages which own parts of the config
// (diff rules, reports) contribute; its problems join Validate's.
type Check func(*Config) []Problem

// Load reads, defaults, env-overrides and validates the config at path.
// The returned error is a *ValidationError listing every problem when the
// file parses but is wrong, or a wrapped I/O / syntax error otherwise.
func Load(path string, checks ...Check) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(data, checks...)
	if err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			ve.File = path
		}
		return nil, err
	}
	cfg.Path = path
	return cfg, nil
}

// Parse decodes a config from YAML, applies defaults and BANYAN_* env
// overrides, and validates it.
func Parse(data []byte, checks ...Check) (*Config, error) {
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// A type error (wrong kind of value, unknown key) still decodes the
	// rest, so it is listed with the other problems; a syntax error ends
	// the parse.
	var ps []Problem
	var te *yaml.TypeError
	if err := dec.Decode(&cfg); errors.As(err, &te) {
		for _, e := range te.Errors {
			ps = append(ps, Problem{Field: "yaml", Why: e})
		}
	} else if err != nil && !errors.Is(err, errEOF) {
		return nil, &ValidationError{Problems: []Problem{{Field: "yaml", Why: err.Error()}}}
	}
	// yaml.v3 drops a whole mapping that holds a key twice (reported
	// above), so a file with two "legacy:" backends would also be told it
	// has none. Read it again with each later duplicate left out, so what
	// else is wrong in that mapping is listed too. Unknown keys are checked
	// by the first read only.
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) == nil && dropDuplicateKeys(&doc) {
		var again Config
		err := doc.Decode(&again)
		var te2 *yaml.TypeError
		if errors.As(err, &te2) {
			reported := map[string]bool{}
			for _, p := range ps {
				reported[p.Why] = true
			}
			for _, e := range te2.Errors {
				if !reported[e] {
					ps = append(ps, Problem{Field: "yaml", Why: e})
				}
			}
		}
		if err == nil || te2 != nil {
			cfg = again
		}
	}
	fromEnv := applyEnv(&cfg)
	ps = append(ps, cfg.expandSecrets()...)
	cfg.applyDefaults()
	var ve *ValidationError
	if err := cfg.Validate(); errors.As(err, &ve) {
		ps = append(ps, ve.Problems...)
	}
	for _, check := range checks {
		ps = append(ps, check(&cfg)...)
	}
	// A value a BANYAN_* variable set is not in the file: say where it is.
	for i, p := range ps {
		if env, ok := fromEnv[p.Field]; ok {
			ps[i].Why += fmt.Sprintf(" (set by the environment variable %s, which overrides the file: fix or unset it)", env)
		}
	}
	if len(ps) > 0 {
		return nil, &ValidationError{Problems: ps}
	}
	return &cfg, nil
}

// dropDuplicateKeys removes, in every mapping under n, each key (with its
// value) that an earlier key of the same mapping already has, and reports
// whether it removed any.
func dropDuplicateKeys(n *yaml.Node) bool {
	dropped := false
	if n.Kind == yaml.MappingNode {
		kept := n.Content[:0]
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			id := fmt.Sprint(k.Kind, k.Value) // as yaml.v3 tells duplicates: 1 and "1" are one key
			if k.Kind == yaml.ScalarNode && seen[id] {
				dropped = true
				continue
			}
			seen[id] = true
			kept = append(kept, k, n.Content[i+1])
		}
		n.Content = kept
	}
	for _, c := range n.Content {
		if dropDuplicateKeys(c) {
			dropped = true
		}
	}
	return dropped
}

// expandSecrets replaces each ${NAME} in the DSNs with the environment
// variable NAME, so passwords need not sit in the file. Only the braced
// form is expanded: a lone '$' in a password stays as written. A variable
// that is not set is a problem, not an empty password.
func (c *Config) expandSecrets() []Problem {
	var ps []Problem
	for _, f := range []struct {
		field string
		value *string
	}{{"cdc.source.dsn", &c.CDC.Source.DSN}, {"cdc.target.dsn", &c.CDC.Target.DSN}} {
		var missing []string
		*f.value = secretRE.ReplaceAllStringFunc(*f.value, func(ref string) string {
			name := ref[2 : len(ref)-1]
			v, ok := os.LookupEnv(name)
			if !ok {
				missing = append(missing, name)
			}
			return v
		})
		for _, name := range missing {
			ps = append(ps, Problem{Field: f.field, Why: fmt.Sprintf("refers to ${%s}, but the environment variable %s is not set", name, name)})
		}
	}
	return ps
}

var secretRE = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*\}`)

// errEOF is what yaml.v3 returns for an empty document.
var errEOF = func() error {
	var v any
	return yaml.NewDecoder(strings.NewReader("")).Decode(&v)
}()

// envKeys are the settings BANYAN_* variables override, e.g.
// BANYAN_LISTEN or BANYAN_ADMIN_LISTEN.
var envKeys = []string{"listen", "fast_path", "admin.listen", "admin.token_env", "state", "override.header"}

// applyEnv lets BANYAN_* variables override the common top-level settings
// and returns the variable that set each overridden field, by field name.
// viper is used only for this layer: decoding the file itself is done by
// yaml.v3 because viper lower-cases map keys (backend names, JSON paths).
func applyEnv(cfg *Config) map[string]string {
	v := viper.New()
	v.SetEnvPrefix("BANYAN")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	targets := map[string]*string{
		"listen":          &cfg.Listen,
		"fast_path":       &cfg.FastPath,
		"admin.listen":    &cfg.Admin.Listen,
		"admin.token_env": &cfg.Admin.TokenEnv,
		"state":           &cfg.State,
		"override.header": &cfg.Override.Header,
	}
	set := map[string]string{}
	for _, k := range envKeys {
		if s := v.GetString(k); s != "" {
			*targets[k] = s
			set[k] = "BANYAN_" + strings.ToUpper(strings.ReplaceAll(k, ".", "_"))
		}
	}
	return set
}

func (c *Config) applyDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.FastPath == "" {
		c.FastPath = "on"
	}
	if c.Admin.Listen == "" {
		c.Admin.Listen = DefaultAdminListen
	}
	if c.Admin.TokenEnv == "" {
		c.Admin.TokenEnv = DefaultTokenEnv
	}
	if c.State == "" {
		c.State = DefaultState
	}
	if c.Override.Header == "" {
		c.Override.Header = DefaultOverrideHeader
	}
	if c.Shadow.Workers == 0 {
		c.Shadow.Workers = 8
	}
	if c.Shadow.Queue == 0 {
		c.Shadow.Queue = 1000
	}
	if c.Shadow.CompareBody == 0 {
		c.Shadow.CompareBody = 1 << 20
	}
	if c.Reports.Store == "" {
		c.Reports.Store = "banyan.db"
	}
	if c.Reports.MaxAge == 0 {
		c.Reports.MaxAge = 7 * 24 * time.Hour
	}
	if c.Reports.MaxOutcomes == 0 {
		c.Reports.MaxOutcomes = 1_000_000
	}
	if c.Reports.Examples == 0 {
		c.Reports.Examples = 5
	}
	if c.XDS.NodeGroup == "" {
		c.XDS.NodeGroup = "cluster"
	}
	if c.XDS.ListenerAddress == "" {
		c.XDS.ListenerAddress = "0.0.0.0:10000"
	}
	if c.XDS.Comparator == "" {
		c.XDS.Comparator = c.Comparator.Listen
	}
	if c.CDC.BatchRows == 0 {
		c.CDC.BatchRows = 1000
	}
	if c.CDC.ChunkRows == 0 {
		c.CDC.ChunkRows = 1000
	}
	if c.CDC.SpillRows == 0 {
		c.CDC.SpillRows = DefaultSpillRows
	}
	if c.CDC.Source.Flavor == "" {
		c.CDC.Source.Flavor = "mariadb"
	}
	if c.CDC.Source.ServerID == 0 {
		c.CDC.Source.ServerID = 4051
	}
	if c.CDC.Source.Position == "" {
		c.CDC.Source.Position = "gtid"
	}
	for i := range c.Routes {
		sh := &c.Routes[i].Shadow
		if sh.Writes == "" {
			sh.Writes = WritesSkip
		}
		if sh.Legacy == "" {
			sh.Legacy = "legacy"
		}
		if sh.Timeout == 0 {
			sh.Timeout = 5 * time.Second
		}
		if sh.MaxBody == 0 {
			sh.MaxBody = 1 << 20
		}
		if sh.NoisePercent == nil {
			ten := 10
			sh.NoisePercent = &ten
		}
	}
	for name, b := range c.Backends {
		if b.Timeout == 0 {
			b.Timeout = DefaultBackendTimeout
		}
		if b.Host == "" {
			b.Host = "preserve"
		}
		c.Backends[name] = b
	}
}

// ReportsPath is the reports store resolved against the config's folder.
func (c *Config) ReportsPath() string { return c.resolve(c.Reports.Store) }

// StatePath is where live edits and history are kept: State resolved
// against the config file's folder.
func (c *Config) StatePath() string { return c.resolve(c.State) }

func (c *Config) resolve(p string) string {
	if filepath.IsAbs(p) || c.Path == "" {
		return p
	}
	return filepath.Join(filepath.Dir(c.Path), p)
}
