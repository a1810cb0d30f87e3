package proxy_test

import (
	"net/http"
	"testing"

	"github.com/banyanhq/banyan/proxy"
)

// TestServer_ClientShadowHeaderDropped: X-Banyan-Shadow tells the new
// service a request is banyan's mirror, so that a dry-run write skips its
// side effects. A customer who sends it on a real checkout must not get
// the same treatment (an order confirmed, no payment taken), so banyan
// drops it from what customers send, on both paths, as it drops a
// client's X-Forwarded-For.
func TestServer_ClientShadowHeaderDropped(t *testing.T) {
	t.Parallel()
	seen := make(chan []string, 16)
	checkout := newBackend(t, "checkout", func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Values(proxy.ShadowHeader)
	})
	for _, netHTTP := range []bool{false, true} {
		p, _, _ := newProxy(t, oneRoute("checkout"), checkout)
		rc := dialRaw(t, serve(t, p, proxy.ServerOptions{NetHTTPOnly: netHTTP}))
		for _, req := range []string{
			withBody("POST /api/checkout HTTP/1.1\r\nHost: shop\r\nX-Banyan-Shadow: 1\r\n", `{"cart":7}`),
			"GET /api/checkout HTTP/1.1\r\nHost: shop\r\nx-banyan-shadow: 1\r\n\r\n",
		} {
			resp, body := rc.do(req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("net/http only %v: %s: status %d, body %q", netHTTP, firstLineOf(req), resp.StatusCode, body)
			}
			if got := recv(t, seen, "the request at the backend"); len(got) != 0 {
				t.Errorf("net/http only %v: %s: the backend received %s: %q from the client", netHTTP, firstLineOf(req), proxy.ShadowHeader, got)
			}
		}
	}
}
