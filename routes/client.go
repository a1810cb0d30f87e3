package routes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls a running banyan's admin API, as the routes CLI does.
type Client struct {
	// Base is the admin URL, e.g. http://127.0.0.1:9901.
	Base  string
	Token string
	// User is recorded in the history beside the token's label.
	User string
	HTTP *http.Client
}

// APIError is a non-2xx answer from the admin API.
type APIError struct {
	Status int
	ErrorResponse
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "admin API: %s (HTTP %d)", e.ErrorResponse.Error, e.Status)
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.String())
	}
	return b.String()
}

// ErrUnreachable wraps failures to reach the admin listener at all.
var ErrUnreachable = errors.New("admin API unreachable")

// Routes lists the live route table.
func (c *Client) Routes(ctx context.Context) (RoutesResponse, error) {
	var out RoutesResponse
	return out, c.do(ctx, http.MethodGet, "/api/routes", nil, &out)
}

// SetSplit changes a route's weights.
func (c *Client) SetSplit(ctx context.Context, route string, split Split, reason string) (EditResponse, error) {
	var out EditResponse
	return out, c.do(ctx, http.MethodPut, "/api/routes/"+url.PathEscape(route)+"/split", SplitRequest{Split: split, Reason: reason}, &out)
}

// Rollback undoes a route's latest edit.
func (c *Client) Rollback(ctx context.Context, route, reason string) (EditResponse, error) {
	return c.RollbackEdit(ctx, route, 0, reason)
}

// RollbackEdit undoes the route's edit with history number seq, refused
// (409) when another edit is next in line; seq 0 is Rollback.
func (c *Client) RollbackEdit(ctx context.Context, route string, seq int64, reason string) (EditResponse, error) {
	var out EditResponse
	body := RollbackRequest{Reason: reason, Edit: seq}
	return out, c.do(ctx, http.MethodPost, "/api/routes/"+url.PathEscape(route)+"/rollback", body, &out)
}

// History lists edits newest first, of one route when route != "".
func (c *Client) History(ctx context.Context, route string) (HistoryResponse, error) {
	var out HistoryResponse
	p := "/api/history"
	if route != "" {
		p += "?route=" + url.QueryEscape(route)
	}
	return out, c.do(ctx, http.MethodGet, p, nil, &out)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.Base, "/")+path, body)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if c.User != "" {
		req.Header.Set(UserHeader, c.User)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s: %v (is `banyan serve` running? point --admin or BANYAN_ADMIN at its admin listener)", ErrUnreachable, c.Base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("admin API: read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		ae := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(data, &ae.ErrorResponse) != nil || ae.ErrorResponse.Error == "" {
			ae.ErrorResponse.Error = strings.TrimSpace(string(data))
		}
		return ae
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("admin API: bad answer: %w", err)
	}
	return nil
}
