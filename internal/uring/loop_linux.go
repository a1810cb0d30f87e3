//go:build linux && (amd64 || arm64)

package uring

import (
	"io"
	"iter"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// What a completion is for, in the low byte of its user data; the rest is
// the task's slot.
const (
	kindWake       = iota // the read of the loop's eventfd
	kindFirst             // the send of a SendRecv
	kindLast              // the operation the task waits for
	kindCancel            // the cancel of kindFirst's operation, whose deadline passed
	kindCancelLast        // the same for kindLast's
	kindBits       = 8
)

// Loop runs tasks: straight-line code, each in a coroutine of its own,
// whose reads and writes are queued on one io_uring. A task that reads
// queues the receive and switches back to the loop; the loop switches to
// it again when the receive completes. Each turn of the loop hands the
// kernel everything queued since the last turn and waits for completions
// in one io_uring_enter call, so a loop with many busy connections makes
// far fewer system calls than reads and writes.
//
// Everything a Loop runs, it runs on one locked OS thread, one task at a
// time. A task that blocks in any other way (a mutex held long, a channel,
// a blocking system call) holds up every task of its loop; it must put
// such work in Block. A task must not call runtime.Goexit or change its
// thread's lock (the runtime requires both of a coroutine), nor call its
// Task's methods from inside Block's function; a task that panics takes
// the loop down with it (the panic goes on from Run), so a task recovers
// what it can survive.
type Loop struct {
	entries uint32

	// Set by Run, and used only on the loop's thread.
	r     *ring
	efd   int
	slots []*Task
	free  []uint32
	live  int

	wakeBuf [8]byte // the eventfd's counter, read into by the kernel

	held atomic.Bool // the last wait was made holding the P (for the tests)

	// timers holds the deadlines of the operations in flight, soonest
	// first. The loop keeps them itself rather than link a timeout to
	// each operation: that arms and cancels a kernel timer, and posts a
	// completion more, for every read and write with a deadline, where a
	// heap costs a few comparisons and the wait for completions is
	// simply bounded by the soonest deadline.
	timers timerHeap

	// A timer keeps its deadline as ns since base, on the monotonic
	// clock time.Time carries (read through the vDSO, not a system call).
	base time.Time

	mu      sync.Mutex
	inbox   []func() // run on the loop's thread
	spare   []func()
	woken   bool // an eventfd write is on its way
	closing bool
	ended   bool // Run has returned or is returning: posts are refused
	efdW    int  // the eventfd, for writers on other threads; -1 outside Run
}

// running counts the loops in Run, across the program: a loop holds its
// P while it waits only when GOMAXPROCS leaves a P for everything else.
var running atomic.Int32

// New returns a loop whose ring has room for entries submissions at once
// (at least 8; the queue is handed to the kernel early when it fills).
func New(entries uint32) *Loop { return &Loop{entries: max(entries, 8), efdW: -1} }

// Task is one coroutine of a Loop. Its methods may be called only from
// the task's own function.
type Task struct {
	l       *Loop
	slot    uint32
	fn      func(*Task)
	yield   func(struct{}) bool
	resume  func() (struct{}, bool)
	pending int   // completions still to come before the task runs again
	res     int32 // the result of kindLast
	first   int32 // the result of kindFirst
	// expired tells, per operation slot, that its deadline passed and the
	// loop cancelled it; tm are the slots' deadlines; inFlight, that the
	// slot's operation has not completed. armLast: slot 1's deadline
	// waits for slot 0's operation, which it is linked behind, to end.
	expired  [2]bool
	tm       [2]timer
	inFlight [2]bool
	armLast  bool
	// bufs holds the buffers of the operations in flight. Being kept in a
	// heap object, they are on the heap too: the compiler would otherwise
	// be free to keep a caller's buffer on its goroutine's stack, which
	// moves when it grows, under the kernel's feet.
	bufs [2][]byte
}

// Probe reports whether a Loop can run here: it sets up a small ring and
// closes it again. Its error says why not (ENOSYS: no io_uring; EPERM:
// kernel.io_uring_disabled, or a seccomp filter; EINVAL: a kernel older
// than 6.1).
func Probe() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := newRing(8)
	if err != nil {
		return err
	}
	r.close()
	return nil
}

