//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The raw client sends on time where the net/http one cannot: Go's poller
// waits in whole milliseconds (a timer due in 0.3 ms sleeps 1 ms unless
// something else wakes it), and every request goes through a channel and a
// worker goroutine, so at 2,000 req/s the client itself ran up to 1.2 ms
// late at p99, more than the proxies' difference it was there to measure.
// This one is one locked thread: an epoll set holding the connections and
// a timerfd armed, to the nanosecond, for the next scheduled send; no
// goroutine switches, no allocation while it runs.

// rawConn is one keep-alive connection of the raw client.
type rawConn struct {
	idx   int // its place in rawClient.conns, carried through epoll in Pad
	fd    int
	busy  bool
	sched time.Time // the request's scheduled send time
	begin time.Time // when it was written
	buf   []byte
	n     int // bytes of the response read into buf
}

// rawClient holds the raw client's state for one run.
type rawClient struct {
	addr    syscall.Sockaddr
	family  int
	req     []byte
	timeout time.Duration
	ep      int
	tfd     int
	conns   []*rawConn
	free    []*rawConn // idle connections, the last used on top
	backlog []time.Time
	r       result
}

// runRaw is run for the raw client: the same schedule and measures, over
// conns connections opened before the first send.
func runRaw(target string, rate int, duration time.Duration, conns int, timeout time.Duration) (result, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n := int(float64(rate) * duration.Seconds())
	c, err := newRawClient(target, conns, timeout, n)
	if err != nil {
		return result{}, err
	}
	defer c.close()
	c.r = result{rate: rate, duration: duration, sent: n,
		lat: make([]time.Duration, 0, n), svc: make([]time.Duration, 0, n), lag: make([]time.Duration, 0, n)}

	interval := time.Second / time.Duration(rate)
	start := time.Now()
	stop := start.Add(duration + timeout + time.Second)
	events := make([]unix.EpollEvent, len(c.conns)+1)
	next := 0 // the next request to schedule
	var armed time.Time
	for {
		now := time.Now()
		for next < n {
			sched := start.Add(time.Duration(next) * interval)
			if sched.After(now) {
				if !sched.Equal(armed) {
					if err := c.arm(sched.Sub(now)); err != nil {
						return c.r, err
					}
					armed = sched
				}
				break
			}
			next++
			c.backlog = append(c.backlog, sched)
		}
		c.sendBacklog()
		if next == n && len(c.backlog) == 0 && len(c.free) == len(c.conns) {
			break
		}
		if now.After(stop) {
			c.abandon()
			c.r.errs += n - next // never sent
			break
		}
		c.expire(now)
		k, err := unix.EpollWait(c.ep, events, 100)
		if err != nil && !errors.Is(err, syscall.EINTR) {
			return c.r, fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range events[:max(k, 0)] {
			if int(ev.Fd) == c.tfd {
				var b [8]byte
				_, _ = unix.Read(c.tfd, b[:])
				armed = time.Time{} // fired (perhaps a hair early): arm again
				continue
			}
			c.readable(c.conns[ev.Pad])
		}
	}
	c.r.ok = len(c.r.lat)
	return c.r, nil
}

func newRawClient(target string, conns int, timeout time.Duration, n int) (*rawClient, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("the raw client speaks plain http, not %q", u.Scheme)
	}
	hostport := u.Host
	if u.Port() == "" {
		hostport = net.JoinHostPort(u.Hostname(), "80")
	}
	ta, err := net.ResolveTCPAddr("tcp", hostport)
	if err != nil {
		return nil, err
	}
	c := &rawClient{timeout: timeout, ep: -1, tfd: -1, backlog: make([]time.Time, 0, n)}
	if ip4 := ta.IP.To4(); ip4 != nil {
		sa := &syscall.SockaddrInet4{Port: ta.Port}
		copy(sa.Addr[:], ip4)
		c.addr, c.family = sa, syscall.AF_INET
	} else {
		sa := &syscall.SockaddrInet6{Port: ta.Port}
		copy(sa.Addr[:], ta.IP.To16())
		c.addr, c.family = sa, syscall.AF_INET6
	}
	c.req = fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: banyan-loadgen\r\n\r\n", u.RequestURI(), u.Host)

	if c.ep, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if c.tfd, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC); err != nil {
		c.close()
		return nil, fmt.Errorf("timerfd_create: %w", err)
	}
	if err := unix.EpollCtl(c.ep, unix.EPOLL_CTL_ADD, c.tfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(c.tfd)}); err != nil {
		c.close()
		return nil, err
	}
	for i := range conns {
		rc := &rawConn{idx: i, fd: -1, buf: make([]byte, 8<<10)}
		c.conns = append(c.conns, rc)
		if err := c.dial(rc); err != nil {
			c.close()
			return nil, err
		}
		c.free = append(c.free, rc)
	}
	return c, nil
}

