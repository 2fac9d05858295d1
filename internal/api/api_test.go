package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/arubug/arubug/internal/bugreport"
)

// scriptedStore answers every call with err, or with nothing.
type scriptedStore struct{ err error }

func (s scriptedStore) Report(context.Context, bugreport.UUID) (*bugreport.Report, error) {
	return nil, s.err
}
func (s scriptedStore) Reports(context.Context, bugreport.ReportFilter) (bugreport.ReportPage, error) {
	return bugreport.ReportPage{}, s.err
}
func (s scriptedStore) TeamCounts(context.Context, time.Time) (map[string]bugreport.TeamStats, error) {
	return nil, s.err
}
func (s scriptedStore) SaveReport(context.Context, *bugreport.Report, string) error { return s.err }
func (s scriptedStore) Screenshot(context.Context, bugreport.UUID) (string, []byte, error) {
	return "", nil, s.err
}

type nopSink struct{}

func (nopSink) Append(context.Context, []bugreport.Event) error { return nil }

const token = "admin-token-0123456789"

func serve(t *testing.T, store Store) *httptest.Server {
	t.Helper()
	a, err := New(Config{Store: store, Sink: nopSink{}, AdminToken: token,
		Teams:        func() []bugreport.Team { return []bugreport.Team{{Name: "billing"}} },
		ProductAreas: func() []bugreport.ProductArea { return []bugreport.ProductArea{{ID: "billing", Label: "Billing"}} }})
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	a.Mount(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

func TestErrorsMapToStatus(t *testing.T) {
	id := "0190a6b2-7c3e-7d4f-9a1b-2c3d4e5f6a7b"
	tests := []struct {
		name       string
		storeErr   error
		path       string
		status     int
		code       string
		retryAfter bool
	}{
		{"clickhouse down", &bugreport.Error{Code: bugreport.EUNAVAILABLE, Reason: "clickhouse_unavailable", Message: "retry", RetryAfter: 5 * time.Second}, "/api/v1/reports/" + id, 503, "clickhouse_unavailable", true},
		{"not found", &bugreport.Error{Code: bugreport.ENOTFOUND, Reason: "not_found", Message: "no such report"}, "/api/v1/reports/" + id, 404, "not_found", false},
		{"internal error hides the cause", errors.New("dial tcp 10.0.0.7:9000: secret-host"), "/api/v1/teams", 500, "internal", false},
		{"bad id", nil, "/api/v1/reports/42", 400, "invalid_id", false},
		{"unknown team", nil, "/api/v1/teams/nope/reports", 404, "unknown_team", false},
		{"bad limit", nil, "/api/v1/teams/billing/reports?limit=0", 400, "invalid_limit", false},
		{"bad status", nil, "/api/v1/teams/billing/reports?status=weird", 400, "invalid_status", false},
		{"bad since", nil, "/api/v1/teams/billing/reports?since=yesterday", 400, "invalid_since", false},
		{"bad cursor", &bugreport.Error{Code: bugreport.EINVALID, Reason: "invalid_cursor", Message: "bad cursor"}, "/api/v1/teams/billing/reports?cursor=zzz", 400, "invalid_cursor", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, scriptedStore{err: tt.storeErr})
			req, _ := http.NewRequest("GET", srv.URL+tt.path, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(string(body), `"code":"`+tt.code+`"`) {
				t.Errorf("%d %s, want %d with code %s", resp.StatusCode, body, tt.status, tt.code)
			}
			if (resp.Header.Get("Retry-After") != "") != tt.retryAfter {
				t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
			}
			if strings.Contains(string(body), "secret-host") {
				t.Errorf("internal cause leaked: %s", body)
			}
		})
	}
}

func TestAdminDisabledWithoutToken(t *testing.T) {
	a, _ := New(Config{Store: scriptedStore{}, Sink: nopSink{},
		Teams: func() []bugreport.Team { return nil }, ProductAreas: func() []bugreport.ProductArea { return nil }})
	r := chi.NewRouter()
	a.Mount(r)
	w := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/api/v1/teams", nil)
	req.Header.Set("Authorization", "Bearer ")
	r.ServeHTTP(w, req)
	if w.Code != 503 || !strings.Contains(w.Body.String(), "admin_disabled") {
		t.Errorf("%d %s", w.Code, w.Body.String())
	}
}
