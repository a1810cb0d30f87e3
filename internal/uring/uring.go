// Package uring runs straight-line I/O code on io_uring: a Loop owns one
// ring on one locked OS thread and runs tasks on it, each a coroutine
// whose socket reads and writes are queued on the ring. One io_uring_enter
// call a turn hands the kernel every read and write queued and collects
// every completion, where an epoll loop, or Go's own poller, makes one
// system call a read or write and more to wait.
//
// It exists for the proxy's fast path (ADR 0006): on the machines banyan
// is benchmarked on a system call costs about 1.2 µs, and that is where
// the proxy's time goes. It needs Linux 6.1 (SINGLE_ISSUER and
// DEFER_TASKRUN) on amd64 or arm64; elsewhere Run fails with
// ErrUnsupported.
package uring

import "errors"

// ErrClosed is returned by Go once Close was called.
var ErrClosed = errors.New("uring: loop closed")

// ErrUnsupported is returned by Run where there is no io_uring.
var ErrUnsupported = errors.New("uring: io_uring needs Linux on amd64 or arm64")
