package reports

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
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

// seenByReaders records o (a pair with differences) in a new store and
// returns every place a reader sees it: the text, JSON and HTML reports,
// each dashboard page, and the database files. It also returns the kept
// examples of o's fields as JSON written without HTML escapes, for checking
// what must stay readable.
func seenByReaders(t *testing.T, opts Options, o diff.Outcome) (seen map[string][]byte, kept string) {
	t.Helper()
	s, path := openTestStore(t, opts)
	if o.Time.IsZero() {
		o.Time = testNow.Add(-time.Minute)
	}
	if o.Route == "" {
		o.Route = "leaky"
	}
	o.Verdict = diff.Diff
	record(t, s, o)
	flush(t, s)
	ctx := context.Background()
	rep, err := s.Report(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	seen = map[string][]byte{}
	for name, write := range map[string]func(io.Writer, *Report) error{"text report": WriteText, "JSON report": WriteJSON, "HTML report": WriteHTML} {
		var out bytes.Buffer
		if err := write(&out, rep); err != nil {
			t.Fatal(err)
		}
		seen[name] = out.Bytes()
	}
	h := s.Dashboard(nil)
	pages := []string{"/"}
	var examples []Example
	for _, rt := range rep.Routes {
		for _, f := range rt.Fields {
			pages = append(pages, "/?route="+url.QueryEscape(rt.Route)+"&path="+url.QueryEscape(f.Path))
			ex, err := s.Examples(ctx, rt.Route, f.Path)
			if err != nil {
				t.Fatal(err)
			}
			examples = append(examples, ex...)
		}
	}
	if len(examples) == 0 {
		t.Fatal("no example kept: the pair was not stored")
	}
	for _, p := range pages {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s = %d", p, rec.Code)
		}
		seen["dashboard "+p] = rec.Body.Bytes()
	}
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		seen["file "+filepath.Base(path)+suffix] = b
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(examples); err != nil {
		t.Fatal(err)
	}
	return seen, buf.String()
}

// checkSeen fails t for each secret a reader sees, and for each of keep
// missing from the kept examples (masked too much).
func checkSeen(t *testing.T, seen map[string][]byte, kept string, secrets, keep []string) {
	t.Helper()
	for where, b := range seen {
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s shows %q", where, s)
			}
		}
	}
	var lacks []string
	for _, k := range keep {
		if !strings.Contains(kept, k) {
			lacks = append(lacks, k)
		}
	}
	if len(lacks) > 0 {
		t.Errorf("kept examples lack %q (masked too much):\n%s", lacks, kept)
	}
}

