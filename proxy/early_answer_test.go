package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
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
			p, _, reg := newProxy(t, oneRoute("up"), up)
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
	for _, netHTTP := range []bool{false, true} {
		t.Run(fmt.Sprintf("net/http only %v", netHTTP), func(t *testing.T) {
			t.Parallel()
			p, _, _ := newProxy(t, oneRoute("up"), up)
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

// TestProxy_EarlyAnswerFramings: the early answer of a backend that
// frames it in other ways, or fails, reaches a client that stopped
// sending its body, and the rest of that body is never read as a request.
func TestProxy_EarlyAnswerFramings(t *testing.T) {
	t.Parallel()
	const tooLarge = "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	// What the client sends after the pause, inside the body, looks like a
	// request: a proxy that kept the connection after reading only part of
	// the body would answer it.
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: shop\r\n\r\n"
	cases := []struct {
		name   string
		answer func(c net.Conn) // after the request head is read
		want   int              // the final status the client gets
	}{
		{"status line in two writes", func(c net.Conn) {
			io.WriteString(c, tooLarge[:10])
			time.Sleep(400 * time.Millisecond)
			io.WriteString(c, tooLarge[10:])
			time.Sleep(3 * time.Second)
		}, http.StatusRequestEntityTooLarge},
		{"103 Early Hints first", func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
			time.Sleep(100 * time.Millisecond)
			io.WriteString(c, tooLarge)
			time.Sleep(3 * time.Second)
		}, http.StatusRequestEntityTooLarge},
		{"200, then the backend closes", func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
		}, http.StatusOK},
		{"a 200 larger than the read buffer, then the backend closes", func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 20000\r\nConnection: close\r\n\r\n"+strings.Repeat("x", 20000))
		}, http.StatusOK},
		{"the backend resets the connection", func(c net.Conn) {
			time.Sleep(100 * time.Millisecond)
			c.(*net.TCPConn).SetLinger(0)
		}, http.StatusBadGateway},
	}
	for _, c := range cases {
		raw := newRawBackend(t, func(conn net.Conn, br *bufio.Reader) {
			if _, err := http.ReadRequest(br); err == nil {
				c.answer(conn)
			}
		})
		up := &backend{name: "up", URL: raw.URL}
		for _, netHTTP := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, net/http only %v", c.name, netHTTP), func(t *testing.T) {
				t.Parallel()
				p, _, _ := newProxy(t, oneRoute("up"), up)
				rc := dialRaw(t, serve(t, p, proxy.ServerOptions{NetHTTPOnly: netHTTP}))
				rc.send(fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: shop\r\nContent-Length: %d\r\n\r\n0123456789", 20+len(smuggled)+30))
				// The fast path looks at the backend after 250 ms of a
				// quiet client, and hands it what it has.
				time.Sleep(400 * time.Millisecond)
				rc.send("abcdefghij")
				if err := rc.c.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
					t.Fatal(err)
				}
				var resp *http.Response
				var body string
				for resp == nil || resp.StatusCode < 200 {
					resp, body = rc.read(http.MethodPost)
				}
				if resp.StatusCode != c.want || !resp.Close {
					t.Fatalf("status %d, Connection: close %v, body %q; want %d and close", resp.StatusCode, resp.Close, body, c.want)
				}
				rc.c.Write([]byte(smuggled)) // may fail: the connection is closing
				if a, err := http.ReadResponse(rc.br, &http.Request{Method: http.MethodGet}); err == nil {
					t.Errorf("the body's bytes were read as a request: answered %d", a.StatusCode)
				} else if strings.Contains(err.Error(), "timeout") {
					t.Errorf("after the answer the connection stayed open: %v", err)
				}
			})
		}
	}
}

// TestProxy_SlowUploadToABackendThatReads: a backend's timeout bounds its
// taking each part of a body, not the whole body's time, which is the
// client's: an upload slower than the timeout to a backend that reads it
// as it comes gets the backend's answer (the fast path cut it with a 504
// before, where net/http did not).
func TestProxy_SlowUploadToABackendThatReads(t *testing.T) {
	t.Parallel()
	up := newBackend(t, "up", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d %v", len(b), err)
	})
	const config = `
backends:
  up: {url: "${up}", timeout: 300ms}
routes:
  - name: all
    split: {up: 100}
`
	for _, netHTTP := range []bool{false, true} {
		t.Run(fmt.Sprintf("net/http only %v", netHTTP), func(t *testing.T) {
			t.Parallel()
			p, _, _ := newProxy(t, config, up)
			rc := dialRaw(t, serve(t, p, proxy.ServerOptions{NetHTTPOnly: netHTTP}))
			rc.send("POST /upload HTTP/1.1\r\nHost: shop\r\nContent-Length: 50\r\n\r\n")
			for range 5 {
				time.Sleep(200 * time.Millisecond) // 1 s in all, over three timeouts
				rc.send("0123456789")
			}
			resp, body := rc.read(http.MethodPost)
			expect200(t, resp, body, "50 <nil>")
		})
	}
}
