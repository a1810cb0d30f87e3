package reports

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/banyanhq/banyan/diff"
)

// Secrets that must never be stored or shown unmasked, and what must stay.
var (
	secretCard     = "4111 1111 1111 1111"
	secretCardFlat = "4111111111111111"
	secretEmail    = "jane.doe@example.com"
	secretPhone    = "+1-555-0100"
	secretSession  = "S3SSI0NSECRET"
	orderNumber    = "1234567812345678" // 16 digits, fails the Luhn check
)

// TestStore_NoSecretsAnywhere records a pair whose bodies, URL, headers,
// error and differences carry a card number and an e-mail address, then
// searches the raw database files and every rendering for them.
func TestStore_NoSecretsAnywhere(t *testing.T) {
	s, path := openTestStore(t, Options{Redact: []string{"$.customer.phone"}})
	legacy := `{"order":` + orderNumber + `,"customer":{"email":"` + secretEmail + `","phone":"` + secretPhone + `"},` +
		`"payment":{"card":"` + secretCard + `"},"note":"paid by ` + secretCardFlat + `"}`
	newer := `{"order":` + orderNumber + `,"customer":{"email":"` + secretEmail + `","phone":"` + secretPhone + `"},` +
		`"payment":{"card":"` + secretCardFlat + `"},"note":"paid"}`
	o := diff.Outcome{
		Time: testNow.Add(-time.Minute), Route: "checkout", Method: "GET", Path: "/api/orders/{id}",
		URL: "/api/orders/" + orderNumber + "?email=" + url.QueryEscape(secretEmail) + "&card=" + secretCardFlat,
		Legacy: diff.Response{Backend: "legacy", Status: 200, Body: []byte(legacy), Latency: 3 * time.Millisecond,
			Header: map[string][]string{"Content-Type": {"application/json"}, "X-Customer": {secretEmail}}},
		New: diff.Response{Backend: "svc", Status: 200, Body: []byte(newer), Latency: 2 * time.Millisecond,
			Header: map[string][]string{"Content-Type": {"application/json"}}},
		Verdict: diff.Diff,
		Differences: []diff.Difference{
			{Path: "$.payment.card", Kind: diff.Changed, Legacy: secretCard, New: secretCardFlat},
			{Path: "$.note", Kind: diff.Changed, Legacy: "paid by " + secretCardFlat, New: "paid"},
			{Path: "$.customer.phone", Kind: diff.Changed, Legacy: secretPhone, New: "+1-555-0199"},
			{Path: "$.contact", Kind: diff.Extra, New: map[string]any{"email": secretEmail}},
		},
	}
	// A text body, and a truncated JSON one, get the same treatment.
	text := o
	text.Time = testNow.Add(-2 * time.Minute)
	text.Legacy.Body = []byte("Dear " + secretEmail + ", card " + secretCard + " was charged for order " + orderNumber)
	text.New.Body = []byte(legacy[:len(legacy)-20])
	text.New.Truncated = true
	text.Differences = []diff.Difference{{Path: "body:L1", Kind: diff.Changed, Legacy: string(text.Legacy.Body), New: "x"}}
	// A pretty-printed JSON body cut short, with the redacted phone an
	// object over several lines, and a compared session cookie.
	cut := o
	cut.Time = testNow.Add(-3 * time.Minute)
	pretty := "{\n  \"customer\": {\n    \"phone\": {\n      \"home\": \"" + secretPhone + "\"\n    }\n  },\n  \"note\": \"pa"
	cut.Legacy.Body, cut.Legacy.Truncated = []byte(pretty), true
	cut.New.Body, cut.New.Truncated = []byte(strings.Replace(pretty, secretPhone, "+1-555-0199", 1)), true
	cut.Differences = []diff.Difference{
		{Path: "body:L4", Kind: diff.Changed, Legacy: `      "home": "` + secretPhone + `"`, New: `      "home": "+1-555-0199"`},
		{Path: "header.Set-Cookie", Kind: diff.Changed, Legacy: "sid=" + secretSession + "; HttpOnly", New: "sid=other; HttpOnly"},
	}
	record(t, s, o, text, cut)
	flush(t, s)

	forbidden := []string{secretCard, secretCardFlat, secretEmail, url.QueryEscape(secretEmail), secretPhone, secretSession}
	check := func(where string, b []byte) {
		t.Helper()
		for _, f := range forbidden {
			if bytes.Contains(b, []byte(f)) {
				t.Errorf("%s holds %q unmasked", where, f)
			}
		}
	}

	ctx := context.Background()
	rep, err := s.Report(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteText(&out, rep); err != nil {
		t.Fatal(err)
	}
	check("text report", out.Bytes())
	out.Reset()
	if err := WriteJSON(&out, rep); err != nil {
		t.Fatal(err)
	}
	check("JSON report", out.Bytes())
	out.Reset()
	if err := WriteHTML(&out, rep); err != nil {
		t.Fatal(err)
	}
	check("HTML report", out.Bytes())

	h := s.Dashboard(func() []RouteWeights { return []RouteWeights{{Name: "checkout", Split: map[string]int{"legacy": 100}}} })
	pages := []string{"/"}
	for _, f := range rep.Routes[0].Fields {
		pages = append(pages, "/?route=checkout&path="+url.QueryEscape(f.Path))
	}
	sawExample := false
	for _, p := range pages {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s = %d", p, rec.Code)
		}
		check("dashboard "+p, rec.Body.Bytes())
		if bytes.Contains(rec.Body.Bytes(), []byte("**** **** **** 1111")) {
			sawExample = true
		}
	}
	if !sawExample {
		t.Error("no dashboard page shows the masked card number: the examples were not rendered")
	}

	// Read the files while the store is open (the WAL holds the recent
	// pages) and again after Close has checkpointed it.
	raw := func(when string) []byte {
		var all []byte
		for _, suffix := range []string{"", "-wal"} {
			b, err := os.ReadFile(path + suffix)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			check(when+" "+path+suffix, b)
			all = append(all, b...)
		}
		return all
	}
	open := raw("open store")
	// The check above cannot pass vacuously: the masked forms and the
	// order number are in the same bytes.
	for _, want := range []string{"**** **** **** 1111", "************1111", "j***@example.com", orderNumber, Masked, "sid=" + Masked + "; HttpOnly"} {
		if !bytes.Contains(open, []byte(want)) {
			t.Errorf("database files lack %q: the pair was not stored as expected", want)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Close(cctx); err != nil {
		t.Fatal(err)
	}
	raw("closed store")
}
