package clickhouse

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/clickhouse/localch/localchtest"
)

func TestMain(m *testing.M) { localchtest.Main(m) }

func open(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), Options{DSN: localchtest.DSN(t), CreateDatabase: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// migrated is open with the schema in place.
func migrated(t *testing.T) (*DB, context.Context) {
	t.Helper()
	db, ctx := open(t), context.Background()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db, ctx
}

func TestMigrateIsIdempotentAndRecorded(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	n, err := db.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(Migrations) {
		t.Fatalf("first run applied %d, want %d", n, len(Migrations))
	}
	n, err = db.Migrate(ctx)
	if err != nil || n != 0 {
		t.Fatalf("second run applied %d (%v), want 0", n, err)
	}
	applied, err := db.AppliedVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range Migrations {
		if !applied[m.Version] {
			t.Errorf("migration %d not recorded", m.Version)
		}
	}
}

func TestMigrationsRerunSafelyWhenNotRecorded(t *testing.T) {
	// A crash between a statement and its record reruns the statement: it
	// must be idempotent.
	db := open(t)
	ctx := context.Background()
	for _, m := range Migrations {
		for _, stmt := range m.Statements {
			for i := 0; i < 2; i++ {
				if err := db.conn.Exec(ctx, stmt); err != nil {
					t.Fatalf("migration %d run %d: %v", m.Version, i, err)
				}
			}
			if !strings.Contains(stmt, "IF NOT EXISTS") {
				t.Errorf("migration %d statement is not guarded by IF NOT EXISTS", m.Version)
			}
		}
	}
}

// messageEvents are thread messages of two reports, written as the thread
// writes them, and one other event, all in project m.
func messageEvents(ts time.Time) []bugreport.Event {
	msg := func(id byte, report, kind string) bugreport.Event {
		return bugreport.Event{UUID: bugreport.UUID{0xe0, id}, Project: "m", Event: bugreport.EventBugReportMessage, DistinctID: "u", Timestamp: ts.Add(time.Duration(id) * time.Minute), CreatedAt: ts,
			Properties: `{"id":"m","report_id":"` + report + `","kind":"` + kind + `","body":"says \"report_id\":\"forged\""}`}
	}
	return []bugreport.Event{
		msg(1, "00000000-0000-0000-0000-00000000000a", "note"),
		msg(2, "00000000-0000-0000-0000-00000000000a", "agent_reply"),
		msg(3, "00000000-0000-0000-0000-00000000000b", "reporter_reply"),
		{UUID: bugreport.UUID{0xe0, 4}, Project: "m", Event: "$pageview", DistinctID: "u", Timestamp: ts, CreatedAt: ts, Properties: `{"report_id":"00000000-0000-0000-0000-00000000000a"}`},
	}
}

// reportMessages reads report_messages as "report kind" lines, one per
// message (by uuid, as readers count them: FINAL on a Distributed table of
// 18.16 wants the whole sorting key selected).
func reportMessages(t *testing.T, db *DB) []string {
	t.Helper()
	rows, err := db.conn.Query(context.Background(), "SELECT any(report_id), any(kind), min(timestamp) AS t FROM report_messages GROUP BY uuid ORDER BY t")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r, k string
		var at time.Time
		if err := rows.Scan(&r, &k, &at); err != nil {
			t.Fatal(err)
		}
		out = append(out, r[len(r)-1:]+" "+k)
	}
	return out
}

func TestReportMessagesFilledAndBackfilled(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	ts := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	evs := messageEvents(ts)
	// A database from before migration 5 with two messages in it...
	if n, err := db.migrate(ctx, false, Migrations[:4]); err != nil || n != 4 {
		t.Fatalf("migrations 1-4: %d, %v", n, err)
	}
	if err := db.WriteEvents(ctx, evs[:2]); err != nil {
		t.Fatal(err)
	}
	// ...gets them copied by the migration; later ones arrive through the
	// view, and a replay collapses.
	if n, err := db.Migrate(ctx); err != nil || n != 1 {
		t.Fatalf("migration 5: %d, %v", n, err)
	}
	if err := db.WriteEvents(ctx, evs[1:]); err != nil {
		t.Fatal(err)
	}
	want := []string{"a note", "a agent_reply", "b reporter_reply"}
	if got := reportMessages(t, db); !slices.Equal(got, want) {
		t.Errorf("report_messages = %q, want %q", got, want)
	}
}

