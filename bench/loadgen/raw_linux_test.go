//go:build linux

package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestResponseSize(t *testing.T) {
	for _, c := range []struct {
		name, in string
		size     int
		keep     bool
		err      string
	}{
		{name: "head not all in", in: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", size: -1, keep: true},
		{name: "whole", in: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", size: 40, keep: true},
		{name: "body still to come", in: "HTTP/1.1 200 OK\r\ncontent-length:  10 \r\n\r\nok", size: 51, keep: true},
		{name: "close", in: "HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n", size: 57, keep: false},
		{name: "HTTP/1.0", in: "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", size: 38, keep: false},
		{name: "HTTP/1.0 keep-alive", in: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", size: 62, keep: true},
		{name: "not 200", in: "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", err: "status 502"},
		{name: "chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", err: "chunked"},
		{name: "no length", in: "HTTP/1.1 200 OK\r\n\r\n", err: "without Content-Length"},
		{name: "bad length", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", err: "bad Content-Length"},
		{name: "not HTTP", in: "SSH-2.0-x\r\n\r\n", err: "not an HTTP/1 response"},
	} {
		size, keep, err := responseSize([]byte(c.in))
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one saying %q", c.name, err, c.err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case size != c.size || keep != c.keep:
			t.Errorf("%s: size %d keep %v, want %d %v", c.name, size, keep, c.size, c.keep)
		}
	}
}

// TestRunRaw sends on schedule to a real server and checks every request
// is answered and timed, across a server that closes every other
// connection and one that fails some requests.
func TestRunRaw(t *testing.T) {
	var served, closed atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := served.Add(1)
		if r.URL.Path == "/fail" && n%10 == 0 {
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		if r.URL.Path == "/close" && n%2 == 0 {
			closed.Add(1)
			w.Header().Set("Connection", "close")
		}
		w.Header().Set("Content-Length", "5")
		_, _ = w.Write([]byte("hello"))
	}))
	defer srv.Close()

	r, err := runRaw(srv.URL+"/ok", 1000, 300*time.Millisecond, 4, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.sent != 300 || r.ok != 300 || r.errs != 0 || r.firstErr != nil {
		t.Fatalf("sent %d ok %d errors %d (%v), want 300 answered", r.sent, r.ok, r.errs, r.firstErr)
	}
	for i := range r.lat {
		if r.lag[i] < 0 || r.svc[i] <= 0 || r.lat[i] != r.lag[i]+r.svc[i] {
			t.Fatalf("request %d: latency %v is not lag %v + service %v", i, r.lat[i], r.lag[i], r.svc[i])
		}
	}

	served.Store(0)
	r, err = runRaw(srv.URL+"/close", 1000, 200*time.Millisecond, 4, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.ok != 200 || r.errs != 0 || closed.Load() < 90 {
		t.Fatalf("with Connection: close on %d answers: ok %d errors %d (%v), want 200 answered", closed.Load(), r.ok, r.errs, r.firstErr)
	}

	served.Store(0)
	r, err = runRaw(srv.URL+"/fail", 1000, 200*time.Millisecond, 4, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.ok != 180 || r.errs != 20 || r.firstErr == nil || !strings.Contains(r.firstErr.Error(), "status 500") {
		t.Fatalf("with every tenth answer a 500: ok %d errors %d (%v), want 180 and 20", r.ok, r.errs, r.firstErr)
	}
}

// TestRunRaw_Timeout: a server that never answers gives errors, on time.
func TestRunRaw_Timeout(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	begin := time.Now()
	r, err := runRaw(srv.URL, 100, 100*time.Millisecond, 2, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.ok != 0 || r.errs != 10 {
		t.Fatalf("ok %d errors %d (%v), want all 10 failed", r.ok, r.errs, r.firstErr)
	}
	if took := time.Since(begin); took > 3*time.Second {
		t.Fatalf("took %v", took)
	}
}
