package main

import (
	"strings"
	"testing"
)

// A bad --format is a bad flag: the command exits 2 before it calls the
// admin API, so the weight edit it refuses to report is not made either.
func TestRoutesCLI_BadFormatChangesNothing(t *testing.T) {
	e := newEstate(t)
	for _, args := range [][]string{
		{"routes", "set", "r", "a=50", "b=50", "--format", "yaml"},
		{"routes", "rollback", "r", "--format", "yaml"},
		{"routes", "list", "--format", "yaml"},
		{"routes", "history", "--format", "yaml"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			if args[1] == "rollback" {
				if code, _, stderr := e.cli(t, "routes", "set", "r", "a=90", "b=10"); code != exitOK {
					t.Fatalf("routes set: exit %d: %s", code, stderr)
				}
			}
			before := e.srv.mgr.Table().Route("r").Split()
			code, _, stderr := e.cli(t, args...)
			if code != exitCannotRun || !strings.Contains(stderr, "--format") {
				t.Errorf("exit %d, stderr %q; want %d naming --format", code, stderr, exitCannotRun)
			}
			if after := e.srv.mgr.Table().Route("r").Split(); !after.Equal(before) {
				t.Errorf("split changed from %s to %s by a command that failed on its flags", before, after)
			}
		})
	}
}
