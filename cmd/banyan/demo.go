package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/banyanhq/banyan/demo"
	"github.com/banyanhq/banyan/proxy"
	"github.com/banyanhq/banyan/reports"
	"github.com/banyanhq/banyan/routes"
	"github.com/spf13/cobra"
)

func newDemoCmd() *cobra.Command {
	var users, perUser int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the routing proxy on built-in demo services, ramp a route and print what happened",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), users, perUser)
		},
	}
	cmd.Flags().IntVar(&users, "users", 500, "simulated users (each has its own uid cookie)")
	cmd.Flags().IntVar(&perUser, "requests", 4, "order views per user in each step")
	return cmd
}

// demoEstate is the demo's running services and banyan.
type demoEstate struct {
	srv    *server
	client *http.Client
	admin  *routes.Client
	stop   func()
}

func startDemo(ctx context.Context, dir string) (*demoEstate, error) {
	shop := demo.NewShop(300)
	var servers []*http.Server
	listen := func(h http.Handler) (string, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, hs)
		go hs.Serve(ln)
		return "http://" + ln.Addr().String(), nil
	}
	stopAll := func() {
		for _, hs := range servers {
			hs.Close()
		}
	}
	legacyURL, err := listen(demo.Legacy(shop))
	if err != nil {
		return nil, err
	}
	ordersURL, err := listen(demo.OrdersService(shop))
	if err != nil {
		stopAll()
		return nil, err
	}
	path := filepath.Join(dir, "banyan.yaml")
	cfg := demo.Config(demo.ConfigParams{State: filepath.Join(dir, "state.db"), Reports: filepath.Join(dir, "reports.db"), LegacyURL: legacyURL, OrdersURL: ordersURL})
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		stopAll()
		return nil, err
	}
	srv, err := newServer(ctx, path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		stopAll()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.run(runCtx) }()
	return &demoEstate{
		srv:    srv,
		client: &http.Client{Transport: proxy.NewTransport(5 * time.Second), Timeout: 10 * time.Second},
		admin:  &routes.Client{Base: "http://" + srv.adminAddr(), User: "demo"},
		stop: sync.OnceFunc(func() {
			cancel()
			<-done
			stopAll()
		}),
	}, nil
}

// stepResult is what one step of traffic saw.
type stepResult struct {
	requests, failed int
	onNew            map[int]bool // user -> served by orders-svc
	switched         int          // users served by both backends within the step
	latencies        []time.Duration
}

