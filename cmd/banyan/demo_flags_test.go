package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Bad flags and arguments of demo and demo-service are exit 2 (could not
// run), like every other command's, and are refused before anything starts.
func TestDemoCmds_BadFlagsExit2(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		inStderr string
	}{
		{[]string{"demo", "--users", "0", "--exit"}, "--users"},
		{[]string{"demo", "--duration", "-1s", "--exit"}, "--duration"},
		{[]string{"demo", "--duration", "0s", "--requests", "0", "--exit"}, "--duration"},
		{[]string{"demo-service", "shop"}, "legacy and orders"},
		// The name is checked before the database is dialled.
		{[]string{"demo-service", "shop", "--dsn", "root@tcp(127.0.0.1:1)/shop"}, "legacy and orders"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errb)
			if code != exitCannotRun || !strings.Contains(errb.String(), tc.inStderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errb.String(), exitCannotRun, tc.inStderr)
			}
		})
	}
}
