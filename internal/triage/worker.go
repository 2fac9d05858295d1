package triage

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/enrich"
)

// Store is where reports come from and go to.
type Store interface {
	PendingReportEvents(ctx context.Context, projects []string, now time.Time, lookback time.Duration, limit int) ([]bugreport.Event, error)
	SaveReport(ctx context.Context, r *bugreport.Report, source string) error
	SimilarCount(ctx context.Context, project, fingerprint string, since time.Time, exclude bugreport.UUID) (uint64, error)
	ReportsWithoutUsage(ctx context.Context, since time.Time, limit int) ([]*bugreport.Report, error)
}

// Enricher reads the reporter's context.
type Enricher interface {
	SessionStart(ctx context.Context, project, sessionID string) (time.Time, bool, error)
	Usage(ctx context.Context, project, distinctID, deviceID string, at time.Time) (*bugreport.Usage, error)
}

// Router decides a report's team.
type Router interface {
	Route(r *bugreport.Report) bugreport.RouteDecision
}

// Config configures a Worker.
type Config struct {
	Store    Store
	Enricher Enricher
	// Rules returns the rules in force; it is called per report so that a
	// reload takes effect at once.
	Rules    func() Router
	Projects []bugreport.Project
	// ReplayTemplate builds replay links; empty means
	// enrich.DefaultReplayTemplate.
	ReplayTemplate string
	// PollInterval is how often the reconciler looks for reports that the
	// fast path missed (a crash, a full queue).
	PollInterval time.Duration
	// Lookback bounds how old an unprocessed report may be and still be
	// picked up.
	Lookback time.Duration
	// Concurrency is the number of reports triaged at once; each waits on
	// ClickHouse queries, so several in parallel keep up with bursts. 0
	// means DefaultConcurrency.
	Concurrency int
	// OnReport is called after a report is stored (for the ticket sync).
	OnReport   func(*bugreport.Report)
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// DefaultConcurrency is the number of reports triaged at once unless
// configured. A report waits on two ClickHouse round trips (usage and the
// similar-reports count together, then the insert), three when its session
// id is not a UUIDv7; under 5 000 events/s on two cores each takes 0.3–0.5 s,
// so 10 reports/s need about ten in flight (docs/benchmarks.md: 4 and 8
// queued). At most two queries per report run at once, and the driver
// waits (up to its dial timeout) when its pool of 16 connections is busy.
const DefaultConcurrency = 12

// Worker triages reports. Notify is the fast path from the ClickHouse
// writer; Run's reconciler finds whatever the fast path missed.
type Worker struct {
	cfg      Config
	projects map[string]bugreport.Project
	names    []string // of projects, for the reconciler
	queue    chan bugreport.Event
	mu       sync.Mutex
	recent   map[bugreport.UUID]time.Time // processed recently; skips the reconciler's duplicates
	inflight map[bugreport.UUID]bool      // being processed now
	m        workerMetrics
}

type workerMetrics struct {
	triaged       *prometheus.CounterVec
	latency       prometheus.Histogram
	failures      prometheus.Counter
	noUsage       prometheus.Counter
	queueDrops    prometheus.Counter
	enrichedLater prometheus.Counter
}

// New returns a Worker.
func New(cfg Config) (*Worker, error) {
	if cfg.Store == nil || cfg.Enricher == nil || cfg.Rules == nil {
		return nil, errors.New("triage: store, enricher and rules are required")
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 5 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Lookback <= 0 {
		cfg.Lookback = 7 * 24 * time.Hour
	}
	if cfg.ReplayTemplate == "" {
		cfg.ReplayTemplate = enrich.DefaultReplayTemplate
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
	w := &Worker{
		cfg:      cfg,
		projects: map[string]bugreport.Project{},
		queue:    make(chan bugreport.Event, 1024),
		recent:   map[bugreport.UUID]time.Time{},
		inflight: map[bugreport.UUID]bool{},
		m: workerMetrics{
			triaged: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "arubug_triage_reports_total", Help: "Bug reports triaged, by team.",
			}, []string{"team"}),
			latency: prometheus.NewHistogram(prometheus.HistogramOpts{
				Name: "arubug_triage_ack_to_routed_seconds", Help: "Time from the collector's ack of a $bug_report to its stored, routed report.",
				Buckets: []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60},
			}),
			failures:      prometheus.NewCounter(prometheus.CounterOpts{Name: "arubug_triage_failures_total", Help: "Reports whose triage failed (retried by the reconciler)."}),
			noUsage:       prometheus.NewCounter(prometheus.CounterOpts{Name: "arubug_triage_usage_unavailable_total", Help: "Reports stored without usage data because ClickHouse was slow or down."}),
			queueDrops:    prometheus.NewCounter(prometheus.CounterOpts{Name: "arubug_triage_queue_full_total", Help: "Fast-path notifications dropped because the queue was full (the reconciler picks them up)."}),
			enrichedLater: prometheus.NewCounter(prometheus.CounterOpts{Name: "arubug_triage_enriched_later_total", Help: "Reports whose usage was added after they were first stored without it."}),
		},
	}
	for _, p := range cfg.Projects {
		w.projects[p.Name] = p
		w.names = append(w.names, p.Name)
	}
	if len(w.names) == 0 {
		cfg.Logger.Warn("triage: no projects configured; the reconciler will find no reports")
	}
	cfg.Registerer.MustRegister(w.m.triaged, w.m.latency, w.m.failures, w.m.noUsage, w.m.queueDrops, w.m.enrichedLater)
	return w, nil
}

