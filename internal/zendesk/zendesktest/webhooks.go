package zendesktest

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

const maxDeliveries = 10000

// Webhook is a Zendesk webhook. Zendesk webhook ids are strings (ULIDs).
type Webhook struct {
	ID             string       `json:"id"`
	Name           string       `json:"name"`
	Endpoint       string       `json:"endpoint"`
	HTTPMethod     string       `json:"http_method"`
	RequestFormat  string       `json:"request_format"`
	Status         string       `json:"status"`
	Subscriptions  []string     `json:"subscriptions"`
	Authentication *WebhookAuth `json:"authentication,omitempty"`
	CreatedAt      time.Time    `json:"created_at"`
	UpdatedAt      time.Time    `json:"updated_at"`

	secret string
}

// WebhookAuth is a webhook's outbound authentication. Data is never returned by the API.
type WebhookAuth struct {
	Type        string            `json:"type"` // "basic_auth", "bearer_token" or "api_key"
	AddPosition string            `json:"add_position"`
	Data        map[string]string `json:"data,omitempty"`
}

// Trigger is a Zendesk ticket trigger.
type Trigger struct {
	ID         int64             `json:"id"`
	URL        string            `json:"url"`
	Title      string            `json:"title"`
	Active     bool              `json:"active"`
	Position   int               `json:"position"`
	Conditions TriggerConditions `json:"conditions"`
	Actions    []TriggerAction   `json:"actions"`
	CreatedAt  time.Time         `json:"created_at"`
	UpdatedAt  time.Time         `json:"updated_at"`
}

// TriggerConditions are a trigger's "all" and "any" condition lists.
type TriggerConditions struct {
	All []TriggerCondition `json:"all"`
	Any []TriggerCondition `json:"any"`
}

// TriggerCondition is one trigger condition.
type TriggerCondition struct {
	Field    string `json:"field"`
	Operator string `json:"operator"`
	Value    any    `json:"value"`
}

// TriggerAction is one trigger action; notification_webhook's Value is
// [webhookID, bodyTemplate].
type TriggerAction struct {
	Field string `json:"field"`
	Value any    `json:"value"`
}

// Delivery is one attempt to deliver a webhook, as recorded by Deliveries.
type Delivery struct {
	WebhookID string
	TriggerID int64
	TicketID  int64
	Endpoint  string
	Method    string
	Header    http.Header
	Body      []byte
	Attempt   int    // 1 for the first attempt
	Status    int    // status received; 0 after a connection error
	Err       string // connection error, if any
	Time      time.Time
}

// Deliveries returns a copy of recorded webhook delivery attempts, oldest first.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deliveries)
}

// WaitDeliveries blocks until no webhook delivery is in flight (including retries).
func (s *Server) WaitDeliveries() {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	for s.inflight > 0 {
		s.dcond.Wait()
	}
}

// Webhooks returns a copy of the webhooks (with their secrets withheld).
func (s *Server) Webhooks() []Webhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Webhook{}
	for _, id := range s.hookOrder {
		out = append(out, s.webhooks[id].public())
	}
	return out
}

func (h *Webhook) public() Webhook {
	c := *h
	c.secret = ""
	c.Subscriptions = slices.Clone(h.Subscriptions)
	if h.Authentication != nil {
		c.Authentication = &WebhookAuth{Type: h.Authentication.Type, AddPosition: h.Authentication.AddPosition}
	}
	return c
}

