package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/banyanhq/banyan/diff"
	"github.com/banyanhq/banyan/internal/uring"
	"github.com/banyanhq/banyan/routes"
)

// fastUpstream is one plain-HTTP backend as the fast path reaches it: a
// pool of kept-alive connections written to and read from by the
// goroutine serving the client, with no goroutine of its own per request.
type fastUpstream struct {
	addr    string // host:port to dial
	urlHost string // the backend URL's host, for host: backend
	prefix  string // the backend URL's path, escaped, without a final slash
	host    string // routes.BackendConfig.Host
	timeout time.Duration
	dial    time.Duration
	trust   bool // append to the client's X-Forwarded-For

	mu sync.Mutex
	// idle holds the kept-alive connections: [0] in Go's poller, for
	// client connections served by goroutines; [1] on io_uring, for those
	// served on the loops (a connection cannot be in both).
	idle   [2][]*upConn
	closed bool
}

// maxIdlePerBackend matches NewTransport's MaxIdleConnsPerHost.
const maxIdlePerBackend = 1024

// idleTimeout is how long an idle backend connection is kept.
const idleTimeout = 90 * time.Second

// maxRespHead bounds a backend's response head.
const maxRespHead = 1 << 20

type upConn struct {
	io       *sockIO // reads, writes and closes the connection
	r        *bufio.Reader
	w        *bufio.Writer
	head     []byte // the response head being read
	lines    [][2][]byte
	lastUsed time.Time
}

// newFastUpstream returns the fast path's view of backend URL target, or
// nil when the fast path cannot reach it (https backends go through
// http.Transport).
func newFastUpstream(target *url.URL, key upstreamKey, dial time.Duration) *fastUpstream {
	if target.Scheme != "http" || target.RawQuery != "" || target.User != nil {
		return nil
	}
	addr := target.Host
	if target.Port() == "" {
		addr = net.JoinHostPort(target.Hostname(), "80")
	}
	return &fastUpstream{
		addr: addr, urlHost: target.Host, prefix: strings.TrimSuffix(target.EscapedPath(), "/"),
		host: key.cfg.Host, timeout: key.cfg.Timeout, dial: dial, trust: key.trust,
	}
}

// get returns an idle connection (reused) or a new one, for use by loop
// task t (nil: by a goroutine).
func (u *fastUpstream) get(now time.Time, t *uring.Task) (*upConn, bool, error) {
	pool := &u.idle[poolOf(t)]
	u.mu.Lock()
	for len(*pool) > 0 {
		uc := (*pool)[len(*pool)-1]
		*pool = (*pool)[:len(*pool)-1]
		if now.Sub(uc.lastUsed) < idleTimeout {
			u.mu.Unlock()
			uc.io.onTask(t)
			return uc, true, nil
		}
		uc.io.close()
	}
	u.mu.Unlock()
	uc, err := u.dialConn(t)
	return uc, false, err
}

// poolOf is the index in fastUpstream.idle of connections for task t.
func poolOf(t *uring.Task) int {
	if t != nil {
		return 1
	}
	return 0
}

// dialConn dials a new connection for task t (nil: for a goroutine); a
// task dials in Block, and takes the connection out of Go's poller.
func (u *fastUpstream) dialConn(t *uring.Task) (*upConn, error) {
	var io *sockIO
	var err error
	blockingOn(t, func() {
		c, derr := (&net.Dialer{Timeout: u.dial, KeepAlive: 30 * time.Second}).Dial("tcp", u.addr)
		switch {
		case derr != nil:
			err = derr
		case t == nil:
			io = newSockIO(c)
		default:
			io, err = ringSockIO(c)
		}
	})
	if err != nil {
		return nil, err
	}
	io.onTask(t)
	return &upConn{io: io, r: bufio.NewReaderSize(io, 8<<10), w: bufio.NewWriterSize(io, 4<<10)}, nil
}

// put returns a connection whose last exchange, started at used, ended
// cleanly.
func (u *fastUpstream) put(uc *upConn, used time.Time) {
	uc.lastUsed = used
	if cap(uc.head) > 64<<10 {
		uc.head = nil
	}
	pool := &u.idle[poolOf(uc.io.task())]
	uc.io.onTask(nil)
	u.mu.Lock()
	if u.closed || len(*pool) >= maxIdlePerBackend {
		u.mu.Unlock()
		uc.io.close()
		return
	}
	// The oldest idle connection is first; drop it when it has expired.
	if len(*pool) > 0 && uc.lastUsed.Sub((*pool)[0].lastUsed) > idleTimeout {
		(*pool)[0].io.close()
		*pool = (*pool)[1:]
	}
	*pool = append(*pool, uc)
	u.mu.Unlock()
}

// closeIdle closes the idle connections and every one given back later.
func (u *fastUpstream) closeIdle() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closed = true
	for i, pool := range u.idle {
		for _, uc := range pool {
			uc.io.close()
		}
		u.idle[i] = nil
	}
}

