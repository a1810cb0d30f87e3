package reports

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/banyanhq/banyan/diff"
)

// Masked replaces a value selected by a redaction path.
const Masked = "[redacted]"

// ErrBadRedactPath is returned by NewRedactor for a path it cannot parse.
var ErrBadRedactPath = errors.New("bad redact path")

// sensitiveHeaders are masked whole: they carry credentials, not data.
// So is any header named like a credential (isSensitiveHeader).
var sensitiveHeaders = map[string]bool{
	"Authorization":       true,
	"Proxy-Authorization": true,
	"Cookie":              true,
	"Set-Cookie":          true,
	"X-Api-Key":           true,
}

// isSensitiveHeader reports whether a header, by its canonical name,
// carries a credential: one of sensitiveHeaders, or named like one
// (X-Auth-Token, X-Csrf-Token, X-Amz-Security-Token, X-Client-Secret).
func isSensitiveHeader(name string) bool {
	return sensitiveHeaders[name] || isCredentialName(name)
}

// credentialPaths are masked on every route, besides reports.redact:
// members (and query parameters) named like a credential, at any depth;
// isCredentialName also finds them in any case and spelling.
var credentialPaths = []string{
	"$..password", "$..passwd", "$..secret", "$..client_secret", "$..clientSecret",
	"$..token", "$..access_token", "$..accessToken", "$..refresh_token", "$..refreshToken",
	"$..id_token", "$..api_key", "$..apiKey", "$..apikey", "$..cvv", "$..cvc",
}

// credentialSuffixes end the names of members and query parameters that
// hold a credential, compared without case and without '_', '-' and
// spaces ("Password", "ACCESS_TOKEN", "authToken", "x-api-key",
// "clientSecret", "Authorization", "api key", "password_confirmation",
// "SecretAccessKey", "private_key", and session ids and cookies: "session_id", "PHPSESSID", "jsessionid",
// "Set-Cookie"); credentialWords are such names whole: card codes, "pwd",
// and "sid", the session id parameter of many older PHP and Java shops
// (?sid=…), too short to be taken as the end of a longer name.
var (
	credentialSuffixes = []string{"password", "passwd", "passwordconfirmation", "secret", "token", "apikey", "authorization",
		"sessionid", "sessid", "cookie", "secretkey", "secretaccesskey", "privatekey"}
	credentialWords = []string{"cvv", "cvc", "pwd", "sid"}
)

// credentialRE matches the same names in text (a query string, an error,
// a line of a text body), for the regular expressions of Redactor.
const credentialRE = `(?i:[a-z0-9_\-]*(?:pass(?:word|wd)|password[_\-]?confirmation|secret|token|api[_\-]?key|authorization|session[_\-]?id|sessid|cookie|secret[_\-]?(?:access[_\-]?)?key|private[_\-]?key)|cvv|cvc|pwd|sid)`

// isCredentialName reports whether a member or parameter name is named
// like a credential (see credentialSuffixes).
func isCredentialName(name string) bool {
	for _, w := range credentialWords {
		if n, ok := foldSuffix(name, w); ok && n == 0 {
			return true
		}
	}
	for _, suf := range credentialSuffixes {
		if _, ok := foldSuffix(name, suf); ok {
			return true
		}
	}
	return false
}

