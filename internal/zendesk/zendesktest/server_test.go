package zendesktest_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arubug/arubug/internal/zendesk/zendesktest"
)

var fixedNow = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

func clock() time.Time { return fixedNow }

func basicAuth(email, token string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(email+"/token:"+token))
}

type resp struct {
	status int
	header http.Header
	raw    []byte
	json   map[string]any
}

// call sends one request with the default credentials unless hdr sets Authorization.
func call(t *testing.T, s *zendesktest.Server, method, path, body string, hdr ...string) resp {
	t.Helper()
	r, err := try(context.Background(), http.DefaultClient, s, method, path, body, hdr...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func try(ctx context.Context, c *http.Client, s *zendesktest.Server, method, path, body string, hdr ...string) (resp, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL()+path, rd)
	if err != nil {
		return resp{}, err
	}
	req.Header.Set("Authorization", basicAuth(zendesktest.DefaultEmail, zendesktest.DefaultAPIToken))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		return resp{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return resp{}, err
	}
	out := resp{status: res.StatusCode, header: res.Header, raw: raw}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out.json); err != nil {
			return out, fmt.Errorf("bad JSON %q: %w", raw, err)
		}
	}
	return out, nil
}

func (r resp) want(t *testing.T, status int) resp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.raw)
	}
	return r
}

// get walks a path like "ticket.id" or "comments.0.body" in the decoded JSON.
func (r resp) get(path string) any {
	var v any = r.json
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			var i int
			fmt.Sscan(k, &i)
			if i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func (r resp) id(path string) int64 {
	f, _ := r.get(path).(float64)
	return int64(f)
}

func createTicket(t *testing.T, s *zendesktest.Server, ticket string, hdr ...string) resp {
	t.Helper()
	return call(t, s, "POST", "/api/v2/tickets.json", `{"ticket":`+ticket+`}`, hdr...).want(t, 201)
}

func TestAuth(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{Email: "a@x.test", APIToken: "tok", OAuthToken: "oauth"})
	tests := []struct {
		name, auth string
		want       int
	}{
		{"api token", basicAuth("a@x.test", "tok"), 200},
		{"api token email case", basicAuth("A@X.test", "tok"), 200},
		{"bearer", "Bearer oauth", 200},
		{"wrong token", basicAuth("a@x.test", "nope"), 401},
		{"password not token", "Basic " + base64.StdEncoding.EncodeToString([]byte("a@x.test:tok")), 401},
		{"wrong bearer", "Bearer other", 401},
		{"garbage", "Basic !!!", 401},
		{"missing", "", 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, s, "GET", "/api/v2/groups.json", "", "Authorization", tc.auth).want(t, tc.want)
			if tc.want == 401 && r.get("error") != "Couldn't authenticate you" {
				t.Errorf("body %s", r.raw)
			}
		})
	}
	for _, rr := range s.Requests() {
		if a := rr.Header.Get("Authorization"); a != "" && a != "<redacted>" {
			t.Errorf("recorded Authorization %q not redacted", a)
		}
	}
}

