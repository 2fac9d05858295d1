package routing

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/arubug/arubug/internal/bugreport"
)

// FuzzParse feeds arbitrary bytes to the loader: it must never panic, every
// problem it reports must be one line naming the file, and rules it accepts
// must route any report to one of their teams.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	seeds = append(seeds, "../../routing-rules/rules.yaml")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b, "/billing/x", uint64(5000))
		}
	}
	f.Add([]byte("teams: [{name: a, zendesk_group: g}]\nfallback_team: a\nroutes: [{name: r, match: ['title = x'], team: a}]\n"), "x", uint64(0))
	f.Add([]byte("teams: [{name: a, zendesk_group: g}]\nfallback_team: a\nroutes: [{name: r, any: ['properties.a.b ~= /**/x*'], continue: true, priority_bump: 9, routes: [{name: c, match: ['usage.feature_flags in [x, \"y z\"]']}]}]\n"), "/q/x", uint64(1))
	f.Fuzz(func(t *testing.T, data []byte, s string, n uint64) {
		r, err := Parse("fuzz.yaml", data, Options{})
		if err != nil {
			if r != nil {
				t.Fatal("rules returned with an error")
			}
			for line := range strings.SplitSeq(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.yaml") {
					t.Fatalf("problem without the file name: %q", line)
				}
			}
			return
		}
		teams := r.Teams()
		isTeam := func(name string) bool {
			return slices.ContainsFunc(teams, func(t bugreport.Team) bool { return t.Name == name })
		}
		reports := []*bugreport.Report{nil, {}, fuzzReport(s, n), fuzzReport(s, n)}
		reports[3].Usage = nil
		for _, rep := range reports {
			d := r.Route(rep)
			if !isTeam(d.Team) {
				t.Fatalf("routed to %q, not a team", d.Team)
			}
			if !slices.Contains(priorities, d.Priority) {
				t.Fatalf("priority %q", d.Priority)
			}
			if len(d.Explanation) == 0 {
				t.Fatal("no explanation")
			}
		}
	})
}

// fuzzReport puts the fuzzer's string in every field a rule can read.
func fuzzReport(s string, n uint64) *bugreport.Report {
	return &bugreport.Report{
		Project: s, Title: s, Description: s, ProductArea: s, Severity: s,
		URL: s, Path: s, Host: s, Browser: s, BrowserVersion: s, OS: s, OSVersion: s,
		Device: s, SessionID: s, Spam: n%2 == 1,
		Reporter: bugreport.Reporter{DistinctID: s, Email: s, Name: s},
		Usage: &bugreport.Usage{
			Events30d: n, ActiveDays30d: n % 31, Sessions30d: n / 3,
			RecentExceptions: make([]bugreport.Exception, n%4),
			Person:           map[string]string{"plan": s, s: s},
			FeatureFlags:     []string{s, "beta"},
		},
		Properties: map[string]any{
			s: s, "a": map[string]any{"b": s, "n": float64(n)}, "list": []any{s, float64(n), nil, map[string]any{}},
		},
	}
}

// FuzzMatcher parses and evaluates single matchers.
func FuzzMatcher(f *testing.F) {
	for _, m := range []string{
		"severity in [high, critical]", `title =~ "\d+"`, "path ~= /a/**/b*", "usage.events_30d >= 10",
		"properties.a.b != x", `usage.feature_flags not in ["a, b", c]`, "spam = true", "reporter.email_domain = x",
	} {
		f.Add(m, "x", uint64(3))
	}
	env := &matcherEnv{areas: map[string]bool{"x": true}, areaList: "x"}
	f.Fuzz(func(t *testing.T, text, s string, n uint64) {
		m, err := parseMatcher(text, env)
		if err != nil {
			if m != nil {
				t.Fatal("matcher returned with an error")
			}
			return
		}
		for _, rep := range []*bugreport.Report{{}, fuzzReport(s, n)} {
			ok, got, want := m.match(rep)
			if !ok && got == "" {
				t.Fatalf("%q did not match without saying why (want %q)", text, want)
			}
		}
	})
}
