package proxy_test

// Tests from an adversarial review of how the fast path frames what it
// relays: each failed on the fast path before its fix and passes on both
// paths.

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/banyanhq/banyan/proxy"
)

// TestServer_CloseDelimitedAnswerBreaksOff checks an answer without
// Content-Length or chunking whose backend connection is reset mid-body:
// the client must see the answer break off, not an answer that ended
// where the backend failed (on a checkout page, half an order summary
// taken for all of it).
func TestServer_CloseDelimitedAnswerBreaksOff(t *testing.T) {
	t.Parallel()
	raw := newRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		if _, _, err := readReq(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst half of the answer")
		// A reset, not a close: the backend failed.
		c.(*net.TCPConn).SetLinger(0)
	})
	p, _, _ := newProxy(t, oneRoute("raw"), &backend{name: "raw", URL: raw.URL})
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{}))
	rc.send("GET /dump HTTP/1.1\r\nHost: shop\r\n\r\n")
	resp := rc.head("GET")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200 (the head went out before the break)", resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Errorf("client read %q as a whole answer; want an error for the broken-off body", body)
	}
}
