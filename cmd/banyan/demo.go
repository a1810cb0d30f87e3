package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/banyanhq/banyan/cdc"
	"github.com/banyanhq/banyan/demo"
	"github.com/banyanhq/banyan/internal/progress"
	"github.com/banyanhq/banyan/internal/testdb"
	"github.com/banyanhq/banyan/proxy"
	"github.com/banyanhq/banyan/reports"
	"github.com/banyanhq/banyan/routes"
	"github.com/spf13/cobra"
)

// demoOptions are the demo's flags.
type demoOptions struct {
	duration time.Duration
	requests int // when > 0, a fixed number of requests instead of a duration
	users    int
	exit     bool
	noDB     bool
}

func newDemoCmd() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run all of banyan on a built-in demo estate: a legacy monolith, a new orders service, shadow diffs, a ramp, CDC and a check",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	cmd.Flags().DurationVar(&o.duration, "duration", 30*time.Second, "how long to drive traffic (four steps: start, 20 %, 50 %, rollback)")
	cmd.Flags().IntVar(&o.requests, "requests", 0, "drive this many requests instead of --duration")
	cmd.Flags().IntVar(&o.users, "users", 500, "simulated users (each has its own uid cookie)")
	cmd.Flags().BoolVar(&o.exit, "exit", false, "exit when the traffic ends instead of keeping the dashboard up until Ctrl-C")
	cmd.Flags().BoolVar(&o.noDB, "no-db", false, "skip the database half (CDC and check) even when mariadbd is installed")
	return cmd
}

// demoEstate is the demo's running services, databases and banyan.
type demoEstate struct {
	srv     *server
	client  *http.Client
	path    string // banyan config
	orders  int    // seeded order ids 1..orders
	withDB  bool
	cdcDone chan error
	stop    func()
}

