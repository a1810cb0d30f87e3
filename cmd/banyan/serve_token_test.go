package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banyanhq/banyan/routes"
)

// A token variable that is set but holds no usable token refuses to start,
// naming the variable and the entry — "ops:" (the secret forgotten), or a
// secret with a comma in it, which the label:TOKEN,label2:TOKEN2 form cuts
// into two unlabelled tokens. Before the fix serve started: on loopback with
// the admin API open to anyone ("ops:" gave no token at all), or accepting
// the two pieces of the cut secret, each a token on its own.
func TestServe_RefusesUnusableToken(t *testing.T) {
	for _, tc := range []struct{ value, says string }{
		{"ops:", `"ops" has no token`},
		{" , ", "holds no token"},
		{"s3cr,et", "label"},
		{"ops:s3cret,ci:", `"ci" has no token`},
	} {
		t.Run(tc.value, func(t *testing.T) {
			t.Setenv(routes.DefaultTokenEnv, tc.value)
			path := filepath.Join(t.TempDir(), "banyan.yaml")
			writeAtomic(t, path, configYAML("http://127.0.0.1:1", "http://127.0.0.1:2", 100, 0))
			var logs bytes.Buffer
			srv, err := newServer(context.Background(), path, slog.New(slog.NewTextHandler(&logs, nil)))
			if err == nil {
				srv.closeAll(context.Background())
				t.Fatalf("serve started with %s=%q", routes.DefaultTokenEnv, tc.value)
			}
			msg := err.Error()
			if !strings.Contains(msg, routes.DefaultTokenEnv) || !strings.Contains(msg, tc.says) {
				t.Errorf("error %q; want it to name %s and say %q", msg, routes.DefaultTokenEnv, tc.says)
			}
			if strings.Contains(msg, "s3cr") {
				t.Errorf("the error shows the secret: %q", msg)
			}
		})
	}
}

// The routes CLI run where BANYAN_ADMIN_TOKEN holds the server's list of
// labelled tokens cannot tell which one is its own: it says so, naming the
// labels, and calls nothing. It sent the whole list as one token and got a
// 401 telling it to set BANYAN_ADMIN_TOKEN, which was set.
func TestRoutesCLI_TokenListIsAsked(t *testing.T) {
	t.Setenv(routes.DefaultTokenEnv, "ops:s3cret,ci:other")
	e := newEstate(t)
	code, _, stderr := e.cli(t, "routes", "set", "r", "a=90", "b=10")
	if code != exitCannotRun || !strings.Contains(stderr, "ci, ops") || strings.Contains(stderr, "s3cret") {
		t.Errorf("exit %d, stderr %q; want %d naming the labels ci, ops and no token", code, stderr, exitCannotRun)
	}
	if got := e.srv.mgr.Table().Route("r").Split(); got["b"] != 0 {
		t.Errorf("split changed to %s", got)
	}
	t.Setenv(routes.DefaultTokenEnv, "ci:other")
	if code, out, stderr := e.cli(t, "routes", "set", "r", "a=90", "b=10"); code != exitOK || !strings.Contains(out, "by ci (") {
		t.Errorf("with one labelled token: exit %d, out %q, err %q", code, out, stderr)
	}
}
