package routing

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/arubug/arubug/internal/bugreport"
)

// yamlQuote writes s as a single-quoted YAML scalar.
func yamlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// oneRoute compiles rules with a single route "r" to team alpha that holds
// when matcher does.
func oneRoute(t *testing.T, matcher string) *Rules {
	t.Helper()
	r, err := Parse("t.yaml", []byte(`
teams:
  - {name: alpha, zendesk_group: A}
  - {name: platform, zendesk_group: P}
product_areas:
  - {id: billing, label: Billing}
  - {id: replay, label: Replay}
fallback_team: platform
routes:
  - name: r
    match: [`+yamlQuote(matcher)+`]
    team: alpha
`), Options{})
	if err != nil {
		t.Fatalf("%s: %v", matcher, err)
	}
	return r
}

// fullReport has every field the matchers can read set.
func fullReport() *bugreport.Report {
	return &bugreport.Report{
		ID:          bugreport.UUID{0x01, 0x90, 0xa6, 0xb2, 0x7c, 0x3e, 0x7d, 0x4f, 0x9a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f, 0x6a, 0x7b},
		Project:     "shop",
		Title:       "Export fails",
		Description: "Export fails\nwhen the invoice has 0 lines",
		ProductArea: "billing",
		Severity:    "high",
		URL:         "https://app.example.com/billing/invoices?tab=open",
		Path:        "/billing/invoices",
		Host:        "app.example.com",
		Browser:     "Chrome", BrowserVersion: "126.0",
		OS: "Mac OS X", OSVersion: "14.5",
		Device:    "desktop",
		SessionID: "0190a6b2-session",
		Reporter:  bugreport.Reporter{DistinctID: "user-1", Email: "Ada@BigCo.Example", Name: "Ada Lovelace"},
		Usage: &bugreport.Usage{
			Events30d: 1500, ActiveDays30d: 12, Sessions30d: 40,
			RecentExceptions: make([]bugreport.Exception, 2),
			Person:           map[string]string{"plan": "enterprise", "seats": "25"},
			FeatureFlags:     []string{"beta-export", "new-nav"},
		},
		Properties: map[string]any{
			"$feature/new-nav": true,
			"app":              map[string]any{"version": "2.3.1", "build": 1234.0},
			"app.region":       "eu",
			"count":            3.0,
			"items":            []any{"a", 2.0, map[string]any{"x": 1.0}},
			"nothing":          nil,
		},
	}
}

