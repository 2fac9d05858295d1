package ruleset

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/routing"
)

const rulesA = `
teams:
  - {name: a, zendesk_group: A}
  - {name: b, zendesk_group: B}
fallback_team: a
routes:
  - {name: to-b, match: ['path = /b'], team: b}
`

func metric(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || (len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == label) {
				if c := m.GetCounter(); c != nil {
					return c.GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func TestReloadKeepsRulesOnErrorAndWatchPicksUpChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(rulesA), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s, err := Load(path, routing.Options{}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	route := func() string { return s.Rules().Route(&bugreport.Report{Path: "/b"}).Team }
	if route() != "b" {
		t.Fatalf("initial rules route /b to %s", route())
	}

	// An invalid file is rejected; the running rules stay.
	if err := os.WriteFile(path, []byte(strings.Replace(rulesA, "team: b", "team: nobody", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	err = s.Reload()
	if err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Fatalf("reload of an invalid file: %v", err)
	}
	if route() != "b" || s.Last().OK || metric(t, reg, "arubug_rules_reloads_total", "error") != 1 || metric(t, reg, "arubug_rules_last_reload_successful", "") != 0 {
		t.Fatalf("after a rejected reload: route %s last %+v", route(), s.Last())
	}

	// The watcher picks up a valid change by itself.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Watch(ctx, 20*time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	if err := os.WriteFile(path, []byte(strings.Replace(rulesA, "team: b", "team: a", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for route() != "a" {
		if time.Now().After(deadline) {
			t.Fatal("the watcher did not reload the changed file")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !s.Last().OK || metric(t, reg, "arubug_rules_last_reload_successful", "") != 1 {
		t.Errorf("after a good reload: %+v", s.Last())
	}
}

func TestLoadRejectsInvalidAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	_ = os.WriteFile(path, []byte("teams: []\n"), 0o600)
	if _, err := Load(path, routing.Options{}, nil, nil); err == nil {
		t.Fatal("invalid rules accepted at start")
	}
}
