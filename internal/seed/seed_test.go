package seed

import (
	"context"
	"testing"
	"time"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/clickhouse"
	"github.com/arubug/arubug/internal/clickhouse/localch/localchtest"
	"github.com/arubug/arubug/internal/routing"
	"github.com/arubug/arubug/internal/trends"
)

func TestMain(m *testing.M) { localchtest.Main(m) }

// TestSeedIsRealisticAndRepeatable seeds a small history twice with the
// same seed and checks what the dashboards would read: the counts match
// the summary, every report is routed by the shipped rules, and a second
// run collapses instead of doubling.
func TestSeedIsRealisticAndRepeatable(t *testing.T) {
	ctx := context.Background()
	db, err := clickhouse.Open(ctx, clickhouse.Options{DSN: localchtest.DSN(t), CreateDatabase: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	rules, err := routing.Load("../../routing-rules/rules.yaml", routing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	o := Options{Project: "demo", Token: "phc_demo", ReplayHost: "https://us.posthog.com", Reports: 60, Days: 14, EventsPerPerson: 10, Seed: 7, Now: now, Rules: rules}
	sum, err := Run(ctx, db, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Reports != 60 || sum.Tickets == 0 || sum.Tickets > 60 || sum.Messages < 2*sum.Tickets || sum.Events < 60+20*11 {
		t.Fatalf("summary %v", sum)
	}
	if _, err := Run(ctx, db, o, nil); err != nil { // same seed: same ids
		t.Fatal(err)
	}
	qr := trends.NewQuerier(db.Conn(), 10*time.Second)
	res, err := qr.Trend(ctx, trends.Query{Metric: trends.Reports, Interval: "week", From: now.Add(-15 * 24 * time.Hour), To: now, Limit: 50, Breakdown: "team"})
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	teams := map[string]bool{}
	for _, tm := range rules.Teams() {
		teams[tm.Name] = true
	}
	for _, s := range res.Series {
		total += s.Total
		if !teams[s.Key] {
			t.Errorf("series %q is not a team of the rules", s.Key)
		}
	}
	spam := sum.Reports - sum.Tickets
	if int(total) != sum.Reports-spam {
		t.Errorf("the trend counts %v reports, want %d (seeded twice: must not double)", total, sum.Reports-spam)
	}
	if len(res.Series) < 3 {
		t.Errorf("reports fall into %d teams; a realistic history spreads them", len(res.Series))
	}
	resp, err := qr.Trend(ctx, trends.Query{Metric: trends.FirstResponse, Interval: "week", From: now.Add(-15 * 24 * time.Hour), To: now})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Series) != 1 {
		t.Fatalf("first response series: %+v", resp.Series)
	}
	r, err := db.Report(ctx, someReport(t, db, now))
	if err != nil {
		t.Fatal(err)
	}
	if r.Route.Team == "" || r.Usage == nil || r.Browser == "" || r.ReplayURL == "" || r.Fingerprint == "" {
		t.Errorf("a seeded report lacks context: %+v", r)
	}
}

func someReport(t *testing.T, db *clickhouse.DB, now time.Time) bugreport.UUID {
	t.Helper()
	rs, err := db.ReportsSince(context.Background(), now.Add(-15*24*time.Hour), 1)
	if err != nil || len(rs) == 0 {
		t.Fatalf("no seeded report: %v", err)
	}
	return rs[0].ID
}
