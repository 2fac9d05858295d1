// Package config loads Arubug's settings from defaults, an optional YAML
// file, ARUBUG_* environment variables and command-line flags, in that order
// of precedence (flags win). Every setting has all three forms.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/capture"
	"github.com/arubug/arubug/internal/clickhouse"
)

// Config is the service's whole configuration.
type Config struct {
	ConfigFile string

	Addr             string
	DataDir          string
	ClickHouseDSN    Secret // may hold a password
	ClickHouseBinary string
	// ClickHouseCluster names the ClickHouse cluster the schema lives on
	// (replicated tables behind Distributed ones); empty: one server.
	ClickHouseCluster string

	ProjectTokens []string
	ReplayHost    string
	// Projects come from the YAML file's projects list; ProjectTokens adds
	// quick ones named after their token.
	Projects []ProjectConfig

	AdminToken Secret

	LogLevel  string
	LogFormat string

	Capture           capture.Limits
	MaxInFlight       int
	TrustForwardedFor bool
	BugReportsPerIP   int
	BugReportsPerUser int
	SiteApp           bool

	PprofAddr string

	RulesFile      string
	ReplayTemplate string
	TriageLookback time.Duration

	Zendesk Zendesk

	SpoolMaxBytes   int64
	BatchEvents     int
	FlushInterval   time.Duration
	ShutdownTimeout time.Duration
}

// Zendesk configures the ticket sync. With no URL, serve does not sync and
// dev runs the built-in Zendesk simulator.
type Zendesk struct {
	URL               string
	Email             string
	APIToken          Secret
	OAuthToken        Secret
	WebhookSecret     Secret
	RequestsPerMinute int
	Concurrency       int
	// FallbackRequester is the requester of tickets from anonymous reporters.
	FallbackRequester string
	// CustomFields maps report fields (report_id, product_area, replay_url,
	// severity, team) to Zendesk ticket field ids.
	CustomFields []string
	// Similar is what a report becomes when a similar report already has a
	// ticket: "incident" (of the first ticket, made a problem), "comment"
	// (a note on the existing ticket) or "off" (a ticket of its own).
	Similar string
	// SyncGrace is how long a report may wait for its instance to ticket it
	// before any instance's reconciler does.
	SyncGrace time.Duration
	// CommentPollInterval is how often open tickets' comments are pulled to
	// fill gaps left by missed webhooks.
	CommentPollInterval time.Duration
}

// ProjectConfig is one project in the YAML file.
type ProjectConfig struct {
	Name       string `yaml:"name"`
	Token      string `yaml:"token"`
	ReplayHost string `yaml:"replay_host"`
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		Addr:              ":8000",
		DataDir:           "arubug-data",
		ReplayHost:        "https://us.posthog.com",
		LogLevel:          "info",
		LogFormat:         "json",
		Capture:           capture.DefaultLimits(),
		MaxInFlight:       256,
		BugReportsPerIP:   30,
		BugReportsPerUser: 10,
		SpoolMaxBytes:     1 << 30,
		BatchEvents:       20000,
		FlushInterval:     time.Second,
		ShutdownTimeout:   30 * time.Second,
		RulesFile:         "routing-rules/rules.yaml",
		ReplayTemplate:    "{host}/project/{token}/replay/{session_id}?t={seconds}",
		TriageLookback:    7 * 24 * time.Hour,
		Zendesk: Zendesk{
			RequestsPerMinute:   700,
			Concurrency:         4,
			FallbackRequester:   "anonymous-reporter@arubug.invalid",
			Similar:             "incident",
			SyncGrace:           2 * time.Minute,
			CommentPollInterval: 5 * time.Minute,
		},
	}
}

// setting binds one configuration key to its flag, environment variable and
// YAML key.
type setting struct {
	key    string // YAML key and flag name (with - for _)
	usage  string
	value  flag.Value
	secret bool
}

func (s setting) flagName() string { return strings.ReplaceAll(s.key, "_", "-") }
func (s setting) envName() string  { return "ARUBUG_" + strings.ToUpper(s.key) }