// dial opens rc's socket (blocking connect, then non-blocking).
func (c *rawClient) dial(rc *rawConn) error {
	fd, err := syscall.Socket(c.family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	if err := syscall.Connect(fd, c.addr); err != nil {
		syscall.Close(fd)
		return fmt.Errorf("connect: %w", err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1); err != nil {
		syscall.Close(fd)
		return err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return err
	}
	if err := unix.EpollCtl(c.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd), Pad: int32(rc.idx)}); err != nil {
		syscall.Close(fd)
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	rc.fd, rc.n = fd, 0
	return nil
}

func (c *rawClient) close() {
	for _, rc := range c.conns {
		if rc.fd >= 0 {
			syscall.Close(rc.fd)
		}
	}
	for _, fd := range []int{c.tfd, c.ep} {
		if fd >= 0 {
			syscall.Close(fd)
		}
	}
}

// arm sets the timerfd to fire after d.
func (c *rawClient) arm(d time.Duration) error {
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(max(int64(d), 1))}
	if err := unix.TimerfdSettime(c.tfd, 0, &spec, nil); err != nil {
		return fmt.Errorf("timerfd_settime: %w", err)
	}
	return nil
}

// sendBacklog starts the requests due on the idle connections, oldest
// first; what finds no idle connection waits for one, its lateness counted.
func (c *rawClient) sendBacklog() {
	sent := 0
	for sent < len(c.backlog) && len(c.free) > 0 {
		rc := c.free[len(c.free)-1]
		c.free = c.free[:len(c.free)-1]
		c.send(rc, c.backlog[sent])
		sent++
	}
	c.backlog = c.backlog[:copy(c.backlog, c.backlog[sent:])]
}

func (c *rawClient) send(rc *rawConn, sched time.Time) {
	rc.sched, rc.begin, rc.busy, rc.n = sched, time.Now(), true, 0
	if rc.begin.Sub(sched) > time.Millisecond {
		c.r.late++
	}
	if rc.fd < 0 {
		if err := c.dial(rc); err != nil {
			c.fail(rc, err)
			return
		}
	}
	w, err := syscall.Write(rc.fd, c.req)
	if err == nil && w != len(c.req) {
		err = fmt.Errorf("short write of a %d-byte request: %d", len(c.req), w)
	}
	if err != nil {
		c.fail(rc, fmt.Errorf("write: %w", err))
	}
}

// fail counts rc's request as an error and makes rc idle, closed, to be
// dialled again when next used.
func (c *rawClient) fail(rc *rawConn, err error) {
	c.count(err)
	c.drop(rc)
	c.done(rc)
}

func (c *rawClient) count(err error) {
	c.r.errs++
	if c.r.firstErr == nil {
		c.r.firstErr = err
	}
}

// drop closes rc's socket.
func (c *rawClient) drop(rc *rawConn) {
	if rc.fd >= 0 {
		_ = unix.EpollCtl(c.ep, unix.EPOLL_CTL_DEL, rc.fd, nil)
		syscall.Close(rc.fd)
		rc.fd = -1
	}
}

// done makes rc idle again.
func (c *rawClient) done(rc *rawConn) {
	rc.busy, rc.n = false, 0
	c.free = append(c.free, rc)
}

