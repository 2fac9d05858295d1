package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// importLegacy moves the records of a spool file of the bbolt format, which
// Arubug used before the log, into the log in their order, then removes the
// file. It runs before the commit loop starts. A crash between the commit
// and the removal imports the file again on the next start: the events are
// written to ClickHouse twice and collapse there by UUID.
func (s *Spool) importLegacy(path string) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, ReadOnly: true})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return fmt.Errorf("%s is locked by another process (is another arubug running with the same data dir?)", path)
		}
		return err
	}
	var batch []*appendReq
	var size int64
	events, skipped := 0, 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := s.writeRecords(batch); err != nil {
			return err
		}
		batch, size = batch[:0], 0
		return nil
	}
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("events"))
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			if len(v) < headerLen {
				skipped++
				return nil
			}
			n := int(binary.BigEndian.Uint32(v[8:12]))
			batch = append(batch, &appendReq{value: append([]byte(nil), v...), count: n})
			s.bytes.Add(int64(len(v)))
			s.events.Add(int64(n))
			events += n
			if size += int64(len(v)); size >= s.opts.MaxCommitBytes {
				return flush()
			}
			return nil
		})
	})
	if err == nil {
		err = flush()
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	s.opts.Logger.Info("spool: moved the events of the previous spool format into the log", "from", path, "events", events, "short_records_skipped", skipped)
	return nil
}