// forwardFast answers one request on the fast path. It returns whether the
// client connection stays open, or a handoff reason when net/http must
// answer the request instead (nothing has been read past the head then).
func (p *Proxy) forwardFast(fc *fastConn, h *reqHead) (keep bool, handoff string) {
	start := time.Now()
	t := p.table()
	req, ok := fc.request(h, t)
	if !ok {
		return false, handoffMalformed
	}
	rt := t.Match(req)
	if rt == nil {
		return false, handoffNoRoute
	}
	name, _ := t.Pick(rt, req)
	up := p.upstream(t, name)
	if up.fast == nil {
		return false, handoffTLS
	}
	ex := exchange{p: p, fc: fc, h: h, u: up.fast, route: rt, backend: name, method: req.Method, start: start}
	if peer, ok := p.shadowPlan(rt, req, name); ok {
		ex.mirror = fc.mirrorOf(h, req, peer, p.shadow.opts.CompareBody)
	}
	code, keep := ex.run()
	fc.lastEnd = time.Now()
	if ex.early && !ex.clientBroken {
		fc.linger()
	}
	fc.series.observe(p.metrics, rt.Name, name, code, fc.lastEnd.Sub(start))
	switch m := ex.mirror; {
	case m == nil:
	case m.done:
		// As on the net/http path: the answer the client got, headed for
		// the shadow pool; nothing is queued for a client that left or an
		// answer that broke off.
		p.submit(&shadowJob{
			table: t, route: rt, primary: name, peer: m.peer, req: m.req, body: m.body,
			resp: diff.Response{
				Backend: name, Status: code, Header: m.header, Body: bytes.Clone(m.capture.buf),
				Truncated: m.capture.truncated, Latency: fc.lastEnd.Sub(start), Err: m.err,
			},
		})
	case code != 499 && int64(len(m.body)) != h.contentLength:
		p.metrics.dropped(rt.Name, dropBodyIncomplete)
	}
	return keep && !h.close, ""
}

// mirror is what the fast path keeps of a request picked for shadowing:
// the request, its body, and the answer as the client got it.
type mirror struct {
	peer    string
	req     *http.Request // detached: every header, not only routing's
	body    []byte
	header  http.Header
	capture bodyCap
	err     string
	done    bool // the answer reached the client whole (or was banyan's 502/504)
}

// mirrorOf starts the mirror of the request in h.
func (fc *fastConn) mirrorOf(h *reqHead, req *http.Request, peer string, compareBody int64) *mirror {
	full := make(http.Header, len(h.lines))
	h.header(full, nil)
	r := *req
	r.Header = full
	return &mirror{peer: peer, req: detach(&r), capture: bodyCap{max: compareBody}}
}

// request fills the connection's reusable http.Request with what routing
// under t reads: method, URL, Host and the headers t names.
func (fc *fastConn) request(h *reqHead, t *routes.Table) (*http.Request, bool) {
	u := &fc.url
	if bytes.IndexByte(h.target, '%') < 0 {
		// What url.ParseRequestURI makes of a plain target without escapes.
		path, query, found := bytes.Cut(h.target, []byte("?"))
		p := string(path)
		// RawPath keeps the path as sent, so a mirror carries it unchanged.
		*u = url.URL{Path: p, RawPath: p, RawQuery: string(query), ForceQuery: found && len(query) == 0}
	} else {
		parsed, err := url.ParseRequestURI(string(h.target))
		if err != nil {
			return nil, false
		}
		u = parsed
	}
	if fc.req.Header == nil {
		fc.req.Header = make(http.Header, len(h.lines))
	}
	clear(fc.req.Header)
	h.header(fc.req.Header, t.RoutingHeaders())
	fc.req.Method = methodString(h.method)
	fc.req.URL = u
	fc.req.Host = string(h.host)
	fc.req.ContentLength = h.contentLength
	fc.req.RemoteAddr = fc.remote
	fc.req.RequestURI = string(h.target)
	return &fc.req, true
}

// methodString avoids an allocation for the common methods.
func methodString(m []byte) string {
	for _, known := range commonMethods {
		if string(m) == known {
			return known
		}
	}
	return string(m)
}

var commonMethods = [...]string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodDelete, http.MethodPatch, http.MethodOptions}

// exchange is one request forwarded on the fast path.
type exchange struct {
	p              *Proxy
	fc             *fastConn
	h              *reqHead
	u              *fastUpstream
	route          *routes.Route
	backend        string
	method         string    // h.method may be overwritten once the body is read
	start, sent    time.Time // request read; request written to the backend
	headDiscarded  bool
	bodyForwarded  bool
	wroteToClient  bool // the final answer's head went out
	wroteInterim   bool // a 1xx head went out (a 502 may still follow it)
	clientBroken   bool // the client connection is out of step or gone
	rechunk        bool // an answer that ends when the backend closes, relayed chunked
	upstreamBroken bool
	early          bool    // the body was cut short, its rest unread: close after a linger
	clientGone     bool    // the client left while the backend worked
	mirror         *mirror // nil unless the request is shadowed
}

// errClient marks a failure to write to the client.
var errClient = errors.New("client connection failed")

// errClientGone: the client closed its connection while the backend was
// still working on its request.
var errClientGone = errors.New("client went away before the answer")

// bodyFailed ends the body, n bytes of it still to come, after a write
// to the backend failed with err. A backend that stopped taking the body
// for its timeout gets no more waiting (the error, a 504); one that
// failed otherwise may have answered first (errEarlyAnswer: the answer is
// read, or a 502 made).
func (ex *exchange) bodyFailed(n int64, err error) error {
	ex.stopBody(n)
	if isTimeout(err) {
		return fmt.Errorf("forward request body: %w", err)
	}
	return errEarlyAnswer
}

