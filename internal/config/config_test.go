package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedenceFlagsOverEnvOverFileOverDefaults(t *testing.T) {
	file := writeFile(t, "arubug.yaml", `
addr: ":7000"
data_dir: /from/file
batch_events: 111
flush_interval: 5s
project_tokens: [phc_file1, phc_file2]
spool_max_bytes: 2GiB
projects:
  - name: shop
    token: phc_shop
    replay_host: https://eu.posthog.com
`)
	cfg, err := Load("serve", Default(), []string{"--config", file, "--addr", ":9000"}, env(map[string]string{
		"ARUBUG_ADDR":           ":8500",
		"ARUBUG_DATA_DIR":       "/from/env",
		"ARUBUG_MAX_BODY_BYTES": "3MiB",
	}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"addr from flag", cfg.Addr, ":9000"},
		{"data_dir from env", cfg.DataDir, "/from/env"},
		{"batch_events from file", cfg.BatchEvents, 111},
		{"flush_interval from file", cfg.FlushInterval, 5 * time.Second},
		{"spool size from file", cfg.SpoolMaxBytes, int64(2 << 30)},
		{"body limit from env", cfg.Capture.MaxBodyBytes, int64(3 << 20)},
		{"default log level", cfg.LogLevel, "info"},
		{"tokens from file", strings.Join(cfg.ProjectTokens, ","), "phc_file1,phc_file2"},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	projects, err := cfg.ProjectList()
	if err != nil {
		t.Fatal(err)
	}
	if len(projects) != 3 || projects[0].Name != "shop" || projects[0].ReplayHost != "https://eu.posthog.com" || projects[1].ReplayHost != "https://us.posthog.com" {
		t.Errorf("projects %+v", projects)
	}
}

func TestConfigFileFromEnv(t *testing.T) {
	file := writeFile(t, "a.yaml", "log_level: debug\n")
	cfg, err := Load("serve", Default(), nil, env(map[string]string{"ARUBUG_CONFIG": file}), &bytes.Buffer{})
	if err != nil || cfg.LogLevel != "debug" {
		t.Fatalf("cfg %v err %v", cfg.LogLevel, err)
	}
}

func TestFileErrorsNameFileAndLine(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"unknown key", "addr: :1\nadr: :2\n", "a.yaml:2: unknown setting \"adr\""},
		{"bad duration", "flush_interval: soon\n", "a.yaml:1: flush_interval: \"soon\" is not a duration"},
		{"bad size", "spool_max_bytes: lots\n", "a.yaml:1: spool_max_bytes: \"lots\" is not a size"},
		{"list for scalar", "addr: [a, b]\n", "a.yaml:1: addr takes a single value"},
		{"unknown project key", "projects:\n  - name: a\n    tokn: x\n", "a.yaml:3: unknown project key \"tokn\""},
		{"not a mapping", "- a\n", "a.yaml:1: the file must be a mapping"},
		{"yaml syntax", "addr: [\n", "a.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeFile(t, "a.yaml", tt.text)
			_, err := Load("serve", Default(), []string{"--config", file}, env(nil), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := Default()
	cfg.Addr = "nonsense"
	cfg.DataDir = ""
	cfg.ClickHouseDSN = "http://h:8123/db"
	cfg.LogLevel = "loud"
	cfg.LogFormat = "xml"
	cfg.SpoolMaxBytes = 10
	cfg.BatchEvents = 0
	cfg.AdminToken = "short"
	cfg.Capture.MaxDepth = 0
	err := cfg.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"addr", "data_dir", "clickhouse DSN must start with clickhouse://", "log_level", "log_format",
		"spool_max_bytes", "batch_events", "admin_token", "max_json_depth", "no project token"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors do not mention %q:\n%v", want, err)
		}
	}
}

