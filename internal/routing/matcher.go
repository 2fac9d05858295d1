package routing

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/arubug/arubug/internal/bugreport"
)

// op is a matcher operator.
type op uint8

const (
	opEq op = iota
	opNe
	opRe
	opNotRe
	opIn
	opNotIn
	opGlob
	opGt
	opGe
	opLt
	opLe
)

var opNames = [...]string{
	opEq: "=", opNe: "!=", opRe: "=~", opNotRe: "!~", opIn: "in", opNotIn: "not in",
	opGlob: "~=", opGt: ">", opGe: ">=", opLt: "<", opLe: "<=",
}

const opList = "=, !=, =~, !~, ~=, in, not in, >, >=, <, <="

func (o op) String() string { return opNames[o] }

// negative ops hold when their positive twin does not, which on a list field
// means "no element matches".
func (o op) negative() bool { return o == opNe || o == opNotRe || o == opNotIn }

func (o op) numeric() bool { return o >= opGt }

func (o op) equality() bool { return o == opEq || o == opNe || o == opIn || o == opNotIn }

// symbolOps are tried in order, so two-character operators win over their
// one-character prefixes.
var symbolOps = []struct {
	text string
	op   op
}{
	{"=~", opRe}, {"!~", opNotRe}, {"~=", opGlob}, {"!=", opNe},
	{">=", opGe}, {"<=", opLe}, {"=", opEq}, {">", opGt}, {"<", opLt},
}

// severities are the values the widget sends; a rule comparing severity
// with anything else is a typo that would never match.
var severities = []string{"low", "medium", "high", "critical"}

// operand is one comparison value of a matcher.
type operand struct {
	text  string
	num   float64
	isNum bool
}

// matcher is one compiled "field op value" condition.
type matcher struct {
	field field
	op    op
	want  string // operator and value as written, for explanations
	vals  []operand
	re    *regexp.Regexp // =~, !~ and ~=
}

// matcherEnv is what matcher values are checked against at load time.
type matcherEnv struct {
	areas    map[string]bool // known product area ids; nil when the file lists none
	areaList string          // the ids, for error messages
}

// parseMatcher compiles one matcher string. Errors describe the problem but
// not the location or the text; the caller adds both.
func parseMatcher(text string, env *matcherEnv) (*matcher, error) {
	if !utf8.ValidString(text) {
		return nil, errors.New("matcher is not valid UTF-8")
	}
	s := strings.TrimSpace(text)
	if s == "" {
		return nil, errors.New("empty matcher; want field op value, like severity = high")
	}
	end := strings.IndexAny(s, " \t\r\n=!<>~")
	if end == 0 {
		return nil, errors.New("missing field before the operator")
	}
	if end < 0 {
		return nil, fmt.Errorf("missing operator after %q; want one of %s", s, opList)
	}
	name := s[:end]
	rest := strings.TrimLeft(s[end:], " \t\r\n")
	o, rest, err := parseOp(name, rest)
	if err != nil {
		return nil, err
	}
	f, ok := lookupField(name)
	if !ok {
		return nil, unknownField(name)
	}
	m := &matcher{field: f, op: o}
	raw := strings.TrimSpace(rest)
	m.want = o.String() + " " + raw
	var vals []string
	if o == opIn || o == opNotIn {
		vals, err = parseList(raw, o)
	} else {
		var v string
		v, err = parseScalar(raw)
		vals = []string{v}
	}
	if err != nil {
		return nil, err
	}
	if err := m.check(vals, env); err != nil {
		return nil, err
	}
	return m, nil
}

func unknownField(name string) error {
	hint := ""
	switch name {
	case "usage.person":
		hint = " (name a person property: usage.person.plan)"
	case "properties":
		hint = " (name a property path: properties.app.version)"
	}
	return fmt.Errorf("unknown field %q%s; valid fields: %s", name, hint, validFields())
}

