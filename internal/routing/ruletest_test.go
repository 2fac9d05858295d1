package routing

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/arubug/arubug/internal/bugreport"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestParseTestsDecodesReports(t *testing.T) {
	cases, err := ParseTests("cases.yaml", []byte(`
- name: everything
  report:
    id: 0190a6b2-7c3e-7d4f-9a1b-2c3d4e5f6a7b
    project: shop
    title: Export fails
    description: "Export fails\nagain"
    product_area: billing
    severity: high
    url: https://app.example.com/billing/x?y=1
    browser: Chrome
    browser_version: "126.0"
    os: Mac OS X
    os_version: "14.5"
    device: desktop
    user_agent: Mozilla/5.0
    session_id: s1
    spam: false
    reporter: {distinct_id: u1, email: a@b.example, name: Ada}
    usage:
      events_30d: 1500
      active_days_30d: 3
      sessions_30d: 4
      exceptions_30m: 2
      person: {plan: enterprise, seats: 25}
      feature_flags: [beta]
    properties:
      $feature/new-nav: true
      app: {version: "2.3", build: 12}
      list: [1, a]
  expect: {team: billing, route: "", priority: high, tags: [a], tags_exact: [], cc: [x@example.com], assignee: y@example.com}
- name: no usage
  report: {}
  expect: {team: platform}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != 2 {
		t.Fatalf("%d cases", len(cases))
	}
	c := cases[0]
	r := c.Report
	if c.Name != "everything" || c.File != "cases.yaml" || c.Line != 2 {
		t.Errorf("case = %q %s:%d", c.Name, c.File, c.Line)
	}
	if r.ID.String() != "0190a6b2-7c3e-7d4f-9a1b-2c3d4e5f6a7b" || r.Project != "shop" || r.Title != "Export fails" ||
		r.Description != "Export fails\nagain" || r.ProductArea != "billing" || r.Severity != "high" ||
		r.Browser != "Chrome" || r.BrowserVersion != "126.0" || r.OS != "Mac OS X" || r.OSVersion != "14.5" ||
		r.Device != "desktop" || r.UserAgent != "Mozilla/5.0" || r.SessionID != "s1" || r.Spam {
		t.Errorf("report = %+v", r)
	}
	// Path and host come from the URL when not given.
	if r.Path != "/billing/x" || r.Host != "app.example.com" {
		t.Errorf("path, host = %q, %q", r.Path, r.Host)
	}
	if r.Reporter != (bugreport.Reporter{DistinctID: "u1", Email: "a@b.example", Name: "Ada"}) {
		t.Errorf("reporter = %+v", r.Reporter)
	}
	u := r.Usage
	if u == nil || u.Events30d != 1500 || u.ActiveDays30d != 3 || u.Sessions30d != 4 || len(u.RecentExceptions) != 2 ||
		u.Person["plan"] != "enterprise" || u.Person["seats"] != "25" || !slices.Equal(u.FeatureFlags, []string{"beta"}) {
		t.Errorf("usage = %+v", u)
	}
	// Properties look like decoded JSON: numbers are float64.
	app, _ := r.Properties["app"].(map[string]any)
	if r.Properties["$feature/new-nav"] != true || app["version"] != "2.3" || app["build"] != 12.0 {
		t.Errorf("properties = %#v", r.Properties)
	}
	if l, _ := r.Properties["list"].([]any); len(l) != 2 || l[0] != 1.0 {
		t.Errorf("properties.list = %#v", r.Properties["list"])
	}
	e := c.Expect
	if e.Team != "billing" || e.Route == nil || *e.Route != "" || e.Priority != "high" ||
		!slices.Equal(e.Tags, []string{"a"}) || e.TagsExact == nil || len(e.TagsExact) != 0 ||
		!slices.Equal(e.CC, []string{"x@example.com"}) || e.Assignee != "y@example.com" {
		t.Errorf("expect = %+v", e)
	}
	if cases[1].Report.Usage != nil || cases[1].Expect.Route != nil || cases[1].Expect.TagsExact != nil {
		t.Errorf("second case = %+v", cases[1])
	}
}

func TestParseTestsErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"not a list", "name: x\n", "c.yaml:1: a test file is a list of test cases, each with name, report and expect"},
		{"empty", "# nothing\n", "c.yaml: the file is empty"},
		{"unknown case key", "- name: a\n  report: {}\n  expect: {team: x}\n  expected: {team: y}\n",
			"c.yaml:4: [0].expected: unknown key; valid keys for a test case: name, report, expect"},
		{"unknown report key", "- name: a\n  report: {sevrity: high}\n  expect: {team: x}\n",
			"c.yaml:2: [0].report.sevrity: unknown key; valid keys for a report: id, project, title, description, product_area, severity, url, path, host, browser, browser_version, os, os_version, device, user_agent, session_id, spam, reporter, usage, properties"},
		{"unknown usage key", "- name: a\n  report:\n    usage: {events: 3}\n  expect: {team: x}\n",
			"c.yaml:3: [0].report.usage.events: unknown key; valid keys for usage: events_30d, active_days_30d, sessions_30d, exceptions_30m, person, feature_flags"},
		{"unknown expect key", "- name: a\n  report: {}\n  expect: {teem: x}\n",
			"c.yaml:3: [0].expect.teem: unknown key; valid keys for expect: team, route, priority, tags, tags_exact, cc, assignee\n" +
				"c.yaml:3: [0].expect: expect checks nothing; give at least one of team, route, priority, tags, tags_exact, cc, assignee"},
		{"missing parts", "- report: {}\n",
			"c.yaml:1: [0]: name is required\nc.yaml:1: [0]: expect is required"},
		{"missing report", "- name: a\n  expect: {team: x}\n",
			"c.yaml:1: [0]: report is required (write report: {} for an empty report)"},
		{"bad priority", "- name: a\n  report: {}\n  expect: {priority: p1}\n",
			`c.yaml:3: [0].expect.priority: unknown priority "p1" (want low, normal, high, urgent)` + "\n" +
				"c.yaml:3: [0].expect: expect checks nothing; give at least one of team, route, priority, tags, tags_exact, cc, assignee"},
		{"negative count", "- name: a\n  report: {usage: {events_30d: -1}}\n  expect: {team: x}\n",
			"c.yaml:2: [0].report.usage.events_30d: must not be negative"},
		{"count not a number", "- name: a\n  report: {usage: {events_30d: many}}\n  expect: {team: x}\n",
			`c.yaml:2: [0].report.usage.events_30d: must be a whole number, not "many"`},
		{"spam not a bool", "- name: a\n  report: {spam: 1}\n  expect: {team: x}\n",
			`c.yaml:2: [0].report.spam: must be true or false, not "1"`},
		{"bad uuid", "- name: a\n  report: {id: nope}\n  expect: {team: x}\n",
			`c.yaml:2: [0].report.id: "nope" is not a uuid`},
		{"properties not a mapping", "- name: a\n  report: {properties: [1]}\n  expect: {team: x}\n",
			"c.yaml:2: [0].report.properties: must be a mapping of property: value"},
		{"duplicate names", "- {name: a, report: {}, expect: {team: x}}\n- {name: a, report: {}, expect: {team: y}}\n",
			`c.yaml:2: [1].name: duplicate test name "a" (first on line 1)`},
		{"case not a mapping", "- just text\n",
			"c.yaml:1: [0]: a test case must be a mapping with keys name, report, expect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTests("c.yaml", []byte(tt.text))
			if err == nil || err.Error() != tt.want {
				t.Errorf("err = %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestLoadTests(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"b.yaml":     "- {name: second, report: {}, expect: {team: x}}\n",
		"a.yml":      "- {name: first, report: {}, expect: {team: x}}\n",
		"notes.txt":  "not a test file",
		"c.yaml":     "- {name: third, report: {}, expect: {team: x}}\n",
		"ignore.bak": "-",
	})
	cases, err := LoadTests(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cases {
		names = append(names, c.Name+"@"+filepath.Base(c.File))
	}
	if want := []string{"first@a.yml", "second@b.yaml", "third@c.yaml"}; !slices.Equal(names, want) {
		t.Errorf("cases = %q, want %q", names, want)
	}

	t.Run("problems in several files", func(t *testing.T) {
		dir := writeFiles(t, map[string]string{
			"a.yaml": "- {name: same, report: {}, expect: {team: x}}\n- {name: bad, report: {}, expect: {}}\n",
			"b.yaml": "- {name: other, report: {}, expect: {team: x}}\n- {name: same, report: {}, expect: {team: y}}\n",
		})
		_, err := LoadTests(dir)
		want := []string{
			filepath.Join(dir, "a.yaml") + ":2: [1].expect: expect checks nothing; give at least one of team, route, priority, tags, tags_exact, cc, assignee",
			filepath.Join(dir, "b.yaml") + `:2: name: duplicate test name "same" (first in ` + filepath.Join(dir, "a.yaml") + ":1)",
		}
		if err == nil || err.Error() != strings.Join(want, "\n") {
			t.Errorf("err = %v\nwant %s", err, strings.Join(want, "\n"))
		}
	})
	t.Run("no files", func(t *testing.T) {
		dir := t.TempDir()
		_, err := LoadTests(dir)
		var e *Error
		if !errors.As(err, &e) || err.Error() != dir+": no *.yaml test files" {
			t.Errorf("err = %v", err)
		}
	})
}

func TestRunTests(t *testing.T) {
	r := mustParse(t, `
  - {name: vip, match: ['usage.events_30d > 1000'], tags: [vip], cc: [vip@example.com], priority_bump: 1, continue: true}
  - {name: billing, match: ['path ~= /billing/**'], team: beta, tags: [money]}`)
	cases, err := ParseTests("c.yaml", []byte(`
- name: passes
  report: {path: /billing/x, usage: {events_30d: 5000}}
  expect: {team: beta, route: billing, priority: urgent, tags: [vip, money], cc: [vip@example.com], assignee: beta-lead@example.com}
- name: exact tags pass in any order
  report: {path: /billing/x}
  expect: {tags_exact: [shared, money, beta, money]}
- name: fails everywhere
  report: {path: /replay}
  expect: {team: beta, route: billing, priority: high, tags: [money, vip], tags_exact: [beta], cc: [vip@example.com], assignee: someone@example.com}
- name: expects the fallback
  report: {path: /billing}
  expect: {route: ""}
`))
	if err != nil {
		t.Fatal(err)
	}
	res := r.RunTests(cases)
	if len(res) != 4 {
		t.Fatalf("%d results", len(res))
	}
	if !res[0].Pass || !res[1].Pass || len(res[0].Diffs) != 0 {
		t.Errorf("passing cases failed: %+v\n%+v", res[0], res[1])
	}
	wantDiffs := []string{
		`team: got "platform", want "beta"`,
		`route: got "", want "billing"`,
		`priority: got "normal", want "high"`,
		`tags: got ["platform"], missing ["money" "vip"]`,
		`tags_exact: got ["platform"], want ["beta"]`,
		`cc: got [], missing ["vip@example.com"]`,
		`assignee: got "", want "someone@example.com"`,
	}
	if res[2].Pass || !slices.Equal(res[2].Diffs, wantDiffs) {
		t.Errorf("diffs:\n%s\nwant:\n%s", strings.Join(res[2].Diffs, "\n"), strings.Join(wantDiffs, "\n"))
	}
	if res[2].Name != "fails everywhere" || res[2].File != "c.yaml" || res[2].Line != 8 {
		t.Errorf("result = %q %s:%d", res[2].Name, res[2].File, res[2].Line)
	}
	if n := len(res[2].Decision.Explanation); n != 3 || res[2].Decision.Explanation[2].Route != "(fallback)" {
		t.Errorf("explanation = %+v", res[2].Decision.Explanation)
	}
	if res[3].Pass || !slices.Equal(res[3].Diffs, []string{`route: got "billing", want ""`}) {
		t.Errorf("fallback case: %+v", res[3])
	}
}
