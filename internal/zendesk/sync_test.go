package zendesk

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/clickhouse"
	"github.com/arubug/arubug/internal/clickhouse/localch/localchtest"
	"github.com/arubug/arubug/internal/outbox"
	"github.com/arubug/arubug/internal/zendesk/zendesktest"
)

func TestMain(m *testing.M) { localchtest.Main(m) }

// pngBytes is a 1×1 PNG.
var pngBytes, _ = base64.StdEncoding.DecodeString("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=")

type fixture struct {
	t     *testing.T
	db    *clickhouse.DB
	sim   *zendesktest.Server
	url   string // where the client talks to the simulator (maybe through a fault injector)
	group int64
	teams []bugreport.Team
}

func newFixture(t *testing.T, simOpts zendesktest.Options, wrap func(http.Handler) http.Handler) *fixture {
	t.Helper()
	db, err := clickhouse.Open(context.Background(), clickhouse.Options{DSN: localchtest.DSN(t), CreateDatabase: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	sim := zendesktest.Start(t, simOpts)
	f := &fixture{t: t, db: db, sim: sim, url: sim.URL()}
	if wrap != nil {
		ts := httptest.NewServer(wrap(sim.Handler()))
		t.Cleanup(ts.Close)
		f.url = ts.URL
	}
	f.group = sim.AddGroup("Session Replay")
	f.teams = []bugreport.Team{{Name: "replay", ZendeskGroup: "Session Replay"}, {Name: "billing", ZendeskGroup: "No Such Group"}}
	return f
}

type syncerOpts struct {
	similar string
	outbox  string
	sink    bugreport.EventSink
}

// start runs a Syncer until the returned stop is called (or the test ends).
func (f *fixture) start(o syncerOpts) (*Syncer, func()) {
	f.t.Helper()
	c, err := NewClient(Options{BaseURL: f.url, Email: zendesktest.DefaultEmail, APIToken: zendesktest.DefaultAPIToken, RequestsPerMinute: 100_000,
		// Without keep-alive, Go's transport cannot silently resend a POST
		// carrying an Idempotency-Key on a dropped connection, so the
		// syncer's own recovery is what the faults exercise.
		Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second})
	if err != nil {
		f.t.Fatal(err)
	}
	if o.outbox == "" {
		o.outbox = filepath.Join(f.t.TempDir(), "outbox.db")
	}
	ob, err := outbox.Open(o.outbox, outbox.Options{})
	if err != nil {
		f.t.Fatal(err)
	}
	s, err := NewSyncer(SyncConfig{
		Client: c, Store: f.db, Outbox: ob, Sink: o.sink, Teams: func() []bugreport.Team { return f.teams },
		CustomFields: map[string]int64{"report_id": 9001, "replay_url": 9002},
		Similar:      o.similar, Grace: 3 * time.Second, ReconcileInterval: 500 * time.Millisecond,
		CommentPollInterval: -1, MaxBackoff: 300 * time.Millisecond,
		ReportURL: func(id bugreport.UUID) string { return "http://arubug.test/reports/" + id.String() },
	})
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			ob.Close()
		})
	}
	f.t.Cleanup(stop)
	return s, stop
}

