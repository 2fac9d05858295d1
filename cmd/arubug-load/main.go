// Command arubug-load sends PostHog-format load to an Arubug collector (or
// straight to ClickHouse's HTTP interface, or to a do-nothing baseline
// server it can run itself) and reports throughput, latency percentiles,
// errors by kind and, optionally, how many of the acknowledged events
// reached ClickHouse. Run with -h for the flags and examples.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/arubug/arubug/internal/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK          = 0
	exitFailed      = 1 // -fail-on-error and errors or lost events
	exitUsage       = 2
	exitInterrupted = 130
)

type options struct {
	cfg           loadgen.Config
	jsonOut       bool
	quiet         bool
	uuidsOut      string
	noopAddr      string
	chDSN         string
	countTable    string
	optimize      bool
	countWait     time.Duration
	failOnError   bool
	progressEvery time.Duration
	cpuProfile    string
}

const usageHead = `arubug-load: load generator for Arubug's PostHog-compatible capture API.

Usage:
  arubug-load [flags]                    send load, print a summary
  arubug-load -noop-server ADDR          serve the do-nothing baseline handler
  arubug-load scenario [flags]           full stack, mixed load, faults, invariant checks
                                         (see arubug-load scenario -h)

Each request POSTs posthog-js-shaped events ($pageview, $autocapture, custom
events) with a fresh UUIDv7 each; distinct_id is "<run-id>:user-NNNNN" and
properties.arubug_run_id is the run id, so a run's events can be counted in
ClickHouse afterwards (-clickhouse-dsn). A request counts as OK only on 200.

Flags:
`

const usageTail = `
Examples:
  # Baseline: the do-nothing Go handler as a separate process, then 10s of load
  arubug-load -noop-server 127.0.0.1:18080 &
  arubug-load -url http://127.0.0.1:18080 -c 32 -d 10s

  # The collector: 100k single events, then prove every acked event is stored
  arubug-load -url http://127.0.0.1:8000 -token phc_xxx -n 100000 \
      -clickhouse-dsn clickhouse://127.0.0.1:9000/arubug -fail-on-error

  # posthog-js-like batches of 20 events, gzip-js, open loop at 500 req/s
  arubug-load -url http://127.0.0.1:8000 -batch 20 -gzip -rate 500 -d 30s

  # Direct ClickHouse inserts (one INSERT per event) to compare against
  arubug-load -mode clickhouse-http -url http://127.0.0.1:8123 -table arubug.events -c 8 -d 10s

  # Machine-readable result and the list of acknowledged event UUIDs
  arubug-load -url http://127.0.0.1:8000 -n 1000 -json -uuids-out acked.txt

Exit status: 0 when the run completed (even with errors, unless
-fail-on-error), 1 with -fail-on-error when any request failed or an
acknowledged event is missing from ClickHouse, 2 on bad flags or setup
errors, 130 when interrupted (the summary of the partial run is still
printed).
`

