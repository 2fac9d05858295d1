package web

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/arubug/arubug/internal/api"
	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/routing"
	"github.com/arubug/arubug/internal/ruleset"
	"github.com/arubug/arubug/internal/trends"
)

const adminToken = "ui-admin-token-0123456789"

var reportID = bugreport.UUID{0x01, 0x90, 0xa6, 0xb2, 0x7c, 0x3e, 0x7d, 0x4f, 0x9a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f, 0x6a, 0x7b}

// hostile is a string that would run script if a page did not escape it.
const hostile = `<script>alert("xss")</script><img src=x onerror=alert(1)>"'&`

type fakeStore struct {
	mu      sync.Mutex
	reports map[bugreport.UUID]*bugreport.Report
	saved   []string // team of each saved version
}

func (s *fakeStore) Report(_ context.Context, id bugreport.UUID) (*bugreport.Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.reports[id]
	if !ok {
		return nil, bugreport.Errorf(bugreport.ENOTFOUND, "report_not_found", "no report %s", id)
	}
	c := *r
	return &c, nil
}

func (s *fakeStore) Reports(_ context.Context, f bugreport.ReportFilter) (bugreport.ReportPage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var page bugreport.ReportPage
	for _, r := range s.reports {
		if r.Route.Team == f.Team && (f.Spam == nil || *f.Spam == r.Spam) {
			c := *r
			page.Reports = append(page.Reports, &c)
		}
	}
	return page, nil
}

func (s *fakeStore) TeamCounts(context.Context, time.Time) (map[string]bugreport.TeamStats, error) {
	return map[string]bugreport.TeamStats{"billing": {Reports: 3, Last7d: 1}}, nil
}

func (s *fakeStore) SaveReport(_ context.Context, r *bugreport.Report, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *r
	s.reports[r.ID] = &c
	s.saved = append(s.saved, r.Route.Team)
	return nil
}

func (s *fakeStore) Screenshot(context.Context, bugreport.UUID) (string, []byte, error) {
	return "image/png", []byte("\x89PNG"), nil
}

type fakeSink struct {
	mu     sync.Mutex
	events []bugreport.Event
}

func (s *fakeSink) Append(_ context.Context, ev []bugreport.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, ev...)
	return nil
}

type sent struct {
	id     bugreport.UUID
	body   string
	public bool
}

type fakeTickets struct {
	mu      sync.Mutex
	sent    []sent
	retries int
}

func (t *fakeTickets) TicketLink(_ context.Context, id bugreport.UUID) (*bugreport.TicketLink, error) {
	return &bugreport.TicketLink{ReportID: id, TicketID: 42, State: bugreport.SyncSynced, Status: "open"}, nil
}

func (t *fakeTickets) TicketLinks(ctx context.Context, ids []bugreport.UUID) (map[bugreport.UUID]*bugreport.TicketLink, error) {
	out := map[bugreport.UUID]*bugreport.TicketLink{}
	for _, id := range ids {
		out[id], _ = t.TicketLink(ctx, id)
	}
	return out, nil
}

func (t *fakeTickets) Thread(_ context.Context, r *bugreport.Report) ([]bugreport.Message, error) {
	return []bugreport.Message{
		{ReportID: r.ID, TicketID: 42, Kind: bugreport.MessageReport, Body: r.Description, AuthorName: hostile, At: r.ReportedAt},
		{ReportID: r.ID, TicketID: 42, Kind: bugreport.MessageRequesterReply, Body: "reply " + hostile, At: r.ReportedAt.Add(time.Hour)},
	}, nil
}

func (t *fakeTickets) SendMessage(report bugreport.UUID, body string, public bool) (bugreport.UUID, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sent = append(t.sent, sent{report, body, public})
	return bugreport.UUID{9}, nil
}

func (t *fakeTickets) Retry(bugreport.UUID) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.retries++
	return nil
}

func (t *fakeTickets) TicketURL(id int64) string { return "https://acme.zendesk.com/agent/tickets/42" }

type fakeTrends struct{}