func TestWriteEventsReplayCollapses(t *testing.T) {
	db, ctx := migrated(t)
	ts := time.Date(2026, 11, 27, 10, 0, 0, 123e6, time.UTC)
	evs := []bugreport.Event{
		{UUID: bugreport.UUID{1}, Project: "p", Event: "a", DistinctID: "u1", Timestamp: ts, CreatedAt: ts, Properties: `{"x":"<&>"}`, SessionID: "s"},
		{UUID: bugreport.UUID{2}, Project: "p", Event: "b", DistinctID: "u2", Timestamp: ts, CreatedAt: ts, Properties: `{}`, Set: `{"email":"a@b"}`},
	}
	for i := 0; i < 3; i++ {
		if err := db.WriteEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.conn.Exec(ctx, "OPTIMIZE TABLE events FINAL"); err != nil {
		t.Fatal(err)
	}
	var rows uint64
	if err := db.conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 2 {
		t.Fatalf("%d rows after three writes of two events and OPTIMIZE FINAL, want 2", rows)
	}
	var props, set string
	var ms uint16
	var got time.Time
	if err := db.conn.QueryRow(ctx, "SELECT properties, timestamp, timestamp_ms FROM events WHERE event = 'a'").Scan(&props, &got, &ms); err != nil {
		t.Fatal(err)
	}
	if props != `{"x":"<&>"}` || !got.Equal(ts.Truncate(time.Second)) || ms != 123 {
		t.Errorf("row: %s %s %d", props, got, ms)
	}
	if err := db.conn.QueryRow(ctx, "SELECT person_set FROM events WHERE event = 'b'").Scan(&set); err != nil || set != `{"email":"a@b"}` {
		t.Errorf("person_set %q %v", set, err)
	}
}

func TestParseDSN(t *testing.T) {
	tests := []struct {
		dsn, db, err string
	}{
		{"clickhouse://127.0.0.1:9000/arubug", "arubug", ""},
		{"clickhouse://u:p@h:9000", "default", ""},
		{"http://h:8123/db", "", "must start with clickhouse://"},
		{"clickhouse:///db", "", "no host"},
		{"clickhouse://h:9000/bad-name", "", "must match"},
		{"clickhouse://u:secretpw@h:x/db", "", "clickhouse DSN"},
	}
	for _, tt := range tests {
		db, err := ParseDSN(tt.dsn)
		if tt.err == "" && (err != nil || db != tt.db) {
			t.Errorf("ParseDSN(%q) = %q, %v; want %q", tt.dsn, db, err, tt.db)
		}
		if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("ParseDSN(%q) error %v, want %q", tt.dsn, err, tt.err)
		}
		if err != nil && strings.Contains(err.Error(), "secretpw") {
			t.Errorf("ParseDSN error leaks the password: %v", err)
		}
	}
}

