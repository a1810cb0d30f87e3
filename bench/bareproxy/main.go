// Command bareproxy is the floor for a proxy written in Go, used by
// bench/proxy.sh as the targets "bare", "bare-epoll" and "bare-coro". It does no routing,
// no header rewriting, no metrics and no timeouts, so what it costs is what
// the Go runtime and the kernel cost to move a request and its answer
// through a process. Every client connection has a backend connection of
// its own.
//
// With -mode goroutines (the default) it has one goroutine per client
// connection and uses net.Conn reads and writes, as banyan does. With -mode
// epoll (Linux) it has one event loop per CPU instead, on raw system calls,
// as nginx has one worker per CPU: that shows what leaving the Go runtime's
// scheduler and poller would be worth. With -mode coro (Linux 6.1) it has
// one internal/uring loop per CPU, and relay's straight-line code runs as a
// coroutine a connection whose reads and writes are queued on the loop's
// io_uring: that shows what banyan's fast path would be worth on it.
//
// It speaks only what bench/proxy.sh sends it: GETs without a body, one at
// a time (bytes after a request's head, or after an answer, are dropped, so
// a pipelining client would hang), whose answers carry a Content-Length.
// Anything else ends the connection. It is a measuring stick, not a proxy to
// put in front of anything.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
)

// maxHead bounds a request or answer head; both are a few hundred bytes here.
const maxHead = 16 << 10

func main() {
	listen := flag.String("listen", "127.0.0.1:18082", "address to serve on")
	backend := flag.String("backend", "127.0.0.1:18081", "backend address")
	mode := flag.String("mode", "goroutines", "goroutines (one per connection), epoll (one event loop per CPU, Linux) or coro (one io_uring loop per CPU, a coroutine a connection, Linux 6.1)")
	flag.Parse()
	fmt.Fprintf(os.Stderr, "bareproxy: %s -> %s, %s\n", *listen, *backend, *mode)
	switch *mode {
	case "goroutines":
	case "epoll":
		log.Fatalf("bareproxy: %v", serveEpoll(*listen, *backend))
	case "coro":
		log.Fatalf("bareproxy: %v", serveCoro(*listen, *backend))
	default:
		log.Fatalf("bareproxy: unknown -mode %q (want goroutines, epoll or coro)", *mode)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("bareproxy: %v", err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatalf("bareproxy: %v", err)
		}
		go relay(c, *backend)
	}
}

// relay carries the requests of client connection c to the backend, one at
// a time, and their answers back.
func relay(c net.Conn, backend string) {
	defer c.Close()
	up, err := net.Dial("tcp", backend)
	if err != nil {
		log.Printf("bareproxy: %v", err)
		return
	}
	defer up.Close()
	req := make([]byte, maxHead)
	resp := make([]byte, maxHead)
	for {
		n, err := readHead(c, req)
		if err != nil {
			return
		}
		if _, err := up.Write(req[:n]); err != nil {
			return
		}
		n, err = readHead(up, resp)
		if err != nil {
			return
		}
		size, err := answerSize(resp[:n])
		if err != nil {
			log.Printf("bareproxy: answer not handled: %v", err)
			return
		}
		if n < size {
			if _, err := io.ReadFull(up, resp[n:size]); err != nil {
				return
			}
		}
		if _, err := c.Write(resp[:size]); err != nil {
			return
		}
	}
}

// readHead reads from c into buf until it holds a whole head; it returns
// how many bytes it read.
func readHead(c net.Conn, buf []byte) (int, error) {
	n := 0
	for {
		m, err := c.Read(buf[n:])
		if err != nil {
			return 0, err
		}
		n += m
		if headEnd(buf[:n]) >= 0 {
			return n, nil
		}
		if n == len(buf) {
			return 0, errors.New("head too large")
		}
	}
}

// headEnd returns where the head at the start of b ends, or -1 when it has
// not all come.
func headEnd(b []byte) int {
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		return i + 4
	}
	return -1
}

// answerSize returns the size of the answer, head and body, at the start of
// b once its head is whole, and 0 before that. An answer larger than
// maxHead bytes, or without a Content-Length, is an error.
func answerSize(b []byte) (int, error) {
	end := headEnd(b)
	if end < 0 {
		return 0, nil
	}
	length, err := contentLength(b[:end])
	if err != nil {
		return 0, err
	}
	if end+length > maxHead {
		return 0, fmt.Errorf("head and body larger than %d bytes", maxHead)
	}
	return end + length, nil
}

// contentLength finds the Content-Length of an answer head.
func contentLength(head []byte) (int, error) {
	for _, line := range bytes.Split(head, []byte("\r\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(name, []byte("Content-Length")) {
			n, err := strconv.Atoi(string(bytes.TrimSpace(value)))
			if err == nil && n < 0 {
				err = errors.New("negative Content-Length")
			}
			return n, err
		}
	}
	return 0, errors.New("no Content-Length")
}
