package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/httperr"
)

// Tickets is the Zendesk side of a report: its ticket, its conversation,
// and the outbox that sends replies and notes.
type Tickets interface {
	TicketLink(ctx context.Context, id bugreport.UUID) (*bugreport.TicketLink, error)
	// TicketLinks reads many reports' links at once; reports without one
	// are absent from the map.
	TicketLinks(ctx context.Context, ids []bugreport.UUID) (map[bugreport.UUID]*bugreport.TicketLink, error)
	Thread(ctx context.Context, r *bugreport.Report) ([]bugreport.Message, error)
	SendMessage(report bugreport.UUID, body string, public bool) (bugreport.UUID, error)
	Retry(id bugreport.UUID) error
	TicketURL(id int64) string
}

// MaxMessageBytes bounds a reply or note sent through the API.
const MaxMessageBytes = 64 << 10

type ticketJSON struct {
	ID        int64  `json:"id,omitempty"`
	URL       string `json:"url,omitempty"`
	State     string `json:"state"`
	Status    string `json:"status,omitempty"`
	Error     string `json:"error,omitempty"`
	ProblemID int64  `json:"problem_id,omitempty"`
	Attempts  uint32 `json:"attempts,omitempty"`
}

// ticket returns the report's ticket as JSON; state "pending" when no sync
// has been recorded yet.
func (a *API) ticket(ctx context.Context, id bugreport.UUID) (*ticketJSON, error) {
	l, err := a.cfg.Tickets.TicketLink(ctx, id)
	if bugreport.ErrorCode(err) == bugreport.ENOTFOUND {
		return &ticketJSON{State: "pending"}, nil
	}
	if err != nil {
		return nil, err
	}
	t := &ticketJSON{ID: l.TicketID, State: l.State, Status: l.Status, Error: l.Error, ProblemID: l.ProblemID, Attempts: l.Attempts}
	if l.TicketID != 0 {
		t.URL = a.cfg.Tickets.TicketURL(l.TicketID)
	}
	return t, nil
}

var errTicketsOff = bugreport.Errorf(bugreport.EUNAVAILABLE, "zendesk_not_configured", "Zendesk sync is off: set ARUBUG_ZENDESK_URL and its credentials")

func (a *API) requireTickets(w http.ResponseWriter) bool {
	if a.cfg.Tickets == nil {
		httperr.Write(w, errTicketsOff)
		return false
	}
	return true
}

func (a *API) thread(w http.ResponseWriter, r *http.Request) {
	id, ok := parseID(w, r)
	if !ok || !a.requireTickets(w) {
		return
	}
	rep, err := a.cfg.Store.Report(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	t, err := a.ticket(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	msgs, err := a.cfg.Tickets.Thread(r.Context(), rep)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if msgs == nil {
		msgs = []bugreport.Message{}
	}
	httperr.JSON(w, http.StatusOK, map[string]any{"report_id": id.String(), "ticket": t, "messages": msgs})
}

type messageRequest struct {
	Body string `json:"body"`
}

// message queues a public reply (messages) or an internal note (notes).
func (a *API) message(public bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := parseID(w, r)
		if !ok || !a.requireTickets(w) {
			return
		}
		var req messageRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxMessageBytes+4096))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			httperr.Write(w, bugreport.Errorf(bugreport.EINVALID, "invalid_json", "the body must be JSON {\"body\": \"…\"} of at most %d bytes", MaxMessageBytes))
			return
		}
		msg, err := a.QueueMessage(r.Context(), id, req.Body, public)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		kind := bugreport.MessageNote
		if public {
			kind = bugreport.MessageAgentReply
		}
		httperr.JSON(w, http.StatusAccepted, map[string]any{"id": msg.String(), "report_id": id.String(), "kind": kind, "status": "queued"})
	}
}

// QueueMessage queues a public reply to the reporter (public) or an
// internal note on report id's ticket, as POST /api/v1/reports/{id}/messages
// and /notes do, and returns the message's id. Errors: EUNAVAILABLE when
// the Zendesk sync is off, EINVALID for an empty, too long or non-text
// body, ENOTFOUND for an unknown report, and the outbox's errors.
func (a *API) QueueMessage(ctx context.Context, id bugreport.UUID, body string, public bool) (bugreport.UUID, error) {
	if a.cfg.Tickets == nil {
		return bugreport.UUID{}, errTicketsOff
	}
	switch {
	case strings.TrimSpace(body) == "":
		return bugreport.UUID{}, bugreport.Errorf(bugreport.EINVALID, "empty_body", "body must not be empty")
	case len(body) > MaxMessageBytes:
		return bugreport.UUID{}, bugreport.Errorf(bugreport.EINVALID, "body_too_long", "body is longer than %d bytes", MaxMessageBytes)
	case !utf8.ValidString(body) || strings.ContainsRune(body, 0):
		return bugreport.UUID{}, bugreport.Errorf(bugreport.EINVALID, "invalid_text", "body must be UTF-8 text without NUL characters")
	}
	if _, err := a.cfg.Store.Report(ctx, id); err != nil {
		return bugreport.UUID{}, err
	}
	return a.cfg.Tickets.SendMessage(id, body, public)
}

// retrySync queues again a report whose sync failed permanently.
func (a *API) retrySync(w http.ResponseWriter, r *http.Request) {
	id, ok := parseID(w, r)
	if !ok || !a.requireTickets(w) {
		return
	}
	if err := a.RetrySync(r.Context(), id); err != nil {
		a.fail(w, r, err)
		return
	}
	httperr.JSON(w, http.StatusAccepted, map[string]any{"report_id": id.String(), "status": "queued"})
}

// RetrySync queues report id's ticket sync again, as
// POST /api/v1/reports/{id}/sync does. Errors: EUNAVAILABLE when the
// Zendesk sync is off, ENOTFOUND for an unknown report, and the outbox's.
func (a *API) RetrySync(ctx context.Context, id bugreport.UUID) error {
	if a.cfg.Tickets == nil {
		return errTicketsOff
	}
	if _, err := a.cfg.Store.Report(ctx, id); err != nil {
		return err
	}
	return a.cfg.Tickets.Retry(id)
}
