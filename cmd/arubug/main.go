// Command arubug is the Arubug service: a PostHog-compatible collector that
// stores events in ClickHouse and turns bug reports into routed tickets.
//
//	arubug serve     run the service (production)
//	arubug dev       run it locally with friendly defaults
//	arubug migrate   apply the ClickHouse schema and exit
//	arubug rules     check, test and replay the routing rules
//	arubug version   print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `Usage: arubug <command> [flags]

Commands:
  serve     run the collector (capture API → spool → ClickHouse)
  dev       like serve, with local defaults: managed ClickHouse, a dev token,
            text logs, and the URLs to open printed at start
  migrate   apply the ClickHouse schema migrations and exit
  rules     check, test or replay the routing rules (arubug rules --help)
  seed      fill ClickHouse with a synthetic history for demos (arubug seed --help)
  zendesk   set up the Zendesk webhook and triggers, or run the Zendesk simulator
            (arubug zendesk --help)
  version   print the version

Run 'arubug <command> --help' for the settings of a command.
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serveCmd(ctx, "serve", args[1:], getenv, stdout, stderr)
	case "dev":
		err = serveCmd(ctx, "dev", args[1:], getenv, stdout, stderr)
	case "migrate":
		err = migrateCmd(ctx, args[1:], getenv, stdout, stderr)
	case "rules":
		err = rulesCmd(ctx, args[1:], getenv, stdout, stderr)
	case "seed":
		err = seedCmd(ctx, args[1:], getenv, stdout, stderr)
	case "zendesk":
		err = zendeskCmd(ctx, args[1:], getenv, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "arubug", versionString())
		return 0
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "arubug: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	}
	fmt.Fprintf(stderr, "arubug %s: %v\n", args[0], err)
	return 1
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			if dirty {
				rev += "-dirty"
			}
			return "dev-" + rev
		}
	}
	return "dev"
}