// TestPendingReportEvents checks what the triage reconciler is given: the
// configured projects' bug reports of the lookback window that have no
// report row, once each, oldest first, with their properties.
func TestPendingReportEvents(t *testing.T) {
	db, ctx := migrated(t)
	// The replayed duplicates below must stay two rows.
	if err := db.conn.Exec(ctx, "SYSTEM STOP MERGES events"); err != nil {
		t.Fatal(err)
	}
	// The window starts at 03:00 UTC, the evening before in the Americas:
	// on a server there, early reports of the window fall on the day
	// before the window's UTC day (run with TZ=America/New_York).
	now := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	report := func(id byte, project string, age time.Duration) bugreport.Event {
		at := now.Add(-age)
		return bugreport.Event{UUID: bugreport.UUID{0xa0, id}, Project: project, Event: bugreport.EventBugReport, DistinctID: "u",
			Timestamp: at, CreatedAt: at, Properties: fmt.Sprintf(`{"$description":"report %d"}`, id)}
	}
	newest, older, oldest := report(1, "p", time.Minute), report(2, "p", time.Hour), report(3, "q", 20*time.Hour)
	stored := report(4, "p", 2*time.Hour)
	tooOld := report(5, "p", 48*time.Hour)
	// Out of the window by an hour, but on the day the window starts.
	sameDayTooOld := report(8, "p", 25*time.Hour)
	early := report(9, "p", 23*time.Hour+30*time.Minute)
	otherProject := report(6, "elsewhere", time.Minute)
	pageview := bugreport.Event{UUID: bugreport.UUID{0xa0, 7}, Project: "p", Event: "$pageview", DistinctID: "u", Timestamp: now, CreatedAt: now, Properties: "{}"}
	events := []bugreport.Event{newest, older, oldest, early, stored, tooOld, sameDayTooOld, otherProject, pageview}
	// The same report sent twice: two rows until ClickHouse merges them.
	for range 2 {
		if err := db.WriteEvents(ctx, events); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.SaveReport(ctx, &bugreport.Report{ID: stored.UUID, Project: "p", ReportedAt: stored.Timestamp, ReceivedAt: stored.Timestamp}, "rules"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		projects []string
		limit    int
		want     []bugreport.Event
	}{
		{"all pending, oldest first, once each", []string{"p", "q"}, 10, []bugreport.Event{early, oldest, older, newest}},
		{"limit keeps the oldest", []string{"p", "q"}, 2, []bugreport.Event{early, oldest}},
		{"one project", []string{"p"}, 10, []bugreport.Event{early, older, newest}},
		{"no projects", nil, 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.PendingReportEvents(ctx, tt.projects, now, 24*time.Hour, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d events, want %d: %v", len(got), len(tt.want), got)
			}
			for i, w := range tt.want {
				if g := got[i]; g.UUID != w.UUID || g.Project != w.Project || !g.Timestamp.Equal(w.Timestamp) || g.Properties != w.Properties {
					t.Errorf("event %d = %s %s %v %s; want %s %s %v %s", i, g.UUID, g.Project, g.Timestamp, g.Properties, w.UUID, w.Project, w.Timestamp, w.Properties)
				}
			}
		})
	}
}