// TestStore_EncodedCredentialsNotShown: a credential written name=value
// with the name, the "=" or what separates it percent-encoded, once or
// twice (a redirect target carried in a parameter), in a JSON string, or
// with a form's bracketed or "+"-spaced name, reaches no report, while the
// parameters around it stay readable.
func TestStore_EncodedCredentialsNotShown(t *testing.T) {
	form := map[string][]string{"Content-Type": {"application/x-www-form-urlencoded"}}
	tests := []struct {
		name          string
		o             diff.Outcome
		secrets, keep []string
	}{
		{"redirect target encoded once", diff.Outcome{
			URL:    "/login?next=%2Fcb%3Ftoken%3DSECRETA1%26lang%3Den",
			Legacy: diff.Response{Status: 302, Header: map[string][]string{"Location": {"/login?next=%2Fcb%3Ftoken%3DSECRETA1%26lang%3Den"}}},
			New:    diff.Response{Status: 302, Header: map[string][]string{"Location": {"/signin?next=%2Fcb%3Ftoken%3DSECRETA2"}}},
			Differences: []diff.Difference{{Path: "header.Location", Kind: diff.Changed,
				Legacy: "/login?next=%2Fcb%3Ftoken%3DSECRETA1%26lang%3Den", New: "/signin?next=%2Fcb%3Ftoken%3DSECRETA2"}},
		}, []string{"SECRETA1", "SECRETA2"}, []string{"/login?next=%2Fcb%3Ftoken%3D", "%26lang%3Den", "/signin?next="}},
		{"redirect target encoded twice", diff.Outcome{
			URL:         "/sso?return=%252Fcb%253Faccess_token%253DSECRETB1%2526page%253D2&x=1",
			Legacy:      diff.Response{Status: 200, Body: []byte(`{"a":1}`)},
			New:         diff.Response{Status: 200, Body: []byte(`{"a":2}`)},
			Differences: []diff.Difference{{Path: "$.a", Kind: diff.Changed, Legacy: json.Number("1"), New: json.Number("2")}},
		}, []string{"SECRETB1"}, []string{"%2526page%253D2&x=1"}},
		{"URL in a JSON string", diff.Outcome{
			URL:    "/api/session",
			Legacy: diff.Response{Status: 200, Body: []byte(`{"next":"https://x/cb?access_token%3DSECRETC1","back":"https://x/cb?refresh_token=SECRETC2&page=3"}`)},
			New:    diff.Response{Status: 200, Body: []byte(`{"next":"https://x/cb?access_token%3DSECRETC3","back":"https://x/cb?page=3"}`)},
			Differences: []diff.Difference{
				{Path: "$.next", Kind: diff.Changed, Legacy: "https://x/cb?access_token%3DSECRETC1", New: "https://x/cb?access_token%3DSECRETC3"},
				{Path: "$.back", Kind: diff.Changed, Legacy: "https://x/cb?refresh_token=SECRETC2&page=3", New: "https://x/cb?page=3"},
			},
		}, []string{"SECRETC1", "SECRETC2", "SECRETC3"}, []string{"https://x/cb?access_token%3D", "&page=3"}},
		{"encoded and spaced names", diff.Outcome{
			URL:         "/f?api%5Fkey=SECRETD1&api+key=SECRETD2&api%20key=SECRETD3&client%2Dsecret=SECRETD4&q=shoes",
			Legacy:      diff.Response{Status: 200, Body: []byte(`{"a":1}`)},
			New:         diff.Response{Status: 200, Body: []byte(`{"a":2}`)},
			Differences: []diff.Difference{{Path: "$.a", Kind: diff.Changed, Legacy: json.Number("1"), New: json.Number("2")}},
		}, []string{"SECRETD1", "SECRETD2", "SECRETD3", "SECRETD4"}, []string{"q=shoes"}},
		{"form with bracketed names", diff.Outcome{
			URL:    "/users",
			Legacy: diff.Response{Status: 200, Header: form, Body: []byte("user%5Bname%5D=jo&user%5Bpassword%5D=SECRETE1&user[password_confirmation]=SECRETE2&token[]=SECRETE3")},
			New:    diff.Response{Status: 200, Header: form, Body: []byte("user%5Bname%5D=jo")},
			Differences: []diff.Difference{{Path: "body:L1", Kind: diff.Changed,
				Legacy: "user%5Bname%5D=jo&user%5Bpassword%5D=SECRETE1&user[password_confirmation]=SECRETE2&token[]=SECRETE3", New: "user%5Bname%5D=jo"}},
		}, []string{"SECRETE1", "SECRETE2", "SECRETE3"}, []string{"user%5Bname%5D=jo&user%5Bpassword%5D="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen, kept := seenByReaders(t, Options{}, tt.o)
			checkSeen(t, seen, kept, tt.secrets, tt.keep)
		})
	}
}

// TestStore_URLUserinfoNotShown: the user and password written in a URL
// (https://user:pass@host, a token as the user, the same percent-encoded
// inside a parameter) or in a Go MySQL DSN (user:pass@tcp(host)) reach no
// report; the host and path stay readable.
func TestStore_URLUserinfoNotShown(t *testing.T) {
	o := diff.Outcome{
		URL: "/hooks?target=https%3A%2F%2Fbot%3ASECRETF1%40hooks.example%2Fin",
		Legacy: diff.Response{Status: 302, Header: map[string][]string{"Location": {"https://alice:SECRETF2@files.example/a.txt"}},
			Body: []byte(`{"repo":"https://SECRETF3@github.com/o/r.git","db":"app:SECRETF4@tcp(db.internal:3306)/shop"}`)},
		New: diff.Response{Status: 302, Header: map[string][]string{"Location": {"https://files.example/a.txt"}},
			Body: []byte(`{"repo":"https://x-access-token:SECRETF5@github.com/o/r.git","db":"db.internal:3306"}`),
			Err:  "dial app:SECRETF6@tcp(db.internal:3306)/shop: i/o timeout"},
		Differences: []diff.Difference{
			{Path: "header.Location", Kind: diff.Changed, Legacy: "https://alice:SECRETF2@files.example/a.txt", New: "https://files.example/a.txt"},
			{Path: "$.repo", Kind: diff.Changed, Legacy: "https://SECRETF3@github.com/o/r.git", New: "https://x-access-token:SECRETF5@github.com/o/r.git"},
			{Path: "$.db", Kind: diff.Changed, Legacy: "app:SECRETF4@tcp(db.internal:3306)/shop", New: "db.internal:3306"},
		},
	}
	seen, kept := seenByReaders(t, Options{}, o)
	// Read as an e-mail address, "alice:SECRETF2@files.example" would keep
	// the password's first letter ("S***@"): the whole user part goes.
	checkSeen(t, seen, kept, []string{"SECRETF1", "SECRETF2", "SECRETF3", "SECRETF4", "SECRETF5", "SECRETF6", "S***"},
		[]string{"target=https%3A%2F%2F" + Masked + "%40hooks.example%2Fin", "https://" + Masked + "@files.example/a.txt",
			"https://" + Masked + "@github.com/o/r.git", Masked + "@tcp(db.internal:3306)/shop", `"db.internal:3306"`})
}

