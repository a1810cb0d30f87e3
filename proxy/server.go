package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/banyanhq/banyan/internal/uring"
)

// ServerOptions configure a Server.
type ServerOptions struct {
	// ReadHeaderTimeout bounds the wait for a request head once its first
	// byte came; IdleTimeout the wait for the next request on a kept-alive
	// connection. Both apply to the fast path and to net/http alike.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// ErrorLog receives net/http's connection errors.
	ErrorLog *log.Logger
	// NetHTTPOnly serves every connection with net/http and
	// httputil.ReverseProxy, never the fast path.
	NetHTTPOnly bool
	// Engine runs the fast path's connections; the zero value is
	// EngineAuto.
	Engine Engine
}

// Engine is what runs the fast path's connections.
type Engine string

const (
	// EngineAuto is the default: EngineURing where the kernel runs
	// io_uring and GOMAXPROCS is at least 2 (a loop and a P for the rest
	// of the program), else EngineGoroutines. ADR 0006 says why.
	EngineAuto Engine = ""
	// EngineURing serves connections on io_uring loops, one per CPU but one
	// (internal/uring), each connection a task of its loop: one system
	// call a turn of the loop sends and receives for all of them. ADR
	// 0006 says why. Serve fails where the kernel refuses io_uring.
	EngineURing Engine = "io_uring"
	// EngineGoroutines serves each connection on a goroutine of its own,
	// waiting in Go's poller.
	EngineGoroutines Engine = "goroutines"
)

// defaultEngine, when not EngineAuto, is what EngineAuto means: tests
// set it to run every test on each engine.
var defaultEngine = EngineAuto

// probeURing tells whether io_uring can run here; tests stand in a
// kernel that refuses it.
var probeURing = uring.Probe

// ringEntries is the size of each loop's submission queue.
const ringEntries = 1024

// Server serves the proxy on a listener. Each connection starts on the
// fast path: banyan's own HTTP/1.1 loop, which reads plain requests
// (origin-form HTTP/1.1, no upgrade, no Expect, no chunked or large body)
// and forwards them on pooled backend connections in the same goroutine.
// The first request it will not take, the connection is handed, with the
// bytes already read, to a net/http server running the same Proxy as an
// http.Handler, and stays there. Why: see docs/adr/0006-fast-path.md.
type Server struct {
	p    *Proxy
	opts ServerOptions
	http *http.Server
	hand *handoffListener

	mu        sync.Mutex
	ln        net.Listener
	engine    Engine
	engineErr error         // why Serve cannot run the engine asked for
	loops     []*uring.Loop // nil: connections are served by goroutines
	loopErr   atomic.Pointer[error]
	nextLoop  int
	conns     map[*fastConn]struct{}
	closing   atomic.Bool
	killed    atomic.Bool // Close, or Shutdown's context ended: stop answering
	wg        sync.WaitGroup
	serveErr  chan error
}

// NewServer returns a server for p. Call Serve once.
func NewServer(p *Proxy, opts ServerOptions) *Server {
	s := &Server{p: p, opts: opts, conns: map[*fastConn]struct{}{}}
	s.resolveEngine()
	s.http = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		IdleTimeout:       opts.IdleTimeout,
		ErrorLog:          opts.ErrorLog,
	}
	return s
}

// Serve accepts connections on ln until Shutdown or Close; it returns
// http.ErrServerClosed then, like http.Server.Serve.
func (s *Server) Serve(ln net.Listener) error {
	if s.opts.NetHTTPOnly {
		return s.http.Serve(ln)
	}
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	if err := s.startLoops(); err != nil {
		s.mu.Unlock()
		return err
	}
	s.ln = ln
	s.hand = &handoffListener{ch: make(chan net.Conn), done: make(chan struct{}), addr: ln.Addr()}
	s.serveErr = make(chan error, 1)
	s.mu.Unlock()
	go func() { s.serveErr <- s.http.Serve(s.hand) }()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			if isTimeout(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		fc, err := newFastConn(s, c)
		if err != nil {
			s.p.log.Warn("connection dropped: cannot move it onto io_uring", "remote", c.RemoteAddr().String(), "err", err)
			continue
		}
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			fc.io.close()
			return http.ErrServerClosed
		}
		s.conns[fc] = struct{}{}
		s.wg.Add(1)
		var l *uring.Loop
		if s.loops != nil {
			l = s.loops[s.nextLoop]
			s.nextLoop = (s.nextLoop + 1) % len(s.loops)
		}
		s.mu.Unlock()
		if l == nil {
			go fc.serve()
		} else if l.Go(func(t *uring.Task) { fc.io.onTask(t); fc.serve() }) != nil {
			// Close came in between, or the loop failed.
			fc.io.close()
			s.forget(fc)
			if err := s.loopErr.Load(); err != nil && !s.closing.Load() {
				return fmt.Errorf("proxy: an io_uring loop failed, and with it its connections: %w", *err)
			}
			return http.ErrServerClosed
		}
	}
}