func TestCreateTicket(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{Now: clock})
	g := s.AddGroup("Bugs")
	r := createTicket(t, s, fmt.Sprintf(`{
		"subject": "Crash on save",
		"comment": {"body": "It <crashed>\nagain", "public": true},
		"requester": {"name": "Ann", "email": "Ann@Example.com"},
		"group_id": %d, "tags": ["Bug", "web  app", "bug"], "priority": "high", "type": "problem",
		"external_id": "rep-1", "custom_fields": [{"id": 42, "value": "v1"}]}`, g))
	tk := r.json["ticket"].(map[string]any)
	id := r.id("ticket.id")
	u, _ := s.User(r.id("ticket.requester_id"))
	want := map[string]any{
		"id":            float64(id),
		"url":           fmt.Sprintf("%s/api/v2/tickets/%d.json", s.URL(), id),
		"subject":       "Crash on save",
		"raw_subject":   "Crash on save",
		"description":   "It <crashed>\nagain",
		"status":        "new",
		"priority":      "high",
		"type":          "problem",
		"external_id":   "rep-1",
		"group_id":      float64(g),
		"assignee_id":   nil,
		"problem_id":    nil,
		"requester_id":  float64(u.ID),
		"submitter_id":  float64(s.AgentUserID()),
		"tags":          []any{"app", "bug", "web"},
		"custom_fields": []any{map[string]any{"id": float64(42), "value": "v1"}},
		"via":           map[string]any{"channel": "api", "source": map[string]any{"from": map[string]any{}, "to": map[string]any{}, "rel": nil}},
		"created_at":    "2025-03-04T05:06:07Z",
		"updated_at":    "2025-03-04T05:06:07Z",
	}
	if !reflect.DeepEqual(tk, want) {
		gotJSON, _ := json.MarshalIndent(tk, "", " ")
		t.Errorf("ticket:\n%s", gotJSON)
	}
	if u.Email != "ann@example.com" || u.Name != "Ann" || u.Role != "end-user" {
		t.Errorf("requester %+v", u)
	}
	if id != 1 || r.header.Get("Location") == "" {
		t.Errorf("id %d, Location %q", id, r.header.Get("Location"))
	}
	cs := s.Comments(id)
	if len(cs) != 1 || !cs[0].Public || cs[0].Via.Channel != "api" ||
		cs[0].HTMLBody != `<div class="zd-comment" dir="auto"><p>It &lt;crashed&gt;<br>again</p></div>` {
		t.Errorf("comments %+v", cs)
	}
	// GET returns the same ticket; unknown id is Zendesk's 404.
	g2 := call(t, s, "GET", fmt.Sprintf("/api/v2/tickets/%d.json", id), "").want(t, 200)
	if !reflect.DeepEqual(g2.json["ticket"], tk) {
		t.Errorf("GET differs: %s", g2.raw)
	}
	nf := call(t, s, "GET", "/api/v2/tickets/999.json", "").want(t, 404)
	if nf.get("error") != "RecordNotFound" {
		t.Errorf("404 body %s", nf.raw)
	}
	// The same requester email reuses the user.
	r2 := createTicket(t, s, `{"comment":{"body":"x"},"requester":{"email":"ann@EXAMPLE.com"}}`)
	if r2.id("ticket.requester_id") != u.ID {
		t.Errorf("requester not reused")
	}
}

func TestCreateTicketValidation(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{})
	question := createTicket(t, s, `{"comment":{"body":"q"},"type":"question"}`).id("ticket.id")
	problem := createTicket(t, s, `{"comment":{"body":"p"},"type":"problem"}`).id("ticket.id")
	tests := []struct {
		name, ticket, field, desc string
	}{
		{"unknown group", `{"comment":{"body":"x"},"group_id":12345}`, "group", "Group: is invalid"},
		{"missing comment", `{"subject":"x"}`, "base", "Comment: cannot be blank"},
		{"blank comment", `{"comment":{"body":"  "}}`, "base", "Comment: cannot be blank"},
		{"bad priority", `{"comment":{"body":"x"},"priority":"asap"}`, "priority", "Priority: is invalid"},
		{"bad type", `{"comment":{"body":"x"},"type":"bug"}`, "type", "Type: is invalid"},
		{"incident of non-problem", fmt.Sprintf(`{"comment":{"body":"x"},"type":"incident","problem_id":%d}`, question), "problem_id", "Problem: is invalid"},
		{"incident of unknown", `{"comment":{"body":"x"},"type":"incident","problem_id":777}`, "problem_id", "Problem: is invalid"},
		{"unknown upload", `{"comment":{"body":"x","uploads":["nope"]}}`, "base", `Attachment: upload token "nope" is invalid`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, s, "POST", "/api/v2/tickets.json", `{"ticket":`+tc.ticket+`}`).want(t, 422)
			if r.get("error") != "RecordInvalid" || r.get("description") != "Record validation errors" ||
				r.get("details."+tc.field+".0.description") != tc.desc {
				t.Errorf("body %s", r.raw)
			}
		})
	}
	if n := len(s.Tickets()); n != 2 {
		t.Errorf("%d tickets after rejected creates, want 2", n)
	}
	inc := createTicket(t, s, fmt.Sprintf(`{"comment":{"body":"x"},"type":"incident","problem_id":%d}`, problem))
	if inc.id("ticket.problem_id") != problem {
		t.Errorf("incident %s", inc.raw)
	}
	for _, body := range []string{`{}`, `not json`, `{"ticket":null}`} {
		call(t, s, "POST", "/api/v2/tickets.json", body).want(t, 400)
	}
}

