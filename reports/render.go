package reports

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/banyanhq/banyan/diff"
)

// Text report limits: the JSON form always has every field.
const (
	textDiffFields  = 10
	textNoiseFields = 5
	exampleWidth    = 60
)

// WriteJSON writes r in its stable JSON form (see Report), indented.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// WriteText writes r as a readable table per route: counts and rates,
// latency percentiles legacy vs new, the top differing field paths
// (differences first, then noise) with one redacted example each, and a
// one-line verdict per route and for the whole report.
func WriteText(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	since := "everything kept"
	if !r.Since.IsZero() {
		since = "since " + r.Since.UTC().Format(time.DateTime) + " UTC"
	}
	fmt.Fprintf(ew, "banyan report, %s (generated %s UTC)\n", since, r.Generated.UTC().Format(time.DateTime))
	if len(r.Routes) == 0 {
		fmt.Fprintln(ew, "\nno compared pairs")
	}
	for _, rt := range r.Routes {
		fmt.Fprintf(ew, "\n%s\n", rt.Route)
		fmt.Fprintf(ew, "  compared %d, matched %d (%s), diffs %d (%s), noise-only %d (%s), errors %d (%s); match rate %s\n",
			rt.Compared, rt.Matched, pct(rt.Matched, rt.Compared), rt.Diffs, pct(rt.Diffs, rt.Compared),
			rt.NoiseOnly, pct(rt.NoiseOnly, rt.Compared), rt.Errors, pct(rt.Errors, rt.Compared), matchPct(rt))
		fmt.Fprintf(ew, "  %-10s %8s %8s\n", "latency ms", "p50", "p99")
		fmt.Fprintf(ew, "  %-10s %8s %8s\n", "legacy", ms(rt.LatencyMS.Legacy.P50), ms(rt.LatencyMS.Legacy.P99))
		fmt.Fprintf(ew, "  %-10s %8s %8s\n", "new", ms(rt.LatencyMS.New.P50), ms(rt.LatencyMS.New.P99))
		if len(rt.Fields) > 0 {
			tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "  field path\tcount\tkind\texample\n")
			shownDiff, shownNoise, hidden := 0, 0, 0
			for _, f := range rt.Fields {
				if (!f.Noise && shownDiff == textDiffFields) || (f.Noise && shownNoise == textNoiseFields) {
					hidden++
					continue
				}
				if f.Noise {
					shownNoise++
				} else {
					shownDiff++
				}
				kind := string(f.Kind)
				if f.Noise {
					kind += " (noise)"
				}
				fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\n", f.Path, f.Count, kind, exampleText(f.Example))
			}
			tw.Flush()
			if hidden > 0 {
				fmt.Fprintf(ew, "  ... %d more field paths (--format json lists all)\n", hidden)
			}
		}
		fmt.Fprintf(ew, "  verdict: %s\n", routeVerdict(rt))
	}
	fmt.Fprintf(ew, "\n%s\n", reportVerdict(r))
	return ew.err
}

// errWriter keeps the first write error so rendering code can ignore it.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

// routeVerdict is one line saying what the numbers mean for the route.
// The summary of line differences not listed (kind more) is not a field
// path: it is neither counted nor named.
func routeVerdict(rt RouteReport) string {
	var paths []string
	for _, f := range rt.Fields {
		if !f.Noise && f.Kind != diff.More {
			paths = append(paths, f.Path)
		}
	}
	switch {
	case rt.Compared == 0:
		return "NO DATA, nothing compared"
	case rt.Diffs > 0:
		s := fmt.Sprintf("DIFFERS, %d of %d pairs (%s) differ", rt.Diffs, rt.Compared, pct(rt.Diffs, rt.Compared))
		if len(paths) > 0 {
			s += fmt.Sprintf(" in %d field %s, most often %s", len(paths), plural(len(paths), "path", "paths"), paths[0])
		}
		if rt.Errors > 0 {
			s += fmt.Sprintf("; %d could not be compared", rt.Errors)
		}
		return s
	case rt.Errors > 0:
		return fmt.Sprintf("ERRORS, %d of %d pairs (%s) could not be compared; the rest agree", rt.Errors, rt.Compared, pct(rt.Errors, rt.Compared))
	case rt.NoiseOnly > 0:
		return fmt.Sprintf("MATCHES, all %d pairs agree (%d differ only in noise)", rt.Compared, rt.NoiseOnly)
	}
	return fmt.Sprintf("MATCHES, all %d pairs agree", rt.Compared)
}

