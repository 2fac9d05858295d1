package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/arubug/arubug/internal/clickhouse/localch/localchtest"
)

func adminGet(t *testing.T, in *instance, path, token string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", in.url(path), nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func adminPost(t *testing.T, in *instance, path, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", in.url(path), strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestBugReportIsEnrichedRoutedAndQueryable posts a reporter's history and
// a $bug_report to capture, and reads the triaged report through the admin
// API: enrichment, routing, explanation, screenshot, re-route.
func TestBugReportIsEnrichedRoutedAndQueryable(t *testing.T) {
	dsn := localchtest.DSN(t)
	in := startArubug(t, dsn)
	db := openDB(t, dsn)
	user := "tri-" + uuid.NewString()[:8]
	now := time.Now().UTC()
	session := uuid.Must(uuid.NewV7()).String()

	// Twelve events over three days; the plan comes from $set.
	var history []string
	for i := 0; i < 12; i++ {
		at := now.Add(-time.Duration(i%3)*24*time.Hour - time.Duration(i)*time.Minute)
		ev := "$pageview"
		if i%4 == 0 {
			ev = "invoice_opened"
		}
		history = append(history, fmt.Sprintf(`{"event":%q,"distinct_id":%q,"uuid":%q,"timestamp":%q,"properties":{"$session_id":%q,"$pathname":"/billing/invoices"}}`,
			ev, user, uuid.Must(uuid.NewV7()), at.Format(time.RFC3339Nano), session))
	}
	history = append(history, fmt.Sprintf(`{"event":"$identify","distinct_id":%q,"timestamp":%q,"$set":{"plan":"enterprise","email":"ana@example.com"}}`, user, now.Add(-time.Hour).Format(time.RFC3339Nano)))
	if code, b, _ := post(t, in.url("/batch/"), "application/json", strings.NewReader(fmt.Sprintf(`{"api_key":%q,"batch":[%s]}`, testToken, strings.Join(history, ",")))); code != 200 {
		t.Fatalf("history: %d %s", code, b)
	}
	waitFor(t, 20*time.Second, "history stored", func() (bool, string) {
		n := len(uuidCounts(t, db, user, false))
		return n == 13, fmt.Sprint(n)
	})

	reportID := uuid.Must(uuid.NewV7()).String()
	png := base64.StdEncoding.EncodeToString([]byte("\x89PNG\r\n\x1a\nscreenshot"))
	report := fmt.Sprintf(`{"api_key":%q,"event":"$bug_report","distinct_id":%q,"uuid":%q,"properties":{
		"$description":"Invoice PDF download fails <script>alert(1)</script>\nIt spins forever.","$severity":"high","$product_area":"billing",
		"$current_url":"https://app.example.com/billing/invoices/42","$pathname":"/billing/invoices/42","$host":"app.example.com",
		"$session_id":%q,"$raw_user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
		"$time_to_submit_ms":12000,"$console":[{"level":"error","message":"TypeError: pdf is null"}],
		"$network":[{"method":"GET","url":"https://api.example.com/invoices/42.pdf","status":502,"duration_ms":30000}],
		"$screenshot":"data:image/png;base64,%s"}}`, testToken, user, reportID, session, png)
	start := time.Now()
	if code, b, _ := post(t, in.url("/e/"), "application/json", strings.NewReader(report)); code != 200 {
		t.Fatalf("report: %d %s", code, b)
	}

	var got struct {
		ID, Title, Team, Priority, Description string
		ReplayURL                              string `json:"replay_url"`
		Reporter                               string
		HasScreenshot                          bool `json:"has_screenshot"`
		UsageAvailable                         bool `json:"usage_available"`
		Usage                                  struct {
			Events30d     uint64            `json:"events_30d"`
			ActiveDays30d uint64            `json:"active_days_30d"`
			Person        map[string]string `json:"person"`
		}
		Environment struct{ Browser, OS, Device string }
		Routing     struct {
			Team, Route, Source string
			Tags                []string
			Explanation         []struct {
				Route   string
				Matched bool
				Reason  string
			}
		}
		Console []struct{ Message string }
		Network []struct{ Status int }
	}
	waitFor(t, 20*time.Second, "the triaged report", func() (bool, string) {
		code, b := adminGet(t, in, "/api/v1/reports/"+reportID, testAdminToken)
		if code != 200 {
			return false, fmt.Sprint(code, string(b))
		}
		return json.Unmarshal(b, &got) == nil, string(b)
	})
	t.Logf("ack → report readable through the API in %s", time.Since(start).Round(time.Millisecond))
	checks := []struct{ name, got, want string }{
		{"title", got.Title, "Invoice PDF download fails <script>alert(1)</script>"},
		{"team", got.Routing.Team, "billing"},
		{"reporter", got.Reporter, "ana@example.com"},
		{"plan", got.Usage.Person["plan"], "enterprise"},
		{"browser", got.Environment.Browser, "Chrome"},
		{"device", got.Environment.Device, "desktop"},
		{"source", got.Routing.Source, "rules"},
		{"console", got.Console[0].Message, "TypeError: pdf is null"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !got.UsageAvailable || got.Usage.Events30d != 13 || got.Usage.ActiveDays30d != 3 {
		t.Errorf("usage %+v (available %v), want 13 events on 3 days", got.Usage, got.UsageAvailable)
	}
	if !strings.Contains(got.ReplayURL, "/replay/"+session+"?t=") {
		t.Errorf("replay url %q", got.ReplayURL)
	}
	if !got.HasScreenshot || len(got.Network) != 1 || got.Network[0].Status != 502 || len(got.Routing.Explanation) == 0 {
		t.Errorf("screenshot %v network %+v explanation %+v", got.HasScreenshot, got.Network, got.Routing.Explanation)
	}
	if !strings.Contains(strings.Join(got.Routing.Tags, ","), "vip") {
		t.Errorf("an enterprise reporter is not tagged vip: %v", got.Routing.Tags)
	}

	code, img := adminGet(t, in, "/api/v1/reports/"+reportID+"/screenshot", testAdminToken)
	if code != 200 || !strings.HasPrefix(string(img), "\x89PNG") {
		t.Errorf("screenshot: %d %q", code, img)
	}
	code, body := adminGet(t, in, "/api/v1/teams/billing/reports", testAdminToken)
	if code != 200 || !strings.Contains(string(body), reportID) {
		t.Errorf("billing queue: %d %s", code, body)
	}
	code, body = adminGet(t, in, "/api/v1/teams", testAdminToken)
	if code != 200 || !strings.Contains(string(body), `"name":"billing"`) {
		t.Errorf("teams: %d %s", code, body)
	}

	// Re-route by hand; the decision is recorded as an event.
	code, body = adminPost(t, in, "/api/v1/reports/"+reportID+"/route", `{"team":"platform","reason":"PDF service is platform's"}`)
	if code != 200 {
		t.Fatalf("re-route: %d %s", code, body)
	}
	waitFor(t, 20*time.Second, "the re-route", func() (bool, string) {
		_, b := adminGet(t, in, "/api/v1/reports/"+reportID, testAdminToken)
		_ = json.Unmarshal(b, &got)
		return got.Routing.Team == "platform" && got.Routing.Source == "manual", got.Routing.Team
	})
	waitFor(t, 20*time.Second, "the re-route event", func() (bool, string) {
		var n uint64
		_ = db.Conn().QueryRow(t.Context(), "SELECT count() FROM events WHERE event = '$bug_report_route' AND position(properties, ?) > 0", reportID).Scan(&n)
		return n == 1, fmt.Sprint(n)
	})
	for _, bad := range []struct {
		name, body string
		code       int
	}{
		{"unknown team", `{"team":"nope"}`, 400},
		{"unknown field", `{"team":"platform","x":1}`, 400},
		{"not json", `team=platform`, 400},
	} {
		if code, b := adminPost(t, in, "/api/v1/reports/"+reportID+"/route", bad.body); code != bad.code {
			t.Errorf("re-route with %s: %d %s", bad.name, code, b)
		}
	}
}

func TestAdminAPIRequiresTheToken(t *testing.T) {
	in := startArubug(t, localchtest.DSN(t))
	for _, path := range []string{"/api/v1/teams", "/api/v1/teams/billing/reports", "/api/v1/reports/" + uuid.NewString()} {
		for _, tok := range []string{"", "wrong-token-0123456789", testAdminToken + "x"} {
			if code, body := adminGet(t, in, path, tok); code != 401 || strings.Contains(string(body), testAdminToken) {
				t.Errorf("GET %s with token %q: %d %s", path, tok, code, body)
			}
		}
	}
	req, _ := http.NewRequest("POST", in.url("/-/reload"), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("reload without token: %d", resp.StatusCode)
	}
	code, body := adminGet(t, in, "/api/v1/product-areas", "")
	if code != 200 || !strings.Contains(string(body), `"id":"billing"`) || !strings.Contains(string(body), "not-sure") {
		t.Errorf("public product areas: %d %s", code, body)
	}
	if code, body := adminGet(t, in, "/api/v1/reports/not-a-uuid", testAdminToken); code != 400 {
		t.Errorf("bad id: %d %s", code, body)
	}
	if code, _ := adminGet(t, in, "/api/v1/reports/"+uuid.NewString(), testAdminToken); code != 404 {
		t.Errorf("missing report: %d", code)
	}
}