// TestStore_BearerTokensNotShown: a JWT wherever it stands, a bearer
// token, and the credential headers a text body or an error echoes
// ("Authorization: Basic ...", "Cookie: sid=...", "X-Api-Key: ...")
// reach no report; other echoed headers and cookie names stay.
func TestStore_BearerTokensNotShown(t *testing.T) {
	const jwtPayload, jwtSig = "eyJzdWIiOiJTRUNSRVRHMSJ9", "SECRETG2sig"
	jwt := "eyJhbGciOiJIUzI1NiJ9." + jwtPayload + "." + jwtSig
	echo := "GET /whoami HTTP/1.1\r\nAuthorization: Bearer SECRETG3opaque\r\nCookie: sid=SECRETG4; theme=dark\r\n" +
		"X-Api-Key: SECRETG5\r\nX-Request-Id: r-1\r\npassword: SECRETG6\r\n"
	o := diff.Outcome{
		URL:    "/whoami",
		Legacy: diff.Response{Status: 200, Header: map[string][]string{"Content-Type": {"text/plain"}}, Body: []byte(echo)},
		New: diff.Response{Status: 401, Body: []byte(`{"session":{"value":"` + jwt + `","kind":"jwt"}}`),
			Err: "upstream refused Authorization: Basic SECRETG7== for /whoami"},
		Differences: []diff.Difference{
			{Path: "body:L2", Kind: diff.Changed, Legacy: "Authorization: Bearer SECRETG3opaque", New: "Authorization: Bearer SECRETG8opaque"},
			{Path: "$.session.value", Kind: diff.Changed, Legacy: "Bearer SECRETG9x", New: jwt},
		},
	}
	seen, kept := seenByReaders(t, Options{}, o)
	checkSeen(t, seen, kept, []string{jwtPayload, jwtSig, "SECRETG3", "SECRETG4", "SECRETG5", "SECRETG6", "SECRETG7", "SECRETG8", "SECRETG9"},
		[]string{"X-Request-Id: r-1", "Cookie: sid=" + Masked + "; theme=" + Masked, `kind\":\"jwt`, "for /whoami", "Authorization: " + Masked})
}

// TestStore_SessionIdsNotShown: session ids in members and parameters so
// named (session_id, sessionId, PHPSESSID, Java's ;jsessionid= path
// parameter) and cookies a body echoes under "Cookie" or "Set-Cookie"
// reach no report; the rest of the request and body stays.
func TestStore_SessionIdsNotShown(t *testing.T) {
	body := `{"headers":{"Cookie":"sid=SECRETH1","Set-Cookie":"sid=SECRETH2; HttpOnly","Accept":"*/*"},"session_id":"SECRETH3","sessionId":"SECRETH4","user":"jo"}`
	o := diff.Outcome{
		URL:    "/cart;jsessionid=SECRETH5?PHPSESSID=SECRETH6&page=2",
		Legacy: diff.Response{Status: 200, Body: []byte(body)},
		New:    diff.Response{Status: 200, Body: []byte(`{"user":"jo"}`)},
		Differences: []diff.Difference{
			{Path: "$.headers", Kind: diff.Missing, Legacy: map[string]any{"Cookie": "sid=SECRETH1", "Accept": "*/*"}},
			{Path: "$.sessionId", Kind: diff.Missing, Legacy: "SECRETH4"},
		},
	}
	seen, kept := seenByReaders(t, Options{}, o)
	checkSeen(t, seen, kept, []string{"SECRETH1", "SECRETH2", "SECRETH3", "SECRETH4", "SECRETH5", "SECRETH6"},
		[]string{"/cart;jsessionid=" + Masked + "?PHPSESSID=" + Masked + "&page=2", `"Accept":"*/*"`, `user\":\"jo`})
}

