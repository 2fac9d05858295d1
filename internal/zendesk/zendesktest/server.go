// Package zendesktest is a Zendesk Support API simulator: a real HTTP server with Zendesk's
// semantics for the subset Arubug uses (tickets, comments, users, groups, uploads, webhooks,
// triggers), which tests and the local demo can inspect and script to fail.
//
// It is not a mock: requests are authenticated, validated and answered with Zendesk's JSON
// shapes and status codes, state persists between requests, triggers fire signed webhook
// deliveries, and a per-minute rate limit answers 429 with Retry-After. Faults (5xx, slow
// answers, "commit then drop the connection") are scripted per method and path prefix.
package zendesktest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Default credentials used when Options leaves them empty.
const (
	DefaultEmail    = "agent@example.test"
	DefaultAPIToken = "sim-api-token"
)

const (
	maxRecordedRequests = 10000
	maxRecordedBody     = 64 << 10 // bytes of each request body kept by Requests
	maxRequestBody      = 10 << 20 // larger bodies are answered 413
	idempotencyTTL      = 2 * time.Hour
	uploadTTL           = time.Hour
	// Zendesk's documented account-wide default, reported when RatePerMinute is 0.
	unlimitedReportedRate = 700
)

// Options configures a Server. The zero value is usable: credentials default to
// DefaultEmail/DefaultAPIToken, no OAuth token is accepted, there is no rate limit, the
// clock is time.Now and the /_sim/ control API is off.
type Options struct {
	// Email and APIToken are the accepted API-token credentials: the Authorization header
	// must be Basic base64(Email + "/token:" + APIToken). The Email user exists as an admin.
	Email, APIToken string
	// OAuthToken, if set, is also accepted as "Authorization: Bearer <OAuthToken>".
	OAuthToken string
	// RatePerMinute limits /api/v2 requests per fixed one-minute window; 0 means unlimited
	// (X-Rate-Limit then reports 700 and requests are never refused).
	RatePerMinute int
	// Now is the clock used for timestamps, the rate-limit window, idempotency and upload
	// expiry, and webhook signature timestamps.
	Now func() time.Time
	// EnableControl serves the unauthenticated /_sim/ control API and HTML page.
	EnableControl bool
	// SupportAddress is the "to" address of simulated inbound emails
	// (default "support@example.zendesk.com").
	SupportAddress string
	// WebhookAttempts bounds delivery attempts per webhook event (default 3); attempts are
	// retried after connection errors and 5xx answers.
	WebhookAttempts int
	// WebhookBackoff is the delay before the n-th retry, multiplied by n (default 20ms).
	WebhookBackoff time.Duration
	// WebhookClient sends webhook deliveries (default: a client with a 10s timeout).
	WebhookClient *http.Client
}

// RecordedRequest is one request the server received, as recorded by Requests.
type RecordedRequest struct {
	Time     time.Time
	Method   string
	Path     string
	RawQuery string
	Query    url.Values
	// Header is a copy of the request headers with Authorization replaced by "<redacted>".
	Header http.Header
	// Body holds at most the first 64 KiB of the request body.
	Body []byte
}

// Server is the simulator. It is safe for concurrent use.
type Server struct {
	opts    Options
	handler http.Handler
	ts      *httptest.Server

	mu          sync.Mutex
	seq         int64 // ids for everything except tickets
	ticketSeq   int64
	tickets     map[int64]*ticket
	ticketOrder []int64
	users       map[int64]*User
	userOrder   []int64
	groups      map[int64]*Group
	groupOrder  []int64
	uploads     map[string]*upload
	idem        map[string]*idemEntry
	webhooks    map[string]*Webhook
	hookOrder   []string
	triggers    map[int64]*Trigger
	trigOrder   []int64
	requests    []RecordedRequest
	faults      []*fault
	deliveries  []Delivery
	rateStart   time.Time
	rateCount   int
	agentID     int64

	// webhook deliveries in flight, waited for by WaitDeliveries and Close.
	dmu      sync.Mutex
	dcond    *sync.Cond
	inflight int
	ctx      context.Context
	cancel   context.CancelFunc
}

// New returns a Server that is not listening; serve Handler yourself or use Start.
// The default group "Support" and the API user (an admin with Options.Email) exist.
func New(opts Options) *Server {
	if opts.Email == "" {
		opts.Email = DefaultEmail
	}
	if opts.APIToken == "" {
		opts.APIToken = DefaultAPIToken
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SupportAddress == "" {
		opts.SupportAddress = "support@example.zendesk.com"
	}
	if opts.WebhookAttempts <= 0 {
		opts.WebhookAttempts = 3
	}
	if opts.WebhookBackoff <= 0 {
		opts.WebhookBackoff = 20 * time.Millisecond
	}
	if opts.WebhookClient == nil {
		opts.WebhookClient = &http.Client{Timeout: 10 * time.Second}
	}
	s := &Server{
		opts:     opts,
		seq:      360000000000, // Zendesk-sized ids catch int32 truncation
		tickets:  map[int64]*ticket{},
		users:    map[int64]*User{},
		groups:   map[int64]*Group{},
		uploads:  map[string]*upload{},
		idem:     map[string]*idemEntry{},
		webhooks: map[string]*Webhook{},
		triggers: map[int64]*Trigger{},
	}
	s.dcond = sync.NewCond(&s.dmu)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.AddGroup("Support")
	s.mu.Lock()
	s.agentID = s.upsertUserLocked("Simulator Agent", opts.Email, "admin").ID
	s.mu.Unlock()
	s.handler = s.buildHandler()
	return s
}

// Start starts s on a local httptest server and closes it (and stops webhook deliveries)
// in t.Cleanup.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := New(opts)
	s.ts = httptest.NewServer(s.handler)
	t.Cleanup(func() {
		s.Close()
		s.ts.Close()
	})
	return s
}

