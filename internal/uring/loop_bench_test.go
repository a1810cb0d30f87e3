//go:build linux && (amd64 || arm64)

package uring_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/banyanhq/banyan/internal/uring"
)

// BenchmarkEcho measures a 64-byte round trip on loopback, many
// connections at once, with the serving side run two ways: as tasks of
// one internal/uring loop, and as the baseline, a goroutine a connection
// on net.Conn (Go's poller). The clients are goroutines on net.Conn in
// both. ns/op is per round trip. The loop's echo sends each answer linked
// ahead of the read of the next request (SendRecv), as a proxy does.
//
//	go test -run '^$' -bench Echo -benchtime 2s ./internal/uring
func BenchmarkEcho(b *testing.B) {
	const conns = 32
	for _, mode := range []string{"uring", "goroutines"} {
		b.Run(mode, func(b *testing.B) {
			var serve func(c net.Conn, fd int)
			switch mode {
			case "uring":
				l := startLoop(b)
				serve = func(_ net.Conn, fd int) {
					if err := l.Go(func(t *uring.Task) { echoLinked(t, fd) }); err != nil {
						b.Fatal(err)
					}
				}
			default:
				serve = func(c net.Conn, _ int) {
					go func() {
						buf := make([]byte, 512)
						for {
							n, err := c.Read(buf)
							if err != nil {
								return
							}
							if _, err := c.Write(buf[:n]); err != nil {
								return
							}
						}
					}()
				}
			}
			peers := make(chan net.Conn, conns)
			for range conns {
				c, fd, peer := pipe(b)
				serve(c, fd)
				peers <- peer
			}
			msg := make([]byte, 64)
			b.SetParallelism((conns + 1) / 2) // GOMAXPROCS × this goroutines, one connection each
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				peer := <-peers
				got := make([]byte, len(msg))
				for pb.Next() {
					if _, err := peer.Write(msg); err != nil {
						b.Error(err)
						return
					}
					if _, err := io.ReadFull(peer, got); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// echoLinked answers each read with what it read, the answer and the
// next read queued together, until the peer ends the stream.
func echoLinked(t *uring.Task, fd int) {
	var none time.Time
	in, out := make([]byte, 512), make([]byte, 512)
	n, err := t.Recv(fd, in, none)
	for err == nil && n > 0 {
		in, out = out, in
		var serr error
		_, serr, n, err = t.SendRecv(fd, out[:n], none, fd, in, none)
		if serr != nil {
			return
		}
	}
}