// refused reports whether the backend, while the request body is still
// coming, has refused the request: closed uc, begun a final answer whose
// status is 400 or more (after any 1xx), or begun a final answer and
// closed (hungUp sees the close behind the answer's unread rest). A
// backend that answers 2xx or 3xx and stays may still read the body (one
// that streams its answer as the body streams in), so the body goes on
// to it. What is read here stays buffered for the answer.
func (ex *exchange) refused(uc *upConn) bool {
	if uc.r.Buffered() == 0 && uc.io.peek() == peekQuiet {
		return false
	}
	// The pooled connection may still carry the last exchange's deadline;
	// the answer's own is set once the body is sent.
	uc.io.setReadDeadline(time.Now().Add(clientCheck))
	for {
		head, _ := uc.r.Peek(uc.r.Buffered())
		for len(head) >= 13 {
			code := statusOf(head)
			switch {
			case code == 0 || code >= 400:
				return true // refused, or not an answer reading can take
			case code >= 200:
				return uc.io.hungUp()
			}
			end := indexHeadEnd(head)
			if end < 0 {
				break // the rest of a 1xx head is still to come
			}
			head = head[end:]
		}
		if len(head) == 0 && uc.io.peek() == peekQuiet {
			return false // only whole 1xx heads so far: wait for no more
		}
		if uc.r.Buffered() == uc.r.Size() {
			return false // 1xx heads fill the buffer: the answer's read decides
		}
		if _, err := uc.r.Peek(uc.r.Buffered() + 1); err != nil {
			return !isTimeout(err) // closed or failed: nothing more will come
		}
	}
}

// clientCheck is how often, while it waits for a backend's answer, the
// fast path looks whether the client is still there (net/http notices at
// once, with a read in a goroutine of its own; one non-blocking peek per
// interval costs nothing on answers faster than that).
const clientCheck = 250 * time.Millisecond

// peekState is what a non-blocking look at a connection found.
type peekState uint8

const (
	peekQuiet  peekState = iota // open, nothing to read
	peekData                    // bytes wait to be read
	peekClosed                  // the peer closed it, or it failed
)

// run forwards the request and relays the answer; it returns the status
// the client saw (502 when the answer broke off) and whether the client
// connection can carry another request.
func (ex *exchange) run() (int, bool) {
	uc, reused, err := ex.u.get(ex.start, ex.fc.io.task())
	if err == nil && reused {
		// A kept-alive connection must be quiet: bytes on it now were not
		// asked for and would be read as this request's answer (as
		// http.Transport's idle read would see), and a write must not go
		// down one the backend has closed, where it could not be retried.
		uc, reused, err = ex.liveConn(uc)
	}
	if err != nil {
		return ex.fail(err)
	}
	ex.inUse(uc)
	defer ex.inUse(nil)
	code, err := ex.try(uc)
	if err != nil && reused && !ex.wroteToClient && !ex.wroteInterim && idempotent(ex.method) && ex.h.contentLength == 0 && staleConn(err) {
		// The backend closed a kept-alive connection as we sent on it,
		// before answering anything: send again on a new one, as
		// http.Transport does for idempotent requests.
		uc.io.close()
		if uc, err = ex.u.dialConn(ex.fc.io.task()); err != nil {
			return ex.fail(err)
		}
		ex.inUse(uc)
		code, err = ex.try(uc)
	}
	if errors.Is(err, errClientGone) {
		// Nobody is left to read an answer; closing the backend
		// connection tells the backend so, as net/http's cancel does.
		uc.io.close()
		return 499, false
	}
	if err != nil {
		uc.io.close()
		if errors.Is(err, errClient) {
			// The client's connection failed while a 1xx went out; counted
			// as a broken answer, as below.
			return http.StatusBadGateway, false
		}
		if ex.wroteToClient {
			// Part of the answer is out: all that is left is to break the
			// connection so the client does not take it as whole.
			ex.fc.warn("backend answer broke off", "route", ex.route.Name, "backend", ex.backend, "err", err)
			return http.StatusBadGateway, false
		}
		return ex.fail(err)
	}
	if ex.upstreamBroken || uc.r.Buffered() > 0 {
		// Bytes after the answer (a body on a 204 or a HEAD answer, more
		// than Content-Length) would be the next request's answer.
		uc.io.close()
	} else {
		ex.u.put(uc, ex.start)
	}
	if ex.clientBroken && ex.wroteToClient {
		// The client's connection failed mid-answer; the net/http path
		// counts that as a 502 too (http.ErrAbortHandler).
		return http.StatusBadGateway, false
	}
	return code, !ex.clientBroken
}

// inUse notes uc (nil: none) as the backend connection the exchange
// works on, which Server.Close ends too: an answer that streams and then
// goes quiet (a long poll, server-sent events) would otherwise hold the
// exchange, and the backend's request, until the backend writes again.
// Whichever of the two comes second sees the other. A Close that lands
// as the connection goes back to the pool shuts a pooled connection down,
// which the next exchange's liveConn sees and replaces.
func (ex *exchange) inUse(uc *upConn) {
	ex.fc.up.Store(uc)
	if uc != nil && ex.fc.s.killed.Load() {
		uc.io.abort()
	}
}