// foldSuffix reports whether name, read without case and without '_',
// '-' and spaces, ends with the lower-case suf, and how many letters and
// digits come before that suffix.
func foldSuffix(name, suf string) (before int, ok bool) {
	i := len(name) - 1
	for j := len(suf) - 1; j >= 0; j-- {
		for i >= 0 && isWordSep(name[i]) {
			i--
		}
		if i < 0 {
			return 0, false
		}
		c := name[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != suf[j] {
			return 0, false
		}
		i--
	}
	for ; i >= 0; i-- {
		if !isWordSep(name[i]) {
			before++
		}
	}
	return before, true
}

// isWordSep reports whether c separates the words of a name ("api_key",
// "api-key", "api key" from a form's "api+key").
func isWordSep(c byte) bool { return c == '_' || c == '-' || c == ' ' }

// Redactor masks secrets before anything is stored or logged: values at
// the configured JSON paths, and anywhere in text card numbers (13–19
// digits, optionally split by spaces or dashes, passing the Luhn check;
// only the last 4 digits are kept) and e-mail addresses ("j***@example.com").
//
// The zero Redactor, and a nil *Redactor, apply the built-in detection
// only. A Redactor is immutable and safe for concurrent use.
type Redactor struct {
	paths [][]segment
	// keys are the last names of the paths ("card_number" for
	// "$..card_number"); in text that is not a JSON body (a query string,
	// an error, a line of a text body) their values are masked wherever
	// they appear.
	keys    []string
	jsonKey *regexp.Regexp // "key": value
}

// NewRedactor parses JSON paths such as "$..card_number", "$..email",
// "$.customer.phone" or "$.items[*].card": "." selects a member, ".."
// any descendant, "*" and "[*]" any member or element, "[2]" one element,
// "['a b']" a member with any name. Every bad path is reported at once.
func NewRedactor(paths []string) (*Redactor, error) {
	r := &Redactor{}
	paths = append(slices.Clone(credentialPaths), paths...)
	var errs []error
	seen := map[string]bool{}
	for _, p := range paths {
		segs, err := parsePath(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w %q: %v", ErrBadRedactPath, p, err))
			continue
		}
		r.paths = append(r.paths, segs)
		if last := segs[len(segs)-1]; last.kind == segName && !seen[last.name] {
			seen[last.name] = true
			r.keys = append(r.keys, last.name)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(r.keys) > 0 {
		alt := make([]string, len(r.keys), len(r.keys)+1)
		for i, k := range r.keys {
			alt[i] = regexp.QuoteMeta(k)
		}
		names := strings.Join(append(alt, credentialRE), "|")
		r.jsonKey = regexp.MustCompile(`("(?:` + names + `)"\s*:\s*)("(?:[^"\\]|\\.)*"?|[^,}\]\s]+)`)
	}
	return r, nil
}

// Outcome returns a copy of o with both bodies, both headers, the URL,
// the error texts and every difference redacted. o is not modified.
//
// Line differences ("body:L12") of a JSON body compared as text (a
// truncated one, say) are masked whole when the line holds, or is part of,
// a value a redact path selects, or when the line cannot be found in the
// body it came from.
func (r *Redactor) Outcome(o diff.Outcome) diff.Outcome {
	if len(o.Differences) > 0 {
		var legacy, new *bodyLines
		for _, d := range o.Differences {
			if isLinePath(d.Path) {
				legacy, new = r.bodyLines(o.Legacy.Body), r.bodyLines(o.New.Body)
				break
			}
		}
		var bodies []any // decoded when a difference may be a pair's value
		ds := make([]diff.Difference, len(o.Differences))
		for i, d := range o.Differences {
			ds[i] = r.Difference(d)
			if isLinePath(d.Path) {
				ds[i].Legacy = r.lineValue(legacy, d.Legacy)
				ds[i].New = r.lineValue(new, d.New)
			}
			// The value of a name/value pair: its name is in the bodies.
			at, ok := parseConcrete(d.Path)
			if !ok || !isPairValuePath(at) {
				continue
			}
			if bodies == nil {
				for _, b := range [][]byte{o.Legacy.Body, o.New.Body} {
					v, _ := decodeJSON(b)
					bodies = append(bodies, v)
				}
			}
			if r.inSecretPair(bodies[0], at) || r.inSecretPair(bodies[1], at) {
				if d.Legacy != nil {
					ds[i].Legacy = Masked
				}
				if d.New != nil {
					ds[i].New = Masked
				}
			}
		}
		o.Differences = ds
	}
	o.URL = r.URL(o.URL)
	o.Legacy = r.response(o.Legacy)
	o.New = r.response(o.New)
	return o
}

func (r *Redactor) response(resp diff.Response) diff.Response {
	resp.Body = r.Body(resp.Body)
	// A body still in a content coding (banyan's shadowing stores bodies
	// decoded; one it could not decode has none) cannot be read, so it
	// cannot be redacted: it is not stored.
	for k, v := range resp.Header {
		if strings.EqualFold(k, "Content-Encoding") && len(v) > 0 && !strings.EqualFold(strings.TrimSpace(strings.Join(v, ",")), "identity") {
			resp.Body = nil
		}
	}
	resp.Header = r.Header(resp.Header)
	resp.Err = r.Text(resp.Err)
	return resp
}

// Difference redacts both values of d (and its path, should a member name
// hold an e-mail address). A value at, or inside, a redacted path is
// masked; anything else gets the built-in detection.
//
// The values of a sensitive header (Authorization, Cookie, Set-Cookie...)
// compared by a route are masked as in Header, except that cookies keep
// their names and Set-Cookie its attributes: "sid=[redacted]; HttpOnly".
func (r *Redactor) Difference(d diff.Difference) diff.Difference {
	d.Path = r.Text(d.Path)
	if name, ok := strings.CutPrefix(d.Path, "header."); ok {
		if name = http.CanonicalHeaderKey(name); isSensitiveHeader(name) {
			d.Legacy = maskCredential(name, d.Legacy)
			d.New = maskCredential(name, d.New)
			return d
		}
	}
	at, ok := parseConcrete(d.Path)
	if !ok {
		// "status", "header.X", "body:L12": no JSON path to match.
		d.Legacy = r.textValue(d.Legacy)
		d.New = r.textValue(d.New)
		return d
	}
	if r.selectsPrefix(at) {
		if d.Legacy != nil {
			d.Legacy = Masked
		}
		if d.New != nil {
			d.New = Masked
		}
		return d
	}
	d.Legacy, _ = r.walk(d.Legacy, at)
	d.New, _ = r.walk(d.New, at)
	return d
}

// textValue applies the built-in and key detection to a value that is not
// under a JSON path (header values, lines of a text body).
func (r *Redactor) textValue(v any) any {
	switch x := v.(type) {
	case string:
		return r.Text(x)
	case nil:
		return nil
	}
	w, _ := r.walk(v, nil)
	return w
}

// Body redacts a response or request body. A JSON body has the paths
// masked and every string and number checked; it is re-encoded only when
// something was masked. JSON cut short (a truncated body) keeps its bytes:
// each value a path selects is replaced by "[redacted]", one cut off runs
// to the end and is replaced whole, and so is everything after a syntax
// error. Any other body is redacted as text.
func (r *Redactor) Body(b []byte) []byte {
	if len(b) == 0 {
		return b
	}
	v, ok := decodeJSON(b)
	if !ok {
		if ranges, ok := r.selectedRanges(b); ok {
			return []byte(maskCards(maskPEMKeys(maskEmails(r.maskCredentialText(maskSpans(string(b), ranges, `"`+Masked+`"`))))))
		}
		return []byte(r.Text(maskSpans(string(b), r.textRanges(b), Masked)))
	}
	out, changed := r.walk(v, []step{})
	if !changed {
		return b
	}
	enc, err := encodeJSON(out)
	if err != nil {
		return []byte(r.Text(string(b)))
	}
	return enc
}

// Header returns a redacted copy of h: credentials (Authorization, Cookie,
// Set-Cookie, and headers named like a credential such as X-Auth-Token)
// are masked whole, other values get the built-in detection.
func (r *Redactor) Header(h map[string][]string) map[string][]string {
	if h == nil {
		return nil
	}
	out := make(map[string][]string, len(h))
	for k, vs := range h {
		c := make([]string, len(vs))
		for i, v := range vs {
			if isSensitiveHeader(http.CanonicalHeaderKey(k)) {
				c[i] = Masked
			} else {
				c[i] = r.Text(v)
			}
		}
		out[k] = c
	}
	return out
}

// maskCredential masks one side's value of a difference at a sensitive
// header; cookies keep their names and Set-Cookie its attributes.
func maskCredential(name string, v any) any {
	s, ok := v.(string)
	switch {
	case v == nil:
		return nil
	case !ok:
		return Masked
	case name == "Set-Cookie":
		return maskCookies(s, true)
	case name == "Cookie":
		return maskCookies(s, false)
	}
	return Masked
}

// cookieAttrs are the Set-Cookie attributes kept as they are, by lower
// case name.
var cookieAttrs = map[string]bool{
	"expires": true, "max-age": true, "domain": true, "path": true, "samesite": true,
	"priority": true, "secure": true, "httponly": true, "partitioned": true,
}

// cookieDateRest is what follows the comma of an Expires date
// ("Wed, 21 Oct 2015 07:28:00 GMT").
var cookieDateRest = regexp.MustCompile(`^\d{1,2}[ -][A-Za-z]{3}[ -]\d{2,4} \d{1,2}:\d{2}:\d{2} GMT$`)

// maskCookies masks every cookie value of a Cookie header (set false) or
// of Set-Cookie headers joined by ", " (set true): "sid=abc; Path=/;
// HttpOnly" becomes "sid=[redacted]; Path=/; HttpOnly". A part that is
// not a known attribute is masked, whole when it has no "=".
func maskCookies(v string, set bool) string {
	var b strings.Builder
	sep := byte(',') // a cookie starts after a comma, and at the start
	afterExpires := false
	for len(v) > 0 {
		j := strings.IndexAny(v, ";,")
		if j < 0 {
			j = len(v)
		}
		part := v[:j]
		t := strings.TrimSpace(part)
		name, _, hasValue := strings.Cut(t, "=")
		name = strings.ToLower(strings.TrimSpace(name))
		switch {
		case t == "":
			b.WriteString(part)
		case set && sep == ',' && afterExpires && cookieDateRest.MatchString(t):
			b.WriteString(part)
		case set && sep == ';' && cookieAttrs[name]:
			b.WriteString(maskCards(maskEmails(part)))
		case hasValue:
			b.WriteString(part[:strings.IndexByte(part, '=')+1] + Masked)
		default:
			b.WriteString(part[:len(part)-len(strings.TrimLeft(part, " \t"))] + Masked)
		}
		afterExpires = set && sep == ';' && name == "expires"
		if j == len(v) {
			break
		}
		sep = v[j]
		b.WriteByte(sep)
		v = v[j+1:]
	}
	return b.String()
}

// URL redacts a request path and query as Text does: query parameters
// named like a credential or like the last member of a redact path are
// masked, also inside an encoded parameter (a redirect target), and the
// built-in detection runs (it also finds "%40"-encoded e-mail addresses).
func (r *Redactor) URL(u string) string {
	return r.Text(u)
}

// Text masks secrets in free text (an error, a header value, a line of a
// text body, a JSON string): card numbers and e-mail addresses, the values
// of JSON members named like a credential or like the last member of a
// redact path ("email": "x" in an error message, also with a \u-escaped
// name), the same names written name=value however encoded
// (maskNamedValues) or in other notations (maskDumped), the text of XML
// and the value of HTML elements so named, the user part of URLs and
// DSNs, JWTs, Basic and Bearer tokens, PEM private keys, and echoed
// credential headers. Only the member's line is seen: a selected object or
// array spread over several lines is not masked whole, which Body and
// Outcome do for JSON bodies. Text is idempotent: masking its result again
// changes nothing.
func (r *Redactor) Text(s string) string {
	if s == "" {
		return s
	}
	if r != nil && r.jsonKey != nil && strings.IndexByte(s, '"') >= 0 {
		s = r.jsonKey.ReplaceAllString(s, `${1}"`+Masked+`"`)
	}
	s = r.maskEscapedMembers(s)
	s = r.maskCredentialText(s)
	s = maskHTMLCredentials(s)
	s = maskPEMKeys(maskEmails(s)) // an address glued to a key's END line
	return maskCards(s)
}

// maskNamedValues masks the value of each name=value pair in s whose name
// is named like a credential or like the last member of a redact path,
// however the pair is written: the name, the "=" and what ends the value
// may be percent-encoded once or more (a redirect target carried in a
// parameter: "next=%2Fcb%3Ftoken%3Dabc%26lang%3Den", or "%253D" twice) or
// \u-escaped (JSON cut short), the name may carry a form's brackets
// ("user[password]", "token[]") or "+" for a space ("api+key"). A value
// ends where its own level of encoding ends it, so "%26lang%3Den" after an
// encoded token stays readable.
func (r *Redactor) maskNamedValues(s string) string {
	if !strings.ContainsAny(s, `=%\`) {
		return s
	}
	keys := r.pathKeys()
	sp := splice{s: s}
	for i := 0; i < len(s); {
		n, level := equalsAt(s, i)
		if n == 0 {
			i++
			continue
		}
		from := i + n
		if strings.HasPrefix(s[from:], Masked) {
			i = from + len(Masked) // masked before: what follows is not its value
			continue
		}
		start := nameStart(s, i)
		if !isSecretName(decodeName(s[start:i]), keys) {
			i = from
			continue
		}
		end := valueEnd(s, from, level)
		if level == 0 && end == from && (start == 0 || strings.IndexByte("?&;#/", s[start-1]) < 0) {
			// A quoted value (password="a b", an attribute): masked
			// inside its quotes. In a query a quote cannot start a value:
			// there it ends the string the URL stands in.
			from, end = quotedValue(s, from)
		}
		if s[from:end] != Masked {
			sp.mask(from, end)
		}
		i = max(end, from)
	}
	return sp.String()
}

// maskCredentialText masks the credentials text can hold outside JSON
// members and HTML elements: name=value pairs (maskNamedValues), the user
// part of URLs and DSNs (maskUserinfo), bearer tokens, JWTs and echoed
// credential headers (maskTokens, maskHeaderLines), PEM private keys
// (maskPEMKeys; again after e-mail addresses are masked) and the
// text of XML elements so named (maskElements).
func (r *Redactor) maskCredentialText(s string) string {
	s = maskPEMKeys(maskUserinfo(r.maskNamedValues(maskTokens(s))))
	if !r.mayNameCredential(s) {
		return s // the rules below look for a name written plainly
	}
	return maskHeaderLines(r.maskElements(r.maskDumped(s)))
}

// credentialStems are what every plainly written credential name and
// credential header contains, without case, by first letter: a text with
// none of them (nor the last member of a redact path) names none.
var credentialStems = map[byte][]string{
	'p': {"pass"}, 's': {"secret", "sess"}, 't': {"token"}, 'k': {"key"},
	'a': {"auth"}, 'c': {"cookie", "cvv", "cvc"},
}

// mayNameCredential reports whether s may hold a plainly written name
// of a credential or of the last member of a redact path.
func (r *Redactor) mayNameCredential(s string) bool {
	for i := 0; i < len(s); i++ {
		for _, w := range credentialStems[lowerASCII(s[i])] {
			if hasPrefixFold(s[i:], w) {
				return true
			}
		}
	}
	for _, k := range r.pathKeys() {
		if containsFold(s, strings.ToLower(k)) {
			return true
		}
	}
	return false
}

// pathKeys returns the last members of the redact paths, none for a nil
// Redactor.
func (r *Redactor) pathKeys() []string {
	if r == nil {
		return nil
	}
	return r.keys
}

// splice builds a copy of s in which spans, given in order from its
// start, are replaced (by Masked, or by what replace is given).
type splice struct {
	s    string
	b    strings.Builder
	last int // the end of the last span replaced, 0 before the first
}

// mask replaces s[from:to] with Masked; from must not come before the
// end of the span masked before.
func (p *splice) mask(from, to int) { p.replace(from, to, Masked) }

// replace replaces s[from:to] with with, as mask does.
func (p *splice) replace(from, to int, with string) {
	p.b.WriteString(p.s[p.last:from])
	p.b.WriteString(with)
	p.last = to
}

// String returns the spliced copy, or s itself when nothing was replaced.
func (p *splice) String() string {
	if p.b.Len() == 0 { // every replacement writes Masked or more
		return p.s
	}
	p.b.WriteString(p.s[p.last:])
	return p.b.String()
}

// maskSpans returns s with each of the ordered, non-overlapping spans
// replaced by with.
func maskSpans(s string, spans [][2]int, with string) string {
	sp := splice{s: s}
	for _, rg := range spans {
		sp.replace(rg[0], rg[1], with)
	}
	return sp.String()
}

// hasPrefixFold reports whether s starts with the lower-case ASCII w in
// any case.
func hasPrefixFold(s, w string) bool {
	if len(s) < len(w) {
		return false
	}
	for j := 0; j < len(w); j++ {
		if lowerASCII(s[j]) != w[j] {
			return false
		}
	}
	return true
}

// dumpKeyRE finds a name and what follows it in the notations data is
// dumped in: "[name] =>", "'name' =>", "'name':", ":name =>", "name = ".
var dumpKeyRE = regexp.MustCompile(`(?:^|[^\w\-.%\\])([\[:'"]?)([A-Za-z_][\w\-.]*)([\]'"]?)([ \t]*(?:=>|=|:)[ \t]*)`)

// maskDumped masks the value of a credential written in the notations an
// error page or a debug body dumps data in: PHP's print_r ("[password] =>
// x", to the end of the line) and var_export ("'password' => 'x'"), a
// Python or Ruby hash ("'password': 'x'", ":api_key => \"x\"",
// "password: \"x\""), an INI or TOML line ("secret = x"), and a log or
// message text ("login failed, password: x"). A quoted value is
// masked inside its quotes, a bare one up to white space or ',' (the end
// of the line after "=>"). "name=value" is maskNamedValues' work,
// "Name: value" at the start of a line maskTokens', and "\"name\": value"
// that of the JSON rules.
func (r *Redactor) maskDumped(s string) string {
	if !strings.ContainsAny(s, "=:") {
		return s
	}
	keys := r.pathKeys()
	sp := splice{s: s}
	for _, m := range dumpKeyRE.FindAllStringSubmatchIndex(s, -1) {
		open, name, close, sep := s[m[2]:m[3]], s[m[4]:m[5]], s[m[6]:m[7]], s[m[8]:m[9]]
		at := m[1]
		if at < sp.last || !isSecretName(name, keys) || strings.HasPrefix(s[at:], Masked) {
			continue
		}
		op := strings.TrimSpace(sep)
		switch open {
		case "[":
			if close != "]" {
				continue
			}
		case `"`, "'":
			if close != open {
				continue
			}
		case ":":
			if close != "" || op != "=>" {
				continue
			}
		default:
			if close != "" {
				continue
			}
		}
		quoted := at < len(s) && (s[at] == '"' || s[at] == '\'')
		switch {
		case op == ":" && open == "" && lineStart(s, m[4]), op == "=" && open == "" && sep == "=":
			continue // maskTokens' work, and maskNamedValues'
		case op == ":" && open == `"`:
			continue // a JSON member: jsonKey's work, or the JSON walk's
		case !quoted && at < len(s) && strings.IndexByte("[{(", s[at]) >= 0:
			continue // a structure, not a value
		}
		from, to := quotedValue(s, at)
		if !quoted {
			from, to = at, at
			for to < len(s) && s[to] != '\n' && s[to] != '\r' && (op == "=>" || strings.IndexByte(" \t,;})]", s[to]) < 0) {
				to++
			}
			if op == "=>" {
				to = at + len(strings.TrimRight(s[at:to], " \t"))
			}
			if _, auth := foldSuffix(name, "authorization"); auth && op == ":" {
				if loc := authValueRE.FindStringIndex(s[at:]); loc != nil {
					to = max(to, at+loc[1]) // "Authorization: Basic x": the scheme and its credential
				}
			}
		}
		if from >= to || s[from:to] == Masked {
			continue
		}
		sp.mask(from, to)
	}
	return sp.String()
}

// xmlStartRE finds an XML start tag; its second group is the local name
// ("Password" of "<wsse:Password Type=...>").
var xmlStartRE = regexp.MustCompile(`<([A-Za-z_][\w.\-]*:)?([A-Za-z_][\w.\-]*)(?:\s[^<>]*)?>`)

// maskElements masks the text of each XML element whose local name is
// named like a credential or like the last member of a redact path
// (<wsse:Password>, <apiKey>), up to the next tag, and a CDATA section
// that stands there.
func (r *Redactor) maskElements(s string) string {
	if !strings.Contains(s, "<") {
		return s
	}
	keys := r.pathKeys()
	sp := splice{s: s}
	for _, m := range xmlStartRE.FindAllStringSubmatchIndex(s, -1) {
		if m[1] < sp.last || strings.HasSuffix(s[m[0]:m[1]], "/>") || !isSecretName(s[m[4]:m[5]], keys) {
			continue
		}
		from, to := m[1], len(s)
		if rest := s[from:]; strings.HasPrefix(rest, "<![CDATA[") {
			from += len("<![CDATA[")
			if i := strings.Index(s[from:], "]]>"); i >= 0 {
				to = from + i
			}
		} else if i := strings.IndexByte(rest, '<'); i >= 0 {
			to = from + i
		}
		if v := strings.TrimSpace(s[from:to]); v == "" || v == Masked {
			continue
		}
		sp.mask(from, to)
	}
	return sp.String()
}

// jwtRE finds a JSON Web Token (or another JOSE object: a JWE has five
// parts) by its shape: a base64url JSON header ("eyJ") and two or more
// dot-separated parts. bearerRE finds the token after "Bearer";
// authHeaderRE an Authorization header written anywhere in text, and
// headerLineRE a line that reads "Name: value" (an echoed request, YAML).
var (
	jwtRE        = regexp.MustCompile(`eyJ[A-Za-z0-9_\-]{8,}(?:\.[A-Za-z0-9_\-]*){2,4}`)
	bearerRE     = regexp.MustCompile(`(?i)\b(bearer[ \t]+)([A-Za-z0-9\-._~+/]+=*)`)
	basicRE      = regexp.MustCompile(`(?i)\b(basic[ \t]+)([A-Za-z0-9+/]{4,}={0,2})`)
	authHeaderRE = regexp.MustCompile(`(?i)\b((?:proxy-)?authorization[ \t]*:[ \t]*)([^\s"'<>][^\r\n"'<>]*)`)
	authValueRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9\-]*[ \t]+[A-Za-z0-9\-._~+/]+=*`)
	headerLineRE = regexp.MustCompile(`(?m)^([ \t]*[A-Za-z][A-Za-z0-9_\-]*[ \t]*:[ \t]*)(\S[^\r\n]*)`)
)

// maskTokens masks JWTs wherever they stand, the token after "Basic" when
// it is base64 of "user:password", and the token after "Bearer" (when it
// has a digit or is 20 characters or more, so that prose such as "bearer
// authentication" stays).
func maskTokens(s string) string {
	if strings.Contains(s, "eyJ") {
		s = jwtRE.ReplaceAllString(s, Masked)
	}
	if containsFold(s, "basic") {
		s = basicRE.ReplaceAllStringFunc(s, func(m string) string {
			sub := basicRE.FindStringSubmatch(m)
			if isBasicCredentials(sub[2]) {
				return sub[1] + Masked
			}
			return m
		})
	}
	if !containsFold(s, "bearer") {
		return s
	}
	return bearerRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := bearerRE.FindStringSubmatch(m)
		if tok := sub[2]; len(tok) >= 20 || strings.ContainsAny(tok, "0123456789") {
			return sub[1] + Masked
		}
		return m
	})
}

// isBasicCredentials reports whether tok is base64 of "user:password", as
// HTTP Basic authentication sends it, and not an ordinary word ("Basic
// plan").
func isBasicCredentials(tok string) bool {
	d, err := base64.StdEncoding.DecodeString(tok)
	if err != nil {
		d, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(tok, "="))
	}
	if err != nil || bytes.IndexByte(d, ':') < 0 {
		return false
	}
	for _, c := range d {
		if c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// maskHeaderLines masks the value of an Authorization header written in
// text (its scheme and token, or up to the end of the line when it has
// parameters, as Digest has), and the value of a line "Name: value" whose
// name is a credential header or named like a credential ("Cookie:
// sid=abc", "X-Api-Key: k", "password: p"); cookies keep their names. It
// runs after the other rules, so that a line they changed is masked the
// same way a second time.
func maskHeaderLines(s string) string {
	if strings.IndexByte(s, ':') < 0 {
		return s
	}
	s = authHeaderRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := authHeaderRE.FindStringSubmatch(m)
		if strings.HasPrefix(sub[2], Masked) {
			return m
		}
		v := authValueRE.FindString(sub[2])
		if v == "" || len(v) < len(sub[2]) && strings.IndexByte(" \t,;", sub[2][len(v)]) < 0 {
			return sub[1] + Masked
		}
		return sub[1] + Masked + sub[2][len(v):]
	})
	return headerLineRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := headerLineRE.FindStringSubmatch(m)
		name := http.CanonicalHeaderKey(strings.TrimSpace(strings.TrimRight(strings.TrimSpace(sub[1]), ":")))
		if !isSensitiveHeader(name) {
			return m
		}
		v, _ := maskCredential(name, sub[2]).(string)
		return sub[1] + v
	})
}

// containsFold reports whether s holds the lower-case ASCII sub in any
// case.
func containsFold(s, sub string) bool {
	n := len(sub)
	if n == 0 {
		return true
	}
	for i := 0; i+n <= len(s); i++ {
		if lowerASCII(s[i]) != sub[0] {
			continue
		}
		j := 1
		for j < n && lowerASCII(s[i+j]) == sub[j] {
			j++
		}
		if j == n {
			return true
		}
	}
	return false
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// userinfoRE finds the user part of a URL ("https://user:pass@host",
// "https://token@host"), also percent-encoded inside a parameter, once or
// more ("https%3A%2F%2Fuser%3Apass%40host", "%253A%252F%252F"); dsnRE the
// same in a Go MySQL DSN ("user:pass@tcp(host:3306)/db").
var (
	userinfoRE = regexp.MustCompile(`(?i)([a-z][a-z0-9+.\-]*(?:://|%(?:25)*3A%(?:25)*2F%(?:25)*2F))((?:[^/?#@\s"'<>&%\\]|%[0-9a-f]{2})+?)(@|%(?:25)*40)`)
	// encodedURLPartRE finds an encoded '/', '?', '#' or '@' in what
	// userinfoRE took for a user part: it was the rest of the URL.
	encodedURLPartRE = regexp.MustCompile(`(?i)%(?:25)*(?:2f|3f|23|40)`)
	dsnRE            = regexp.MustCompile(`[A-Za-z0-9_.\-$]+:[^\s"'@<>]*(@(?:tcp6?|udp|unix)\()`)
)

// maskUserinfo masks the user and password written in a URL or a DSN,
// whole: the user part may itself be a token. Read as an e-mail address,
// "user:pass@example.com" would otherwise keep the password's first
// letter.
func maskUserinfo(s string) string {
	if !strings.Contains(s, "@") && !strings.Contains(s, "40") {
		return s
	}
	s = dsnRE.ReplaceAllString(s, Masked+"$1")
	return userinfoRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := userinfoRE.FindStringSubmatch(m)
		if u := sub[2]; u == Masked || encodedURLPartRE.MatchString(u) {
			return m // the path, query or fragment of an encoded URL
		}
		return sub[1] + Masked + sub[3]
	})
}

// quotedValue returns the inside of the value quoted with " or ' (or \"
// in JSON text) that starts at s[at], up to its closing quote or, when
// the line ends first, to the end of the line; at and at when no quote
// starts there.
func quotedValue(s string, at int) (from, to int) {
	q := ""
	switch {
	case at < len(s) && (s[at] == '"' || s[at] == '\''):
		q = s[at : at+1]
	case strings.HasPrefix(s[at:], `\"`):
		q = `\"`
	default:
		return at, at
	}
	from = at + len(q)
	for j := from; j < len(s); j++ {
		switch {
		case s[j] == '\n' || s[j] == '\r':
			return from, j
		case strings.HasPrefix(s[j:], q):
			return from, j
		case s[j] == '\\' && q != `\"`:
			j++ // an escaped quote
		}
	}
	return from, len(s)
}

// lineStart reports whether only spaces stand before s[i] on its line.
func lineStart(s string, i int) bool {
	for i > 0 && (s[i-1] == ' ' || s[i-1] == '\t') {
		i--
	}
	return i == 0 || s[i-1] == '\n' || s[i-1] == '\r'
}

// maxEncodings is how many times over a parameter may be percent-encoded
// and still be read.
const maxEncodings = 4

// equalsAt returns the length of the "=" that starts at s[i], if one does,
// and how many times it was percent-encoded: "=" and "\u003d" are 0,
// "%3D" is 1, "%253D" is 2.
func equalsAt(s string, i int) (n, level int) {
	switch s[i] {
	case '=':
		return 1, 0
	case '\\':
		if len(s)-i >= 6 && strings.EqualFold(s[i:i+6], `\u003d`) {
			return 6, 0
		}
	case '%':
		if c, n, level := percentAt(s, i, maxEncodings); n > 0 && c == '=' {
			return n, level
		}
	}
	return 0, 0
}

// percentAt decodes the byte percent-encoded at most maxLevel times that
// starts at s[i], a '%' ("%26", "%2526"), returning it, its length and how
// many times it was encoded; n is 0 when none starts there.
func percentAt(s string, i, maxLevel int) (c byte, n, level int) {
	j, level := i+1, 1
	for level < maxLevel && len(s)-j >= 4 && s[j:j+2] == "25" && isHex(s[j+2]) && isHex(s[j+3]) {
		j += 2
		level++
	}
	if len(s)-j < 2 || !isHex(s[j]) || !isHex(s[j+1]) {
		return 0, 0, 0
	}
	return unhex(s[j])<<4 | unhex(s[j+1]), j + 2 - i, level
}

// maxNameLen bounds how far back a name is looked for before an "=".
const maxNameLen = 256

// nameStart returns where the name that ends at s[i] starts: the bytes a
// name may be made of, encoded or not.
func nameStart(s string, i int) int {
	j := i
	for j > 0 && i-j < maxNameLen && isNameByte(s[j-1]) {
		j--
	}
	return j
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("_-.[]%+\\", c) >= 0
}

// decodeName decodes a name found before an "=": '+' is a space, percent
// and \u escapes are undone (repeatedly), and only what follows the last
// byte that cannot be part of a name is kept ("/cb?token" is "token").
func decodeName(raw string) string {
	name := strings.ReplaceAll(raw, "+", " ")
	for range maxEncodings {
		d := unescapeOnce(name)
		if d == name {
			break
		}
		name = d
	}
	if i := strings.LastIndex(name, Masked); i >= 0 {
		// A value masked before ("eyJ...=" was a JWT) is not a name.
		name = name[i+len(Masked):]
	}
	for i := len(name) - 1; i >= 0; i-- {
		if c := name[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_-. []", c) >= 0) {
			return name[i+1:]
		}
	}
	return name
}

// unescapeOnce undoes one level of percent escapes and the \u00XX escapes
// of JSON in s; anything that is not a valid escape is kept.
func unescapeOnce(s string) string {
	if !strings.ContainsAny(s, `%\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '%' && len(s)-i >= 3 && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		case s[i] == '\\' && len(s)-i >= 6 && (s[i+1] == 'u' || s[i+1] == 'U') && s[i+2] == '0' && s[i+3] == '0' && isHex(s[i+4]) && isHex(s[i+5]):
			b.WriteByte(unhex(s[i+4])<<4 | unhex(s[i+5]))
			i += 5
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// isSecretName reports whether a decoded parameter name, or any part of a
// bracketed one ("user[password]", "token[]"), is named like a credential
// or is one of keys.
func isSecretName(name string, keys []string) bool {
	for part := range strings.FieldsFuncSeq(name, func(c rune) bool { return c == '[' || c == ']' }) {
		part = strings.TrimSpace(part)
		if part != "" && (isCredentialName(part) || slices.Contains(keys, part)) {
			return true
		}
	}
	return false
}

// valueEnd returns where the value that starts at s[from] ends: at a byte
// that ends a value in text (white space, '&', ';', '#', '?' after a path
// parameter such as ";jsessionid=", quotes, ',', ')', '<', '>', a \u0026
// escape), or at one of these percent-encoded at most
// level times, which ends a value carried inside another parameter.
func valueEnd(s string, from, level int) int {
	for j := from; j < len(s); j++ {
		c := s[j]
		switch {
		case isValueEnd(c):
			return j
		case c == '\\' && len(s)-j >= 6 && strings.EqualFold(s[j:j+6], `\u0026`):
			return j
		case c == '\\' && j+1 < len(s):
			j++ // an escaped quote does not end a JSON string
		case c == '%' && level > 0:
			if d, n, _ := percentAt(s, j, level); n > 0 && isValueEnd(d) {
				return j
			}
		}
	}
	return len(s)
}

func isValueEnd(c byte) bool { return strings.IndexByte("&;#?\"',)<> \t\r\n", c) >= 0 }

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// escapedMemberRE finds a JSON member in text whose name is written with
// \u escapes ("pass\u0077ord": value), which jsonKey cannot read.
var escapedMemberRE = regexp.MustCompile(`("((?:[^"\\]|\\[^u])*\\u[0-9A-Fa-f]{4}(?:[^"\\]|\\.)*)"\s*:\s*)("(?:[^"\\]|\\.)*"?|[^,}\]\s]+)`)

// maskEscapedMembers masks the value of each JSON member in text whose
// escaped name, decoded, is named like a credential or like the last
// member of a redact path.
func (r *Redactor) maskEscapedMembers(s string) string {
	if !strings.Contains(s, `\u`) {
		return s
	}
	keys := r.pathKeys()
	return escapedMemberRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := escapedMemberRE.FindStringSubmatch(m)
		var name string
		if json.Unmarshal([]byte(`"`+sub[2]+`"`), &name) != nil || !isSecretName(name, keys) {
			return m
		}
		return sub[1] + `"` + Masked + `"`
	})
}

// htmlTagRE finds a start tag, htmlAttrRE each name=value attribute in it.
var (
	htmlTagRE  = regexp.MustCompile(`<[A-Za-z][^<>]*>`)
	htmlAttrRE = regexp.MustCompile(`([\s/])([A-Za-z_:][-A-Za-z0-9_:.]*)(\s*=\s*)("[^"]*"|'[^']*'|[^\s"'>]+)`)
)

// maskHTMLCredentials masks the value (or content) of an HTML element
// whose name or id is named like a credential: the anti-forgery tokens web
// apps put on every page (<meta name="csrf-token" content="...">, a hidden
// <input name="_token" value="...">).
func maskHTMLCredentials(s string) string {
	if !strings.Contains(s, "<") {
		return s
	}
	return htmlTagRE.ReplaceAllStringFunc(s, func(tag string) string {
		named := false
		for _, a := range htmlAttrRE.FindAllStringSubmatch(tag, -1) {
			if n := strings.ToLower(a[2]); (n == "name" || n == "id") && isSecretName(strings.Trim(a[4], `"'`), nil) {
				named = true
			}
		}
		if !named {
			return tag
		}
		return htmlAttrRE.ReplaceAllStringFunc(tag, func(m string) string {
			a := htmlAttrRE.FindStringSubmatch(m)
			if n := strings.ToLower(a[2]); n != "value" && n != "content" {
				return m
			}
			q := ""
			if c := a[4][0]; c == '"' || c == '\'' {
				q = string(c)
			}
			return a[1] + a[2] + a[3] + q + Masked + q
		})
	})
}

// walk returns v with selected paths masked and every string, number and
// member name checked; at is v's own path (nil when unknown: then only
// the built-in detection applies).
// walkChild redacts one member or element: masked whole when a redact path
// selects it (at, the path so far, is nil when no path can match below),
// walked otherwise.
func (r *Redactor) walkChild(child any, at []step, st step) (any, bool) {
	if at == nil {
		return r.walk(child, nil)
	}
	p := append(at[:len(at):len(at)], st)
	if r.selects(p) {
		return Masked, true
	}
	return r.walk(child, p)
}

func (r *Redactor) walk(v any, at []step) (any, bool) {
	switch x := v.(type) {
	case map[string]any:
		changed := false
		out := make(map[string]any, len(x))
		secretPair := r.isSecretPair(x)
		for k, child := range x {
			nk := r.Text(k)
			if nk != k {
				changed = true
			}
			if secretPair && isPairValue(k) {
				out[nk], changed = Masked, changed || child != Masked
				continue
			}
			child2, c := r.walkChild(child, at, step{name: k})
			out[nk], changed = child2, changed || c
		}
		return out, changed
	case []any:
		changed := false
		out := make([]any, len(x))
		for i, child := range x {
			child2, c := r.walkChild(child, at, step{index: i, isIndex: true})
			out[i], changed = child2, changed || c
		}
		return out, changed
	case string:
		// A string may hold a URL or a form ("https://x/cb?token=abc").
		m := r.Text(x)
		return m, m != x
	}
	// A number is masked, as text, when its digits are a card number.
	var s string
	switch x := v.(type) {
	case json.Number:
		s = string(x)
	case float64:
		// Values decoded without UseNumber: integers that large print
		// exactly up to 2^53, which covers 13–15 digit card numbers; above
		// that the digits are already approximate.
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case int64, int:
		s = fmt.Sprint(x)
	default:
		return v, false
	}
	if m := maskCards(s); m != s {
		return m, true
	}
	return v, false
}

// isCredentialList reports whether name is the plural of a credential
// name ("api_keys", "tokens", "passwords", "cookies"): the elements of an
// array under it are credentials, while a count under it ("tokens": 3)
// is not.
func isCredentialList(name string) bool {
	n := len(name)
	return n > 1 && (name[n-1] == 's' || name[n-1] == 'S') && isSecretName(name[:n-1], nil)
}

// pairNames are the members that name the value of a name/value pair
// ({"name":"Authorization","value":...}, {"Key":"password","Value":...}),
// pairValues the members that hold it, both by lower-case name.
var (
	pairNames  = []string{"name", "key", "header", "field", "param"}
	pairValues = []string{"value", "values"}
)

func isPairValue(k string) bool { return slices.Contains(pairValues, strings.ToLower(k)) }

// isSecretPair reports whether the object m is a name/value pair whose
// name is named like a credential or like the last member of a redact
// path.
func (r *Redactor) isSecretPair(m map[string]any) bool {
	if len(m) < 2 || len(m) > 8 {
		return false
	}
	keys := r.pathKeys()
	for k, v := range m {
		if name, ok := v.(string); ok && slices.Contains(pairNames, strings.ToLower(k)) && isSecretName(name, keys) {
			return true
		}
	}
	return false
}

// isPairValuePath reports whether at ends in the value member of what
// may be a name/value pair.
func isPairValuePath(at []step) bool {
	n := len(at)
	return n > 0 && !at[n-1].isIndex && isPairValue(at[n-1].name)
}

// inSecretPair reports whether path at is the value of a name/value pair
// with a secret name in the decoded body v.
func (r *Redactor) inSecretPair(v any, at []step) bool {
	if !isPairValuePath(at) {
		return false
	}
	for _, st := range at[:len(at)-1] {
		switch x := v.(type) {
		case map[string]any:
			v = x[st.name]
		case []any:
			if !st.isIndex || st.index >= len(x) {
				return false
			}
			v = x[st.index]
		default:
			return false
		}
	}
	m, ok := v.(map[string]any)
	return ok && r.isSecretPair(m)
}

func (r *Redactor) selects(at []step) bool {
	if n := len(at); n > 0 && !at[n-1].isIndex && isSecretName(at[n-1].name, nil) {
		return true
	}
	if n := len(at); n > 1 && at[n-1].isIndex && !at[n-2].isIndex && isCredentialList(at[n-2].name) {
		return true
	}
	if r == nil {
		return false
	}
	for _, p := range r.paths {
		if matchPath(p, at) {
			return true
		}
	}
	return false
}

// selectsPrefix reports whether a path selects at or one of its ancestors.
func (r *Redactor) selectsPrefix(at []step) bool {
	for i := 1; i <= len(at); i++ {
		if r.selects(at[:i]) {
			return true
		}
	}
	return false
}

// --- JSON cut short ---

// selectedRanges returns the byte ranges of b to mask when b is JSON that
// may be cut short or malformed: the values a redact path selects, from
// a selected value cut off to the end, and from a syntax error to the end
// (what follows cannot be placed in the document). ok is false when the
// redactor has no paths or b does not start like a JSON object or array.
func (r *Redactor) selectedRanges(b []byte) (ranges [][2]int, ok bool) {
	if r == nil || len(r.paths) == 0 {
		return nil, false
	}
	if rest, found := bytes.CutPrefix(b, utf8BOM); found {
		// Ranges are found in the JSON after the byte order mark and
		// given as offsets in b.
		ranges, ok = r.selectedRanges(rest)
		for i := range ranges {
			ranges[i][0] += len(utf8BOM)
			ranges[i][1] += len(utf8BOM)
		}
		return ranges, ok
	}
	if t := bytes.TrimSpace(b); len(t) == 0 || (t[0] != '{' && t[0] != '[') || bytes.HasPrefix(t, []byte(Masked)) {
		// Text that starts with a masked value is not JSON.
		return nil, false
	}
	// container is an open object or array; at is its path.
	type container struct {
		at     []step
		object bool
		key    string // the member whose value comes next
		hasKey bool
		index  int // the element that comes next
		// A name/value pair ({"name":"Authorization","value":...}): its
		// value members are masked once its name is known to be secret.
		secretPair bool
		pending    [][2]int // the value members' ranges
		pairValue  int      // where this container starts when it is a pair's value, else -1
	}
	var open []container
	defer func() { ranges = mergeRanges(ranges) }()
	next := func() ([]step, bool) { // the path of the next value, if a value comes next
		if len(open) == 0 {
			return []step{}, true
		}
		c := &open[len(open)-1]
		if c.object {
			return append(c.at[:len(c.at):len(c.at)], step{name: c.key}), c.hasKey
		}
		return append(c.at[:len(c.at):len(c.at)], step{index: c.index, isIndex: true}), true
	}
	done := func() { // a value of the innermost container ended
		if len(open) == 0 {
			return
		}
		c := &open[len(open)-1]
		if c.object {
			c.hasKey = false
		} else {
			c.index++
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	masking, depth, start := false, 0, 0
	for {
		prev := int(dec.InputOffset())
		tok, err := dec.Token()
		if err != nil {
			at, isValue := next()
			switch {
			case masking:
				ranges = append(ranges, [2]int{start, len(b)})
			case isValue && r.selects(at), !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF),
				isValue && len(open) > 0 && open[len(open)-1].object && open[len(open)-1].secretPair && isPairValue(open[len(open)-1].key):
				if s := valueStart(b, prev); s < len(b) {
					ranges = append(ranges, [2]int{s, len(b)})
				}
			}
			// Open pairs known to be secret: their values so far, and
			// one cut off.
			for i, c := range open {
				if c.secretPair {
					ranges = append(ranges, c.pending...)
				}
				if j := i + 1; j < len(open) && c.secretPair && open[j].pairValue >= 0 {
					ranges = append(ranges, [2]int{open[j].pairValue, len(b)})
					break
				}
			}
			return ranges, true
		}
		delim, isDelim := tok.(json.Delim)
		if masking {
			switch {
			case delim == '{' || delim == '[':
				depth++
			case isDelim:
				depth--
			}
			if depth == 0 {
				masking = false
				ranges = append(ranges, [2]int{start, int(dec.InputOffset())})
				done()
			}
			continue
		}
		if isDelim && (delim == '}' || delim == ']') {
			c := open[len(open)-1]
			open = open[:len(open)-1]
			if c.secretPair {
				ranges = append(ranges, c.pending...)
			}
			if c.pairValue >= 0 && len(open) > 0 {
				p := &open[len(open)-1]
				p.pending = append(p.pending, [2]int{c.pairValue, int(dec.InputOffset())})
			}
			done()
			continue
		}
		at, isValue := next()
		if !isValue {
			c := &open[len(open)-1]
			c.key, _ = tok.(string)
			c.hasKey = true
			continue
		}
		var parent *container // the object holding this value, if any
		if len(open) > 0 && open[len(open)-1].object {
			parent = &open[len(open)-1]
		}
		switch {
		case r.selects(at) && isDelim:
			masking, depth, start = true, 1, valueStart(b, prev)
		case r.selects(at):
			ranges = append(ranges, [2]int{valueStart(b, prev), int(dec.InputOffset())})
			done()
		case isDelim:
			c := container{at: at, object: delim == '{', pairValue: -1}
			if parent != nil && isPairValue(parent.key) {
				c.pairValue = valueStart(b, prev)
			}
			open = append(open, c)
		default:
			if parent != nil {
				if isPairValue(parent.key) {
					parent.pending = append(parent.pending, [2]int{valueStart(b, prev), int(dec.InputOffset())})
				}
				if name, ok := tok.(string); ok && slices.Contains(pairNames, strings.ToLower(parent.key)) && isSecretName(name, r.keys) {
					parent.secretPair = true
				}
			}
			done()
		}
	}
}

// mergeRanges sorts byte ranges and joins those that overlap.
func mergeRanges(ranges [][2]int) [][2]int {
	if len(ranges) < 2 {
		return ranges
	}
	slices.SortFunc(ranges, func(a, b [2]int) int { return a[0] - b[0] })
	out := ranges[:1]
	for _, rg := range ranges[1:] {
		if last := &out[len(out)-1]; rg[0] < last[1] {
			last[1] = max(last[1], rg[1])
			continue
		}
		out = append(out, rg)
	}
	return out
}

// valueStart skips the white space and separators before a value.
func valueStart(b []byte, off int) int {
	for off < len(b) && strings.IndexByte(" \t\r\n:,", b[off]) >= 0 {
		off++
	}
	return off
}

// bodyLines are the lines of a JSON body, as the diff engine compares
// them, and whether each holds part of a value a redact path selects.
type bodyLines struct {
	text   []string
	masked []bool
}

// bodyLines returns the lines of b, or nil when nothing in it is selected:
// b is not JSON with a selected value, nor text with a range to mask
// (textRanges).
func (r *Redactor) bodyLines(b []byte) *bodyLines {
	ranges, ok := r.selectedRanges(b)
	if !ok {
		ranges = r.textRanges(b)
	}
	if len(ranges) == 0 {
		return nil
	}
	l := &bodyLines{}
	for start := 0; start <= len(b); {
		end := bytes.IndexAny(b[start:], "\r\n")
		if end < 0 {
			end = len(b)
		} else {
			end += start
		}
		masked := false
		for _, rg := range ranges {
			if rg[0] < end && rg[1] > start {
				masked = true
				break
			}
		}
		l.text = append(l.text, strings.TrimRight(string(b[start:end]), " \t"))
		l.masked = append(l.masked, masked)
		if end < len(b) && b[end] == '\r' && end+1 < len(b) && b[end+1] == '\n' {
			end++
		}
		start = end + 1
	}
	return l
}

// lineValue redacts one side's value of a line difference; l holds the
// lines of that side's body (nil when it is not JSON with selected
// values). A line that holds a selected value, or that cannot be found in
// the body (where it could be), is masked whole. The compared text of a
// truncated body may end inside a line, so a prefix of a line counts.
func (r *Redactor) lineValue(l *bodyLines, v any) any {
	s, ok := v.(string)
	if l == nil || !ok || s == "" {
		return r.textValue(v)
	}
	found := false
	for i, t := range l.text {
		if strings.HasPrefix(t, s) {
			if l.masked[i] {
				return Masked
			}
			found = true
		}
	}
	if !found {
		return Masked
	}
	return r.Text(s)
}

// pemKeyRE finds a PEM private key block, or its start in text cut short:
// the armour lines are kept, what lies between them is masked.
var pemKeyRE = regexp.MustCompile(`(-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----)((?s:.*?))(-----END [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----|$)`)

// textRanges returns the ordered byte ranges of a body that is not JSON to
// mask whole, with its lines: the content of multipart parts named like a
// credential and of PEM private key blocks.
func (r *Redactor) textRanges(b []byte) [][2]int {
	ranges := r.multipartRanges(b)
	if bytes.Contains(b, []byte("PRIVATE KEY")) {
		for _, m := range pemKeyRE.FindAllSubmatchIndex(b, -1) {
			if m[4] < m[5] && string(b[m[4]:m[5]]) != Masked {
				ranges = append(ranges, [2]int{m[4], m[5]})
			}
		}
	}
	slices.SortFunc(ranges, func(a, b [2]int) int { return a[0] - b[0] })
	out := ranges[:0]
	for _, rg := range ranges {
		if n := len(out); n > 0 && rg[0] <= out[n-1][1] {
			out[n-1][1] = max(out[n-1][1], rg[1])
			continue
		}
		out = append(out, rg)
	}
	return out
}

// maskPEMKeys masks the key in each PEM private key block of s.
func maskPEMKeys(s string) string {
	if !strings.Contains(s, "PRIVATE KEY") {
		return s
	}
	return pemKeyRE.ReplaceAllString(s, "${1}"+Masked+"${3}")
}

// partHeaderRE finds the Content-Disposition header of a multipart part,
// partNameRE its name parameter (not filename).
var (
	partHeaderRE = regexp.MustCompile(`(?im)^content-disposition[ \t]*:[^\r\n]*`)
	partNameRE   = regexp.MustCompile(`(?i)(?:^|[;\s])name[ \t]*=[ \t]*(?:"([^"]*)"|([^\s;]+))`)
)

// multipartRanges returns the byte ranges of b that hold the content of a
// multipart part named like a credential or like the last member of a
// redact path (Content-Disposition: form-data; name="password"): from
// after the part's headers to the delimiter line that ends it, or to the
// end of a body cut short.
func (r *Redactor) multipartRanges(b []byte) [][2]int {
	s := string(b)
	if !strings.HasPrefix(s, "--") && !strings.Contains(s, "\n--") {
		return nil
	}
	keys := r.pathKeys()
	var ranges [][2]int
	for _, loc := range partHeaderRE.FindAllStringIndex(s, -1) {
		m := partNameRE.FindStringSubmatch(s[loc[0]:loc[1]])
		if m == nil || !isSecretName(m[1]+m[2], keys) {
			continue
		}
		// The delimiter is the last line before the headers that starts
		// with "--".
		start := strings.LastIndex(s[:loc[0]], "\n--") + 1
		if start == 0 && !strings.HasPrefix(s, "--") {
			continue
		}
		delim, _, _ := strings.Cut(s[start:], "\n")
		delim = "\n" + strings.TrimRight(delim, "\r")
		from := len(s)
		if i := strings.Index(s[loc[1]:], "\n\r\n"); i >= 0 {
			from = loc[1] + i + 3
		}
		if i := strings.Index(s[loc[1]:], "\n\n"); i >= 0 && loc[1]+i+2 < from {
			from = loc[1] + i + 2
		}
		to := len(s)
		for j := from; ; {
			i := strings.Index(s[j:], delim)
			if i < 0 {
				break
			}
			// A delimiter line is the boundary alone, or followed by
			// "--" (the last one) or white space.
			if k := j + i + len(delim); k == len(s) || strings.HasPrefix(s[k:], "--") || strings.IndexByte(" \t\r\n", s[k]) >= 0 {
				to = j + i
				if to > from && s[to-1] == '\r' {
					to--
				}
				break
			}
			j += i + len(delim)
		}
		if from < to && (len(ranges) == 0 || from >= ranges[len(ranges)-1][1]) {
			ranges = append(ranges, [2]int{from, to})
		}
	}
	return ranges
}

// isLinePath reports whether p is the path of a line difference
// ("body:L12").
func isLinePath(p string) bool { return strings.HasPrefix(p, "body:L") }

// utf8BOM is the byte order mark some servers write before a JSON body;
// the diff engine and JSON clients skip it, and so does redaction.
var utf8BOM = []byte("\xef\xbb\xbf")

// encodeJSON encodes v as JSON as it was sent: "<", ">" and "&" are not
// turned into \u003c, \u003e and \u0026 (the HTML pages escape what they
// show themselves), and no newline follows.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// decodeJSON decodes exactly one JSON value, keeping numbers as written;
// a leading byte order mark is skipped.
func decodeJSON(b []byte) (any, bool) {
	t := bytes.TrimSpace(bytes.TrimPrefix(b, utf8BOM))
	if len(t) == 0 || (t[0] != '{' && t[0] != '[' && t[0] != '"') {
		// Bare numbers and literals are left to the text path, which
		// treats them the same.
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return v, true
}

// --- paths ---

type segKind int

const (
	segName  segKind = iota // .name or ['name']
	segIndex                // [2]
	segAny                  // .* or [*]
)

// segment is one step of a redact path; deep means it may match at any
// depth below the previous step ("..").
type segment struct {
	kind  segKind
	name  string
	index int
	deep  bool
}

func (s segment) matches(st step) bool {
	switch s.kind {
	case segAny:
		return true
	case segIndex:
		return st.isIndex && st.index == s.index
	}
	return !st.isIndex && st.name == s.name
}

// step is one step of a concrete path: a member name or an array index.
type step struct {
	name    string
	index   int
	isIndex bool
}

func matchPath(p []segment, at []step) bool {
	if len(p) == 0 {
		return len(at) == 0
	}
	s := p[0]
	if s.deep {
		for k := 0; k < len(at); k++ {
			if s.matches(at[k]) && matchPath(p[1:], at[k+1:]) {
				return true
			}
		}
		return false
	}
	return len(at) > 0 && s.matches(at[0]) && matchPath(p[1:], at[1:])
}

// parsePath parses a redact path pattern.
func parsePath(p string) ([]segment, error) {
	if !strings.HasPrefix(p, "$") {
		return nil, errors.New(`must start with "$"`)
	}
	var segs []segment
	i := 1
	for i < len(p) {
		deep := false
		switch {
		case strings.HasPrefix(p[i:], ".."):
			deep = true
			i += 2
		case p[i] == '.':
			i++
		case p[i] == '[':
		default:
			return nil, fmt.Errorf("unexpected %q at offset %d", p[i], i)
		}
		if i >= len(p) {
			return nil, errors.New("ends after a dot")
		}
		if p[i] == '[' {
			seg, n, err := parseBracket(p[i:])
			if err != nil {
				return nil, err
			}
			seg.deep = deep
			segs = append(segs, seg)
			i += n
			continue
		}
		j := i
		for j < len(p) && p[j] != '.' && p[j] != '[' {
			j++
		}
		name := p[i:j]
		if name == "" {
			return nil, fmt.Errorf("empty member name at offset %d", i)
		}
		if name == "*" {
			segs = append(segs, segment{kind: segAny, deep: deep})
		} else {
			segs = append(segs, segment{kind: segName, name: name, deep: deep})
		}
		i = j
	}
	if len(segs) == 0 {
		return nil, errors.New(`selects the whole body; name a member, e.g. "$..email"`)
	}
	return segs, nil
}

// parseBracket parses "[*]", "[2]", "['name']" or `["name"]` at the start
// of s and returns how many bytes it used.
func parseBracket(s string) (segment, int, error) {
	end := strings.IndexByte(s, ']')
	if len(s) > 1 && s[1] == '"' {
		// Go quoting, as the diff engine renders odd keys: ["a \"b\""].
		q, err := strconv.QuotedPrefix(s[1:])
		if err != nil || len(s) < len(q)+2 || s[len(q)+1] != ']' {
			return segment{}, 0, fmt.Errorf("unterminated %s", s)
		}
		name, _ := strconv.Unquote(q)
		return segment{kind: segName, name: name}, len(q) + 2, nil
	}
	if len(s) > 1 && s[1] == '\'' {
		q := s[1]
		close := strings.IndexByte(s[2:], q)
		if close < 0 || len(s) < close+4 || s[close+3] != ']' {
			return segment{}, 0, fmt.Errorf("unterminated %s", s)
		}
		return segment{kind: segName, name: s[2 : close+2]}, close + 4, nil
	}
	if end < 0 {
		return segment{}, 0, fmt.Errorf("unterminated %s", s)
	}
	in := s[1:end]
	if in == "*" {
		return segment{kind: segAny}, end + 1, nil
	}
	n, err := strconv.Atoi(in)
	if err != nil || n < 0 {
		return segment{}, 0, fmt.Errorf("bad index [%s]", in)
	}
	return segment{kind: segIndex, index: n}, end + 1, nil
}

// parseConcrete parses a difference's path ("$.items[2].price",
// "$['a b'].c") into steps; ok is false for paths that are not JSON paths.
func parseConcrete(p string) ([]step, bool) {
	if !strings.HasPrefix(p, "$") {
		return nil, false
	}
	segs, err := parsePathLenient(p)
	if err != nil {
		return nil, false
	}
	out := make([]step, 0, len(segs))
	for _, s := range segs {
		switch s.kind {
		case segName:
			out = append(out, step{name: s.name})
		case segIndex:
			out = append(out, step{index: s.index, isIndex: true})
		default:
			return nil, false
		}
	}
	return out, true
}

func parsePathLenient(p string) ([]segment, error) {
	if p == "$" {
		return nil, nil
	}
	return parsePath(p)
}

// --- built-in detection ---

// emailRE finds addresses, also with the "@" percent-encoded once or more
// (in URLs, and in a parameter carried inside another: "%2540").
var emailRE = regexp.MustCompile(`([A-Za-z0-9._%+\-]+?)(@|%(?:25)*40)([A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,})`)

// maskEmails keeps the first character of the local part and the domain:
// "jane.doe@example.com" becomes "j***@example.com".
func maskEmails(s string) string {
	if !strings.Contains(s, "@") && !strings.Contains(s, "40") {
		return s
	}
	// A domain may run into a second address ("a@b.io@c.io"): repeat
	// until nothing is left to mask.
	for range 4 {
		out := emailRE.ReplaceAllStringFunc(s, func(m string) string {
			sub := emailRE.FindStringSubmatch(m)
			// What precedes an encoded separator ("%3Fmail%3D") is the
			// URL around the address, not its local part.
			prefix, local := "", sub[1]
			for i := len(local) - 1; i >= 0; i-- {
				if local[i] != '%' {
					continue
				}
				if c, n, _ := percentAt(local, i, maxEncodings); n > 0 && strings.IndexByte("/?=&:;#,", c) >= 0 {
					prefix, local = local[:i+n], local[i+n:]
					break
				}
			}
			if local == "" {
				return m
			}
			return prefix + local[:1] + "***" + sub[2] + sub[3]
		})
		if out == s {
			break
		}
		s = out
	}
	return s
}

// digitRunRE finds runs of digit groups joined by single spaces or dashes.
var digitRunRE = regexp.MustCompile(`\d+(?:[ \-]\d+)*`)

// maskCards masks every card number in s, keeping its last 4 digits and
// its separators: "4111 1111 1111 1111" becomes "**** **** **** 1111".
// A candidate is 13–19 digits made of whole digit groups, not glued to
// other digits or letters, and must pass the Luhn check, so a 16-digit
// order number that is not a card number stays as it is.
func maskCards(s string) string {
	if !hasDigits(s, 13) {
		return s
	}
	locs := digitRunRE.FindAllStringIndex(s, -1)
	if locs == nil {
		return s
	}
	b := []byte(s)
	changed := false
	for _, loc := range locs {
		start, end := loc[0], loc[1]
		if isDecimalPart(s, start, end) {
			continue
		}
		groups := splitGroups(s, start, end)
		i := 0
		if afterMask(s, start) {
			i = 1 // the kept last digits of a masked number are not a new one
		}
		for i < len(groups) {
			j, ok := cardAt(s, groups, i)
			if !ok {
				i++
				continue
			}
			maskDigits(b, groups[i][0], groups[j][1])
			changed = true
			i = j + 1
		}
	}
	if !changed {
		return s
	}
	return string(b)
}

// cardAt finds the longest run of groups starting at i that is a card
// number and returns the index of its last group.
func cardAt(s string, groups [][2]int, i int) (int, bool) {
	best, found, n := 0, false, 0
	for j := i; j < len(groups); j++ {
		n += groups[j][1] - groups[j][0]
		if n > 19 {
			break
		}
		if n >= 13 && luhn(s, groups[i][0], groups[j][1]) {
			best, found = j, true
		}
	}
	return best, found
}

func splitGroups(s string, start, end int) [][2]int {
	var gs [][2]int
	g := start
	for i := start; i < end; i++ {
		if s[i] == ' ' || s[i] == '-' {
			gs = append(gs, [2]int{g, i})
			g = i + 1
		}
	}
	return append(gs, [2]int{g, end})
}

func luhn(s string, start, end int) bool {
	sum, double := 0, false
	for i := end - 1; i >= start; i-- {
		c := s[i]
		if c < '0' || c > '9' {
			continue
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// maskDigits replaces all but the last 4 digits in b[start:end] with '*'.
func maskDigits(b []byte, start, end int) {
	keep := 4
	for i := end - 1; i >= start; i-- {
		if b[i] < '0' || b[i] > '9' {
			continue
		}
		if keep > 0 {
			keep--
			continue
		}
		b[i] = '*'
	}
}

// afterMask reports whether the digits at start follow a masked card
// number ("****1111", "**** 1111").
func afterMask(s string, start int) bool {
	if start >= 1 && s[start-1] == '*' {
		return true
	}
	return start >= 2 && (s[start-1] == ' ' || s[start-1] == '-') && s[start-2] == '*'
}

// isDecimalPart reports whether the digits at s[start:end] are the
// integer or fraction part of a decimal number ("3.14159..."). Digits glued
// to letters are still checked: masking an identifier that happens to pass
// the Luhn check is the safe mistake.
func isDecimalPart(s string, start, end int) bool {
	if start >= 2 && s[start-1] == '.' && isDigit(s[start-2]) {
		return true
	}
	return end+1 < len(s) && s[end] == '.' && isDigit(s[end+1])
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func hasDigits(s string, n int) bool {
	c := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			c++
			if c >= n {
				return true
			}
		}
	}
	return false
}
