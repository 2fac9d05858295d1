package zendesk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/zendesk"
	"github.com/arubug/arubug/internal/zendesk/zendesktest"
)

// whSink is an in-memory bugreport.EventSink that can be scripted to fail.
type whSink struct {
	mu     sync.Mutex
	events []bugreport.Event
	fail   []error
}

func (s *whSink) Append(_ context.Context, evs []bugreport.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.fail) > 0 {
		err := s.fail[0]
		s.fail = s.fail[1:]
		return err
	}
	s.events = append(s.events, evs...)
	return nil
}

// FailNext makes the next len(errs) appends return errs, in order.
func (s *whSink) FailNext(errs ...error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = append(s.fail, errs...)
}

func (s *whSink) Events() []bugreport.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]bugreport.Event(nil), s.events...)
}

var errSinkFull = &bugreport.Error{Code: bugreport.EUNAVAILABLE, Reason: "spool_full", Message: "spool full", RetryAfter: 2 * time.Second}

const whSecret = "dGVzdC1zaWduaW5nLXNlY3JldC0wMTIzNDU2Nzg5"

var (
	whReport  = bugreport.UUID{0x01, 0x8f, 0x3a, 0x10, 0x00, 0x00, 0x70, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01}
	whNow     = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	whTS      = whNow.Format(time.RFC3339)
	whPattern = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_.]+)\s*\}\}`)
)

// whRender renders a trigger template the way Zendesk does for a JSON
// webhook: placeholder values escaped as the inside of a JSON string.
func whRender(tmpl string, vars map[string]string) []byte {
	return []byte(whPattern.ReplaceAllStringFunc(tmpl, func(m string) string {
		v := vars[whPattern.FindStringSubmatch(m)[1]]
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.Encode(v)
		q := strings.TrimSuffix(b.String(), "\n")
		return q[1 : len(q)-1]
	}))
}

func whVars(over map[string]string) map[string]string {
	v := map[string]string{
		"ticket.id":                         "360000000042",
		"ticket.external_id":                whReport.String(),
		"ticket.status":                     "open",
		"ticket.updated_at":                 "2025-06-01T11:59:00Z",
		"ticket.requester.id":               "7001",
		"ticket.latest_comment.id":          "9001",
		"ticket.latest_comment.body":        "We are looking into it.",
		"ticket.latest_comment.is_public":   "true",
		"ticket.latest_comment.via":         "web",
		"ticket.latest_comment.created_at":  "2025-06-01T11:59:00Z",
		"ticket.latest_comment.author.id":   "8001",
		"ticket.latest_comment.author.name": "Agent Smith",
	}
	for k, x := range over {
		v[k] = x
	}
	return v
}

type whEnv struct {
	srv      *httptest.Server
	sink     *whSink
	reg      *prometheus.Registry
	statuses []string
	mu       sync.Mutex
}

func newWhEnv(t *testing.T, mutate func(*zendesk.WebhookConfig)) *whEnv {
	t.Helper()
	e := &whEnv{sink: &whSink{}, reg: prometheus.NewRegistry()}
	cfg := zendesk.WebhookConfig{
		Secret:  whSecret,
		Sink:    e.sink,
		Project: func(context.Context, bugreport.UUID) (string, error) { return "proj", nil },
		OnStatus: func(_ bugreport.UUID, _ int64, status string, _ time.Time) {
			e.mu.Lock()
			e.statuses = append(e.statuses, status)
			e.mu.Unlock()
		},
		Now:        func() time.Time { return whNow },
		Registerer: e.reg,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	h, err := zendesk.NewWebhookReceiver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

type whResp struct {
	status int
	header http.Header
	body   string
}

// post sends body with the given timestamp and signature headers (omitted
// when empty).
func (e *whEnv) post(t *testing.T, body []byte, ts, sig string) whResp {
	t.Helper()
	return e.do(t, http.MethodPost, bytes.NewReader(body), ts, sig)
}

func (e *whEnv) do(t *testing.T, method string, body io.Reader, ts, sig string) whResp {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+"/webhooks/zendesk", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if ts != "" {
		req.Header.Set(zendesk.HeaderWebhookSignatureTimestamp, ts)
	}
	if sig != "" {
		req.Header.Set(zendesk.HeaderWebhookSignature, sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return whResp{resp.StatusCode, resp.Header, string(b)}
}

func (e *whEnv) count(t *testing.T, result string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "arubug_zendesk_webhooks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func sign(ts string, body []byte) string { return zendesktest.Sign(whSecret, ts, body) }

func messageOf(t *testing.T, ev bugreport.Event) bugreport.Message {
	t.Helper()
	var m bugreport.Message
	if err := json.Unmarshal([]byte(ev.Properties), &m); err != nil {
		t.Fatalf("properties %q: %v", ev.Properties, err)
	}
	return m
}

func TestWebhookStoresDeliveryOnce(t *testing.T) {
	e := newWhEnv(t, nil)
	body := whRender(zendesk.CommentWebhookTemplate, whVars(nil))
	r := e.post(t, body, whTS, sign(whTS, body))
	if r.status != http.StatusOK || !strings.Contains(r.body, `"stored"`) {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	// The same delivery again is a replay: refused, nothing stored.
	r = e.post(t, body, whTS, sign(whTS, body))
	if r.status != http.StatusUnauthorized {
		t.Fatalf("replay: got %d %s", r.status, r.body)
	}
	evs := e.sink.Events()
	if len(evs) != 1 {
		t.Fatalf("stored %d events, want 1", len(evs))
	}
	ev := evs[0]
	if ev.Event != bugreport.EventBugReportMessage || ev.Project != "proj" || ev.UUID != zendesk.CommentEventID(360000000042, 9001) {
		t.Errorf("event %+v", ev)
	}
	m := messageOf(t, ev)
	want := bugreport.Message{
		ID: zendesk.CommentEventID(360000000042, 9001), ReportID: whReport, TicketID: 360000000042, CommentID: 9001,
		Kind: bugreport.MessageAgentReply, Public: true, AuthorID: 8001, AuthorName: "Agent Smith", Via: "web",
		Body: "We are looking into it.", At: time.Date(2025, 6, 1, 11, 59, 0, 0, time.UTC),
	}
	if m != want {
		t.Errorf("message\n got %+v\nwant %+v", m, want)
	}
	if e.count(t, "stored") != 1 || e.count(t, "replay") != 1 {
		t.Errorf("metrics stored=%v replay=%v", e.count(t, "stored"), e.count(t, "replay"))
	}
}

func TestWebhookKinds(t *testing.T) {
	tests := []struct {
		name string
		tmpl string
		over map[string]string
		kind string
	}{
		{"first comment is the report", zendesk.ReportWebhookTemplate, map[string]string{"ticket.latest_comment.author.id": "7001", "ticket.latest_comment.via": "api"}, bugreport.MessageReport},
		{"agent reply", zendesk.CommentWebhookTemplate, nil, bugreport.MessageAgentReply},
		{"requester reply", zendesk.CommentWebhookTemplate, map[string]string{"ticket.latest_comment.author.id": "7001", "ticket.latest_comment.via": "email"}, bugreport.MessageRequesterReply},
		{"internal note", zendesk.CommentWebhookTemplate, map[string]string{"ticket.latest_comment.is_public": "false"}, bugreport.MessageNote},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newWhEnv(t, nil)
			body := whRender(tt.tmpl, whVars(tt.over))
			if r := e.post(t, body, whTS, sign(whTS, body)); r.status != http.StatusOK {
				t.Fatalf("got %d %s", r.status, r.body)
			}
			evs := e.sink.Events()
			if len(evs) != 1 {
				t.Fatalf("stored %d events", len(evs))
			}
			if m := messageOf(t, evs[0]); m.Kind != tt.kind {
				t.Errorf("kind %q, want %q", m.Kind, tt.kind)
			}
		})
	}
}

func TestWebhookStatus(t *testing.T) {
	e := newWhEnv(t, nil)
	body := whRender(zendesk.StatusWebhookTemplate, whVars(map[string]string{"ticket.status": "solved"}))
	if r := e.post(t, body, whTS, sign(whTS, body)); r.status != http.StatusOK {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	evs := e.sink.Events()
	if len(evs) != 1 {
		t.Fatalf("stored %d events", len(evs))
	}
	at := time.Date(2025, 6, 1, 11, 59, 0, 0, time.UTC)
	if evs[0].Event != bugreport.EventBugReportStatus || evs[0].UUID != zendesk.StatusEventID(360000000042, "solved", at) {
		t.Errorf("event %+v", evs[0])
	}
	if m := messageOf(t, evs[0]); m.Kind != "status" || m.Status != "solved" || !m.At.Equal(at) || m.ReportID != whReport {
		t.Errorf("message %+v", m)
	}
	if len(e.statuses) != 1 || e.statuses[0] != "solved" {
		t.Errorf("OnStatus calls %v", e.statuses)
	}
}

func TestWebhookRejectsUnauthenticated(t *testing.T) {
	body := whRender(zendesk.CommentWebhookTemplate, whVars(nil))
	old := whNow.Add(-6 * time.Minute).Format(time.RFC3339)
	future := whNow.Add(6 * time.Minute).Format(time.RFC3339)
	tests := []struct {
		name    string
		ts, sig string
		body    []byte
		result  string
	}{
		{"garbage signature", whTS, "not-base64!!", body, "bad_signature"},
		{"signature of another body", whTS, sign(whTS, []byte(`{}`)), body, "bad_signature"},
		{"wrong secret", whTS, zendesktest.Sign("another-secret", whTS, body), body, "bad_signature"},
		{"signature over another timestamp", whTS, sign(old, body), body, "bad_signature"},
		{"missing signature", whTS, "", body, "bad_signature"},
		{"missing timestamp", "", sign("", body), body, "bad_signature"},
		{"unparseable timestamp", "yesterday", sign("yesterday", body), body, "stale"},
		{"stale timestamp", old, sign(old, body), body, "stale"},
		{"future timestamp", future, sign(future, body), body, "stale"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newWhEnv(t, nil)
			r := e.post(t, tt.body, tt.ts, tt.sig)
			if r.status != http.StatusUnauthorized {
				t.Fatalf("got %d %s", r.status, r.body)
			}
			if !strings.Contains(r.body, `"authentication_error"`) {
				t.Errorf("body %s", r.body)
			}
			if n := len(e.sink.Events()); n != 0 {
				t.Errorf("stored %d events", n)
			}
			if e.count(t, tt.result) != 1 {
				t.Errorf("metric %s not counted", tt.result)
			}
		})
	}
	t.Run("timestamps at the edge of the window are accepted", func(t *testing.T) {
		e := newWhEnv(t, nil)
		for _, d := range []time.Duration{-5 * time.Minute, 5 * time.Minute} {
			ts := whNow.Add(d).Format(time.RFC3339)
			if r := e.post(t, body, ts, sign(ts, body)); r.status != http.StatusOK {
				t.Errorf("%v: got %d %s", d, r.status, r.body)
			}
		}
	})
}

func TestWebhookReplayMemoryExpires(t *testing.T) {
	now := whNow
	e := newWhEnv(t, func(c *zendesk.WebhookConfig) { c.Now = func() time.Time { return now } })
	body := whRender(zendesk.CommentWebhookTemplate, whVars(nil))
	if r := e.post(t, body, whTS, sign(whTS, body)); r.status != http.StatusOK {
		t.Fatalf("got %d", r.status)
	}
	now = whNow.Add(4 * time.Minute)
	if r := e.post(t, body, whTS, sign(whTS, body)); r.status != http.StatusUnauthorized {
		t.Fatalf("replay within the window: got %d", r.status)
	}
	now = whNow.Add(6 * time.Minute)
	r := e.post(t, body, whTS, sign(whTS, body))
	if r.status != http.StatusUnauthorized || e.count(t, "stale") != 1 {
		t.Fatalf("after the window the timestamp is stale: got %d %s", r.status, r.body)
	}
}

func TestWebhookRequestErrors(t *testing.T) {
	big := whRender(zendesk.CommentWebhookTemplate, whVars(map[string]string{"ticket.latest_comment.body": strings.Repeat("x", 2048)}))
	small := func(c *zendesk.WebhookConfig) { c.MaxBodyBytes = 1024 }
	signed := func(body string) (string, []byte) { return sign(whTS, []byte(body)), []byte(body) }
	tests := []struct {
		name   string
		mutate func(*zendesk.WebhookConfig)
		method string
		body   []byte
		chunk  bool // hide the length: Transfer-Encoding chunked
		status int
		result string
	}{
		{name: "oversized", mutate: small, body: big, status: 413, result: "too_large"},
		{name: "oversized without Content-Length", mutate: small, body: big, chunk: true, status: 413, result: "too_large"},
		{name: "not JSON", body: []byte("ticket=1"), status: 400, result: "malformed"},
		{name: "JSON array", body: []byte(`[1,2]`), status: 400, result: "malformed"},
		{name: "trailing data", body: []byte(`{"kind":"status"} {}`), status: 400, result: "malformed"},
		{name: "unknown kind", body: whRender(strings.Replace(zendesk.CommentWebhookTemplate, `"comment"`, `"bogus"`, 1), whVars(nil)), status: 400, result: "malformed"},
		{name: "ticket id not a number", body: whRender(zendesk.CommentWebhookTemplate, whVars(map[string]string{"ticket.id": "abc"})), status: 400, result: "malformed"},
		{name: "comment without id", body: whRender(zendesk.CommentWebhookTemplate, whVars(map[string]string{"ticket.latest_comment.id": ""})), status: 400, result: "malformed"},
		{name: "status without updated_at", body: whRender(zendesk.StatusWebhookTemplate, whVars(map[string]string{"ticket.updated_at": ""})), status: 400, result: "malformed"},
		{name: "GET", method: http.MethodGet, status: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newWhEnv(t, tt.mutate)
			sig, body := signed(string(tt.body))
			var rd io.Reader = bytes.NewReader(body)
			if tt.chunk {
				rd = io.MultiReader(rd)
			}
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			r := e.do(t, method, rd, whTS, sig)
			if r.status != tt.status {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tt.status)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if n := len(e.sink.Events()); n != 0 {
				t.Errorf("stored %d events", n)
			}
			if tt.result != "" && e.count(t, tt.result) != 1 {
				t.Errorf("metric %s not counted", tt.result)
			}
		})
	}
}

func TestWebhookIgnoresOtherTickets(t *testing.T) {
	for _, ext := range []string{"", "ORDER-1234", "not-a-uuid-but-36-characters-long!!!"} {
		t.Run(ext, func(t *testing.T) {
			e := newWhEnv(t, nil)
			body := whRender(zendesk.CommentWebhookTemplate, whVars(map[string]string{"ticket.external_id": ext}))
			r := e.post(t, body, whTS, sign(whTS, body))
			if r.status != http.StatusOK || !strings.Contains(r.body, `"ignored"`) {
				t.Fatalf("got %d %s", r.status, r.body)
			}
			if len(e.sink.Events()) != 0 || e.count(t, "ignored") != 1 {
				t.Errorf("events %d, ignored %v", len(e.sink.Events()), e.count(t, "ignored"))
			}
		})
	}
	t.Run("report unknown to Arubug", func(t *testing.T) {
		e := newWhEnv(t, func(c *zendesk.WebhookConfig) {
			c.Project = func(context.Context, bugreport.UUID) (string, error) {
				return "", bugreport.Errorf(bugreport.ENOTFOUND, "no_report", "no such report")
			}
		})
		body := whRender(zendesk.CommentWebhookTemplate, whVars(nil))
		if r := e.post(t, body, whTS, sign(whTS, body)); r.status != http.StatusOK || !strings.Contains(r.body, `"ignored"`) {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
}

func TestWebhookUnavailableThenRetry(t *testing.T) {
	t.Run("sink full", func(t *testing.T) {
		e := newWhEnv(t, nil)
		e.sink.FailNext(errSinkFull)
		body := whRender(zendesk.CommentWebhookTemplate, whVars(nil))
		r := e.post(t, body, whTS, sign(whTS, body))
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "2" {
			t.Fatalf("got %d Retry-After %q %s", r.status, r.header.Get("Retry-After"), r.body)
		}
		if strings.Contains(r.body, "spool full") {
			t.Errorf("internal cause leaked: %s", r.body)
		}
		// Zendesk retries the same delivery: it must not count as a replay.
		r = e.post(t, body, whTS, sign(whTS, body))
		if r.status != http.StatusOK {
			t.Fatalf("retry: got %d %s", r.status, r.body)
		}
		if len(e.sink.Events()) != 1 || e.count(t, "unavailable") != 1 || e.count(t, "stored") != 1 {
			t.Errorf("events %d unavailable %v stored %v", len(e.sink.Events()), e.count(t, "unavailable"), e.count(t, "stored"))
		}
	})
	t.Run("sink broken", func(t *testing.T) {
		e := newWhEnv(t, nil)
		e.sink.FailNext(errors.New("disk on fire at /var/lib/arubug"))
		body := whRender(zendesk.CommentWebhookTemplate, whVars(nil))
		r := e.post(t, body, whTS, sign(whTS, body))
		if r.status != http.StatusInternalServerError || strings.Contains(r.body, "disk") {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		if r := e.post(t, body, whTS, sign(whTS, body)); r.status != http.StatusOK {
			t.Fatalf("retry: got %d %s", r.status, r.body)
		}
	})
	t.Run("project lookup fails", func(t *testing.T) {
		fail := true
		e := newWhEnv(t, func(c *zendesk.WebhookConfig) {
			c.Project = func(context.Context, bugreport.UUID) (string, error) {
				if fail {
					return "", errors.New("clickhouse down")
				}
				return "proj", nil
			}
		})
		body := whRender(zendesk.CommentWebhookTemplate, whVars(nil))
		r := e.post(t, body, whTS, sign(whTS, body))
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || strings.Contains(r.body, "clickhouse") {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		fail = false
		if r := e.post(t, body, whTS, sign(whTS, body)); r.status != http.StatusOK {
			t.Fatalf("retry: got %d %s", r.status, r.body)
		}
	})
}

func TestWebhookHostileStringsAreData(t *testing.T) {
	e := newWhEnv(t, nil)
	hostile := `<script>alert("x")</script><img src=x onerror=alert(1)> {{ticket.id}} '; DROP TABLE events; --`
	// The body as Zendesk renders it (JSON-escaped), plus a NUL escape and
	// raw bytes that are not UTF-8.
	vars := whVars(map[string]string{"ticket.latest_comment.body": hostile, "ticket.latest_comment.author.name": "Eve <b>"})
	body := whRender(zendesk.CommentWebhookTemplate, vars)
	body = bytes.Replace(body, []byte(`DROP TABLE`), []byte("DROP\\u0000TABLE\xff\xfe"), 1)
	r := e.post(t, body, whTS, sign(whTS, body))
	if r.status != http.StatusOK {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if strings.Contains(r.body, "script") {
		t.Errorf("response echoes the payload: %s", r.body)
	}
	evs := e.sink.Events()
	if len(evs) != 1 {
		t.Fatalf("stored %d events", len(evs))
	}
	m := messageOf(t, evs[0])
	want := strings.Replace(hostile, "DROP TABLE", "DROP\x00TABLE\uFFFD\uFFFD", 1)
	if m.Body != want || m.AuthorName != "Eve <b>" {
		t.Errorf("body %q\nwant %q (author %q)", m.Body, want, m.AuthorName)
	}
	if !json.Valid([]byte(evs[0].Properties)) {
		t.Errorf("properties are not valid JSON: %q", evs[0].Properties)
	}
}

func TestWebhookConfigRequired(t *testing.T) {
	_, err := zendesk.NewWebhookReceiver(zendesk.WebhookConfig{})
	if err == nil {
		t.Fatal("empty config accepted")
	}
	for _, want := range []string{"secret", "sink", "project"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestWebhookLogsNoSecrets(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	e := newWhEnv(t, func(c *zendesk.WebhookConfig) {
		c.Logger = slogTo(&buf, &mu)
	})
	body := whRender(zendesk.CommentWebhookTemplate, whVars(nil))
	good := sign(whTS, body)
	e.post(t, body, whTS, good)
	e.post(t, body, whTS, good)                              // replay
	e.post(t, body, whTS, zendesktest.Sign("x", whTS, body)) // bad
	mu.Lock()
	defer mu.Unlock()
	out := buf.String()
	if out == "" {
		t.Fatal("nothing logged")
	}
	for _, s := range []string{whSecret, good} {
		if strings.Contains(out, s) {
			t.Errorf("log contains a secret or signature:\n%s", out)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func slogTo(w io.Writer, mu *sync.Mutex) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{mu, w}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
