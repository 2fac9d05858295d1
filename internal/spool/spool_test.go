package spool

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/arubug/arubug/internal/bugreport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func events(prefix string, n int) []bugreport.Event {
	out := make([]bugreport.Event, n)
	for i := range out {
		var id bugreport.UUID
		copy(id[:], fmt.Sprintf("%-16s", fmt.Sprintf("%s%d", prefix, i)))
		out[i] = bugreport.Event{UUID: id, Project: "p", Event: "e", DistinctID: fmt.Sprintf("%s-%d", prefix, i), Properties: `{"a":1}`,
			Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)}
	}
	return out
}

func open(t *testing.T, path string, max int64) *Spool {
	t.Helper()
	s, err := Open(Options{Dir: path, MaxBytes: max})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAppendPeekAckSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.db")
	s := open(t, path, 1<<20)
	ctx := context.Background()
	if err := s.Append(ctx, events("a", 3)); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, events("b", 2)); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Stats(); n != 5 {
		t.Fatalf("events %d, want 5", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path, 1<<20)
	defer s.Close()
	n, bytes := s.Stats()
	if n != 5 || bytes == 0 {
		t.Fatalf("after reopen: %d events %d bytes, want 5 events", n, bytes)
	}
	b, err := s.Peek(3, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	// Peek returns whole records: the first holds 3 events, which fills it.
	if b.Len() != 3 || b.Events[0].DistinctID != "a-0" || b.Events[2].DistinctID != "a-2" {
		t.Fatalf("peek: %+v", b.Events)
	}
	if got := b.Events[0].Timestamp; !got.Equal(time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)) {
		t.Errorf("timestamp round trip: %s", got)
	}
	if err := s.Ack(b); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(b); err == nil {
		t.Fatal("a batch was acknowledged twice")
	}
	// The acknowledgement is durable: the next process starts after it.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path, 1<<20)
	defer s.Close()
	if n, _ := s.Stats(); n != 2 {
		t.Fatalf("after ack and reopen: %d events, want 2", n)
	}
	b, _ = s.Peek(100, 1<<20)
	if b.Len() != 2 || b.Events[0].DistinctID != "b-0" {
		t.Fatalf("after ack: %+v", b.Events)
	}
	if err := s.Ack(b); err != nil {
		t.Fatal(err)
	}
	if n, bytes := s.Stats(); n != 0 || bytes != 0 {
		t.Fatalf("after acking all: %d events, %d bytes", n, bytes)
	}
}

func TestFullSpoolRefusesWithRetryAfter(t *testing.T) {
	s, err := Open(Options{Dir: filepath.Join(t.TempDir(), "s.db"), MaxBytes: 2000, RetryAfter: 7 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	accepted := 0
	var refusal error
	for i := 0; i < 100; i++ {
		if err := s.Append(ctx, events("x", 1)); err != nil {
			refusal = err
			break
		}
		accepted++
	}
	var e *bugreport.Error
	if !errors.As(refusal, &e) || e.Code != bugreport.EUNAVAILABLE || e.RetryAfter != 7*time.Second {
		t.Fatalf("refusal %v, want EUNAVAILABLE with 7s", refusal)
	}
	if n, b := s.Stats(); n != int64(accepted) || b > 2000 {
		t.Fatalf("stats %d events %d bytes after %d accepted (limit 2000)", n, b, accepted)
	}
	// Draining makes room again.
	b, _ := s.Peek(1000, 1<<20)
	if err := s.Ack(b); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, events("y", 1)); err != nil {
		t.Fatalf("after draining: %v", err)
	}
}

func TestGroupCommitUnderConcurrency(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := Open(Options{Dir: filepath.Join(t.TempDir(), "s.db"), MaxBytes: 64 << 20, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const writers, each = 32, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				errs <- s.Append(context.Background(), events(fmt.Sprintf("w%d-%d-", w, i), 1))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := s.Stats(); n != writers*each {
		t.Fatalf("%d events, want %d", n, writers*each)
	}
	// Fewer commits than appends proves appends shared fsyncs.
	commits := histogramCount(t, reg, "arubug_spool_commit_requests")
	if commits >= writers*each {
		t.Errorf("%d commits for %d appends: no group commit", commits, writers*each)
	}
	t.Logf("%d appends in %d commits", writers*each, commits)
}

func histogramCount(t *testing.T, g prometheus.Gatherer, name string) uint64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func TestClosedSpoolRefuses(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"), 1<<20)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	err := s.Append(context.Background(), events("a", 1))
	if bugreport.ErrorCode(err) != bugreport.EUNAVAILABLE {
		t.Fatalf("append after close: %v", err)
	}
}

func TestSecondOpenIsRefusedClearly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := open(t, path, 1<<20)
	defer s.Close()
	_, err := Open(Options{Dir: path, MaxBytes: 1 << 20})
	if err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second open: %v", err)
	}
}

// scriptedWriter is an EventWriter that fails the first failures calls and
// records what it stores.
type scriptedWriter struct {
	mu       sync.Mutex
	failures int
	calls    int
	got      map[bugreport.UUID]int
	batches  []int
}

func (w *scriptedWriter) WriteEvents(_ context.Context, evs []bugreport.Event) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	if w.calls <= w.failures {
		return errors.New("injected clickhouse failure")
	}
	if w.got == nil {
		w.got = map[bugreport.UUID]int{}
	}
	for _, e := range evs {
		w.got[e.UUID]++
	}
	w.batches = append(w.batches, len(evs))
	return nil
}

