package enrich

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/clickhouse"
	"github.com/arubug/arubug/internal/clickhouse/localch/localchtest"
)

func TestMain(m *testing.M) { localchtest.Main(m) }

// reportAt is when the seeded reports were sent.
var reportAt = time.Date(2026, 3, 20, 12, 0, 0, 0, time.UTC)

// before returns reportAt minus d days, h hours, m minutes, plus ms
// milliseconds.
func before(d, h, m, ms int) time.Time {
	return reportAt.AddDate(0, 0, -d).Add(-time.Duration(h)*time.Hour - time.Duration(m)*time.Minute + time.Duration(ms)*time.Millisecond)
}

func openDB(t testing.TB) *clickhouse.DB {
	t.Helper()
	ctx := context.Background()
	db, err := clickhouse.Open(ctx, clickhouse.Options{DSN: localchtest.DSN(t), CreateDatabase: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

var uuidSeq atomic.Uint64

// ev builds an event with a fresh uuid. Properties default to {}.
func ev(project, name, distinctID, deviceID, session string, ts time.Time) bugreport.Event {
	var id bugreport.UUID
	binary.BigEndian.PutUint64(id[8:], uuidSeq.Add(1))
	id[6] = 0x40 // a version 4 layout, so the ids read as ordinary UUIDs
	id[8] |= 0x80
	return bugreport.Event{
		UUID: id, Project: project, Event: name, DistinctID: distinctID, DeviceID: deviceID,
		SessionID: session, Timestamp: ts, CreatedAt: ts, Properties: `{}`,
	}
}

func pageview(project, distinctID, deviceID, session, path string, ts time.Time) bugreport.Event {
	e := ev(project, "$pageview", distinctID, deviceID, session, ts)
	e.Pathname = path
	if path != "" {
		e.CurrentURL = "https://app.acme.example" + path
	}
	return e
}

func with(e bugreport.Event, f func(*bugreport.Event)) bugreport.Event {
	f(&e)
	return e
}

// uuidV7 returns a version 7 UUID stamped with t, as posthog-js makes
// session ids.
func uuidV7(t time.Time, tail byte) string {
	var u uuid.UUID
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(t.UnixMilli()))
	copy(u[:6], ms[2:])
	u[6] = 0x70
	u[8] = 0x80
	u[15] = tail
	return u.String()
}

var (
	// sessionToday is alice's session of the report, a posthog-js UUIDv7
	// stamped 2 s before its first event (client clock slightly behind).
	sessionToday = uuidV7(before(0, 1, 0, -2000), 1)
	// sessionSkewed is stamped by a client whose clock is years off.
	sessionSkewed = uuidV7(time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC), 2)
)

// seed writes the history the usage tests read. Comments name what each
// group is there to prove; the expected numbers in TestUsage follow from it.
func seed(t testing.TB, db *clickhouse.DB) {
	t.Helper()
	const (
		acme  = "acme"
		other = "other"
		alice = "u-alice"
		dev   = "dev-alice"
		anon  = "anon-1" // alice before she identified, same device
		bob   = "u-bob"
	)
	long := strings.Repeat("é", 600)
	var replayed []bugreport.Event
	events := []bugreport.Event{
		// Older than 365 days: beyond FirstSeen's bound.
		pageview(acme, alice, dev, "s-ancient", "/ancient", before(400, 0, 0, 0)),

		// Older than 30 days: FirstSeen, $set and $set_once, no counts.
		pageview(acme, alice, dev, "s0", "/old", before(39, 0, 0, 0)),
		with(ev(acme, "$identify", alice, dev, "s0", before(35, 0, 0, 0)), func(e *bugreport.Event) {
			e.Set = `{"email":"alice@old.example","name":"Alice"}`
			e.SetOnce = `{"plan":"free","company":"Acme"}`
		}),

		// Anonymous, matched by device only (day 1 of 8, session 1 of 7).
		pageview(acme, anon, dev, "s-anon", "/pricing", before(20, 2, 0, 0)),
		pageview(acme, anon, dev, "s-anon", "/signup", before(20, 1, 59, 0)),
		with(ev(acme, "$autocapture", anon, dev, "s-anon", before(20, 1, 58, 0)), func(e *bugreport.Event) { e.Pathname = "/signup" }),

		// Day 2, session 2; $set plan team.
		with(pageview(acme, alice, dev, "s2", "/dashboard", before(10, 3, 0, 0)), func(e *bugreport.Event) { e.Set = `{"plan":"team"}` }),
		ev(acme, "$autocapture", alice, dev, "s2", before(10, 2, 59, 0)),
		pageview(acme, alice, dev, "s2", "/dashboard", before(10, 2, 58, 0)),
		ev(acme, "$autocapture", alice, dev, "s2", before(10, 2, 57, 0)),
		ev(acme, "report_created", alice, dev, "s2", before(10, 2, 56, 0)),

		// Day 3, no session: a backend SDK writing JSON with spaces, as
		// Python's json.dumps does; $set plan pro is the latest plan.
		with(ev(acme, "subscription_renewed", alice, "", "", before(5, 4, 0, 0)), func(e *bugreport.Event) {
			e.Properties = `{"plan": "pro", "$lib": "posthog-python"}`
			e.Set = `{"plan": "pro"}`
		}),

		// Day 4, session 3; a name with escapes and non-ASCII.
		with(pageview(acme, alice, dev, "s3", "/settings", before(4, 0, 0, 0)), func(e *bugreport.Event) { e.Set = `{"name":"Alice \"Al\" \u00d6"}` }),
		ev(acme, "settings_saved", alice, dev, "s3", before(4, 0, -1, 0)),

		// Day 5, session 4; the latest email.
		with(pageview(acme, alice, dev, "s4", "/dashboard", before(3, 0, 0, 0)), func(e *bugreport.Event) { e.Set = `{"email":"alice@acme.example"}` }),
	}
	// Day 6, session 5; written twice below (replays must not count twice).
	day6 := []bugreport.Event{
		with(pageview(acme, alice, dev, "s5", "/reports", before(2, 0, 0, 0)), func(e *bugreport.Event) {
			e.SetOnce = `{"plan":"trial","organization":"Acme Org"}`
			e.Properties = `{"$active_feature_flags":["new-nav","beta-export"],"$feature/new-nav":true,"$feature/beta-export":true}`
		}),
		ev(acme, "report_created", alice, dev, "s5", before(2, 0, -1, 0)),
		ev(acme, "report_created", alice, dev, "s5", before(2, 0, -2, 0)),
		pageview(acme, alice, dev, "s5", "/dashboard", before(2, 0, -3, 0)),
	}
	events = append(events, day6...)
	replayed = append(replayed, day6[0], day6[1], day6[3])
	events = append(events,
		// Day 7, session 6: an empty $set name (ignored), a later $set_once
		// company (the earliest wins), a $pageview without any path.
		with(pageview(acme, alice, dev, "s6", "/reports/42", before(1, 0, 0, 0)), func(e *bugreport.Event) {
			e.Set = `{"name":""}`
			e.SetOnce = `{"company":"Acme Later"}`
		}),
		pageview(acme, alice, dev, "s6", "", before(1, 0, -1, 0)),

		// Day 8, the report's session (7), a UUIDv7.
		with(pageview(acme, alice, dev, sessionToday, "", before(0, 1, 0, 123)), func(e *bugreport.Event) {
			e.CurrentURL = "https://app.acme.example/dashboard?tab=1" // no $pathname: path of the URL
		}),
		with(ev(acme, "$exception", alice, dev, sessionToday, before(0, 0, 50, 0)), func(e *bugreport.Event) {
			e.Properties = `{"$exception_type":"TypeError","$exception_message":"too old"}` // 50 min before: not recent
		}),
		with(ev(acme, "$exception", alice, dev, sessionToday, before(0, 0, 30, 0)), func(e *bugreport.Event) {
			// Exactly 30 minutes before: recent. The list form, with a
			// nested "type" ahead of the entry's own.
			e.Properties = `{"$exception_list":[{"mechanism":{"type":"onerror","handled":false},"type":"RangeError","value":"Maximum call stack size exceeded","stacktrace":{"type":"raw","frames":[]}}],"$exception_level":"error"}`
		}),
		with(ev(acme, "$exception", alice, dev, sessionToday, before(0, 0, 10, 250)), func(e *bugreport.Event) {
			e.Properties = `{"$exception_type":"TypeError","$exception_message":"Cannot read properties of undefined (reading 'id')"}`
		}),
		with(ev(acme, "$exception", alice, dev, sessionToday, before(0, 0, 5, 0)), func(e *bugreport.Event) {
			e.Properties = `{"$exception_type": "ChunkLoadError", "$exception_message": "` + long + `"}`
		}),
		with(pageview(acme, alice, dev, sessionToday, "/reports/42", before(0, 0, 3, 0)), func(e *bugreport.Event) {
			e.Properties = `{"$active_feature_flags":["new-nav","dark-mode"],"$feature/new-nav":true,"$feature/dark-mode":"variant-b","$feature/beta-export":false,"$feature/zeta":true,"$feature/empty":""}`
		}),
		ev(acme, "$bug_report_opened", alice, dev, sessionToday, before(0, 0, 1, 0)),
		ev(acme, bugreport.EventBugReport, alice, dev, sessionToday, reportAt),

		// After the report: none of it counts.
		with(ev(acme, "$exception", alice, dev, sessionToday, reportAt.Add(500*time.Millisecond)), func(e *bugreport.Event) {
			e.Properties = `{"$exception_type":"Late","$exception_message":"after the report"}`
		}),
		with(pageview(acme, alice, dev, sessionToday, "/future", reportAt.Add(2*time.Hour)), func(e *bugreport.Event) {
			e.Set = `{"plan":"enterprise"}`
			e.Properties = `{"$active_feature_flags":["future-flag"]}`
		}),
		ev(acme, "report_created", alice, dev, "s-next", reportAt.AddDate(0, 0, 1)),

		// Bob, same project: his own numbers, none of alice's.
		with(pageview(acme, bob, "dev-bob", "sb", "/admin", before(1, 0, 0, 0)), func(e *bugreport.Event) {
			e.Set = `{"email":"bob@example.com","plan":"free"}`
		}),
		pageview(acme, bob, "dev-bob", "sb", "/admin", before(1, 0, -1, 0)),
		pageview(acme, bob, "dev-bob", "sb", "/admin", before(1, 0, -2, 0)),
		pageview(acme, bob, "dev-bob", "sb", "/admin", before(1, 0, -3, 0)),
		pageview(acme, bob, "dev-bob", "sb", "/admin", before(1, 0, -4, 0)),
		with(ev(acme, "$exception", bob, "dev-bob", "sb2", before(0, 0, 5, 0)), func(e *bugreport.Event) {
			e.Properties = `{"$exception_type":"Error","$exception_message":"bob"}`
		}),

		// Someone else anonymous on another device.
		pageview(acme, "anon-2", "dev-other", "so", "/pricing", before(3, 0, 0, 0)),
		pageview(acme, "anon-2", "dev-other", "so", "/pricing", before(3, 0, -1, 0)),

		// Alice's ids in another project: never counted for acme.
		with(pageview(other, alice, dev, sessionToday, "/other", before(0, 1, 30, 0)), func(e *bugreport.Event) { e.Set = `{"plan":"other"}` }),
		pageview(other, alice, dev, sessionToday, "/other", before(0, 1, 20, 0)),
		with(ev(other, "$exception", alice, dev, "so", before(0, 0, 2, 0)), func(e *bugreport.Event) {
			e.Properties = `{"$exception_type":"Other","$exception_message":"other project","$active_feature_flags":["other-project"]}`
		}),

		// A session whose id's clock is years off from its events.
		pageview(acme, "u-carol", "", sessionSkewed, "/x", before(0, 2, 0, 0)),
		pageview(acme, "u-carol", "", sessionSkewed, "/y", before(0, 1, 0, 0)),
	)
	ctx := context.Background()
	// Stop merges so that the replayed rows stay physically duplicated
	// while the tests read.
	if err := db.Conn().Exec(ctx, "SYSTEM STOP MERGES events"); err != nil {
		t.Fatal(err)
	}
	if err := db.WriteEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
	if err := db.WriteEvents(ctx, replayed); err != nil {
		t.Fatal(err)
	}
	var rows, unique uint64
	if err := db.Conn().QueryRow(ctx, "SELECT count(), uniqExact(uuid) FROM events").Scan(&rows, &unique); err != nil {
		t.Fatal(err)
	}
	if rows != unique+uint64(len(replayed)) {
		t.Fatalf("seeded %d rows for %d events, want %d duplicates", rows, unique, len(replayed))
	}
}

func TestUsage(t *testing.T) {
	db := openDB(t)
	seed(t, db)
	q := NewQuerier(db.Conn(), 10*time.Second)

	alicePerson := map[string]string{
		"email":        "alice@acme.example", // latest $set
		"name":         `Alice "Al" Ö`,       // latest non-empty $set
		"plan":         "pro",                // $set, not the earlier $set_once, nor the future
		"company":      "Acme",               // earliest $set_once
		"organization": "Acme Org",           // $set_once only
	}
	aliceExceptions := []bugreport.Exception{
		{Type: "ChunkLoadError", Message: strings.Repeat("é", 500), At: before(0, 0, 5, 0)},
		{Type: "TypeError", Message: "Cannot read properties of undefined (reading 'id')", At: before(0, 0, 10, 250)},
		{Type: "RangeError", Message: "Maximum call stack size exceeded", At: before(0, 0, 30, 0)},
	}
	aliceFlags := []string{"dark-mode", "new-nav", "zeta"}
	tests := []struct {
		name                string
		project, distinctID string
		deviceID            string
		want                bugreport.Usage
	}{
		{
			name: "alice with her device", project: "acme", distinctID: "u-alice", deviceID: "dev-alice",
			want: bugreport.Usage{
				Events30d:     24,
				ActiveDays30d: 8,
				Sessions30d:   7,
				FirstSeen:     before(39, 0, 0, 0),
				LastSeen:      before(0, 0, 3, 0),
				TopEvents: []bugreport.Count{
					{Name: "$pageview", Count: 12}, {Name: "$exception", Count: 4}, {Name: "$autocapture", Count: 3},
					{Name: "report_created", Count: 3}, {Name: "settings_saved", Count: 1},
				},
				TopPages: []bugreport.Count{
					{Name: "/dashboard", Count: 5}, {Name: "/reports/42", Count: 2}, {Name: "/pricing", Count: 1},
					{Name: "/reports", Count: 1}, {Name: "/settings", Count: 1},
				},
				RecentExceptions: aliceExceptions,
				Person:           alicePerson,
				FeatureFlags:     aliceFlags,
			},
		},
		{
			name: "alice without a device id", project: "acme", distinctID: "u-alice",
			want: bugreport.Usage{
				Events30d:     21,
				ActiveDays30d: 7,
				Sessions30d:   6,
				FirstSeen:     before(39, 0, 0, 0),
				LastSeen:      before(0, 0, 3, 0),
				TopEvents: []bugreport.Count{
					{Name: "$pageview", Count: 10}, {Name: "$exception", Count: 4}, {Name: "report_created", Count: 3},
					{Name: "$autocapture", Count: 2}, {Name: "settings_saved", Count: 1},
				},
				TopPages: []bugreport.Count{
					{Name: "/dashboard", Count: 5}, {Name: "/reports/42", Count: 2}, {Name: "/reports", Count: 1},
					{Name: "/settings", Count: 1},
				},
				RecentExceptions: aliceExceptions,
				Person:           alicePerson,
				FeatureFlags:     aliceFlags,
			},
		},
		{
			name: "anonymous alice by device only", project: "acme", distinctID: "anon-1", deviceID: "dev-alice",
			// The device matches every event alice sent from it, so all but
			// the backend event (no device) count.
			want: bugreport.Usage{
				Events30d:     23,
				ActiveDays30d: 7,
				Sessions30d:   7,
				FirstSeen:     before(39, 0, 0, 0),
				LastSeen:      before(0, 0, 3, 0),
				TopEvents: []bugreport.Count{
					{Name: "$pageview", Count: 12}, {Name: "$exception", Count: 4}, {Name: "$autocapture", Count: 3},
					{Name: "report_created", Count: 3}, {Name: "settings_saved", Count: 1},
				},
				TopPages: []bugreport.Count{
					{Name: "/dashboard", Count: 5}, {Name: "/reports/42", Count: 2}, {Name: "/pricing", Count: 1},
					{Name: "/reports", Count: 1}, {Name: "/settings", Count: 1},
				},
				RecentExceptions: aliceExceptions,
				Person: map[string]string{
					"email": "alice@acme.example", "name": `Alice "Al" Ö`, "plan": "team", "company": "Acme", "organization": "Acme Org",
				},
				FeatureFlags: aliceFlags,
			},
		},
		{
			name: "bob", project: "acme", distinctID: "u-bob", deviceID: "dev-bob",
			want: bugreport.Usage{
				Events30d:        6,
				ActiveDays30d:    2,
				Sessions30d:      2,
				FirstSeen:        before(1, 0, 0, 0),
				LastSeen:         before(0, 0, 5, 0),
				TopEvents:        []bugreport.Count{{Name: "$pageview", Count: 5}, {Name: "$exception", Count: 1}},
				TopPages:         []bugreport.Count{{Name: "/admin", Count: 5}},
				RecentExceptions: []bugreport.Exception{{Type: "Error", Message: "bob", At: before(0, 0, 5, 0)}},
				Person:           map[string]string{"email": "bob@example.com", "plan": "free"},
				FeatureFlags:     []string{},
			},
		},
		{
			name: "unknown person", project: "acme", distinctID: "u-nobody", deviceID: "dev-nobody",
			want: bugreport.Usage{
				TopEvents: []bugreport.Count{}, TopPages: []bugreport.Count{}, RecentExceptions: []bugreport.Exception{},
				Person: map[string]string{}, FeatureFlags: []string{},
			},
		},
		{
			name: "unknown project", project: "nope", distinctID: "u-alice", deviceID: "dev-alice",
			want: bugreport.Usage{
				TopEvents: []bugreport.Count{}, TopPages: []bugreport.Count{}, RecentExceptions: []bugreport.Exception{},
				Person: map[string]string{}, FeatureFlags: []string{},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := q.Usage(context.Background(), tt.project, tt.distinctID, tt.deviceID, reportAt)
			if err != nil {
				t.Fatal(err)
			}
			checkUsage(t, got, &tt.want)
		})
	}
}

func checkUsage(t *testing.T, got, want *bugreport.Usage) {
	t.Helper()
	check := func(field string, g, w any) {
		t.Helper()
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s\n got %v\nwant %v", field, g, w)
		}
	}
	check("Events30d", got.Events30d, want.Events30d)
	check("ActiveDays30d", got.ActiveDays30d, want.ActiveDays30d)
	check("Sessions30d", got.Sessions30d, want.Sessions30d)
	check("FirstSeen", got.FirstSeen, want.FirstSeen)
	check("LastSeen", got.LastSeen, want.LastSeen)
	check("TopEvents", got.TopEvents, want.TopEvents)
	check("TopPages", got.TopPages, want.TopPages)
	check("RecentExceptions", got.RecentExceptions, want.RecentExceptions)
	check("Person", got.Person, want.Person)
	check("FeatureFlags", got.FeatureFlags, want.FeatureFlags)
}

