// Package routes owns banyan's route table: the config file that declares it,
// its validation, the compiled immutable table the data plane reads, sticky
// backend assignment, live weight edits with their history, and rollback.
package routes

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
)

// Config is the whole banyan config file. Sections for other jobs are added
// beside the ones here as those jobs land; an unknown key is a load error.
type Config struct {
	Listen   string                   `yaml:"listen"`
	Admin    AdminConfig              `yaml:"admin"`
	State    string                   `yaml:"state"`
	Override OverrideConfig           `yaml:"override"`
	Forward  ForwardConfig            `yaml:"forwarded"`
	Backends map[string]BackendConfig `yaml:"backends"`
	Routes   []RouteConfig            `yaml:"routes"`

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
}

// MatchConfig selects requests. An empty match is the catch-all default
// route and must come last.
type MatchConfig struct {
	Path         string            `yaml:"path"`
	PathPrefix   string            `yaml:"path_prefix"`
	PathTemplate string            `yaml:"path_template"`
	Methods      []string          `yaml:"methods"`
	Headers      map[string]string `yaml:"headers"`
}

// IsEmpty reports whether the match selects every request.
func (m MatchConfig) IsEmpty() bool {
	return m.Path == "" && m.PathPrefix == "" && m.PathTemplate == "" && len(m.Methods) == 0 && len(m.Headers) == 0
}

// StickyConfig names where the user's key is read from.
type StickyConfig struct {
	Cookie string `yaml:"cookie"`
	Header string `yaml:"header"`
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

// Load reads, defaults, env-overrides and validates the config at path.
// The returned error is a *ValidationError listing every problem when the
// file parses but is wrong, or a wrapped I/O / syntax error otherwise.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(data)
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
func Parse(data []byte) (*Config, error) {
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, errEOF) {
		return nil, &ValidationError{Problems: yamlProblems(err)}
	}
	applyEnv(&cfg)
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// errEOF is what yaml.v3 returns for an empty document.
var errEOF = func() error {
	var v any
	return yaml.NewDecoder(strings.NewReader("")).Decode(&v)
}()

func yamlProblems(err error) []Problem {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		ps := make([]Problem, 0, len(te.Errors))
		for _, e := range te.Errors {
			ps = append(ps, Problem{Field: "yaml", Why: e})
		}
		return ps
	}
	return []Problem{{Field: "yaml", Why: err.Error()}}
}

// envKeys are the settings BANYAN_* variables override, e.g.
// BANYAN_LISTEN or BANYAN_ADMIN_LISTEN.
var envKeys = []string{"listen", "admin.listen", "admin.token_env", "state", "override.header"}

// applyEnv lets BANYAN_* variables override the common top-level settings.
// viper is used only for this layer: decoding the file itself is done by
// yaml.v3 because viper lower-cases map keys (backend names, JSON paths).
func applyEnv(cfg *Config) {
	v := viper.New()
	v.SetEnvPrefix("BANYAN")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	targets := map[string]*string{
		"listen":          &cfg.Listen,
		"admin.listen":    &cfg.Admin.Listen,
		"admin.token_env": &cfg.Admin.TokenEnv,
		"state":           &cfg.State,
		"override.header": &cfg.Override.Header,
	}
	for _, k := range envKeys {
		if s := v.GetString(k); s != "" {
			*targets[k] = s
		}
	}
}

func (c *Config) applyDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
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

// StatePath is where live edits and history are kept: State resolved
// against the config file's folder.
func (c *Config) StatePath() string {
	if filepath.IsAbs(c.State) || c.Path == "" {
		return c.State
	}
	return filepath.Join(filepath.Dir(c.Path), c.State)
}
