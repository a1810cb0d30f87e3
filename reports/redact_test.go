package reports

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/banyanhq/banyan/diff"
)

func TestRedactor_Text(t *testing.T) {
	r, err := NewRedactor(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, in, want string
	}{
		{"card with spaces", "paid with 4111 1111 1111 1111 today", "paid with **** **** **** 1111 today"},
		{"card with dashes", "cc=4111-1111-1111-1111", "cc=****-****-****-1111"},
		{"card plain", "4111111111111111", "************1111"},
		{"card 15 digits amex", "378282246310005.", "***********0005."},
		{"card after quantity", "2 4111 1111 1111 1111", "2 **** **** **** 1111"},
		{"card glued to letters", "cc4111111111111111x", "cc************1111x"},
		{"non-Luhn order number", "order 1234567812345678", "order 1234567812345678"},
		{"too long digit run", "id 41111111111111110000", "id 41111111111111110000"},
		{"short number", "total 12345", "total 12345"},
		{"decimal fraction", "pi 3.4111111111111111", "pi 3.4111111111111111"},
		{"date", "2024-01-15", "2024-01-15"},
		{"email", "write to jane.doe@example.com now", "write to j***@example.com now"},
		{"email percent-encoded", "/u?mail=jane%40example.co.uk", "/u?mail=j***%40example.co.uk"},
		{"two emails", "a@b.io, bob@shop.example", "a***@b.io, b***@shop.example"},
		{"masked stays masked", "j***@example.com ************1111", "j***@example.com ************1111"},
		{"not an email", "user@localhost", "user@localhost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Text(tt.in); got != tt.want {
				t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedactor_Body(t *testing.T) {
	r, err := NewRedactor([]string{"$..card_number", "$.customer.phone", "$.items[*].secret", "$['odd key']"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, in, want string
	}{
		{"untouched JSON keeps its bytes", `{"b": 1,  "a": [1, 2]}`, `{"b": 1,  "a": [1, 2]}`},
		{"deep path, any depth", `{"pay":{"card_number":"5500 0000 0000 0004x"},"card_number":"1"}`, `{"card_number":"[redacted]","pay":{"card_number":"[redacted]"}}`},
		{"exact path only", `{"customer":{"phone":"555-0100"},"phone":"555-0101"}`, `{"customer":{"phone":"[redacted]"},"phone":"555-0101"}`},
		{"array wildcard", `{"items":[{"secret":"s1","n":1},{"secret":"s2"}]}`, `{"items":[{"n":1,"secret":"[redacted]"},{"secret":"[redacted]"}]}`},
		{"quoted member", `{"odd key":"x","other":"y"}`, `{"odd key":"[redacted]","other":"y"}`},
		{"built-in in any string and number", `{"note":"mail jane@example.com","pan":4111111111111111,"order":1234567812345678}`, `{"note":"mail j***@example.com","order":1234567812345678,"pan":"************1111"}`},
		{"truncated JSON as text, keys still masked", `{"card_number": "9999", "email": "jane@example.com", "x": "4111 1111 1111 1111`, `{"card_number": "[redacted]", "email": "j***@example.com", "x": "**** **** **** 1111`},
		{"plain text", "Hello jane@example.com, card 4111111111111111", "Hello j***@example.com, card ************1111"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(r.Body([]byte(tt.in))); got != tt.want {
				t.Errorf("Body(%s)\n got %s\nwant %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedactor_Difference(t *testing.T) {
	r, err := NewRedactor([]string{"$..email", "$.customer.phone"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   diff.Difference
		want string
	}{
		{"value at a redacted path", diff.Difference{Path: "$.users[3].email", Kind: diff.Changed, Legacy: "secret", New: "other"},
			`{"path":"$.users[3].email","kind":"changed","legacy":"[redacted]","new":"[redacted]"}`},
		{"value under a redacted ancestor", diff.Difference{Path: "$.customer.phone.ext", Kind: diff.Changed, Legacy: "12", New: "13"},
			`{"path":"$.customer.phone.ext","kind":"changed","legacy":"[redacted]","new":"[redacted]"}`},
		{"object containing a redacted path", diff.Difference{Path: "$.customer", Kind: diff.Missing, Legacy: map[string]any{"phone": "555", "name": "Jo"}},
			`{"path":"$.customer","kind":"missing","legacy":{"name":"Jo","phone":"[redacted]"}}`},
		{"card in a changed value", diff.Difference{Path: "$.note", Kind: diff.Changed, Legacy: "card 4111 1111 1111 1111", New: json.Number("4111111111111111")},
			`{"path":"$.note","kind":"changed","legacy":"card **** **** **** 1111","new":"************1111"}`},
		{"float card number", diff.Difference{Path: "$.n", Kind: diff.Changed, Legacy: float64(4111111111111111), New: float64(7)},
			`{"path":"$.n","kind":"changed","legacy":"************1111","new":7}`},
		{"odd key quoted as the diff engine does", diff.Difference{Path: `$["we\"ird key"].email`, Kind: diff.Changed, Legacy: "x", New: "y"},
			`{"path":"$[\"we\\\"ird key\"].email","kind":"changed","legacy":"[redacted]","new":"[redacted]"}`},
		{"text body line", diff.Difference{Path: "body:L3", Kind: diff.Changed, Legacy: "email: jane@example.com", New: "email: jo@example.com"},
			`{"path":"body:L3","kind":"changed","legacy":"email: j***@example.com","new":"email: j***@example.com"}`},
		// A sensitive header a route compares: cookies keep their names and
		// Set-Cookie its attributes, everything else of it is masked.
		{"set-cookie keeps name and attributes", diff.Difference{Path: "header.Set-Cookie", Kind: diff.Changed,
			Legacy: "sid=LEGACYSECRET; Path=/; HttpOnly", New: "sid=NEWSECRET; Path=/; Secure; HttpOnly; SameSite=Lax"},
			`{"path":"header.Set-Cookie","kind":"changed","legacy":"sid=[redacted]; Path=/; HttpOnly","new":"sid=[redacted]; Path=/; Secure; HttpOnly; SameSite=Lax"}`},
		{"set-cookie joined, expires date kept", diff.Difference{Path: "header.Set-Cookie", Kind: diff.Extra,
			New: "sid=S1; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Path=/, theme=S2; Max-Age=60"},
			`{"path":"header.Set-Cookie","kind":"extra","new":"sid=[redacted]; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Path=/, theme=[redacted]; Max-Age=60"}`},
		{"set-cookie unknown attribute and bare value masked", diff.Difference{Path: "header.Set-Cookie", Kind: diff.Missing,
			Legacy: "SECRET1; Token=SECRET2; odd SECRET3, SECRET4"},
			`{"path":"header.Set-Cookie","kind":"missing","legacy":"[redacted]; Token=[redacted]; [redacted], [redacted]"}`},
		{"cookie masks every value", diff.Difference{Path: "header.cookie", Kind: diff.Changed, Legacy: "sid=S1; Path=S2", New: "sid=S3"},
			`{"path":"header.cookie","kind":"changed","legacy":"sid=[redacted]; Path=[redacted]","new":"sid=[redacted]"}`},
		{"authorization masked whole", diff.Difference{Path: "header.Authorization", Kind: diff.Changed, Legacy: "Bearer S1", New: "Basic S2"},
			`{"path":"header.Authorization","kind":"changed","legacy":"[redacted]","new":"[redacted]"}`},
		{"other header gets built-in detection", diff.Difference{Path: "header.X-Customer", Kind: diff.Changed, Legacy: "jane@example.com", New: "jo"},
			`{"path":"header.X-Customer","kind":"changed","legacy":"j***@example.com","new":"jo"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := json.Marshal(r.Difference(tt.in))
			if got := string(b); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// prettyCustomer is a pretty-printed JSON body whose customer object
// spans several lines.
const prettyCustomer = `{
  "customer": {
    "name": "Jo",
    "ssn": "123-45-6789"
  },
  "items": [
    {"sku": "A1", "qty": 2}
  ]
}`

func TestRedactor_BodyCutShort(t *testing.T) {
	r, err := NewRedactor([]string{"$.customer", "$.items[*].sku"})
	if err != nil {
		t.Fatal(err)
	}
	cut := func(at string) string { return prettyCustomer[:strings.Index(prettyCustomer, at)] }
	tests := []struct {
		name, in, want string
	}{
		{"selected object masked whole", cut(`"A1"`) + `"A`,
			"{\n  \"customer\": \"[redacted]\",\n  \"items\": [\n    {\"sku\": \"[redacted]\""},
		{"cut inside a selected object", cut(`123`) + "123-4",
			"{\n  \"customer\": \"[redacted]\""},
		{"cut inside a selected value", cut(`"A1"`) + `"A1", "q`,
			"{\n  \"customer\": \"[redacted]\",\n  \"items\": [\n    {\"sku\": \"[redacted]\", \"q"},
		{"syntax error masks the rest", `{"a": 1 "customer": {"ssn": "123-45-6789"}`,
			`{"a": 1 "[redacted]"`},
		{"built-in detection in the rest", `{"note": "jane@example.com", "x": "4111 1111 1111 1111`,
			`{"note": "j***@example.com", "x": "**** **** **** 1111`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(r.Outcome(diff.Outcome{Legacy: diff.Response{Body: []byte(tt.in), Truncated: true}}).Legacy.Body)
			if got != tt.want {
				t.Errorf("body %q\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
	t.Run("no part of a selected value at any cut", func(t *testing.T) {
		for i := range len(prettyCustomer) {
			got := string(r.Outcome(diff.Outcome{Legacy: diff.Response{Body: []byte(prettyCustomer[:i]), Truncated: true}}).Legacy.Body)
			for _, leak := range []string{"na", "Jo", "ss", "123", "A1"} {
				if strings.Contains(got, leak) {
					t.Fatalf("cut at %d holds %q: %q", i, leak, got)
				}
			}
		}
	})
}

func TestRedactor_OutcomeLineDifferences(t *testing.T) {
	r, err := NewRedactor([]string{"$.customer"})
	if err != nil {
		t.Fatal(err)
	}
	legacy := prettyCustomer[:strings.Index(prettyCustomer, `"A1"`)]
	newer := strings.ReplaceAll(legacy, "123-45-6789", "987-65-4321")
	newer = strings.ReplaceAll(newer, `"items"`, `"lines"`)
	o := diff.Outcome{
		Legacy: diff.Response{Status: 200, Body: []byte(legacy), Truncated: true},
		New:    diff.Response{Status: 200, Body: []byte(newer), Truncated: true},
		Differences: []diff.Difference{
			{Path: "body:L4", Kind: diff.Changed, Legacy: `    "ssn": "123-45-6789"`, New: `    "ssn": "987-65-4321"`},
			{Path: "body:L6", Kind: diff.Changed, Legacy: `  "items": [`, New: `  "lines": [`},
			{Path: "body:L7", Kind: diff.Extra, New: `    "not in the body"`},
			{Path: "body:L8", Kind: diff.Missing, Legacy: `    {"sk`},
		},
	}
	tests := []struct {
		name        string
		legacy, new any
	}{
		{"line inside a selected object", Masked, Masked},
		{"line outside", `  "items": [`, `  "lines": [`},
		{"line not in its body", nil, Masked},
		{"line cut short", `    {"sk`, nil},
	}
	got := r.Outcome(o).Differences
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := got[i]; d.Legacy != tt.legacy || d.New != tt.new {
				t.Errorf("%s = %q -> %q, want %q -> %q", d.Path, d.Legacy, d.New, tt.legacy, tt.new)
			}
		})
	}
}

func TestRedactor_URLAndHeader(t *testing.T) {
	r, err := NewRedactor([]string{"$..card_number", "$..token"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.URL("/pay?card_number=5500000000000004&token=abc&q=1"), "/pay?card_number=[redacted]&token=[redacted]&q=1"; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	if got, want := r.URL("/users/jane@example.com/cards/4111111111111111"), "/users/j***@example.com/cards/************1111"; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	h := r.Header(map[string][]string{"Set-Cookie": {"sid=1"}, "Authorization": {"Bearer x"}, "X-Customer": {"jane@example.com"}, "Content-Type": {"application/json"}})
	b, _ := json.Marshal(h)
	if got, want := string(b), `{"Authorization":["[redacted]"],"Content-Type":["application/json"],"Set-Cookie":["[redacted]"],"X-Customer":["j***@example.com"]}`; got != want {
		t.Errorf("Header = %s, want %s", got, want)
	}
}

func TestRedactor_Outcome(t *testing.T) {
	r, err := NewRedactor(nil)
	if err != nil {
		t.Fatal(err)
	}
	in := diff.Outcome{
		URL:         "/x?email=jane@example.com",
		Legacy:      diff.Response{Body: []byte(`{"pan":"4111111111111111"}`), Err: "dial jane@example.com"},
		New:         diff.Response{Body: []byte(`4111111111111111`), Truncated: true},
		Differences: []diff.Difference{{Path: "$.pan", Kind: diff.Changed, Legacy: "4111111111111111"}},
	}
	orig, _ := json.Marshal(in)
	out := r.Outcome(in)
	b, _ := json.Marshal(out)
	for _, secret := range []string{"4111111111111111", "jane@"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("redacted outcome still holds %q: %s", secret, b)
		}
	}
	if again, _ := json.Marshal(in); string(again) != string(orig) {
		t.Errorf("Outcome modified its argument:\n%s\n%s", orig, again)
	}
}

func TestNewRedactor_BadPaths(t *testing.T) {
	_, err := NewRedactor([]string{"$..ok", "card_number", "$.a[x]", "$", "$.a.", "$['open"})
	if !errors.Is(err, ErrBadRedactPath) {
		t.Fatalf("err = %v, want ErrBadRedactPath", err)
	}
	for _, p := range []string{`"card_number"`, `"$.a[x]"`, `"$"`, `"$.a."`, `"$['open"`} {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error does not name %s:\n%v", p, err)
		}
	}
	if strings.Contains(err.Error(), `"$..ok"`) {
		t.Errorf("good path reported as bad:\n%v", err)
	}
}

func FuzzRedactor_Text(f *testing.F) {
	for _, s := range []string{"4111 1111 1111 1111", "jane@example.com", "1234-5678", `{"card_number": "4`, "next=%2Fcb%3Ftoken%3Dabc%26x%3D1", "a%253Dtoken%253D%2526", "https://u:p@h.io/x?n=https%3A%2F%2Fu%3Ap%40h", "x Authorization: Basic abc== for y\nCookie: a=b", "-----BEGIN PRIVATE KEY-----\nab\n-----END PRIVATE KEY-----", `<a:Password x="1"><![CDATA[s]]></a:Password> k=v password="a b`, "[password] => a b\n{'token': 'x'} secret = y", `x {"pass\u0077ord": "a", "b\u0022": 1}`} {
		f.Add(s)
	}
	r, _ := NewRedactor([]string{"$..card_number"})
	f.Fuzz(func(t *testing.T, s string) {
		out := r.Text(s)
		if again := r.Text(out); again != out {
			t.Errorf("Text not idempotent: %q -> %q -> %q", s, out, again)
		}
	})
}

func FuzzRedactor_Body(f *testing.F) {
	for _, s := range []string{prettyCustomer, `{"customer": {"ssn": "1`, `[{"customer": [1, {"a": 2}]}, 3`, `{"a": 1 "customer": 2}`, `{"customer"`, "--b\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\nabc\r\n--b--\r\n", `[{"name":"Cookie","value":["a"]}]`,
		"--b\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\n&\r\n--b+x@y.io",
		"+<password => <![CDATA[--b\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\nAuthorization: "} {
		f.Add(s)
	}
	r, _ := NewRedactor([]string{"$.customer", "$..sku"})
	f.Fuzz(func(t *testing.T, s string) {
		out := r.Body([]byte(s))
		if again := r.Body(out); !bytes.Equal(again, out) {
			t.Errorf("Body not idempotent: %q -> %q -> %q", s, out, again)
		}
	})
}

// TestRedactor_DropsEncodedBody: a body still in a content coding cannot
// be read, so it cannot be redacted, and is not stored.
func TestRedactor_DropsEncodedBody(t *testing.T) {
	r, err := NewRedactor(nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(`{"email":"jane.doe@example.com","card":"4111111111111111"}`))
	zw.Close()
	o := diff.Outcome{Legacy: diff.Response{Status: 200, Header: map[string][]string{"Content-Encoding": {"gzip"}}, Body: buf.Bytes()},
		New: diff.Response{Status: 200, Header: map[string][]string{"Content-Encoding": {"identity"}}, Body: []byte(`{"ok":true}`)}}
	got := r.Outcome(o)
	if got.Legacy.Body != nil {
		t.Errorf("a gzip body was stored: %d bytes", len(got.Legacy.Body))
	}
	if string(got.New.Body) != `{"ok":true}` {
		t.Errorf("an identity body was changed: %q", got.New.Body)
	}
}

// TestRedactor_CredentialsByDefault: members and query parameters named
// like a credential are masked on every route, with no redact paths
// configured.
func TestRedactor_CredentialsByDefault(t *testing.T) {
	r, err := NewRedactor(nil)
	if err != nil {
		t.Fatal(err)
	}
	body := string(r.Body([]byte(`{"user":"jo","password":"hunter2","auth":{"access_token":"eyJabc","refreshToken":"r1"},"items":[{"api_key":"k-123"}]}`)))
	url := r.URL("/api/login?user=jo&access_token=eyJabc&page=2")
	for _, secret := range []string{"hunter2", "eyJabc", "r1", "k-123"} {
		if strings.Contains(body, secret) || strings.Contains(url, secret) {
			t.Errorf("%q kept: body %s, URL %s", secret, body, url)
		}
	}
	if !strings.Contains(body, `"user":"jo"`) || !strings.Contains(url, "page=2") {
		t.Errorf("more than the credentials masked: body %s, URL %s", body, url)
	}
}

// TestRedactor_CredentialNamesAnyCase: a credential is found by its name
// whatever its case and word separators ("Password", "ACCESS_TOKEN",
// "authToken", "session-token", "Api-Key", "Authorization"), in a body,
// a body cut short, a difference and a query string; names that merely
// contain a credential word ("token_type", "tokens") are kept.
func TestRedactor_CredentialNamesAnyCase(t *testing.T) {
	r, err := NewRedactor(nil)
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{"hunter2", "AT-1", "AUTH-2", "SESS-3", "KEY-4", "BEARER-5", "CSRF-6"}
	body := string(r.Body([]byte(`{"Password":"hunter2","ACCESS_TOKEN":"AT-1","authToken":"AUTH-2","session-token":"SESS-3",` +
		`"user":{"Api-Key":"KEY-4"},"headers":{"Authorization":"Bearer BEARER-5"},"csrfToken":"CSRF-6","token_type":"bearer","tokens":3}`)))
	cut := string(r.Body([]byte(`{"token_type": "bearer", "Password": "hunter2", "csrfToken": "CSRF-6", "more": "ab`)))
	url := r.URL("/cb?Token=AT-1&API_KEY=KEY-4&Session_Token=SESS-3&page=2&token_type=bearer")
	d := r.Difference(diff.Difference{Path: "$.auth.AccessToken", Kind: diff.Changed, Legacy: "AT-1", New: "AUTH-2"})
	dj, _ := json.Marshal(d)
	for _, where := range []struct{ name, got string }{{"body", body}, {"cut body", cut}, {"URL", url}, {"difference", string(dj)}} {
		for _, s := range secrets {
			if strings.Contains(where.got, s) {
				t.Errorf("%s keeps %q: %s", where.name, s, where.got)
			}
		}
	}
	for _, keep := range []string{`"token_type":"bearer"`, `"tokens":3`} {
		if !strings.Contains(body, keep) {
			t.Errorf("body lost %s: %s", keep, body)
		}
	}
	if !strings.Contains(cut, `"token_type": "bearer"`) || !strings.Contains(url, "page=2&token_type=bearer") {
		t.Errorf("more than the credentials masked: cut body %s, URL %s", cut, url)
	}
}

// TestRedactor_CredentialHeaders: headers named like a credential
// (X-Auth-Token, X-Csrf-Token, X-Amz-Security-Token, X-Client-Secret)
// are masked whole, stored and as a compared header's difference, as
// Authorization is.
func TestRedactor_CredentialHeaders(t *testing.T) {
	r, err := NewRedactor(nil)
	if err != nil {
		t.Fatal(err)
	}
	h := r.Header(map[string][]string{"X-Auth-Token": {"TOK-1"}, "X-Csrf-Token": {"CSRF-2"}, "X-Amz-Security-Token": {"AMZ-3"},
		"X-Client-Secret": {"SEC-4"}, "X-Request-Id": {"req-5"}})
	hj, _ := json.Marshal(h)
	d := r.Difference(diff.Difference{Path: "header.X-Auth-Token", Kind: diff.Changed, Legacy: "TOK-1", New: "TOK-6"})
	dj, _ := json.Marshal(d)
	for _, s := range []string{"TOK-1", "CSRF-2", "AMZ-3", "SEC-4", "TOK-6"} {
		if strings.Contains(string(hj), s) || strings.Contains(string(dj), s) {
			t.Errorf("%q kept: header %s, difference %s", s, hj, dj)
		}
	}
	if got := h["X-Request-Id"]; len(got) != 1 || got[0] != "req-5" {
		t.Errorf("X-Request-Id = %q, want it kept", got)
	}
}

// TestRedactor_CredentialsInText: a credential written name=value in text
// (a form-encoded body, an error, a line of a text body, a Location
// header) is masked, as it is in a query string.
func TestRedactor_CredentialsInText(t *testing.T) {
	r, err := NewRedactor(nil)
	if err != nil {
		t.Fatal(err)
	}
	o := r.Outcome(diff.Outcome{
		Legacy: diff.Response{Status: 200, Header: map[string][]string{"Content-Type": {"application/x-www-form-urlencoded"}},
			Body: []byte("access_token=GHO-1&scope=repo&token_type=bearer")},
		New: diff.Response{Status: 302, Header: map[string][]string{"Location": {"https://app.example/cb#state=s&id_token=IDT-2"}},
			Body: []byte("user=jo password=HUNTER-3\n"), Err: "login failed: api_key=KEY-4 refused"},
		Differences: []diff.Difference{{Path: "body:L1", Kind: diff.Changed, Legacy: "access_token=GHO-1&scope=repo&token_type=bearer", New: "user=jo password=HUNTER-3"}},
	})
	all := strings.Join([]string{string(o.Legacy.Body), string(o.New.Body), o.New.Err, strings.Join(o.New.Header["Location"], ""),
		o.Differences[0].Legacy.(string), o.Differences[0].New.(string)}, "\n")
	for _, s := range []string{"GHO-1", "IDT-2", "HUNTER-3", "KEY-4"} {
		if strings.Contains(all, s) {
			t.Errorf("%q kept:\n%s", s, all)
		}
	}
	for _, keep := range []string{"scope=repo&token_type=bearer", "user=jo", "state=s"} {
		if !strings.Contains(all, keep) {
			t.Errorf("%q masked too:\n%s", keep, all)
		}
	}
}

// TestRedactor_BodyWithBOM: a JSON body that starts with a UTF-8 byte
// order mark is still redacted as JSON, whole or cut short: a selected
// object or array over several lines is masked whole.
func TestRedactor_BodyWithBOM(t *testing.T) {
	r, err := NewRedactor([]string{"$.customer.phone"})
	if err != nil {
		t.Fatal(err)
	}
	body := "\xef\xbb\xbf{\n  \"customer\": {\n    \"phone\": {\n      \"number\": \"555-0100\"\n    }\n  },\n  \"secret\": [\n    \"S-1\"\n  ],\n  \"note\": \"ok\"\n}"
	for name, in := range map[string]string{"whole": body, "cut short": body[:len(body)-4]} {
		got := string(r.Body([]byte(in)))
		for _, s := range []string{"555-0100", "S-1"} {
			if strings.Contains(got, s) {
				t.Errorf("%s: %q kept:\n%s", name, s, got)
			}
		}
		if !strings.Contains(got, `"note"`) {
			t.Errorf("%s: more than the selected values masked:\n%s", name, got)
		}
	}
}

// TestRedactor_CredentialsInHTML: the anti-forgery tokens legacy web apps
// put on every page (Rails' <meta name="csrf-token" content>, Django's
// csrfmiddlewaretoken and Laravel's _token hidden inputs) are masked in a
// stored HTML body and in its line differences; other attributes stay.
func TestRedactor_CredentialsInHTML(t *testing.T) {
	r, err := NewRedactor(nil)
	if err != nil {
		t.Fatal(err)
	}
	page := `<html><head><meta name="csrf-token" content="RAILS-1"><meta name="viewport" content="width=device-width"></head>` + "\n" +
		`<form><input type="hidden" name="csrfmiddlewaretoken" value="DJANGO-2"><input type='hidden' value='LARAVEL-3' name='_token'>` +
		`<input name="q" value="shoes"></form></html>`
	o := r.Outcome(diff.Outcome{
		Legacy:      diff.Response{Status: 200, Header: map[string][]string{"Content-Type": {"text/html"}}, Body: []byte(page)},
		Differences: []diff.Difference{{Path: "body:L1", Kind: diff.Changed, Legacy: `<meta name="csrf-token" content="RAILS-1">`, New: `<meta name="csrf-token" content="RAILS-9">`}},
	})
	all := string(o.Legacy.Body) + "\n" + o.Differences[0].Legacy.(string) + "\n" + o.Differences[0].New.(string)
	for _, s := range []string{"RAILS-1", "DJANGO-2", "LARAVEL-3", "RAILS-9"} {
		if strings.Contains(all, s) {
			t.Errorf("%q kept:\n%s", s, all)
		}
	}
	for _, keep := range []string{`content="width=device-width"`, `name="q" value="shoes"`, `name="csrf-token"`} {
		if !strings.Contains(all, keep) {
			t.Errorf("%q masked too:\n%s", keep, all)
		}
	}
}

// TestRedactor_OrdinaryDataKept: what looks a little like a credential
// but is not one stays as it is, so its differences stay readable: ids,
// prices, cursors, dates, names that merely contain a credential word,
// prose, echoed headers that are not credentials, XML elements and URLs
// with a port or an e-mail in the query.
func TestRedactor_OrdinaryDataKept(t *testing.T) {
	r, err := NewRedactor([]string{"$..card_number"})
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{
		"/api/orders/1234567812345678?page=2&per_page=50&sort=-created_at",
		"/search?q=a%3Db%26c&next=%2Forders%3Fpage%3D3%26status%3Dshipped",
		"https://shop.example:8443/cart?return=https%3A%2F%2Fshop.example%2Fa%3Fb%3D1",
		"token_type=bearer&expires_in=3600&scope=read+write",
		"Content-Type: text/html\r\nX-Request-Id: r-42\r\nLocation: /orders?page=2",
		"Status: shipped at 12:30:00 on 2025-03-14, total 1999.95",
		"Use bearer authentication; tokens expire after one hour.",
		"<order><id>7</id><status>shipped</status><tokens>3</tokens></order>",
		`level=info msg="order placed" order_id=7 amount="19.99"`,
		"eyJhbGciOiJIUzI1NiJ9 alone is a header, not a token",
	}
	for _, in := range texts {
		if got := r.Text(in); got != in {
			t.Errorf("Text changed ordinary text:\n  in  %q\n  got %q", in, got)
		}
	}
	body := `{"order_id":1234567812345678,"total":"19.99","next_cursor":"c2FtcGxl","tokens_used":12,"token_type":"bearer",` +
		`"cookie_consent":true,"links":{"next":"https://api.example/orders?page=3&sort=asc"},"note":"key: value"}`
	if got := string(r.Body([]byte(body))); got != body {
		t.Errorf("Body changed ordinary JSON:\n  in  %s\n  got %s", body, got)
	}
}

// TestRedactor_ShortCredentialNamesAndBareValues: "sid" (the session id
// parameter of many PHP and Java shops, ?sid=…) and "pwd" are masked as
// whole names, in a URL, a form and JSON, and a credential written
// "name: value" in the middle of a text line is masked as it is at the
// start of one. All three reached reports in clear.
func TestRedactor_ShortCredentialNamesAndBareValues(t *testing.T) {
	r, err := NewRedactor(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{"/cart?sid=S3SS10N&x=1", "/cart?sid=[redacted]&x=1"},
		{"/cart?SID=S3SS10N", "/cart?SID=[redacted]"},
		{"/login?user=bob&pwd=zz9", "/login?user=bob&pwd=[redacted]"},
		{"/stores?side=left&sidebar=1", "/stores?side=left&sidebar=1"},
	} {
		if got := r.URL(tc.in); got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	o := r.Outcome(diff.Outcome{
		Legacy: diff.Response{Status: 200, Header: map[string][]string{"Content-Type": {"text/plain"}},
			Body: []byte("login ok for bob, password: HUNTER-1 accepted\nuser bob (pwd=ZZ-2) kept: yes\nnote: ok\n")},
		New: diff.Response{Status: 200, Header: map[string][]string{"Content-Type": {"application/json"}},
			Body: []byte(`{"sid":"SID-3","side":"left","Pwd":"PWD-4"}`)},
	})
	all := string(o.Legacy.Body) + "\n" + string(o.New.Body)
	for _, s := range []string{"HUNTER-1", "ZZ-2", "SID-3", "PWD-4"} {
		if strings.Contains(all, s) {
			t.Errorf("%q kept:\n%s", s, all)
		}
	}
	for _, keep := range []string{"login ok for bob", "accepted", "kept: yes", "note: ok", `"side":"left"`} {
		if !strings.Contains(all, keep) {
			t.Errorf("%q masked too:\n%s", keep, all)
		}
	}
}