func (f *fixture) report(team, fingerprint string, anonymous bool) *bugreport.Report {
	f.t.Helper()
	id := bugreport.UUID(uuid.Must(uuid.NewV7()))
	now := time.Now().UTC().Truncate(time.Second)
	r := &bugreport.Report{
		ID: id, Project: "acme", ReportedAt: now, ReceivedAt: now,
		Reporter:    bugreport.Reporter{DistinctID: "user-" + id.String()[:8], Email: "ada@example.com", Name: "Ada Lovelace"},
		Title:       "Replay player freezes <script>alert(1)</script>",
		Description: "Replay player freezes <script>alert(1)</script>\nafter 3 seconds on every recording.",
		ProductArea: "session_replay", Severity: "high",
		URL: "https://app.example.com/replay/42", Path: "/replay/42", Host: "app.example.com",
		Browser: "Chrome", BrowserVersion: "131.0", OS: "macOS", OSVersion: "14.5", Device: "desktop",
		SessionID: "0193a5b2-0000-7000-8000-000000000001", ReplayURL: "https://us.posthog.com/project/phc_x/replay/0193a5b2-0000-7000-8000-000000000001?t=42",
		Console: []bugreport.ConsoleEntry{{Level: "error", Message: "TypeError: player is undefined", At: now}},
		Network: []bugreport.NetworkEntry{{Method: "GET", URL: "https://app.example.com/api/snapshots", Status: 502, DurationMS: 1234, At: now}},
		Usage: &bugreport.Usage{Events30d: 1234, ActiveDays30d: 12, Sessions30d: 30, FirstSeen: now.Add(-30 * 24 * time.Hour), LastSeen: now,
			Person: map[string]string{"plan": "enterprise"}, TopEvents: []bugreport.Count{{Name: "$pageview", Count: 900}}},
		Route: bugreport.RouteDecision{Team: team, Route: "replay-paths", Priority: "high", Tags: []string{"VIP customer"},
			Explanation: []bugreport.RouteStep{{Route: "billing", Reason: "product_area = billing: got session_replay"}, {Route: "replay-paths", Matched: true, Reason: "path =~ /replay/**"}}},
		Fingerprint: fingerprint, SimilarCount: 1,
		ScreenshotID: id.String(),
	}
	if anonymous {
		r.Reporter.Email, r.Reporter.Name = "", ""
	}
	shot := fmt.Sprintf(`{"$screenshot":"data:image/png;base64,%s"}`, base64.StdEncoding.EncodeToString(pngBytes))
	if err := f.db.WriteEvents(context.Background(), []bugreport.Event{{UUID: id, Project: "acme", Event: bugreport.EventBugReport, DistinctID: r.Reporter.DistinctID,
		Timestamp: now, CreatedAt: now, Properties: shot}}); err != nil {
		f.t.Fatal(err)
	}
	if err := f.db.SaveReport(context.Background(), r, "rules"); err != nil {
		f.t.Fatal(err)
	}
	return r
}

