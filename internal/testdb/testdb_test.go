package testdb

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestStart_TwoServersConcurrently(t *testing.T) {
	ctx := t.Context()
	var (
		srv  [2]*Server
		errs [2]error
		took [2]time.Duration
		wg   sync.WaitGroup
	)
	for i, name := range []string{"source", "target"} {
		wg.Go(func() {
			t0 := time.Now()
			srv[i], errs[i] = Start(ctx, Options{Name: name})
			took[i] = time.Since(t0)
		})
	}
	wg.Wait()
	for _, s := range srv {
		if s != nil {
			t.Cleanup(func() {
				if err := s.Stop(); err != nil {
					t.Error(err)
				}
			})
		}
	}
	for _, err := range errs {
		if errors.Is(err, ErrNoServer) && !requireServer(os.Getenv) {
			t.Skip(err)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("started two servers concurrently in %v and %v (%s)", took[0].Round(time.Millisecond), took[1].Round(time.Millisecond), srv[0].Version())

	if srv[0].ServerID() == srv[1].ServerID() {
		t.Errorf("both servers have server_id %d", srv[0].ServerID())
	}
	if srv[0].Port() == srv[1].Port() {
		t.Errorf("both servers listen on port %d", srv[0].Port())
	}
	for _, s := range srv {
		t.Run(s.Name(), func(t *testing.T) {
			checkServer(t, s)
		})
	}
}

// checkServer asserts the replication settings CDC relies on and that a
// committed insert shows up as a row event in the binlog.
func checkServer(t *testing.T, s *Server) {
	ctx := t.Context()
	if got, want := s.Addr(), fmt.Sprintf("127.0.0.1:%d", s.Port()); got != want {
		t.Errorf("Addr() = %q, want %q", got, want)
	}
	if got := s.Flavor(); got != FlavorMariaDB && got != FlavorMySQL {
		t.Errorf("Flavor() = %q", got)
	}
	if err := s.CreateDatabase(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	db, err := s.Open(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	vars := map[string]string{}
	rows, err := db.QueryContext(ctx, `SHOW GLOBAL VARIABLES WHERE Variable_name IN
		('log_bin','binlog_format','binlog_row_image','server_id','character_set_server','bind_address','port')`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		vars[k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"log_bin":              "ON",
		"binlog_format":        "ROW",
		"binlog_row_image":     "FULL",
		"server_id":            fmt.Sprint(s.ServerID()),
		"character_set_server": "utf8mb4",
		"bind_address":         "127.0.0.1",
		"port":                 fmt.Sprint(s.Port()),
	} {
		if got := vars[k]; got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}

	file, pos := masterStatus(t, db)
	const text = "naïve 🌳 榕树"
	if err := s.Exec(ctx,
		"USE shop",
		"CREATE TABLE orders (id BIGINT UNSIGNED PRIMARY KEY, note VARCHAR(50))",
		"INSERT INTO orders VALUES (1, '"+text+"')",
	); err != nil {
		t.Fatal(err)
	}
	var note string
	if err := db.QueryRowContext(ctx, "SELECT note FROM orders WHERE id = ?", 1).Scan(&note); err != nil {
		t.Fatal(err)
	}
	if note != text {
		t.Errorf("note = %q, want %q (utf8mb4 round trip)", note, text)
	}

	events := binlogEvents(t, db, file, pos)
	var sawWrite bool
	for _, e := range events {
		if strings.HasPrefix(e.typ, "Write_rows") {
			sawWrite = true
			if e.serverID != fmt.Sprint(s.ServerID()) {
				t.Errorf("Write_rows event has server_id %s, want %d", e.serverID, s.ServerID())
			}
		}
	}
	if !sawWrite {
		t.Errorf("no Write_rows event in %s after position %d; events: %v", file, pos, events)
	}

	gtidVar := "@@gtid_binlog_pos"
	if s.Flavor() == FlavorMySQL {
		gtidVar = "@@gtid_executed"
	}
	var gtid string
	if err := db.QueryRowContext(ctx, "SELECT "+gtidVar).Scan(&gtid); err != nil {
		t.Fatal(err)
	}
	if gtid == "" {
		t.Errorf("%s is empty after a commit; GTIDs are off", gtidVar)
	}
}

// masterStatus returns the current binlog file and position.
func masterStatus(t *testing.T, db *sql.DB) (file string, pos int64) {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), "SHOW MASTER STATUS")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		t.Fatalf("SHOW MASTER STATUS returned no row (binlog off?): %v", rows.Err())
	}
	dst := []any{&file, &pos}
	for range cols[2:] {
		dst = append(dst, new(sql.RawBytes))
	}
	if err := rows.Scan(dst...); err != nil {
		t.Fatal(err)
	}
	return file, pos
}

type binlogEvent struct{ typ, serverID, info string }

func binlogEvents(t *testing.T, db *sql.DB, file string, pos int64) []binlogEvent {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), fmt.Sprintf("SHOW BINLOG EVENTS IN '%s' FROM %d", file, pos))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []binlogEvent
	for rows.Next() {
		// Log_name, Pos, Event_type, Server_id, End_log_pos, Info
		var logName, p, end sql.NullString
		var e binlogEvent
		if err := rows.Scan(&logName, &p, &e.typ, &e.serverID, &end, &e.info); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestServer_Stop(t *testing.T) {
	s := StartTB(t, Options{Name: "stop"})
	pid, dir := s.Pid(), s.Dir()
	if pid == 0 {
		t.Fatal("Pid() = 0 for a running server")
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stop left %s behind (stat: %v)", dir, err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process %d still exists after Stop (kill -0: %v)", pid, err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := s.Restart(t.Context()); err == nil {
		t.Error("Restart after Stop succeeded")
	}
}

func TestServer_KillRestart(t *testing.T) {
	s := StartTB(t, Options{Name: "kill"})
	ctx := t.Context()
	if err := s.Exec(ctx,
		"CREATE DATABASE crash",
		"CREATE TABLE crash.t (id INT PRIMARY KEY)",
		"INSERT INTO crash.t VALUES (1), (2), (3)",
	); err != nil {
		t.Fatal(err)
	}
	pid := s.Pid()
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process %d still exists after Kill (kill -0: %v)", pid, err)
	}
	if got := s.Pid(); got != 0 {
		t.Errorf("Pid() = %d after Kill, want 0", got)
	}
	if err := s.Exec(ctx, "SELECT 1"); err == nil {
		t.Error("killed server still answers")
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "data", "crash")); err != nil {
		t.Errorf("Kill removed the data directory: %v", err)
	}

	port, id := s.Port(), s.ServerID()
	t0 := time.Now()
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("crash recovery restart took %v", time.Since(t0).Round(time.Millisecond))
	if s.Port() != port || s.ServerID() != id {
		t.Errorf("after Restart port/server_id = %d/%d, want %d/%d", s.Port(), s.ServerID(), port, id)
	}
	db, err := s.Open(ctx, "crash")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("after crash and restart COUNT(*) = %d, want 3 committed rows", n)
	}
}

