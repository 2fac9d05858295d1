package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/arubug/arubug/internal/api"
	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/capture"
	"github.com/arubug/arubug/internal/clickhouse"
	"github.com/arubug/arubug/internal/clickhouse/localch"
	"github.com/arubug/arubug/internal/config"
	"github.com/arubug/arubug/internal/routing"
	"github.com/arubug/arubug/internal/ruleset"
	"github.com/arubug/arubug/internal/server"
	"github.com/arubug/arubug/internal/spool"
	"github.com/arubug/arubug/internal/triage"
	"github.com/arubug/arubug/internal/web"
	"github.com/arubug/arubug/internal/widget"
	siteappjs "github.com/arubug/arubug/siteapp-js"
)

// devToken is the project token `arubug dev` accepts when none is set.
const devToken = "phc_arubug_dev"

func loadConfig(name string, args []string, getenv func(string) string, stderr io.Writer) (config.Config, error) {
	def := config.Default()
	if name == "dev" {
		def.Addr = "127.0.0.1:8000"
		def.LogFormat = "text"
		def.DataDir = ".arubug-dev"
		def.SiteApp = true // the /demo/posthog page loads the widget as a site app
	}
	cfg, err := config.Load(name, def, args, getenv, stderr)
	if err != nil {
		return cfg, err
	}
	if name == "dev" && len(cfg.ProjectTokens) == 0 && len(cfg.Projects) == 0 {
		cfg.ProjectTokens = []string{devToken}
	}
	return cfg, nil
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// clickHouseSource yields a DSN: the configured one, or a managed local
// server's. stop stops the managed server, if any.
func clickHouseSource(ctx context.Context, cfg config.Config, log *slog.Logger) (dsn string, stop func(), err error) {
	if cfg.ClickHouseDSN != "" {
		return cfg.ClickHouseDSN.Reveal(), func() {}, nil
	}
	dir := filepath.Join(cfg.DataDir, "clickhouse")
	log.Info("no clickhouse_dsn set: starting a managed local clickhouse-server", "data_dir", dir)
	start := time.Now()
	// The managed server shares the machine: a lower priority keeps its
	// merges from delaying acks (docs/benchmarks.md).
	srv, err := localch.Start(ctx, localch.Options{Binary: cfg.ClickHouseBinary, DataDir: dir, Nice: 10, Logger: log.With("component", "localch")})
	if err != nil {
		return "", nil, err
	}
	log.Info("managed clickhouse-server ready", "tcp", srv.TCPAddr(), "http", srv.HTTPAddr(), "took", time.Since(start).Round(time.Millisecond))
	return srv.DSN("arubug"), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			log.Warn("stopping managed clickhouse-server", "err", err)
		}
	}, nil
}

// store connects to ClickHouse on first use and migrates, so that the
// collector starts and accepts events while ClickHouse is still down; the
// spool keeps them until it answers.
type store struct {
	dsn        string
	cluster    string // clickhouse_cluster; "" = one server
	log        *slog.Logger
	queryLimit time.Duration // max_execution_time of enrichment queries
	mu         sync.Mutex
	db         *clickhouse.DB
}

var _ bugreport.EventWriter = (*store)(nil)

func (s *store) get(ctx context.Context) (*clickhouse.DB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db != nil {
		return s.db, nil
	}
	db, err := clickhouse.Open(ctx, clickhouse.Options{DSN: s.dsn, Logger: s.log, CreateDatabase: true, Cluster: s.cluster})
	if err != nil {
		return nil, err
	}
	if _, err := db.Migrate(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	s.log.Info("connected to clickhouse", "database", db.Database())
	s.db = db
	return db, nil
}

func (s *store) WriteEvents(ctx context.Context, events []bugreport.Event) error {
	db, err := s.get(ctx)
	if err != nil {
		return err
	}
	return db.WriteEvents(ctx, events)
}

func (s *store) ping(ctx context.Context) error {
	db, err := s.get(ctx)
	if err != nil {
		return errors.New("clickhouse unreachable")
	}
	if err := db.Ping(ctx); err != nil {
		return errors.New("clickhouse unreachable")
	}
	return nil
}

func (s *store) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db != nil {
		_ = s.db.Close()
	}
}

