package zendesktest_test

import (
	"fmt"
	"testing"

	"github.com/arubug/arubug/internal/zendesk/zendesktest"
)

func TestWebhookUpdate(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{Now: clock})
	h := call(t, s, "POST", "/api/v2/webhooks", `{"webhook":{"name":"a","endpoint":"https://a.example/hook","subscriptions":["conditional_ticket_events"]}}`).want(t, 201)
	id, _ := h.get("webhook.id").(string)
	secret := call(t, s, "GET", "/api/v2/webhooks/"+id+"/signing_secret", "").want(t, 200).get("signing_secret.secret")

	call(t, s, "PUT", "/api/v2/webhooks/"+id, `{"webhook":{"name":"b","endpoint":"https://b.example/hook","http_method":"POST","request_format":"json","status":"active","subscriptions":["conditional_ticket_events"]}}`).want(t, 204)
	got := call(t, s, "GET", "/api/v2/webhooks/"+id, "").want(t, 200)
	if got.get("webhook.name") != "b" || got.get("webhook.endpoint") != "https://b.example/hook" {
		t.Errorf("after PUT %s", got.raw)
	}
	call(t, s, "PATCH", "/api/v2/webhooks/"+id, `{"webhook":{"status":"inactive"}}`).want(t, 204)
	got = call(t, s, "GET", "/api/v2/webhooks/"+id, "").want(t, 200)
	if got.get("webhook.status") != "inactive" || got.get("webhook.name") != "b" {
		t.Errorf("after PATCH %s", got.raw)
	}
	if sec := call(t, s, "GET", "/api/v2/webhooks/"+id+"/signing_secret", "").want(t, 200).get("signing_secret.secret"); sec != secret {
		t.Error("an update changed the signing secret")
	}
	call(t, s, "PUT", "/api/v2/webhooks/"+id, `{"webhook":{"name":"","endpoint":"https://b.example/hook","subscriptions":["x"]}}`).want(t, 400)
	call(t, s, "PATCH", "/api/v2/webhooks/"+id, `{"webhook":{"endpoint":"nope"}}`).want(t, 400)
	call(t, s, "PUT", "/api/v2/webhooks/01NOPE", `{"webhook":{"name":"x"}}`).want(t, 404)
}

func TestTriggerShowUpdateDelete(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{Now: clock})
	hook := call(t, s, "POST", "/api/v2/webhooks", `{"webhook":{"name":"a","endpoint":"https://a.example/hook","subscriptions":["conditional_ticket_events"]}}`).want(t, 201)
	hid, _ := hook.get("webhook.id").(string)
	tr := call(t, s, "POST", "/api/v2/triggers.json", `{"trigger":{"title":"t","conditions":{"all":[]},"actions":[{"field":"notification_webhook","value":["`+hid+`","{}"]}]}}`).want(t, 201)
	id := tr.id("trigger.id")
	path := fmt.Sprintf("/api/v2/triggers/%d.json", id)
	if got := call(t, s, "GET", path, "").want(t, 200); got.get("trigger.title") != "t" {
		t.Errorf("show %s", got.raw)
	}
	up := call(t, s, "PUT", path, `{"trigger":{"title":"t2","active":false,"conditions":{"all":[{"field":"status","operator":"changed","value":null}]}}}`).want(t, 200)
	if up.get("trigger.title") != "t2" || up.get("trigger.active") != false || up.get("trigger.conditions.all.0.field") != "status" || up.get("trigger.actions.0.field") != "notification_webhook" {
		t.Errorf("update %s", up.raw)
	}
	call(t, s, "PUT", path, `{"trigger":{"actions":[{"field":"notification_webhook","value":["nope","{}"]}]}}`).want(t, 422)
	call(t, s, "PUT", path, `{"trigger":{"title":" "}}`).want(t, 422)
	call(t, s, "PUT", "/api/v2/triggers/1.json", `{"trigger":{"title":"x"}}`).want(t, 404)
	call(t, s, "DELETE", path, "").want(t, 204)
	call(t, s, "GET", path, "").want(t, 404)
	if n := len(s.Triggers()); n != 0 {
		t.Errorf("%d triggers after delete", n)
	}
}

func TestTriggerConditionsTagsAndCommentPresence(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{Now: clock})
	url, ch := receiver(t)
	setupWebhook(t, s, url, `{"all":[
		{"field":"update_type","operator":"is","value":"Change"},
		{"field":"current_tags","operator":"includes","value":"other arubug"},
		{"field":"comment_is_public","operator":"is","value":"not_relevant"}]}`)
	tagged := createTicket(t, s, `{"comment":{"body":"r"},"tags":["arubug"]}`).id("ticket.id")
	untagged := createTicket(t, s, `{"comment":{"body":"r"},"tags":["billing"]}`).id("ticket.id")
	if _, err := s.AgentReply(untagged, "no delivery", true); err != nil {
		t.Fatal(err)
	}
	// A change without a comment does not fire; a private note does.
	call(t, s, "PUT", fmt.Sprintf("/api/v2/tickets/%d.json", tagged), `{"ticket":{"priority":"high"}}`).want(t, 200)
	if _, err := s.AgentReply(tagged, "private", false); err != nil {
		t.Fatal(err)
	}
	s.WaitDeliveries()
	ds := s.Deliveries()
	if len(ds) != 1 || ds[0].TicketID != tagged {
		t.Fatalf("deliveries %+v", ds)
	}
	<-ch
}
