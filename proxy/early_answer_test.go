package proxy_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/banyanhq/banyan/proxy"
)

// TestProxy_EarlyAnswerReachesAStalledUpload: a client sends the head of
// a large upload and the first bytes of its body, then waits for an
// answer before it sends on (as a client that hopes for an early 413
// does). The backend refuses at once, without reading the body. The
// answer must reach the client while it waits, saying the connection
// closes (the rest of the body will not be read), and the connection must
// then close without a reset. Before this test both paths held the
// answer: on net/http, http.Transport sat in the body's Read, holding the
// body's lock, which net/http's server takes (and then reads the rest of
// the body off) before it writes an answer's head; the fast path copied
// the whole body before it read any answer.
func TestProxy_EarlyAnswerReachesAStalledUpload(t *testing.T) {
	t.Parallel()
	up := newBackend(t, "up", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/upload" {
			// A backend refusing an upload unread closes the
			// connection; net/http would otherwise read the rest of
			// the body off before answering.
			w.Header().Set("Connection", "close")
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %d", r.Method, r.URL.Path, len(b))
	})
	const config = `
backends:
  up: {url: "${up}"}
routes:
  - name: all
    split: {up: 100}
`
	cases := []struct {
		name    string
		netHTTP bool // NetHTTPOnly
		length  int  // the body's Content-Length
		fast    bool // the upload stays on the fast path (when it is on)
		sendOn  bool // after the 413 the client sends the rest of the body
	}{
		{"fast path", false, 60000, true, false},
		{"fast path, the client sends on", false, 60000, true, true},
		{"handed to net/http: a body over 64 KiB", false, 100000, false, false},
		{"handed to net/http, the client sends on", false, 100000, false, true},
		{"net/http only", true, 60000, false, false},
		{"net/http only, the client sends on", true, 60000, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p, _, reg := newProxy(t, config, up)
			rc := dialRaw(t, serve(t, p, proxy.ServerOptions{NetHTTPOnly: c.netHTTP}))
			// The same connection first carries a whole upload, so the
			// answer below is not a new connection's first.
			rc.send("POST /small HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\n\r\nhello")
			resp, body := rc.read(http.MethodPost)
			expect200(t, resp, body, "POST /small 5")

			rc.send(fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: shop\r\nContent-Length: %d\r\n\r\n0123456789", c.length))
			start := time.Now()
			if err := rc.c.SetReadDeadline(start.Add(3 * time.Second)); err != nil {
				t.Fatal(err)
			}
			resp, body = rc.read(http.MethodPost)
			t.Logf("the 413 came %v after the body's first bytes", time.Since(start).Round(time.Millisecond))
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d, body %q; want 413", resp.StatusCode, body)
			}
			if !resp.Close {
				t.Errorf("the 413 keeps the connection open; want Connection: close (%d bytes of body were never read)", c.length-10)
			}
			// The connection then ends, and cleanly: no reset that could
			// cost a client the answer, also when the client, unlike
			// this one, sends the rest of its body at once (the rest is
			// read and dropped for a while before the close).
			if c.sendOn {
				if _, err := rc.c.Write(make([]byte, c.length-10)); err != nil {
					t.Errorf("sending the rest of the body after the 413: %v", err)
				}
			}
			if n, err := rc.br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Errorf("after the 413: read %d bytes, %v; want the connection closed (EOF)", n, err)
			}
			switch {
			case c.fast:
				expectFastPath(t, reg, 2, nil)
			case !c.netHTTP:
				expectFastPath(t, reg, 1, map[string]float64{"large-body": 1})
			}
		})
	}
}

// TestProxy_EarlySuccessStillGetsTheBody: a backend that answers 200 as
// soon as a request's head is in and then reads the body (one that
// streams its answer as the body streams in) must get the whole body, also
// from a client that pauses mid-body: only an error answer makes banyan
// stop sending the body.
func TestProxy_EarlySuccessStillGetsTheBody(t *testing.T) {
	t.Parallel()
	up := newBackend(t, "up", func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.EnableFullDuplex(); err != nil {
			t.Errorf("backend: %v", err)
		}
		w.WriteHeader(http.StatusOK)
		if err := rc.Flush(); err != nil {
			t.Errorf("backend: %v", err)
		}
		b, err := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d %v", len(b), err)
	})
	const config = `
backends:
  up: {url: "${up}"}
routes:
  - name: all
    split: {up: 100}
`
	for _, netHTTP := range []bool{false, true} {
		t.Run(fmt.Sprintf("net/http only %v", netHTTP), func(t *testing.T) {
			t.Parallel()
			p, _, _ := newProxy(t, config, up)
			rc := dialRaw(t, serve(t, p, proxy.ServerOptions{NetHTTPOnly: netHTTP}))
			rc.send("POST /stream HTTP/1.1\r\nHost: shop\r\nContent-Length: 20\r\n\r\n0123456789")
			// Long enough for the fast path to look at the backend twice
			// (clientCheck is 250 ms) and find its 200.
			time.Sleep(600 * time.Millisecond)
			rc.send("abcdefghij")
			resp, body := rc.read(http.MethodPost)
			expect200(t, resp, body, "20 <nil>")
		})
	}
}
