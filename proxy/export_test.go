package proxy

import (
	"os"
	"testing"
	"time"
)

// The fast path's tests run on the engine BANYAN_TEST_ENGINE names
// (make test runs them on each); without it, on io_uring where the kernel
// allows it, and under CI=true on io_uring or not at all: CI's machine has
// it, and a silent fall-back would leave the engine untested.
func init() {
	switch e := os.Getenv("BANYAN_TEST_ENGINE"); {
	case e != "":
		defaultEngine = Engine(e)
	case os.Getenv("CI") == "true":
		defaultEngine = EngineURing
	}
}

// WaitFor lets the external tests share waitFor.
var WaitFor = waitFor

// IsTimeout lets the external tests share isTimeout.
var IsTimeout = isTimeout

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