func (c *Config) settings() []setting {
	l := &c.Capture
	return []setting{
		{key: "config", usage: "optional YAML file with any of these settings, and a projects list", value: stringValue{&c.ConfigFile}},
		{key: "addr", usage: "HTTP listen address", value: stringValue{&c.Addr}},
		{key: "data_dir", usage: "directory for the spool and the managed ClickHouse's data", value: stringValue{&c.DataDir}},
		{key: "clickhouse_dsn", usage: "ClickHouse native DSN, e.g. clickhouse://127.0.0.1:9000/arubug; empty starts a managed local clickhouse-server under data_dir", value: secretValue{&c.ClickHouseDSN}, secret: true},
		{key: "clickhouse_cluster", usage: "ClickHouse cluster (remote_servers name) to create the schema on and to read and write through Distributed tables; needs clickhouse_dsn; empty = one server (deploy/clickhouse/README.md)", value: stringValue{&c.ClickHouseCluster}},
		{key: "clickhouse_binary", usage: "clickhouse-server binary for the managed local server (default: found in PATH)", value: stringValue{&c.ClickHouseBinary}},
		{key: "project_tokens", usage: "comma-separated public capture tokens, each a project named after its token (use the file's projects list to name them)", value: listValue{&c.ProjectTokens}},
		{key: "replay_host", usage: "PostHog UI host for session-replay links of projects given by token", value: stringValue{&c.ReplayHost}},
		{key: "admin_token", usage: "token for the admin and dashboard APIs (prefer ARUBUG_ADMIN_TOKEN_FILE)", value: secretValue{&c.AdminToken}, secret: true},
		{key: "log_level", usage: "debug, info, warn or error", value: stringValue{&c.LogLevel}},
		{key: "log_format", usage: "json or text", value: stringValue{&c.LogFormat}},
		{key: "spool_max_bytes", usage: "bytes of events the spool holds while ClickHouse is slow or down; past it capture answers 503", value: bytesValue{&c.SpoolMaxBytes}},
		{key: "batch_events", usage: "events per ClickHouse insert that trigger a write at once", value: intValue{&c.BatchEvents}},
		{key: "flush_interval", usage: "longest time an event waits in the spool before a smaller insert", value: durationValue{&c.FlushInterval}},
		{key: "shutdown_timeout", usage: "time allowed for in-flight requests and the final flush on SIGTERM", value: durationValue{&c.ShutdownTimeout}},
		{key: "rules_file", usage: "routing rules (YAML); reloaded on change, SIGHUP and POST /-/reload", value: stringValue{&c.RulesFile}},
		{key: "replay_template", usage: "session-replay link template: {host} {token} {session_id} {seconds}", value: stringValue{&c.ReplayTemplate}},
		{key: "triage_lookback", usage: "how old an untriaged bug report may be and still be picked up after a restart", value: durationValue{&c.TriageLookback}},
		{key: "pprof_addr", usage: "serve Go's pprof profiles on this separate address (e.g. 127.0.0.1:6060); empty = off. Never expose it publicly", value: stringValue{&c.PprofAddr}},
		{key: "zendesk_url", usage: "Zendesk account URL, e.g. https://acme.zendesk.com; empty: serve does not sync tickets, dev runs the built-in simulator", value: stringValue{&c.Zendesk.URL}},
		{key: "zendesk_email", usage: "Zendesk agent email that owns zendesk_api_token", value: stringValue{&c.Zendesk.Email}},
		{key: "zendesk_api_token", usage: "Zendesk API token (prefer ARUBUG_ZENDESK_API_TOKEN_FILE)", value: secretValue{&c.Zendesk.APIToken}, secret: true},
		{key: "zendesk_oauth_token", usage: "Zendesk OAuth access token, used instead of email + API token", value: secretValue{&c.Zendesk.OAuthToken}, secret: true},
		{key: "zendesk_webhook_secret", usage: "signing secret of the Zendesk webhook that posts to /webhooks/zendesk (printed to a file by 'arubug zendesk setup')", value: secretValue{&c.Zendesk.WebhookSecret}, secret: true},
		{key: "zendesk_requests_per_minute", usage: "Zendesk API requests per minute this instance may send (your plan's limit divided by the number of instances)", value: intValue{&c.Zendesk.RequestsPerMinute}},
		{key: "zendesk_concurrency", usage: "reports synced to Zendesk at once", value: intValue{&c.Zendesk.Concurrency}},
		{key: "zendesk_fallback_requester", usage: "requester email of tickets from anonymous reporters", value: stringValue{&c.Zendesk.FallbackRequester}},
		{key: "zendesk_custom_fields", usage: "comma-separated report_field=zendesk_field_id pairs; fields: report_id, product_area, replay_url, severity, team", value: listValue{&c.Zendesk.CustomFields}},
		{key: "zendesk_similar", usage: "a report similar to an already ticketed one becomes: incident (of the first ticket), comment (on it) or off (its own ticket)", value: stringValue{&c.Zendesk.Similar}},
		{key: "zendesk_sync_grace", usage: "how long a report waits for the instance that triaged it before any instance tickets it", value: durationValue{&c.Zendesk.SyncGrace}},
		{key: "zendesk_comment_poll_interval", usage: "how often open tickets' comments are pulled to fill gaps from missed webhooks", value: durationValue{&c.Zendesk.CommentPollInterval}},
		{key: "max_in_flight", usage: "capture requests decoded at once; past it capture answers 503", value: intValue{&c.MaxInFlight}},
		{key: "trust_forwarded_for", usage: "take the client IP from X-Forwarded-For (only behind a proxy that sets it)", value: boolValue{&c.TrustForwardedFor}},
		{key: "site_app", usage: "list the bug-report widget as a site app in posthog-js's remote config; turn on only where posthog-js runs with opt_in_site_apps: true (posthog-js logs an error otherwise)", value: boolValue{&c.SiteApp}},
		{key: "bug_reports_per_ip", usage: "$bug_report events accepted per minute from one client IP (0 = no limit); over it capture answers 429", value: intValue{&c.BugReportsPerIP}},
		{key: "bug_reports_per_user", usage: "$bug_report events accepted per minute from one distinct_id (0 = no limit)", value: intValue{&c.BugReportsPerUser}},
		{key: "max_body_bytes", usage: "largest request body on /e, /capture, /track, /engage, /i/v0/e", value: bytesValue{&l.MaxBodyBytes}},
		{key: "max_batch_body_bytes", usage: "largest request body on /batch", value: bytesValue{&l.MaxBatchBodyBytes}},
		{key: "max_decompressed_bytes", usage: "largest payload after gzip, base64 or lz64 decoding", value: bytesValue{&l.MaxDecompressedBytes}},
		{key: "max_events_per_request", usage: "most events in one request", value: intValue{&l.MaxEventsPerRequest}},
		{key: "max_event_bytes", usage: "largest single event (JSON bytes)", value: intBytesValue{&l.MaxEventBytes}},
		{key: "max_json_depth", usage: "deepest JSON nesting accepted", value: intValue{&l.MaxDepth}},
		{key: "max_string_bytes", usage: "longest JSON string accepted (bytes)", value: intBytesValue{&l.MaxStringBytes}},
		{key: "max_distinct_id_length", usage: "longest distinct_id (bytes)", value: intValue{&l.MaxDistinctIDLength}},
		{key: "max_event_name_length", usage: "longest event name (bytes)", value: intValue{&l.MaxEventNameLength}},
	}
}