func serveCmd(ctx context.Context, name string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(name, args, getenv, stderr)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", indent(err))
	}
	log := newLogger(cfg, stderr)
	projects, _ := cfg.ProjectList()

	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if name == "dev" && cfg.AdminToken == "" {
		tok, path, err := devAdminToken(cfg.DataDir)
		if err != nil {
			return err
		}
		cfg.AdminToken = config.Secret(tok)
		log.Info("dev admin token generated", "file", path)
	}

	// Listen before starting ClickHouse so that a taken port fails fast.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (set --addr or ARUBUG_ADDR to another address)", cfg.Addr, err)
	}
	defer ln.Close()

	dsn, stopCH, err := clickHouseSource(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer stopCH()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	sp, err := spool.Open(spool.Options{
		Dir:      filepath.Join(cfg.DataDir, "spool", "events"),
		Legacy:   filepath.Join(cfg.DataDir, "spool", "events.db"),
		MaxBytes: cfg.SpoolMaxBytes,
		// A sixteenth of the limit, so that the zero-filled room kept
		// ahead (two segments at most) stays small next to it.
		SegmentBytes: min(max(cfg.SpoolMaxBytes/16, 1<<20), 64<<20),
		Preallocate:  true,
		Logger:       log.With("component", "spool"),
		Registerer:   reg,
	})
	if err != nil {
		return err
	}
	defer sp.Close()

	rules, err := ruleset.Load(cfg.RulesFile, routing.Options{}, log.With("component", "rules"), reg)
	if err != nil {
		return fmt.Errorf("routing rules (set --rules-file or ARUBUG_RULES_FILE): %w", err)
	}
	st := &store{dsn: dsn, cluster: cfg.ClickHouseCluster, log: log.With("component", "clickhouse"), queryLimit: 5 * time.Second}
	defer st.close()
	if err := st.ping(ctx); err != nil {
		log.Warn("clickhouse is not reachable yet; events are kept in the spool until it is", "err", err)
	}

	selfURL := "http://" + loopbackAddr(ln.Addr().String())
	zsync, err := startZendesk(ctx, name, cfg, st, sp, rules.Teams, selfURL, log, reg)
	if err != nil {
		return fmt.Errorf("zendesk: %w", err)
	}
	var onReport func(*bugreport.Report)
	var tickets api.Tickets
	mounts := []func(chi.Router){}
	if zsync != nil {
		defer zsync.close()
		onReport = zsync.enqueue(log.With("component", "zendesk"))
		tickets = zsync
		mounts = append(mounts, zsync.mount)
	}

	worker, err := triage.New(triage.Config{
		Store:          st,
		Enricher:       st,
		Rules:          func() triage.Router { return rules.Rules() },
		Projects:       projects,
		ReplayTemplate: cfg.ReplayTemplate,
		Lookback:       cfg.TriageLookback,
		OnReport:       onReport,
		Logger:         log.With("component", "triage"),
		Registerer:     reg,
	})
	if err != nil {
		return err
	}
	bgCtx, stopBackground := context.WithCancel(context.Background())
	defer stopBackground()
	go worker.Run(bgCtx)
	if name == "dev" {
		go seedDev(bgCtx, st, cfg, projects[0], rules.Rules(), log)
	}
	syncDone := make(chan struct{})
	if zsync != nil {
		go func() { defer close(syncDone); zsync.syncer.Run(bgCtx) }()
	} else {
		close(syncDone)
	}
	go rules.Watch(bgCtx, 2*time.Second)
	go reloadOnSIGHUP(bgCtx, rules)

	drainCtx, stopDrain := context.WithCancel(context.Background())
	defer stopDrain()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sp.Drain(drainCtx, st, spool.DrainOptions{
			BatchEvents:   cfg.BatchEvents,
			FlushInterval: cfg.FlushInterval,
			FinalFlush:    cfg.ShutdownTimeout / 2,
			Logger:        log.With("component", "drain"),
			Registerer:    reg,
		})
	}()

	demoToken := ""
	if name == "dev" {
		demoToken = projects[0].Token
	}
	widgets := widget.New(widget.Config{Files: siteappjs.Files, Version: siteappjs.Version, DemoToken: demoToken})
	cap, err := capture.New(capture.Config{
		Sink:              notifyingSink{sp, worker.Notify},
		Projects:          projects,
		Limits:            cfg.Capture,
		MaxInFlight:       cfg.MaxInFlight,
		TrustForwardedFor: cfg.TrustForwardedFor,
		BugReportsPerIP:   cfg.BugReportsPerIP,
		BugReportsPerUser: cfg.BugReportsPerUser,
		SiteApps: func(token string) []capture.SiteApp {
			if !cfg.SiteApp {
				return nil
			}
			return []capture.SiteApp{{ID: widget.SiteAppID, URL: widgets.SiteAppPath(token)}}
		},
		Logger:     log.With("component", "capture"),
		Registerer: reg,
	})
	if err != nil {
		stopDrain()
		<-drained
		return err
	}
	adminAPI, err := api.New(api.Config{
		Store:        st,
		Sink:         sp,
		AdminToken:   cfg.AdminToken.Reveal(),
		Teams:        rules.Teams,
		ProductAreas: rules.ProductAreas,
		Reload:       rules.Reload,
		Tickets:      tickets,
		Trends:       st,
		Logger:       log.With("component", "api"),
	})
	if err != nil {
		stopDrain()
		<-drained
		return err
	}
	ui := web.New(web.Config{Store: st, Tickets: tickets, Trends: st, Actions: adminAPI, AdminToken: cfg.AdminToken.Reveal(), Teams: rules.Teams,
		ProductAreas: rules.ProductAreas, Rules: rules.Rules, RulesStatus: rules.Last, RedirectRoot: name == "dev", ZendeskNotice: zendeskNotice(zsync), Logger: log.With("component", "web")})
	handler := server.New(server.Options{
		Capture: cap,
		Mounts:  append([]func(chi.Router){adminAPI.Mount, widgets.Mount, ui.Mount}, mounts...),
		Checks: []server.Check{
			{Name: "clickhouse", Fn: st.ping},
			{Name: "spool", Fn: func(context.Context) error {
				if sp.Full() {
					return errors.New("spool is full")
				}
				return nil
			}},
		},
		Registerer: reg,
		Gatherer:   reg,
		Logger:     log,
		Version:    versionString(),
	})
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.PprofAddr, log)
		if err != nil {
			stopDrain()
			<-drained
			return err
		}
		defer stopPprof()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	names := make([]string, len(projects))
	for i, p := range projects {
		names[i] = p.Name
	}
	log.Info("arubug is serving", "addr", ln.Addr().String(), "version", versionString(), "projects", strings.Join(names, ","), "data_dir", cfg.DataDir)
	if name == "dev" {
		simURL := ""
		if zsync != nil {
			simURL = zsync.simURL
		}
		printDevBanner(stdout, ln.Addr().String(), projects, filepath.Join(cfg.DataDir, "admin-token"), simURL)
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down: finishing in-flight requests")
	case err := <-serveErr:
		log.Error("http server stopped", "err", err)
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout/2)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Warn("in-flight requests did not finish in time", "err", err)
	}
	stopBackground()
	<-syncDone
	stopDrain()
	<-drained
	if err := sp.Close(); err != nil {
		log.Warn("closing spool", "err", err)
	}
	n, _ := sp.Stats()
	log.Info("arubug stopped", "events_left_in_spool", n)
	return nil
}

