package routing

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decoder walks yaml.Nodes by hand rather than unmarshalling into structs,
// so that every unknown key, wrong type and bad value is reported with its
// own line, and all of them at once.
type decoder struct {
	file string
	errs []*Error
}

func (d *decoder) fail(n *yaml.Node, key, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Key: key, Message: fmt.Sprintf(format, args...)})
}

// err joins the problems found, in line order.
func (d *decoder) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(d.errs, func(a, b *Error) int { return a.Line - b.Line })
	errs := make([]error, len(d.errs))
	for i, e := range d.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document parses data as exactly one YAML document and returns its root, or
// nil (with the problem recorded) when there is none to walk.
func (d *decoder) document(data []byte) (root *yaml.Node) {
	defer func() {
		// yaml.v3 has panicked on some malformed inputs in the past; an
		// operator's typo must produce an error, not crash the command.
		if p := recover(); p != nil {
			d.fail(nil, "", "yaml: cannot parse: %v", p)
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.fail(nil, "", "the file is empty")
			return nil
		}
		d.yamlError(err)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			d.yamlError(err)
		} else {
			d.fail(&extra, "", "only one YAML document is allowed; remove the extra ---")
		}
		return nil
	}
	if len(doc.Content) == 0 {
		d.fail(nil, "", "the file is empty")
		return nil
	}
	return doc.Content[0]
}

// yamlError turns "yaml: line 3: msg" into a located *Error.
func (d *decoder) yamlError(err error) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		d.errs = append(d.errs, &Error{File: d.file, Line: line, Message: "yaml: " + m[2]})
		return
	}
	d.errs = append(d.errs, &Error{File: d.file, Message: msg})
}

// node rejects aliases: following them while walking would let a small
// file expand into an enormous tree, and rules are short enough to repeat.
func (d *decoder) node(n *yaml.Node, key string) *yaml.Node {
	if n.Kind == yaml.AliasNode {
		d.fail(n, key, "anchors and aliases (*%s) are not supported; write the value out", n.Value)
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// keySpec is one key a mapping accepts.
type keySpec struct {
	name string
	set  func(v *yaml.Node, key string)
}

// mapping walks a mapping node: known keys go to their set function;
// unknown, duplicate and non-string keys are errors naming the valid keys.
func (d *decoder) mapping(n *yaml.Node, key, what string, specs []keySpec) bool {
	if n = d.node(n, key); n == nil {
		return false
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, key, "%s must be a mapping with keys %s", what, specNames(specs))
		return false
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.fail(k, key, "keys must be plain names")
			continue
		}
		sub := join(key, keyName(k.Value))
		if prev, dup := seen[k.Value]; dup {
			d.fail(k, sub, "duplicate key (first set on line %d)", prev)
			continue
		}
		seen[k.Value] = k.Line
		j := slices.IndexFunc(specs, func(s keySpec) bool { return s.name == k.Value })
		if j < 0 {
			d.fail(k, sub, "unknown key; valid keys for %s: %s", what, specNames(specs))
			continue
		}
		if v = d.node(v, sub); v != nil {
			specs[j].set(v, sub)
		}
	}
	return true
}

func specNames(specs []keySpec) string {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_$/-]+$`)

// keyName quotes a key that is not a plain name, so a key holding spaces,
// dots or newlines cannot garble the one-line-per-problem error output.
func keyName(k string) string {
	if plainKey.MatchString(k) {
		return k
	}
	return strconv.Quote(k)
}

func join(key, name string) string {
	if key == "" {
		return name
	}
	return key + "." + name
}

func index(key string, i int) string { return key + "[" + strconv.Itoa(i) + "]" }

// str reads a scalar as text; null reads as "".
func (d *decoder) str(n *yaml.Node, key string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, key, "must be a single value, not a %s", kindName(n))
		return "", false
	}
	if isNull(n) {
		return "", true
	}
	return n.Value, true
}

func (d *decoder) boolean(n *yaml.Node, key string) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		d.fail(n, key, "must be true or false, not %s", describe(n))
		return false, false
	}
	b, err := strconv.ParseBool(strings.ToLower(n.Value))
	if err != nil {
		d.fail(n, key, "must be true or false, not %q", n.Value)
		return false, false
	}
	return b, true
}

func (d *decoder) integer(n *yaml.Node, key string) (int, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		d.fail(n, key, "must be a whole number, not %s", describe(n))
		return 0, false
	}
	i, err := strconv.Atoi(n.Value)
	if err != nil {
		d.fail(n, key, "must be a whole number, not %q", n.Value)
		return 0, false
	}
	return i, true
}

// seq returns a sequence's items with aliases rejected; null is an empty
// list.
func (d *decoder) seq(n *yaml.Node, key, what string) ([]*yaml.Node, bool) {
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n, key, "must be a list of %s, not %s", what, describe(n))
		return nil, false
	}
	out := make([]*yaml.Node, 0, len(n.Content))
	for i, item := range n.Content {
		if item = d.node(item, index(key, i)); item != nil {
			out = append(out, item)
		}
	}
	return out, true
}

// strList reads a list of scalars; each item's node is returned too, for
// error lines.
func (d *decoder) strList(n *yaml.Node, key, what string) ([]string, []*yaml.Node) {
	items, ok := d.seq(n, key, what)
	if !ok {
		return nil, nil
	}
	var vals []string
	var nodes []*yaml.Node
	for i, item := range items {
		s, ok := d.str(item, index(key, i))
		if !ok {
			continue
		}
		vals = append(vals, s)
		nodes = append(nodes, item)
	}
	// An explicit empty list stays non-nil, so "tags_exact: []" can assert
	// that there are no tags.
	if vals == nil {
		vals = []string{}
	}
	return vals, nodes
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	default:
		return "value"
	}
}

func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return strconv.Quote(n.Value)
	}
	return "a " + kindName(n)
}
