// Package scenario runs Arubug's whole-pipeline scenario: it starts a full
// stack (a managed ClickHouse, the Zendesk simulator as its own process,
// `arubug serve`), sends a mix of ordinary events and bug reports from many
// simulated users for a set duration while injecting bounded faults (kill -9
// of arubug, ClickHouse stopped, Zendesk 5xx/429/dropped answers, a full
// spool), lets the system drain, and then checks the invariants:
//
//   - every event acknowledged with a 2xx is in ClickHouse exactly once;
//   - every acknowledged non-spam bug report has exactly one Zendesk ticket;
//   - every comment added in Zendesk during the run is stored once as a
//     $bug_report_message event.
//
// The Report holds the figures (throughput, ack latency, ack → ticket
// latency, CPU and memory of arubug and ClickHouse) and the violations.
package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/arubug/arubug/internal/clickhouse/localch"
	"github.com/arubug/arubug/internal/loadgen"
	"github.com/arubug/arubug/internal/zendesk"
	"github.com/arubug/arubug/internal/zendesk/zendesktest"
)

// Config describes one scenario. Zero values get the defaults documented
// on each field.
type Config struct {
	// ArubugBin is the arubug binary to run. Default "bin/arubug".
	ArubugBin string
	// SelfBin is the arubug-load binary, run as `-noop-server` for the
	// do-nothing baseline. Required with Baselines.
	SelfBin string
	// RulesFile is the routing rules file. Default "routing-rules/rules.yaml".
	RulesFile string
	// WorkDir holds the stack's data and logs. Default: a fresh temporary
	// directory, removed at the end unless KeepWorkDir or the run failed.
	WorkDir     string
	KeepWorkDir bool

	// Duration of the load (and fault) phase. Default 60s.
	Duration time.Duration
	// Concurrency is the number of workers of the single-event stream;
	// the batch streams use half, the report stream 4. Default 16.
	Concurrency int
	// SingleRate is the rate of single-event POST /e/ requests (plain
	// JSON), BatchRate that of gzip /batch/ requests of BatchSize events,
	// PlainBatchRate that of plain-JSON /batch/ requests of 10 events, and
	// ReportRate that of $bug_report events (POST /e/), all per second. A
	// negative rate turns a stream off; 0 means as fast as the workers go
	// (closed loop). Defaults: 200, 10, 10, 1; BatchSize 50.
	SingleRate, BatchRate, PlainBatchRate, ReportRate float64
	BatchSize                                         int
	// Replies is the number of agent replies (and internal notes) added in
	// the simulator during the run, whose storage is checked. Default 4.
	Replies int
	// ZendeskRPM is the simulator's rate limit and arubug's budget.
	// Default 700 (Zendesk Enterprise).
	ZendeskRPM int

	// Faults are the fault kinds to inject (see ParseFaults), FaultCount how
	// many faults in all (default: one of each kind), Seed the randomness
	// of their moments (default: from the clock; printed in the report).
	Faults     []string
	FaultCount int
	Seed       uint64
	// DiskFullBytes is the spool_max_bytes of the disk-full fault's window
	// (at least 1MiB, arubug's minimum). Default 2MiB.
	DiskFullBytes int64
	// DrainTimeout bounds the wait, after the load, for the spool and the
	// Zendesk outbox to empty and everything to land. Default 3m.
	DrainTimeout time.Duration

	// Baselines, when positive, measures for that long each, before the
	// scenario and on the same machine: the do-nothing handler, arubug,
	// and one ClickHouse HTTP INSERT per event, with closed-loop
	// single-event load of Concurrency workers (capture-bench.sh's three
	// targets), to state the ratios.
	Baselines time.Duration
	// PprofAddr, when set, is passed to arubug as --pprof-addr, and
	// CPUProfile, when also set, receives a CPU profile of arubug over the
	// load phase (without faults that restart arubug, it covers all of it).
	PprofAddr  string
	CPUProfile string
	// LogLevel is arubug's log level. Default "warn".
	LogLevel string
	// SelfTest adds, after the drain, one acknowledged event, one report
	// and one reply that were never sent or made to what the checks
	// expect, so that a run proves the checks catch a loss: it must end
	// with exactly four violations (the event; the report, as an event
	// and as a ticket; the reply).
	SelfTest bool

	// Progress receives the live progress line and fault notices (nil:
	// none). On a terminal the line is rewritten in place.
	Progress io.Writer
}

