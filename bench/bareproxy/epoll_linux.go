//go:build linux

package main

import (
	"fmt"
	"net"
	"runtime"
	"syscall"
	"unsafe"
)

// pair is one client connection and the backend connection of its own.
type pair struct {
	client, up int
	req        []byte // the request head being read
	resp       []byte // the answer being read
}

// serveEpoll runs one event loop per CPU, each on a locked thread with its
// own epoll set and its own listening socket on addr (SO_REUSEPORT lets the
// kernel spread the connections), as nginx runs one worker per CPU. Every
// socket is non-blocking and level-triggered, so each readiness is one read.
// Reads and writes are raw system calls; the wait goes through
// syscall.EpollWait, so the scheduler sees one syscall a wait, not one a
// read. A failing accept (out of file descriptors) would spin the loop: the
// benchmark opens 64 connections.
func serveEpoll(addr, backend string) error { return perCPU(addr, backend, eventLoop) }

// perCPU runs serve once per CPU, each with a listening socket of its own
// on addr, until one fails.
func perCPU(addr, backend string, serve func(ln int, backend *net.TCPAddr) error) error {
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
		go func() { errs <- serve(ln, ba) }()
	}
	return <-errs
}

func sockaddr(a *net.TCPAddr) *syscall.SockaddrInet4 {
	sa := &syscall.SockaddrInet4{Port: a.Port}
	copy(sa.Addr[:], a.IP.To4())
	return sa
}

func listenReusePort(a *net.TCPAddr) (int, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	const soReusePort = 15 // SO_REUSEPORT on Linux
	for _, opt := range []int{syscall.SO_REUSEADDR, soReusePort} {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, opt, 1); err != nil {
			syscall.Close(fd)
			return -1, err
		}
	}
	if err := syscall.Bind(fd, sockaddr(a)); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("bind %s: %w", a, err)
	}
	if err := syscall.Listen(fd, 4096); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// dial connects to the backend; on loopback the connect is done when it
// returns, so the socket is made non-blocking only after.
func dial(a *net.TCPAddr) (int, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := syscall.Connect(fd, sockaddr(a)); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

func rawRead(fd int, b []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return int(n), e
}

// rawWrite sends all of b or fails: the heads and bodies here are far
// smaller than a socket's buffer.
func rawWrite(fd int, b []byte) bool {
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return e == 0 && int(n) == len(b)
}

func eventLoop(ln int, backend *net.TCPAddr) error {
	runtime.LockOSThread()
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	watch := func(fd int) error {
		return syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)})
	}
	if err := watch(ln); err != nil {
		return err
	}
	byFD := map[int]*pair{}
	drop := func(p *pair) {
		delete(byFD, p.client)
		delete(byFD, p.up)
		syscall.Close(p.client) // closing takes a socket out of the epoll set
		syscall.Close(p.up)
	}
	events := make([]syscall.EpollEvent, 256)
	buf := make([]byte, maxHead)
	for {
		n, err := syscall.EpollWait(ep, events, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == ln {
				c, _, err := syscall.Accept4(ln, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
				if err != nil {
					continue
				}
				up, err := dial(backend)
				if err != nil {
					syscall.Close(c)
					continue
				}
				_ = syscall.SetsockoptInt(c, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
				p := &pair{client: c, up: up}
				byFD[c], byFD[up] = p, p
				if watch(c) != nil || watch(up) != nil {
					drop(p)
				}
				continue
			}
			p := byFD[fd]
			if p == nil {
				continue
			}
			m, e := rawRead(fd, buf)
			if e == syscall.EAGAIN {
				continue
			}
			if e != 0 || m == 0 {
				drop(p)
				continue
			}
			if fd == p.client {
				if len(p.req)+m > maxHead {
					drop(p)
					continue
				}
				p.req = append(p.req, buf[:m]...)
				if headEnd(p.req) >= 0 {
					if !rawWrite(p.up, p.req) {
						drop(p)
						continue
					}
					p.req = p.req[:0]
				}
				continue
			}
			p.resp = append(p.resp, buf[:m]...)
			size, err := answerSize(p.resp)
			if err != nil {
				drop(p)
				continue
			}
			if size == 0 || len(p.resp) < size {
				continue
			}
			if !rawWrite(p.client, p.resp[:size]) {
				drop(p)
				continue
			}
			p.resp = p.resp[:0]
		}
	}
}
