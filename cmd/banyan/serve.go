package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/banyanhq/banyan/cdc"
	"github.com/banyanhq/banyan/proxy"
	"github.com/banyanhq/banyan/reports"
	"github.com/banyanhq/banyan/routes"
	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
)

func newServeCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "serve --config FILE",
		Short: "Run the routing proxy and its admin API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			s, err := newServer(cmd.Context(), path, log)
			if err != nil {
				return err
			}
			engine := string(s.proxySrv.Engine())
			if engine == "" {
				engine = "off"
			}
			log.Info("banyan serving", "proxy", s.proxyAddr(), "admin", s.adminAddr(), "config", path, "state", s.cfg.StatePath(), "fast_path", engine)
			return s.run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&path, "config", "banyan.yaml", "config file")
	return cmd
}

// server is one running banyan: proxy listener, admin listener, the route
// manager and its state store, and the config watcher.
type server struct {
	path    string
	cfg     *routes.Config
	log     *slog.Logger
	store   *routes.Store
	mgr     *routes.Manager
	metrics *proxy.Metrics
	proxy   *proxy.Proxy
	reports *reports.Store

	proxyLn, adminLn net.Listener
	proxySrv         *proxy.Server
	adminSrv         *http.Server
	// cmpLn/cmpSrv receive what Envoy mirrors (comparator.listen).
	cmpLn  net.Listener
	cmpSrv *http.Server
	// xds serves the route table to Envoy (xds.listen); see xds.go.
	xds *xdsListener

	// reloadMu makes each reload read and apply the file as one step, so a
	// slower reload can never apply an older file over a newer one.
	reloadMu sync.Mutex
}

// errAdminExposed refuses an admin listener reachable from other hosts
// without a token.
var errAdminExposed = errors.New("admin listener is not on loopback and no admin token is set")

// newServer loads the config, opens the state and binds both listeners.
// Nothing is served until run.
func newServer(ctx context.Context, path string, log *slog.Logger) (*server, error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	if len(cfg.Routes) == 0 {
		return nil, fmt.Errorf("%s has no routes to serve (it configures only cdc: run `banyan cdc run` with it, or add backends and routes)", path)
	}
	tokenVar := os.Getenv(cfg.Admin.TokenEnv)
	if err := routes.CheckTokens(tokenVar); err != nil {
		return nil, fmt.Errorf("admin token: %s %w", cfg.Admin.TokenEnv, err)
	}
	tokens := routes.ParseTokens(tokenVar)
	if len(tokens) == 0 && !routes.IsLoopback(cfg.Admin.Listen) {
		return nil, fmt.Errorf("%w: admin.listen is %s; export %s=<secret> (or label:<secret>) or listen on 127.0.0.1",
			errAdminExposed, cfg.Admin.Listen, cfg.Admin.TokenEnv)
	}
	store, err := routes.OpenStore(cfg.StatePath())
	if err != nil {
		return nil, err
	}
	s := &server{path: path, cfg: cfg, log: log, store: store}
	ok := false
	defer func() {
		if !ok {
			s.closeAll(context.Background())
		}
	}()
	if s.mgr, err = routes.NewManager(ctx, cfg, store); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.metrics = proxy.NewMetrics(reg)
	s.mgr.Subscribe(s.metrics.ObserveTable)
	s.reports, err = reports.Open(cfg.ReportsPath(), reports.Options{
		Redact: cfg.Reports.Redact, MaxAge: cfg.Reports.MaxAge, MaxOutcomes: cfg.Reports.MaxOutcomes, Examples: cfg.Reports.Examples,
	})
	if err != nil {
		return nil, fmt.Errorf("open reports store: %w", err)
	}
	s.proxy = proxy.New(s.mgr.Table, s.metrics, log)
	s.proxy.StartShadow(proxy.ShadowOptions{
		Workers: cfg.Shadow.Workers, Queue: cfg.Shadow.Queue, CompareBody: int64(cfg.Shadow.CompareBody), Recorder: s.reports,
	})

	if s.proxyLn, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("proxy listener: %w", err)
	}
	if s.adminLn, err = net.Listen("tcp", cfg.Admin.Listen); err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	s.proxySrv = proxy.NewServer(s.proxy, proxy.ServerOptions{
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		NetHTTPOnly:       cfg.FastPath == "off",
		Engine:            fastPathEngine(cfg.FastPath),
	})
	if cfg.FastPath == "io_uring" && s.proxySrv.Engine() != proxy.EngineURing {
		return nil, errors.New("fast_path: io_uring: this kernel refuses io_uring (kernel.io_uring_disabled, a seccomp profile, or older than Linux 6.1); set fast_path: on to fall back to goroutines")
	}
	admin := http.NewServeMux()
	admin.Handle("/api/", routes.NewAPI(s.mgr, tokens))
	admin.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	admin.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"status\":\"ok\",\"routes_version\":%d}\n", s.mgr.Table().Version())
	})
	admin.Handle("/debug/pprof/", tokens.Require(http.HandlerFunc(pprof.Index)))
	admin.Handle("/debug/pprof/profile", tokens.Require(http.HandlerFunc(pprof.Profile)))
	admin.Handle("/debug/pprof/trace", tokens.Require(http.HandlerFunc(pprof.Trace)))
	admin.Handle("/", tokens.Require(s.reports.Dashboard(s.routeWeights)))
	if err := s.setupXDS(reg, admin, tokens); err != nil {
		return nil, err
	}
	s.adminSrv = &http.Server{Handler: admin, ReadHeaderTimeout: 10 * time.Second}
	if cfg.Comparator.Listen != "" {
		if s.cmpLn, err = net.Listen("tcp", cfg.Comparator.Listen); err != nil {
			return nil, fmt.Errorf("comparator listener: %w", err)
		}
		s.cmpSrv = &http.Server{Handler: s.proxy.Comparator(), ReadHeaderTimeout: 10 * time.Second}
	}
	ok = true
	return s, nil
}