func TestMatchers(t *testing.T) {
	noUsage := func(r *bugreport.Report) { r.Usage = nil }
	tests := []struct {
		matcher string
		mutate  func(*bugreport.Report)
		want    bool
		reason  string // the explanation when want is false; "" not checked
	}{
		// Operators on plain text fields.
		{matcher: "project = shop", want: true},
		{matcher: "project != shop", reason: `project = "shop", want != shop`},
		{matcher: "project != other", want: true},
		{matcher: `title = "Export fails"`, want: true},
		{matcher: "title = Export fails", want: true},
		{matcher: "title = export fails", reason: `title = "Export fails", want = export fails`},
		{matcher: "title =~ Export.*", want: true},
		{matcher: "title =~ Export", reason: `title = "Export fails", want =~ Export`},
		{matcher: "title =~ (?i)export FAILS", want: true},
		{matcher: "title !~ .*crash.*", want: true},
		{matcher: "title !~ .*fails", reason: `title = "Export fails", want !~ .*fails`},
		{matcher: "description =~ (?s).*invoice.*", want: true},
		{matcher: "description =~ .*invoice.*", reason: `description = "Export fails\nwhen the invoice has 0 lines", want =~ .*invoice.*`},
		{matcher: "severity in [high, critical]", want: true},
		{matcher: "severity in [high, critical]", mutate: func(r *bugreport.Report) { r.Severity = "low" }, reason: `severity = "low", want in [high, critical]`},
		{matcher: "severity not in [low, medium]", want: true},
		{matcher: "severity not in [high]", reason: `severity = "high", want not in [high]`},
		{matcher: `severity in [high,critical,""]`, mutate: func(r *bugreport.Report) { r.Severity = "" }, want: true},
		{matcher: "severity=high", want: true},
		{matcher: "severity > 1", reason: `severity = "high" is not a number, want > 1`},
		{matcher: "product_area = billing", want: true},
		{matcher: `product_area = ""`, reason: `product_area = "billing", want = ""`},
		{matcher: `product_area = ""`, mutate: func(r *bugreport.Report) { r.ProductArea = "" }, want: true},
		{matcher: `product_area != ""`, want: true},

		// Quoting.
		{matcher: `title = "say \"hi\""`, mutate: func(r *bugreport.Report) { r.Title = `say "hi"` }, want: true},
		{matcher: `title in ["a, b", c]`, mutate: func(r *bugreport.Report) { r.Title = "a, b" }, want: true},
		{matcher: `title in ["a, b", c]`, mutate: func(r *bugreport.Report) { r.Title = "c" }, want: true},
		{matcher: `title =~ "\d+ errors"`, mutate: func(r *bugreport.Report) { r.Title = "12 errors" }, want: true},
		{matcher: `title = "back\\slash"`, mutate: func(r *bugreport.Report) { r.Title = `back\slash` }, want: true},

		// Every other field.
		{matcher: "id = 0190a6b2-7c3e-7d4f-9a1b-2c3d4e5f6a7b", want: true},
		{matcher: `id = ""`, mutate: func(r *bugreport.Report) { r.ID = bugreport.UUID{} }, want: true},
		{matcher: "url ~= https://*.example.com/billing/*", want: true},
		{matcher: "url ~= https://*.example.com/*", reason: `url = "https://app.example.com/billing/invoices?tab=open", want ~= https://*.example.com/*`},
		{matcher: "url ~= https://*.example.com/**", want: true},
		{matcher: "path ~= /billing/**", want: true},
		{matcher: "path ~= /billing/**", mutate: func(r *bugreport.Report) { r.Path = "/billing" }, want: true},
		{matcher: "path ~= /billing/**", mutate: func(r *bugreport.Report) { r.Path = "/billingx" }, reason: `path = "/billingx", want ~= /billing/**`},
		{matcher: "path ~= /**/invoices", want: true},
		{matcher: "path ~= /*/invoices", want: true},
		{matcher: "path ~= /*", reason: `path = "/billing/invoices", want ~= /*`},
		{matcher: "host = app.example.com", want: true},
		{matcher: `host =~ .*\.example\.com`, want: true},
		{matcher: "browser = Chrome", want: true},
		{matcher: "browser_version >= 120", want: true},
		{matcher: "browser_version > 200", reason: `browser_version = "126.0", want > 200`},
		{matcher: "browser_version > 100", mutate: func(r *bugreport.Report) { r.BrowserVersion = "126.0.1" }, reason: `browser_version = "126.0.1" is not a number, want > 100`},
		{matcher: "os != Windows", want: true},
		{matcher: `os_version =~ 14\..*`, want: true},
		{matcher: "device in [desktop, tablet]", want: true},
		{matcher: `session_id != ""`, want: true},
		{matcher: "spam = false", want: true},
		{matcher: "spam = true", reason: `spam = false, want = true`},
		{matcher: "spam = true", mutate: func(r *bugreport.Report) { r.Spam = true }, want: true},
		{matcher: "spam != true", want: true},
		{matcher: "reporter.distinct_id = user-1", want: true},
		{matcher: "reporter.email = Ada@BigCo.Example", want: true},
		{matcher: "reporter.name =~ Ada .*", want: true},
		{matcher: "reporter.email_domain = bigco.example", want: true},
		{matcher: `reporter.email_domain = ""`, mutate: func(r *bugreport.Report) { r.Reporter.Email = "" }, want: true},

		// Usage counters compare numerically.
		{matcher: "usage.events_30d > 1000", want: true},
		{matcher: "usage.events_30d > 1500", reason: `usage.events_30d = 1500, want > 1500`},
		{matcher: "usage.events_30d >= 1500", want: true},
		{matcher: "usage.events_30d <= 1000", reason: `usage.events_30d = 1500, want <= 1000`},
		{matcher: "usage.events_30d < 1500.5", want: true},
		{matcher: "usage.events_30d = 1500", want: true},
		{matcher: "usage.events_30d != 1500.0", reason: `usage.events_30d = 1500, want != 1500.0`},
		{matcher: "usage.events_30d in [1, 1.5e3]", want: true},
		{matcher: "usage.events_30d =~ 15.*", want: true},
		{matcher: "usage.active_days_30d >= 12", want: true},
		{matcher: "usage.active_days_30d < 12", reason: `usage.active_days_30d = 12, want < 12`},
		{matcher: "usage.sessions_30d = 40", want: true},
		{matcher: "usage.exceptions_30m > 1", want: true},
		{matcher: "usage.exceptions_30m = 0", reason: `usage.exceptions_30m = 2, want = 0`},
		{matcher: "usage.person.plan = enterprise", want: true},
		{matcher: "usage.person.plan in [free, startup]", reason: `usage.person.plan = "enterprise", want in [free, startup]`},
		{matcher: "usage.person.seats > 20", want: true},
		{matcher: "usage.person.company = acme", reason: "usage.person.company not set"},
		{matcher: "usage.person.company != acme", reason: "usage.person.company not set"},
		{matcher: "usage.feature_flags = new-nav", want: true},
		{matcher: "usage.feature_flags =~ beta-.*", want: true},
		{matcher: "usage.feature_flags ~= beta-*", want: true},
		{matcher: "usage.feature_flags in [old, new-nav]", want: true},
		{matcher: "usage.feature_flags = old", reason: `usage.feature_flags = ["beta-export", "new-nav"], want = old`},
		{matcher: "usage.feature_flags != new-nav", reason: `usage.feature_flags = ["beta-export", "new-nav"], want != new-nav`},
		{matcher: "usage.feature_flags != old", want: true},
		{matcher: "usage.feature_flags !~ beta-.*", reason: `usage.feature_flags = ["beta-export", "new-nav"], want !~ beta-.*`},
		{matcher: "usage.feature_flags not in [a, b]", want: true},
		{matcher: "usage.feature_flags = x", mutate: func(r *bugreport.Report) { r.Usage.FeatureFlags = nil }, reason: `usage.feature_flags = [], want = x`},

		// Without usage every usage field is missing, whatever the operator.
		{matcher: "usage.events_30d > 0", mutate: noUsage, reason: "usage unavailable"},
		{matcher: "usage.events_30d < 1", mutate: noUsage, reason: "usage unavailable"},
		{matcher: "usage.active_days_30d = 0", mutate: noUsage, reason: "usage unavailable"},
		{matcher: "usage.sessions_30d != 3", mutate: noUsage, reason: "usage unavailable"},
		{matcher: "usage.exceptions_30m = 0", mutate: noUsage, reason: "usage unavailable"},
		{matcher: "usage.person.plan != enterprise", mutate: noUsage, reason: "usage unavailable"},
		{matcher: "usage.feature_flags != x", mutate: noUsage, reason: "usage unavailable"},

		// Property paths.
		{matcher: "properties.$feature/new-nav = true", want: true},
		{matcher: "properties.$feature/new-nav != true", reason: `properties.$feature/new-nav = true, want != true`},
		{matcher: "properties.app.version = 2.3.1", want: true},
		{matcher: "properties.app.version > 2", reason: `properties.app.version = "2.3.1" is not a number, want > 2`},
		{matcher: "properties.app.build = 1234", want: true},
		{matcher: "properties.app.build = 1234.0", want: true},
		{matcher: "properties.app.build in [1, 1234.00]", want: true},
		{matcher: "properties.app.build > 1000", want: true},
		{matcher: "properties.app.build =~ 12.*", want: true},
		{matcher: "properties.app.region = eu", want: true},
		{matcher: "properties.count >= 3", want: true},
		{matcher: "properties.count < 3", reason: `properties.count = 3, want < 3`},
		{matcher: "properties.items.0 = a", want: true},
		{matcher: "properties.items.1 = 2", want: true},
		{matcher: "properties.items.9 = a", reason: "properties.items.9 not set"},
		{matcher: "properties.items = a", want: true},
		{matcher: "properties.items != z", want: true},
		{matcher: "properties.items > 1", reason: `properties.items = ["a", "2"] is not a number, want > 1`},
		{matcher: "properties.nothing = x", reason: "properties.nothing is null"},
		{matcher: "properties.app = x", reason: "properties.app is an object, not a value"},
		{matcher: "properties.missing.deep = x", reason: "properties.missing.deep not set"},
		{matcher: "properties.missing = x", mutate: func(r *bugreport.Report) { r.Properties = nil }, reason: "properties.missing not set"},
		{matcher: "properties.n = 5", mutate: func(r *bugreport.Report) { r.Properties["n"] = 5 }, want: true},
		{matcher: "properties.n > 4", mutate: func(r *bugreport.Report) { r.Properties["n"] = int64(5) }, want: true},
		{matcher: "properties.n = 5", mutate: func(r *bugreport.Report) { r.Properties["n"] = json.Number("5.0") }, want: true},
		{matcher: "properties.n = 5", mutate: func(r *bugreport.Report) { r.Properties["n"] = "5.0" }, reason: `properties.n = "5.0", want = 5`},
		{matcher: "properties.n >= 5", mutate: func(r *bugreport.Report) { r.Properties["n"] = "5.0" }, want: true},
		{matcher: "properties.m.k = v", mutate: func(r *bugreport.Report) { r.Properties["m"] = map[string]string{"k": "v"} }, want: true},
	}
	for _, tt := range tests {
		name := tt.matcher
		if tt.mutate != nil {
			name += " (changed report)"
		}
		t.Run(name, func(t *testing.T) {
			rep := fullReport()
			if tt.mutate != nil {
				tt.mutate(rep)
			}
			d := oneRoute(t, tt.matcher).Route(rep)
			step := d.Explanation[0]
			if got := d.Team == "alpha"; got != tt.want || step.Matched != tt.want {
				t.Fatalf("matched = %v (team %s), want %v; reason %q", step.Matched, d.Team, tt.want, step.Reason)
			}
			if tt.want && step.Reason != "matched" {
				t.Errorf("reason = %q, want matched", step.Reason)
			}
			if !tt.want && tt.reason != "" && step.Reason != tt.reason {
				t.Errorf("reason = %q\n          want %q", step.Reason, tt.reason)
			}
		})
	}
}