// Run runs the loop on the calling goroutine, locked to its thread, until
// Close was called and every task has ended. It fails at once, having run
// nothing, when io_uring is not available (Linux 6.1 or later, not
// disabled by kernel.io_uring_disabled).
func (l *Loop) Run() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := newRing(l.entries)
	if err != nil {
		return err
	}
	defer r.close()
	efd, _, e := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC, 0)
	if e != 0 {
		return os.NewSyscallError("eventfd2", e)
	}
	l.r, l.efd = r, int(efd)
	l.base = time.Now()
	l.mu.Lock()
	l.efdW = l.efd
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.efdW, l.ended = -1, true
		l.mu.Unlock()
		syscall.Close(l.efd)
	}()
	if err := l.armWake(); err != nil {
		return err
	}
	running.Add(1)
	defer running.Add(-1)
	busy := true
	for {
		if l.drain() {
			return nil
		}
		wait := int64(-1)
		if len(l.timers) > 0 {
			wait = max(l.timers[0].when-l.now(), 0)
		}
		// While completions keep coming, the loop waits holding its P
		// (a raw system call), when there are more Ps than loops so
		// that the rest of the program still has one: a wait through
		// the scheduler gives the P up once it has lasted 20 µs, and
		// getting one back on waking, with the threads the handover
		// wakes, cost the loop 8 % of its CPU a request (bench/README.md,
		// "Results at 7ea8be8–bb967f6"). A P held in the kernel is the scheduler's
		// to stop all the same: a stop-the-world or a preemption signals
		// the thread, which ends the wait (EINTR). A wait that found
		// nothing, the loop gone idle, goes through the scheduler again,
		// so an idle loop costs no wake-ups.
		hold := busy && runtime.GOMAXPROCS(0) > int(running.Load())
		l.held.Store(hold)
		if err := r.enter(true, hold, wait); err != nil {
			return err
		}
		var failed error
		busy = false
		r.reap(func(ud uint64, res int32) {
			busy = true
			if failed == nil {
				failed = l.complete(ud, res)
			}
		})
		if failed != nil {
			return failed
		}
		if err := l.expire(); err != nil {
			return err
		}
	}
}

// now is the time in ns since l.base.
func (l *Loop) now() int64 { return int64(time.Since(l.base)) }

// expire cancels the operations whose deadline has passed; the next turn
// hands the kernel the cancels, and their operations end with ECANCELED,
// which result turns into os.ErrDeadlineExceeded. (One that completes
// before its cancel is reached keeps its result; the cancel then finds
// nothing.)
func (l *Loop) expire() error {
	if len(l.timers) == 0 {
		return nil
	}
	now := l.now()
	for len(l.timers) > 0 && l.timers[0].when <= now {
		tm := l.timers.pop()
		tm.t.expired[tm.slot] = true
		if err := l.cancel(tm.t, tm.slot); err != nil {
			return err
		}
	}
	return nil
}

// cancel queues the cancel of task t's operation in slot i.
func (l *Loop) cancel(t *Task, i int) error {
	if err := l.r.reserve(1); err != nil {
		return err
	}
	kind := uint64(kindFirst + i)
	l.r.prep(opAsyncCancel, -1, t.ud(kindCancel+uint64(i))).addr = t.ud(kind)
	return nil
}

func (l *Loop) armWake() error {
	if err := l.r.reserve(1); err != nil {
		return err
	}
	l.r.prep(opRead, l.efd, kindWake).buffer(l.wakeBuf[:])
	return nil
}

// drain runs what other goroutines posted, and reports whether the loop
// has ended: Close was called, no task is left and nothing more was
// posted. From then on post refuses, so nothing posted is lost.
func (l *Loop) drain() bool {
	for {
		l.mu.Lock()
		todo := l.inbox
		l.inbox, l.spare = l.spare[:0], nil
		l.woken = false
		if len(todo) == 0 {
			l.ended = l.closing && l.live == 0
			ended := l.ended
			l.mu.Unlock()
			return ended
		}
		l.mu.Unlock()
		for i, f := range todo {
			f()
			todo[i] = nil
		}
		l.mu.Lock()
		l.spare = todo
		l.mu.Unlock()
	}
}