func TestReportsAndScreenshots(t *testing.T) {
	db, ctx := migrated(t)
	ts := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	png := []byte("\x89PNG\r\n\x1a\nfake")
	ev := bugreport.Event{UUID: bugreport.UUID{9}, Project: "p", Event: bugreport.EventBugReport, DistinctID: "u", Timestamp: ts, CreatedAt: ts,
		Properties: `{"$description":"it broke","$screenshot":"data:image/png;base64,` + base64.StdEncoding.EncodeToString(png) + `"}`}
	svg := bugreport.Event{UUID: bugreport.UUID{10}, Project: "p", Event: bugreport.EventBugReport, DistinctID: "u", Timestamp: ts, CreatedAt: ts,
		Properties: `{"$screenshot":"data:image/svg+xml;base64,PHN2Zz4="}`}
	// A failed insert is retried with the same events, as the drainer
	// does: they must still carry their screenshots.
	batch := []bugreport.Event{ev, svg}
	failed, cancel := context.WithCancel(ctx)
	cancel()
	if err := db.WriteEvents(failed, batch); err == nil {
		t.Fatal("insert under a cancelled context succeeded")
	}
	if batch[0].Properties != ev.Properties {
		t.Fatalf("a failed insert changed the event it will retry: %.80s", batch[0].Properties)
	}
	if err := db.WriteEvents(ctx, batch); err != nil {
		t.Fatal(err)
	}
	var props string
	if err := db.conn.QueryRow(ctx, "SELECT properties FROM events WHERE event = '$bug_report' AND uuid = toUUID(?)", ev.UUID.String()).Scan(&props); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(props, "base64") || !strings.Contains(props, `"$screenshot_id":"`+ev.UUID.String()+`"`) {
		t.Errorf("screenshot not moved out of properties: %s", props)
	}
	mime, data, err := db.Screenshot(ctx, ev.UUID)
	if err != nil || mime != "image/png" || string(data) != string(png) {
		t.Errorf("screenshot: %q %q %v", mime, data, err)
	}
	if _, _, err := db.Screenshot(ctx, svg.UUID); err == nil {
		t.Error("an SVG screenshot was stored")
	}

	pending, err := db.PendingReportEvents(ctx, []string{"p"}, ts.Add(time.Minute), 24*time.Hour, 10)
	if err != nil || len(pending) != 2 {
		t.Fatalf("pending: %d %v", len(pending), err)
	}
	r := &bugreport.Report{ID: ev.UUID, Project: "p", ReportedAt: ts, ReceivedAt: ts, Title: "it broke", Description: "it broke\nbadly",
		Reporter: bugreport.Reporter{DistinctID: "u", Email: "u@example.com"}, Usage: &bugreport.Usage{Events30d: 5, Person: map[string]string{"plan": "pro"}},
		Console:     []bugreport.ConsoleEntry{{Level: "error", Message: "x is undefined", At: ts}},
		Route:       bugreport.RouteDecision{Team: "billing", Route: "billing-paths", Priority: "high", Tags: []string{"billing"}, Explanation: []bugreport.RouteStep{{Route: "billing-paths", Matched: true, Reason: "matched"}}},
		Fingerprint: "abc", Properties: map[string]any{"k": "v"}}
	if err := db.SaveReport(ctx, r, "rules"); err != nil {
		t.Fatal(err)
	}
	r.Route.Team = "platform"
	if err := db.SaveReport(ctx, r, "manual"); err != nil {
		t.Fatal(err)
	}
	got, err := db.Report(ctx, ev.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Route.Team != "platform" || got.RouteSource != "manual" || got.Usage == nil || got.Usage.Person["plan"] != "pro" ||
		len(got.Console) != 1 || got.Route.Explanation[0].Route != "billing-paths" || got.Reporter.Email != "u@example.com" {
		t.Errorf("report round trip: %+v", got)
	}
	if _, err := db.Report(ctx, bugreport.UUID{42}); bugreport.ErrorCode(err) != bugreport.ENOTFOUND {
		t.Errorf("missing report: %v", err)
	}
	pending, _ = db.PendingReportEvents(ctx, []string{"p"}, ts.Add(time.Minute), 24*time.Hour, 10)
	if len(pending) != 1 || pending[0].UUID != svg.UUID {
		t.Errorf("pending after saving one: %v", pending)
	}
	page, err := db.Reports(ctx, bugreport.ReportFilter{Team: "platform", Limit: 10})
	if err != nil || len(page.Reports) != 1 {
		t.Fatalf("reports: %v %v", page, err)
	}
	n, err := db.SimilarCount(ctx, "p", "abc", ts.Add(-time.Hour), bugreport.UUID{77})
	if err != nil || n != 1 {
		t.Errorf("similar: %d %v", n, err)
	}
	// The re-routed report counts for its latest team only; received 8
	// days before "now", it is not among the last 7 days'.
	counts, err := db.TeamCounts(ctx, ts.Add(8*24*time.Hour))
	if want := map[string]bugreport.TeamStats{"platform": {Reports: 1}}; err != nil || !maps.Equal(counts, want) {
		t.Errorf("team counts: %v, %v; want %v", counts, err, want)
	}
	counts, err = db.TeamCounts(ctx, ts.Add(time.Hour))
	if want := map[string]bugreport.TeamStats{"platform": {Reports: 1, Last7d: 1}}; err != nil || !maps.Equal(counts, want) {
		t.Errorf("team counts: %v, %v; want %v", counts, err, want)
	}
}

// bulkEvents are n distinct events with properties of about size bytes,
// shaped like posthog-js pageviews.
func bulkEvents(n, size int) []bugreport.Event {
	ts := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	pad := strings.Repeat("x", max(size-200, 0))
	evs := make([]bugreport.Event, n)
	for i := range evs {
		id := bugreport.UUID{0xb0, byte(i >> 16), byte(i >> 8), byte(i)}
		evs[i] = bugreport.Event{UUID: id, Project: "bulk", Event: "$pageview", DistinctID: fmt.Sprintf("user-%d", i%97), Timestamp: ts, CreatedAt: ts,
			Properties: fmt.Sprintf(`{"$current_url":"https://app.example.com/p/%d","$lib":"web","pad":"%s"}`, i, pad),
			CurrentURL: fmt.Sprintf("https://app.example.com/p/%d", i), Pathname: fmt.Sprintf("/p/%d", i), Lib: "web", LibVersion: "1.200.0"}
	}
	return evs
}

func TestWriteEventsInSeveralBlocks(t *testing.T) {
	db, ctx := migrated(t)
	// More rows than one block holds, then rows so large that a block
	// fills by bytes first: every row arrives, once.
	evs := append(bulkEvents(2*insertBlockRows+5, 300), bulkEvents(3*insertBlockBytes/(200<<10)+3, 200<<10)...)
	for i := range evs[2*insertBlockRows+5:] {
		evs[2*insertBlockRows+5+i].UUID[0] = 0xb1
	}
	if err := db.WriteEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	var rows, ids, bytes uint64
	if err := db.conn.QueryRow(ctx, "SELECT count(), uniqExact(uuid), sum(length(properties)) FROM events WHERE project = 'bulk'").Scan(&rows, &ids, &bytes); err != nil {
		t.Fatal(err)
	}
	var want uint64
	for _, e := range evs {
		want += uint64(len(e.Properties))
	}
	if rows != uint64(len(evs)) || ids != rows || bytes != want {
		t.Errorf("stored %d rows, %d uuids, %d property bytes; want %d rows of %d bytes", rows, ids, bytes, len(evs), want)
	}
}

// BenchmarkWriteEvents inserts 5 000 events of 1.2 KB, the drainer's insert
// at 5 000 events/s.
func BenchmarkWriteEvents(b *testing.B) {
	db, err := Open(context.Background(), Options{DSN: localchtest.DSN(b), CreateDatabase: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	evs := bulkEvents(5000, 1200)
	b.SetBytes(int64(5000 * 1200))
	b.ReportAllocs()
	for b.Loop() {
		if err := db.WriteEvents(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
}

func TestReportsWithoutUsage(t *testing.T) {
	db, ctx := migrated(t)
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	save := func(n byte, received time.Duration, usage *bugreport.Usage) *bugreport.Report {
		r := &bugreport.Report{ID: bugreport.UUID{0xa0, n}, Project: "p", ReportedAt: now.Add(-received), ReceivedAt: now.Add(-received),
			Title: fmt.Sprint("r", n), Usage: usage, Route: bugreport.RouteDecision{Team: "billing"}}
		if err := db.SaveReport(ctx, r, "rules"); err != nil {
			t.Fatal(err)
		}
		return r
	}
	save(1, 2*time.Hour, nil)                            // wanted, second
	save(2, 3*time.Hour, &bugreport.Usage{Events30d: 1}) // has usage
	late := save(3, 4*time.Hour, nil)                    // enriched later: its latest version has usage
	save(4, 30*time.Hour, nil)                           // before the window
	save(5, 5*time.Hour, nil)                            // wanted, first
	late.Usage = &bugreport.Usage{Events30d: 2}
	if err := db.SaveReport(ctx, late, "rules"); err != nil {
		t.Fatal(err)
	}
	got, err := db.ReportsWithoutUsage(ctx, now.Add(-24*time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	var titles []string
	for _, r := range got {
		titles = append(titles, r.Title)
	}
	if want := []string{"r5", "r1"}; !slices.Equal(titles, want) {
		t.Errorf("reports without usage: %q, want %q, oldest first", titles, want)
	}
	if got, err := db.ReportsWithoutUsage(ctx, now.Add(-24*time.Hour), 1); err != nil || len(got) != 1 || got[0].Title != "r5" {
		t.Errorf("with limit 1: %v, %v", got, err)
	}
}