func (fakeTrends) Trend(_ context.Context, q trends.Query) (*trends.Result, error) {
	v := 2.0
	return &trends.Result{Metric: q.Metric, Interval: q.Interval, TZ: q.Location.String(), Buckets: []string{q.From.Format(time.RFC3339)},
		Series: []*trends.Series{{Key: hostile, Values: []*float64{&v}, Total: 2}}}, nil
}

func (fakeTrends) Top(_ context.Context, q trends.TopQuery) (map[string][]bugreport.Count, error) {
	out := map[string][]bugreport.Count{}
	for _, l := range q.Lists {
		out[l] = []bugreport.Count{{Name: "/pay " + hostile, Count: 3}}
	}
	return out, nil
}

const rulesYAML = `
teams:
  - {name: billing, zendesk_group: Billing}
  - {name: platform, zendesk_group: Platform}
product_areas:
  - {id: billing, label: "Billing", team: billing}
fallback_team: platform
routes:
  - {name: pay, match: ['path ~= /pay/**'], team: billing}
`

type env struct {
	srv     *httptest.Server
	h       *Handler
	store   *fakeStore
	sink    *fakeSink
	tickets *fakeTickets
	now     *time.Time
	mu      *sync.Mutex
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	rules, err := routing.Parse("rules.yaml", []byte(rulesYAML), routing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	store := &fakeStore{reports: map[bugreport.UUID]*bugreport.Report{reportID: {
		ID: reportID, Project: "shop", ReportedAt: now.Add(-2 * time.Hour), ReceivedAt: now.Add(-2 * time.Hour),
		Title: hostile, Description: "It broke:\n" + hostile, Reporter: bugreport.Reporter{Email: "a@example.com", Name: hostile, DistinctID: "u1"},
		URL: "javascript:alert(1)", Path: "/pay/" + hostile, Severity: "high", ProductArea: "billing",
		Console:   []bugreport.ConsoleEntry{{Level: "error", Message: hostile, At: now}},
		Network:   []bugreport.NetworkEntry{{Method: "POST", URL: "/api/" + hostile, Status: 500, At: now}},
		ReplayURL: "javascript:alert(2)", Usage: &bugreport.Usage{Events30d: 5, Person: map[string]string{"company": hostile}},
		Route: bugreport.RouteDecision{Team: "billing", Route: "pay", Priority: "high", Explanation: []bugreport.RouteStep{{Route: "pay", Matched: true, Reason: hostile}}},
	}}}
	sink := &fakeSink{}
	tickets := &fakeTickets{}
	teams := func() []bugreport.Team { return rules.Teams() }
	a, err := api.New(api.Config{Store: store, Sink: sink, AdminToken: adminToken, Teams: teams,
		ProductAreas: func() []bugreport.ProductArea { return nil }, Tickets: tickets, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Store: store, Tickets: tickets, Trends: fakeTrends{}, Actions: a, AdminToken: adminToken, Teams: teams,
		Rules: func() *routing.Rules { return rules }, RulesStatus: func() ruleset.Status { return ruleset.Status{At: now, OK: false, Error: "rules.yaml:3: " + hostile} },
		Now: clock}
	if mod != nil {
		mod(&cfg)
	}
	h := New(cfg)
	r := chi.NewRouter()
	h.Mount(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &env{srv: srv, h: h, store: store, sink: sink, tickets: tickets, now: &now, mu: &mu}
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	*e.now = e.now.Add(d)
}

// client returns a browser-like client: a cookie jar, no redirects
// followed, and same-origin headers on POSTs.
func (e *env) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (e *env) post(t *testing.T, c *http.Client, path string, form url.Values, headers map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.srv.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

func (e *env) get(t *testing.T, c *http.Client, path string) (*http.Response, string) {
	t.Helper()
	res, err := c.Get(e.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// signIn signs c in and returns the session's CSRF token.
func (e *env) signIn(t *testing.T, c *http.Client) string {
	t.Helper()
	res := e.post(t, c, "/ui/signin", url.Values{"token": {adminToken}, "next": {"/ui/"}}, nil)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: status %d", res.StatusCode)
	}
	_, body := e.get(t, c, "/ui/rules")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no CSRF token on the page")
	}
	return m[1]
}

func TestSignedOutRequestsGoToSignInOrAreRefused(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name, method, path string
		cookie             string
		want               int
		location           string
	}{
		{"overview", "GET", "/ui/", "", http.StatusSeeOther, "/ui/signin?next=%2Fui%2F"},
		{"report", "GET", "/ui/reports/" + reportID.String(), "", http.StatusSeeOther, "/ui/signin?next=%2Fui%2Freports%2F" + reportID.String()},
		{"unknown session", "GET", "/ui/rules", "made-up-session-id", http.StatusSeeOther, "/ui/signin?next=%2Fui%2Frules"},
		{"chart data", "GET", "/ui/data/trend?metric=reports", "", http.StatusUnauthorized, ""},
		{"screenshot", "GET", "/ui/reports/" + reportID.String() + "/screenshot", "", http.StatusSeeOther, ""},
		{"reply", "POST", "/ui/reports/" + reportID.String() + "/reply", "", http.StatusForbidden, ""},
		{"re-route", "POST", "/ui/reports/" + reportID.String() + "/route", "", http.StatusForbidden, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.client()
			if tt.cookie != "" {
				u, _ := url.Parse(e.srv.URL + "/ui/")
				c.Jar.SetCookies(u, []*http.Cookie{{Name: CookieName, Value: tt.cookie, Path: "/ui"}})
			}
			var res *http.Response
			if tt.method == "POST" {
				res = e.post(t, c, tt.path, url.Values{"csrf": {"x"}, "body": {"hi"}, "team": {"platform"}}, nil)
			} else {
				res, _ = e.get(t, c, tt.path)
			}
			if res.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.want)
			}
			if tt.location != "" && res.Header.Get("Location") != tt.location {
				t.Errorf("Location %q, want %q", res.Header.Get("Location"), tt.location)
			}
		})
	}
	if len(e.tickets.sent) != 0 || len(e.sink.events) != 0 || len(e.store.saved) != 0 {
		t.Errorf("a signed-out request changed something: sent %v, events %d, saved %v", e.tickets.sent, len(e.sink.events), e.store.saved)
	}
}