// Engine is the engine that serves, or will serve, the fast path's
// connections: EngineURing or EngineGoroutines (EngineAuto with
// NetHTTPOnly, or an engine Serve refuses).
func (s *Server) Engine() Engine { return s.engine }

// resolveEngine decides, once, what s.opts.Engine means here; an engine
// that cannot run is an error for Serve to return.
func (s *Server) resolveEngine() {
	e := s.opts.Engine
	if e == EngineAuto {
		e = defaultEngine
	}
	switch {
	case s.opts.NetHTTPOnly:
	case e == EngineAuto:
		s.engine = EngineGoroutines
		if runtime.GOMAXPROCS(0) >= 2 && probeURing() == nil {
			s.engine = EngineURing
		}
	case e == EngineGoroutines:
		s.engine = e
	case e != EngineURing:
		s.engineErr = fmt.Errorf("proxy: unknown engine %q (want %q or %q)", e, EngineURing, EngineGoroutines)
	default:
		if err := probeURing(); err != nil {
			s.engineErr = fmt.Errorf("proxy: the io_uring engine cannot run here (the goroutines engine can): %w", err)
			return
		}
		s.engine = EngineURing
	}
}

// startLoops starts the io_uring loops, when the engine is io_uring: one
// per CPU (GOMAXPROCS) but one, and at least one. On the 2-CPU VM one
// loop used less CPU a request than two (bench/README.md): with fewer
// loops each turn finds more completions, and a loop thread sleeps and
// wakes less often; two loops with a P to spare (GOMAXPROCS=3) did no
// better than two without. The P left over runs everything else: Block's
// dials, connections handed to net/http, shadow workers, the GC.
func (s *Server) startLoops() error {
	if s.engineErr != nil || s.engine != EngineURing {
		return s.engineErr
	}
	for range max(1, runtime.GOMAXPROCS(0)-1) {
		l := uring.New(ringEntries)
		s.loops = append(s.loops, l)
		go func() {
			if err := l.Run(); err != nil {
				// Its tasks are left where they were; Serve stops at the
				// next connection it would give the loop.
				s.p.log.Error("io_uring loop failed; its connections are stuck", "err", err)
				s.loopErr.Store(&err)
			}
		}()
	}
	return nil
}

// Shutdown stops accepting, closes idle connections, lets requests in
// flight finish (their answers say Connection: close) and waits for them
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.opts.NetHTTPOnly {
		return s.http.Shutdown(ctx)
	}
	s.stop()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.closeConns(true)
	}
	return errors.Join(err, s.http.Shutdown(ctx))
}

// Close closes the listener and ends every connection at once: clients
// see their connections closed; the fast path's goroutines release theirs
// as they stop, at their next read, write or client check.
func (s *Server) Close() error {
	if s.opts.NetHTTPOnly {
		return s.http.Close()
	}
	s.stop()
	s.closeConns(true)
	return s.http.Close()
}

func (s *Server) stop() {
	s.mu.Lock()
	s.closing.Store(true)
	if s.ln != nil {
		s.ln.Close()
	}
	for _, l := range s.loops {
		l.Close() // each ends once its connections have
	}
	s.mu.Unlock()
	s.closeConns(false)
}