func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("arubug-load", flag.ContinueOnError)
	c := &o.cfg
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:8000", "base `URL` of the target: the collector, the -noop-server, or ClickHouse's HTTP port (8123) with -mode clickhouse-http")
	fs.StringVar(&c.Path, "path", "", "request `path` (default /e/; /batch/ when -batch > 1; / in clickhouse-http mode)")
	fs.StringVar(&c.Token, "token", loadgen.DefaultToken, "project `token`, sent as api_key and properties.token (the project column in clickhouse-http mode)")
	fs.IntVar(&c.Concurrency, "c", loadgen.DefaultConcurrency, "concurrent `workers` (and keep-alive connections)")
	fs.IntVar(&c.Requests, "n", 0, "total `requests` to send (0 = until -d)")
	fs.DurationVar(&c.Duration, "d", 0, "run `duration`, e.g. 10s, 2m (default 10s when -n is 0; with -n, whichever ends first)")
	fs.Float64Var(&c.Rate, "rate", 0, "target `requests/s`, open loop: requests are scheduled at fixed intervals and latency counts from the scheduled time (0 = as fast as possible, closed loop)")
	fs.IntVar(&c.BatchSize, "batch", 1, "`events` per request: 1 = single-event body, > 1 = {\"api_key\",\"batch\":[...],\"sent_at\"} envelope (rows per INSERT in clickhouse-http mode)")
	fs.BoolVar(&c.Gzip, "gzip", false, "gzip bodies (capture: ?compression=gzip-js like posthog-js; clickhouse-http: Content-Encoding: gzip)")
	fs.BoolVar(&c.GzipFull, "gzip-full", false, "with -gzip, compress every body with compress/gzip instead of splicing precompressed pieces (exact client-side ratio, but ~40µs-1ms of generator CPU per body)")
	fs.BoolVar(&c.BugReports, "bug-reports", false, "send $bug_report events shaped like the Arubug widget's instead of analytics events")
	fs.StringVar(&c.Mode, "mode", loadgen.ModeCapture, "run `mode`: capture (PostHog wire format) or clickhouse-http (INSERT ... FORMAT JSONEachRow straight into ClickHouse)")
	fs.StringVar(&c.RunID, "run-id", "", "`id` tagging this run's events (default: a fresh load-<time>-<hex>); must not contain ':'")
	fs.DurationVar(&c.Timeout, "timeout", loadgen.DefaultTimeout, "per-request `timeout`")
	fs.StringVar(&c.Table, "table", loadgen.DefaultTable, "`db.table` to INSERT into in clickhouse-http mode")
	fs.IntVar(&c.PoolSize, "pool", loadgen.DefaultPoolSize, "number of pre-generated event `templates`")
	fs.BoolVar(&o.jsonOut, "json", false, "print the result as JSON on stdout instead of the human summary")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines on stderr")
	fs.DurationVar(&o.progressEvery, "progress", loadgen.DefaultProgressInterval, "progress line `interval`")
	fs.StringVar(&o.uuidsOut, "uuids-out", "", "write the UUIDs of all acknowledged events to `file`, one per line")
	fs.StringVar(&o.noopAddr, "noop-server", "", "serve the do-nothing baseline handler on `addr` (e.g. 127.0.0.1:18080) until interrupted, instead of sending load")
	fs.StringVar(&o.chDSN, "clickhouse-dsn", "", "after the run, check in ClickHouse (native protocol, `dsn` e.g. clickhouse://127.0.0.1:9000/arubug) that every acknowledged event UUID of this run is stored; prints rows/unique counts, missing and extra")
	fs.StringVar(&o.countTable, "count-table", "events", "`table` to count in, in the -clickhouse-dsn database")
	fs.BoolVar(&o.optimize, "optimize", false, "run OPTIMIZE TABLE ... FINAL before counting")
	fs.DurationVar(&o.countWait, "count-wait", 30*time.Second, "with -clickhouse-dsn, keep counting for up to this `long` until every acknowledged event is there (the collector ships to ClickHouse after acking)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the generator (or of the -noop-server) to `file`, for go tool pprof")
	fs.BoolVar(&o.failOnError, "fail-on-error", false, "exit 1 if any request failed or an acknowledged event is missing from ClickHouse")
	return fs
}

func usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprint(w, usageHead)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	fmt.Fprint(w, usageTail)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "scenario" || args[0] == "-scenario" || args[0] == "--scenario") {
		return runScenario(ctx, args[1:], stdout, stderr)
	}
	var o options
	fs := newFlagSet(&o)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(fs, stdout)
			return exitOK
		}
		fmt.Fprintf(stderr, "arubug-load: %v (see -h)\n", err)
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "arubug-load: unexpected arguments %q (see -h)\n", fs.Args())
		return exitUsage
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "arubug-load: cpu profile: %v\n", err)
			return exitUsage
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	if o.noopAddr != "" {
		return serveNoop(ctx, o.noopAddr, stderr)
	}

	cfg := o.cfg
	if cfg.RunID == "" {
		cfg.RunID = loadgen.NewRunID()
	}
	cfg.KeepUUIDs = o.uuidsOut != "" || o.chDSN != ""
	cfg.ProgressInterval = o.progressEvery
	var progress io.Writer
	if !o.quiet {
		progress = stderr
	}
	res, err := loadgen.Run(ctx, cfg, progress)
	interrupted := false
	if err != nil {
		if ctx.Err() == nil {
			fmt.Fprintf(stderr, "arubug-load: %v\n", err)
			return exitUsage
		}
		interrupted = true
	}

	if o.uuidsOut != "" {
		if err := writeLines(o.uuidsOut, res.AckedUUIDs); err != nil {
			fmt.Fprintf(stderr, "arubug-load: %v\n", err)
			return exitUsage
		}
	}

	var ch *chReport
	if o.chDSN != "" && !interrupted {
		ch = countStored(ctx, o, res, stderr)
	}
	res.AckedUUIDs = nil

	if o.jsonOut {
		writeJSON(stdout, cfg, res, ch, interrupted)
	} else {
		writeSummary(stdout, cfg, res, ch, interrupted)
	}

	switch {
	case interrupted:
		return exitInterrupted
	case o.failOnError && (res.Errors > 0 || (ch != nil && (ch.Err != "" || ch.Missing > 0))):
		return exitFailed
	}
	return exitOK
}

