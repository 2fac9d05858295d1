// Package routing decides which team queue owns a bug report.
//
// Rules live in one YAML file (routing-rules/rules.yaml by default; the
// format is documented in routing-rules/README.md). Loading decodes the file
// strictly, validates every reference (teams, product areas, priorities,
// regular expressions, Zendesk groups) and reports every problem at once with
// its file, line and key. The result is compiled into an immutable *Rules
// that routes reports and explains each decision, in the manner of
// Alertmanager's routing tree.
package routing

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/arubug/arubug/internal/bugreport"
)

// DefaultPath is where the rules file lives unless configured otherwise,
// relative to the working directory.
const DefaultPath = "routing-rules/rules.yaml"

// Options adjusts validation at load time.
type Options struct {
	// KnownGroups, when set, reports whether a Zendesk group (id or name)
	// exists; a team naming a group for which it returns false is a load
	// error. When nil, groups are not checked, so rules can be loaded
	// without Zendesk access.
	KnownGroups func(group string) bool
}

// ProductArea is one entry of the list the bug-report widget offers.
type ProductArea struct {
	ID    string
	Label string
	// Team owns the area; "" when no team is named. When no route decides,
	// a report whose product_area is this area goes to this team before
	// the fallback.
	Team string
}

// Error is one problem found in a rules or rule-test file. Load, Parse,
// LoadTests and ParseTests return all problems at once, joined with
// errors.Join, each of them an *Error; a file that cannot be read is
// reported with the *fs.PathError from reading it instead.
type Error struct {
	File    string
	Line    int    // 1-based; 0 when the problem has no line (an empty file)
	Key     string // path of the offending key, like routes[2].match[0]; may be ""
	Message string
}

// Error formats the problem as "file:line: key: message".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// Rules are compiled routing rules. They never change once loaded and are
// safe for concurrent use; reloading means loading a new *Rules.
type Rules struct {
	source   string
	hash     string
	teams    []bugreport.Team
	teamIdx  map[string]int // team name → index in teams
	areas    []ProductArea
	areaTeam map[string]string // product area id → owning team, for areas that name one
	fallback string
	routes   []*route
}

// Load reads and compiles the rules file at path. Errors name the file, the
// line and the key of every problem found.
func Load(path string, opts Options) (*Rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, opts)
}

// Parse compiles rules from data; name is used in error messages and
// returned by Source.
func Parse(name string, data []byte, opts Options) (*Rules, error) {
	r, err := compile(name, data, opts)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	r.source = name
	r.hash = hex.EncodeToString(sum[:])
	return r, nil
}

// Source returns the path (or name) the rules were loaded from.
func (r *Rules) Source() string { return r.source }

// Hash returns the hex SHA-256 of the rules file's content, so reload logs
// can tell whether anything changed.
func (r *Rules) Hash() string { return r.hash }

// FallbackTeam returns the team that gets reports no route decides.
func (r *Rules) FallbackTeam() string { return r.fallback }

// Teams returns the teams in file order, with DefaultPriority filled in
// ("normal" when the file gives none). The result is a copy.
func (r *Rules) Teams() []bugreport.Team {
	out := make([]bugreport.Team, len(r.teams))
	for i, t := range r.teams {
		t.Tags = slices.Clone(t.Tags)
		out[i] = t
	}
	return out
}

// ProductAreas returns the product areas in file order, the order the
// widget shows them. The result is a copy.
func (r *Rules) ProductAreas() []ProductArea {
	return slices.Clone(r.areas)
}
