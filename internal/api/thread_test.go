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
)

// oneReport is a store holding a single report.
type oneReport struct {
	scriptedStore
	r *bugreport.Report
}

func (s oneReport) Report(_ context.Context, id bugreport.UUID) (*bugreport.Report, error) {
	if id != s.r.ID {
		return nil, &bugreport.Error{Code: bugreport.ENOTFOUND, Reason: "not_found", Message: "no such report"}
	}
	return s.r, nil
}

// recordingTickets stands in for the Zendesk sync, whose own tests run
// against the simulator; here only what the API hands over matters.
type recordingTickets struct {
	sent    []string
	public  []bool
	retried []bugreport.UUID
}

func (t *recordingTickets) TicketLink(context.Context, bugreport.UUID) (*bugreport.TicketLink, error) {
	return &bugreport.TicketLink{TicketID: 42, State: bugreport.SyncSynced, Status: "open"}, nil
}
func (t *recordingTickets) TicketLinks(ctx context.Context, ids []bugreport.UUID) (map[bugreport.UUID]*bugreport.TicketLink, error) {
	out := map[bugreport.UUID]*bugreport.TicketLink{}
	for _, id := range ids {
		out[id], _ = t.TicketLink(ctx, id)
	}
	return out, nil
}
func (t *recordingTickets) Thread(context.Context, *bugreport.Report) ([]bugreport.Message, error) {
	return []bugreport.Message{{Kind: bugreport.MessageReport, Body: "<script>x</script>", At: time.Unix(0, 0).UTC()}}, nil
}
func (t *recordingTickets) SendMessage(_ bugreport.UUID, body string, public bool) (bugreport.UUID, error) {
	t.sent, t.public = append(t.sent, body), append(t.public, public)
	return bugreport.UUID{1}, nil
}
func (t *recordingTickets) Retry(id bugreport.UUID) error {
	t.retried = append(t.retried, id)
	return nil
}
func (t *recordingTickets) TicketURL(id int64) string {
	return "https://acme.zendesk.com/agent/tickets/42"
}

func TestThreadEndpoints(t *testing.T) {
	rep := &bugreport.Report{ID: bugreport.UUID{0x01, 0x90}, Project: "acme", Title: "t", Route: bugreport.RouteDecision{Team: "billing"}}
	id := rep.ID.String()
	tests := []struct {
		name       string
		tickets    bool
		method     string
		path, body string
		status     int
		want       string // in the body
		sent       int
	}{
		{"reply queued", true, "POST", "/messages", `{"body":"Thanks, fixed."}`, 202, `"kind":"agent_reply"`, 1},
		{"note queued", true, "POST", "/notes", `{"body":"root cause: cache"}`, 202, `"kind":"note"`, 1},
		{"empty body", true, "POST", "/messages", `{"body":"  "}`, 400, `"code":"empty_body"`, 0},
		{"unknown field", true, "POST", "/messages", `{"body":"x","public":true}`, 400, `"code":"invalid_json"`, 0},
		{"not json", true, "POST", "/notes", `body=x`, 400, `"code":"invalid_json"`, 0},
		{"too long", true, "POST", "/messages", `{"body":"` + strings.Repeat("a", MaxMessageBytes+1) + `"}`, 400, `"code":"body_too_long"`, 0},
		{"NUL", true, "POST", "/messages", `{"body":"a\u0000b"}`, 400, `"code":"invalid_text"`, 0},
		{"oversized request", true, "POST", "/messages", `{"body":"` + strings.Repeat("a", 2*MaxMessageBytes) + `"}`, 400, `"code":"invalid_json"`, 0},
		{"unknown report", true, "POST", "/../0190a6b2-7c3e-7d4f-9a1b-2c3d4e5f6a7b/messages", `{"body":"x"}`, 404, `"code":"not_found"`, 0},
		{"sync off", false, "POST", "/messages", `{"body":"x"}`, 503, `"code":"zendesk_not_configured"`, 0},
		{"thread", true, "GET", "/thread", ``, 200, `"url":"https://acme.zendesk.com/agent/tickets/42"`, 0},
		{"thread escapes markup", true, "GET", "/thread", ``, 200, `\u003cscript\u003e`, 0},
		{"retry", true, "POST", "/sync", ``, 202, `"status":"queued"`, 0},
		{"report shows its ticket", true, "GET", "", ``, 200, `"ticket":{"id":42`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tickets := &recordingTickets{}
			cfg := Config{Store: oneReport{r: rep}, Sink: nopSink{}, AdminToken: token,
				Teams:        func() []bugreport.Team { return []bugreport.Team{{Name: "billing"}} },
				ProductAreas: func() []bugreport.ProductArea { return nil }}
			if tt.tickets {
				cfg.Tickets = tickets
			}
			a, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			r := chi.NewRouter()
			a.Mount(r)
			srv := httptest.NewServer(r)
			defer srv.Close()
			path := "/api/v1/reports/" + id + tt.path
			if strings.HasPrefix(tt.path, "/../") {
				path = "/api/v1/reports/" + strings.TrimPrefix(tt.path, "/../")
			}
			req, _ := http.NewRequest(tt.method, srv.URL+path, strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || !strings.Contains(string(b), tt.want) {
				t.Errorf("%d %.300s; want %d with %s", resp.StatusCode, b, tt.status, tt.want)
			}
			if len(tickets.sent) != tt.sent {
				t.Errorf("%d messages handed to the sync, want %d", len(tickets.sent), tt.sent)
			}
			if tt.name == "retry" && len(tickets.retried) != 1 {
				t.Errorf("retry not handed over")
			}
		})
	}
}

func TestThreadEndpointsNeedAdminToken(t *testing.T) {
	srv := serve(t, scriptedStore{})
	for _, p := range []string{"thread", "messages", "notes", "sync"} {
		method := "POST"
		if p == "thread" {
			method = "GET"
		}
		req, _ := http.NewRequest(method, srv.URL+"/api/v1/reports/0190a6b2-7c3e-7d4f-9a1b-2c3d4e5f6a7b/"+p, strings.NewReader(`{"body":"x"}`))
		req.Header.Set("Authorization", "Bearer wrong")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("%s %s with a wrong token: %d, want 401", method, p, resp.StatusCode)
		}
	}
}
