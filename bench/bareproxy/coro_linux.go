//go:build linux

package main

import (
	"net"
	"syscall"
	"time"

	"github.com/banyanhq/banyan/internal/uring"
)

// serveCoro is the coroutine mode: one internal/uring loop per CPU, each
// with its own listening socket as in serveEpoll, and each client
// connection served by straight-line code, as relay's, that runs as a task
// of its loop. A read queues a receive on the ring and switches back to
// the loop; a write is queued together with the read that follows it (the
// request with the read of its answer, the answer with the read of the
// next request). One io_uring_enter a turn of the loop sends every read
// and write queued.
func serveCoro(addr, backend string) error {
	return perCPU(addr, backend, func(ln int, ba *net.TCPAddr) error {
		l := uring.New(1024)
		if err := l.Go(func(t *uring.Task) { acceptLoop(t, l, ln, ba) }); err != nil {
			return err
		}
		return l.Run()
	})
}

// acceptLoop waits for connections on ln (made blocking, so the ring's
// receive-style wait is not needed: accept4 is handed to Block) and starts
// a task for each.
func acceptLoop(t *uring.Task, l *uring.Loop, ln int, backend *net.TCPAddr) {
	if err := syscall.SetNonblock(ln, false); err != nil {
		return
	}
	for {
		var c int
		var err error
		t.Block(func() { c, _, err = syscall.Accept4(ln, syscall.SOCK_CLOEXEC) })
		if err != nil {
			continue
		}
		_ = syscall.SetsockoptInt(c, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		if l.Go(func(t *uring.Task) { relayOnRing(t, c, backend) }) != nil {
			syscall.Close(c)
			return
		}
	}
}

// relayOnRing is relay for one client connection, on the ring.
func relayOnRing(t *uring.Task, client int, backend *net.TCPAddr) {
	defer syscall.Close(client)
	up, err := dial(backend)
	if err != nil {
		return
	}
	defer syscall.Close(up)
	req, resp := make([]byte, maxHead), make([]byte, maxHead)
	var none time.Time
	n := readWhole(t, client, req, 0, headWhole)
	var size int
	answerWhole := func(b []byte) (bool, error) {
		s, err := answerSize(b)
		size = s
		return s > 0 && len(b) >= s, err
	}
	for n > 0 {
		_, serr, m, rerr := t.SendRecv(up, req[:n], none, up, resp, none)
		if serr != nil || rerr != nil || m == 0 {
			return
		}
		if readWhole(t, up, resp, m, answerWhole) < 0 {
			return
		}
		_, serr, m, rerr = t.SendRecv(client, resp[:size], none, client, req, none)
		if serr != nil || rerr != nil || m == 0 {
			return
		}
		n = readWhole(t, client, req, m, headWhole)
	}
}

func headWhole(b []byte) (bool, error) { return headEnd(b) >= 0, nil }

// readWhole reads into buf[n:] until whole(buf[:n]) says the data is
// whole; it returns the new n, or -1.
func readWhole(t *uring.Task, fd int, buf []byte, n int, whole func([]byte) (bool, error)) int {
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
		m, err := t.Recv(fd, buf[n:], time.Time{})
		if err != nil || m == 0 {
			return -1
		}
		n += m
	}
}
