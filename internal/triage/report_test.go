package triage

import (
	"strings"
	"testing"
	"time"

	"github.com/arubug/arubug/internal/bugreport"
)

func bugEvent(props string) bugreport.Event {
	ts := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	return bugreport.Event{UUID: bugreport.UUID{1}, Project: "shop", Event: bugreport.EventBugReport, DistinctID: "u1",
		Timestamp: ts, CreatedAt: ts.Add(time.Second), Properties: props, SessionID: "s1", CurrentURL: "https://app.example.com/billing/42", Pathname: "/billing/42"}
}

func TestBuildReport(t *testing.T) {
	e := bugEvent(`{"$description":"  Checkout button does nothing\nI clicked it twice.","$product_area":"billing","$severity":"HIGH",
		"$email":"ana@example.com","$name":"Ana","$raw_user_agent":"Mozilla/5.0","$time_to_submit_ms":9000,
		"$console":[{"level":"error","message":"TypeError: x is undefined","at":"2026-11-27T09:59:58Z"},"junk"],
		"$network":[{"method":"POST","url":"https://api.example.com/pay","status":500,"duration_ms":120,"at":1795000000000}],
		"$screenshot_id":"01"}`)
	r := BuildReport(e)
	checks := []struct{ name, got, want string }{
		{"title", r.Title, "Checkout button does nothing"},
		{"severity", r.Severity, "high"},
		{"product area", r.ProductArea, "billing"},
		{"email", r.Reporter.Email, "ana@example.com"},
		{"name", r.Reporter.Name, "Ana"},
		{"path", r.Path, "/billing/42"},
		{"screenshot", r.ScreenshotID, "01"},
		{"console", r.Console[0].Message, "TypeError: x is undefined"},
		{"network", r.Network[0].URL, "https://api.example.com/pay"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if len(r.Console) != 1 || r.Network[0].Status != 500 || r.Spam {
		t.Errorf("console %d network %+v spam %v (%s)", len(r.Console), r.Network, r.Spam, r.SpamReason)
	}
}

func TestBuildReportSanitises(t *testing.T) {
	tests := []struct {
		name, props string
		check       func(*bugreport.Report) string
	}{
		{"unknown severity dropped", `{"$description":"x y z","$severity":"apocalyptic","$time_to_submit_ms":5000}`, func(r *bugreport.Report) string {
			if r.Severity != "" {
				return r.Severity
			}
			return ""
		}},
		{"not sure is no area", `{"$description":"x","$product_area":"not-sure","$time_to_submit_ms":5000}`, func(r *bugreport.Report) string { return r.ProductArea }},
		{"bad email dropped", `{"$description":"x","$email":"<script>@x","$time_to_submit_ms":5000}`, func(r *bugreport.Report) string { return r.Reporter.Email }},
		{"honeypot is spam", `{"$description":"x","$hp":"http://spam","$time_to_submit_ms":5000}`, func(r *bugreport.Report) string {
			if !r.Spam || r.SpamReason != "honeypot field filled" {
				return "not flagged"
			}
			return ""
		}},
		{"too fast is spam", `{"$description":"x","$time_to_submit_ms":200}`, func(r *bugreport.Report) string {
			if !r.Spam {
				return "not flagged"
			}
			return ""
		}},
		{"collector verdict is spam", `{"$description":"x","$arubug_spam_reason":"rate limited"}`, func(r *bugreport.Report) string {
			if r.SpamReason != "rate limited" {
				return r.SpamReason
			}
			return ""
		}},
		{"empty description is spam", `{"$time_to_submit_ms":5000}`, func(r *bugreport.Report) string {
			if !r.Spam || r.Title != "(no description)" {
				return "not flagged"
			}
			return ""
		}},
		{"long title clipped", `{"$description":"` + strings.Repeat("é", 200) + `"}`, func(r *bugreport.Report) string {
			if n := len([]rune(r.Title)); n != 80 {
				return "title has " + string(rune('0'+n/10)) + " runes"
			}
			return ""
		}},
		{"garbage properties", `not json`, func(r *bugreport.Report) string {
			if r.Reporter.DistinctID != "u1" {
				return "lost the event fields"
			}
			return ""
		}},
		{"email from $set", ``, func(r *bugreport.Report) string { return "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.check(BuildReport(bugEvent(tt.props))); got != "" {
				t.Errorf("%s: got %q", tt.name, got)
			}
		})
	}
	e := bugEvent(`{"$description":"x"}`)
	e.Set = `{"email":"from-set@example.com"}`
	if got := BuildReport(e).Reporter.Email; got != "from-set@example.com" {
		t.Errorf("email from $set: %q", got)
	}
}

func TestFingerprintGroupsSimilarReports(t *testing.T) {
	mk := func(path, desc, consoleErr string) *bugreport.Report {
		r := &bugreport.Report{Project: "p", Path: path, Description: desc}
		if consoleErr != "" {
			r.Console = []bugreport.ConsoleEntry{{Level: "error", Message: consoleErr}}
		}
		return r
	}
	same := [][2]*bugreport.Report{
		{mk("/billing/42/invoices", "The Pay button does nothing!", "TypeError at line 12"), mk("/billing/977/invoices", "the pay button does nothing", "TypeError at line 13")},
		{mk("/p/0190a6b2-7c3e-7d4f-9a1b-2c3d4e5f6a7b", "broken chart", ""), mk("/p/0190a6b2-0000-7d4f-9a1b-2c3d4e5f6a7b", "Broken chart.", "")},
	}
	for i, p := range same {
		if Fingerprint(p[0]) != Fingerprint(p[1]) {
			t.Errorf("pair %d: similar reports got different fingerprints", i)
		}
	}
	different := [][2]*bugreport.Report{
		{mk("/billing/42", "pay button", ""), mk("/settings/42", "pay button", "")},
		{mk("/a", "pay button broken", ""), mk("/a", "chart is empty", "")},
		{mk("/a", "x", "TypeError"), mk("/a", "x", "RangeError")},
	}
	for i, p := range different {
		if Fingerprint(p[0]) == Fingerprint(p[1]) {
			t.Errorf("pair %d: different reports share a fingerprint", i)
		}
	}
}