// liveConn returns uc if the backend has not closed it while idle, else a
// fresh connection.
func (ex *exchange) liveConn(uc *upConn) (*upConn, bool, error) {
	if uc.r.Buffered() == 0 && uc.io.peek() == peekQuiet {
		return uc, true, nil
	}
	uc.io.close() // closed, or it sent bytes nobody asked for
	uc, err := ex.u.dialConn(ex.fc.io.task())
	return uc, false, err
}

// staleConn reports whether err is what a kept-alive connection the
// backend had closed looks like.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// try sends the request on uc and relays the answer. Errors before the
// answer's head reached the client leave the client untouched; when the
// request had no body, the head is still unread so try can run again.
func (ex *exchange) try(uc *upConn) (int, error) {
	// The timeout bounds the wait for the answer's head once the request
	// is written, as ResponseHeaderTimeout does in http.Transport.
	if err := ex.writeRequest(uc); err != nil {
		if !errors.Is(err, errEarlyAnswer) {
			return 0, err
		}
		// The body was cut short (stopBody): the answer the backend
		// gave, if any, is read as usual.
	}
	ex.sent = time.Now()
	ex.headDeadline(uc, ex.sent)
	for informational := 0; ; informational++ {
		code, err := ex.readResponseHead(uc)
		if err != nil {
			return 0, err
		}
		if code >= 200 {
			break
		}
		if informational == maxInformational {
			return 0, errTooManyInformational
		}
		// 1xx informational answers (103 Early Hints) go straight through.
		if _, err := ex.relayHead(uc, code, true); err != nil {
			return 0, err
		}
	}
	ex.discardHead()
	code := statusOf(uc.head)
	return code, ex.relayAnswer(uc, code)
}

// maxInformational is how many 1xx answers a backend may send before its
// final one; past it the exchange fails. (net/http's Transport stopped at
// five before Go 1.24; it now bounds only their header bytes, and not
// those it relays, so this is banyan's own limit.)
const maxInformational = 5

// writeRequest writes the request head, rewritten for the backend, and
// its body.
func (ex *exchange) writeRequest(uc *upConn) error {
	h, raw, w := ex.h, ex.h.raw, uc.w
	w.Write(h.method)
	w.WriteByte(' ')
	w.WriteString(ex.u.prefix)
	w.Write(h.target)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	switch ex.u.host {
	case "preserve", "":
		w.Write(h.host)
	case "backend":
		w.WriteString(ex.u.urlHost)
	default:
		w.WriteString(ex.u.host)
	}
	w.WriteString("\r\n")
	var xff [][]byte
	for i := range h.lines {
		name := h.name(i)
		if h.hopByHop(name) {
			if ex.u.trust && asciiEqualFold(name, "x-forwarded-for") {
				xff = append(xff, h.value(i))
			}
			continue
		}
		if asciiEqualFold(name, "content-length") {
			continue // written below as the number read, as net/http does
		}
		w.Write(raw[h.lines[i].start:h.lines[i].vend])
		w.WriteString("\r\n")
	}
	if h.hasLength {
		// "010" goes out as 10: a backend that reads a leading zero as
		// octal would frame the body otherwise.
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(w.AvailableBuffer(), h.contentLength, 10))
		w.WriteString("\r\n")
	}
	if h.teTrailers {
		w.WriteString("Te: trailers\r\n")
	}
	if !h.hasLength && (ex.method == http.MethodPost || ex.method == http.MethodPut || ex.method == http.MethodPatch) {
		// As http.Transport does: many servers want a length for these.
		w.WriteString("Content-Length: 0\r\n")
	}
	w.WriteString("X-Forwarded-For: ")
	for _, v := range xff {
		w.Write(v)
		w.WriteString(", ")
	}
	w.WriteString(ex.fc.ip)
	w.WriteString("\r\nX-Forwarded-Host: ")
	w.Write(h.host)
	w.WriteString("\r\nX-Forwarded-Proto: http\r\n\r\n")
	if h.contentLength > 0 {
		if !ex.bodyForwarded {
			// The head is in the client buffer the body is read through.
			ex.discardHead()
			ex.bodyForwarded = true
		}
		var body io.Writer = w
		if ex.mirror != nil && ex.mirror.body == nil {
			// shadowPlan let through only bodies of at most MaxBody bytes.
			ex.mirror.body = make([]byte, 0, h.contentLength)
			body = io.MultiWriter(w, (*appendWriter)(&ex.mirror.body))
		}
		ex.awaitBody()
		if ex.u.timeout > 0 {
			// A backend that does not read the body must not hold this
			// goroutine for ever (forwardBody renews the deadline as the
			// body goes out); it is lifted once the body is sent.
			defer uc.io.setWriteDeadline(time.Time{})
		}
		if err := ex.forwardBody(uc, body, h.contentLength); err != nil {
			return err
		}
		return w.Flush()
	}
	// No body: the head goes out from inside the first read of the answer.
	return uc.io.flushOnRead(w)
}

// errEarlyAnswer: the backend refused the request (an error answer, or
// its connection closed or failed) before the whole body was sent.
var errEarlyAnswer = errors.New("backend refused the request before its body was whole")