func TestSignIn(t *testing.T) {
	tests := []struct {
		name, token, next string
		adminToken        string
		want              int
		location          string
	}{
		{"right token", adminToken, "/ui/rules", adminToken, http.StatusSeeOther, "/ui/rules"},
		{"wrong token", adminToken + "x", "/ui/", adminToken, http.StatusUnauthorized, ""},
		{"prefix of the token", adminToken[:10], "/ui/", adminToken, http.StatusUnauthorized, ""},
		{"empty token", "", "/ui/", adminToken, http.StatusUnauthorized, ""},
		{"no admin token configured", "", "/ui/", "", http.StatusUnauthorized, ""},
		{"redirect off-site is dropped", adminToken, "//evil.example/ui/", adminToken, http.StatusSeeOther, "/ui/"},
		{"redirect outside the UI is dropped", adminToken, "https://evil.example/", adminToken, http.StatusSeeOther, "/ui/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.AdminToken = tt.adminToken })
			c := e.client()
			res := e.post(t, c, "/ui/signin", url.Values{"token": {tt.token}, "next": {tt.next}}, nil)
			if res.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.want)
			}
			cookies := res.Cookies()
			if tt.want != http.StatusSeeOther {
				if len(cookies) != 0 || e.h.sessions.len() != 0 {
					t.Fatalf("a refused sign-in set a cookie or a session: %v", cookies)
				}
				return
			}
			if res.Header.Get("Location") != tt.location {
				t.Errorf("Location %q, want %q", res.Header.Get("Location"), tt.location)
			}
			if len(cookies) != 1 {
				t.Fatalf("cookies %v", cookies)
			}
			ck := cookies[0]
			if ck.Name != CookieName || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/ui" || ck.Secure || len(ck.Value) < 40 {
				t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/ui, not Secure over http, a long random value", ck)
			}
			if strings.Contains(ck.Value, adminToken) {
				t.Error("the cookie carries the admin token")
			}
			if res, _ := e.get(t, c, "/ui/"); res.StatusCode != http.StatusOK {
				t.Errorf("signed in, the overview answers %d", res.StatusCode)
			}
		})
	}
}

