package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/arubug/arubug/internal/scenario"
)

const scenarioUsage = `arubug-load scenario: the whole pipeline under load and faults.

Usage:
  arubug-load scenario [flags]

Starts its own stack — a managed ClickHouse (free ports, nice 10), the
Zendesk simulator as its own process ('arubug zendesk simulate' with a
requests-per-minute limit, then 'arubug zendesk setup' for the webhook) and
'arubug serve' with the routing rules and no bug-report rate limits — then
sends, for -d, a mix from many simulated users: single events (plain JSON,
POST /e/), gzip batches and plain batches (POST /batch/) and $bug_report
events, while injecting the -faults. Agent replies are added in Zendesk
during the run. After the load the harness waits (at most -drain-timeout)
for the spool and the Zendesk outbox to empty, then checks the invariants:

  * every event acknowledged with a 2xx is in ClickHouse exactly once
    (read with FINAL after OPTIMIZE ... FINAL);
  * every acknowledged non-spam report has exactly one ticket in the
    simulator (by external_id);
  * every comment added in Zendesk is stored once as a $bug_report_message.

Fault kinds (-faults, comma-separated, or all):
  kill          kill -9 of arubug at a random moment, restarted on the same data dir
  clickhouse    ClickHouse stopped (SIGTERM), started again after a hold
  zendesk-5xx   the next 12 Zendesk API requests answer 500, then 503
  zendesk-429   the next 15 answer 429 with Retry-After: 1
  zendesk-drop  the next 3 ticket creates and 2 ticket updates are committed,
                then the connection is dropped without an answer
  disk-full     arubug restarted with spool_max_bytes = -disk-full-bytes and a 5 s
                flush interval for a hold, so the spool fills and capture answers
                503 spool_full; then restarted with the normal settings

Faults run one at a time in [5 %, 80 %] of -d, each kind once before any twice,
at seeded random moments (-seed; the seed is in the report).

Flags:
`

const scenarioTail = `
Examples:
  # The CI check (make check-faults): 60 s, every fault kind once
  arubug-load scenario -d 60s -faults all

  # Figures without faults, plus the two baselines and a CPU profile of arubug
  arubug-load scenario -d 60s -baselines 15s -pprof-addr 127.0.0.1:6061 -cpuprofile arubug.pprof

Exit status: 0 when every invariant held, 1 when one was violated (the
violations are listed), 2 on bad flags or when the stack could not be set up
(e.g. clickhouse-server is not installed), 130 when interrupted.
`

func runScenario(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c scenario.Config
	var faults, jsonOut string
	var asJSON, quiet bool
	fs := flag.NewFlagSet("arubug-load scenario", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.DurationVar(&c.Duration, "d", 60*time.Second, "`duration` of the load and fault phase")
	fs.StringVar(&c.ArubugBin, "arubug", "bin/arubug", "arubug `binary` to run (serve, zendesk simulate, zendesk setup)")
	fs.StringVar(&c.RulesFile, "rules-file", "routing-rules/rules.yaml", "routing rules `file`")
	fs.StringVar(&c.WorkDir, "work-dir", "", "`dir` for the stack's data and logs (default: a temporary dir, removed unless the run fails or -keep)")
	fs.BoolVar(&c.KeepWorkDir, "keep", false, "keep the temporary work dir")
	fs.IntVar(&c.Concurrency, "c", 16, "`workers` of the single-event stream (batch streams get half, reports 4)")
	fs.Float64Var(&c.SingleRate, "single-rate", 200, "single-event POST /e/ requests per `second` (0 = closed loop, < 0 = off)")
	fs.Float64Var(&c.BatchRate, "batch-rate", 10, "gzip /batch/ requests per `second` (0 = closed loop, < 0 = off)")
	fs.IntVar(&c.BatchSize, "batch", 50, "`events` per gzip batch")
	fs.Float64Var(&c.PlainBatchRate, "plain-batch-rate", 10, "plain-JSON /batch/ requests of 10 events per `second` (0 = closed loop, < 0 = off)")
	fs.Float64Var(&c.ReportRate, "report-rate", 1, "$bug_report events per `second` (0 = closed loop, < 0 = off)")
	fs.IntVar(&c.Replies, "replies", 4, "agent replies and notes to add in Zendesk during the run")
	fs.IntVar(&c.ZendeskRPM, "zendesk-rpm", 700, "the simulator's rate limit and arubug's budget, `requests` per minute")
	fs.StringVar(&faults, "faults", "", "fault `kinds` to inject: kill,clickhouse,zendesk-5xx,zendesk-429,zendesk-drop,disk-full or all (default none)")
	fs.IntVar(&c.FaultCount, "fault-count", 0, "`number` of faults in all (default: one of each kind)")
	fs.Uint64Var(&c.Seed, "seed", 0, "`seed` of the fault moments (default: from the clock)")
	fs.Int64Var(&c.DiskFullBytes, "disk-full-bytes", 2<<20, "spool_max_bytes during the disk-full fault, in `bytes` (arubug's minimum is 1MiB)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 3*time.Minute, "longest `wait` after the load for everything to land")
	fs.DurationVar(&c.Baselines, "baselines", 0, "also measure, for this `long` each, the do-nothing handler, arubug and direct ClickHouse inserts (closed-loop single events) and print the ratios")
	fs.StringVar(&c.PprofAddr, "pprof-addr", "", "run arubug with --pprof-addr `addr`")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of arubug over the load phase to `file` (needs -pprof-addr)")
	fs.StringVar(&c.LogLevel, "log-level", "warn", "arubug's log `level`")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON on stdout instead of text")
	fs.StringVar(&jsonOut, "json-out", "", "also write the JSON report to `file`")
	fs.BoolVar(&quiet, "quiet", false, "no progress line on stderr")
	fs.BoolVar(&c.SelfTest, "self-test", false, "after the drain, expect one event, one report and one reply that were never sent: the checks must then fail with exactly 4 violations (exit 1): the event, the report as an event and as a ticket, the reply")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, scenarioUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			fmt.Fprint(stdout, scenarioTail)
			return exitOK
		}
		fmt.Fprintf(stderr, "arubug-load scenario: %v (see -h)\n", err)
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "arubug-load scenario: unexpected arguments %q (see -h)\n", fs.Args())
		return exitUsage
	}
	var err error
	if c.Faults, err = scenario.ParseFaults(faults); err != nil {
		fmt.Fprintf(stderr, "arubug-load scenario: -faults: %v\n", err)
		return exitUsage
	}
	if c.FaultCount > 0 && len(c.Faults) == 0 {
		fmt.Fprintln(stderr, "arubug-load scenario: -fault-count needs -faults")
		return exitUsage
	}
	if c.Baselines > 0 {
		if c.SelfBin, err = os.Executable(); err != nil {
			fmt.Fprintf(stderr, "arubug-load scenario: %v\n", err)
			return exitUsage
		}
	}
	if !quiet {
		c.Progress = stderr
	}
	rep, err := scenario.Run(ctx, c)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "arubug-load scenario: interrupted")
			return exitInterrupted
		}
		fmt.Fprintf(stderr, "arubug-load scenario: %v\n", err)
		return exitUsage
	}
	if jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintf(stderr, "arubug-load scenario: %v\n", err)
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		rep.WriteText(stdout)
	}
	if !rep.Passed() {
		if asJSON {
			fmt.Fprintf(stderr, "arubug-load scenario: FAIL: %d invariant violations:\n", len(rep.Violations))
			for _, v := range rep.Violations {
				fmt.Fprintf(stderr, "  - %s\n", v)
			}
		}
		return exitFailed
	}
	return exitOK
}
