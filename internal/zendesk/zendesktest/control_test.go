package zendesktest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/arubug/arubug/internal/zendesk/zendesktest"
)

func TestControlFaultsAndTicketDump(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{EnableControl: true})
	do := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, s.URL()+path, strings.NewReader(body))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(res.Body).Decode(&m)
		return res.StatusCode, m
	}
	for _, bad := range []string{
		`{"kind":"status","path":"/api/v2/tickets","n":1,"status":200}`,
		`{"kind":"status","path":"/api/v2/tickets","n":0,"status":500}`,
		`{"kind":"status","path":"/_sim/","n":1,"status":500}`,
		`{"kind":"slow","path":"/api/v2/tickets","n":1}`,
		`{"kind":"explode","path":"/api/v2/tickets","n":1}`,
		`{"kind":"status","path":"/api/v2/tickets","n":1,"status":500,"extra":1}`,
	} {
		if code, _ := do("POST", "/_sim/faults", bad); code/100 != 4 {
			t.Errorf("%s: %d, want 4xx", bad, code)
		}
	}
	if code, m := do("POST", "/_sim/faults", `{"kind":"status","method":"POST","path":"/api/v2/tickets","n":2,"status":503}`); code != 201 {
		t.Fatalf("add fault: %d %v", code, m)
	}
	if code, _ := do("POST", "/_sim/faults", `{"kind":"status","path":"/api/v2/","n":1,"status":429}`); code != 201 {
		t.Fatal("add 429")
	}
	if got := s.Faults(); len(got) != 2 || got[0].N != 2 || got[0].Status != 503 || got[1].Status != 429 {
		t.Errorf("faults %+v", got)
	}
	call(t, s, "POST", "/api/v2/tickets.json", `{"ticket":{"comment":{"body":"x"}}}`).want(t, 503)
	call(t, s, "POST", "/api/v2/tickets.json", `{"ticket":{"comment":{"body":"x"}}}`).want(t, 503)
	call(t, s, "GET", "/api/v2/groups.json", "").want(t, 429)
	id := createTicket(t, s, `{"subject":"s","external_id":"ext-1","comment":{"body":"first"}}`).id("ticket.id")
	if _, err := s.AgentReply(id, "reply", true); err != nil {
		t.Fatal(err)
	}
	code, m := do("GET", "/_sim/tickets.json", "")
	tickets, _ := m["tickets"].([]any)
	if code != 200 || len(tickets) != 1 {
		t.Fatalf("dump: %d %v", code, m)
	}
	tk := tickets[0].(map[string]any)
	cs, _ := tk["comments"].([]any)
	if tk["external_id"] != "ext-1" || len(cs) != 2 || cs[1].(map[string]any)["body"] != "reply" {
		t.Errorf("dumped ticket %v", tk)
	}
	if _, m := do("GET", "/_sim/tickets.json?comments=false", ""); m["tickets"].([]any)[0].(map[string]any)["comments"] != nil {
		t.Errorf("comments=false still lists comments: %v", m)
	}
	if _, m := do("GET", fmt.Sprintf("/_sim/tickets.json?since_id=%d", id), ""); m["count"] != float64(0) {
		t.Errorf("since_id: %v", m)
	}
	do("POST", "/_sim/faults", `{"kind":"drop","path":"/api/v2/tickets","n":5}`)
	if code, _ := do("DELETE", "/_sim/faults", ""); code != 204 || len(s.Faults()) != 0 {
		t.Errorf("clear: %d, %d left", code, len(s.Faults()))
	}
}
