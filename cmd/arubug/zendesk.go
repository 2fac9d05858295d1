package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/arubug/arubug/internal/config"
	"github.com/arubug/arubug/internal/routing"
	"github.com/arubug/arubug/internal/zendesk"
	"github.com/arubug/arubug/internal/zendesk/zendesktest"
)

const zendeskUsage = `Usage: arubug zendesk <setup|simulate> [flags]

  setup      create or update, idempotently, the Zendesk webhook that posts to Arubug
             and the triggers that notify it of comments and status changes on tickets
             tagged arubug; write the webhook's signing secret to a file; check that
             every Zendesk group named in the rules file exists (exit 1 if one is missing)
  simulate   run the Zendesk simulator (a local fake Zendesk API for demos and tests)
             until interrupted

Flags of setup:
  --webhook-url URL     where Zendesk posts, e.g. https://arubug.example.com/webhooks/zendesk (required)
  --secret-file PATH    write the signing secret here (mode 0600), for zendesk_webhook_secret
                        (e.g. ARUBUG_ZENDESK_WEBHOOK_SECRET_FILE=PATH); it is never printed
  --name NAME           webhook name and trigger title prefix (default Arubug)
  The account comes from the usual settings: --zendesk-url, --zendesk-email with
  --zendesk-api-token (or ARUBUG_ZENDESK_API_TOKEN_FILE), or --zendesk-oauth-token;
  the groups from --rules-file (or ARUBUG_RULES_FILE); see 'arubug serve --help'.

Flags of simulate:
  --addr HOST:PORT            listen address (default 127.0.0.1:0, a free port)
  --rules-file FILE           create a group for every zendesk_group of the rules
                              (default: ARUBUG_RULES_FILE or routing-rules/rules.yaml, if it exists)
  --requests-per-minute N     answer 429 past N API requests a minute (default 0: no limit)
  Control API (no auth): POST /_sim/tickets/{id}/agent_reply|email_reply {"body","public"},
  POST|GET|DELETE /_sim/faults {"kind":"status|drop|slow","method","path","n","status","delay"},
  GET /_sim/tickets.json (every ticket with its comments)
`

func zendeskCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, zendeskUsage)
		if len(args) == 0 {
			return errors.New("a subcommand is required: setup or simulate")
		}
		return nil
	}
	switch args[0] {
	case "setup":
		return zendeskSetupCmd(ctx, args[1:], getenv, stdout, stderr)
	case "simulate":
		return zendeskSimulateCmd(ctx, args[1:], getenv, stdout, stderr)
	}
	return fmt.Errorf("unknown zendesk subcommand %q (want setup or simulate)", args[0])
}

func zendeskSetupCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	own, rest, err := takeFlags(args, "webhook-url", "secret-file", "name")
	if err != nil {
		return err
	}
	for _, a := range rest {
		if a == "-h" || a == "--help" || a == "-help" {
			fmt.Fprint(stdout, zendeskUsage)
			return flag.ErrHelp
		}
	}
	cfg, err := config.Load("zendesk setup", config.Default(), rest, getenv, stderr)
	if err != nil {
		return err
	}
	webhookURL := own["webhook-url"]
	if webhookURL == "" {
		return errors.New("--webhook-url is required: the address at which Zendesk reaches Arubug's /webhooks/zendesk")
	}
	z := cfg.Zendesk
	if z.URL == "" {
		return errors.New("set the Zendesk account: --zendesk-url or ARUBUG_ZENDESK_URL")
	}
	rules, err := routing.Load(cfg.RulesFile, routing.Options{})
	if err != nil {
		return fmt.Errorf("%s is invalid:\n%w", cfg.RulesFile, indent(err))
	}
	var groups []string
	for _, t := range rules.Teams() {
		groups = append(groups, t.ZendeskGroup)
	}
	c, err := zendesk.NewClient(zendesk.Options{
		BaseURL: z.URL, Email: z.Email, APIToken: z.APIToken.Reveal(), OAuthToken: z.OAuthToken.Reveal(),
		RequestsPerMinute: z.RequestsPerMinute,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	res, err := zendesk.Setup(ctx, c, zendesk.SetupOptions{WebhookURL: webhookURL, Name: own["name"], Groups: groups})
	if err != nil {
		return err
	}

	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAME\tID\tRESULT")
	for _, it := range append([]zendesk.SetupItem{res.Webhook}, res.Triggers...) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", it.Kind, it.Name, it.ID, it.Change)
	}
	_ = tw.Flush()
	if res.Changed() {
		fmt.Fprintf(stdout, "Zendesk now posts comments and status changes of tickets tagged %s to %s\n", zendesk.DefaultTicketTag, webhookURL)
	} else {
		fmt.Fprintln(stdout, "nothing to change: the webhook and triggers were already set up")
	}
	if path := own["secret-file"]; path != "" {
		if err := writeSecretFile(path, res.Secret.Reveal()); err != nil {
			return fmt.Errorf("writing the signing secret: %w", err)
		}
		fmt.Fprintf(stdout, "signing secret written to %s (mode 0600): set ARUBUG_ZENDESK_WEBHOOK_SECRET_FILE=%s\n", path, path)
	} else {
		fmt.Fprintln(stdout, "signing secret not saved: run again with --secret-file PATH to write it for zendesk_webhook_secret")
	}
	fmt.Fprintf(stdout, "%d Zendesk groups from %s checked\n", res.GroupsChecked, cfg.RulesFile)
	if len(res.MissingGroups) > 0 {
		q := make([]string, len(res.MissingGroups))
		for i, g := range res.MissingGroups {
			q[i] = strconv.Quote(g)
		}
		return fmt.Errorf("these zendesk_group values of %s do not exist in Zendesk: %s (create the groups or fix the rules)", cfg.RulesFile, strings.Join(q, ", "))
	}
	return nil
}

