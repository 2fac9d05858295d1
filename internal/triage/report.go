// Package triage turns stored $bug_report events into bug reports: it reads
// the report out of the event, enriches it with the reporter's context,
// routes it to a team and stores it. It is at-least-once and idempotent: a
// report processed twice is stored twice as versions of the same row.
package triage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/arubug/arubug/internal/bugreport"
)

// Property names the widget sends in a $bug_report event. They are the
// contract between siteapp-js and the collector.
const (
	PropDescription  = "$description"
	PropProductArea  = "$product_area"
	PropSeverity     = "$severity"
	PropEmail        = "$email"
	PropName         = "$name"
	PropUserAgent    = "$raw_user_agent"
	PropConsole      = "$console"
	PropNetwork      = "$network"
	PropScreenshotID = "$screenshot_id"
	PropScreenshot   = "$screenshot"
	PropHoneypot     = "$hp"
	PropTimeToSubmit = "$time_to_submit_ms"
	PropSpamReason   = "$arubug_spam_reason" // set by the collector's rate limiter
)

// Bounds on what a report keeps from its event.
const (
	maxTitle       = 80
	maxDescription = 20000
	maxConsole     = 50
	maxNetwork     = 20
	maxEntryText   = 1000
	// minTimeToSubmit: a human needs longer than this to describe a bug.
	minTimeToSubmit = 1500 * time.Millisecond
)

var severities = map[string]bool{"low": true, "medium": true, "high": true, "critical": true}

// BuildReport reads the report carried by a $bug_report event. Enrichment
// and routing are left empty.
func BuildReport(e bugreport.Event) *bugreport.Report {
	var props map[string]any
	_ = json.Unmarshal([]byte(e.Properties), &props)
	if props == nil {
		props = map[string]any{}
	}
	str := func(k string) string {
		s, _ := props[k].(string)
		return strings.TrimSpace(s)
	}
	r := &bugreport.Report{
		ID:           e.UUID,
		Project:      e.Project,
		ReportedAt:   e.Timestamp,
		ReceivedAt:   e.CreatedAt,
		Reporter:     bugreport.Reporter{DistinctID: e.DistinctID, Email: str(PropEmail), Name: clip(str(PropName), 200)},
		Description:  clip(str(PropDescription), maxDescription),
		ProductArea:  clip(str(PropProductArea), 100),
		Severity:     strings.ToLower(str(PropSeverity)),
		URL:          e.CurrentURL,
		Path:         e.Pathname,
		Host:         e.Host,
		UserAgent:    clip(str(PropUserAgent), 1000),
		SessionID:    e.SessionID,
		WindowID:     e.WindowID,
		DeviceID:     e.DeviceID,
		ScreenshotID: str(PropScreenshotID),
		Properties:   props,
	}
	// Before the ClickHouse writer moves the screenshot to its own table the
	// event still carries it; it is stored under the report's id.
	if shot, ok := props[PropScreenshot].(string); ok {
		if strings.HasPrefix(shot, "data:image/") && r.ScreenshotID == "" {
			r.ScreenshotID = e.UUID.String()
		}
		delete(props, PropScreenshot)
	}
	if !severities[r.Severity] {
		r.Severity = ""
	}
	if r.ProductArea == "not-sure" || r.ProductArea == "not_sure" {
		r.ProductArea = ""
	}
	if r.Reporter.Email == "" && e.Set != "" {
		var set map[string]any
		if json.Unmarshal([]byte(e.Set), &set) == nil {
			if s, ok := set["email"].(string); ok {
				r.Reporter.Email = s
			}
		}
	}
	if !plausibleEmail(r.Reporter.Email) {
		r.Reporter.Email = ""
	}
	r.Title = Title(r.Description)
	r.Console = consoleEntries(props[PropConsole])
	r.Network = networkEntries(props[PropNetwork])
	r.Spam, r.SpamReason = spamVerdict(props, r)
	return r
}

