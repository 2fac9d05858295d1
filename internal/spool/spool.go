// Package spool is the durable queue between capture and ClickHouse. Append
// returns only after the events are fsynced, and concurrent appends share
// one fsync (group commit), so durability costs one disk flush per burst
// rather than one per request. The store is bbolt: a single file with
// crash-safe copy-on-write transactions.
package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/arubug/arubug/internal/bugreport"
)

var (
	bucketName    = []byte("events")
	corruptBucket = []byte("corrupt")
)

// headerLen is the record header: commit time (unix ns) and event count.
const headerLen = 12

// Options configures a Spool.
type Options struct {
	// Path of the spool file; its directory is created if missing.
	Path string
	// MaxBytes bounds the encoded events held. Appends past it fail with
	// EUNAVAILABLE so that capture answers 503 and clients retry later.
	MaxBytes int64
	// RetryAfter is the hint given to clients when the spool is full.
	RetryAfter time.Duration
	// MaxCommitBytes bounds one group commit.
	MaxCommitBytes int64
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
	Now            func() time.Time
}

// Spool is a durable FIFO of event batches. It is safe for concurrent use.
type Spool struct {
	db        *bolt.DB
	opts      Options
	reqs      chan *appendReq
	notify    chan struct{}
	done      chan struct{}
	stopped   chan struct{} // closed when the commit loop has exited
	closeOnce sync.Once
	closing   atomic.Bool
	wg        sync.WaitGroup
	bytes     atomic.Int64 // encoded bytes held, including reservations
	events    atomic.Int64
	m         *metrics
	readMu    sync.Mutex // one reader at a time: Peek/Ack are a pair
}

type appendReq struct {
	value []byte
	count int
	done  chan error
}

type metrics struct {
	commits      prometheus.Histogram
	commitTime   prometheus.Histogram
	appendErrors *prometheus.CounterVec
}

var _ bugreport.EventSink = (*Spool)(nil)

// Open opens or creates the spool at opts.Path, recovering what a previous
// process left in it.
func Open(opts Options) (*Spool, error) {
	if opts.Path == "" {
		return nil, errors.New("spool: path is required")
	}
	if opts.MaxBytes <= 0 {
		return nil, errors.New("spool: max bytes must be positive")
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = 5 * time.Second
	}
	if opts.MaxCommitBytes <= 0 {
		opts.MaxCommitBytes = 32 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o750); err != nil {
		return nil, fmt.Errorf("spool: create directory: %w", err)
	}
	db, err := bolt.Open(opts.Path, 0o600, &bolt.Options{
		Timeout: 2 * time.Second,
		// The freelist is rebuilt on open instead of written at every
		// commit: less to fsync on the hot path.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("spool: %s is locked by another process (is another arubug running with the same data dir?)", opts.Path)
		}
		return nil, fmt.Errorf("spool: open %s: %w", opts.Path, err)
	}
	s := &Spool{
		db:      db,
		opts:    opts,
		reqs:    make(chan *appendReq, 4096),
		notify:  make(chan struct{}, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketName)
		if err != nil {
			return err
		}
		return b.ForEach(func(_, v []byte) error {
			s.bytes.Add(int64(len(v)))
			if len(v) < headerLen {
				return nil // set aside by the first Peek that meets it
			}
			s.events.Add(int64(binary.BigEndian.Uint32(v[8:12])))
			return nil
		})
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("spool: recover %s: %w", opts.Path, err)
	}
	s.m = newMetrics(opts.Registerer, s)
	if n := s.events.Load(); n > 0 {
		opts.Logger.Info("spool recovered events from a previous run", "events", n, "bytes", s.bytes.Load(), "path", opts.Path)
	}
	s.wg.Add(1)
	go s.commitLoop()
	return s, nil
}

func newMetrics(reg prometheus.Registerer, s *Spool) *metrics {
	m := &metrics{
		commits: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "arubug_spool_commit_requests",
			Help:    "Append requests made durable by one fsync (group commit size).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "arubug_spool_commit_seconds",
			Help:    "Time to write and fsync one group commit.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		appendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arubug_spool_append_errors_total",
			Help: "Appends refused or failed, by reason.",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.commits, m.commitTime, m.appendErrors,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "arubug_spool_events",
			Help: "Events in the spool waiting for ClickHouse.",
		}, func() float64 { return float64(s.events.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "arubug_spool_bytes",
			Help: "Encoded bytes in the spool waiting for ClickHouse.",
		}, func() float64 { return float64(s.bytes.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "arubug_spool_max_bytes",
			Help: "The spool's byte limit.",
		}, func() float64 { return float64(s.opts.MaxBytes) }),
	)
	return m
}

