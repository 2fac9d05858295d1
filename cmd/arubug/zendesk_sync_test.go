package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/arubug/arubug/internal/clickhouse/localch/localchtest"
	"github.com/arubug/arubug/internal/routing"
	"github.com/arubug/arubug/internal/zendesk"
	"github.com/arubug/arubug/internal/zendesk/zendesktest"
)

// zendeskEnv starts a simulator with the shipped rules' groups, sets up its
// webhook and triggers, and returns the environment for arubug to use it.
// Call pointWebhook once arubug listens.
func zendeskEnv(t *testing.T) (*zendesktest.Server, []string, func(addr string)) {
	t.Helper()
	sim := zendesktest.Start(t, zendesktest.Options{RatePerMinute: 700})
	rules, err := routing.Load("../../routing-rules/rules.yaml", routing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, team := range rules.Teams() {
		sim.AddGroup(team.ZendeskGroup)
	}
	c, err := zendesk.NewClient(zendesk.Options{BaseURL: sim.URL(), Email: zendesktest.DefaultEmail, APIToken: zendesktest.DefaultAPIToken})
	if err != nil {
		t.Fatal(err)
	}
	setup := func(addr string) zendesk.SetupResult {
		res, err := zendesk.Setup(context.Background(), c, zendesk.SetupOptions{WebhookURL: "http://" + addr + "/webhooks/zendesk"})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := setup("127.0.0.1:9") // the secret first; the address once arubug listens
	env := []string{
		"ARUBUG_ZENDESK_URL=" + sim.URL(),
		"ARUBUG_ZENDESK_EMAIL=" + zendesktest.DefaultEmail,
		"ARUBUG_ZENDESK_API_TOKEN=" + zendesktest.DefaultAPIToken,
		"ARUBUG_ZENDESK_WEBHOOK_SECRET=" + res.Secret.Reveal(),
		"ARUBUG_ZENDESK_SYNC_GRACE=10s",
		"ARUBUG_ZENDESK_COMMENT_POLL_INTERVAL=10s",
	}
	return sim, env, func(addr string) { setup(addr) }
}

type ticketView struct {
	Ticket struct {
		ID     int64  `json:"id"`
		State  string `json:"state"`
		Status string `json:"status"`
		Error  string `json:"error"`
	} `json:"ticket"`
	Messages []struct {
		Kind   string `json:"kind"`
		Body   string `json:"body"`
		Public bool   `json:"public"`
		Status string `json:"status"`
	} `json:"messages"`
}

func thread(t *testing.T, in *instance, id string) ticketView {
	t.Helper()
	code, b := adminGet(t, in, "/api/v1/reports/"+id+"/thread", testAdminToken)
	var v ticketView
	if code != 200 || json.Unmarshal(b, &v) != nil {
		return ticketView{}
	}
	return v
}

// TestZendeskSyncExactlyOnceAcrossCrashesAndInstances sends reports to one
// arubug, kills it with SIGKILL while it syncs (after Zendesk committed a
// create whose answer was lost), restarts it and starts a second instance
// on the same ClickHouse: every report ends with exactly one ticket and one
// internal note. Then the email thread goes round both ways.
func TestZendeskSyncExactlyOnceAcrossCrashesAndInstances(t *testing.T) {
	dsn := localchtest.DSN(t)
	sim, env, pointWebhook := zendeskEnv(t)
	sim.CommitThenDrop("POST", "/api/v2/tickets", 2)
	sim.FailNext("PUT", "/api/v2/tickets/", 2, http.StatusInternalServerError)
	in := startArubug(t, dsn, env...)
	pointWebhook(in.addr)

	const n = 6
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7()).String()
		body := fmt.Sprintf(`{"api_key":%q,"event":"$bug_report","distinct_id":"zd-%d","uuid":%q,"properties":{"$description":"Export hangs at 99%%, case %d <img src=x onerror=alert(1)>","$email":"user%d@example.com","$pathname":"/insights/%d","$product_area":"product-analytics","$time_to_submit_ms":8000}}`,
			testToken, i, ids[i], i, i, i)
		if code, b, _ := post(t, in.url("/e/"), "application/json", strings.NewReader(body)); code != 200 {
			t.Fatalf("report %d: %d %s", i, code, b)
		}
	}
	waitFor(t, 30*time.Second, "a first ticket", func() (bool, string) {
		return len(sim.Tickets()) > 0, fmt.Sprint(len(sim.Tickets()))
	})
	in.kill()
	in.start()
	second := startArubug(t, dsn, env...)

	perReport := func() (tickets, notes map[string]int) {
		tickets, notes = map[string]int{}, map[string]int{}
		for _, tk := range sim.Tickets() {
			if tk.ExternalID == nil {
				continue
			}
			tickets[*tk.ExternalID]++
			for _, c := range sim.Comments(tk.ID) {
				if !c.Public && strings.HasPrefix(c.Body, "Arubug report "+*tk.ExternalID) {
					notes[*tk.ExternalID]++
				}
			}
		}
		return tickets, notes
	}
	waitFor(t, 90*time.Second, "every report synced", func() (bool, string) {
		synced := 0
		for _, id := range ids {
			if v := thread(t, second, id); v.Ticket.State == "synced" {
				synced++
			}
		}
		return synced == n, fmt.Sprintf("%d of %d synced", synced, n)
	})
	tickets, notes := perReport()
	for _, id := range ids {
		if tickets[id] != 1 || notes[id] != 1 {
			t.Errorf("report %s: %d tickets, %d notes; want exactly 1 and 1", id, tickets[id], notes[id])
		}
	}
	if len(tickets) != n {
		t.Errorf("%d reports have tickets, want %d", len(tickets), n)
	}

	// The thread, both ways, through the first (restarted) instance.
	id := ids[0]
	ticket := thread(t, in, id).Ticket.ID
	reply := "Thanks! Does it happen in <b>Firefox</b> too?"
	if code, b := adminPost(t, in, "/api/v1/reports/"+id+"/messages", fmt.Sprintf(`{"body":%q}`, reply)); code != http.StatusAccepted {
		t.Fatalf("reply: %d %s", code, b)
	}
	if code, b := adminPost(t, in, "/api/v1/reports/"+id+"/notes", `{"body":"Probably the export worker."}`); code != http.StatusAccepted {
		t.Fatalf("note: %d %s", code, b)
	}
	waitFor(t, 30*time.Second, "reply and note in Zendesk", func() (bool, string) {
		got := 0
		for _, c := range sim.Comments(ticket) {
			if (c.Body == reply && c.Public) || (c.Body == "Probably the export worker." && !c.Public) {
				got++
			}
		}
		return got == 2, fmt.Sprint(got)
	})
	if _, err := sim.RequesterEmailReply(ticket, "Yes, Firefox 133 as well."); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.AgentReply(ticket, "Fixed in today's release.", true); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ // body → kind
		"Export hangs at 99%, case 0 <img src=x onerror=alert(1)>": "report",
		reply:                         "agent_reply",
		"Probably the export worker.": "note",
		"Yes, Firefox 133 as well.":   "requester_reply",
		"Fixed in today's release.":   "agent_reply",
	}
	waitFor(t, 30*time.Second, "the whole thread stored once", func() (bool, string) {
		counts := map[string]int{}
		for _, m := range thread(t, in, id).Messages {
			if m.Kind != "status" {
				counts[m.Body]++
				if want[m.Body] != "" && want[m.Body] != m.Kind {
					return false, fmt.Sprintf("%q has kind %s, want %s", m.Body, m.Kind, want[m.Body])
				}
			}
		}
		for body := range want {
			if counts[body] != 1 {
				return false, fmt.Sprintf("%q stored %d times", body, counts[body])
			}
		}
		return true, ""
	})

	// A forged delivery is refused and stores nothing.
	req, _ := http.NewRequest("POST", in.url("/webhooks/zendesk"), strings.NewReader(`{"kind":"comment","ticket":{"id":1}}`))
	req.Header.Set("X-Zendesk-Webhook-Signature", "Zm9yZ2Vk")
	req.Header.Set("X-Zendesk-Webhook-Signature-Timestamp", time.Now().UTC().Format(time.RFC3339))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged webhook: %d, want 401", resp.StatusCode)
	}

	metrics := func(in *instance) string {
		resp, err := http.Get(in.url("/metrics"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	all := metrics(in) + metrics(second)
	for _, m := range []string{"arubug_zendesk_tickets_created_total", "arubug_zendesk_ack_to_ticket_seconds_bucket", "arubug_zendesk_outbox_depth", "arubug_zendesk_retries_total"} {
		if !strings.Contains(all, m) {
			t.Errorf("metrics lack %s", m)
		}
	}
}
