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

// An escaped slash (%2F) is part of its segment, as backends' routers
// read it: /api/orders/a%2Fb is one order id under a /api/orders/{id}
// template, and /api%2Fcarts/1 is not under a /api/carts prefix. The
// slash was decoded before matching, so the id missed its route (and went
// to the default route's backend) and the other path took one it is not
// under.
func TestServe_EscapedSlashStaysInItsSegment(t *testing.T) {
	for _, fast := range []string{"on", "off"} {
		t.Run("fast_path "+fast, func(t *testing.T) {
			orders, legacy := namedBackend(t, "orders-svc"), namedBackend(t, "legacy")
			path := filepath.Join(t.TempDir(), "banyan.yaml")
			writeAtomic(t, path, fmt.Sprintf(`listen: 127.0.0.1:0
fast_path: %s
admin: {listen: 127.0.0.1:0}
state: state.db
backends:
  legacy: {url: %s}
  orders-svc: {url: %s}
routes:
  - name: order
    match: {path_template: "/api/orders/{id}"}
    split: {legacy: 0, orders-svc: 100}
  - name: carts
    match: {path_prefix: /api/carts}
    split: {legacy: 0, orders-svc: 100}
  - name: exact
    match: {path: /api/me}
    split: {legacy: 0, orders-svc: 100}
  - name: rest
    split: {legacy: 100}
`, fast, legacy.URL, orders.URL))
			srv, _ := startServer(t, path, io.Discard)
			for target, want := range map[string]string{
				"/api/orders/7":          "orders-svc",
				"/api/orders/a%2Fb":      "orders-svc",
				"/api/orders/a%2fb":      "orders-svc",
				"/api/orders/a/b":        "legacy",
				"/api/carts/1":           "orders-svc",
				"/api%2Fcarts/1":         "legacy",
				"/api/me":                "orders-svc",
				"/api%2Fme":              "legacy",
				"/api/%6De":              "orders-svc",
				"/api/orders/x%2F..%2Fy": "orders-svc",
			} {
				if got := backendOf(t, srv.proxyAddr(), target); got != want {
					t.Errorf("GET %s answered by %s, want %s", target, got, want)
				}
			}
		})
	}
}
