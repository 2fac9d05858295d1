package routing

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/arubug/arubug/internal/bugreport"
)

// header is prepended to each table case's routes.
const header = `
teams:
  - {name: alpha, zendesk_group: A, tags: [alpha]}
  - {name: beta, zendesk_group: B, tags: [beta, shared], default_priority: high, assignee: beta-lead@example.com}
  - {name: platform, zendesk_group: P, tags: [platform]}
product_areas:
  - {id: billing, label: Billing, team: beta}
  - {id: replay, label: Replay}
fallback_team: platform
routes:
`

func mustParse(t testing.TB, routes string) *Rules {
	t.Helper()
	r, err := Parse("t.yaml", []byte(header+routes), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRoute(t *testing.T) {
	tests := []struct {
		name     string
		routes   string
		report   bugreport.Report
		team     string
		route    string
		priority string
		tags     []string // exact, sorted
		cc       []string
		assignee string
	}{
		{
			name: "first match wins",
			routes: `
  - {name: a, match: ['severity = high'], team: alpha}
  - {name: b, match: ['severity = high'], team: beta}`,
			report: bugreport.Report{Severity: "high"},
			team:   "alpha", route: "a", priority: "normal", tags: []string{"alpha"},
		},
		{
			name:   "no match goes to the fallback",
			routes: `  - {name: a, match: ['severity = high'], team: alpha}`,
			report: bugreport.Report{Severity: "low"},
			team:   "platform", route: "", priority: "normal", tags: []string{"platform"},
		},
		{
			name:   "no routes at all",
			routes: `  []`,
			team:   "platform", route: "", priority: "normal", tags: []string{"platform"},
		},
		{
			name:   "the product area's team before the fallback",
			routes: `  - {name: a, match: ['severity = high'], team: alpha}`,
			report: bugreport.Report{ProductArea: "billing"},
			team:   "beta", route: "product-area:billing", priority: "high", tags: []string{"beta", "shared"},
			assignee: "beta-lead@example.com",
		},
		{
			name:   "a product area without a team falls back",
			routes: `  - {name: a, match: ['severity = high'], team: alpha}`,
			report: bugreport.Report{ProductArea: "replay"},
			team:   "platform", route: "",
		},
		{
			name:   "a route beats the product area's team",
			routes: `  - {name: a, match: ['severity = high'], team: alpha}`,
			report: bugreport.Report{ProductArea: "billing", Severity: "high"},
			team:   "alpha", route: "a",
		},
		{
			name: "continue adds and evaluation goes on",
			routes: `
  - {name: vip, match: ['usage.events_30d > 1000'], tags: [vip], priority_bump: 1, cc: [vip@example.com], continue: true}
  - {name: a, match: ['severity = high'], team: alpha, tags: [a]}`,
			report: bugreport.Report{Severity: "high", Usage: &bugreport.Usage{Events30d: 5000}},
			team:   "alpha", route: "a", priority: "high", tags: []string{"a", "alpha", "vip"}, cc: []string{"vip@example.com"},
		},
		{
			name: "a continue route's team is used when nothing stops evaluation",
			routes: `
  - {name: enterprise, match: ['usage.person.plan = enterprise'], team: beta, continue: true}
  - {name: a, match: ['severity = high'], team: alpha}`,
			report: bugreport.Report{Usage: &bugreport.Usage{Person: map[string]string{"plan": "enterprise"}}},
			team:   "beta", route: "enterprise", priority: "high",
		},
		{
			name: "a later continue route's team replaces an earlier one",
			routes: `
  - {name: c1, match: ['severity = high'], team: beta, continue: true}
  - {name: c2, match: ['severity = high'], team: alpha, continue: true}`,
			report: bugreport.Report{Severity: "high"},
			team:   "alpha", route: "c2",
		},
		{
			name: "a stopping route overrides a continue route's team",
			routes: `
  - {name: enterprise, match: ['usage.person.plan = enterprise'], team: beta, continue: true}
  - {name: a, match: ['severity = high'], team: alpha}`,
			report: bugreport.Report{Severity: "high", Usage: &bugreport.Usage{Person: map[string]string{"plan": "enterprise"}}},
			team:   "alpha", route: "a", priority: "normal",
		},
		{
			name: "nested: the matching child decides",
			routes: `
  - name: p
    match: ['path ~= /billing/**']
    team: alpha
    tags: [p]
    routes:
      - {name: c, match: ['severity = critical'], team: beta, tags: [c]}`,
			report: bugreport.Report{Path: "/billing/x", Severity: "critical"},
			team:   "beta", route: "p/c", priority: "high", tags: []string{"beta", "c", "p", "shared"},
		},
		{
			name: "nested: the parent decides when no child matches",
			routes: `
  - name: p
    match: ['path ~= /billing/**']
    team: alpha
    routes:
      - {name: c, match: ['severity = critical'], team: beta}`,
			report: bugreport.Report{Path: "/billing/x", Severity: "low"},
			team:   "alpha", route: "p",
		},
		{
			name: "nested: a child inherits its parent's team",
			routes: `
  - name: p
    match: ['path ~= /billing/**']
    team: beta
    routes:
      - {name: c, match: ['severity = critical'], priority: urgent, tags: [c]}`,
			report: bugreport.Report{Path: "/billing", Severity: "critical"},
			team:   "beta", route: "p/c", priority: "urgent", tags: []string{"beta", "c", "shared"},
		},
		{
			name: "nested: the first matching child wins",
			routes: `
  - name: p
    match: ['path ~= /billing/**']
    team: alpha
    routes:
      - {name: c1, match: ['path ~= /billing/*'], team: beta, tags: [c1]}
      - {name: c2, match: ['path ~= /billing/**'], team: platform, tags: [c2]}`,
			report: bugreport.Report{Path: "/billing/x"},
			team:   "beta", route: "p/c1", tags: []string{"beta", "c1", "shared"},
		},
		{
			name: "nested: grandchildren",
			routes: `
  - name: p
    match: ['path ~= /settings/**']
    team: platform
    routes:
      - name: c
        match: ['path ~= /settings/billing/**']
        team: beta
        routes:
          - {name: g, match: ['path = /settings/billing/cards'], team: alpha}`,
			report: bugreport.Report{Path: "/settings/billing/cards"},
			team:   "alpha", route: "p/c/g",
		},
		{
			name: "nested: a continue child adds, then a sibling decides",
			routes: `
  - name: p
    match: ['path ~= /billing/**']
    team: alpha
    routes:
      - {name: c1, match: ['severity = critical'], tags: [c1], continue: true}
      - {name: c2, match: ['path ~= /billing/**'], team: beta}`,
			report: bugreport.Report{Path: "/billing/x", Severity: "critical"},
			team:   "beta", route: "p/c2", tags: []string{"beta", "c1", "shared"},
		},
		{
			name: "nested: a stopping parent decides over a continue child's team",
			routes: `
  - name: p
    match: ['path ~= /billing/**']
    team: alpha
    routes:
      - {name: c1, match: ['severity = critical'], team: beta, tags: [c1], continue: true}`,
			report: bugreport.Report{Path: "/billing/x", Severity: "critical"},
			team:   "alpha", route: "p", tags: []string{"alpha", "c1"},
		},
		{
			name: "nested: a continue parent's child decision can be overridden later",
			routes: `
  - name: p
    match: ['path ~= /billing/**']
    continue: true
    routes:
      - {name: c, match: ['severity = critical'], team: beta}
  - {name: later, match: ['path = /billing/x'], team: alpha}`,
			report: bugreport.Report{Path: "/billing/x", Severity: "critical"},
			team:   "alpha", route: "later",
		},
		{
			name: "nested: a continue parent's child decides when nothing later does",
			routes: `
  - name: p
    match: ['path ~= /billing/**']
    continue: true
    routes:
      - {name: c, match: ['severity = critical'], team: beta}
  - {name: later, match: ['path = /other'], team: alpha}`,
			report: bugreport.Report{Path: "/billing/x", Severity: "critical"},
			team:   "beta", route: "p/c",
		},
		{
			name: "children are skipped when the parent does not match",
			routes: `
  - name: p
    match: ['path ~= /billing/**']
    team: alpha
    routes:
      - {name: c, match: ['severity = critical'], team: beta}`,
			report: bugreport.Report{Path: "/replay", Severity: "critical"},
			team:   "platform", route: "",
		},
		{
			name:   "route priority overrides the team default",
			routes: `  - {name: a, match: ['severity = low'], team: beta, priority: low}`,
			report: bugreport.Report{Severity: "low"},
			team:   "beta", route: "a", priority: "low",
		},
		{
			name:   "team default priority",
			routes: `  - {name: a, match: ['severity = low'], team: beta}`,
			report: bugreport.Report{Severity: "low"},
			team:   "beta", route: "a", priority: "high",
		},
		{
			name: "the highest priority a matched route sets wins",
			routes: `
  - {name: c, match: ['severity = critical'], priority: urgent, continue: true}
  - {name: a, match: ['severity = critical'], team: alpha, priority: low}`,
			report: bugreport.Report{Severity: "critical"},
			team:   "alpha", route: "a", priority: "urgent",
		},
		{
			name: "bumps add up",
			routes: `
  - {name: b1, match: ['severity = high'], priority_bump: 1, continue: true}
  - {name: b2, match: ['severity = high'], priority_bump: 1, continue: true}
  - {name: a, match: ['severity = high'], team: alpha}`,
			report: bugreport.Report{Severity: "high"},
			team:   "alpha", route: "a", priority: "urgent",
		},
		{
			name: "bumps are capped at urgent",
			routes: `
  - {name: b, match: ['severity = high'], priority_bump: 5, continue: true}
  - {name: a, match: ['severity = high'], team: beta}`,
			report: bugreport.Report{Severity: "high"},
			team:   "beta", route: "a", priority: "urgent",
		},
		{
			name: "a bump applies to a route's priority",
			routes: `
  - {name: b, match: ['severity = low'], priority_bump: 1, continue: true}
  - {name: a, match: ['severity = low'], team: alpha, priority: low}`,
			report: bugreport.Report{Severity: "low"},
			team:   "alpha", route: "a", priority: "normal",
		},
		{
			name: "a bump applies to the fallback's default",
			routes: `
  - {name: b, match: ['severity = low'], priority_bump: 2, continue: true}`,
			report: bugreport.Report{Severity: "low"},
			team:   "platform", route: "", priority: "urgent",
		},
		{
			name: "tags and cc are deduplicated and sorted",
			routes: `
  - {name: c, match: ['severity = high'], tags: [zz, shared], cc: [b@example.com, a@example.com], continue: true}
  - {name: a, match: ['severity = high'], team: beta, tags: [shared, aa], cc: [b@example.com]}`,
			report: bugreport.Report{Severity: "high"},
			team:   "beta", route: "a", tags: []string{"aa", "beta", "shared", "zz"}, cc: []string{"a@example.com", "b@example.com"},
		},
		{
			name: "match and any must both hold",
			routes: `
  - {name: a, match: ['severity = high'], any: ['path ~= /a/**', 'path ~= /b/**'], team: alpha}`,
			report: bugreport.Report{Severity: "high", Path: "/c"},
			team:   "platform", route: "",
		},
		{
			name: "one of any is enough",
			routes: `
  - {name: a, match: ['severity = high'], any: ['path ~= /a/**', 'path ~= /b/**'], team: alpha}`,
			report: bugreport.Report{Severity: "high", Path: "/b/1"},
			team:   "alpha", route: "a",
		},
		{
			name: "usage unavailable: usage add-ons do not apply",
			routes: `
  - {name: vip, any: ['usage.events_30d > 1000', 'usage.person.plan = enterprise'], tags: [vip], priority_bump: 1, continue: true}
  - {name: a, match: ['severity = high'], team: alpha}`,
			report: bugreport.Report{Severity: "high"},
			team:   "alpha", route: "a", priority: "normal", tags: []string{"alpha"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustParse(t, tt.routes).Route(&tt.report)
			var errs []string
			check := func(what, got, want string) {
				if got != want {
					errs = append(errs, what+": got "+got+", want "+want)
				}
			}
			check("team", d.Team, tt.team)
			check("route", d.Route, tt.route)
			if tt.priority != "" {
				check("priority", d.Priority, tt.priority)
			}
			if tt.tags != nil {
				check("tags", strings.Join(d.Tags, ","), strings.Join(tt.tags, ","))
			}
			check("cc", strings.Join(d.CC, ","), strings.Join(tt.cc, ","))
			if tt.assignee != "" {
				check("assignee", d.Assignee, tt.assignee)
			}
			if len(errs) > 0 {
				t.Errorf("%s\nexplanation: %+v", strings.Join(errs, "\n"), d.Explanation)
			}
		})
	}
}

func TestExplanation(t *testing.T) {
	r := mustParse(t, `
  - {name: vip, any: ['usage.events_30d > 1000', 'usage.person.plan = enterprise'], tags: [vip], continue: true}
  - {name: critical, match: ['severity in [high, critical]'], priority: urgent, continue: true}
  - name: billing
    any: ['path ~= /billing/**', 'path ~= /organization/billing/**']
    team: beta
    routes:
      - {name: invoices, match: ['path ~= /billing/invoices/**', 'title =~ .*invoice.*'], team: alpha}
      - {name: cards, match: ['path = /billing/cards'], team: alpha}
  - {name: never-reached, match: ['severity = low'], team: alpha}`)

	tests := []struct {
		name   string
		report bugreport.Report
		want   []bugreport.RouteStep
	}{
		{
			name:   "nested and stopped",
			report: bugreport.Report{Severity: "low", Path: "/billing/invoices/7", Title: "Cards"},
			want: []bugreport.RouteStep{
				{Route: "vip", Reason: "none of any held: usage unavailable"},
				{Route: "critical", Reason: `severity = "low", want in [high, critical]`},
				{Route: "billing", Matched: true, Reason: "matched"},
				{Route: "billing/invoices", Reason: `title = "Cards", want =~ .*invoice.*`},
				{Route: "billing/cards", Reason: `path = "/billing/invoices/7", want = /billing/cards`},
			},
		},
		{
			name: "usage present, nothing decides",
			report: bugreport.Report{Severity: "critical", Path: "/replay",
				Usage: &bugreport.Usage{Events30d: 10, Person: map[string]string{}}},
			want: []bugreport.RouteStep{
				{Route: "vip", Reason: "none of any held: usage.events_30d = 10, want > 1000; usage.person.plan not set"},
				{Route: "critical", Matched: true, Reason: "matched"},
				{Route: "billing", Reason: `none of any held: path = "/replay", want ~= /billing/** or ~= /organization/billing/**`},
				{Route: "never-reached", Reason: `severity = "critical", want = low`},
				{Route: "(fallback)", Matched: true, Reason: "no route decided; fallback team platform"},
			},
		},
		{
			name:   "product area owner",
			report: bugreport.Report{ProductArea: "billing", Severity: "medium"},
			want: []bugreport.RouteStep{
				{Route: "vip", Reason: "none of any held: usage unavailable"},
				{Route: "critical", Reason: `severity = "medium", want in [high, critical]`},
				{Route: "billing", Reason: `none of any held: path = "", want ~= /billing/** or ~= /organization/billing/**`},
				{Route: "never-reached", Reason: `severity = "medium", want = low`},
				{Route: "product-area:billing", Matched: true, Reason: "no route decided; product area billing belongs to team beta"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := r.Route(&tt.report).Explanation
			if !slices.Equal(got, tt.want) {
				t.Errorf("explanation:\n%s\nwant:\n%s", stepsText(got), stepsText(tt.want))
			}
		})
	}
}

func stepsText(steps []bugreport.RouteStep) string {
	var b strings.Builder
	for _, s := range steps {
		mark := "-"
		if s.Matched {
			mark = "+"
		}
		b.WriteString("  " + mark + " " + s.Route + ": " + s.Reason + "\n")
	}
	return b.String()
}

func TestRouteNilReport(t *testing.T) {
	d := mustParse(t, `  - {name: a, match: ['usage.events_30d > 1', 'properties.x = 1'], team: alpha}`).Route(nil)
	if d.Team != "platform" {
		t.Errorf("team = %s, want the fallback", d.Team)
	}
}

// TestRouteConcurrent shares one *Rules between goroutines; run with -race.
func TestRouteConcurrent(t *testing.T) {
	r, err := Load("../../routing-rules/rules.yaml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	reports := []bugreport.Report{
		{Path: "/billing/x", Severity: "critical", Usage: &bugreport.Usage{Events30d: 5000}},
		{ProductArea: "surveys"},
		{Spam: true},
		{Path: "/project/1/settings/project-replay", Properties: map[string]any{"$feature/new-navigation": true}},
	}
	want := make([]bugreport.RouteDecision, len(reports))
	for i := range reports {
		want[i] = r.Route(&reports[i])
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for n := range 200 {
				i := (g + n) % len(reports)
				d := r.Route(&reports[i])
				if d.Team != want[i].Team || !slices.Equal(d.Tags, want[i].Tags) || d.Priority != want[i].Priority {
					t.Errorf("report %d: got %+v, want %+v", i, d, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
}