// URL is the base URL of a started server (append "/api/v2" for API clients); it is empty
// for a server made by New.
func (s *Server) URL() string {
	if s.ts == nil {
		return ""
	}
	return s.ts.URL
}

// Handler serves the simulator: /api/v2/... and, with Options.EnableControl, /_sim/....
func (s *Server) Handler() http.Handler { return s.handler }

// Close cancels webhook deliveries in progress and waits for them to stop. It does not
// close a listener; Start's cleanup does that.
func (s *Server) Close() {
	s.cancel()
	s.WaitDeliveries()
}

func (s *Server) now() time.Time { return s.opts.Now().UTC().Truncate(time.Second) }

func (s *Server) nextIDLocked() int64 {
	s.seq++
	return s.seq
}

func (s *Server) buildHandler() http.Handler {
	control := s.controlMux()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
		if err != nil {
			writeError(w, http.StatusBadRequest, "InvalidRequest", "could not read request body")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		s.record(r, body)
		if len(body) > maxRequestBody {
			writeError(w, http.StatusRequestEntityTooLarge, "RequestTooLarge", "Request body too large")
			return
		}
		switch {
		case r.URL.Path == "/api/v2" || strings.HasPrefix(r.URL.Path, "/api/v2/"):
			s.serveAPI(w, r, body)
		case s.opts.EnableControl && (r.URL.Path == "/_sim" || strings.HasPrefix(r.URL.Path, "/_sim/")):
			control.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

func (s *Server) record(r *http.Request, body []byte) {
	h := r.Header.Clone()
	if h.Get("Authorization") != "" {
		h.Set("Authorization", "<redacted>")
	}
	if len(body) > maxRecordedBody {
		body = body[:maxRecordedBody]
	}
	rec := RecordedRequest{
		Time:     s.now(),
		Method:   r.Method,
		Path:     r.URL.Path,
		RawQuery: r.URL.RawQuery,
		Query:    r.URL.Query(),
		Header:   h,
		Body:     bytes.Clone(body),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) >= maxRecordedRequests {
		n := copy(s.requests, s.requests[len(s.requests)-maxRecordedRequests+1:])
		s.requests = s.requests[:n]
	}
	s.requests = append(s.requests, rec)
}

// Requests returns a copy of the recorded requests, oldest first (at most the last 10 000).
func (s *Server) Requests() []RecordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]RecordedRequest(nil), s.requests...)
}

// serveAPI applies, in order: the rate limit, authentication, scripted faults, routing.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, body []byte) {
	if !s.rateLimit(w) {
		return
	}
	if !s.authenticated(r) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "Couldn't authenticate you"})
		return
	}
	f := s.takeFault(r)
	if f != nil {
		switch f.kind {
		case faultStatus:
			writeFault(w, f.status)
			return
		case faultSlow:
			t := time.NewTimer(f.delay)
			select {
			case <-r.Context().Done():
				t.Stop()
				return // the client gave up: do nothing
			case <-t.C:
			}
		case faultDrop:
			bw := &bufferedWriter{header: http.Header{}}
			s.route(bw, r, body)
			dropConnection(w)
			return
		}
	}
	s.route(w, r, body)
}

func (s *Server) authenticated(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok {
		return false
	}
	switch strings.ToLower(scheme) {
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
		if err != nil {
			return false
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok {
			return false
		}
		email, isToken := strings.CutSuffix(user, "/token")
		return isToken && strings.EqualFold(email, s.opts.Email) && pass == s.opts.APIToken
	case "bearer":
		return s.opts.OAuthToken != "" && strings.TrimSpace(cred) == s.opts.OAuthToken
	}
	return false
}

// rateLimit counts the request in the current fixed one-minute window, sets the rate-limit
// headers, and answers 429 when the window is exhausted. It reports whether to continue.
func (s *Server) rateLimit(w http.ResponseWriter) bool {
	now := s.opts.Now()
	s.mu.Lock()
	if s.rateStart.IsZero() || !now.Before(s.rateStart.Add(time.Minute)) {
		s.rateStart, s.rateCount = now, 0
	}
	limit := s.opts.RatePerMinute
	unlimited := limit <= 0
	if unlimited {
		limit = unlimitedReportedRate
	}
	over := !unlimited && s.rateCount >= limit
	if !over {
		s.rateCount++
	}
	remaining := max(limit-s.rateCount, 0)
	resetIn := s.rateStart.Add(time.Minute).Sub(now)
	s.mu.Unlock()

	w.Header().Set("X-Rate-Limit", fmt.Sprint(limit))
	w.Header().Set("X-Rate-Limit-Remaining", fmt.Sprint(remaining))
	if over {
		retry := max(int(math.Ceil(resetIn.Seconds())), 1)
		w.Header().Set("Retry-After", fmt.Sprint(retry))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, "Rate limit exceeded")
		return false
	}
	return true
}

