package config

import (
	"errors"
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"
)

// loadFile applies a YAML file on top of c. Unknown keys are errors naming
// the file and line, so a typo never silently falls back to a default.
func (c *Config) loadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: the file must be a mapping of setting: value", path, root.Line)
	}
	byKey := map[string]setting{}
	for _, s := range c.settings() {
		byKey[s.key] = s
	}
	var errs []error
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value == "projects" {
			if err := c.loadProjects(path, v); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		s, ok := byKey[k.Value]
		if !ok || k.Value == "config" {
			errs = append(errs, fmt.Errorf("%s:%d: unknown setting %q", path, k.Line, k.Value))
			continue
		}
		val := v.Value
		if v.Kind == yaml.SequenceNode {
			if _, isList := s.value.(listValue); !isList {
				errs = append(errs, fmt.Errorf("%s:%d: %s takes a single value, not a list", path, v.Line, k.Value))
				continue
			}
			val = ""
			for j, item := range v.Content {
				if j > 0 {
					val += ","
				}
				val += item.Value
			}
		} else if v.Kind != yaml.ScalarNode {
			errs = append(errs, fmt.Errorf("%s:%d: %s takes a value, not a mapping", path, v.Line, k.Value))
			continue
		}
		if err := s.value.Set(val); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %s: %w", path, v.Line, k.Value, err))
		}
	}
	return errors.Join(errs...)
}

func (c *Config) loadProjects(path string, n *yaml.Node) error {
	var list []ProjectConfig
	// Decode by hand: a misspelt key inside a project is an error too.
	if n.Kind != yaml.SequenceNode {
		return fmt.Errorf("%s:%d: projects must be a list of {name, token, replay_host}", path, n.Line)
	}
	var errs []error
	for _, item := range n.Content {
		if item.Kind != yaml.MappingNode {
			errs = append(errs, fmt.Errorf("%s:%d: each project must be a mapping with name, token and replay_host", path, item.Line))
			continue
		}
		var p ProjectConfig
		for i := 0; i+1 < len(item.Content); i += 2 {
			k, v := item.Content[i], item.Content[i+1]
			switch k.Value {
			case "name":
				p.Name = v.Value
			case "token":
				p.Token = v.Value
			case "replay_host":
				p.ReplayHost = v.Value
			default:
				errs = append(errs, fmt.Errorf("%s:%d: unknown project key %q (want name, token, replay_host)", path, k.Line, k.Value))
			}
		}
		list = append(list, p)
	}
	c.Projects = list
	return errors.Join(errs...)
}