// post runs f on the loop's thread soon; false when the loop has ended,
// or, for a new task, when Close was called.
func (l *Loop) post(f func(), newTask bool) bool {
	l.mu.Lock()
	if l.ended || newTask && l.closing {
		l.mu.Unlock()
		return false
	}
	l.inbox = append(l.inbox, f)
	if !l.woken && l.efdW >= 0 {
		// Under l.mu, so that Run cannot close the eventfd (and the
		// number be reused) in between; the write does not block.
		l.woken = true
		one := uint64(1)
		_, _, _ = syscall.RawSyscall(syscall.SYS_WRITE, uintptr(l.efdW), uintptr(unsafe.Pointer(&one)), 8)
	}
	l.mu.Unlock()
	return true
}

// Go starts fn as a task of the loop; it may be called from any goroutine,
// before Run too. It returns ErrClosed once Close was called.
func (l *Loop) Go(fn func(*Task)) error {
	if !l.post(func() { l.start(fn) }, true) {
		return ErrClosed
	}
	return nil
}

// Close stops the loop taking tasks; Run returns once the running ones
// end. Ending them (closing or shutting down their sockets) is the
// caller's part.
func (l *Loop) Close() {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	l.post(func() {}, false)
}

func (l *Loop) start(fn func(*Task)) {
	t := &Task{l: l, fn: fn}
	if n := len(l.free); n > 0 {
		t.slot = l.free[n-1]
		l.free = l.free[:n-1]
		l.slots[t.slot] = t
	} else {
		t.slot = uint32(len(l.slots))
		l.slots = append(l.slots, t)
	}
	l.live++
	t.resume, _ = iter.Pull(func(yield func(struct{}) bool) {
		t.yield = yield
		t.fn(t)
	})
	l.run(t)
}

// run switches to t until it waits again or ends.
func (l *Loop) run(t *Task) {
	if _, more := t.resume(); !more {
		l.slots[t.slot] = nil
		l.free = append(l.free, t.slot)
		l.live--
	}
}

func (l *Loop) complete(ud uint64, res int32) error {
	kind, slot := ud&(1<<kindBits-1), uint32(ud>>kindBits)
	if kind == kindWake {
		return l.armWake()
	}
	t := l.slots[slot]
	if kind == kindCancel || kind == kindCancelLast {
		i := int(kind - kindCancel)
		if res == -int32(syscall.ENOENT) && t != nil && t.inFlight[i] && t.expired[i] {
			// The cancel came before the kernel had started the
			// operation (the receive of a SendRecv is started from the
			// send's completion, as work the next turn runs): again.
			return l.cancel(t, i)
		}
		return nil
	}
	switch kind {
	case kindFirst:
		t.first = res
		t.inFlight[0] = false
		l.timers.remove(&t.tm[0])
		if t.armLast && t.inFlight[1] {
			// The receive linked behind the send starts now: a cancel
			// reaches it only from here on (one sent while it waited
			// behind the send would find nothing, and its deadline would
			// be lost).
			l.timers.push(&t.tm[1])
		}
		t.armLast = false
	case kindLast:
		t.res = res
		t.inFlight[1] = false
		l.timers.remove(&t.tm[1])
	}
	if t.pending--; t.pending == 0 {
		t.bufs = [2][]byte{}
		l.run(t)
	}
	return nil
}

func (t *Task) ud(kind uint64) uint64 { return uint64(t.slot)<<kindBits | kind }

// queue queues op on fd with b, with a deadline when it is set, and
// linked to what follows when link is set; i (0 or 1) is which of the
// task's buffer and deadline slots it uses. An operation linked behind
// slot 0's (behind) has its deadline armed when that one ends.
func (t *Task) queue(i int, op uint8, fd int, b []byte, flags uint32, deadline time.Time, kind uint64, link, behind bool) {
	s := t.l.r.prep(op, fd, t.ud(kind))
	t.bufs[i] = b
	s.buffer(b)
	s.opFlags = flags
	if link {
		s.flags |= sqeIOLink
	}
	t.pending++
	t.expired[i] = false
	t.inFlight[i] = true
	if !deadline.IsZero() {
		t.tm[i] = timer{when: int64(deadline.Sub(t.l.base)), t: t, slot: i, kind: kind}
		if behind {
			t.armLast = true
		} else {
			t.l.timers.push(&t.tm[i])
		}
	}
}

