package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/clickhouse"
	"github.com/arubug/arubug/internal/config"
	"github.com/arubug/arubug/internal/routing"
)

const rulesUsage = `Usage: arubug rules <check|test|replay> [flags]

  check    load and validate the rules file; print its teams and routes
  test     run the test cases (routing-rules/tests) against the rules; exit 1 on a mismatch
  replay   dry-run the rules against stored reports: how many would move between teams,
           and which routes never match (needs ClickHouse: --clickhouse-dsn or ARUBUG_CLICKHOUSE_DSN)

Flags:
  --rules FILE    rules file (default: ARUBUG_RULES_FILE or routing-rules/rules.yaml)
  --tests DIR     test cases directory for 'test' (default: routing-rules/tests next to the rules)
  --since D       for 'replay': how far back, like 30d or 12h (default 30d)
  --clickhouse-dsn DSN   for 'replay'
  -v              'test': print the explanation of every case, not only failures
`

func rulesCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, rulesUsage)
		if len(args) == 0 {
			return errors.New("a subcommand is required: check, test or replay")
		}
		return nil
	}
	sub := args[0]
	fs := flag.NewFlagSet("rules "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, rulesUsage) }
	def := config.Default().RulesFile
	if v := getenv("ARUBUG_RULES_FILE"); v != "" {
		def = v
	}
	rulesFile := fs.String("rules", def, "rules file")
	testsDir := fs.String("tests", "", "test cases directory")
	since := fs.String("since", "30d", "replay window")
	dsn := fs.String("clickhouse-dsn", getenv("ARUBUG_CLICKHOUSE_DSN"), "ClickHouse DSN for replay")
	verbose := fs.Bool("v", false, "verbose")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	rules, err := routing.Load(*rulesFile, routing.Options{})
	if err != nil {
		return fmt.Errorf("%s is invalid:\n%w", *rulesFile, indent(err))
	}
	switch sub {
	case "check":
		return rulesCheck(stdout, rules)
	case "test":
		dir := *testsDir
		if dir == "" {
			dir = strings.TrimSuffix(*rulesFile, "rules.yaml") + "tests"
			if dir == "tests" && !strings.HasSuffix(*rulesFile, "rules.yaml") {
				dir = "routing-rules/tests"
			}
		}
		return rulesTest(stdout, rules, dir, *verbose)
	case "replay":
		d, err := parseSince(*since)
		if err != nil {
			return err
		}
		if *dsn == "" {
			return errors.New("replay reads stored reports: set --clickhouse-dsn or ARUBUG_CLICKHOUSE_DSN")
		}
		return rulesReplay(ctx, stdout, rules, *dsn, d)
	}
	return fmt.Errorf("unknown rules subcommand %q (want check, test or replay)", sub)
}

func rulesCheck(w io.Writer, r *routing.Rules) error {
	teams := r.Teams()
	fmt.Fprintf(w, "%s: OK (hash %s)\n", r.Source(), r.Hash())
	fmt.Fprintf(w, "%d teams, fallback %s, %d product areas\n", len(teams), r.FallbackTeam(), len(r.ProductAreas()))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TEAM\tZENDESK GROUP\tPRIORITY\tTAGS")
	for _, t := range teams {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.ZendeskGroup, t.DefaultPriority, strings.Join(t.Tags, ","))
	}
	return tw.Flush()
}

func rulesTest(w io.Writer, r *routing.Rules, dir string, verbose bool) error {
	cases, err := routing.LoadTests(dir)
	if err != nil {
		return fmt.Errorf("test cases in %s are invalid:\n%w", dir, indent(err))
	}
	failed := 0
	for _, res := range r.RunTests(cases) {
		status := "ok  "
		if !res.Pass {
			status = "FAIL"
			failed++
		}
		fmt.Fprintf(w, "%s %s:%d %s\n", status, res.File, res.Line, res.Name)
		if !res.Pass {
			for _, d := range res.Diffs {
				fmt.Fprintf(w, "       %s\n", d)
			}
		}
		if !res.Pass || verbose {
			for _, s := range res.Decision.Explanation {
				mark := "-"
				if s.Matched {
					mark = "+"
				}
				fmt.Fprintf(w, "       %s %s: %s\n", mark, s.Route, s.Reason)
			}
		}
	}
	fmt.Fprintf(w, "%d passed, %d failed\n", len(cases)-failed, failed)
	if failed > 0 {
		return fmt.Errorf("%d of %d routing test cases failed", failed, len(cases))
	}
	return nil
}

func parseSince(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err == nil && days > 0 {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--since %q is not a duration like 30d or 12h", s)
	}
	return d, nil
}

// rulesReplay routes stored reports with the given rules and compares with
// the teams they have now. Manual re-routes are left out: rules do not
// override a person's decision.
func rulesReplay(ctx context.Context, w io.Writer, r *routing.Rules, dsn string, since time.Duration) error {
	db, err := clickhouse.Open(ctx, clickhouse.Options{DSN: dsn})
	if err != nil {
		return err
	}
	defer db.Close()
	const limit = 100000
	reports, err := db.ReportsSince(ctx, time.Now().Add(-since), limit)
	if err != nil {
		return err
	}
	moves := map[[2]string]int{}
	used := map[string]int{}
	manual, same := 0, 0
	for _, rep := range reports {
		if rep.RouteSource == "manual" {
			manual++
			continue
		}
		d := r.Route(rep)
		used[d.Route]++
		if d.Team == rep.Route.Team {
			same++
			continue
		}
		moves[[2]string{rep.Route.Team, d.Team}]++
	}
	fmt.Fprintf(w, "%d reports since %s (%d re-routed by hand, left out); %d keep their team\n",
		len(reports), time.Now().Add(-since).UTC().Format(time.RFC3339), manual, same)
	if len(reports) == limit {
		fmt.Fprintf(w, "note: only the first %d reports were replayed\n", limit)
	}
	if len(moves) == 0 {
		fmt.Fprintln(w, "no report would change team")
	} else {
		keys := make([][2]string, 0, len(moves))
		for k := range moves {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			return moves[keys[i]] > moves[keys[j]] || (moves[keys[i]] == moves[keys[j]] && keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1])
		})
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FROM\tTO\tREPORTS")
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", k[0], k[1], moves[k])
		}
		_ = tw.Flush()
	}
	var never []string
	for _, name := range routeNames(r) {
		if used[name] == 0 {
			never = append(never, name)
		}
	}
	if len(never) > 0 {
		fmt.Fprintf(w, "routes that decided no report: %s\n", strings.Join(never, ", "))
	}
	return nil
}

// routeNames lists the deciding routes seen in explanations of an empty
// report, which names every top-level route in order.
func routeNames(r *routing.Rules) []string {
	var names []string
	for _, s := range r.Route(&bugreport.Report{}).Explanation {
		names = append(names, s.Route)
	}
	return names
}
