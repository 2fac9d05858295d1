package routing

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/arubug/arubug/internal/bugreport"
)

// kind is what a field holds, which decides the operators it accepts.
type kind uint8

const (
	kindText   kind = iota // a string; numeric comparisons work on numeric strings
	kindNumber             // a count; every comparison is numeric
	kindBool               // spam: only = and != with true or false
	kindList               // usage.feature_flags: = =~ in ~= hold if any element does
	kindAny                // properties.<path>: whatever the event carried
)

// value is one field's value in one report.
type value struct {
	// missing says why there is no value ("usage unavailable", "… not
	// set"); "" when there is one. A matcher on a missing field never holds.
	missing string
	text    string
	// num holds the value when native: a real number (not a numeric
	// string), so = and in compare numerically and a property 1 equals a
	// matcher's 1.0. Numeric strings are parsed only by > >= < <=, which
	// keeps the common text comparisons free of float parsing.
	num    float64
	native bool
	list   []string
	isList bool
	isBool bool
}

// field resolves one matcher field on a report.
type field struct {
	name string
	kind kind
	get  func(*bugreport.Report) value
}

// fieldNames lists the valid fields, in the order error messages show them.
var fieldNames = []string{
	"id", "project", "title", "description", "product_area", "severity",
	"url", "path", "host", "browser", "browser_version", "os", "os_version",
	"device", "session_id", "spam",
	"reporter.distinct_id", "reporter.email", "reporter.name", "reporter.email_domain",
	"usage.events_30d", "usage.active_days_30d", "usage.sessions_30d",
	"usage.person.<key>", "usage.feature_flags", "usage.exceptions_30m",
	"properties.<path>",
}

// textFields are the report's plain string fields; they always have a value
// ("" when the report did not say).
var textFields = map[string]func(*bugreport.Report) string{
	"id": func(r *bugreport.Report) string {
		if r.ID.IsZero() {
			return ""
		}
		return r.ID.String()
	},
	"project":              func(r *bugreport.Report) string { return r.Project },
	"title":                func(r *bugreport.Report) string { return r.Title },
	"description":          func(r *bugreport.Report) string { return r.Description },
	"product_area":         func(r *bugreport.Report) string { return r.ProductArea },
	"severity":             func(r *bugreport.Report) string { return r.Severity },
	"url":                  func(r *bugreport.Report) string { return r.URL },
	"path":                 func(r *bugreport.Report) string { return r.Path },
	"host":                 func(r *bugreport.Report) string { return r.Host },
	"browser":              func(r *bugreport.Report) string { return r.Browser },
	"browser_version":      func(r *bugreport.Report) string { return r.BrowserVersion },
	"os":                   func(r *bugreport.Report) string { return r.OS },
	"os_version":           func(r *bugreport.Report) string { return r.OSVersion },
	"device":               func(r *bugreport.Report) string { return r.Device },
	"session_id":           func(r *bugreport.Report) string { return r.SessionID },
	"reporter.distinct_id": func(r *bugreport.Report) string { return r.Reporter.DistinctID },
	"reporter.email":       func(r *bugreport.Report) string { return r.Reporter.Email },
	"reporter.name":        func(r *bugreport.Report) string { return r.Reporter.Name },
	"reporter.email_domain": func(r *bugreport.Report) string {
		// Domains are case-insensitive; lowercasing lets rules use plain =.
		e := r.Reporter.Email
		i := strings.LastIndexByte(e, '@')
		if i < 0 {
			return ""
		}
		return strings.ToLower(e[i+1:])
	},
}

var usageCounts = map[string]func(*bugreport.Usage) uint64{
	"usage.events_30d":      func(u *bugreport.Usage) uint64 { return u.Events30d },
	"usage.active_days_30d": func(u *bugreport.Usage) uint64 { return u.ActiveDays30d },
	"usage.sessions_30d":    func(u *bugreport.Usage) uint64 { return u.Sessions30d },
	"usage.exceptions_30m":  func(u *bugreport.Usage) uint64 { return uint64(len(u.RecentExceptions)) },
}

const usageUnavailable = "usage unavailable"

