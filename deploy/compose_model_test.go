package deploy

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// The subset of the Compose file format the checks read. Both the short
// and the long syntax of each field are accepted, as Compose does.

type composeFile struct {
	Services map[string]*service `yaml:"services"`
	Volumes  map[string]any      `yaml:"volumes"`
	// Rest holds the other top-level keys (name, x-* anchors).
	Rest map[string]any `yaml:",inline"`

	// dir is the folder relative paths resolve against.
	dir string
	// root is the file as parsed, for checks the decoded form hides.
	root *yaml.Node
}

type service struct {
	Image       string       `yaml:"image"`
	Build       *buildSpec   `yaml:"build"`
	Command     stringList   `yaml:"command"`
	Entrypoint  stringList   `yaml:"entrypoint"`
	Environment envMap       `yaml:"environment"`
	EnvFile     stringList   `yaml:"env_file"`
	Volumes     []volumeSpec `yaml:"volumes"`
	Ports       []portSpec   `yaml:"ports"`
	Expose      []string     `yaml:"expose"`
	DependsOn   dependsOn    `yaml:"depends_on"`
	Healthcheck *struct {
		Test    stringList `yaml:"test"`
		Disable bool       `yaml:"disable"`
	} `yaml:"healthcheck"`
	// Rest holds keys not modelled here; knownServiceKeys lists the
	// ones allowed, so a misspelt key is reported.
	Rest map[string]any `yaml:",inline"`
}

var knownServiceKeys = map[string]bool{
	"restart": true, "container_name": true, "hostname": true, "user": true, "working_dir": true,
	"networks": true, "labels": true, "logging": true, "ulimits": true, "stop_grace_period": true,
	"deploy": true, "cap_add": true, "cap_drop": true, "read_only": true, "tmpfs": true,
	"pull_policy": true, "platform": true, "init": true, "profiles": true, "extra_hosts": true,
}

type buildSpec struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

// UnmarshalYAML accepts "build: ." as well as the mapping.
func (b *buildSpec) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		b.Context = n.Value
		return nil
	}
	type plain buildSpec
	return n.Decode((*plain)(b))
}

// stringList is a list, or a string split on white space.
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = strings.Fields(n.Value)
		return nil
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*l = s
	return nil
}

// envMap is "environment:" as a mapping or a list of KEY=VALUE.
type envMap map[string]string

func (e *envMap) UnmarshalYAML(n *yaml.Node) error {
	*e = envMap{}
	if n.Kind == yaml.SequenceNode {
		var items []string
		if err := n.Decode(&items); err != nil {
			return err
		}
		for _, it := range items {
			k, v, _ := strings.Cut(it, "=")
			(*e)[k] = v
		}
		return nil
	}
	var m map[string]*string
	if err := n.Decode(&m); err != nil {
		return err
	}
	for k, v := range m {
		if v != nil {
			(*e)[k] = *v
		} else {
			(*e)[k] = ""
		}
	}
	return nil
}

// volumeSpec is one entry of a service's volumes.
type volumeSpec struct {
	Type     string `yaml:"type"` // bind or volume (tmpfs ignored)
	Source   string `yaml:"source"`
	Target   string `yaml:"target"`
	ReadOnly bool   `yaml:"read_only"`
}

// UnmarshalYAML accepts "src:dst[:mode]" as well as the long mapping.
func (v *volumeSpec) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		type plain volumeSpec
		return n.Decode((*plain)(v))
	}
	parts := strings.Split(n.Value, ":")
	switch len(parts) {
	case 1:
		v.Type, v.Target = "volume", parts[0] // anonymous volume
		return nil
	case 2, 3:
		v.Source, v.Target = parts[0], parts[1]
		if len(parts) == 3 {
			v.ReadOnly = strings.Contains(parts[2], "ro")
		}
	default:
		return fmt.Errorf("line %d: volume %q is not source:target[:mode]", n.Line, n.Value)
	}
	v.Type = "volume"
	if strings.HasPrefix(v.Source, ".") || strings.HasPrefix(v.Source, "/") || strings.HasPrefix(v.Source, "~") {
		v.Type = "bind"
	}
	return nil
}

// portSpec is one published port.
type portSpec struct {
	HostIP    string
	Host      string // "" = Docker picks one
	Container string
	Protocol  string
	raw       string
}

