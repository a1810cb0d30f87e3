// Package testdb starts throwaway MariaDB (or MySQL) servers for integration
// tests and for `banyan demo`.
//
// Each server gets its own directory (data, binlog, socket, error log), a
// free loopback port, log_bin with binlog_format=ROW and
// binlog_row_image=FULL, GTIDs, a unique server_id, and a root account with
// an empty password reachable over TCP. It is started with --no-defaults, so
// it never reads /etc/mysql and never touches a system server.
//
// The core (Start, Server) does not depend on package testing; StartTB,
// RunWithPair, Need and TempDatabase are thin test helpers on top.
package testdb

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Flavors reported by Server.Flavor. They match go-mysql's flavor names.
const (
	FlavorMariaDB = "mariadb"
	FlavorMySQL   = "mysql"
)

const (
	// startTimeout bounds how long Start waits for the server to accept
	// connections.
	startTimeout = 60 * time.Second
	// stopTimeout bounds a graceful shutdown before Stop resorts to SIGKILL.
	stopTimeout = 30 * time.Second
	// portAttempts is how often Start retries with a new port when another
	// process grabbed the free port between probing and binding.
	portAttempts = 3
	// maxSocketPath is the usable length of sun_path on Linux.
	maxSocketPath = 107
)

// Options configures Start. The zero value is valid.
type Options struct {
	// Name appears in the temporary directory name and in errors.
	Name string
	// ServerID is the server_id; 0 picks one unique within this process.
	ServerID uint32
	// Dir holds data, binlogs, socket and logs. "" creates a temporary
	// directory that Stop removes. A Dir that already holds an initialised
	// data directory (Dir/data) is reused as is and never removed.
	Dir string
	// ExtraArgs are appended to the server's command line, after the
	// defaults, so they can override them (e.g. "--gtid-strict-mode=ON").
	ExtraArgs []string
}

// Server is a running database server started by Start. Its methods are safe
// for concurrent use.
type Server struct {
	name     string
	bin      string
	flavor   string
	version  string
	dir      string
	ownsDir  bool
	serverID uint32
	port     int
	extra    []string // Options.ExtraArgs

	mu      sync.Mutex
	proc    *process // nil when not running
	stopped bool     // Stop was called
}

// process is one run of the server binary. done is closed when the process
// has exited and err holds cmd.Wait's result.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

var lastServerID atomic.Uint32

func init() {
	// A random base keeps IDs distinct from the defaults (1) and unlikely to
	// collide across test binaries running in parallel.
	lastServerID.Store(1000 + rand.Uint32N(1<<30))
}

func nextServerID() uint32 { return lastServerID.Add(1) }

// Start initialises a data directory and starts a server on 127.0.0.1 and a
// free port, returning once it accepts connections (at most 60 s). ctx bounds
// only the start; the server keeps running until Stop or Kill. It returns
// ErrNoServer when no server binary is installed, and otherwise an error
// carrying the tail of the server's log.
func Start(ctx context.Context, o Options) (*Server, error) {
	return start(ctx, o, osLookup)
}

