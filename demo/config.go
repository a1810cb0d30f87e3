package demo

import (
	_ "embed"
	"strings"
	"text/template"
)

//go:embed banyan.yaml.tmpl
var configTemplate string

// ConfigParams fill the demo config template.
type ConfigParams struct {
	State     string
	Reports   string
	LegacyURL string
	OrdersURL string
}

// Config renders the demo's banyan config.
func Config(p ConfigParams) string {
	var b strings.Builder
	template.Must(template.New("demo").Parse(configTemplate)).Execute(&b, p)
	return b.String()
}
