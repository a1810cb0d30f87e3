// Command loadgen sends GET requests at a fixed rate (open loop) and reports
// latency percentiles. Each request has a scheduled send time; its latency is
// measured from that time, not from when a connection became free, so a slow
// server cannot hide its stalls by slowing the client (coordinated omission).
//
// It also reports, apart, how late the client itself sent (lag_*: scheduled
// time to the moment a worker started the request) and the service time
// (svc_*: that moment to the end of the body), so a client that cannot keep
// its schedule is visible instead of being blamed on the server.
//
// Output is one line of key=value pairs, latencies in milliseconds, for
// bench/proxy.sh:
//
//	rate=2000 duration=10s sent=20000 ok=20000 errors=0 late=0 p50=0.21 p90=0.35 p99=0.90 max=3.10 svc_p50=... svc_p99=... lag_p50=... lag_p99=...
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "", "URL to GET (required)")
	rate := flag.Int("rate", 2000, "requests per second")
	duration := flag.Duration("duration", 10*time.Second, "how long to send")
	conns := flag.Int("conns", 64, "keep-alive connections (and sending workers)")
	timeout := flag.Duration("timeout", 5*time.Second, "per-request timeout")
	client := flag.String("client", "nethttp", "nethttp (Go's http.Client, a worker goroutine a connection) or raw (one thread on epoll and a timerfd, Linux; sends on time to the microsecond)")
	flag.Parse()
	if *url == "" || *rate <= 0 || *conns <= 0 || *duration <= 0 || *client != "nethttp" && *client != "raw" {
		fmt.Fprintln(os.Stderr, "usage: loadgen -url URL [-rate N] [-duration D] [-conns N] [-client nethttp|raw]")
		os.Exit(2)
	}
	var r result
	if *client == "raw" {
		var err error
		if r, err = runRaw(*url, *rate, *duration, *conns, *timeout); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(2)
		}
	} else {
		r = run(*url, *rate, *duration, *conns, *timeout)
	}
	for _, ds := range [][]time.Duration{r.lat, r.svc, r.lag} {
		slices.Sort(ds)
	}
	fmt.Println(r)
	if r.ok == 0 {
		os.Exit(1)
	}
}

type result struct {
	rate           int
	duration       time.Duration
	sent, ok, errs int
	late           int             // requests whose worker picked them up > 1 ms after schedule
	lat            []time.Duration // from the scheduled send time (sorted before printing)
	svc            []time.Duration // from the actual send time
	lag            []time.Duration // actual send minus scheduled send
	firstErr       error
}

// pct returns the p-quantile of sorted ds in milliseconds.
func pct(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	i := int(p*float64(len(ds))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(ds) {
		i = len(ds) - 1
	}
	return float64(ds[i].Microseconds()) / 1000
}

func (r result) String() string {
	s := fmt.Sprintf("rate=%d duration=%s sent=%d ok=%d errors=%d late=%d p50=%.2f p90=%.2f p99=%.2f max=%.2f svc_p50=%.2f svc_p99=%.2f lag_p50=%.2f lag_p99=%.2f",
		r.rate, r.duration, r.sent, r.ok, r.errs, r.late,
		pct(r.lat, 0.50), pct(r.lat, 0.90), pct(r.lat, 0.99), pct(r.lat, 1),
		pct(r.svc, 0.50), pct(r.svc, 0.99), pct(r.lag, 0.50), pct(r.lag, 0.99))
	if r.firstErr != nil {
		s += fmt.Sprintf(" first_error=%q", r.firstErr.Error())
	}
	return s
}

func run(url string, rate int, duration time.Duration, conns int, timeout time.Duration) result {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		DisableCompression:  true,
	}
	client := &http.Client{Transport: tr, Timeout: timeout}
	defer tr.CloseIdleConnections()

	n := int(float64(rate) * duration.Seconds())
	interval := time.Second / time.Duration(rate)
	// The queue holds every scheduled send time, so the scheduler never
	// waits on a busy worker: a backlog shows up as latency, as it should.
	queue := make(chan time.Time, n)
	lats := make([][]time.Duration, conns)
	svcs := make([][]time.Duration, conns)
	lags := make([][]time.Duration, conns)
	errs := make([]int, conns)
	late := make([]int, conns)
	var firstErr error
	var errOnce sync.Once

	ctx, cancel := context.WithTimeout(context.Background(), duration+timeout+time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for sched := range queue {
				if ctx.Err() != nil {
					errs[w]++
					continue
				}
				begin := time.Now()
				if begin.Sub(sched) > time.Millisecond {
					late[w]++
				}
				err := get(ctx, client, url)
				end := time.Now()
				if err != nil {
					errs[w]++
					errOnce.Do(func() { firstErr = err })
					continue
				}
				lats[w] = append(lats[w], end.Sub(sched))
				svcs[w] = append(svcs[w], end.Sub(begin))
				lags[w] = append(lags[w], begin.Sub(sched))
			}
		}(w)
	}

	start := time.Now()
	for i := 0; i < n; i++ {
		sched := start.Add(time.Duration(i) * interval)
		if d := time.Until(sched); d > 0 {
			time.Sleep(d)
		}
		queue <- sched
	}
	close(queue)
	wg.Wait()

	r := result{rate: rate, duration: duration, sent: n, firstErr: firstErr}
	for w := range lats {
		r.lat = append(r.lat, lats[w]...)
		r.svc = append(r.svc, svcs[w]...)
		r.lag = append(r.lag, lags[w]...)
		r.errs += errs[w]
		r.late += late[w]
	}
	r.ok = len(r.lat)
	return r
}

func get(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