func TestStart_OwnDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	s := StartTB(t, Options{Name: "own", Dir: dir})
	if err := s.Exec(t.Context(), "CREATE DATABASE kept"); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "kept")); err != nil {
		t.Fatalf("Stop removed a caller-owned Dir: %v", err)
	}

	// Starting on the same Dir reuses the data rather than reinstalling.
	s2 := StartTB(t, Options{Name: "own", Dir: dir})
	if err := s2.Exec(t.Context(), "USE kept"); err != nil {
		t.Errorf("database from the first run is gone: %v", err)
	}
}

func TestStart_failureShowsLog(t *testing.T) {
	s, err := Start(t.Context(), Options{Name: "bad", ExtraArgs: []string{"--no-such-option-banyan"}})
	if errors.Is(err, ErrNoServer) && !requireServer(os.Getenv) {
		t.Skip(err)
	}
	if err == nil {
		s.Stop()
		t.Fatal("Start with an unknown server option succeeded")
	}
	t.Logf("Start error:\n%v", err)
	if !strings.Contains(err.Error(), "no-such-option-banyan") {
		t.Errorf("error does not quote the server log:\n%v", err)
	}
	if matches, _ := filepath.Glob(filepath.Join(os.TempDir(), "banyan-testdb-bad-*")); len(matches) > 0 {
		t.Errorf("failed Start left directories behind: %v", matches)
	}
}