// Append stores events durably. It returns nil only after they are fsynced.
// When the spool is full or closed it returns an EUNAVAILABLE *bugreport.Error
// with a RetryAfter hint. If ctx ends first, Append returns ctx's error, and
// the events may or may not have been stored: callers retry with the same
// event UUIDs, which the event store deduplicates.
func (s *Spool) Append(ctx context.Context, events []bugreport.Event) error {
	if len(events) == 0 {
		return nil
	}
	if s.closing.Load() {
		s.m.appendErrors.WithLabelValues("closed").Inc()
		return &bugreport.Error{Code: bugreport.EUNAVAILABLE, Reason: "shutting_down", Message: "the collector is shutting down; retry", RetryAfter: time.Second}
	}
	value, err := encode(s.opts.Now(), events)
	if err != nil {
		return fmt.Errorf("spool: encode: %w", err)
	}
	if !s.reserve(int64(len(value))) {
		s.m.appendErrors.WithLabelValues("full").Inc()
		return &bugreport.Error{Code: bugreport.EUNAVAILABLE, Reason: "spool_full", Message: "the collector's spool is full; retry later", RetryAfter: s.opts.RetryAfter}
	}
	req := &appendReq{value: value, count: len(events), done: make(chan error, 1)}
	select {
	case <-s.done:
		s.bytes.Add(-int64(len(value)))
		return &bugreport.Error{Code: bugreport.EUNAVAILABLE, Reason: "shutting_down", Message: "the collector is shutting down; retry", RetryAfter: time.Second}
	default:
	}
	select {
	case s.reqs <- req:
	case <-ctx.Done():
		s.bytes.Add(-int64(len(value)))
		return ctx.Err()
	case <-s.done:
		s.bytes.Add(-int64(len(value)))
		return &bugreport.Error{Code: bugreport.EUNAVAILABLE, Reason: "shutting_down", Message: "the collector is shutting down; retry", RetryAfter: time.Second}
	}
	select {
	case err := <-req.done:
		return err
	case <-s.stopped:
		// The loop may have committed it just before stopping.
		select {
		case err := <-req.done:
			return err
		default:
			return &bugreport.Error{Code: bugreport.EUNAVAILABLE, Reason: "shutting_down", Message: "the collector is shutting down; retry", RetryAfter: time.Second}
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Spool) reserve(n int64) bool {
	for {
		cur := s.bytes.Load()
		if cur+n > s.opts.MaxBytes {
			return false
		}
		if s.bytes.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// commitLoop writes queued appends in one transaction per burst: whatever
// arrived while the previous fsync ran goes into the next one.
func (s *Spool) commitLoop() {
	defer s.wg.Done()
	batch := make([]*appendReq, 0, 256)
	for {
		var first *appendReq
		select {
		case first = <-s.reqs:
		case <-s.done:
			// Commit what is already queued so that no accepted append is
			// left waiting; Close stops new ones first.
			for {
				select {
				case r := <-s.reqs:
					s.commit([]*appendReq{r})
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
		size := int64(len(first.value))
	fill:
		for size < s.opts.MaxCommitBytes {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
				size += int64(len(r.value))
			default:
				break fill
			}
		}
		s.commit(batch)
	}
}

func (s *Spool) commit(batch []*appendReq) {
	start := time.Now()
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName)
		// Keys only ever grow, so pages never need room for inserts in the
		// middle: full pages halve the file (measured in docs/spool-choice).
		b.FillPercent = 1.0
		for _, r := range batch {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			var key [8]byte
			binary.BigEndian.PutUint64(key[:], seq)
			if err := b.Put(key[:], r.value); err != nil {
				return err
			}
		}
		return nil
	})
	s.m.commitTime.Observe(time.Since(start).Seconds())
	s.m.commits.Observe(float64(len(batch)))
	if err != nil {
		s.opts.Logger.Error("spool commit failed", "err", err, "requests", len(batch))
		s.m.appendErrors.WithLabelValues("write").Add(float64(len(batch)))
	}
	for _, r := range batch {
		if err != nil {
			s.bytes.Add(-int64(len(r.value)))
			r.done <- &bugreport.Error{Code: bugreport.EUNAVAILABLE, Reason: "spool_write_failed", Message: "the collector could not store the events; retry", RetryAfter: s.opts.RetryAfter, Err: err}
			continue
		}
		s.events.Add(int64(r.count))
		r.done <- nil
	}
	if err == nil {
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
}

// Batch is a run of records read from the head of the spool.
type Batch struct {
	Events []bugreport.Event
	// Oldest is the commit time of the oldest record.
	Oldest time.Time
	// Full reports that the batch stopped at a limit with records left
	// behind it, so waiting will not make it larger.
	Full  bool
	keys  [][]byte
	bytes int64
}

// Len returns the number of events in b.
func (b Batch) Len() int { return len(b.Events) }

// Peek reads records from the head of the spool until at least maxEvents
// events or maxBytes bytes are read (always at least one record). The records
// stay in the spool until Ack.
func (s *Spool) Peek(maxEvents int, maxBytes int64) (Batch, error) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	// Copy the records out and decode after the read transaction: a long
	// read transaction would hold up the file growth that commits need.
	var raw [][]byte
	var out Batch
	events := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketName).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(raw) > 0 && (events >= maxEvents || out.bytes+int64(len(v)) > maxBytes) {
				out.Full = true
				break
			}
			if len(v) >= headerLen {
				events += int(binary.BigEndian.Uint32(v[8:12]))
			}
			raw = append(raw, append([]byte(nil), v...))
			out.keys = append(out.keys, append([]byte(nil), k...))
			out.bytes += int64(len(v))
		}
		return nil
	})
	if err != nil {
		return Batch{}, err
	}
	out.Events = make([]bugreport.Event, 0, events)
	keys := out.keys
	out.keys = out.keys[:0:0]
	for i, v := range raw {
		at, evs, err := decode(v)
		if err != nil {
			// A record that cannot be decoded would block the queue
			// forever; it is set aside for inspection instead.
			s.opts.Logger.Error("spool record cannot be decoded; moving it to the corrupt bucket", "key", fmt.Sprintf("%x", keys[i]), "err", err)
			if qerr := s.quarantine(keys[i]); qerr != nil {
				return Batch{}, fmt.Errorf("record %x: %w (and quarantine failed: %v)", keys[i], err, qerr)
			}
			out.bytes -= int64(len(v))
			continue
		}
		if len(out.keys) == 0 {
			out.Oldest = at
		}
		out.keys = append(out.keys, keys[i])
		out.Events = append(out.Events, evs...)
	}
	return out, nil
}

