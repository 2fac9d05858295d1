package zendesk

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	zd "github.com/nukosuke/go-zendesk/zendesk"

	"github.com/arubug/arubug/internal/bugreport"
)

// TicketOptions are the Zendesk-side facts a ticket needs besides the report.
type TicketOptions struct {
	GroupID     int64
	RequesterID int64
	// Anonymous says the requester is the configured fallback, not the reporter.
	Anonymous bool
	// CustomFields maps report fields (report_id, product_area, replay_url,
	// severity, team) to Zendesk ticket field ids.
	CustomFields map[string]int64
	// ProblemID makes the ticket an incident of that problem ticket.
	ProblemID int64
}

var zendeskPriorities = []string{"low", "normal", "high", "urgent"}

// Ticket builds the ticket for a report. It depends only on its inputs, so
// every attempt (and every instance) sends the same body under the same
// Idempotency-Key.
func Ticket(r *bugreport.Report, o TicketOptions) zd.Ticket {
	public := true
	body := r.Description
	if strings.TrimSpace(body) == "" {
		body = "(The reporter left no description.)"
	}
	subject := r.Title
	if strings.TrimSpace(subject) == "" {
		subject = "Bug report"
	}
	t := zd.Ticket{
		Subject:     subject,
		ExternalID:  r.ID.String(),
		RequesterID: o.RequesterID,
		Comment:     &zd.TicketComment{Body: body, Public: &public, AuthorID: o.RequesterID},
		Tags:        Tags(r, o),
	}
	if o.GroupID != 0 {
		t.GroupID = json.Number(strconv.FormatInt(o.GroupID, 10))
	}
	if slices.Contains(zendeskPriorities, r.Route.Priority) {
		t.Priority = r.Route.Priority
	}
	if id, err := strconv.ParseInt(r.Route.Assignee, 10, 64); err == nil && id > 0 {
		t.AssigneeID = id
	}
	if o.ProblemID != 0 {
		t.Type = "incident"
		t.ProblemID = o.ProblemID
	}
	values := map[string]string{
		"report_id":    r.ID.String(),
		"product_area": r.ProductArea,
		"replay_url":   r.ReplayURL,
		"severity":     r.Severity,
		"team":         r.Route.Team,
	}
	names := make([]string, 0, len(o.CustomFields))
	for name := range o.CustomFields {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if v := values[name]; v != "" {
			t.CustomFields = append(t.CustomFields, zd.CustomField{ID: o.CustomFields[name], Value: v})
		}
	}
	return t
}

// Tags are the ticket's tags: arubug, the team, product area and severity,
// and the tags the route added, in Zendesk's form (lower case, no spaces).
func Tags(r *bugreport.Report, o TicketOptions) []string {
	tags := []string{"arubug"}
	add := func(prefix, v string) {
		if t := tag(v); t != "" {
			tags = append(tags, prefix+t)
		}
	}
	add("team_", r.Route.Team)
	add("area_", r.ProductArea)
	add("severity_", r.Severity)
	for _, t := range r.Route.Tags {
		add("", t)
	}
	if o.Anonymous {
		tags = append(tags, "arubug_anonymous")
	}
	if o.ProblemID != 0 {
		tags = append(tags, "arubug_similar")
	}
	slices.Sort(tags)
	return slices.Compact(tags)
}

func tag(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	return strings.Map(func(r rune) rune {
		switch {
		case r == ' ', r == '\t', r == '\n', r == '\r', r == ',':
			return '_'
		case r < ' ':
			return -1
		}
		return r
	}, s)
}

// NoteMarker opens every internal note Arubug writes. Finding it among a
// ticket's comments tells a retry that the note is already there.
func NoteMarker(id bugreport.UUID) string { return "Arubug report " + id.String() }

// NoteOptions are what the internal note says beyond the report.
type NoteOptions struct {
	Anonymous bool
	ProblemID int64
	// TicketURL renders a ticket reference.
	TicketURL func(int64) string
	// ReportURL links to the report in Arubug's UI; "" for none.
	ReportURL string
}

const (
	maxNoteLine     = 500
	maxNoteConsole  = 20
	maxNoteNetwork  = 20
	maxNoteRouteLog = 30
)

