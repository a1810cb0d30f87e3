package diff

import (
	"strings"
	"time"
)

// Timestamp formats recognised when Rules.Timestamps is set. Two strings
// are equal when both parse with one of these and denote the same instant.
// A time without a zone is taken as UTC.
//
//	2006-01-02T15:04:05Z07:00            RFC 3339, with optional fraction (RFC3339Nano)
//	2006-01-02T15:04:05                  no zone: UTC
//	2006-01-02 15:04:05Z07:00            space instead of T, zone as RFC 3339
//	2006-01-02 15:04:05 Z07:00           ... zone after a space
//	2006-01-02 15:04:05 -0700            ... numeric zone without colon
//	2006-01-02 15:04:05                  no zone: UTC
//	Mon, 02 Jan 2006 15:04:05 -0700      RFC 1123 with numeric zone
//	Mon, 02 Jan 2006 15:04:05 GMT        RFC 1123, only with GMT or UTC (other abbreviations are ambiguous)
//	1700000000 or 1700000000.123         unix seconds: exactly 10 digits, optional fraction of 1-9 digits
//
// Every layout with seconds also accepts a fraction of a second after them.
var isoLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05 Z07:00",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05",
}

// parseTimestamp parses s in one of the formats above.
func parseTimestamp(s string) (time.Time, bool) {
	if len(s) < 10 || len(s) > 64 {
		return time.Time{}, false
	}
	if t, ok := parseUnix(s); ok {
		return t, true
	}
	c := s[0]
	switch {
	case c >= '0' && c <= '9':
		if s[4] != '-' {
			return time.Time{}, false
		}
		for _, l := range isoLayouts {
			if t, err := time.Parse(l, s); err == nil {
				return t, true
			}
		}
	case (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'):
		if t, err := time.Parse(time.RFC1123Z, s); err == nil {
			return t, true
		}
		if strings.HasSuffix(s, " GMT") || strings.HasSuffix(s, " UTC") {
			if t, err := time.Parse(time.RFC1123, s); err == nil {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

// parseUnix parses exactly 10 digits of unix seconds with an optional
// fraction of 1 to 9 digits.
func parseUnix(s string) (time.Time, bool) {
	var sec, nsec int64
	if len(s) < 10 {
		return time.Time{}, false
	}
	for i := 0; i < 10; i++ {
		if s[i] < '0' || s[i] > '9' {
			return time.Time{}, false
		}
		sec = sec*10 + int64(s[i]-'0')
	}
	rest := s[10:]
	if rest == "" {
		return time.Unix(sec, 0).UTC(), true
	}
	if rest[0] != '.' || len(rest) < 2 || len(rest) > 10 {
		return time.Time{}, false
	}
	scale := int64(1e9)
	for i := 1; i < len(rest); i++ {
		c := rest[i]
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
		scale /= 10
		nsec += int64(c-'0') * scale
	}
	return time.Unix(sec, nsec).UTC(), true
}

// sameInstant reports whether both strings are timestamps of one instant.
func sameInstant(a, b string) bool {
	ta, ok := parseTimestamp(a)
	if !ok {
		return false
	}
	tb, ok := parseTimestamp(b)
	return ok && ta.Equal(tb)
}