// Notify hands freshly stored events to the worker. It never blocks: when
// the queue is full the reconciler finds the reports instead.
func (w *Worker) Notify(events []bugreport.Event) {
	for _, e := range events {
		if e.Event != bugreport.EventBugReport {
			continue
		}
		select {
		case w.queue <- e:
		default:
			w.m.queueDrops.Inc()
		}
	}
}

// Run processes notifications and reconciles until ctx ends.
func (w *Worker) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := 0; i < w.cfg.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case e := <-w.queue:
					if w.claim(e.UUID) {
						_ = w.process(ctx, e)
						w.release(e.UUID)
					}
				}
			}
		}()
	}
	tick := time.NewTicker(w.cfg.PollInterval)
	defer tick.Stop()
	w.reconcile(ctx)
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-tick.C:
			w.reconcile(ctx)
			w.enrichLater(ctx)
		}
	}
}

// claim marks a report as being processed, unless it is already in flight
// or was processed recently.
func (w *Worker) claim(id bugreport.UUID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, done := w.recent[id]; done || w.inflight[id] {
		return false
	}
	w.inflight[id] = true
	return true
}

func (w *Worker) release(id bugreport.UUID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.inflight, id)
}

func (w *Worker) remember(id bugreport.UUID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.cfg.Now()
	w.recent[id] = now
	// The reconciler sees a stored report as pending only until ClickHouse
	// shows the new row, seconds later; a few minutes of memory is plenty.
	// Pruning at powers of two keeps the cost amortised.
	if n := len(w.recent); n >= 1024 && n&(n-1) == 0 {
		for k, t := range w.recent {
			if now.Sub(t) > 10*time.Minute {
				delete(w.recent, k)
			}
		}
	}
}

func (w *Worker) reconcile(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	events, err := w.cfg.Store.PendingReportEvents(qctx, w.names, w.cfg.Now(), w.cfg.Lookback, 200)
	if err != nil {
		if ctx.Err() == nil {
			w.cfg.Logger.Warn("triage reconcile: cannot list pending reports", "err", err)
		}
		return
	}
	for _, e := range events {
		// Reports stored a moment ago may still look pending; claim skips
		// them.
		select {
		case w.queue <- e:
		case <-ctx.Done():
			return
		}
	}
}

// enrichLater retries usage for reports stored while ClickHouse was slow or
// down, and routes them again: usage can make a report VIP. A route chosen
// by a person is kept.
func (w *Worker) enrichLater(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	reports, err := w.cfg.Store.ReportsWithoutUsage(qctx, w.cfg.Now().Add(-24*time.Hour), 50)
	if err != nil || len(reports) == 0 {
		return
	}
	for _, r := range reports {
		uctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		u, err := w.cfg.Enricher.Usage(uctx, r.Project, r.Reporter.DistinctID, r.DeviceID, r.ReportedAt)
		cancel()
		if err != nil {
			return // still unavailable; try again next tick
		}
		r.Usage = u
		source := r.RouteSource
		if source != "manual" {
			r.Route = w.cfg.Rules().Route(r)
			source = "rules"
		}
		if err := w.cfg.Store.SaveReport(ctx, r, source); err != nil {
			return
		}
		w.m.enrichedLater.Inc()
		w.cfg.Logger.Info("report enriched after usage was unavailable", "report", r.ID.String(), "team", r.Route.Team)
	}
}

// Process triages one $bug_report event and stores the report.
func (w *Worker) Process(ctx context.Context, e bugreport.Event) (*bugreport.Report, error) {
	r := w.Triage(ctx, e)
	if err := w.cfg.Store.SaveReport(ctx, r, "rules"); err != nil {
		return nil, err
	}
	return r, nil
}