// Title is the description's first non-empty line, at most 80 characters.
func Title(description string) string {
	for _, line := range strings.Split(description, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			if utf8.RuneCountInString(line) > maxTitle {
				r := []rune(line)
				return strings.TrimSpace(string(r[:maxTitle-1])) + "…"
			}
			return line
		}
	}
	return "(no description)"
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

var emailRE = regexp.MustCompile(`^[^\s@<>"]{1,64}@[^\s@<>"]{1,255}\.[^\s@<>".]{2,63}$`)

func plausibleEmail(s string) bool { return emailRE.MatchString(s) }

func consoleEntries(v any) []bugreport.ConsoleEntry {
	list, _ := v.([]any)
	var out []bugreport.ConsoleEntry
	for _, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			continue
		}
		level, _ := m["level"].(string)
		msg, _ := m["message"].(string)
		out = append(out, bugreport.ConsoleEntry{Level: clip(level, 16), Message: clip(msg, maxEntryText), At: timeOf(m["at"])})
		if len(out) == maxConsole {
			break
		}
	}
	return out
}

func networkEntries(v any) []bugreport.NetworkEntry {
	list, _ := v.([]any)
	var out []bugreport.NetworkEntry
	for _, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			continue
		}
		method, _ := m["method"].(string)
		url, _ := m["url"].(string)
		status, _ := m["status"].(float64)
		dur, _ := m["duration_ms"].(float64)
		out = append(out, bugreport.NetworkEntry{Method: clip(method, 16), URL: clip(url, maxEntryText), Status: int(status), DurationMS: int(dur), At: timeOf(m["at"])})
		if len(out) == maxNetwork {
			break
		}
	}
	return out
}

func timeOf(v any) time.Time {
	switch t := v.(type) {
	case string:
		if parsed, err := time.Parse(time.RFC3339Nano, t); err == nil {
			return parsed.UTC()
		}
	case float64:
		return time.UnixMilli(int64(t)).UTC()
	}
	return time.Time{}
}

// spamVerdict flags a report rather than dropping it: a false positive
// stays visible to the team.
func spamVerdict(props map[string]any, r *bugreport.Report) (bool, string) {
	if s, _ := props[PropSpamReason].(string); s != "" {
		return true, clip(s, 200)
	}
	if hp, _ := props[PropHoneypot].(string); hp != "" {
		return true, "honeypot field filled"
	}
	if ms, ok := props[PropTimeToSubmit].(float64); ok && time.Duration(ms)*time.Millisecond < minTimeToSubmit {
		return true, "submitted faster than a person can type"
	}
	if strings.TrimSpace(r.Description) == "" {
		return true, "empty description"
	}
	return false, ""
}

var (
	idSegment = regexp.MustCompile(`/(?:[0-9]+|[0-9a-fA-F-]{16,}|[0-9a-zA-Z_-]{20,})(/|$)`)
	nonWord   = regexp.MustCompile(`[^\p{L}\s]+`)
	digits    = regexp.MustCompile(`[0-9]+`)
)

// Fingerprint groups similar reports: the path with ids replaced, the most
// recent exception message without numbers, and the description's first
// words, lowercased and stripped of punctuation.
func Fingerprint(r *bugreport.Report) string {
	path := r.Path
	for i := 0; i < 3; i++ { // adjacent id segments need more than one pass
		path = idSegment.ReplaceAllString(path, "/:id$1")
	}
	exc := ""
	if r.Usage != nil && len(r.Usage.RecentExceptions) > 0 {
		exc = digits.ReplaceAllString(r.Usage.RecentExceptions[0].Message, "N")
	} else {
		for _, c := range r.Console {
			if c.Level == "error" {
				exc = digits.ReplaceAllString(c.Message, "N")
				break
			}
		}
	}
	words := strings.Fields(strings.ToLower(nonWord.ReplaceAllString(r.Description, " ")))
	if len(words) > 8 {
		words = words[:8]
	}
	sum := sha256.Sum256([]byte(r.Project + "\x00" + path + "\x00" + clip(exc, 200) + "\x00" + strings.Join(words, " ")))
	return hex.EncodeToString(sum[:8])
}
