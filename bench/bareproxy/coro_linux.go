//go:build linux

package main

import (
	"iter"
	"net"
	"runtime"
	"sync/atomic"
	"syscall"
)

// The coroutine mode: the io_uring event loops of serveURing, but each
// client connection is served by straight-line code, as in relay, that
// runs as a coroutine (iter.Pull) on the loop's thread. A read queues a
// receive on the ring and switches back to the loop; the loop switches to
// the coroutine again when the receive completes. A switch is a direct
// hand-over of the thread (runtime.coroswitch), not a trip through the
// scheduler, so this shows what the io_uring loop costs when the code
// that uses it keeps the shape of a goroutine per connection.
//
// A write is always queued together with the read that follows it (the
// request with the read of its answer, the answer with the read of the
// next request), linked so that the read is made only once the write is
// done: one switch for the two.

const sqeIOLink = 1 << 2 // IOSQE_IO_LINK

const (
	coAccept = iota
	coLinkedSend
	coAwaited
)

type coRelay struct {
	r       *uring
	idx     int
	yield   func(struct{}) bool
	res     int32 // the result of the operation the coroutine waits for
	sendRes int32 // the result of the send linked before it
}

func (p *coRelay) ud(ev uint64) uint64 { return uint64(p.idx)<<evBits | ev }

// wait switches back to the loop until the awaited operation completes.
func (p *coRelay) wait() bool { return p.yield(struct{}{}) }

func (p *coRelay) recv(fd int, b []byte) int {
	if p.r.queue(opRecv, fd, b, 0, p.ud(coAwaited)) != nil || !p.wait() {
		return -1
	}
	return int(p.res)
}

// sendRecv sends sb on sfd and then reads into rb from rfd; it returns
// what each returned.
func (p *coRelay) sendRecv(sfd int, sb []byte, rfd int, rb []byte) (sent, got int) {
	// Both in one submission: a link does not reach into the next one.
	if p.r.reserve(2) != nil || p.r.queue(opSend, sfd, sb, msgNoSignal, p.ud(coLinkedSend)) != nil {
		return -1, -1
	}
	p.r.sqes[(p.r.tail-1)&p.r.sqMask].flags = sqeIOLink
	if p.r.queue(opRecv, rfd, rb, 0, p.ud(coAwaited)) != nil || !p.wait() {
		return -1, -1
	}
	return int(p.sendRes), int(p.res)
}

// readMore reads into buf[n:] until done(buf[:n]) says the data is whole;
// it returns the new n, or -1.
func (p *coRelay) readMore(fd int, buf []byte, n int, whole func([]byte) (bool, error)) int {
	for {
		ok, err := whole(buf[:n])
		switch {
		case err != nil:
			return -1
		case ok:
			return n
		case n == len(buf):
			return -1
		}
		m := p.recv(fd, buf[n:])
		if m <= 0 {
			return -1
		}
		n += m
	}
}

func headWhole(b []byte) (bool, error) { return headEnd(b) >= 0, nil }

// run is relay for one client connection, on the ring.
func (p *coRelay) run(client int, backend *net.TCPAddr) {
	defer syscall.Close(client)
	up, err := dial(backend)
	if err != nil {
		return
	}
	defer syscall.Close(up)
	req, resp := make([]byte, maxHead), make([]byte, maxHead)
	n := p.readMore(client, req, 0, headWhole)
	var size int
	answerWhole := func(b []byte) (bool, error) {
		s, err := answerSize(b)
		size = s
		return s > 0 && len(b) >= s, err
	}
	for n > 0 {
		sent, m := p.sendRecv(up, req[:n], up, resp)
		if sent != n || m <= 0 {
			return
		}
		if p.readMore(up, resp, m, answerWhole) < 0 {
			return
		}
		sent, m = p.sendRecv(client, resp[:size], client, req)
		if sent != size || m <= 0 {
			return
		}
		n = p.readMore(client, req, m, headWhole)
	}
}

func serveCoro(addr, backend string) error {
	la, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		return err
	}
	ba, err := net.ResolveTCPAddr("tcp4", backend)
	if err != nil {
		return err
	}
	errs := make(chan error)
	for range runtime.NumCPU() {
		ln, err := listenReusePort(la)
		if err != nil {
			return err
		}
		go func() { errs <- coroLoop(ln, ba) }()
	}
	return <-errs
}

func coroLoop(ln int, backend *net.TCPAddr) error {
	runtime.LockOSThread() // the coroutines run on this thread too
	r, err := newURing(1024)
	if err != nil {
		return err
	}
	type slot struct {
		p      *coRelay
		resume func() (struct{}, bool)
	}
	var slots []*slot // a finished connection's slot is nil
	if err := r.queue(opAccept, ln, nil, syscall.SOCK_CLOEXEC, coAccept); err != nil {
		return err
	}
	for {
		if err := r.enter(true); err != nil {
			return err
		}
		head := *r.cqHead
		for tail := atomic.LoadUint32(r.cqTail); head != tail; head++ {
			c := r.cqes[head&r.cqMask]
			ev, i := c.userData&(1<<evBits-1), int(c.userData>>evBits)
			var s *slot
			switch ev {
			case coAccept:
				if err := r.queue(opAccept, ln, nil, syscall.SOCK_CLOEXEC, coAccept); err != nil {
					return err
				}
				if c.res < 0 {
					continue
				}
				client := int(c.res)
				_ = syscall.SetsockoptInt(client, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
				p := &coRelay{r: r, idx: len(slots)}
				s = &slot{p: p}
				slots = append(slots, s)
				s.resume, _ = iter.Pull(func(yield func(struct{}) bool) {
					p.yield = yield
					p.run(client, backend)
				})
			case coLinkedSend:
				if s := slots[i]; s != nil {
					s.p.sendRes = c.res
				}
				continue
			default:
				if s = slots[i]; s == nil {
					continue
				}
				s.p.res = c.res
			}
			if _, more := s.resume(); !more {
				slots[s.p.idx] = nil
			}
		}
		atomic.StoreUint32(r.cqHead, head)
	}
}
