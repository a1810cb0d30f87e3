//go:build linux && (amd64 || arm64)

package uring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// The kernel's numbers (include/uapi/linux/io_uring.h).
const (
	sysSetup = 425
	sysEnter = 426

	setupCQSize       = 1 << 3
	setupSingleIssuer = 1 << 12
	setupDeferTaskrun = 1 << 13
	featSingleMmap    = 1 << 0
	enterGetEvents    = 1 << 0

	offSQRing = 0
	offSQEs   = 0x10000000

	opRead        = 22
	opAsyncCancel = 14
	opSend        = 26
	opRecv        = 27

	sqeIOLink   = 1 << 2
	enterExtArg = 1 << 3
	featExtArg  = 1 << 8

	msgNoSignal = 0x4000
	msgWaitAll  = 0x100
)

type sqRingOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqRingOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqRingOffsets
	cqOff                                                                  cqRingOffsets
}

// sqe is struct io_uring_sqe, 64 bytes.
type sqe struct {
	opcode   uint8
	flags    uint8
	ioprio   uint16
	fd       int32
	off      uint64
	addr     uint64
	len      uint32
	opFlags  uint32
	userData uint64
	bufIndex uint16
	personal uint16
	spliceFD int32
	addr3    uint64
	_        uint64
}

// cqe is struct io_uring_cqe, 16 bytes.
type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

// ring is one io_uring instance: its submission and completion queues
// mapped into this process. Only the thread that made it may use it
// (SINGLE_ISSUER), and completions are worked off only inside enter on
// that thread (DEFER_TASKRUN), so nothing here needs a lock.
type ring struct {
	fd    int
	rings []byte
	sqMem []byte

	sqHead, sqTail *uint32
	sqMask         uint32
	sqEntries      uint32
	sqes           []sqe
	tail           uint32 // the next free entry; *sqTail is set to it before each enter
	queued         uint32 // entries queued and not yet taken by the kernel

	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []cqe

	// enter's bound on its wait, read by the kernel during the call
	waitTS  timespec
	waitArg getEventsArg
}

var (
	errNoSingleMmap = errors.New("io_uring: the kernel lacks IORING_FEAT_SINGLE_MMAP (Linux 5.4)")
	errNoExtArg     = errors.New("io_uring: the kernel lacks IORING_FEAT_EXT_ARG (Linux 5.11)")
)

func at(m []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&m[off])) }

// newRing sets up a ring of entries submission entries; it must be called
// on the thread that will use it.
func newRing(entries uint32) (*ring, error) {
	var p params
	// Completions are bounded by the operations in flight, not by the
	// submission queue: room for eight times as many.
	p.flags = setupSingleIssuer | setupDeferTaskrun | setupCQSize
	p.cqEntries = 8 * entries
	fd, _, e := syscall.RawSyscall(sysSetup, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if e != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", e)
	}
	r := &ring{fd: int(fd)}
	if p.features&featSingleMmap == 0 {
		r.close()
		return nil, errNoSingleMmap
	}
	if p.features&featExtArg == 0 {
		r.close()
		return nil, errNoExtArg
	}
	size := max(p.sqOff.array+p.sqEntries*4, p.cqOff.cqes+p.cqEntries*uint32(unsafe.Sizeof(cqe{})))
	var err error
	r.rings, err = syscall.Mmap(r.fd, offSQRing, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("io_uring: map the rings: %w", err)
	}
	r.sqMem, err = syscall.Mmap(r.fd, offSQEs, int(p.sqEntries)*int(unsafe.Sizeof(sqe{})), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("io_uring: map the submission entries: %w", err)
	}
	r.sqHead, r.sqTail = at(r.rings, p.sqOff.head), at(r.rings, p.sqOff.tail)
	r.sqMask, r.sqEntries = *at(r.rings, p.sqOff.ringMask), p.sqEntries
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(&r.sqMem[0])), p.sqEntries)
	r.cqHead, r.cqTail = at(r.rings, p.cqOff.head), at(r.rings, p.cqOff.tail)
	r.cqMask = *at(r.rings, p.cqOff.ringMask)
	r.cqes = unsafe.Slice((*cqe)(unsafe.Pointer(&r.rings[p.cqOff.cqes])), p.cqEntries)
	r.tail = atomic.LoadUint32(r.sqTail)
	// Submission slot i always names entry i.
	array := unsafe.Slice(at(r.rings, p.sqOff.array), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	return r, nil
}

