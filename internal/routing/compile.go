package routing

import (
	"maps"
	"net/mail"
	"regexp"
	"slices"
	"strings"

	"github.com/arubug/arubug/internal/bugreport"
	"go.yaml.in/yaml/v3"
)

var (
	teamNameRE  = regexp.MustCompile(`^[a-z0-9-]+$`)
	routeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	// Zendesk splits tags on spaces and lowercases them; allowing only
	// what survives unchanged keeps rule tests and tickets in agreement.
	tagRE = regexp.MustCompile(`^[a-z0-9_][a-z0-9_:./-]*$`)
)

// priorities are Zendesk's levels, lowest first; a bump moves up this list.
var priorities = []string{"low", "normal", "high", "urgent"}

const (
	defaultPriority = 1 // normal
	maxPriority     = 3 // urgent
)

func parsePriority(s string) (int, bool) {
	i := slices.Index(priorities, s)
	return i, i >= 0
}

// The raw* types hold what was decoded, with the nodes needed to place
// cross-reference errors, until every section has been read: routes may
// come before the teams and product areas they name.
type rawTeam struct {
	node     *yaml.Node
	key      string
	team     bugreport.Team
	nameNode *yaml.Node
}

type rawArea struct {
	node     *yaml.Node
	key      string
	area     ProductArea
	idNode   *yaml.Node
	teamNode *yaml.Node
}

type rawMatcher struct {
	text string
	node *yaml.Node
	key  string
}

type rawRoute struct {
	node     *yaml.Node
	key      string
	name     string
	nameNode *yaml.Node
	all, any []rawMatcher
	team     string
	teamNode *yaml.Node
	priority int
	bump     int
	tags, cc []string
	cont     bool
	children []*rawRoute
}

// compile decodes, validates and compiles a rules file, reporting every
// problem found.
func compile(file string, data []byte, opts Options) (*Rules, error) {
	d := &decoder{file: file}
	root := d.document(data)
	if root == nil {
		return nil, d.err()
	}
	var (
		teams        []*rawTeam
		areas        []*rawArea
		fallback     string
		fallbackNode *yaml.Node
		routes       []*rawRoute
	)
	ok := d.mapping(root, "", "the rules file", []keySpec{
		{"teams", func(v *yaml.Node, key string) { teams = d.teams(v, key, opts) }},
		{"product_areas", func(v *yaml.Node, key string) { areas = d.areas(v, key) }},
		{"fallback_team", func(v *yaml.Node, key string) {
			if s, ok := d.str(v, key); ok {
				fallback, fallbackNode = s, v
			}
		}},
		{"routes", func(v *yaml.Node, key string) { routes = d.routeList(v, key) }},
	})
	if !ok {
		return nil, d.err()
	}

	r := &Rules{teamIdx: map[string]int{}, areaTeam: map[string]string{}}
	var teamLines []int // parallel to r.teams
	for _, t := range teams {
		if t.team.Name == "" {
			continue
		}
		if i, dup := r.teamIdx[t.team.Name]; dup {
			d.fail(t.nameNode, t.key+".name", "duplicate team %q (first on line %d)", t.team.Name, teamLines[i])
			continue
		}
		teamLines = append(teamLines, t.nameNode.Line)
		r.teamIdx[t.team.Name] = len(r.teams)
		r.teams = append(r.teams, t.team)
	}
	if len(teams) == 0 {
		d.fail(root, "teams", "at least one team is required")
	}
	teamList := strings.Join(slices.Sorted(maps.Keys(r.teamIdx)), ", ")
	checkTeam := func(name string, n *yaml.Node, key string) bool {
		if _, ok := r.teamIdx[name]; ok {
			return true
		}
		d.fail(n, key, "unknown team %q (teams: %s)", name, teamList)
		return false
	}

	switch {
	case fallbackNode == nil:
		d.fail(root, "fallback_team", "required: the team that gets reports no route decides")
	case fallback == "":
		d.fail(fallbackNode, "fallback_team", "must name a team")
	default:
		checkTeam(fallback, fallbackNode, "fallback_team")
		r.fallback = fallback
	}

	env := &matcherEnv{}
	seenArea := map[string]int{}
	for _, a := range areas {
		if a.area.ID == "" {
			continue
		}
		if line, dup := seenArea[a.area.ID]; dup {
			d.fail(a.idNode, a.key+".id", "duplicate product area %q (first on line %d)", a.area.ID, line)
			continue
		}
		seenArea[a.area.ID] = a.idNode.Line
		if a.area.Team != "" && checkTeam(a.area.Team, a.teamNode, a.key+".team") {
			r.areaTeam[a.area.ID] = a.area.Team
		}
		r.areas = append(r.areas, a.area)
	}
	if len(r.areas) > 0 {
		env.areas = map[string]bool{}
		ids := make([]string, len(r.areas))
		for i, a := range r.areas {
			env.areas[a.ID] = true
			ids[i] = a.ID
		}
		env.areaList = strings.Join(ids, ", ")
	}

	c := &routeCompiler{d: d, env: env, checkTeam: checkTeam, names: map[string]int{}}
	r.routes = c.compile(routes, "", "")
	if err := d.err(); err != nil {
		return nil, err
	}
	return r, nil
}

