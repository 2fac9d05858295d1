package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/arubug/arubug/internal/clickhouse"
	"github.com/arubug/arubug/internal/clickhouse/localch/localchtest"
	"github.com/arubug/arubug/internal/loadgen"
)

// load runs loadgen against in until ctx ends or d passes and returns the
// UUIDs acknowledged with a 2xx.
func startLoad(ctx context.Context, t *testing.T, baseURL string, cfg loadgen.Config) <-chan loadgen.Result {
	t.Helper()
	return goLoad(ctx, t, baseURL, cfg, false)
}

// goLoad runs loadgen in the background; with untilCancelled, the
// cancellation of ctx is the load's normal end rather than an error.
func goLoad(ctx context.Context, t *testing.T, baseURL string, cfg loadgen.Config, untilCancelled bool) <-chan loadgen.Result {
	t.Helper()
	cfg.URL = baseURL
	cfg.Token = testToken
	cfg.KeepUUIDs = true
	cfg.Timeout = 5 * time.Second
	out := make(chan loadgen.Result, 1)
	go func() {
		res, err := loadgen.Run(ctx, cfg, io.Discard)
		if err != nil && !(untilCancelled && errors.Is(err, context.Canceled)) {
			t.Errorf("load %s: %v", cfg.RunID, err)
		}
		out <- res
	}()
	return out
}