// TestGoZendeskStyleBody sends what go-zendesk's CreateTicket marshals.
func TestGoZendeskStyleBody(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{})
	r := createTicket(t, s, `{"id":0,"subject":"s","status":"","priority":"","requester_id":0,
		"created_at":"0001-01-01T00:00:00Z","updated_at":"0001-01-01T00:00:00Z","due_at":null,
		"via":{"channel":"","source":{"from":{},"to":{},"rel":""}},"satisfaction_rating":null,
		"collaborators":{},"custom_fields":[],"tags":null,
		"comment":{"id":0,"type":"","body":"hello","public":false,"created_at":"0001-01-01T00:00:00Z","attachments":[],"via":null},
		"requester":{"name":"Bo","email":"bo@example.com","locale_id":""}}`)
	if r.get("ticket.status") != "new" || r.get("ticket.priority") != nil {
		t.Errorf("ticket %s", r.raw)
	}
	if cs := s.Comments(r.id("ticket.id")); len(cs) != 1 || cs[0].Public || cs[0].Body != "hello" {
		t.Errorf("comments %+v", cs)
	}
}

func TestIdempotencyKey(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{})
	body := `{"ticket":{"subject":"a","comment":{"body":"b"}}}`
	first := call(t, s, "POST", "/api/v2/tickets.json", body, "Idempotency-Key", "k1").want(t, 201)
	if first.header.Get("x-idempotency-lookup") != "miss" {
		t.Errorf("first lookup %q", first.header.Get("x-idempotency-lookup"))
	}
	// Same parameters with different formatting and key order still hit.
	again := call(t, s, "POST", "/api/v2/tickets.json", `{"ticket": {"comment": {"body": "b"}, "subject": "a"}}`, "Idempotency-Key", "k1").want(t, 201)
	if again.header.Get("x-idempotency-lookup") != "hit" || again.id("ticket.id") != first.id("ticket.id") {
		t.Errorf("replay: lookup %q id %d", again.header.Get("x-idempotency-lookup"), again.id("ticket.id"))
	}
	bad := call(t, s, "POST", "/api/v2/tickets.json", `{"ticket":{"subject":"other","comment":{"body":"b"}}}`, "Idempotency-Key", "k1").want(t, 400)
	if bad.get("error") != "IdempotentRequestError" || bad.get("description") != "Request parameters do not match the original request" {
		t.Errorf("mismatch body %s", bad.raw)
	}
	other := call(t, s, "POST", "/api/v2/tickets.json", body, "Idempotency-Key", "k2").want(t, 201)
	if other.id("ticket.id") == first.id("ticket.id") || len(s.Tickets()) != 2 {
		t.Errorf("a new key must create a new ticket")
	}
	noKey := call(t, s, "POST", "/api/v2/tickets.json", body).want(t, 201)
	if noKey.header.Get("x-idempotency-lookup") != "" {
		t.Errorf("lookup header without key")
	}
}

func TestIdempotencyKeyExpires(t *testing.T) {
	now := fixedNow
	s := zendesktest.Start(t, zendesktest.Options{Now: func() time.Time { return now }})
	body := `{"ticket":{"comment":{"body":"b"}}}`
	call(t, s, "POST", "/api/v2/tickets.json", body, "Idempotency-Key", "k").want(t, 201)
	now = now.Add(2*time.Hour + time.Second)
	r := call(t, s, "POST", "/api/v2/tickets.json", body, "Idempotency-Key", "k").want(t, 201)
	if r.header.Get("x-idempotency-lookup") != "miss" || len(s.Tickets()) != 2 {
		t.Errorf("expired key: lookup %q, %d tickets", r.header.Get("x-idempotency-lookup"), len(s.Tickets()))
	}
}

func TestExternalIDLookup(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{})
	createTicket(t, s, `{"comment":{"body":"x"},"external_id":"one"}`)
	createTicket(t, s, `{"comment":{"body":"x"},"external_id":"dup"}`)
	createTicket(t, s, `{"comment":{"body":"x"},"external_id":"dup"}`)
	for _, tc := range []struct {
		ext  string
		want int
	}{{"none", 0}, {"one", 1}, {"dup", 2}} {
		r := call(t, s, "GET", "/api/v2/tickets.json?external_id="+tc.ext, "").want(t, 200)
		list, _ := r.get("tickets").([]any)
		if len(list) != tc.want || r.get("count") != float64(tc.want) || r.json["next_page"] != nil {
			t.Errorf("%s: %s", tc.ext, r.raw)
		}
		for i := range list {
			if r.get(fmt.Sprintf("tickets.%d.external_id", i)) != tc.ext {
				t.Errorf("%s: wrong ticket %v", tc.ext, list[i])
			}
		}
	}
}