func (c Config) withDefaults() (Config, error) {
	if c.ArubugBin == "" {
		c.ArubugBin = "bin/arubug"
	}
	if c.RulesFile == "" {
		c.RulesFile = "routing-rules/rules.yaml"
	}
	if c.Duration == 0 {
		c.Duration = 60 * time.Second
	}
	if c.Concurrency == 0 {
		c.Concurrency = 16
	}
	if c.SingleRate == 0 && c.BatchRate == 0 && c.PlainBatchRate == 0 && c.ReportRate == 0 {
		c.SingleRate, c.BatchRate, c.PlainBatchRate, c.ReportRate = 200, 10, 10, 1
	}
	if c.BatchSize == 0 {
		c.BatchSize = 50
	}
	if c.Replies == 0 {
		c.Replies = 4
	}
	if c.ZendeskRPM == 0 {
		c.ZendeskRPM = 700
	}
	if c.FaultCount == 0 {
		c.FaultCount = len(c.Faults)
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	if c.DiskFullBytes == 0 {
		c.DiskFullBytes = 2 << 20
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 3 * time.Minute
	}
	if c.LogLevel == "" {
		c.LogLevel = "warn"
	}
	var errs []error
	if c.Duration < 10*time.Second {
		errs = append(errs, errors.New("duration must be at least 10s"))
	}
	if c.Concurrency < 1 || c.BatchSize < 2 || c.Replies < 0 || c.ZendeskRPM < 1 || c.FaultCount < 0 {
		errs = append(errs, errors.New("concurrency, batch size, replies, zendesk rpm and fault count must be positive"))
	}
	if c.Baselines > 0 && c.SelfBin == "" {
		errs = append(errs, errors.New("baselines need SelfBin (the arubug-load binary)"))
	}
	if c.CPUProfile != "" && c.PprofAddr == "" {
		errs = append(errs, errors.New("a CPU profile needs a pprof address"))
	}
	if _, err := os.Stat(c.ArubugBin); err != nil {
		errs = append(errs, fmt.Errorf("arubug binary: %w (run make build)", err))
	}
	if _, err := os.Stat(c.RulesFile); err != nil {
		errs = append(errs, fmt.Errorf("rules file: %w", err))
	}
	return c, errors.Join(errs...)
}

// stream is one kind of traffic of the mix.
type stream struct {
	name string
	cfg  loadgen.Config
	res  loadgen.Result
	err  error
}

// run is the state of one scenario.
type run struct {
	cfg   Config
	id    string
	work  string
	log   *progress
	start time.Time // of the load phase

	ch        *localch.Server
	dsn       string
	sim       *child
	simc      *simClient
	arubug    *child
	arubugEnv []string
	addr      string
	secret    string

	cpuArubug, cpuCH *cpuMeter

	// load accounting (OnAck/OnError of every stream)
	ackLat   loadgen.Histogram
	reqs     atomic.Int64
	acked    atomic.Int64 // events
	errs     atomic.Int64
	refused  atomic.Int64 // 503 answers
	reportMu sync.Mutex
	reportAt map[string]time.Time // report uuid → ack time

	// tickets as the poller saw them
	ticketMu    sync.Mutex
	ticketSeen  map[string]time.Time // external_id → first seen
	ticketIDs   []int64
	lastTicket  int64
	ackToTicket loadgen.Histogram

	replyMu sync.Mutex
	replies []Reply

	faultMu   sync.Mutex
	faultsRun []FaultRecord
	faultNow  string
	// unusedZendesk counts scripted Zendesk answers never used.
	unusedZendesk int
	restarts      atomic.Int64
}

// Run runs the scenario described by cfg. It returns the report (with any
// invariant violations in Report.Violations) and an error only when the
// stack could not be set up or run; a report with violations is not an
// error.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &run{
		cfg:        cfg,
		id:         "scn-" + time.Now().UTC().Format("20060102T150405") + "-" + uuid.NewString()[:8],
		log:        newProgress(cfg.Progress),
		cpuArubug:  newCPUMeter(),
		cpuCH:      newCPUMeter(),
		reportAt:   map[string]time.Time{},
		ticketSeen: map[string]time.Time{},
	}
	r.work = cfg.WorkDir
	if r.work == "" {
		if r.work, err = os.MkdirTemp("", "arubug-scenario-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(r.work, 0o755); err != nil {
		return nil, err
	}
	rep, err := r.run(ctx)
	r.teardown()
	failed := err != nil || (rep != nil && len(rep.Violations) > 0 && !cfg.SelfTest)
	if rep != nil {
		rep.WorkDir = r.work
	}
	if cfg.WorkDir == "" && !cfg.KeepWorkDir && !failed {
		os.RemoveAll(r.work)
		if rep != nil {
			rep.WorkDir = ""
		}
	}
	if err != nil && rep == nil {
		err = fmt.Errorf("%w (data and logs kept in %s)", err, r.work)
	}
	return rep, err
}

