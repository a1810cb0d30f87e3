package diff

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"strings"
	"testing"
)

func compress(t *testing.T, coding string, plain []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w interface {
		Write([]byte) (int, error)
		Close() error
	}
	switch coding {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "zlib":
		w = zlib.NewWriter(&buf)
	case "flate":
		w, _ = flate.NewWriter(&buf, flate.DefaultCompression)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecoded(t *testing.T) {
	plain := []byte(strings.Repeat(`{"id":7,"total":100}`, 50)) // 1,000 bytes
	gz := compress(t, "gzip", plain)
	withCE := func(enc string, body []byte, truncated bool) Response {
		return Response{Status: 200, Header: map[string][]string{"Content-Encoding": {enc}, "Content-Length": {"1"}, "Content-Type": {"application/json"}}, Body: body, Truncated: truncated}
	}
	tests := []struct {
		name          string
		in            Response
		limit         int
		wantBody      []byte
		wantTruncated bool
		wantErr       string
	}{
		{"gzip", withCE("gzip", gz, false), 4096, plain, false, ""},
		{"x-gzip, upper case", withCE("X-GZIP", gz, false), 4096, plain, false, ""},
		{"deflate, zlib-wrapped", withCE("deflate", compress(t, "zlib", plain), false), 4096, plain, false, ""},
		{"deflate, raw", withCE("deflate", compress(t, "flate", plain), false), 4096, plain, false, ""},
		{"two codings", withCE("deflate, gzip", compress(t, "gzip", compress(t, "zlib", plain)), false), 4096, plain, false, ""},
		{"decoded past the limit", withCE("gzip", gz, false), 100, plain[:100], true, ""},
		{"captured body was cut", withCE("gzip", gz[:len(gz)/2], true), 4096, nil, true, ""},
		{"corrupt", withCE("gzip", []byte("not gzip at all"), false), 4096, nil, false, "Content-Encoding gzip"},
		{"br", withCE("br", []byte{1, 2, 3}, false), 4096, nil, false, "Content-Encoding br"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := tt.in.Header["Content-Encoding"][0]
			got := Decoded(tt.in, tt.limit)
			if tt.in.Header["Content-Encoding"][0] != orig {
				t.Errorf("the input's header was changed")
			}
			if tt.wantErr != "" {
				if !strings.Contains(got.Err, tt.wantErr) || got.Body != nil {
					t.Errorf("Err %q, body %d bytes; want an error naming %q and no body", got.Err, len(got.Body), tt.wantErr)
				}
				return
			}
			if got.Err != "" {
				t.Fatalf("Err %q", got.Err)
			}
			switch {
			case tt.wantBody != nil && !bytes.Equal(got.Body, tt.wantBody):
				t.Errorf("body %q, want %q", got.Body, tt.wantBody)
			case tt.wantBody == nil && (len(got.Body) == 0 || !bytes.HasPrefix(plain, got.Body)):
				t.Errorf("body of a cut input: %q, want a non-empty prefix of the plain body", got.Body)
			}
			if got.Truncated != tt.wantTruncated {
				t.Errorf("Truncated %v, want %v", got.Truncated, tt.wantTruncated)
			}
			if _, ok := got.Header["Content-Encoding"]; ok {
				t.Errorf("header still has Content-Encoding: %v", got.Header)
			}
			if _, ok := got.Header["Content-Length"]; ok {
				t.Errorf("header still has Content-Length: %v", got.Header)
			}
		})
	}
	t.Run("identity and none are left alone", func(t *testing.T) {
		for _, r := range []Response{{Status: 200, Body: plain}, withCE("identity", plain, false)} {
			if got := Decoded(r, 10); !bytes.Equal(got.Body, plain) || got.Truncated || got.Err != "" {
				t.Errorf("Decoded changed an uncompressed body: %d bytes, truncated %v, err %q", len(got.Body), got.Truncated, got.Err)
			}
		}
	})
}