func TestSessionCookieIsSecureOverHTTPS(t *testing.T) {
	e := newEnv(t, nil)
	req := httptest.NewRequest(http.MethodPost, "https://arubug.example/ui/signin", strings.NewReader("token="+adminToken))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://arubug.example")
	req.TLS = &tls.ConnectionState{}
	w := httptest.NewRecorder()
	r := chi.NewRouter()
	e.h.Mount(r)
	r.ServeHTTP(w, req)
	cookies := w.Result().Cookies()
	if w.Code != http.StatusSeeOther || len(cookies) != 1 || !cookies[0].Secure {
		t.Fatalf("status %d, cookies %+v: want a Secure cookie", w.Code, cookies)
	}
}

func TestSessionsExpireAndSignOutEndsThem(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SessionTTL = time.Hour })
	c := e.client()
	e.signIn(t, c)
	e.advance(59 * time.Minute)
	if res, _ := e.get(t, c, "/ui/"); res.StatusCode != http.StatusOK {
		t.Fatalf("before expiry: %d", res.StatusCode)
	}
	e.advance(2 * time.Minute)
	if res, _ := e.get(t, c, "/ui/"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("after expiry: %d, want a redirect to sign in", res.StatusCode)
	}
	if e.h.sessions.len() != 0 {
		t.Errorf("the expired session is still held")
	}

	csrf := e.signIn(t, c)
	res := e.post(t, c, "/ui/signout", url.Values{"csrf": {csrf}}, nil)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/signin" {
		t.Fatalf("sign-out: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	if res, _ := e.get(t, c, "/ui/"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("after sign-out: %d", res.StatusCode)
	}
}

func TestSessionsAreBounded(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxSessions = 3 })
	first := e.client()
	e.signIn(t, first)
	for range 5 {
		e.advance(time.Second)
		e.signIn(t, e.client())
	}
	if n := e.h.sessions.len(); n != 3 {
		t.Errorf("%d sessions held, want 3", n)
	}
	if res, _ := e.get(t, first, "/ui/"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("the oldest session survived: %d", res.StatusCode)
	}
}

func TestStateChangingRequestsNeedTheCSRFTokenAndOurOrigin(t *testing.T) {
	id := reportID.String()
	posts := []struct {
		path string
		form url.Values
	}{
		{"/ui/reports/" + id + "/reply", url.Values{"body": {"hello"}}},
		{"/ui/reports/" + id + "/note", url.Values{"body": {"note"}}},
		{"/ui/reports/" + id + "/route", url.Values{"team": {"platform"}}},
		{"/ui/reports/" + id + "/sync", url.Values{}},
		{"/ui/rules/test", url.Values{"url": {"https://x/pay"}}},
		{"/ui/signout", url.Values{}},
	}
	cases := []struct {
		name    string
		csrf    func(good string) string
		headers map[string]string
		want    int
	}{
		{"no token", func(string) string { return "" }, nil, http.StatusForbidden},
		{"wrong token", flipLast, nil, http.StatusForbidden},
		{"another session's token", nil, nil, http.StatusForbidden},
		{"cross-site fetch", func(g string) string { return g }, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, http.StatusForbidden},
		{"foreign origin", func(g string) string { return g }, map[string]string{"Sec-Fetch-Site": "", "Origin": "https://evil.example"}, http.StatusForbidden},
		{"foreign referer", func(g string) string { return g }, map[string]string{"Sec-Fetch-Site": "", "Origin": "", "Referer": "https://evil.example/x"}, http.StatusForbidden},
		{"null origin", func(g string) string { return g }, map[string]string{"Sec-Fetch-Site": "", "Origin": "null"}, http.StatusForbidden},
		{"neither origin nor referer", func(g string) string { return g }, map[string]string{"Sec-Fetch-Site": "", "Origin": ""}, http.StatusForbidden},
	}
	for _, p := range posts {
		for _, tc := range cases {
			t.Run(p.path+"/"+tc.name, func(t *testing.T) {
				e := newEnv(t, nil)
				c := e.client()
				good := e.signIn(t, c)
				form := url.Values{}
				for k, v := range p.form {
					form[k] = v
				}
				if tc.csrf == nil {
					form.Set(CSRFField, e.signIn(t, e.client()))
				} else if tok := tc.csrf(good); tok != "" {
					form.Set(CSRFField, tok)
				}
				res := e.post(t, c, p.path, form, tc.headers)
				if res.StatusCode != tc.want {
					t.Fatalf("status %d, want %d", res.StatusCode, tc.want)
				}
				if len(e.tickets.sent) != 0 || e.tickets.retries != 0 || len(e.sink.events) != 0 || len(e.store.saved) != 0 {
					t.Errorf("a refused request changed something: sent %v, retries %d, events %d, saved %v", e.tickets.sent, e.tickets.retries, len(e.sink.events), e.store.saved)
				}
				if res, _ := e.get(t, c, "/ui/"); res.StatusCode != http.StatusOK {
					t.Errorf("the refused request ended the session: %d", res.StatusCode)
				}
			})
		}
	}
}