// Note is the internal note: everything an agent needs that the reporter
// did not write. It is plain text; Zendesk renders it escaped.
func Note(r *bugreport.Report, o NoteOptions) string {
	var b strings.Builder
	line := func(format string, args ...any) {
		s := fmt.Sprintf(format, args...)
		b.WriteString(truncate(strings.ReplaceAll(s, "\n", " "), maxNoteLine))
		b.WriteByte('\n')
	}
	line("%s", NoteMarker(r.ID))
	if o.ReportURL != "" {
		line("Report: %s", o.ReportURL)
	}
	b.WriteByte('\n')

	who := r.Reporter.Name
	if r.Reporter.Email != "" {
		who = strings.TrimSpace(who + " <" + r.Reporter.Email + ">")
	}
	if o.Anonymous {
		line("Reporter: anonymous (distinct_id %s). The requester is Arubug's fallback requester; replies will not reach the reporter.", r.Reporter.DistinctID)
	} else {
		line("Reporter: %s (distinct_id %s)", who, r.Reporter.DistinctID)
	}
	line("Product area: %s · Severity: %s", orNone(r.ProductArea, "not sure"), orNone(r.Severity, "not given"))
	if r.ReplayURL != "" {
		line("Session replay: %s", r.ReplayURL)
	} else {
		line("Session replay: none (the report has no session id)")
	}
	line("Page: %s", orNone(r.URL, "unknown"))
	line("Reported at: %s", r.ReportedAt.UTC().Format(time.RFC3339))

	b.WriteString("\nEnvironment\n")
	line("  Browser: %s %s · OS: %s %s · Device: %s", orNone(r.Browser, "?"), r.BrowserVersion, orNone(r.OS, "?"), r.OSVersion, orNone(r.Device, "?"))
	if r.UserAgent != "" {
		line("  User agent: %s", r.UserAgent)
	}
	if r.SessionID != "" {
		line("  Session: %s · Window: %s", r.SessionID, r.WindowID)
	}

	b.WriteString("\nUsage (30 days before the report)\n")
	if u := r.Usage; u == nil {
		line("  unavailable (ClickHouse did not answer in time)")
	} else {
		line("  %d events on %d active days in %d sessions; first seen %s, last seen %s",
			u.Events30d, u.ActiveDays30d, u.Sessions30d, day(u.FirstSeen), day(u.LastSeen))
		if len(u.Person) > 0 {
			keys := make([]string, 0, len(u.Person))
			for k := range u.Person {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			parts := make([]string, 0, len(keys))
			for _, k := range keys {
				parts = append(parts, k+"="+u.Person[k])
			}
			line("  Person: %s", strings.Join(parts, ", "))
		}
		if len(u.TopEvents) > 0 {
			line("  Top events: %s", counts(u.TopEvents))
		}
		if len(u.TopPages) > 0 {
			line("  Top pages: %s", counts(u.TopPages))
		}
		if len(u.FeatureFlags) > 0 {
			line("  Feature flags: %s", strings.Join(u.FeatureFlags, ", "))
		}
		for _, e := range u.RecentExceptions {
			line("  Exception %s: %s: %s", e.At.UTC().Format(time.TimeOnly), e.Type, e.Message)
		}
	}

	if len(r.Console) > 0 {
		fmt.Fprintf(&b, "\nConsole (last %d of %d)\n", min(len(r.Console), maxNoteConsole), len(r.Console))
		for _, c := range r.Console[max(0, len(r.Console)-maxNoteConsole):] {
			line("  %s %s %s", c.At.UTC().Format(time.TimeOnly), c.Level, c.Message)
		}
	}
	if len(r.Network) > 0 {
		fmt.Fprintf(&b, "\nFailed requests (last %d of %d)\n", min(len(r.Network), maxNoteNetwork), len(r.Network))
		for _, n := range r.Network[max(0, len(r.Network)-maxNoteNetwork):] {
			line("  %s %s %s → %d in %d ms", n.At.UTC().Format(time.TimeOnly), n.Method, n.URL, n.Status, n.DurationMS)
		}
	}

	b.WriteString("\nRouting\n")
	line("  Team %s, priority %s, route %s (%s)", r.Route.Team, orNone(r.Route.Priority, "default"), orNone(r.Route.Route, "fallback"), orNone(r.RouteSource, "rules"))
	for i, s := range r.Route.Explanation {
		if i == maxNoteRouteLog {
			line("  … %d more", len(r.Route.Explanation)-i)
			break
		}
		verdict := "no"
		if s.Matched {
			verdict = "MATCHED"
		}
		line("  %s %s: %s", verdict, s.Route, s.Reason)
	}

	b.WriteString("\nSimilar reports\n")
	if r.SimilarCount > 1 {
		line("  %d reports with this fingerprint in the last 7 days (fingerprint %s)", r.SimilarCount, r.Fingerprint)
	} else {
		line("  none in the last 7 days (fingerprint %s)", orNone(r.Fingerprint, "none"))
	}
	if o.ProblemID != 0 {
		ref := "#" + strconv.FormatInt(o.ProblemID, 10)
		if o.TicketURL != nil {
			ref += " " + o.TicketURL(o.ProblemID)
		}
		line("  This ticket is an incident of problem %s.", ref)
	}
	if r.Spam {
		line("\nFlagged as possible spam: %s", r.SpamReason)
	}
	return b.String()
}

// SimilarNote is the note added to an existing ticket when a similar report
// arrives and similar reports are configured to become comments.
func SimilarNote(r *bugreport.Report, o NoteOptions) string {
	var b strings.Builder
	b.WriteString(NoteMarker(r.ID))
	b.WriteString("\nAnother report with the same fingerprint:\n\n")
	b.WriteString(truncate(r.Description, 4000))
	b.WriteString("\n\n")
	b.WriteString(Note(r, o))
	return b.String()
}

func orNone(s, none string) string {
	if strings.TrimSpace(s) == "" {
		return none
	}
	return s
}

func day(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.DateOnly)
}

func counts(cs []bugreport.Count) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = fmt.Sprintf("%s (%d)", c.Name, c.Count)
	}
	return strings.Join(parts, ", ")
}