func startDemo(ctx context.Context, dir string, o demoOptions, out io.Writer) (*demoEstate, error) {
	const seeded = 300
	var cleanups []func()
	e := &demoEstate{client: &http.Client{Transport: proxy.NewTransport(5 * time.Second), Timeout: 10 * time.Second}, orders: seeded}
	e.stop = func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	fail := func(err error) (*demoEstate, error) { e.stop(); return nil, err }

	params := demo.ConfigParams{State: filepath.Join(dir, "state.db"), Reports: filepath.Join(dir, "reports.db")}
	var legacyStore, ordersStore demo.Store
	if !o.noDB {
		pair, err := testdb.StartPair(ctx)
		switch {
		case errors.Is(err, testdb.ErrNoServer):
			fmt.Fprintln(out, "Database half skipped: no mariadbd/mysqld on PATH (apt-get install -y mariadb-server gives CDC and banyan check too).")
		case err != nil:
			return fail(fmt.Errorf("start demo databases: %w", err))
		default:
			cleanups = append(cleanups, func() { pair.Stop() })
			legacyDB, ordersDB, err := demoDatabases(ctx, pair, seeded)
			if err != nil {
				return fail(err)
			}
			cleanups = append(cleanups, func() { legacyDB.Close(); ordersDB.Close() })
			legacyStore, ordersStore = demo.LegacyDB{DB: legacyDB}, demo.OrdersDB{DB: ordersDB}
			params.SourceDSN, params.TargetDSN = pair.Source.DSN("shop"), pair.Target.DSN("orders")
			e.withDB = true
			fmt.Fprintf(out, "Databases: legacy MariaDB %s (shop.t_order), new MariaDB %s (orders.orders)\n", pair.Source.Addr(), pair.Target.Addr())
		}
	}
	if legacyStore == nil {
		shop := demo.NewShop(seeded)
		legacyStore, ordersStore = shop, shop
	}
	listen := func(h http.Handler) (string, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		cleanups = append(cleanups, func() { hs.Close() })
		go hs.Serve(ln)
		return "http://" + ln.Addr().String(), nil
	}
	var err error
	if params.LegacyURL, err = listen(demo.Legacy(legacyStore)); err != nil {
		return fail(err)
	}
	if params.OrdersURL, err = listen(demo.OrdersService(ordersStore)); err != nil {
		return fail(err)
	}
	e.path = filepath.Join(dir, "banyan.yaml")
	if err := os.WriteFile(e.path, []byte(demo.Config(params)), 0o644); err != nil {
		return fail(err)
	}
	if e.srv, err = newServer(ctx, e.path, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		return fail(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = e.srv.run(runCtx) }()
	cleanups = append(cleanups, func() { cancel(); <-done })

	if e.withDB {
		p, err := cdc.Open(ctx, e.srv.cfg.CDC, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			return fail(fmt.Errorf("demo cdc: %w", err))
		}
		cdcCtx, cdcCancel := context.WithCancel(ctx)
		e.cdcDone = make(chan error, 1)
		go func() { e.cdcDone <- p.Run(cdcCtx, false) }()
		cleanups = append(cleanups, func() { cdcCancel(); <-e.cdcDone; p.Close() })
		if err := e.waitCDC(ctx, func(st *cdc.Status) bool { return st.Phase == cdc.PhaseStream }); err != nil {
			return fail(fmt.Errorf("demo cdc initial copy: %w", err))
		}
		fmt.Fprintf(out, "CDC: initial copy of shop.t_order done (%d rows), streaming the binlog into orders.orders\n", seeded)
	}
	return e, nil
}

// demoDatabases creates the legacy and new schemas and seeds the legacy.
func demoDatabases(ctx context.Context, pair *testdb.Pair, seeded int) (*sql.DB, *sql.DB, error) {
	if err := errors.Join(pair.Source.CreateDatabase(ctx, "shop"), pair.Target.CreateDatabase(ctx, "orders")); err != nil {
		return nil, nil, err
	}
	if err := errors.Join(pair.Source.Exec(ctx, "USE shop", demo.LegacySchema), pair.Target.Exec(ctx, "USE orders", demo.NewSchema)); err != nil {
		return nil, nil, fmt.Errorf("demo schemas: %w", err)
	}
	legacy, err := cdc.OpenDB(pair.Source.DSN("shop"))
	if err != nil {
		return nil, nil, err
	}
	orders, err := cdc.OpenDB(pair.Target.DSN("orders"))
	if err != nil {
		legacy.Close()
		return nil, nil, err
	}
	if err := (demo.LegacyDB{DB: legacy}).Seed(ctx, demo.SeedOrders(seeded)); err != nil {
		legacy.Close()
		orders.Close()
		return nil, nil, fmt.Errorf("seed legacy orders: %w", err)
	}
	return legacy, orders, nil
}

// waitCDC polls the pipeline's status until ok says so (at most 60 s).
func (e *demoEstate) waitCDC(ctx context.Context, ok func(*cdc.Status) bool) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := cdc.ReadStatus(ctx, e.srv.cfg.CDC)
		if err == nil && ok(st) {
			return nil
		}
		select {
		case err := <-e.cdcDone:
			return fmt.Errorf("cdc stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cdc not there after 60s (last: %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stepResult is what one step of traffic saw.
type stepResult struct {
	requests, failed int
	onNew            map[int]bool // user -> order reads served by orders-svc
	switched         int          // users whose order reads went to both backends in the step
	latencies        []time.Duration
	// split is orders-read's live split during the step and want the one
	// the step set; expectNew are the users the live bucket map puts on
	// orders-svc (nil: not known).
	split, want routes.Split
	expectNew   map[int]bool
}

// drive sends the demo's traffic mix until the deadline or the request
// budget (but at least one order view per user): order views (sticky by
// uid cookie), catalogue browsing and checkouts written to the legacy
// monolith.
func (e *demoEstate) drive(ctx context.Context, users int, until time.Time, budget int, bar *progress.Bar) stepResult {
	res := stepResult{onNew: map[int]bool{}}
	var mu sync.Mutex
	seen := map[int]map[string]bool{}
	var sent int
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				mu.Lock()
				if sent >= users && ((budget > 0 && sent >= budget) || (budget == 0 && time.Now().After(until))) {
					mu.Unlock()
					return
				}
				n := sent
				sent++
				mu.Unlock()
				// Every user first views an order once in each step (so each
				// user's backend is seen), then the mix is random.
				u, r := n, rand.IntN(100)
				if n >= users {
					u = rand.IntN(users)
				} else {
					r = 0
				}
				var req *http.Request
				view := false
				switch {
				case r < 60:
					view = true
					req, _ = http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/api/orders/%d", e.srv.proxyAddr(), 1+rand.IntN(e.orders)), nil)
				case r < 85:
					req, _ = http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.srv.proxyAddr()+"/api/products", nil)
				default:
					body := fmt.Sprintf(`{"user_id": %d, "subtotal": %d.%02d, "discount_pct": %d}`, 1000+u, 5+rand.IntN(200), rand.IntN(100), []int{0, 0, 10, 15}[rand.IntN(4)])
					req, _ = http.NewRequestWithContext(ctx, http.MethodPost, "http://"+e.srv.proxyAddr()+"/api/checkout", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
				}
				req.AddCookie(&http.Cookie{Name: "uid", Value: demoUserKey(u)})
				start := time.Now()
				resp, err := e.client.Do(req)
				ok := err == nil
				servedBy := ""
				if ok {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					ok = resp.StatusCode < 300
					servedBy = resp.Header.Get(demo.ServedByHeader)
				}
				bar.Add(1)
				mu.Lock()
				res.requests++
				if !ok {
					res.failed++
				} else {
					res.latencies = append(res.latencies, time.Since(start))
				}
				if view && ok {
					if seen[u] == nil {
						seen[u] = map[string]bool{}
					}
					seen[u][servedBy] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for u, backends := range seen {
		if backends["orders-svc"] {
			res.onNew[u] = true
		}
		if len(backends) > 1 {
			res.switched++
		}
	}
	return res
}

// demoUserKey is user u's uid cookie, the route's sticky key.
func demoUserKey(u int) string { return fmt.Sprintf("user-%d", u) }

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// cli runs one banyan command in-process against the demo, echoing it as
// a user would type it.
func (e *demoEstate) cli(ctx context.Context, out io.Writer, args ...string) (int, string) {
	shown := make([]string, len(args))
	for i, a := range args {
		shown[i] = a
		if strings.ContainsAny(a, " \t") {
			shown[i] = "'" + a + "'"
		}
	}
	fmt.Fprintf(out, "$ banyan %s\n", strings.Join(shown, " "))
	var buf, errb bytes.Buffer
	full := args
	if args[0] == "routes" {
		full = append(slices.Clone(args), "--admin", "http://"+e.srv.adminAddr())
	}
	code := run(ctx, full, &buf, &errb)
	fmt.Fprint(out, buf.String())
	if code != exitOK {
		fmt.Fprint(out, errb.String()) // progress bars stay out of the transcript
	}
	return code, buf.String()
}

func runDemo(ctx context.Context, out, stderr io.Writer, o demoOptions) error {
	switch {
	case o.users < 1:
		return fmt.Errorf("--users %d: give at least 1", o.users)
	case o.requests < 0:
		return fmt.Errorf("--requests %d: give a count above 0, or leave it out to use --duration", o.requests)
	case o.requests == 0 && o.duration <= 0:
		return fmt.Errorf("--duration %s: give a duration above 0 (e.g. 30s), or --requests N", o.duration)
	}
	dir, err := os.MkdirTemp("", "banyan-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	e, err := startDemo(ctx, dir, o, out)
	if err != nil {
		return fmt.Errorf("start demo: %w", err)
	}
	defer e.stop()
	fmt.Fprintf(out, "banyan demo: legacy monolith + new orders-svc behind banyan (proxy http://%s, dashboard http://%s/)\n\n", e.srv.proxyAddr(), e.srv.adminAddr())

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

	steps := []struct {
		label string
		args  []string
		want  routes.Split
	}{
		{"start", nil, routes.Split{"legacy": 100, "orders-svc": 0}},
		{"routes set 80/20", []string{"routes", "set", "orders-read", "legacy=80", "orders-svc=20", "--reason", "ramp step 1"}, routes.Split{"legacy": 80, "orders-svc": 20}},
		{"routes set 50/50", []string{"routes", "set", "orders-read", "legacy=50", "orders-svc=50", "--reason", "ramp step 2"}, routes.Split{"legacy": 50, "orders-svc": 50}},
		{"routes rollback", []string{"routes", "rollback", "orders-read", "--reason", "demo rollback"}, routes.Split{"legacy": 80, "orders-svc": 20}},
	}
	total := int64(o.requests)
	bar := progress.New(stderr, "demo traffic", "requests", total)
	results := make([]stepResult, len(steps))
	var log bytes.Buffer
	for i, s := range steps {
		if s.args != nil {
			if code, _ := e.cli(ctx, &log, s.args...); code != exitOK {
				return fmt.Errorf("demo step %q failed:\n%s", s.label, log.String())
			}
		}
		until := time.Now().Add(o.duration / time.Duration(len(steps)))
		budget := 0
		if o.requests > 0 {
			budget = o.requests / len(steps)
		}
		rt := e.srv.mgr.Table().Route("orders-read")
		results[i] = e.drive(ctx, o.users, until, budget, bar)
		results[i].split, results[i].want = rt.Split(), s.want
		results[i].expectNew = map[int]bool{}
		for u := range o.users {
			if rt.BackendFor(demoUserKey(u)) == "orders-svc" {
				results[i].expectNew[u] = true
			}
		}
	}
	bar.Done()
	fmt.Fprint(out, log.String(), "\n")

	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "STEP\tREQUESTS\tFAILED\tUSERS ON orders-svc\tUSERS SWITCHED IN STEP\tp50\tp99\n")
	for i, s := range steps {
		r := results[i]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d of %d (%.0f%%)\t%d\t%s\t%s\n", s.label, r.requests, r.failed,
			len(r.onNew), o.users, 100*float64(len(r.onNew))/float64(o.users), r.switched,
			percentile(r.latencies, .50).Round(time.Microsecond), percentile(r.latencies, .99).Round(time.Microsecond))
	}
	tw.Flush()
	oc := demoOutcome{overrideOK: overrideOK, steps: results, users: o.users}
	stayed, at20 := oc.rampKept()
	fmt.Fprintf(out, "\nRamp 20%% -> 50%%: %d of %d users on orders-svc stayed there (a monotonic ramp keeps all).\n", stayed, at20)
	fmt.Fprintf(out, "Rollback 50%% -> 20%%: every user on orders-svc after it was there at 20%%: %v.\n\n", oc.rollbackExact())
	e.cli(ctx, out, "routes", "list")
	fmt.Fprintln(out)
	e.cli(ctx, out, "routes", "history", "orders-read")

	// Every mirror compared and stored, then the report.
	idleCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = errors.Join(e.srv.proxy.Idle(idleCtx), e.srv.reports.Flush(idleCtx))
	cancel()
	if err != nil {
		return fmt.Errorf("demo: waiting for the shadow comparisons: %w", err)
	}
	rep, err := e.srv.reports.Report(ctx, reports.Query{})
	if err != nil {
		return fmt.Errorf("demo report: %w", err)
	}
	fmt.Fprintln(out, "\nShadow comparison, legacy -> orders-svc:")
	fmt.Fprintln(out, "$ banyan report")
	if err := reports.WriteText(out, rep); err != nil {
		return err
	}
	for _, r := range rep.Routes {
		for _, f := range r.Fields {
			if !f.Noise {
				oc.found = append(oc.found, f.Path)
			}
		}
	}

	oc.consistent = true
	if e.withDB {
		fmt.Fprintln(out, "\nCDC catching up, then the consistency check:")
		if err := e.waitCDC(ctx, func(st *cdc.Status) bool { return st.CaughtUp }); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		code, _ := e.cli(ctx, out, "check", "--config", e.path, "--recheck-after", "2s")
		oc.consistent = code == exitOK
	}

	sent := 0
	for _, r := range results {
		sent += r.requests
	}
	if err := oc.verdict(); err != nil {
		fmt.Fprintln(out, "\ndemo verdict: FAIL")
		return failed(err)
	}
	dbPart := ""
	if e.withDB {
		dbPart = "; CDC kept orders.orders equal to shop.t_order (banyan check: consistent)"
	}
	fmt.Fprintf(out, "\ndemo verdict: OK — %d requests, none failed, every user sticky, ramp monotonic, rollback exact; the shadow diff caught orders-svc's planted bug in $.total and nothing else%s.\n", sent, dbPart)
	if !o.exit {
		fmt.Fprintf(out, "\nThe dashboard stays up at http://%s/ — press Ctrl-C to stop.\n", e.srv.adminAddr())
		<-ctx.Done()
	}
	return nil
}

// demoOutcome is what the demo saw, from which its verdict is made.
type demoOutcome struct {
	overrideOK bool
	// steps are the traffic of start, 80/20, 50/50 and the rollback.
	steps []stepResult
	users int
	// found are the report's differing (non-noise) field paths.
	found      []string
	consistent bool
}

// rampKept returns how many users on orders-svc at 20 % were still there
// at 50 %, and how many were there at 20 %.
func (oc demoOutcome) rampKept() (stayed, at20 int) {
	for u := range oc.steps[1].onNew {
		if oc.steps[2].onNew[u] {
			stayed++
		}
	}
	return stayed, len(oc.steps[1].onNew)
}

// rollbackExact reports whether the users on orders-svc after the
// rollback are exactly those who were there at 20 %: nobody else, and
// nobody of them sent back to legacy.
func (oc demoOutcome) rollbackExact() bool {
	return maps.Equal(oc.steps[3].onNew, oc.steps[1].onNew)
}

// verdict returns nil when the demo showed everything it claims, or an
// error naming what it did not. Each claim must be able to fail: a ramp
// that moved nobody, users on orders-svc at weight 0, or a rollback that
// sent everybody back all fail, not only failed requests.
func (oc demoOutcome) verdict() error {
	var ps []string
	if !oc.overrideOK {
		ps = append(ps, "the override header did not reach orders-svc")
	}
	failedReqs, switched := 0, 0
	for _, r := range oc.steps {
		failedReqs += r.failed
		switched += r.switched
	}
	if failedReqs > 0 {
		ps = append(ps, fmt.Sprintf("%d requests failed", failedReqs))
	}
	if switched > 0 {
		ps = append(ps, fmt.Sprintf("%d users switched backends within a step (not sticky)", switched))
	}
	if n := len(oc.steps[0].onNew); n > 0 {
		ps = append(ps, fmt.Sprintf("at the start %d users were served by orders-svc at weight 0", n))
	}
	for i, r := range oc.steps {
		step := demoStepNames[i]
		if r.want != nil && !r.split.Equal(r.want) {
			ps = append(ps, fmt.Sprintf("step %q: the live split was %s, the step set %s", step, r.split, r.want))
		}
		if r.expectNew != nil && !maps.Equal(r.onNew, r.expectNew) {
			ps = append(ps, fmt.Sprintf("step %q: %d users were served by orders-svc, the live bucket map puts %d there", step, len(r.onNew), len(r.expectNew)))
		}
	}
	if stayed, at20 := oc.rampKept(); stayed != at20 {
		ps = append(ps, fmt.Sprintf("ramp 20%% -> 50%% kept only %d of %d users on orders-svc", stayed, at20))
	}
	if !oc.rollbackExact() {
		ps = append(ps, fmt.Sprintf("rollback not exact: %d users on orders-svc after it, %d at 20%%", len(oc.steps[3].onNew), len(oc.steps[1].onNew)))
	}
	// The new service's planted bug (a truncated discount total) must be
	// the one and only differing field; request_id must be noise.
	if len(oc.found) != 1 || oc.found[0] != "$.total" {
		ps = append(ps, fmt.Sprintf("differing fields %v, want only $.total", oc.found))
	}
	if !oc.consistent {
		ps = append(ps, "banyan check did not find the databases consistent")
	}
	if len(ps) > 0 {
		return fmt.Errorf("demo: %s", strings.Join(ps, "; "))
	}
	return nil
}

// demoStepNames name the demo's four traffic steps in the verdict.
var demoStepNames = []string{"start", "routes set 80/20", "routes set 50/50", "routes rollback"}
