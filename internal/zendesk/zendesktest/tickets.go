package zendesktest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// ticketInput is the "ticket" object of create and update requests. Fields Zendesk
// accepts but the simulator does not model (ids, timestamps, via, ...) are ignored.
type ticketInput struct {
	Subject      *string            `json:"subject"`
	Comment      *commentInput      `json:"comment"`
	Requester    *requesterInput    `json:"requester"`
	RequesterID  int64              `json:"requester_id"`
	SubmitterID  int64              `json:"submitter_id"`
	AssigneeID   int64              `json:"assignee_id"`
	GroupID      int64              `json:"group_id"`
	Tags         *[]string          `json:"tags"`
	Priority     *string            `json:"priority"`
	Type         *string            `json:"type"`
	Status       *string            `json:"status"`
	ProblemID    int64              `json:"problem_id"`
	ExternalID   *string            `json:"external_id"`
	CustomFields []customFieldInput `json:"custom_fields"`
}

type commentInput struct {
	Body     string   `json:"body"`
	HTMLBody string   `json:"html_body"`
	Public   *bool    `json:"public"`
	AuthorID int64    `json:"author_id"`
	Uploads  []string `json:"uploads"`
}

type requesterInput struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

type customFieldInput struct {
	ID    int64           `json:"id"`
	Value json.RawMessage `json:"value"`
}

var (
	validPriorities = []string{"low", "normal", "high", "urgent"}
	validTypes      = []string{"problem", "incident", "question", "task"}
	validStatuses   = []string{"new", "open", "pending", "hold", "solved", "closed"}
)

// verrs collects Zendesk RecordInvalid details.
type verrs map[string][]map[string]string

func (v verrs) add(field, description, code string) {
	v[field] = append(v[field], map[string]string{"description": description, "error": code})
}

func (v verrs) write(w http.ResponseWriter) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
		"error":       "RecordInvalid",
		"description": "Record validation errors",
		"details":     v,
	})
}

func decodeRoot(w http.ResponseWriter, body []byte, root string, into any) bool {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err != nil {
		writeError(w, http.StatusBadRequest, "InvalidJSON", "The request body is not valid JSON: "+err.Error())
		return false
	}
	raw, ok := env[root]
	if !ok || string(raw) == "null" {
		writeError(w, http.StatusBadRequest, "ParameterMissing", "param is missing or the value is empty: "+root)
		return false
	}
	if err := json.Unmarshal(raw, into); err != nil {
		writeError(w, http.StatusBadRequest, "InvalidJSON", "Invalid "+root+": "+err.Error())
		return false
	}
	return true
}

// canonicalHash hashes the JSON body with keys sorted and whitespace removed, so the
// idempotency check compares parameters, not formatting.
func canonicalHash(body []byte) string {
	var v any
	canon := body
	if json.Unmarshal(body, &v) == nil {
		if b, err := json.Marshal(v); err == nil {
			canon = b
		}
	}
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:])
}

