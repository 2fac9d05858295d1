package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/config"
	"github.com/arubug/arubug/internal/outbox"
	"github.com/arubug/arubug/internal/zendesk"
	"github.com/arubug/arubug/internal/zendesk/zendesktest"
)

// zendeskSync is the Zendesk side of a running collector: the syncer and its
// outbox, the webhook receiver, and in dev the built-in simulator.
type zendeskSync struct {
	syncer   *zendesk.Syncer
	client   *zendesk.Client
	receiver *zendesk.WebhookReceiver
	outbox   *outbox.Outbox
	st       *store
	// simURL is the built-in simulator's address (dev without an account).
	simURL  string
	closers []func()
}

// startZendesk sets up the sync as configured: a real account when
// zendesk_url is set; in dev without one, the built-in simulator (said
// plainly in the log and the banner); otherwise nothing (nil, nil).
// selfURL is this collector's base URL as the simulator reaches it.
func startZendesk(ctx context.Context, name string, cfg config.Config, st *store, sink bugreport.EventSink, teams func() []bugreport.Team,
	selfURL string, log *slog.Logger, reg prometheus.Registerer) (*zendeskSync, error) {
	zc := cfg.Zendesk
	z := &zendeskSync{st: st}
	opts := zendesk.Options{BaseURL: zc.URL, Email: zc.Email, APIToken: zc.APIToken.Reveal(), OAuthToken: zc.OAuthToken.Reveal(), RequestsPerMinute: zc.RequestsPerMinute}
	secret := zc.WebhookSecret.Reveal()
	switch {
	case zc.URL != "":
	case name == "dev":
		sim := zendesktest.New(zendesktest.Options{EnableControl: true, RatePerMinute: zc.RequestsPerMinute})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("zendesk simulator: %w", err)
		}
		srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		z.closers = append(z.closers, func() { sim.Close(); _ = srv.Close() })
		z.simURL = "http://" + ln.Addr().String()
		for _, t := range teams() {
			if _, err := strconv.ParseInt(t.ZendeskGroup, 10, 64); err != nil && t.ZendeskGroup != "" {
				sim.AddGroup(t.ZendeskGroup)
			}
		}
		opts = zendesk.Options{BaseURL: z.simURL, Email: zendesktest.DefaultEmail, APIToken: zendesktest.DefaultAPIToken, RequestsPerMinute: zc.RequestsPerMinute}
		log.Warn("no Zendesk account configured (zendesk_url): tickets go to the built-in Zendesk simulator; set ARUBUG_ZENDESK_URL for a real account",
			"simulator", z.simURL+"/_sim/")
	default:
		log.Warn("Zendesk sync is off: set zendesk_url (ARUBUG_ZENDESK_URL) and its credentials to ticket bug reports")
		return nil, nil
	}
	c, err := zendesk.NewClient(opts)
	if err != nil {
		return nil, err
	}
	z.client = c
	if z.simURL != "" {
		res, err := zendesk.Setup(ctx, c, zendesk.SetupOptions{WebhookURL: selfURL + "/webhooks/zendesk"})
		if err != nil {
			z.close()
			return nil, fmt.Errorf("setting up the Zendesk simulator's webhook: %w", err)
		}
		secret = res.Secret.Reveal()
	}
	fields, err := zc.CustomFieldIDs()
	if err != nil {
		z.close()
		return nil, err
	}
	ob, err := outbox.Open(filepath.Join(cfg.DataDir, "outbox", "zendesk.db"), outbox.Options{})
	if err != nil {
		z.close()
		return nil, err
	}
	z.outbox = ob
	z.closers = append(z.closers, func() { _ = ob.Close() })
	z.syncer, err = zendesk.NewSyncer(zendesk.SyncConfig{
		Client: c, Store: st, Outbox: ob, Sink: sink, Teams: teams,
		FallbackRequester: zc.FallbackRequester, CustomFields: fields, Similar: zc.Similar,
		Concurrency: zc.Concurrency, Grace: zc.SyncGrace, Lookback: cfg.TriageLookback, CommentPollInterval: zc.CommentPollInterval,
		Logger: log.With("component", "zendesk"), Registerer: reg,
	})
	if err != nil {
		z.close()
		return nil, err
	}
	z.receiver, err = zendesk.NewWebhookReceiver(zendesk.WebhookConfig{
		Secret: secret,
		Sink:   sink,
		Project: func(ctx context.Context, id bugreport.UUID) (string, error) {
			r, err := st.Report(ctx, id)
			if err != nil {
				return "", err
			}
			return r.Project, nil
		},
		OnStatus: func(id bugreport.UUID, ticket int64, status string, at time.Time) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			z.syncer.StatusChanged(ctx, id, ticket, status, at)
		},
		Logger:     log.With("component", "zendesk_webhook"),
		Registerer: reg,
	})
	if err != nil {
		z.close()
		return nil, err
	}
	return z, nil
}

// mount adds the webhook route; Zendesk authenticates by signature, not by
// the admin token.
func (z *zendeskSync) mount(r chi.Router) {
	r.Method(http.MethodPost, "/webhooks/zendesk", z.receiver)
}

func (z *zendeskSync) close() {
	for i := len(z.closers) - 1; i >= 0; i-- {
		z.closers[i]()
	}
	z.closers = nil
}

// enqueue is the triage worker's hand-off: a report is routed.
func (z *zendeskSync) enqueue(log *slog.Logger) func(*bugreport.Report) {
	return func(r *bugreport.Report) {
		if err := z.syncer.Enqueue(r); err != nil {
			// The reconciler finds it after the grace period.
			log.Warn("queueing a report for Zendesk", "report", r.ID.String(), "err", err)
		}
	}
}

// The api.Tickets methods.

func (z *zendeskSync) TicketLink(ctx context.Context, id bugreport.UUID) (*bugreport.TicketLink, error) {
	return z.st.TicketLink(ctx, id)
}

// TicketLinks reads many reports' links at once (the team queue).
func (z *zendeskSync) TicketLinks(ctx context.Context, ids []bugreport.UUID) (map[bugreport.UUID]*bugreport.TicketLink, error) {
	return z.st.TicketLinks(ctx, ids)
}

func (z *zendeskSync) Thread(ctx context.Context, r *bugreport.Report) ([]bugreport.Message, error) {
	return z.st.Thread(ctx, r)
}

func (z *zendeskSync) SendMessage(report bugreport.UUID, body string, public bool) (bugreport.UUID, error) {
	return z.syncer.SendMessage(report, body, public)
}

func (z *zendeskSync) Retry(id bugreport.UUID) error { return z.syncer.Retry(id) }

// TicketURL links a ticket in Zendesk's agent interface, or the built-in
// simulator's page, which lists every ticket.
func (z *zendeskSync) TicketURL(id int64) string {
	if z.simURL != "" {
		return z.simURL + "/_sim/#ticket-" + strconv.FormatInt(id, 10)
	}
	return z.client.TicketURL(id)
}

// zendeskNotice is what the web UI says about where tickets go when that
// is not a real Zendesk account.
func zendeskNotice(z *zendeskSync) string {
	switch {
	case z == nil:
		return "Zendesk sync is off: reports are not ticketed (set ARUBUG_ZENDESK_URL and its credentials)."
	case z.simURL != "":
		return "No Zendesk account is configured: tickets go to the built-in Zendesk simulator at " + z.simURL + "/_sim/ (set ARUBUG_ZENDESK_URL for a real account)."
	}
	return ""
}