// route dispatches an authenticated /api/v2 request. A trailing ".json" is optional, as in
// Zendesk.
func (s *Server) route(w http.ResponseWriter, r *http.Request, body []byte) {
	p := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/api/v2"), "/")
	p = strings.TrimSuffix(p, ".json")
	seg := strings.Split(strings.TrimPrefix(p, "/"), "/")
	type endpoint map[string]func()
	var ep endpoint
	switch {
	case len(seg) == 1 && seg[0] == "tickets":
		ep = endpoint{
			"GET":  func() { s.listTickets(w, r) },
			"POST": func() { s.createTicket(w, r, body) },
		}
	case len(seg) == 2 && seg[0] == "tickets":
		id, ok := parseID(seg[1])
		if !ok {
			break
		}
		ep = endpoint{
			"GET": func() { s.showTicket(w, id) },
			"PUT": func() { s.updateTicket(w, r, id, body) },
		}
	case len(seg) == 3 && seg[0] == "tickets" && seg[2] == "comments":
		id, ok := parseID(seg[1])
		if !ok {
			break
		}
		ep = endpoint{"GET": func() { s.listComments(w, r, id) }}
	case len(seg) == 2 && seg[0] == "users" && seg[1] == "create_or_update":
		ep = endpoint{"POST": func() { s.createOrUpdateUser(w, r, body) }}
	case len(seg) == 2 && seg[0] == "users":
		id, ok := parseID(seg[1])
		if !ok {
			break
		}
		ep = endpoint{"GET": func() { s.showUser(w, r, id) }}
	case len(seg) == 1 && seg[0] == "groups":
		ep = endpoint{"GET": func() { s.listGroups(w, r) }}
	case len(seg) == 1 && seg[0] == "uploads":
		ep = endpoint{"POST": func() { s.createUpload(w, r, body) }}
	case len(seg) == 1 && seg[0] == "webhooks":
		ep = endpoint{
			"GET":  func() { s.listWebhooks(w, r) },
			"POST": func() { s.createWebhook(w, r, body) },
		}
	case len(seg) == 2 && seg[0] == "webhooks":
		ep = endpoint{
			"GET":    func() { s.showWebhook(w, seg[1]) },
			"PUT":    func() { s.updateWebhook(w, seg[1], body, false) },
			"PATCH":  func() { s.updateWebhook(w, seg[1], body, true) },
			"DELETE": func() { s.deleteWebhook(w, seg[1]) },
		}
	case len(seg) == 3 && seg[0] == "webhooks" && seg[2] == "signing_secret":
		ep = endpoint{"GET": func() { s.showSigningSecret(w, seg[1]) }}
	case len(seg) == 1 && seg[0] == "triggers":
		ep = endpoint{
			"GET":  func() { s.listTriggers(w, r) },
			"POST": func() { s.createTrigger(w, r, body) },
		}
	case len(seg) == 2 && seg[0] == "triggers":
		id, ok := parseID(seg[1])
		if !ok {
			break
		}
		ep = endpoint{
			"GET":    func() { s.showTrigger(w, id) },
			"PUT":    func() { s.updateTrigger(w, id, body) },
			"DELETE": func() { s.deleteTrigger(w, id) },
		}
	}
	if ep == nil {
		writeError(w, http.StatusNotFound, "InvalidEndpoint", "Not found")
		return
	}
	h, ok := ep[r.Method]
	if !ok {
		allow := make([]string, 0, len(ep))
		for m := range ep {
			allow = append(allow, m)
		}
		w.Header().Set("Allow", strings.Join(sortedStrings(allow), ", "))
		writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "Method not allowed")
		return
	}
	h()
}

// baseURL is the scheme and host the client used, for "url" fields.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]string{"error": code, "description": description})
}

// bufferedWriter swallows a response so CommitThenDrop can act without answering.
type bufferedWriter struct {
	header http.Header
	buf    bytes.Buffer
	status int
}

func (b *bufferedWriter) Header() http.Header         { return b.header }
func (b *bufferedWriter) Write(p []byte) (int, error) { return b.buf.Write(p) }
func (b *bufferedWriter) WriteHeader(status int)      { b.status = status }

// dropConnection closes the client connection without writing a response.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler) // HTTP/2 or no hijacking: the server aborts the stream
}