// drainUntil runs Drain with o until done reports true (or 5 s pass), then
// stops it, final flush included. It reports whether done came true before
// the stop.
func drainUntil(s *Spool, w bugreport.EventWriter, o DrainOptions, done func() bool) bool {
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		s.Drain(ctx, w, o)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !done() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	ok := done()
	cancel()
	<-stopped
	return ok
}

func (w *scriptedWriter) writes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.batches)
}

func (w *scriptedWriter) stored() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.got)
}

func TestDrainRetriesThenDeliversEverythingOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := Open(Options{Dir: filepath.Join(t.TempDir(), "s.db"), MaxBytes: 16 << 20, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := &scriptedWriter{failures: 3}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Drain(ctx, w, DrainOptions{BatchEvents: 50, FlushInterval: 20 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Registerer: reg})
	}()
	for i := 0; i < 20; i++ {
		if err := s.Append(context.Background(), events(fmt.Sprintf("r%d-", i), 10)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for w.stored() < 200 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if w.stored() != 200 {
		t.Fatalf("stored %d distinct events, want 200", w.stored())
	}
	for id, n := range w.got {
		if n != 1 {
			t.Errorf("event %x written %d times", id, n)
		}
	}
	if got := counterValue(t, reg, "arubug_clickhouse_insert_errors_total"); got != 3 {
		t.Errorf("insert errors metric %v, want 3", got)
	}
	if n, _ := s.Stats(); n != 0 {
		t.Errorf("%d events left in spool", n)
	}
	for _, b := range w.batches {
		if b > 50+10 {
			t.Errorf("batch of %d events exceeds BatchEvents plus one record", b)
		}
	}
}

func counterValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, _ := g.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func TestDrainFinalFlushOnShutdown(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"), 1<<20)
	defer s.Close()
	if err := s.Append(context.Background(), events("f", 5)); err != nil {
		t.Fatal(err)
	}
	w := &scriptedWriter{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // already shutting down: only the final flush runs
	s.Drain(ctx, w, DrainOptions{FlushInterval: time.Hour})
	if w.stored() != 5 {
		t.Fatalf("final flush stored %d, want 5", w.stored())
	}
}

func TestDrainWaitsForBatchOrInterval(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"), 1<<20)
	defer s.Close()
	w := &scriptedWriter{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Drain(ctx, w, DrainOptions{BatchEvents: 1000, FlushInterval: 300 * time.Millisecond})
	}()
	for i := 0; i < 5; i++ {
		_ = s.Append(context.Background(), events(fmt.Sprintf("i%d-", i), 2))
	}
	deadline := time.Now().Add(5 * time.Second)
	for w.stored() < 10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	// Small appends close together go out as one insert, not five.
	if len(w.batches) != 1 || w.batches[0] != 10 {
		t.Fatalf("batches %v, want one of 10", w.batches)
	}
}

func TestCodecRoundTripAndCorruption(t *testing.T) {
	in := events("c", 3)
	in[1].Properties = `{"ü":"日本","x":"<&>"}`
	in[2].Set, in[2].SetOnce, in[2].IP = `{"a":1}`, `{"b":2}`, "::1"
	in[0].CreatedAt = time.Date(2026, 11, 27, 1, 2, 3, 4, time.UTC)
	b := appendEvents(nil, in)
	out, err := decodeEvents(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		if in[i] != out[i] {
			t.Errorf("event %d\n got %+v\nwant %+v", i, out[i], in[i])
		}
	}
	for cut := 0; cut < len(b); cut += 7 {
		if _, err := decodeEvents(b[:cut]); err == nil {
			t.Fatalf("truncated record of %d bytes decoded", cut)
		}
	}
	if _, err := decodeEvents(append(b, 0)); err == nil {
		t.Error("record with trailing bytes decoded")
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendEvents(nil, events("f", 2)))
	f.Add([]byte{codecVersion, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := decodeEvents(b)
		if err != nil {
			return
		}
		// Varints have overlong forms, so compare decoded values, not bytes.
		again, err := decodeEvents(appendEvents(nil, evs))
		if err != nil || len(again) != len(evs) {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		for i := range evs {
			if again[i] != evs[i] {
				t.Fatalf("event %d changed in a round trip", i)
			}
		}
	})
}

func TestDrainWritesByteLimitedBatchesWithoutWaiting(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"), 16<<20)
	defer s.Close()
	big := events("big", 1)
	big[0].Properties = `{"pad":"` + strings.Repeat("x", 4000) + `"}`
	for i := 0; i < 6; i++ {
		if err := s.Append(context.Background(), big); err != nil {
			t.Fatal(err)
		}
	}
	w := &scriptedWriter{}
	// Batches are cut by bytes (two records each), never by count, and the
	// flush interval is an hour: only "full" explains a write. The six
	// records share one UUID, so count the batches, not the distinct
	// events. The last two are not full: they wait for the interval (here
	// the final flush).
	if !drainUntil(s, w, DrainOptions{BatchEvents: 1000, BatchBytes: 9000, FlushInterval: time.Hour},
		func() bool { return w.writes() >= 2 }) {
		t.Fatalf("batches %v: the full batches waited for the flush interval", w.batches)
	}
	if len(w.batches) < 2 || w.batches[0] != 2 || w.batches[1] != 2 {
		t.Fatalf("batches %v: byte-limited batches were not written at once", w.batches)
	}
}
