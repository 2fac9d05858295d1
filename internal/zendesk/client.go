// Package zendesk syncs bug reports to Zendesk: one ticket per report with an
// internal note carrying the context, the report's email thread in both
// directions, and the webhook receiver that brings Zendesk's side back.
//
// It talks to Zendesk through github.com/nukosuke/go-zendesk, which never
// retries and shares its header map between clients; this package adds what
// a production client needs around it: per-request headers (Idempotency-Key),
// a client-side rate limiter that also obeys Retry-After, and a
// classification of errors into retryable and permanent.
package zendesk

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	zd "github.com/nukosuke/go-zendesk/zendesk"
	"golang.org/x/time/rate"
)

// Options configures a Client.
type Options struct {
	// BaseURL is the account's address, e.g. https://acme.zendesk.com
	// (the simulator's URL in tests and in dev).
	BaseURL string
	// Email and APIToken authenticate with an API token; OAuthToken, when
	// set, is sent as a bearer token instead.
	Email      string
	APIToken   string
	OAuthToken string
	// RequestsPerMinute keeps Arubug under the account's plan limit
	// (Zendesk Team: 200, Professional: 400, Enterprise: 700). 0 means 700.
	RequestsPerMinute int
	// Timeout bounds each request. 0 means 30 s.
	Timeout time.Duration
	// Transport is the underlying round tripper; nil means a dedicated
	// http.Transport.
	Transport http.RoundTripper
}

// Client is a rate-limited Zendesk API client. It is safe for concurrent use.
type Client struct {
	*zd.Client
	base string
	lim  *limiter
	hc   *http.Client
	auth func(*http.Request)
}

// NewClient returns a Client for o.
func NewClient(o Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("zendesk: base URL %q must be like https://acme.zendesk.com", o.BaseURL)
	}
	if o.OAuthToken == "" && (o.Email == "" || o.APIToken == "") {
		return nil, errors.New("zendesk: an email with an API token, or an OAuth token, is required")
	}
	if o.RequestsPerMinute <= 0 {
		o.RequestsPerMinute = 700
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	next := o.Transport
	if next == nil {
		next = &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 8,
			IdleConnTimeout:     90 * time.Second,
		}
	}
	lim := newLimiter(o.RequestsPerMinute)
	hc := &http.Client{Timeout: o.Timeout, Transport: &transport{next: next, lim: lim}}
	c, err := zd.NewClient(hc)
	if err != nil {
		return nil, err
	}
	if err := c.SetEndpointURL(u.String() + "/api/v2"); err != nil {
		return nil, err
	}
	auth := func(r *http.Request) { r.SetBasicAuth(o.Email+"/token", o.APIToken) }
	if o.OAuthToken != "" {
		c.SetCredential(zd.NewBearerTokenCredential(o.OAuthToken))
		auth = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+o.OAuthToken) }
	} else {
		c.SetCredential(zd.NewAPITokenCredential(o.Email, o.APIToken))
	}
	return &Client{Client: c, base: u.String(), lim: lim, hc: hc, auth: auth}, nil
}

// BaseURL is the account's address without a trailing slash.
func (c *Client) BaseURL() string { return c.base }

// TicketURL is the agent-interface address of a ticket.
func (c *Client) TicketURL(id int64) string {
	return c.base + "/agent/tickets/" + strconv.FormatInt(id, 10)
}

// Upload stores a file for attaching to a comment and returns its token.
// go-zendesk's UploadAttachment streams through a pipe that blocks forever
// when the request fails early, so uploads go through this instead.
func (c *Client) Upload(ctx context.Context, filename, contentType string, data []byte) (string, error) {
	u := c.base + "/api/v2/uploads.json?filename=" + url.QueryEscape(filename)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(data))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", contentType)
	c.auth(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", zd.NewError(body, resp)
	}
	var out struct {
		Upload struct {
			Token string `json:"token"`
		} `json:"upload"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Upload.Token == "" {
		return "", fmt.Errorf("zendesk: upload answer without a token: %s", truncate(string(body), 200))
	}
	return out.Upload.Token, nil
}

// TicketsByExternalID lists the tickets whose external_id is id, oldest
// first. Zendesk does not make external_id unique, so there may be several.
func (c *Client) TicketsByExternalID(ctx context.Context, id string) ([]zd.Ticket, error) {
	body, err := c.Get(ctx, "/tickets.json?external_id="+url.QueryEscape(id))
	if err != nil {
		return nil, err
	}
	var out struct {
		Tickets []zd.Ticket `json:"tickets"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("zendesk: tickets by external_id: %w", err)
	}
	slices.SortFunc(out.Tickets, func(a, b zd.Ticket) int { return cmp.Compare(a.ID, b.ID) })
	return out.Tickets, nil
}

