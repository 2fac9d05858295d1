package routing

import (
	"strings"
	"testing"

	"github.com/arubug/arubug/internal/bugreport"
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

// TestReadmeExamples keeps the documentation honest: the README's rules
// example must load and its test example must parse and pass against the
// shipped rules.
func TestReadmeExamples(t *testing.T) {
	text := string(mustRead(t, "../../routing-rules/README.md"))
	var blocks []string
	for _, part := range strings.Split(text, "```yaml\n")[1:] {
		block, _, ok := strings.Cut(part, "```")
		if !ok {
			t.Fatal("unterminated yaml block in README.md")
		}
		blocks = append(blocks, block)
	}
	var rulesDone, testsDone bool
	for _, b := range blocks {
		switch {
		case strings.HasPrefix(b, "teams:"):
			r, err := Parse("README.md", []byte(b), Options{})
			if err != nil {
				t.Fatalf("README rules example: %v", err)
			}
			d := r.Route(&bugreport.Report{Path: "/billing/cards", Title: "Card declined"})
			if d.Team != "billing" || d.Route != "billing-paths/card-failures" || d.Priority != "urgent" {
				t.Errorf("README example routes a card failure to %+v", d)
			}
			rulesDone = true
		case strings.HasPrefix(b, "- name:"):
			cases, err := ParseTests("README.md", []byte(b))
			if err != nil {
				t.Fatalf("README test example: %v", err)
			}
			shipped, err := Load("../../routing-rules/rules.yaml", Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, res := range shipped.RunTests(cases) {
				if !res.Pass {
					t.Errorf("README test example fails: %v", res.Diffs)
				}
			}
			testsDone = true
		}
	}
	if !rulesDone || !testsDone {
		t.Errorf("README examples not found (rules %v, tests %v)", rulesDone, testsDone)
	}
}
