package loadgen

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

// captureServer is a strict fake collector: it decodes every body the way
// Arubug must (gzip-js, single event or batch envelope), checks the event
// shape, answers 503 to every failEvery-th request and remembers the UUIDs
// of the events it acknowledged.
type captureServer struct {
	t         *testing.T
	token     string
	runID     string
	batch     int
	gzip      bool
	failEvery int

	mu       sync.Mutex
	reqs     int
	rejected int
	acked    map[string]bool
	seen     map[string]int // every UUID received, acked or not
	names    map[string]int
	bad      []string
}

func newCaptureServer(t *testing.T, token, runID string, batch int, gz bool, failEvery int) (*captureServer, *httptest.Server) {
	cs := &captureServer{t: t, token: token, runID: runID, batch: batch, gzip: gz, failEvery: failEvery,
		acked: map[string]bool{}, seen: map[string]int{}, names: map[string]int{}}
	srv := httptest.NewServer(cs)
	t.Cleanup(srv.Close)
	return cs, srv
}

func (cs *captureServer) fail(format string, args ...any) {
	cs.mu.Lock()
	cs.bad = append(cs.bad, fmt.Sprintf(format, args...))
	cs.mu.Unlock()
}

func (cs *captureServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		cs.fail("method %s", r.Method)
		http.Error(w, "method", http.StatusMethodNotAllowed)
		return
	}
	wantPath := "/e/"
	if cs.batch > 1 {
		wantPath = "/batch/"
	}
	if r.URL.Path != wantPath {
		cs.fail("path %s, want %s", r.URL.Path, wantPath)
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		cs.fail("read: %v", err)
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	if r.ContentLength != int64(len(raw)) {
		cs.fail("content-length %d, body %d", r.ContentLength, len(raw))
	}
	if got := r.URL.Query().Get("compression"); (got == "gzip-js") != cs.gzip {
		cs.fail("compression=%q with gzip=%v", got, cs.gzip)
	}
	if cs.gzip {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err == nil {
			raw, err = io.ReadAll(zr)
		}
		if err != nil {
			cs.fail("gunzip: %v", err)
			http.Error(w, "gzip", http.StatusBadRequest)
			return
		}
	}
	var events []map[string]any
	if cs.batch > 1 {
		var env struct {
			APIKey string           `json:"api_key"`
			Batch  []map[string]any `json:"batch"`
			SentAt string           `json:"sent_at"`
		}
		if err := json.Unmarshal(raw, &env); err != nil {
			cs.fail("batch json: %v: %.200s", err, raw)
			http.Error(w, "json", http.StatusBadRequest)
			return
		}
		if env.APIKey != cs.token {
			cs.fail("api_key %q", env.APIKey)
		}
		if _, err := time.Parse(time.RFC3339, env.SentAt); err != nil {
			cs.fail("sent_at %q: %v", env.SentAt, err)
		}
		if len(env.Batch) != cs.batch {
			cs.fail("batch of %d events, want %d", len(env.Batch), cs.batch)
		}
		events = env.Batch
	} else {
		var ev map[string]any
		if err := json.Unmarshal(raw, &ev); err != nil {
			cs.fail("event json: %v: %.200s", err, raw)
			http.Error(w, "json", http.StatusBadRequest)
			return
		}
		if ev["api_key"] != cs.token {
			cs.fail("api_key %v", ev["api_key"])
		}
		events = []map[string]any{ev}
	}
	var ids []string
	for _, ev := range events {
		ids = append(ids, cs.checkEvent(ev))
	}

	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.reqs++
	for _, id := range ids {
		cs.seen[id]++
	}
	if cs.failEvery > 0 && cs.reqs%cs.failEvery == 0 {
		cs.rejected++
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"error":"spool full"}`, http.StatusServiceUnavailable)
		return
	}
	for _, id := range ids {
		cs.acked[id] = true
	}
	for _, ev := range events {
		cs.names[ev["event"].(string)]++
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"status":1}`)
}

