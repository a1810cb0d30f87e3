//go:build linux

package main

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// The io_uring mode: one event loop per CPU, as in serveEpoll, but every
// read, write and accept is an entry on the loop's own io_uring submission
// queue, and one io_uring_enter call a turn of the loop sends all the
// entries queued since the last turn and waits for completions. A system
// call is dear on this benchmark's machines (about 1.2 µs for an empty
// read), and this is the one model that makes fewer of them than there are
// reads and writes; it shows what leaving epoll would be worth.
//
// The ring is set up with SINGLE_ISSUER and DEFER_TASKRUN (Linux 6.1), so
// completions are only worked off inside io_uring_enter on the loop's own
// thread, never in an interrupt of it.

const (
	sysIOUringSetup = 425
	sysIOUringEnter = 426

	setupSingleIssuer = 1 << 12
	setupDeferTaskrun = 1 << 13
	featSingleMmap    = 1 << 0
	enterGetEvents    = 1 << 0

	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000

	opAccept = 13
	opSend   = 26
	opRecv   = 27

	msgNoSignal = 0x4000
)

type sqRingOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqRingOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqRingOffsets
	cqOff                                                                  cqRingOffsets
}

// sqe is the kernel's struct io_uring_sqe (64 bytes).
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

// cqe is the kernel's struct io_uring_cqe (16 bytes).
type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

type uring struct {
	fd int

	sqHead, sqTail *uint32
	sqMask         uint32
	sqEntries      uint32
	sqes           []sqe
	tail           uint32 // the next free entry; sqTail is set to it before each enter
	queued         uint32 // entries queued since the last enter

	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []cqe
}

func ptrAt(m []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&m[off])) }

func newURing(entries uint32) (*uring, error) {
	var p uringParams
	p.flags = setupSingleIssuer | setupDeferTaskrun
	fd, _, e := syscall.RawSyscall(sysIOUringSetup, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if e != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", e)
	}
	if p.features&featSingleMmap == 0 {
		syscall.Close(int(fd))
		return nil, errors.New("io_uring without IORING_FEAT_SINGLE_MMAP")
	}
	size := max(p.sqOff.array+p.sqEntries*4, p.cqOff.cqes+p.cqEntries*uint32(unsafe.Sizeof(cqe{})))
	rings, err := syscall.Mmap(int(fd), offSQRing, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		syscall.Close(int(fd))
		return nil, fmt.Errorf("mmap rings: %w", err)
	}
	sqeMem, err := syscall.Mmap(int(fd), offSQEs, int(p.sqEntries)*int(unsafe.Sizeof(sqe{})), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		syscall.Close(int(fd))
		return nil, fmt.Errorf("mmap sqes: %w", err)
	}
	r := &uring{
		fd:        int(fd),
		sqHead:    ptrAt(rings, p.sqOff.head),
		sqTail:    ptrAt(rings, p.sqOff.tail),
		sqMask:    *ptrAt(rings, p.sqOff.ringMask),
		sqEntries: p.sqEntries,
		sqes:      unsafe.Slice((*sqe)(unsafe.Pointer(&sqeMem[0])), p.sqEntries),
		cqHead:    ptrAt(rings, p.cqOff.head),
		cqTail:    ptrAt(rings, p.cqOff.tail),
		cqMask:    *ptrAt(rings, p.cqOff.ringMask),
		cqes:      unsafe.Slice((*cqe)(unsafe.Pointer(&rings[p.cqOff.cqes])), p.cqEntries),
	}
	r.tail = atomic.LoadUint32(r.sqTail)
	// Entry i of the submission queue is always sqes[i].
	array := unsafe.Slice(ptrAt(rings, p.sqOff.array), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	return r, nil
}

// enter sends what is queued and, when wait is set, waits for at least one
// completion.
func (r *uring) enter(wait bool) error {
	atomic.StoreUint32(r.sqTail, r.tail)
	var minComplete, flags uintptr
	if wait {
		minComplete, flags = 1, enterGetEvents
	}
	for {
		var n uintptr
		var e syscall.Errno
		if wait {
			n, _, e = syscall.Syscall6(sysIOUringEnter, uintptr(r.fd), uintptr(r.queued), minComplete, flags, 0, 0)
		} else {
			n, _, e = syscall.RawSyscall6(sysIOUringEnter, uintptr(r.fd), uintptr(r.queued), 0, 0, 0, 0)
		}
		switch e {
		case 0:
			r.queued -= uint32(n)
			return nil
		case syscall.EINTR:
			continue
		default:
			return fmt.Errorf("io_uring_enter: %w", e)
		}
	}
}

// reserve makes room for n entries in the submission queue, sending what
// is queued when there is not.
func (r *uring) reserve(n uint32) error {
	for r.sqEntries-(r.tail-atomic.LoadUint32(r.sqHead)) < n {
		if err := r.enter(false); err != nil {
			return err
		}
	}
	return nil
}

// next returns a cleared submission entry.
func (r *uring) next() (*sqe, error) {
	if err := r.reserve(1); err != nil {
		return nil, err
	}
	s := &r.sqes[r.tail&r.sqMask]
	*s = sqe{}
	r.tail++
	r.queued++
	return s, nil
}

func (r *uring) queue(op uint8, fd int, b []byte, flags uint32, userData uint64) error {
	s, err := r.next()
	if err != nil {
		return err
	}
	s.opcode, s.fd, s.opFlags, s.userData = op, int32(fd), flags, userData
	if len(b) > 0 {
		s.addr, s.len = uint64(uintptr(unsafe.Pointer(&b[0]))), uint32(len(b))
	}
	return nil
}

// What each submission is for, in the low bits of its user data; the rest
// is the pair's index.
const (
	evAccept = iota
	evRecvClient
	evSendUp
	evRecvUp
	evSendClient
	evBits = 3
)

// uPair is one client connection and its backend connection in the
// io_uring loop. The buffers stay referenced from pairs for as long as the
// kernel may use them, and Go's collector does not move heap objects.
type uPair struct {
	client, up   int
	dead         bool
	req, resp    []byte
	reqN, respN  int
	sentUp, sent int // the lengths of the sends in flight
}

func serveURing(addr, backend string) error {
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
		go func() { errs <- uringLoop(ln, ba) }()
	}
	return <-errs
}

