package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/banyanhq/banyan/cdc"
	"github.com/banyanhq/banyan/routes"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
)

func newCDCCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cdc",
		Short: "Keep the new database consistent with the legacy one from its binlog",
	}
	cmd.AddCommand(newCDCRunCmd(), newCDCStatusCmd())
	return cmd
}

// loadCDCConfig reads the config and insists on a cdc section.
func loadCDCConfig(path string) (*routes.Config, error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	if len(cfg.CDC.Tables) == 0 {
		return nil, fmt.Errorf("%s has no cdc.tables: add cdc.source, cdc.target and the table mappings (see banyan.example.yaml)", path)
	}
	return cfg, nil
}

func newCDCRunCmd() *cobra.Command {
	var path, metricsListen string
	var resnapshot bool
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Copy the mapped tables, then stream the binlog into the target (resumes from its checkpoint)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadCDCConfig(path)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			p, err := cdc.Open(cmd.Context(), cfg.CDC, log)
			if err != nil {
				return err
			}
			defer p.Close()
			p.Progress = cmd.ErrOrStderr()
			if metricsListen != "" {
				reg := prometheus.NewRegistry()
				p.Metrics = cdc.NewMetrics(reg)
				ln, err := net.Listen("tcp", metricsListen)
				if err != nil {
					return fmt.Errorf("metrics listener: %w", err)
				}
				srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
				go srv.Serve(ln)
				defer srv.Close()
			}
			err = p.Run(cmd.Context(), resnapshot)
			if cdc.Stopped(err) {
				return failed(err)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&path, "config", "banyan.yaml", "config file with a cdc section")
	cmd.Flags().BoolVar(&resnapshot, "resnapshot", false, "copy the tables again from scratch (after the binlog at the checkpoint was purged)")
	cmd.Flags().StringVar(&metricsListen, "metrics-listen", "", "serve Prometheus metrics (lag, rows applied) on this address, e.g. 127.0.0.1:9902")
	return cmd
}

func newCDCStatusCmd() *cobra.Command {
	var path, format string
	cmd := &cobra.Command{
		Use:   "status --config FILE",
		Short: "Show the checkpoint, lag, each table's copy and resnapshot progress, and rows applied per table",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadCDCConfig(path)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			st, err := cdc.ReadStatus(ctx, cfg.CDC)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch format {
			case "json":
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			case "text", "":
				printCDCStatus(out, st)
				return nil
			}
			return fmt.Errorf("unknown --format %q: use text or json", format)
		},
	}
	cmd.Flags().StringVar(&path, "config", "banyan.yaml", "config file with a cdc section")
	cmd.Flags().StringVar(&format, "format", "text", "output: text or json")
	return cmd
}

func printCDCStatus(w io.Writer, st *cdc.Status) {
	fmt.Fprintf(w, "phase:      %s\n", st.Phase)
	fmt.Fprintf(w, "applied:    %s (at %s UTC)\n", st.Applied, st.UpdatedAt.UTC().Format("2006-01-02 15:04:05"))
	fmt.Fprintf(w, "source:     %s\n", st.Source)
	if st.CaughtUp {
		fmt.Fprintln(w, "lag:        0s (caught up)")
	} else {
		fmt.Fprintf(w, "lag:        %.1fs\n", st.LagSeconds)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nCOPY TABLE\tROWS\tDONE")
	for _, c := range st.Copy {
		fmt.Fprintf(tw, "%s\t%d\t%v\n", c.Table, c.Rows, c.Done)
	}
	if len(st.Resnapshot) > 0 {
		fmt.Fprintln(tw, "\nRESNAPSHOT TABLE\tKEYS LOOKED UP\tDELETED (GONE FROM SOURCE)\tDONE")
		for _, r := range st.Resnapshot {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%v\n", r.Table, r.Checked, r.Deleted, r.Done)
		}
	}
	fmt.Fprintln(tw, "\nTARGET TABLE\tINSERTS\tUPDATES\tDELETES")
	for _, table := range slices.Sorted(maps.Keys(st.Applies)) {
		ops := st.Applies[table]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", table, ops["insert"], ops["update"], ops["delete"])
	}
	tw.Flush()
}