// parseOp reads the operator at the start of rest and returns what follows.
func parseOp(name, rest string) (op, string, error) {
	if after, ok := cutWord(rest, "not"); ok {
		if after, ok := cutWord(after, "in"); ok {
			return opNotIn, after, nil
		}
		return 0, "", fmt.Errorf("unknown operator after %q; did you mean not in?", name)
	}
	if after, ok := cutWord(rest, "in"); ok {
		return opIn, after, nil
	}
	for _, so := range symbolOps {
		after, ok := strings.CutPrefix(rest, so.text)
		if !ok {
			continue
		}
		// "==", "=>" and "=<" are likely slips for other operators;
		// silently treating the rest as a value would never match.
		if len(so.text) == 1 && after != "" && strings.IndexByte("=<>!", after[0]) >= 0 {
			return 0, "", fmt.Errorf("unknown operator %q; want one of %s", so.text+after[:1], opList)
		}
		return so.op, after, nil
	}
	if rest == "" {
		return 0, "", fmt.Errorf("missing operator after %q; want one of %s", name, opList)
	}
	bad := rest
	if i := strings.IndexAny(bad, " \t"); i > 0 {
		bad = bad[:i]
	}
	return 0, "", fmt.Errorf("unknown operator %q; want one of %s", bad, opList)
}

// cutWord reports whether s starts with the word w followed by whitespace,
// "[" or the end, and returns the text after the word.
func cutWord(s, w string) (string, bool) {
	after, ok := strings.CutPrefix(s, w)
	if !ok || (after != "" && !strings.ContainsAny(after[:1], " \t\r\n[")) {
		return "", false
	}
	return strings.TrimLeft(after, " \t\r\n"), true
}

// parseScalar reads a single value: the rest of the text, or a double-quoted
// string when it starts with a quote.
func parseScalar(s string) (string, error) {
	if s == "" {
		return "", errors.New(`missing value; write "" to match an empty value`)
	}
	if s[0] != '"' {
		return s, nil
	}
	v, after, err := unquote(s)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(after) != "" {
		return "", fmt.Errorf("unexpected text %q after the quoted value", strings.TrimSpace(after))
	}
	return v, nil
}

// unquote reads a double-quoted string at the start of s. Only \" and \\
// are escapes; any other backslash stays as written, so regular expressions
// like "\d+" need no doubling.
func unquote(s string) (v, after string, err error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], nil
		case '\\':
			if i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
				i++
				b.WriteByte(s[i])
				continue
			}
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return "", "", errors.New("unterminated quoted value")
}

// parseList reads "[a, b, "c d"]".
func parseList(s string, o op) ([]string, error) {
	if !strings.HasPrefix(s, "[") {
		return nil, fmt.Errorf("%s needs a list like [a, b]", o)
	}
	var items []string
	i := 1
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) {
			return nil, errors.New("unterminated list; want [a, b]")
		}
		if s[i] == ']' && len(items) == 0 {
			return nil, fmt.Errorf("empty list; %s needs at least one value", o)
		}
		var item string
		if s[i] == '"' {
			v, after, err := unquote(s[i:])
			if err != nil {
				return nil, err
			}
			item = v
			i = len(s) - len(after)
			for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
				i++
			}
		} else {
			j := i
			for j < len(s) && s[j] != ',' && s[j] != ']' {
				j++
			}
			item = strings.TrimSpace(s[i:j])
			if item == "" {
				return nil, errors.New(`empty item in list; write "" for an empty value`)
			}
			i = j
		}
		items = append(items, item)
		if i >= len(s) {
			return nil, errors.New("unterminated list; want [a, b]")
		}
		switch s[i] {
		case ',':
			i++
		case ']':
			if rest := strings.TrimSpace(s[i+1:]); rest != "" {
				return nil, fmt.Errorf("unexpected text %q after the list", rest)
			}
			return items, nil
		default:
			return nil, fmt.Errorf("unexpected text %q in list; separate values with commas", s[i:])
		}
	}
}

