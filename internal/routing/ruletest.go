package routing

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/google/uuid"
	"go.yaml.in/yaml/v3"
)

// TestCase is one rule test: a report and the routing it must get. Files
// of test cases are documented in routing-rules/README.md.
type TestCase struct {
	Name   string
	File   string // the file the case came from
	Line   int    // the line the case starts on
	Report bugreport.Report
	Expect Expectation
}

// Expectation is what a TestCase checks. Zero fields are not checked.
type Expectation struct {
	Team string
	// Route is the deciding route's path ("parent/child" when nested);
	// nil is not checked, "" expects the fallback team.
	Route    *string
	Priority string
	// Tags must all be among the decision's tags; others may be present.
	Tags []string
	// TagsExact, when not nil, must equal the decision's tags as a set.
	TagsExact []string
	// CC must all be among the decision's cc addresses.
	CC       []string
	Assignee string
}

// TestResult is the outcome of one TestCase.
type TestResult struct {
	Name string
	File string
	Line int
	Pass bool
	// Diffs says what differed, one line per checked field, like
	// `team: got "platform", want "billing"`; empty when Pass.
	Diffs []string
	// Decision is what the rules decided, with its explanation.
	Decision bugreport.RouteDecision
}

// LoadTests reads every *.yaml and *.yml file in dir, in name order. Each
// file is a list of test cases, decoded strictly: unknown keys are errors.
// All problems are returned at once, each an *Error with file and line;
// a directory without test files is an error too.
func LoadTests(dir string) ([]TestCase, error) {
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	slices.Sort(files)
	if len(files) == 0 {
		return nil, &Error{File: dir, Message: "no *.yaml test files"}
	}
	var (
		cases []TestCase
		errs  []error
		seen  = map[string]string{}
	)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cs, err := ParseTests(f, data)
		if err != nil {
			errs = append(errs, err)
		}
		for _, c := range cs {
			if prev, dup := seen[c.Name]; dup {
				errs = append(errs, &Error{File: f, Line: c.Line, Key: "name", Message: fmt.Sprintf("duplicate test name %q (first in %s)", c.Name, prev)})
				continue
			}
			seen[c.Name] = fmt.Sprintf("%s:%d", c.File, c.Line)
			cases = append(cases, c)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cases, nil
}

// ParseTests decodes one file of test cases; name is used in errors and
// TestCase.File. It returns the cases it could read along with every
// problem found (as *Error values joined), so LoadTests can report them all.
func ParseTests(name string, data []byte) ([]TestCase, error) {
	d := &decoder{file: name}
	root := d.document(data)
	if root == nil {
		return nil, d.err()
	}
	if root.Kind != yaml.SequenceNode {
		d.fail(root, "", "a test file is a list of test cases, each with name, report and expect")
		return nil, d.err()
	}
	var cases []TestCase
	names := map[string]int{}
	for i, item := range root.Content {
		key := index("", i)
		if item = d.node(item, key); item == nil {
			continue
		}
		c, ok := d.testCase(item, key)
		if !ok {
			continue
		}
		c.File = name
		if line, dup := names[c.Name]; dup {
			d.fail(item, key+".name", "duplicate test name %q (first on line %d)", c.Name, line)
			continue
		}
		names[c.Name] = c.Line
		cases = append(cases, c)
	}
	return cases, d.err()
}

func (d *decoder) testCase(n *yaml.Node, key string) (TestCase, bool) {
	c := TestCase{Line: n.Line}
	var hasReport, hasExpect bool
	errsBefore := len(d.errs)
	ok := d.mapping(n, key, "a test case", []keySpec{
		{"name", func(v *yaml.Node, key string) {
			if s, ok := d.str(v, key); ok {
				c.Name = strings.TrimSpace(s)
			}
		}},
		{"report", func(v *yaml.Node, key string) {
			hasReport = true
			d.report(v, key, &c.Report)
		}},
		{"expect", func(v *yaml.Node, key string) {
			hasExpect = true
			d.expect(v, key, &c.Expect)
		}},
	})
	if !ok {
		return c, false
	}
	if c.Name == "" {
		d.fail(n, key, "name is required")
	}
	if !hasReport {
		d.fail(n, key, "report is required (write report: {} for an empty report)")
	}
	if !hasExpect {
		d.fail(n, key, "expect is required")
	}
	return c, len(d.errs) == errsBefore
}

func (d *decoder) report(n *yaml.Node, key string, r *bugreport.Report) {
	text := func(dst *string) func(*yaml.Node, string) {
		return func(v *yaml.Node, key string) {
			if s, ok := d.str(v, key); ok {
				*dst = s
			}
		}
	}
	d.mapping(n, key, "a report", []keySpec{
		{"id", func(v *yaml.Node, key string) {
			s, ok := d.str(v, key)
			if !ok {
				return
			}
			u, err := uuid.Parse(s)
			if err != nil {
				d.fail(v, key, "%q is not a uuid", s)
				return
			}
			r.ID = bugreport.UUID(u)
		}},
		{"project", text(&r.Project)},
		{"title", text(&r.Title)},
		{"description", text(&r.Description)},
		{"product_area", text(&r.ProductArea)},
		{"severity", text(&r.Severity)},
		{"url", text(&r.URL)},
		{"path", text(&r.Path)},
		{"host", text(&r.Host)},
		{"browser", text(&r.Browser)},
		{"browser_version", text(&r.BrowserVersion)},
		{"os", text(&r.OS)},
		{"os_version", text(&r.OSVersion)},
		{"device", text(&r.Device)},
		{"user_agent", text(&r.UserAgent)},
		{"session_id", text(&r.SessionID)},
		{"spam", func(v *yaml.Node, key string) {
			if b, ok := d.boolean(v, key); ok {
				r.Spam = b
			}
		}},
		{"reporter", func(v *yaml.Node, key string) {
			d.mapping(v, key, "a reporter", []keySpec{
				{"distinct_id", text(&r.Reporter.DistinctID)},
				{"email", text(&r.Reporter.Email)},
				{"name", text(&r.Reporter.Name)},
			})
		}},
		{"usage", func(v *yaml.Node, key string) {
			if isNull(v) {
				return
			}
			r.Usage = &bugreport.Usage{}
			d.usage(v, key, r.Usage)
		}},
		{"properties", func(v *yaml.Node, key string) {
			if v.Kind != yaml.MappingNode {
				d.fail(v, key, "must be a mapping of property: value")
				return
			}
			var m map[string]any
			if err := v.Decode(&m); err != nil {
				d.fail(v, key, "%v", err)
				return
			}
			r.Properties = jsonLike(m).(map[string]any)
		}},
	})
	// Ingest derives path and host from the URL; doing the same here keeps
	// test reports short and like the real thing.
	if r.URL != "" && (r.Path == "" || r.Host == "") {
		if u, err := url.Parse(r.URL); err == nil {
			if r.Path == "" {
				r.Path = u.Path
			}
			if r.Host == "" {
				r.Host = u.Host
			}
		}
	}
}

func (d *decoder) usage(n *yaml.Node, key string, u *bugreport.Usage) {
	count := func(set func(uint64)) func(*yaml.Node, string) {
		return func(v *yaml.Node, key string) {
			i, ok := d.integer(v, key)
			if !ok {
				return
			}
			if i < 0 {
				d.fail(v, key, "must not be negative")
				return
			}
			set(uint64(i))
		}
	}
	d.mapping(n, key, "usage", []keySpec{
		{"events_30d", count(func(i uint64) { u.Events30d = i })},
		{"active_days_30d", count(func(i uint64) { u.ActiveDays30d = i })},
		{"sessions_30d", count(func(i uint64) { u.Sessions30d = i })},
		{"exceptions_30m", count(func(i uint64) {
			// Only the count matters to routing; cap it so a typo cannot
			// allocate gigabytes.
			u.RecentExceptions = make([]bugreport.Exception, min(i, 10000))
		})},
		{"person", func(v *yaml.Node, key string) {
			if v.Kind != yaml.MappingNode {
				d.fail(v, key, "must be a mapping of property: value")
				return
			}
			u.Person = map[string]string{}
			for i := 0; i+1 < len(v.Content); i += 2 {
				k, val := v.Content[i], v.Content[i+1]
				if s, ok := d.str(val, join(key, keyName(k.Value))); ok {
					u.Person[k.Value] = s
				}
			}
		}},
		{"feature_flags", func(v *yaml.Node, key string) {
			u.FeatureFlags, _ = d.strList(v, key, "flag keys")
		}},
	})
}

func (d *decoder) expect(n *yaml.Node, key string, e *Expectation) {
	checks := 0
	text := func(dst *string) func(*yaml.Node, string) {
		return func(v *yaml.Node, key string) {
			if s, ok := d.str(v, key); ok {
				*dst = s
				checks++
			}
		}
	}
	ok := d.mapping(n, key, "expect", []keySpec{
		{"team", text(&e.Team)},
		{"route", func(v *yaml.Node, key string) {
			if s, ok := d.str(v, key); ok {
				e.Route = &s
				checks++
			}
		}},
		{"priority", func(v *yaml.Node, key string) {
			if s, ok := d.str(v, key); ok {
				if _, ok := parsePriority(s); !ok {
					d.fail(v, key, "unknown priority %q (want %s)", s, strings.Join(priorities, ", "))
					return
				}
				e.Priority = s
				checks++
			}
		}},
		{"tags", func(v *yaml.Node, key string) {
			e.Tags, _ = d.strList(v, key, "tags")
			checks++
		}},
		{"tags_exact", func(v *yaml.Node, key string) {
			e.TagsExact, _ = d.strList(v, key, "tags")
			checks++
		}},
		{"cc", func(v *yaml.Node, key string) {
			e.CC, _ = d.strList(v, key, "email addresses")
			checks++
		}},
		{"assignee", text(&e.Assignee)},
	})
	if ok && checks == 0 {
		d.fail(n, key, "expect checks nothing; give at least one of team, route, priority, tags, tags_exact, cc, assignee")
	}
}

// jsonLike converts yaml-decoded values into what encoding/json produces
// (float64 numbers, map[string]any), which is what reports carry.
func jsonLike(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonLike(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonLike(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = jsonLike(e)
		}
		return x
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case uint64:
		return float64(x)
	default:
		return v
	}
}

// RunTests routes every case's report and compares the decision with the
// expectation. Results are in the order of cases.
func (r *Rules) RunTests(cases []TestCase) []TestResult {
	out := make([]TestResult, len(cases))
	for i := range cases {
		c := &cases[i]
		dec := r.Route(&c.Report)
		res := TestResult{Name: c.Name, File: c.File, Line: c.Line, Decision: dec}
		want := c.Expect
		diff := func(what, got, want string) {
			res.Diffs = append(res.Diffs, fmt.Sprintf("%s: got %q, want %q", what, got, want))
		}
		if want.Team != "" && dec.Team != want.Team {
			diff("team", dec.Team, want.Team)
		}
		if want.Route != nil && dec.Route != *want.Route {
			diff("route", dec.Route, *want.Route)
		}
		if want.Priority != "" && dec.Priority != want.Priority {
			diff("priority", dec.Priority, want.Priority)
		}
		if missing := notIn(want.Tags, dec.Tags); len(missing) > 0 {
			res.Diffs = append(res.Diffs, fmt.Sprintf("tags: got %q, missing %q", dec.Tags, missing))
		}
		if want.TagsExact != nil && !slices.Equal(sortedSet(slices.Clone(want.TagsExact)), dec.Tags) {
			res.Diffs = append(res.Diffs, fmt.Sprintf("tags_exact: got %q, want %q", dec.Tags, sortedSet(slices.Clone(want.TagsExact))))
		}
		if missing := notIn(want.CC, dec.CC); len(missing) > 0 {
			res.Diffs = append(res.Diffs, fmt.Sprintf("cc: got %q, missing %q", dec.CC, missing))
		}
		if want.Assignee != "" && dec.Assignee != want.Assignee {
			diff("assignee", dec.Assignee, want.Assignee)
		}
		res.Pass = len(res.Diffs) == 0
		out[i] = res
	}
	return out
}

func notIn(want, have []string) []string {
	var missing []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			missing = append(missing, w)
		}
	}
	return missing
}