func TestMatcherErrors(t *testing.T) {
	tests := []struct{ matcher, want string }{
		{"", "empty matcher; want field op value, like severity = high"},
		{"= high", "missing field before the operator"},
		{"severity", `missing operator after "severity"; want one of ` + opList},
		{"severity high", `unknown operator "high"; want one of ` + opList},
		{"severity == high", `unknown operator "=="; want one of ` + opList},
		{"usage.events_30d => 1", `unknown operator "=>"; want one of ` + opList},
		{"severity ~ high", `unknown operator "~"; want one of ` + opList},
		{"severity not high", `unknown operator after "severity"; did you mean not in?`},
		{"severity =", `missing value; write "" to match an empty value`},
		{"severity in high", "in needs a list like [a, b]"},
		{"severity not in high", "not in needs a list like [a, b]"},
		{"severity in []", "empty list; in needs at least one value"},
		{"severity in [high,", "unterminated list; want [a, b]"},
		{"severity in [high", "unterminated list; want [a, b]"},
		{"severity in [high, ]", `empty item in list; write "" for an empty value`},
		{"severity in [high] x", `unexpected text "x" after the list`},
		{`severity in ["high" low]`, `unexpected text "low]" in list; separate values with commas`},
		{`title = "unterminated`, "unterminated quoted value"},
		{`title = "a" b`, `unexpected text "b" after the quoted value`},
		{"spam = yes", `spam is true or false, not "yes"`},
		{"spam =~ t.*", "spam takes = or != with true or false"},
		{"usage.feature_flags > 1", "usage.feature_flags is a list; > needs a number"},
		{"usage.events_30d = many", `usage.events_30d is a number, not "many"`},
		{"usage.events_30d in [1, many]", `usage.events_30d is a number, not "many"`},
		{"usage.events_30d > NaN", `> needs a number, not "NaN"`},
		{"title < Inf", `< needs a number, not "Inf"`},
		{"usage.person = x", `unknown field "usage.person" (name a person property: usage.person.plan); valid fields: ` + validFields()},
		{"properties = x", `unknown field "properties" (name a property path: properties.app.version); valid fields: ` + validFields()},
		{"properties. = x", `unknown field "properties."; valid fields: ` + validFields()},
		{"title =~ a{2000}", `bad regex "a{2000}": invalid repeat count: "{2000}"`},
		{"title !~ (?P<x", `bad regex "(?P<x": invalid named capture: "(?P<x"`},
		{"severity in [high, urgent]", `unknown severity "urgent" (want low, medium, high, critical or "")`},
		{"product_area != biling", `unknown product area "biling" (product_areas: billing, replay)`},
	}
	for _, tt := range tests {
		t.Run(tt.matcher, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(`teams: [{name: alpha, zendesk_group: A}]
product_areas: [{id: billing, label: Billing}, {id: replay, label: Replay}]
fallback_team: alpha
routes:
  - name: r
    team: alpha
    match:
      - `+yamlQuote(tt.matcher)+"\n"), Options{})
			want := "t.yaml:8: routes[0].match[0]: " + strconv.Quote(tt.matcher) + ": " + tt.want
			if err == nil || err.Error() != want {
				t.Errorf("err = %v\n want %s", err, want)
			}
		})
	}
}