// waitState polls ClickHouse until every report's link is in state.
func (f *fixture) waitState(timeout time.Duration, state string, ids ...bugreport.UUID) {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pending := 0
		for _, id := range ids {
			l, err := f.db.TicketLink(context.Background(), id)
			if err != nil || l.State != state {
				pending++
			}
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%d of %d reports did not reach state %q within %s", pending, len(ids), state, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ticketsOf returns the simulator's tickets with the report's external_id.
func (f *fixture) ticketsOf(id bugreport.UUID) []zendesktest.Ticket {
	var out []zendesktest.Ticket
	for _, t := range f.sim.Tickets() {
		if t.ExternalID != nil && *t.ExternalID == id.String() {
			out = append(out, t)
		}
	}
	return out
}

// assertExactlyOnce checks one ticket per report with exactly one
// description comment and one internal note.
func (f *fixture) assertExactlyOnce(reports ...*bugreport.Report) {
	f.t.Helper()
	for _, r := range reports {
		ts := f.ticketsOf(r.ID)
		if len(ts) != 1 {
			f.t.Errorf("report %s has %d tickets, want 1", r.ID, len(ts))
			continue
		}
		notes, descs := 0, 0
		for _, c := range f.sim.Comments(ts[0].ID) {
			switch {
			case !c.Public && strings.HasPrefix(c.Body, NoteMarker(r.ID)):
				notes++
			case c.Public && c.Body == r.Description:
				descs++
			}
		}
		if notes != 1 || descs != 1 {
			f.t.Errorf("ticket %d of report %s has %d notes and %d description comments, want 1 and 1", ts[0].ID, r.ID, notes, descs)
		}
	}
}

func TestTicketContents(t *testing.T) {
	f := newFixture(t, zendesktest.Options{}, nil)
	s, _ := f.start(syncerOpts{})
	r := f.report("replay", "fp-"+t.Name(), false)
	if err := s.Enqueue(r); err != nil {
		t.Fatal(err)
	}
	f.waitState(20*time.Second, bugreport.SyncSynced, r.ID)
	f.assertExactlyOnce(r)

	tk := f.ticketsOf(r.ID)[0]
	user, _ := f.sim.User(tk.RequesterID)
	if user.Email != "ada@example.com" || user.Name != "Ada Lovelace" {
		t.Errorf("requester = %+v, want Ada by email", user)
	}
	wantTags := []string{"arubug", "area_session_replay", "severity_high", "team_replay", "vip_customer"}
	slices.Sort(wantTags)
	if tk.Subject != r.Title || tk.GroupID == nil || *tk.GroupID != f.group || tk.Priority == nil || *tk.Priority != "high" ||
		!slices.Equal(tk.Tags, wantTags) || tk.Type != nil {
		t.Errorf("ticket = subject %q group %v priority %v tags %v type %v", tk.Subject, tk.GroupID, tk.Priority, tk.Tags, tk.Type)
	}
	fields := map[int64]any{}
	for _, cf := range tk.CustomFields {
		fields[cf.ID] = cf.Value
	}
	if fields[9001] != r.ID.String() || fields[9002] != r.ReplayURL {
		t.Errorf("custom fields = %v", fields)
	}
	comments := f.sim.Comments(tk.ID)
	if len(comments) != 2 {
		t.Fatalf("ticket has %d comments, want the description and the note", len(comments))
	}
	desc, note := comments[0], comments[1]
	if !desc.Public || desc.AuthorID != tk.RequesterID || desc.Body != r.Description {
		t.Errorf("first comment = public %v author %d body %q; want the reporter's public description", desc.Public, desc.AuthorID, desc.Body)
	}
	if note.Public {
		t.Error("the note is public")
	}
	for _, want := range []string{
		NoteMarker(r.ID),
		"Report: http://arubug.test/reports/" + r.ID.String(),
		"Reporter: Ada Lovelace <ada@example.com>",
		"Session replay: " + r.ReplayURL,
		"Browser: Chrome 131.0 · OS: macOS 14.5 · Device: desktop",
		"1234 events on 12 active days in 30 sessions",
		"Person: plan=enterprise",
		"error TypeError: player is undefined",
		"GET https://app.example.com/api/snapshots → 502 in 1234 ms",
		"Team replay, priority high, route replay-paths (rules)",
		"no billing: product_area = billing: got session_replay",
		"MATCHED replay-paths: path =~ /replay/**",
		"none in the last 7 days (fingerprint fp-TestTicketContents)",
	} {
		if !strings.Contains(note.Body, want) {
			t.Errorf("note lacks %q:\n%s", want, note.Body)
		}
	}
	if len(note.Attachments) != 1 || note.Attachments[0].FileName != "screenshot-"+r.ID.String()+".png" || note.Attachments[0].Size != int64(len(pngBytes)) {
		t.Errorf("note attachments = %+v, want the screenshot", note.Attachments)
	}
	assertDocumentedShapes(t, f.sim.Requests())
}

// assertDocumentedShapes checks every request Arubug sent against the JSON
// shape Zendesk documents for its endpoint.
func assertDocumentedShapes(t *testing.T, reqs []zendesktest.RecordedRequest) {
	t.Helper()
	for _, rq := range reqs {
		path := rq.Path
		switch {
		case rq.Method == "GET" && (path == "/api/v2/tickets.json" || path == "/api/v2/groups.json" ||
			strings.HasSuffix(path, "/comments.json") || strings.HasPrefix(path, "/api/v2/tickets/")):
			if len(rq.Body) != 0 {
				t.Errorf("GET %s has a body", path)
			}
		case rq.Method == "POST" && path == "/api/v2/users/create_or_update.json":
			var b struct {
				User *struct {
					Email string `json:"email"`
					Name  string `json:"name"`
					Role  string `json:"role"`
				} `json:"user"`
			}
			if err := json.Unmarshal(rq.Body, &b); err != nil || b.User == nil || !strings.Contains(b.User.Email, "@") || b.User.Name == "" || b.User.Role != "end-user" {
				t.Errorf("POST %s body %s: want {user:{email,name,role:end-user}} (%v)", path, rq.Body, err)
			}
		case rq.Method == "POST" && path == "/api/v2/tickets.json":
			var b struct {
				Ticket *struct {
					Subject     string          `json:"subject"`
					ExternalID  string          `json:"external_id"`
					RequesterID int64           `json:"requester_id"`
					GroupID     json.Number     `json:"group_id"`
					Comment     json.RawMessage `json:"comment"`
				} `json:"ticket"`
			}
			if err := json.Unmarshal(rq.Body, &b); err != nil || b.Ticket == nil || b.Ticket.Subject == "" || b.Ticket.ExternalID == "" || b.Ticket.RequesterID == 0 {
				t.Errorf("POST %s body %s: want {ticket:{subject,external_id,requester_id,comment}} (%v)", path, rq.Body, err)
				continue
			}
			if _, err := b.Ticket.GroupID.Int64(); b.Ticket.GroupID != "" && err != nil {
				t.Errorf("group_id %q is not a number", b.Ticket.GroupID)
			}
			checkComment(t, path, b.Ticket.Comment)
			if rq.Header.Get("Idempotency-Key") != "arubug-report-"+b.Ticket.ExternalID {
				t.Errorf("ticket create without the report's Idempotency-Key: %q", rq.Header.Get("Idempotency-Key"))
			}
		case rq.Method == "PUT" && strings.HasPrefix(path, "/api/v2/tickets/"):
			var b struct {
				Ticket map[string]json.RawMessage `json:"ticket"`
			}
			if err := json.Unmarshal(rq.Body, &b); err != nil || b.Ticket == nil {
				t.Errorf("PUT %s body %s: want {ticket:{…}}", path, rq.Body)
				continue
			}
			if c, ok := b.Ticket["comment"]; ok {
				checkComment(t, path, c)
			}
		case rq.Method == "POST" && path == "/api/v2/uploads.json":
			if !strings.HasPrefix(rq.Header.Get("Content-Type"), "image/") || rq.Query.Get("filename") == "" {
				t.Errorf("upload without an image content type or filename: %v %v", rq.Header, rq.Query)
			}
		default:
			t.Errorf("unexpected request %s %s", rq.Method, path)
		}
	}
}

func checkComment(t *testing.T, path string, raw json.RawMessage) {
	t.Helper()
	var c struct {
		Body    string   `json:"body"`
		Public  *bool    `json:"public"`
		Uploads []string `json:"uploads"`
	}
	if err := json.Unmarshal(raw, &c); err != nil || strings.TrimSpace(c.Body) == "" || c.Public == nil {
		t.Errorf("%s: comment %s: want {body, public}", path, raw)
	}
}

func TestAnonymousReporterGetsFallbackRequester(t *testing.T) {
	f := newFixture(t, zendesktest.Options{}, nil)
	s, _ := f.start(syncerOpts{})
	r := f.report("replay", "fp-"+t.Name(), true)
	if err := s.Enqueue(r); err != nil {
		t.Fatal(err)
	}
	f.waitState(20*time.Second, bugreport.SyncSynced, r.ID)
	tk := f.ticketsOf(r.ID)[0]
	user, _ := f.sim.User(tk.RequesterID)
	if user.Email != "anonymous-reporter@arubug.invalid" || !slices.Contains(tk.Tags, "arubug_anonymous") {
		t.Errorf("requester %q tags %v; want the fallback requester and the arubug_anonymous tag", user.Email, tk.Tags)
	}
	if note := f.sim.Comments(tk.ID)[1]; !strings.Contains(note.Body, "Reporter: anonymous") {
		t.Errorf("the note does not say the reporter is anonymous:\n%s", note.Body)
	}
	assertDocumentedShapes(t, f.sim.Requests())
}

func TestMissingGroupIsPermanentAndRetriedOnRequest(t *testing.T) {
	f := newFixture(t, zendesktest.Options{}, nil)
	s, _ := f.start(syncerOpts{})
	r := f.report("billing", "fp-"+t.Name(), false)
	if err := s.Enqueue(r); err != nil {
		t.Fatal(err)
	}
	f.waitState(20*time.Second, bugreport.SyncFailed, r.ID)
	l, _ := f.db.TicketLink(context.Background(), r.ID)
	if !strings.Contains(l.Error, `Zendesk group "No Such Group" of team "billing" does not exist`) {
		t.Errorf("failure reason = %q", l.Error)
	}
	time.Sleep(time.Second) // the reconciler must not pick a failed report up again
	if n := len(f.ticketsOf(r.ID)); n != 0 {
		t.Fatalf("%d tickets for a report whose group is missing", n)
	}
	f.sim.AddGroup("No Such Group")
	if err := s.Retry(r.ID); err != nil {
		t.Fatal(err)
	}
	f.waitState(20*time.Second, bugreport.SyncSynced, r.ID)
	f.assertExactlyOnce(r)
}

func TestSimilarReportBecomesIncidentOfProblem(t *testing.T) {
	f := newFixture(t, zendesktest.Options{}, nil)
	s, _ := f.start(syncerOpts{similar: SimilarIncident})
	first := f.report("replay", "fp-"+t.Name(), false)
	if err := s.Enqueue(first); err != nil {
		t.Fatal(err)
	}
	f.waitState(20*time.Second, bugreport.SyncSynced, first.ID)
	second := f.report("replay", "fp-"+t.Name(), false)
	if err := s.Enqueue(second); err != nil {
		t.Fatal(err)
	}
	f.waitState(20*time.Second, bugreport.SyncSynced, second.ID)
	f.assertExactlyOnce(first, second)
	p, i := f.ticketsOf(first.ID)[0], f.ticketsOf(second.ID)[0]
	if p.Type == nil || *p.Type != "problem" || i.Type == nil || *i.Type != "incident" || i.ProblemID == nil || *i.ProblemID != p.ID {
		t.Errorf("first type %v, second type %v problem %v; want problem #%d and its incident", p.Type, i.Type, i.ProblemID, p.ID)
	}
	assertDocumentedShapes(t, f.sim.Requests())
}

func TestSimilarReportAsCommentOnExistingTicket(t *testing.T) {
	f := newFixture(t, zendesktest.Options{}, nil)
	s, _ := f.start(syncerOpts{similar: SimilarComment})
	first := f.report("replay", "fp-"+t.Name(), false)
	if err := s.Enqueue(first); err != nil {
		t.Fatal(err)
	}
	f.waitState(20*time.Second, bugreport.SyncSynced, first.ID)
	second := f.report("replay", "fp-"+t.Name(), false)
	if err := s.Enqueue(second); err != nil {
		t.Fatal(err)
	}
	f.waitState(20*time.Second, bugreport.SyncSynced, second.ID)
	if n := len(f.ticketsOf(second.ID)); n != 0 {
		t.Fatalf("the similar report got %d tickets of its own, want a comment", n)
	}
	tk := f.ticketsOf(first.ID)[0]
	n := 0
	for _, c := range f.sim.Comments(tk.ID) {
		if strings.HasPrefix(c.Body, NoteMarker(second.ID)) && !c.Public {
			n++
		}
	}
	l, _ := f.db.TicketLink(context.Background(), second.ID)
	if n != 1 || l.TicketID != tk.ID {
		t.Errorf("%d notes for the similar report on ticket %d, link ticket %d; want 1 on the first report's ticket", n, tk.ID, l.TicketID)
	}
}

// faultInjector fails a share of API requests: half of the failures before
// the simulator sees them, half after it has acted (the answer is lost).
func faultInjector(share float64, status int) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasPrefix(r.URL.Path, "/api/v2/") || rand.Float64() >= share {
				next.ServeHTTP(w, r)
				return
			}
			if rand.IntN(2) == 0 {
				next.ServeHTTP(httptest.NewRecorder(), r) // committed, answer lost
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprint(w, `{"error":"InternalError","description":"injected"}`)
		})
	}
}