func (w *Worker) process(ctx context.Context, e bugreport.Event) error {
	start := time.Now()
	r := w.Triage(ctx, e)
	triaged := time.Now()
	err := w.cfg.Store.SaveReport(ctx, r, "rules")
	if err != nil {
		w.m.failures.Inc()
		w.cfg.Logger.Warn("triage failed; the reconciler will retry", "report", e.UUID.String(), "err", err)
		return err
	}
	w.remember(e.UUID)
	w.m.triaged.WithLabelValues(r.Route.Team).Inc()
	w.m.latency.Observe(w.cfg.Now().Sub(e.CreatedAt).Seconds())
	w.cfg.Logger.Info("bug report triaged", "report", r.ID.String(), "team", r.Route.Team, "route", r.Route.Route, "priority", r.Route.Priority, "spam", r.Spam,
		"took", time.Since(start).Round(time.Millisecond), "triage", triaged.Sub(start).Round(time.Millisecond), "save", time.Since(triaged).Round(time.Millisecond),
		"since_ack", w.cfg.Now().Sub(e.CreatedAt).Round(time.Millisecond))
	if w.cfg.OnReport != nil {
		w.cfg.OnReport(r)
	}
	return nil
}

// Triage builds, enriches and routes a report without storing it.
func (w *Worker) Triage(ctx context.Context, e bugreport.Event) *bugreport.Report {
	r := BuildReport(e)
	c := enrich.ParseUserAgent(r.UserAgent)
	r.Browser, r.BrowserVersion, r.OS, r.OSVersion, r.Device = c.Browser, c.BrowserVersion, c.OS, c.OSVersion, c.Device
	// The fingerprint takes the latest exception from the usage if there is
	// one, else the console's. Similar reports are counted for the console's
	// while the usage is read, and counted again only if the usage changes
	// the fingerprint: one round trip to ClickHouse less for most reports.
	guess := Fingerprint(r)
	var (
		similar    uint64
		similarErr error
		counted    = make(chan struct{})
	)
	go func() {
		defer close(counted)
		similar, similarErr = w.similar(ctx, r, guess)
	}()
	w.enrich(ctx, r)
	<-counted
	r.Fingerprint = Fingerprint(r)
	if r.Fingerprint != guess {
		similar, similarErr = w.similar(ctx, r, r.Fingerprint)
	}
	r.SimilarCount = 1
	if similarErr == nil {
		r.SimilarCount = similar + 1
	}
	r.Route = w.cfg.Rules().Route(r)
	return r
}

// similar counts the other stored reports of the last 7 days with the
// fingerprint.
func (w *Worker) similar(ctx context.Context, r *bugreport.Report, fingerprint string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return w.cfg.Store.SimilarCount(ctx, r.Project, fingerprint, r.ReportedAt.Add(-7*24*time.Hour), r.ID)
}

// enrich adds the replay link and usage. Either may be unavailable: the
// report goes on without it rather than waiting for ClickHouse.
//
// The session start comes from the session id when it is a posthog-js
// UUIDv7 (enrich.SessionStartFromID), with no query; otherwise it is read
// from ClickHouse at the same time as the usage.
func (w *Worker) enrich(ctx context.Context, r *bugreport.Report) {
	defer func(start time.Time) {
		w.cfg.Logger.Debug("report enriched", "report", r.ID.String(), "took", time.Since(start).Round(time.Millisecond))
	}(time.Now())
	var wg sync.WaitGroup
	p := w.projects[r.Project]
	if r.SessionID != "" && p.Token != "" {
		link := func(start time.Time, ok bool) {
			seconds := int64(0)
			if ok && r.ReportedAt.After(start) {
				seconds = int64(r.ReportedAt.Sub(start) / time.Second)
			}
			r.ReplayURL = enrich.ReplayURL(w.cfg.ReplayTemplate, p.ReplayHost, p.Token, r.SessionID, seconds)
		}
		if start, ok := enrich.SessionStartFromID(r.SessionID, r.ReportedAt); ok {
			link(start, true)
		} else {
			wg.Go(func() {
				sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				start, ok, err := w.cfg.Enricher.SessionStart(sctx, r.Project, r.SessionID)
				cancel()
				link(start, err == nil && ok)
			})
		}
	}
	uctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	u, err := w.cfg.Enricher.Usage(uctx, r.Project, r.Reporter.DistinctID, r.DeviceID, r.ReportedAt)
	cancel()
	wg.Wait()
	if err != nil {
		w.m.noUsage.Inc()
		w.cfg.Logger.Warn("usage unavailable for report; it proceeds without", "report", r.ID.String(), "err", err)
		return
	}
	r.Usage = u
	if r.Reporter.Email == "" && u != nil {
		if email := u.Person["email"]; plausibleEmail(email) {
			r.Reporter.Email = email
		}
	}
	if r.Reporter.Name == "" && u != nil {
		r.Reporter.Name = clip(u.Person["name"], 200)
	}
}
