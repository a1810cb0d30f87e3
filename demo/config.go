package demo

import (
	_ "embed"
	"strings"
	"text/template"
)

//go:embed banyan.yaml.tmpl
var configTemplate string

// ConfigParams fill the demo config template. SourceDSN and TargetDSN are
// set when the demo runs with databases (then the cdc section is added).
type ConfigParams struct {
	State     string
	Reports   string
	LegacyURL string
	OrdersURL string
	SourceDSN string
	TargetDSN string
}

// Config renders the demo's banyan config.
func Config(p ConfigParams) string {
	var b strings.Builder
	data := struct {
		ConfigParams
		StatusCodes string
	}{p, StatusCodes}
	template.Must(template.New("demo").Parse(configTemplate)).Execute(&b, data)
	return b.String()
}