// intBytesValue is bytesValue for int fields.
type intBytesValue struct{ p *int }

func (v intBytesValue) String() string {
	if v.p == nil {
		return "0"
	}
	return FormatBytes(int64(*v.p))
}
func (v intBytesValue) Set(s string) error {
	n, err := ParseBytes(s)
	if err != nil {
		return err
	}
	*v.p = int(n)
	return nil
}

// Load builds a Config for the command name from defaults, then the YAML
// file (from --config or ARUBUG_CONFIG), then the environment (getenv), then
// args. Secrets may also come from files: ARUBUG_ADMIN_TOKEN_FILE and
// ARUBUG_CLICKHOUSE_DSN_FILE. It does not call Validate. flag.ErrHelp is
// returned after printing help to out when -h is given.
func Load(name string, def Config, args []string, getenv func(string) string, out io.Writer) (Config, error) {
	// First pass: parse flags only to learn which were given.
	probe := def
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	for _, s := range probe.settings() {
		fs.Var(s.value, s.flagName(), s.usage)
	}
	fs.Usage = func() { Usage(out, name, def) }
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q (settings are flags like --addr=:8000)", fs.Arg(0))
	}
	given := map[string]string{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = f.Value.String() })
	// Secret values print redacted; keep the real text of given flags.
	for _, s := range probe.settings() {
		if _, ok := given[s.flagName()]; ok && s.secret {
			given[s.flagName()] = rawSecret(s.value)
		}
	}

	cfg := def
	file := probe.ConfigFile
	if _, ok := given["config"]; !ok {
		file = getenv("ARUBUG_CONFIG")
	}
	if file != "" {
		if err := cfg.loadFile(file); err != nil {
			return Config{}, err
		}
		cfg.ConfigFile = file
	}
	var errs []error
	settings := cfg.settings()
	for _, s := range settings {
		if v := getenv(s.envName()); v != "" {
			if err := s.value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", s.envName(), err))
			}
		}
		if s.secret {
			if path := getenv(s.envName() + "_FILE"); path != "" {
				b, err := os.ReadFile(path)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s_FILE: %w", s.envName(), err))
					continue
				}
				_ = s.value.Set(strings.TrimSpace(string(b)))
			}
		}
	}
	for _, s := range settings {
		if v, ok := given[s.flagName()]; ok {
			if err := s.value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("--%s: %w", s.flagName(), err))
			}
		}
	}
	return cfg, errors.Join(errs...)
}