func (s *Server) createTicket(w http.ResponseWriter, r *http.Request, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()

	key := r.Header.Get("Idempotency-Key")
	hash := canonicalHash(body)
	if key != "" {
		now := s.opts.Now()
		for k, e := range s.idem {
			if now.After(e.expires) {
				delete(s.idem, k)
			}
		}
		if e, ok := s.idem[key]; ok {
			if e.bodyHash != hash {
				writeError(w, http.StatusBadRequest, "IdempotentRequestError", "Request parameters do not match the original request")
				return
			}
			w.Header().Set("x-idempotency-lookup", "hit")
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(e.status)
			w.Write(e.body)
			return
		}
		w.Header().Set("x-idempotency-lookup", "miss")
	}

	var in ticketInput
	if !decodeRoot(w, body, "ticket", &in) {
		return
	}
	v := verrs{}
	if in.Comment == nil || (strings.TrimSpace(in.Comment.Body) == "" && strings.TrimSpace(in.Comment.HTMLBody) == "") {
		v.add("base", "Comment: cannot be blank", "BlankValue")
	}
	s.validateFieldsLocked(&in, v)
	var requester *User
	switch {
	case in.RequesterID != 0:
		requester = s.users[in.RequesterID]
		if requester == nil {
			v.add("requester", "Requester: is invalid", "InvalidValue")
		}
	case in.Requester != nil && in.Requester.Email != "":
		if !strings.Contains(in.Requester.Email, "@") {
			v.add("requester", "Requester: Email is invalid", "InvalidValue")
		}
	}
	submitterID := s.agentID
	for _, id := range []int64{in.SubmitterID, deref(in.Comment).AuthorID} {
		if id != 0 {
			if s.users[id] == nil {
				v.add("submitter", "Submitter: is invalid", "InvalidValue")
			}
		}
	}
	if in.SubmitterID != 0 {
		submitterID = in.SubmitterID
	} else if in.Comment != nil && in.Comment.AuthorID != 0 {
		submitterID = in.Comment.AuthorID
	}
	if in.Comment != nil {
		s.validateUploadsLocked(in.Comment.Uploads, v)
	}
	if len(v) > 0 {
		v.write(w)
		return
	}
	if requester == nil {
		if in.Requester != nil && in.Requester.Email != "" {
			requester = s.upsertUserLocked(in.Requester.Name, in.Requester.Email, "")
		} else {
			requester = s.users[s.agentID]
		}
	}

	now := s.now()
	s.ticketSeq++
	t := &ticket{Ticket: Ticket{
		ID:           s.ticketSeq,
		URL:          fmt.Sprintf("%s/api/v2/tickets/%d.json", baseURL(r), s.ticketSeq),
		Subject:      deref(in.Subject),
		RawSubject:   deref(in.Subject),
		Status:       "new",
		RequesterID:  requester.ID,
		SubmitterID:  submitterID,
		Tags:         []string{},
		CustomFields: []CustomField{},
		Via:          Via{Channel: "api", Source: ViaSource{From: map[string]string{}, To: map[string]string{}}},
		CreatedAt:    now,
		UpdatedAt:    now,
	}}
	s.applyFieldsLocked(t, &in, nil)
	if t.AssigneeID != nil && in.Status == nil {
		t.Status = "open"
	}
	c := s.newCommentLocked(t, in.Comment, submitterID, Via{Channel: "api", Source: t.Via.Source})
	t.Description = c.PlainBody
	s.tickets[t.ID] = t
	s.ticketOrder = append(s.ticketOrder, t.ID)

	resp, _ := json.Marshal(map[string]any{"ticket": t.snapshot()})
	resp = append(resp, '\n')
	if key != "" {
		s.idem[key] = &idemEntry{bodyHash: hash, status: http.StatusCreated, body: resp, expires: s.opts.Now().Add(idempotencyTTL)}
	}
	w.Header().Set("Location", t.URL)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusCreated)
	w.Write(resp)
	s.fireTriggersLocked(t, event{updateType: "Create", comment: c, statusChanged: true})
}

// validateFieldsLocked checks the fields shared by create and update.
func (s *Server) validateFieldsLocked(in *ticketInput, v verrs) {
	if in.GroupID != 0 && s.groups[in.GroupID] == nil {
		v.add("group", "Group: is invalid", "InvalidValue")
	}
	if p := deref(in.Priority); p != "" && !slices.Contains(validPriorities, p) {
		v.add("priority", "Priority: is invalid", "InvalidValue")
	}
	if ty := deref(in.Type); ty != "" && !slices.Contains(validTypes, ty) {
		v.add("type", "Type: is invalid", "InvalidValue")
	}
	if st := deref(in.Status); st != "" && !slices.Contains(validStatuses, st) {
		v.add("status", "Status: is invalid", "InvalidValue")
	}
	if in.ProblemID != 0 {
		p := s.tickets[in.ProblemID]
		if p == nil || deref(p.Type) != "problem" {
			v.add("problem_id", "Problem: is invalid", "InvalidValue")
		}
	}
	if in.AssigneeID != 0 {
		u := s.users[in.AssigneeID]
		if u == nil || u.Role == "end-user" {
			v.add("assignee", "Assignee: is invalid", "InvalidValue")
		}
	}
}

func (s *Server) validateUploadsLocked(tokens []string, v verrs) {
	now := s.opts.Now()
	for _, tok := range tokens {
		u := s.uploads[tok]
		if u == nil || now.After(u.created.Add(uploadTTL)) {
			v.add("base", "Attachment: upload token "+strconv.Quote(tok)+" is invalid", "InvalidValue")
		}
	}
}