func (d *decoder) teams(n *yaml.Node, key string, opts Options) []*rawTeam {
	items, _ := d.seq(n, key, "teams")
	var out []*rawTeam
	for i, item := range items {
		t := &rawTeam{node: item, key: index(key, i)}
		var groupNode *yaml.Node
		ok := d.mapping(item, t.key, "a team", []keySpec{
			{"name", func(v *yaml.Node, key string) {
				s, ok := d.str(v, key)
				if !ok {
					return
				}
				if !teamNameRE.MatchString(s) {
					d.fail(v, key, "team name %q must be lowercase letters, digits and -", s)
					return
				}
				t.team.Name, t.nameNode = s, v
			}},
			{"zendesk_group", func(v *yaml.Node, key string) {
				if s, ok := d.str(v, key); ok {
					t.team.ZendeskGroup, groupNode = strings.TrimSpace(s), v
				}
			}},
			{"tags", func(v *yaml.Node, key string) { t.team.Tags = d.tags(v, key) }},
			{"default_priority", func(v *yaml.Node, key string) {
				if s, ok := d.str(v, key); ok {
					if _, ok := parsePriority(s); !ok && s != "" {
						d.fail(v, key, "unknown priority %q (want %s)", s, strings.Join(priorities, ", "))
						return
					}
					t.team.DefaultPriority = s
				}
			}},
			{"assignee", func(v *yaml.Node, key string) {
				if s, ok := d.str(v, key); ok && s != "" && d.email(v, key, s) {
					t.team.Assignee = s
				}
			}},
		})
		if !ok {
			continue
		}
		if t.team.DefaultPriority == "" {
			t.team.DefaultPriority = priorities[defaultPriority]
		}
		if t.nameNode == nil && !hasKey(item, "name") {
			d.fail(item, t.key, "name is required")
		}
		switch {
		case groupNode == nil:
			d.fail(item, t.key, "zendesk_group is required (a Zendesk group id or name)")
		case t.team.ZendeskGroup == "":
			d.fail(groupNode, t.key+".zendesk_group", "must name a Zendesk group (id or name)")
		case opts.KnownGroups != nil && !opts.KnownGroups(t.team.ZendeskGroup):
			d.fail(groupNode, t.key+".zendesk_group", "zendesk group %q does not exist", t.team.ZendeskGroup)
		}
		out = append(out, t)
	}
	return out
}

// declaresMatchers reports whether a route's match or any holds anything at
// all; when it does but nothing compiled, the items' own errors say why and
// "needs at least one matcher" would be noise.
func declaresMatchers(n *yaml.Node) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		if (k == "match" || k == "any") && !isNull(v) && !(v.Kind == yaml.SequenceNode && len(v.Content) == 0) {
			return true
		}
	}
	return false
}

func hasKey(n *yaml.Node, name string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == name {
			return true
		}
	}
	return false
}

func (d *decoder) areas(n *yaml.Node, key string) []*rawArea {
	items, _ := d.seq(n, key, "product areas")
	var out []*rawArea
	for i, item := range items {
		a := &rawArea{node: item, key: index(key, i)}
		ok := d.mapping(item, a.key, "a product area", []keySpec{
			{"id", func(v *yaml.Node, key string) {
				s, ok := d.str(v, key)
				if !ok {
					return
				}
				if !teamNameRE.MatchString(s) {
					d.fail(v, key, "product area id %q must be lowercase letters, digits and -", s)
					return
				}
				a.area.ID, a.idNode = s, v
			}},
			{"label", func(v *yaml.Node, key string) {
				if s, ok := d.str(v, key); ok {
					a.area.Label = strings.TrimSpace(s)
				}
			}},
			{"team", func(v *yaml.Node, key string) {
				if s, ok := d.str(v, key); ok {
					a.area.Team, a.teamNode = s, v
				}
			}},
		})
		if !ok {
			continue
		}
		if a.idNode == nil && !hasKey(item, "id") {
			d.fail(item, a.key, "id is required")
		}
		if a.area.Label == "" {
			d.fail(item, a.key, "label is required: the text the widget shows")
		}
		out = append(out, a)
	}
	return out
}

func (d *decoder) tags(n *yaml.Node, key string) []string {
	vals, nodes := d.strList(n, key, "tags")
	var out []string
	for i, s := range vals {
		if !tagRE.MatchString(s) {
			d.fail(nodes[i], index(key, i), "tag %q must be lowercase letters, digits and _ : . / - (Zendesk tags)", s)
			continue
		}
		out = append(out, s)
	}
	return out
}

func (d *decoder) email(n *yaml.Node, key, s string) bool {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		d.fail(n, key, "%q is not an email address", s)
		return false
	}
	return true
}

func (d *decoder) routeList(n *yaml.Node, key string) []*rawRoute {
	items, _ := d.seq(n, key, "routes")
	var out []*rawRoute
	for i, item := range items {
		if r := d.route(item, index(key, i)); r != nil {
			out = append(out, r)
		}
	}
	return out
}

