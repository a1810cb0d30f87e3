package proxy

import (
	"bytes"
	"net/http"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// The fast path takes only the plainest HTTP/1.1 requests, parsed here
// strictly; anything this parser does not accept is handed, bytes and all,
// to net/http, which answers it as it always has. So the parser never has
// to decide a hard case: it only has to be sure that what it accepts,
// net/http would read the same way (FuzzParseHead holds it to that).

// maxFastHeaders is how many header lines a fast-path request may carry.
const maxFastHeaders = 64

// maxFastBody is the largest request body the fast path forwards; bigger
// ones go to net/http, which streams them while it reads the answer.
const maxFastBody = 64 << 10

// headerLine is one header line of a head: name is head[start:colon],
// the value head[vstart:vend] with surrounding blanks trimmed.
type headerLine struct {
	start, colon, vstart, vend int
}

// reqHead is a parsed request head. Slices point into the buffer it was
// parsed from, valid until that buffer is read again.
type reqHead struct {
	raw            []byte // the whole head, final CRLF CRLF included
	method, target []byte
	host           []byte
	lines          []headerLine
	contentLength  int64 // 0 when absent
	hasLength      bool  // a Content-Length header was sent
	close          bool  // Connection: close
	teTrailers     bool  // TE names trailers
	storage        [maxFastHeaders]headerLine
}

// handoff reasons, also the label of banyan_proxy_handoffs_total.
const (
	handoffMalformed  = "not-plain-http1.1" // anything the strict parser does not take
	handoffConnTokens = "connection-tokens" // Connection names headers beyond close, keep-alive
	handoffLarge      = "head-too-large"
	handoffUpgrade    = "upgrade"
	handoffExpect     = "expect"
	handoffChunked    = "chunked-body"
	handoffBigBody    = "large-body"
	handoffNoRoute    = "no-route"
	handoffTLS        = "tls-backend"
)

// parseHead parses the request head at the start of buf (which must hold
// all of it, through the empty line). It returns "" when the fast path can
// take the request, or the reason it cannot.
func parseHead(buf []byte, h *reqHead) string {
	*h = reqHead{raw: h.raw[:0], lines: h.storage[:0]}
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return handoffMalformed // e.g. a head ended by a bare LF
	}
	h.raw = buf[:end+4]
	// Request line: METHOD SP origin-form SP HTTP/1.1 CRLF.
	eol := bytes.IndexByte(buf, '\n')
	line := buf[:eol]
	if len(line) < 2 || line[len(line)-1] != '\r' {
		return handoffMalformed
	}
	line = line[:len(line)-1]
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return handoffMalformed
	}
	h.method = line[:sp]
	if !validName(h.method) {
		return handoffMalformed
	}
	if string(h.method) == "CONNECT" || string(h.method) == "PRI" {
		return handoffMalformed
	}
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 || string(rest[sp+1:]) != "HTTP/1.1" {
		return handoffMalformed
	}
	h.target = rest[:sp]
	if !plainTarget(h.target) {
		return handoffMalformed
	}
	hosts, lengths := 0, 0
	pos := eol + 1
	for pos < end+2 {
		eol := bytes.IndexByte(buf[pos:], '\n')
		if eol < 1 || buf[pos+eol-1] != '\r' {
			return handoffMalformed
		}
		lineEnd := pos + eol - 1 // at the CR
		colon := bytes.IndexByte(buf[pos:lineEnd], ':')
		if colon <= 0 {
			return handoffMalformed
		}
		colon += pos
		if !validName(buf[pos:colon]) {
			return handoffMalformed
		}
		vs, ve := colon+1, lineEnd
		for vs < ve && (buf[vs] == ' ' || buf[vs] == '\t') {
			vs++
		}
		for ve > vs && (buf[ve-1] == ' ' || buf[ve-1] == '\t') {
			ve--
		}
		if !plainText(buf[vs:ve]) {
			return handoffMalformed
		}
		if len(h.lines) == maxFastHeaders {
			return handoffLarge
		}
		hl := headerLine{start: pos, colon: colon, vstart: vs, vend: ve}
		h.lines = append(h.lines, hl)
		name, value := buf[pos:colon], buf[vs:ve]
		switch {
		case asciiEqualFold(name, "host"):
			hosts++
			h.host = value
			if !plainHost(value) {
				return handoffMalformed
			}
		case asciiEqualFold(name, "content-length"):
			lengths++
			n, ok := parseLength(value)
			if !ok {
				return handoffMalformed
			}
			if n > maxFastBody {
				return handoffBigBody
			}
			h.contentLength, h.hasLength = n, true
		case asciiEqualFold(name, "transfer-encoding"):
			return handoffChunked
		case asciiEqualFold(name, "upgrade"):
			return handoffUpgrade
		case asciiEqualFold(name, "expect"):
			return handoffExpect
		case asciiEqualFold(name, "connection"):
			if why := h.connection(value); why != "" {
				return why
			}
		case asciiEqualFold(name, "te"):
			h.teTrailers = h.teTrailers || hasElement(value, "trailers")
		}
		pos = pos + eol + 1
	}
	if hosts != 1 || lengths > 1 {
		return handoffMalformed
	}
	return ""
}

