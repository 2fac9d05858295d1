package capture

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/capture/lzstring"
)

// recordingSink keeps what it is given; err, when set, is returned instead.
type recordingSink struct {
	mu     sync.Mutex
	events []bugreport.Event
	calls  int
	err    error
}

func (s *recordingSink) Append(_ context.Context, events []bugreport.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.err != nil {
		return s.err
	}
	s.events = append(s.events, events...)
	return nil
}

var testNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

const token = "phc_test"

func newTestServer(t *testing.T, sink *recordingSink, mod func(*Config)) *httptest.Server {
	t.Helper()
	cfg := Config{
		Sink:     sink,
		Projects: []bugreport.Project{{Name: "main", Token: token}, {Name: "other", Token: "phc_other"}},
		Limits:   DefaultLimits(),
		Now:      func() time.Time { return testNow },
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	h.Mount(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

func gz(t testing.TB, s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.Bytes()
}

type req struct {
	method, path, contentType string
	body                      []byte
	header                    map[string]string
}

func do(t *testing.T, srv *httptest.Server, r req) (*http.Response, []byte) {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	hr, err := http.NewRequest(r.method, srv.URL+r.path, bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if r.contentType != "" {
		hr.Header.Set("Content-Type", r.contentType)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

const single = `{"api_key":"phc_test","event":"$pageview","distinct_id":"u1","uuid":"0190a6b2-7c3e-7d4f-9a1b-2c3d4e5f6a7b","timestamp":"2026-11-27T11:59:00Z","properties":{"$current_url":"https://app.example.com/a?x=1","$pathname":"/a","$host":"app.example.com","$lib":"web","$lib_version":"1.449.2","$session_id":"s1","$window_id":"w1","$device_id":"d1","n":1}}`

func TestEncodingsAndShapes(t *testing.T) {
	batch := `{"api_key":"phc_test","sent_at":"2026-11-27T12:00:00Z","batch":[` +
		`{"event":"a","distinct_id":"u1","timestamp":"2026-11-27T11:00:00Z"},` +
		`{"event":"b","properties":{"distinct_id":"u2","token":"phc_test"}}]}`
	array := `[{"event":"a","distinct_id":"u1","properties":{"token":"phc_test"}},{"event":"b","distinct_id":"u1","token":"phc_test"}]`
	form := func(data string, extra ...string) []byte {
		v := url.Values{"data": {data}}
		for i := 0; i+1 < len(extra); i += 2 {
			v.Set(extra[i], extra[i+1])
		}
		return []byte(v.Encode())
	}
	b64 := base64.StdEncoding.EncodeToString([]byte(single))
	tests := []struct {
		name   string
		req    req
		status int
		events []string // event names stored, in order
	}{
		{"json single", req{path: "/e/", contentType: "application/json", body: []byte(single)}, 200, []string{"$pageview"}},
		{"json without slash", req{path: "/e", contentType: "text/plain", body: []byte(single)}, 200, []string{"$pageview"}},
		{"capture route", req{path: "/capture/", body: []byte(single)}, 200, []string{"$pageview"}},
		{"track route", req{path: "/track", body: []byte(single)}, 200, []string{"$pageview"}},
		{"i/v0/e route", req{path: "/i/v0/e/", body: []byte(single)}, 200, []string{"$pageview"}},
		{"batch envelope", req{path: "/batch/", contentType: "application/json", body: []byte(batch)}, 200, []string{"a", "b"}},
		{"array of events", req{path: "/e/", body: []byte(array)}, 200, []string{"a", "b"}},
		{"gzip-js hint", req{path: "/e/?compression=gzip-js", body: gz(t, single)}, 200, []string{"$pageview"}},
		{"gzip by magic bytes without hint", req{path: "/batch/", body: gz(t, batch)}, 200, []string{"a", "b"}},
		{"gzip by magic bytes with wrong hint", req{path: "/e/?compression=lz64", body: gz(t, single)}, 200, []string{"$pageview"}},
		{"form base64", req{path: "/e/", contentType: "application/x-www-form-urlencoded", body: form(b64)}, 200, []string{"$pageview"}},
		{"form base64 with spaces for plus", req{path: "/e/", contentType: "application/x-www-form-urlencoded", body: []byte("data=" + strings.ReplaceAll(url.QueryEscape(b64), "%2B", "+"))}, 200, []string{"$pageview"}},
		{"form lz64", req{path: "/e/", contentType: "application/x-www-form-urlencoded", body: form(lzstring.CompressToBase64(single), "compression", "lz64")}, 200, []string{"$pageview"}},
		{"lz64 body with query hint", req{path: "/e/?compression=lz64", contentType: "text/plain", body: []byte(lzstring.CompressToBase64(single))}, 200, []string{"$pageview"}},
		{"base64 body", req{path: "/e/", body: []byte(b64)}, 200, []string{"$pageview"}},
		{"GET data param", req{method: "GET", path: "/e/?data=" + url.QueryEscape(b64)}, 200, []string{"$pageview"}},
		{"GET json data param", req{method: "GET", path: "/e/?data=" + url.QueryEscape(single)}, 200, []string{"$pageview"}},
		{"beacon answers 204", req{path: "/e/?beacon=1", body: []byte(single)}, 204, []string{"$pageview"}},
		{"engage without event name", req{path: "/engage/", body: []byte(`{"$token":"phc_test","$distinct_id":"u9","$set":{"email":"a@b.c"}}`)}, 200, []string{"$identify"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &recordingSink{}
			srv := newTestServer(t, sink, nil)
			resp, body := do(t, srv, tt.req)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.status, body)
			}
			if tt.status == 200 && string(body) != `{"status":1}` {
				t.Errorf("body %q, want {\"status\":1}", body)
			}
			var got []string
			for _, e := range sink.events {
				got = append(got, e.Event)
				if e.Project != "main" {
					t.Errorf("project %q, want main", e.Project)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.events, ",") {
				t.Errorf("events %v, want %v", got, tt.events)
			}
		})
	}
}

func TestSingleEventFields(t *testing.T) {
	sink := &recordingSink{}
	srv := newTestServer(t, sink, nil)
	resp, body := do(t, srv, req{path: "/e/", body: []byte(single)})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	e := sink.events[0]
	want := bugreport.Event{
		Project: "main", Event: "$pageview", DistinctID: "u1",
		Timestamp: time.Date(2026, 11, 27, 11, 59, 0, 0, time.UTC), CreatedAt: testNow,
		SessionID: "s1", WindowID: "w1", DeviceID: "d1",
		CurrentURL: "https://app.example.com/a?x=1", Pathname: "/a", Host: "app.example.com",
		Lib: "web", LibVersion: "1.449.2", IP: "127.0.0.1",
	}
	if e.UUID.String() != "0190a6b2-7c3e-7d4f-9a1b-2c3d4e5f6a7b" {
		t.Errorf("uuid %s", e.UUID)
	}
	props := e.Properties
	e.UUID, e.Properties = bugreport.UUID{}, ""
	if e != want {
		t.Errorf("event\n got %+v\nwant %+v", e, want)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(props), &m); err != nil || m["n"] != float64(1) {
		t.Errorf("properties %s not kept: %v", props, err)
	}
}

func TestClockSkew(t *testing.T) {
	tests := []struct {
		name string
		path string
		body string
		want time.Time
	}{
		{"no timestamp is now", "/e/", `{"api_key":"phc_test","event":"a","distinct_id":"u"}`, testNow},
		{"timestamp without sent_at is kept", "/e/", `{"api_key":"phc_test","event":"a","distinct_id":"u","timestamp":"2026-11-27T10:00:00.250Z"}`, time.Date(2026, 11, 27, 10, 0, 0, 250e6, time.UTC)},
		{"sent_at corrects a fast client clock", "/batch/", `{"api_key":"phc_test","sent_at":"2026-11-27T12:10:00Z","batch":[{"event":"a","distinct_id":"u","timestamp":"2026-11-27T12:09:00Z"}]}`, time.Date(2026, 11, 27, 11, 59, 0, 0, time.UTC)},
		{"sent_at corrects a slow client clock", "/batch/", `{"api_key":"phc_test","sent_at":"2026-11-27T11:00:00Z","batch":[{"event":"a","distinct_id":"u","timestamp":"2026-11-27T10:59:30Z"}]}`, time.Date(2026, 11, 27, 11, 59, 30, 0, time.UTC)},
		{"underscore param is sent_at in ms", "/e/?_=" + itoa(testNow.Add(time.Hour).UnixMilli()), `{"api_key":"phc_test","event":"a","distinct_id":"u","timestamp":"2026-11-27T12:30:00Z"}`, time.Date(2026, 11, 27, 11, 30, 0, 0, time.UTC)},
		{"offset wins over timestamp", "/e/", `{"api_key":"phc_test","event":"a","distinct_id":"u","timestamp":"2020-01-01T00:00:00Z","offset":1500}`, testNow.Add(-1500 * time.Millisecond)},
		{"more than 23h ahead is now", "/e/", `{"api_key":"phc_test","event":"a","distinct_id":"u","timestamp":"2026-11-28T12:00:01Z"}`, testNow},
		{"22h ahead is kept", "/e/", `{"api_key":"phc_test","event":"a","distinct_id":"u","timestamp":"2026-11-28T10:00:00Z"}`, time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)},
		{"zone offset is honoured", "/e/", `{"api_key":"phc_test","event":"a","distinct_id":"u","timestamp":"2026-11-27T13:00:00+02:00"}`, time.Date(2026, 11, 27, 11, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &recordingSink{}
			srv := newTestServer(t, sink, nil)
			resp, body := do(t, srv, req{path: tt.path, body: []byte(tt.body)})
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if got := sink.events[0].Timestamp; !got.Equal(tt.want) {
				t.Errorf("timestamp %s, want %s", got, tt.want)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// errorResponse is the JSON every rejection carries.
type errorResponse struct {
	Type, Code, Detail string
}

func TestRejections(t *testing.T) {
	small := DefaultLimits()
	small.MaxBodyBytes = 1024
	small.MaxBatchBodyBytes = 4096
	small.MaxDecompressedBytes = 8192
	small.MaxEventsPerRequest = 3
	small.MaxEventBytes = 512
	small.MaxDepth = 5
	small.MaxStringBytes = 100
	small.MaxDistinctIDLength = 10
	small.MaxEventNameLength = 10
	deep := `{"api_key":"phc_test","event":"a","distinct_id":"u","properties":{"a":{"b":{"c":{"d":{"e":{}}}}}}}`
	bomb := gz(t, `{"api_key":"phc_test","event":"a","distinct_id":"u","properties":{"pad":"`+strings.Repeat(" ", 50)+`"}}`+strings.Repeat(" ", 20000))
	gzipped := gz(t, single)
	tests := []struct {
		name   string
		req    req
		status int
		code   string
	}{
		{"empty body", req{path: "/e/"}, 400, "empty_payload"},
		{"malformed json", req{path: "/e/", body: []byte(`{"api_key":"phc_test","event":`)}, 400, "invalid_json"},
		{"not json not base64", req{path: "/e/", body: []byte(`hello world`)}, 400, "invalid_payload"},
		{"base64 of garbage", req{path: "/e/", body: []byte(base64.StdEncoding.EncodeToString([]byte("garbage")))}, 400, "invalid_payload"},
		{"truncated gzip", req{path: "/e/?compression=gzip-js", body: gzipped[:len(gzipped)-10]}, 400, "invalid_gzip"},
		{"gzip hint on plain body", req{path: "/e/?compression=gzip-js", body: []byte(single)}, 400, "invalid_gzip"},
		{"invalid lz64", req{path: "/e/?compression=lz64", body: []byte("!!!not-lz!!!")}, 400, "invalid_lz64"},
		{"unknown compression", req{path: "/e/?compression=br", body: []byte(single)}, 400, "unsupported_compression"},
		{"invalid utf-8", req{path: "/e/", body: []byte("{\"api_key\":\"phc_test\",\"event\":\"a\xff\",\"distinct_id\":\"u\"}")}, 400, "invalid_utf8"},
		{"escaped NUL", req{path: "/e/", body: []byte(`{"api_key":"phc_test","event":"a\u0000","distinct_id":"u"}`)}, 400, "nul_byte"},
		{"raw NUL", req{path: "/e/", body: []byte("{\"api_key\":\"phc_test\",\"event\":\"a\x00\",\"distinct_id\":\"u\"}")}, 400, "nul_byte"},
		{"multipart", req{path: "/e/", contentType: "multipart/form-data; boundary=x", body: []byte("--x--")}, 400, "unsupported_content_type"},
		{"xml content type", req{path: "/e/", contentType: "application/xml", body: []byte(single)}, 400, "unsupported_content_type"},
		{"bad content type", req{path: "/e/", contentType: "text/;;", body: []byte(single)}, 400, "invalid_content_type"},
		{"form without data", req{path: "/e/", contentType: "application/x-www-form-urlencoded", body: []byte("foo=bar")}, 400, "empty_payload"},
		{"missing token", req{path: "/e/", body: []byte(`{"event":"a","distinct_id":"u"}`)}, 401, "missing_token"},
		{"unknown token", req{path: "/e/", body: []byte(`{"api_key":"phc_nope","event":"a","distinct_id":"u"}`)}, 401, "invalid_token"},
		{"personal api key", req{path: "/e/", body: []byte(`{"api_key":"phx_secret","event":"a","distinct_id":"u"}`)}, 401, "personal_api_key"},
		{"mixed tokens", req{path: "/e/", body: []byte(`[{"token":"phc_test","event":"a","distinct_id":"u"},{"token":"phc_other","event":"a","distinct_id":"u"}]`)}, 401, "token_mismatch"},
		{"envelope and event token differ", req{path: "/batch/", body: []byte(`{"api_key":"phc_test","batch":[{"event":"a","distinct_id":"u","properties":{"token":"phc_other"}}]}`)}, 401, "token_mismatch"},
		{"missing distinct_id", req{path: "/e/", body: []byte(`{"api_key":"phc_test","event":"a"}`)}, 400, "missing_distinct_id"},
		{"empty distinct_id", req{path: "/e/", body: []byte(`{"api_key":"phc_test","event":"a","distinct_id":"  "}`)}, 400, "missing_distinct_id"},
		{"missing event", req{path: "/e/", body: []byte(`{"api_key":"phc_test","distinct_id":"u"}`)}, 400, "missing_event_name"},
		{"event not a string", req{path: "/e/", body: []byte(`{"api_key":"phc_test","event":5,"distinct_id":"u"}`)}, 400, "invalid_event_name"},
		{"properties not an object", req{path: "/e/", body: []byte(`{"api_key":"phc_test","event":"a","distinct_id":"u","properties":[1]}`)}, 400, "invalid_properties"},
		{"bad uuid", req{path: "/e/", body: []byte(`{"api_key":"phc_test","event":"a","distinct_id":"u","uuid":"nope"}`)}, 400, "invalid_uuid"},
		{"bad timestamp", req{path: "/e/", body: []byte(`{"api_key":"phc_test","event":"a","distinct_id":"u","timestamp":"yesterday"}`)}, 400, "invalid_timestamp"},
		{"timestamp before 1971", req{path: "/e/", body: []byte(`{"api_key":"phc_test","event":"a","distinct_id":"u","timestamp":"1969-01-01T00:00:00Z"}`)}, 400, "invalid_timestamp"},
		{"bad sent_at", req{path: "/batch/", body: []byte(`{"api_key":"phc_test","sent_at":"soon","batch":[{"event":"a","distinct_id":"u"}]}`)}, 400, "invalid_sent_at"},
		{"empty batch", req{path: "/batch/", body: []byte(`{"api_key":"phc_test","batch":[]}`)}, 400, "empty_batch"},
		{"batch not array", req{path: "/batch/", body: []byte(`{"api_key":"phc_test","batch":{}}`)}, 400, "invalid_payload"},
		{"scalar payload", req{path: "/e/", body: []byte(`"x"`)}, 400, "invalid_payload"},
		{"gzip of a string literal", req{path: "/e/?compression=gzip-js", body: gz(t, `"hello"`)}, 400, "invalid_payload"},
		{"gzip of whitespace", req{path: "/e/?compression=gzip-js", body: gz(t, "   ")}, 400, "invalid_payload"},
		{"array element not object", req{path: "/e/", body: []byte(`[1]`)}, 400, "invalid_event"},
		{"body over limit", req{path: "/e/", body: []byte(`{"api_key":"phc_test","event":"a","distinct_id":"u","properties":{"p":"` + strings.Repeat("x", 2000) + `"}}`)}, 413, "payload_too_large"},
		{"batch body over limit", req{path: "/batch/", body: bytes.Repeat([]byte(" "), 5000)}, 413, "payload_too_large"},
		{"gzip bomb", req{path: "/batch/?compression=gzip-js", body: bomb}, 413, "payload_too_large"},
		{"too many events", req{path: "/batch/", body: []byte(`[` + strings.Repeat(`{"event":"a","distinct_id":"u","token":"phc_test"},`, 3) + `{"event":"a","distinct_id":"u","token":"phc_test"}]`)}, 413, "too_many_events"},
		{"event over limit", req{path: "/batch/", body: []byte(`[{"event":"a","distinct_id":"u","token":"phc_test","properties":{` + strings.Repeat(`"k":"0123456789",`, 40) + `"z":1}}]`)}, 413, "event_too_large"},
		{"too deep", req{path: "/e/", body: []byte(deep)}, 400, "too_deep"},
		{"string too long", req{path: "/e/", body: []byte(`{"api_key":"phc_test","event":"a","distinct_id":"u","properties":{"p":"` + strings.Repeat("x", 101) + `"}}`)}, 413, "string_too_long"},
		{"distinct_id too long", req{path: "/e/", body: []byte(`{"api_key":"phc_test","event":"a","distinct_id":"12345678901"}`)}, 400, "distinct_id_too_long"},
		{"event name too long", req{path: "/e/", body: []byte(`{"api_key":"phc_test","event":"12345678901","distinct_id":"u"}`)}, 400, "event_name_too_long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &recordingSink{}
			srv := newTestServer(t, sink, func(c *Config) { c.Limits = small })
			resp, body := do(t, srv, tt.req)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.status, body)
			}
			var e errorResponse
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("error body is not JSON: %q", body)
			}
			if e.Code != tt.code || e.Type == "" || e.Detail == "" {
				t.Errorf("error %+v, want code %q with type and detail", e, tt.code)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			if sink.calls != 0 {
				t.Errorf("sink called %d times for a rejected request", sink.calls)
			}
		})
	}
}

func TestSinkErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		retryAfter string
	}{
		{"spool full", &bugreport.Error{Code: bugreport.EUNAVAILABLE, Reason: "spool_full", Message: "full", RetryAfter: 5 * time.Second}, 503, "5"},
		{"sub-second retry rounds up", &bugreport.Error{Code: bugreport.EUNAVAILABLE, Reason: "spool_full", Message: "full", RetryAfter: 200 * time.Millisecond}, 503, "1"},
		{"internal error hides its cause", io.ErrUnexpectedEOF, 500, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, &recordingSink{err: tt.err}, nil)
			resp, body := do(t, srv, req{path: "/e/", body: []byte(single)})
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			if strings.Contains(string(body), "unexpected EOF") {
				t.Errorf("internal cause leaked: %s", body)
			}
		})
	}
}

func TestCORS(t *testing.T) {
	srv := newTestServer(t, &recordingSink{}, nil)
	resp, _ := do(t, srv, req{method: "OPTIONS", path: "/e/", header: map[string]string{
		"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type",
	}})
	if resp.StatusCode != 204 {
		t.Fatalf("preflight status %d", resp.StatusCode)
	}
	for k, want := range map[string]string{
		"Access-Control-Allow-Origin":      "https://app.example.com",
		"Access-Control-Allow-Credentials": "true",
		"Access-Control-Allow-Headers":     "content-type",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("methods %q", resp.Header.Get("Access-Control-Allow-Methods"))
	}
	resp, _ = do(t, srv, req{path: "/e/", body: []byte(single), header: map[string]string{"Origin": "https://other.example"}})
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://other.example" {
		t.Errorf("capture response origin %q", got)
	}
}

func TestStartupEndpoints(t *testing.T) {
	srv := newTestServer(t, &recordingSink{}, nil)
	resp, body := do(t, srv, req{method: "GET", path: "/array/phc_test/config"})
	var cfg map[string]any
	if resp.StatusCode != 200 || json.Unmarshal(body, &cfg) != nil || cfg["token"] != "phc_test" {
		t.Fatalf("config: %d %s", resp.StatusCode, body)
	}
	if cfg["sessionRecording"] != false {
		t.Errorf("sessionRecording %v", cfg["sessionRecording"])
	}
	resp, body = do(t, srv, req{method: "GET", path: "/array/phc_test/config.js"})
	if resp.StatusCode != 200 || !strings.Contains(string(body), `window._POSTHOG_REMOTE_CONFIG["phc_test"]`) ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/javascript") {
		t.Fatalf("config.js: %d %s", resp.StatusCode, body)
	}
	resp, _ = do(t, srv, req{method: "GET", path: "/array/phc_nope/config.js"})
	if resp.StatusCode != 401 {
		t.Errorf("unknown token config.js: %d", resp.StatusCode)
	}
	resp, body = do(t, srv, req{path: "/flags/?v=2", body: []byte(`{"token":"phc_test","distinct_id":"u"}`)})
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"flags":{}`) {
		t.Fatalf("flags: %d %s", resp.StatusCode, body)
	}
}

func TestOverload(t *testing.T) {
	block := make(chan struct{})
	started := make(chan struct{}, 1)
	sink := &blockingSink{block: block, started: started}
	cfg := Config{Sink: sink, Projects: []bugreport.Project{{Name: "main", Token: token}}, Limits: DefaultLimits(), MaxInFlight: 1}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	h.Mount(r)
	srv := httptest.NewServer(r)
	defer srv.Close()
	done := make(chan int)
	go func() {
		resp, err := http.Post(srv.URL+"/e/", "application/json", strings.NewReader(single))
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	<-started
	resp, body := do(t, srv, req{path: "/e/", body: []byte(single)})
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "overloaded") {
		t.Errorf("second request: %d %s", resp.StatusCode, body)
	}
	close(block)
	if got := <-done; got != 200 {
		t.Errorf("first request: %d", got)
	}
}

type blockingSink struct {
	block   chan struct{}
	started chan struct{}
}

func (s *blockingSink) Append(context.Context, []bugreport.Event) error {
	s.started <- struct{}{}
	<-s.block
	return nil
}

func TestNewValidates(t *testing.T) {
	_, err := New(Config{Projects: []bugreport.Project{{Name: "a", Token: "t"}, {Name: "b", Token: "t"}}, Limits: Limits{}})
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{"sink is required", "used twice", "max_body_bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestBugReportRateLimits(t *testing.T) {
	now := testNow
	sink := &recordingSink{}
	srv := newTestServer(t, sink, func(c *Config) {
		c.BugReportsPerIP, c.BugReportsPerUser = 4, 2
		c.Now = func() time.Time { return now }
	})
	report := func(user string) req {
		return req{path: "/e/", body: []byte(`{"api_key":"phc_test","event":"$bug_report","distinct_id":"` + user + `","properties":{"$description":"x"}}`)}
	}
	codes := func(user string, n int) []int {
		var out []int
		for i := 0; i < n; i++ {
			resp, _ := do(t, srv, report(user))
			out = append(out, resp.StatusCode)
		}
		return out
	}
	if got := codes("ana", 3); got[0] != 200 || got[1] != 200 || got[2] != 429 {
		t.Fatalf("per user: %v, want 200 200 429", got)
	}
	resp, body := do(t, srv, report("ana"))
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "bug_report_rate_limited") {
		t.Errorf("refusal: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// Two more users from the same address use up the per-IP budget of 4.
	if got := codes("bob", 2); got[0] != 200 || got[1] != 200 {
		t.Fatalf("bob: %v", got)
	}
	if got := codes("cyd", 1); got[0] != 429 {
		t.Fatalf("per IP: %v, want 429", got)
	}
	// Ordinary events are never limited.
	if resp, _ := do(t, srv, req{path: "/e/", body: []byte(single)}); resp.StatusCode != 200 {
		t.Errorf("pageview refused: %d", resp.StatusCode)
	}
	if len(sink.events) != 5 {
		t.Errorf("%d events stored, want the 4 allowed reports and the pageview", len(sink.events))
	}
	now = now.Add(time.Minute)
	if got := codes("ana", 1); got[0] != 200 {
		t.Errorf("after a minute: %v", got)
	}
}
