package zendesktest

import (
	"errors"
	"html"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Errors returned by the control methods AgentReply and RequesterEmailReply.
var (
	ErrTicketNotFound = errors.New("zendesktest: ticket not found")
	ErrTicketClosed   = errors.New("zendesktest: ticket is closed")
	ErrEmptyComment   = errors.New("zendesktest: comment body is empty")
)

// Ticket is a ticket as Zendesk returns it. Nullable fields are pointers (JSON null).
type Ticket struct {
	ID           int64         `json:"id"`
	URL          string        `json:"url"`
	ExternalID   *string       `json:"external_id"`
	Type         *string       `json:"type"`
	Subject      string        `json:"subject"`
	RawSubject   string        `json:"raw_subject"`
	Description  string        `json:"description"`
	Priority     *string       `json:"priority"`
	Status       string        `json:"status"`
	RequesterID  int64         `json:"requester_id"`
	SubmitterID  int64         `json:"submitter_id"`
	AssigneeID   *int64        `json:"assignee_id"`
	GroupID      *int64        `json:"group_id"`
	ProblemID    *int64        `json:"problem_id"`
	Tags         []string      `json:"tags"`
	CustomFields []CustomField `json:"custom_fields"`
	Via          Via           `json:"via"`
	CreatedAt    time.Time     `json:"created_at"`
	UpdatedAt    time.Time     `json:"updated_at"`
}

// CustomField is a ticket custom field value; Value keeps the JSON type it was sent with.
type CustomField struct {
	ID    int64 `json:"id"`
	Value any   `json:"value"`
}

// Via says how a ticket or comment was created.
type Via struct {
	Channel string    `json:"channel"` // "api", "web" (agent UI) or "email"
	Source  ViaSource `json:"source"`
}

// ViaSource is Zendesk's via.source object.
type ViaSource struct {
	From map[string]string `json:"from"`
	To   map[string]string `json:"to"`
	Rel  *string           `json:"rel"`
}

// Comment is a ticket comment as Zendesk returns it.
type Comment struct {
	ID          int64        `json:"id"`
	Type        string       `json:"type"`
	AuthorID    int64        `json:"author_id"`
	Body        string       `json:"body"`
	HTMLBody    string       `json:"html_body"`
	PlainBody   string       `json:"plain_body"`
	Public      bool         `json:"public"`
	Attachments []Attachment `json:"attachments"`
	AuditID     int64        `json:"audit_id"`
	Via         Via          `json:"via"`
	CreatedAt   time.Time    `json:"created_at"`
	// TicketID is not part of Zendesk's comment JSON; it is here for inspection.
	TicketID int64 `json:"-"`
}

// Attachment is a file attached to a comment through an upload token.
type Attachment struct {
	ID          int64  `json:"id"`
	FileName    string `json:"file_name"`
	ContentURL  string `json:"content_url"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	Inline      bool   `json:"inline"`
}

// User is a Zendesk user (role "end-user", "agent" or "admin").
type User struct {
	ID        int64     `json:"id"`
	URL       string    `json:"url"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Group is a Zendesk agent group.
type Group struct {
	ID        int64     `json:"id"`
	URL       string    `json:"url"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

type ticket struct {
	Ticket
	comments []*Comment
}

type upload struct {
	token      string
	attachment Attachment
	created    time.Time
}

type idemEntry struct {
	bodyHash string
	status   int
	body     []byte
	expires  time.Time
}

func (t *ticket) snapshot() Ticket {
	c := t.Ticket
	c.Tags = slices.Clone(t.Tags)
	c.CustomFields = slices.Clone(t.CustomFields)
	return c
}

func cloneComment(c *Comment) Comment {
	out := *c
	out.Attachments = slices.Clone(c.Attachments)
	return out
}

// Tickets returns a copy of every ticket in creation order.
func (s *Server) Tickets() []Ticket {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Ticket, 0, len(s.ticketOrder))
	for _, id := range s.ticketOrder {
		out = append(out, s.tickets[id].snapshot())
	}
	return out
}

// Ticket returns a copy of ticket id and whether it exists.
func (s *Server) Ticket(id int64) (Ticket, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tickets[id]
	if !ok {
		return Ticket{}, false
	}
	return t.snapshot(), true
}

// Comments returns a copy of the ticket's comments, oldest first (nil for an unknown
// ticket).
func (s *Server) Comments(ticketID int64) []Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tickets[ticketID]
	if !ok {
		return nil
	}
	out := make([]Comment, 0, len(t.comments))
	for _, c := range t.comments {
		out = append(out, cloneComment(c))
	}
	return out
}

// User returns a copy of user id and whether it exists.
func (s *Server) User(id int64) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return User{}, false
	}
	return *u, true
}

// AgentUserID is the id of the API user (Options.Email), an admin.
func (s *Server) AgentUserID() int64 { return s.agentID }

// AddGroup adds an agent group and returns its id. Only added groups (and the default
// "Support") are valid group_id values.
func (s *Server) AddGroup(name string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	g := &Group{ID: s.nextIDLocked(), Name: name, CreatedAt: now, UpdatedAt: now}
	s.groups[g.ID] = g
	s.groupOrder = append(s.groupOrder, g.ID)
	return g.ID
}

// Groups returns a copy of the groups in creation order.
func (s *Server) Groups() []Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Group, 0, len(s.groupOrder))
	for _, id := range s.groupOrder {
		out = append(out, *s.groups[id])
	}
	return out
}

func (s *Server) userByEmailLocked(email string) *User {
	for _, id := range s.userOrder {
		if u := s.users[id]; strings.EqualFold(u.Email, email) {
			return u
		}
	}
	return nil
}

// upsertUserLocked finds a user by email (case-insensitive) or creates one.
func (s *Server) upsertUserLocked(name, email, role string) *User {
	if u := s.userByEmailLocked(email); u != nil {
		return u
	}
	if name == "" {
		name, _, _ = strings.Cut(email, "@")
	}
	if role == "" {
		role = "end-user"
	}
	now := s.now()
	u := &User{ID: s.nextIDLocked(), Name: name, Email: strings.ToLower(email), Role: role, CreatedAt: now, UpdatedAt: now}
	s.users[u.ID] = u
	s.userOrder = append(s.userOrder, u.ID)
	return u
}

// normalizeTags does what Zendesk does to tags: split on whitespace, lowercase, dedupe,
// sort.
func normalizeTags(in []string) []string {
	out := []string{}
	for _, t := range in {
		for _, f := range strings.Fields(t) {
			out = append(out, strings.ToLower(f))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func sortedStrings(in []string) []string {
	slices.Sort(in)
	return in
}

func parseID(s string) (int64, bool) {
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil && id > 0
}

// htmlFromText renders a plain comment body the way Zendesk's html_body looks.
func htmlFromText(body string) string {
	var paras []string
	for _, p := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n\n") {
		paras = append(paras, "<p>"+strings.ReplaceAll(html.EscapeString(p), "\n", "<br>")+"</p>")
	}
	return `<div class="zd-comment" dir="auto">` + strings.Join(paras, "") + "</div>"
}

// textFromHTML strips tags from an html_body to produce body/plain_body.
func textFromHTML(h string) string {
	var b strings.Builder
	in := false
	for _, r := range h {
		switch {
		case r == '<':
			in = true
		case r == '>':
			in = false
		case !in:
			b.WriteRune(r)
		}
	}
	return strings.TrimSpace(html.UnescapeString(b.String()))
}

func strPtr(s string) *string { return &s }
func intPtr(i int64) *int64   { return &i }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