// connection reads a Connection header: close is noted, keep-alive
// allowed, anything else hands the request off.
func (h *reqHead) connection(v []byte) string {
	for len(v) > 0 {
		var tok []byte
		tok, v = nextToken(v)
		switch {
		case len(tok) == 0:
		case asciiEqualFold(tok, "close"):
			h.close = true
		case asciiEqualFold(tok, "upgrade"):
			return handoffUpgrade
		case asciiEqualFold(tok, "keep-alive"):
			// Keep-Alive is dropped as hop-by-hop anyway.
		default:
			// A Connection header that makes other headers hop-by-hop
			// could name Content-Length or Host (a smuggling trick);
			// net/http frames such a request from the parsed length.
			return handoffConnTokens
		}
	}
	return ""
}

// name and value of header line i.
func (h *reqHead) name(i int) []byte  { return h.raw[h.lines[i].start:h.lines[i].colon] }
func (h *reqHead) value(i int) []byte { return h.raw[h.lines[i].vstart:h.lines[i].vend] }

// header builds the http.Header routing looks at, as net/http would.
// With names (canonical header names) it holds only those headers: routing
// reads a few, and the others then cost nothing.
func (h *reqHead) header(hdr http.Header, names []string) {
	for i := range h.lines {
		name := h.name(i)
		k := ""
		if names == nil {
			k = textproto.CanonicalMIMEHeaderKey(string(name))
		}
		for _, n := range names {
			if asciiEqualFold(name, n) {
				k = n
				break
			}
		}
		if k != "" {
			hdr[k] = append(hdr[k], string(h.value(i)))
		}
	}
}

// hopByHop reports whether a request header must not be forwarded: the
// hop-by-hop headers of RFC 9110 section 7.6.1, the forwarding headers
// banyan writes itself (also spelt with underscores: see forwardedFold),
// and ShadowHeader, which only banyan's mirrors may
// carry. (A request whose Connection header names other headers is handed
// to net/http.)
func (h *reqHead) hopByHop(name []byte) bool {
	switch len(name) {
	case 2:
		return asciiEqualFold(name, "te")
	case 4:
		return asciiEqualFold(name, "host")
	case 7:
		if asciiEqualFold(name, "trailer") || asciiEqualFold(name, "upgrade") {
			return true
		}
	case 9:
		if asciiEqualFold(name, "forwarded") {
			return true
		}
	case 10:
		if asciiEqualFold(name, "connection") || asciiEqualFold(name, "keep-alive") {
			return true
		}
	case 15:
		if forwardedFold(name, "x-forwarded-for") || asciiEqualFold(name, ShadowHeader) {
			return true
		}
	case 16:
		if asciiEqualFold(name, "proxy-connection") || forwardedFold(name, "x-forwarded-host") {
			return true
		}
	case 17:
		if asciiEqualFold(name, "transfer-encoding") || forwardedFold(name, "x-forwarded-proto") {
			return true
		}
	case 18:
		if asciiEqualFold(name, "proxy-authenticate") {
			return true
		}
	case 19:
		if asciiEqualFold(name, "proxy-authorization") {
			return true
		}
	}
	return false
}

// plainTarget accepts an origin-form request target made only of the
// characters RFC 3986 allows unescaped in a path and query, with every
// percent sign starting a valid escape. For such a target net/http and the
// fast path forward the same bytes.
func plainTarget(t []byte) bool {
	if len(t) == 0 || t[0] != '/' {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case targetChars[c]:
		case c == '%':
			if i+2 >= len(t) || !isHex(t[i+1]) || !isHex(t[i+2]) {
				return false
			}
			i += 2
		default:
			// ';' included: net/http's query handling differs on it.
			return false
		}
	}
	return true
}