func (r *run) run(ctx context.Context) (*Report, error) {
	rep := &Report{RunID: r.id, Seed: r.cfg.Seed, Started: time.Now().UTC(), Machine: machine(), Violations: []string{}}
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	if r.cfg.Baselines > 0 {
		b, err := r.baselines(ctx)
		if err != nil {
			return nil, fmt.Errorf("baselines: %w", err)
		}
		rep.Baselines = b
	}
	plan := schedule(r.cfg.Faults, r.cfg.FaultCount, r.cfg.Duration, rand.New(rand.NewPCG(r.cfg.Seed, r.cfg.Seed>>1|1)))
	rep.LoadAvgStart = loadAvg()

	streams := r.streams()
	r.cpuArubug.mark(r.arubug.pid())
	r.cpuCH.mark(childrenNamed("clickhouse")...)
	selfStart := readProcStat(os.Getpid()).cpu

	bgCtx, stopBg := context.WithCancel(ctx)
	var bg sync.WaitGroup
	bg.Go(func() { r.sampleLoop(bgCtx) })
	bg.Go(func() { r.pollTickets(bgCtx) })
	bg.Go(func() { r.progressLoop(bgCtx) })

	r.start = time.Now()
	var profErr error
	var profWG sync.WaitGroup
	if r.cfg.CPUProfile != "" {
		profWG.Go(func() { profErr = r.profile(ctx) })
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var loadWG sync.WaitGroup
	for _, s := range streams {
		loadWG.Go(func() { s.res, s.err = loadgen.Run(loadCtx, s.cfg, nil) })
	}
	var faultErr error
	var faultWG sync.WaitGroup
	faultWG.Go(func() {
		if faultErr = r.runFaults(ctx, plan); faultErr != nil {
			stopLoad() // the stack is broken: no point in loading it further
		}
	})
	faultWG.Go(func() { r.addReplies(ctx) })
	loadWG.Wait()
	loadEnd := time.Now()
	faultWG.Wait()
	profWG.Wait()
	rep.LoadAvgEnd = loadAvg()
	if ctx.Err() != nil {
		stopBg()
		bg.Wait()
		return nil, ctx.Err()
	}
	if faultErr != nil {
		stopBg()
		bg.Wait()
		return nil, faultErr
	}
	if profErr != nil {
		r.log.notice("cpu profile: %v", profErr)
		rep.Notes = append(rep.Notes, "cpu profile failed: "+profErr.Error())
	}

	r.log.notice("load done after %s; draining (at most %s)", loadEnd.Sub(r.start).Round(100*time.Millisecond), r.cfg.DrainTimeout)
	st, err := openStore(r.dsn)
	if err != nil {
		stopBg()
		bg.Wait()
		return nil, err
	}
	defer st.Close()
	drained, drainState := r.drain(ctx, st, streams)
	drainEnd := time.Now()
	stopBg()
	bg.Wait()
	r.cpuArubug.sample(r.arubug.pid())
	r.cpuCH.sample(childrenNamed("clickhouse")...)
	selfCPU := readProcStat(os.Getpid()).cpu - selfStart

	r.fillLoad(rep, streams, loadEnd.Sub(r.start))
	rep.DrainSeconds = drainEnd.Sub(loadEnd).Seconds()
	if !drained {
		rep.Violations = append(rep.Violations, fmt.Sprintf("the system did not drain within %s: %s", r.cfg.DrainTimeout, drainState))
	}
	if r.cfg.SelfTest {
		r.fabricate(streams)
		rep.Notes = append(rep.Notes, "self-test: one event, one report and one reply that were never sent were added to the expectations; the run must report exactly 4 violations (the event, the report as an event and as a ticket, the reply)")
	}
	if err := r.check(ctx, st, streams, rep); err != nil {
		return nil, fmt.Errorf("checking the invariants: %w", err)
	}
	cpuA, hwm := r.cpuArubug.total()
	cpuC, chHWM := r.cpuCH.total()
	rep.Resources = Resources{
		ArubugCPUSeconds:     cpuA.Seconds(),
		ClickHouseCPUSeconds: cpuC.Seconds(),
		LoadGenCPUSeconds:    selfCPU.Seconds(),
		ArubugPeakRSSMiB:     float64(hwm) / (1 << 20),
		ClickHousePeakRSSMiB: float64(chHWM) / (1 << 20),
		ArubugRestarts:       int(r.restarts.Load()),
	}
	if rep.Load.AckedEvents > 0 {
		m := float64(rep.Load.AckedEvents) / 1e6
		rep.Resources.ArubugCPUSecondsPerMillionEvents = cpuA.Seconds() / m
		rep.Resources.ClickHouseCPUSecondsPerMillionEvents = cpuC.Seconds() / m
	}
	r.faultMu.Lock()
	rep.Faults = slices.Clone(r.faultsRun)
	if r.unusedZendesk > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d scripted Zendesk fault answers were not used (no matching request came before the fault phase ended)", r.unusedZendesk))
	}
	r.faultMu.Unlock()
	if len(rep.Baselines) > 0 {
		rep.Ratios = ratios(rep.Baselines)
	}
	rep.Finished = time.Now().UTC()
	return rep, nil
}

// ---- setup and teardown ----

