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

func TestLoadGoodFile(t *testing.T) {
	r, err := Load("testdata/good.yaml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Source() != "testdata/good.yaml" {
		t.Errorf("Source() = %q", r.Source())
	}
	if len(r.Hash()) != 64 {
		t.Errorf("Hash() = %q, want 64 hex digits", r.Hash())
	}
	if r.FallbackTeam() != "platform" {
		t.Errorf("FallbackTeam() = %q", r.FallbackTeam())
	}
	teams := r.Teams()
	want := []bugreport.Team{
		{Name: "analytics", ZendeskGroup: "Product Analytics", Tags: []string{"analytics"}, DefaultPriority: "normal"},
		{Name: "billing", ZendeskGroup: "360001234567", Tags: []string{"billing", "money"}, DefaultPriority: "high", Assignee: "billing-lead@example.com"},
		{Name: "platform", ZendeskGroup: "Platform", DefaultPriority: "normal"},
	}
	if len(teams) != len(want) {
		t.Fatalf("Teams() = %+v", teams)
	}
	for i := range want {
		if teams[i].Name != want[i].Name || teams[i].ZendeskGroup != want[i].ZendeskGroup ||
			!slices.Equal(teams[i].Tags, want[i].Tags) || teams[i].DefaultPriority != want[i].DefaultPriority ||
			teams[i].Assignee != want[i].Assignee {
			t.Errorf("Teams()[%d] = %+v, want %+v", i, teams[i], want[i])
		}
	}
	// The copies are the caller's: changing them must not change routing.
	teams[1].Tags[0] = "changed"
	if r.Teams()[1].Tags[0] != "billing" {
		t.Error("Teams() returned the rules' own tags slice")
	}
	areas := r.ProductAreas()
	wantAreas := []ProductArea{
		{ID: "product-analytics", Label: "Product analytics", Team: "analytics"},
		{ID: "billing", Label: "Billing"},
		{ID: "other", Label: "Something else"},
	}
	if !slices.Equal(areas, wantAreas) {
		t.Errorf("ProductAreas() = %+v, want %+v", areas, wantAreas)
	}

	same, err := Parse("other-name.yaml", mustRead(t, "testdata/good.yaml"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if same.Hash() != r.Hash() {
		t.Error("the same content hashed differently")
	}
	changed, err := Parse("x.yaml", append(mustRead(t, "testdata/good.yaml"), "\n# edit\n"...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if changed.Hash() == r.Hash() {
		t.Error("different content hashed the same")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLoadBadFiles loads each testdata/bad-*.yaml and checks the exact error.
// Every bad file must appear here, so none is silently skipped.
func TestLoadBadFiles(t *testing.T) {
	want := map[string]string{
		"bad-alias.yaml":                 "9: routes[1].match: anchors and aliases (*m) are not supported; write the value out",
		"bad-area-unknown-team.yaml":     `4: product_areas[0].team: unknown team "billing" (teams: platform)`,
		"bad-assignee.yaml":              `2: teams[0].assignee: "Jo <jo@example.com>" is not an email address`,
		"bad-cc-email.yaml":              `7: routes[0].cc[1]: "VIP desk" is not an email address`,
		"bad-continue-not-bool.yaml":     `7: routes[0].continue: must be true or false, not "yes"`,
		"bad-default-priority.yaml":      `2: teams[0].default_priority: unknown priority "medium" (want low, normal, high, urgent)`,
		"bad-duplicate-area.yaml":        `6: product_areas[2].id: duplicate product area "billing" (first on line 4)`,
		"bad-duplicate-key.yaml":         `8: routes[0].team: duplicate key (first set on line 7)`,
		"bad-duplicate-route.yaml":       `9: routes[0].routes[0].name: duplicate route name "settings" (first on line 5)`,
		"bad-duplicate-team.yaml":        `4: teams[2].name: duplicate team "platform" (first on line 2)`,
		"bad-empty.yaml":                 ` the file is empty`,
		"bad-match-mapping.yaml":         `7: routes[0].match: must be a list of matcher strings like 'severity = high', not a mapping`,
		"bad-matcher-syntax.yaml":        `6: routes[0].match[0]: "severity": missing operator after "severity"; want one of =, !=, =~, !~, ~=, in, not in, >, >=, <, <=`,
		"bad-missing-fallback.yaml":      `1: fallback_team: required: the team that gets reports no route decides`,
		"bad-missing-zendesk-group.yaml": `2: teams[0]: zendesk_group is required (a Zendesk group id or name)`,
		"bad-no-matchers.yaml":           `5: routes[0]: needs at least one matcher in match or any`,
		"bad-not-a-mapping.yaml":         `1: the rules file must be a mapping with keys teams, product_areas, fallback_team, routes`,
		"bad-numeric-value.yaml":         `6: routes[0].match[0]: "usage.events_30d > lots": > needs a number, not "lots"`,
		"bad-priority-bump.yaml":         `7: routes[0].priority_bump: must be 1 or more, not 0`,
		"bad-priority.yaml":              `7: routes[0].priority: unknown priority "critical" (want low, normal, high, urgent)`,
		"bad-product-area-value.yaml":    `9: routes[0].match[0]: "product_area in [billing, biling]": unknown product area "biling" (product_areas: billing, replay)`,
		"bad-regex.yaml":                 `6: routes[0].match[0]: "title =~ [unclosed": bad regex "[unclosed": missing closing ]: "[unclosed"`,
		"bad-route-without-team.yaml":    `5: routes[0]: names no team; give it a team (or its parent one), or set continue: true`,
		"bad-severity-value.yaml":        `6: routes[0].match[0]: "severity = hgih": unknown severity "hgih" (want low, medium, high, critical or "")`,
		"bad-tag.yaml":                   `2: teams[0].tags[0]: tag "needs triage" must be lowercase letters, digits and _ : . / - (Zendesk tags)`,
		"bad-team-name.yaml":             `2: teams[0].name: team name "Platform Team" must be lowercase letters, digits and -`,
		"bad-two-documents.yaml":         `4: only one YAML document is allowed; remove the extra ---`,
		"bad-unknown-fallback.yaml":      `3: fallback_team: unknown team "support" (teams: platform)`,
		"bad-unknown-field.yaml":         `6: routes[0].match[0]: "sevrity = high": unknown field "sevrity"; valid fields: ` + strings.Join(fieldNames, ", "),
		"bad-unknown-route-key.yaml":     `7: routes[0].receiver: unknown key; valid keys for a route: name, match, any, team, priority, priority_bump, tags, cc, continue, routes`,
		"bad-unknown-route-team.yaml":    `8: routes[0].team: unknown team "biling" (teams: billing, platform)`,
		"bad-unknown-team-key.yaml":      `4: teams[0].email: unknown key; valid keys for a team: name, zendesk_group, tags, default_priority, assignee`,
		"bad-unknown-top-key.yaml":       `1: version: unknown key; valid keys for the rules file: teams, product_areas, fallback_team, routes`,
		// yaml.v3 places syntax errors at the line where the unclosed
		// construct began, not where it was noticed.
		"bad-yaml-syntax.yaml": `1: yaml: did not find expected ',' or '}'`,
		// Every problem at once, in line order.
		"bad-many-problems.yaml": strings.Join([]string{
			`1: fallback_team: required: the team that gets reports no route decides`,
			`3: teams[1]: zendesk_group is required (a Zendesk group id or name)`,
			`7: routes[0].team: unknown team "biling" (teams: billing, platform)`,
			`8: routes[1].name: duplicate route name "one" (first on line 5)`,
			`9: routes[1].match[0]: "title =~ (": bad regex "(": missing closing ): "("`,
			`11: routes[1].priority: unknown priority "asap" (want low, normal, high, urgent)`,
		}, "\n"),
	}
	files, err := filepath.Glob("testdata/bad-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := want[filepath.Base(f)]; !ok {
			t.Errorf("%s has no expected error in this test", f)
		}
	}
	for name, msg := range want {
		t.Run(name, func(t *testing.T) {
			path := "testdata/" + name
			r, err := Load(path, Options{})
			if err == nil {
				t.Fatalf("loaded %s without error: %+v", name, r)
			}
			// Each line of the expectation is prefixed with the file.
			var lines []string
			for l := range strings.SplitSeq(msg, "\n") {
				lines = append(lines, path+":"+l)
			}
			if got := err.Error(); got != strings.Join(lines, "\n") {
				t.Errorf("error:\n%s\nwant:\n%s", got, strings.Join(lines, "\n"))
			}
			// Each joined problem is an *Error callers can inspect.
			var e *Error
			if !errors.As(err, &e) || e.File != path {
				t.Errorf("error is not an *Error for %s: %#v", path, err)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/does-not-exist.yaml", Options{})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "testdata/does-not-exist.yaml") {
		t.Fatalf("err = %v, want a not-exist error naming the file", err)
	}
}

func TestKnownGroups(t *testing.T) {
	data := mustRead(t, "testdata/good.yaml")
	var asked []string
	known := func(g string) bool {
		asked = append(asked, g)
		return g != "Product Analytics"
	}
	_, err := Parse("good.yaml", data, Options{KnownGroups: known})
	want := `good.yaml:4: teams[0].zendesk_group: zendesk group "Product Analytics" does not exist`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
	if !slices.Equal(asked, []string{"Product Analytics", "360001234567", "Platform"}) {
		t.Errorf("KnownGroups asked about %q", asked)
	}
	if _, err := Parse("good.yaml", data, Options{KnownGroups: func(string) bool { return true }}); err != nil {
		t.Errorf("all groups known: %v", err)
	}
}
