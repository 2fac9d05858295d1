package routing

import (
	"strings"
	"testing"
)

// TestShippedRules loads the rules the service ships with and runs their
// test cases, so a change to either that breaks routing fails here first.
func TestShippedRules(t *testing.T) {
	r, err := Load("../../routing-rules/rules.yaml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	cases, err := LoadTests("../../routing-rules/tests")
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 20 {
		t.Errorf("only %d test cases; the shipped rules need at least 20", len(cases))
	}
	teams := map[string]bool{}
	for _, res := range r.RunTests(cases) {
		teams[res.Decision.Team] = true
		if !res.Pass {
			var steps []string
			for _, s := range res.Decision.Explanation {
				steps = append(steps, s.Route+": "+s.Reason)
			}
			t.Errorf("%s:%d: %s: %s\n  explanation:\n    %s", res.File, res.Line, res.Name,
				strings.Join(res.Diffs, "; "), strings.Join(steps, "\n    "))
		}
	}
	for _, team := range r.Teams() {
		if !teams[team.Name] {
			t.Errorf("no test case routes to team %s", team.Name)
		}
	}
}