// check validates the values against the field and operator and compiles
// them.
func (m *matcher) check(vals []string, env *matcherEnv) error {
	f, o := m.field, m.op
	switch f.kind {
	case kindBool:
		if o != opEq && o != opNe {
			return fmt.Errorf("%s takes = or != with true or false", f.name)
		}
		if vals[0] != "true" && vals[0] != "false" {
			return fmt.Errorf("%s is true or false, not %q", f.name, vals[0])
		}
	case kindList:
		if o.numeric() {
			return fmt.Errorf("%s is a list; %s needs a number", f.name, o)
		}
	}
	switch {
	case o == opRe || o == opNotRe:
		re, err := compileRegexp(vals[0])
		if err != nil {
			return err
		}
		m.re = re
	case o == opGlob:
		// A glob never fails to compile: every character but * is literal.
		m.re = regexp.MustCompile(globRegexp(vals[0]))
	}
	for _, v := range vals {
		n, isNum := parseNumber(v)
		if o.numeric() && !isNum {
			return fmt.Errorf("%s needs a number, not %q", o, v)
		}
		if o.equality() {
			if f.kind == kindNumber && !isNum {
				return fmt.Errorf("%s is a number, not %q", f.name, v)
			}
			if f.name == "severity" && v != "" && !slices.Contains(severities, v) {
				return fmt.Errorf(`unknown severity %q (want low, medium, high, critical or "")`, v)
			}
			if f.name == "product_area" && env != nil && env.areas != nil && v != "" && !env.areas[v] {
				return fmt.Errorf("unknown product area %q (product_areas: %s)", v, env.areaList)
			}
		}
		m.vals = append(m.vals, operand{text: v, num: n, isNum: isNum})
	}
	return nil
}

// compileRegexp anchors an RE2 expression so it must match the whole value,
// as Alertmanager does; an unanchored "bill" matching "rebilled" would
// surprise.
func compileRegexp(expr string) (*regexp.Regexp, error) {
	if _, err := syntax.Parse(expr, syntax.Perl); err != nil {
		var se *syntax.Error
		if errors.As(err, &se) {
			return nil, fmt.Errorf("bad regex %q: %s: %q", expr, se.Code, se.Expr)
		}
		return nil, fmt.Errorf("bad regex %q: %v", expr, err)
	}
	re, err := regexp.Compile("^(?:" + expr + ")$")
	if err != nil {
		return nil, fmt.Errorf("bad regex %q: %v", expr, err)
	}
	return re, nil
}

// globRegexp translates a URL or path glob: * matches within one path
// segment, ** across segments, and a /** at the end or /**/ in the middle
// also matches zero segments, so /billing/** covers /billing itself.
func globRegexp(g string) string {
	var b strings.Builder
	b.WriteString("^")
	lit := 0
	flush := func(i int) {
		b.WriteString(regexp.QuoteMeta(g[lit:i]))
	}
	for i := 0; i < len(g); {
		var repl string
		var n int
		switch {
		case strings.HasPrefix(g[i:], "/**/"):
			repl, n = `(?:/.*)?/`, 4
		case g[i:] == "/**":
			repl, n = `(?:/.*)?`, 3
		case strings.HasPrefix(g[i:], "**"):
			repl, n = `.*`, 2
		case g[i] == '*':
			repl, n = `[^/]*`, 1
		default:
			i++
			continue
		}
		flush(i)
		b.WriteString(repl)
		i += n
		lit = i
	}
	flush(len(g))
	b.WriteString("$")
	return b.String()
}

// match reports whether m holds for rep. When it does not, got describes
// the report's value (`severity = "low"`, or why there is none) and want the
// matcher (`in [high, critical]`; "" when the value is missing).
func (m *matcher) match(rep *bugreport.Report) (ok bool, got, want string) {
	v := m.field.get(rep)
	if v.missing != "" {
		return false, v.missing, ""
	}
	if m.op.numeric() {
		n, ok := v.number()
		if !ok {
			return false, m.field.name + " = " + v.show() + " is not a number", m.want
		}
		if m.compare(n) {
			return true, "", ""
		}
		return false, m.field.name + " = " + v.show(), m.want
	}
	hit := false
	if v.isList {
		for _, e := range v.list {
			if m.hit(textValue(e)) {
				hit = true
				break
			}
		}
	} else {
		hit = m.hit(v)
	}
	if hit != m.op.negative() {
		return true, "", ""
	}
	return false, m.field.name + " = " + v.show(), m.want
}

func (m *matcher) compare(n float64) bool {
	w := m.vals[0].num
	switch m.op {
	case opGt:
		return n > w
	case opGe:
		return n >= w
	case opLt:
		return n < w
	default:
		return n <= w
	}
}

// hit reports whether the positive form of the operator holds for one
// (non-list) value.
func (m *matcher) hit(v value) bool {
	if m.re != nil {
		return m.re.MatchString(v.text)
	}
	for _, w := range m.vals {
		if v.native && w.isNum {
			if v.num == w.num {
				return true
			}
		} else if v.text == w.text {
			return true
		}
	}
	return false
}