// stopBody ends the forwarding of a body, n bytes of it still to come
// from the client, to a backend that refused it or failed. When those
// bytes are all buffered already they are dropped, and the client's
// connection stays in step; otherwise it closes after the answer,
// lingering (early) so the close does not reset the answer away.
func (ex *exchange) stopBody(n int64) {
	ex.upstreamBroken = true
	if r := ex.fc.r; int64(r.Buffered()) >= n {
		r.Discard(int(n))
		return
	}
	ex.h.close, ex.early = true, true
}

// renewWrite gives the next write to the backend its timeout: the bound
// is on the backend's taking each part of the body, not on the whole
// body's time, which is the client's (a slow upload to a backend that
// reads is not cut).
func (ex *exchange) renewWrite(uc *upConn) {
	if ex.u.timeout > 0 {
		uc.io.setWriteDeadline(time.Now().Add(ex.u.timeout))
	}
}

// forwardBody copies the request body's n bytes from the client to dst,
// which writes to uc. While the client sends nothing, it hands the backend
// what it has every clientCheck and looks whether the backend has refused
// the request already (refused); then it stops with errEarlyAnswer, so
// that the answer reaches a client that waits for it before sending on
// (RFC 9112 section 9.6 asks a client to stop sending a body then). A
// client that goes on sending is waited for as long as it takes, as before
// (awaitBody lifted the head's deadline).
func (ex *exchange) forwardBody(uc *upConn, dst io.Writer, n int64) error {
	r := ex.fc.r
	armed := false // a check's deadline is set: lifted again on the way out
	defer func() {
		if armed {
			ex.fc.setReadDeadline(0)
		}
	}()
	for n > 0 {
		if r.Buffered() == 0 {
			ex.fc.setReadDeadline(clientCheck)
			armed = true
			_, err := r.Peek(1)
			if err != nil && isTimeout(err) {
				ex.renewWrite(uc)
				if ferr := uc.w.Flush(); ferr != nil {
					return ex.bodyFailed(n, ferr)
				}
				if ex.refused(uc) {
					ex.stopBody(n)
					return errEarlyAnswer
				}
				continue
			}
			if err != nil {
				// How much of the body was read is unknown: the client
				// connection cannot carry another request.
				ex.clientBroken = true
				return fmt.Errorf("%w: read request body: %w", errClientGone, err)
			}
		}
		b, _ := r.Peek(int(min(int64(r.Buffered()), n)))
		ex.renewWrite(uc)
		if _, err := dst.Write(b); err != nil {
			return ex.bodyFailed(n, err)
		}
		r.Discard(len(b))
		n -= int64(len(b))
	}
	return nil
}

// appendWriter appends what is written to it to a slice.
type appendWriter []byte

func (a *appendWriter) Write(b []byte) (int, error) {
	*a = append(*a, b...)
	return len(b), nil
}

func (ex *exchange) discardHead() {
	if !ex.headDiscarded {
		ex.fc.r.Discard(len(ex.h.raw))
		ex.headDiscarded = true
	}
}

// readResponseHead reads the backend's status line and headers into
// uc.head and returns the status code.
func (ex *exchange) readResponseHead(uc *upConn) (int, error) {
	uc.head = uc.head[:0]
	for {
		line, err := uc.r.ReadSlice('\n')
		uc.head = append(uc.head, line...)
		if err == bufio.ErrBufferFull {
			err = nil
		}
		if ex.waitLonger(uc, err) {
			continue
		}
		if err != nil {
			if len(uc.head) > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			if ex.clientGone {
				err = errClientGone
			}
			return 0, err
		}
		if len(uc.head) > maxRespHead {
			return 0, fmt.Errorf("response head larger than %d bytes", maxRespHead)
		}
		if n := len(uc.head); n >= 2 && uc.head[n-1] == '\n' && (uc.head[n-2] == '\n' || n >= 3 && uc.head[n-2] == '\r' && uc.head[n-3] == '\n') {
			break
		}
	}
	code := statusOf(uc.head)
	if code < 100 || code == http.StatusSwitchingProtocols {
		return 0, fmt.Errorf("malformed or unexpected status line %q", firstLine(uc.head))
	}
	return code, nil
}

// headDeadline sets the read deadline while the answer's head is awaited:
// the backend's timeout from the start, or the next client check if that
// comes first.
func (ex *exchange) headDeadline(uc *upConn, now time.Time) {
	d := now.Add(clientCheck)
	if ex.u.timeout > 0 {
		if end := ex.sent.Add(ex.u.timeout); end.Before(d) {
			d = end
		}
	}
	uc.io.setReadDeadline(d)
}

// waitLonger decides, when a read of the answer's head stopped at its
// deadline, whether to go on waiting: yes while the backend's timeout has
// not passed and the client is still there.
func (ex *exchange) waitLonger(uc *upConn, err error) bool {
	if err == nil || !isTimeout(err) {
		return false
	}
	now := time.Now()
	if ex.u.timeout > 0 && !now.Before(ex.sent.Add(ex.u.timeout)) {
		return false
	}
	pending := ex.fc.r.Buffered() // bytes of the client's next request, if any
	if !ex.headDiscarded {
		pending -= len(ex.h.raw)
	}
	// A client whose connection the server ended (Close) may still have
	// bytes buffered here, so a peek cannot tell; the server says so.
	if ex.fc.s.killed.Load() || pending == 0 && ex.fc.io.peek() == peekClosed {
		ex.clientGone = true
		return false
	}
	ex.headDeadline(uc, now)
	return true
}