// servePprof serves the runtime profiles on their own listener, so that
// they are never reachable through the public capture address.
func servePprof(addr string, log *slog.Logger) (func(), error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("pprof profiles served", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}

// notifyingSink tells the triage worker about bug reports as soon as they
// are durable, so that triage does not wait for the next ClickHouse insert.
type notifyingSink struct {
	bugreport.EventSink
	after func([]bugreport.Event)
}

func (n notifyingSink) Append(ctx context.Context, events []bugreport.Event) error {
	if err := n.EventSink.Append(ctx, events); err != nil {
		return err
	}
	n.after(events)
	return nil
}

// reloadOnSIGHUP reloads the routing rules on SIGHUP, the way operators
// reload Prometheus or Alertmanager.
func reloadOnSIGHUP(ctx context.Context, rules *ruleset.Set) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			_ = rules.Reload()
		}
	}
}

// loopbackAddr turns a listen address into one this machine can dial.
func loopbackAddr(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func printDevBanner(w io.Writer, addr string, projects []bugreport.Project, tokenFile, zendeskSim string) {
	base := "http://" + loopbackAddr(addr)
	zendeskLine := "Zendesk            " + "configured account (zendesk_url)"
	if zendeskSim != "" {
		zendeskLine = "Zendesk simulator  " + zendeskSim + "/_sim/   (no Zendesk account configured: tickets land here)"
	}
	fmt.Fprintf(w, `
  Arubug is running.

  Capture endpoint   %[1]s/e/        (PostHog wire format; point posthog-js's api_host here)
  Project token      %[2]s
  Health             %[1]s/_health
  Readiness          %[1]s/_ready
  Metrics            %[1]s/metrics

  Web UI             %[1]s/ui/         (sign in with the admin token in %[3]s)
  Demo page          %[1]s/demo        (the bug-report widget on a page; try it)
  Admin API          %[1]s/api/v1/teams  (Authorization: Bearer <token in %[3]s>)
  %[4]s

  Try it:
    curl -s %[1]s/e/ -H 'Content-Type: application/json' -d '{"api_key":"%[2]s","event":"hello","distinct_id":"me"}'
    curl -s %[1]s/e/ -H 'Content-Type: application/json' \
      -d '{"api_key":"%[2]s","event":"$bug_report","distinct_id":"me","properties":{"$description":"The export button does nothing","$pathname":"/insights/42","$time_to_submit_ms":9000}}'
    curl -s -H "Authorization: Bearer $(cat %[3]s)" %[1]s/api/v1/teams/product-analytics/reports

  Press Ctrl-C to stop.

`, base, projects[0].Token, tokenFile, zendeskLine)
}

// devAdminToken returns the dev admin token kept in the data dir, creating
// it on first run, so it stays the same across restarts.
func devAdminToken(dataDir string) (string, string, error) {
	path := filepath.Join(dataDir, "admin-token")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 16 {
		return strings.TrimSpace(string(b)), path, nil
	}
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", "", err
	}
	tok := hex.EncodeToString(raw[:])
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("write dev admin token: %w", err)
	}
	return tok, path, nil
}

func indent(err error) error {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		lines[i] = "  - " + l
	}
	return errors.New(strings.Join(lines, "\n"))
}
