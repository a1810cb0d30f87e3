package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// With xds.listen set, serve refuses a table it cannot translate for
// Envoy; validate must find that too, not call the file valid.
func TestValidateCmd_XDSProblems(t *testing.T) {
	path := filepath.Join(t.TempDir(), "banyan.yaml")
	writeAtomic(t, path, `xds: {listen: 127.0.0.1:0}
admin: {listen: 127.0.0.1:0}
listen: 127.0.0.1:0
state: state.db
backends:
  legacy: {url: http://127.0.0.1:8081/base1}
  new:    {url: http://127.0.0.1:8082/base2}
routes:
  - name: orders
    match: {path_prefix: /api/orders}
    split: {legacy: 80, new: 20}
`)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"validate", "--config", path}, &out, &errb)
	if code != exitFound || !strings.Contains(errb.String(), "route orders") || !strings.Contains(errb.String(), "different URL paths") {
		t.Errorf("validate: exit %d, stdout %q, stderr %q; want exit %d naming route orders and the URL paths", code, out.String(), errb.String(), exitFound)
	}
	// serve agrees: it refuses to start on the same file.
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"serve", "--config", path}, &out, &errb); code != exitCannotRun || !strings.Contains(errb.String(), "different URL paths") {
		t.Errorf("serve: exit %d, stderr %q", code, errb.String())
	}
}

// A value set by a BANYAN_* variable is checked like the file's, and a
// problem with it names the variable: the file does not hold the value.
func TestValidateCmd_EnvOverrideProblemNamesVariable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "banyan.yaml")
	writeAtomic(t, path, configYAML("http://127.0.0.1:1", "http://127.0.0.1:2", 100, 0))
	for _, tc := range []struct{ env, value, field string }{
		{"BANYAN_FAST_PATH", "maybe", "fast_path"},
		{"BANYAN_LISTEN", "8080", "listen"},
		{"BANYAN_ADMIN_LISTEN", "localhost", "admin.listen"},
		{"BANYAN_OVERRIDE_HEADER", "X Backend", "override.header"},
	} {
		t.Run(tc.env, func(t *testing.T) {
			t.Setenv(tc.env, tc.value)
			var out, errb bytes.Buffer
			code := run(context.Background(), []string{"validate", "--config", path}, &out, &errb)
			if code != exitFound || !strings.Contains(errb.String(), tc.field+":") || !strings.Contains(errb.String(), tc.env) {
				t.Errorf("exit %d, stderr %q; want %d with a problem on %s naming %s", code, errb.String(), exitFound, tc.field, tc.env)
			}
		})
	}
}

// Every problem of a route's diff rules is listed: a bad tolerance does
// not hide a bad ignore path next to it.
func TestValidateCmd_EveryDiffProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "banyan.yaml")
	writeAtomic(t, path, configYAML("http://127.0.0.1:1", "http://127.0.0.1:2", 100, 0)+`    diff:
      ignore: ["meta.request_id"]
      tolerance: {"$.total": "half a cent"}
`)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"validate", "--config", path}, &out, &errb)
	for _, want := range []string{`"meta.request_id"`, `"half a cent"`} {
		if code != exitFound || !strings.Contains(errb.String(), want) {
			t.Errorf("exit %d, stderr %q; want %d naming %s", code, errb.String(), exitFound, want)
		}
	}
}

// A CDC mapping that contradicts itself is listed by validate, every such
// problem, before `cdc run` would meet it as a SQL error or a column
// silently left out.
func TestValidateCmd_CDCMappingContradictions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "banyan.yaml")
	writeAtomic(t, path, `backends: {legacy: {url: http://127.0.0.1:8081}}
routes:
  - {name: all, match: {path_prefix: /}, split: {legacy: 100}}
cdc:
  source: {dsn: "repl:x@tcp(127.0.0.1:3306)/shop", server_id: 4051}
  target: {dsn: "banyan:x@tcp(127.0.0.1:3307)/orders"}
  tables:
    - source: shop.t_order
      target: orders.orders
      columns: {usr_id: user_id, buyer: USER_ID, memo: note}
      convert: {amt: yuan_to_cents}
      skip: [memo, amt]
`)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"validate", "--config", path}, &out, &errb)
	if code != exitFound {
		t.Errorf("exit %d, want %d; stderr %q", code, exitFound, errb.String())
	}
	for _, w := range []string{
		"cdc.tables[0].columns", "buyer and usr_id are both renamed to",
		"cdc.tables[0].skip", "memo is both skipped and renamed to note", "amt is both skipped and converted",
	} {
		if !strings.Contains(errb.String(), w) {
			t.Errorf("stderr lacks %q:\n%s", w, errb.String())
		}
	}
}

// An admin token variable serve would refuse (set, but no usable token in
// it) is a problem validate lists too, naming the variable and never the
// secret; validate called the file valid and serve then would not start.
// With no token, an admin listener off loopback is noted: serve needs the
// token where it runs.
func TestValidateCmd_AdminTokenAsServeReadsIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "banyan.yaml")
	writeAtomic(t, path, configYAML("http://127.0.0.1:1", "http://127.0.0.1:2", 100, 0))
	t.Setenv("BANYAN_ADMIN_TOKEN", "ops:s3cret,ci:")
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"validate", "--config", path}, &out, &errb)
	if code != exitFound || !strings.Contains(errb.String(), "admin.token_env") || !strings.Contains(errb.String(), "BANYAN_ADMIN_TOKEN") || strings.Contains(errb.String(), "s3cret") {
		t.Errorf("exit %d, stdout %q, stderr %q; want %d naming admin.token_env and BANYAN_ADMIN_TOKEN, not the secret", code, out.String(), errb.String(), exitFound)
	}

	t.Setenv("BANYAN_ADMIN_TOKEN", "")
	writeAtomic(t, path, strings.Replace(configYAML("http://127.0.0.1:1", "http://127.0.0.1:2", 100, 0), "admin: {listen: 127.0.0.1:0}", "admin: {listen: 0.0.0.0:9901}", 1))
	out.Reset()
	errb.Reset()
	code = run(context.Background(), []string{"validate", "--config", path}, &out, &errb)
	if code != exitOK || !strings.Contains(out.String()+errb.String(), "BANYAN_ADMIN_TOKEN") {
		t.Errorf("off loopback without a token: exit %d, stdout %q, stderr %q; want %d and a note naming BANYAN_ADMIN_TOKEN", code, out.String(), errb.String(), exitOK)
	}
}
