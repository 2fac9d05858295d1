// Package loadgen is a load generator for Arubug's PostHog-compatible capture
// API (and, for comparison, for ClickHouse's HTTP insert interface).
//
// It sends realistic posthog-js-shaped events ($pageview, $autocapture and
// custom events) with a fresh UUIDv7 per event, measures per-request latency
// in a bounded-memory log-linear histogram, classifies failures
// ("http_503", "timeout", "conn_refused", ...) and can report which event
// UUIDs the server acknowledged, so that a later count in ClickHouse
// (CountInClickHouse) can prove that nothing acknowledged was lost.
package loadgen

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Modes accepted in Config.Mode.
const (
	// ModeCapture sends PostHog capture requests (POST /e/ or /batch/).
	ModeCapture = "capture"
	// ModeClickHouseHTTP INSERTs the events straight into ClickHouse's
	// HTTP interface, one INSERT ... FORMAT JSONEachRow per request.
	ModeClickHouseHTTP = "clickhouse-http"
)

// Defaults applied by Run to zero-valued Config fields.
const (
	DefaultConcurrency      = 32
	DefaultDuration         = 10 * time.Second // used when both Requests and Duration are 0
	DefaultTimeout          = 30 * time.Second
	DefaultToken            = "phc_arubug_load"
	DefaultTable            = "arubug.events"
	DefaultPoolSize         = 1024
	DefaultProgressInterval = time.Second
)

// Config describes one load run. Zero values get the defaults documented on
// each field (see also the Default* constants).
type Config struct {
	// URL is the base URL of the target, e.g. http://127.0.0.1:8000 for the
	// collector or http://127.0.0.1:8123 for ClickHouse's HTTP interface.
	URL string
	// Path is appended to URL. Default: "/e/" for single-event capture,
	// "/batch/" when BatchSize > 1, "/" in clickhouse-http mode.
	Path string
	// Token is the project token (api_key). Default DefaultToken.
	Token string
	// Concurrency is the number of workers (and of keep-alive connections).
	// Default 32.
	Concurrency int
	// Requests is the total number of requests to send; 0 = until Duration.
	Requests int
	// Duration bounds the run. If both Requests and Duration are 0 the run
	// lasts DefaultDuration. Requests in flight at the deadline complete.
	Duration time.Duration
	// Rate is the target request rate in requests/s. 0 = as fast as the
	// workers go (closed loop). When set, requests are scheduled open-loop
	// at fixed intervals and latency is measured from each request's
	// scheduled send time, so queueing inside the generator when the target
	// cannot keep up shows in the percentiles (no coordinated omission).
	Rate float64
	// BatchSize is the number of events per request. 1 = a single-event
	// body; > 1 = the {"api_key":..,"batch":[..],"sent_at":..} envelope (in
	// clickhouse-http mode: that many JSONEachRow rows per INSERT).
	BatchSize int
	// Gzip compresses bodies: capture mode adds ?compression=gzip-js like
	// posthog-js does; clickhouse-http mode sends Content-Encoding: gzip.
	Gzip bool
	// GzipFull compresses every body with compress/gzip (BestSpeed) instead
	// of splicing precompressed template pieces: the compression ratio of a
	// real client (matches across a batch's events), at ~50µs or more of
	// generator CPU per body. Without it gzip costs about a memcpy.
	GzipFull bool
	// Mode is ModeCapture (default) or ModeClickHouseHTTP.
	Mode string
	// RunID tags every event: distinct_id is "<RunID>:<user>" and
	// properties.arubug_run_id is RunID. Default: a fresh "load-..." id.
	// It may not contain ':' so that prefixes of different runs never match.
	RunID string
	// BugReports makes every event a $bug_report, shaped like the widget's.
	BugReports bool
	// KeepUUIDs makes Result.AckedUUIDs list every event UUID that the
	// target acknowledged with 200.
	KeepUUIDs bool
	// OnAck, if set, is called by the sending worker after every 200 answer
	// with the UUIDs of the request's events, the time the answer was read
	// (to time what happens after the ack, e.g. ack → ticket) and the
	// request's latency. It runs on the worker's goroutine, so it must be
	// quick and safe for concurrent use; ids is reused once it returns.
	OnAck func(ids []uuid.UUID, at time.Time, latency time.Duration)
	// OnError, if set, is called like OnAck after every failed request,
	// with the error kind as in Result.ErrorsByKind.
	OnError func(kind string)
	// Timeout is the per-request timeout. Default 30s.
	Timeout time.Duration
	// Table is the clickhouse-http target table ("db.table"). Default
	// DefaultTable.
	Table string
	// PoolSize is the number of pre-generated event templates. Default 1024.
	PoolSize int
	// ProgressInterval is the period of progress lines. Default 1s.
	ProgressInterval time.Duration
}