func TestUsageRejectsNoIdentity(t *testing.T) {
	q := NewQuerier(nil, time.Second) // never reaches the connection
	if _, err := q.Usage(context.Background(), "acme", "", "", reportAt); err == nil {
		t.Error("Usage without distinct_id or device_id: no error")
	}
	if _, err := q.Usage(context.Background(), "acme", "u", "", time.Time{}); err == nil {
		t.Error("Usage without a time: no error")
	}
}

func TestSessionStart(t *testing.T) {
	db := openDB(t)
	seed(t, db)
	q := NewQuerier(db.Conn(), 10*time.Second)
	tests := []struct {
		name, project, session string
		want                   time.Time
		ok                     bool
	}{
		// The other project's events in this session are earlier; they do
		// not count.
		{name: "uuidv7 session", project: "acme", session: sessionToday, want: before(0, 1, 0, 123), ok: true},
		{name: "uuidv7 with a skewed clock", project: "acme", session: sessionSkewed, want: before(0, 2, 0, 0), ok: true},
		{name: "plain id", project: "acme", session: "s2", want: before(10, 3, 0, 0), ok: true},
		{name: "replayed events", project: "acme", session: "s5", want: before(2, 0, 0, 0), ok: true},
		{name: "other project", project: "other", session: sessionToday, want: before(0, 1, 30, 0), ok: true},
		{name: "unknown session", project: "acme", session: "nope"},
		{name: "unknown uuidv7 session", project: "acme", session: uuidV7(reportAt, 9)},
		{name: "empty session", project: "acme", session: ""},
		{name: "hostile session", project: "acme", session: `x' OR 1=1 --`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := q.SessionStart(context.Background(), tt.project, tt.session)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.ok || !got.Equal(tt.want) {
				t.Errorf("SessionStart(%q, %q) = %v, %v; want %v, %v", tt.project, tt.session, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestUUIDV7Time(t *testing.T) {
	at := time.Date(2026, 3, 20, 11, 0, 0, 123e6, time.UTC)
	if got, ok := uuidV7Time(uuidV7(at, 0)); !ok || !got.Equal(at) {
		t.Errorf("uuidV7Time = %v, %v; want %v, true", got, ok, at)
	}
	v4 := uuid.NewString()
	if _, ok := uuidV7Time(v4); ok {
		t.Errorf("uuidV7Time(%s) accepted a version 4 UUID", v4)
	}
	if _, ok := uuidV7Time("s1"); ok {
		t.Error("uuidV7Time accepted a non-UUID")
	}
}

func TestUsageAndSessionStartStopAtCancelledContext(t *testing.T) {
	db := openDB(t)
	q := NewQuerier(db.Conn(), 10*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if _, err := q.Usage(ctx, "acme", "u-alice", "dev-alice", reportAt); !errors.Is(err, context.Canceled) {
		t.Errorf("Usage with a cancelled context: %v, want context.Canceled", err)
	}
	if _, _, err := q.SessionStart(ctx, "acme", "s1"); !errors.Is(err, context.Canceled) {
		t.Errorf("SessionStart with a cancelled context: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancelled calls took %v", d)
	}
}

func TestQueryTimeLimitStopsAHeavyQuery(t *testing.T) {
	db := openDB(t)
	q := NewQuerier(db.Conn(), 300*time.Millisecond)

	// The server is told the limit too, rounded up to a whole second.
	ctx, cancel := q.withLimits(context.Background())
	var limit string
	err := q.conn.QueryRow(ctx, "SELECT value FROM system.settings WHERE name = 'max_execution_time'").Scan(&limit)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if limit != "1" {
		t.Errorf("server-side max_execution_time = %s, want 1", limit)
	}

	// Minutes of work for the server; the deadline ends it.
	ctx, cancel = q.withLimits(context.Background())
	defer cancel()
	start := time.Now()
	var n uint64
	err = q.scanRow(ctx, "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) % 7 = 3", nil, &n)
	elapsed := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("heavy query: err = %v, want context.DeadlineExceeded", err)
	}
	if elapsed > 3*time.Second {
		t.Errorf("heavy query returned after %v, want about 300ms", elapsed)
	}

	// The server stops too, by the cancel or else by max_execution_time,
	// rather than burning CPU for minutes after the client gave up.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var running uint64
		if err := db.Conn().QueryRow(context.Background(),
			"SELECT count() FROM system.processes WHERE query LIKE '%sipHash64(number) % 7 = 3%' AND query NOT LIKE '%system.processes%'").Scan(&running); err != nil {
			t.Fatal(err)
		}
		if running == 0 {
			t.Logf("server-side query gone %v after the client's deadline", time.Since(start)-elapsed)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the heavy query still runs on the server 5s later")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The pool recovers: the next call works.
	if _, err := q.Usage(context.Background(), "acme", "u-alice", "", reportAt); err != nil {
		t.Errorf("Usage after a timed-out query: %v", err)
	}
}

func TestUsageTimeLimit(t *testing.T) {
	db := openDB(t)
	q := NewQuerier(db.Conn(), time.Nanosecond)
	start := time.Now()
	_, err := q.Usage(context.Background(), "acme", "u-alice", "", reportAt)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Usage with a 1ns limit: %v, want context.DeadlineExceeded", err)
	}
	if !strings.HasPrefix(fmt.Sprint(err), "enrich: usage: ") {
		t.Errorf("error %q is not prefixed enrich: usage:", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Usage took %v", d)
	}
}

// BenchmarkUsage reads one user's usage from a table of 200k events: 2,000
// users over 40 days in two projects.
func BenchmarkUsage(b *testing.B) {
	db := openDB(b)
	ctx := context.Background()
	const total = 200_000
	names := []string{"$pageview", "$autocapture", "$pageleave", "report_created", "$exception", "settings_saved"}
	paths := []string{"/dashboard", "/reports", "/reports/42", "/settings", "/pricing", "/admin", "/docs"}
	batch := make([]bugreport.Event, 0, 50_000)
	start := time.Now()
	for i := range total {
		user := i % 2000
		project := "acme"
		if user%10 == 9 {
			project = "other"
		}
		ts := reportAt.Add(-time.Duration(i%(40*24*60)) * time.Minute).Add(time.Duration(user) * time.Millisecond)
		if user == 42 && i < 20*2000 {
			ts = reportAt.Add(-time.Duration(i/2000) * time.Minute) // the last 20 minutes
		}
		e := ev(project, names[(i/2000)%len(names)], fmt.Sprintf("u-%d", user), fmt.Sprintf("dev-%d", user), fmt.Sprintf("s-%d-%d", user, i/5000), ts)
		if e.Event == "$pageview" {
			e.Pathname = paths[(i/7)%len(paths)]
		}
		if i%50 == 0 {
			e.Set = fmt.Sprintf(`{"email":"u%d@example.com","plan":"plan-%d"}`, user, i%3)
		}
		if i%20 == 0 {
			e.Properties = `{"$active_feature_flags":["a","b"],"$feature/c":true,"$exception_type":"Error","$exception_message":"boom"}`
		}
		batch = append(batch, e)
		if len(batch) == cap(batch) {
			if err := db.WriteEvents(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.Logf("seeded %d events in %v", total, time.Since(start))
	q := NewQuerier(db.Conn(), 10*time.Second)
	u, err := q.Usage(ctx, "acme", "u-42", "dev-42", reportAt)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("u-42: %d events, %d days, %d sessions in 30 days; top %v; %d recent exceptions", u.Events30d, u.ActiveDays30d, u.Sessions30d, u.TopEvents, len(u.RecentExceptions))
	b.ResetTimer()
	for b.Loop() {
		if _, err := q.Usage(ctx, "acme", "u-42", "dev-42", reportAt); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSessionStartFromID(t *testing.T) {
	at := time.Date(2026, 3, 20, 12, 0, 0, 0, time.UTC)
	v4 := uuid.New()
	v4[6] = 0x40 | v4[6]&0x0f
	tests := []struct {
		name, session string
		want          time.Time
		ok            bool
	}{
		{name: "posthog-js session started 90 s before", session: uuidV7(at.Add(-90*time.Second-123*time.Millisecond), 1), want: at.Add(-90*time.Second - 123*time.Millisecond), ok: true},
		{name: "started at the report", session: uuidV7(at, 1), want: at, ok: true},
		{name: "exactly the longest session", session: uuidV7(at.Add(-MaxSessionLength), 1), want: at.Add(-MaxSessionLength), ok: true},
		{name: "uppercase", session: strings.ToUpper(uuidV7(at.Add(-time.Minute), 1)), want: at.Add(-time.Minute), ok: true},
		{name: "longer than a session", session: uuidV7(at.Add(-MaxSessionLength-time.Millisecond), 1)},
		{name: "after the report (client clock ahead)", session: uuidV7(at.Add(time.Second), 1)},
		{name: "clock years off", session: sessionSkewed},
		{name: "version 4", session: v4.String()},
		{name: "not a uuid", session: "s1"},
		{name: "empty", session: ""},
		{name: "hostile", session: `x' OR 1=1 --`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := SessionStartFromID(tt.session, at)
			if ok != tt.ok || !got.Equal(tt.want) {
				t.Errorf("SessionStartFromID(%q) = %v, %v; want %v, %v", tt.session, got, ok, tt.want, tt.ok)
			}
		})
	}
	if _, ok := SessionStartFromID(uuidV7(at, 1), time.Time{}); ok {
		t.Error("SessionStartFromID without a report time: ok")
	}
}
