package zendesk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	zd "github.com/nukosuke/go-zendesk/zendesk"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/outbox"
)

// Store is what the sync reads and writes in ClickHouse.
type Store interface {
	Report(ctx context.Context, id bugreport.UUID) (*bugreport.Report, error)
	Screenshot(ctx context.Context, id bugreport.UUID) (mime string, data []byte, err error)
	TicketLink(ctx context.Context, id bugreport.UUID) (*bugreport.TicketLink, error)
	SaveTicketLink(ctx context.Context, l *bugreport.TicketLink) error
	SaveTicketStatus(ctx context.Context, l *bugreport.TicketLink, status string, at time.Time) error
	ReportsToTicket(ctx context.Context, now time.Time, grace, lookback time.Duration, limit int) ([]bugreport.UUID, error)
	ProblemTicket(ctx context.Context, project, fingerprint string, since time.Time, exclude bugreport.UUID) (int64, error)
	OpenTicketLinks(ctx context.Context, since time.Time, limit int) ([]*bugreport.TicketLink, error)
}

// Similar-report modes.
const (
	SimilarIncident = "incident"
	SimilarComment  = "comment"
	SimilarOff      = "off"
)

// SyncConfig configures a Syncer.
type SyncConfig struct {
	Client *Client
	Store  Store
	Outbox *outbox.Outbox
	// Sink stores the comments pulled by the reconciler.
	Sink bugreport.EventSink
	// Teams returns the teams of the rules in force.
	Teams func() []bugreport.Team
	// FallbackRequester is the requester email of anonymous reports.
	FallbackRequester string
	CustomFields      map[string]int64
	Similar           string // incident (default), comment or off
	Concurrency       int    // default 4
	// Grace is how long a report waits for the instance that triaged it
	// before any instance's reconciler tickets it (default 2 min).
	Grace time.Duration
	// Lookback bounds how old a report may be and still be ticketed
	// (default 7 days).
	Lookback time.Duration
	// CommentPollInterval is how often open tickets' comments are pulled
	// (default 5 min); 0 keeps the default, negative turns it off.
	CommentPollInterval time.Duration
	// ReconcileInterval is how often the reconciler looks for reports
	// without tickets (default Grace/4, at most 30 s).
	ReconcileInterval time.Duration
	// MaxBackoff caps the wait between retries (default 10 min).
	MaxBackoff time.Duration
	// ReportURL links a report in Arubug's UI from the note; nil for none.
	ReportURL  func(bugreport.UUID) string
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Syncer turns routed reports into Zendesk tickets and outbound messages
// into comments. Work sits in a durable outbox until Zendesk has it.
//
// Exactly one ticket per report, whatever fails: every create carries the
// Idempotency-Key "arubug-report-<uuid>" and is preceded by a lookup by
// external_id (the report uuid), and the ticket's body is a pure function
// of the report, so a retry after a dropped answer, a restart after a
// crash, and another instance's reconciler all end on the same ticket.
// Comments have no idempotency key in Zendesk; before repeating a comment
// whose first attempt may have landed, the syncer looks for it on the
// ticket.
type Syncer struct {
	cfg SyncConfig
	log *slog.Logger
	m   syncMetrics

	wake chan struct{}

	mu         sync.Mutex
	inflight   map[string]bool
	requesters map[string]int64 // email → user id
	groups     map[string]int64 // name or id → id
	groupsAt   time.Time
}

type syncMetrics struct {
	created    prometheus.Counter
	latency    prometheus.Histogram
	retries    *prometheus.CounterVec
	permanent  prometheus.Counter
	duplicates prometheus.Counter
	comments   prometheus.Counter
	messages   prometheus.Counter
}

const (
	kindTicket  = "ticket"
	kindMessage = "message"
)

// job is an outbox item's content. The *Tried fields record, before each
// call that changes Zendesk, that the call may have happened: a retry then
// checks Zendesk before repeating it.
type job struct {
	Kind   string         `json:"kind"`
	Report bugreport.UUID `json:"report"`
	Queued time.Time      `json:"queued"`
	// Force retries a report whose sync failed permanently (operator).
	Force bool `json:"force,omitempty"`

	// message jobs
	Message bugreport.UUID `json:"message,omitempty"`
	Body    string         `json:"body,omitempty"`
	Public  bool           `json:"public,omitempty"`

	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error,omitempty"`

	TicketID     int64 `json:"ticket_id,omitempty"`
	ProblemID    int64 `json:"problem_id,omitempty"`
	Creator      bool  `json:"creator,omitempty"`
	NoteTried    bool  `json:"note_tried,omitempty"`
	CommentTried bool  `json:"comment_tried,omitempty"`
}

func ticketKey(id bugreport.UUID) string  { return "ticket/" + id.String() }
func messageKey(id bugreport.UUID) string { return "message/" + id.String() }

// IdempotencyKey is the key of a report's ticket creation.
func IdempotencyKey(id bugreport.UUID) string { return "arubug-report-" + id.String() }

// NewSyncer returns a Syncer; Run starts it.
func NewSyncer(cfg SyncConfig) (*Syncer, error) {
	if cfg.Client == nil || cfg.Store == nil || cfg.Outbox == nil || cfg.Teams == nil {
		return nil, errors.New("zendesk: sync needs a client, a store, an outbox and teams")
	}
	if cfg.Similar == "" {
		cfg.Similar = SimilarIncident
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 2 * time.Minute
	}
	if cfg.Lookback <= 0 {
		cfg.Lookback = 7 * 24 * time.Hour
	}
	if cfg.CommentPollInterval == 0 {
		cfg.CommentPollInterval = 5 * time.Minute
	}
	if cfg.ReconcileInterval <= 0 {
		cfg.ReconcileInterval = min(cfg.Grace/4, 30*time.Second)
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Minute
	}
	if cfg.FallbackRequester == "" {
		cfg.FallbackRequester = "anonymous-reporter@arubug.invalid"
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
	s := &Syncer{
		cfg:        cfg,
		log:        cfg.Logger,
		wake:       make(chan struct{}, 1),
		inflight:   map[string]bool{},
		requesters: map[string]int64{},
		groups:     map[string]int64{},
		m: syncMetrics{
			created: prometheus.NewCounter(prometheus.CounterOpts{Name: "arubug_zendesk_tickets_created_total", Help: "Zendesk tickets created by this instance."}),
			latency: prometheus.NewHistogram(prometheus.HistogramOpts{
				Name: "arubug_zendesk_ack_to_ticket_seconds", Help: "Time from the collector's receipt of a report to its Zendesk ticket.",
				Buckets: []float64{0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600, 1800},
			}),
			retries:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "arubug_zendesk_retries_total", Help: "Zendesk sync attempts that failed and will be retried, by reason."}, []string{"reason"}),
			permanent:  prometheus.NewCounter(prometheus.CounterOpts{Name: "arubug_zendesk_permanent_failures_total", Help: "Reports whose sync failed permanently; retried only on request (POST /api/v1/reports/{id}/sync)."}),
			duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "arubug_zendesk_duplicate_tickets_found_total", Help: "Lookups by external_id that found more than one ticket (should stay 0)."}),
			comments:   prometheus.NewCounter(prometheus.CounterOpts{Name: "arubug_zendesk_comments_pulled_total", Help: "Ticket comments and status changes stored by the reconciler."}),
			messages:   prometheus.NewCounter(prometheus.CounterOpts{Name: "arubug_zendesk_messages_sent_total", Help: "Replies and notes sent to Zendesk."}),
		},
	}
	depth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "arubug_zendesk_outbox_depth", Help: "Zendesk sync work waiting in this instance's outbox."},
		func() float64 { return float64(cfg.Outbox.Len()) })
	cfg.Registerer.MustRegister(s.m.created, s.m.latency, s.m.retries, s.m.permanent, s.m.duplicates, s.m.comments, s.m.messages, depth)
	// The reasons Classify gives, exported at zero from the start: a
	// series that appears only with the first failure hides it from
	// rate() in alerts and dashboards.
	for _, reason := range []string{"rate_limited", "unavailable", "server_error", "timeout", "network", "waiting"} {
		s.m.retries.WithLabelValues(reason)
	}
	return s, nil
}

