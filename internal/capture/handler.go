// Package capture implements PostHog's capture wire format: it decodes,
// validates and normalises events and hands them to a durable sink. posthog-js
// and the other PostHog SDKs can point at it unmodified.
package capture

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/httperr"
	"github.com/arubug/arubug/internal/ratelimit"
)

// Config configures a Handler.
type Config struct {
	Sink     bugreport.EventSink
	Projects []bugreport.Project
	Limits   Limits
	// MaxInFlight bounds the requests decoded at once; past it the handler
	// answers 503 so that memory stays bounded under any load.
	MaxInFlight int
	// TrustForwardedFor takes the client IP from X-Forwarded-For; set it only
	// behind a proxy that overwrites that header.
	TrustForwardedFor bool
	// BugReportsPerIP and BugReportsPerUser bound the $bug_report events
	// accepted per minute from one client IP and one distinct_id (per
	// project), so a script cannot flood the team queues; 0 is no limit.
	BugReportsPerIP, BugReportsPerUser int
	// SiteApps lists the site apps posthog-js should load for a project
	// (with opt_in_site_apps); URLs are relative to its api_host.
	SiteApps   func(token string) []SiteApp
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// SiteApp is a site app posthog-js loads from the collector.
type SiteApp struct {
	ID  string
	URL string
}

// Handler serves the capture routes.
type Handler struct {
	sink     bugreport.EventSink
	projects map[string]bugreport.Project
	limits   Limits
	inFlight chan struct{}
	trustXFF bool
	perIP    *ratelimit.Limiter
	perUser  *ratelimit.Limiter
	siteApps func(token string) []SiteApp
	now      func() time.Time
	log      *slog.Logger
	m        *metrics
}

type metrics struct {
	accepted *prometheus.CounterVec
	rejected *prometheus.CounterVec
	payload  prometheus.Histogram
}

// New returns a Handler, or an error naming every problem in cfg.
func New(cfg Config) (*Handler, error) {
	var errs []error
	if cfg.Sink == nil {
		errs = append(errs, errors.New("capture: a sink is required"))
	}
	if err := cfg.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	projects := make(map[string]bugreport.Project, len(cfg.Projects))
	for _, p := range cfg.Projects {
		if _, dup := projects[p.Token]; dup {
			errs = append(errs, errors.New("capture: project token used twice (project "+p.Name+")"))
		}
		projects[p.Token] = p
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 1024
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	m := &metrics{
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arubug_capture_events_accepted_total",
			Help: "Events accepted and made durable, by project.",
		}, []string{"project"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arubug_capture_requests_rejected_total",
			Help: "Capture requests rejected, by reason.",
		}, []string{"reason"}),
		payload: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "arubug_capture_payload_bytes",
			Help:    "Decoded payload size of accepted capture requests.",
			Buckets: prometheus.ExponentialBuckets(256, 4, 9),
		}),
	}
	cfg.Registerer.MustRegister(m.accepted, m.rejected, m.payload)
	h := &Handler{
		sink:     cfg.Sink,
		projects: projects,
		limits:   cfg.Limits,
		inFlight: make(chan struct{}, cfg.MaxInFlight),
		trustXFF: cfg.TrustForwardedFor,
		now:      cfg.Now,
		log:      cfg.Logger,
		m:        m,
		siteApps: cfg.SiteApps,
	}
	if cfg.BugReportsPerIP > 0 {
		h.perIP = ratelimit.New(cfg.BugReportsPerIP, cfg.BugReportsPerIP, 100000, cfg.Now)
	}
	if cfg.BugReportsPerUser > 0 {
		h.perUser = ratelimit.New(cfg.BugReportsPerUser, cfg.BugReportsPerUser, 100000, cfg.Now)
	}
	return h, nil
}

// capturePaths are the routes PostHog SDKs post events to.
var capturePaths = []string{"/e", "/capture", "/track", "/engage", "/batch", "/i/v0/e"}

// Mount registers the capture and SDK start-up routes on r.
func (h *Handler) Mount(r chi.Router) {
	for _, p := range capturePaths {
		for _, path := range []string{p, p + "/"} {
			r.With(cors).MethodFunc(http.MethodGet, path, h.serveCapture)
			r.With(cors).MethodFunc(http.MethodPost, path, h.serveCapture)
			r.With(cors).MethodFunc(http.MethodOptions, path, preflight)
		}
	}
	for _, path := range []string{"/flags", "/flags/", "/decide", "/decide/"} {
		r.With(cors).MethodFunc(http.MethodGet, path, h.serveFlags)
		r.With(cors).MethodFunc(http.MethodPost, path, h.serveFlags)
		r.With(cors).MethodFunc(http.MethodOptions, path, preflight)
	}
	r.With(cors).Get("/array/{token}/config", h.serveRemoteConfig)
	r.With(cors).Get("/array/{token}/config.js", h.serveRemoteConfigJS)
	r.With(cors).Options("/array/{token}/config", preflight)
}