func TestRepliesNotesAndReroutesActLikeTheAPI(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	csrf := e.signIn(t, c)
	id := reportID.String()

	res := e.post(t, c, "/ui/reports/"+id+"/reply", url.Values{"csrf": {csrf}, "body": {"Thanks,\r\nwe are on it"}}, nil)
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/ui/reports/"+id+"?done=reply") {
		t.Fatalf("reply: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	res = e.post(t, c, "/ui/reports/"+id+"/note", url.Values{"csrf": {csrf}, "body": {"looks like #123"}}, nil)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("note: %d", res.StatusCode)
	}
	want := []sent{{reportID, "Thanks,\nwe are on it", true}, {reportID, "looks like #123", false}}
	if len(e.tickets.sent) != 2 || e.tickets.sent[0] != want[0] || e.tickets.sent[1] != want[1] {
		t.Fatalf("queued %v, want %v", e.tickets.sent, want)
	}

	// The API's validation applies: an empty reply is refused and kept.
	res = e.post(t, c, "/ui/reports/"+id+"/reply", url.Values{"csrf": {csrf}, "body": {"   "}}, nil)
	if res.StatusCode != http.StatusUnprocessableEntity || len(e.tickets.sent) != 2 {
		t.Fatalf("empty reply: %d, %d queued", res.StatusCode, len(e.tickets.sent))
	}

	res = e.post(t, c, "/ui/reports/"+id+"/route", url.Values{"csrf": {csrf}, "team": {"platform"}, "reason": {"not billing"}}, nil)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("re-route: %d", res.StatusCode)
	}
	if len(e.sink.events) != 1 || e.sink.events[0].Event != "$bug_report_route" || !strings.Contains(e.sink.events[0].Properties, `"to_team":"platform"`) {
		t.Fatalf("re-route events: %+v", e.sink.events)
	}
	if len(e.store.saved) != 1 || e.store.saved[0] != "platform" {
		t.Fatalf("saved %v", e.store.saved)
	}
	res = e.post(t, c, "/ui/reports/"+id+"/route", url.Values{"csrf": {csrf}, "team": {"nobody"}}, nil)
	if res.StatusCode != http.StatusUnprocessableEntity || len(e.sink.events) != 1 {
		t.Fatalf("unknown team: %d", res.StatusCode)
	}
	_, body := e.get(t, c, "/ui/reports/"+id+"?done=route")
	if !strings.Contains(body, "Report re-routed.") || !strings.Contains(body, "re-routed by an admin from billing to platform: not billing") {
		t.Error("the report page does not show the re-route")
	}
}