// checkEvent validates one posthog-js-shaped event and returns its uuid.
func (cs *captureServer) checkEvent(ev map[string]any) string {
	id, _ := ev["uuid"].(string)
	u, err := uuid.Parse(id)
	if err != nil || u.Version() != 7 || len(id) != 36 {
		cs.fail("uuid %q: %v", id, err)
	}
	if name, _ := ev["event"].(string); name == "" {
		cs.fail("no event name")
	}
	did, _ := ev["distinct_id"].(string)
	if !strings.HasPrefix(did, cs.runID+":") {
		cs.fail("distinct_id %q lacks run prefix %q", did, cs.runID)
	}
	ts, _ := ev["timestamp"].(string)
	if tt, err := time.Parse(time.RFC3339, ts); err != nil || time.Since(tt) > time.Minute || time.Since(tt) < -time.Minute {
		cs.fail("timestamp %q: %v", ts, err)
	}
	p, ok := ev["properties"].(map[string]any)
	if !ok {
		cs.fail("no properties")
		return id
	}
	for _, k := range []string{"$current_url", "$pathname", "$host", "$lib_version", "$session_id", "$window_id", "$device_id", "distinct_id"} {
		if s, _ := p[k].(string); s == "" {
			cs.fail("property %s missing", k)
		}
	}
	if p["$lib"] != "web" || p["token"] != cs.token || p["arubug_run_id"] != cs.runID || p["distinct_id"] != did {
		cs.fail("properties $lib=%v token=%v run=%v distinct_id=%v", p["$lib"], p["token"], p["arubug_run_id"], p["distinct_id"])
	}
	if !strings.HasSuffix(p["$current_url"].(string), p["$pathname"].(string)) {
		cs.fail("$current_url %v vs $pathname %v", p["$current_url"], p["$pathname"])
	}
	if ev["event"] == "$autocapture" {
		if els, _ := p["$elements"].([]any); len(els) == 0 {
			cs.fail("$autocapture without $elements")
		}
	}
	return id
}