func (h *Handler) serveCapture(w http.ResponseWriter, r *http.Request) {
	select {
	case h.inFlight <- struct{}{}:
		defer func() { <-h.inFlight }()
	default:
		h.fail(w, r, &bugreport.Error{Code: bugreport.EUNAVAILABLE, Reason: "overloaded", Message: "too many requests in flight; retry shortly", RetryAfter: time.Second})
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	maxBody := h.limits.MaxBodyBytes
	if path == "/batch" {
		maxBody = h.limits.MaxBatchBodyBytes
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)

	payload, t, err := readPayload(r, maxBody, h.limits)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	now := h.now()
	p, err := parsePayload(payload, parseContext{now: now, sentAtMS: t.sentAtMS, engage: path == "/engage", limits: h.limits})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	project, err := h.project(p.token)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ip := clientIP(r, h.trustXFF)
	if err := h.limitBugReports(project.Name, ip, p.events); err != nil {
		h.fail(w, r, err)
		return
	}
	if t.skipIP {
		ip = ""
	}
	for i := range p.events {
		p.events[i].Project = project.Name
		p.events[i].IP = ip
	}
	if err := h.sink.Append(r.Context(), p.events); err != nil {
		h.fail(w, r, err)
		return
	}
	h.m.accepted.WithLabelValues(project.Name).Add(float64(len(p.events)))
	h.m.payload.Observe(float64(len(payload)))
	if t.beacon {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":1}`))
}

// limitBugReports applies the per-IP and per-user limits to the request's
// $bug_report events; a refused request stores nothing.
func (h *Handler) limitBugReports(project, ip string, events []bugreport.Event) error {
	if h.perIP == nil && h.perUser == nil {
		return nil
	}
	perUser := map[string]int{}
	total := 0
	for i := range events {
		if events[i].Event == bugreport.EventBugReport {
			perUser[events[i].DistinctID]++
			total++
		}
	}
	if total == 0 {
		return nil
	}
	refuse := func(wait time.Duration, who string) error {
		return &bugreport.Error{Code: bugreport.ERATELIMIT, Reason: "bug_report_rate_limited",
			Message: "too many bug reports from this " + who + "; retry later", RetryAfter: wait}
	}
	// Check every limit first and take tokens only when all allow: a
	// refused request must not use up budget.
	if h.perIP != nil {
		if ok, wait := h.perIP.Check(project+"\x00"+ip, total); !ok {
			return refuse(wait, "address")
		}
	}
	if h.perUser != nil {
		for user, n := range perUser {
			if ok, wait := h.perUser.Check(project+"\x00"+user, n); !ok {
				return refuse(wait, "user")
			}
		}
		for user, n := range perUser {
			h.perUser.Allow(project+"\x00"+user, n)
		}
	}
	if h.perIP != nil {
		h.perIP.Allow(project+"\x00"+ip, total)
	}
	return nil
}

func (h *Handler) project(token string) (bugreport.Project, error) {
	token = strings.TrimSpace(token)
	switch {
	case token == "":
		return bugreport.Project{}, bugreport.Errorf(bugreport.EUNAUTHORIZED, "missing_token", "the request carries no project token (api_key or token)")
	case strings.HasPrefix(token, "phx_"):
		return bugreport.Project{}, bugreport.Errorf(bugreport.EUNAUTHORIZED, "personal_api_key", "a personal API key (phx_…) cannot capture events; use the project token")
	}
	p, ok := h.projects[token]
	if !ok {
		return bugreport.Project{}, bugreport.Errorf(bugreport.EUNAUTHORIZED, "invalid_token", "the project token is not known to this collector")
	}
	return p, nil
}

// fail answers with the JSON error for err and counts the rejection.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var e *bugreport.Error
	if !errors.As(err, &e) {
		if errors.Is(err, context.Canceled) {
			e = &bugreport.Error{Code: bugreport.EUNAVAILABLE, Reason: "canceled", Message: "the request was canceled"}
		} else {
			e = &bugreport.Error{Code: bugreport.EINTERNAL, Reason: "internal", Message: "internal error", Err: err}
		}
	}
	h.m.rejected.WithLabelValues(e.Reason).Inc()
	level := slog.LevelDebug
	if e.Code == bugreport.EINTERNAL || e.Code == bugreport.EUNAVAILABLE {
		level = slog.LevelWarn
	}
	h.log.Log(r.Context(), level, "capture request rejected", "path", r.URL.Path, "code", e.Code, "reason", e.Reason, "err", err)
	httperr.Write(w, e)
}

func clientIP(r *http.Request, trustXFF bool) string {
	if trustXFF {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			first, _, _ := strings.Cut(xff, ",")
			return truncate(strings.TrimSpace(first), 64)
		}
	}
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	return strings.Trim(host, "[]")
}

// cors mirrors the Origin, as PostHog does: capture is called from any site
// that embeds the SDK, and credentials mode "include" needs an exact origin.
func cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Add("Vary", "Origin")
		}
		next.ServeHTTP(w, r)
	})
}

func preflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		h.Set("Access-Control-Allow-Headers", truncate(req, 1024))
	} else {
		h.Set("Access-Control-Allow-Headers", "Content-Type")
	}
	h.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}
