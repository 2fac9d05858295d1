package zendesk_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	zd "github.com/nukosuke/go-zendesk/zendesk"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/zendesk"
	"github.com/arubug/arubug/internal/zendesk/zendesktest"
)

func newSimClient(t *testing.T, sim *zendesktest.Server) *zendesk.Client {
	t.Helper()
	c, err := zendesk.NewClient(zendesk.Options{BaseURL: sim.URL(), Email: zendesktest.DefaultEmail, APIToken: zendesktest.DefaultAPIToken})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSetupAndWebhookEndToEnd runs Setup against the simulator, points the
// webhook at a real receiver, and checks that a ticket's life arrives as
// exactly the expected events, each once.
func TestSetupAndWebhookEndToEnd(t *testing.T) {
	ctx := context.Background()
	sim := zendesktest.Start(t, zendesktest.Options{WebhookBackoff: 5 * time.Millisecond, WebhookAttempts: 4})
	billing := sim.AddGroup("Billing")
	c := newSimClient(t, sim)

	var recv atomic.Pointer[zendesk.WebhookReceiver]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/webhooks/zendesk" {
			http.NotFound(w, r)
			return
		}
		recv.Load().ServeHTTP(w, r)
	}))
	defer srv.Close()
	url := srv.URL + "/webhooks/zendesk"

	groups := []string{"Billing", "billing", strconv.FormatInt(billing, 10), "Support", "Nonexistent Team", "999"}
	res, err := zendesk.Setup(ctx, c, zendesk.SetupOptions{WebhookURL: url, Groups: groups})
	if err != nil {
		t.Fatal(err)
	}
	if res.Webhook.Change != zendesk.SetupCreated || len(res.Triggers) != 3 {
		t.Fatalf("first run: %+v", res)
	}
	for _, tr := range res.Triggers {
		if tr.Change != zendesk.SetupCreated {
			t.Errorf("trigger %+v", tr)
		}
	}
	if !slices.Equal(res.MissingGroups, []string{"Nonexistent Team", "999"}) || res.GroupsChecked != 5 {
		t.Errorf("groups checked %d, missing %q", res.GroupsChecked, res.MissingGroups)
	}
	secret := res.Secret.Reveal()
	if secret == "" {
		t.Fatal("no signing secret")
	}
	if out := fmt.Sprintf("%v %+v %#v %s", res, res, res, res.Secret); strings.Contains(out, secret) {
		t.Errorf("the secret prints: %s", out)
	}
	hooks := sim.Webhooks()
	if len(hooks) != 1 || hooks[0].Endpoint != url || hooks[0].RequestFormat != "json" || !slices.Equal(hooks[0].Subscriptions, []string{"conditional_ticket_events"}) {
		t.Fatalf("webhooks %+v", hooks)
	}

	sink := &whSink{}
	sink.FailNext(errSinkFull) // the first delivery is refused; the simulator retries it
	var statuses atomic.Int32
	h, err := zendesk.NewWebhookReceiver(zendesk.WebhookConfig{
		Secret:     secret,
		Sink:       sink,
		Project:    func(context.Context, bugreport.UUID) (string, error) { return "proj", nil },
		OnStatus:   func(bugreport.UUID, int64, string, time.Time) { statuses.Add(1) },
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	recv.Store(h)

	report := bugreport.UUID{0x01, 0x90, 0, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 0x42}
	tk, err := c.CreateTicket(ctx, zd.Ticket{
		Subject:    "Export button does nothing",
		ExternalID: report.String(),
		Tags:       []string{"arubug", "billing"},
		Requester:  &zd.Requester{Name: "Rita Reporter", Email: "rita@example.com"},
		Comment:    &zd.TicketComment{Body: "I click Export and <nothing> happens."},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Tickets that are not Arubug's: untagged (no delivery at all) and
	// tagged without a report id (delivered, ignored).
	for _, other := range []zd.Ticket{
		{Subject: "Invoice", ExternalID: report.String(), Comment: &zd.TicketComment{Body: "untagged"}},
		{Subject: "Order", ExternalID: "ORDER-1", Tags: []string{"arubug"}, Comment: &zd.TicketComment{Body: "not a report"}},
	} {
		if _, err := c.CreateTicket(ctx, other); err != nil {
			t.Fatal(err)
		}
	}
	sim.WaitDeliveries()
	steps := []func() error{
		func() error { _, err := sim.AgentReply(tk.ID, "Thanks, looking.", true); return err },
		func() error { _, err := sim.RequesterEmailReply(tk.ID, "It happens on Firefox too."); return err },
		func() error { _, err := sim.AgentReply(tk.ID, "Repro'd; see JIRA-1.", false); return err },
		func() error { _, err := c.UpdateTicket(ctx, tk.ID, zd.Ticket{Status: "solved"}); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		sim.WaitDeliveries()
	}

	comments := sim.Comments(tk.ID)
	if len(comments) != 4 {
		t.Fatalf("%d comments", len(comments))
	}
	type key struct{ kind, status string }
	want := map[bugreport.UUID]key{
		zendesk.CommentEventID(tk.ID, comments[0].ID): {bugreport.MessageReport, ""},
		zendesk.CommentEventID(tk.ID, comments[1].ID): {bugreport.MessageAgentReply, ""},
		zendesk.CommentEventID(tk.ID, comments[2].ID): {bugreport.MessageRequesterReply, ""},
		zendesk.CommentEventID(tk.ID, comments[3].ID): {bugreport.MessageNote, ""},
	}
	got := map[bugreport.UUID]key{}
	var gotStatuses []string
	for _, ev := range sink.Events() {
		m := messageOf(t, ev)
		if _, dup := got[ev.UUID]; dup {
			t.Errorf("event %s stored twice", ev.UUID)
		}
		if m.ReportID != report || m.TicketID != tk.ID || ev.Project != "proj" {
			t.Errorf("event %+v message %+v", ev, m)
		}
		got[ev.UUID] = key{m.Kind, m.Status}
		if m.Kind == "status" {
			gotStatuses = append(gotStatuses, m.Status)
			if ev.UUID != zendesk.StatusEventID(tk.ID, m.Status, m.At) {
				t.Errorf("status event id %s", ev.UUID)
			}
			delete(got, ev.UUID)
		}
	}
	if len(got) != len(want) {
		t.Errorf("comment events %v, want %v", got, want)
	}
	for id, k := range want {
		if got[id] != k {
			t.Errorf("event %s: %+v, want %+v", id, got[id], k)
		}
	}
	slices.Sort(gotStatuses)
	// The agent's reply opened the ticket, then it was solved.
	if !slices.Equal(gotStatuses, []string{"open", "solved"}) || statuses.Load() != 2 {
		t.Errorf("statuses %v (OnStatus %d), want open and solved", gotStatuses, statuses.Load())
	}
	var retried, refused bool
	for _, d := range sim.Deliveries() {
		retried = retried || d.Attempt > 1
		refused = refused || d.Status == http.StatusServiceUnavailable
		if d.Status == http.StatusUnauthorized {
			t.Errorf("a delivery was refused as unauthenticated: %+v", d)
		}
	}
	if !retried || !refused {
		t.Errorf("the refused first delivery was not retried (retried %v, refused %v)", retried, refused)
	}

	// A second run changes nothing.
	before := len(sim.Requests())
	res2, err := zendesk.Setup(ctx, c, zendesk.SetupOptions{WebhookURL: url, Groups: groups})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Changed() || res2.Secret.Reveal() != secret || res2.Webhook.ID != res.Webhook.ID {
		t.Errorf("second run: %+v", res2)
	}
	for _, r := range sim.Requests()[before:] {
		if r.Method != http.MethodGet {
			t.Errorf("second run sent %s %s", r.Method, r.Path)
		}
	}
	if len(sim.Webhooks()) != 1 || len(sim.Triggers()) != 3 {
		t.Errorf("%d webhooks, %d triggers", len(sim.Webhooks()), len(sim.Triggers()))
	}
}

func TestSetupRepairsDrift(t *testing.T) {
	ctx := context.Background()
	sim := zendesktest.Start(t, zendesktest.Options{})
	c := newSimClient(t, sim)
	o := zendesk.SetupOptions{WebhookURL: "https://arubug.example.com/webhooks/zendesk", Name: "Arubug staging", Tag: "arubug-staging"}
	first, err := zendesk.Setup(ctx, c, o)
	if err != nil {
		t.Fatal(err)
	}
	if first.GroupsChecked != 0 || len(first.MissingGroups) != 0 {
		t.Errorf("groups %+v", first)
	}
	titles := zendesk.SetupTriggerTitles(o.Name)
	for i, tr := range sim.Triggers() {
		if tr.Title != titles[i] {
			t.Errorf("trigger %d title %q, want %q", i, tr.Title, titles[i])
		}
		if !slices.ContainsFunc(tr.Conditions.All, func(c zendesktest.TriggerCondition) bool {
			return c.Field == "current_tags" && c.Operator == "includes" && c.Value == "arubug-staging"
		}) {
			t.Errorf("trigger %q conditions %+v", tr.Title, tr.Conditions)
		}
	}

	// Someone edits a trigger and deactivates another; the endpoint moves.
	trs := sim.Triggers()
	if _, err := c.UpdateTrigger(ctx, trs[1].ID, zd.Trigger{Title: trs[1].Title, Actions: []zd.TriggerAction{{Field: "notification_webhook", Value: []any{first.Webhook.ID, `{"edited":true}`}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, fmt.Sprintf("/triggers/%d.json", trs[2].ID), map[string]any{"trigger": map[string]any{"active": false}}); err != nil {
		t.Fatal(err)
	}
	o.WebhookURL = "https://arubug2.example.com/webhooks/zendesk"
	res, err := zendesk.Setup(ctx, c, o)
	if err != nil {
		t.Fatal(err)
	}
	changes := []string{res.Webhook.Change}
	for _, tr := range res.Triggers {
		changes = append(changes, tr.Change)
	}
	if want := []string{zendesk.SetupUpdated, zendesk.SetupUnchanged, zendesk.SetupUpdated, zendesk.SetupUpdated}; !slices.Equal(changes, want) {
		t.Errorf("changes %v, want %v", changes, want)
	}
	if res.Secret != first.Secret || res.Webhook.ID != first.Webhook.ID {
		t.Error("the webhook was replaced, not updated")
	}
	if h := sim.Webhooks(); len(h) != 1 || h[0].Endpoint != o.WebhookURL {
		t.Errorf("webhooks %+v", h)
	}
	for _, tr := range sim.Triggers() {
		if !tr.Active {
			t.Errorf("trigger %q inactive", tr.Title)
		}
	}
	again, err := zendesk.Setup(ctx, c, o)
	if err != nil || again.Changed() {
		t.Errorf("third run: %+v %v", again, err)
	}
}

func TestSetupErrors(t *testing.T) {
	ctx := context.Background()
	sim := zendesktest.Start(t, zendesktest.Options{})
	c := newSimClient(t, sim)
	for _, u := range []string{"", "ftp://x/y", "/webhooks/zendesk", "https://"} {
		if _, err := zendesk.Setup(ctx, c, zendesk.SetupOptions{WebhookURL: u}); err == nil {
			t.Errorf("webhook URL %q accepted", u)
		}
	}
	sim.FailNext("POST", "/api/v2/webhooks", 1, http.StatusForbidden)
	_, err := zendesk.Setup(ctx, c, zendesk.SetupOptions{WebhookURL: "https://a.example/webhooks/zendesk"})
	if err == nil || !zendesk.Classify(err).Permanent {
		t.Errorf("forbidden: %v", err)
	}
	bad, _ := zendesk.NewClient(zendesk.Options{BaseURL: sim.URL(), Email: zendesktest.DefaultEmail, APIToken: "wrong"})
	if _, err := zendesk.Setup(ctx, bad, zendesk.SetupOptions{WebhookURL: "https://a.example/webhooks/zendesk"}); err == nil || zendesk.Classify(err).Status != http.StatusUnauthorized {
		t.Errorf("bad token: %v", err)
	}
}