func uringLoop(ln int, backend *net.TCPAddr) error {
	runtime.LockOSThread() // SINGLE_ISSUER: only this thread may enter
	r, err := newURing(1024)
	if err != nil {
		return err
	}
	var pairs []*uPair
	drop := func(p *uPair) {
		if !p.dead {
			p.dead = true
			syscall.Close(p.client)
			syscall.Close(p.up)
		}
	}
	ud := func(i int, ev uint64) uint64 { return uint64(i)<<evBits | ev }
	if err := r.queue(opAccept, ln, nil, syscall.SOCK_CLOEXEC, evAccept); err != nil {
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
			if ev == evAccept {
				if err := r.queue(opAccept, ln, nil, syscall.SOCK_CLOEXEC, evAccept); err != nil {
					return err
				}
				if c.res < 0 {
					continue
				}
				client := int(c.res)
				up, err := dial(backend)
				if err != nil {
					syscall.Close(client)
					continue
				}
				_ = syscall.SetsockoptInt(client, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
				p := &uPair{client: client, up: up, req: make([]byte, maxHead), resp: make([]byte, maxHead)}
				pairs = append(pairs, p)
				if err := r.queue(opRecv, client, p.req, 0, ud(len(pairs)-1, evRecvClient)); err != nil {
					return err
				}
				continue
			}
			p := pairs[i]
			if p.dead {
				continue
			}
			res := int(c.res)
			switch ev {
			case evRecvClient:
				if res <= 0 {
					drop(p)
					continue
				}
				p.reqN += res
				if headEnd(p.req[:p.reqN]) < 0 {
					if p.reqN == len(p.req) {
						drop(p)
						continue
					}
					err = r.queue(opRecv, p.client, p.req[p.reqN:], 0, ud(i, evRecvClient))
					break
				}
				p.sentUp, p.reqN = p.reqN, 0
				if err = r.queue(opSend, p.up, p.req[:p.sentUp], msgNoSignal, ud(i, evSendUp)); err == nil {
					err = r.queue(opRecv, p.up, p.resp, 0, ud(i, evRecvUp))
				}
			case evRecvUp:
				if res <= 0 {
					drop(p)
					continue
				}
				p.respN += res
				size, aerr := answerSize(p.resp[:p.respN])
				if aerr != nil {
					drop(p)
					continue
				}
				if size == 0 || p.respN < size {
					err = r.queue(opRecv, p.up, p.resp[p.respN:], 0, ud(i, evRecvUp))
					break
				}
				p.sent, p.respN = size, 0
				if err = r.queue(opSend, p.client, p.resp[:size], msgNoSignal, ud(i, evSendClient)); err == nil {
					err = r.queue(opRecv, p.client, p.req, 0, ud(i, evRecvClient))
				}
			case evSendUp:
				if res != p.sentUp {
					drop(p)
				}
			case evSendClient:
				if res != p.sent {
					drop(p)
				}
			}
			if err != nil {
				return err
			}
		}
		atomic.StoreUint32(r.cqHead, head)
	}
}
