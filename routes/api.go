package routes

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// UserHeader carries the OS user of the CLI that made an admin call; it is
// recorded in the history beside the token's label.
const UserHeader = "X-Banyan-User"

// Tokens maps admin bearer tokens to the label recorded as "who".
type Tokens map[string]string

// ParseTokens reads the token env var's value: "TOKEN" (label "admin") or
// "label:TOKEN,label2:TOKEN2". Empty entries are ignored.
func ParseTokens(v string) Tokens {
	t := Tokens{}
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		label, tok, ok := strings.Cut(part, ":")
		if !ok {
			label, tok = "admin", part
		}
		if tok != "" {
			t[tok] = label
		}
	}
	return t
}

// CheckTokens reports why a token variable's value v, when set, gives no
// usable token list: it holds no token, an entry has a label but no token
// ("ops:"), or a list of several has an entry without a label (a secret
// with a comma in it is cut in two, each piece a token on its own). An
// unset variable (v empty) is no error: it sets no tokens. The error never
// shows a token.
func CheckTokens(v string) error {
	if v == "" {
		return nil
	}
	var entries []string
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			entries = append(entries, part)
		}
	}
	if len(entries) == 0 {
		return errors.New("holds no token: write TOKEN or label:TOKEN,label2:TOKEN2")
	}
	for i, part := range entries {
		label, tok, labelled := strings.Cut(part, ":")
		switch {
		case labelled && tok == "":
			return fmt.Errorf("entry %q has no token after the colon: write label:TOKEN", label)
		case !labelled && len(entries) > 1:
			return fmt.Errorf("entry %d of %d has no label: a list needs label:TOKEN for every entry (a token with a comma in it is read as a list; use one without)", i+1, len(entries))
		}
	}
	return nil
}

// IsLoopback reports whether a listen address only accepts local clients.
func IsLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// localHost reports whether a request's Host names this machine the way a
// DNS name someone else controls cannot: an IP address, localhost or a
// name under .localhost (RFC 6761 keeps those on loopback).
func localHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if i := strings.IndexByte(host, '%'); i >= 0 {
		host = host[:i] // an IPv6 zone
	}
	return net.ParseIP(host) != nil
}

// authenticate returns who is calling, or "" when the call must be refused.
func (t Tokens) authenticate(r *http.Request) (string, bool) {
	user := r.Header.Get(UserHeader)
	if len(t) == 0 {
		if user == "" {
			user = "anonymous"
		}
		return user, true
	}
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	ok = ok && strings.EqualFold(scheme, "Bearer") // schemes are case-insensitive
	got = strings.TrimSpace(got)
	if !ok {
		// Browsers (the dashboard) send the token as a basic-auth password.
		if _, pw, basic := r.BasicAuth(); basic {
			got, ok = pw, true
		}
	}
	if !ok {
		return "", false
	}
	// Digests of equal length, and every token compared: how long the
	// check takes tells a caller neither a token's length nor which of
	// several tokens came close.
	gotSum := sha256.Sum256([]byte(got))
	who, found := "", false
	for tok, label := range t {
		sum := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(gotSum[:], sum[:]) == 1 && !found {
			who, found = label, true
		}
	}
	if !found {
		return "", false
	}
	if user != "" {
		return who + " (" + user + ")", true
	}
	return who, true
}

// RouteInfo is a route as the admin API shows it.
type RouteInfo struct {
	Name      string       `json:"name"`
	Match     MatchConfig  `json:"match"`
	Split     Split        `json:"split"`
	FileSplit Split        `json:"file_split"`
	Sticky    StickyConfig `json:"sticky"`
}

// RoutesResponse is GET /api/routes.
type RoutesResponse struct {
	Version int64       `json:"version"`
	Routes  []RouteInfo `json:"routes"`
}

// SplitRequest is PUT /api/routes/{name}/split.
type SplitRequest struct {
	Split  Split  `json:"split"`
	Reason string `json:"reason"`
}

// RollbackRequest is POST /api/routes/{name}/rollback; the body is
// optional. Edit, when set, is the history number of the edit meant to be
// undone: when another is next in line the rollback is refused (409).
type RollbackRequest struct {
	Reason string `json:"reason"`
	Edit   int64  `json:"edit,omitempty"`
}