// reportVerdict is the report's last line.
func reportVerdict(r *Report) string {
	bad := 0
	for _, rt := range r.Routes {
		if rt.Diffs > 0 || rt.Errors > 0 {
			bad++
		}
	}
	if len(r.Routes) == 0 {
		return "verdict: none, nothing compared"
	}
	if bad == 0 {
		return fmt.Sprintf("verdict: %d %s compared, no differences", len(r.Routes), plural(len(r.Routes), "route", "routes"))
	}
	return fmt.Sprintf("verdict: %d of %d %s with differences or errors", bad, len(r.Routes), plural(len(r.Routes), "route", "routes"))
}

func exampleText(e *FieldExample) string {
	if e == nil {
		return "-"
	}
	if m := moreText(e.kind, e.Lines); m != "" {
		return e.URL + ": " + m
	}
	return e.URL + ": " + clip(legacyText(e.kind, e.Legacy), exampleWidth/2) + " -> " + clip(newText(e.kind, e.New), exampleWidth/2)
}

// moreText says how many line differences a difference of kind k sums
// up when k is More, and is "" for any other kind.
func moreText(k diff.Kind, lines int) string {
	if k != diff.More {
		return ""
	}
	return fmt.Sprintf("… and %d more differing %s", lines, plural(lines, "line", "lines"))
}

// legacyText renders the legacy value of a difference of kind k as compact
// JSON: "(absent)" when k says legacy has none (Extra), null for a JSON
// null.
func legacyText(k diff.Kind, v any) string { return valueText(k, v, diff.Extra) }

// newText renders the new value of a difference of kind k as compact
// JSON: "(absent)" when k says new has none (Missing), null for a JSON
// null.
func newText(k diff.Kind, v any) string { return valueText(k, v, diff.Missing) }

