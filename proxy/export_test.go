package proxy

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/banyanhq/banyan/internal/uring"
)

// The fast path's tests run on the engine BANYAN_TEST_ENGINE names (make
// test runs them on each), or the default. Where the kernel refuses
// io_uring they run on goroutines instead, except under CI=true, where
// they then fail: CI's machine has io_uring, and a silent fall-back would
// leave the engine untested.
func init() {
	switch e := Engine(os.Getenv("BANYAN_TEST_ENGINE")); {
	case e == "":
	case e == EngineURing && os.Getenv("CI") != "true" && uring.Probe() != nil:
		fmt.Fprintf(os.Stderr, "proxy tests: io_uring is not available here (%v); they run on goroutines (CI=true makes this a failure)\n", uring.Probe())
		defaultEngine = EngineGoroutines
	default:
		defaultEngine = e
	}
}

// WaitFor lets the external tests share waitFor.
var WaitFor = waitFor

// IsTimeout lets the external tests share isTimeout.
var IsTimeout = isTimeout

// SetDefaultEngine makes e what EngineAuto means, until the test ends.
func SetDefaultEngine(t *testing.T, e Engine) {
	old := defaultEngine
	defaultEngine = e
	t.Cleanup(func() { defaultEngine = old })
}

// SetURingProbe makes f what tells the server whether io_uring can run,
// until the test ends.
func SetURingProbe(t *testing.T, f func() error) {
	old := probeURing
	probeURing = f
	t.Cleanup(func() { probeURing = old })
}

// SetTestHookIdle sets testHookIdle until the test ends.
func SetTestHookIdle(t *testing.T, f func()) {
	testHookIdle.Store(&f)
	t.Cleanup(func() { testHookIdle.Store(nil) })
}

// SetTestHookAnswered sets testHookAnswered until the test ends.
func SetTestHookAnswered(t *testing.T, f func()) {
	testHookAnswered.Store(&f)
	t.Cleanup(func() { testHookAnswered.Store(nil) })
}

// waitFor polls cond until it holds or d passes, and reports whether it
// held. It covers the gap between a client reading an answer and the proxy
// recording it.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}
