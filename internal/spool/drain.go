package spool

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arubug/arubug/internal/bugreport"
)

// DrainOptions configures Drain.
type DrainOptions struct {
	// BatchEvents is the insert size that triggers a write at once; smaller
	// amounts wait up to FlushInterval so that ClickHouse gets large inserts.
	BatchEvents int
	// BatchBytes bounds the encoded size of one insert (and so the memory
	// a batch holds).
	BatchBytes    int64
	FlushInterval time.Duration
	// WriteTimeout bounds one insert.
	WriteTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed insert.
	MinBackoff, MaxBackoff time.Duration
	// FinalFlush bounds the last drain when ctx ends.
	FinalFlush time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// DefaultDrainOptions returns options that give ClickHouse inserts of up to
// 20 000 events at least every second.
func DefaultDrainOptions() DrainOptions {
	return DrainOptions{
		BatchEvents:   20000,
		BatchBytes:    32 << 20,
		FlushInterval: time.Second,
		WriteTimeout:  30 * time.Second,
		MinBackoff:    200 * time.Millisecond,
		MaxBackoff:    30 * time.Second,
		FinalFlush:    10 * time.Second,
	}
}

type drainMetrics struct {
	written    prometheus.Counter
	batchSize  prometheus.Histogram
	insertTime prometheus.Histogram
	errors     prometheus.Counter
	lag        prometheus.Gauge
}

// Drain moves events from the spool to w until ctx ends, then makes one last
// attempt bounded by FinalFlush. A batch is removed from the spool only after
// w accepted it, so a crash at any point replays it; w deduplicates by UUID.
// Failed writes are retried with capped exponential backoff and jitter.
func (s *Spool) Drain(ctx context.Context, w bugreport.EventWriter, o DrainOptions) {
	d := DefaultDrainOptions()
	if o.BatchEvents > 0 {
		d.BatchEvents = o.BatchEvents
	}
	if o.BatchBytes > 0 {
		d.BatchBytes = o.BatchBytes
	}
	if o.FlushInterval > 0 {
		d.FlushInterval = o.FlushInterval
	}
	if o.WriteTimeout > 0 {
		d.WriteTimeout = o.WriteTimeout
	}
	if o.MinBackoff > 0 {
		d.MinBackoff = o.MinBackoff
	}
	if o.MaxBackoff > 0 {
		d.MaxBackoff = o.MaxBackoff
	}
	if o.FinalFlush > 0 {
		d.FinalFlush = o.FinalFlush
	}
	d.Logger, d.Registerer = o.Logger, o.Registerer
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Registerer == nil {
		d.Registerer = prometheus.NewRegistry()
	}
	m := &drainMetrics{
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arubug_clickhouse_events_written_total",
			Help: "Events inserted into ClickHouse from the spool.",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "arubug_clickhouse_insert_events",
			Help:    "Events per ClickHouse insert.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}),
		insertTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "arubug_clickhouse_insert_seconds",
			Help:    "Duration of ClickHouse inserts, failed ones included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arubug_clickhouse_insert_errors_total",
			Help: "Failed ClickHouse inserts (each is retried).",
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "arubug_spool_oldest_age_seconds",
			Help: "Age of the oldest event batch waiting in the spool.",
		}),
	}
	d.Registerer.MustRegister(m.written, m.batchSize, m.insertTime, m.errors, m.lag)

	backoff := time.Duration(0)
	// retry holds a batch whose write failed, so that retries during an
	// outage do not read and decode it again.
	var retry *Batch
	for {
		if ctx.Err() != nil {
			s.finalFlush(w, d, m)
			return
		}
		if backoff > 0 {
			if !sleep(ctx, backoff) {
				continue
			}
		}
		if retry != nil {
			if err := s.write(ctx, w, *retry, d, m); err != nil {
				backoff = nextBackoff(backoff, d)
				d.Logger.Warn("clickhouse insert failed; will retry", "events", retry.Len(), "retry_in", backoff.Round(time.Millisecond), "err", err)
				continue
			}
			d.Logger.Info("clickhouse insert recovered", "events", retry.Len())
			retry, backoff = nil, 0
			continue
		}
		b, err := s.Peek(d.BatchEvents, d.BatchBytes)
		if err != nil {
			d.Logger.Error("spool read failed", "err", err)
			backoff = nextBackoff(backoff, d)
			continue
		}
		if b.Len() == 0 && b.end != b.start {
			// Only records that were set aside: move past them.
			if err := s.Ack(b); err != nil {
				d.Logger.Error("spool ack failed", "err", err)
				backoff = nextBackoff(backoff, d)
			}
			continue
		}
		if b.Len() == 0 {
			s.Release(&b)
			backoff = 0
			m.lag.Set(0)
			select {
			case <-ctx.Done():
			case <-s.Notify():
			}
			continue
		}
		// A wall clock stepped backwards must not hold the batch back.
		age := max(time.Since(b.Oldest), 0)
		m.lag.Set(age.Seconds())
		if b.Len() < d.BatchEvents && !b.Full && age < d.FlushInterval {
			// Wait for a full batch or for the oldest record to come due;
			// the batch is read again then.
			s.Release(&b)
			t := time.NewTimer(d.FlushInterval - age)
			select {
			case <-ctx.Done():
			case <-t.C:
			case <-s.Notify():
				// Notify fires on every commit: keep waiting unless a
				// full batch is waiting now.
			wait:
				for {
					if n, bytes := s.Stats(); n >= int64(d.BatchEvents) || bytes >= d.BatchBytes {
						break
					}
					select {
					case <-ctx.Done():
						break wait
					case <-t.C:
						break wait
					case <-s.Notify():
					}
				}
			}
			t.Stop()
			continue
		}
		if err := s.write(ctx, w, b, d, m); err != nil {
			backoff = nextBackoff(backoff, d)
			d.Logger.Warn("clickhouse insert failed; will retry", "events", b.Len(), "retry_in", backoff.Round(time.Millisecond), "err", err)
			retry = &b
			continue
		}
		backoff = 0
	}
}

