package trends

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/clickhouse"
	"github.com/arubug/arubug/internal/clickhouse/localch/localchtest"
)

func TestMain(m *testing.M) { localchtest.Main(m) }

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestBucketStartsFollowTheCalendar(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	kolkata := mustLoc(t, "Asia/Kolkata")
	for _, tc := range []struct {
		name     string
		from, to time.Time
		interval string
		loc      *time.Location
		want     []string
	}{
		{"days across the spring DST change", time.Date(2026, 3, 28, 15, 0, 0, 0, berlin), time.Date(2026, 3, 31, 0, 0, 0, 0, berlin), "day", berlin,
			[]string{"2026-03-28T00:00:00+01:00", "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"}},
		{"hours across the DST gap", time.Date(2026, 3, 29, 1, 0, 0, 0, berlin), time.Date(2026, 3, 29, 4, 0, 0, 0, berlin), "hour", berlin,
			[]string{"2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00"}},
		{"half-hour zone hours", time.Date(2026, 3, 27, 0, 10, 0, 0, kolkata), time.Date(2026, 3, 27, 2, 0, 0, 0, kolkata), "hour", kolkata,
			[]string{"2026-03-27T00:00:00+05:30", "2026-03-27T01:00:00+05:30"}},
		{"weeks start on Monday", time.Date(2026, 3, 27, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 7, 0, 0, 0, 0, time.UTC), "week", time.UTC,
			[]string{"2026-03-23T00:00:00Z", "2026-03-30T00:00:00Z", "2026-04-06T00:00:00Z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, b := range BucketStarts(tc.from, tc.to, tc.interval, tc.loc) {
				got = append(got, b.Format(time.RFC3339))
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("got %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		q    Query
		want string
	}{
		{"ok", Query{Metric: Reports, Interval: "day", From: from, To: from.Add(24 * time.Hour)}, ""},
		{"unknown metric", Query{Metric: "clicks", Interval: "day", From: from, To: from.Add(time.Hour)}, "metric must be one of"},
		{"unknown interval", Query{Metric: Reports, Interval: "minute", From: from, To: from.Add(time.Hour)}, "interval must be"},
		{"unknown breakdown", Query{Metric: Reports, Interval: "day", Breakdown: "country", From: from, To: from.Add(time.Hour)}, "breakdown must be"},
		{"kind only for messages", Query{Metric: Reports, Interval: "day", Breakdown: "kind", From: from, To: from.Add(time.Hour)}, "breakdown must be"},
		{"open_solved has its own breakdown", Query{Metric: OpenSolved, Interval: "day", Breakdown: "team", From: from, To: from.Add(time.Hour)}, "leave breakdown empty"},
		{"reversed range", Query{Metric: Reports, Interval: "day", From: from, To: from}, "to must be after from"},
		{"too many hours", Query{Metric: Reports, Interval: "hour", From: from, To: from.Add(32 * 24 * time.Hour)}, "spans at most 31 days"},
		{"too many series", Query{Metric: Reports, Interval: "day", From: from, To: from.Add(time.Hour), Limit: 51}, "limit must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.q.Validate()
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

// seed stores a small, known history: six reports over four days around
// Berlin's DST change (one of them spam, one re-routed), their messages
// (one stored twice) and ticket statuses.
func seed(t *testing.T) (*Querier, map[string]bugreport.UUID) {
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
	berlin := mustLoc(t, "Europe/Berlin")
	at := func(d, h, m int) time.Time { return time.Date(2026, 3, d, h, m, 0, 0, berlin).UTC() }
	ids := map[string]bugreport.UUID{}
	report := func(name string, reported time.Time, team, user, path, company string, spam bool) *bugreport.Report {
		id := bugreport.UUID(uuid.Must(uuid.NewV7()))
		ids[name] = id
		r := &bugreport.Report{ID: id, Project: "acme", ReportedAt: reported, ReceivedAt: reported,
			Reporter: bugreport.Reporter{DistinctID: user}, Path: path, ProductArea: "billing", Severity: "high", Spam: spam,
			Route: bugreport.RouteDecision{Team: team}}
		if company != "" {
			r.Usage = &bugreport.Usage{Person: map[string]string{"company": company},
				RecentExceptions: []bugreport.Exception{{Type: "TypeError", Message: "x is undefined"}}}
		}
		if err := db.SaveReport(ctx, r, "rules"); err != nil {
			t.Fatal(err)
		}
		return r
	}
	r1 := report("r1", at(27, 10, 0), "alpha", "u1", "/a", "Acme", false)
	report("r6", at(27, 11, 0), "alpha", "u1", "/a", "", false)
	report("r2", at(28, 0, 30), "alpha", "u1", "/b", "Globex", false) // 27 March in UTC
	r3 := report("r3", at(29, 12, 0), "beta", "u2", "/a", "Acme", false)
	report("r4", at(29, 13, 0), "beta", "u9", "/spam", "", true)
	r5 := report("r5", at(30, 9, 0), "beta", "u3", "/c", "", false)
	r5.Route.Team = "alpha" // re-routed: the newer version counts
	if err := db.SaveReport(ctx, r5, "manual"); err != nil {
		t.Fatal(err)
	}

	msg := func(r *bugreport.Report, comment int64, kind string, after time.Duration) bugreport.Event {
		m := bugreport.Message{ID: bugreport.UUID(uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprint(r.ID, comment)))), ReportID: r.ID, TicketID: 1, CommentID: comment,
			Kind: kind, Public: true, Body: "hi", At: r.ReportedAt.Add(after)}
		props, _ := json.Marshal(m)
		return bugreport.Event{UUID: m.ID, Project: "acme", Event: bugreport.EventBugReportMessage, DistinctID: "zendesk_ticket_1",
			Timestamp: m.At, CreatedAt: m.At, Properties: string(props)}
	}
	reply := msg(r1, 1, bugreport.MessageAgentReply, 2*time.Hour)
	events := []bugreport.Event{reply, msg(r1, 2, bugreport.MessageRequesterReply, 3*time.Hour), msg(r3, 3, bugreport.MessageAgentReply, 30*time.Minute)}
	if err := db.WriteEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
	if err := db.WriteEvents(ctx, []bugreport.Event{reply}); err != nil { // a webhook delivered twice
		t.Fatal(err)
	}
	for _, s := range []struct {
		r      *bugreport.Report
		status string
		at     time.Time
	}{{r1, "open", r1.ReportedAt.Add(time.Hour)}, {r1, "solved", r1.ReportedAt.Add(5 * time.Hour)}, {r3, "open", r3.ReportedAt.Add(time.Hour)}} {
		if err := db.SaveTicketStatus(ctx, &bugreport.TicketLink{ReportID: s.r.ID, Project: "acme", ReportedAt: s.r.ReportedAt, TicketID: 1}, s.status, s.at); err != nil {
			t.Fatal(err)
		}
	}
	return NewQuerier(db.Conn(), 10*time.Second), ids
}

// render prints a result as "key: v v v (total)" lines, null as "-".
func render(r *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "buckets: %s\n", strings.Join(r.Buckets, " "))
	for _, s := range r.Series {
		var vs []string
		for _, v := range s.Values {
			if v == nil {
				vs = append(vs, "-")
			} else {
				vs = append(vs, fmt.Sprint(*v))
			}
		}
		fmt.Fprintf(&b, "%s: %s (%v)\n", s.Key, strings.Join(vs, " "), s.Total)
	}
	return b.String()
}

func TestTrendsOnSeededData(t *testing.T) {
	qr, _ := seed(t)
	berlin := mustLoc(t, "Europe/Berlin")
	from, to := time.Date(2026, 3, 27, 0, 0, 0, 0, berlin), time.Date(2026, 4, 1, 0, 0, 0, 0, berlin)
	days := "buckets: 2026-03-27T00:00:00+01:00 2026-03-28T00:00:00+01:00 2026-03-29T00:00:00+01:00 2026-03-30T00:00:00+02:00 2026-03-31T00:00:00+02:00\n"
	for _, tc := range []struct {
		name string
		q    Query
		want string
	}{
		{"reports per Berlin day, gap-filled, spam left out", Query{Metric: Reports, Interval: "day", From: from, To: to, Location: berlin},
			days + ": 2 1 1 1 0 (5)\n"},
		{"the same days in UTC move the 00:30 report to the 27th", Query{Metric: Reports, Interval: "day", From: from, To: to, Location: time.UTC},
			"buckets: 2026-03-26T00:00:00Z 2026-03-27T00:00:00Z 2026-03-28T00:00:00Z 2026-03-29T00:00:00Z 2026-03-30T00:00:00Z 2026-03-31T00:00:00Z\n: 0 3 0 1 1 0 (5)\n"},
		{"reports by team, the re-route counted", Query{Metric: Reports, Interval: "day", Breakdown: "team", From: from, To: to, Location: berlin},
			days + "alpha: 2 1 0 1 0 (4)\nbeta: 0 0 1 0 0 (1)\n"},
		{"top series and other", Query{Metric: Reports, Interval: "day", Breakdown: "path", From: from, To: to, Location: berlin, Limit: 1},
			days + "/a: 2 0 1 0 0 (3)\nother: 0 1 0 1 0 (2)\n"},
		{"filter by team", Query{Metric: Reports, Interval: "week", From: from, To: to, Location: berlin, Filters: Filters{Team: "beta"}},
			"buckets: 2026-03-23T00:00:00+01:00 2026-03-30T00:00:00+02:00\n: 1 0 (1)\n"},
		{"reporters", Query{Metric: Reporters, Interval: "day", From: from, To: to, Location: berlin},
			days + ": 1 1 1 1 0 (4)\n"},
		{"messages, the duplicate delivery once", Query{Metric: Messages, Interval: "day", Breakdown: "kind", From: from, To: to, Location: berlin},
			days + "agent_reply: 1 0 1 0 0 (2)\nrequester_reply: 1 0 0 0 0 (1)\n"},
		{"messages by team", Query{Metric: Messages, Interval: "day", Breakdown: "team", From: from, To: to, Location: berlin},
			days + "alpha: 2 0 0 0 0 (2)\nbeta: 0 0 1 0 0 (1)\n"},
		{"median first response in seconds, null without replies", Query{Metric: FirstResponse, Interval: "day", From: from, To: to, Location: berlin},
			days + ": 7200 - 1800 - - (9000)\n"},
		{"open vs solved", Query{Metric: OpenSolved, Interval: "day", From: from, To: to, Location: berlin},
			days + "open: 1 1 1 1 0 (4)\nsolved: 1 0 0 0 0 (1)\n"},
		{"hours in a half-hour zone", Query{Metric: Reports, Interval: "hour", Location: mustLoc(t, "Asia/Kolkata"),
			From: time.Date(2026, 3, 27, 13, 0, 0, 0, mustLoc(t, "Asia/Kolkata")), To: time.Date(2026, 3, 27, 16, 0, 0, 0, mustLoc(t, "Asia/Kolkata"))},
			"buckets: 2026-03-27T13:00:00+05:30 2026-03-27T14:00:00+05:30 2026-03-27T15:00:00+05:30\n: 0 1 1 (2)\n"}, // r1 at 14:30 IST, r6 at 15:30
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := qr.Trend(context.Background(), tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := render(res); got != tc.want {
				t.Errorf("got\n%swant\n%s", got, tc.want)
			}
		})
	}
}

func TestTopLists(t *testing.T) {
	qr, _ := seed(t)
	from, to := time.Date(2026, 3, 26, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	all := []string{"pages", "exceptions", "organisations"}
	for _, tc := range []struct {
		name    string
		lists   []string
		filters Filters
		limit   int
		want    string // list: name=count …; …, in the order asked
	}{
		{"pages", []string{"pages"}, Filters{}, 0, "pages: /a=3 /b=1 /c=1"},
		{"organisations", []string{"organisations"}, Filters{}, 0, "organisations: Acme=2 Globex=1"},
		{"exceptions", []string{"exceptions"}, Filters{}, 0, "exceptions: x is undefined=3"},
		{"all three in one query", all, Filters{}, 0, "pages: /a=3 /b=1 /c=1; exceptions: x is undefined=3; organisations: Acme=2 Globex=1"},
		{"limit per list", all, Filters{}, 1, "pages: /a=3; exceptions: x is undefined=3; organisations: Acme=2"},
		// r5 was re-routed from beta to alpha: only its latest version counts.
		{"team alpha", []string{"pages"}, Filters{Team: "alpha"}, 0, "pages: /a=2 /b=1 /c=1"},
		{"team beta", []string{"pages", "organisations"}, Filters{Team: "beta"}, 0, "pages: /a=1; organisations: Acme=1"},
		{"team and severity", []string{"organisations"}, Filters{Team: "beta", Severity: "high"}, 0, "organisations: Acme=1"},
		{"nothing matches", all, Filters{Team: "beta", ProductArea: "surveys"}, 0, "pages: ; exceptions: ; organisations: "},
		{"other project", []string{"pages"}, Filters{Project: "other"}, 0, "pages: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			top, err := qr.Top(context.Background(), TopQuery{Lists: tc.lists, From: from, To: to, Filters: tc.filters, Limit: tc.limit})
			if err != nil {
				t.Fatal(err)
			}
			var lists []string
			for _, l := range tc.lists {
				var got []string
				for _, c := range top[l] {
					got = append(got, fmt.Sprintf("%s=%d", c.Name, c.Count))
				}
				lists = append(lists, l+": "+strings.Join(got, " "))
			}
			if got := strings.Join(lists, "; "); got != tc.want || len(top) != len(tc.lists) {
				t.Errorf("got %q (%d lists), want %q", got, len(top), tc.want)
			}
		})
	}
	for _, bad := range [][]string{{"users"}, {}, {"pages", "pages"}, {"pages", "'); DROP TABLE bug_reports; --"}} {
		if _, err := qr.Top(context.Background(), TopQuery{Lists: bad, From: from, To: to}); bugreport.ErrorCode(err) != bugreport.EINVALID {
			t.Errorf("lists %q: %v, want EINVALID", bad, err)
		}
	}
}
