package main

import (
	"os/exec"
	"strings"
	"testing"
)

func runBinary(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name     string
		env      []string
		args     []string
		code     int
		contains []string
	}{
		{"no command", nil, nil, 2, []string{"Usage: arubug <command>", "serve", "dev", "migrate"}},
		{"unknown command", nil, []string{"frobnicate"}, 2, []string{`unknown command "frobnicate"`}},
		{"version", nil, []string{"version"}, 0, []string{"arubug "}},
		{"serve help documents every setting", nil, []string{"serve", "--help"}, 0, []string{"ARUBUG_ADDR", "ARUBUG_CLICKHOUSE_DSN", "ARUBUG_DATA_DIR", "ARUBUG_PROJECT_TOKENS", "ARUBUG_ADMIN_TOKEN", "--max-body-bytes"}},
		{"every problem at once", []string{"ARUBUG_ADDR=bad", "ARUBUG_LOG_LEVEL=loud", "ARUBUG_CLICKHOUSE_DSN=http://x/y"}, []string{"serve"}, 1,
			[]string{"invalid configuration", "addr \"bad\"", "log_level", "clickhouse://", "no project token"}},
		{"missing clickhouse binary says how to install", []string{"ARUBUG_PROJECT_TOKENS=phc_x", "ARUBUG_CLICKHOUSE_BINARY=/nonexistent/clickhouse-server", "ARUBUG_ADDR=127.0.0.1:0", "ARUBUG_DATA_DIR=" + t.TempDir()}, []string{"serve"}, 1,
			[]string{"apt-get install", "clickhouse-server"}},
		{"secrets are not echoed", []string{"ARUBUG_ADMIN_TOKEN=tiny", "ARUBUG_CLICKHOUSE_DSN=clickhouse://u:hunter2secret@h:x/db"}, []string{"serve"}, 1, []string{"admin_token must be at least 16"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := runBinary(t, tt.env, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\n%s", code, tt.code, out)
			}
			for _, want := range tt.contains {
				if !strings.Contains(out, want) {
					t.Errorf("output does not contain %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "hunter2secret") || strings.Contains(out, "tiny\"") {
				t.Errorf("a secret was echoed:\n%s", out)
			}
		})
	}
}