// applyFieldsLocked applies validated field changes; changes, if not nil, receives
// Zendesk audit "Change" events.
func (s *Server) applyFieldsLocked(t *ticket, in *ticketInput, changes *[]map[string]any) {
	change := func(field string, prev, cur any) {
		if changes != nil {
			*changes = append(*changes, map[string]any{"type": "Change", "field_name": field, "previous_value": prev, "value": cur})
		}
	}
	if in.Subject != nil && *in.Subject != t.Subject {
		change("subject", t.Subject, *in.Subject)
		t.Subject, t.RawSubject = *in.Subject, *in.Subject
	}
	if in.Status != nil && *in.Status != "" && *in.Status != t.Status {
		change("status", t.Status, *in.Status)
		t.Status = *in.Status
	}
	if in.Priority != nil {
		var p *string
		if *in.Priority != "" {
			p = strPtr(*in.Priority)
		}
		if deref(p) != deref(t.Priority) {
			change("priority", t.Priority, p)
			t.Priority = p
		}
	}
	if in.Type != nil {
		var ty *string
		if *in.Type != "" {
			ty = strPtr(*in.Type)
		}
		if deref(ty) != deref(t.Type) {
			change("type", t.Type, ty)
			t.Type = ty
		}
	}
	if in.ExternalID != nil {
		var e *string
		if *in.ExternalID != "" {
			e = strPtr(*in.ExternalID)
		}
		t.ExternalID = e
	}
	if in.GroupID != 0 && in.GroupID != deref(t.GroupID) {
		change("group_id", t.GroupID, in.GroupID)
		t.GroupID = intPtr(in.GroupID)
	}
	if in.AssigneeID != 0 && in.AssigneeID != deref(t.AssigneeID) {
		change("assignee_id", t.AssigneeID, in.AssigneeID)
		t.AssigneeID = intPtr(in.AssigneeID)
	}
	if in.ProblemID != 0 {
		t.ProblemID = intPtr(in.ProblemID)
	}
	if in.Tags != nil {
		tags := normalizeTags(*in.Tags)
		if !slices.Equal(tags, t.Tags) {
			change("tags", t.Tags, tags)
			t.Tags = tags
		}
	}
	for _, cf := range in.CustomFields {
		if cf.ID == 0 {
			continue
		}
		var val any
		if len(cf.Value) > 0 {
			_ = json.Unmarshal(cf.Value, &val)
		}
		i := slices.IndexFunc(t.CustomFields, func(c CustomField) bool { return c.ID == cf.ID })
		if i < 0 {
			t.CustomFields = append(t.CustomFields, CustomField{ID: cf.ID, Value: val})
		} else {
			t.CustomFields[i].Value = val
		}
	}
}

// newCommentLocked appends a comment built from in (which must have a body) to t.
func (s *Server) newCommentLocked(t *ticket, in *commentInput, authorID int64, via Via) *Comment {
	if in.AuthorID != 0 {
		authorID = in.AuthorID
	}
	c := &Comment{
		ID:          s.nextIDLocked(),
		Type:        "Comment",
		AuthorID:    authorID,
		Public:      in.Public == nil || *in.Public,
		Attachments: []Attachment{},
		AuditID:     s.nextIDLocked(),
		Via:         via,
		CreatedAt:   s.now(),
		TicketID:    t.ID,
	}
	if strings.TrimSpace(in.HTMLBody) != "" {
		c.HTMLBody = in.HTMLBody
		c.Body = textFromHTML(in.HTMLBody)
	} else {
		c.Body = in.Body
		c.HTMLBody = htmlFromText(in.Body)
	}
	c.PlainBody = c.Body
	for _, tok := range in.Uploads {
		if u := s.uploads[tok]; u != nil {
			c.Attachments = append(c.Attachments, u.attachment)
		}
	}
	t.comments = append(t.comments, c)
	t.UpdatedAt = c.CreatedAt
	return c
}

func (s *Server) showTicket(w http.ResponseWriter, id int64) {
	s.mu.Lock()
	t, ok := s.tickets[id]
	var snap Ticket
	if ok {
		snap = t.snapshot()
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "RecordNotFound", "Not found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ticket": snap})
}

// listTickets lists all tickets, or those with ?external_id= (which is not unique).
func (s *Server) listTickets(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ext, byExt := q.Get("external_id"), q.Has("external_id")
	s.mu.Lock()
	out := []Ticket{}
	for _, id := range s.ticketOrder {
		t := s.tickets[id]
		if byExt && deref(t.ExternalID) != ext {
			continue
		}
		out = append(out, t.snapshot())
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"tickets": out, "next_page": nil, "previous_page": nil, "count": len(out)})
}