func (s *Spool) write(ctx context.Context, w bugreport.EventWriter, b Batch, d DrainOptions, m *drainMetrics) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.WriteTimeout)
	defer cancel()
	start := time.Now()
	err := w.WriteEvents(wctx, b.Events)
	m.insertTime.Observe(time.Since(start).Seconds())
	if err != nil {
		m.errors.Inc()
		return err
	}
	m.batchSize.Observe(float64(b.Len()))
	if err := s.Ack(b); err != nil {
		// The events are in ClickHouse; they will be written again and
		// collapse by UUID.
		return err
	}
	m.written.Add(float64(b.Len()))
	// The writer is done with the events: their buffer serves the next
	// batch.
	s.Release(&b)
	return nil
}

func (s *Spool) finalFlush(w bugreport.EventWriter, d DrainOptions, m *drainMetrics) {
	ctx, cancel := context.WithTimeout(context.Background(), d.FinalFlush)
	defer cancel()
	// write detaches from its context's cancellation; here the final flush's
	// deadline must bound each insert too.
	if d.WriteTimeout > d.FinalFlush {
		d.WriteTimeout = d.FinalFlush
	}
	for ctx.Err() == nil {
		b, err := s.Peek(d.BatchEvents, d.BatchBytes)
		if err != nil {
			n, _ := s.Stats()
			d.Logger.Error("final flush could not read the spool; events stay in it for the next start", "events", n, "err", err)
			return
		}
		if b.Len() == 0 {
			if b.end == b.start {
				s.Release(&b)
				return
			}
			// Only records that were set aside: move past them, as Drain
			// does, to flush the records behind them.
			if err := s.Ack(b); err != nil {
				n, _ := s.Stats()
				d.Logger.Warn("final flush could not move past set-aside records; events stay in the spool for the next start", "events", n, "err", err)
				return
			}
			continue
		}
		if err := s.write(ctx, w, b, d, m); err != nil {
			n, _ := s.Stats()
			d.Logger.Warn("final flush to clickhouse failed; events stay in the spool for the next start", "events", n, "err", err)
			return
		}
	}
	if n, _ := s.Stats(); n > 0 {
		d.Logger.Warn("final flush ran out of time; events stay in the spool for the next start", "events", n)
	}
}

func nextBackoff(cur time.Duration, d DrainOptions) time.Duration {
	next := cur * 2
	if next < d.MinBackoff {
		next = d.MinBackoff
	}
	if next > d.MaxBackoff {
		next = d.MaxBackoff
	}
	// Full jitter in the upper half keeps instances from retrying in step.
	return next/2 + rand.N(next/2+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