// lookupField resolves a field name; ok is false for unknown names.
func lookupField(name string) (field, bool) {
	if get, ok := textFields[name]; ok {
		return field{name: name, kind: kindText, get: func(r *bugreport.Report) value {
			return textValue(get(r))
		}}, true
	}
	if get, ok := usageCounts[name]; ok {
		return field{name: name, kind: kindNumber, get: func(r *bugreport.Report) value {
			if r.Usage == nil {
				return value{missing: usageUnavailable}
			}
			n := get(r.Usage)
			return value{text: strconv.FormatUint(n, 10), num: float64(n), native: true}
		}}, true
	}
	switch name {
	case "spam":
		return field{name: name, kind: kindBool, get: func(r *bugreport.Report) value {
			return value{text: strconv.FormatBool(r.Spam), isBool: true}
		}}, true
	case "usage.feature_flags":
		return field{name: name, kind: kindList, get: func(r *bugreport.Report) value {
			if r.Usage == nil {
				return value{missing: usageUnavailable}
			}
			return value{list: r.Usage.FeatureFlags, isList: true}
		}}, true
	}
	if key, ok := strings.CutPrefix(name, "usage.person."); ok && key != "" {
		notSet := name + " not set"
		return field{name: name, kind: kindText, get: func(r *bugreport.Report) value {
			if r.Usage == nil {
				return value{missing: usageUnavailable}
			}
			v, ok := r.Usage.Person[key]
			if !ok {
				return value{missing: notSet}
			}
			return textValue(v)
		}}, true
	}
	if path, ok := strings.CutPrefix(name, "properties."); ok && path != "" {
		notSet := name + " not set"
		return field{name: name, kind: kindAny, get: func(r *bugreport.Report) value {
			v, ok := lookupPath(r.Properties, path)
			if !ok {
				return value{missing: notSet}
			}
			return anyValue(name, v)
		}}, true
	}
	return field{}, false
}

func textValue(s string) value { return value{text: s} }

// number returns the value as a number for > >= < <=: a real number, or a
// string that parses as one.
func (v value) number() (float64, bool) {
	if v.native {
		return v.num, true
	}
	if v.isList || v.isBool {
		return 0, false
	}
	return parseNumber(v.text)
}

// parseNumber parses a decimal number. NaN and infinities are not numbers
// here: they would make every comparison false in surprising ways.
func parseNumber(s string) (float64, bool) {
	if s == "" {
		return 0, false
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		return 0, false
	}
	return n, true
}

func numberValue(n float64) value {
	return value{text: strconv.FormatFloat(n, 'f', -1, 64), num: n, native: true}
}

// anyValue converts a decoded JSON property (as encoding/json, yaml or a
// hand-built map would produce it) into a value.
func anyValue(name string, v any) value {
	switch x := v.(type) {
	case nil:
		return value{missing: name + " is null"}
	case string:
		return textValue(x)
	case bool:
		return value{text: strconv.FormatBool(x), isBool: true}
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return value{text: strconv.FormatFloat(x, 'f', -1, 64)}
		}
		return numberValue(x)
	case float32:
		return anyValue(name, float64(x))
	case int:
		return numberValue(float64(x))
	case int64:
		return numberValue(float64(x))
	case int32:
		return numberValue(float64(x))
	case uint64:
		return numberValue(float64(x))
	case uint:
		return numberValue(float64(x))
	case json.Number:
		if n, ok := parseNumber(string(x)); ok {
			return value{text: string(x), num: n, native: true}
		}
		return textValue(string(x))
	case []any:
		list := make([]string, 0, len(x))
		for _, e := range x {
			// Only scalar elements can equal a matcher value; nested
			// objects and lists are skipped rather than stringified.
			if ev := anyValue(name, e); ev.missing == "" && !ev.isList {
				list = append(list, ev.text)
			}
		}
		return value{list: list, isList: true}
	case []string:
		return value{list: x, isList: true}
	case map[string]any, map[string]string:
		return value{missing: name + " is an object, not a value"}
	default:
		return value{missing: name + " has an unsupported type"}
	}
}

// lookupPath follows a dot path into properties. Keys may themselves
// contain dots ("app.version" as one flat key), so at each level the
// longest key that exists wins; a list is indexed by a decimal segment.
func lookupPath(v any, path string) (any, bool) {
	switch m := v.(type) {
	case map[string]any:
		if x, ok := m[path]; ok {
			return x, true
		}
		for i := strings.LastIndexByte(path, '.'); i > 0; i = strings.LastIndexByte(path[:i], '.') {
			if x, ok := m[path[:i]]; ok {
				if r, ok := lookupPath(x, path[i+1:]); ok {
					return r, true
				}
			}
		}
	case map[string]string:
		if x, ok := m[path]; ok {
			return x, true
		}
	case []any:
		head, rest, more := strings.Cut(path, ".")
		i, err := strconv.Atoi(head)
		if err != nil || i < 0 || i >= len(m) {
			return nil, false
		}
		if !more {
			return m[i], true
		}
		return lookupPath(m[i], rest)
	}
	return nil, false
}

// show renders a value for an explanation: strings quoted, numbers and
// booleans bare, lists as ["a", "b"].
func (v value) show() string {
	switch {
	case v.isList:
		var b strings.Builder
		b.WriteByte('[')
		for i, e := range v.list {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Quote(e))
		}
		b.WriteByte(']')
		return b.String()
	case v.native, v.isBool:
		return v.text
	default:
		return strconv.Quote(v.text)
	}
}

// validFields is the list error messages show for an unknown field.
func validFields() string { return strings.Join(fieldNames, ", ") }