// Enqueue queues a routed report for ticketing. It returns once the work is
// on disk; spam is not ticketed.
func (s *Syncer) Enqueue(r *bugreport.Report) error {
	if r.Spam {
		return nil
	}
	return s.put(ticketKey(r.ID), job{Kind: kindTicket, Report: r.ID, Queued: s.cfg.Now()}, false)
}

// Retry queues again a report whose sync failed permanently.
func (s *Syncer) Retry(id bugreport.UUID) error {
	return s.put(ticketKey(id), job{Kind: kindTicket, Report: id, Queued: s.cfg.Now(), Force: true}, true)
}

// SendMessage queues a reply to the reporter (public) or an internal note
// on the report's ticket and returns the message's id. The message is on
// disk when it returns; it reaches the thread when Zendesk's webhook (or
// the comment reconciler) reports the new comment.
func (s *Syncer) SendMessage(report bugreport.UUID, body string, public bool) (bugreport.UUID, error) {
	id := bugreport.UUID(newUUID())
	return id, s.put(messageKey(id), job{Kind: kindMessage, Report: report, Message: id, Body: body, Public: public, Queued: s.cfg.Now()}, false)
}

func (s *Syncer) put(key string, j job, overwrite bool) error {
	_, err := s.add(key, j, overwrite)
	return err
}