func rawSecret(v flag.Value) string {
	if sv, ok := v.(secretValue); ok {
		return sv.p.Reveal()
	}
	return v.String()
}

// Usage prints every setting with its flag, environment variable and
// default.
func Usage(w io.Writer, name string, def Config) {
	fmt.Fprintf(w, "Usage: arubug %s [flags]\n\nEvery setting is a flag, an ARUBUG_* environment variable and a key in the\noptional YAML file (--config). Precedence: flags, then environment, then file.\nSecrets can also be read from a file named by ARUBUG_<NAME>_FILE.\n\n", name)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FLAG\tENVIRONMENT\tDEFAULT\tMEANING")
	for _, s := range def.settings() {
		d := s.value.String()
		if d == "" {
			d = "-"
		}
		fmt.Fprintf(tw, "--%s\t%s\t%s\t%s\n", s.flagName(), s.envName(), d, s.usage)
	}
	_ = tw.Flush()
}

// Keys returns the YAML keys, sorted; used by docs and tests.
func Keys() []string {
	var c Config
	var out []string
	for _, s := range c.settings() {
		out = append(out, s.key)
	}
	sort.Strings(out)
	return out
}

// CheckClickHouseCluster reports what is wrong with clickhouse_cluster: a
// name that is not an identifier, or a cluster without clickhouse_dsn (the
// managed local server is a single server). Validate includes it; migrate,
// which does not need the rest, calls it alone.
func (c *Config) CheckClickHouseCluster() error {
	if c.ClickHouseCluster == "" {
		return nil
	}
	if !clusterNameRE.MatchString(c.ClickHouseCluster) {
		return fmt.Errorf("clickhouse_cluster %q must be a name of letters, digits and _ (not starting with a digit)", c.ClickHouseCluster)
	}
	if c.ClickHouseDSN == "" {
		return errors.New("clickhouse_cluster needs clickhouse_dsn: the managed local clickhouse-server is not a cluster")
	}
	return nil
}

var clusterNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate reports every problem in c at once.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		add("addr %q is not host:port (for example :8000 or 127.0.0.1:8000)", c.Addr)
	}
	if c.PprofAddr != "" {
		if _, _, err := net.SplitHostPort(c.PprofAddr); err != nil {
			add("pprof_addr %q is not host:port", c.PprofAddr)
		}
	}
	if strings.TrimSpace(c.DataDir) == "" {
		add("data_dir must not be empty")
	}
	if c.ClickHouseDSN != "" {
		if _, err := clickhouse.ParseDSN(c.ClickHouseDSN.Reveal()); err != nil {
			add("clickhouse_dsn: %v", err)
		}
	}
	if err := c.CheckClickHouseCluster(); err != nil {
		errs = append(errs, err)
	}
	projects, err := c.ProjectList()
	if err != nil {
		errs = append(errs, err)
	} else if len(projects) == 0 {
		add("no project token configured: set ARUBUG_PROJECT_TOKENS (or --project-tokens, or projects in the config file)")
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		add("admin_token must be at least 16 characters")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("log_level %q must be debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		add("log_format %q must be json or text", c.LogFormat)
	}
	if err := c.Capture.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.SpoolMaxBytes < 1<<20 {
		add("spool_max_bytes must be at least 1MiB, got %d", c.SpoolMaxBytes)
	}
	if c.SpoolMaxBytes < c.Capture.MaxDecompressedBytes {
		add("spool_max_bytes (%s) must be at least max_decompressed_bytes (%s)", FormatBytes(c.SpoolMaxBytes), FormatBytes(c.Capture.MaxDecompressedBytes))
	}
	if strings.TrimSpace(c.RulesFile) == "" {
		add("rules_file must not be empty")
	}
	if !strings.Contains(c.ReplayTemplate, "{session_id}") {
		add("replay_template must contain {session_id}")
	}
	if c.TriageLookback < time.Hour {
		add("triage_lookback must be at least 1h")
	}
	if c.BatchEvents <= 0 {
		add("batch_events must be positive")
	}
	if c.FlushInterval <= 0 {
		add("flush_interval must be positive")
	}
	if c.ShutdownTimeout <= 0 {
		add("shutdown_timeout must be positive")
	}
	if c.BugReportsPerIP < 0 || c.BugReportsPerUser < 0 {
		add("bug_reports_per_ip and bug_reports_per_user must not be negative")
	}
	if c.MaxInFlight <= 0 {
		add("max_in_flight must be positive")
	}
	errs = append(errs, c.Zendesk.validate()...)
	return errors.Join(errs...)
}

