package routing

// RouteInfo describes one route of the compiled tree, for people reading
// the rules in force (the web UI's rules page).
type RouteInfo struct {
	// Path is the route's name, prefixed by its ancestors' names and "/".
	Path string
	// Depth is 0 for a top-level route, 1 for its children, and so on.
	Depth int
	// Match holds the matchers that must all hold; Any those of which one
	// must, each written as in the file (field, operator, value).
	Match, Any []string
	// Team is the team the route names ("" when none); Decides is the
	// team it sends reports to when it stops evaluation (its own or its
	// nearest ancestor's).
	Team, Decides string
	// Priority is the priority it sets ("" when none); Bump how many
	// levels it raises it.
	Priority string
	Bump     int
	Tags, CC []string
	// Continue is true when evaluation goes on after the route matched.
	Continue bool
}

// Routes returns the routing tree in evaluation order, depth first: each
// route followed by its children. The result is a copy.
func (r *Rules) Routes() []RouteInfo {
	var out []RouteInfo
	var walk func(routes []*route, depth int)
	walk = func(routes []*route, depth int) {
		for _, rt := range routes {
			info := RouteInfo{
				Path: rt.path, Depth: depth, Team: rt.team, Decides: rt.decides, Bump: rt.bump,
				Tags: append([]string(nil), rt.tags...), CC: append([]string(nil), rt.cc...), Continue: rt.cont,
			}
			if rt.priority >= 0 {
				info.Priority = priorities[rt.priority]
			}
			for _, m := range rt.all {
				info.Match = append(info.Match, m.field.name+" "+m.want)
			}
			for _, m := range rt.any {
				info.Any = append(info.Any, m.field.name+" "+m.want)
			}
			out = append(out, info)
			walk(rt.children, depth+1)
		}
	}
	walk(r.routes, 0)
	return out
}
