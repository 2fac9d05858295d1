package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/tidwall/wal"
	bolt "go.etcd.io/bbolt"
)

var errClosed = errors.New("store closed")

// Store is the spool's storage contract as the benchmark drives it.
type Store interface {
	// Append stores v durably (fsynced) and returns its sequence number.
	Append(v []byte) (uint64, error)
	// ReadHead calls fn for up to max records from the head, in order, and
	// returns the first and last sequence numbers read (n == 0: empty).
	// v is only valid during fn.
	ReadHead(max int, fn func(seq uint64, v []byte)) (first, last uint64, n int, err error)
	// Delete removes the records first..last, which ReadHead returned.
	Delete(first, last uint64) error
	// Scan calls fn for every record held, in order (what a restart does to
	// rebuild its counters). v is only valid during fn.
	Scan(fn func(seq uint64, v []byte) error) error
	// GroupStats reports commits and records of the group-commit wrapper,
	// if the store has one.
	GroupStats() (commits, records int64, ok bool)
	Close() error
}

type storeKind struct {
	name string
	desc string
	open func(dir string) (Store, error)
}

var storeKinds = []storeKind{
	{"bbolt-gc", "bbolt v1.5.0 + group commit (the internal/spool pattern)", openBoltGC},
	{"bbolt-batch", "bbolt v1.5.0 db.Batch (MaxBatchDelay 10ms)", openBoltBatch},
	{"bbolt-gc-fill", "extra: bbolt-gc with Bucket.FillPercent = 1.0 (append-only keys)", openBoltGCFill},
	{"wal-gc", "tidwall/wal v1.2.1 + group commit (WriteBatch)", openWAL},
	{"pebble", "pebble v1.1.5, concurrent Set(pebble.Sync)", openPebbleNative},
	{"pebble-gc", "pebble v1.1.5 + group commit (one Batch.Commit(Sync))", openPebbleGC},
	{"file-gc", "os.File append + group commit + f.Sync() (no library)", openFileStore},
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// ---------------------------------------------------------------- bbolt

var bucketName = []byte("events")

type boltStore struct {
	db *bolt.DB
	gc *groupCommit // nil: use db.Batch
}

func openBolt(dir string) (*bolt.DB, error) {
	db, err := bolt.Open(filepath.Join(dir, "spool.db"), 0o600, &bolt.Options{
		Timeout:        2 * time.Second,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, err
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketName)
		return err
	}); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

func openBoltGC(dir string) (Store, error) { return openBoltGroup(dir, bolt.DefaultFillPercent) }

// openBoltGCFill packs leaf pages full instead of splitting them in half:
// keys only ever grow, so the half-empty left pages are never filled later.
// FillPercent is not persisted; it must be set in every transaction.
func openBoltGCFill(dir string) (Store, error) { return openBoltGroup(dir, 1.0) }

func openBoltGroup(dir string, fill float64) (Store, error) {
	db, err := openBolt(dir)
	if err != nil {
		return nil, err
	}
	s := &boltStore{db: db}
	s.gc = newGroupCommit(func(batch []*gcReq) error {
		return db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketName)
			b.FillPercent = fill
			for _, r := range batch {
				seq, err := b.NextSequence()
				if err != nil {
					return err
				}
				if err := b.Put(seqKey(seq), r.value); err != nil {
					return err
				}
				r.seq = seq
			}
			return nil
		})
	})
	return s, nil
}

func openBoltBatch(dir string) (Store, error) {
	db, err := openBolt(dir)
	if err != nil {
		return nil, err
	}
	// Defaults (MaxBatchSize 1000, MaxBatchDelay 10ms) are kept on purpose.
	return &boltStore{db: db}, nil
}

func (s *boltStore) Append(v []byte) (uint64, error) {
	if s.gc != nil {
		return s.gc.Append(v)
	}
	var seq uint64
	err := s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName)
		n, err := b.NextSequence()
		if err != nil {
			return err
		}
		seq = n
		return b.Put(seqKey(n), v)
	})
	return seq, err
}

func (s *boltStore) ReadHead(max int, fn func(uint64, []byte)) (first, last uint64, n int, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketName).Cursor()
		for k, v := c.First(); k != nil && n < max; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			if n == 0 {
				first = seq
			}
			last = seq
			fn(seq, v)
			n++
		}
		return nil
	})
	return
}

// Delete removes keys one by one in one transaction, as Spool.Ack does.
func (s *boltStore) Delete(first, last uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName)
		for seq := first; seq <= last; seq++ {
			if err := b.Delete(seqKey(seq)); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *boltStore) Scan(fn func(uint64, []byte) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketName).ForEach(func(k, v []byte) error {
			return fn(binary.BigEndian.Uint64(k), v)
		})
	})
}

func (s *boltStore) GroupStats() (int64, int64, bool) {
	if s.gc == nil {
		return 0, 0, false
	}
	c, r := s.gc.stats()
	return c, r, true
}

func (s *boltStore) Close() error {
	if s.gc != nil {
		s.gc.Close()
	}
	return s.db.Close()
}

// ---------------------------------------------------------------- tidwall/wal

type walStore struct {
	log  *wal.Log
	next uint64 // next index; owned by the committer
	gc   *groupCommit
}