func (s *Server) updateTicket(w http.ResponseWriter, r *http.Request, id int64, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tickets[id]
	if !ok {
		writeError(w, http.StatusNotFound, "RecordNotFound", "Not found")
		return
	}
	var in ticketInput
	if !decodeRoot(w, body, "ticket", &in) {
		return
	}
	v := verrs{}
	if t.Status == "closed" {
		v.add("status", "Status: closed prevents ticket update", "ClosedPreventsUpdate")
		v.write(w)
		return
	}
	s.validateFieldsLocked(&in, v)
	if deref(in.Status) == "new" && t.Status != "new" {
		v.add("status", "Status: cannot be set to new", "InvalidValue")
	}
	hasComment := in.Comment != nil && (strings.TrimSpace(in.Comment.Body) != "" || strings.TrimSpace(in.Comment.HTMLBody) != "")
	if in.Comment != nil {
		if in.Comment.AuthorID != 0 && s.users[in.Comment.AuthorID] == nil {
			v.add("base", "Comment: author is invalid", "InvalidValue")
		}
		if !hasComment && len(in.Comment.Uploads) > 0 {
			v.add("base", "Comment: cannot be blank", "BlankValue")
		}
		s.validateUploadsLocked(in.Comment.Uploads, v)
	}
	if len(v) > 0 {
		v.write(w)
		return
	}

	prevStatus := t.Status
	var events []map[string]any
	s.applyFieldsLocked(t, &in, &events)
	// Any agent update takes a ticket out of "new", as in Zendesk.
	if t.Status == "new" && in.Status == nil {
		events = append(events, map[string]any{"type": "Change", "field_name": "status", "previous_value": "new", "value": "open"})
		t.Status = "open"
	}
	now := s.now()
	auditID := s.nextIDLocked()
	var c *Comment
	if hasComment {
		c = s.newCommentLocked(t, in.Comment, s.agentID, Via{Channel: "api", Source: ViaSource{From: map[string]string{}, To: map[string]string{}}})
		c.AuditID = auditID
		events = append([]map[string]any{{
			"id": c.ID, "type": "Comment", "author_id": c.AuthorID, "body": c.Body,
			"html_body": c.HTMLBody, "plain_body": c.PlainBody, "public": c.Public,
			"attachments": c.Attachments, "audit_id": auditID,
		}}, events...)
	}
	for _, e := range events {
		if e["id"] == nil {
			e["id"] = s.nextIDLocked()
		}
	}
	if len(events) > 0 {
		t.UpdatedAt = now
	}
	audit := map[string]any{
		"id": auditID, "ticket_id": t.ID, "created_at": now, "author_id": s.agentID,
		"metadata": map[string]any{"system": map[string]any{}, "custom": map[string]any{}},
		"via":      Via{Channel: "api", Source: ViaSource{From: map[string]string{}, To: map[string]string{}}},
		"events":   append([]map[string]any{}, events...),
	}
	writeJSON(w, http.StatusOK, map[string]any{"ticket": t.snapshot(), "audit": audit})
	if len(events) > 0 {
		s.fireTriggersLocked(t, event{updateType: "Change", comment: c, statusChanged: prevStatus != t.Status})
	}
}

// listComments serves cursor pagination (page[size] up to 100, page[after], page[before]).
func (s *Server) listComments(w http.ResponseWriter, r *http.Request, id int64) {
	q := r.URL.Query()
	size := 100
	if v := q.Get("page[size]"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeError(w, http.StatusBadRequest, "InvalidPaginationParameter", "page[size] must be between 1 and 100")
			return
		}
		size = n
	}
	s.mu.Lock()
	t, ok := s.tickets[id]
	var all []Comment
	if ok {
		for _, c := range t.comments {
			all = append(all, cloneComment(c))
		}
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "RecordNotFound", "Not found")
		return
	}
	lo, hi := 0, len(all)
	if a := q.Get("page[after]"); a != "" {
		cid, ok := decodeCursor(a)
		if !ok {
			writeError(w, http.StatusBadRequest, "InvalidPaginationParameter", "page[after] is not a valid cursor")
			return
		}
		lo = slices.IndexFunc(all, func(c Comment) bool { return c.ID > cid })
		if lo < 0 {
			lo = len(all)
		}
		hi = min(lo+size, len(all))
	} else if b := q.Get("page[before]"); b != "" {
		cid, ok := decodeCursor(b)
		if !ok {
			writeError(w, http.StatusBadRequest, "InvalidPaginationParameter", "page[before] is not a valid cursor")
			return
		}
		hi = slices.IndexFunc(all, func(c Comment) bool { return c.ID >= cid })
		if hi < 0 {
			hi = len(all)
		}
		lo = max(hi-size, 0)
	} else {
		hi = min(size, len(all))
	}
	page := append([]Comment{}, all[lo:hi]...)
	meta := map[string]any{"has_more": hi < len(all), "after_cursor": nil, "before_cursor": nil}
	links := map[string]any{"next": nil, "prev": nil}
	self := baseURL(r) + r.URL.Path
	if len(page) > 0 {
		after, before := encodeCursor(page[len(page)-1].ID), encodeCursor(page[0].ID)
		meta["after_cursor"], meta["before_cursor"] = after, before
		if hi < len(all) {
			links["next"] = self + "?" + url.Values{"page[size]": {strconv.Itoa(size)}, "page[after]": {after}}.Encode()
		}
		if lo > 0 {
			links["prev"] = self + "?" + url.Values{"page[size]": {strconv.Itoa(size)}, "page[before]": {before}}.Encode()
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"comments": page, "meta": meta, "links": links})
}

func encodeCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("c:" + strconv.FormatInt(id, 10)))
}

func decodeCursor(c string) (int64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	rest, ok := bytes.CutPrefix(b, []byte("c:"))
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(string(rest), 10, 64)
	return id, err == nil
}
