package api

import (
	"time"

	"github.com/arubug/arubug/internal/bugreport"
)

// summaryJSON is a report in a queue listing.
type summaryJSON struct {
	ID          string    `json:"id"`
	Project     string    `json:"project"`
	Title       string    `json:"title"`
	Team        string    `json:"team"`
	Priority    string    `json:"priority"`
	Severity    string    `json:"severity"`
	ProductArea string    `json:"product_area"`
	Reporter    string    `json:"reporter"`
	ReportedAt  time.Time `json:"reported_at"`
	ReceivedAt  time.Time `json:"received_at"`
	Spam        bool      `json:"spam"`
	Similar     uint64    `json:"similar_reports_7d"`
	ReplayURL   string    `json:"replay_url,omitempty"`
	Tags        []string  `json:"tags"`
}

func summary(r *bugreport.Report) summaryJSON {
	who := r.Reporter.Email
	if who == "" {
		who = r.Reporter.DistinctID
	}
	return summaryJSON{r.ID.String(), r.Project, r.Title, r.Route.Team, r.Route.Priority, r.Severity, r.ProductArea, who,
		r.ReportedAt, r.ReceivedAt, r.Spam, r.SimilarCount, r.ReplayURL, nonNil(r.Route.Tags)}
}

type detailJSON struct {
	summaryJSON
	// Ticket is the report's Zendesk ticket; absent when the sync is off.
	Ticket      *ticketJSON `json:"ticket,omitempty"`
	Description string      `json:"description"`
	Reporter    struct {
		DistinctID string `json:"distinct_id"`
		Email      string `json:"email"`
		Name       string `json:"name"`
	} `json:"reporter_detail"`
	URL         string `json:"url"`
	Path        string `json:"path"`
	Environment struct {
		Browser        string `json:"browser"`
		BrowserVersion string `json:"browser_version"`
		OS             string `json:"os"`
		OSVersion      string `json:"os_version"`
		Device         string `json:"device"`
		UserAgent      string `json:"user_agent"`
	} `json:"environment"`
	SessionID      string                   `json:"session_id"`
	WindowID       string                   `json:"window_id"`
	Console        []bugreport.ConsoleEntry `json:"console"`
	Network        []bugreport.NetworkEntry `json:"network"`
	HasScreenshot  bool                     `json:"has_screenshot"`
	SpamReason     string                   `json:"spam_reason,omitempty"`
	Usage          *bugreport.Usage         `json:"usage"`
	UsageAvailable bool                     `json:"usage_available"`
	Routing        struct {
		Team        string                `json:"team"`
		Route       string                `json:"route"`
		Priority    string                `json:"priority"`
		Tags        []string              `json:"tags"`
		CC          []string              `json:"cc"`
		Assignee    string                `json:"assignee,omitempty"`
		Source      string                `json:"source"`
		Explanation []bugreport.RouteStep `json:"explanation"`
	} `json:"routing"`
	Fingerprint string    `json:"fingerprint"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func detail(r *bugreport.Report) detailJSON {
	d := detailJSON{summaryJSON: summary(r), Description: r.Description, URL: r.URL, Path: r.Path, SessionID: r.SessionID, WindowID: r.WindowID,
		Console: r.Console, Network: r.Network, HasScreenshot: r.ScreenshotID != "", SpamReason: r.SpamReason, Fingerprint: r.Fingerprint, UpdatedAt: r.UpdatedAt}
	d.Reporter.DistinctID, d.Reporter.Email, d.Reporter.Name = r.Reporter.DistinctID, r.Reporter.Email, r.Reporter.Name
	e := &d.Environment
	e.Browser, e.BrowserVersion, e.OS, e.OSVersion, e.Device, e.UserAgent = r.Browser, r.BrowserVersion, r.OS, r.OSVersion, r.Device, r.UserAgent
	d.Usage, d.UsageAvailable = r.Usage, r.Usage != nil
	rt := &d.Routing
	rt.Team, rt.Route, rt.Priority, rt.Tags, rt.CC, rt.Assignee, rt.Source, rt.Explanation =
		r.Route.Team, r.Route.Route, r.Route.Priority, nonNil(r.Route.Tags), nonNil(r.Route.CC), r.Route.Assignee, r.RouteSource, r.Route.Explanation
	if d.Console == nil {
		d.Console = []bugreport.ConsoleEntry{}
	}
	if d.Network == nil {
		d.Network = []bugreport.NetworkEntry{}
	}
	return d
}
