package scenario

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// Report is the result of a scenario: what was sent, what was stored and
// ticketed, what it cost, which faults ran, and the invariant violations
// (empty when the run passed).
type Report struct {
	RunID    string    `json:"run_id"`
	Seed     uint64    `json:"seed"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Machine  string    `json:"machine"`
	// LoadAvgStart and LoadAvgEnd are /proc/loadavg's 1-minute figure when
	// the load phase began and ended: other work on the machine.
	LoadAvgStart string `json:"loadavg_start"`
	LoadAvgEnd   string `json:"loadavg_end"`
	WorkDir      string `json:"work_dir,omitempty"`

	Load         Load          `json:"load"`
	DrainSeconds float64       `json:"drain_seconds"`
	Resources    Resources     `json:"resources"`
	Faults       []FaultRecord `json:"faults"`
	Replies      []Reply       `json:"replies"`
	Invariants   Invariants    `json:"invariants"`
	Baselines    []Baseline    `json:"baselines,omitempty"`
	Ratios       *Ratios       `json:"ratios,omitempty"`
	Notes        []string      `json:"notes,omitempty"`
	Violations   []string      `json:"violations"`
}

// Passed reports whether every invariant held.
func (r *Report) Passed() bool { return len(r.Violations) == 0 }

// Load sums up the traffic of the load phase.
type Load struct {
	Seconds        float64        `json:"seconds"`
	Requests       int            `json:"requests"`
	OK             int            `json:"ok"`
	AckedEvents    int            `json:"acked_events"`
	AckedReports   int            `json:"acked_reports"`
	Errors         int            `json:"errors"`
	ErrorsByKind   map[string]int `json:"errors_by_kind"`
	RequestsPerSec float64        `json:"requests_per_sec"`
	EventsPerSec   float64        `json:"acked_events_per_sec"`
	// Ack latency of every 2xx'd request of every stream.
	AckP50Ms float64 `json:"ack_p50_ms"`
	AckP99Ms float64 `json:"ack_p99_ms"`
	AckMaxMs float64 `json:"ack_max_ms"`
	// Ack → ticket: from the report's 2xx to its ticket appearing in the
	// simulator (polled every 250 ms).
	AckToTicketP50Ms float64        `json:"ack_to_ticket_p50_ms"`
	AckToTicketP99Ms float64        `json:"ack_to_ticket_p99_ms"`
	AckToTicketMaxMs float64        `json:"ack_to_ticket_max_ms"`
	Streams          []StreamResult `json:"streams"`
}

// StreamResult is one stream of the mix.
type StreamResult struct {
	Name         string         `json:"name"`
	Path         string         `json:"path"`
	Batch        int            `json:"batch"`
	Gzip         bool           `json:"gzip"`
	Rate         float64        `json:"rate"`
	Requests     int            `json:"requests"`
	OK           int            `json:"ok"`
	AckedEvents  int            `json:"acked_events"`
	Errors       int            `json:"errors"`
	ErrorsByKind map[string]int `json:"errors_by_kind"`
	P50Ms        float64        `json:"p50_ms"`
	P99Ms        float64        `json:"p99_ms"`
	MaxMs        float64        `json:"max_ms"`
	Error        string         `json:"error,omitempty"`
}

// Resources is what arubug and ClickHouse used from the start of the load
// to the end of the drain, over every process that played the role.
type Resources struct {
	ArubugCPUSeconds                     float64 `json:"arubug_cpu_seconds"`
	ClickHouseCPUSeconds                 float64 `json:"clickhouse_cpu_seconds"`
	LoadGenCPUSeconds                    float64 `json:"loadgen_cpu_seconds"`
	ArubugCPUSecondsPerMillionEvents     float64 `json:"arubug_cpu_seconds_per_million_events"`
	ClickHouseCPUSecondsPerMillionEvents float64 `json:"clickhouse_cpu_seconds_per_million_events"`
	ArubugPeakRSSMiB                     float64 `json:"arubug_peak_rss_mib"`
	ClickHousePeakRSSMiB                 float64 `json:"clickhouse_peak_rss_mib"`
	ArubugRestarts                       int     `json:"arubug_restarts"`
}

// FaultRecord is one injected fault.
type FaultRecord struct {
	Kind      string  `json:"kind"`
	AtSeconds float64 `json:"at_seconds"`
	Seconds   float64 `json:"seconds"`
	Detail    string  `json:"detail"`
	Error     string  `json:"error,omitempty"`
}

// Reply is an agent comment added in the simulator during the run, and the
// event uuid arubug must store it under.
type Reply struct {
	TicketID  int64  `json:"ticket_id"`
	CommentID int64  `json:"comment_id"`
	Public    bool   `json:"public"`
	EventUUID string `json:"event_uuid"`
}

// Invariants are the counts the checks were made on.
type Invariants struct {
	AckedEvents       int `json:"acked_events"`
	StoredEvents      int `json:"stored_events"`
	MissingEvents     int `json:"missing_events"`
	DuplicateEvents   int `json:"duplicate_events"`
	AckedReports      int `json:"acked_reports"`
	ReportsStored     int `json:"reports_stored"`
	SpamReports       int `json:"spam_reports"`
	ReportsTicketed   int `json:"reports_ticketed_once"`
	Tickets           int `json:"tickets"`
	Replies           int `json:"replies"`
	RepliesStoredOnce int `json:"replies_stored_once"`
	ThreadComments    int `json:"thread_comments_checked"`
}

// Baseline is one closed-loop single-event measurement of capture-bench.sh's
// targets, taken in the same run.
type Baseline struct {
	Target         string  `json:"target"`
	RequestsPerSec float64 `json:"requests_per_sec"`
	EventsPerSec   float64 `json:"events_per_sec"`
	P50Ms          float64 `json:"p50_ms"`
	P99Ms          float64 `json:"p99_ms"`
	Errors         int     `json:"errors"`
}

// Ratios compare arubug's closed-loop rate with the baselines.
type Ratios struct {
	ArubugOverNoop       float64 `json:"arubug_over_noop"`
	ArubugOverClickHouse float64 `json:"arubug_over_clickhouse_inserts"`
}

// WriteText prints the report for people.
func (r *Report) WriteText(w io.Writer) {
	l := r.Load
	fmt.Fprintf(w, "scenario %s  seed %d  %s\n", r.RunID, r.Seed, r.Machine)
	fmt.Fprintf(w, "  load avg   %s at the start, %s at the end of the load\n", r.LoadAvgStart, r.LoadAvgEnd)
	fmt.Fprintf(w, "  load       %.1fs: %d requests (%.0f/s), %d ok, %d acked events (%.0f/s), %d acked reports\n",
		l.Seconds, l.Requests, l.RequestsPerSec, l.OK, l.AckedEvents, l.EventsPerSec, l.AckedReports)
	fmt.Fprintf(w, "  ack        p50 %.1f ms  p99 %.1f ms  max %.1f ms\n", l.AckP50Ms, l.AckP99Ms, l.AckMaxMs)
	fmt.Fprintf(w, "  ack→ticket p50 %.0f ms  p99 %.0f ms  max %.0f ms\n", l.AckToTicketP50Ms, l.AckToTicketP99Ms, l.AckToTicketMaxMs)
	for _, s := range l.Streams {
		fmt.Fprintf(w, "  stream     %-11s %-8s batch %-3d gzip %-5v rate %-5g %6d req  %6d ok  %7d events  p50 %.1f ms  p99 %.1f ms  errors %s\n",
			s.Name, s.Path, s.Batch, s.Gzip, s.Rate, s.Requests, s.OK, s.AckedEvents, s.P50Ms, s.P99Ms, kinds(s.ErrorsByKind))
	}
	fmt.Fprintf(w, "  errors     %s\n", kinds(l.ErrorsByKind))
	res := r.Resources
	fmt.Fprintf(w, "  cpu        arubug %.1f s (%.1f s per million events), clickhouse %.1f s (%.1f s per million), load generator %.1f s\n",
		res.ArubugCPUSeconds, res.ArubugCPUSecondsPerMillionEvents, res.ClickHouseCPUSeconds, res.ClickHouseCPUSecondsPerMillionEvents, res.LoadGenCPUSeconds)
	fmt.Fprintf(w, "  memory     arubug peak RSS %.0f MiB, clickhouse %.0f MiB; arubug restarts %d\n", res.ArubugPeakRSSMiB, res.ClickHousePeakRSSMiB, res.ArubugRestarts)
	for _, f := range r.Faults {
		fmt.Fprintf(w, "  fault      %-12s at %5.1fs  %s\n", f.Kind, f.AtSeconds, f.Detail)
	}
	fmt.Fprintf(w, "  drain      %.1fs\n", r.DrainSeconds)
	in := r.Invariants
	fmt.Fprintf(w, "  events     %d acked, %d stored for the run, %d missing, %d duplicated\n", in.AckedEvents, in.StoredEvents, in.MissingEvents, in.DuplicateEvents)
	fmt.Fprintf(w, "  reports    %d acked, %d stored, %d spam, %d with exactly one ticket (%d tickets in the simulator)\n",
		in.AckedReports, in.ReportsStored, in.SpamReports, in.ReportsTicketed, in.Tickets)
	fmt.Fprintf(w, "  comments   %d replies added in Zendesk, %d stored exactly once; %d comments of their tickets checked for duplicates\n",
		in.Replies, in.RepliesStoredOnce, in.ThreadComments)
	for _, b := range r.Baselines {
		fmt.Fprintf(w, "  baseline   %-38s %8.0f req/s  p50 %.2f ms  p99 %.2f ms  errors %d\n", b.Target, b.RequestsPerSec, b.P50Ms, b.P99Ms, b.Errors)
	}
	if r.Ratios != nil {
		fmt.Fprintf(w, "  ratios     arubug / do-nothing handler = %.0f %%; arubug / direct ClickHouse inserts = %.1f×\n",
			r.Ratios.ArubugOverNoop*100, r.Ratios.ArubugOverClickHouse)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note       %s\n", n)
	}
	if r.WorkDir != "" {
		fmt.Fprintf(w, "  work dir   %s\n", r.WorkDir)
	}
	if r.Passed() {
		fmt.Fprintln(w, "PASS: every 2xx'd event stored exactly once, every non-spam report ticketed exactly once, every reply stored once")
		return
	}
	fmt.Fprintf(w, "FAIL: %d invariant violations\n", len(r.Violations))
	for _, v := range r.Violations {
		fmt.Fprintf(w, "  - %s\n", v)
	}
}

func kinds(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	var b strings.Builder
	for i, k := range ks {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, m[k])
	}
	return b.String()
}

func machine() string {
	return fmt.Sprintf("%d cores, %s/%s, %s", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// ---- progress ----

// progress writes the live status line and notices. On a terminal the
// line is rewritten in place; elsewhere (CI logs) a line is printed every
// 5 s.
type progress struct {
	w     io.Writer
	tty   bool
	mu    sync.Mutex
	last  int // length of the line on screen
	drain string
	lastP time.Time
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) clearLocked() {
	if p.tty && p.last > 0 {
		fmt.Fprint(p.w, "\r"+strings.Repeat(" ", p.last)+"\r")
		p.last = 0
	}
}

// notice prints a line of its own.
func (p *progress) notice(format string, args ...any) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	fmt.Fprintf(p.w, "arubug-load scenario: "+format+"\n", args...)
}

func (p *progress) line(s string) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.tty {
		if time.Since(p.lastP) < 5*time.Second {
			return
		}
		p.lastP = time.Now()
		fmt.Fprintln(p.w, s)
		return
	}
	pad := ""
	if n := p.last - len(s); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	p.last = len(s)
	fmt.Fprint(p.w, "\r"+s+pad)
}

func (p *progress) setDrain(s string) {
	p.mu.Lock()
	p.drain = s
	p.mu.Unlock()
}

func (p *progress) done() {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
}

func (r *run) progressLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastEv int64
	lastAt := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			ev := r.acked.Load()
			cur := float64(ev-lastEv) / now.Sub(lastAt).Seconds()
			lastEv, lastAt = ev, now
			r.faultMu.Lock()
			fault := r.faultNow
			r.faultMu.Unlock()
			r.log.mu.Lock()
			drain := r.log.drain
			r.log.mu.Unlock()
			r.ticketMu.Lock()
			tickets := len(r.ticketSeen)
			r.ticketMu.Unlock()
			r.reportMu.Lock()
			reports := len(r.reportAt)
			r.reportMu.Unlock()
			s := fmt.Sprintf("[%5.1fs] reqs %d  events %d (%.0f/s now)  errors %d  ack p99 %s  reports %d  tickets %d",
				now.Sub(r.start).Seconds(), r.reqs.Load(), ev, cur, r.errs.Load(),
				fmtMs(r.ackLat.Quantile(0.99)), reports, tickets)
			if fault != "" {
				s += "  FAULT " + fault
			}
			if drain != "" {
				s += "  draining: " + drain
			}
			r.log.line(s)
		}
	}
}

func fmtMs(d time.Duration) string { return fmt.Sprintf("%.1fms", ms(d)) }