// statusOf reads the code of an "HTTP/1.x NNN ..." status line, 0 when
// it is not one.
func statusOf(head []byte) int {
	if len(head) < 13 || !bytes.HasPrefix(head, []byte("HTTP/1.")) || head[7] != '0' && head[7] != '1' || head[8] != ' ' {
		return 0
	}
	if c := head[12]; c != ' ' && c != '\r' && c != '\n' {
		return 0
	}
	code := 0
	for _, c := range head[9:12] {
		if c < '0' || c > '9' {
			return 0
		}
		code = code*10 + int(c-'0')
	}
	return code
}

func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return bytes.TrimRight(b, "\r")
}

// respHead is what relaying needs from a response head.
type respHead struct {
	length    int64 // -1 unknown
	chunked   bool
	noLength  bool // a 1xx or 204: its Content-Length is not relayed
	close     bool // the backend will close: do not reuse
	hasDate   bool
	connNames [][]byte
	lines     [][2][]byte // name and value of each header line, in order
}

// relayHead checks the response head in uc.head and writes it to the
// client without hop-by-hop headers; a 1xx head is flushed at once, a
// final one goes on with its body in relayAnswer.
func (ex *exchange) relayHead(uc *upConn, code int, informational bool) (respHead, error) {
	rh := respHead{lines: uc.lines[:0]}
	if err := ex.scanRespHead(uc.head, &rh); err != nil {
		return rh, err
	}
	uc.lines = rh.lines
	ex.writeHead(uc.head, &rh, code, informational)
	if !informational {
		ex.wroteToClient = true
		return rh, nil
	}
	ex.wroteInterim = true
	if err := ex.fc.w.Flush(); err != nil {
		ex.clientBroken = true
		return rh, errClient
	}
	return rh, nil
}

// scanRespHead checks every header line and fills rh.
func (ex *exchange) scanRespHead(head []byte, rh *respHead) error {
	rh.length = -1
	if head[7] == '0' {
		rh.close = true // HTTP/1.0 closes unless it says keep-alive
	}
	var err error
	if rh.lines, err = headerLines(head, rh.lines[:0]); err != nil {
		return err
	}
	lengths := 0
	for _, l := range rh.lines {
		name, value := l[0], l[1]
		switch {
		case asciiEqualFold(name, "content-length"):
			n, ok := parseLength(value)
			if !ok || lengths > 0 && n != rh.length {
				return fmt.Errorf("invalid Content-Length %q", value)
			}
			lengths++
			rh.length = n
		case asciiEqualFold(name, "transfer-encoding"):
			if !asciiEqualFold(value, "chunked") || rh.chunked {
				return fmt.Errorf("unsupported Transfer-Encoding %q", value)
			}
			rh.chunked = true
		case asciiEqualFold(name, "connection"):
			if hasToken(value, "close") {
				rh.close = true
			}
			if head[7] == '0' && hasToken(value, "keep-alive") {
				rh.close = false
			}
			for v := value; len(v) > 0; {
				var t []byte
				if t, v = nextToken(v); len(t) > 0 {
					rh.connNames = append(rh.connNames, t)
				}
			}
		case asciiEqualFold(name, "date"):
			rh.hasDate = true
		}
	}
	if rh.chunked {
		rh.length = -1 // chunked wins, as in net/http
		// With a Content-Length too, or in HTTP/1.0, the framing is
		// faulty (RFC 9112 6.1, 6.3): relay it chunked, then close, so
		// what the backend meant by the rest cannot start the next answer.
		if lengths > 0 || head[7] == '0' {
			rh.close = true
		}
	}
	return nil
}

// headerLines appends the name and value of each header line of a
// response head to lines. As RFC 9112 asks of a proxy (and as net/http
// does), a folded line is joined to the one before with a space, and a
// line with blanks before its colon is left out; any other line that is
// not "name: value" is an error.
func headerLines(head []byte, lines [][2][]byte) ([][2][]byte, error) {
	rest := head[bytes.IndexByte(head, '\n')+1:]
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		line := bytes.TrimSuffix(rest[:i], []byte("\r"))
		rest = rest[i+1:]
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(lines) == 0 {
				return nil, fmt.Errorf("malformed header line %q", line)
			}
			last := &lines[len(lines)-1]
			joined := append(append(append([]byte(nil), last[1]...), ' '), bytes.Trim(line, " \t")...)
			last[1] = bytes.Trim(joined, " ") // an empty first line adds no space
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return nil, fmt.Errorf("malformed header line %q", line)
		}
		name := line[:colon]
		if c := name[len(name)-1]; c == ' ' || c == '\t' {
			continue
		}
		if !validName(name) {
			return nil, fmt.Errorf("malformed header name %q", name)
		}
		value := bytes.Trim(line[colon+1:], " \t")
		if !plainText(value) {
			return nil, fmt.Errorf("invalid byte in header %q", name)
		}
		lines = append(lines, [2][]byte{name, value})
	}
	return lines, nil
}