// EditResponse answers an edit. Changed is false, and Edit left out, when
// the split was already the requested one; Split is the route's live
// split after the call either way.
type EditResponse struct {
	Changed bool  `json:"changed"`
	Edit    *Edit `json:"edit,omitempty"`
	Split   Split `json:"split"`
}

// HistoryResponse is GET /api/history.
type HistoryResponse struct {
	History []Edit `json:"history"`
}

// ErrorResponse is every admin API error body.
type ErrorResponse struct {
	Error    string    `json:"error"`
	Problems []Problem `json:"problems,omitempty"`
}

// NewAPI returns the admin JSON API over m. With tokens set, every call
// needs "Authorization: Bearer TOKEN" (401 otherwise). Edits a browser
// sends from another site are refused (403): a page the engineer visits
// could otherwise post a rollback to a loopback admin without a token, or
// with the token the browser keeps from the dashboard.
func NewAPI(m *Manager, tokens Tokens) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/routes", func(w http.ResponseWriter, r *http.Request) {
		t := m.Table()
		resp := RoutesResponse{Version: t.Version(), Routes: []RouteInfo{}}
		for _, rt := range t.Routes() {
			resp.Routes = append(resp.Routes, RouteInfo{Name: rt.Name, Match: rt.Match, Split: rt.Split(), FileSplit: rt.FileSplit(), Sticky: rt.Sticky})
		}
		writeJSON(w, http.StatusOK, resp)
	})
	mux.HandleFunc("PUT /api/routes/{name}/split", func(w http.ResponseWriter, r *http.Request) {
		var req SplitRequest
		if !decodeJSON(w, r, &req, splitShape, false) {
			return
		}
		e, err := m.SetSplit(r.Context(), r.PathValue("name"), req.Split, whoOf(r), req.Reason)
		writeEdit(w, m, r.PathValue("name"), e, err)
	})
	mux.HandleFunc("POST /api/routes/{name}/rollback", func(w http.ResponseWriter, r *http.Request) {
		var req RollbackRequest
		if !decodeJSON(w, r, &req, rollbackShape, true) {
			return
		}
		e, err := m.RollbackEdit(r.Context(), r.PathValue("name"), req.Edit, whoOf(r), req.Reason)
		writeEdit(w, m, r.PathValue("name"), e, err)
	})
	mux.HandleFunc("GET /api/history", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		route := q.Get("route")
		limit := 0
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: fmt.Sprintf("limit %q: give a whole number of entries, 1 or more (or leave it out for the whole history)", v)})
				return
			}
			limit = n
		}
		h, err := m.History(r.Context(), route, limit)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, ErrorResponse{Error: err.Error()})
			return
		}
		if len(h) == 0 && route != "" && m.Table().Route(route) == nil {
			writeJSON(w, http.StatusNotFound, ErrorResponse{Error: fmt.Sprintf(
				"%v %q: it is not in the route table and has no history (routes: %s)", ErrUnknownRoute, route, strings.Join(routeNames(m.Table()), ", "))})
			return
		}
		if h == nil {
			h = []Edit{}
		}
		writeJSON(w, http.StatusOK, HistoryResponse{History: h})
	})
	// Calls the API does not have, or methods a call does not take,
	// answer a JSON error too.
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		if allow := allowedMethods(r.URL.Path); allow != "" {
			w.Header().Set("Allow", allow)
			writeJSON(w, http.StatusMethodNotAllowed, ErrorResponse{Error: fmt.Sprintf("%s %s: this call takes %s", r.Method, r.URL.Path, allow)})
			return
		}
		writeJSON(w, http.StatusNotFound, ErrorResponse{Error: fmt.Sprintf("no admin API call %s %s; the calls are %s", r.Method, r.URL.Path, apiCalls)})
	})
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusForbidden, ErrorResponse{Error: "edit refused: it was sent by a page of another site (cross-origin); edit with `banyan routes` or from the dashboard"})
	}))
	return cop.Handler(tokens.Require(mux))
}

// apiCalls lists the admin API for error messages.
const apiCalls = "GET /api/routes, PUT /api/routes/{name}/split, POST /api/routes/{name}/rollback, GET /api/history"

