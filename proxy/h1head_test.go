package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// headCases are request heads as clients (and attackers) send them, with
// the fast path's verdict; they also seed FuzzParseHead.
var headCases = []struct {
	name, head, want string
}{
	{"plain GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", ""},
	{"GET with port and query", "GET /api/orders/7?sort=desc&x=%2F HTTP/1.1\r\nHost: shop.example.com:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n", ""},
	{"POST with small JSON body", "POST /api/orders HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"id\":7}\n", ""},
	{"PUT with empty body", "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", ""},
	{"Connection: close, keep-alive", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, keep-alive\r\n\r\n", ""},
	{"Connection naming a header", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Custom\r\nX-Custom: s3cret\r\n\r\n", handoffConnTokens},
	{"Connection naming Content-Length (smuggling)", "POST /a HTTP/1.1\r\nHost: a\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\n", handoffConnTokens},
	{"hop-by-hop headers", "GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nKeep-Alive: 300\r\nProxy-Connection: keep-alive\r\n\r\n", ""},
	{"odd but valid header lines", "GET / HTTP/1.1\r\nhost: a\r\nx-lower: 1\r\nX-Empty:\r\nX-Pad:  \t v \t \r\nAccept: a\r\nAccept: b\r\n\r\n", ""},
	{"UTF-8 in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-Obs-Text: caf\xc3\xa9\r\n\r\n", ""},
	{"lower-case method is a valid token", "get / HTTP/1.1\r\nHost: a\r\n\r\n", ""},
	{"64 KiB body", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65536\r\n\r\n", ""},
	{"64 header lines", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-Many: 1\r\n", maxFastHeaders-1) + "\r\n", ""},

	// Smuggling: the fast path never decides how long a body is when
	// the head is ambiguous.
	{"two different Content-Lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", handoffMalformed},
	{"two equal Content-Lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", handoffMalformed},
	{"Content-Length and Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", handoffChunked},
	{"Transfer-Encoding: chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", handoffChunked},
	{"Transfer-Encoding: identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc", handoffChunked},
	{"folded Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 3\r\n\r\nabc", handoffChunked},
	{"space before colon", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc", handoffMalformed},
	{"signed Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", handoffMalformed},
	{"Content-Length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", handoffMalformed},
	{"hex Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\nabc", handoffMalformed},
	{"Content-Length overflowing int64", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", handoffMalformed},
	{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n", handoffMalformed},
	{"bare LF after request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", handoffMalformed},
	{"bare LF after a header", "GET / HTTP/1.1\r\nHost: a\nX-B: 1\r\n\r\n", handoffMalformed},
	{"NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-Nul: a\x00b\r\n\r\n", handoffMalformed},
	{"CR in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-Cr: a\rb\r\n\r\n", handoffMalformed},
	{"NUL in a name", "GET / HTTP/1.1\r\nHost: a\r\nX\x00: 1\r\n\r\n", handoffMalformed},
	{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", handoffMalformed},
	{"no Host", "GET / HTTP/1.1\r\n\r\n", handoffMalformed},
	{"user info in Host", "GET / HTTP/1.1\r\nHost: a@evil\r\n\r\n", handoffMalformed},
	{"IPv6 Host", "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", handoffMalformed},
	{"absolute-form target", "GET http://evil/ HTTP/1.1\r\nHost: a\r\n\r\n", handoffMalformed},
	{"semicolon in target", "GET /a;b=c HTTP/1.1\r\nHost: a\r\n\r\n", handoffMalformed},
	{"bad percent escape", "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", handoffMalformed},
	{"space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", handoffMalformed},
	{"two spaces after method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", handoffMalformed},
	{"asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", handoffMalformed},
	{"CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", handoffMalformed},
	{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", handoffMalformed},
	{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\n\r\n", handoffMalformed},
	{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", handoffMalformed},
	{"invalid method", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", handoffMalformed},
	{"empty line before request", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", handoffMalformed},
	{"nine Connection tokens", "GET / HTTP/1.1\r\nHost: a\r\nConnection: a, b, c, d, e, f, g, h, i\r\n\r\n", handoffConnTokens},
	{"DEL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", handoffMalformed},
	{"empty Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", handoffMalformed},

	{"WebSocket upgrade", "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", handoffUpgrade},
	{"upgrade token among others", "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, upgrade\r\n\r\n", handoffUpgrade},
	{"h2c upgrade", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n", handoffUpgrade},
	{"Expect: 100-continue", "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", handoffExpect},
	{"65 header lines", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-Many: 1\r\n", maxFastHeaders) + "\r\n", handoffLarge},
	{"64 KiB + 1 body", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65537\r\n\r\n", handoffBigBody},
	{"Pragma: no-cache", "GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\n\r\n", ""},
	{"double slash is a path, not an authority", "GET //evil/x HTTP/1.1\r\nHost: a\r\n\r\n", ""},
	{"two requests pipelined", "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n", ""},
	// The server hands a head over 8 KiB off before parsing it.
	{"9 KB header line", "GET / HTTP/1.1\r\nHost: a\r\nX-Huge: " + strings.Repeat("v", 9000) + "\r\n\r\n", ""},
}

// TestParseHead checks which requests the fast path takes: the plain ones,
// and never one whose framing or meaning net/http might read differently
// (those go to net/http, which answers or rejects them as it always has).
func TestParseHead(t *testing.T) {
	for _, tt := range headCases {
		t.Run(tt.name, func(t *testing.T) {
			var h reqHead
			if got, want := parseHead([]byte(tt.head), &h), tt.want; got != want {
				t.Errorf("parseHead(%q) = %q, want %q", tt.head, got, want)
			}
		})
	}

	t.Run("what it reads", func(t *testing.T) {
		const head = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nKeep-Alive: 5\r\n\r\n"
		buf := []byte(head + "GET /next HTTP/1.1\r\n")
		var h reqHead
		if why := parseHead(buf, &h); why != "" {
			t.Fatalf("parseHead = %q, want it taken", why)
		}
		if got, want := string(h.raw), head; got != want {
			t.Errorf("raw = %q, want %q (the head alone, not the next request)", got, want)
		}
		if !h.close {
			t.Error("Connection: close not noted")
		}
		if !h.hopByHop([]byte("keep-alive")) {
			t.Error("Keep-Alive would be forwarded")
		}
		if h.hopByHop([]byte("X-Request-Id")) {
			t.Error("X-Request-Id would be dropped")
		}
	})
}

// FuzzParseHead holds the fast path's parser to its promise: whatever it
// takes, net/http reads the same way — same method, target, Host, body
// length, Connection: close, end of head and headers. A request the two
// read differently could be routed or framed differently depending on
// which path serves it, the stuff of request smuggling.
func FuzzParseHead(f *testing.F) {
	for _, c := range headCases {
		f.Add([]byte(c.head))
	}
	f.Fuzz(func(t *testing.T, buf []byte) {
		var h reqHead
		if parseHead(buf, &h) != "" {
			return
		}
		src := bytes.NewReader(buf)
		br := bufio.NewReader(src)
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("fast path takes %q, net/http rejects it: %v", buf, err)
		}
		consumed := len(buf) - src.Len() - br.Buffered()
		if got, want := len(h.raw), consumed; got != want {
			t.Errorf("head of %q: fast path reads %d bytes, net/http %d", buf, got, want)
		}
		for _, c := range []struct{ what, fast, std string }{
			{"method", string(h.method), req.Method},
			{"target", string(h.target), req.RequestURI},
			{"Host", string(h.host), req.Host},
			{"Content-Length", fmt.Sprint(h.contentLength), fmt.Sprint(req.ContentLength)},
			{"close", fmt.Sprint(h.close), fmt.Sprint(req.Close)},
			{"Transfer-Encoding", "[]", fmt.Sprint(req.TransferEncoding)},
		} {
			if c.fast != c.std {
				t.Errorf("%q: fast path reads %s %q, net/http %q", buf, c.what, c.fast, c.std)
			}
		}
		got := http.Header{}
		h.header(got, nil)
		delete(got, "Host") // net/http moves it to req.Host, compared above
		// net/http adds Cache-Control: no-cache for Pragma: no-cache
		// (RFC 7234 section 5.4), and so forwards both; the fast path
		// forwards Pragma alone, which a backend must read the same way.
		if p := got["Pragma"]; len(p) > 0 && p[0] == "no-cache" && got["Cache-Control"] == nil {
			got["Cache-Control"] = []string{"no-cache"}
		}
		if !maps.EqualFunc(got, req.Header, slices.Equal) {
			t.Errorf("%q: headers differ\nfast path %q\n net/http %q", buf, got, req.Header)
		}
	})
}