// respHopByHop reports whether a response header stays with the backend
// hop. Trailer stays with chunked answers, which are relayed chunked.
func respHopByHop(name []byte, rh *respHead) bool {
	switch {
	case asciiEqualFold(name, "connection"), asciiEqualFold(name, "keep-alive"),
		asciiEqualFold(name, "proxy-connection"), asciiEqualFold(name, "transfer-encoding"),
		asciiEqualFold(name, "upgrade"), asciiEqualFold(name, "te"),
		asciiEqualFold(name, "proxy-authenticate"), asciiEqualFold(name, "proxy-authorization"):
		return true
	case asciiEqualFold(name, "trailer"):
		return !rh.chunked
	case asciiEqualFold(name, "content-length"):
		return rh.chunked || rh.noLength
	}
	for _, t := range rh.connNames {
		if bytes.EqualFold(t, name) {
			return true
		}
	}
	return false
}

// writeHead writes the status line and the end-to-end headers to the
// client, with banyan's own framing.
func (ex *exchange) writeHead(head []byte, rh *respHead, code int, informational bool) {
	w := ex.fc.w
	w.WriteString("HTTP/1.1")
	if status := firstLine(head)[8:]; plainText(status) {
		w.Write(status)
	} else {
		// A reason phrase with a control byte (a bare CR a client could
		// end the line at) is replaced, as net/http writes its own.
		w.WriteString(" " + strconv.Itoa(code) + " " + http.StatusText(code))
	}
	w.WriteString("\r\n")
	// RFC 9110 section 8.6: no Content-Length on a 1xx or a 204 (net/http
	// drops it there too).
	rh.noLength = code < 200 || code == http.StatusNoContent
	for _, l := range rh.lines {
		if !respHopByHop(l[0], rh) {
			w.Write(l[0])
			w.WriteString(": ")
			w.Write(l[1])
			w.WriteString("\r\n")
		}
	}
	if !informational {
		if !rh.hasDate {
			w.WriteString("Date: ")
			w.WriteString(httpDate())
			w.WriteString("\r\n")
		}
		switch {
		case rh.chunked && bodyAllowed(ex.method, code):
			w.WriteString("Transfer-Encoding: chunked\r\n")
		case rh.length < 0 && bodyAllowed(ex.method, code):
			// Ends when the backend closes. Relayed chunked, as net/http
			// does, so a backend that breaks off leaves the client without
			// the last chunk: a close of the client's connection would
			// tell it the answer was whole.
			w.WriteString("Transfer-Encoding: chunked\r\n")
			ex.rechunk, ex.upstreamBroken = true, true
		}
		if ex.h.close || ex.fc.s.closing.Load() {
			w.WriteString("Connection: close\r\n")
		}
	}
	w.WriteString("\r\n")
}

// bodyAllowed reports whether an answer with this code to this request
// carries a body.
func bodyAllowed(method string, code int) bool {
	return method != http.MethodHead && code != http.StatusNoContent && code != http.StatusNotModified
}

// relayAnswer writes the final answer's head and streams its body,
// flushing to the client whenever the backend has nothing more buffered.
func (ex *exchange) relayAnswer(uc *upConn, code int) error {
	rh, err := ex.relayHead(uc, code, false)
	if err != nil {
		return err
	}
	if m := ex.mirror; m != nil {
		m.header = make(http.Header, len(rh.lines))
		for _, l := range rh.lines {
			if !respHopByHop(l[0], &rh) {
				k := textproto.CanonicalMIMEHeaderKey(string(l[0]))
				m.header[k] = append(m.header[k], string(l[1]))
			}
		}
	}
	if rh.close {
		ex.upstreamBroken = true
	}
	if !(rh.length >= 0 && int64(uc.r.Buffered()) >= rh.length) {
		// The timeout covers the head only: a body may stream for long.
		uc.io.setReadDeadline(time.Time{})
	}
	switch {
	case !bodyAllowed(ex.method, code):
	case rh.chunked:
		err = ex.relayChunked(uc)
	case ex.rechunk:
		err = ex.relayUntilClose(uc.r)
	default:
		err = ex.relay(uc.r, rh.length)
	}
	if err == nil {
		if ferr := ex.fc.w.Flush(); ferr != nil {
			ex.clientBroken = true
		}
		if m := ex.mirror; m != nil && int64(len(m.body)) == ex.h.contentLength {
			// Mirrored only with its whole body (not after an early
			// answer), as on the net/http path.
			m.done = true
		}
	}
	if errors.Is(err, errClient) {
		ex.clientBroken, ex.upstreamBroken = true, true
		return nil // the backend did its part; the client left
	}
	return err
}

// fill makes sure some of the answer's body is buffered in r: when none
// is, it first sends the client what it has so far (errClient when that
// fails), then waits for the backend (the read error, wrapped).
func (ex *exchange) fill(r *bufio.Reader) error {
	if r.Buffered() > 0 {
		return nil
	}
	if err := ex.fc.w.Flush(); err != nil {
		return errClient
	}
	if _, err := r.Peek(1); err != nil {
		return fmt.Errorf("read answer body: %w", err)
	}
	return nil
}

// relay copies n bytes of body.
func (ex *exchange) relay(r *bufio.Reader, n int64) error {
	w := ex.fc.w
	for n > 0 {
		if err := ex.fill(r); err != nil {
			return err
		}
		k := r.Buffered()
		if int64(k) > n {
			k = int(n)
		}
		b, _ := r.Peek(k)
		if _, err := w.Write(b); err != nil {
			return errClient
		}
		if ex.mirror != nil {
			ex.mirror.capture.add(b)
		}
		r.Discard(k)
		n -= int64(k)
	}
	return nil
}