// NewRunID returns a fresh run id such as "load-20250102T150405-1a2b3c4d".
func NewRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "load-" + time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

// withDefaults validates cfg and fills in defaults.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Mode == "" {
		cfg.Mode = ModeCapture
	}
	if cfg.Mode != ModeCapture && cfg.Mode != ModeClickHouseHTTP {
		return cfg, fmt.Errorf("loadgen: unknown mode %q (want %q or %q)", cfg.Mode, ModeCapture, ModeClickHouseHTTP)
	}
	if cfg.URL == "" {
		return cfg, errors.New("loadgen: URL is required")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return cfg, fmt.Errorf("loadgen: bad URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cfg, fmt.Errorf("loadgen: URL %q must be http(s)://host[:port]", cfg.URL)
	}
	if cfg.Concurrency < 0 || cfg.Requests < 0 || cfg.Duration < 0 || cfg.Rate < 0 ||
		cfg.BatchSize < 0 || cfg.Timeout < 0 || cfg.PoolSize < 0 || cfg.ProgressInterval < 0 {
		return cfg, errors.New("loadgen: negative values are not allowed")
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 1
	}
	if cfg.Requests == 0 && cfg.Duration == 0 {
		cfg.Duration = DefaultDuration
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Token == "" {
		cfg.Token = DefaultToken
	}
	if cfg.PoolSize == 0 {
		cfg.PoolSize = DefaultPoolSize
	}
	if cfg.ProgressInterval == 0 {
		cfg.ProgressInterval = DefaultProgressInterval
	}
	if cfg.RunID == "" {
		cfg.RunID = NewRunID()
	}
	if strings.Contains(cfg.RunID, ":") {
		return cfg, fmt.Errorf("loadgen: run id %q must not contain ':'", cfg.RunID)
	}
	if cfg.Mode == ModeClickHouseHTTP {
		if cfg.Table == "" {
			cfg.Table = DefaultTable
		}
		if !validTable(cfg.Table) {
			return cfg, fmt.Errorf("loadgen: bad table name %q", cfg.Table)
		}
	}
	if cfg.Path == "" {
		switch {
		case cfg.Mode == ModeClickHouseHTTP:
			cfg.Path = "/"
		case cfg.BatchSize > 1:
			cfg.Path = "/batch/"
		default:
			cfg.Path = "/e/"
		}
	}
	if !strings.HasPrefix(cfg.Path, "/") {
		cfg.Path = "/" + cfg.Path
	}
	return cfg, nil
}

// targetURL is the URL every request is POSTed to.
func (cfg Config) targetURL() (string, error) {
	u, err := url.Parse(strings.TrimRight(cfg.URL, "/") + cfg.Path)
	if err != nil {
		return "", fmt.Errorf("loadgen: bad URL/path: %w", err)
	}
	q := u.Query()
	switch cfg.Mode {
	case ModeCapture:
		if cfg.Gzip && q.Get("compression") == "" {
			q.Set("compression", "gzip-js")
		}
	case ModeClickHouseHTTP:
		// Columns of the generated rows that the table lacks are ignored,
		// so the same rows fit whatever exact schema the table has.
		if q.Get("input_format_skip_unknown_fields") == "" {
			q.Set("input_format_skip_unknown_fields", "1")
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}
