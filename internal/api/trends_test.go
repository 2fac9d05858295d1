package api

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/trends"
)

// lastQuery records what the API asked; the queries themselves are tested
// against ClickHouse in internal/trends.
type lastQuery struct {
	q   trends.Query
	top trends.TopQuery
}

func (l *lastQuery) Trend(_ context.Context, q trends.Query) (*trends.Result, error) {
	l.q = q
	return &trends.Result{Metric: q.Metric}, nil
}
func (l *lastQuery) Top(_ context.Context, q trends.TopQuery) (map[string][]bugreport.Count, error) {
	l.top = q
	out := map[string][]bugreport.Count{}
	for _, list := range q.Lists {
		out[list] = []bugreport.Count{{Name: "/a", Count: 3}}
	}
	return out, nil
}

func TestTrendParameters(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		query  string
		status int
		check  func(*testing.T, *lastQuery)
		code   string
	}{
		{"defaults: reports per day over the last 30 days", "", 200, func(t *testing.T, l *lastQuery) {
			if l.q.Metric != "reports" || l.q.Interval != "day" || !l.q.To.Equal(now) || !l.q.From.Equal(now.Add(-30*24*time.Hour)) || l.q.Location != time.UTC {
				t.Errorf("query %+v", l.q)
			}
		}, ""},
		{"dates are midnight in tz", "?tz=Europe/Berlin&from=2026-03-27&to=2026-04-01&breakdown=team&team=billing&limit=5", 200, func(t *testing.T, l *lastQuery) {
			if l.q.From.Format(time.RFC3339) != "2026-03-27T00:00:00+01:00" || l.q.To.Format(time.RFC3339) != "2026-04-01T00:00:00+02:00" ||
				l.q.Breakdown != "team" || l.q.Filters.Team != "billing" || l.q.Limit != 5 {
				t.Errorf("query %+v", l.q)
			}
		}, ""},
		{"unknown zone", "?tz=Mars/Olympus", 400, nil, "invalid_query"},
		{"quote in zone", "?tz=UTC'", 400, nil, "invalid_query"},
		{"bad date", "?from=yesterday", 400, nil, "invalid_query"},
		{"bad metric", "?metric=clicks", 400, nil, "invalid_query"},
		{"bad limit", "?limit=many", 400, nil, "invalid_query"},
		{"range too long for hours", "?interval=hour&from=2026-01-01&to=2026-03-01", 400, nil, "invalid_query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &lastQuery{}
			a, err := New(Config{Store: scriptedStore{}, Sink: nopSink{}, AdminToken: token, Trends: l, Now: func() time.Time { return now },
				Teams: func() []bugreport.Team { return nil }, ProductAreas: func() []bugreport.ProductArea { return nil }})
			if err != nil {
				t.Fatal(err)
			}
			r := chi.NewRouter()
			a.Mount(r)
			srv := httptest.NewServer(r)
			defer srv.Close()
			req, _ := http.NewRequest("GET", srv.URL+"/api/v1/trends"+tt.query, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || (tt.code != "" && !strings.Contains(string(b), `"code":"`+tt.code+`"`)) {
				t.Fatalf("%d %s, want %d %s", resp.StatusCode, b, tt.status, tt.code)
			}
			if tt.check != nil {
				tt.check(t, l)
			}
		})
	}
}

func TestTrendsNeedAdminToken(t *testing.T) {
	srv := serve(t, scriptedStore{})
	for _, p := range []string{"/api/v1/trends", "/api/v1/trends/top?list=pages"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("%s without a token: %d", p, resp.StatusCode)
		}
	}
}
