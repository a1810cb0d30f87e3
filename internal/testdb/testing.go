package testdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// requireServer reports whether a missing server binary must fail the run
// rather than skip: under CI (CI=true) a skipped integration suite would
// pass silently.
func requireServer(getenv func(string) string) bool {
	return getenv("CI") == "true"
}

// StartTB starts a server for one test or benchmark and stops it (removing
// its directory) in tb.Cleanup. Options.Name defaults to tb.Name(). When no
// server binary is installed it skips the test, or fails it under CI=true.
func StartTB(tb testing.TB, o Options) *Server {
	tb.Helper()
	return startTB(tb, o, Start, os.Getenv)
}

func startTB(tb testing.TB, o Options, start func(context.Context, Options) (*Server, error), getenv func(string) string) *Server {
	tb.Helper()
	if o.Name == "" {
		o.Name = tb.Name()
	}
	s, err := start(tb.Context(), o)
	if errors.Is(err, ErrNoServer) {
		if requireServer(getenv) {
			tb.Fatalf("%v (CI=true: a missing server fails the run)", err)
		}
		tb.Skip(err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// Pair is a source and a target server, as CDC tests need.
type Pair struct {
	Source, Target *Server
}

// StartPair starts servers named "source" and "target" concurrently, with
// distinct server_ids. If either fails, the other is stopped.
func StartPair(ctx context.Context) (*Pair, error) {
	return startPair(ctx, Start)
}

func startPair(ctx context.Context, start func(context.Context, Options) (*Server, error)) (*Pair, error) {
	names := [2]string{"source", "target"}
	var (
		srv  [2]*Server
		errs [2]error
		wg   sync.WaitGroup
	)
	for i := range names {
		wg.Go(func() { srv[i], errs[i] = start(ctx, Options{Name: names[i]}) })
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		for _, s := range srv {
			if s != nil {
				s.Stop()
			}
		}
		if errors.Is(err, ErrNoServer) {
			return nil, ErrNoServer // one message, not two
		}
		return nil, err
	}
	return &Pair{Source: srv[0], Target: srv[1]}, nil
}

// Stop stops both servers.
func (p *Pair) Stop() error {
	var (
		errs [2]error
		wg   sync.WaitGroup
	)
	for i, s := range []*Server{p.Source, p.Target} {
		wg.Go(func() { errs[i] = s.Stop() })
	}
	wg.Wait()
	return errors.Join(errs[:]...)
}

// RunWithPair starts a Pair, stores it in *pair, runs the tests and stops
// the pair, returning the exit code. Use it from TestMain so that a test
// package shares one pair of servers:
//
//	var pair *testdb.Pair
//
//	func TestMain(m *testing.M) { os.Exit(testdb.RunWithPair(m, &pair)) }
//
//	func TestX(t *testing.T) {
//		p := testdb.Need(t, pair)
//		db := testdb.TempDatabase(t, p.Source)
//		...
//	}
//
// When no server binary is installed the tests still run with *pair nil
// (Need skips them), except under CI=true, where RunWithPair prints why and
// returns 1 without running them. Any other start failure returns 1.
func RunWithPair(m *testing.M, pair **Pair) int {
	return runWithPair(m.Run, pair, Start, os.Getenv, os.Stderr)
}

func runWithPair(run func() int, pair **Pair, start func(context.Context, Options) (*Server, error), getenv func(string) string, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*startTimeout)
	p, err := startPair(ctx, start)
	cancel()
	switch {
	case errors.Is(err, ErrNoServer) && requireServer(getenv):
		fmt.Fprintf(stderr, "FAIL: %v (CI=true: a missing server fails the run)\n", err)
		return 1
	case errors.Is(err, ErrNoServer):
		fmt.Fprintf(stderr, "%v; tests that need it are skipped\n", err)
		*pair = nil
		return run()
	case err != nil:
		fmt.Fprintf(stderr, "FAIL: start test servers: %v\n", err)
		return 1
	}
	*pair = p
	code := run()
	if err := p.Stop(); err != nil {
		fmt.Fprintf(stderr, "FAIL: stop test servers: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Need returns pair, skipping the test when it is nil because no server
// binary is installed. Under CI=true a nil pair fails the test instead.
func Need(tb testing.TB, pair *Pair) *Pair {
	tb.Helper()
	return need(tb, pair, os.Getenv)
}

func need(tb testing.TB, pair *Pair, getenv func(string) string) *Pair {
	tb.Helper()
	if pair != nil {
		return pair
	}
	if requireServer(getenv) {
		tb.Fatal("testdb: no server pair under CI=true; call testdb.RunWithPair from TestMain and install mariadb-server")
	}
	tb.Skip(ErrNoServer)
	return nil
}

var tempDBSeq atomic.Uint64

// TempDatabase creates a database named after the test on s and drops it in
// tb.Cleanup, so tests sharing a server do not see each other's tables.
func TempDatabase(tb testing.TB, s *Server) string {
	tb.Helper()
	name := fmt.Sprintf("t%d_%s", tempDBSeq.Add(1), strings.ToLower(dirSafe(tb.Name())))
	if err := s.CreateDatabase(tb.Context(), name); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if s.Pid() == 0 {
			return // stopped or killed by the test; nothing to drop
		}
		if err := s.Exec(ctx, "DROP DATABASE IF EXISTS "+QuoteIdent(name)); err != nil {
			tb.Error(err)
		}
	})
	return name
}