func TestUpdateTicket(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{})
	id := createTicket(t, s, `{"comment":{"body":"report"},"tags":["a"]}`).id("ticket.id")
	path := fmt.Sprintf("/api/v2/tickets/%d.json", id)

	r := call(t, s, "PUT", path, `{"ticket":{"comment":{"body":"internal","public":false}}}`).want(t, 200)
	if r.get("ticket.status") != "open" || r.get("audit.events.0.type") != "Comment" || r.get("audit.events.0.public") != false {
		t.Errorf("private note: %s", r.raw)
	}
	r = call(t, s, "PUT", path, `{"ticket":{"comment":{"body":"public reply"},"status":"pending","tags":["b","A"],"priority":"urgent"}}`).want(t, 200)
	if r.get("ticket.status") != "pending" || r.get("ticket.priority") != "urgent" ||
		!reflect.DeepEqual(r.get("ticket.tags"), []any{"a", "b"}) {
		t.Errorf("update: %s", r.raw)
	}
	cs := s.Comments(id)
	if len(cs) != 3 || cs[1].Public || !cs[2].Public || cs[2].Body != "public reply" {
		t.Errorf("comments %+v", cs)
	}
	call(t, s, "PUT", path, `{"ticket":{"group_id":999}}`).want(t, 422)
	call(t, s, "PUT", path, `{"ticket":{"status":"bogus"}}`).want(t, 422)
	call(t, s, "PUT", "/api/v2/tickets/999.json", `{"ticket":{"status":"open"}}`).want(t, 404)
	call(t, s, "PUT", path, `{"ticket":{"status":"closed"}}`).want(t, 200)
	closed := call(t, s, "PUT", path, `{"ticket":{"comment":{"body":"late"}}}`).want(t, 422)
	if closed.get("details.status.0.description") != "Status: closed prevents ticket update" {
		t.Errorf("closed: %s", closed.raw)
	}
}

func TestCommentsCursorPagination(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{})
	id := createTicket(t, s, `{"comment":{"body":"c0"}}`).id("ticket.id")
	for i := 1; i < 5; i++ {
		if _, err := s.AgentReply(id, fmt.Sprintf("c%d", i), i%2 == 0); err != nil {
			t.Fatal(err)
		}
	}
	var bodies []string
	next := fmt.Sprintf("/api/v2/tickets/%d/comments.json?page[size]=2", id)
	pages := 0
	for next != "" {
		r := call(t, s, "GET", next, "").want(t, 200)
		pages++
		for _, c := range r.get("comments").([]any) {
			c := c.(map[string]any)
			bodies = append(bodies, c["body"].(string))
			if c["type"] != "Comment" || c["plain_body"] != c["body"] || c["via"] == nil || c["attachments"] == nil {
				t.Errorf("comment shape %v", c)
			}
		}
		hasMore := r.get("meta.has_more").(bool)
		link, _ := r.get("links.next").(string)
		if hasMore != (link != "") || r.get("meta.after_cursor") == nil {
			t.Errorf("page %d meta/links: %s", pages, r.raw)
		}
		if pages > 1 && r.get("links.prev") == nil {
			t.Errorf("page %d has no prev link", pages)
		}
		next = strings.TrimPrefix(link, s.URL())
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if pages != 3 || strings.Join(bodies, ",") != "c0,c1,c2,c3,c4" {
		t.Errorf("%d pages, bodies %v", pages, bodies)
	}
	call(t, s, "GET", fmt.Sprintf("/api/v2/tickets/%d/comments.json?page[size]=101", id), "").want(t, 400)
	call(t, s, "GET", fmt.Sprintf("/api/v2/tickets/%d/comments.json?page[after]=zzz", id), "").want(t, 400)
	call(t, s, "GET", "/api/v2/tickets/999/comments.json", "").want(t, 404)
}

func TestUsersAndGroups(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{})
	a := call(t, s, "POST", "/api/v2/users/create_or_update.json", `{"user":{"name":"Cy","email":"cy@example.com","role":"agent"}}`).want(t, 201)
	b := call(t, s, "POST", "/api/v2/users/create_or_update.json", `{"user":{"name":"Cy Two","email":"CY@example.com"}}`).want(t, 200)
	if a.id("user.id") == 0 || a.id("user.id") != b.id("user.id") || b.get("user.name") != "Cy Two" || b.get("user.role") != "agent" {
		t.Errorf("create_or_update: %s / %s", a.raw, b.raw)
	}
	g := call(t, s, "GET", fmt.Sprintf("/api/v2/users/%d.json", a.id("user.id")), "").want(t, 200)
	if g.get("user.email") != "cy@example.com" {
		t.Errorf("show user %s", g.raw)
	}
	call(t, s, "GET", "/api/v2/users/1.json", "").want(t, 404)
	call(t, s, "POST", "/api/v2/users/create_or_update.json", `{"user":{"name":"x","email":"nope"}}`).want(t, 422)
	call(t, s, "POST", "/api/v2/users/create_or_update.json", `{"user":{"name":"x","email":"x@y.z","role":"god"}}`).want(t, 422)

	s.AddGroup("Billing")
	gr := call(t, s, "GET", "/api/v2/groups.json", "").want(t, 200)
	if gr.get("groups.0.name") != "Support" || gr.get("groups.1.name") != "Billing" || gr.get("count") != float64(2) {
		t.Errorf("groups %s", gr.raw)
	}
}