func TestRulesPageTestsASampleReport(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	csrf := e.signIn(t, c)
	tests := []struct{ url, area, team, route string }{
		{"https://app.example.com/pay/now", "", "billing", "pay"},
		{"https://app.example.com/home", "billing", "billing", "product-area:billing"},
		{"https://app.example.com/home", "", "platform", "fallback"},
	}
	for _, tt := range tests {
		res := e.post(t, c, "/ui/rules/test", url.Values{"csrf": {csrf}, "url": {tt.url}, "product_area": {tt.area}, "description": {hostile}}, nil)
		b, _ := io.ReadAll(res.Body)
		body := string(b)
		if res.StatusCode != http.StatusOK || !strings.Contains(body, "<dt>Team</dt><dd><strong>"+tt.team+"</strong>") {
			t.Errorf("%s: status %d, team %s not shown", tt.url, res.StatusCode, tt.team)
		}
		if !strings.Contains(body, tt.route) {
			t.Errorf("%s: route %s not shown", tt.url, tt.route)
		}
		assertEscaped(t, body)
	}
}

// flipLast returns a token that differs from g in its last character.
func flipLast(g string) string {
	if strings.HasSuffix(g, "A") {
		return g[:len(g)-1] + "B"
	}
	return g[:len(g)-1] + "A"
}

// assertEscaped fails if hostile reached the page unescaped.
func assertEscaped(t *testing.T, body string) {
	t.Helper()
	for _, bad := range []string{`<script>alert`, `<img src=x`, `href="javascript:`} {
		if strings.Contains(body, bad) {
			i := strings.Index(body, bad)
			t.Errorf("unescaped %q in the page: …%s…", bad, body[max(0, i-80):min(len(body), i+80)])
		}
	}
}

func TestHostileStringsRenderAsText(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	e.signIn(t, c)
	for _, path := range []string{"/ui/", "/ui/teams/billing", "/ui/teams/billing?q=" + url.QueryEscape(hostile), "/ui/reports/" + reportID.String(), "/ui/rules"} {
		t.Run(path, func(t *testing.T) {
			res, body := e.get(t, c, path)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			assertEscaped(t, body)
			if !strings.Contains(body, "&lt;script&gt;alert(&#34;xss&#34;)&lt;/script&gt;") {
				t.Error("the hostile string is not on the page as text")
			}
		})
	}
	// The sign-in page's next parameter is reflected into a form.
	res, body := e.get(t, e.client(), "/ui/signin?next="+url.QueryEscape(`/ui/"><script>alert(1)</script>`))
	if res.StatusCode != http.StatusOK {
		t.Fatal(res.StatusCode)
	}
	assertEscaped(t, body)
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	e.signIn(t, c)
	paths := []string{"/ui/signin", "/ui/", "/ui/teams/billing", "/ui/reports/" + reportID.String(), "/ui/rules", "/ui/nope",
		"/ui/data/trend?metric=reports&breakdown=team", "/ui/assets/" + assetVersion + "/app.js"}
	for _, p := range paths {
		t.Run(p, func(t *testing.T) {
			res, _ := e.get(t, c, p)
			h := res.Header
			csp := h.Get("Content-Security-Policy")
			if csp != CSP || strings.Contains(csp, "unsafe") || !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("CSP %q", csp)
			}
			for k, v := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"} {
				if h.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, h.Get(k), v)
				}
			}
			if strings.HasSuffix(p, ".js") {
				if !strings.Contains(h.Get("Cache-Control"), "immutable") {
					t.Errorf("asset Cache-Control %q", h.Get("Cache-Control"))
				}
			} else if h.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", h.Get("Cache-Control"))
			}
		})
	}
}