// relayUntilClose copies a body that ends when the backend closes its
// connection, as one chunk per read, and writes the last chunk only at a
// clean end: a reset or failed read leaves the client's chunked body
// unfinished, so the client cannot take it for whole.
func (ex *exchange) relayUntilClose(r *bufio.Reader) error {
	w := ex.fc.w
	for {
		if err := ex.fill(r); errors.Is(err, io.EOF) {
			w.WriteString("0\r\n\r\n")
			return nil
		} else if err != nil {
			return err
		}
		b, _ := r.Peek(r.Buffered())
		w.WriteString(strconv.FormatInt(int64(len(b)), 16))
		w.WriteString("\r\n")
		w.Write(b)
		if _, err := w.WriteString("\r\n"); err != nil {
			return errClient
		}
		if ex.mirror != nil {
			ex.mirror.capture.add(b)
		}
		r.Discard(len(b))
	}
}

// relayChunked copies a chunked body, chunk by chunk, with its trailers.
func (ex *exchange) relayChunked(uc *upConn) error {
	w := ex.fc.w
	for {
		if uc.r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return errClient
			}
		}
		line, err := uc.r.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("read chunk size: %w", err)
		}
		size, ok := chunkSize(line)
		if !ok {
			return fmt.Errorf("malformed chunk size line %q", bytes.TrimRight(line, "\r\n"))
		}
		if size == 0 {
			break
		}
		w.WriteString(strconv.FormatInt(size, 16))
		w.WriteString("\r\n")
		if err := ex.relay(uc.r, size); err != nil {
			return err
		}
		crlf, err := uc.r.ReadSlice('\n')
		if err != nil || string(crlf) != "\r\n" {
			return errors.New("chunk not followed by CRLF")
		}
		w.WriteString("\r\n")
	}
	w.WriteString("0\r\n")
	for {
		line, err := uc.r.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("read trailer: %w", err)
		}
		// One line end, CRLF or LF; a CR before it is a bare CR, which
		// leaves the line malformed or its value refused below.
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return fmt.Errorf("malformed trailer %q", line)
		}
		if !validName(line[:colon]) || !plainText(line[colon+1:]) || !trailerAllowed(string(line[:colon])) {
			// A folded line, a name with blanks or odd bytes, or a value
			// with a control byte (net/http drops them too), or a field
			// trailers must not carry: dropped, never passed on.
			continue
		}
		w.Write(line)
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	return nil
}

// chunkSize parses "HEX[;ext]\r\n". The line must end in CRLF with no
// other CR: RFC 9112 takes no bare LF as a line end in chunked framing
// (erratum 7633), and net/http refuses both.
func chunkSize(line []byte) (int64, bool) {
	if !bytes.HasSuffix(line, []byte("\r\n")) || bytes.IndexByte(line, '\r') != len(line)-2 {
		return 0, false
	}
	line = line[:len(line)-2]
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range line {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}

// awaitBody lifts the client connection's read deadline when the
// request's body is still coming: like net/http (no ReadTimeout), the body
// is waited for without the head's deadline, nor the client check's.
func (ex *exchange) awaitBody() {
	if int64(ex.fc.r.Buffered()) < ex.h.contentLength {
		ex.fc.setReadDeadline(0)
	}
}

// fail answers a request the backend could not serve with the same 502 or
// 504 page as the net/http path, after reading the request body off the
// connection so it can carry the next request.
func (ex *exchange) fail(err error) (int, bool) {
	if !ex.bodyForwarded {
		ex.discardHead()
		if ex.h.contentLength > 0 {
			ex.awaitBody()
			if _, derr := ex.fc.r.Discard(int(ex.h.contentLength)); derr != nil {
				ex.clientBroken = true
			}
		}
	}
	code, what := classify(err, ex.u.timeout)
	ex.fc.warn("backend error", "route", ex.route.Name, "backend", ex.backend, "status", code, "err", err)
	body, hdr := errorPage(ex.route.Name, ex.backend, what), errorHeader(code)
	if m := ex.mirror; m != nil && int64(len(m.body)) == ex.h.contentLength {
		// Mirrored only with its whole body, as on the net/http path.
		m.header = hdr
		m.capture.add([]byte(body))
		m.err, m.done = errorText(ex.backend, what), true
	}
	w := ex.fc.w
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\n", code, http.StatusText(code))
	_ = hdr.Write(w)
	fmt.Fprintf(w, "Date: %s\r\nContent-Length: %d\r\n", httpDate(), len(body))
	if ex.clientBroken || ex.h.close || ex.fc.s.closing.Load() {
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("\r\n")
	if ex.method != http.MethodHead {
		w.WriteString(body)
	}
	if w.Flush() != nil {
		ex.clientBroken = true
	}
	return code, !ex.clientBroken
}

// httpDate is the Date header value, formatted at most once a second.
func httpDate() string {
	now := time.Now().Unix()
	if d := dateCache.Load(); d != nil && d.unix == now {
		return d.text
	}
	d := &cachedDate{unix: now, text: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.text
}

type cachedDate struct {
	unix int64
	text string
}

var dateCache atomic.Pointer[cachedDate]