func TestUploadAttachment(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{})
	up := call(t, s, "POST", "/api/v2/uploads.json?filename=shot.png", "\x89PNG fake", "Content-Type", "application/binary").want(t, 201)
	tok, _ := up.get("upload.token").(string)
	if tok == "" || up.get("upload.attachment.file_name") != "shot.png" ||
		up.get("upload.attachment.content_type") != "image/png" || up.get("upload.attachment.size") != float64(9) {
		t.Fatalf("upload %s", up.raw)
	}
	id := createTicket(t, s, `{"comment":{"body":"see file","uploads":["`+tok+`"]}}`).id("ticket.id")
	r := call(t, s, "GET", fmt.Sprintf("/api/v2/tickets/%d/comments.json", id), "").want(t, 200)
	if r.get("comments.0.attachments.0.file_name") != "shot.png" || r.id("comments.0.attachments.0.id") != up.id("upload.attachment.id") {
		t.Errorf("attachment %s", r.raw)
	}
	call(t, s, "POST", "/api/v2/uploads.json", "x").want(t, 400)
}

func TestRouting(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{})
	r := call(t, s, "GET", "/api/v2/organizations.json", "").want(t, 404)
	if r.get("error") != "InvalidEndpoint" {
		t.Errorf("404 %s", r.raw)
	}
	r = call(t, s, "DELETE", "/api/v2/tickets.json", "").want(t, 405)
	if r.header.Get("Allow") != "GET, POST" {
		t.Errorf("Allow %q", r.header.Get("Allow"))
	}
	// The control API is off unless enabled.
	call(t, s, "GET", "/_sim/", "").want(t, 404)
}

func TestRateLimit(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{RatePerMinute: 5, Now: clock})
	for i := 1; i <= 5; i++ {
		r := call(t, s, "GET", "/api/v2/groups.json", "").want(t, 200)
		if r.header.Get("X-Rate-Limit") != "5" || r.header.Get("X-Rate-Limit-Remaining") != fmt.Sprint(5-i) {
			t.Errorf("request %d: limit %q remaining %q", i, r.header.Get("X-Rate-Limit"), r.header.Get("X-Rate-Limit-Remaining"))
		}
	}
	r := call(t, s, "GET", "/api/v2/groups.json", "").want(t, 429)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || string(r.raw) != "Rate limit exceeded" ||
		r.header.Get("Retry-After") != "60" || r.header.Get("X-Rate-Limit-Remaining") != "0" {
		t.Errorf("429: ct %q retry %q body %q", ct, r.header.Get("Retry-After"), r.raw)
	}
}

func TestRateLimitWindowResets(t *testing.T) {
	now := fixedNow
	s := zendesktest.Start(t, zendesktest.Options{RatePerMinute: 1, Now: func() time.Time { return now }})
	call(t, s, "GET", "/api/v2/groups.json", "").want(t, 200)
	now = now.Add(45 * time.Second)
	if r := call(t, s, "GET", "/api/v2/groups.json", "").want(t, 429); r.header.Get("Retry-After") != "15" {
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
	now = now.Add(15 * time.Second)
	call(t, s, "GET", "/api/v2/groups.json", "").want(t, 200)
}

func TestFailNext(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{})
	s.FailNext("POST", "/api/v2/tickets", 1, 500)
	s.FailNext("GET", "/api/v2/groups", 1, 503)
	body := `{"ticket":{"comment":{"body":"x"}}}`
	call(t, s, "POST", "/api/v2/tickets.json", body).want(t, 500)
	if len(s.Tickets()) != 0 {
		t.Fatal("a failed request created a ticket")
	}
	call(t, s, "POST", "/api/v2/tickets.json", body).want(t, 201)
	r := call(t, s, "GET", "/api/v2/groups.json", "").want(t, 503)
	if r.header.Get("Retry-After") != "1" {
		t.Errorf("503 Retry-After %q", r.header.Get("Retry-After"))
	}
	call(t, s, "GET", "/api/v2/groups.json", "").want(t, 200)
}