func (r *run) setup(ctx context.Context) error {
	r.log.notice("work dir %s", r.work)
	r.log.notice("starting clickhouse-server")
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	ch, err := localch.Start(sctx, localch.Options{
		DataDir: filepath.Join(r.work, "clickhouse"),
		Nice:    10, // as `arubug serve` runs its managed server
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return fmt.Errorf("start clickhouse: %w", err)
	}
	r.ch = ch
	r.dsn = ch.DSN("arubug")

	simAddr, err := freeAddr()
	if err != nil {
		return err
	}
	r.sim = &child{
		name: "zendesk simulator", bin: r.cfg.ArubugBin,
		args:    []string{"zendesk", "simulate", "--addr", simAddr, "--requests-per-minute", fmt.Sprint(r.cfg.ZendeskRPM), "--rules-file", r.cfg.RulesFile},
		env:     baseEnv(),
		logPath: filepath.Join(r.work, "zendesk-sim.log"),
	}
	if err := r.sim.start(); err != nil {
		return err
	}
	simURL := "http://" + simAddr
	if err := waitHTTP(ctx, r.sim, simURL+"/_sim/tickets.json?comments=false", 30*time.Second); err != nil {
		return err
	}
	r.simc = newSimClient(simURL)

	if r.addr, err = freeAddr(); err != nil {
		return err
	}
	secretFile := filepath.Join(r.work, "webhook-secret")
	zenv := []string{
		"ARUBUG_ZENDESK_URL=" + simURL,
		"ARUBUG_ZENDESK_EMAIL=" + zendesktest.DefaultEmail,
		"ARUBUG_ZENDESK_API_TOKEN=" + zendesktest.DefaultAPIToken,
	}
	setup := exec.CommandContext(ctx, r.cfg.ArubugBin, "zendesk", "setup",
		"--webhook-url", "http://"+r.addr+"/webhooks/zendesk", "--secret-file", secretFile, "--rules-file", r.cfg.RulesFile)
	setup.Env = append(baseEnv(), zenv...)
	if out, err := setup.CombinedOutput(); err != nil {
		return fmt.Errorf("arubug zendesk setup: %v\n%s", err, out)
	}

	var pprof []string
	if r.cfg.PprofAddr != "" {
		pprof = []string{"ARUBUG_PPROF_ADDR=" + r.cfg.PprofAddr}
	}
	r.arubugEnv = append(append(append(baseEnv(), zenv...),
		"ARUBUG_ADDR="+r.addr,
		"ARUBUG_DATA_DIR="+filepath.Join(r.work, "arubug-data"),
		"ARUBUG_CLICKHOUSE_DSN="+r.dsn,
		"ARUBUG_PROJECT_TOKENS="+loadgen.DefaultToken,
		"ARUBUG_ADMIN_TOKEN="+uuid.NewString(),
		"ARUBUG_RULES_FILE="+r.cfg.RulesFile,
		"ARUBUG_LOG_FORMAT=json",
		"ARUBUG_LOG_LEVEL="+r.cfg.LogLevel,
		"ARUBUG_BUG_REPORTS_PER_IP=0",
		"ARUBUG_BUG_REPORTS_PER_USER=0",
		"ARUBUG_ZENDESK_WEBHOOK_SECRET_FILE="+secretFile,
		"ARUBUG_ZENDESK_REQUESTS_PER_MINUTE="+fmt.Sprint(r.cfg.ZendeskRPM),
		// A report whose hand-over to the outbox a kill interrupted is
		// ticketed by the reconciler after the grace period; keep it short.
		"ARUBUG_ZENDESK_SYNC_GRACE=10s",
		// The comment pull fills the gaps of webhooks lost while arubug
		// was down (the simulator retries a delivery only briefly).
		"ARUBUG_ZENDESK_COMMENT_POLL_INTERVAL=15s",
	), pprof...)
	r.arubug = &child{name: "arubug", bin: r.cfg.ArubugBin, args: []string{"serve"}, env: r.arubugEnv,
		logPath: filepath.Join(r.work, "arubug.log")}
	r.log.notice("starting arubug serve on %s (zendesk simulator %s, clickhouse %s)", r.addr, simURL, r.ch.TCPAddr())
	return r.startArubug(ctx, nil)
}

// startArubug starts arubug with extra environment settings and waits
// until it is ready (ClickHouse reachable, spool open).
func (r *run) startArubug(ctx context.Context, extra []string) error {
	r.arubug.env = append(slices.Clone(r.arubugEnv), extra...)
	if err := r.arubug.start(); err != nil {
		return err
	}
	return waitHTTP(ctx, r.arubug, "http://"+r.addr+"/_health", 90*time.Second)
}

func (r *run) teardown() {
	if r.arubug != nil {
		if err := r.arubug.stop(30 * time.Second); err != nil {
			r.log.notice("%v", err)
		}
	}
	if r.sim != nil {
		_ = r.sim.stop(5 * time.Second)
	}
	if r.ch != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = r.ch.Stop(ctx)
		cancel()
	}
	r.log.done()
}

// ---- load ----

func (r *run) streams() []*stream {
	c := r.cfg
	onAck := func(ids []uuid.UUID, at time.Time, lat time.Duration) {
		r.reqs.Add(1)
		r.acked.Add(int64(len(ids)))
		r.ackLat.Record(lat)
	}
	onErr := func(kind string) {
		r.reqs.Add(1)
		r.errs.Add(1)
		if kind == "http_503" {
			r.refused.Add(1)
		}
	}
	base := loadgen.Config{
		URL: "http://" + r.addr, KeepUUIDs: true, Timeout: 10 * time.Second,
		Duration: c.Duration, OnAck: onAck, OnError: onErr,
	}
	var out []*stream
	add := func(name string, rate float64, mod func(*loadgen.Config)) {
		if rate < 0 {
			return
		}
		cfg := base
		cfg.RunID = r.id + "-" + name
		cfg.Rate = rate
		mod(&cfg)
		cfg.Path = "/e/"
		if cfg.BatchSize > 1 {
			cfg.Path = "/batch/"
		}
		out = append(out, &stream{name: name, cfg: cfg})
	}
	add("single", c.SingleRate, func(l *loadgen.Config) { l.Concurrency = c.Concurrency; l.BatchSize = 1 })
	add("batch-gzip", c.BatchRate, func(l *loadgen.Config) {
		l.Concurrency = max(2, c.Concurrency/2)
		l.BatchSize, l.Gzip = c.BatchSize, true
	})
	add("batch-plain", c.PlainBatchRate, func(l *loadgen.Config) { l.Concurrency = max(2, c.Concurrency/2); l.BatchSize = 10 })
	add("reports", c.ReportRate, func(l *loadgen.Config) {
		l.Concurrency, l.BatchSize, l.BugReports = 4, 1, true
		l.OnAck = func(ids []uuid.UUID, at time.Time, lat time.Duration) {
			onAck(ids, at, lat)
			r.reportMu.Lock()
			for _, id := range ids {
				if _, ok := r.reportAt[id.String()]; !ok {
					r.reportAt[id.String()] = at
				}
			}
			r.reportMu.Unlock()
		}
	})
	return out
}

