// Package spool is the durable queue between capture and ClickHouse. Append
// returns only after the events are fsynced, and concurrent appends share
// one fsync (group commit), so durability costs one disk flush per burst
// rather than one per request. The store is an append-only log of segment
// files with a checksum per record: a group commit is one write and one
// fdatasync, and draining reads the log in order and moves a head pointer,
// so the drainer never competes with appends for the disk. The layout and
// the reasons are in segment.go and docs/spool-choice.
package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arubug/arubug/internal/bugreport"
)

// headerLen is the record header: commit time (unix ns) and event count.
const headerLen = 12

// Options configures a Spool.
type Options struct {
	// Dir is the spool's directory; it is created if missing.
	Dir string
	// Legacy is the path of a spool file of the bbolt format that Arubug
	// used before the log. If it exists, Open moves its events into the log
	// and removes it, so that an upgrade loses nothing acknowledged.
	Legacy string
	// MaxBytes bounds the encoded events held. Appends past it fail with
	// EUNAVAILABLE so that capture answers 503 and clients retry later.
	MaxBytes int64
	// RetryAfter is the hint given to clients when the spool is full.
	RetryAfter time.Duration
	// MaxCommitBytes bounds one group commit.
	MaxCommitBytes int64
	// SegmentBytes is the size past which the log starts a new segment
	// file; drained segments are deleted whole.
	SegmentBytes int64
	// Preallocate keeps a zero-filled segment of SegmentBytes ready, so
	// that commits overwrite allocated blocks instead of growing a file
	// (prealloc.go has the measurements). The directory then holds up to
	// two segments more than the records need.
	Preallocate bool
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
	Now         func() time.Time
}

// Spool is a durable FIFO of event batches. It is safe for concurrent use.
type Spool struct {
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
	lock      *os.File

	mu   sync.Mutex // guards segs and their sizes
	segs []*segment

	pre *preallocator // nil unless Options.Preallocate

	// Owned by the commit loop.
	tail    *os.File // nil after a failed write: the next commit starts a new segment
	tailSeg *segment
	nextID  uint64
	wbuf    []byte

	// Owned by the reader: one at a time, Peek and Ack are a pair.
	readMu sync.Mutex
	head   position // the first record not yet acknowledged
	headF  *os.File
	rfile  *os.File // the segment last read
	rseg   *segment
	free   []byte // a released batch's buffer, for the next Peek
	freeEv []bugreport.Event
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
	segments     *prometheus.CounterVec
}

var _ bugreport.EventSink = (*Spool)(nil)