func (e *demoEstate) drive(ctx context.Context, users, perUser int) stepResult {
	res := stepResult{onNew: map[int]bool{}}
	var mu sync.Mutex
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range jobs {
				seen := map[string]bool{}
				var lat []time.Duration
				failed := 0
				for range perUser {
					req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/api/orders/%d", e.srv.proxyAddr(), 1+rand.IntN(300)), nil)
					req.AddCookie(&http.Cookie{Name: "uid", Value: fmt.Sprintf("user-%d", u)})
					start := time.Now()
					resp, err := e.client.Do(req)
					if err != nil {
						failed++
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					lat = append(lat, time.Since(start))
					if resp.StatusCode != http.StatusOK {
						failed++
					}
					seen[resp.Header.Get(demo.ServedByHeader)] = true
				}
				mu.Lock()
				res.requests += perUser
				res.failed += failed
				res.latencies = append(res.latencies, lat...)
				if seen["orders-svc"] {
					res.onNew[u] = true
				}
				if len(seen) > 1 {
					res.switched++
				}
				mu.Unlock()
			}
		}()
	}
	for u := range users {
		jobs <- u
	}
	close(jobs)
	wg.Wait()
	return res
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func runDemo(ctx context.Context, out io.Writer, users, perUser int) error {
	if users < 1 || perUser < 1 {
		return failed(errors.New("--users and --requests must be at least 1"))
	}
	dir, err := os.MkdirTemp("", "banyan-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	e, err := startDemo(ctx, dir)
	if err != nil {
		return fmt.Errorf("start demo: %w", err)
	}
	defer e.stop()
	fmt.Fprintf(out, "banyan demo: legacy monolith + new orders-svc behind banyan (proxy %s, admin http://%s)\n\n", e.srv.proxyAddr(), e.srv.adminAddr())

	// A tester reaches the new service before any customer does.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.srv.proxyAddr()+"/api/orders/1", nil)
	req.Header.Set(routes.DefaultOverrideHeader, "orders-svc")
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("demo request: %w", err)
	}
	resp.Body.Close()
	overrideOK := resp.Header.Get(demo.ServedByHeader) == "orders-svc"
	fmt.Fprintf(out, "Tester with %s: orders-svc at weight 0 -> answered by %s\n\n", routes.DefaultOverrideHeader, resp.Header.Get(demo.ServedByHeader))

	type step struct {
		label string
		act   func() error
	}
	set := func(legacy, svc int, reason string) func() error {
		return func() error {
			_, err := e.admin.SetSplit(ctx, "orders-read", routes.Split{"legacy": legacy, "orders-svc": svc}, reason)
			return err
		}
	}
	steps := []step{
		{"start", func() error { return nil }},
		{"routes set 80/20", set(80, 20, "ramp step 1")},
		{"routes set 50/50", set(50, 50, "ramp step 2")},
		{"routes rollback", func() error { _, err := e.admin.Rollback(ctx, "orders-read", "demo rollback"); return err }},
	}
	results := make([]stepResult, len(steps))
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "STEP\tSPLIT (orders-read)\tREQUESTS\tFAILED\tUSERS ON orders-svc\tUSERS SWITCHED IN STEP\tp50\tp99\n")
	for i, s := range steps {
		if err := s.act(); err != nil {
			return fmt.Errorf("demo step %q: %w", s.label, err)
		}
		results[i] = e.drive(ctx, users, perUser)
		r := results[i]
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d of %d (%.0f%%)\t%d\t%s\t%s\n", s.label, e.srv.mgr.Table().Route("orders-read").Split(),
			r.requests, r.failed, len(r.onNew), users, 100*float64(len(r.onNew))/float64(users), r.switched,
			percentile(r.latencies, .50).Round(time.Microsecond), percentile(r.latencies, .99).Round(time.Microsecond))
	}
	tw.Flush()

	at20, at50, back := results[1].onNew, results[2].onNew, results[3].onNew
	stayed := 0
	for u := range at20 {
		if at50[u] {
			stayed++
		}
	}
	sameBack := len(back) == len(at20)
	for u := range at20 {
		sameBack = sameBack && back[u]
	}
	fmt.Fprintf(out, "\nRamp 20%% -> 50%%: %d of %d users on orders-svc stayed there (a monotonic ramp keeps all).\n", stayed, len(at20))
	fmt.Fprintf(out, "Rollback 50%% -> 20%%: the users on orders-svc are exactly those of the 20%% step: %v.\n\n", sameBack)

	hist, err := e.admin.History(ctx, "orders-read")
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "banyan routes history orders-read:")
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tWHO\tACTION\tOLD -> NEW\tREASON")
	for _, h := range hist.History {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s -> %s\t%s\n", h.Seq, h.Who, h.Action, splitOrNone(h.Old), h.New, h.Reason)
	}
	tw.Flush()

	// Stopping banyan finishes the queued comparisons, then the report.
	e.stop()
	st, err := reports.Open(e.srv.cfg.ReportsPath(), reports.Options{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("demo report: %w", err)
	}
	rep, err := st.Report(ctx, reports.Query{})
	st.Close(ctx)
	if err != nil {
		return fmt.Errorf("demo report: %w", err)
	}
	fmt.Fprintln(out, "\nShadow comparison, legacy -> orders-svc (banyan report):")
	if err := reports.WriteText(out, rep); err != nil {
		return err
	}

	// The new service's planted bug (a truncated discount total) must be
	// the one and only differing field; request_id must be noise.
	var found []string
	for _, r := range rep.Routes {
		for _, f := range r.Fields {
			if !f.Noise {
				found = append(found, f.Path)
			}
		}
	}
	bugFound := len(found) == 1 && found[0] == "$.total"

	failedReqs, switched := 0, 0
	for _, r := range results {
		failedReqs += r.failed
		switched += r.switched
	}
	if !overrideOK || failedReqs > 0 || switched > 0 || stayed != len(at20) || !sameBack || !bugFound {
		fmt.Fprintln(out, "\ndemo verdict: FAIL")
		return failed(fmt.Errorf("demo: override ok=%v, failed requests=%d, users switched within a step=%d, ramp kept %d of %d, rollback exact=%v, differing fields %v (want only $.total)",
			overrideOK, failedReqs, switched, stayed, len(at20), sameBack, found))
	}
	fmt.Fprintf(out, "\ndemo verdict: OK — %d requests, none failed, every user sticky, ramp monotonic, rollback exact; the shadow diff caught orders-svc's planted bug in $.total and nothing else.\n", sumRequests(results))
	return nil
}

func sumRequests(rs []stepResult) int {
	n := 0
	for _, r := range rs {
		n += r.requests
	}
	return n
}
