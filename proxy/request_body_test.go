package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The net/http path hands the backend a copy of the request whose body it
// may wrap, and leaves the server's request its own body: the server
// tells from that body, by its type, whether it gave up on an unread rest
// after the handler (and must then close the connection rather than read
// body bytes as the next request) and whether a rest is too big to read
// before the answer. Wrapped, both checks saw a body they did not know.
func TestProxy_LeavesTheServersRequestBody(t *testing.T) {
	up := newBackend(t, "up", pathEcho)
	for _, shadow := range []string{"", "    shadow: {percent: 100, writes: dry-run, legacy: up}\n"} {
		conf := "backends:\n  up: {url: \"${up}\"}\n  peer: {url: \"${up}\"}\nroutes:\n  - name: up\n    split: {up: 100, peer: 0}\n" + shadow
		p, _, _ := newProxy(t, conf, up)
		for _, chunked := range []bool{false, true} {
			body := io.NopCloser(strings.NewReader("0123456789"))
			r := httptest.NewRequest(http.MethodPost, "http://shop/x", nil)
			r.Body, r.ContentLength = body, 10
			if chunked {
				r.ContentLength, r.TransferEncoding = -1, []string{"chunked"}
			}
			w := httptest.NewRecorder()
			p.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				t.Fatalf("shadow %q, chunked %v: status %d", shadow, chunked, w.Code)
			}
			if r.Body != body {
				t.Errorf("shadow %q, chunked %v: the server's request has a body of %T after the handler, want its own", shadow, chunked, r.Body)
			}
		}
	}
}