// TestExactlyOnceUnderFaults runs several reports through each kind of
// fault and checks one ticket and one note per report.
func TestExactlyOnceUnderFaults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		simOpts zendesktest.Options
		wrap    func(http.Handler) http.Handler
		script  func(*zendesktest.Server)
	}{
		{name: "commit then drop on create and note", script: func(s *zendesktest.Server) {
			s.CommitThenDrop("POST", "/api/v2/tickets", 3)
			s.CommitThenDrop("PUT", "/api/v2/tickets/", 3)
		}},
		{name: "30 percent 5xx, half of them after the change", wrap: faultInjector(0.3, http.StatusInternalServerError)},
		{name: "429 storm", script: func(s *zendesktest.Server) {
			s.FailNext("", "/api/v2/", 15, http.StatusTooManyRequests)
		}},
		{name: "503 with Retry-After", script: func(s *zendesktest.Server) {
			s.FailNext("", "/api/v2/", 8, http.StatusServiceUnavailable)
		}},
		{name: "slow answers past the client timeout", script: func(s *zendesktest.Server) {
			s.Slow("POST", "/api/v2/tickets", 2, 6*time.Second)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.simOpts, tc.wrap)
			if tc.script != nil {
				tc.script(f.sim)
			}
			s, _ := f.start(syncerOpts{})
			var reports []*bugreport.Report
			var ids []bugreport.UUID
			for i := range 6 {
				r := f.report("replay", fmt.Sprintf("fp-%s-%d", t.Name(), i), i%3 == 0)
				reports, ids = append(reports, r), append(ids, r.ID)
				if err := s.Enqueue(r); err != nil {
					t.Fatal(err)
				}
			}
			f.waitState(90*time.Second, bugreport.SyncSynced, ids...)
			f.assertExactlyOnce(reports...)
			assertDocumentedShapes(t, f.sim.Requests())
		})
	}
}