// Open opens or creates the spool in opts.Dir, recovering what a previous
// process left in it.
func Open(opts Options) (*Spool, error) {
	if opts.Dir == "" {
		return nil, errors.New("spool: directory is required")
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
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 64 << 20
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
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: create directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(opts.Dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := lockFile(lock); err != nil {
		_ = lock.Close()
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("spool: %s is locked by another process (is another arubug running with the same data dir?)", opts.Dir)
		}
		return nil, fmt.Errorf("spool: lock %s: %w", opts.Dir, err)
	}
	s := &Spool{
		opts:    opts,
		lock:    lock,
		reqs:    make(chan *appendReq, 4096),
		notify:  make(chan struct{}, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	s.m = newMetrics(opts.Registerer, s)
	if opts.Preallocate {
		s.pre, err = newPreallocator(opts.Dir, opts.SegmentBytes, s.done, func(err error) {
			opts.Logger.Warn("spool: could not prepare a zero-filled segment; new segments grow as they are written, which costs more per commit", "err", err)
		})
		if err != nil {
			s.closeFiles()
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	if err := s.recover(); err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("spool: recover %s: %w", opts.Dir, err)
	}
	if opts.Legacy != "" {
		if err := s.importLegacy(opts.Legacy); err != nil {
			s.closeFiles()
			return nil, fmt.Errorf("spool: import %s: %w", opts.Legacy, err)
		}
	}
	if n := s.events.Load(); n > 0 {
		opts.Logger.Info("spool recovered events from a previous run", "events", n, "bytes", s.bytes.Load(), "dir", opts.Dir)
	}
	s.wg.Add(1)
	go s.commitLoop()
	if s.pre != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.pre.loop()
		}()
	}
	return s, nil
}

// recover finds the head and the tail, counts what lies between them and
// cuts off what a crash left half written.
func (s *Spool) recover() error {
	dir := s.opts.Dir
	hf, err := os.OpenFile(filepath.Join(dir, headName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	s.headF = hf
	segs, err := listSegments(dir)
	if err != nil {
		return err
	}
	headID, headOff, ok := readHead(hf)
	readID, readOff := headID, headOff
	if !ok {
		if fi, err := hf.Stat(); err == nil && fi.Size() > 0 && len(segs) > 0 {
			s.opts.Logger.Warn("spool HEAD is damaged; replaying from the oldest segment (ClickHouse collapses the repeats)", "dir", dir)
		}
		headID, headOff = 0, 0
	}
	// Segments before the head's were drained; a crash between writing
	// HEAD and deleting them leaves them behind.
	for len(segs) > 0 && segs[0].id < headID {
		if err := os.Remove(segs[0].path); err != nil {
			return err
		}
		segs = segs[1:]
	}
	if len(segs) == 0 || segs[0].id != headID {
		headOff = 0
	}
	s.segs = segs
	for i, sg := range segs {
		f, err := os.OpenFile(sg.path, os.O_RDWR, 0o600)
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err != nil {
			_ = f.Close()
			return err
		}
		from := int64(0)
		if i == 0 {
			from = min(headOff, fi.Size())
		}
		count := func(p []byte) {
			s.bytes.Add(int64(len(p)))
			if len(p) >= headerLen {
				s.events.Add(int64(binary.BigEndian.Uint32(p[8:12])))
			}
		}
		end, err := scanSegment(f, from, count)
		for err == nil && end < fi.Size() {
			// One damaged record with intact ones after it: count it as
			// the reader will when it sets it aside, and go on.
			next, ok := damagedRecordEnd(f, end, fi.Size())
			if !ok {
				break
			}
			rec := make([]byte, next-end)
			if _, err = f.ReadAt(rec, end); err != nil {
				break
			}
			if hasZeroSector(rec, end) {
				// An unwritten sector is a commit torn by a crash, not
				// bit rot: the intact frames after it are of the same
				// unacknowledged commit, and are cut with it.
				break
			}
			count(rec[frameLen:])
			end, err = scanSegment(f, next, count)
		}
		if err != nil {
			_ = f.Close()
			return err
		}
		if i == 0 && headOff > end {
			// HEAD points past what the segment holds intact; start at
			// the end of what it does.
			from = end
		}
		sg.size, sg.room = end, fi.Size()
		if end < fi.Size() {
			// Zeros after the records are a preallocated segment's room;
			// anything else is damage or a torn write, which is cut so
			// that no stale frame past it can ever follow new records.
			dataEnd, err := zeroEnd(f, end, fi.Size())
			if err == nil && dataEnd > end {
				err = s.cutDamaged(f, sg, end, dataEnd, i == len(segs)-1)
				sg.room = end
			}
			if err != nil {
				_ = f.Close()
				return err
			}
		}
		if i == 0 {
			s.head = position{seg: sg, off: from}
		}
		if i < len(segs)-1 {
			_ = f.Close()
			continue
		}
		s.tail, s.tailSeg, s.nextID = f, sg, sg.id+1
	}
	if len(segs) == 0 {
		if err := s.rotate(max(headID, 1)); err != nil {
			return err
		}
		s.head = position{seg: s.tailSeg}
	}
	// Recovery may have moved the head (HEAD unreadable, its segment
	// missing or shorter than HEAD says). Record where it is now: a stale
	// HEAD would make the next start read the records appended from here
	// on from the wrong offset.
	if !ok || s.head.seg.id != readID || s.head.off != readOff {
		if ok {
			s.opts.Logger.Warn("spool HEAD pointed where the log has no record; starting from the first one after it", "head_segment", readID, "head_offset", readOff, "now_segment", s.head.seg.id, "now_offset", s.head.off)
		}
		if err := writeHead(hf, s.head); err != nil {
			return err
		}
	}
	return nil
}

// cutDamaged truncates a segment at end, the end of its intact records,
// after copying the rest to the corrupt directory. At the tail that rest is
// normally a write cut by a crash, never acknowledged; but damage early in
// the tail would also cut acknowledged records after it, and the two look
// alike, so the bytes are always kept.
func (s *Spool) cutDamaged(f *os.File, sg *segment, end, size int64, tail bool) error {
	kept, err := setAside(s.opts.Dir, sg.path, end, size)
	if err != nil {
		return err
	}
	if tail {
		s.opts.Logger.Warn("spool: the end of the log did not read back and was moved aside; usually a write cut by a crash, never acknowledged (if the disk is damaged it may hold acknowledged events)", "segment", sg.path, "offset", end, "bytes", size-end, "kept_in", kept)
	} else {
		s.m.appendErrors.WithLabelValues("corrupt_record").Inc()
		s.opts.Logger.Error("spool: a segment is damaged; its unreadable rest was moved aside and is not sent to ClickHouse", "segment", sg.path, "offset", end, "bytes", size-end, "kept_in", kept)
	}
	if err := f.Truncate(end); err != nil {
		return err
	}
	return fdatasync(f)
}

// rotate starts segment id as the tail: the prepared zero-filled file when
// there is one, else an empty file.
func (s *Spool) rotate(id uint64) error {
	path := filepath.Join(s.opts.Dir, segName(id))
	var f *os.File
	var err error
	room, prepared := int64(0), s.pre.take(path)
	if prepared {
		f, err = os.OpenFile(path, os.O_RDWR, 0o600)
		room = s.opts.SegmentBytes
	} else {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	}
	if err != nil {
		if prepared {
			_ = os.Remove(path) // else the retry's O_EXCL create fails forever
		}
		return err
	}
	// The new name must survive a crash before any record in it is
	// acknowledged.
	if err := syncDir(s.opts.Dir); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return err
	}
	s.m.segments.WithLabelValues(strconv.FormatBool(prepared)).Inc()
	if s.tail != nil {
		_ = s.tail.Close()
	}
	sg := &segment{id: id, path: path, room: room}
	s.mu.Lock()
	s.segs = append(s.segs, sg)
	s.mu.Unlock()
	s.tail, s.tailSeg, s.nextID = f, sg, id+1
	return nil
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
		segments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arubug_spool_segments_total",
			Help: "Segments started, by whether they were zero-filled ahead (preallocated=false costs more per commit).",
		}, []string{"preallocated"}),
	}
	reg.MustRegister(m.commits, m.commitTime, m.appendErrors, m.segments,
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
	err := s.writeRecords(batch)
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

// writeRecords appends batch's records to the tail with one write and one
// fdatasync.
func (s *Spool) writeRecords(batch []*appendReq) error {
	buf := s.wbuf[:0]
	for _, r := range batch {
		buf = appendFrame(buf, r.value)
	}
	if cap(buf) <= 4<<20 {
		s.wbuf = buf // reuse, unless one huge commit would pin it
	}
	// A tail that was not zero-filled moves onto a prepared segment as soon
	// as one is ready, even if it is not full: growing costs more per
	// commit. A zero-filled one is filled first (its last commit may grow
	// it a little), so that only the tail ever has zeros after its records.
	if s.tail == nil || s.tailSeg.size >= s.opts.SegmentBytes ||
		(s.tailSeg.room < s.opts.SegmentBytes && s.pre.isReady()) {
		if err := s.rotate(s.nextID); err != nil {
			return err
		}
	}
	off := s.tailSeg.size // only this goroutine changes it
	_, err := s.tail.WriteAt(buf, off)
	if err == nil {
		err = fdatasync(s.tail)
	}
	if err != nil {
		// After a failed fsync the kernel may have dropped the dirty pages
		// and a retry could report success for data that is not on disk,
		// so this file takes no more writes. The bytes past size are not
		// acknowledged; cut them if the disk lets us, else recovery sets
		// them aside.
		_ = s.tail.Truncate(off)
		_ = s.tail.Close()
		s.tail = nil
		return err
	}
	s.mu.Lock()
	s.tailSeg.size = off + int64(len(buf))
	s.mu.Unlock()
	return nil
}

// Batch is a run of records read from the head of the spool.
type Batch struct {
	Events []bugreport.Event
	// Oldest is the commit time of the oldest record.
	Oldest time.Time
	// Full reports that the batch stopped at a limit with records left
	// behind it, so waiting will not make it larger.
	Full       bool
	start, end position
	records    int
	bytes      int64 // payload bytes, as counted in Spool.bytes
	events     int64 // events, including those of records set aside
	// buf holds the records read; the events' strings point into it.
	buf []byte
}

// Len returns the number of events in b.
func (b Batch) Len() int { return len(b.Events) }

// Peek reads records from the head of the spool until at least maxEvents
// events or maxBytes bytes are read (always at least one record). The records
// stay in the spool until Ack.
func (s *Spool) Peek(maxEvents int, maxBytes int64) (Batch, error) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	s.mu.Lock()
	segs := slices.Clone(s.segs)
	sizes := make([]int64, len(segs))
	for i, sg := range segs {
		sizes[i] = sg.size
	}
	s.mu.Unlock()

	out := Batch{start: s.head, end: s.head, buf: s.free[:0]}
	if want := int(min(int64(maxEvents), s.events.Load())) + 1; cap(s.freeEv) >= want {
		out.Events = s.freeEv[:0]
	} else {
		out.Events = make([]bugreport.Event, 0, want)
	}
	s.freeEv = nil
	s.free = nil
	i := slices.Index(segs, s.head.seg)
	if i < 0 {
		return Batch{}, fmt.Errorf("spool: the head segment %s is gone", s.head.seg.path)
	}
	pos := s.head
	for {
		if pos.off >= sizes[i] {
			if i+1 == len(segs) {
				break
			}
			i++
			pos = position{seg: segs[i]}
			out.end = pos
			continue
		}
		if out.records > 0 && (len(out.Events) >= maxEvents || out.bytes >= maxBytes) {
			out.Full = true
			break
		}
		// Read what is left of the byte budget in one call, into a new
		// buffer: the decoded events' strings point into it.
		want := min(sizes[i]-pos.off, max(maxBytes-out.bytes, 0)+64<<10)
		chunk, err := s.readAt(&out, pos.seg, pos.off, want)
		if err != nil {
			return Batch{}, err
		}
		n, stop, err := s.decodeChunk(&out, chunk, pos, sizes[i], maxEvents, maxBytes)
		if err != nil {
			return Batch{}, err
		}
		pos.off += n
		out.end = pos
		if stop {
			out.Full = true
			break
		}
		if n == 0 {
			if out.records > 0 {
				out.Full = true // the next record is past the byte budget
				break
			}
			// A first record larger than the budget: read it whole.
			if len(chunk) < frameLen {
				return Batch{}, fmt.Errorf("spool: %s@%d: short frame within committed data", pos.seg.path, pos.off)
			}
			l := int64(binary.BigEndian.Uint32(chunk[0:4]))
			if chunk, err = s.readAt(&out, pos.seg, pos.off, frameLen+l); err != nil {
				return Batch{}, err
			}
			if n, _, err = s.decodeChunk(&out, chunk, pos, sizes[i], maxEvents, maxBytes); err != nil {
				return Batch{}, err
			}
			pos.off += n
			out.end = pos
		}
	}
	return out, nil
}

// decodeChunk decodes the whole records at the start of chunk, which was
// read at pos, into out. It returns the bytes consumed, and stop when a
// limit was reached with records left.
func (s *Spool) decodeChunk(out *Batch, chunk []byte, pos position, segSize int64, maxEvents int, maxBytes int64) (int64, bool, error) {
	var p int64
	for int64(len(chunk))-p >= frameLen {
		l := int64(binary.BigEndian.Uint32(chunk[p : p+4]))
		if !frameFits(pos.off+p, l, segSize) {
			n, err := s.skipDamaged(out, pos, p, segSize, "a record's length does not fit its segment")
			return n, false, err
		}
		if int64(len(chunk))-p-frameLen < l {
			break
		}
		if out.records > 0 && (len(out.Events) >= maxEvents || out.bytes+l > maxBytes) {
			return p, true, nil
		}
		out.records++
		at := pos.off + p
		payload := chunk[p+frameLen : p+frameLen+l]
		if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(chunk[p+4:p+8]) {
			if _, ok := damagedRecordEnd(s.rfile, at, segSize); !ok {
				n, err := s.skipDamaged(out, pos, p, segSize, "a record fails its checksum")
				return n, false, err
			}
			// Only this record: an intact one follows it.
			s.setAsideRecord(pos.seg, at, frameLen+l, "a record fails its checksum", nil)
		} else if t, err := decodeInto(&out.Events, payload); err != nil {
			// A record that cannot be decoded would block the queue
			// forever.
			s.setAsideRecord(pos.seg, at, frameLen+l, "a record cannot be decoded", err)
		} else if out.Oldest.IsZero() {
			out.Oldest = t
		}
		// Counted as Append counted it, read or set aside.
		out.bytes += l
		if len(payload) >= headerLen {
			out.events += int64(binary.BigEndian.Uint32(payload[8:12]))
		}
		p += frameLen + l
	}
	return p, false, nil
}

// setAsideRecord copies one record of sg, n bytes at off, to the corrupt
// directory, and logs and counts it; the reader then skips it.
func (s *Spool) setAsideRecord(sg *segment, off, n int64, why string, err error) {
	kept, aerr := setAside(s.opts.Dir, sg.path, off, off+n)
	s.m.appendErrors.WithLabelValues("corrupt_record").Inc()
	s.opts.Logger.Error("spool: "+why+"; it was moved aside and is not sent to ClickHouse", "segment", sg.path, "offset", off, "bytes", n, "err", err, "kept_in", kept, "set_aside_err", aerr)
}

// skipDamaged handles committed data that no longer reads back, at byte p
// of the chunk read at pos: the rest of the segment is moved aside and
// skipped rather than block the queue. It returns the bytes consumed.
func (s *Spool) skipDamaged(out *Batch, pos position, p, segSize int64, why string) (int64, error) {
	at := pos.off + p
	kept, err := setAside(s.opts.Dir, pos.seg.path, at, segSize)
	if err != nil {
		return p, fmt.Errorf("spool: %s@%d: %s (and setting it aside failed: %w)", pos.seg.path, at, why, err)
	}
	s.m.appendErrors.WithLabelValues("corrupt_record").Inc()
	s.opts.Logger.Error("spool: "+why+"; the rest of its segment was moved aside and is not sent to ClickHouse", "segment", pos.seg.path, "offset", at, "bytes", segSize-at, "kept_in", kept)
	// What the damaged bytes held is unknown: counting them all as payload
	// errs towards freeing room (by their frame headers), and their events
	// stay in the events gauge until the next start recounts. Only a
	// damaged length gets here; a damaged payload skips one record.
	out.records++
	out.bytes += segSize - at
	return segSize - pos.off, nil
}

// readAt reads n bytes of sg at off into b's buffer, keeping the file open
// between calls. When the buffer is full it starts a new one: the old one
// stays with the events that point into it.
func (s *Spool) readAt(b *Batch, sg *segment, off, n int64) ([]byte, error) {
	if s.rseg != sg {
		if s.rfile != nil {
			_ = s.rfile.Close()
			s.rfile, s.rseg = nil, nil
		}
		f, err := os.Open(sg.path)
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		s.rfile, s.rseg = f, sg
	}
	if int64(cap(b.buf)-len(b.buf)) < n {
		b.buf = make([]byte, 0, max(n, int64(cap(b.buf))*2))
	}
	buf := b.buf[len(b.buf) : int64(len(b.buf))+n]
	b.buf = b.buf[:int64(len(b.buf))+n]
	if _, err := s.rfile.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("spool: read %s@%d: %w", sg.path, off, err)
	}
	return buf, nil
}

