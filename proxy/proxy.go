// Package proxy is banyan's HTTP data plane: it matches a request to a
// route, picks the backend by weight (sticky per user, or forced by the
// override header) and forwards it, streaming both ways.
package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/banyanhq/banyan/routes"
)

// Proxy is an http.Handler forwarding to the backends of the current route
// table. Safe for concurrent use; the table may be swapped at any time.
type Proxy struct {
	table   func() *routes.Table
	metrics *Metrics
	log     *slog.Logger

	mu        sync.Mutex // guards creation of upstreams
	upstreams atomic.Pointer[map[string]*upstream]

	shadow *shadowPool // nil until StartShadow
}

// New returns a proxy reading the live table from table on every request.
func New(table func() *routes.Table, m *Metrics, log *slog.Logger) *Proxy {
	if log == nil {
		log = slog.Default()
	}
	p := &Proxy{table: table, metrics: m, log: log}
	empty := map[string]*upstream{}
	p.upstreams.Store(&empty)
	return p
}

// upstreamKey is what an upstream is built from; a reload that changes
// none of it keeps the upstream and its warm connections.
type upstreamKey struct {
	cfg   routes.BackendConfig
	trust bool
}

type upstream struct {
	name string
	key  upstreamKey
	rp   *httputil.ReverseProxy
	fast *fastUpstream // nil when the fast path cannot reach the backend
}

// sizedBody ends a request body of known length at that length itself.
// http.Transport reads once more past Content-Length, to check that the
// body is no longer. When the backend answers as soon as it has the last
// byte, net/http's server may by then have read the body's end and
// closed it (it does so at the answer's first write, unless the handler
// asked for full duplex, which ReverseProxy cannot: its Transport may
// still read the body after ServeHTTP returns); the Transport, reading a
// closed body, then drops the backend connection and cuts the answer
// (TestServer_PathsDifferential, about one case in a thousand under
// load). Served from here, that last read touches nothing.
//
// It also marks an early answer: one before the body was read whole, the
// backend's or banyan's own after the backend failed mid-body
// (recorder.WriteHeader). Such an answer says Connection: close, so
// that net/http's server neither waits for the body's lock (which the
// Transport holds while it waits in Read) nor reads the rest of the body
// off before the head: a client that stops sending to wait for an early
// answer (a 413) gets it. Close then leaves the body to the server, which
// closes it once ServeHTTP has ended the Transport's wait.
type sizedBody struct {
	io.ReadCloser
	left    int64
	started atomic.Bool // the Transport has begun to read it
	whole   atomic.Bool // read to its end
	early   atomic.Bool
}

func (b *sizedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	b.started.Store(true)
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if b.left == 0 {
		b.whole.Store(true)
		if err == nil {
			err = io.EOF
		}
	}
	return n, err
}

