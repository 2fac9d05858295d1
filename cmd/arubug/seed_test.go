package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/arubug/arubug/internal/clickhouse/localch/localchtest"
)

func TestSeedCommand(t *testing.T) {
	dsn := localchtest.DSN(t)
	env := []string{"ARUBUG_CLICKHOUSE_DSN=" + dsn, "ARUBUG_PROJECT_TOKENS=phc_seed", "ARUBUG_RULES_FILE=../../routing-rules/rules.yaml", "ARUBUG_DATA_DIR=" + t.TempDir()}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"seed", "--reports", "0"}, 1, "--reports must be a positive number"},
		{[]string{"seed", "--project", "nope"}, 1, `--project "nope" is not a configured project`},
		{[]string{"seed", "--help"}, 0, "Usage: arubug seed"},
		{[]string{"seed", "--reports", "12", "--days", "3", "--seed", "5"}, 0, "seeded project phc_seed with"},
	} {
		code, out := runBinary(t, env, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("arubug %s: exit %d, want %d with %q:\n%s", strings.Join(tc.args, " "), code, tc.code, tc.want, out)
		}
	}
	db := openDB(t, dsn)
	rs, err := db.ReportsSince(context.Background(), time.Now().Add(-4*24*time.Hour), 100)
	if err != nil || len(rs) != 12 {
		t.Fatalf("%d reports stored (%v), want 12", len(rs), err)
	}
}
