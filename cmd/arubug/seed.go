package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/clickhouse"
	"github.com/arubug/arubug/internal/config"
	"github.com/arubug/arubug/internal/routing"
	"github.com/arubug/arubug/internal/seed"
)

const seedUsage = `Usage: arubug seed [--reports N] [--days N] [--seed N] [--project NAME] [settings flags]

Fills ClickHouse with a synthetic history for demos and benchmarks: people
using the product, their bug reports routed by the rules file, tickets and
conversations. The same --seed writes the same ids, so running it twice
does not double the data. Without --clickhouse-dsn it starts the managed
local ClickHouse under --data-dir, like serve.

  --reports N    bug reports (default 300)
  --days N       spread over this many days up to now (default 30)
  --seed N       random seed (default 1)
  --events-per-person N   ordinary events of each reporter (default 40; there
                 is one reporter per three reports)
  --project NAME project to fill (default: the first configured project)

The ClickHouse, data dir, project and rules settings are those of
'arubug serve --help'.
`

func seedCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	own, rest, err := takeFlags(args, "reports", "days", "seed", "project", "events-per-person")
	if err != nil {
		return err
	}
	for _, a := range rest {
		if a == "-h" || a == "--help" || a == "-help" {
			fmt.Fprint(stdout, seedUsage)
			return nil
		}
	}
	num := func(name string, def int) (int, error) {
		v, ok := own[name]
		if !ok {
			return def, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 10_000_000 {
			return 0, fmt.Errorf("--%s must be a positive number", name)
		}
		return n, nil
	}
	reports, err := num("reports", 300)
	if err != nil {
		return err
	}
	days, err := num("days", 30)
	if err != nil {
		return err
	}
	s, err := num("seed", 1)
	if err != nil {
		return err
	}
	perPerson, err := num("events-per-person", 40)
	if err != nil {
		return err
	}
	cfg, err := loadConfig("seed", rest, getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	projects, err := cfg.ProjectList()
	if err != nil || len(projects) == 0 {
		return fmt.Errorf("no project to seed: set --project-tokens or the file's projects list")
	}
	project := projects[0]
	if name := own["project"]; name != "" {
		found := false
		for _, p := range projects {
			if p.Name == name {
				project, found = p, true
			}
		}
		if !found {
			return fmt.Errorf("--project %q is not a configured project", name)
		}
	}
	rules, err := routing.Load(cfg.RulesFile, routing.Options{})
	if err != nil {
		return fmt.Errorf("%s is invalid:\n%w", cfg.RulesFile, indent(err))
	}
	dsn, stop, err := clickHouseSource(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer stop()
	db, err := clickhouse.Open(ctx, clickhouse.Options{DSN: dsn, Logger: log, CreateDatabase: true, Cluster: cfg.ClickHouseCluster})
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		return err
	}
	start := time.Now()
	o := seedOptions(cfg, project, rules, reports, days, uint64(s))
	o.EventsPerPerson = perPerson
	sum, err := seed.Run(ctx, db, o, func(sum seed.Summary) {
		fmt.Fprintf(stderr, "\rseeding %s: %s", project.Name, sum)
	})
	fmt.Fprintln(stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seeded project %s with %s in %s\n", project.Name, sum, time.Since(start).Round(time.Millisecond))
	return nil
}

func seedOptions(cfg config.Config, p bugreport.Project, rules *routing.Rules, reports, days int, s uint64) seed.Options {
	return seed.Options{Project: p.Name, Token: p.Token, ReplayHost: p.ReplayHost, Reports: reports, Days: days, Seed: s, Rules: rules}
}

// seedDev gives a fresh dev setup a small history so the dashboards have
// something to show; it does nothing once any report exists.
func seedDev(ctx context.Context, st *store, cfg config.Config, p bugreport.Project, rules *routing.Rules, log *slog.Logger) {
	db, err := st.get(ctx)
	if err != nil {
		return
	}
	if existing, err := db.ReportsSince(ctx, time.Now().AddDate(-1, 0, 0), 1); err != nil || len(existing) > 0 {
		return
	}
	sum, err := seed.Run(ctx, db, seedOptions(cfg, p, rules, 40, 14, 1), nil)
	if err != nil {
		log.Warn("seeding the dev history failed", "err", err)
		return
	}
	log.Info("dev: seeded a small synthetic history for the dashboards (arubug seed makes bigger ones)", "project", p.Name, "summary", sum.String())
}