func (cs *captureServer) check(t *testing.T) {
	t.Helper()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for i, b := range cs.bad {
		if i == 10 {
			t.Errorf("... and %d more", len(cs.bad)-10)
			break
		}
		t.Error(b)
	}
	for id, n := range cs.seen {
		if n != 1 {
			t.Errorf("uuid %s sent %d times", id, n)
			break
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestNoopHandler(t *testing.T) {
	srv := httptest.NewServer(NoopHandler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/anything", "application/json", strings.NewReader(`{"x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != `{"status":1}` || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %q %q", resp.StatusCode, b, resp.Header.Get("Content-Type"))
	}
}

func TestRunAgainstNoop(t *testing.T) {
	srv := httptest.NewServer(NoopHandler())
	defer srv.Close()
	res, err := Run(context.Background(), Config{URL: srv.URL, Concurrency: 8, Requests: 400, KeepUUIDs: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 400 || res.OK != 400 || res.Errors != 0 || res.Events != 400 || res.AckedEvents != 400 {
		t.Fatalf("counts: %+v", res)
	}
	if len(res.AckedUUIDs) != 400 || len(slices.Compact(slices.Clone(res.AckedUUIDs))) != 400 {
		t.Fatalf("want 400 unique acked uuids, got %d", len(res.AckedUUIDs))
	}
	if !(res.P50 > 0 && res.P50 <= res.P90 && res.P90 <= res.P99 && res.P99 <= res.Max) {
		t.Fatalf("percentiles not ordered: p50 %v p90 %v p99 %v max %v", res.P50, res.P90, res.P99, res.Max)
	}
	if res.RequestsPerSec <= 0 || res.EventsPerSec != res.OKPerSec || res.Duration <= 0 || !strings.HasPrefix(res.RunID, "load-") {
		t.Fatalf("rates: %+v", res)
	}
}

func TestRunSingleEventsWith503(t *testing.T) {
	const runID = "t-single"
	cs, srv := newCaptureServer(t, "phc_test", runID, 1, false, 7)
	res, err := Run(context.Background(), Config{
		URL: srv.URL, Token: "phc_test", RunID: runID, Concurrency: 6, Requests: 350, KeepUUIDs: true,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs.check(t)
	if res.Requests != 350 || res.OK != 300 || res.Errors != 50 || res.ErrorsByKind["http_503"] != 50 || len(res.ErrorsByKind) != 1 {
		t.Fatalf("counts: requests %d ok %d errors %d kinds %v", res.Requests, res.OK, res.Errors, res.ErrorsByKind)
	}
	if !strings.Contains(res.ErrorSamples["http_503"], "spool full") {
		t.Errorf("503 sample: %q", res.ErrorSamples["http_503"])
	}
	if !slices.Equal(res.AckedUUIDs, sortedKeys(cs.acked)) {
		t.Fatalf("acked uuids differ: loadgen %d, server %d", len(res.AckedUUIDs), len(cs.acked))
	}
	// The mix is posthog-js-like: pageviews, autocaptures and custom events.
	if cs.names["$pageview"] == 0 || cs.names["$autocapture"] == 0 || len(cs.names) < 4 {
		t.Errorf("event mix: %v", cs.names)
	}
}

func TestRunBatchGzip(t *testing.T) {
	for _, full := range []bool{false, true} {
		t.Run(fmt.Sprintf("full=%v", full), func(t *testing.T) {
			runID := fmt.Sprintf("t-batch-%v", full)
			cs, srv := newCaptureServer(t, DefaultToken, runID, 25, true, 5)
			res, err := Run(context.Background(), Config{
				URL: srv.URL, RunID: runID, Concurrency: 4, Requests: 100, BatchSize: 25,
				Gzip: true, GzipFull: full, KeepUUIDs: true,
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			cs.check(t)
			if res.Requests != 100 || res.OK != 80 || res.ErrorsByKind["http_503"] != 20 ||
				res.Events != 2500 || res.AckedEvents != 2000 || len(res.AckedUUIDs) != 2000 {
				t.Fatalf("counts: %+v", res)
			}
			if len(cs.seen) != 2500 {
				t.Fatalf("server saw %d distinct uuids, want 2500", len(cs.seen))
			}
			if !slices.Equal(res.AckedUUIDs, sortedKeys(cs.acked)) {
				t.Fatal("acked uuids differ")
			}
		})
	}
}

func TestRunClickHouseHTTP(t *testing.T) {
	var mu sync.Mutex
	var rows int
	var bad []string
	seen := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Query().Get("input_format_skip_unknown_fields") != "1" || r.URL.Path != "/" {
			bad = append(bad, "url "+r.URL.String())
		}
		head, rest, ok := strings.Cut(string(body), "\n")
		if !ok || head != "INSERT INTO db1.ev FORMAT JSONEachRow" {
			bad = append(bad, "head "+head)
		}
		lines := strings.Split(strings.TrimSuffix(rest, "\n"), "\n")
		if len(lines) != 3 {
			bad = append(bad, fmt.Sprintf("%d rows", len(lines)))
		}
		for _, l := range lines {
			var row map[string]string
			if err := json.Unmarshal([]byte(l), &row); err != nil {
				bad = append(bad, "row "+err.Error())
				continue
			}
			if _, err := time.Parse("2006-01-02 15:04:05", row["timestamp"]); err != nil || row["project"] != "tok" ||
				!strings.HasPrefix(row["distinct_id"], "ch:") || row["event"] == "" || seen[row["uuid"]] {
				bad = append(bad, "row "+l)
			}
			var props map[string]any
			if err := json.Unmarshal([]byte(row["properties"]), &props); err != nil || props["$lib"] != "web" {
				bad = append(bad, "properties "+row["properties"])
			}
			seen[row["uuid"]] = true
			rows++
		}
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Config{
		URL: srv.URL, Mode: ModeClickHouseHTTP, Table: "db1.ev", Token: "tok", RunID: "ch",
		Requests: 40, BatchSize: 3, Concurrency: 4,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, b := range bad[:min(len(bad), 10)] {
		t.Error(b)
	}
	if res.OK != 40 || rows != 120 || len(seen) != 120 {
		t.Fatalf("ok %d rows %d unique %d", res.OK, rows, len(seen))
	}
}

func TestRunErrorKinds(t *testing.T) {
	t.Run("conn_refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		res, err := Run(context.Background(), Config{URL: "http://" + addr, Requests: 20, Concurrency: 2}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Errors != 20 || res.ErrorsByKind["conn_refused"] != 20 || res.OK != 0 || res.P99 != 0 {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		defer close(release)
		res, err := Run(context.Background(), Config{URL: srv.URL, Requests: 4, Concurrency: 2, Timeout: 50 * time.Millisecond}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.ErrorsByKind["timeout"] != 4 {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("http_400", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "bad token", http.StatusBadRequest)
		}))
		defer srv.Close()
		res, err := Run(context.Background(), Config{URL: srv.URL, Requests: 10, Concurrency: 3}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.ErrorsByKind["http_400"] != 10 || res.ErrorSamples["http_400"] != "400 bad token" {
			t.Fatalf("%+v", res)
		}
	})
}

func TestRunDuration(t *testing.T) {
	srv := httptest.NewServer(NoopHandler())
	defer srv.Close()
	res, err := Run(context.Background(), Config{URL: srv.URL, Duration: 300 * time.Millisecond, Concurrency: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors != 0 || res.Duration < 300*time.Millisecond || res.Duration > 5*time.Second {
		t.Fatalf("%+v", res)
	}
}

// Pacing is asserted on counts and on lower bounds of time (a paced run
// cannot finish before its schedule), never on upper bounds of speed.
func TestRunRate(t *testing.T) {
	srv := httptest.NewServer(NoopHandler())
	defer srv.Close()
	t.Run("requests", func(t *testing.T) {
		res, err := Run(context.Background(), Config{URL: srv.URL, Rate: 200, Requests: 41, Concurrency: 4}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests != 41 || res.OK != 41 {
			t.Fatalf("%+v", res)
		}
		if res.Duration < 190*time.Millisecond { // 40 intervals of 5ms
			t.Fatalf("41 requests at 200/s took only %v", res.Duration)
		}
	})
	t.Run("duration", func(t *testing.T) {
		res, err := Run(context.Background(), Config{URL: srv.URL, Rate: 100, Duration: 500 * time.Millisecond, Concurrency: 4}, nil)
		if err != nil {
			t.Fatal(err)
		}
		// 50 send times fall into the 500ms; allow a slow machine to miss some.
		if res.Requests+res.Unsent != 50 || res.Requests < 25 {
			t.Fatalf("requests %d unsent %d, want 50 in all", res.Requests, res.Unsent)
		}
	})
	t.Run("behind", func(t *testing.T) {
		// One worker, 20ms per request, asked for 1000/s: most send times
		// are missed, and latency counts from the schedule.
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(20 * time.Millisecond)
		}))
		defer slow.Close()
		res, err := Run(context.Background(), Config{URL: slow.URL, Rate: 1000, Duration: 300 * time.Millisecond, Concurrency: 1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Unsent < 200 || res.Requests > 30 || res.Requests+res.Unsent != 300 {
			t.Fatalf("requests %d unsent %d", res.Requests, res.Unsent)
		}
		if res.Max < 40*time.Millisecond {
			t.Fatalf("max latency %v does not include the queueing delay", res.Max)
		}
	})
}

func TestRunCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if served.Add(1) == 20 {
			cancel() // the caller gives up while requests are in flight
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	res, err := Run(ctx, Config{URL: srv.URL, Duration: time.Minute, Concurrency: 4}, nil)
	if err != context.Canceled {
		t.Fatalf("err %v", err)
	}
	if res.Errors != 0 || res.OK < 10 || res.OK > 20 || res.Duration > 30*time.Second {
		t.Fatalf("cancelled requests must not count: %+v", res)
	}
}

func TestProgress(t *testing.T) {
	srv := httptest.NewServer(NoopHandler())
	defer srv.Close()
	var buf bytes.Buffer
	_, err := Run(context.Background(), Config{URL: srv.URL, Duration: 250 * time.Millisecond, ProgressInterval: 50 * time.Millisecond}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) < 3 || strings.Contains(buf.String(), "\r") {
		t.Fatalf("progress:\n%s", buf.String())
	}
	last := lines[len(lines)-1]
	for _, want := range []string{"reqs ", "req/s ", "errors 0", "p99 ", "done"} {
		if !strings.Contains(last, want) {
			t.Errorf("last progress line %q lacks %q", last, want)
		}
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{URL: "http://h:1"}, "http://h:1/e/"},
		{Config{URL: "http://h:1/", BatchSize: 5}, "http://h:1/batch/"},
		{Config{URL: "http://h:1", Gzip: true, Path: "/i/v0/e/"}, "http://h:1/i/v0/e/?compression=gzip-js"},
		{Config{URL: "http://h:8123", Mode: ModeClickHouseHTTP}, "http://h:8123/?input_format_skip_unknown_fields=1"},
	} {
		cfg, err := tc.cfg.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		got, err := cfg.targetURL()
		if err != nil || got != tc.want {
			t.Errorf("%+v: got %q %v, want %q", tc.cfg, got, err, tc.want)
		}
	}
	for _, bad := range []Config{
		{}, {URL: "ftp://x"}, {URL: "http://x", Mode: "nope"}, {URL: "http://x", RunID: "a:b"},
		{URL: "http://x", Concurrency: -1}, {URL: "http://x", Mode: ModeClickHouseHTTP, Table: "x; DROP"},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	rng := rand.New(rand.NewPCG(1, 2))
	var vals []time.Duration
	for range 100000 {
		// log-uniform over 10µs..1s
		v := time.Duration(10e3 * float64(int64(1)<<rng.IntN(17)) * (1 + rng.Float64()))
		vals = append(vals, v)
		h.record(v)
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
		got := h.quantile(q)
		if rel := float64(got-exact) / float64(exact); rel < -0.02 || rel > 0.02 {
			t.Errorf("q%.3f: got %v, exact %v (%.1f%%)", q, got, exact, rel*100)
		}
	}
	for _, v := range []int64{0, 1, 127, 128, 129, 1000, 1 << 40, 1<<62 + 12345} {
		b := bucketOf(v)
		if hi := bucketHigh(b); hi < v || (b > 0 && bucketHigh(b-1) >= v) {
			t.Errorf("value %d: bucket %d high %d", v, b, hi)
		}
	}
	if (&histogram{}).quantile(0.5) != 0 {
		t.Error("empty histogram")
	}
}

func TestTemplateHoles(t *testing.T) {
	g := newGenerator(Config{Mode: ModeCapture, BatchSize: 3, RunID: "r", Token: "tok", PoolSize: 8})
	var rs renderState
	cur := 0
	now := time.Date(2025, 1, 2, 3, 4, 5, 678e6, time.UTC)
	b, _ := g.render(nil, nil, &cur, now, &rs)
	if bytes.Contains(b, []byte("@@")) || !bytes.Contains(b, []byte(`"sent_at":"2025-01-02T03:04:05.678Z"`)) || len(rs.uuids) != 3 {
		t.Fatalf("%s", b)
	}
	for _, u := range rs.uuids {
		if !bytes.Contains(b, []byte(`"uuid":"`+u.String()+`"`)) {
			t.Fatalf("uuid %s not in body", u)
		}
	}
}

// The spliced gzip stream must decompress (CRC and size checked by
// gzip.Reader) to exactly the rendered JSON, in every body shape.
func TestGzipSplice(t *testing.T) {
	for _, cfg := range []Config{
		{Mode: ModeCapture, BatchSize: 1},
		{Mode: ModeCapture, BatchSize: 2},
		{Mode: ModeCapture, BatchSize: 7},
		{Mode: ModeClickHouseHTTP, BatchSize: 3, Table: "a.b"},
	} {
		cfg.Gzip, cfg.RunID, cfg.Token = true, "gz@x", "tok@@y"
		cfg.PoolSize = 16
		g := newGenerator(cfg)
		var rs renderState
		cur := 0
		var plain, zipped int
		for range 40 {
			rs.uuids = rs.uuids[:0]
			raw, gz := g.render(nil, nil, &cur, time.Now(), &rs)
			zr, err := gzip.NewReader(bytes.NewReader(gz))
			if err != nil {
				t.Fatalf("%+v: %v", cfg, err)
			}
			got, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(got, raw) {
				t.Fatalf("%+v: gunzip: %v\n got %q\nwant %q", cfg, err, got, raw)
			}
			plain += len(raw)
			zipped += len(gz)
		}
		if zipped*3 > plain*2 { // even a single event compresses over 1.5x
			t.Errorf("%+v: gzip %d bytes for %d plain", cfg, zipped, plain)
		}
	}
}

// BenchmarkRender measures the generator's own cost per request body, as a
// worker builds it: one fresh UUIDv7 per event, timestamps, template copy,
// and gzip (spliced precompressed pieces, or compress/gzip with GzipFull).
func BenchmarkRender(b *testing.B) {
	for _, bc := range []struct {
		name          string
		batch         int
		gzip, gzipAll bool
	}{
		{"single", 1, false, false}, {"single-gzip", 1, true, false}, {"single-gzipfull", 1, true, true},
		{"batch50", 50, false, false}, {"batch50-gzip", 50, true, false}, {"batch50-gzipfull", 50, true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg, err := Config{URL: "http://x", BatchSize: bc.batch, Gzip: bc.gzip, GzipFull: bc.gzipAll, RunID: "bench"}.withDefaults()
			if err != nil {
				b.Fatal(err)
			}
			r := &runner{cfg: cfg, gen: newGenerator(cfg)}
			w := &worker{}
			var body []byte
			b.ReportAllocs()
			for b.Loop() {
				w.rs.uuids = w.rs.uuids[:0]
				body = r.build(w, body[:0], time.Now())
			}
			b.SetBytes(int64(len(w.raw) + len(body))) // len(w.raw) is 0 without gzip
			b.ReportMetric(float64(len(body)), "wire-bytes")
		})
	}
}

func TestOnAckAndOnError(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if n.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"status":1}`))
	}))
	defer srv.Close()
	var mu sync.Mutex
	var acked, errs int
	kinds := map[string]int{}
	var h Histogram
	res, err := Run(context.Background(), Config{
		URL: srv.URL, Requests: 20, Concurrency: 2, BatchSize: 5,
		OnAck: func(ids []uuid.UUID, at time.Time, lat time.Duration) {
			mu.Lock()
			acked += len(ids)
			mu.Unlock()
			h.Record(lat)
		},
		OnError: func(kind string) { mu.Lock(); errs++; kinds[kind]++; mu.Unlock() },
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if acked != res.AckedEvents || acked != 50 || errs != res.Errors || kinds["http_503"] != 10 {
		t.Errorf("OnAck saw %d events, OnError %d (%v); result %d acked, %d errors", acked, errs, kinds, res.AckedEvents, res.Errors)
	}
	if h.Count() != 10 || h.Quantile(0.5) <= 0 || h.Max() < h.Quantile(0.5) {
		t.Errorf("histogram: %d samples, p50 %s, max %s", h.Count(), h.Quantile(0.5), h.Max())
	}
}