func (r *run) fillLoad(rep *Report, streams []*stream, d time.Duration) {
	l := &rep.Load
	l.Seconds = d.Seconds()
	l.ErrorsByKind = map[string]int{}
	for _, s := range streams {
		res := s.res
		st := StreamResult{
			Name: s.name, Path: s.cfg.Path, Batch: max(1, s.cfg.BatchSize), Gzip: s.cfg.Gzip, Rate: s.cfg.Rate,
			Requests: res.Requests, OK: res.OK, AckedEvents: res.AckedEvents, Errors: res.Errors,
			ErrorsByKind: res.ErrorsByKind, P50Ms: ms(res.P50), P99Ms: ms(res.P99), MaxMs: ms(res.Max),
		}
		if s.err != nil {
			st.Error = s.err.Error()
		}
		l.Streams = append(l.Streams, st)
		l.Requests += res.Requests
		l.OK += res.OK
		l.AckedEvents += res.AckedEvents
		l.Errors += res.Errors
		for k, n := range res.ErrorsByKind {
			l.ErrorsByKind[k] += n
		}
		if s.cfg.BugReports {
			l.AckedReports += res.AckedEvents
		}
	}
	if d > 0 {
		l.RequestsPerSec = float64(l.Requests) / d.Seconds()
		l.EventsPerSec = float64(l.AckedEvents) / d.Seconds()
	}
	l.AckP50Ms, l.AckP99Ms, l.AckMaxMs = ms(r.ackLat.Quantile(0.5)), ms(r.ackLat.Quantile(0.99)), ms(r.ackLat.Max())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ---- background loops ----

func (r *run) sampleLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.cpuArubug.sample(r.arubug.pid())
			r.cpuCH.sample(childrenNamed("clickhouse")...)
		}
	}
}

// pollTickets notes when each ticket first appears in the simulator, for
// ack → ticket latency (at the poll's 250 ms resolution).
func (r *run) pollTickets(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.ticketMu.Lock()
		since := r.lastTicket
		r.ticketMu.Unlock()
		ts, err := r.simc.tickets(ctx, since, false)
		if err != nil {
			continue
		}
		now := time.Now()
		r.reportMu.Lock()
		r.ticketMu.Lock()
		for _, tk := range ts {
			r.lastTicket = max(r.lastTicket, tk.ID)
			r.ticketIDs = append(r.ticketIDs, tk.ID)
			if tk.ExternalID == nil {
				continue
			}
			ext := *tk.ExternalID
			if _, ok := r.ticketSeen[ext]; ok {
				continue
			}
			r.ticketSeen[ext] = now
			if at, ok := r.reportAt[ext]; ok {
				r.ackToTicket.Record(now.Sub(at))
			}
		}
		r.ticketMu.Unlock()
		r.reportMu.Unlock()
	}
}

