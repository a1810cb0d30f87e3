package proxy_test

import (
	"bufio"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/banyanhq/banyan/proxy"
)

// TestServer_CloseWhileAnswerStreams: Close while a backend streams an
// answer and then goes quiet (a long poll, server-sent events). The client
// sees its connection end; the fast path's goroutine stayed blocked in the
// read of the backend's body, and the backend's request was never given
// up, until the backend wrote again (here: never within the test). On
// net/http the request's context ends with the connection. Close now ends
// the backend connection of an exchange under way too (found by a review;
// it failed at 2f29199 as well).
func TestServer_CloseWhileAnswerStreams(t *testing.T) {
	t.Parallel()
	gaveUp, release := make(chan struct{}, 1), make(chan struct{})
	api := newBackend(t, "api", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
			gaveUp <- struct{}{}
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // before the backend closes
	p, _, _ := newProxy(t, oneRoute("api"), api)
	srv, base := serveWith(t, p, proxy.ServerOptions{IdleTimeout: time.Minute})
	rc := dialRaw(t, base)
	rc.send("GET /events HTTP/1.1\r\nHost: shop\r\n\r\n")
	resp := rc.head(http.MethodGet)
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	srv.Close()
	select {
	case <-gaveUp:
	case <-time.After(3 * time.Second):
		t.Fatal("3s after Close the backend's request is still open: the proxy still holds it")
	}
}
