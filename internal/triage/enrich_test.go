package triage

import (
	"context"
	"encoding/binary"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/routing"
)

// fakeEnricher answers from memory and counts SessionStart calls.
type fakeEnricher struct {
	mu            sync.Mutex
	sessionStarts int
	start         time.Time
	usage         *bugreport.Usage
}

func (f *fakeEnricher) SessionStart(ctx context.Context, project, sessionID string) (time.Time, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessionStarts++
	return f.start, !f.start.IsZero(), nil
}

func (f *fakeEnricher) Usage(ctx context.Context, project, distinctID, deviceID string, at time.Time) (*bugreport.Usage, error) {
	return f.usage, nil
}

// fakeStore records the fingerprints SimilarCount was asked about.
type fakeStore struct {
	mu      sync.Mutex
	similar []string
}

func (s *fakeStore) PendingReportEvents(context.Context, []string, time.Time, time.Duration, int) ([]bugreport.Event, error) {
	return nil, nil
}
func (s *fakeStore) SaveReport(context.Context, *bugreport.Report, string) error { return nil }
func (s *fakeStore) ReportsWithoutUsage(context.Context, time.Time, int) ([]*bugreport.Report, error) {
	return nil, nil
}
func (s *fakeStore) SimilarCount(ctx context.Context, project, fingerprint string, since time.Time, exclude bugreport.UUID) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.similar = append(s.similar, fingerprint)
	return 2, nil
}

func sessionV7(t time.Time) string {
	var u uuid.UUID
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(t.UnixMilli()))
	copy(u[:6], ms[2:])
	u[6], u[8], u[15] = 0x70, 0x80, 7
	return u.String()
}

func TestTriageReplayOffsetAndSimilarCount(t *testing.T) {
	rules, err := routing.Parse("rules.yaml", []byte(testRules), routing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 20, 12, 0, 0, 0, time.UTC)
	stored := at.Add(-10 * time.Minute) // the session's first stored event
	noExceptions := &bugreport.Usage{Events30d: 1}
	withException := &bugreport.Usage{Events30d: 1, RecentExceptions: []bugreport.Exception{{Type: "TypeError", Message: "x is undefined", At: at}}}
	tests := []struct {
		name          string
		session       string
		usage         *bugreport.Usage
		wantT         string
		sessionStarts int
		similarCalls  int
	}{
		{name: "uuidv7 session: offset from the id, no query", session: sessionV7(at.Add(-90*time.Second - 600*time.Millisecond)), usage: noExceptions,
			wantT: "?t=90", similarCalls: 1},
		{name: "plain session id: offset from the stored events", session: "s1", usage: noExceptions,
			wantT: "?t=600", sessionStarts: 1, similarCalls: 1},
		{name: "uuidv7 from a clock ahead of the report: queried", session: sessionV7(at.Add(time.Hour)), usage: noExceptions,
			wantT: "?t=600", sessionStarts: 1, similarCalls: 1},
		{name: "uuidv7 older than a session: queried", session: sessionV7(at.Add(-25 * time.Hour)), usage: noExceptions,
			wantT: "?t=600", sessionStarts: 1, similarCalls: 1},
		{name: "an exception changes the fingerprint: counted again", session: sessionV7(at.Add(-time.Second)), usage: withException,
			wantT: "?t=1", similarCalls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			en := &fakeEnricher{start: stored, usage: tt.usage}
			st := &fakeStore{}
			w, err := New(Config{Store: st, Enricher: en, Rules: func() Router { return rules },
				Projects: []bugreport.Project{{Name: "shop", Token: "phc_shop", ReplayHost: "https://eu.posthog.com"}}})
			if err != nil {
				t.Fatal(err)
			}
			r := w.Triage(context.Background(), bugreport.Event{UUID: bugreport.UUID{1}, Project: "shop", Event: bugreport.EventBugReport,
				DistinctID: "ana", Timestamp: at, CreatedAt: at, SessionID: tt.session, Pathname: "/billing/refunds",
				Properties: `{"$description":"Refund button missing","$time_to_submit_ms":8000,"$console":[{"level":"error","message":"boom 42"}]}`})
			if !strings.HasSuffix(r.ReplayURL, "/replay/"+tt.session+tt.wantT) {
				t.Errorf("replay link %q, want …/replay/%s%s", r.ReplayURL, tt.session, tt.wantT)
			}
			if en.sessionStarts != tt.sessionStarts {
				t.Errorf("SessionStart called %d times, want %d", en.sessionStarts, tt.sessionStarts)
			}
			if len(st.similar) != tt.similarCalls || st.similar[len(st.similar)-1] != r.Fingerprint {
				t.Errorf("SimilarCount asked about %v, want %d calls ending with the report's fingerprint %s", st.similar, tt.similarCalls, r.Fingerprint)
			}
			if r.SimilarCount != 3 {
				t.Errorf("SimilarCount = %d, want 3", r.SimilarCount)
			}
		})
	}
}