func TestPagesHaveNoInlineScriptOrStyle(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	e.signIn(t, c)
	inline := regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>[^<]|<style|<[a-z][^>]*\s(?:style|on[a-z]+)=`)
	for _, p := range []string{"/ui/signin", "/ui/", "/ui/teams/billing", "/ui/reports/" + reportID.String(), "/ui/rules"} {
		_, body := e.get(t, c, p)
		if m := inline.FindString(body); m != "" {
			t.Errorf("%s: inline script or style %q would break the CSP", p, m)
		}
	}
}

func TestTrendDataAndAssets(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	e.signIn(t, c)
	res, body := e.get(t, c, "/ui/data/trend?metric=reports&breakdown=team&days=7&tz=Europe/Berlin")
	var got trends.Result
	if res.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil || got.TZ != "Europe/Berlin" || got.Metric != "reports" {
		t.Fatalf("trend: %d %s", res.StatusCode, body)
	}
	if !strings.HasPrefix(got.Buckets[0], "2026-03-04T00:00:00+01:00") {
		t.Errorf("first bucket %s, want local midnight 7 days back", got.Buckets[0])
	}
	if res, _ := e.get(t, c, "/ui/data/trend?metric=nope"); res.StatusCode != http.StatusBadRequest {
		t.Errorf("bad metric: %d", res.StatusCode)
	}
	if res, _ := e.get(t, c, "/ui/assets/000000000000/app.js"); res.StatusCode != http.StatusNotFound {
		t.Errorf("old asset version: %d", res.StatusCode)
	}
	if res, _ := e.get(t, c, "/ui/assets/"+assetVersion+"/vendor/uPlot.iife.min.js"); res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/javascript") {
		t.Errorf("uPlot: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if res, _ := e.get(t, c, "/ui/reports/"+reportID.String()+"/screenshot"); res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "image/png" {
		t.Errorf("screenshot: %d", res.StatusCode)
	}
}

func TestRootRedirectOnlyWhenAsked(t *testing.T) {
	for _, on := range []bool{false, true} {
		e := newEnv(t, func(c *Config) { c.RedirectRoot = on })
		res, _ := e.get(t, e.client(), "/")
		if on && (res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/ui/") {
			t.Errorf("RedirectRoot: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		if !on && res.StatusCode != http.StatusNotFound {
			t.Errorf("without RedirectRoot, / answers %d", res.StatusCode)
		}
	}
}

// TestVendoredChartLibraryMatchesItsManifest checks the embedded uPlot
// against assets/vendor/VENDOR.json (written by `make web-vendor`; CI's
// check-vendor compares both with the npm package).
func TestVendoredChartLibraryMatchesItsManifest(t *testing.T) {
	raw, err := os.ReadFile("assets/vendor/VENDOR.json")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Package, Version string
		Files            map[string]struct{ SHA256 string }
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.Package != "uplot" || m.Version == "" {
		t.Fatalf("manifest %+v", m)
	}
	for _, name := range []string{"uPlot.iife.min.js", "uPlot.min.css"} {
		b, err := fs.ReadFile(assets, "vendor/"+name)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != m.Files[name].SHA256 {
			t.Errorf("%s does not match VENDOR.json", name)
		}
		if !strings.Contains(string(b[:min(len(b), 200)]), m.Version) && strings.HasSuffix(name, ".js") {
			t.Errorf("%s does not carry version %s", name, m.Version)
		}
	}
}

func TestZendeskNoticeOnEveryPage(t *testing.T) {
	for _, tc := range []struct {
		notice string
		want   bool
	}{
		{"No Zendesk account is configured: tickets go to the built-in Zendesk simulator <at> http://127.0.0.1:1/_sim/", true},
		{"", false},
	} {
		e := newEnv(t, func(c *Config) { c.ZendeskNotice = tc.notice })
		c := e.client()
		e.signIn(t, c)
		for _, path := range []string{"/ui/", "/ui/rules"} {
			_, body := e.get(t, c, path)
			has := strings.Contains(body, `class="zendesk-notice"`)
			if has != tc.want || (tc.want && !strings.Contains(body, "simulator &lt;at&gt; http://127.0.0.1:1/_sim/")) {
				t.Errorf("%s with notice %q: notice shown %v, want %v (escaped)", path, tc.notice, has, tc.want)
			}
		}
	}
}