func (d *decoder) route(n *yaml.Node, key string) *rawRoute {
	r := &rawRoute{node: n, key: key, priority: -1}
	ok := d.mapping(n, key, "a route", []keySpec{
		{"name", func(v *yaml.Node, key string) {
			s, ok := d.str(v, key)
			if !ok {
				return
			}
			if !routeNameRE.MatchString(s) {
				d.fail(v, key, "route name %q must be letters, digits, _ . and - (no spaces or /)", s)
				return
			}
			r.name, r.nameNode = s, v
		}},
		{"match", func(v *yaml.Node, key string) { r.all = d.matchers(v, key) }},
		{"any", func(v *yaml.Node, key string) { r.any = d.matchers(v, key) }},
		{"team", func(v *yaml.Node, key string) {
			if s, ok := d.str(v, key); ok {
				r.team, r.teamNode = s, v
			}
		}},
		{"priority", func(v *yaml.Node, key string) {
			if s, ok := d.str(v, key); ok && s != "" {
				p, ok := parsePriority(s)
				if !ok {
					d.fail(v, key, "unknown priority %q (want %s)", s, strings.Join(priorities, ", "))
					return
				}
				r.priority = p
			}
		}},
		{"priority_bump", func(v *yaml.Node, key string) {
			if b, ok := d.integer(v, key); ok {
				if b < 1 {
					d.fail(v, key, "must be 1 or more, not %d", b)
					return
				}
				r.bump = b
			}
		}},
		{"tags", func(v *yaml.Node, key string) { r.tags = d.tags(v, key) }},
		{"cc", func(v *yaml.Node, key string) {
			vals, nodes := d.strList(v, key, "email addresses")
			for i, s := range vals {
				if d.email(nodes[i], index(key, i), s) {
					r.cc = append(r.cc, s)
				}
			}
		}},
		{"continue", func(v *yaml.Node, key string) {
			if b, ok := d.boolean(v, key); ok {
				r.cont = b
			}
		}},
		{"routes", func(v *yaml.Node, key string) { r.children = d.routeList(v, key) }},
	})
	if !ok {
		return nil
	}
	return r
}

func (d *decoder) matchers(n *yaml.Node, key string) []rawMatcher {
	items, _ := d.seq(n, key, "matcher strings like 'severity = high'")
	var out []rawMatcher
	for i, item := range items {
		k := index(key, i)
		if item.Kind != yaml.ScalarNode {
			d.fail(item, k, "a matcher is a string like 'severity = high', not a %s", kindName(item))
			continue
		}
		out = append(out, rawMatcher{text: item.Value, node: item, key: k})
	}
	return out
}

// routeCompiler turns raw routes into the runtime tree.
type routeCompiler struct {
	d         *decoder
	env       *matcherEnv
	checkTeam func(name string, n *yaml.Node, key string) bool
	names     map[string]int // route name → line, for duplicates across the whole tree
}

func (c *routeCompiler) compile(raws []*rawRoute, parentPath, inherited string) []*route {
	out := make([]*route, 0, len(raws))
	for _, raw := range raws {
		rt := &route{
			name: raw.name, priority: raw.priority, bump: raw.bump,
			tags: raw.tags, cc: raw.cc, cont: raw.cont,
		}
		rt.path = raw.name
		if parentPath != "" {
			rt.path = parentPath + "/" + raw.name
		}
		switch {
		case raw.nameNode == nil:
			if !hasKey(raw.node, "name") {
				c.d.fail(raw.node, raw.key, "name is required")
			}
		default:
			if line, dup := c.names[raw.name]; dup {
				c.d.fail(raw.nameNode, raw.key+".name", "duplicate route name %q (first on line %d)", raw.name, line)
			} else {
				c.names[raw.name] = raw.nameNode.Line
			}
		}
		if raw.teamNode != nil && raw.team != "" && c.checkTeam(raw.team, raw.teamNode, raw.key+".team") {
			rt.team = raw.team
		}
		rt.decides = inherited
		if raw.team != "" {
			rt.decides = raw.team
		}
		if len(raw.all)+len(raw.any) == 0 && !declaresMatchers(raw.node) {
			c.d.fail(raw.node, raw.key, "needs at least one matcher in match or any")
		}
		if !raw.cont && rt.decides == "" {
			c.d.fail(raw.node, raw.key, "names no team; give it a team (or its parent one), or set continue: true")
		}
		rt.all = c.matchers(raw.all)
		rt.any = c.matchers(raw.any)
		rt.children = c.compile(raw.children, rt.path, rt.decides)
		out = append(out, rt)
	}
	return out
}

func (c *routeCompiler) matchers(raws []rawMatcher) []*matcher {
	out := make([]*matcher, 0, len(raws))
	for _, raw := range raws {
		m, err := parseMatcher(raw.text, c.env)
		if err != nil {
			c.d.fail(raw.node, raw.key, "%q: %v", raw.text, err)
			continue
		}
		out = append(out, m)
	}
	return out
}