// UnmarshalYAML accepts "[ip:][host:]container[/proto]" and the long mapping.
func (p *portSpec) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		var long struct {
			Target    any    `yaml:"target"`
			Published any    `yaml:"published"`
			HostIP    string `yaml:"host_ip"`
			Protocol  string `yaml:"protocol"`
		}
		if err := n.Decode(&long); err != nil {
			return err
		}
		p.Container, p.HostIP, p.Protocol = fmt.Sprint(long.Target), long.HostIP, long.Protocol
		if long.Published != nil {
			p.Host = fmt.Sprint(long.Published)
		}
		p.raw = fmt.Sprintf("%s:%s:%s", p.HostIP, p.Host, p.Container)
	} else {
		p.raw = n.Value
		s, proto, _ := strings.Cut(n.Value, "/")
		p.Protocol = proto
		// An IPv6 host IP is bracketed; split from the right.
		i := strings.LastIndex(s, ":")
		if i < 0 {
			p.Container = s
		} else {
			p.Container = s[i+1:]
			rest := s[:i]
			j := strings.LastIndex(rest, ":")
			if j < 0 {
				p.Host = rest
			} else {
				p.HostIP, p.Host = strings.Trim(rest[:j], "[]"), rest[j+1:]
			}
		}
	}
	if p.Protocol == "" {
		p.Protocol = "tcp"
	}
	return nil
}

// dependsOn is a list of services or a mapping with conditions.
type dependsOn map[string]string // service -> condition

func (d *dependsOn) UnmarshalYAML(n *yaml.Node) error {
	*d = dependsOn{}
	if n.Kind == yaml.SequenceNode {
		var names []string
		if err := n.Decode(&names); err != nil {
			return err
		}
		for _, s := range names {
			(*d)[s] = "service_started"
		}
		return nil
	}
	var m map[string]struct {
		Condition string `yaml:"condition"`
	}
	if err := n.Decode(&m); err != nil {
		return err
	}
	for s, c := range m {
		if c.Condition == "" {
			c.Condition = "service_started"
		}
		(*d)[s] = c.Condition
	}
	return nil
}

// loadCompose reads a compose file; relative paths resolve against its
// folder, as Compose resolves them.
func loadCompose(path string) (*composeFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := parseCompose(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.dir = filepath.Dir(path)
	return c, nil
}

// parseCompose decodes a compose file and interpolates ${VAR} references
// as Compose does with no variable set (defaults apply), so the checks
// see what a fresh checkout runs with.
func parseCompose(data []byte) (*composeFile, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, err
	}
	var ierr error
	walkScalars(&root, func(n *yaml.Node) {
		v, err := interpolate(n.Value, func(string) (string, bool) { return "", false })
		if err != nil && ierr == nil {
			ierr = fmt.Errorf("line %d: %w", n.Line, err)
		}
		n.Value = v
	})
	if ierr != nil {
		return nil, ierr
	}
	var c composeFile
	if err := root.Decode(&c); err != nil {
		return nil, err
	}
	c.root = &root
	if len(c.Services) == 0 {
		return nil, fmt.Errorf("no services")
	}
	return &c, nil
}

func walkScalars(n *yaml.Node, f func(*yaml.Node)) {
	if n.Kind == yaml.ScalarNode {
		f(n)
	}
	for _, c := range n.Content {
		walkScalars(c, f)
	}
}

var varRE = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// interpolate expands $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
// ${VAR:?err} and $$ the way Compose does.
func interpolate(s string, lookup func(string) (string, bool)) (string, error) {
	var err error
	out := varRE.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		sub := varRE.FindStringSubmatch(m)
		name, op, arg := sub[1], sub[2], sub[3]
		if name == "" {
			name = sub[4]
		}
		v, set := lookup(name)
		switch op {
		case ":-":
			if v == "" {
				return arg
			}
		case "-":
			if !set {
				return arg
			}
		case ":?", "?":
			if !set || (op == ":?" && v == "") {
				err = fmt.Errorf("variable %s must be set: %s", name, arg)
			}
		}
		return v
	})
	return out, err
}

func (c *composeFile) names() []string {
	var out []string
	for n := range c.Services {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// path resolves a path written in the compose file.
func (c *composeFile) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

// containerPorts are the ports a service is declared to listen on: the
// container side of its published ports and its expose list.
func (s *service) containerPorts() map[string]bool {
	ports := map[string]bool{}
	for _, p := range s.Ports {
		ports[p.Container] = true
	}
	for _, e := range s.Expose {
		e, _, _ = strings.Cut(e, "/")
		ports[e] = true
	}
	return ports
}

// flag returns the value of --name or --name=value in the command.
func (s *service) flag(name string) (string, bool) {
	for i, a := range s.Command {
		if a == "--"+name && i+1 < len(s.Command) {
			return s.Command[i+1], true
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// hostPath maps a path inside the service's container to the host path
// bind-mounted there ("" when none is).
func (c *composeFile) hostPath(s *service, inContainer string) string {
	for _, v := range s.Volumes {
		if v.Type != "bind" {
			continue
		}
		if v.Target == inContainer {
			return c.path(v.Source)
		}
		if rel, ok := strings.CutPrefix(inContainer, strings.TrimSuffix(v.Target, "/")+"/"); ok {
			return filepath.Join(c.path(v.Source), rel)
		}
	}
	return ""
}

// splitHostPort is net.SplitHostPort that also reports a bad port.
func splitHostPort(addr string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(addr)
	if err != nil {
		return "", "", err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", "", fmt.Errorf("port %q: %w", port, err)
	}
	return host, port, nil
}
