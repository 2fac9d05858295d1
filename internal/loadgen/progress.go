package loadgen

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progressReporter writes one status line per interval: elapsed time,
// requests, overall and current req/s, errors and p99 so far.
type progressReporter struct {
	w        io.Writer
	r        *runner
	start    time.Time
	tty      bool
	last     int64
	lastAt   time.Time
	lastLen  int
	scratch  histogram
	interval time.Duration
}

func newProgressReporter(w io.Writer, r *runner, start time.Time) *progressReporter {
	return &progressReporter{
		w: w, r: r, start: start, lastAt: start,
		tty:      isTerminal(w),
		interval: r.cfg.ProgressInterval,
	}
}

// isTerminal reports whether w is a character device (a terminal), without
// depending on x/term.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0 && st.Mode()&os.ModeDevice != 0
}

func (p *progressReporter) loop(ctx context.Context) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			p.print(now, false)
		}
	}
}

// finish prints the final line (and ends the \r line on a terminal).
func (p *progressReporter) finish(now time.Time) {
	p.print(now, true)
}

func (p *progressReporter) print(now time.Time, final bool) {
	reqs := p.r.requests.Load()
	errs := p.r.errs.Load()
	p.scratch = histogram{}
	for _, w := range p.r.workers {
		w.mu.Lock()
		p.scratch.merge(&w.hist)
		w.mu.Unlock()
	}
	elapsed := now.Sub(p.start)
	var rps, cur float64
	if s := elapsed.Seconds(); s > 0 {
		rps = float64(reqs) / s
	}
	if s := now.Sub(p.lastAt).Seconds(); s > 0 {
		cur = float64(reqs-p.last) / s
	}
	p.last, p.lastAt = reqs, now
	curStr := fmt.Sprintf(" (now %.0f)", cur)
	if final {
		curStr = "" // the last interval is a partial one
	}
	line := fmt.Sprintf("[%6.1fs] reqs %d  req/s %.0f%s  errors %d  p99 %s",
		elapsed.Seconds(), reqs, rps, curStr, errs, fmtDur(p.scratch.quantile(0.99)))
	if final {
		line += "  done"
	}
	if p.tty {
		pad := ""
		if n := p.lastLen - len(line); n > 0 {
			pad = strings.Repeat(" ", n)
		}
		p.lastLen = len(line)
		end := ""
		if final {
			end = "\n"
		}
		fmt.Fprint(p.w, "\r"+line+pad+end)
		return
	}
	fmt.Fprintln(p.w, line)
}

// fmtDur prints a latency with 3 significant digits in a fitting unit.
func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.3gs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.3gms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.3gµs", float64(d)/float64(time.Microsecond))
	}
}

// FormatDuration prints a latency compactly ("1.23ms"), as in the progress
// lines.
func FormatDuration(d time.Duration) string { return fmtDur(d) }
