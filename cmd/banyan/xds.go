package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/banyanhq/banyan/routes"
	"github.com/banyanhq/banyan/xds"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
)

func newXDSCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "xds",
		Short: "Envoy control plane: review the resources banyan serves over ADS",
		Long: `banyan serve with xds.listen set serves the route table to Envoy over ADS
(see docs/xds.md). banyan xds dump prints what it would serve.`,
	}
	cmd.AddCommand(newXDSDumpCmd())
	return cmd
}

func newXDSDumpCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "dump --config FILE",
		Short: "Print the Envoy listener, routes and clusters for a config as JSON",
		Long: `Prints the Envoy resources (protojson, Envoy's field names) that banyan
serve would publish for the config file's weights. Live weight edits are
not read: GET /api/xds on a running serve shows the published version.
Exit 0 when the resources validate, 1 when the config or the resources
are invalid (every problem listed), 2 when it could not run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(path)
			if err != nil {
				if errors.Is(err, routes.ErrInvalidConfig) {
					return failed(err)
				}
				return err
			}
			res, err := translateFile(cmd.Context(), cfg)
			if err != nil {
				if errors.Is(err, xds.ErrInvalidResources) {
					return failed(err)
				}
				return err
			}
			raw, err := json.Marshal(res)
			if err != nil {
				return err
			}
			var out bytes.Buffer
			if err := json.Indent(&out, raw, "", "  "); err != nil {
				return err
			}
			out.WriteString("\n")
			if _, err := out.WriteTo(cmd.OutOrStdout()); err != nil {
				return err
			}
			n := 0
			for _, rc := range res.Routes {
				for _, vh := range rc.GetVirtualHosts() {
					n += len(vh.GetRoutes())
				}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: valid — %d listener(s), %d Envoy route(s) from %d banyan route(s), %d cluster(s)\n",
				path, len(res.Listeners), n, len(cfg.Routes), len(res.Clusters))
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "config", "banyan.yaml", "config file")
	return cmd
}

// translateFile builds the route table of cfg's file weights on a
// throwaway state store (the real one belongs to serve) and translates it.
func translateFile(ctx context.Context, cfg *routes.Config) (xds.Resources, error) {
	dir, err := os.MkdirTemp("", "banyan-xds-dump-")
	if err != nil {
		return xds.Resources{}, err
	}
	defer os.RemoveAll(dir)
	store, err := routes.OpenStore(filepath.Join(dir, "state.db"))
	if err != nil {
		return xds.Resources{}, err
	}
	defer store.Close()
	mgr, err := routes.NewManager(ctx, cfg, store)
	if err != nil {
		return xds.Resources{}, err
	}
	return xds.Translate(mgr.Table(), xds.OptionsFrom(cfg.XDS))
}

// xdsListener is serve's ADS endpoint for Envoy (xds.listen).
type xdsListener struct {
	srv *xds.Server
	ln  net.Listener
}

// setupXDS binds xds.listen, publishes the current table (refusing to
// start when it cannot be translated), publishes every later table (a
// refused one is logged and Envoy keeps the last good snapshot), and
// mounts GET /api/xds behind the admin token. Off when xds.listen is "".
// Changes to the xds section take effect on restart.
func (s *server) setupXDS(reg prometheus.Registerer, admin *http.ServeMux, tokens routes.Tokens) error {
	if s.cfg.XDS.Listen == "" {
		return nil
	}
	srv := xds.NewServer(xds.ServerOptionsFrom(s.cfg.XDS, s.log))
	if err := srv.Publish(s.mgr.Table()); err != nil {
		return fmt.Errorf("xds: %w", err)
	}
	if err := srv.Register(reg); err != nil {
		return fmt.Errorf("xds metrics: %w", err)
	}
	ln, err := net.Listen("tcp", s.cfg.XDS.Listen)
	if err != nil {
		return fmt.Errorf("xds listener: %w", err)
	}
	s.xds = &xdsListener{srv: srv, ln: ln}
	s.mgr.Subscribe(func(t *routes.Table) {
		if err := srv.Publish(t); err != nil {
			s.log.Error("xds publish refused; Envoy keeps the last good snapshot", "err", err)
		}
	})
	admin.Handle("GET /api/xds", tokens.Require(srv.Handler()))
	s.log.Info("xds serving", "ads", ln.Addr().String(), "node_group", s.cfg.XDS.NodeGroup, "envoy_listener", s.cfg.XDS.ListenerAddress)
	return nil
}

// serveXDS serves ADS until ctx ends; a nil listener serves nothing.
func (x *xdsListener) serve(ctx context.Context) error {
	if x == nil {
		return nil
	}
	return x.srv.Serve(ctx, x.ln)
}

// close stops the ADS server and its listener.
func (x *xdsListener) close() {
	if x == nil {
		return
	}
	x.srv.Stop()
	x.ln.Close()
}

func (x *xdsListener) addr() string { return x.ln.Addr().String() }
