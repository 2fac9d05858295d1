package bugreport

import "time"

// Report is one bug report: the $bug_report event's content plus what
// enrichment and routing add. Updates are new versions of the same ID.
type Report struct {
	ID         UUID // the $bug_report event's uuid
	Project    string
	ReportedAt time.Time // event time
	ReceivedAt time.Time

	Reporter    Reporter
	Title       string // first line of the description, at most 80 characters
	Description string
	ProductArea string // "" when the reporter was not sure
	Severity    string // low, medium, high, critical; "" when not given

	URL  string
	Path string
	Host string

	Browser        string
	BrowserVersion string
	OS             string
	OSVersion      string
	Device         string // desktop, mobile, tablet, bot
	UserAgent      string

	SessionID string
	WindowID  string
	DeviceID  string

	Console      []ConsoleEntry
	Network      []NetworkEntry
	ScreenshotID string // key in the screenshots table; "" when none

	Spam       bool
	SpamReason string

	// Properties are the event's properties, for rules that match on any
	// property path.
	Properties map[string]any

	ReplayURL string
	// Usage is nil when it could not be read (ClickHouse slow or down).
	Usage *Usage

	Route RouteDecision
	// RouteSource says who decided the route: "rules" or "manual".
	RouteSource string
	// UpdatedAt is when this version of the report was stored.
	UpdatedAt time.Time

	// Fingerprint groups similar reports; SimilarCount counts the reports
	// with the same fingerprint in the last 7 days, this one included.
	Fingerprint  string
	SimilarCount uint64
}

// Reporter is the person who sent the report.
type Reporter struct {
	DistinctID string
	Email      string
	Name       string
}

// ConsoleEntry is one captured console error or warning.
type ConsoleEntry struct {
	Level   string    `json:"level"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// NetworkEntry is one captured failed request.
type NetworkEntry struct {
	Method     string    `json:"method"`
	URL        string    `json:"url"`
	Status     int       `json:"status"`
	DurationMS int       `json:"duration_ms"`
	At         time.Time `json:"at"`
}

// Usage is the reporter's recent product usage, read from ClickHouse.
type Usage struct {
	Events30d     uint64    `json:"events_30d"`
	ActiveDays30d uint64    `json:"active_days_30d"`
	Sessions30d   uint64    `json:"sessions_30d"`
	FirstSeen     time.Time `json:"first_seen"`
	LastSeen      time.Time `json:"last_seen"`
	TopEvents     []Count   `json:"top_events"`
	TopPages      []Count   `json:"top_pages"`
	// RecentExceptions are $exception events in the 30 minutes before the
	// report.
	RecentExceptions []Exception `json:"recent_exceptions"`
	// Person holds person properties from $set / $set_once: email, plan,
	// company and the like.
	Person       map[string]string `json:"person"`
	FeatureFlags []string          `json:"feature_flags"`
}

// Count is a name with how often it occurred.
type Count struct {
	Name  string `json:"name"`
	Count uint64 `json:"count"`
}

// Exception is one $exception event.
type Exception struct {
	Type    string    `json:"type"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// RouteDecision says which team owns a report and why.
type RouteDecision struct {
	Team     string
	Route    string // the matching route's name, "" for the fallback
	Priority string // low, normal, high, urgent
	Tags     []string
	CC       []string
	Assignee string
	// Explanation lists, in order, each route considered and why it did
	// or did not match.
	Explanation []RouteStep
}

// RouteStep is one route's verdict in an explanation.
type RouteStep struct {
	Route   string `json:"route"`
	Matched bool   `json:"matched"`
	Reason  string `json:"reason"`
}

// Team is a queue that owns reports.
type Team struct {
	Name            string
	ZendeskGroup    string // id or name
	Tags            []string
	DefaultPriority string
	Assignee        string
}

// ReportFilter selects reports of a team queue.
type ReportFilter struct {
	Team   string
	Since  time.Time // zero: no lower bound
	Spam   *bool     // nil: both
	Cursor string    // from a previous page
	Limit  int
}

// ReportPage is a page of reports, newest first.
type ReportPage struct {
	Reports    []*Report
	NextCursor string
}

// ProductArea is one choice the widget offers for "where is the bug".
type ProductArea struct {
	ID    string `json:"id"`
	Label string `json:"label"`
}

// TeamStats counts a team's reports.
type TeamStats struct {
	Reports uint64
	Last7d  uint64
}