// addReplies adds agent replies and internal notes to tickets seen so
// far, spread over the second half of the run; the simulator's trigger
// posts each to arubug's webhook.
func (r *run) addReplies(ctx context.Context) {
	for i := range r.cfg.Replies {
		at := r.cfg.Duration/2 + r.cfg.Duration*time.Duration(i)*2/5/time.Duration(r.cfg.Replies)
		if !sleepUntil(ctx, r.start.Add(at)) {
			return
		}
		r.ticketMu.Lock()
		ids := slices.Clone(r.ticketIDs)
		r.ticketMu.Unlock()
		if len(ids) == 0 {
			r.log.notice("reply %d skipped: no ticket yet", i+1)
			continue
		}
		tid := ids[rand.IntN(len(ids))]
		public := i%2 == 0
		body := fmt.Sprintf("Scenario %s reply %d: thanks, we are looking into it.", r.id, i+1)
		c, err := r.simc.agentReply(ctx, tid, body, public)
		if err != nil {
			r.log.notice("reply %d on ticket %d failed: %v", i+1, tid, err)
			continue
		}
		r.replyMu.Lock()
		r.replies = append(r.replies, Reply{TicketID: tid, CommentID: c.ID, Public: public,
			EventUUID: zendesk.CommentEventID(tid, c.ID).String()})
		r.replyMu.Unlock()
	}
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

// profile takes a CPU profile of arubug over the load phase.
func (r *run) profile(ctx context.Context) error {
	secs := int(max(5, (r.cfg.Duration - 2*time.Second).Seconds()))
	hc := &http.Client{Timeout: time.Duration(secs+30) * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", r.cfg.PprofAddr, secs), nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("pprof: %d %s", resp.StatusCode, b)
	}
	f, err := os.Create(r.cfg.CPUProfile)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ---- faults ----

func (r *run) runFaults(ctx context.Context, plan []plannedFault) error {
	for i, pf := range plan {
		if !sleepUntil(ctx, r.start.Add(pf.At)) {
			return nil
		}
		rec := FaultRecord{Kind: pf.Kind, AtSeconds: time.Since(r.start).Seconds()}
		r.setFault(fmt.Sprintf("%s (%d/%d)", pf.Kind, i+1, len(plan)))
		detail, err := r.inject(ctx, pf)
		rec.Detail = detail
		rec.Seconds = time.Since(r.start).Seconds() - rec.AtSeconds
		r.setFault("")
		if err != nil {
			rec.Error = err.Error()
			r.recordFault(rec)
			return fmt.Errorf("fault %s: %w", pf.Kind, err)
		}
		r.recordFault(rec)
		r.log.notice("fault %d/%d %s at %.1fs: %s (%.1fs)", i+1, len(plan), pf.Kind, rec.AtSeconds, detail, rec.Seconds)
	}
	// Scripted Zendesk faults not used up end with the fault phase.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var left struct {
		Faults []zendesktest.FaultSpec `json:"faults"`
	}
	if err := r.simc.do(cctx, http.MethodGet, "/_sim/faults", nil, &left); err == nil && len(left.Faults) > 0 {
		n := 0
		for _, f := range left.Faults {
			n += f.N
		}
		r.log.notice("%d scripted zendesk answers were not used before the end of the fault phase; cleared", n)
		r.faultMu.Lock()
		r.unusedZendesk = n
		r.faultMu.Unlock()
	}
	return r.simc.clearFaults(cctx)
}

func (r *run) setFault(s string) {
	r.faultMu.Lock()
	r.faultNow = s
	r.faultMu.Unlock()
}

func (r *run) recordFault(f FaultRecord) {
	r.faultMu.Lock()
	r.faultsRun = append(r.faultsRun, f)
	r.faultMu.Unlock()
}

// inject applies one fault and, for those that last, waits for its hold
// and restores the stack. It returns what was done.
func (r *run) inject(ctx context.Context, pf plannedFault) (string, error) {
	switch pf.Kind {
	case FaultKill:
		r.cpuArubug.sample(r.arubug.pid())
		r.arubug.kill()
		r.restarts.Add(1)
		time.Sleep(200 * time.Millisecond)
		began := time.Now()
		if err := r.startArubug(ctx, nil); err != nil {
			return "", err
		}
		return fmt.Sprintf("kill -9, restarted on the same data dir in %.1fs", time.Since(began).Seconds()), nil
	case FaultClickHouse:
		r.cpuCH.sample(childrenNamed("clickhouse")...)
		sctx, cancel := context.WithTimeout(ctx, 40*time.Second)
		defer cancel()
		if err := r.ch.Stop(sctx); err != nil {
			return "", fmt.Errorf("stop clickhouse: %w", err)
		}
		sleepUntil(ctx, time.Now().Add(pf.Hold))
		began := time.Now()
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
		defer rcancel()
		if err := r.ch.Restart(rctx); err != nil {
			return "", fmt.Errorf("restart clickhouse: %w", err)
		}
		return fmt.Sprintf("clickhouse stopped for %s, back in %.1fs", pf.Hold, time.Since(began).Seconds()), nil
	case FaultZendesk5xx:
		n := 12
		if err := r.simc.addFault(ctx, zendesktest.FaultSpec{Kind: "status", Path: "/api/v2/", N: n / 2, Status: 500}); err != nil {
			return "", err
		}
		if err := r.simc.addFault(ctx, zendesktest.FaultSpec{Kind: "status", Path: "/api/v2/", N: n / 2, Status: 503}); err != nil {
			return "", err
		}
		return fmt.Sprintf("the next %d zendesk api requests answer 500 (6) then 503 (6)", n), nil
	case FaultZendesk429:
		n := 15
		if err := r.simc.addFault(ctx, zendesktest.FaultSpec{Kind: "status", Path: "/api/v2/", N: n, Status: 429}); err != nil {
			return "", err
		}
		return fmt.Sprintf("the next %d zendesk api requests answer 429 Retry-After: 1", n), nil
	case FaultZendeskDrop:
		if err := r.simc.addFault(ctx, zendesktest.FaultSpec{Kind: "drop", Method: "POST", Path: "/api/v2/tickets", N: 3}); err != nil {
			return "", err
		}
		if err := r.simc.addFault(ctx, zendesktest.FaultSpec{Kind: "drop", Method: "PUT", Path: "/api/v2/tickets/", N: 2}); err != nil {
			return "", err
		}
		return "the next 3 ticket creates and 2 ticket updates (comments) are committed, then the connection is dropped", nil
	case FaultDiskFull:
		r.cpuArubug.sample(r.arubug.pid())
		if err := r.arubug.stop(30 * time.Second); err != nil {
			return "", err
		}
		r.restarts.Add(1)
		// The smallest spool arubug accepts is 1MiB and no smaller than the
		// largest decoded payload; the drain runs every 5 s instead of
		// every second, so the spool fills as it would behind a slow disk
		// or a slow ClickHouse.
		small := []string{
			fmt.Sprintf("ARUBUG_SPOOL_MAX_BYTES=%d", r.cfg.DiskFullBytes),
			"ARUBUG_MAX_DECOMPRESSED_BYTES=1MiB",
			"ARUBUG_MAX_BATCH_BODY_BYTES=512KiB",
			"ARUBUG_MAX_BODY_BYTES=512KiB",
			"ARUBUG_FLUSH_INTERVAL=5s",
		}
		if err := r.startArubug(ctx, small); err != nil {
			return "", err
		}
		before := r.refused.Load()
		sleepUntil(ctx, time.Now().Add(pf.Hold))
		refused := r.refused.Load() - before
		r.cpuArubug.sample(r.arubug.pid())
		if err := r.arubug.stop(30 * time.Second); err != nil {
			return "", err
		}
		r.restarts.Add(1)
		if err := r.startArubug(ctx, nil); err != nil {
			return "", err
		}
		return fmt.Sprintf("arubug restarted (SIGTERM) with spool_max_bytes=%d and a 5 s flush interval for %s: %d requests answered 503 meanwhile; then restarted with the normal settings", r.cfg.DiskFullBytes, pf.Hold, refused), nil
	}
	return "", fmt.Errorf("unknown fault %q", pf.Kind)
}

// ---- drain and checks ----

// drain waits until the spool and the outbox are empty and every
// acknowledged event, report ticket and reply has landed, or the drain
// timeout passes. It returns whether it drained and the last state seen.
func (r *run) drain(ctx context.Context, st *store, streams []*stream) (bool, string) {
	deadline := time.Now().Add(r.cfg.DrainTimeout)
	state := ""
	for {
		ok, s := r.drained(ctx, st, streams)
		state = s
		r.log.setDrain(s)
		if ok {
			r.log.setDrain("")
			return true, state
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.log.setDrain("")
			return false, state
		}
		sleepUntil(ctx, time.Now().Add(time.Second))
	}
}

func (r *run) drained(ctx context.Context, st *store, streams []*stream) (bool, string) {
	m, err := scrapeMetrics(ctx, "http://"+r.addr+"/metrics")
	if err != nil {
		return false, "metrics: " + err.Error()
	}
	spool, outbox := m["arubug_spool_events"], m["arubug_zendesk_outbox_depth"]
	missing := 0
	for _, s := range streams {
		counts, err := st.uuidCounts(ctx, s.cfg.RunID+":", false)
		if err != nil {
			return false, "clickhouse: " + err.Error()
		}
		for _, id := range s.res.AckedUUIDs {
			if counts[id] == 0 {
				missing++
			}
		}
	}
	reports, ticketed := 0, 0
	for _, s := range streams {
		if !s.cfg.BugReports {
			continue
		}
		_, spam, err := st.reports(ctx, s.cfg.RunID+":")
		if err != nil {
			return false, "clickhouse: " + err.Error()
		}
		r.ticketMu.Lock()
		for _, id := range s.res.AckedUUIDs {
			if spam[id] {
				continue
			}
			reports++
			if _, ok := r.ticketSeen[id]; ok {
				ticketed++
			}
		}
		r.ticketMu.Unlock()
	}
	replies, _, counts, err := r.storedReplies(ctx, st)
	if err != nil {
		return false, "clickhouse: " + err.Error()
	}
	storedReplies := 0
	for _, rp := range replies {
		if counts[rp.EventUUID] > 0 {
			storedReplies++
		}
	}
	s := fmt.Sprintf("spool %g events, outbox %g jobs, %d acked events not yet in clickhouse, %d of %d reports ticketed, %d of %d replies stored",
		spool, outbox, missing, ticketed, reports, storedReplies, len(replies))
	return spool == 0 && outbox == 0 && missing == 0 && ticketed >= reports && storedReplies == len(replies), s
}

// storedReplies returns the replies added so far, their tickets, and how
// many times ClickHouse holds each message event of those tickets.
func (r *run) storedReplies(ctx context.Context, st *store) ([]Reply, []int64, map[string]uint64, error) {
	r.replyMu.Lock()
	replies := slices.Clone(r.replies)
	r.replyMu.Unlock()
	if len(replies) == 0 {
		return replies, nil, nil, nil
	}
	tickets := make([]int64, 0, len(replies))
	for _, rp := range replies {
		tickets = append(tickets, rp.TicketID)
	}
	counts, err := st.messageCounts(ctx, tickets)
	return replies, tickets, counts, err
}

// fabricate adds to the expectations an event, a report and a reply that
// do not exist, for SelfTest.
func (r *run) fabricate(streams []*stream) {
	var fakeEvent, fakeReport bool
	for _, s := range streams {
		switch {
		case s.cfg.BugReports && !fakeReport:
			s.res.AckedUUIDs = append(s.res.AckedUUIDs, uuid.Must(uuid.NewV7()).String())
			fakeReport = true
		case !s.cfg.BugReports && !fakeEvent:
			s.res.AckedUUIDs = append(s.res.AckedUUIDs, uuid.Must(uuid.NewV7()).String())
			fakeEvent = true
		}
	}
	// A comment on a ticket that does not exist: the check must miss it
	// whether or not the run managed to add real replies.
	const ticket, comment = 999_999_999, 1
	r.replyMu.Lock()
	defer r.replyMu.Unlock()
	r.replies = append(r.replies, Reply{TicketID: ticket, CommentID: comment, Public: true,
		EventUUID: zendesk.CommentEventID(ticket, comment).String()})
}

// check verifies the invariants and fills the report's stored counts.
func (r *run) check(ctx context.Context, st *store, streams []*stream, rep *Report) error {
	var v []string
	inv := &rep.Invariants
	for _, s := range streams {
		counts, err := st.uuidCounts(ctx, s.cfg.RunID+":", true)
		if err != nil {
			return err
		}
		missing, dup := 0, 0
		var examples []string
		for _, id := range s.res.AckedUUIDs {
			switch n := counts[id]; {
			case n == 0:
				missing++
				if len(examples) < 3 {
					examples = append(examples, id+" missing")
				}
			case n > 1:
				dup++
				if len(examples) < 3 {
					examples = append(examples, fmt.Sprintf("%s ×%d", id, n))
				}
			}
		}
		inv.AckedEvents += len(s.res.AckedUUIDs)
		inv.StoredEvents += len(counts)
		inv.MissingEvents += missing
		inv.DuplicateEvents += dup
		if missing+dup > 0 {
			v = append(v, fmt.Sprintf("stream %s: %d of %d acknowledged events missing from ClickHouse, %d stored more than once (e.g. %s)",
				s.name, missing, len(s.res.AckedUUIDs), dup, strings.Join(examples, ", ")))
		}
	}

	// Reports: exactly one ticket per acknowledged non-spam report.
	ts, err := r.simc.tickets(ctx, 0, true)
	if err != nil {
		return fmt.Errorf("simulator tickets: %w", err)
	}
	perExt := map[string]int{}
	commentsByTicket := map[int64][]zendesktest.Comment{}
	for _, t := range ts {
		if t.ExternalID != nil {
			perExt[*t.ExternalID]++
		}
		commentsByTicket[t.ID] = t.Comments
	}
	inv.Tickets = len(ts)
	for _, s := range streams {
		if !s.cfg.BugReports {
			continue
		}
		stored, spam, err := st.reports(ctx, s.cfg.RunID+":")
		if err != nil {
			return err
		}
		inv.ReportsStored += stored
		inv.SpamReports += len(spam)
		none, many := 0, 0
		var examples []string
		for _, id := range s.res.AckedUUIDs {
			inv.AckedReports++
			if spam[id] {
				continue
			}
			switch n := perExt[id]; {
			case n == 1:
				inv.ReportsTicketed++
			case n == 0:
				none++
				if len(examples) < 3 {
					examples = append(examples, id+" has none")
				}
			default:
				many++
				if len(examples) < 3 {
					examples = append(examples, fmt.Sprintf("%s has %d", id, n))
				}
			}
		}
		if none+many > 0 {
			v = append(v, fmt.Sprintf("%d acknowledged non-spam reports have no ticket and %d have more than one (e.g. %s)", none, many, strings.Join(examples, ", ")))
		}
	}

	// Inbound comments: each reply stored once, as the uuid derived from
	// its ticket and comment ids.
	replies, tickets, counts, err := r.storedReplies(ctx, st)
	if err != nil {
		return err
	}
	rep.Replies = replies
	if len(replies) > 0 {
		for _, rp := range replies {
			inv.Replies++
			found := false
			for _, c := range commentsByTicket[rp.TicketID] {
				found = found || c.ID == rp.CommentID
			}
			switch n := counts[rp.EventUUID]; {
			case !found:
				v = append(v, fmt.Sprintf("reply %d on ticket %d is not in the simulator", rp.CommentID, rp.TicketID))
			case n == 1:
				inv.RepliesStoredOnce++
			default:
				v = append(v, fmt.Sprintf("comment %d of ticket %d (event %s) is stored %d times, want once", rp.CommentID, rp.TicketID, rp.EventUUID, n))
			}
		}
		// Every other comment of those tickets too (the report, the note,
		// replies by arubug): the comment pull stores them all.
		for _, t := range slices.Compact(slices.Sorted(slices.Values(tickets))) {
			for _, c := range commentsByTicket[t] {
				id := zendesk.CommentEventID(t, c.ID).String()
				inv.ThreadComments++
				if counts[id] > 1 {
					v = append(v, fmt.Sprintf("comment %d of ticket %d (event %s) is stored %d times, want once", c.ID, t, id, counts[id]))
				}
			}
		}
	} else if r.cfg.Replies > 0 {
		rep.Notes = append(rep.Notes, "no reply could be added (no ticket existed when they were due): the inbound-comment invariant was not exercised")
	}
	if r.ackToTicket.Count() > 0 {
		rep.Load.AckToTicketP50Ms = ms(r.ackToTicket.Quantile(0.5))
		rep.Load.AckToTicketP99Ms = ms(r.ackToTicket.Quantile(0.99))
		rep.Load.AckToTicketMaxMs = ms(r.ackToTicket.Max())
	}
	rep.Violations = append(rep.Violations, v...)
	return nil
}

// scrapeMetrics reads the unlabelled samples of a Prometheus text page.
func scrapeMetrics(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, err
	}
	return parseMetrics(string(b)), nil
}

