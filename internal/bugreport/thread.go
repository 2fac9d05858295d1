package bugreport

import "time"

// Events that record a report's conversation. Each is tied to the report by
// the "report_id" property and to Zendesk by "ticket_id".
const (
	// EventBugReportMessage is one comment on the report's ticket: the
	// reporter's description, an agent's reply, the requester's emailed
	// reply or an internal note. Its uuid derives from the Zendesk comment
	// id, so a webhook delivered twice and a reconcile pull collapse.
	EventBugReportMessage = "$bug_report_message"
	// EventBugReportStatus is a change of the ticket's status.
	EventBugReportStatus = "$bug_report_status"
)

// Message kinds.
const (
	MessageReport         = "report"          // the reporter's description, the ticket's first comment
	MessageAgentReply     = "agent_reply"     // public reply by an agent; Zendesk emails it to the reporter
	MessageRequesterReply = "requester_reply" // the reporter answered (usually by email)
	MessageNote           = "note"            // internal note, never shown to the reporter
)

// Message is one entry of a report's conversation.
type Message struct {
	ID         UUID      `json:"id"`
	ReportID   UUID      `json:"report_id"`
	TicketID   int64     `json:"ticket_id"`
	CommentID  int64     `json:"comment_id,omitempty"`
	Kind       string    `json:"kind"` // one of the Message* kinds, or "status"
	Public     bool      `json:"public"`
	AuthorID   int64     `json:"author_id,omitempty"`
	AuthorName string    `json:"author_name,omitempty"`
	Via        string    `json:"via,omitempty"` // Zendesk's via.channel: api, web, email
	Body       string    `json:"body,omitempty"`
	Status     string    `json:"status,omitempty"` // for status changes
	At         time.Time `json:"at"`
}

// Ticket sync states of a report.
const (
	SyncTicketed = "ticketed" // the ticket exists; the note may still be on its way
	SyncSynced   = "synced"   // ticket and internal note are in Zendesk
	SyncFailed   = "failed"   // a permanent error; retried only on an operator's request
	SyncSkipped  = "skipped"  // not ticketed on purpose (spam)
	SyncSeeded   = "seeded"   // synthetic history from arubug seed: no real ticket behind it
)

// TicketLink records the Zendesk ticket of a report and the state of its sync.
type TicketLink struct {
	ReportID UUID   `json:"report_id"`
	Project  string `json:"project"`
	// ReportedAt is the report's time; it files the link with its report.
	ReportedAt time.Time `json:"reported_at"`
	TicketID   int64     `json:"ticket_id,omitempty"`
	// ProblemID is the problem ticket this report's ticket is an incident
	// of, when a similar report was ticketed first.
	ProblemID int64  `json:"problem_id,omitempty"`
	Team      string `json:"team,omitempty"`
	State     string `json:"state"`
	Status    string `json:"status,omitempty"` // Zendesk's status: new, open, pending, hold, solved, closed
	Error     string `json:"error,omitempty"`
	// Attempts counts the sync attempts so far.
	Attempts  uint32    `json:"attempts"`
	UpdatedAt time.Time `json:"updated_at"`
}

// TicketStatus is a ticket's Zendesk status as of a time (Zendesk's
// updated_at).
type TicketStatus struct {
	Link   *TicketLink
	Status string
	At     time.Time
}