// maxFreeBuf and maxFreeEvents bound what is kept between batches.
const (
	maxFreeBuf    = 64 << 20
	maxFreeEvents = 1 << 16
)

// Release hands b's buffer to the next Peek, which then reads into it
// instead of allocating (and zeroing) megabytes per batch. Only call it
// once nothing uses b's events any more: their strings point into the
// buffer, and the next Peek overwrites it.
func (s *Spool) Release(b *Batch) {
	if cap(b.buf) == 0 || cap(b.buf) > maxFreeBuf {
		return
	}
	s.readMu.Lock()
	defer s.readMu.Unlock()
	if cap(b.buf) > cap(s.free) {
		s.free = b.buf[:0]
	}
	if cap(b.Events) > cap(s.freeEv) && cap(b.Events) <= maxFreeEvents {
		s.freeEv = b.Events[:0]
	}
	b.buf, b.Events = nil, nil
}

// Ack removes b's records from the spool: HEAD moves past them and
// segments wholly before it are deleted.
func (s *Spool) Ack(b Batch) error {
	if b.start.seg == nil || b.end == b.start {
		return nil
	}
	s.readMu.Lock()
	defer s.readMu.Unlock()
	if b.start != s.head {
		return errors.New("spool: ack of a batch that is not at the head (acked twice, or out of order)")
	}
	if err := writeHead(s.headF, b.end); err != nil {
		return fmt.Errorf("spool: ack: %w", err)
	}
	s.head = b.end
	s.bytes.Add(-b.bytes)
	s.events.Add(-b.events)
	s.mu.Lock()
	var drained []*segment
	for len(s.segs) > 0 && s.segs[0] != s.head.seg {
		drained = append(drained, s.segs[0])
		s.segs = s.segs[1:]
	}
	s.mu.Unlock()
	for _, sg := range drained {
		if s.rseg == sg {
			_ = s.rfile.Close()
			s.rfile, s.rseg = nil, nil
		}
		// A segment left behind by a failed remove is removed again by
		// the next Open, which sees it before HEAD.
		if err := os.Remove(sg.path); err != nil {
			s.opts.Logger.Warn("spool: could not delete a drained segment", "segment", sg.path, "err", err)
		}
	}
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
		err = s.closeFiles()
	})
	return err
}

// closeFiles closes the log's files, the lock last.
func (s *Spool) closeFiles() error {
	var errs []error
	s.readMu.Lock()
	defer s.readMu.Unlock()
	for _, f := range []*os.File{s.tail, s.rfile, s.headF} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	errs = append(errs, s.lock.Close())
	return errors.Join(errs...)
}

func encode(now time.Time, events []bugreport.Event) ([]byte, error) {
	v := make([]byte, headerLen, headerLen+encodedSize(events))
	binary.BigEndian.PutUint64(v[0:8], uint64(now.UnixNano()))
	binary.BigEndian.PutUint32(v[8:12], uint32(len(events)))
	return appendEvents(v, events), nil
}

// decodeInto appends the events of record v to *dst and returns its commit
// time; on error *dst is unchanged.
func decodeInto(dst *[]bugreport.Event, v []byte) (time.Time, error) {
	if len(v) < headerLen {
		return time.Time{}, errors.New("record too short")
	}
	at := time.Unix(0, int64(binary.BigEndian.Uint64(v[0:8])))
	var err error
	*dst, err = appendDecoded(*dst, v[headerLen:])
	return at, err
}
