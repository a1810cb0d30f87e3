package testdb

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrNoServer means no mariadbd or mysqld binary was found. Install one with
// `apt-get install -y mariadb-server`.
var ErrNoServer = errors.New("testdb: no mariadbd or mysqld found on PATH or in /usr/sbin, /usr/local/sbin, /usr/local/mysql/bin; install MariaDB: apt-get install -y mariadb-server")

// serverNames are tried in order in every search location.
var serverNames = []string{"mariadbd", "mysqld"}

// serverDirs are searched after PATH.
var serverDirs = []string{"/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin"}

// lookup abstracts the file system for binary discovery so the search
// order and the missing-binary decision can be tested without touching PATH.
type lookup struct {
	lookPath func(name string) (string, error) // exec.LookPath
	isExec   func(path string) bool
}

var osLookup = lookup{lookPath: exec.LookPath, isExec: isExecutable}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// findServer returns the path of mariadbd or mysqld: PATH first, then
// serverDirs. It returns ErrNoServer when none exists.
func (l lookup) findServer() (string, error) {
	for _, name := range serverNames {
		if p, err := l.lookPath(name); err == nil {
			return p, nil
		}
	}
	for _, dir := range serverDirs {
		for _, name := range serverNames {
			if p := filepath.Join(dir, name); l.isExec(p) {
				return p, nil
			}
		}
	}
	return "", ErrNoServer
}

// findInstaller returns the MariaDB install script that belongs to server:
// next to it (basedir/bin, basedir/scripts, the server's own dir) first, then
// PATH.
func (l lookup) findInstaller(server string) (string, error) {
	names := []string{"mariadb-install-db", "mysql_install_db"}
	dir := filepath.Dir(server)
	base := filepath.Dir(dir)
	for _, d := range []string{filepath.Join(base, "bin"), filepath.Join(base, "scripts"), dir} {
		for _, name := range names {
			if p := filepath.Join(d, name); l.isExec(p) {
				return p, nil
			}
		}
	}
	for _, name := range names {
		if p, err := l.lookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("testdb: found %s but no mariadb-install-db next to it or on PATH: %w", server, fs.ErrNotExist)
}

// basedir returns the --basedir to pass for a server binary installed
// outside /usr (e.g. /usr/local/mysql/bin/mysqld -> /usr/local/mysql), or ""
// when the compiled-in default applies.
func basedir(server string) string {
	b := filepath.Dir(filepath.Dir(server))
	if b == "/usr" || b == "/" {
		return ""
	}
	return b
}

// flavorOf parses the output of `mariadbd --version`.
func flavorOf(version string) string {
	if strings.Contains(strings.ToLower(version), "mariadb") {
		return FlavorMariaDB
	}
	return FlavorMySQL
}