// writeSecretFile replaces path with the secret, readable by the owner
// only; the file is never visible with other permissions or half written.
func writeSecretFile(path, secret string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(secret + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// takeFlags removes the named flags (-name, --name, with "=value" or the
// next argument as value) from args, so that the rest can go to
// config.Load.
func takeFlags(args []string, names ...string) (map[string]string, []string, error) {
	own := map[string]string{}
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || !containsString(names, name) {
			rest = append(rest, a)
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return nil, nil, fmt.Errorf("flag needs an argument: -%s", name)
			}
			i++
			value = args[i]
		}
		own[name] = value
	}
	return own, rest, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func zendeskSimulateCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("zendesk simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, zendeskUsage) }
	rulesDef, rulesGiven := config.Default().RulesFile, false
	if v := getenv("ARUBUG_RULES_FILE"); v != "" {
		rulesDef, rulesGiven = v, true
	}
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	rulesFile := fs.String("rules-file", rulesDef, "rules file whose zendesk groups to create")
	rpm := fs.Int("requests-per-minute", 0, "API requests per minute before 429 (0: no limit)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) { rulesGiven = rulesGiven || f.Name == "rules-file" })
	if *rpm < 0 {
		return errors.New("--requests-per-minute must not be negative")
	}

	sim := zendesktest.New(zendesktest.Options{EnableControl: true, RatePerMinute: *rpm})
	defer sim.Close()
	var groups []string
	if _, err := os.Stat(*rulesFile); err == nil || rulesGiven {
		rules, err := routing.Load(*rulesFile, routing.Options{})
		if err != nil {
			return fmt.Errorf("%s is invalid:\n%w", *rulesFile, indent(err))
		}
		for _, t := range rules.Teams() {
			if g := t.ZendeskGroup; g != "" && !containsString(groups, g) {
				if _, err := strconv.ParseInt(g, 10, 64); err == nil {
					continue // an id only exists in the real account
				}
				sim.AddGroup(g)
				groups = append(groups, g)
			}
		}
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "Zendesk simulator listening on %s\n", base)
	fmt.Fprintf(stdout, "  tickets and replies:  %s/_sim/\n", base)
	fmt.Fprintf(stdout, "  API:                  %s/api/v2\n", base)
	fmt.Fprintf(stdout, "  credentials:          ARUBUG_ZENDESK_URL=%s ARUBUG_ZENDESK_EMAIL=%s ARUBUG_ZENDESK_API_TOKEN=%s\n", base, zendesktest.DefaultEmail, zendesktest.DefaultAPIToken)
	if len(groups) > 0 {
		fmt.Fprintf(stdout, "  groups:               Support, %s\n", strings.Join(groups, ", "))
	} else {
		fmt.Fprintln(stdout, "  groups:               Support")
	}
	if *rpm > 0 {
		fmt.Fprintf(stdout, "  rate limit:           %d requests per minute\n", *rpm)
	}
	fmt.Fprintln(stdout, "Press Ctrl-C to stop.")

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	return nil
}