func start(ctx context.Context, o Options, l lookup) (_ *Server, err error) {
	bin, err := l.findServer()
	if err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, bin, "--no-defaults", "--version").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("testdb: %s --version: %w: %s", bin, err, bytes.TrimSpace(out))
	}
	s := &Server{
		name:     o.Name,
		bin:      bin,
		version:  strings.TrimSpace(strings.TrimPrefix(string(out), bin)),
		dir:      o.Dir,
		serverID: o.ServerID,
		extra:    o.ExtraArgs,
	}
	s.flavor = flavorOf(s.version)
	if s.name == "" {
		s.name = "server"
	}
	if s.serverID == 0 {
		s.serverID = nextServerID()
	}
	if s.dir == "" {
		if s.dir, err = os.MkdirTemp("", "banyan-testdb-"+dirSafe(s.name)+"-"); err != nil {
			return nil, fmt.Errorf("testdb: %s: %w", s.name, err)
		}
		s.ownsDir = true
	} else if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("testdb: %s: %w", s.name, err)
	}
	if s.dir, err = filepath.Abs(s.dir); err != nil {
		return nil, fmt.Errorf("testdb: %s: %w", s.name, err)
	}
	defer func() {
		if err != nil && s.ownsDir {
			os.RemoveAll(s.dir)
		}
	}()
	if n := len(s.socket()); n > maxSocketPath {
		return nil, fmt.Errorf("testdb: %s: socket path %s is %d bytes, over the %d-byte limit; use a shorter Options.Dir or TMPDIR", s.name, s.socket(), n, maxSocketPath)
	}

	if _, err := os.Stat(filepath.Join(s.datadir(), "mysql")); err != nil {
		// The installer runs a bootstrap server; on a machine under heavy
		// load it has been seen to abort once and then succeed, so a
		// failed install is tried once more from an empty data dir.
		if err := s.install(ctx, l); err != nil {
			os.RemoveAll(s.datadir())
			if err2 := s.install(ctx, l); err2 != nil {
				return nil, fmt.Errorf("%w\n(second try: %v)", err, err2)
			}
		}
	}

	for attempt := 1; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			return nil, fmt.Errorf("testdb: %s: find a free port: %w", s.name, err)
		}
		var p *process
		p, err = s.launch(ctx)
		if err == nil {
			s.proc = p
			return s, nil
		}
		if !errors.Is(err, errPortInUse) || attempt == portAttempts {
			return nil, err
		}
	}
}

// install creates the system tables in Dir/data.
func (s *Server) install(ctx context.Context, l lookup) error {
	var cmd *exec.Cmd
	if s.flavor == FlavorMariaDB {
		installer, err := l.findInstaller(s.bin)
		if err != nil {
			return err
		}
		args := []string{
			"--no-defaults",
			"--datadir=" + s.datadir(),
			"--tmpdir=" + s.dir,
			"--auth-root-authentication-method=normal",
			"--skip-test-db",
			"--skip-name-resolve",
			// Passed through to the bootstrap server: a small redo log keeps
			// the directory at ~25 MB instead of ~115 MB.
			"--innodb-log-file-size=8M",
			"--innodb-buffer-pool-size=64M",
		}
		if b := basedir(s.bin); b != "" {
			args = append(args, "--basedir="+b)
		}
		args = append(args, userArgs()...)
		cmd = exec.CommandContext(ctx, installer, args...)
	} else {
		args := []string{"--no-defaults", "--initialize-insecure", "--datadir=" + s.datadir()}
		if b := basedir(s.bin); b != "" {
			args = append(args, "--basedir="+b)
		}
		args = append(args, userArgs()...)
		cmd = exec.CommandContext(ctx, s.bin, args...)
	}
	logPath := filepath.Join(s.dir, "install.log")
	f, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("testdb: %s: %w", s.name, err)
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("testdb: %s: %s failed: %w\n%s", s.name, filepath.Base(cmd.Path), err, tail(logPath, 0))
	}
	return nil
}

// args is the server's command line. --no-defaults must come first.
func (s *Server) args() []string {
	a := []string{"--no-defaults"}
	if b := basedir(s.bin); b != "" {
		a = append(a, "--basedir="+b)
	}
	a = append(a,
		"--datadir="+s.datadir(),
		// Its own temp dir: another process tidying /tmp must not delete
		// the server's temporary tables from under it.
		"--tmpdir="+s.dir,
		"--socket="+s.socket(),
		"--pid-file="+filepath.Join(s.dir, "mysqld.pid"),
		"--port="+strconv.Itoa(s.port),
		"--bind-address=127.0.0.1",
		"--log-bin="+filepath.Join(s.dir, "binlog"),
		"--binlog-format=ROW",
		"--binlog-row-image=FULL",
		// Column names in every row event: CDC maps rows by name.
		"--binlog-row-metadata=FULL",
		"--server-id="+strconv.FormatUint(uint64(s.serverID), 10),
		"--innodb-buffer-pool-size=64M",
		"--innodb-log-file-size=8M",
		"--skip-name-resolve",
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_unicode_ci",
		"--max-connections=500",
		// TIMESTAMP round trips must not depend on the host's time zone.
		"--default-time-zone=+00:00",
	)
	if s.flavor == FlavorMySQL {
		a = append(a,
			"--gtid-mode=ON",
			"--enforce-gtid-consistency=ON",
			// X Protocol would listen on 33060 and collide between servers.
			"--loose-mysqlx=OFF",
		)
	}
	a = append(a, userArgs()...)
	return append(a, s.extra...)
}

