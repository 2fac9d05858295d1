package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// Appending to a file makes every fdatasync write the inode too (the file
// size changed); overwriting blocks that are already allocated and written
// does not. Measured on this project's 2-core VM (ext4), one pwrite of 17 KB
// plus fdatasync: 326-631 µs wall and 163 µs CPU appending, 204-309 µs and
// 90-99 µs into a zero-filled file; fallocate alone (unwritten extents)
// gains nothing. So a zero-filled segment is kept ready and the tail moves
// onto it: commits then overwrite zeros. A zero frame length already ends
// the log (see scanSegment), so recovery reads the zeros past the last
// record as room, not damage.
const (
	preparedName  = "next.segment"     // zero-filled and synced: ready to become a segment
	preparingName = "next.segment.tmp" // being filled; removed at Open
	zeroChunk     = 1 << 20
	zeroRest      = 5 * time.Millisecond
)

// preallocator fills the next segment in the background, one at a time.
type preallocator struct {
	dir    string
	size   int64
	kick   chan struct{}
	ready  atomic.Bool // preparedName exists, whole
	done   <-chan struct{}
	failed func(error)
}

func newPreallocator(dir string, size int64, done <-chan struct{}, failed func(error)) (*preallocator, error) {
	// What a previous process left may be half filled, or (if the disk
	// misbehaved) not zero: start over rather than trust it.
	for _, name := range []string{preparedName, preparingName} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return &preallocator{dir: dir, size: size, kick: make(chan struct{}, 1), done: done, failed: failed}, nil
}

// loop prepares a segment whenever none is ready, until done is closed.
func (p *preallocator) loop() {
	p.wake()
	for {
		select {
		case <-p.done:
			return
		case <-p.kick:
		}
		if p.ready.Load() {
			continue
		}
		if err := p.prepare(); err != nil {
			if !errors.Is(err, errStopped) {
				p.failed(err)
			}
			_ = os.Remove(filepath.Join(p.dir, preparingName))
			continue // the next rotation asks again
		}
		p.ready.Store(true)
	}
}

var errStopped = errors.New("spool closed")

// prepare writes a zero-filled file of p.size bytes and renames it ready.
// It syncs each chunk and rests between chunks, so that it never queues
// megabytes in front of a commit's fdatasync nor holds a core: measured
// with a 17 KB commit every millisecond beside it (idle p99 0.8-1.0 ms),
// filling 64 MiB with a sync per 4 MiB took 83 ms and raised the commits'
// p99 to 7.6 ms; with a sync per MiB and a 5 ms rest, 450 ms and 1.5 ms.
// 64 MiB per 0.45 s keeps far ahead of any rate the collector can commit.
func (p *preallocator) prepare() error {
	// Zeros must not take the space that commits need: with less free
	// than a segment on top of this one, segments grow as written.
	if free, ok := freeBytes(p.dir); ok && free < 2*p.size {
		return fmt.Errorf("%d bytes free in %s, less than two segments of %d", free, p.dir, p.size)
	}
	tmp := filepath.Join(p.dir, preparingName)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	zeros := make([]byte, zeroChunk)
	rest := time.NewTimer(0)
	defer rest.Stop()
	for off := int64(0); off < p.size; off += zeroChunk {
		n := min(zeroChunk, p.size-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
		if err := fdatasync(f); err != nil {
			return err
		}
		if off+n < p.size {
			rest.Reset(zeroRest)
			select {
			case <-p.done:
				return errStopped
			case <-rest.C:
			}
		}
	}
	// The data is on disk before the name says it is ready: a crash leaves
	// either no prepared file or a whole one (and Open removes both).
	return os.Rename(tmp, filepath.Join(p.dir, preparedName))
}

// wake asks the loop to prepare a segment if none is ready.
func (p *preallocator) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *preallocator) isReady() bool { return p != nil && p.ready.Load() }

// take moves the prepared segment to path and reports whether it did.
// Only the commit loop calls it.
func (p *preallocator) take(path string) bool {
	if p == nil {
		return false
	}
	if !p.ready.Load() {
		p.wake() // the last prepare may have failed: try again
		return false
	}
	// A link, unlike a rename, fails if path exists: a segment is never
	// replaced, as O_EXCL guarantees for the segments created empty. The
	// prepared file stays ready for the next try.
	prepared := filepath.Join(p.dir, preparedName)
	if err := os.Link(prepared, path); err != nil {
		p.failed(err)
		return false
	}
	p.ready.Store(false)
	// Removed before the next prepare can start, which renames a new file
	// to the same name. If it fails, that rename replaces the name only.
	if err := os.Remove(prepared); err != nil {
		p.failed(err)
	}
	p.wake()
	return true
}

// zeroEnd returns the offset just past the last byte in [from, to) of f
// that is not zero, or from when they all are.
func zeroEnd(f *os.File, from, to int64) (int64, error) {
	buf := make([]byte, min(zeroChunk, max(to-from, 0)))
	zeros := make([]byte, len(buf))
	end := from
	for off := from; off < to; off += int64(len(buf)) {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), to-off)], off)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if !bytes.Equal(buf[:n], zeros[:n]) {
			i := len(bytes.TrimRight(buf[:n], "\x00"))
			end = off + int64(i)
		}
		if n == 0 {
			break
		}
	}
	return end, nil
}

// sectorLen is the unit a disk writes whole; a crash can leave any of a
// write's sectors unwritten.
const sectorLen = 512

// hasZeroSector reports whether b, read from file offset off, holds a
// sector-aligned block of zeros. Over a zero-filled segment that is what a
// sector a torn commit never wrote reads as; a stored record never holds
// one (capture refuses NUL characters, and a record's binary fields are
// short).
func hasZeroSector(b []byte, off int64) bool {
	skip := (sectorLen - off%sectorLen) % sectorLen
	if int64(len(b)) < skip {
		return false
	}
	var zero [sectorLen]byte
	for b = b[skip:]; len(b) >= sectorLen; b = b[sectorLen:] {
		if bytes.Equal(b[:sectorLen], zero[:]) {
			return true
		}
	}
	return false
}
