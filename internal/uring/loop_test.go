//go:build linux && (amd64 || arm64)

package uring_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/banyanhq/banyan/internal/uring"
)

// needURing skips the test where the kernel refuses io_uring (disabled
// by kernel.io_uring_disabled, or by a container's seccomp profile),
// except under CI=true, where that fails it: CI's machine has io_uring.
func needURing(t testing.TB) {
	t.Helper()
	l := uring.New(8)
	l.Close()
	err := l.Run() // sets the ring up, then ends: Close came first
	switch {
	case err == nil:
	case os.Getenv("CI") != "true" && (errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EPERM)):
		t.Skipf("io_uring is not available here (%v); CI=true makes this a failure", err)
	default:
		t.Fatalf("io_uring: %v", err)
	}
}

// startLoop runs a loop until the test ends.
func startLoop(t testing.TB) *uring.Loop {
	t.Helper()
	needURing(t)
	l := uring.New(64)
	done := make(chan error, 1)
	go func() { done <- l.Run() }()
	t.Cleanup(func() {
		l.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return within 5 s of Close")
		}
	})
	// A task that ends at once proves the loop runs.
	ran := make(chan struct{})
	if err := l.Go(func(*uring.Task) { close(ran) }); err != nil {
		t.Fatalf("Go: %v", err)
	}
	select {
	case <-ran:
	case err := <-done:
		t.Fatalf("the loop did not start: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the loop did not run a task within 5 s")
	}
	return l
}

// pipe returns the two ends of a loopback TCP connection and the file
// descriptor of the first, which stays the net.Conn's.
func pipe(t testing.TB) (net.Conn, int, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		t.Fatal(err)
	}
	return c, fd, peer
}

// echo answers each read with what it read until the peer ends the stream.
func echo(fd int, errs chan<- error) func(*uring.Task) {
	return func(t *uring.Task) {
		buf := make([]byte, 512)
		for {
			n, err := t.Recv(fd, buf, time.Time{})
			if err != nil || n == 0 {
				errs <- err
				return
			}
			if m, err := t.Send(fd, buf[:n], time.Time{}); err != nil || m != n {
				errs <- fmt.Errorf("send: %d of %d: %v", m, n, err)
				return
			}
		}
	}
}

func TestLoop_ManyTasksEchoInterleaved(t *testing.T) {
	l := startLoop(t)
	const conns, rounds = 40, 200
	errs := make(chan error, conns)
	peers := make([]net.Conn, conns)
	for i := range peers {
		_, fd, peer := pipe(t)
		peers[i] = peer
		if err := l.Go(echo(fd, errs)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	clientErrs := make(chan error, conns)
	for i, peer := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			peer.SetDeadline(time.Now().Add(10 * time.Second))
			got := make([]byte, 64)
			for r := range rounds {
				msg := fmt.Appendf(nil, "conn %d round %d", i, r)
				if _, err := peer.Write(msg); err != nil {
					clientErrs <- err
					return
				}
				if _, err := io.ReadFull(peer, got[:len(msg)]); err != nil {
					clientErrs <- err
					return
				}
				if !bytes.Equal(got[:len(msg)], msg) {
					clientErrs <- fmt.Errorf("conn %d round %d: got %q", i, r, got[:len(msg)])
					return
				}
			}
			peer.(*net.TCPConn).CloseWrite()
		}()
	}
	wg.Wait()
	close(clientErrs)
	for err := range clientErrs {
		t.Error(err)
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Errorf("task: %v", err)
		}
	}
}