// userArgs lets the server run as root, which it refuses by default.
func userArgs() []string {
	if os.Geteuid() == 0 {
		return []string{"--user=root"}
	}
	return nil
}

var errPortInUse = errors.New("port already in use")

// launch starts the server process and waits until it accepts connections.
// Its output is appended to Dir/error.log.
func (s *Server) launch(ctx context.Context) (*process, error) {
	logPath := s.errorLog()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("testdb: %s: %w", s.name, err)
	}
	defer logf.Close() // the child holds its own descriptor
	offset, err := logf.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("testdb: %s: %w", s.name, err)
	}
	// A stale socket from a killed run must not let the readiness probe
	// mistake an old inode for the new server.
	os.Remove(s.socket())

	cmd := exec.Command(s.bin, s.args()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testdb: %s: start %s: %w", s.name, s.bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { // owned by p: ends when the server process exits
		p.err = cmd.Wait()
		close(p.done)
	}()

	if err := s.waitReady(ctx, p); err != nil {
		cmd.Process.Kill()
		<-p.done
		log := tail(logPath, offset)
		if strings.Contains(log, "Address already in use") {
			err = errors.Join(err, errPortInUse)
		}
		return nil, fmt.Errorf("testdb: %s: server did not start: %w\n--- %s (tail) ---\n%s", s.name, err, logPath, log)
	}
	return p, nil
}

// waitReady polls the server over its socket until it answers, grants root
// TCP access on MySQL, then checks the TCP DSN works.
func (s *Server) waitReady(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()

	sock := mysql.NewConfig()
	sock.User = "root"
	sock.Net = "unix"
	sock.Addr = s.socket()
	sock.Timeout = time.Second
	sock.Logger = &mysql.NopLogger{} // refused connections while booting are expected
	conn, err := mysql.NewConnector(sock)
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()

	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		err = db.PingContext(pctx)
		pcancel()
		if err == nil {
			break
		}
		select {
		case <-p.done:
			return fmt.Errorf("server exited: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("not accepting connections after %v: %w (last error: %v)", startTimeout, ctx.Err(), err)
		case <-tick.C:
		}
	}
	if s.flavor == FlavorMySQL {
		// --initialize-insecure creates only root@localhost, which a TCP
		// client from 127.0.0.1 does not match under --skip-name-resolve.
		for _, q := range []string{
			"CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''",
			"GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION",
		} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
	}
	tcp, err := sql.Open("mysql", s.DSN(""))
	if err != nil {
		return err
	}
	defer tcp.Close()
	if err := tcp.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s: %w", s.Addr(), err)
	}
	return nil
}

// DSN returns a go-sql-driver/mysql DSN for root on database db ("" for
// none). Sessions use utf8mb4_unicode_ci (the server default), parse DATE and
// DATETIME into time.Time in UTC, allow multiple statements per Exec and
// interpolate parameters client side (one round trip per query).
func (s *Server) DSN(db string) string {
	c := mysql.NewConfig()
	c.User = "root"
	c.Net = "tcp"
	c.Addr = s.Addr()
	c.DBName = db
	c.Collation = "utf8mb4_unicode_ci"
	c.ParseTime = true
	c.Loc = time.UTC
	c.MultiStatements = true
	c.InterpolateParams = true
	c.Timeout = 5 * time.Second
	return c.FormatDSN()
}

// Open returns a connection pool on database db ("" for none) that has
// answered a ping. The caller closes it.
func (s *Server) Open(ctx context.Context, db string) (*sql.DB, error) {
	pool, err := sql.Open("mysql", s.DSN(db))
	if err != nil {
		return nil, err
	}
	if err := pool.PingContext(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("testdb: %s: connect to %s: %w", s.name, s.Addr(), err)
	}
	return pool, nil
}