func (z Zendesk) validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if z.URL != "" {
		if u, err := url.Parse(z.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			add("zendesk_url %q must be like https://acme.zendesk.com", z.URL)
		}
		if z.OAuthToken == "" && (z.Email == "" || z.APIToken == "") {
			add("zendesk_url is set: set zendesk_email and zendesk_api_token, or zendesk_oauth_token")
		}
		if z.WebhookSecret == "" {
			add("zendesk_url is set: set zendesk_webhook_secret (run 'arubug zendesk setup' to create the webhook and get it)")
		}
	}
	if z.RequestsPerMinute <= 0 {
		add("zendesk_requests_per_minute must be positive")
	}
	if z.Concurrency <= 0 || z.Concurrency > 64 {
		add("zendesk_concurrency must be between 1 and 64")
	}
	if !strings.Contains(z.FallbackRequester, "@") {
		add("zendesk_fallback_requester %q must be an email address", z.FallbackRequester)
	}
	if _, err := z.CustomFieldIDs(); err != nil {
		errs = append(errs, err)
	}
	switch z.Similar {
	case "incident", "comment", "off":
	default:
		add("zendesk_similar %q must be incident, comment or off", z.Similar)
	}
	if z.SyncGrace < 10*time.Second {
		add("zendesk_sync_grace must be at least 10s")
	}
	if z.CommentPollInterval < 10*time.Second {
		add("zendesk_comment_poll_interval must be at least 10s")
	}
	return errs
}

// CustomFieldFields are the report fields that can fill Zendesk custom fields.
var CustomFieldFields = []string{"report_id", "product_area", "replay_url", "severity", "team"}

// CustomFieldIDs parses CustomFields into report field → Zendesk field id.
func (z Zendesk) CustomFieldIDs() (map[string]int64, error) {
	out := map[string]int64{}
	for _, pair := range z.CustomFields {
		name, id, ok := strings.Cut(strings.TrimSpace(pair), "=")
		n, err := strconv.ParseInt(strings.TrimSpace(id), 10, 64)
		name = strings.TrimSpace(name)
		if !ok || err != nil || n <= 0 || !slices.Contains(CustomFieldFields, name) {
			return nil, fmt.Errorf("zendesk_custom_fields: %q must be field=id with field one of %s and id a positive number", pair, strings.Join(CustomFieldFields, ", "))
		}
		out[name] = n
	}
	return out, nil
}

// ProjectList merges the file's projects and the quick tokens, checking that
// every project has a name and a token and that none repeats.
func (c *Config) ProjectList() ([]bugreport.Project, error) {
	var out []bugreport.Project
	var errs []error
	seenToken := map[string]bool{}
	seenName := map[string]bool{}
	add := func(p bugreport.Project, where string) {
		switch {
		case p.Token == "":
			errs = append(errs, fmt.Errorf("%s: project %q has no token", where, p.Name))
			return
		case strings.HasPrefix(p.Token, "phx_"):
			errs = append(errs, fmt.Errorf("%s: project %q: a personal API key (phx_…) cannot be a capture token", where, p.Name))
			return
		case strings.ContainsAny(p.Token, " \t\r\n,/\"'<>&"):
			errs = append(errs, fmt.Errorf("%s: project %q: the token contains spaces, commas, slashes, quotes or markup characters", where, p.Name))
			return
		case p.Name == "":
			errs = append(errs, fmt.Errorf("%s: a project has no name", where))
			return
		case seenToken[p.Token]:
			errs = append(errs, fmt.Errorf("%s: project %q: its token is used by another project", where, p.Name))
			return
		case seenName[p.Name]:
			errs = append(errs, fmt.Errorf("%s: project name %q is used twice", where, p.Name))
			return
		}
		seenToken[p.Token], seenName[p.Name] = true, true
		out = append(out, p)
	}
	for i, p := range c.Projects {
		rh := p.ReplayHost
		if rh == "" {
			rh = c.ReplayHost
		}
		add(bugreport.Project{Name: p.Name, Token: p.Token, ReplayHost: rh}, fmt.Sprintf("projects[%d]", i))
	}
	for _, t := range c.ProjectTokens {
		add(bugreport.Project{Name: t, Token: t, ReplayHost: c.ReplayHost}, "project_tokens")
	}
	return out, errors.Join(errs...)
}