// closeConns closes the idle fast-path connections, or all of them.
func (s *Server) closeConns(all bool) {
	if all {
		s.killed.Store(true)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for fc := range s.conns {
		if all || fc.idle.Load() {
			fc.abort()
		}
		if all {
			if uc := fc.up.Load(); uc != nil {
				uc.io.abort()
			}
		}
	}
}

// handoff gives c, with the bytes already read from it, to net/http.
func (s *Server) handoff(c net.Conn, read []byte) {
	rc := &replayConn{Conn: c, buf: append([]byte(nil), read...)}
	select {
	case s.hand.ch <- rc:
	case <-s.hand.done:
		c.Close()
	}
}

func (s *Server) forget(fc *fastConn) {
	s.mu.Lock()
	delete(s.conns, fc)
	s.mu.Unlock()
	s.wg.Done()
}

// handoffListener is the listener the net/http server accepts handed-off
// connections from.
type handoffListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

// replayConn returns buf before reading on from the connection.
type replayConn struct {
	net.Conn
	buf []byte
}

// CloseWrite lets net/http half-close before it closes (its lingering
// close), so an error answer is not lost to a reset.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *replayConn) Read(b []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(b, c.buf)
		c.buf = c.buf[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// testHookIdle, set only by tests, runs when a connection has answered a
// request and is about to mark itself idle.
var testHookIdle atomic.Pointer[func()]

// testHookAnswered, set only by tests, runs when the fast path has
// finished an exchange, before it checks for Shutdown.
var testHookAnswered atomic.Pointer[func()]

// fastBufSize is the read buffer of a fast-path connection, and so the
// largest request head it takes (net/http takes up to 1 MiB).
const fastBufSize = 8 << 10

// fastConn is one client connection on the fast path.
type fastConn struct {
	s    *Server
	io   *sockIO // reads and writes the connection
	r    *clientBuf
	w    *bufio.Writer
	idle atomic.Bool
	// served counts the requests answered on the fast path.
	served int
	// unlooked: a read inside await may have taken the client's end
	// unannounced; lookAt is when await looks (zero: no look due).
	unlooked bool
	lookAt   time.Time
	// await's callbacks, bound once, and what they tell it
	free func() []byte
	gotF func(n int) bool
	stop bool
	why  string
	head reqHead
	req  http.Request // what routing reads, refilled for each request
	url  url.URL
	// remote is the client's address, ip its host part.
	remote, ip string
	// deadline is the read deadline set on c; lastEnd when the last
	// answer was done.
	deadline, lastEnd time.Time
	// up is the backend connection of the exchange under way, if any
	// (exchange.inUse), for Close to end.
	up atomic.Pointer[upConn]
	// series caches the metrics of the last route, backend and status
	// this connection saw; most connections see one.
	series seriesCache
}

// newFastConn returns the fast path's connection c, moved onto io_uring
// when the server runs loops (c is closed when that fails).
func newFastConn(s *Server, c net.Conn) (*fastConn, error) {
	fc := &fastConn{s: s}
	fc.remote = c.RemoteAddr().String()
	if s.loops == nil {
		fc.io = newSockIO(c)
	} else {
		var err error
		if fc.io, err = ringSockIO(c); err != nil {
			return nil, err
		}
	}
	fc.free = func() []byte { return fc.r.free() }
	fc.gotF = fc.answerInside
	fc.idle.Store(true)
	if host, _, err := net.SplitHostPort(fc.remote); err == nil {
		fc.ip = host
	}
	return fc, nil
}

func (fc *fastConn) serve() {
	handed := false
	defer func() {
		if v := recover(); v != nil {
			// Off the loop's thread on io_uring, like every log of the
			// fast path (fc.warn): a log that hangs holds this connection
			// only.
			fc.io.blocking(func() {
				fc.s.p.log.Error("fast path panic; connection closed", "remote", fc.remote, "panic", fmt.Sprint(v))
			})
		}
		if !handed {
			fc.io.close()
		}
		fc.release()
		fc.s.forget(fc)
	}()
	fc.r = readerPool.Get().(*clientBuf)
	fc.r.Reset(fc.io)
	fc.w = writerPool.Get().(*bufio.Writer)
	fc.w.Reset(fc.io)
	for {
		if fc.served == 0 {
			fc.setReadDeadline(fc.s.opts.ReadHeaderTimeout)
		} else {
			fc.idleDeadline()
		}
		var why string
		if fc.r.Buffered() == 0 {
			var stop bool
			if stop, why = fc.await(); stop {
				return
			}
		}
		if why == "" {
			// Idle until a whole head is in (net/http's Shutdown closes a
			// connection with part of a head too).
			var buf []byte
			buf, why = fc.readHead()
			fc.idle.Store(false)
			if fc.s.closing.Load() {
				return
			}
			if why == "" {
				why = parseHead(buf, &fc.head)
			}
			if why == "" {
				var next bool
				if next, why = fc.answer(); why == "" {
					if !next {
						return
					}
					continue
				}
			}
		}
		if why == "eof" {
			return
		}
		pending, _ := fc.r.Peek(fc.r.Buffered())
		if why == handoffLarge {
			var err error
			if pending, err = fc.longHead(); err != nil {
				return
			}
		}
		if faultyFraming(pending) {
			fc.refuse()
			return
		}
		fc.s.p.metrics.handoff(why)
		fc.setReadDeadline(0)
		handed = true
		c, err := fc.io.netConn()
		if err != nil {
			return
		}
		// The wait for net/http to take it must not hold a loop.
		fc.io.blocking(func() { fc.s.handoff(c, pending) })
		return
	}
}

// answer forwards the request parsed into fc.head. It returns whether the
// connection goes on to a next request, or why net/http must answer this
// one instead.
func (fc *fastConn) answer() (next bool, handoff string) {
	keep, why := fc.s.p.forwardFast(fc, &fc.head)
	if why != "" {
		return false, why
	}
	fc.served++
	if h := testHookAnswered.Load(); h != nil {
		(*h)()
	}
	if !keep || fc.s.closing.Load() {
		return false, ""
	}
	if h := testHookIdle.Load(); h != nil {
		(*h)()
	}
	fc.idle.Store(true)
	// Shutdown sets closing, then closes the idle connections: checking
	// closing again after idle is set means that one of the two always
	// sees the other, so a connection that turned idle during Shutdown is
	// not left open until its idle timeout.
	return !fc.s.closing.Load(), ""
}

// await waits, with the read deadline already set, for the first bytes
// of the next request; the buffer is empty. Requests that come whole and
// with their body (most come in one piece) it answers at once from inside
// the read that took them (sockIO.readServe), so the wait for the next
// one needs no read that finds nothing first: the read before every wait
// was most of what the fast path cost above nginx's reads (ADR 0006).
// It returns stop when the connection is done, or why the request at
// the start of the buffer goes to net/http. Otherwise the buffer holds
// bytes the server loop reads on from: part of a head, or a request this
// does not answer (it parses it again there).
//
// A read that took a request may also have taken the client's end (a
// half-close sent right after it): nothing would then wake the wait, as
// the poller announced the end before the read. So the wait after such a
// read is cut short by clientCheck: the wait's deadline comes then, and a
// peek tells an ended connection from a quiet one, which goes on to wait
// out its idle timeout. Ends that come later wake the wait themselves.
func (fc *fastConn) await() (stop bool, why string) {
	for {
		fc.stop, fc.why = false, ""
		err := fc.io.readServe(fc.free, fc.gotF)
		if err == nil {
			return fc.stop, fc.why
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || !fc.waitOn(time.Now()) {
			return true, ""
		}
	}
}

// waitOn decides, when await's read deadline has passed at now, whether
// the connection waits on. It does after a look that found the client
// quiet, and after a deadline kept from before (idleDeadline) that came
// ahead of both the look and the idle timeout (it costs a wake-up); not
// when the idle or the first request's header timeout has passed.
func (fc *fastConn) waitOn(now time.Time) bool {
	if fc.served == 0 {
		return false // the header timeout
	}
	if !fc.lookAt.IsZero() && !now.Before(fc.lookAt) {
		fc.lookAt, fc.unlooked = time.Time{}, false
		if fc.io.peek() == peekClosed {
			return false
		}
	} else if idle := fc.s.opts.IdleTimeout; idle > 0 && !now.Before(fc.lastEnd.Add(idle)) {
		return false // the idle timeout
	}
	// The deadline that passed goes; idleDeadline sets the next, if any.
	fc.setReadDeadline(0)
	fc.idleDeadline()
	return true
}

// answerInside is await's callback for readServe: it takes n bytes read
// and answers the whole requests they complete. It sets fc.stop or fc.why
// for await to return.
func (fc *fastConn) answerInside(n int) bool {
	fc.r.got(n)
	fc.unlooked = true
	fc.r.inside = true // no read from the client may wait in here
	defer func() { fc.r.inside = false }()
	for {
		buf, _ := fc.r.Peek(fc.r.Buffered())
		end := indexHeadEnd(buf)
		if end < 0 {
			return false
		}
		fc.idle.Store(false)
		if fc.s.closing.Load() {
			fc.stop = true
			return false
		}
		if parseHead(buf[:end], &fc.head) != "" || fc.head.contentLength > int64(len(buf)-len(fc.head.raw)) {
			return false
		}
		next, handoff := fc.answer()
		switch {
		case handoff != "":
			fc.why = handoff
			return false
		case !next:
			fc.stop = true
			return false
		case fc.r.Buffered() == 0:
			fc.idleDeadline()
			return true
		}
	}
}

// readHead waits until the buffer holds a whole request head and returns
// the buffered bytes, or a handoff reason: "eof" when the client went
// away, handoffLarge when the head does not fit the buffer.
func (fc *fastConn) readHead() ([]byte, string) {
	for waited := false; ; waited = true {
		n := fc.r.Buffered()
		buf, _ := fc.r.Peek(n)
		if i := indexHeadEnd(buf); i >= 0 {
			return buf[:i], ""
		}
		if n >= fastBufSize {
			return nil, handoffLarge
		}
		if !waited {
			// The head came in pieces: from here on the header timeout
			// bounds the wait, not the idle one.
			fc.setReadDeadline(fc.s.opts.ReadHeaderTimeout)
		}
		if _, err := fc.r.Peek(n + 1); err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return nil, handoffLarge
			}
			return nil, "eof"
		}
	}
}

// maxLongHead is how much of a head larger than the fast path's buffer
// is read before it is handed off: net/http's own limit and slack, past
// which net/http answers 431 whatever it holds.
const maxLongHead = http.DefaultMaxHeaderBytes + 4096

// longHead reads a head too large for the fast path's buffer off the
// connection, up to its end or maxLongHead bytes, and returns every byte
// read (with whatever came after the head) for the handoff.
func (fc *fastConn) longHead() ([]byte, error) {
	// The idle deadline may still be on (or none): the rest of a head is
	// bounded by the header timeout, as net/http would bound it.
	fc.setReadDeadline(fc.s.opts.ReadHeaderTimeout)
	var buf []byte
	for {
		from := max(len(buf)-3, 0) // an end of head may span two reads
		n := fc.r.Buffered()
		b, _ := fc.r.Peek(n)
		buf = append(buf, b...)
		fc.r.Discard(n)
		if indexHeadEnd(buf[from:]) >= 0 || len(buf) >= maxLongHead {
			return buf, nil
		}
		if _, err := fc.r.Peek(1); err != nil {
			return nil, err
		}
	}
}

// faultyFraming reports whether the request head at the start of b frames
// its body in a way RFC 9112 section 6.1 calls faulty: Transfer-Encoding
// beside Content-Length, or in an HTTP/1.0 request. net/http takes the
// first by its chunks and ignores the second's Transfer-Encoding, and then
// reads on from the connection; a front end that framed the same bytes the
// other way has a request of its own run here (smuggling). The RFC asks
// for the connection to be closed after such a request; banyan refuses it.
func faultyFraming(b []byte) bool {
	end := indexHeadEnd(b)
	if end < 0 {
		return false // not a whole head: net/http refuses it
	}
	line, rest, _ := bytes.Cut(b[:end], []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	http10 := bytes.HasSuffix(line, []byte(" HTTP/1.0"))
	te, cl := false, false
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		name, _, found := bytes.Cut(line, []byte(":"))
		switch {
		case !found:
		case asciiEqualFold(name, "transfer-encoding"):
			te = true
		case asciiEqualFold(name, "content-length"):
			cl = true
		}
	}
	return te && (cl || http10)
}

// faultyFramingAnswer is what a request with faulty framing gets.
var faultyFramingAnswer = func() string {
	const body = "400 Bad Request: Transfer-Encoding with Content-Length or in HTTP/1.0\n"
	return "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n" +
		"Connection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}()

// refuse answers a request with faulty framing and closes the connection
// gently: what the client sent after the head is read and dropped for a
// while, so that closing does not reset the connection before the client
// has read the answer.
func (fc *fastConn) refuse() {
	fc.warn("request with faulty framing refused", "remote", fc.remote)
	fc.w.WriteString(faultyFramingAnswer)
	if fc.w.Flush() != nil {
		return
	}
	fc.linger()
}

// linger half-closes the connection, its answer sent, and reads and drops
// what the client still sends for a while (a body nobody reads), so that
// the close which follows does not reset the connection before the client
// has read the answer.
func (fc *fastConn) linger() {
	fc.io.closeWrite()
	fc.io.setReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.Copy(io.Discard, fc.r)
}

// lingerTime is how long a connection closed under an answer the client
// may not have read yet goes on taking what the client sends (net/http's
// server waits as long after its half-close).
const lingerTime = 500 * time.Millisecond

// indexHeadEnd returns the length of the head at the start of b: through
// the first empty line, CRLF or bare LF (net/http takes both; parseHead
// then hands the bare-LF kind over), or -1 when it has not all come.
func indexHeadEnd(b []byte) int {
	for i := 0; ; i++ {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j // a line ends at i; an empty line may follow
		switch {
		case i+1 < len(b) && b[i+1] == '\n':
			return i + 2
		case i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n':
			return i + 3
		}
	}
}

// warn logs a warning. On an io_uring loop the write to the log is made
// off the loop's thread (Block): a slow log (a pipe nobody drains fast
// enough) then holds this connection only, as on goroutines, not every
// connection of the loop, and a backend that is down makes every request
// log.
func (fc *fastConn) warn(msg string, args ...any) {
	fc.io.blocking(func() { fc.s.p.log.Warn(msg, args...) })
}

// abort ends the connection at once: the client sees it closed, and the
// goroutine serving it stops at its next read or write (or client check)
// and closes it. Where it can, it shuts the socket down rather than
// closing it: a Close would wait for an answer being made from inside a
// read (await), which holds the connection, to end.
func (fc *fastConn) abort() { fc.io.abort() }

func (fc *fastConn) setReadDeadline(d time.Duration) {
	var t time.Time
	if d > 0 {
		t = time.Now().Add(d)
	}
	fc.deadline = t
	fc.io.setReadDeadline(t)
}

// idleDeadline bounds the wait for the next request by IdleTimeout from
// the end of the last answer, or sooner when a look at the client is due
// (fc.lookAt; await). A deadline set less than a second before stays:
// resetting the timer for every request of a busy connection costs more
// than the second is worth.
func (fc *fastConn) idleDeadline() {
	var t time.Time
	if idle := fc.s.opts.IdleTimeout; idle > 0 {
		t = fc.lastEnd.Add(idle)
		if fc.lastEnd.IsZero() {
			t = time.Now().Add(idle)
		}
	}
	if fc.unlooked && fc.lookAt.IsZero() {
		fc.lookAt = fc.lastEnd.Add(clientCheck)
	}
	if !fc.lookAt.IsZero() && (t.IsZero() || fc.lookAt.Before(t)) {
		t = fc.lookAt
	}
	if t.IsZero() {
		if !fc.deadline.IsZero() {
			fc.setReadDeadline(0)
		}
		return
	}
	// A deadline up to a second early may stay for the idle timeout, not
	// for a look; it must not have passed by the end of the last answer.
	// (One that comes early anyway is set anew by waitOn.)
	if d := t.Sub(fc.deadline); d == 0 || d > 0 && d < min(time.Second, t.Sub(fc.lastEnd)) && !t.Equal(fc.lookAt) {
		return
	}
	fc.deadline = t
	fc.io.setReadDeadline(t)
}

func (fc *fastConn) release() {
	if fc.r != nil {
		fc.r.Reset(nil)
		readerPool.Put(fc.r)
		fc.r = nil
	}
	if fc.w != nil {
		fc.w.Reset(nil)
		writerPool.Put(fc.w)
		fc.w = nil
	}
}

var (
	readerPool = sync.Pool{New: func() any { return newClientBuf(fastBufSize) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// isTimeout tells whether err is a net.Error that timed out.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