func (b *sizedBody) Close() error {
	if b.early.Load() {
		// Closing the server's body would wait for the Transport's Read.
		return nil
	}
	return b.ReadCloser.Close()
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	chunked := len(r.TransferEncoding) > 0
	if chunked {
		// net/http reads a chunked request by its chunks even beside a
		// Content-Length, which it drops, so that faulty pair (RFC 9112
		// section 6.1) cannot be told apart here from a plain chunked
		// request. The RFC asks for the connection to close after the
		// pair; closing after every chunked request means bytes a front
		// end took for the body never run as a request of their own.
		w.Header().Set("Connection", "close")
	}
	// Only banyan's own mirrors say they are one; a customer's request
	// that claims it would have a dry-run backend skip its side effects.
	delete(r.Header, ShadowHeader)
	t := p.table()
	rt := t.Match(r)
	if rt == nil {
		http.Error(w, fmt.Sprintf("banyan: no route matches %s %s", r.Method, r.URL.Path), http.StatusNotFound)
		p.metrics.observe("", "", http.StatusNotFound, time.Since(start))
		return
	}
	name, _ := t.Pick(rt, r)
	up := p.upstream(t, name)
	rec := recorderPool.Get().(*recorder)
	rec.reset(w, rt.Name, name)
	// Set again on the final answer: ReverseProxy empties the header map
	// after relaying a 1xx.
	rec.closeAfter = chunked
	var sized *sizedBody
	defer func() {
		// ReverseProxy aborts with http.ErrAbortHandler when a backend breaks
		// off mid-body; the client got a broken answer, so count it as 502.
		if v := recover(); v != nil {
			p.metrics.observe(rt.Name, name, http.StatusBadGateway, time.Since(start))
			if sized != nil && sized.early.Load() {
				// An early answer broke off: the server closes the body
				// next, which waits for the Transport's Read of a client
				// that may have stopped sending; end that wait.
				_ = http.NewResponseController(w).SetReadDeadline(time.Now())
			}
			panic(v)
		}
	}()
	// What goes to the backend is a shallow copy, whose body may be
	// wrapped; the server's own request keeps the body the server made,
	// from which it tells after the handler whether it gave up on an
	// unread rest (and must not read the connection's next bytes as a
	// request) and, at the answer's first write, whether that rest is too
	// big to wait for.
	fwd := withInformationalLimit(r)
	hasBody := fwd.Body != nil && fwd.Body != http.NoBody
	if hasBody && fwd.ContentLength > 0 {
		sized = &sizedBody{ReadCloser: fwd.Body, left: fwd.ContentLength}
		fwd.Body = sized
		if r.ProtoMajor == 1 {
			rec.body = sized
		}
	}
	peer, shadowed := p.shadowPlan(rt, r, name)
	var tee *teeBody
	if shadowed {
		rec.capture.max = p.shadow.opts.CompareBody
		if hasBody {
			tee = &teeBody{ReadCloser: fwd.Body, max: int64(rt.Shadow.MaxBody)}
			fwd.Body = tee
		}
	}
	if chunked && hasBody {
		// Only chunked requests: their clone keeps TransferEncoding, so
		// http.Transport sends the body as it is and reads it on one
		// goroutine (no probe of a GET's body in another).
		fwd.Body = newTrailerBody(r, fwd.Body)
	}
	up.rp.ServeHTTP(rec, fwd)
	if sized != nil && sized.early.Load() {
		// The answer is relayed and the rest of the body unwanted, but
		// the Transport may still wait in its Read for a client that
		// stopped sending. Send the answer now, give the client
		// lingerTime to send on (read and dropped, so that the close
		// does not reset the connection under an answer not yet read),
		// and close the body here while that deadline holds: after the
		// handler, net/http's server would clear it and then wait for
		// the rest of the body before it closes the connection.
		rc := http.NewResponseController(w)
		_ = rc.Flush()
		_ = rc.SetReadDeadline(time.Now().Add(lingerTime))
		_ = r.Body.Close()
	}
	dropForbiddenTrailers(w.Header())
	code := rec.code
	if code == 0 {
		code = http.StatusOK
	}
	elapsed := time.Since(start)
	p.metrics.observe(rt.Name, name, code, elapsed)
	switch {
	case !shadowed || rec.code == 499:
	case sized != nil && sized.early.Load():
		// Not mirrored with part of its body, as on the fast path; nor
		// is tee read, which the Transport may still be writing to.
		p.metrics.dropped(rt.Name, dropBodyIncomplete)
	default:
		p.enqueue(t, rt, r, tee, rec, name, peer, elapsed)
	}
	rec.release()
}