func openWAL(dir string) (Store, error) {
	l, err := wal.Open(filepath.Join(dir, "wal"), &wal.Options{
		NoSync:     false, // fsync every WriteBatch
		AllowEmpty: true,  // the drainer empties the log
	})
	if err != nil {
		return nil, err
	}
	last, err := l.LastIndex()
	if err != nil {
		_ = l.Close()
		return nil, err
	}
	s := &walStore{log: l, next: last + 1}
	var b wal.Batch
	s.gc = newGroupCommit(func(batch []*gcReq) error {
		b.Clear()
		for i, r := range batch {
			b.Write(s.next+uint64(i), r.value)
		}
		if err := l.WriteBatch(&b); err != nil {
			return err
		}
		for i, r := range batch {
			r.seq = s.next + uint64(i)
		}
		s.next += uint64(len(batch))
		return nil
	})
	return s, nil
}

func (s *walStore) Append(v []byte) (uint64, error) { return s.gc.Append(v) }

func (s *walStore) ReadHead(max int, fn func(uint64, []byte)) (first, last uint64, n int, err error) {
	fi, err := s.log.FirstIndex()
	if err != nil {
		return 0, 0, 0, err
	}
	li, err := s.log.LastIndex()
	if err != nil {
		return 0, 0, 0, err
	}
	for i := fi; i <= li && n < max; i++ {
		v, err := s.log.Read(i)
		if err != nil {
			return first, last, n, err
		}
		if n == 0 {
			first = i
		}
		last = i
		fn(i, v)
		n++
	}
	return first, last, n, nil
}

func (s *walStore) Delete(_, last uint64) error { return s.log.TruncateFront(last + 1) }

func (s *walStore) Scan(fn func(uint64, []byte) error) error {
	fi, err := s.log.FirstIndex()
	if err != nil {
		return err
	}
	li, err := s.log.LastIndex()
	if err != nil {
		return err
	}
	for i := fi; i <= li && li > 0; i++ {
		v, err := s.log.Read(i)
		if err != nil {
			return fmt.Errorf("read %d: %w", i, err)
		}
		if err := fn(i, v); err != nil {
			return err
		}
	}
	return nil
}

func (s *walStore) GroupStats() (int64, int64, bool) {
	c, r := s.gc.stats()
	return c, r, true
}

func (s *walStore) Close() error {
	s.gc.Close()
	return s.log.Close()
}

// ---------------------------------------------------------------- pebble

type quietLogger struct{}

func (quietLogger) Infof(string, ...interface{})         {}
func (quietLogger) Fatalf(f string, a ...interface{})    { panic(fmt.Sprintf(f, a...)) }
func (quietLogger) Errorf(f string, args ...interface{}) {}

type pebbleStore struct {
	db   *pebble.DB
	seq  atomic.Uint64 // last assigned
	head uint64        // first undeleted key, owned by the drainer
	gc   *groupCommit  // nil: concurrent db.Set(Sync)
}

func openPebble(dir string) (*pebbleStore, error) {
	db, err := pebble.Open(filepath.Join(dir, "pebble"), &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		return nil, err
	}
	s := &pebbleStore{db: db, head: 1}
	it, err := db.NewIter(nil)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	if it.First() {
		s.head = binary.BigEndian.Uint64(it.Key())
	}
	if it.Last() {
		s.seq.Store(binary.BigEndian.Uint64(it.Key()))
	}
	if err := it.Close(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

func openPebbleNative(dir string) (Store, error) { return openPebble(dir) }

func openPebbleGC(dir string) (Store, error) {
	s, err := openPebble(dir)
	if err != nil {
		return nil, err
	}
	s.gc = newGroupCommit(func(batch []*gcReq) error {
		b := s.db.NewBatch()
		next := s.seq.Load() + 1
		for i, r := range batch {
			if err := b.Set(seqKey(next+uint64(i)), r.value, nil); err != nil {
				return err
			}
		}
		if err := b.Commit(pebble.Sync); err != nil {
			return err
		}
		_ = b.Close()
		for i, r := range batch {
			r.seq = next + uint64(i)
		}
		s.seq.Store(next + uint64(len(batch)) - 1)
		return nil
	})
	return s, nil
}

// Append without the wrapper: each caller writes with pebble.Sync and
// pebble's commit pipeline shares the WAL fsync between concurrent callers.
// (Sequence numbers are taken before the write, so under concurrency a key
// can become visible after a larger one: a live drainer would need care.)
func (s *pebbleStore) Append(v []byte) (uint64, error) {
	if s.gc != nil {
		return s.gc.Append(v)
	}
	seq := s.seq.Add(1)
	return seq, s.db.Set(seqKey(seq), v, pebble.Sync)
}

func (s *pebbleStore) ReadHead(max int, fn func(uint64, []byte)) (first, last uint64, n int, err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: seqKey(s.head)})
	if err != nil {
		return 0, 0, 0, err
	}
	for ok := it.First(); ok && n < max; ok = it.Next() {
		seq := binary.BigEndian.Uint64(it.Key())
		if n == 0 {
			first = seq
		}
		last = seq
		fn(seq, it.Value())
		n++
	}
	return first, last, n, it.Close()
}

func (s *pebbleStore) Delete(first, last uint64) error {
	if err := s.db.DeleteRange(seqKey(first), seqKey(last+1), pebble.Sync); err != nil {
		return err
	}
	s.head = last + 1
	return nil
}

func (s *pebbleStore) Scan(fn func(uint64, []byte) error) error {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		if err := fn(binary.BigEndian.Uint64(it.Key()), it.Value()); err != nil {
			_ = it.Close()
			return err
		}
	}
	return it.Close()
}

func (s *pebbleStore) GroupStats() (int64, int64, bool) {
	if s.gc == nil {
		return 0, 0, false
	}
	c, r := s.gc.stats()
	return c, r, true
}

func (s *pebbleStore) Close() error {
	if s.gc != nil {
		s.gc.Close()
	}
	return s.db.Close()
}