// serveNoop runs the baseline server until ctx is done.
func serveNoop(ctx context.Context, addr string, stderr io.Writer) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "arubug-load: %v\n", err)
		return exitUsage
	}
	srv := &http.Server{
		Handler:           loadgen.NoopHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	fmt.Fprintf(stderr, "arubug-load: noop server listening on %s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		fmt.Fprintf(stderr, "arubug-load: %v\n", err)
		return exitFailed
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	fmt.Fprintln(stderr, "arubug-load: noop server stopped")
	return exitOK
}

type chReport struct {
	Table string `json:"table"`
	// Rows is count() with FINAL, Unique uniqExact(uuid), for this run.
	Rows   uint64 `json:"rows"`
	Unique uint64 `json:"unique"`
	// Acked is the number of events the target acknowledged; Missing the
	// acknowledged UUIDs not stored (checked one by one); Extra the stored
	// UUIDs that were not acknowledged (e.g. of requests that timed out or
	// got an error after the collector had taken them).
	Acked         int           `json:"acked"`
	Missing       int           `json:"missing"`
	MissingSample []string      `json:"missing_sample,omitempty"`
	Extra         int           `json:"extra"`
	Waited        time.Duration `json:"waited_ns"`
	Err           string        `json:"error,omitempty"`
}

// countStored polls ClickHouse until every acknowledged event of the run is
// stored or -count-wait passes, then compares the stored UUIDs with the
// acknowledged ones.
func countStored(ctx context.Context, o options, res loadgen.Result, stderr io.Writer) *chReport {
	rep := &chReport{Table: o.countTable, Acked: len(res.AckedUUIDs)}
	opt := loadgen.CountOptions{Table: o.countTable, Optimize: o.optimize}
	start := time.Now()
	for {
		timeUp := time.Since(start) >= o.countWait || ctx.Err() != nil
		rows, unique, err := loadgen.CountInClickHouseWith(ctx, o.chDSN, res.RunID, opt)
		if err == nil {
			rep.Err = ""
			rep.Rows, rep.Unique = rows, unique
			if int(unique) >= rep.Acked || timeUp {
				err = compareUUIDs(ctx, o, res, rep)
				if err == nil && (rep.Missing == 0 || timeUp) {
					rep.Waited = time.Since(start)
					return rep
				}
			}
		}
		if err != nil {
			rep.Err = err.Error()
			if timeUp {
				fmt.Fprintf(stderr, "arubug-load: clickhouse: %v\n", err)
				rep.Waited = time.Since(start)
				return rep
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func compareUUIDs(ctx context.Context, o options, res loadgen.Result, rep *chReport) error {
	stored, err := loadgen.StoredUUIDs(ctx, o.chDSN, res.RunID, loadgen.CountOptions{Table: o.countTable})
	if err != nil {
		return err
	}
	rep.Missing, rep.MissingSample = 0, nil
	for _, u := range res.AckedUUIDs {
		if _, ok := stored[u]; !ok {
			rep.Missing++
			if len(rep.MissingSample) < 5 {
				rep.MissingSample = append(rep.MissingSample, u)
			}
		}
	}
	rep.Extra = len(stored) - (rep.Acked - rep.Missing)
	return nil
}

func writeLines(path string, lines []string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, l := range lines {
		w.WriteString(l)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func writeJSON(w io.Writer, cfg loadgen.Config, res loadgen.Result, ch *chReport, interrupted bool) {
	out := struct {
		RunID  string         `json:"run_id"`
		Config map[string]any `json:"config"`
		Result loadgen.Result `json:"result"`
		// Latency in milliseconds (the result has nanoseconds).
		LatencyMs   map[string]float64 `json:"latency_ms"`
		ClickHouse  *chReport          `json:"clickhouse,omitempty"`
		Interrupted bool               `json:"interrupted,omitempty"`
	}{
		RunID: res.RunID,
		Config: map[string]any{
			"url": cfg.URL, "path": cfg.Path, "mode": cfg.Mode, "concurrency": cfg.Concurrency,
			"requests": cfg.Requests, "duration_ns": cfg.Duration, "rate": cfg.Rate,
			"batch": cfg.BatchSize, "gzip": cfg.Gzip, "timeout_ns": cfg.Timeout,
		},
		Result: res,
		LatencyMs: map[string]float64{
			"p50": ms(res.P50), "p90": ms(res.P90), "p99": ms(res.P99), "max": ms(res.Max),
		},
		ClickHouse:  ch,
		Interrupted: interrupted,
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}

func writeSummary(w io.Writer, cfg loadgen.Config, res loadgen.Result, ch *chReport, interrupted bool) {
	rate := "max"
	if cfg.Rate > 0 {
		rate = fmt.Sprintf("%g/s", cfg.Rate)
	}
	mode := cfg.Mode
	if mode == "" {
		mode = loadgen.ModeCapture
	}
	concurrency := cfg.Concurrency
	if concurrency == 0 {
		concurrency = loadgen.DefaultConcurrency
	}
	batch := max(cfg.BatchSize, 1)
	fmt.Fprintf(w, "run %s  %s %s  c=%d batch=%d gzip=%v rate=%s\n",
		res.RunID, mode, cfg.URL, concurrency, batch, cfg.Gzip, rate)
	if interrupted {
		fmt.Fprintln(w, "  (interrupted: partial run)")
	}
	fmt.Fprintf(w, "  duration   %.2fs\n", res.Duration.Seconds())
	fmt.Fprintf(w, "  requests   %d  (%.1f req/s)  ok %d  errors %d\n", res.Requests, res.RequestsPerSec, res.OK, res.Errors)
	fmt.Fprintf(w, "  events     %d sent, %d acked  (%.1f acked events/s)\n", res.Events, res.AckedEvents, res.EventsPerSec)
	if res.OK > 0 {
		fmt.Fprintf(w, "  latency    p50 %s  p90 %s  p99 %s  max %s  (OK requests)\n",
			loadgen.FormatDuration(res.P50), loadgen.FormatDuration(res.P90),
			loadgen.FormatDuration(res.P99), loadgen.FormatDuration(res.Max))
	} else {
		fmt.Fprintln(w, "  latency    - (no OK request)")
	}
	if res.Unsent > 0 {
		fmt.Fprintf(w, "  unsent     %d scheduled requests never sent: the target could not keep up with -rate\n", res.Unsent)
	}
	if len(res.ErrorsByKind) > 0 {
		kinds := make([]string, 0, len(res.ErrorsByKind))
		for k := range res.ErrorsByKind {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		for _, k := range kinds {
			fmt.Fprintf(w, "  error      %-13s %d  e.g. %s\n", k, res.ErrorsByKind[k], oneLine(res.ErrorSamples[k]))
		}
	}
	fmt.Fprintf(w, "  generator  %s per request body\n", loadgen.FormatDuration(res.GenPerRequest))
	if ch != nil {
		if ch.Err != "" {
			fmt.Fprintf(w, "  clickhouse error: %s\n", ch.Err)
		}
		fmt.Fprintf(w, "  clickhouse %s: rows %d  unique %d  acked %d  missing %d  extra %d  (after %.1fs)\n",
			ch.Table, ch.Rows, ch.Unique, ch.Acked, ch.Missing, ch.Extra, ch.Waited.Seconds())
		if len(ch.MissingSample) > 0 {
			fmt.Fprintf(w, "  missing    e.g. %s\n", strings.Join(ch.MissingSample, " "))
		}
	}
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}
