package loadgen

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
)

// Result summarises a run.
type Result struct {
	RunID string `json:"run_id"`
	// Requests is the number of completed requests (any outcome).
	Requests int `json:"requests"`
	// Events is the number of events carried by those requests.
	Events int `json:"events"`
	// OK is the number of requests answered 200; AckedEvents the number of
	// events they carried.
	OK          int `json:"ok"`
	AckedEvents int `json:"acked_events"`
	// Errors is Requests - OK, split by kind in ErrorsByKind: "http_<code>"
	// for any non-200 answer, else "timeout", "conn_refused", "conn_reset",
	// "eof", "broken_pipe", "dns", "conn_closed" or "other".
	Errors       int            `json:"errors"`
	ErrorsByKind map[string]int `json:"errors_by_kind"`
	// ErrorSamples holds, per kind, the first error message or response
	// body seen (truncated), to tell why.
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	// Duration is the wall time from the first request to the last answer.
	Duration time.Duration `json:"duration_ns"`
	// RequestsPerSec = Requests/Duration; OKPerSec = OK/Duration;
	// EventsPerSec = AckedEvents/Duration.
	RequestsPerSec float64 `json:"requests_per_sec"`
	OKPerSec       float64 `json:"ok_per_sec"`
	EventsPerSec   float64 `json:"events_per_sec"`
	// Latency percentiles over the OK requests (send -> full answer read;
	// from the scheduled send time when Config.Rate is set). Bucket
	// precision is ~1.6%.
	P50 time.Duration `json:"p50_ns"`
	P90 time.Duration `json:"p90_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
	// Unsent counts, with Rate and Duration, the send times scheduled
	// before the deadline that were never sent because every worker was
	// busy: the target (or the generator) could not keep up with Rate.
	Unsent int `json:"unsent,omitempty"`
	// GenPerRequest is the mean wall time a worker spent building one
	// request body (templates, UUIDv7s, gzip). It includes the worker being
	// descheduled, so on a busy machine it overstates the CPU cost (see
	// BenchmarkRender for that); compare it with the latency to see whether
	// the generator could be the bottleneck.
	GenPerRequest time.Duration `json:"gen_per_request_ns"`
	// AckedUUIDs lists the UUIDs of every acknowledged event, only with
	// Config.KeepUUIDs.
	AckedUUIDs []string `json:"acked_uuids,omitempty"`
}

// worker holds one worker's private state; mu guards the fields that the
// progress reporter and the final merge read.
type worker struct {
	cursor int
	rs     renderState
	raw    []byte
	gz     *gzip.Writer
	gen    time.Duration // time spent building bodies; read after the run
	built  int

	mu      sync.Mutex
	hist    histogram
	kinds   map[string]int
	samples map[string]string
	acked   []uuid.UUID
}

type runner struct {
	cfg    Config
	gen    *generator
	client *http.Client
	target string

	paced   bool
	tickets chan time.Time // paced mode: scheduled send times
	issued  atomic.Int64   // unpaced mode: requests handed out
	stopped atomic.Bool    // duration over: hand out no more requests
	stopCh  chan struct{}  // closed when the duration is over
	unsent  atomic.Int64   // paced mode: due send times never handed out

	requests, errs atomic.Int64 // for the progress lines
	workers        []*worker
}

// Run sends load as described by cfg and returns the summary. Progress lines
// are written to progress every Config.ProgressInterval (nil: none), as
// \r-updated lines when progress is a terminal. Run returns an error only
// for a bad Config or when ctx is cancelled (then with the partial Result).
func Run(ctx context.Context, cfg Config, progress io.Writer) (Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Result{}, err
	}
	target, err := cfg.targetURL()
	if err != nil {
		return Result{}, err
	}
	r := &runner{
		cfg:    cfg,
		gen:    newGenerator(cfg),
		client: newClient(cfg),
		target: target,
		paced:  cfg.Rate > 0,
		stopCh: make(chan struct{}),
	}
	defer r.client.CloseIdleConnections()

	for i := range cfg.Concurrency {
		r.workers = append(r.workers, &worker{
			cursor: i * 7919, // spread workers over the template pool
			kinds:  map[string]int{},
		})
	}

	start := time.Now()
	var deadline time.Time
	if cfg.Duration > 0 {
		deadline = start.Add(cfg.Duration)
		t := time.AfterFunc(cfg.Duration, func() {
			r.stopped.Store(true)
			close(r.stopCh)
		})
		defer t.Stop()
	}

	var bg sync.WaitGroup // dispatcher and progress reporter
	bgCtx, bgCancel := context.WithCancel(ctx)
	if r.paced {
		r.tickets = make(chan time.Time, cfg.Concurrency)
		bg.Go(func() { r.dispatch(bgCtx, start, deadline) })
	}
	var prog *progressReporter
	if progress != nil {
		prog = newProgressReporter(progress, r, start)
		bg.Go(func() { prog.loop(bgCtx) })
	}

	var wg sync.WaitGroup
	for _, w := range r.workers {
		wg.Go(func() { r.work(ctx, w) })
	}
	wg.Wait()
	end := time.Now()
	bgCancel()
	bg.Wait()
	if prog != nil {
		prog.finish(end)
	}

	res := r.result(end.Sub(start))
	return res, ctx.Err()
}

func newClient(cfg Config) *http.Client {
	tr := &http.Transport{
		Proxy: nil, // never route load through a proxy from the environment
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          cfg.Concurrency * 2,
		MaxIdleConnsPerHost:   cfg.Concurrency,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // measure the server, not transparent gzip
		WriteBufferSize:       32 << 10,
		ReadBufferSize:        8 << 10,
	}
	return &http.Client{Transport: tr, Timeout: cfg.Timeout}
}

// dispatch issues one ticket per scheduled send time, start + i/Rate, until
// Requests tickets were issued or the deadline passed. When the workers are
// all busy it blocks; the tickets it then releases late still carry their
// scheduled time, so the wait counts as latency. Send times that were due
// before the deadline but could not be handed out by then are counted in
// r.unsent.
func (r *runner) dispatch(ctx context.Context, start, deadline time.Time) {
	defer close(r.tickets)
	interval := float64(time.Second) / r.cfg.Rate
	i := 0
	defer func() {
		if deadline.IsZero() || ctx.Err() != nil {
			return
		}
		due := int(deadline.Sub(start).Seconds()*r.cfg.Rate-1e-9) + 1 // send times in [start, deadline)
		if r.cfg.Requests > 0 {
			due = min(due, r.cfg.Requests)
		}
		r.unsent.Store(int64(max(0, due-i)))
	}()
	for ; r.cfg.Requests == 0 || i < r.cfg.Requests; i++ {
		at := start.Add(time.Duration(float64(i) * interval))
		if !deadline.IsZero() && !at.Before(deadline) {
			return
		}
		if wait := time.Until(at); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return // behind schedule and out of time
		}
		select {
		case r.tickets <- at:
		case <-ctx.Done():
			return
		case <-r.stopCh:
			return
		}
	}
}

// next returns the scheduled start of the next request to send, or false
// when the worker should stop.
func (r *runner) next(ctx context.Context) (time.Time, bool) {
	if ctx.Err() != nil {
		return time.Time{}, false
	}
	if r.paced {
		select {
		case at, ok := <-r.tickets:
			return at, ok
		case <-ctx.Done():
			return time.Time{}, false
		}
	}
	if r.stopped.Load() {
		return time.Time{}, false
	}
	if r.cfg.Requests > 0 && r.issued.Add(1) > int64(r.cfg.Requests) {
		return time.Time{}, false
	}
	return time.Now(), true
}

func (r *runner) work(ctx context.Context, w *worker) {
	for {
		at, ok := r.next(ctx)
		if !ok {
			return
		}
		r.do(ctx, w, at)
	}
}

// do sends one request and accounts for it.
func (r *runner) do(ctx context.Context, w *worker, scheduled time.Time) {
	w.rs.uuids = w.rs.uuids[:0]
	now := time.Now()
	body := getBody()
	body.b = r.build(w, body.b[:0], now)
	w.gen += time.Since(now)
	w.built++

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.target, nil)
	if err != nil { // the target URL was validated; cannot happen
		panic(err)
	}
	req.Body = body.reader()
	req.GetBody = func() (io.ReadCloser, error) { return body.reader(), nil }
	req.ContentLength = int64(len(body.b))
	switch {
	case r.cfg.Mode == ModeClickHouseHTTP:
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
		if r.cfg.Gzip {
			req.Header.Set("Content-Encoding", "gzip")
		}
	case r.cfg.Gzip:
		req.Header.Set("Content-Type", "text/plain") // as posthog-js sends gzip-js
	default:
		req.Header.Set("Content-Type", "application/json")
	}

	if !r.paced {
		scheduled = time.Now()
	}
	resp, err := r.client.Do(req)
	var kind, sample string
	if err != nil {
		if ctx.Err() != nil {
			body.release()
			return // cancelled by the caller: not a result of the target
		}
		kind, sample = classify(err), err.Error()
	} else {
		if resp.StatusCode != http.StatusOK {
			kind = "http_" + strconv.Itoa(resp.StatusCode)
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			sample = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
		}
		_, rerr := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if rerr != nil && kind == "" {
			if ctx.Err() != nil {
				body.release()
				return
			}
			kind, sample = classify(rerr), rerr.Error()
		}
	}
	answered := time.Now()
	lat := answered.Sub(scheduled)
	body.release()
	switch {
	case kind == "" && r.cfg.OnAck != nil:
		r.cfg.OnAck(w.rs.uuids, answered, lat)
	case kind != "" && r.cfg.OnError != nil:
		r.cfg.OnError(kind)
	}

	r.requests.Add(1)
	w.mu.Lock()
	if kind == "" {
		w.hist.record(lat)
		if r.cfg.KeepUUIDs {
			w.acked = append(w.acked, w.rs.uuids...)
		}
	} else {
		w.kinds[kind]++
		if _, ok := w.samples[kind]; !ok {
			if w.samples == nil {
				w.samples = map[string]string{}
			}
			if len(sample) > 300 {
				sample = sample[:300]
			}
			w.samples[kind] = sample
		}
	}
	w.mu.Unlock()
	if kind != "" {
		r.errs.Add(1)
	}
}

// build renders the next request body of worker w into dst (the wire
// bytes: gzipped when the run gzips). The UUIDs of its events are appended
// to w.rs.uuids.
func (r *runner) build(w *worker, dst []byte, now time.Time) []byte {
	switch {
	case r.cfg.Gzip && r.cfg.GzipFull:
		w.raw, _ = r.gen.render(w.raw[:0], nil, &w.cursor, now, &w.rs)
		buf := bytes.NewBuffer(dst)
		if w.gz == nil {
			w.gz, _ = gzip.NewWriterLevel(buf, gzip.BestSpeed)
		} else {
			w.gz.Reset(buf)
		}
		_, _ = w.gz.Write(w.raw)
		_ = w.gz.Close()
		return buf.Bytes()
	case r.cfg.Gzip:
		var gz []byte
		w.raw, gz = r.gen.render(w.raw[:0], dst, &w.cursor, now, &w.rs)
		return gz
	default:
		raw, _ := r.gen.render(dst, nil, &w.cursor, now, &w.rs)
		return raw
	}
}

// classify names a transport-level failure.
func classify(err error) string {
	var ne net.Error
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "conn_refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "conn_reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken_pipe"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.As(err, &dnsErr):
		return "dns"
	case strings.Contains(err.Error(), "server closed idle connection"):
		return "conn_closed"
	}
	return "other"
}

func (r *runner) result(d time.Duration) Result {
	res := Result{
		RunID:        r.cfg.RunID,
		ErrorsByKind: map[string]int{},
		Duration:     d,
	}
	var h histogram
	var gen time.Duration
	var built int
	for _, w := range r.workers {
		gen += w.gen
		built += w.built
		w.mu.Lock()
		h.merge(&w.hist)
		for k, n := range w.kinds {
			res.ErrorsByKind[k] += n
			res.Errors += n
		}
		for k, s := range w.samples {
			if res.ErrorSamples == nil {
				res.ErrorSamples = map[string]string{}
			}
			if _, ok := res.ErrorSamples[k]; !ok {
				res.ErrorSamples[k] = s
			}
		}
		if r.cfg.KeepUUIDs {
			for _, u := range w.acked {
				res.AckedUUIDs = append(res.AckedUUIDs, u.String())
			}
		}
		w.mu.Unlock()
	}
	if r.cfg.KeepUUIDs {
		slices.Sort(res.AckedUUIDs) // UUIDv7: roughly send order
		if res.AckedUUIDs == nil {
			res.AckedUUIDs = []string{}
		}
	}
	res.OK = int(h.n)
	res.Requests = res.OK + res.Errors
	res.Events = res.Requests * r.cfg.BatchSize
	res.AckedEvents = res.OK * r.cfg.BatchSize
	if s := d.Seconds(); s > 0 {
		res.RequestsPerSec = float64(res.Requests) / s
		res.OKPerSec = float64(res.OK) / s
		res.EventsPerSec = float64(res.AckedEvents) / s
	}
	res.P50, res.P90, res.P99 = h.quantile(0.50), h.quantile(0.90), h.quantile(0.99)
	res.Max = time.Duration(h.max)
	res.Unsent = int(r.unsent.Load())
	if built > 0 {
		res.GenPerRequest = gen / time.Duration(built)
	}
	return res
}

// ---- pooled request bodies ----

// reqBody is a request body buffer returned to bodyPool once the worker and
// every reader the transport got (the body and any GetBody copies) are done
// with it: RoundTrip may close a body after Do returns, so the worker
// cannot simply reuse its buffer.
type reqBody struct {
	b    []byte
	refs atomic.Int32
}

var bodyPool = sync.Pool{New: func() any { return &reqBody{b: make([]byte, 0, 4096)} }}

func getBody() *reqBody {
	b := bodyPool.Get().(*reqBody)
	b.refs.Store(1) // the worker's reference
	return b
}

func (b *reqBody) reader() io.ReadCloser {
	b.refs.Add(1)
	br := &bodyReader{body: b}
	br.r.Reset(b.b)
	return br
}

func (b *reqBody) release() {
	if b.refs.Add(-1) == 0 {
		if cap(b.b) > 1<<20 {
			return // don't keep huge buffers around
		}
		bodyPool.Put(b)
	}
}

type bodyReader struct {
	r      bytes.Reader
	body   *reqBody
	closed atomic.Bool
}

func (br *bodyReader) Read(p []byte) (int, error)         { return br.r.Read(p) }
func (br *bodyReader) WriteTo(w io.Writer) (int64, error) { return br.r.WriteTo(w) }
func (br *bodyReader) Close() error {
	if br.closed.CompareAndSwap(false, true) {
		br.body.release()
	}
	return nil
}