// wait switches back to the loop until every completion queued is in.
func (t *Task) wait() {
	if !t.yield(struct{}{}) {
		panic("uring: a task's coroutine was stopped")
	}
}

// result turns an operation's result into what a read or write returns;
// expired tells that the loop cancelled it at its deadline.
func result(res int32, expired bool) (int, error) {
	switch {
	case res >= 0:
		return int(res), nil
	case expired && res == -int32(syscall.ECANCELED):
		return 0, os.ErrDeadlineExceeded
	}
	return 0, syscall.Errno(-res)
}

// sendResult is result for a send of size bytes: one that sent only part
// (its deadline passed, or the connection failed, in the middle) is an
// error too.
func sendResult(fd int, res int32, expired bool, size int) (int, error) {
	n, err := result(res, expired)
	switch {
	case err != nil || n == size:
		return n, err
	case expired:
		return n, os.ErrDeadlineExceeded
	}
	// The kernel reports what went out and not why the rest did not (a
	// reset, say), which a write on a net.Conn would have returned: a
	// send of nothing, which cannot block, tells.
	if _, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), 0, 0, syscall.MSG_DONTWAIT|msgNoSignal, 0, 0); e != 0 {
		return n, e
	}
	return n, io.ErrShortWrite
}

func passed(deadline time.Time) bool { return !deadline.IsZero() && !time.Now().Before(deadline) }

// Recv reads once from the socket fd into b (which must not be empty),
// waiting until there is something to read, the peer ends the stream (0,
// nil) or deadline passes (os.ErrDeadlineExceeded; a zero deadline is
// none).
func (t *Task) Recv(fd int, b []byte, deadline time.Time) (int, error) {
	if passed(deadline) {
		return 0, os.ErrDeadlineExceeded
	}
	if err := t.l.r.reserve(1); err != nil {
		return 0, err
	}
	t.queue(1, opRecv, fd, b, 0, deadline, kindLast, false, false)
	t.wait()
	return result(t.res, t.expired[1])
}

// Send writes all of b to the socket fd, or fails; deadline as in Recv.
// On an error some of b may have been sent.
func (t *Task) Send(fd int, b []byte, deadline time.Time) (int, error) {
	if passed(deadline) {
		return 0, os.ErrDeadlineExceeded
	}
	if err := t.l.r.reserve(1); err != nil {
		return 0, err
	}
	t.queue(1, opSend, fd, b, msgNoSignal|msgWaitAll, deadline, kindLast, false, false)
	t.wait()
	return sendResult(fd, t.res, t.expired[1], len(b))
}

// SendRecv sends all of sb on sfd, as Send, and then reads once from rfd
// into rb, as Recv, in one switch of the task: the receive is queued
// linked behind the send, so it is made only once the whole of sb is
// sent. When the send fails, the receive is not made and rerr is the
// send's error.
func (t *Task) SendRecv(sfd int, sb []byte, sdl time.Time, rfd int, rb []byte, rdl time.Time) (sent int, serr error, got int, rerr error) {
	if passed(sdl) {
		return 0, os.ErrDeadlineExceeded, 0, os.ErrDeadlineExceeded
	}
	if err := t.l.r.reserve(2); err != nil {
		return 0, err, 0, err
	}
	t.queue(0, opSend, sfd, sb, msgNoSignal|msgWaitAll, sdl, kindFirst, true, false)
	t.queue(1, opRecv, rfd, rb, 0, rdl, kindLast, false, true)
	t.wait()
	sent, serr = sendResult(sfd, t.first, t.expired[0], len(sb))
	if serr != nil {
		return sent, serr, 0, serr
	}
	got, rerr = result(t.res, t.expired[1])
	return sent, nil, got, rerr
}

// Block runs f on a goroutine of its own and waits for it to return,
// while the loop runs its other tasks: for work that would otherwise hold
// up the loop's thread (a dial, a name lookup, a channel).
func (t *Task) Block(f func()) {
	t.pending++
	go func() {
		f()
		// Refused only when Run failed: the task is then left as it is.
		t.l.post(func() { t.l.complete(t.ud(kindLast), 0) }, false)
	}()
	t.wait()
}