// TestStore_MultipartCredentialsNotShown: the content of a multipart part
// named like a credential (name="password", name="api_key"), over one line
// or several, in the stored body and in a line difference, reaches no
// report; the other parts stay readable.
func TestStore_MultipartCredentialsNotShown(t *testing.T) {
	part := func(name, headers, content string) string {
		return "--XyZ\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n" + headers + "\r\n" + content + "\r\n"
	}
	mp := map[string][]string{"Content-Type": {"multipart/form-data; boundary=XyZ"}}
	legacy := part("user", "", "jo") + part("password", "", "SECRETI1") + part("api_key", "Content-Type: text/plain\r\n", "SECRETI2\r\nSECRETI3") + "--XyZ--\r\n"
	newer := part("user", "", "jo2") + part("password", "", "SECRETI4") + "--XyZ--\r\n"
	o := diff.Outcome{
		URL:    "/signup",
		Legacy: diff.Response{Status: 200, Header: mp, Body: []byte(legacy)},
		New:    diff.Response{Status: 200, Header: mp, Body: []byte(newer)},
		Differences: []diff.Difference{
			{Path: "body:L4", Kind: diff.Changed, Legacy: "jo", New: "jo2"},
			{Path: "body:L8", Kind: diff.Changed, Legacy: "SECRETI1", New: "SECRETI4"},
			{Path: "body:L14", Kind: diff.Missing, Legacy: "SECRETI3"},
		},
	}
	seen, kept := seenByReaders(t, Options{}, o)
	checkSeen(t, seen, kept, []string{"SECRETI1", "SECRETI2", "SECRETI3", "SECRETI4"},
		[]string{`name=\"password\"\r\n\r\n` + Masked + `\r\n--XyZ`, `"legacy":"jo","new":"jo2"`})
}

// TestStore_PrivateKeysNotShown: secret keys under their usual names
// (AWS's SecretAccessKey, aws_secret_access_key, a service account's
// private_key) and PEM private key blocks wherever they stand reach no
// report; key ids and the PEM armour lines stay.
func TestStore_PrivateKeysNotShown(t *testing.T) {
	sts := `{"Credentials":{"AccessKeyId":"AKIAEXAMPLE","SecretAccessKey":"SECRETJ1","Expiration":"2025-03-14T13:00:00Z"},` +
		`"service":{"type":"service_account","private_key_id":"kid-1","private_key":"-----BEGIN PRIVATE KEY-----\nSECRETJ2\n-----END PRIVATE KEY-----\n"}}`
	env := "AWS_ACCESS_KEY_ID=AKIAEXAMPLE\nAWS_SECRET_ACCESS_KEY=SECRETJ3\n-----BEGIN RSA PRIVATE KEY-----\nSECRETJ4\nSECRETJ5\n-----END RSA PRIVATE KEY-----\n"
	o := diff.Outcome{
		URL:    "/debug/env",
		Legacy: diff.Response{Status: 200, Header: map[string][]string{"Content-Type": {"text/plain"}}, Body: []byte(env)},
		New:    diff.Response{Status: 200, Body: []byte(sts)},
		Differences: []diff.Difference{
			{Path: "body:L4", Kind: diff.Changed, Legacy: "SECRETJ4", New: "x"},
			{Path: "$.note", Kind: diff.Changed, Legacy: "key -----BEGIN OPENSSH PRIVATE KEY-----SECRETJ6", New: "none"},
		},
	}
	seen, kept := seenByReaders(t, Options{}, o)
	checkSeen(t, seen, kept, []string{"SECRETJ1", "SECRETJ2", "SECRETJ3", "SECRETJ4", "SECRETJ5", "SECRETJ6"},
		[]string{"AWS_ACCESS_KEY_ID=AKIAEXAMPLE", `AccessKeyId\":\"AKIAEXAMPLE`, `private_key_id\":\"kid-1`,
			"-----BEGIN RSA PRIVATE KEY-----" + Masked + "-----END RSA PRIVATE KEY-----"})
}