func TestRunWithPair(t *testing.T) {
	var pair *Pair
	var source, target *Server
	code := runWithPair(func() int {
		if pair == nil {
			return 3
		}
		source, target = pair.Source, pair.Target
		for _, s := range []*Server{source, target} {
			if err := s.Exec(t.Context(), "SELECT 1"); err != nil {
				t.Errorf("%s: %v", s.Name(), err)
			}
		}
		return 0
	}, &pair, Start, os.Getenv, t.Output())
	if code == 3 && !requireServer(os.Getenv) {
		t.Skip(ErrNoServer)
	}
	if code != 0 {
		t.Fatalf("runWithPair = %d, want 0", code)
	}
	if source.Name() != "source" || target.Name() != "target" {
		t.Errorf("pair names = %q, %q; want source, target", source.Name(), target.Name())
	}
	if source.ServerID() == target.ServerID() {
		t.Errorf("source and target share server_id %d", source.ServerID())
	}
	for _, s := range []*Server{source, target} {
		if _, err := os.Stat(s.Dir()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: directory %s survives RunWithPair (stat: %v)", s.Name(), s.Dir(), err)
		}
	}
}

func TestTempDatabase(t *testing.T) {
	s := StartTB(t, Options{Name: "tempdb"})
	var name string
	t.Run("sub/test", func(t *testing.T) {
		name = TempDatabase(t, s)
		if err := s.Exec(t.Context(), "CREATE TABLE "+QuoteIdent(name)+".t (id INT)"); err != nil {
			t.Fatal(err)
		}
	})
	err := s.Exec(t.Context(), "USE "+QuoteIdent(name))
	if err == nil {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestLookup_findServer(t *testing.T) {
	notFound := func(string) (string, error) { return "", exec.ErrNotFound }
	tests := []struct {
		name    string
		onPath  map[string]string
		files   map[string]bool
		want    string
		wantErr error
	}{
		{name: "PATH first", onPath: map[string]string{"mysqld": "/opt/bin/mysqld"}, files: map[string]bool{"/usr/sbin/mariadbd": true}, want: "/opt/bin/mysqld"},
		{name: "mariadbd before mysqld on PATH", onPath: map[string]string{"mysqld": "/a/mysqld", "mariadbd": "/b/mariadbd"}, want: "/b/mariadbd"},
		{name: "usr sbin", files: map[string]bool{"/usr/sbin/mariadbd": true}, want: "/usr/sbin/mariadbd"},
		{name: "usr local mysql", files: map[string]bool{"/usr/local/mysql/bin/mysqld": true}, want: "/usr/local/mysql/bin/mysqld"},
		{name: "none", wantErr: ErrNoServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := lookup{
				lookPath: func(name string) (string, error) {
					if p, ok := tt.onPath[name]; ok {
						return p, nil
					}
					return notFound(name)
				},
				isExec: func(p string) bool { return tt.files[p] },
			}
			got, err := l.findServer()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("findServer() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestErrNoServer_saysHowToInstall(t *testing.T) {
	if !strings.Contains(ErrNoServer.Error(), "apt-get install -y mariadb-server") {
		t.Errorf("ErrNoServer = %q, want it to say how to install", ErrNoServer)
	}
}

// fakeTB records Fatal and Skip; both end the calling goroutine like the
// real ones. Unimplemented methods panic through the nil embedded TB.
type fakeTB struct {
	testing.TB
	failed, skipped string
	cleanups        []func()
}

func (f *fakeTB) Helper()                  {}
func (f *fakeTB) Name() string             { return "TestFake" }
func (f *fakeTB) Context() context.Context { return context.Background() }
func (f *fakeTB) Cleanup(fn func())        { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Fatal(args ...any)        { f.failed = fmt.Sprint(args...); runtime.Goexit() }
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Skip(args ...any) { f.skipped = fmt.Sprint(args...); runtime.Goexit() }

// runTB runs fn as a test body would run, in its own goroutine.
func runTB(fn func(tb *fakeTB)) *fakeTB {
	tb := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(tb)
	}()
	<-done
	return tb
}

func env(ci string) func(string) string {
	return func(k string) string {
		if k == "CI" {
			return ci
		}
		return ""
	}
}

func noServer(context.Context, Options) (*Server, error) { return nil, ErrNoServer }

// missing runs the real lookup against an empty file system.
func missing(ctx context.Context, o Options) (*Server, error) {
	none := func(string) (string, error) { return "", exec.ErrNotFound }
	return start(ctx, o, lookup{lookPath: none, isExec: func(string) bool { return false }})
}

func TestStartTB_missingServer(t *testing.T) {
	tests := []struct {
		ci       string
		wantFail bool
	}{
		{ci: "true", wantFail: true},
		{ci: "", wantFail: false},
		{ci: "false", wantFail: false},
	}
	for _, tt := range tests {
		t.Run("CI="+tt.ci, func(t *testing.T) {
			var got *Server
			tb := runTB(func(tb *fakeTB) { got = startTB(tb, Options{}, missing, env(tt.ci)) })
			if got != nil {
				t.Errorf("startTB returned a server")
			}
			if failed := tb.failed != ""; failed != tt.wantFail {
				t.Errorf("failed = %v (%q), want %v", failed, tb.failed, tt.wantFail)
			}
			if skipped := tb.skipped != ""; skipped == tt.wantFail {
				t.Errorf("skipped = %v (%q), want %v", skipped, tb.skipped, !tt.wantFail)
			}
			if msg := tb.failed + tb.skipped; !strings.Contains(msg, "apt-get install -y mariadb-server") {
				t.Errorf("message %q does not say how to install", msg)
			}
		})
	}
}

func TestRunWithPair_missingServer(t *testing.T) {
	t.Run("CI=true fails without running tests", func(t *testing.T) {
		var stderr bytes.Buffer
		var pair *Pair
		ran := false
		code := runWithPair(func() int { ran = true; return 0 }, &pair, noServer, env("true"), &stderr)
		if code == 0 || ran {
			t.Errorf("code = %d, ran = %v; want non-zero without running", code, ran)
		}
		if !strings.Contains(stderr.String(), "mariadb-server") {
			t.Errorf("stderr = %q, want the install hint", stderr.String())
		}
	})
	t.Run("locally runs tests with a nil pair", func(t *testing.T) {
		var stderr bytes.Buffer
		pair := &Pair{}
		ran := false
		code := runWithPair(func() int { ran = pair == nil; return 7 }, &pair, noServer, env(""), &stderr)
		if code != 7 || !ran {
			t.Errorf("code = %d, ran with nil pair = %v; want 7, true", code, ran)
		}
	})
	t.Run("other start errors fail", func(t *testing.T) {
		var stderr bytes.Buffer
		var pair *Pair
		broken := func(context.Context, Options) (*Server, error) { return nil, errors.New("disk full") }
		code := runWithPair(func() int { return 0 }, &pair, broken, env(""), &stderr)
		if code == 0 || !strings.Contains(stderr.String(), "disk full") {
			t.Errorf("code = %d, stderr = %q; want failure naming the cause", code, stderr.String())
		}
	})
}

func TestNeed(t *testing.T) {
	tb := runTB(func(tb *fakeTB) { need(tb, nil, env("true")) })
	if tb.failed == "" {
		t.Error("Need(nil) under CI=true did not fail")
	}
	tb = runTB(func(tb *fakeTB) { need(tb, nil, env("")) })
	if tb.skipped == "" || tb.failed != "" {
		t.Errorf("Need(nil) locally: skipped %q, failed %q; want a skip", tb.skipped, tb.failed)
	}
	p := &Pair{}
	if got := need(t, p, env("true")); got != p {
		t.Error("Need did not return the pair")
	}
}

func BenchmarkStart(b *testing.B) {
	for b.Loop() {
		s, err := Start(b.Context(), Options{Name: "bench"})
		if errors.Is(err, ErrNoServer) {
			b.Skip(err)
		}
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Stop(); err != nil {
			b.Fatal(err)
		}
	}
}