// Without product_areas in the file, product_area values are not checked:
// there is nothing to check them against.
func TestProductAreaValuesUncheckedWithoutAreas(t *testing.T) {
	_, err := Parse("t.yaml", []byte(`teams: [{name: alpha, zendesk_group: A}]
fallback_team: alpha
routes: [{name: r, team: alpha, match: ['product_area = anything']}]
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		glob  string
		match []string
		miss  []string
	}{
		{"/billing/**", []string{"/billing", "/billing/", "/billing/a", "/billing/a/b/c"}, []string{"/billingx", "/bill", "/x/billing/a", ""}},
		{"/billing/*", []string{"/billing/", "/billing/a"}, []string{"/billing", "/billing/a/b"}},
		{"/a/**/b", []string{"/a/b", "/a/x/b", "/a/x/y/b"}, []string{"/a/xb", "/a/b/c"}},
		{"/project/*/insights/**", []string{"/project/1/insights", "/project/1/insights/abc/edit"}, []string{"/project/insights", "/project/1/2/insights"}},
		{"https://*.example.com/settings/*", []string{"https://app.example.com/settings/x", "https://eu.example.com/settings/"}, []string{"https://a.b.example.com/settings/x/y", "https://example.com/settings/x", "https://app.exampleXcom/settings/x"}},
		{"/settings/project-replay*", []string{"/settings/project-replay", "/settings/project-replay-x"}, []string{"/settings/project-replay/x"}},
		{"/a.b/(x)+?", []string{"/a.b/(x)+?"}, []string{"/aXb/(x)+?", "/a.b/xx"}},
		{"**", []string{"", "/", "/a/b"}, nil},
		{"/ü/*/ß", []string{"/ü/x/ß"}, []string{"/u/x/ß"}},
	}
	for _, tt := range tests {
		re := regexp.MustCompile(globRegexp(tt.glob))
		for _, s := range tt.match {
			if !re.MatchString(s) {
				t.Errorf("%q does not match %q (regexp %s)", tt.glob, s, re)
			}
		}
		for _, s := range tt.miss {
			if re.MatchString(s) {
				t.Errorf("%q matches %q (regexp %s)", tt.glob, s, re)
			}
		}
	}
}