func TestCommitThenDrop(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{})
	// A fresh connection per request: Go's transport transparently retries requests that
	// carry an Idempotency-Key when a reused connection drops, which would hide the fault.
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	ctx := context.Background()
	body := `{"ticket":{"comment":{"body":"x"}}}`

	s.CommitThenDrop("POST", "/api/v2/tickets", 1)
	if _, err := try(ctx, c, s, "POST", "/api/v2/tickets.json", body); err == nil || !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "EOF") {
		t.Fatalf("want EOF, got %v", err)
	}
	if len(s.Tickets()) != 1 {
		t.Fatalf("the dropped request must still create the ticket")
	}

	s.CommitThenDrop("POST", "/api/v2/tickets", 1)
	if _, err := try(ctx, c, s, "POST", "/api/v2/tickets.json", body, "Idempotency-Key", "k"); err == nil {
		t.Fatal("want an error")
	}
	r, err := try(ctx, c, s, "POST", "/api/v2/tickets.json", body, "Idempotency-Key", "k")
	if err != nil {
		t.Fatal(err)
	}
	r.want(t, 201)
	ts := s.Tickets()
	if r.header.Get("x-idempotency-lookup") != "hit" || len(ts) != 2 || r.id("ticket.id") != ts[1].ID {
		t.Errorf("retry: lookup %q id %d, %d tickets", r.header.Get("x-idempotency-lookup"), r.id("ticket.id"), len(ts))
	}
}

func TestSlowHonoursCancel(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{})
	s.Slow("POST", "/api/v2/tickets", 1, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := try(ctx, http.DefaultClient, s, "POST", "/api/v2/tickets.json", `{"ticket":{"comment":{"body":"x"}}}`)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want deadline exceeded, got %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("slow request did not return on cancel")
	}
	// The server abandons the request: httptest's Close (in Cleanup) would block for a
	// minute otherwise, and no ticket is created.
	if len(s.Tickets()) != 0 {
		t.Error("cancelled request created a ticket")
	}
	s.Slow("GET", "/api/v2/groups", 1, 10*time.Millisecond)
	call(t, s, "GET", "/api/v2/groups.json", "").want(t, 200)
}

type received struct {
	header http.Header
	body   []byte
}

func receiver(t *testing.T, statuses ...int) (string, <-chan received) {
	ch := make(chan received, 16)
	var mu sync.Mutex
	n := 0
	rs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		status := 200
		if n < len(statuses) {
			status = statuses[n]
		}
		n++
		ch <- received{r.Header.Clone(), b}
		w.WriteHeader(status)
	}))
	t.Cleanup(rs.Close)
	return rs.URL, ch
}

func next(t *testing.T, ch <-chan received) received {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(3 * time.Second):
		t.Fatal("no webhook delivery")
		return received{}
	}
}

const template = `{"ticket_id": {{ticket.id}}, "external_id": "{{ticket.external_id}}", "status": "{{ticket.status}}",
 "comment": {"id": {{ticket.latest_comment.id}}, "body": "{{ ticket.latest_comment.body }}", "public": {{ticket.latest_comment.is_public}},
 "author_email": "{{ticket.latest_comment.author.email}}", "via": "{{ticket.latest_comment.via}}", "created_at": "{{ticket.latest_comment.created_at}}"},
 "unknown": "{{ticket.nope}}"}`

func setupWebhook(t *testing.T, s *zendesktest.Server, endpoint string, conditions string) (hookID, secret string) {
	t.Helper()
	h := call(t, s, "POST", "/api/v2/webhooks", `{"webhook":{"name":"arubug","endpoint":"`+endpoint+`","http_method":"POST",
		"request_format":"json","status":"active","subscriptions":["conditional_ticket_events"],
		"authentication":{"type":"bearer_token","add_position":"header","data":{"token":"hooktoken"}}}}`).want(t, 201)
	hookID, _ = h.get("webhook.id").(string)
	if h.get("webhook.authentication.data") != nil {
		t.Errorf("webhook auth data leaked: %s", h.raw)
	}
	sec := call(t, s, "GET", "/api/v2/webhooks/"+hookID+"/signing_secret", "").want(t, 200)
	secret, _ = sec.get("signing_secret.secret").(string)
	if sec.get("signing_secret.algorithm") != "SHA256" || secret == "" {
		t.Fatalf("signing secret %s", sec.raw)
	}
	tmpl, _ := json.Marshal(template)
	call(t, s, "POST", "/api/v2/triggers.json", `{"trigger":{"title":"Notify arubug","conditions":`+conditions+`,
		"actions":[{"field":"notification_webhook","value":["`+hookID+`",`+string(tmpl)+`]}]}}`).want(t, 201)
	return hookID, secret
}