// TestCrashMidSyncAndSecondInstance stops a syncer abruptly after its
// create reached Zendesk but before anything was recorded, then lets a
// second syncer with its own (empty) outbox, as another instance would,
// and the first one's restart race for the same reports.
func TestCrashMidSyncAndSecondInstance(t *testing.T) {
	f := newFixture(t, zendesktest.Options{}, nil)
	// Every create commits and loses its answer: the first syncer never
	// learns its tickets exist.
	f.sim.CommitThenDrop("POST", "/api/v2/tickets", 4)
	obPath := filepath.Join(t.TempDir(), "outbox.db")
	s1, stop1 := f.start(syncerOpts{outbox: obPath})
	var reports []*bugreport.Report
	var ids []bugreport.UUID
	for i := range 4 {
		r := f.report("replay", fmt.Sprintf("fp-%s-%d", t.Name(), i), false)
		reports, ids = append(reports, r), append(ids, r.ID)
		if err := s1.Enqueue(r); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(f.sim.Tickets()) < 4 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stop1() // "crash": the outbox keeps the half-done work

	// Another instance finds the reports through the reconciler after the
	// grace period; the first instance restarts with its outbox.
	_, _ = f.start(syncerOpts{})
	_, _ = f.start(syncerOpts{outbox: obPath})
	f.waitState(60*time.Second, bugreport.SyncSynced, ids...)
	f.assertExactlyOnce(reports...)
}

func TestMessagesBecomeComments(t *testing.T) {
	f := newFixture(t, zendesktest.Options{}, nil)
	s, _ := f.start(syncerOpts{})
	r := f.report("replay", "fp-"+t.Name(), false)
	// Queued before the ticket exists: the message waits for it.
	f.sim.CommitThenDrop("PUT", "/api/v2/tickets/", 2)
	if _, err := s.SendMessage(r.ID, "Thanks, we are on it.", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SendMessage(r.ID, "Looks like the snapshot service.", false); err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(r); err != nil {
		t.Fatal(err)
	}
	f.waitState(20*time.Second, bugreport.SyncSynced, r.ID)
	deadline := time.Now().Add(30 * time.Second)
	for {
		tk := f.ticketsOf(r.ID)[0]
		var reply, note int
		for _, c := range f.sim.Comments(tk.ID) {
			switch {
			case c.Body == "Thanks, we are on it." && c.Public:
				reply++
			case c.Body == "Looks like the snapshot service." && !c.Public:
				note++
			}
		}
		if reply == 1 && note == 1 {
			assertDocumentedShapes(t, f.sim.Requests())
			return
		}
		if reply > 1 || note > 1 || time.Now().After(deadline) {
			t.Fatalf("reply posted %d times, note %d times; want once each", reply, note)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// memorySink keeps appended events; the syncer's sink is ours, not Zendesk.
type memorySink struct {
	mu     sync.Mutex
	events []bugreport.Event
}

func (m *memorySink) Append(_ context.Context, ev []bugreport.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, ev...)
	return nil
}

// TestPullThreadFillsGaps is the comment reconciler: it reads a ticket's
// comments and status from Zendesk and stores them as thread events whose
// ids depend only on Zendesk's, so pulling twice stores nothing new.
func TestPullThreadFillsGaps(t *testing.T) {
	f := newFixture(t, zendesktest.Options{}, nil)
	sink := &memorySink{}
	s, _ := f.start(syncerOpts{sink: sink})
	r := f.report("replay", "fp-"+t.Name(), false)
	if err := s.Enqueue(r); err != nil {
		t.Fatal(err)
	}
	f.waitState(20*time.Second, bugreport.SyncSynced, r.ID)
	tk := f.ticketsOf(r.ID)[0]
	reply, err := f.sim.AgentReply(tk.ID, "We found it.", true)
	if err != nil {
		t.Fatal(err)
	}
	back, err := f.sim.RequesterEmailReply(tk.ID, "Thanks!")
	if err != nil {
		t.Fatal(err)
	}
	link, err := f.db.TicketLink(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.PullThread(context.Background(), link); err != nil {
			t.Fatal(err)
		}
	}
	kinds := map[bugreport.UUID]string{}
	for _, e := range sink.events {
		var m bugreport.Message
		if err := json.Unmarshal([]byte(e.Properties), &m); err != nil || m.ReportID != r.ID || m.TicketID != tk.ID || e.Project != r.Project {
			t.Fatalf("event %s: %+v (%v)", e.Event, m, err)
		}
		kinds[e.UUID] = m.Kind
	}
	want := map[bugreport.UUID]string{
		CommentEventID(tk.ID, reply.ID): bugreport.MessageAgentReply,
		CommentEventID(tk.ID, back.ID):  bugreport.MessageRequesterReply,
	}
	for id, kind := range want {
		if kinds[id] != kind {
			t.Errorf("comment event %s has kind %q, want %q (all: %v)", id, kinds[id], kind, kinds)
		}
	}
	// description, note, two replies and the status change: the second
	// pull repeats the same ids.
	if len(kinds) != 5 || len(sink.events) != 10 {
		t.Errorf("%d distinct events in %d appends, want 5 distinct, each pulled twice", len(kinds), len(sink.events))
	}
	assertDocumentedShapes(t, f.sim.Requests())
}