// TestStore_MarkupCredentialsNotShown: a credential written as a quoted
// value (logfmt's password="a b", an XML or HTML attribute), as the text
// of an XML element so named (a SOAP WS-Security <wsse:Password>, an
// <apiKey>, in CDATA too), or under a bracketed form name in an HTML
// input or a JSON member (user[password]) reaches no report; the markup
// and the other values stay readable.
func TestStore_MarkupCredentialsNotShown(t *testing.T) {
	soap := `<soap:Envelope><soap:Header><wsse:UsernameToken><wsse:Username>jo</wsse:Username>` +
		`<wsse:Password Type="PasswordText">SECRETK1</wsse:Password></wsse:UsernameToken></soap:Header>` +
		`<soap:Body><GetOrder><apiKey><![CDATA[SECRETK2]]></apiKey><id>7</id></GetOrder></soap:Body></soap:Envelope>`
	logLine := `level=warn msg="login failed" password="SECRETK3 x" user=jo`
	page := `<form><input name="user[password]" value="SECRETK4"><input name="user[name]" value="jo"><auth secret='SECRETK5'/></form>`
	o := diff.Outcome{
		URL:    "/orders/7",
		Legacy: diff.Response{Status: 200, Header: map[string][]string{"Content-Type": {"text/xml"}}, Body: []byte(soap)},
		New: diff.Response{Status: 500, Header: map[string][]string{"Content-Type": {"text/html"}}, Body: []byte(page),
			Err: logLine},
		Differences: []diff.Difference{
			{Path: "body:L1", Kind: diff.Changed, Legacy: soap, New: page},
			{Path: "$.form", Kind: diff.Extra, New: map[string]any{"user[password]": "SECRETK6", "user[name]": "jo"}},
		},
	}
	seen, kept := seenByReaders(t, Options{}, o)
	checkSeen(t, seen, kept, []string{"SECRETK1", "SECRETK2", "SECRETK3", "SECRETK4", "SECRETK5", "SECRETK6"},
		[]string{`<wsse:Username>jo</wsse:Username>`, `<id>7</id>`, `msg=\"login failed\" password=\"` + Masked + `\" user=jo`,
			`name=\"user[name]\" value=\"jo\"`, `"user[name]":"jo"`})
}

// TestStore_NameValuePairsNotShown: a credential held as a name/value
// pair ({"name":"Authorization","value":...} in a HAR or an echoed
// request, {"key":"password","value":...}, AWS-style {"Key":...,"Value":...}
// tags) reaches no report, in the body and as a difference at the value;
// pairs of other names stay.
func TestStore_NameValuePairsNotShown(t *testing.T) {
	pairs := func(auth string) string {
		return `{"headers":[{"name":"Authorization","value":"Basic ` + auth + `"},{"name":"Accept","value":"*/*"}],` +
			`"fields":[{"key":"password","value":"SECRETL2"}],"tags":[{"Key":"api_key","Value":"SECRETL3"}]}`
	}
	o := diff.Outcome{
		URL:    "/har",
		Legacy: diff.Response{Status: 200, Body: []byte(pairs("SECRETL1"))},
		New:    diff.Response{Status: 200, Body: []byte(pairs("SECRETL4"))},
		Differences: []diff.Difference{
			{Path: "$.headers[0].value", Kind: diff.Changed, Legacy: "Basic SECRETL1", New: "Basic SECRETL4"},
			{Path: "$.tags[0]", Kind: diff.Missing, Legacy: map[string]any{"Key": "api_key", "Value": "SECRETL3"}},
		},
	}
	seen, kept := seenByReaders(t, Options{}, o)
	checkSeen(t, seen, kept, []string{"SECRETL1", "SECRETL2", "SECRETL3", "SECRETL4"},
		[]string{`name\":\"Accept\",\"value\":\"*/*`, `name\":\"Authorization`, `"Key":"api_key"`})
}