type payload struct {
	TicketID   int64  `json:"ticket_id"`
	ExternalID string `json:"external_id"`
	Status     string `json:"status"`
	Comment    struct {
		ID          int64  `json:"id"`
		Body        string `json:"body"`
		Public      bool   `json:"public"`
		AuthorEmail string `json:"author_email"`
		Via         string `json:"via"`
		CreatedAt   string `json:"created_at"`
	} `json:"comment"`
	Unknown string `json:"unknown"`
}

func verify(t *testing.T, d received, hookID, secret string) payload {
	t.Helper()
	ts := d.header.Get("X-Zendesk-Webhook-Signature-Timestamp")
	if _, err := time.Parse(time.RFC3339, ts); err != nil {
		t.Errorf("timestamp %q: %v", ts, err)
	}
	if got, want := d.header.Get("X-Zendesk-Webhook-Signature"), zendesktest.Sign(secret, ts, d.body); got != want || got == "" {
		t.Errorf("signature %q, want %q", got, want)
	}
	if d.header.Get("X-Zendesk-Webhook-Id") != hookID || d.header.Get("Authorization") != "Bearer hooktoken" {
		t.Errorf("headers %v", d.header)
	}
	var p payload
	if err := json.Unmarshal(d.body, &p); err != nil {
		t.Fatalf("delivery body is not JSON: %v\n%s", err, d.body)
	}
	return p
}

func TestWebhookTriggers(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{Now: clock})
	url, ch := receiver(t)
	hookID, secret := setupWebhook(t, s, url, `{"all":[{"field":"update_type","operator":"is","value":"Change"}],"any":[]}`)

	id := createTicket(t, s, `{"comment":{"body":"report"},"external_id":"rep-9","requester":{"email":"req@example.com"}}`).id("ticket.id")
	// The create does not match update_type Change; the agent reply does.
	c, err := s.AgentReply(id, "We're \"on\" it\n<b>soon</b> \\o/", true)
	if err != nil {
		t.Fatal(err)
	}
	p := verify(t, next(t, ch), hookID, secret)
	if p.TicketID != id || p.ExternalID != "rep-9" || p.Status != "open" || p.Comment.ID != c.ID ||
		p.Comment.Body != "We're \"on\" it\n<b>soon</b> \\o/" || !p.Comment.Public ||
		p.Comment.AuthorEmail != zendesktest.DefaultEmail || p.Comment.Via != "web" ||
		p.Comment.CreatedAt != "2025-03-04T05:06:07Z" || p.Unknown != "" {
		t.Errorf("agent reply payload %+v", p)
	}

	if _, err := s.RequesterEmailReply(id, "thanks"); err != nil {
		t.Fatal(err)
	}
	p = verify(t, next(t, ch), hookID, secret)
	if p.Comment.Via != "email" || p.Comment.AuthorEmail != "req@example.com" || p.Comment.Body != "thanks" {
		t.Errorf("email reply payload %+v", p)
	}

	// A status change without a comment also fires.
	call(t, s, "PUT", fmt.Sprintf("/api/v2/tickets/%d.json", id), `{"ticket":{"status":"solved"}}`).want(t, 200)
	if p = verify(t, next(t, ch), hookID, secret); p.Status != "solved" {
		t.Errorf("status payload %+v", p)
	}

	s.WaitDeliveries()
	ds := s.Deliveries()
	if len(ds) != 3 || ds[0].Status != 200 || ds[0].WebhookID != hookID || ds[0].TicketID != id {
		t.Errorf("deliveries %+v", ds)
	}
	lst := call(t, s, "GET", "/api/v2/webhooks", "").want(t, 200)
	if lst.get("webhooks.0.id") != hookID {
		t.Errorf("webhooks %s", lst.raw)
	}
	tr := call(t, s, "GET", "/api/v2/triggers.json", "").want(t, 200)
	if tr.get("triggers.0.title") != "Notify arubug" || tr.get("triggers.0.active") != true {
		t.Errorf("triggers %s", tr.raw)
	}
	_, err = s.AgentReply(999, "x", true)
	if !errors.Is(err, zendesktest.ErrTicketNotFound) {
		t.Errorf("unknown ticket: %v", err)
	}
}

