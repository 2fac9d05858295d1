package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/clickhouse"
	"github.com/arubug/arubug/internal/clickhouse/localch/localchtest"
)

const shippedRules = "../../routing-rules/rules.yaml"

func TestRulesCheckAndTest(t *testing.T) {
	code, out := runBinary(t, nil, "rules", "check", "--rules", shippedRules)
	if code != 0 || !strings.Contains(out, "OK") || !strings.Contains(out, "billing") {
		t.Errorf("check: %d\n%s", code, out)
	}
	code, out = runBinary(t, nil, "rules", "test", "--rules", shippedRules)
	if code != 0 || !strings.Contains(out, " 0 failed") {
		t.Errorf("test: %d\n%s", code, out)
	}

	// A wrong expectation fails the run with exit 1 and says why.
	dir := t.TempDir()
	bad := "- name: billing page goes to the wrong team\n  report: {path: /billing/invoices}\n  expect: {team: surveys}\n"
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out = runBinary(t, nil, "rules", "test", "--rules", shippedRules, "--tests", dir)
	if code != 1 || !strings.Contains(out, "FAIL") || !strings.Contains(out, `want "surveys"`) {
		t.Errorf("failing case: %d\n%s", code, out)
	}

	// An invalid rules file is refused with file and line.
	broken := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(broken, []byte("teams:\n  - name: a\n    zendesk_group: A\n    colour: red\nfallback_team: a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out = runBinary(t, nil, "rules", "check", "--rules", broken)
	if code != 1 || !strings.Contains(out, "rules.yaml:4") {
		t.Errorf("broken rules: %d\n%s", code, out)
	}
}

func TestRulesReplayCountsMoves(t *testing.T) {
	dsn := localchtest.DSN(t)
	ctx := context.Background()
	db, err := clickhouse.Open(ctx, clickhouse.Options{DSN: dsn, CreateDatabase: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	save := func(id byte, path, team, source string) {
		r := &bugreport.Report{ID: bugreport.UUID{id}, Project: "p", ReportedAt: now, ReceivedAt: now, Path: path, Description: "x",
			Route: bugreport.RouteDecision{Team: team}}
		if err := db.SaveReport(ctx, r, source); err != nil {
			t.Fatal(err)
		}
	}
	save(1, "/billing/invoices", "platform", "rules")  // the shipped rules send it to billing
	save(2, "/billing/plans", "platform", "rules")     // likewise
	save(3, "/replay/abc", "session-replay", "rules")  // stays
	save(4, "/billing/invoices", "platform", "manual") // a person decided: left out
	code, out := runBinary(t, nil, "rules", "replay", "--rules", shippedRules, "--since", "1d", "--clickhouse-dsn", dsn)
	if code != 0 {
		t.Fatalf("replay: %d\n%s", code, out)
	}
	for _, want := range []string{"4 reports since", "1 re-routed by hand", "1 keep their team", "platform  billing  2", "routes that decided no report"} {
		if !strings.Contains(out, want) {
			t.Errorf("replay output lacks %q:\n%s", want, out)
		}
	}
}
