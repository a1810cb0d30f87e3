package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/banyanhq/banyan/routes"
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

// An admin API that fails (a 5xx from the server or a proxy in front of
// it) or answers like no banyan (405) could not run the edit: exit 2. Only
// banyan's refusals of the edit itself (400 bad split, 404 unknown route,
// 409 nothing to roll back) are exit 1.
func TestRoutesCLI_AdminFailureIsExit2(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   int
	}{
		{http.StatusInternalServerError, `{"error":"save edit: disk I/O error"}`, exitCannotRun},
		{http.StatusBadGateway, "upstream connect error", exitCannotRun},
		{http.StatusServiceUnavailable, "", exitCannotRun},
		{http.StatusMethodNotAllowed, "method not allowed", exitCannotRun},
		{http.StatusBadRequest, `{"error":"invalid split","problems":[{"field":"split","why":"weights sum to 110, they must sum to 100"}]}`, exitFound},
		{http.StatusNotFound, `{"error":"unknown route \"x\""}`, exitFound},
		{http.StatusConflict, `{"error":"route r: nothing to roll back"}`, exitFound},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer admin.Close()
			for _, args := range [][]string{{"routes", "set", "r", "a=50", "b=50"}, {"routes", "rollback", "r"}} {
				var out, errb bytes.Buffer
				code := run(context.Background(), append(args, "--admin", admin.URL), &out, &errb)
				if code != tc.want {
					t.Errorf("%s: exit %d, want %d (stderr %q)", strings.Join(args, " "), code, tc.want, errb.String())
				}
			}
		})
	}
}

// routes history of a route the server does not know (a misspelt name) is
// a refusal, exit 1 naming the route — it printed an empty table and
// exited 0, as if the route had never been edited. A route that has left
// the config still shows its history.
func TestRoutesCLI_HistoryOfUnknownRoute(t *testing.T) {
	e := newEstate(t)
	code, out, stderr := e.cli(t, "routes", "history", "rr")
	if code != exitFound || !strings.Contains(stderr, `unknown route "rr"`) {
		t.Errorf("history rr: exit %d, stdout %q, stderr %q; want %d naming the route", code, out, stderr, exitFound)
	}
	code, out, stderr = e.cli(t, "routes", "history", "r")
	if code != exitOK || !strings.Contains(out, "route added by config") {
		t.Errorf("history r: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	// Renamed in the file: the old name keeps its history.
	cfg := strings.Replace(configYAML(e.a.URL, e.b.URL, 100, 0), "name: r", "name: r2", 1)
	writeAtomic(t, e.path, cfg)
	if err := e.srv.reload(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = e.cli(t, "routes", "history", "r")
	if code != exitOK || !strings.Contains(out, "route added by config") {
		t.Errorf("history of the route the file renamed: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}

// An --admin written without its scheme (host:port, as admin.listen is
// written) is named and the URL to write is shown. It was reported as
// "admin API unreachable ... is banyan serve running?" for localhost:9901,
// and as a URL parse error for 127.0.0.1:9901.
func TestRoutesCLI_AdminWithoutScheme(t *testing.T) {
	e := newEstate(t)
	for _, admin := range []string{e.srv.adminAddr(), strings.Replace(e.srv.adminAddr(), "127.0.0.1", "localhost", 1)} {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"routes", "list", "--admin", admin}, &out, &errb)
		if want := "http://" + admin; code != exitCannotRun || !strings.Contains(errb.String(), want) || strings.Contains(errb.String(), "unreachable") {
			t.Errorf("--admin %s: exit %d, stderr %q; want %d showing %s", admin, code, errb.String(), exitCannotRun, want)
		}
	}
}

// Two engineers who see the same alarm and both roll back the same step
// undo it once: with --edit N (the history number of the step they mean,
// shown by routes history) the second rollback is refused, exit 1, naming
// the edit that would be undone instead. Without it, the second rollback
// walked a step further back than either meant.
func TestRoutesCLI_RollbackOfAnEditIsDoneOnce(t *testing.T) {
	e := newEstate(t)
	for _, split := range [][]string{{"a=80", "b=20"}, {"a=50", "b=50"}} {
		if code, _, stderr := e.cli(t, append([]string{"routes", "set", "r"}, split...)...); code != exitOK {
			t.Fatalf("routes set: exit %d: %s", code, stderr)
		}
	}
	step := e.srv.mgr.Table().Version() // the 50/50 step
	seq := fmt.Sprint(step)
	codes := make(chan int, 2)
	stderrs := make(chan string, 2)
	for range 2 {
		go func() {
			code, _, stderr := e.cli(t, "routes", "rollback", "r", "--edit", seq, "--reason", "errors up")
			codes <- code
			stderrs <- stderr
		}()
	}
	got := map[int]int{}
	var refusal string
	for range 2 {
		code, stderr := <-codes, <-stderrs
		got[code]++
		if code == exitFound {
			refusal = stderr
		}
	}
	if got[exitOK] != 1 || got[exitFound] != 1 {
		t.Fatalf("exit codes %v; want one 0 and one 1", got)
	}
	if !strings.Contains(refusal, "#"+seq) || !strings.Contains(refusal, "routes history") {
		t.Errorf("refusal %q does not name edit #%s and the history", refusal, seq)
	}
	if got, want := e.srv.mgr.Table().Route("r").Split(), (routes.Split{"a": 80, "b": 20}); !got.Equal(want) {
		t.Errorf("split after both rollbacks = %s, want %s (one step back)", got, want)
	}
	// --edit naming an edit that is next in line still works.
	if code, _, stderr := e.cli(t, "routes", "rollback", "r", "--edit", fmt.Sprint(step-1)); code != exitOK {
		t.Errorf("rollback --edit %d: exit %d: %s", step-1, code, stderr)
	}
}
