package proxy_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/banyanhq/banyan/proxy"
)

// TestServer_BackendDownBodyAfterClientCheck: on a kept-alive connection,
// a POST whose head comes right after an answer and whose body comes 400
// ms later, to a backend that is down. net/http (and the fast path at
// 2f29199) read the body off and answer 502 on a connection that stays
// open. fail() read the body under the read deadline left on the
// connection, since 584dc7c the client check's (250 ms after the last
// answer): the read timed out, the 502 said Connection: close, and the
// connection was closed while the body was still coming (found by a
// review).
func TestServer_BackendDownBodyAfterClientCheck(t *testing.T) {
	t.Parallel()
	up := newBackend(t, "up", pathEcho)
	p, _, _ := newProxy(t, downAndUp(t), up)
	rc := dialRaw(t, serve(t, p, proxy.ServerOptions{IdleTimeout: time.Minute}))
	resp, body := rc.do("GET /a HTTP/1.1\r\nHost: shop\r\n\r\n")
	expect200(t, resp, body, "GET /a ")

	rc.send("POST /down HTTP/1.1\r\nHost: shop\r\nContent-Length: 10\r\n\r\n")
	time.Sleep(400 * time.Millisecond)
	rc.send("0123456789")
	resp, body = rc.read(http.MethodPost)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, body %q; want 502", resp.StatusCode, body)
	}
	if resp.Close {
		t.Errorf("the 502 says Connection: close; want the connection kept (the body came whole)")
	}
	resp, body = rc.do("GET /b HTTP/1.1\r\nHost: shop\r\n\r\n")
	expect200(t, resp, body, "GET /b ")
}

// downAndUp is a config with two routes: /down to a backend that is
// down, everything else to the backend called up.
func downAndUp(t *testing.T) string {
	return fmt.Sprintf(`
backends:
  down: {url: %q}
  up:   {url: "${up}"}
routes:
  - name: down
    match: {path_prefix: /down}
    split: {down: 100}
  - name: up
    split: {up: 100}
`, stoppedURL(t))
}