// fastPathEngine is the proxy's engine for the config's fast_path.
func fastPathEngine(fastPath string) proxy.Engine {
	switch fastPath {
	case "io_uring":
		return proxy.EngineURing
	case "goroutines":
		return proxy.EngineGoroutines
	}
	return proxy.EngineAuto
}

// The reports store is what the proxy records compared pairs into.
var _ proxy.Recorder = (*reports.Store)(nil)

// loadConfig reads a config with every package's checks and the extra
// ones given.
func loadConfig(path string, extra ...routes.Check) (*routes.Config, error) {
	return routes.Load(path, append([]routes.Check{proxy.CheckDiffRules, checkRedact, cdc.CheckConfig}, extra...)...)
}

// checkAdminToken refuses, as serve does, an admin token variable that is
// set but holds no usable token. The token is never shown.
func checkAdminToken(cfg *routes.Config) []routes.Problem {
	if err := routes.CheckTokens(os.Getenv(cfg.Admin.TokenEnv)); err != nil {
		return []routes.Problem{{Field: "admin.token_env", Why: fmt.Sprintf("the variable %s %v (serve would refuse to start)", cfg.Admin.TokenEnv, err)}}
	}
	return nil
}

// checkRedact refuses redact paths the reports store cannot apply.
func checkRedact(cfg *routes.Config) []routes.Problem {
	if _, err := reports.NewRedactor(cfg.Reports.Redact); err != nil {
		return []routes.Problem{{Field: "reports.redact", Why: err.Error()}}
	}
	return nil
}

// routeWeights feeds the dashboard the live table.
func (s *server) routeWeights() []reports.RouteWeights {
	var out []reports.RouteWeights
	for _, rt := range s.mgr.Table().Routes() {
		out = append(out, reports.RouteWeights{Name: rt.Name, Split: rt.Split()})
	}
	return out
}

func (s *server) proxyAddr() string { return s.proxyLn.Addr().String() }
func (s *server) adminAddr() string { return s.adminLn.Addr().String() }

// run serves until ctx ends, reloading the config on file change or
// SIGHUP, then shuts down gracefully.
func (s *server) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 5)
	if s.cmpSrv != nil {
		go func() { errc <- serveListener(s.cmpSrv, s.cmpLn, "comparator") }()
	}
	go func() { errc <- serveListener(s.proxySrv, s.proxyLn, "proxy") }()
	go func() { errc <- serveListener(s.adminSrv, s.adminLn, "admin") }()
	go func() { errc <- s.watch(ctx) }()
	if s.xds != nil {
		go func() { errc <- s.xds.serve(ctx) }()
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	shutCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	// Customers first: stop taking requests, then let the shadow pool and
	// the report writer finish what they hold.
	err = errors.Join(err, s.proxySrv.Shutdown(shutCtx), s.adminSrv.Shutdown(shutCtx))
	if s.cmpSrv != nil {
		err = errors.Join(err, s.cmpSrv.Shutdown(shutCtx))
	}
	err = errors.Join(err, s.closeAll(shutCtx))
	return err
}

func serveListener(srv interface{ Serve(net.Listener) error }, ln net.Listener, name string) error {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s listener: %w", name, err)
	}
	return nil
}

func (s *server) closeAll(ctx context.Context) error {
	var errs []error
	for _, ln := range []net.Listener{s.proxyLn, s.adminLn, s.cmpLn} {
		if ln != nil {
			ln.Close()
		}
	}
	s.xds.close()
	if s.proxy != nil {
		// Queued comparisons get a short grace; customers are already done.
		drain, cancel := context.WithTimeout(ctx, 3*time.Second)
		if err := s.proxy.Close(drain); err != nil {
			s.log.Warn("stopping shadow comparisons", "err", err)
		}
		cancel()
	}
	if s.reports != nil {
		errs = append(errs, s.reports.Close(ctx))
	}
	if s.store != nil {
		errs = append(errs, s.store.Close())
	}
	return errors.Join(errs...)
}

// reload re-reads the config file and swaps the table in; on any problem
// the last good table stays and every problem is logged.
func (s *server) reload(ctx context.Context, who string) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	cfg, err := loadConfig(s.path)
	if err == nil {
		err = s.mgr.Reload(ctx, cfg, who)
	}
	s.metrics.Reloaded(err == nil)
	if err != nil {
		s.log.Error("config reload failed; keeping the last good route table", "config", s.path, "err", err)
		return err
	}
	s.log.Info("config reloaded", "config", s.path, "routes", len(cfg.Routes), "version", s.mgr.Table().Version())
	return nil
}

// watch reloads on SIGHUP and when the config file changes. It watches the
// folder, not the file, so editors that save by rename and Kubernetes
// ConfigMap symlink swaps are seen too.
func (s *server) watch(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch config: %w", err)
	}
	defer w.Close()
	dir, base := filepath.Split(s.path)
	if dir == "" {
		dir = "."
	}
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch config folder %s: %w", dir, err)
	}
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			_ = s.reload(ctx, "SIGHUP")
		case ev := <-w.Events:
			if name := filepath.Base(ev.Name); name == base || name == "..data" {
				debounce = time.After(100 * time.Millisecond)
			}
		case err := <-w.Errors:
			s.log.Warn("config watcher", "err", err)
		case <-debounce:
			debounce = nil
			_ = s.reload(ctx, "config file")
		}
	}
}