// checkExactlyOnce asserts that every acknowledged UUID is in the events
// table exactly once after OPTIMIZE … FINAL.
func checkExactlyOnce(t *testing.T, db *clickhouse.DB, prefix string, acked []string) {
	t.Helper()
	if len(acked) == 0 {
		t.Fatalf("%s: no event was acknowledged; the test proves nothing", prefix)
	}
	waitFor(t, 60*time.Second, "every acknowledged event in ClickHouse", func() (bool, string) {
		counts := uuidCounts(t, db, prefix, false)
		missing := 0
		for _, id := range acked {
			if counts[id] == 0 {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d acknowledged events missing", missing, len(acked))
	})
	counts := uuidCounts(t, db, prefix, true)
	dups := 0
	for _, id := range acked {
		if counts[id] != 1 {
			dups++
			if dups < 5 {
				t.Errorf("%s: event %s has %d rows after OPTIMIZE FINAL", prefix, id, counts[id])
			}
		}
	}
	if dups > 0 {
		t.Errorf("%s: %d of %d acknowledged events are not stored exactly once", prefix, dups, len(acked))
	}
	t.Logf("%s: %d acknowledged events, all stored exactly once (%d rows for the run)", prefix, len(acked), len(counts))
}

// TestKill9MidLoadLosesNothingAndDuplicatesNothing kills the collector with
// SIGKILL twice while it takes single events and batches, restarts it on
// the same data dir, and checks that every 2xx'd event is in ClickHouse
// exactly once.
func TestKill9MidLoadLosesNothingAndDuplicatesNothing(t *testing.T) {
	dsn := localchtest.DSN(t)
	in := startArubug(t, dsn)
	db := openDB(t, dsn)
	run := "kill-" + uuid.NewString()[:8]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	singles := startLoad(ctx, t, "http://"+in.addr, loadgen.Config{RunID: run + "s", Concurrency: 12, Duration: 9 * time.Second, BatchSize: 1})
	batches := startLoad(ctx, t, "http://"+in.addr, loadgen.Config{RunID: run + "b", Concurrency: 4, Duration: 9 * time.Second, BatchSize: 40, Gzip: true})
	for _, at := range []time.Duration{2500 * time.Millisecond, 3 * time.Second} {
		time.Sleep(at)
		in.kill()
		t.Logf("killed arubug with SIGKILL")
		time.Sleep(200 * time.Millisecond)
		in.start()
	}
	rs, rb := <-singles, <-batches
	t.Logf("singles: %d requests, %d ok, errors %v", rs.Requests, rs.OK, rs.ErrorsByKind)
	t.Logf("batches: %d requests, %d ok, errors %v", rb.Requests, rb.OK, rb.ErrorsByKind)
	if rs.Errors == 0 && rb.Errors == 0 {
		t.Error("no request failed: the kills did not land mid-load")
	}
	if !logHas(in.log(), "spool recovered events from a previous run") {
		t.Log("note: no kill left events in the spool this time (they had all been drained)")
	}
	checkExactlyOnce(t, db, run+"s:", rs.AckedUUIDs)
	checkExactlyOnce(t, db, run+"b:", rb.AckedUUIDs)
}

// TestClickHouseOutage stops ClickHouse for 30 s under load: capture keeps
// answering 2xx from the spool, readiness reports the outage, and after the
// restart everything drains by itself.
func TestClickHouseOutage(t *testing.T) {
	srv := localchtest.NewServer(t)
	dsn := srv.DSN("arubug_outage")
	in := startArubug(t, dsn)
	run := "outage-" + uuid.NewString()[:8]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := startLoad(ctx, t, "http://"+in.addr, loadgen.Config{RunID: run, Concurrency: 16, Duration: 42 * time.Second, Rate: 150, BatchSize: 5})

	time.Sleep(4 * time.Second)
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := srv.Stop(stopCtx); err != nil {
		t.Fatalf("stop clickhouse: %v", err)
	}
	stopCancel()
	t.Log("clickhouse stopped")
	waitFor(t, 15*time.Second, "readiness to report clickhouse down", func() (bool, string) {
		resp, err := http.Get(in.url("/_ready"))
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var body struct{ Checks map[string]string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode == 503 && body.Checks["clickhouse"] != "ok", fmt.Sprintf("%d %v", resp.StatusCode, body.Checks)
	})
	time.Sleep(26 * time.Second)
	startCtx, startCancel := context.WithTimeout(context.Background(), 60*time.Second)
	if err := srv.Restart(startCtx); err != nil {
		t.Fatalf("restart clickhouse: %v", err)
	}
	startCancel()
	t.Log("clickhouse started again")
	res := <-results
	t.Logf("load: %d requests, %d ok, p99 %s, errors %v", res.Requests, res.OK, res.P99, res.ErrorsByKind)
	if res.Errors != 0 {
		t.Errorf("capture refused %d requests while the spool had room: %v %v", res.Errors, res.ErrorsByKind, res.ErrorSamples)
	}
	if res.OK < 1500 {
		t.Errorf("only %d requests acknowledged; the load did not run through the outage", res.OK)
	}
	if !logHas(in.log(), "clickhouse insert failed; will retry") {
		t.Error("the log does not show the failed inserts during the outage")
	}
	db := openDB(t, dsn)
	checkExactlyOnce(t, db, run+":", res.AckedUUIDs)
	waitFor(t, 15*time.Second, "readiness after recovery", func() (bool, string) {
		resp, err := http.Get(in.url("/_ready"))
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, fmt.Sprint(resp.StatusCode)
	})
}

// TestFullSpoolAnswers503ThenRecovers fills a small spool while ClickHouse
// is down: capture answers 503 with Retry-After and a JSON reason, nothing
// acknowledged is lost, and capture accepts again once the spool drains.
func TestFullSpoolAnswers503ThenRecovers(t *testing.T) {
	srv := localchtest.NewServer(t)
	dsn := srv.DSN("arubug_full")
	// Create the schema first, then take ClickHouse away.
	in := startArubug(t, dsn, "ARUBUG_SPOOL_MAX_BYTES=2MiB", "ARUBUG_MAX_DECOMPRESSED_BYTES=1MiB", "ARUBUG_MAX_BATCH_BODY_BYTES=512KiB")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	run := "full-" + uuid.NewString()[:8]
	var acked []string
	var status int
	var body string
	var hdr http.Header
	for i := 0; i < 500; i++ {
		var events []string
		var ids []string
		for j := 0; j < 50; j++ {
			id := uuid.Must(uuid.NewV7()).String()
			ids = append(ids, id)
			events = append(events, fmt.Sprintf(`{"event":"fill","distinct_id":"%s:u%d","uuid":%q,"properties":{"pad":%q}}`, run, j, id, strings.Repeat("x", 300)))
		}
		status, body, hdr = post(t, in.url("/batch/"), "application/json", strings.NewReader(fmt.Sprintf(`{"api_key":%q,"batch":[%s]}`, testToken, strings.Join(events, ","))))
		if status != 200 {
			break
		}
		acked = append(acked, ids...)
	}
	if status != 503 {
		t.Fatalf("spool never filled: last status %d %s", status, body)
	}
	var e struct{ Type, Code, Detail string }
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Code != "spool_full" || hdr.Get("Retry-After") == "" {
		t.Fatalf("503 answer: %s (Retry-After %q)", body, hdr.Get("Retry-After"))
	}
	t.Logf("spool full after %d acknowledged events: %s", len(acked), body)
	resp, err := http.Get(in.url("/_ready"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("/_ready answered %d with a full spool", resp.StatusCode)
	}

	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	db := openDB(t, dsn)
	checkExactlyOnce(t, db, run+":", acked)
	id := uuid.Must(uuid.NewV7()).String()
	waitFor(t, 20*time.Second, "capture to accept again", func() (bool, string) {
		code, b, _ := post(t, in.url("/e/"), "application/json", strings.NewReader(fmt.Sprintf(`{"api_key":%q,"event":"after","distinct_id":"%s:after","uuid":%q}`, testToken, run, id)))
		return code == 200, fmt.Sprint(code, b)
	})
}

// TestSIGTERMFlushesAndStops checks graceful shutdown: in-flight requests
// finish, the spool is flushed to ClickHouse, and the process exits 0.
func TestSIGTERMFlushesAndStops(t *testing.T) {
	dsn := localchtest.DSN(t)
	// A long flush interval keeps events in the spool until shutdown.
	in := startArubug(t, dsn, "ARUBUG_FLUSH_INTERVAL=1h", "ARUBUG_BATCH_EVENTS=1000000")
	db := openDB(t, dsn)
	run := "term-" + uuid.NewString()[:8]
	var wg sync.WaitGroup
	var mu sync.Mutex
	var acked []string
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				id := uuid.Must(uuid.NewV7()).String()
				resp, err := http.Post(in.url("/e/"), "application/json", strings.NewReader(fmt.Sprintf(`{"api_key":%q,"event":"t","distinct_id":"%s:%d","uuid":%q}`, testToken, run, w, id)))
				if err != nil {
					return
				}
				resp.Body.Close()
				if resp.StatusCode == 200 {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if n := len(uuidCounts(t, db, run+":", false)); n != 0 {
		t.Fatalf("%d events reached ClickHouse before shutdown; the test needs them in the spool", n)
	}
	if err := in.terminate(30 * time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if !strings.Contains(in.log(), `"events_left_in_spool":0`) {
		t.Errorf("shutdown did not report an empty spool")
	}
	checkExactlyOnce(t, db, run+":", acked)
}