// upstream returns the forwarder for backend name under table t, building
// it on first use or when its config changed.
func (p *Proxy) upstream(t *routes.Table, name string) *upstream {
	cfg, _ := t.Backend(name)
	key := upstreamKey{cfg: cfg, trust: t.TrustForwarded()}
	if up := (*p.upstreams.Load())[name]; up != nil && up.key == key {
		return up
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := *p.upstreams.Load()
	if up := cur[name]; up != nil && up.key == key {
		return up
	}
	up := p.newUpstream(name, key)
	next := make(map[string]*upstream, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	if old := cur[name]; old != nil {
		if tr, ok := old.rp.Transport.(*http.Transport); ok {
			// In-flight requests keep their connections; only idle ones go.
			tr.CloseIdleConnections()
		}
		if old.fast != nil {
			old.fast.closeIdle()
		}
	}
	next[name] = up
	p.upstreams.Store(&next)
	return up
}

// NewTransport returns the transport banyan uses towards one backend:
// many idle connections per host (Go's default of 2 makes a busy proxy
// open and close connections constantly), bounded dial (at most 5s, and
// no longer than the header timeout) and header waits,
// no transparent decompression and no environment proxy.
func NewTransport(responseHeaderTimeout time.Duration) *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: dialTimeout(responseHeaderTimeout), KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: responseHeaderTimeout,
		DisableCompression:    true,
	}
}

// dialTimeout is at most 5s, and no longer than the header timeout.
func dialTimeout(responseHeaderTimeout time.Duration) time.Duration {
	dial := 5 * time.Second
	if responseHeaderTimeout > 0 {
		dial = min(dial, responseHeaderTimeout)
	}
	return dial
}

func (p *Proxy) newUpstream(name string, key upstreamKey) *upstream {
	target, _ := url.Parse(key.cfg.URL) // validated at config load
	tr := NewTransport(key.cfg.Timeout)
	tr.ForceAttemptHTTP2 = target.Scheme == "https"
	host := key.cfg.Host
	up := &upstream{name: name, key: key, fast: newFastUpstream(target, key, dialTimeout(key.cfg.Timeout))}
	up.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			switch host {
			case "preserve", "":
				pr.Out.Host = pr.In.Host
			case "backend":
			default:
				pr.Out.Host = host
			}
			dropForwardedSpellings(pr.Out.Header)
			if key.trust {
				if prior := pr.In.Header.Values("X-Forwarded-For"); len(prior) > 0 {
					pr.Out.Header["X-Forwarded-For"] = append([]string(nil), prior...)
				}
			}
			pr.SetXForwarded()
			if tb, ok := pr.In.Body.(*trailerBody); ok {
				// pr.Out.Body reads it through a wrapper of ReverseProxy's.
				pr.Out.Trailer = tb.out
			}
		},
		Transport:      tr,
		ModifyResponse: checkStatus,
		BufferPool:     bufferPool{},
		ErrorHandler:   p.errorHandler(name, key.cfg.Timeout),
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
	}
	return up
}

// trailerBody passes a chunked request's trailer fields on to the
// backend. httputil.ReverseProxy sends the Trailer map of its clone of the
// request, made before the body was read, so the values the client sent
// after its last chunk never reached the backend (and undeclared fields
// land only in the server's own request). The request's body is wrapped
// in one of these and the outgoing request's Trailer set to out: at the
// body's end, which the transport reads before it writes the trailer
// section, out takes the fields trailerAllowed lets through.
type trailerBody struct {
	io.ReadCloser
	src *http.Request // the server's request, where net/http puts them
	out http.Header
}

func newTrailerBody(r *http.Request, body io.ReadCloser) *trailerBody {
	out := make(http.Header, len(r.Trailer))
	for k := range r.Trailer {
		if trailerAllowed(k) {
			out[k] = nil // announced in the head, as the client did
		}
	}
	return &trailerBody{ReadCloser: body, src: r, out: out}
}

func (t *trailerBody) Read(b []byte) (int, error) {
	n, err := t.ReadCloser.Read(b)
	if err == io.EOF {
		for k, vv := range t.src.Trailer {
			if trailerAllowed(k) && len(vv) > 0 {
				t.out[k] = append([]string(nil), vv...)
			}
		}
	}
	return n, err
}

