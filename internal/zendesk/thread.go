package zendesk

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/arubug/arubug/internal/bugreport"
)

// MaxMessageBody bounds the text of one stored message; longer comments are
// cut (Zendesk allows far more than a dashboard shows).
const MaxMessageBody = 64 << 10

// namespace makes message event ids a pure function of Zendesk's ids, so
// every path that stores a comment (webhook, retried webhook, reconcile)
// writes the same uuid and the events table collapses them.
var namespace = uuid.MustParse("5b0c2f7e-9a41-4c1e-8d0e-6a1f3b2c9d10")

// CommentEventID is the event uuid of a ticket comment.
func CommentEventID(ticketID, commentID int64) bugreport.UUID {
	return bugreport.UUID(uuid.NewSHA1(namespace, []byte("comment:"+strconv.FormatInt(ticketID, 10)+":"+strconv.FormatInt(commentID, 10))))
}

// StatusEventID is the event uuid of a ticket reaching status at time at.
func StatusEventID(ticketID int64, status string, at time.Time) bugreport.UUID {
	return bugreport.UUID(uuid.NewSHA1(namespace, []byte("status:"+strconv.FormatInt(ticketID, 10)+":"+status+":"+at.UTC().Format(time.RFC3339))))
}

// MessageKind names a comment for the thread: the ticket's first comment is
// the report itself; private comments are notes; the requester's comments
// are their replies; everything else is an agent's reply.
func MessageKind(first, public bool, authorID, requesterID int64) string {
	switch {
	case first:
		return bugreport.MessageReport
	case !public:
		return bugreport.MessageNote
	case authorID != 0 && authorID == requesterID:
		return bugreport.MessageRequesterReply
	default:
		return bugreport.MessageAgentReply
	}
}

// MessageEvent turns a thread message into the event stored in ClickHouse.
// Status changes (Kind "status") become $bug_report_status events, the rest
// $bug_report_message. The message's fields are the event's properties.
func MessageEvent(project string, m bugreport.Message, now time.Time) bugreport.Event {
	m.Body = truncate(m.Body, MaxMessageBody)
	name := bugreport.EventBugReportMessage
	if m.Kind == "status" {
		name = bugreport.EventBugReportStatus
	}
	props, _ := json.Marshal(m)
	at := m.At
	if at.IsZero() {
		at = now
	}
	return bugreport.Event{
		UUID:       m.ID,
		Project:    project,
		Event:      name,
		DistinctID: "zendesk_ticket_" + strconv.FormatInt(m.TicketID, 10),
		Timestamp:  at.UTC(),
		CreatedAt:  now.UTC(),
		Properties: string(props),
		Lib:        "arubug-zendesk",
	}
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for i := 0; i < utf8.UTFMax && len(s) > 0; i++ {
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size != 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}
