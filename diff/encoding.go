package diff

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
)

// Decoded returns r with its body decoded as its Content-Encoding says
// (gzip, x-gzip, deflate, or a list of them), so that what is compared and
// stored is what the client reads, not compressed bytes. The decoded body
// is capped at limit bytes (Truncated is then set); a body that was
// already cut decodes as far as it goes. The copy's header loses
// Content-Encoding and Content-Length, which no longer describe it. An
// encoding banyan cannot decode (br, zstd...) or a corrupt body sets Err:
// the pair cannot be compared, and says why. r itself is not changed.
func Decoded(r Response, limit int) Response {
	if r.Err != "" {
		return r
	}
	enc, ok := headerValue(r.Header, "Content-Encoding")
	if !ok {
		return r
	}
	var codings []string
	for _, c := range strings.Split(enc, ",") {
		if c = strings.ToLower(strings.TrimSpace(c)); c != "" && c != "identity" {
			codings = append(codings, c)
		}
	}
	out := r
	out.Header = maps.Clone(r.Header)
	for k := range out.Header {
		if strings.EqualFold(k, "Content-Encoding") || strings.EqualFold(k, "Content-Length") {
			delete(out.Header, k)
		}
	}
	body := r.Body
	// The last coding listed was applied last: undo it first.
	for i := len(codings) - 1; i >= 0; i-- {
		var err error
		body, out.Truncated, err = decode(codings[i], body, out.Truncated, limit)
		if err != nil {
			out.Body = nil
			out.Truncated = false
			out.Err = fmt.Sprintf("cannot compare the body: Content-Encoding %s: %v", enc, err)
			return out
		}
	}
	out.Body = body
	return out
}

var errUnknownCoding = errors.New("banyan decodes only gzip and deflate")

// decode undoes one content coding; cut says the input was cut short.
func decode(coding string, body []byte, cut bool, limit int) ([]byte, bool, error) {
	if len(body) == 0 {
		return body, cut, nil
	}
	var rd io.Reader
	var err error
	switch coding {
	case "gzip", "x-gzip":
		rd, err = gzip.NewReader(bytes.NewReader(body))
	case "deflate":
		// HTTP's deflate is zlib-wrapped; some servers send it raw.
		if rd, err = zlib.NewReader(bytes.NewReader(body)); err != nil {
			rd, err = flate.NewReader(bytes.NewReader(body)), nil
		}
	default:
		return nil, false, errUnknownCoding
	}
	if err != nil {
		return nil, false, err
	}
	out, err := io.ReadAll(io.LimitReader(rd, int64(limit)+1))
	switch {
	case len(out) > limit:
		return out[:limit], true, nil
	case err == nil:
		return out, cut, nil
	case cut && (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)):
		return out, true, nil
	}
	return nil, false, err
}