// quarantine moves an undecodable record to the corrupt bucket.
func (s *Spool) quarantine(key []byte) error {
	var size int64
	var count uint32
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName)
		v := b.Get(key)
		if v == nil {
			return nil
		}
		size = int64(len(v))
		if len(v) >= headerLen {
			count = binary.BigEndian.Uint32(v[8:12])
		}
		q, err := tx.CreateBucketIfNotExists(corruptBucket)
		if err != nil {
			return err
		}
		if err := q.Put(key, v); err != nil {
			return err
		}
		return b.Delete(key)
	})
	if err == nil {
		s.bytes.Add(-size)
		s.events.Add(-int64(count))
		s.m.appendErrors.WithLabelValues("corrupt_record").Inc()
	}
	return err
}

// Ack removes b's records from the spool.
func (s *Spool) Ack(b Batch) error {
	if len(b.keys) == 0 {
		return nil
	}
	s.readMu.Lock()
	defer s.readMu.Unlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketName)
		for _, k := range b.keys {
			if err := bk.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("spool: ack: %w", err)
	}
	s.bytes.Add(-b.bytes)
	s.events.Add(-int64(len(b.Events)))
	return nil
}

// Notify is signalled after each commit.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Stats returns the events and encoded bytes held.
func (s *Spool) Stats() (events, bytes int64) { return s.events.Load(), s.bytes.Load() }

// Full reports whether the spool is at or above 95 % of its limit.
func (s *Spool) Full() bool { return s.bytes.Load() >= s.opts.MaxBytes/20*19 }

// Close stops accepting appends, commits those already queued and closes
// the file. Events not yet drained stay on disk for the next Open.
func (s *Spool) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		close(s.done)
		s.wg.Wait()
		close(s.stopped)
		err = s.db.Close()
	})
	return err
}

func encode(now time.Time, events []bugreport.Event) ([]byte, error) {
	v := make([]byte, headerLen, headerLen+encodedSize(events))
	binary.BigEndian.PutUint64(v[0:8], uint64(now.UnixNano()))
	binary.BigEndian.PutUint32(v[8:12], uint32(len(events)))
	return appendEvents(v, events), nil
}

func decode(v []byte) (time.Time, []bugreport.Event, error) {
	if len(v) < headerLen {
		return time.Time{}, nil, errors.New("record too short")
	}
	at := time.Unix(0, int64(binary.BigEndian.Uint64(v[0:8])))
	events, err := decodeEvents(v[headerLen:])
	return at, events, err
}