// Addr returns "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port returns the TCP port the server listens on.
func (s *Server) Port() int { return s.port }

// Flavor returns FlavorMariaDB or FlavorMySQL.
func (s *Server) Flavor() string { return s.flavor }

// Version returns the server binary's --version line.
func (s *Server) Version() string { return s.version }

// ServerID returns the server's server_id.
func (s *Server) ServerID() uint32 { return s.serverID }

// Dir returns the directory holding data, binlogs, socket and logs.
func (s *Server) Dir() string { return s.dir }

// Name returns Options.Name, or "server".
func (s *Server) Name() string { return s.name }

// Socket returns the path of the server's Unix socket.
func (s *Server) Socket() string { return s.socket() }

// ErrorLog returns the path of the file receiving the server's output.
func (s *Server) ErrorLog() string { return s.errorLog() }

// Pid returns the process id of the server, or 0 when it is not running.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

func (s *Server) datadir() string  { return filepath.Join(s.dir, "data") }
func (s *Server) socket() string   { return filepath.Join(s.dir, "mysqld.sock") }
func (s *Server) errorLog() string { return filepath.Join(s.dir, "error.log") }

// CreateDatabase creates database name; it fails if it exists.
func (s *Server) CreateDatabase(ctx context.Context, name string) error {
	return s.Exec(ctx, "CREATE DATABASE "+QuoteIdent(name))
}

// Exec runs stmts in order on one connection as root, so session state such
// as USE carries from one statement to the next. It stops at the first
// error, which names the statement.
func (s *Server) Exec(ctx context.Context, stmts ...string) error {
	db, err := sql.Open("mysql", s.DSN(""))
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("testdb: %s: connect to %s: %w", s.name, s.Addr(), err)
	}
	defer conn.Close()
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("testdb: %s: %s: %w", s.name, q, err)
		}
	}
	return nil
}

// QuoteIdent quotes a MySQL identifier with backticks.
func QuoteIdent(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}

// Stop shuts the server down gracefully (SIGTERM; SIGKILL after 30 s) and
// removes its directory when Start created it. It also cleans up after
// Kill. Calling Stop again does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	err := s.terminate()
	if s.ownsDir {
		if rerr := os.RemoveAll(s.dir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("testdb: %s: %w", s.name, rerr))
		}
	}
	return err
}

// terminate stops the running process, if any. s.mu must be held.
func (s *Server) terminate() error {
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	select {
	case <-p.done:
		return nil // already dead (Kill or crash)
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		<-p.done
		return nil // exited in between
	}
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("testdb: %s: shutdown: %w\n%s", s.name, p.err, tail(s.errorLog(), 0))
		}
		return nil
	case <-t.C:
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("testdb: %s: no clean shutdown within %v; killed", s.name, stopTimeout)
	}
}

// Kill sends SIGKILL to the server and waits for the process to die,
// leaving its files as a crash would. Restart brings it back; Stop still
// removes the directory. Killing a server that is not running does nothing.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("testdb: %s: kill: %w", s.name, err)
	}
	<-p.done
	return nil
}

// Restart shuts the server down gracefully if it is running (or takes it as
// crashed after Kill) and starts it again on the same directory, port and
// server_id; binlogs and data persist. It fails after Stop.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return fmt.Errorf("testdb: %s: restart after Stop", s.name)
	}
	if err := s.terminate(); err != nil {
		return err
	}
	p, err := s.launch(ctx)
	if err != nil {
		return err
	}
	s.proc = p
	return nil
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before the server binds it; Start retries on errPortInUse.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last lines of the file at path, reading from offset.
func tail(path string, offset int64) string {
	const maxBytes, maxLines = 8 << 10, 30
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err.Error()
	}
	if fi.Size()-offset > maxBytes {
		offset = fi.Size() - maxBytes
	}
	b, err := io.ReadAll(io.NewSectionReader(f, offset, fi.Size()-offset))
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return strings.Join(lines, "\n")
}

// dirSafe keeps letters, digits, '-' and '_' of name (e.g. a test name with
// slashes) and shortens it so socket paths stay short.
func dirSafe(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) > 24 {
		b = b[:24]
	}
	return string(b)
}
