package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// A request whose path climbs out of a route's prefix with dot segments
// (/api/orders/../checkout, also with the dots percent-encoded) goes where the path it
// resolves to is routed: the backend resolves it the same way, so the
// orders route sent checkout traffic to the orders backend, past the
// checkout route's weights. Checked on both proxy paths.
func TestServe_DotSegmentsRouteByResolvedPath(t *testing.T) {
	for _, fast := range []string{"on", "off"} {
		t.Run("fast_path "+fast, func(t *testing.T) {
			orders, legacy := namedBackend(t, "orders-svc"), namedBackend(t, "legacy")
			dir := t.TempDir()
			path := filepath.Join(dir, "banyan.yaml")
			writeAtomic(t, path, fmt.Sprintf(`listen: 127.0.0.1:0
fast_path: %s
admin: {listen: 127.0.0.1:0}
state: state.db
backends:
  legacy: {url: %s}
  orders-svc: {url: %s}
routes:
  - name: orders
    match: {path_prefix: /api/orders}
    split: {legacy: 0, orders-svc: 100}
  - name: checkout
    match: {path: /api/checkout}
    split: {legacy: 100, orders-svc: 0}
  - name: rest
    split: {legacy: 100}
`, fast, legacy.URL, orders.URL))
			srv, _ := startServer(t, path, io.Discard)
			for target, want := range map[string]string{
				"/api/orders/7":                 "orders-svc",
				"/api/orders/../checkout":       "legacy",
				"/api/orders/%2e%2e/checkout":   "legacy",
				"/api/orders/./../checkout":     "legacy",
				"/api/orders/x/../../checkout":  "legacy",
				"/api/orders/../orders/7":       "orders-svc",
				"/api/orders/./7":               "orders-svc",
				"/api/orders/7/..":              "orders-svc",
				"/api/orders/../../../checkout": "legacy",
			} {
				if got := backendOf(t, srv.proxyAddr(), target); got != want {
					t.Errorf("GET %s answered by %s, want %s", target, got, want)
				}
			}
		})
	}
}

// backendOf sends GET target as written (no client cleans the path) and
// returns the X-Backend of the answer.
func backendOf(tb testing.TB, addr, target string) string {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if b := resp.Header.Get("X-Backend"); b != "" {
		return b
	}
	return fmt.Sprintf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
}
