package triage

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/clickhouse"
	"github.com/arubug/arubug/internal/clickhouse/localch/localchtest"
	"github.com/arubug/arubug/internal/enrich"
	"github.com/arubug/arubug/internal/routing"
)

func TestMain(m *testing.M) { localchtest.Main(m) }

const testRules = `
teams:
  - {name: billing, zendesk_group: Billing, default_priority: normal}
  - {name: platform, zendesk_group: Platform, default_priority: normal}
product_areas:
  - {id: billing, label: Billing, team: billing}
fallback_team: platform
routes:
  - name: vip
    match: ['usage.events_30d > 3']
    tags: [vip]
    continue: true
  - name: billing-paths
    match: ['path ~= /billing/**']
    team: billing
`

// flakyEnricher is the real querier, scripted to fail while down is set.
type flakyEnricher struct {
	q    *enrich.Querier
	down atomic.Bool
}

func (f *flakyEnricher) SessionStart(ctx context.Context, project, sessionID string) (time.Time, bool, error) {
	if f.down.Load() {
		return time.Time{}, false, errors.New("injected: clickhouse down")
	}
	return f.q.SessionStart(ctx, project, sessionID)
}

func (f *flakyEnricher) Usage(ctx context.Context, project, distinctID, deviceID string, at time.Time) (*bugreport.Usage, error) {
	if f.down.Load() {
		return nil, errors.New("injected: clickhouse down")
	}
	return f.q.Usage(ctx, project, distinctID, deviceID, at)
}

func TestWorkerTriagesAndEnrichesLater(t *testing.T) {
	ctx := context.Background()
	db, err := clickhouse.Open(ctx, clickhouse.Options{DSN: localchtest.DSN(t), CreateDatabase: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	rules, err := routing.Parse("rules.yaml", []byte(testRules), routing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	var events []bugreport.Event
	for i := 0; i < 5; i++ {
		events = append(events, bugreport.Event{UUID: bugreport.UUID{byte(i + 1), 1}, Project: "shop", Event: "$pageview", DistinctID: "ana",
			Timestamp: now.Add(-time.Duration(i+1) * time.Hour), CreatedAt: now, Properties: `{}`, SessionID: "s1", Pathname: "/billing"})
	}
	report := bugreport.Event{UUID: bugreport.UUID{0xbb}, Project: "shop", Event: bugreport.EventBugReport, DistinctID: "ana", Timestamp: now, CreatedAt: now,
		Properties: `{"$description":"Refund button missing","$time_to_submit_ms":8000}`, SessionID: "s1", Pathname: "/billing/refunds"}
	if err := db.WriteEvents(ctx, append(events, report)); err != nil {
		t.Fatal(err)
	}

	en := &flakyEnricher{q: enrich.NewQuerier(db.Conn(), 5*time.Second)}
	en.down.Store(true)
	w, err := New(Config{Store: db, Enricher: en, Rules: func() Router { return rules },
		Projects: []bugreport.Project{{Name: "shop", Token: "phc_shop", ReplayHost: "https://eu.posthog.com"}}, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	w.reconcile(ctx)
	if e := <-w.queue; w.claim(e.UUID) {
		_ = w.process(ctx, e)
		w.release(e.UUID)
	}
	got, err := db.Report(ctx, report.UUID)
	if err != nil {
		t.Fatalf("report not stored while usage was unavailable: %v", err)
	}
	if got.Usage != nil || got.Route.Team != "billing" || contains(got.Route.Tags, "vip") || !strings.HasSuffix(got.ReplayURL, "/replay/s1?t=0") {
		t.Fatalf("without usage: usage %v team %s tags %v replay %q", got.Usage, got.Route.Team, got.Route.Tags, got.ReplayURL)
	}

	en.down.Store(false)
	w.enrichLater(ctx)
	got, err = db.Report(ctx, report.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Usage == nil || got.Usage.Events30d != 5 || !contains(got.Route.Tags, "vip") {
		t.Fatalf("after recovery: usage %+v tags %v", got.Usage, got.Route.Tags)
	}

	// The reconciler does not pick a stored report again.
	pending, err := db.PendingReportEvents(ctx, []string{"shop"}, now.Add(time.Minute), 24*time.Hour, 10)
	if err != nil || len(pending) != 0 {
		t.Errorf("pending after triage: %d %v", len(pending), err)
	}

	// The fast path: Notify, then Run stores it without waiting for a poll.
	second := report
	second.UUID = bugreport.UUID{0xcc}
	second.Properties = `{"$description":"refund button MISSING!","$time_to_submit_ms":8000}`
	if err := db.WriteEvents(ctx, []bugreport.Event{second}); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(runCtx) }()
	w.Notify([]bugreport.Event{events[0], second})
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := db.Report(ctx, second.UUID)
		if err == nil {
			if !strings.HasSuffix(r.ReplayURL, "/replay/s1?t=18000") || r.SimilarCount != 2 || r.Fingerprint != got.Fingerprint {
				t.Errorf("second report: replay %q similar %d fingerprint %s vs %s", r.ReplayURL, r.SimilarCount, r.Fingerprint, got.Fingerprint)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("notified report not triaged")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