func TestTask_RecvDeadlineThenData(t *testing.T) {
	l := startLoop(t)
	_, fd, peer := pipe(t)
	type result struct {
		n       int
		err     error
		elapsed time.Duration
	}
	got := make(chan result, 3)
	sent := make(chan struct{})
	if err := l.Go(func(task *uring.Task) {
		buf := make([]byte, 16)
		start := time.Now()
		n, err := task.Recv(fd, buf, start.Add(50*time.Millisecond))
		got <- result{n, err, time.Since(start)}
		// A deadline already past fails without waiting.
		n, err = task.Recv(fd, buf, time.Now().Add(-time.Second))
		got <- result{n, err, 0}
		<-sent // a test of the loop: blocking here is fine, the loop has nothing else
		n, err = task.Recv(fd, buf, time.Now().Add(5*time.Second))
		got <- result{n, err, 0}
	}); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if !errors.Is(r.err, os.ErrDeadlineExceeded) || r.n != 0 {
		t.Fatalf("Recv with nothing to read: %d, %v; want os.ErrDeadlineExceeded", r.n, r.err)
	}
	if r.elapsed < 45*time.Millisecond || r.elapsed > 2*time.Second {
		t.Errorf("the 50 ms deadline fired after %v", r.elapsed)
	}
	if r = <-got; !errors.Is(r.err, os.ErrDeadlineExceeded) {
		t.Fatalf("Recv past its deadline: %d, %v", r.n, r.err)
	}
	if _, err := peer.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	close(sent)
	if r = <-got; r.err != nil || r.n != 5 {
		t.Fatalf("Recv after a timed-out one: %d, %v; want the 5 bytes sent", r.n, r.err)
	}
}

func TestTask_SendRecv(t *testing.T) {
	l := startLoop(t)
	_, fd, peer := pipe(t)
	go func() { // the peer answers each line with it upper-cased
		buf := make([]byte, 64)
		for {
			n, err := peer.Read(buf)
			if err != nil {
				return
			}
			peer.Write(bytes.ToUpper(buf[:n]))
		}
	}()
	type result struct {
		sent, got  int
		serr, rerr error
		answer     string
	}
	res := make(chan result, 1)
	if err := l.Go(func(task *uring.Task) {
		buf := make([]byte, 64)
		dl := time.Now().Add(5 * time.Second)
		sent, serr, got, rerr := task.SendRecv(fd, []byte("ping"), dl, fd, buf, dl)
		res <- result{sent, got, serr, rerr, string(buf[:max(got, 0)])}
	}); err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.serr != nil || r.rerr != nil || r.sent != 4 || r.answer != "PING" {
		t.Fatalf("SendRecv: sent %d (%v), got %q (%v); want 4 and PING", r.sent, r.serr, r.answer, r.rerr)
	}
}