// targetChars and tokenChars are the bytes plainTarget takes unescaped
// and the bytes of an RFC 9110 token.
var targetChars, tokenChars = charSet("-._~!$&'()*+,=:@/?"), charSet("!#$%&'*+-.^_`|~")

// charSet is the letters, the digits and extra.
func charSet(extra string) (set [256]bool) {
	for c := range 256 {
		set[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
	}
	for i := range len(extra) {
		set[extra[i]] = true
	}
	return set
}

// plainHost accepts host[:port] names and IPv4 addresses; anything else
// (IPv6 literals, user info, odd bytes) goes to net/http.
func plainHost(h []byte) bool {
	if len(h) == 0 || len(h) > 255 {
		return false
	}
	for _, c := range h {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-' || c == '.' || c == ':' || c == '_':
		default:
			return false
		}
	}
	return true
}

// parseLength reads a Content-Length value: decimal digits only.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// hasToken reports whether the comma-separated list v holds tok.
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		var t []byte
		t, v = nextToken(v)
		if i := bytes.IndexByte(t, ';'); i >= 0 {
			t = bytes.TrimRight(t[:i], " \t")
		}
		if asciiEqualFold(t, tok) {
			return true
		}
	}
	return false
}

// hasElement reports whether the comma-separated list v holds tok as a
// whole element, without parameters: TE's trailers takes no weight (RFC
// 9110 section 10.1.4), so "trailers;q=0" is not it, as net/http reads it.
func hasElement(v []byte, tok string) bool {
	for len(v) > 0 {
		var t []byte
		if t, v = nextToken(v); asciiEqualFold(t, tok) {
			return true
		}
	}
	return false
}

// nextToken splits the first element, blanks trimmed, off the
// comma-separated list v.
func nextToken(v []byte) (tok, rest []byte) {
	if i := bytes.IndexByte(v, ','); i >= 0 {
		tok, rest = v[:i], v[i+1:]
	} else {
		tok = v
	}
	return bytes.Trim(tok, " \t"), rest
}

// forwardedFold is asciiEqualFold where an underscore in b also matches a
// dash in s. A backend that reads headers as CGI variables (PHP's
// $_SERVER, WSGI, Rack) reads X_Forwarded_For as X-Forwarded-For, so a
// client's own must not reach it in that spelling either.
func forwardedFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if b[i] == '_' && s[i] == '-' {
			continue
		}
		if !asciiEqualFold(b[i:i+1], s[i:i+1]) {
			return false
		}
	}
	return true
}

// asciiEqualFold is bytes.EqualFold for ASCII, without converting s.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// isTokenChar reports whether c may appear in an RFC 9110 token.
func isTokenChar(c byte) bool { return tokenChars[c] }

// validName reports whether b is a header name (an RFC 9110 token).
func validName(b []byte) bool {
	for _, c := range b {
		if !isTokenChar(c) {
			return false
		}
	}
	return len(b) > 0
}

// plainText reports whether b holds no control byte but HTAB: nothing a
// client could take for the end of a line.
func plainText(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// trailerAllowed reports whether a trailer field may be passed on. RFC
// 9110 section 6.5.1 keeps out of trailers the fields a recipient needs
// before the body or must not take from a trailer: framing
// (Content-Length, Transfer-Encoding, Trailer), routing (Host), hop-by-hop
// fields, authentication, request modifiers and content metadata. A
// recipient that merges trailers into the head it already acted on would
// read a second, contradicting value. The list is the one net/http uses
// for the trailers a handler declares; net/http itself still relays the
// ones a backend sends undeclared, so both paths drop them here.
func trailerAllowed(name string) bool {
	return httpguts.ValidTrailerHeader(name)
}

// dropForbiddenTrailers deletes from a response header the trailer fields
// trailerAllowed refuses among those behind http.TrailerPrefix, where
// httputil.ReverseProxy puts the trailers a backend sent without
// announcing them and net/http writes them unchecked.
func dropForbiddenTrailers(h http.Header) {
	for k := range h {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && !trailerAllowed(name) {
			delete(h, k)
		}
	}
}
