// Command backend is the fixed upstream used by bench/proxy.sh: every request
// gets the same small JSON body, so the benchmark measures the proxies, not
// the backend. With -delay it answers that much later (the slow mirror
// target of the shadow scenario).
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"
)

// body is about 100 bytes, the size of a small API answer.
var body = []byte(`{"id":42,"status":"shipped","total_cents":129900,"currency":"EUR","items":3,"note":"bench-backend"}` + "\n")

func main() {
	listen := flag.String("listen", "127.0.0.1:18081", "address to serve on")
	delay := flag.Duration("delay", 0, "wait this long before answering (a slow backend)")
	flag.Parse()

	length := strconv.Itoa(len(body))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if *delay > 0 {
			t := time.NewTimer(*delay)
			select {
			case <-t.C:
			case <-r.Context().Done(): // the caller gave up
				t.Stop()
				return
			}
		}
		hd := w.Header()
		hd["Content-Type"] = []string{"application/json"}
		hd["Content-Length"] = []string{length}
		_, _ = w.Write(body)
	})
	srv := &http.Server{Addr: *listen, Handler: h}
	fmt.Fprintf(os.Stderr, "backend: serving %d-byte JSON on %s after %s\n", len(body), *listen, *delay)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("backend: %v", err)
	}
}