// webhookError answers in the JSON:API error style the webhooks API uses.
func webhookError(w http.ResponseWriter, status int, code, title, pointer string) {
	e := map[string]any{"code": code, "title": title}
	if pointer != "" {
		e["source"] = map[string]string{"pointer": pointer}
	}
	writeJSON(w, status, map[string]any{"errors": []any{e}})
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request, body []byte) {
	var in Webhook
	if !decodeRoot(w, body, "webhook", &in) {
		return
	}
	defaultWebhook(&in)
	if !validWebhook(w, &in) {
		return
	}
	var sb [32]byte
	rand.Read(sb[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	in.ID = fmt.Sprintf("01SIMWEBHOOK%014d", s.nextIDLocked())
	in.secret = base64.RawURLEncoding.EncodeToString(sb[:])
	in.CreatedAt, in.UpdatedAt = now, now
	h := in
	s.webhooks[h.ID] = &h
	s.hookOrder = append(s.hookOrder, h.ID)
	w.Header().Set("Location", baseURL(r)+"/api/v2/webhooks/"+h.ID)
	writeJSON(w, http.StatusCreated, map[string]any{"webhook": h.public()})
}

func defaultWebhook(in *Webhook) {
	if in.HTTPMethod == "" {
		in.HTTPMethod = "POST"
	}
	if in.RequestFormat == "" {
		in.RequestFormat = "json"
	}
	if in.Status == "" {
		in.Status = "active"
	}
}

// validWebhook answers 400 in the webhooks API's style and reports false when in is invalid.
func validWebhook(w http.ResponseWriter, in *Webhook) bool {
	u, err := url.Parse(in.Endpoint)
	switch {
	case strings.TrimSpace(in.Name) == "":
		webhookError(w, http.StatusBadRequest, "InvalidValue", "Name can't be blank", "/webhook/name")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		webhookError(w, http.StatusBadRequest, "InvalidValue", "Endpoint is not a valid URL", "/webhook/endpoint")
	case !slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE"}, in.HTTPMethod):
		webhookError(w, http.StatusBadRequest, "InvalidValue", "Http method is invalid", "/webhook/http_method")
	case !slices.Contains([]string{"json", "xml", "form_encoded"}, in.RequestFormat):
		webhookError(w, http.StatusBadRequest, "InvalidValue", "Request format is invalid", "/webhook/request_format")
	case in.Status != "active" && in.Status != "inactive":
		webhookError(w, http.StatusBadRequest, "InvalidValue", "Status is invalid", "/webhook/status")
	case len(in.Subscriptions) == 0:
		webhookError(w, http.StatusBadRequest, "InvalidValue", "Subscriptions can't be blank", "/webhook/subscriptions")
	default:
		return true
	}
	return false
}

// updateWebhook serves PUT (replace the webhook's settings) and PATCH (a JSON merge patch
// of them). Both answer 204 No Content, as Zendesk does; the id, the signing secret and
// created_at are kept.
func (s *Server) updateWebhook(w http.ResponseWriter, id string, body []byte, patch bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.webhooks[id]
	if !ok {
		webhookError(w, http.StatusNotFound, "WebhookNotFound", "Webhook "+id+" not found", "")
		return
	}
	var in Webhook
	if patch {
		in = *h
		in.Subscriptions = slices.Clone(h.Subscriptions)
		var env struct {
			Webhook map[string]json.RawMessage `json:"webhook"`
		}
		if err := json.Unmarshal(body, &env); err != nil || env.Webhook == nil {
			webhookError(w, http.StatusBadRequest, "InvalidValue", "webhook is missing or not an object", "/webhook")
			return
		}
		cur, _ := json.Marshal(&in)
		var merged map[string]json.RawMessage
		json.Unmarshal(cur, &merged)
		for k, v := range env.Webhook {
			if string(v) == "null" {
				delete(merged, k)
			} else {
				merged[k] = v
			}
		}
		b, _ := json.Marshal(merged)
		in = Webhook{}
		if err := json.Unmarshal(b, &in); err != nil {
			webhookError(w, http.StatusBadRequest, "InvalidValue", "Invalid webhook: "+err.Error(), "/webhook")
			return
		}
	} else if !decodeRoot(w, body, "webhook", &in) {
		return
	}
	defaultWebhook(&in)
	if !validWebhook(w, &in) {
		return
	}
	in.ID, in.secret, in.CreatedAt, in.UpdatedAt = h.ID, h.secret, h.CreatedAt, s.now()
	*h = in
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"webhooks": s.Webhooks(),
		"meta":     map[string]any{"has_more": false, "after_cursor": nil, "before_cursor": nil},
		"links":    map[string]any{"next": nil, "prev": nil},
	})
}