// TestStore_DoubleEncodedEmailNotShown: an e-mail address whose "@" was
// percent-encoded twice (%2540, a redirect target carried in a parameter)
// is masked like one encoded once.
func TestStore_DoubleEncodedEmailNotShown(t *testing.T) {
	o := diff.Outcome{
		URL:         "/login?next=%252Fprofile%253Fmail%253Djane.secret%252540example.com&lang=en",
		Legacy:      diff.Response{Status: 200, Body: []byte(`{"a":1}`)},
		New:         diff.Response{Status: 200, Body: []byte(`{"a":2}`)},
		Differences: []diff.Difference{{Path: "$.a", Kind: diff.Changed, Legacy: json.Number("1"), New: json.Number("2")}},
	}
	seen, kept := seenByReaders(t, Options{}, o)
	checkSeen(t, seen, kept, []string{"jane.secret"}, []string{"%253Dj***%252540example.com&lang=en"})
}

// TestStore_DumpedCredentialsNotShown: a credential in the notations an
// error page or a debug body dumps its data in (PHP's print_r
// "[password] => x" and var_export "'password' => 'x'", a Python or Ruby
// hash "{'password': 'x'}", ":api_key => \"x\"", an INI or TOML line
// "secret = x") reaches no report; the other entries stay.
func TestStore_DumpedCredentialsNotShown(t *testing.T) {
	dump := "Array\n(\n    [user] => jo\n    [password] => SECRETM1 two\n)\n" +
		"array ( 'user' => 'jo', 'api_key' => 'SECRETM2', )\n" +
		"{'user': 'jo', 'password': 'SECRETM3'}\n" +
		"{:user => \"jo\", :api_key => \"SECRETM4\"}\n" +
		"[db]\nuser = jo\nsecret = SECRETM5\n"
	o := diff.Outcome{
		URL:         "/debug",
		Legacy:      diff.Response{Status: 500, Header: map[string][]string{"Content-Type": {"text/plain"}}, Body: []byte(dump)},
		New:         diff.Response{Status: 200, Body: []byte(`{"ok":true}`), Err: "params {'password': 'SECRETM6'} refused"},
		Differences: []diff.Difference{{Path: "status", Kind: diff.Changed, Legacy: json.Number("500"), New: json.Number("200")}},
	}
	seen, kept := seenByReaders(t, Options{}, o)
	checkSeen(t, seen, kept, []string{"SECRETM1", "SECRETM2", "SECRETM3", "SECRETM4", "SECRETM5", "SECRETM6"},
		[]string{"[user] => jo", "'user' => 'jo'", "{'user': 'jo'", `:user => \"jo\"`, "user = jo"})
}

// TestStore_CredentialListsNotShown: the elements of an array under a
// plural credential name (api_keys, tokens, passwords, cookies) reach no
// report, in a body, a body cut short and a difference at an element;
// a count under such a name ("tokens": 3) stays.
func TestStore_CredentialListsNotShown(t *testing.T) {
	body := `{"api_keys":["SECRETN1","SECRETN2"],"tokens":3,"passwords":[{"user":"jo","value":"SECRETN3"}],"cookies":["sid=SECRETN5"]}`
	o := diff.Outcome{
		URL:    "/keys",
		Legacy: diff.Response{Status: 200, Body: []byte(body)},
		New:    diff.Response{Status: 200, Body: []byte(`{"api_keys":["SECRETN1","SECRETN4"],"tokens":3,"more":"x`), Truncated: true},
		Differences: []diff.Difference{
			{Path: "$.api_keys[1]", Kind: diff.Changed, Legacy: "SECRETN2", New: "SECRETN4"},
			{Path: "$.cookies", Kind: diff.Missing, Legacy: []any{"sid=SECRETN5"}},
		},
	}
	seen, kept := seenByReaders(t, Options{}, o)
	checkSeen(t, seen, kept, []string{"SECRETN1", "SECRETN2", "SECRETN3", "SECRETN4", "SECRETN5"}, []string{`tokens\":3`})
}

// TestStore_DoubleEncodedUserinfoNotShown: the password in a URL carried
// twice encoded in a parameter (https%253A%252F%252Fuser%253Apass%2540host)
// is masked with its user, not read as an e-mail address that keeps its
// first letter.
func TestStore_DoubleEncodedUserinfoNotShown(t *testing.T) {
	o := diff.Outcome{
		URL:         "/go?to=%2Fhook%3Ftarget%3Dhttps%253A%252F%252Fbot%253ASECRETO1%2540hooks.example%252Fin&x=1",
		Legacy:      diff.Response{Status: 200, Body: []byte(`{"a":1}`)},
		New:         diff.Response{Status: 200, Body: []byte(`{"a":2}`)},
		Differences: []diff.Difference{{Path: "$.a", Kind: diff.Changed, Legacy: json.Number("1"), New: json.Number("2")}},
	}
	seen, kept := seenByReaders(t, Options{}, o)
	checkSeen(t, seen, kept, []string{"SECRETO1", "S***"}, []string{"https%253A%252F%252F" + Masked + "%2540hooks.example%252Fin&x=1"})
}

