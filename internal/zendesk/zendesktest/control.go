package zendesktest

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
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

// controlMux serves the unauthenticated /_sim/ API used by the local demo
// and the scenario harness: replies as an agent or by email, scripted
// faults, and a JSON dump of every ticket. None of it touches /api/v2.
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
	mux.HandleFunc("GET /_sim/tickets.json", s.serveTicketDump)
	mux.HandleFunc("POST /_sim/faults", s.serveAddFault)
	mux.HandleFunc("GET /_sim/faults", s.serveListFaults)
	mux.HandleFunc("DELETE /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_sim/{$}", s.servePage)
	return mux
}

// FaultSpec is a scripted fault as the control API takes and lists it
// (POST /_sim/faults, GET /_sim/faults).
type FaultSpec struct {
	// Kind is "status" (answer Status without doing anything, as FailNext),
	// "drop" (do the work, then close the connection, as CommitThenDrop) or
	// "slow" (wait Delay first, as Slow).
	Kind string `json:"kind"`
	// Method matches the request method; "" or "*" match any.
	Method string `json:"method,omitempty"`
	// Path is a path prefix, e.g. "/api/v2/tickets".
	Path string `json:"path"`
	// N is the number of matching requests the fault applies to (its
	// remaining uses when listed).
	N int `json:"n"`
	// Status is the answer of a "status" fault (e.g. 500, 503, 429).
	Status int `json:"status,omitempty"`
	// Delay is the wait of a "slow" fault, in Go duration syntax ("1.5s").
	Delay string `json:"delay,omitempty"`
}

// AddFault scripts fault f, validated as the control API does: a known
// kind, n ≥ 1, a path starting with /api/v2, a status in 400–599 for
// "status" and a positive delay for "slow".
func (s *Server) AddFault(f FaultSpec) error {
	if f.N <= 0 {
		return errors.New("n must be at least 1")
	}
	if !strings.HasPrefix(f.Path, "/api/v2") {
		return errors.New(`path must start with "/api/v2"`)
	}
	switch f.Kind {
	case "status":
		if f.Status < 400 || f.Status > 599 {
			return errors.New("status must be in 400-599")
		}
		s.FailNext(f.Method, f.Path, f.N, f.Status)
	case "drop":
		s.CommitThenDrop(f.Method, f.Path, f.N)
	case "slow":
		d, err := time.ParseDuration(f.Delay)
		if err != nil || d <= 0 {
			return errors.New(`delay must be a positive duration such as "2s"`)
		}
		s.Slow(f.Method, f.Path, f.N, d)
	default:
		return fmt.Errorf("unknown kind %q (want status, drop or slow)", f.Kind)
	}
	return nil
}

// Faults lists the scripted faults not yet used up, in the order they apply.
func (s *Server) Faults() []FaultSpec {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]FaultSpec, 0, len(s.faults))
	for _, f := range s.faults {
		fs := FaultSpec{Method: f.method, Path: f.pathPrefix, N: f.left}
		switch f.kind {
		case faultStatus:
			fs.Kind, fs.Status = "status", f.status
		case faultDrop:
			fs.Kind = "drop"
		case faultSlow:
			fs.Kind, fs.Delay = "slow", f.delay.String()
		}
		out = append(out, fs)
	}
	return out
}

func (s *Server) serveAddFault(w http.ResponseWriter, r *http.Request) {
	var f FaultSpec
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		writeError(w, http.StatusBadRequest, "InvalidJSON", err.Error())
		return
	}
	if err := s.AddFault(f); err != nil {
		writeError(w, http.StatusUnprocessableEntity, "InvalidFault", err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"fault": f})
}

func (s *Server) serveListFaults(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"faults": s.Faults()})
}

// DumpedTicket is a ticket with its comments, as GET /_sim/tickets.json
// lists it.
type DumpedTicket struct {
	Ticket
	Comments []Comment `json:"comments,omitempty"`
}

// serveTicketDump lists every ticket, in creation order, with its comments
// unless ?comments=false; ?since_id=N lists only tickets with a larger id.
// It is the simulator's state for inspection, not a Zendesk API: no auth,
// no pagination, no rate limit.
func (s *Server) serveTicketDump(w http.ResponseWriter, r *http.Request) {
	withComments := r.URL.Query().Get("comments") != "false"
	var since int64
	if v := r.URL.Query().Get("since_id"); v != "" {
		id, ok := parseID(v)
		if !ok {
			writeError(w, http.StatusBadRequest, "InvalidParameter", "since_id must be a ticket id")
			return
		}
		since = id
	}
	s.mu.Lock()
	out := make([]DumpedTicket, 0, len(s.ticketOrder))
	for _, id := range s.ticketOrder {
		if id <= since {
			continue
		}
		t := s.tickets[id]
		d := DumpedTicket{Ticket: t.snapshot()}
		if withComments {
			d.Comments = make([]Comment, 0, len(t.comments))
			for _, c := range t.comments {
				d.Comments = append(d.Comments, cloneComment(c))
			}
		}
		out = append(out, d)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"tickets": out, "count": len(out)})
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Zendesk simulator</title>
<style>body{font-family:sans-serif;margin:2em}article{border:1px solid #ccc;padding:.5em 1em;margin:1em 0}
.c{border-left:3px solid #8c8;padding-left:.5em;margin:.5em 0}.private{border-color:#fc6;background:#fff8e5}pre{white-space:pre-wrap}</style>
</head><body><h1>Zendesk simulator</h1>
<p>{{len .Tickets}} ticket(s). Reply with <code>POST /_sim/tickets/{id}/agent_reply {"body","public"}</code>
or <code>POST /_sim/tickets/{id}/email_reply {"body"}</code>.
Script faults with <code>POST /_sim/faults {"kind":"status|drop|slow","method","path":"/api/v2/…","n","status","delay"}</code>
(list: <code>GET</code>, clear: <code>DELETE /_sim/faults</code>); every ticket with its comments as JSON: <code>GET /_sim/tickets.json</code>.</p>
{{range .Tickets}}<article id="ticket-{{.ID}}"><h2>#{{.ID}} {{.Subject}}</h2>
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