func TestProjectTokenRules(t *testing.T) {
	tests := []struct {
		name   string
		tokens []string
		want   string
	}{
		{"personal key", []string{"phx_abc"}, "personal API key"},
		{"duplicate", []string{"phc_a", "phc_a"}, "used by another project"},
		{"markup", []string{"phc_<script>"}, "markup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Default()
			cfg.ProjectTokens = tt.tokens
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
	cfg := Default()
	cfg.ProjectTokens = []string{"phc_ok"}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	const secret = "s3cr3t-admin-token-value"
	const dsnSecret = "hunter2-password"
	tokenFile := writeFile(t, "token", secret+"\n")
	cfg, err := Load("serve", Default(), []string{"--clickhouse-dsn", "clickhouse://u:" + dsnSecret + "@h:9000/db"},
		env(map[string]string{"ARUBUG_ADMIN_TOKEN_FILE": tokenFile, "ARUBUG_PROJECT_TOKENS": "phc_x"}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AdminToken.Reveal() != secret || !strings.Contains(cfg.ClickHouseDSN.Reveal(), dsnSecret) {
		t.Fatalf("secrets not loaded: %q", cfg.AdminToken.Reveal())
	}
	var out bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&out, nil))
	log.Info("config", "cfg", cfg, "token", cfg.AdminToken, "dsn", cfg.ClickHouseDSN)
	fmt.Fprintf(&out, "%v %+v %#v %s", cfg, cfg, cfg, cfg.AdminToken)
	b, _ := json.Marshal(cfg)
	out.Write(b)
	Usage(&out, "serve", cfg)
	// A validation error about the DSN must not echo it.
	bad := cfg
	bad.ClickHouseDSN = Secret("clickhouse://u:" + dsnSecret + "@h:notaport/db")
	if err := bad.Validate(); err != nil {
		out.WriteString(err.Error())
	}
	for _, s := range []string{secret, dsnSecret} {
		if strings.Contains(out.String(), s) {
			t.Errorf("secret %q leaked into output:\n%s", s, out.String())
		}
	}
}

func TestHelpAndBadFlags(t *testing.T) {
	var out bytes.Buffer
	_, err := Load("serve", Default(), []string{"--help"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("help: %v", err)
	}
	for _, key := range Keys() {
		flagName := "--" + strings.ReplaceAll(key, "_", "-")
		if !strings.Contains(out.String(), flagName) || !strings.Contains(out.String(), "ARUBUG_"+strings.ToUpper(key)) {
			t.Errorf("help does not document %s", key)
		}
	}
	if _, err := Load("serve", Default(), []string{"--batch-events", "many"}, env(nil), &bytes.Buffer{}); err == nil {
		t.Error("bad flag value accepted")
	}
	if _, err := Load("serve", Default(), nil, env(map[string]string{"ARUBUG_FLUSH_INTERVAL": "x"}), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "ARUBUG_FLUSH_INTERVAL") {
		t.Errorf("bad env value: %v", err)
	}
}

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1024", 1024, true}, {"2MiB", 2 << 20, true}, {"1GiB", 1 << 30, true}, {"5MB", 5e6, true},
		{"512k", 512 << 10, true}, {"1.5GiB", 3 << 29, true}, {"-1", 0, false}, {"lots", 0, false}, {"", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseBytes(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestClickHouseCluster(t *testing.T) {
	for _, tc := range []struct {
		name, cluster, dsn, want string
	}{
		{"off", "", "", ""},
		{"ok", "arubug", "clickhouse://h1:9000,h2:9000/arubug", ""},
		{"not a name", "my-cluster", "clickhouse://h:9000/arubug", "clickhouse_cluster \"my-cluster\" must be a name"},
		{"without a DSN", "arubug", "", "clickhouse_cluster needs clickhouse_dsn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Default()
			cfg.ProjectTokens = []string{"phc_x"}
			cfg.ClickHouseCluster = tc.cluster
			cfg.ClickHouseDSN = Secret(tc.dsn)
			err := cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want %q", err, tc.want)
			}
			if err := cfg.CheckClickHouseCluster(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckClickHouseCluster: %v, want %q", err, tc.want)
			}
		})
	}
	cfg, err := Load("migrate", Default(), nil, env(map[string]string{"ARUBUG_CLICKHOUSE_CLUSTER": "c1"}), &bytes.Buffer{})
	if err != nil || cfg.ClickHouseCluster != "c1" {
		t.Fatalf("from the environment: %q %v", cfg.ClickHouseCluster, err)
	}
}
