// Package outbox is a small durable work queue: keyed items with a due time,
// kept in a bbolt file so that work accepted before a crash is still there
// after it. Keys make enqueueing idempotent: putting a key that is already
// queued changes nothing, so a fast path and a reconciler may both offer the
// same work.
package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucket = []byte("items")

// ErrFull is returned by Put when the outbox holds MaxItems.
var ErrFull = errors.New("outbox: full")

// Item is one unit of work.
type Item struct {
	Key  string
	Due  time.Time
	Data []byte
}

// Options configures Open.
type Options struct {
	// MaxItems bounds the queue; 0 means 100 000.
	MaxItems int
}

// Outbox is safe for concurrent use.
type Outbox struct {
	db  *bolt.DB
	max int

	mu  sync.Mutex
	due map[string]time.Time // in-memory index of every key, so Due never scans the file
}

// Open opens or creates the outbox file at path.
func Open(path string, o Options) (*Outbox, error) {
	if o.MaxItems <= 0 {
		o.MaxItems = 100_000
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("outbox: open %s: %w (is another arubug using this data dir?)", path, err)
	}
	ob := &Outbox{db: db, max: o.MaxItems, due: map[string]time.Time{}}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			if len(v) < 8 {
				return nil
			}
			ob.due[string(k)] = time.Unix(0, int64(binary.BigEndian.Uint64(v[:8])))
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("outbox: load %s: %w", path, err)
	}
	return ob, nil
}

// Close closes the file.
func (ob *Outbox) Close() error { return ob.db.Close() }

func encode(it Item) []byte {
	v := make([]byte, 8+len(it.Data))
	binary.BigEndian.PutUint64(v, uint64(it.Due.UnixNano()))
	copy(v[8:], it.Data)
	return v
}

// Put queues it unless its key is already queued, and reports whether it
// was added. When Put returns, the item is on disk.
func (ob *Outbox) Put(it Item) (bool, error) {
	ob.mu.Lock()
	_, exists := ob.due[it.Key]
	full := len(ob.due) >= ob.max
	ob.mu.Unlock()
	if exists {
		return false, nil
	}
	if full {
		return false, ErrFull
	}
	added := false
	err := ob.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b.Get([]byte(it.Key)) != nil {
			return nil
		}
		added = true
		return b.Put([]byte(it.Key), encode(it))
	})
	if err != nil {
		return false, fmt.Errorf("outbox: put %s: %w", it.Key, err)
	}
	if added {
		ob.mu.Lock()
		ob.due[it.Key] = it.Due
		ob.mu.Unlock()
	}
	return added, nil
}

// Update stores it, queued or not: progress and the next attempt's time.
func (ob *Outbox) Update(it Item) error {
	if err := ob.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Put([]byte(it.Key), encode(it))
	}); err != nil {
		return fmt.Errorf("outbox: update %s: %w", it.Key, err)
	}
	ob.mu.Lock()
	ob.due[it.Key] = it.Due
	ob.mu.Unlock()
	return nil
}

// Delete removes the item with key; the work is done.
func (ob *Outbox) Delete(key string) error {
	if err := ob.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Delete([]byte(key))
	}); err != nil {
		return fmt.Errorf("outbox: delete %s: %w", key, err)
	}
	ob.mu.Lock()
	delete(ob.due, key)
	ob.mu.Unlock()
	return nil
}

// Get returns the item with key.
func (ob *Outbox) Get(key string) (Item, bool, error) {
	var it Item
	found := false
	err := ob.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get([]byte(key))
		if len(v) < 8 {
			return nil
		}
		found = true
		it = Item{Key: key, Due: time.Unix(0, int64(binary.BigEndian.Uint64(v[:8]))), Data: append([]byte(nil), v[8:]...)}
		return nil
	})
	return it, found, err
}

// Due returns up to limit items due at now, earliest first, skipping the
// keys in skip (work already in progress).
func (ob *Outbox) Due(now time.Time, limit int, skip func(string) bool) ([]Item, error) {
	ob.mu.Lock()
	var keys []string
	for k, d := range ob.due {
		if !d.After(now) && (skip == nil || !skip(k)) {
			keys = append(keys, k)
		}
	}
	due := make(map[string]time.Time, len(keys))
	for _, k := range keys {
		due[k] = ob.due[k]
	}
	ob.mu.Unlock()
	sort.Slice(keys, func(i, j int) bool {
		if !due[keys[i]].Equal(due[keys[j]]) {
			return due[keys[i]].Before(due[keys[j]])
		}
		return keys[i] < keys[j]
	})
	if len(keys) > limit {
		keys = keys[:limit]
	}
	out := make([]Item, 0, len(keys))
	for _, k := range keys {
		it, ok, err := ob.Get(k)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, it)
		}
	}
	return out, nil
}

// Len is the number of queued items.
func (ob *Outbox) Len() int {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return len(ob.due)
}

// Next returns the earliest due time, and false when the outbox is empty.
func (ob *Outbox) Next() (time.Time, bool) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	var first time.Time
	ok := false
	for _, d := range ob.due {
		if !ok || d.Before(first) {
			first, ok = d, true
		}
	}
	return first, ok
}
