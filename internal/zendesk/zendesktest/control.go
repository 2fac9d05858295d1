package zendesktest

import (
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"strings"
)

// AgentReply adds a comment by an agent (the ticket's assignee, else the API user) as if
// written in the agent interface (via.channel "web"); public false makes an internal note.
// A "new" ticket becomes "open". Triggers fire. It returns ErrTicketNotFound,
// ErrTicketClosed or ErrEmptyComment.
func (s *Server) AgentReply(ticketID int64, body string, public bool) (Comment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.replyableLocked(ticketID, body)
	if err != nil {
		return Comment{}, err
	}
	author := s.agentID
	if t.AssigneeID != nil {
		author = *t.AssigneeID
	}
	prev := t.Status
	if t.Status == "new" {
		t.Status = "open"
	}
	via := Via{Channel: "web", Source: ViaSource{From: map[string]string{}, To: map[string]string{}}}
	c := s.newCommentLocked(t, &commentInput{Body: body, Public: &public}, author, via)
	s.fireTriggersLocked(t, event{updateType: "Change", comment: c, statusChanged: prev != t.Status})
	return cloneComment(c), nil
}

// RequesterEmailReply adds a public comment by the ticket's requester as if it arrived by
// email (via.channel "email"). A pending, on-hold or solved ticket reopens ("open"), as
// Zendesk does. Triggers fire. It returns ErrTicketNotFound, ErrTicketClosed or
// ErrEmptyComment.
func (s *Server) RequesterEmailReply(ticketID int64, body string) (Comment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.replyableLocked(ticketID, body)
	if err != nil {
		return Comment{}, err
	}
	prev := t.Status
	switch t.Status {
	case "pending", "hold", "solved":
		t.Status = "open"
	}
	from := map[string]string{"address": "", "name": ""}
	if u := s.users[t.RequesterID]; u != nil {
		from = map[string]string{"address": u.Email, "name": u.Name}
	}
	via := Via{Channel: "email", Source: ViaSource{From: from, To: map[string]string{"address": s.opts.SupportAddress, "name": "Support"}}}
	public := true
	c := s.newCommentLocked(t, &commentInput{Body: body, Public: &public}, t.RequesterID, via)
	s.fireTriggersLocked(t, event{updateType: "Change", comment: c, statusChanged: prev != t.Status})
	return cloneComment(c), nil
}

func (s *Server) replyableLocked(ticketID int64, body string) (*ticket, error) {
	t, ok := s.tickets[ticketID]
	switch {
	case !ok:
		return nil, ErrTicketNotFound
	case t.Status == "closed":
		return nil, ErrTicketClosed
	case strings.TrimSpace(body) == "":
		return nil, ErrEmptyComment
	}
	return t, nil
}

// controlMux serves the unauthenticated /_sim/ API used by the local demo.
func (s *Server) controlMux() *http.ServeMux {
	mux := http.NewServeMux()
	reply := func(email bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			id, ok := parseID(r.PathValue("id"))
			if !ok {
				writeError(w, http.StatusNotFound, "RecordNotFound", "Not found")
				return
			}
			var in struct {
				Body   string `json:"body"`
				Public *bool  `json:"public"`
			}
			if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
				writeError(w, http.StatusBadRequest, "InvalidJSON", err.Error())
				return
			}
			var c Comment
			var err error
			if email {
				c, err = s.RequesterEmailReply(id, in.Body)
			} else {
				c, err = s.AgentReply(id, in.Body, in.Public == nil || *in.Public)
			}
			switch {
			case errors.Is(err, ErrTicketNotFound):
				writeError(w, http.StatusNotFound, "RecordNotFound", "Not found")
			case err != nil:
				writeError(w, http.StatusUnprocessableEntity, "RecordInvalid", err.Error())
			default:
				writeJSON(w, http.StatusCreated, map[string]any{"comment": c})
			}
		}
	}
	mux.HandleFunc("POST /_sim/tickets/{id}/agent_reply", reply(false))
	mux.HandleFunc("POST /_sim/tickets/{id}/email_reply", reply(true))
	mux.HandleFunc("GET /_sim/{$}", s.servePage)
	return mux
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Zendesk simulator</title>
<style>body{font-family:sans-serif;margin:2em}article{border:1px solid #ccc;padding:.5em 1em;margin:1em 0}
.c{border-left:3px solid #8c8;padding-left:.5em;margin:.5em 0}.private{border-color:#fc6;background:#fff8e5}pre{white-space:pre-wrap}</style>
</head><body><h1>Zendesk simulator</h1>
<p>{{len .Tickets}} ticket(s). Reply with <code>POST /_sim/tickets/{id}/agent_reply {"body","public"}</code>
or <code>POST /_sim/tickets/{id}/email_reply {"body"}</code>.</p>
{{range .Tickets}}<article><h2>#{{.ID}} {{.Subject}}</h2>
<p>Status <b>{{.Status}}</b> · requester {{.Requester}} · external_id {{.ExternalID}} · tags {{.Tags}}</p>
{{range .Comments}}<div class="c{{if not .Public}} private{{end}}"><small>{{.Author}} · {{.Via}} · {{.CreatedAt}}{{if not .Public}} · internal note{{end}}</small>
<pre>{{.Body}}</pre>{{range .Attachments}}<small>📎 {{.}}</small> {{end}}</div>
{{end}}</article>{{end}}
</body></html>
`))

func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	type pc struct {
		Author, Via, CreatedAt, Body string
		Public                       bool
		Attachments                  []string
	}
	type pt struct {
		ID                                           int64
		Subject, Status, Requester, ExternalID, Tags string
		Comments                                     []pc
	}
	var data struct{ Tickets []pt }
	s.mu.Lock()
	email := func(id int64) string {
		if u := s.users[id]; u != nil {
			return u.Name + " <" + u.Email + ">"
		}
		return "unknown"
	}
	for _, id := range s.ticketOrder {
		t := s.tickets[id]
		p := pt{ID: t.ID, Subject: t.Subject, Status: t.Status, Requester: email(t.RequesterID),
			ExternalID: deref(t.ExternalID), Tags: strings.Join(t.Tags, " ")}
		for _, c := range t.comments {
			var atts []string
			for _, a := range c.Attachments {
				atts = append(atts, a.FileName)
			}
			p.Comments = append(p.Comments, pc{Author: email(c.AuthorID), Via: c.Via.Channel,
				CreatedAt: c.CreatedAt.Format("2006-01-02 15:04:05Z"), Body: c.Body, Public: c.Public, Attachments: atts})
		}
		data.Tickets = append(data.Tickets, p)
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	pageTmpl.Execute(w, data)
}