// TestStore_EscapedMemberNamesNotShown: a JSON member whose name is
// written with \u escapes ("pass\u0077ord") inside text (an error message,
// a text body) is masked as the plain name would be.
func TestStore_EscapedMemberNamesNotShown(t *testing.T) {
	o := diff.Outcome{
		URL:         "/login",
		Legacy:      diff.Response{Status: 400, Header: map[string][]string{"Content-Type": {"text/plain"}}, Body: []byte(`bad request: {"user": "jo", "pass\u0077ord": "SECRETP1"}`)},
		New:         diff.Response{Status: 502, Err: `upstream said {"api\u005fkey":"SECRETP2","user":"jo"}`},
		Differences: []diff.Difference{{Path: "status", Kind: diff.Changed, Legacy: json.Number("400"), New: json.Number("502")}},
	}
	seen, kept := seenByReaders(t, Options{}, o)
	checkSeen(t, seen, kept, []string{"SECRETP1", "SECRETP2"}, []string{`{\"user\": \"jo\", \"pass\\u0077ord\": \"` + Masked + `\"}`})
}

// TestStore_NameValuePairsCutShortNotShown: in a JSON body cut at
// compare_body, the value of a name/value pair with a secret name reaches
// no report: the name after the value, a value cut off, and a line
// difference of a pretty-printed body; other pairs stay.
func TestStore_NameValuePairsCutShortNotShown(t *testing.T) {
	pretty := "{\n  \"headers\": [\n    {\"name\": \"X-Api-Key\", \"value\": \"SECRETQ3\"},\n    {\"name\": \"Accept\", \"value\": \"*/*\"}\n  ],\n  \"more\": \"a"
	cut := `{"headers":[{"value":"Basic SECRETQ1","name":"Authorization"},{"name":"Accept","value":"*/*"},{"name":"Cookie","value":"sid=SECRETQ2`
	o := diff.Outcome{
		URL:    "/echo",
		Legacy: diff.Response{Status: 200, Body: []byte(pretty), Truncated: true},
		New:    diff.Response{Status: 200, Body: []byte(cut), Truncated: true},
		Differences: []diff.Difference{
			{Path: "body:L3", Kind: diff.Changed, Legacy: `    {"name": "X-Api-Key", "value": "SECRETQ3"},`, New: `    {"name": "X-Api-Key", "value": "SECRETQ4"},`},
		},
	}
	seen, kept := seenByReaders(t, Options{}, o)
	checkSeen(t, seen, kept, []string{"SECRETQ1", "SECRETQ2", "SECRETQ3", "SECRETQ4"},
		[]string{`{\"name\":\"Accept\",\"value\":\"*/*\"}`, `{\"name\": \"Accept\", \"value\": \"*/*\"}`, `\"name\":\"Authorization\"`})
}

// TestStore_BasicCredentialsNotShown: HTTP Basic credentials
// ("Basic " and base64 of user:password) outside an Authorization header,
// under an ordinary name or in prose, reach no report; "Basic" followed by
// an ordinary word stays.
func TestStore_BasicCredentialsNotShown(t *testing.T) {
	const basic = "am86U0VDUkVUUjE=" // base64 of "jo:SECRETR1"
	o := diff.Outcome{
		URL:    "/integrations",
		Legacy: diff.Response{Status: 200, Body: []byte(`{"upstream":{"auth":"Basic ` + basic + `","plan":"Basic plan"}}`)},
		New:    diff.Response{Status: 200, Body: []byte(`{"upstream":{"plan":"Basic plan"}}`), Err: "retry with basic " + basic + " failed"},
		Differences: []diff.Difference{
			{Path: "$.upstream.auth", Kind: diff.Missing, Legacy: "Basic " + basic},
		},
	}
	seen, kept := seenByReaders(t, Options{}, o)
	checkSeen(t, seen, kept, []string{basic}, []string{`plan\":\"Basic plan`, "retry with basic " + Masked + " failed"})
}
