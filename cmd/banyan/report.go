package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/banyanhq/banyan/reports"
	"github.com/spf13/cobra"
)

func newReportCmd() *cobra.Command {
	var route, since, format, store, config string
	cmd := &cobra.Command{
		Use:   "report [--route R] [--since 1h] [--format text|json|html] [--store PATH | --config FILE]",
		Short: "Summarise shadow comparisons per route; exit 0 when nothing differs, 1 on differences or errors, 2 when nothing was compared",
		Example: "  banyan report --config banyan.yaml --since 1h\n" +
			"  banyan report --store banyan.db --route orders-read --format json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			write, ok := map[string]func(*cobra.Command, *reports.Report) error{
				"text": func(c *cobra.Command, r *reports.Report) error { return reports.WriteText(c.OutOrStdout(), r) },
				"json": func(c *cobra.Command, r *reports.Report) error { return reports.WriteJSON(c.OutOrStdout(), r) },
				"html": func(c *cobra.Command, r *reports.Report) error { return reports.WriteHTML(c.OutOrStdout(), r) },
			}[format]
			if !ok {
				return fmt.Errorf("unknown --format %q: use text, json or html", format)
			}
			var q reports.Query
			q.Route = route
			if since != "" {
				d, err := parseSince(since)
				if err != nil {
					return err
				}
				q.Since = time.Now().Add(-d)
			}
			path := store
			if config != "" {
				cfg, err := loadConfig(config)
				if err != nil {
					return err
				}
				path = cfg.ReportsPath()
			}
			st, err := reports.Open(path, reports.Options{ReadOnly: true})
			if err != nil {
				if errors.Is(err, reports.ErrNoStore) {
					return fmt.Errorf("no report store at %s: `banyan serve` writes it (reports.store in the config) once shadowed pairs are compared; pass --store PATH or --config FILE", path)
				}
				return err
			}
			defer st.Close(cmd.Context())
			rep, err := st.Report(cmd.Context(), q)
			if err != nil {
				return err
			}
			if err := write(cmd, rep); err != nil {
				return err
			}
			if len(rep.Routes) == 0 {
				// No pair compared proves nothing: not a clean report.
				what := "any route"
				if route != "" {
					what = fmt.Sprintf("route %q", route)
				}
				window := "in the store"
				if since != "" {
					window = "in the last " + since
				}
				return fmt.Errorf("nothing compared for %s %s, so no verdict: check the route name (banyan routes) and that it has shadow: {percent: ...}, or widen --since", what, window)
			}
			if !rep.Clean() {
				n := 0
				for _, r := range rep.Routes {
					if r.Diffs > 0 || r.Errors > 0 {
						n++
					}
				}
				return failed(fmt.Errorf("%d of %d routes with differences or errors", n, len(rep.Routes)))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&route, "route", "", "only this route")
	cmd.Flags().StringVar(&since, "since", "", "only pairs compared in this last period, e.g. 30m, 1h, 7d (default everything kept)")
	cmd.Flags().StringVar(&format, "format", "text", "output: text, json or html")
	cmd.Flags().StringVar(&store, "store", "banyan.db", "report store written by banyan serve")
	cmd.Flags().StringVar(&config, "config", "", "config file; its reports.store is read instead of --store")
	cmd.MarkFlagsMutuallyExclusive("store", "config")
	return cmd
}

// parseSince reads a Go duration, or a whole number of days ("7d").
func parseSince(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil && days > 0 {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d, nil
	}
	return 0, fmt.Errorf("bad --since %q: write a period such as 30m, 1h or 7d", s)
}