// valueText renders one side's value v of a difference of kind k; absent
// is the kind that has no value on that side. An Order difference of rows
// carries no values ("-"). Numbers keep their digits (json.Number prints
// as written).
func valueText(k diff.Kind, v any, absent diff.Kind) string {
	switch {
	case v != nil:
	case k == absent:
		return "(absent)"
	case k == diff.Order:
		return "-"
	}
	b, err := encodeJSON(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// pct is n as a share of of, to one decimal; a share that is not none
// never prints as 0.0% ("<0.1%") and one that is not all never as 100.0%
// (">99.9%"), so one differing pair in 100,000 still shows.
func pct(n, of int64) string {
	if of == 0 {
		return "-"
	}
	s := fmt.Sprintf("%.1f%%", float64(n)*100/float64(of))
	switch {
	case n > 0 && s == "0.0%":
		return "<0.1%"
	case n < of && s == "100.0%":
		return ">99.9%"
	}
	return s
}

// matchPct is a route's match rate as pct shows it.
func matchPct(rt RouteReport) string { return pct(rt.Matched+rt.NoiseOnly, rt.Compared) }

func ms(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// WriteHTML writes r as a standalone page (inline CSS, no scripts, no
// external assets).
func WriteHTML(w io.Writer, r *Report) error {
	return pages.ExecuteTemplate(w, "report", r)
}

var funcs = template.FuncMap{
	"pct":            pct,
	"matchPct":       func(v any) string { return matchPct(routeOf(v)) },
	"ms":             ms,
	"verdict":        func(v any) string { return routeVerdict(routeOf(v)) },
	"overall":        reportVerdict,
	"legacyValue":    func(d diff.Difference) string { return clip(legacyText(d.Kind, d.Legacy), 200) },
	"newValue":       func(d diff.Difference) string { return clip(newText(d.Kind, d.New), 200) },
	"exampleLegacy":  func(e *FieldExample) string { return clip(legacyText(e.kind, e.Legacy), 200) },
	"exampleNew":     func(e *FieldExample) string { return clip(newText(e.kind, e.New), 200) },
	"exampleMore":    func(e *FieldExample) string { return moreText(e.kind, e.Lines) },
	"differenceMore": func(d diff.Difference) string { return moreText(d.Kind, d.Lines) },
	"when":           func(t time.Time) string { return t.UTC().Format(time.DateTime) + " UTC" },
	"clean":          func(v any) bool { rt := routeOf(v); return rt.Diffs == 0 && rt.Errors == 0 },
	"isoTime":        func(t time.Time) bool { return !t.IsZero() },
	"pretty":         prettyBody,
	"kindText":       func(d diff.Difference) string { return string(d.Kind) },
	"join":           strings.Join,
}

// routeOf lets templates pass a RouteReport or a pointer to one.
func routeOf(v any) RouteReport {
	switch x := v.(type) {
	case *RouteReport:
		return *x
	case RouteReport:
		return x
	}
	return RouteReport{}
}

// prettyBody indents a JSON body for reading, keeping every number as
// written; other bodies are shown as they are.
func prettyBody(s string) string {
	var buf bytes.Buffer
	if json.Indent(&buf, []byte(s), "", "  ") != nil {
		return s
	}
	return buf.String()
}

var pages = template.Must(template.New("pages").Funcs(funcs).Parse(pageTemplates))

const pageTemplates = `
{{define "style"}}<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1100px}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .7em;text-align:left;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.noise{color:#888}.bad{color:#b00;font-weight:600}.good{color:#070;font-weight:600}
code,pre{font:12px/1.3 ui-monospace,monospace}pre{background:#f7f7f7;padding:.6em;overflow:auto;max-height:30em;white-space:pre-wrap}
svg{background:#fafafa;border:1px solid #ddd}.sel{background:#fff6d0}
</style>{{end}}

{{define "example"}}{{with .}}<code>{{.URL}}</code>: {{with exampleMore .}}{{.}}{{else}}<code>{{exampleLegacy .}}</code> &rarr; <code>{{exampleNew .}}</code>{{end}}{{else}}-{{end}}{{end}}

{{define "routeTable"}}
<table>
<tr><th>compared</th><th>matched</th><th>diffs</th><th>noise-only</th><th>errors</th><th>match rate</th></tr>
<tr><td class="n">{{.Compared}}</td><td class="n">{{.Matched}} ({{pct .Matched .Compared}})</td><td class="n">{{.Diffs}} ({{pct .Diffs .Compared}})</td>
<td class="n">{{.NoiseOnly}} ({{pct .NoiseOnly .Compared}})</td><td class="n">{{.Errors}} ({{pct .Errors .Compared}})</td><td class="n">{{matchPct .}}</td></tr>
</table>
<table>
<tr><th>latency ms</th><th>p50</th><th>p99</th></tr>
<tr><td>legacy</td><td class="n">{{ms .LatencyMS.Legacy.P50}}</td><td class="n">{{ms .LatencyMS.Legacy.P99}}</td></tr>
<tr><td>new</td><td class="n">{{ms .LatencyMS.New.P50}}</td><td class="n">{{ms .LatencyMS.New.P99}}</td></tr>
</table>
{{end}}

{{define "report"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>banyan report</title>{{template "style"}}</head><body>
<h1>banyan report</h1>
<p>{{if isoTime .Since}}Since {{when .Since}}{{else}}Everything kept{{end}}, generated {{when .Generated}}.</p>
{{if not .Routes}}<p>No compared pairs.</p>{{end}}
{{range .Routes}}
<h2 id="route-{{.Route}}">{{.Route}}</h2>
{{template "routeTable" .}}
{{if .Fields}}<table>
<tr><th>field path</th><th>count</th><th>kind</th><th>example</th></tr>
{{range .Fields}}<tr{{if .Noise}} class="noise"{{end}}><td><code>{{.Path}}</code></td><td class="n">{{.Count}}</td><td>{{.Kind}}{{if .Noise}} (noise){{end}}</td>
<td>{{template "example" .Example}}</td></tr>
{{end}}</table>{{end}}
<p class="{{if clean .}}good{{else}}bad{{end}}">{{verdict .}}</p>
{{end}}
<p><strong>{{overall .}}</strong></p>
</body></html>
{{end}}

{{define "dashboard"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>banyan dashboard</title>{{template "style"}}</head><body>
<h1>banyan dashboard</h1>
<p>Match rate per route since {{when .Since}} ({{.Step}} steps); generated {{when .Report.Generated}}. Dropped by the recorder: {{.Dropped}}.</p>
{{if not .Routes}}<p>No routes and no compared pairs yet.</p>{{end}}
{{range .Routes}}
<h2 id="route-{{.Name}}">{{.Name}}</h2>
<p>Weights: {{if .Weights}}{{join .Weights ", "}}{{else}}(not a configured route){{end}}</p>
{{if .Report}}
{{template "routeTable" .Report}}
{{.Chart}}
{{if .Report.Fields}}<table>
<tr><th>field path</th><th>count</th><th>kind</th><th>example</th></tr>
{{$route := .Name}}{{range .Report.Fields}}<tr{{if .Noise}} class="noise"{{end}}><td><a href="?route={{$route}}&amp;path={{.Path}}"><code>{{.Path}}</code></a></td><td class="n">{{.Count}}</td><td>{{.Kind}}{{if .Noise}} (noise){{end}}</td>
<td>{{template "example" .Example}}</td></tr>
{{end}}</table>{{end}}
<p class="{{if clean .Report}}good{{else}}bad{{end}}">{{verdict .Report}}</p>
{{else}}<p>No compared pairs since {{when $.Since}}.</p>{{end}}
{{end}}
</body></html>
{{end}}

{{define "examples"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>banyan: {{.Route}} {{.Path}}</title>{{template "style"}}</head><body>
<p><a href="./">&larr; dashboard</a></p>
<h1>{{.Route}}: <code>{{.Path}}</code></h1>
{{if not .Examples}}<p>No examples kept for this field path (they expire with retention).</p>{{end}}
{{range .Examples}}
<h2>{{.Method}} <code>{{.URL}}</code> at {{when .Time}}</h2>
<p>Verdict: {{.Verdict}}. Route pattern <code>{{.Pattern}}</code>.</p>
<table>
<tr><th></th><th>legacy ({{.Legacy.Backend}})</th><th>new ({{.New.Backend}})</th></tr>
<tr><td>status</td><td>{{.Legacy.Status}}</td><td>{{.New.Status}}</td></tr>
<tr><td>latency ms</td><td>{{.Legacy.LatencyMS}}</td><td>{{.New.LatencyMS}}</td></tr>
{{if or .Legacy.Err .New.Err}}<tr><td>error</td><td>{{.Legacy.Err}}</td><td>{{.New.Err}}</td></tr>{{end}}
</table>
<table>
<tr><th>path</th><th>kind</th><th>legacy</th><th>new</th></tr>
{{range .Differences}}<tr{{if .Noise}} class="noise"{{end}}><td><code>{{.Path}}</code></td><td>{{kindText .}}{{if .Noise}} (noise){{end}}</td>{{with differenceMore .}}<td colspan="2">{{.}}</td>{{else}}<td><code>{{legacyValue .}}</code></td><td><code>{{newValue .}}</code></td>{{end}}</tr>
{{end}}</table>
<table><tr><th>legacy body{{if .Legacy.Truncated}} (truncated){{end}}</th><th>new body{{if .New.Truncated}} (truncated){{end}}</th></tr>
<tr><td><pre>{{pretty .Legacy.Body}}</pre></td><td><pre>{{pretty .New.Body}}</pre></td></tr></table>
{{end}}
</body></html>
{{end}}
`