// allowedMethods returns the methods a known admin API path takes, or "".
func allowedMethods(path string) string {
	switch path {
	case "/api/routes", "/api/history":
		return "GET, HEAD"
	}
	if rest, ok := strings.CutPrefix(path, "/api/routes/"); ok {
		name, call, _ := strings.Cut(rest, "/")
		switch {
		case name == "" || strings.Contains(call, "/"):
		case call == "split":
			return "PUT"
		case call == "rollback":
			return "POST"
		}
	}
	return ""
}

// Require wraps h so that, when tokens are set, every call needs
// "Authorization: Bearer TOKEN" and is refused with 401 otherwise.
//
// Without tokens, only requests addressed to localhost or an IP address are
// served (403 otherwise): a web page on a name its author controls can
// point that name at 127.0.0.1 (DNS rebinding), and the browser then counts
// its calls as same-origin, so the cross-origin check alone lets them in.
func (t Tokens) Require(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(t) == 0 && !localHost(r.Host) {
			writeJSON(w, http.StatusForbidden, ErrorResponse{Error: fmt.Sprintf(
				"request addressed to host %q refused: without an admin token the admin API answers only requests to localhost or an IP address; call it as http://127.0.0.1:PORT, or set an admin token to reach it by name", r.Host)})
			return
		}
		who, ok := t.authenticate(r)
		if !ok {
			w.Header().Add("WWW-Authenticate", `Bearer realm="banyan admin"`)
			w.Header().Add("WWW-Authenticate", `Basic realm="banyan admin (any user name, the token as password)"`)
			writeJSON(w, http.StatusUnauthorized, ErrorResponse{Error: "missing or wrong bearer token: set BANYAN_ADMIN_TOKEN to a token the server accepts"})
			return
		}
		r.Header.Set(whoHeader, who)
		h.ServeHTTP(w, r)
	})
}

// whoHeader passes the authenticated caller from the auth wrapper to the
// handlers; any client-sent value is overwritten.
const whoHeader = "X-Banyan-Authenticated-Who"

func whoOf(r *http.Request) string { return r.Header.Get(whoHeader) }

func routeNames(t *Table) []string {
	var names []string
	for _, rt := range t.Routes() {
		names = append(names, rt.Name)
	}
	return names
}

func writeEdit(w http.ResponseWriter, m *Manager, route string, e Edit, err error) {
	var ve *ValidationError
	switch {
	case err == nil:
		resp := EditResponse{Changed: e.Seq != 0}
		switch rt := m.Table().Route(route); {
		case resp.Changed:
			resp.Edit, resp.Split = &e, e.New
		case rt != nil:
			resp.Split = rt.Split()
		}
		writeJSON(w, http.StatusOK, resp)
	case errors.As(err, &ve):
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: "invalid split", Problems: ve.Problems})
	case errors.Is(err, ErrUnknownRoute):
		writeJSON(w, http.StatusNotFound, ErrorResponse{Error: err.Error()})
	case errors.Is(err, ErrNothingToRollback), errors.Is(err, ErrNotLatestEdit):
		writeJSON(w, http.StatusConflict, ErrorResponse{Error: err.Error()})
	default:
		writeJSON(w, http.StatusInternalServerError, ErrorResponse{Error: err.Error()})
	}
}

// maxBody caps an admin API request body.
const maxBody = 1 << 20

// Request body shapes, as the errors show them.
const (
	splitShape    = `{"split": {"BACKEND": WEIGHT, ...}, "reason": "..."} (weights sum to 100)`
	rollbackShape = `{"reason": "...", "edit": SEQ} (both optional, or no body)`
)

// decodeJSON reads one JSON object of the given shape into v, or answers
// the error (413 over maxBody, 400 otherwise) saying what to send. An
// optional body may be empty.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any, shape string, optional bool) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if optional && errors.Is(err, io.EOF) {
		return true
	}
	if err == nil {
		if _, tail := dec.Token(); tail != io.EOF {
			err = errors.New("more than one JSON object")
		}
	}
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		return true
	case errors.As(err, &tooLarge):
		writeJSON(w, http.StatusRequestEntityTooLarge, ErrorResponse{Error: fmt.Sprintf("request body is over the 1 MiB limit; send one JSON object %s", shape)})
	case errors.Is(err, io.EOF):
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: "request body is empty; send one JSON object " + shape})
	default:
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: fmt.Sprintf("bad request body (%v); send one JSON object %s", err, shape)})
	}
	return false
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
