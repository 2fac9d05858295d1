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

	"github.com/arubug/arubug/internal/bugreport"
)

// checkingWriter verifies every event's strings against its UUID while
// the insert runs, and again (from its own copy) later: a released buffer
// reused under a live batch shows up as a mismatch.
type checkingWriter struct {
	mu    sync.Mutex
	calls int
	fail  map[int]bool
	bad   []string
	got   map[string]bool
}

func (w *checkingWriter) WriteEvents(_ context.Context, evs []bugreport.Event) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	for _, e := range evs {
		want := strings.TrimSpace(string(e.UUID[:]))
		if !strings.HasPrefix(e.DistinctID, strings.TrimRight(want, "0123456789")) || e.Properties != `{"a":1}` {
			w.bad = append(w.bad, fmt.Sprintf("%q/%q", want, e.DistinctID))
		}
	}
	if w.fail[w.calls] {
		return errors.New("injected")
	}
	if w.got == nil {
		w.got = map[string]bool{}
	}
	for _, e := range evs {
		w.got[strings.Clone(e.DistinctID)] = true
	}
	return nil
}

func TestDrainEventsIntactAcrossRetriesAndBufferReuse(t *testing.T) {
	s, err := Open(Options{Dir: filepath.Join(t.TempDir(), "l"), MaxBytes: 1 << 30, SegmentBytes: 2000})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := &checkingWriter{fail: map[int]bool{2: true, 3: true, 7: true}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Drain(ctx, w, DrainOptions{BatchEvents: 9, BatchBytes: 1500, FlushInterval: time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
	}()
	total := 0
	for i := 0; i < 150; i++ {
		if err := s.Append(context.Background(), events(fmt.Sprintf("q%d-", i), 1+i%4)); err != nil {
			t.Fatal(err)
		}
		total += 1 + i%4
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		n := len(w.got)
		w.mu.Unlock()
		if n >= total {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if len(w.bad) > 0 {
		t.Fatalf("%d events with strings not their own, e.g. %v", len(w.bad), w.bad[:min(3, len(w.bad))])
	}
	if len(w.got) != total {
		t.Fatalf("got %d want %d", len(w.got), total)
	}
}