// timespec is struct __kernel_timespec.
type timespec struct{ sec, nsec int64 }

func toTimespec(ns int64) timespec { return timespec{ns / 1e9, ns % 1e9} }

func (r *ring) close() {
	if r.sqMem != nil {
		_ = syscall.Munmap(r.sqMem)
	}
	if r.rings != nil {
		_ = syscall.Munmap(r.rings)
	}
	syscall.Close(r.fd)
}

// getEventsArg is struct io_uring_getevents_arg.
type getEventsArg struct {
	sigmask   uint64
	sigmaskSz uint32
	pad       uint32
	ts        uint64
}

// enter hands the kernel what is queued and, when wait is set, waits for
// at least one completion, for at most timeout ns when timeout is not
// negative. The wait is a blocking call made through the scheduler, which
// lets another thread take the goroutine's P while it sleeps; with hold
// set it is made without telling the scheduler, so the thread keeps its P
// (see Loop.Run). Either way a signal ends the wait with EINTR.
func (r *ring) enter(wait, hold bool, timeout int64) error {
	atomic.StoreUint32(r.sqTail, r.tail)
	for {
		var n uintptr
		var e syscall.Errno
		switch {
		case wait:
			flags, arg, argSize := uintptr(enterGetEvents), uintptr(0), uintptr(0)
			if timeout >= 0 {
				r.waitTS = toTimespec(timeout)
				r.waitArg = getEventsArg{ts: uint64(uintptr(unsafe.Pointer(&r.waitTS)))}
				flags, arg, argSize = enterGetEvents|enterExtArg, uintptr(unsafe.Pointer(&r.waitArg)), unsafe.Sizeof(r.waitArg)
			}
			if hold {
				n, _, e = syscall.RawSyscall6(sysEnter, uintptr(r.fd), uintptr(r.queued), 1, flags, arg, argSize)
			} else {
				n, _, e = syscall.Syscall6(sysEnter, uintptr(r.fd), uintptr(r.queued), 1, flags, arg, argSize)
			}
			if e == syscall.ETIME {
				// The time ran out first. The call reports what it
				// submitted when it submitted anything, so nothing was.
				n, e = 0, 0
			}
		default:
			n, _, e = syscall.RawSyscall6(sysEnter, uintptr(r.fd), uintptr(r.queued), 0, 0, 0, 0)
		}
		switch e {
		case 0:
			r.queued -= uint32(n)
			return nil
		case syscall.EINTR:
			// Run reaps and works the wait out again: restarting it here
			// with the whole timeout would put deadlines off.
			return nil
		case syscall.EAGAIN, syscall.EBUSY:
			// Short of memory, or completions overflowed the queue:
			// reaping makes room, and the caller reaps next.
			return nil
		default:
			return fmt.Errorf("io_uring_enter: %w", e)
		}
	}
}

// reserve makes room for n submission entries, handing the kernel what is
// queued when there is not; entries queued after it go to the kernel in
// one submission, as a link must.
func (r *ring) reserve(n uint32) error {
	for r.sqEntries-(r.tail-atomic.LoadUint32(r.sqHead)) < n {
		if err := r.enter(false, false, -1); err != nil {
			return err
		}
	}
	return nil
}

// prep returns the next submission entry, cleared, after a reserve.
func (r *ring) prep(op uint8, fd int, userData uint64) *sqe {
	s := &r.sqes[r.tail&r.sqMask]
	*s = sqe{opcode: op, fd: int32(fd), userData: userData}
	r.tail++
	r.queued++
	return s
}

// buffer points s at b. The kernel reads or writes b after this returns,
// so whoever calls it keeps b referenced until the completion; Go's
// collector does not move heap objects.
func (s *sqe) buffer(b []byte) {
	if len(b) > 0 {
		s.addr, s.len = uint64(uintptr(unsafe.Pointer(&b[0]))), uint32(len(b))
	}
}

// reap calls f with each completion the kernel has posted.
func (r *ring) reap(f func(userData uint64, res int32)) {
	head := *r.cqHead
	for tail := atomic.LoadUint32(r.cqTail); head != tail; {
		c := r.cqes[head&r.cqMask]
		head++
		atomic.StoreUint32(r.cqHead, head) // the entry is free before f runs
		f(c.userData, c.res)
	}
}