// add queues j under key and reports whether it was not queued already.
func (s *Syncer) add(key string, j job, overwrite bool) (bool, error) {
	data, _ := json.Marshal(j)
	it := outbox.Item{Key: key, Due: s.cfg.Now(), Data: data}
	added := true
	var err error
	if overwrite {
		err = s.cfg.Outbox.Update(it)
	} else {
		added, err = s.cfg.Outbox.Put(it)
	}
	if errors.Is(err, outbox.ErrFull) {
		return false, bugreport.Errorf(bugreport.EUNAVAILABLE, "outbox_full", "the Zendesk outbox is full; try again later")
	}
	if err != nil {
		return false, err
	}
	s.poke()
	return added, nil
}

func (s *Syncer) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run works the outbox until ctx ends, with the reconcilers alongside.
func (s *Syncer) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { s.every(ctx, s.cfg.ReconcileInterval, s.reconcileReports) })
	if s.cfg.CommentPollInterval > 0 {
		wg.Go(func() { s.every(ctx, s.cfg.CommentPollInterval, s.reconcileComments) })
	}
	sem := make(chan struct{}, s.cfg.Concurrency)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			for range s.cfg.Concurrency { // wait for jobs in progress
				sem <- struct{}{}
			}
			return
		case <-timer.C:
		case <-s.wake:
		}
		items, err := s.cfg.Outbox.Due(s.cfg.Now(), s.cfg.Concurrency, s.busy)
		if err != nil {
			s.log.Error("reading the Zendesk outbox", "err", err)
		}
		for _, it := range items {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				continue
			}
			s.mu.Lock()
			s.inflight[it.Key] = true
			s.mu.Unlock()
			go func() {
				defer func() {
					s.mu.Lock()
					delete(s.inflight, it.Key)
					s.mu.Unlock()
					<-sem
					s.poke()
				}()
				s.work(ctx, it)
			}()
		}
		wait := time.Second
		if next, ok := s.cfg.Outbox.Next(); ok {
			wait = min(max(time.Until(next), 10*time.Millisecond), time.Second)
		}
		timer.Reset(wait)
	}
}

func (s *Syncer) busy(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight[key]
}