// dropForwardedSpellings removes the X-Forwarded-For, -Host and -Proto a
// client sent spelt with underscores (X_Forwarded_For), which a backend
// reading headers as CGI variables takes for the real ones; the fast path
// drops them in reqHead.hopByHop.
func dropForwardedSpellings(h http.Header) {
	for k := range h {
		if !strings.Contains(k, "_") {
			continue
		}
		switch http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-")) {
		case "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
			delete(h, k)
		}
	}
}

// checkStatus refuses an answer whose status code is under 100, which
// http.Transport reads but net/http's server will not write (it panics, and
// the client would be left without an answer): it becomes a 502, as on
// the fast path.
func checkStatus(resp *http.Response) error {
	if resp.StatusCode < 100 {
		return fmt.Errorf("malformed status code %d from the backend", resp.StatusCode)
	}
	return nil
}

// errorHandler answers a failed forward: 502 when the backend cannot be
// reached or broke the connection, 504 when it did not answer in time.
func (p *Proxy) errorHandler(backend string, timeout time.Duration) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		route := ""
		if rec, ok := w.(*recorder); ok {
			route = rec.route
		}
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			// The client went away (or a shadow call was abandoned);
			// nobody is left to read an answer.
			if es, ok := w.(errSetter); ok {
				es.setErr(499, "request cancelled")
			}
			return
		}
		code, what := classify(err, timeout)
		if es, ok := w.(errSetter); ok {
			es.setErr(code, errorText(backend, what))
		}
		if r.Header.Get(ShadowHeader) == "" {
			p.log.Warn("backend error", "route", route, "backend", backend, "status", code, "err", err)
		}
		for k, v := range errorHeader(code) {
			w.Header()[k] = v
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, errorPage(route, backend, what))
	}
}

// classify maps a failed forward to the status the client gets: 502 when
// the backend cannot be reached or broke the connection, 504 when it did
// not answer within timeout; what says which, for the error page.
func classify(err error, timeout time.Duration) (code int, what string) {
	code, what = http.StatusBadGateway, "is unreachable or failed"
	var opErr *net.OpError
	var netErr net.Error
	switch {
	case errors.As(err, &opErr) && opErr.Op == "dial":
		what = "is unreachable (connection failed)"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		code, what = http.StatusGatewayTimeout, fmt.Sprintf("did not answer within its timeout of %s", timeout)
	}
	return code, what
}

// errorHeader is the header of banyan's 502 and 504 answers.
func errorHeader(code int) http.Header {
	return http.Header{"Content-Type": {"text/plain; charset=utf-8"}, "X-Banyan-Error": {http.StatusText(code)}}
}

// errorText is what a compared pair records of a failed forward.
func errorText(backend, what string) string { return "backend " + backend + " " + what }

// errorPage is the body of banyan's 502 and 504 answers.
func errorPage(route, backend, what string) string {
	return fmt.Sprintf("banyan: route %q: backend %q %s\n", route, backend, what)
}

// errSetter is implemented by the writers that want to know a forward
// failed rather than see only the error page.
type errSetter interface{ setErr(code int, msg string) }

// recorder captures the status code while passing flushes and hijacks
// through, so streaming and WebSocket upgrades work. For a mirrored request
// it also keeps up to captureMax bytes of the body as it streams by.
type recorder struct {
	http.ResponseWriter
	route, backend string
	code           int
	errText        string
	capture        bodyCap
	informational  int  // 1xx answers relayed
	closeAfter     bool // the final answer says Connection: close
	// body is the HTTP/1 request's body of known length as forwarded:
	// a final answer before it was read whole is early (sizedBody;
	// WriteHeader says which).
	body *sizedBody
}

var recorderPool = sync.Pool{New: func() any { return new(recorder) }}