func (s *Server) showWebhook(w http.ResponseWriter, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.webhooks[id]
	if !ok {
		webhookError(w, http.StatusNotFound, "WebhookNotFound", "Webhook "+id+" not found", "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhook": h.public()})
}

func (s *Server) deleteWebhook(w http.ResponseWriter, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.webhooks[id]; !ok {
		webhookError(w, http.StatusNotFound, "WebhookNotFound", "Webhook "+id+" not found", "")
		return
	}
	delete(s.webhooks, id)
	s.hookOrder = slices.DeleteFunc(s.hookOrder, func(x string) bool { return x == id })
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) showSigningSecret(w http.ResponseWriter, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.webhooks[id]
	if !ok {
		webhookError(w, http.StatusNotFound, "WebhookNotFound", "Webhook "+id+" not found", "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"signing_secret": map[string]string{"algorithm": "SHA256", "secret": h.secret}})
}

// webhookAction returns the webhook id and body template of a notification_webhook action.
func webhookAction(a TriggerAction) (id, tmpl string, ok bool) {
	if a.Field != "notification_webhook" {
		return "", "", false
	}
	vals, isList := a.Value.([]any)
	if !isList || len(vals) < 1 {
		return "", "", false
	}
	switch v := vals[0].(type) {
	case string:
		id = v
	case float64:
		id = strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return "", "", false
	}
	if len(vals) > 1 {
		tmpl, _ = vals[1].(string)
	}
	return id, tmpl, true
}

func (s *Server) createTrigger(w http.ResponseWriter, r *http.Request, body []byte) {
	var in struct {
		Title      string            `json:"title"`
		Active     *bool             `json:"active"`
		Position   int               `json:"position"`
		Conditions TriggerConditions `json:"conditions"`
		Actions    []TriggerAction   `json:"actions"`
	}
	if !decodeRoot(w, body, "trigger", &in) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := verrs{}
	if strings.TrimSpace(in.Title) == "" {
		v.add("title", "Title: cannot be blank", "BlankValue")
	}
	if len(in.Actions) == 0 {
		v.add("actions", "Actions: cannot be blank", "BlankValue")
	}
	for _, a := range in.Actions {
		if a.Field != "notification_webhook" {
			continue
		}
		id, _, ok := webhookAction(a)
		if !ok || s.webhooks[id] == nil {
			v.add("base", "Notify by webhook: invalid webhook", "InvalidValue")
		}
	}
	if len(v) > 0 {
		v.write(w)
		return
	}
	now := s.now()
	t := &Trigger{
		ID:         s.nextIDLocked(),
		Title:      in.Title,
		Active:     in.Active == nil || *in.Active,
		Position:   in.Position,
		Conditions: in.Conditions,
		Actions:    in.Actions,
		CreatedAt:  now,
		UpdatedAt:  now,
	}
	if t.Position == 0 {
		t.Position = len(s.trigOrder) + 1
	}
	if t.Conditions.All == nil {
		t.Conditions.All = []TriggerCondition{}
	}
	if t.Conditions.Any == nil {
		t.Conditions.Any = []TriggerCondition{}
	}
	t.URL = fmt.Sprintf("%s/api/v2/triggers/%d.json", baseURL(r), t.ID)
	s.triggers[t.ID] = t
	s.trigOrder = append(s.trigOrder, t.ID)
	writeJSON(w, http.StatusCreated, map[string]any{"trigger": t})
}

func (s *Server) listTriggers(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []*Trigger{}
	for _, id := range s.trigOrder {
		out = append(out, s.triggers[id])
	}
	slices.SortStableFunc(out, func(a, b *Trigger) int { return a.Position - b.Position })
	writeJSON(w, http.StatusOK, map[string]any{"triggers": out, "next_page": nil, "previous_page": nil, "count": len(out)})
}

func (s *Server) showTrigger(w http.ResponseWriter, id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.triggers[id]
	if !ok {
		writeError(w, http.StatusNotFound, "RecordNotFound", "Not found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"trigger": t})
}

// updateTrigger changes the fields present in the request (title, active, position,
// conditions, actions), validating like create: 422 RecordInvalid, 404 RecordNotFound.
func (s *Server) updateTrigger(w http.ResponseWriter, id int64, body []byte) {
	var in struct {
		Title      *string            `json:"title"`
		Active     *bool              `json:"active"`
		Position   *int               `json:"position"`
		Conditions *TriggerConditions `json:"conditions"`
		Actions    *[]TriggerAction   `json:"actions"`
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.triggers[id]
	if !ok {
		writeError(w, http.StatusNotFound, "RecordNotFound", "Not found")
		return
	}
	if !decodeRoot(w, body, "trigger", &in) {
		return
	}
	v := verrs{}
	if in.Title != nil && strings.TrimSpace(*in.Title) == "" {
		v.add("title", "Title: cannot be blank", "BlankValue")
	}
	if in.Actions != nil {
		if len(*in.Actions) == 0 {
			v.add("actions", "Actions: cannot be blank", "BlankValue")
		}
		for _, a := range *in.Actions {
			if a.Field != "notification_webhook" {
				continue
			}
			hid, _, ok := webhookAction(a)
			if !ok || s.webhooks[hid] == nil {
				v.add("base", "Notify by webhook: invalid webhook", "InvalidValue")
			}
		}
	}
	if len(v) > 0 {
		v.write(w)
		return
	}
	if in.Title != nil {
		t.Title = *in.Title
	}
	if in.Active != nil {
		t.Active = *in.Active
	}
	if in.Position != nil && *in.Position > 0 {
		t.Position = *in.Position
	}
	if in.Conditions != nil {
		t.Conditions = *in.Conditions
		if t.Conditions.All == nil {
			t.Conditions.All = []TriggerCondition{}
		}
		if t.Conditions.Any == nil {
			t.Conditions.Any = []TriggerCondition{}
		}
	}
	if in.Actions != nil {
		t.Actions = *in.Actions
	}
	t.UpdatedAt = s.now()
	writeJSON(w, http.StatusOK, map[string]any{"trigger": t})
}

func (s *Server) deleteTrigger(w http.ResponseWriter, id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.triggers[id]; !ok {
		writeError(w, http.StatusNotFound, "RecordNotFound", "Not found")
		return
	}
	delete(s.triggers, id)
	s.trigOrder = slices.DeleteFunc(s.trigOrder, func(x int64) bool { return x == id })
	w.WriteHeader(http.StatusNoContent)
}

// Triggers returns a copy of the triggers in position order.
func (s *Server) Triggers() []Trigger {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Trigger{}
	for _, id := range s.trigOrder {
		t := *s.triggers[id]
		t.Conditions.All = slices.Clone(t.Conditions.All)
		t.Conditions.Any = slices.Clone(t.Conditions.Any)
		t.Actions = slices.Clone(t.Actions)
		out = append(out, t)
	}
	slices.SortStableFunc(out, func(a, b Trigger) int { return a.Position - b.Position })
	return out
}

// event describes a ticket create or update for trigger evaluation.
type event struct {
	updateType    string   // "Create" or "Change"
	comment       *Comment // comment added by this update, if any
	statusChanged bool
}

// matches evaluates one condition. Unsupported conditions are treated as satisfied.
func (c TriggerCondition) matches(t *ticket, ev event) bool {
	val := fmt.Sprint(c.Value)
	switch c.Field {
	case "update_type":
		eq := strings.EqualFold(val, ev.updateType)
		if c.Operator == "is_not" {
			return !eq
		}
		return eq
	case "status":
		switch c.Operator {
		case "is":
			return t.Status == val
		case "is_not":
			return t.Status != val
		case "changed":
			return ev.statusChanged
		case "not_changed":
			return !ev.statusChanged
		case "value":
			return ev.statusChanged && t.Status == val
		}
	case "comment_is_public":
		public := ev.comment != nil && ev.comment.Public
		switch val {
		case "true", "requester_can_see_comment":
			return public
		case "false":
			return !public
		case "not_relevant": // "Comment is present (public or private)"
			return ev.comment != nil
		}
	case "current_tags":
		// The value is a space-separated list; includes means any of them.
		hit := false
		for _, tag := range strings.Fields(strings.ToLower(val)) {
			if slices.Contains(t.Tags, tag) {
				hit = true
				break
			}
		}
		switch c.Operator {
		case "includes":
			return hit
		case "not_includes":
			return !hit
		}
	}
	return true
}

func (tr *Trigger) matches(t *ticket, ev event) bool {
	for _, c := range tr.Conditions.All {
		if !c.matches(t, ev) {
			return false
		}
	}
	if len(tr.Conditions.Any) == 0 {
		return true
	}
	for _, c := range tr.Conditions.Any {
		if c.matches(t, ev) {
			return true
		}
	}
	return false
}

// fireTriggersLocked runs every active trigger matching the event, in position order, and
// starts the webhook deliveries of those that notify a webhook.
func (s *Server) fireTriggersLocked(t *ticket, ev event) {
	ids := slices.Clone(s.trigOrder)
	slices.SortStableFunc(ids, func(a, b int64) int { return s.triggers[a].Position - s.triggers[b].Position })
	var vars map[string]any
	for _, id := range ids {
		tr := s.triggers[id]
		if !tr.Active || !tr.matches(t, ev) {
			continue
		}
		for _, a := range tr.Actions {
			hid, tmpl, ok := webhookAction(a)
			if !ok {
				continue
			}
			h := s.webhooks[hid]
			if h == nil || h.Status != "active" {
				continue
			}
			if vars == nil {
				vars = s.placeholdersLocked(t)
			}
			body := renderTemplate(tmpl, vars, h.RequestFormat == "json")
			s.startDelivery(*h, tr.ID, t.ID, body)
		}
	}
}

// placeholdersLocked returns the values of the supported Liquid placeholders.
func (s *Server) placeholdersLocked(t *ticket) map[string]any {
	v := map[string]any{
		"ticket.id":          t.ID,
		"ticket.external_id": deref(t.ExternalID),
		"ticket.status":      t.Status,
		"ticket.title":       t.Subject,
		"ticket.priority":    deref(t.Priority),
		"ticket.ticket_type": deref(t.Type),
		"ticket.tags":        strings.Join(t.Tags, " "),
		"ticket.url":         t.URL,
		"ticket.created_at":  t.CreatedAt.Format(time.RFC3339),
		"ticket.updated_at":  t.UpdatedAt.Format(time.RFC3339),
	}
	if t.GroupID != nil {
		v["ticket.group.id"] = *t.GroupID
		if g := s.groups[*t.GroupID]; g != nil {
			v["ticket.group.name"] = g.Name
		}
	}
	if u := s.users[t.RequesterID]; u != nil {
		v["ticket.requester.id"] = u.ID
		v["ticket.requester.email"] = u.Email
		v["ticket.requester.name"] = u.Name
	}
	if n := len(t.comments); n > 0 {
		c := t.comments[n-1]
		v["ticket.latest_comment.id"] = c.ID
		v["ticket.latest_comment.body"] = c.Body
		v["ticket.latest_comment.html_body"] = c.HTMLBody
		v["ticket.latest_comment.is_public"] = c.Public
		v["ticket.latest_comment.via"] = c.Via.Channel
		v["ticket.latest_comment.created_at"] = c.CreatedAt.Format(time.RFC3339)
		v["ticket.latest_comment.author.id"] = c.AuthorID
		if u := s.users[c.AuthorID]; u != nil {
			v["ticket.latest_comment.author.email"] = u.Email
			v["ticket.latest_comment.author.name"] = u.Name
		}
	}
	return v
}

var placeholderRE = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_.]+)\s*\}\}`)

// renderTemplate substitutes {{name}} placeholders. With jsonEscape, string values are
// escaped as the inside of a JSON string (no quotes added), so a template writes
// "{{ticket.latest_comment.body}}" in quotes and {{ticket.id}} without. Unknown
// placeholders render as the empty string, like Liquid's nil.
func renderTemplate(tmpl string, vars map[string]any, jsonEscape bool) []byte {
	out := placeholderRE.ReplaceAllStringFunc(tmpl, func(m string) string {
		name := placeholderRE.FindStringSubmatch(m)[1]
		val, ok := vars[name]
		if !ok {
			return ""
		}
		str, isString := val.(string)
		if !isString {
			return fmt.Sprint(val)
		}
		if !jsonEscape {
			return str
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.Encode(str)
		q := strings.TrimSuffix(b.String(), "\n")
		return q[1 : len(q)-1]
	})
	return []byte(out)
}

// Sign returns Zendesk's webhook signature: base64(HMAC-SHA256(secret, timestamp+body)).
func Sign(secret, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) startDelivery(h Webhook, triggerID, ticketID int64, body []byte) {
	s.dmu.Lock()
	s.inflight++
	s.dmu.Unlock()
	go func() {
		defer func() {
			s.dmu.Lock()
			s.inflight--
			s.dcond.Broadcast()
			s.dmu.Unlock()
		}()
		s.deliver(h, triggerID, ticketID, body)
	}()
}

// deliver sends one webhook event, retrying after connection errors and 5xx answers with
// a linear backoff, at most Options.WebhookAttempts times, until Close.
func (s *Server) deliver(h Webhook, triggerID, ticketID int64, body []byte) {
	for attempt := 1; attempt <= s.opts.WebhookAttempts; attempt++ {
		if attempt > 1 {
			t := time.NewTimer(time.Duration(attempt-1) * s.opts.WebhookBackoff)
			select {
			case <-s.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		req, err := http.NewRequestWithContext(s.ctx, h.HTTPMethod, h.Endpoint, bytes.NewReader(body))
		if err != nil {
			return
		}
		ts := s.opts.Now().UTC().Format("2006-01-02T15:04:05Z")
		switch h.RequestFormat {
		case "xml":
			req.Header.Set("Content-Type", "application/xml")
		case "form_encoded":
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		default:
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("User-Agent", "Zendesk Webhook")
		req.Header.Set("X-Zendesk-Webhook-Id", h.ID)
		req.Header.Set("X-Zendesk-Webhook-Invocation-Id", strconv.FormatInt(triggerID, 10))
		req.Header.Set("X-Zendesk-Webhook-Signature-Timestamp", ts)
		req.Header.Set("X-Zendesk-Webhook-Signature", Sign(h.secret, ts, body))
		if a := h.Authentication; a != nil {
			switch a.Type {
			case "bearer_token":
				req.Header.Set("Authorization", "Bearer "+a.Data["token"])
			case "basic_auth":
				req.SetBasicAuth(a.Data["username"], a.Data["password"])
			case "api_key":
				req.Header.Set(a.Data["name"], a.Data["value"])
			}
		}
		d := Delivery{
			WebhookID: h.ID, TriggerID: triggerID, TicketID: ticketID, Endpoint: h.Endpoint,
			Method: h.HTTPMethod, Header: req.Header.Clone(), Body: body, Attempt: attempt,
		}
		resp, err := s.opts.WebhookClient.Do(req)
		if err != nil {
			d.Err = err.Error()
		} else {
			d.Status = resp.StatusCode
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		d.Time = s.now()
		s.mu.Lock()
		if len(s.deliveries) >= maxDeliveries {
			s.deliveries = slices.Delete(s.deliveries, 0, 1)
		}
		s.deliveries = append(s.deliveries, d)
		s.mu.Unlock()
		if err == nil && resp.StatusCode < 500 {
			return
		}
		if s.ctx.Err() != nil {
			return
		}
	}
}