// expire fails the requests older than the timeout.
func (c *rawClient) expire(now time.Time) {
	for _, rc := range c.conns {
		if rc.busy && now.Sub(rc.begin) > c.timeout {
			c.fail(rc, fmt.Errorf("no answer within %v", c.timeout))
		}
	}
}

// abandon counts the requests still waiting or in flight as errors.
func (c *rawClient) abandon() {
	for _, rc := range c.conns {
		if rc.busy {
			c.fail(rc, errors.New("run ended before the answer"))
		}
	}
	c.r.errs += len(c.backlog)
	c.backlog = c.backlog[:0]
}

// readable reads what rc's socket has and, once the whole response is in,
// records its times.
func (c *rawClient) readable(rc *rawConn) {
	if rc.fd < 0 {
		return
	}
	if rc.n == len(rc.buf) {
		if len(rc.buf) >= 1<<20 {
			c.fail(rc, errors.New("response over 1 MiB"))
			return
		}
		rc.buf = append(rc.buf, make([]byte, len(rc.buf))...)
	}
	k, err := syscall.Read(rc.fd, rc.buf[rc.n:])
	if errors.Is(err, syscall.EAGAIN) {
		return
	}
	if err != nil || k == 0 {
		if !rc.busy {
			// The server closed an idle connection: dial again when used.
			c.drop(rc)
			return
		}
		if err == nil {
			err = errors.New("connection closed before the whole response")
		}
		c.fail(rc, err)
		return
	}
	if !rc.busy {
		c.count(fmt.Errorf("%d bytes from the server with no request out", k))
		c.drop(rc)
		return
	}
	rc.n += k
	size, keep, err := responseSize(rc.buf[:rc.n])
	switch {
	case err != nil:
		c.fail(rc, err)
		return
	case size < 0 || rc.n < size:
		return // more to come
	case rc.n > size:
		c.fail(rc, fmt.Errorf("%d bytes after the response", rc.n-size))
		return
	}
	end := time.Now()
	c.r.lat = append(c.r.lat, end.Sub(rc.sched))
	c.r.svc = append(c.r.svc, end.Sub(rc.begin))
	c.r.lag = append(c.r.lag, rc.begin.Sub(rc.sched))
	if !keep {
		c.drop(rc)
	}
	c.done(rc)
}

// responseSize returns the length of the response that b begins with,
// head and body, or -1 while its head is not all in; keep is false when
// the server closes the connection after it. A response that is not a 200
// with a Content-Length (the raw client reads no other framing) is an error.
func responseSize(b []byte) (size int, keep bool, err error) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return -1, true, nil
	}
	head := b[:end]
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	proto, status, _ := bytes.Cut(line, []byte(" "))
	if !bytes.HasPrefix(proto, []byte("HTTP/1.")) {
		return 0, false, fmt.Errorf("not an HTTP/1 response: %q", line)
	}
	if !bytes.HasPrefix(status, []byte("200 ")) && !bytes.Equal(status, []byte("200")) {
		return 0, false, fmt.Errorf("status %s", status)
	}
	keep = !bytes.Equal(proto, []byte("HTTP/1.0"))
	length := -1
	for len(rest) > 0 {
		var field []byte
		field, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, _ := bytes.Cut(field, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			v, ok := digits(value)
			if !ok {
				return 0, false, fmt.Errorf("bad Content-Length %q", value)
			}
			length = v
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return 0, false, errors.New("a chunked response: the raw client reads only Content-Length framing (use -client nethttp)")
		case bytes.EqualFold(name, []byte("Connection")):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				switch {
				case bytes.EqualFold(bytes.TrimSpace(tok), []byte("close")):
					keep = false
				case bytes.EqualFold(bytes.TrimSpace(tok), []byte("keep-alive")):
					keep = true
				}
			}
		}
	}
	if length < 0 {
		return 0, false, errors.New("a response without Content-Length: the raw client reads only that framing (use -client nethttp)")
	}
	return end + 4 + length, keep, nil
}

// digits parses a Content-Length value without allocating.
func digits(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 12 {
		return 0, false
	}
	v := 0
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		v = v*10 + int(d-'0')
	}
	return v, true
}