func parseMetrics(text string) map[string]float64 {
	out := map[string]float64{}
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok || strings.ContainsRune(name, '{') {
			continue
		}
		var f float64
		if _, err := fmt.Sscan(strings.Fields(val)[0], &f); err == nil {
			out[name] = f
		}
	}
	return out
}

// ---- baselines ----

// baselines runs capture-bench.sh's three targets with the same closed-loop
// single-event load: the do-nothing handler (arubug-load -noop-server, its
// own process), arubug, and ClickHouse's HTTP interface with one INSERT
// per event.
func (r *run) baselines(ctx context.Context) ([]Baseline, error) {
	d := r.cfg.Baselines
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	noop := &child{name: "noop server", bin: r.cfg.SelfBin, args: []string{"-noop-server", addr}, env: baseEnv(),
		logPath: filepath.Join(r.work, "noop.log")}
	if err := noop.start(); err != nil {
		return nil, err
	}
	defer noop.stop(5 * time.Second)
	if err := waitTCP(ctx, addr, 10*time.Second); err != nil {
		return nil, err
	}
	type target struct {
		name string
		cfg  loadgen.Config
	}
	base := loadgen.Config{Concurrency: r.cfg.Concurrency, Duration: d, RunID: r.id + "-base"}
	targets := []target{
		{"do-nothing handler", base},
		{"arubug serve", base},
		{"clickhouse http, one INSERT per event", base},
	}
	targets[0].cfg.URL = "http://" + addr
	targets[0].cfg.RunID += "noop"
	targets[1].cfg.URL = "http://" + r.addr
	targets[1].cfg.RunID += "arubug"
	targets[2].cfg.URL = "http://" + r.ch.HTTPAddr()
	targets[2].cfg.Mode = loadgen.ModeClickHouseHTTP
	targets[2].cfg.Table = "arubug.events"
	targets[2].cfg.RunID += "ch"
	var out []Baseline
	for _, t := range targets {
		r.log.notice("baseline: %s for %s", t.name, d)
		res, err := loadgen.Run(ctx, t.cfg, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, Baseline{Target: t.name, RequestsPerSec: res.OKPerSec, EventsPerSec: res.EventsPerSec,
			P50Ms: ms(res.P50), P99Ms: ms(res.P99), Errors: res.Errors})
	}
	return out, nil
}

func waitTCP(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %s", addr, timeout)
		}
		if !sleepUntil(ctx, time.Now().Add(50*time.Millisecond)) {
			return ctx.Err()
		}
	}
}

func ratios(bs []Baseline) *Ratios {
	if len(bs) < 3 || bs[0].RequestsPerSec == 0 || bs[2].RequestsPerSec == 0 {
		return nil
	}
	return &Ratios{
		ArubugOverNoop:       bs[1].RequestsPerSec / bs[0].RequestsPerSec,
		ArubugOverClickHouse: bs[1].RequestsPerSec / bs[2].RequestsPerSec,
	}
}
