package routing

import (
	"slices"
	"strings"

	"github.com/arubug/arubug/internal/bugreport"
)

// route is one compiled rule in the routing tree.
type route struct {
	name string
	path string // names from the top, joined with "/"
	all  []*matcher
	any  []*matcher
	team string // the team this route names; "" when none
	// decides is the team used when this route stops evaluation: its own
	// or the nearest ancestor's.
	decides  string
	priority int // index into priorities; -1 when the route sets none
	bump     int
	tags     []string
	cc       []string
	cont     bool
	children []*route
}

// Step names used in explanations for decisions no route made. Route names
// cannot contain parentheses or a colon, so these never collide with one.
const (
	fallbackStep    = "(fallback)"
	areaRoutePrefix = "product-area:"
	matchedReason   = "matched"
)

// matches reports whether every match matcher holds and, when any is
// given, at least one of those; otherwise it says why not.
func (rt *route) matches(rep *bugreport.Report) (bool, string) {
	for _, m := range rt.all {
		if ok, got, want := m.match(rep); !ok {
			return false, reason(got, want)
		}
	}
	if len(rt.any) == 0 {
		return true, matchedReason
	}
	// Group the failures by what the report holds, so four path globs
	// read as one line: path = "/x", want ~= /a/** or ~= /b/**.
	type failure struct {
		got   string
		wants []string
	}
	var fails []failure
	for _, m := range rt.any {
		ok, got, want := m.match(rep)
		if ok {
			return true, matchedReason
		}
		i := slices.IndexFunc(fails, func(f failure) bool { return f.got == got })
		if i < 0 {
			fails = append(fails, failure{got: got})
			i = len(fails) - 1
		}
		if want != "" {
			fails[i].wants = append(fails[i].wants, want)
		}
	}
	var b strings.Builder
	b.WriteString("none of any held: ")
	for i, f := range fails {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(reason(f.got, strings.Join(f.wants, " or ")))
	}
	return false, b.String()
}

func reason(got, want string) string {
	if want == "" {
		return got
	}
	return got + ", want " + want
}

// evaluation is the state of routing one report.
type evaluation struct {
	rep      *bugreport.Report
	steps    []bugreport.RouteStep
	team     string // "" until a matching route names or decides one
	route    string // path of the route that set team
	priority int    // highest priority a matched route set; -1 when none
	bump     int
	tags     []string
	cc       []string
}

// Route decides which team owns rep. Routes are tried in order; every
// matching route adds its tags, cc, priority and bump; the first matching
// route without continue: true stops evaluation and decides the team (after
// its children, the first of which to match decides instead). If no such
// route matches, the team is the last matching continue route's, then the
// owner of the report's product area, then the fallback team. A nil rep is
// routed like an empty report.
func (r *Rules) Route(rep *bugreport.Report) bugreport.RouteDecision {
	if rep == nil {
		rep = &bugreport.Report{}
	}
	e := evaluation{rep: rep, priority: -1, steps: make([]bugreport.RouteStep, 0, len(r.routes)+1)}
	e.walk(r.routes)

	if e.team == "" {
		if t, ok := r.areaTeam[rep.ProductArea]; ok && rep.ProductArea != "" {
			e.team, e.route = t, areaRoutePrefix+rep.ProductArea
			e.steps = append(e.steps, bugreport.RouteStep{
				Route: e.route, Matched: true,
				Reason: "no route decided; product area " + rep.ProductArea + " belongs to team " + t,
			})
		} else {
			e.team, e.route = r.fallback, ""
			e.steps = append(e.steps, bugreport.RouteStep{
				Route: fallbackStep, Matched: true,
				Reason: "no route decided; fallback team " + r.fallback,
			})
		}
	}

	team := r.teams[r.teamIdx[e.team]]
	p := e.priority
	if p < 0 {
		p, _ = parsePriority(team.DefaultPriority)
	}
	p = min(p+e.bump, maxPriority)

	tags := make([]string, 0, len(team.Tags)+len(e.tags))
	tags = append(append(tags, team.Tags...), e.tags...)
	return bugreport.RouteDecision{
		Team:        e.team,
		Route:       e.route,
		Priority:    priorities[p],
		Tags:        sortedSet(tags),
		CC:          sortedSet(e.cc),
		Assignee:    team.Assignee,
		Explanation: e.steps,
	}
}

// walk evaluates one level of routes and reports whether a route without
// continue matched, which ends evaluation of the enclosing levels too.
func (e *evaluation) walk(routes []*route) bool {
	for _, rt := range routes {
		ok, why := rt.matches(e.rep)
		e.steps = append(e.steps, bugreport.RouteStep{Route: rt.path, Matched: ok, Reason: why})
		if !ok {
			continue
		}
		if rt.priority > e.priority {
			e.priority = rt.priority
		}
		e.bump += rt.bump
		e.tags = append(e.tags, rt.tags...)
		e.cc = append(e.cc, rt.cc...)
		if rt.team != "" {
			e.team, e.route = rt.team, rt.path
		}
		childDecided := len(rt.children) > 0 && e.walk(rt.children)
		if rt.cont {
			continue
		}
		if !childDecided {
			// The route itself decides, even over a continue child
			// that named a team: only a stopping route is final.
			e.team, e.route = rt.decides, rt.path
		}
		return true
	}
	return false
}

// sortedSet sorts and deduplicates in place; nil for no elements.
func sortedSet(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	slices.Sort(s)
	return slices.Compact(s)
}
