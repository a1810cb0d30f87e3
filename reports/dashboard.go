package reports

import (
	"fmt"
	"html"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// RouteWeights is a configured route and its live split, as the dashboard
// shows it.
type RouteWeights struct {
	Name  string
	Split map[string]int
}

// Dashboard window and chart defaults.
const (
	dashboardWindow = 24 * time.Hour
	chartPoints     = 60
	chartW, chartH  = 640, 140
	chartPad        = 36
)

// Dashboard serves the admin page at "/": every route with its weights
// (from routes, which may be nil), its match rate over time as an inline
// SVG chart, counts, latencies and top differing field paths. Each path
// links to "/?route=R&path=P", which shows the kept examples: request URL,
// both statuses and bodies (redacted) and the differences. "?since=6h"
// changes the window (default 24h). The page needs no script and no
// external asset, so it works offline. Safe for concurrent use.
func (s *Store) Dashboard(routes func() []RouteWeights) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "use GET", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		q := r.URL.Query()
		if route, path := q.Get("route"), q.Get("path"); route != "" && path != "" {
			ex, err := s.Examples(r.Context(), route, path)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			_ = pages.ExecuteTemplate(w, "examples", map[string]any{"Route": route, "Path": path, "Examples": ex})
			return
		}
		window := dashboardWindow
		if v := q.Get("since"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				http.Error(w, fmt.Sprintf("bad since %q: write a duration such as 6h or 30m", v), http.StatusBadRequest)
				return
			}
			window = d
		}
		page, err := s.dashboardPage(r, routes, window)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_ = pages.ExecuteTemplate(w, "dashboard", page)
	})
}

type dashboardRoute struct {
	Name    string
	Weights []string
	Report  *RouteReport
	Chart   template.HTML
}

type dashboardView struct {
	Since   time.Time
	Step    time.Duration
	Report  *Report
	Dropped int64
	Routes  []dashboardRoute
}

func (s *Store) dashboardPage(r *http.Request, routes func() []RouteWeights, window time.Duration) (*dashboardView, error) {
	now := s.now()
	step := (window / chartPoints).Truncate(time.Minute)
	if step < time.Minute {
		step = time.Minute
	}
	since := now.Add(-window).Truncate(time.Minute)
	rep, err := s.Report(r.Context(), Query{Since: since})
	if err != nil {
		return nil, err
	}
	series, err := s.series(r.Context(), since, step)
	if err != nil {
		return nil, err
	}
	v := &dashboardView{Since: since, Step: step, Report: rep, Dropped: s.Dropped()}
	byName := map[string]*RouteReport{}
	for i := range rep.Routes {
		byName[rep.Routes[i].Route] = &rep.Routes[i]
	}
	listed := map[string]bool{}
	var configured []RouteWeights
	if routes != nil {
		configured = routes()
	}
	for _, rw := range configured {
		listed[rw.Name] = true
		var ws []string
		for _, b := range slices.Sorted(maps.Keys(rw.Split)) {
			ws = append(ws, fmt.Sprintf("%s=%d", b, rw.Split[b]))
		}
		v.Routes = append(v.Routes, dashboardRoute{Name: rw.Name, Weights: ws, Report: byName[rw.Name],
			Chart: chart(series[rw.Name], since, now)})
	}
	for _, rt := range rep.Routes {
		if !listed[rt.Route] {
			v.Routes = append(v.Routes, dashboardRoute{Name: rt.Route, Report: byName[rt.Route], Chart: chart(series[rt.Route], since, now)})
		}
	}
	return v, nil
}

// chart draws match rate over time as inline SVG: x from since to now, y
// from 0 to 100 %. Every value in it is a number or escaped text.
func chart(ps []point, since, now time.Time) template.HTML {
	var b strings.Builder
	plotW, plotH := float64(chartW-2*chartPad), float64(chartH-2*chartPad/2)
	top := float64(chartPad / 2)
	span := now.Sub(since).Seconds()
	if span <= 0 {
		span = 1
	}
	x := func(t time.Time) float64 { return chartPad + plotW*t.Sub(since).Seconds()/span }
	y := func(rate float64) float64 { return top + plotH*(1-rate) }
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="match rate over time">`, chartW, chartH, chartW, chartH)
	for _, g := range []float64{0, 0.5, 1} {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`, chartPad, chartW-chartPad, y(g), y(g))
		fmt.Fprintf(&b, `<text x="2" y="%.1f" font-size="10" fill="#666">%.0f%%</text>`, y(g)+3, g*100)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="10" fill="#666">%s</text>`, chartPad, chartH-2, html.EscapeString(since.UTC().Format("01-02 15:04")))
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="10" fill="#666" text-anchor="end">%s UTC</text>`, chartW-chartPad, chartH-2, html.EscapeString(now.UTC().Format("01-02 15:04")))
	var pts []string
	for _, p := range ps {
		if p.Compared == 0 {
			continue
		}
		rate := float64(p.Matching) / float64(p.Compared)
		px, py := x(p.At), y(rate)
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", px, py))
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="#2a6"><title>%s: %.1f%% of %d</title></circle>`,
			px, py, html.EscapeString(p.At.UTC().Format(time.DateTime)), rate*100, p.Compared)
	}
	if len(pts) > 1 {
		fmt.Fprintf(&b, `<polyline fill="none" stroke="#2a6" stroke-width="1.5" points="%s"/>`, strings.Join(pts, " "))
	}
	if len(pts) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12" fill="#999" text-anchor="middle">no compared pairs in this window</text>`, chartW/2, chartH/2)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