func (s *Syncer) every(ctx context.Context, d time.Duration, f func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		f(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// errPermanent marks failures of our own making that no retry will fix.
type errPermanent struct{ msg string }

func (e errPermanent) Error() string { return e.msg }

// errLater asks for a retry without counting it as a Zendesk failure.
type errLater struct{ msg string }

func (e errLater) Error() string { return e.msg }

func (s *Syncer) work(ctx context.Context, it outbox.Item) {
	var j job
	if err := json.Unmarshal(it.Data, &j); err != nil {
		s.log.Error("dropping unreadable Zendesk outbox item", "key", it.Key, "err", err)
		_ = s.cfg.Outbox.Delete(it.Key)
		return
	}
	save := func() error {
		data, _ := json.Marshal(j)
		return s.cfg.Outbox.Update(outbox.Item{Key: it.Key, Due: it.Due, Data: data})
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var err error
	switch j.Kind {
	case kindTicket:
		err = s.syncTicket(cctx, &j, save)
	case kindMessage:
		err = s.sendMessage(cctx, &j, save)
	default:
		err = errPermanent{"unknown job kind " + strconv.Quote(j.Kind)}
	}
	if err == nil {
		if err := s.cfg.Outbox.Delete(it.Key); err != nil {
			s.log.Error("removing finished Zendesk work", "key", it.Key, "err", err)
		}
		return
	}
	if ctx.Err() != nil {
		return // shutting down: the item stays due and runs after the restart
	}
	j.Attempts++
	j.LastError = err.Error()
	var perm errPermanent
	var later errLater
	f := Classify(err)
	switch {
	case errors.As(err, &later):
		f = Failure{Reason: "waiting"}
	case errors.As(err, &perm):
		f = Failure{Permanent: true, Reason: "invalid"}
	}
	if f.Permanent {
		s.m.permanent.Inc()
		s.log.Error("Zendesk sync failed permanently; retry with POST /api/v1/reports/{id}/sync once fixed",
			"report", j.Report.String(), "kind", j.Kind, "err", err)
		if j.Kind == kindTicket {
			s.recordFailure(ctx, &j, err)
		}
		_ = s.cfg.Outbox.Delete(it.Key)
		return
	}
	s.m.retries.WithLabelValues(f.Reason).Inc()
	wait := s.backoff(j.Attempts)
	if f.RetryAfter > wait {
		wait = f.RetryAfter
	}
	if f.Reason == "waiting" {
		wait = min(wait, 30*time.Second)
	}
	s.log.Warn("Zendesk sync will retry", "report", j.Report.String(), "kind", j.Kind, "attempt", j.Attempts, "reason", f.Reason, "in", wait.Round(time.Millisecond).String(), "err", err)
	data, _ := json.Marshal(j)
	if err := s.cfg.Outbox.Update(outbox.Item{Key: it.Key, Due: s.cfg.Now().Add(wait), Data: data}); err != nil {
		s.log.Error("rescheduling Zendesk work", "key", it.Key, "err", err)
	}
}

// backoff is exponential from 1 s, capped, with ±20 % jitter so that
// instances that failed together do not retry together.
func (s *Syncer) backoff(attempt int) time.Duration {
	d := time.Second << min(attempt-1, 20)
	if d > s.cfg.MaxBackoff || d <= 0 {
		d = s.cfg.MaxBackoff
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func (s *Syncer) recordFailure(ctx context.Context, j *job, cause error) {
	l := &bugreport.TicketLink{ReportID: j.Report, State: bugreport.SyncFailed, Error: cause.Error(), Attempts: uint32(j.Attempts), TicketID: j.TicketID}
	if r, err := s.cfg.Store.Report(ctx, j.Report); err == nil {
		l.Project, l.ReportedAt, l.Team = r.Project, r.ReportedAt, r.Route.Team
	}
	if err := s.cfg.Store.SaveTicketLink(ctx, l); err != nil {
		s.log.Error("recording a failed Zendesk sync", "report", j.Report.String(), "err", err)
	}
}

func newUUID() uuid.UUID {
	if u, err := uuid.NewV7(); err == nil {
		return u
	}
	return uuid.New()
}

func isNotFound(err error) bool { return bugreport.ErrorCode(err) == bugreport.ENOTFOUND }

// syncTicket brings one report's ticket and note into Zendesk. Each step is
// safe to repeat.
func (s *Syncer) syncTicket(ctx context.Context, j *job, save func() error) error {
	r, err := s.cfg.Store.Report(ctx, j.Report)
	if err != nil {
		if isNotFound(err) {
			return errLater{"report not stored yet"}
		}
		return errLater{"reading the report: " + err.Error()}
	}
	link, err := s.cfg.Store.TicketLink(ctx, r.ID)
	switch {
	case err != nil && !isNotFound(err):
		return errLater{"reading the ticket link: " + err.Error()}
	case err == nil && link.State == bugreport.SyncSynced:
		return nil // done, by us before a crash or by another instance
	case err == nil && (link.State == bugreport.SyncFailed || link.State == bugreport.SyncSkipped) && !j.Force:
		return nil
	}
	if r.Spam {
		return s.cfg.Store.SaveTicketLink(ctx, &bugreport.TicketLink{ReportID: r.ID, Project: r.Project, ReportedAt: r.ReportedAt, Team: r.Route.Team, State: bugreport.SyncSkipped})
	}
	team, ok := s.team(r.Route.Team)
	if !ok {
		return errPermanent{fmt.Sprintf("team %q of the report is not in the routing rules", r.Route.Team)}
	}
	groupID, err := s.groupID(ctx, team, j.Force)
	if err != nil {
		return err
	}
	anonymous := r.Reporter.Email == ""
	requesterID, err := s.requester(ctx, r)
	if err != nil {
		return err
	}
	opts := TicketOptions{GroupID: groupID, RequesterID: requesterID, Anonymous: anonymous, CustomFields: s.cfg.CustomFields}

	var ticketCreated time.Time
	if j.TicketID == 0 {
		tickets, err := s.cfg.Client.TicketsByExternalID(ctx, r.ID.String())
		if err != nil {
			return err
		}
		if len(tickets) > 1 {
			s.m.duplicates.Inc()
			s.log.Error("more than one Zendesk ticket has this report's external_id; using the oldest", "report", r.ID.String(), "tickets", len(tickets))
		}
		if len(tickets) > 0 {
			j.TicketID, j.ProblemID = tickets[0].ID, tickets[0].ProblemID
			if tickets[0].CreatedAt != nil {
				ticketCreated = *tickets[0].CreatedAt
			}
		} else {
			if s.cfg.Similar != SimilarOff {
				problem, err := s.cfg.Store.ProblemTicket(ctx, r.Project, r.Fingerprint, s.cfg.Now().Add(-30*24*time.Hour), r.ID)
				if err != nil {
					return errLater{"looking for a similar ticket: " + err.Error()}
				}
				if problem != 0 && s.cfg.Similar == SimilarComment {
					return s.commentOnSimilar(ctx, j, save, r, problem, anonymous)
				}
				if problem != 0 {
					if s.makeProblem(ctx, problem) {
						opts.ProblemID = problem
					}
				}
			}
			t, creator, err := s.create(ctx, r, opts)
			if err != nil {
				return err
			}
			j.TicketID, j.ProblemID, j.Creator = t.ID, t.ProblemID, creator
			if t.CreatedAt != nil {
				ticketCreated = *t.CreatedAt
			}
			if creator {
				s.m.created.Inc()
				s.m.latency.Observe(s.cfg.Now().Sub(r.ReceivedAt).Seconds())
				s.log.Info("Zendesk ticket created", "report", r.ID.String(), "ticket", t.ID, "team", r.Route.Team, "incident_of", t.ProblemID)
			}
		}
		if err := save(); err != nil {
			return err
		}
		if err := s.cfg.Store.SaveTicketLink(ctx, &bugreport.TicketLink{ReportID: r.ID, Project: r.Project, ReportedAt: r.ReportedAt, TicketID: j.TicketID,
			ProblemID: j.ProblemID, Team: r.Route.Team, State: bugreport.SyncTicketed, Attempts: uint32(j.Attempts + 1)}); err != nil {
			return errLater{"recording the ticket: " + err.Error()}
		}
	}

	// The internal note. The instance that created the ticket writes it
	// without looking first on its first try; anyone else (a retry, a
	// restart, another instance's reconciler) looks for it first, and
	// leaves a young ticket to its creator.
	if !j.Creator && !j.NoteTried {
		found, err := s.findComment(ctx, j.TicketID, hasNote(r.ID))
		if err != nil {
			return err
		}
		if found {
			return s.markSynced(ctx, r, j)
		}
		if !ticketCreated.IsZero() && s.cfg.Now().Sub(ticketCreated) < s.cfg.Grace {
			return errLater{"the ticket is young; its creator writes the note"}
		}
	}
	if _, err := s.postOnce(ctx, j.TicketID, &j.NoteTried, save, hasNote(r.ID), func() (zd.TicketComment, error) {
		uploads, err := s.screenshotUpload(ctx, r)
		if err != nil {
			return zd.TicketComment{}, err
		}
		note := zd.NewPrivateTicketComment(Note(r, s.noteOptions(r, j.ProblemID, anonymous)), 0)
		note.Uploads = uploads
		return note, nil
	}); err != nil {
		return err
	}
	return s.markSynced(ctx, r, j)
}

// hasNote finds the internal note of report id among a ticket's comments.
func hasNote(id bugreport.UUID) func(zd.TicketComment) bool {
	return func(c zd.TicketComment) bool { return strings.HasPrefix(c.Body, NoteMarker(id)) }
}

// postOnce adds the comment that build makes to a ticket, unless an
// earlier attempt may have (*tried) and match finds it there: Zendesk has no
// idempotency key for comments. *tried is set and saved before the call
// that may land. posted says whether this call added it.
func (s *Syncer) postOnce(ctx context.Context, ticket int64, tried *bool, save func() error, match func(zd.TicketComment) bool,
	build func() (zd.TicketComment, error)) (posted bool, err error) {
	if *tried {
		found, err := s.findComment(ctx, ticket, match)
		if err != nil || found {
			return false, err
		}
	}
	c, err := build()
	if err != nil {
		return false, err
	}
	*tried = true
	if err := save(); err != nil {
		return false, err
	}
	if _, err := s.cfg.Client.CreateTicketComment(ctx, ticket, c); err != nil {
		return false, err
	}
	return true, nil
}

func (s *Syncer) markSynced(ctx context.Context, r *bugreport.Report, j *job) error {
	if err := s.cfg.Store.SaveTicketLink(ctx, &bugreport.TicketLink{ReportID: r.ID, Project: r.Project, ReportedAt: r.ReportedAt, TicketID: j.TicketID,
		ProblemID: j.ProblemID, Team: r.Route.Team, State: bugreport.SyncSynced, Attempts: uint32(j.Attempts + 1)}); err != nil {
		return errLater{"recording the synced ticket: " + err.Error()}
	}
	return nil
}

func (s *Syncer) noteOptions(r *bugreport.Report, problem int64, anonymous bool) NoteOptions {
	o := NoteOptions{Anonymous: anonymous, ProblemID: problem, TicketURL: s.cfg.Client.TicketURL}
	if s.cfg.ReportURL != nil {
		o.ReportURL = s.cfg.ReportURL(r.ID)
	}
	return o
}

// create creates the ticket under the report's Idempotency-Key and says
// whether this call created it (Zendesk's lookup "miss").
func (s *Syncer) create(ctx context.Context, r *bugreport.Report, o TicketOptions) (zd.Ticket, bool, error) {
	var lookup string
	cctx := WithLookupRecorder(WithIdempotencyKey(ctx, IdempotencyKey(r.ID)), &lookup)
	t, err := s.cfg.Client.CreateTicket(cctx, Ticket(r, o))
	if err == nil {
		return t, lookup != "hit", nil
	}
	if !IsIdempotencyConflict(err) {
		return zd.Ticket{}, false, err
	}
	// The key was used with another body (the report was re-routed or
	// re-enriched since): the ticket exists, find it.
	tickets, lerr := s.cfg.Client.TicketsByExternalID(ctx, r.ID.String())
	if lerr != nil {
		return zd.Ticket{}, false, lerr
	}
	if len(tickets) == 0 {
		return zd.Ticket{}, false, errLater{"ticket creation in progress under the same key"}
	}
	return tickets[0], false, nil
}

// makeProblem turns the first ticket of a similarity group into a problem,
// so that the new one can be its incident. It reports whether that worked;
// a closed ticket cannot change, and then the new ticket stands alone.
func (s *Syncer) makeProblem(ctx context.Context, id int64) bool {
	if _, err := s.cfg.Client.UpdateTicket(ctx, id, zd.Ticket{Type: "problem"}); err != nil {
		s.log.Warn("could not make the similar report's ticket a problem; ticketing separately", "ticket", id, "err", err)
		return false
	}
	return true
}

// commentOnSimilar adds the report as a note on the ticket of a similar
// report instead of opening a ticket of its own.
func (s *Syncer) commentOnSimilar(ctx context.Context, j *job, save func() error, r *bugreport.Report, ticket int64, anonymous bool) error {
	if _, err := s.postOnce(ctx, ticket, &j.NoteTried, save, hasNote(r.ID), func() (zd.TicketComment, error) {
		return zd.NewPrivateTicketComment(SimilarNote(r, s.noteOptions(r, ticket, anonymous)), 0), nil
	}); err != nil {
		return err
	}
	j.TicketID, j.ProblemID = ticket, ticket
	return s.markSynced(ctx, r, j)
}

// findComment pages through a ticket's comments (at most 2 000) looking for
// one that match accepts.
func (s *Syncer) findComment(ctx context.Context, ticket int64, match func(zd.TicketComment) bool) (bool, error) {
	found := false
	err := s.eachComment(ctx, ticket, func(c zd.TicketComment) bool {
		found = match(c)
		return !found
	})
	return found, err
}

// eachComment calls fn with a ticket's comments, oldest first, until fn
// returns false; it reads at most 20 pages of 100.
func (s *Syncer) eachComment(ctx context.Context, ticket int64, fn func(zd.TicketComment) bool) error {
	opts := &zd.ListTicketCommentsOptions{CursorPagination: zd.CursorPagination{PageSize: 100}}
	for range 20 {
		res, err := s.cfg.Client.ListTicketComments(ctx, ticket, opts)
		if err != nil {
			return err
		}
		for _, c := range res.TicketComments {
			if !fn(c) {
				return nil
			}
		}
		if !res.Meta.HasMore || res.Meta.AfterCursor == "" {
			return nil
		}
		opts.PageAfter = res.Meta.AfterCursor
	}
	return nil
}

func (s *Syncer) screenshotUpload(ctx context.Context, r *bugreport.Report) ([]string, error) {
	if r.ScreenshotID == "" {
		return nil, nil
	}
	mime, data, err := s.cfg.Store.Screenshot(ctx, r.ID)
	if isNotFound(err) || len(data) == 0 {
		return nil, nil
	}
	if err != nil {
		return nil, errLater{"reading the screenshot: " + err.Error()}
	}
	ext := ".png"
	if strings.Contains(mime, "jpeg") {
		ext = ".jpg"
	} else if strings.Contains(mime, "webp") {
		ext = ".webp"
	}
	tok, err := s.cfg.Client.Upload(ctx, "screenshot-"+r.ID.String()+ext, mime, data)
	if err != nil {
		return nil, err
	}
	return []string{tok}, nil
}

func (s *Syncer) team(name string) (bugreport.Team, bool) {
	for _, t := range s.cfg.Teams() {
		if t.Name == name {
			return t, true
		}
	}
	return bugreport.Team{}, false
}

// groupID resolves a team's Zendesk group, given by id or by name. Names
// are looked up in the account's group list, re-read at most once a minute
// (or at once on an operator's retry, who may just have created the group).
func (s *Syncer) groupID(ctx context.Context, t bugreport.Team, refresh bool) (int64, error) {
	g := strings.TrimSpace(t.ZendeskGroup)
	if g == "" {
		return 0, nil
	}
	s.mu.Lock()
	id, ok := s.groups[g]
	fresh := time.Since(s.groupsAt) < time.Minute && !refresh
	s.mu.Unlock()
	if ok {
		return id, nil
	}
	if !fresh {
		groups := map[string]int64{}
		opts := &zd.GroupListOptions{PageOptions: zd.PageOptions{PerPage: 100, Page: 1}}
		for range 50 {
			list, page, err := s.cfg.Client.GetGroups(ctx, opts)
			if err != nil {
				return 0, err
			}
			for _, gr := range list {
				groups[gr.Name] = gr.ID
				groups[strconv.FormatInt(gr.ID, 10)] = gr.ID
			}
			if !page.HasNext() {
				break
			}
			opts.Page++
		}
		s.mu.Lock()
		s.groups, s.groupsAt = groups, time.Now()
		id, ok = groups[g]
		s.mu.Unlock()
		if ok {
			return id, nil
		}
	}
	return 0, errPermanent{fmt.Sprintf("Zendesk group %q of team %q does not exist (run 'arubug zendesk setup' to check every team)", g, t.Name)}
}

// requester returns the Zendesk user of the reporter, created or updated by
// email, or the fallback requester for anonymous reports.
func (s *Syncer) requester(ctx context.Context, r *bugreport.Report) (int64, error) {
	email, name := strings.TrimSpace(r.Reporter.Email), strings.TrimSpace(r.Reporter.Name)
	if email == "" {
		email, name = s.cfg.FallbackRequester, "Anonymous reporter (Arubug)"
	}
	if name == "" {
		name, _, _ = strings.Cut(email, "@")
	}
	key := strings.ToLower(email)
	s.mu.Lock()
	id, ok := s.requesters[key]
	s.mu.Unlock()
	if ok {
		return id, nil
	}
	u, err := s.cfg.Client.CreateOrUpdateUser(ctx, zd.User{Email: email, Name: name, Role: "end-user"})
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	if len(s.requesters) > 10_000 {
		clear(s.requesters)
	}
	s.requesters[key] = u.ID
	s.mu.Unlock()
	return u.ID, nil
}

// sendMessage posts a queued reply or note to the report's ticket.
func (s *Syncer) sendMessage(ctx context.Context, j *job, save func() error) error {
	link, err := s.cfg.Store.TicketLink(ctx, j.Report)
	if err != nil || link.TicketID == 0 {
		return errLater{"the report has no ticket yet"}
	}
	since := j.Queued.Add(-time.Minute)
	sameMessage := func(c zd.TicketComment) bool {
		return c.Body == j.Body && c.Public != nil && *c.Public == j.Public && !c.CreatedAt.Before(since)
	}
	posted, err := s.postOnce(ctx, link.TicketID, &j.CommentTried, save, sameMessage, func() (zd.TicketComment, error) {
		if j.Public {
			return zd.NewPublicTicketComment(j.Body, 0), nil
		}
		return zd.NewPrivateTicketComment(j.Body, 0), nil
	})
	if posted {
		s.m.messages.Inc()
	}
	return err
}

// reconcileReports queues the reports that should have a ticket by now
// and have none: their instance crashed for good, or its outbox was lost.
func (s *Syncer) reconcileReports(ctx context.Context) {
	ids, err := s.cfg.Store.ReportsToTicket(ctx, s.cfg.Now(), s.cfg.Grace, s.cfg.Lookback, 500)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("looking for reports without tickets", "err", err)
		}
		return
	}
	added := 0
	for _, id := range ids {
		ok, err := s.add(ticketKey(id), job{Kind: kindTicket, Report: id, Queued: s.cfg.Now()}, false)
		if err != nil {
			s.log.Warn("queueing a report without ticket", "report", id.String(), "err", err)
			return
		}
		if ok {
			added++
		}
	}
	if added > 0 {
		s.log.Info("reconciler queued reports without tickets", "reports", added)
	}
}

// reconcileComments pulls the comments and status of open tickets and
// stores what the webhook may have missed; events collapse by their ids.
func (s *Syncer) reconcileComments(ctx context.Context) {
	if s.cfg.Sink == nil {
		return
	}
	links, err := s.cfg.Store.OpenTicketLinks(ctx, s.cfg.Now().Add(-30*24*time.Hour), 200)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("listing open tickets", "err", err)
		}
		return
	}
	for _, l := range links {
		if ctx.Err() != nil {
			return
		}
		if err := s.PullThread(ctx, l); err != nil {
			s.log.Warn("pulling a ticket's comments", "ticket", l.TicketID, "err", err)
		}
	}
}

// PullThread stores every comment of a link's ticket, and its status when
// it changed, as thread events.
func (s *Syncer) PullThread(ctx context.Context, l *bugreport.TicketLink) error {
	if l.ProblemID != 0 && l.ProblemID == l.TicketID {
		return nil // a note on a similar report's ticket: that ticket's thread is the other report's
	}
	t, err := s.cfg.Client.GetTicket(ctx, l.TicketID)
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	var events []bugreport.Event
	first := true
	if err := s.eachComment(ctx, l.TicketID, func(c zd.TicketComment) bool {
		public := c.Public == nil || *c.Public
		via := ""
		if c.Via != nil {
			via = c.Via.Channel
		}
		events = append(events, MessageEvent(l.Project, bugreport.Message{
			ID: CommentEventID(l.TicketID, c.ID), ReportID: l.ReportID, TicketID: l.TicketID, CommentID: c.ID,
			Kind: MessageKind(first, public, c.AuthorID, t.RequesterID), Public: public, AuthorID: c.AuthorID,
			Via: via, Body: c.Body, At: c.CreatedAt,
		}, now))
		first = false
		return true
	}); err != nil {
		return err
	}
	statusChanged := t.Status != "" && t.Status != l.Status
	if statusChanged && t.UpdatedAt != nil {
		events = append(events, MessageEvent(l.Project, bugreport.Message{
			ID: StatusEventID(l.TicketID, t.Status, *t.UpdatedAt), ReportID: l.ReportID, TicketID: l.TicketID,
			Kind: "status", Status: t.Status, At: *t.UpdatedAt,
		}, now))
	}
	if len(events) > 0 {
		if err := s.cfg.Sink.Append(ctx, events); err != nil {
			return err
		}
		s.m.comments.Add(float64(len(events)))
	}
	if statusChanged && t.UpdatedAt != nil {
		return s.cfg.Store.SaveTicketStatus(ctx, l, t.Status, *t.UpdatedAt)
	}
	return nil
}

// StatusChanged records a ticket's new status (from the webhook) as of at.
func (s *Syncer) StatusChanged(ctx context.Context, report bugreport.UUID, ticketID int64, status string, at time.Time) {
	l, err := s.cfg.Store.TicketLink(ctx, report)
	if err != nil || l.TicketID != ticketID || l.Status == status {
		return
	}
	if err := s.cfg.Store.SaveTicketStatus(ctx, l, status, at); err != nil {
		s.log.Warn("recording a ticket's status", "ticket", ticketID, "err", err)
	}
}