type ctxKey int

const (
	idempotencyKey ctxKey = iota
	lookupKey
)

// WithIdempotencyKey makes the requests made with ctx carry key as their
// Idempotency-Key header. go-zendesk's SetHeader would set it for every
// request of every client, hence the context.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idempotencyKey, key)
}

// WithLookupRecorder makes the transport store the response's
// x-idempotency-lookup header ("miss" or "hit") in *dst.
func WithLookupRecorder(ctx context.Context, dst *string) context.Context {
	return context.WithValue(ctx, lookupKey, dst)
}

// transport waits for the rate limiter, sets per-request headers, and feeds
// Retry-After answers back into the limiter so that every request of the
// process waits, not only the one that was refused.
type transport struct {
	next http.RoundTripper
	lim  *limiter
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := t.lim.wait(ctx); err != nil {
		return nil, err
	}
	if key, _ := ctx.Value(idempotencyKey).(string); key != "" {
		req = req.Clone(ctx)
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if dst, _ := ctx.Value(lookupKey).(*string); dst != nil {
		*dst = resp.Header.Get("x-idempotency-lookup")
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if d := retryAfter(resp.Header); d > 0 {
			t.lim.pause(d)
		}
	}
	return resp, nil
}

// limiter is a token bucket at the plan's rate plus a pause that a 429's
// Retry-After imposes on everyone.
type limiter struct {
	bucket *rate.Limiter
	mu     sync.Mutex
	until  time.Time
}

// newLimiter allows perMinute requests in any minute: Zendesk counts in
// fixed one-minute windows, so the bucket refills at 95 % of the rate and
// holds the other 5 % as its burst (rate × 60 s + burst = perMinute).
func newLimiter(perMinute int) *limiter {
	burst := max(1, perMinute/20)
	refill := float64(perMinute-burst) / 60
	if refill <= 0 {
		refill = float64(perMinute) / 60
	}
	return &limiter{bucket: rate.NewLimiter(rate.Limit(refill), burst)}
}

func (l *limiter) pause(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if u := time.Now().Add(d); u.After(l.until) {
		l.until = u
	}
}

func (l *limiter) wait(ctx context.Context) error {
	l.mu.Lock()
	until := l.until
	l.mu.Unlock()
	if d := time.Until(until); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return l.bucket.Wait(ctx)
}

// retryAfter reads Retry-After in seconds (Zendesk's form) or as an HTTP date.
func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}

// Failure is what a failed Zendesk call means for the caller.
type Failure struct {
	// Permanent errors are not retried automatically: 4xx other than 408,
	// 409 and 429. They need a person (a wrong group, a bad token).
	Permanent bool
	// RetryAfter is the least wait Zendesk asked for (429, 503); 0 if none.
	RetryAfter time.Duration
	// Reason is a short label for metrics: rate_limited, unavailable,
	// server_error, network, timeout, http_4xx codes.
	Reason string
	// Status is the HTTP status, 0 for network errors.
	Status int
}

// Classify says whether err from a Zendesk call is worth retrying.
func Classify(err error) Failure {
	var ze zd.Error
	if errors.As(err, &ze) {
		st := ze.Status()
		f := Failure{Status: st, RetryAfter: retryAfter(ze.Headers())}
		switch {
		case st == http.StatusTooManyRequests:
			f.Reason = "rate_limited"
		case st == http.StatusServiceUnavailable:
			f.Reason = "unavailable"
		case st >= 500:
			f.Reason = "server_error"
		case st == http.StatusRequestTimeout || st == http.StatusConflict:
			f.Reason = "http_" + strconv.Itoa(st)
		default:
			f.Reason = "http_" + strconv.Itoa(st)
			f.Permanent = true
		}
		return f
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return Failure{Reason: "timeout"}
	default:
		return Failure{Reason: "network"}
	}
}

// IsIdempotencyConflict reports whether err is Zendesk's answer to a reused
// Idempotency-Key with a different body: the ticket exists (or is being
// created) under the key, so look it up instead.
func IsIdempotencyConflict(err error) bool {
	var ze zd.Error
	if !errors.As(err, &ze) || ze.Status() != http.StatusBadRequest {
		return false
	}
	return strings.Contains(ze.Error(), "IdempotentRequestError")
}