func TestTask_SendRecvSendFails(t *testing.T) {
	l := startLoop(t)
	c, fd, peer := pipe(t)
	// The peer resets the connection; the next send on it fails.
	peer.(*net.TCPConn).SetLinger(0)
	peer.Close()
	time.Sleep(50 * time.Millisecond) // the RST is delivered on loopback
	_ = c
	res := make(chan [2]error, 1)
	if err := l.Go(func(task *uring.Task) {
		buf := make([]byte, 8)
		_, serr, _, rerr := task.SendRecv(fd, []byte("x"), time.Time{}, fd, buf, time.Time{})
		res <- [2]error{serr, rerr}
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-res:
		if r[0] == nil || !errors.Is(r[0], syscall.ECONNRESET) && !errors.Is(r[0], syscall.EPIPE) {
			t.Fatalf("send on a reset connection: %v; want ECONNRESET or EPIPE", r[0])
		}
		if r[1] != r[0] {
			t.Errorf("the receive's error is %v; want the send's, %v", r[1], r[0])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SendRecv on a reset connection did not return within 5 s")
	}
}

func TestTask_RecvEndOfStream(t *testing.T) {
	l := startLoop(t)
	_, fd, peer := pipe(t)
	peer.Write([]byte("last"))
	peer.(*net.TCPConn).CloseWrite()
	res := make(chan string, 1)
	if err := l.Go(func(task *uring.Task) {
		buf := make([]byte, 16)
		var all []byte
		for {
			n, err := task.Recv(fd, buf, time.Now().Add(5*time.Second))
			if err != nil {
				res <- "error: " + err.Error()
				return
			}
			if n == 0 {
				res <- string(all)
				return
			}
			all = append(all, buf[:n]...)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if got := <-res; got != "last" {
		t.Fatalf("read to the end: %q; want %q and then 0, nil", got, "last")
	}
}

func TestTask_BlockLetsOtherTasksRun(t *testing.T) {
	l := startLoop(t)
	_, fd, peer := pipe(t)
	errs := make(chan error, 1)
	release := make(chan struct{})
	blocked := make(chan struct{})
	unblocked := make(chan struct{})
	if err := l.Go(func(task *uring.Task) {
		task.Block(func() {
			close(blocked)
			<-release
		})
		close(unblocked)
	}); err != nil {
		t.Fatal(err)
	}
	<-blocked
	// While that task waits in Block, another one echoes.
	if err := l.Go(echo(fd, errs)); err != nil {
		t.Fatal(err)
	}
	peer.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4)
	if _, err := peer.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(peer, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo while another task blocks: %q, %v", buf, err)
	}
	select {
	case <-unblocked:
		t.Fatal("Block returned before its function did")
	default:
	}
	close(release)
	select {
	case <-unblocked:
	case <-time.After(5 * time.Second):
		t.Fatal("the task did not go on within 5 s of its Block function returning")
	}
}

func TestLoop_CloseWaitsForTasksAndRefusesNew(t *testing.T) {
	needURing(t)
	l := uring.New(8)
	done := make(chan error, 1)
	go func() { done <- l.Run() }()
	c, fd, _ := pipe(t)
	ended := make(chan error, 1)
	if err := l.Go(func(task *uring.Task) {
		_, err := task.Recv(fd, make([]byte, 8), time.Time{})
		ended <- err
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // the receive is queued
	l.Close()
	if err := l.Go(func(*uring.Task) {}); !errors.Is(err, uring.ErrClosed) {
		t.Errorf("Go after Close: %v; want ErrClosed", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) while a task was still waiting", err)
	case <-time.After(100 * time.Millisecond):
	}
	// Ending the task's socket ends the task, and with it the loop.
	c.(*net.TCPConn).CloseRead()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the task's receive did not end within 5 s of its socket being shut down")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5 s of its last task ending")
	}
}

func TestTask_SendCutShortByItsDeadline(t *testing.T) {
	l := startLoop(t)
	_, fd, _ := pipe(t) // the peer never reads
	type result struct {
		n   int
		err error
	}
	res := make(chan result, 1)
	big := make([]byte, 64<<20) // far more than the two socket buffers hold
	if err := l.Go(func(task *uring.Task) {
		n, err := task.Send(fd, big, time.Now().Add(100*time.Millisecond))
		res <- result{n, err}
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-res:
		if !errors.Is(r.err, os.ErrDeadlineExceeded) {
			t.Fatalf("Send of %d bytes to a peer that does not read: %d sent, %v; want os.ErrDeadlineExceeded", len(big), r.n, r.err)
		}
		if r.n <= 0 || r.n >= len(big) {
			t.Errorf("%d bytes reported sent; want some, not all", r.n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Send with a 100 ms deadline did not return within 5 s")
	}
}

// sendRecvResult is what a SendRecv returned, and how long it took.
type sendRecvResult struct {
	sent, n    int
	serr, rerr error
	elapsed    time.Duration
}

// goSendRecv starts a task that sends sb on fd and reads the answer, with
// deadlines sdl and rdl after its start (0: none), and returns where its
// result will come.
func goSendRecv(t testing.TB, l *uring.Loop, fd int, sb []byte, sdl, rdl time.Duration) <-chan sendRecvResult {
	t.Helper()
	res := make(chan sendRecvResult, 1)
	after := func(start time.Time, d time.Duration) time.Time {
		if d == 0 {
			return time.Time{}
		}
		return start.Add(d)
	}
	if err := l.Go(func(task *uring.Task) {
		start := time.Now()
		sent, serr, n, rerr := task.SendRecv(fd, sb, after(start, sdl), fd, make([]byte, 8), after(start, rdl))
		res <- sendRecvResult{sent, n, serr, rerr, time.Since(start)}
	}); err != nil {
		t.Fatal(err)
	}
	return res
}

func TestTask_SendRecvAnswerDeadline(t *testing.T) {
	l := startLoop(t)
	_, fd, peer := pipe(t)
	got := make(chan []byte, 1)
	go func() { // the peer takes the request and never answers
		buf := make([]byte, 16)
		n, _ := peer.Read(buf)
		got <- buf[:n]
	}()
	r := <-goSendRecv(t, l, fd, []byte("req"), time.Second, 100*time.Millisecond)
	if r.serr != nil || r.sent != 3 {
		t.Fatalf("the send: %d, %v; want 3, nil", r.sent, r.serr)
	}
	if !errors.Is(r.rerr, os.ErrDeadlineExceeded) || r.n != 0 {
		t.Fatalf("the receive: %d, %v; want os.ErrDeadlineExceeded", r.n, r.rerr)
	}
	if r.elapsed < 90*time.Millisecond || r.elapsed > 2*time.Second {
		t.Errorf("the 100 ms answer deadline fired after %v", r.elapsed)
	}
	if req := <-got; string(req) != "req" {
		t.Errorf("the peer read %q; want %q", req, "req")
	}
}

// A ring of 8 entries under 20 tasks that each queue four at once: the
// queue is handed to the kernel as it fills, and no link is split.
func TestLoop_SmallRingManyTasks(t *testing.T) {
	needURing(t)
	l := uring.New(1) // raised to the minimum, 8
	done := make(chan error, 1)
	go func() { done <- l.Run() }()
	const tasks, rounds = 20, 50
	errs := make(chan error, tasks)
	for i := range tasks {
		_, fd, peer := pipe(t)
		go func() { // the peer echoes
			buf := make([]byte, 64)
			for {
				n, err := peer.Read(buf)
				if err != nil {
					return
				}
				peer.Write(buf[:n])
			}
		}()
		if err := l.Go(func(task *uring.Task) {
			buf := make([]byte, 64)
			for r := range rounds {
				msg := fmt.Appendf(nil, "task %d round %d", i, r)
				dl := time.Now().Add(5 * time.Second)
				sent, serr, n, rerr := task.SendRecv(fd, msg, dl, fd, buf, dl)
				if serr != nil || rerr != nil || sent != len(msg) {
					errs <- fmt.Errorf("task %d round %d: sent %d (%v), read %d (%v)", i, r, sent, serr, n, rerr)
					return
				}
				for n < len(msg) { // the echo may come in pieces
					m, err := task.Recv(fd, buf[n:], dl)
					if err != nil || m == 0 {
						errs <- fmt.Errorf("task %d round %d: read %d, then %v", i, r, n, err)
						return
					}
					n += m
				}
				if !bytes.Equal(buf[:n], msg) {
					errs <- fmt.Errorf("task %d round %d: got %q", i, r, buf[:n])
					return
				}
			}
			errs <- nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for range tasks {
		select {
		case err := <-errs:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the tasks did not end within 20 s")
		}
	}
	l.Close()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// Every Go that returns nil runs its function, even when Close comes at
// the same time and the loop ends.
func TestLoop_GoRacingCloseLosesNothing(t *testing.T) {
	needURing(t)
	for range 200 {
		l := uring.New(8)
		done := make(chan error, 1)
		go func() { done <- l.Run() }()
		var mu sync.Mutex
		accepted, ran := 0, 0
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 20 {
					err := l.Go(func(*uring.Task) {
						mu.Lock()
						ran++
						mu.Unlock()
					})
					if err == nil {
						mu.Lock()
						accepted++
						mu.Unlock()
					} else if !errors.Is(err, uring.ErrClosed) {
						t.Errorf("Go: %v", err)
					}
				}
			}()
		}
		l.Close()
		wg.Wait()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		mu.Lock()
		if ran != accepted {
			t.Fatalf("Go accepted %d tasks and %d ran", accepted, ran)
		}
		mu.Unlock()
	}
}

// The receive of a SendRecv whose deadline passes while the linked send
// is still going (the peer reads slowly) must still end at its deadline
// once the send completes: a cancel cannot reach a linked receive the
// kernel has not started, so the loop arms its deadline only then.
func TestLoop_SendRecvDeadlinePassesDuringTheSend(t *testing.T) {
	l := startLoop(t)
	_, fd, peer := pipe(t)
	big := make([]byte, 32<<20) // more than the socket buffers hold
	go func() {
		time.Sleep(600 * time.Millisecond) // past the receive's deadline
		_, _ = io.ReadFull(peer, make([]byte, len(big)))
		// and never answers
	}()
	res := goSendRecv(t, l, fd, big, 0, 200*time.Millisecond)
	select {
	case r := <-res:
		if r.serr != nil || !errors.Is(r.rerr, os.ErrDeadlineExceeded) {
			t.Fatalf("sent %d (%v), got %d (%v) after %v; want the receive's os.ErrDeadlineExceeded", r.sent, r.serr, r.n, r.rerr, r.elapsed)
		}
	case <-time.After(4 * time.Second):
		peer.Close() // lets the task end (EOF) so the loop can close
		r := <-res
		t.Fatalf("SendRecv with a 200 ms receive deadline had not returned after 4 s (the send was done at ~0.6 s); "+
			"once the peer closed: sent %d (%v), got %d (%v) after %v", r.sent, r.serr, r.n, r.rerr, r.elapsed)
	}
}

// A Send cut off by a reset after part of it went out: net.Conn's Write
// reports the reset (ECONNRESET/EPIPE, which the proxy's staleConn looks
// for), and so does a Send on the ring, not io.ErrShortWrite.
func TestLoop_SendCutByAReset(t *testing.T) {
	l := startLoop(t)
	_, fd, peer := pipe(t)
	go func() {
		_, _ = io.ReadFull(peer, make([]byte, 1<<20))
		_ = peer.(*net.TCPConn).SetLinger(0)
		peer.Close() // RST
	}()
	type result struct {
		n   int
		err error
	}
	res := make(chan result, 1)
	if err := l.Go(func(task *uring.Task) {
		n, err := task.Send(fd, make([]byte, 64<<20), time.Now().Add(5*time.Second))
		res <- result{n, err}
	}); err != nil {
		t.Fatal(err)
	}
	r := <-res
	t.Logf("Send: n=%d err=%v", r.n, r.err)
	if !errors.Is(r.err, syscall.ECONNRESET) && !errors.Is(r.err, syscall.EPIPE) {
		t.Errorf("Send cut off by a reset: %d, %v; want ECONNRESET or EPIPE as net.Conn gives", r.n, r.err)
	}
}

// A busy loop waits holding its P; the rest of the program must still be
// able to stop the world (a collection) while it sleeps in the kernel,
// and the loop, once it has gone idle, must wait through the scheduler
// again. With a wait that a signal did not end, runtime.GC would hang
// until the next completion.
func TestLoop_HeldPWaitLetsTheWorldStop(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		// The loop holds its P only when another is left.
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	l := startLoop(t)
	_, fd, peer := pipe(t)
	got := make(chan error, 1)
	if err := l.Go(func(task *uring.Task) {
		buf := make([]byte, 16)
		n, err := task.Recv(fd, buf, time.Time{}) // no deadline: nothing bounds the wait
		if err == nil && string(buf[:n]) != "late" {
			err = fmt.Errorf("read %q, want %q", buf[:n], "late")
		}
		got <- err
	}); err != nil {
		t.Fatal(err)
	}
	// The task's start was a completion (the loop's wakeup), so the wait
	// its receive leaves the loop in is made holding the P. That wait lasts
	// only until the runtime preempts the loop at the end of its time
	// slice (10 ms on), which a loaded machine can let pass before this
	// goroutine looks: every 5 ms without it, another completion (a task
	// that ends at once) makes the next wait a held one again.
	deadline := time.Now().Add(5 * time.Second)
	kicked := time.Now()
	for !uring.HeldP(l) {
		if time.Now().After(deadline) {
			t.Fatal("the loop never waited holding its P, with completions coming and a P to spare")
		}
		if time.Since(kicked) > 5*time.Millisecond {
			if err := l.Go(func(*uring.Task) {}); err != nil {
				t.Fatal(err)
			}
			kicked = time.Now()
		}
		time.Sleep(time.Millisecond)
	}
	gc := make(chan struct{})
	go func() { runtime.GC(); close(gc) }()
	select {
	case <-gc:
	case <-time.After(5 * time.Second):
		t.Fatal("runtime.GC did not return within 5 s while the loop waited holding its P")
	}
	for uring.HeldP(l) {
		if time.Now().After(deadline) {
			t.Fatal("the idle loop still waits holding its P after 5 s")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := peer.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("Recv after the collection: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the task's receive did not complete within 5 s of the data")
	}
}