func TestWebhookRetriesOn5xx(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{})
	url, ch := receiver(t, 503, 500, 200)
	hookID, secret := setupWebhook(t, s, url, `{"all":[]}`)
	createTicket(t, s, `{"comment":{"body":"first"}}`) // update_type Create fires too
	for i := 0; i < 3; i++ {
		if p := verify(t, next(t, ch), hookID, secret); p.Comment.Body != "first" {
			t.Errorf("attempt %d payload %+v", i+1, p)
		}
	}
	s.WaitDeliveries()
	var got []int
	for _, d := range s.Deliveries() {
		got = append(got, d.Status)
	}
	if !reflect.DeepEqual(got, []int{503, 500, 200}) {
		t.Errorf("delivery statuses %v", got)
	}
}

func TestTriggerRejectsUnknownWebhook(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{})
	call(t, s, "POST", "/api/v2/triggers.json", `{"trigger":{"title":"x","conditions":{"all":[]},
		"actions":[{"field":"notification_webhook","value":["nope","{}"]}]}}`).want(t, 422)
	call(t, s, "POST", "/api/v2/webhooks", `{"webhook":{"name":"x","endpoint":"not a url","subscriptions":["conditional_ticket_events"]}}`).want(t, 400)
}

func TestControlAPIAndPage(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{EnableControl: true})
	id := createTicket(t, s, `{"subject":"<i>subj</i>","comment":{"body":"<script>alert(1)</script>"}}`).id("ticket.id")
	post := func(path, body string) *http.Response {
		res, err := http.Post(s.URL()+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	if res := post(fmt.Sprintf("/_sim/tickets/%d/agent_reply", id), `{"body":"note","public":false}`); res.StatusCode != 201 {
		t.Errorf("agent_reply %d", res.StatusCode)
	}
	if res := post(fmt.Sprintf("/_sim/tickets/%d/email_reply", id), `{"body":"by mail"}`); res.StatusCode != 201 {
		t.Errorf("email_reply %d", res.StatusCode)
	}
	if res := post("/_sim/tickets/999/email_reply", `{"body":"x"}`); res.StatusCode != 404 {
		t.Errorf("unknown ticket %d", res.StatusCode)
	}
	cs := s.Comments(id)
	if len(cs) != 3 || cs[1].Public || cs[2].Via.Channel != "email" {
		t.Errorf("comments %+v", cs)
	}
	res, err := http.Get(s.URL() + "/_sim/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if bytes.Contains(page, []byte("<script>alert")) || bytes.Contains(page, []byte("<i>subj")) ||
		!bytes.Contains(page, []byte("&lt;script&gt;alert(1)&lt;/script&gt;")) || !bytes.Contains(page, []byte("by mail")) {
		t.Errorf("page not escaped or incomplete:\n%s", page)
	}
}

func TestRequestsAreRecordedAndBounded(t *testing.T) {
	s := zendesktest.Start(t, zendesktest.Options{})
	call(t, s, "POST", "/api/v2/tickets.json?x=1", `{"ticket":{"comment":{"body":"x"}}}`).want(t, 201)
	rs := s.Requests()
	if len(rs) != 1 || rs[0].Method != "POST" || rs[0].Path != "/api/v2/tickets.json" ||
		rs[0].Query.Get("x") != "1" || !bytes.Contains(rs[0].Body, []byte(`"body":"x"`)) {
		t.Errorf("recorded %+v", rs)
	}
}

// TestRecordedRequestsCap drives the unstarted Handler directly to stay fast.
func TestRecordedRequestsCap(t *testing.T) {
	s := zendesktest.New(zendesktest.Options{})
	defer s.Close()
	for i := 0; i < 10005; i++ {
		req := httptest.NewRequest("GET", fmt.Sprintf("/api/v2/groups.json?i=%d", i), nil)
		req.Header.Set("Authorization", basicAuth(zendesktest.DefaultEmail, zendesktest.DefaultAPIToken))
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("status %d", rec.Code)
		}
	}
	rs := s.Requests()
	if len(rs) != 10000 || rs[0].Query.Get("i") != "5" || rs[len(rs)-1].Query.Get("i") != "10004" {
		t.Errorf("%d recorded, first i=%s", len(rs), rs[0].Query.Get("i"))
	}
}