func (r *recorder) reset(w http.ResponseWriter, route, backend string) {
	r.ResponseWriter, r.route, r.backend = w, route, backend
	r.code, r.errText, r.informational, r.closeAfter, r.body = 0, "", 0, false, nil
	r.capture = bodyCap{buf: r.capture.buf[:0]}
}

func (r *recorder) release() {
	r.ResponseWriter, r.body = nil, nil
	if cap(r.capture.buf) > 64<<10 {
		r.capture.buf = nil // do not pin large buffers in the pool
	}
	recorderPool.Put(r)
}

func (r *recorder) setErr(code int, msg string) { r.code, r.errText = code, msg }

func (r *recorder) WriteHeader(code int) {
	if isInterim(code) {
		// ReverseProxy relays each 1xx the backend sends; past the limit
		// the exchange fails (withInformationalLimit) and the client gets
		// a 502 after the ones it had.
		if r.informational == maxInformational {
			return
		}
		r.informational++
		// ReverseProxy copies every header of a 1xx, hop-by-hop ones too
		// (it removes them only from the final answer).
		dropHopByHop(r.ResponseWriter.Header())
	}
	if r.code == 0 && code >= 200 {
		r.code = code
	}
	// banyan's own error answer (errText set) to a request whose body
	// the Transport never began to send (the backend could not be
	// reached) leaves the body to net/http, which reads it off and keeps
	// the connection when it comes whole.
	early := code >= 200 && r.body != nil && !r.body.whole.Load() && (r.errText == "" || r.body.started.Load())
	if early {
		r.body.early.Store(true)
	}
	if code >= 200 && (r.closeAfter || early) {
		r.ResponseWriter.Header().Set("Connection", "close")
	}
	r.ResponseWriter.WriteHeader(code)
}

// hopByHopHeaders are the fields that belong to one connection (RFC 9110
// section 7.6.1), besides those its Connection header names.
var hopByHopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// dropHopByHop deletes from h the hop-by-hop fields and those its
// Connection header names.
func dropHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHopHeaders {
		delete(h, name)
	}
}

// isInterim reports whether code is an interim answer: a 1xx that
// another answer follows (101 Switching Protocols is the last one).
func isInterim(code int) bool {
	return code >= 100 && code < 200 && code != http.StatusSwitchingProtocols
}

// errTooManyInformational fails an exchange whose backend sent more than
// maxInformational 1xx answers.
var errTooManyInformational = fmt.Errorf("more than %d 1xx answers before the final one", maxInformational)

// withInformationalLimit returns r with a trace that fails its exchange
// at the backend's 1xx answer past maxInformational, as the fast path
// does; http.Transport no longer counts the 1xx answers it hands to a
// trace, so without it a backend could send them until its timeout and
// each would reach the client.
func withInformationalLimit(r *http.Request) *http.Request {
	n := 0 // one response's 1xx answers arrive one after another
	return r.WithContext(httptrace.WithClientTrace(r.Context(), &httptrace.ClientTrace{
		Got1xxResponse: func(int, textproto.MIMEHeader) error {
			if n++; n > maxInformational {
				return errTooManyInformational
			}
			return nil
		},
	}))
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	r.capture.add(b)
	return r.ResponseWriter.Write(b)
}

// bodyCap keeps the first max bytes written through it (none when max is
// 0) and notes whether more came.
type bodyCap struct {
	buf       []byte
	max       int64
	truncated bool
}

func (c *bodyCap) add(b []byte) {
	room := c.max - int64(len(c.buf))
	switch {
	case c.max == 0:
	case room <= 0:
		c.truncated = c.truncated || len(b) > 0
	case int64(len(b)) > room:
		c.buf = append(c.buf, b[:room]...)
		c.truncated = true
	default:
		c.buf = append(c.buf, b...)
	}
}

// Flush sends buffered data to the client.
func (r *recorder) Flush() { _ = http.NewResponseController(r.ResponseWriter).Flush() }

// Hijack hands the connection over for a protocol upgrade.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err == nil {
		r.code = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
