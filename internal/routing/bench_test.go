package routing

import (
	"fmt"
	"strings"
	"testing"

	"github.com/arubug/arubug/internal/bugreport"
)

// rules200 generates 200 routes of mixed matcher kinds; the report routed
// in the benchmark matches only the last, so every route is evaluated and
// explained.
func rules200(tb testing.TB) *Rules {
	var b strings.Builder
	b.WriteString("teams:\n")
	for i := range 10 {
		fmt.Fprintf(&b, "  - {name: team-%d, zendesk_group: G%d, tags: [t%d]}\n", i, i, i)
	}
	b.WriteString("fallback_team: team-0\nroutes:\n")
	for i := range 200 {
		fmt.Fprintf(&b, "  - name: r%d\n    team: team-%d\n", i, i%10)
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "    any: ['path ~= /p%d/**', 'path ~= /project/*/p%d/**']\n", i, i)
		case 1:
			fmt.Fprintf(&b, "    match: ['title =~ (?i).*keyword%d.*']\n", i)
		case 2:
			fmt.Fprintf(&b, "    match: ['severity in [high, critical]', 'usage.events_30d > %d']\n", 1000000+i)
		case 3:
			fmt.Fprintf(&b, "    match: ['usage.person.plan = plan%d']\n    tags: [x%d]\n    continue: true\n", i, i)
		case 4:
			fmt.Fprintf(&b, "    match: ['properties.app.version = %d.0', 'reporter.email_domain = d%d.example']\n", i, i)
		}
	}
	b.WriteString("  - {name: last, match: ['path ~= /project/*/insights/**'], team: team-1}\n")
	r, err := Parse("bench.yaml", []byte(b.String()), Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func benchReport() *bugreport.Report {
	return &bugreport.Report{
		Title:    "The chart does not load after I change the date range",
		Severity: "high",
		Path:     "/project/1/insights/abc",
		Reporter: bugreport.Reporter{Email: "ada@bigco.example"},
		Usage: &bugreport.Usage{Events30d: 5000, Person: map[string]string{"plan": "enterprise"},
			FeatureFlags: []string{"a", "b"}},
		Properties: map[string]any{"app": map[string]any{"version": "3.1"}},
	}
}

func BenchmarkRoute200(b *testing.B) {
	r := rules200(b)
	rep := benchReport()
	if d := r.Route(rep); d.Route != "last" || len(d.Explanation) != 201 {
		b.Fatalf("decision = %s after %d steps", d.Route, len(d.Explanation))
	}
	b.ReportAllocs()
	for b.Loop() {
		r.Route(rep)
	}
}

func BenchmarkRouteShippedRules(b *testing.B) {
	r, err := Load("../../routing-rules/rules.yaml", Options{})
	if err != nil {
		b.Fatal(err)
	}
	rep := benchReport()
	b.ReportAllocs()
	for b.Loop() {
		r.Route(rep)
	}
}

func BenchmarkParse200(b *testing.B) {
	rules200(b)
	b.ReportAllocs()
	for b.Loop() {
		rules200(b)
	}
}
