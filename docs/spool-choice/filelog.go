package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// fileStore is the do-it-yourself baseline: segment files of
// [len u32][crc32c u32][data] records appended with one write + f.Sync()
// per group commit, and a HEAD file holding the first undeleted sequence
// number. A record's sequence number is its segment's first sequence
// number (the file name) plus its position. Open truncates a torn tail.
type fileStore struct {
	dir string

	mu   sync.Mutex // guards segs (sizes are the committed, fsynced ones)
	segs []*fseg

	// Owned by the committer.
	tail     *os.File
	tailSize int64
	next     uint64

	// Owned by the drainer.
	head  uint64
	meta  *os.File
	rseg  *fseg // where the head was last read
	roff  int64
	rseq  uint64
	rfile *os.File
	pend  struct { // where the last ReadHead stopped
		seg  *fseg
		off  int64
		seq  uint64
		last uint64
	}

	gc *groupCommit
}

type fseg struct {
	first uint64
	path  string
	size  int64
}

const (
	fileSegTarget = 64 << 20
	fileRecHdr    = 8
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func segName(first uint64) string { return fmt.Sprintf("%020d.seg", first) }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func openFileStore(dir string) (Store, error) {
	dir = filepath.Join(dir, "filelog")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	s := &fileStore{dir: dir, head: 1}
	meta, err := os.OpenFile(filepath.Join(dir, "HEAD"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	s.meta = meta
	var mb [12]byte
	if n, _ := meta.ReadAt(mb[:], 0); n == 12 && crc32.Checksum(mb[:8], crcTable) == binary.BigEndian.Uint32(mb[8:]) {
		s.head = binary.BigEndian.Uint64(mb[:8])
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".seg") {
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(name, ".seg"), 10, 64)
		if err != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return nil, err
		}
		s.segs = append(s.segs, &fseg{first: first, path: filepath.Join(dir, name), size: fi.Size()})
	}
	sort.Slice(s.segs, func(i, j int) bool { return s.segs[i].first < s.segs[j].first })
	// Segments wholly before the head were drained; a crash may have left them.
	for len(s.segs) > 1 && s.segs[1].first <= s.head {
		if err := os.Remove(s.segs[0].path); err != nil {
			return nil, err
		}
		s.segs = s.segs[1:]
	}
	if len(s.segs) == 0 {
		if err := s.newSegment(s.head); err != nil {
			return nil, err
		}
	} else {
		// Find the end of the tail segment, cutting off a torn record.
		t := s.segs[len(s.segs)-1]
		f, err := os.OpenFile(t.path, os.O_RDWR, 0o600)
		if err != nil {
			return nil, err
		}
		end, count, err := validPrefix(f)
		if err != nil {
			_ = f.Close()
			return nil, err
		}
		if end != t.size {
			if err := f.Truncate(end); err != nil {
				_ = f.Close()
				return nil, err
			}
			if err := f.Sync(); err != nil {
				_ = f.Close()
				return nil, err
			}
			t.size = end
		}
		s.tail, s.tailSize, s.next = f, end, t.first+count
	}
	if s.head < s.segs[0].first {
		s.head = s.segs[0].first
	}
	s.rseg, s.roff, s.rseq = s.segs[0], 0, s.segs[0].first
	s.gc = newGroupCommit(s.commit)
	return s, nil
}

// validPrefix returns the length and record count of the longest run of
// intact records at the start of f.
func validPrefix(f *os.File) (end int64, count uint64, err error) {
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, 1<<62), 1<<20)
	var hdr [fileRecHdr]byte
	buf := make([]byte, 0, 64<<10)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return end, count, nil // EOF or torn header
		}
		n := binary.BigEndian.Uint32(hdr[0:4])
		if n > fileSegTarget*4 {
			return end, count, nil
		}
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return end, count, nil
		}
		if crc32.Checksum(buf, crcTable) != binary.BigEndian.Uint32(hdr[4:8]) {
			return end, count, nil
		}
		end += fileRecHdr + int64(n)
		count++
	}
}

func (s *fileStore) newSegment(first uint64) error {
	path := filepath.Join(s.dir, segName(first))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := syncDir(s.dir); err != nil {
		_ = f.Close()
		return err
	}
	if s.tail != nil {
		_ = s.tail.Close()
	}
	s.mu.Lock()
	s.segs = append(s.segs, &fseg{first: first, path: path})
	s.mu.Unlock()
	s.tail, s.tailSize, s.next = f, 0, first
	return nil
}

func (s *fileStore) commit(batch []*gcReq) error {
	if s.tailSize >= fileSegTarget {
		if err := s.newSegment(s.next); err != nil {
			return err
		}
	}
	size := 0
	for _, r := range batch {
		size += fileRecHdr + len(r.value)
	}
	buf := make([]byte, 0, size)
	for _, r := range batch {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(r.value)))
		buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(r.value, crcTable))
		buf = append(buf, r.value...)
	}
	if _, err := s.tail.WriteAt(buf, s.tailSize); err != nil {
		return err
	}
	if err := s.tail.Sync(); err != nil {
		return err
	}
	s.tailSize += int64(len(buf))
	for i, r := range batch {
		r.seq = s.next + uint64(i)
	}
	s.next += uint64(len(batch))
	s.mu.Lock()
	s.segs[len(s.segs)-1].size = s.tailSize
	s.mu.Unlock()
	return nil
}

func (s *fileStore) Append(v []byte) (uint64, error) { return s.gc.Append(v) }

// read walks records from (seg, off, seq), skipping those before the head,
// and calls fn for up to max of them (max < 0: all). It returns where it
// stopped.
func (s *fileStore) read(seg *fseg, off int64, seq uint64, max int, fn func(uint64, []byte) error) (*fseg, int64, uint64, int, error) {
	s.mu.Lock()
	segs := append([]*fseg(nil), s.segs...)
	sizes := make([]int64, len(segs))
	for i, g := range segs {
		sizes[i] = g.size
	}
	s.mu.Unlock()
	i := 0
	for i < len(segs) && segs[i] != seg {
		i++
	}
	if i == len(segs) {
		return seg, off, seq, 0, errors.New("filelog: read position lost")
	}
	n := 0
	var hdr [fileRecHdr]byte
	buf := make([]byte, 0, 64<<10)
	for ; i < len(segs); i++ {
		if segs[i] != seg {
			seg, off, seq = segs[i], 0, segs[i].first
		}
		if off >= sizes[i] {
			if i == len(segs)-1 {
				break
			}
			continue
		}
		if s.rfile == nil || s.rfile.Name() != seg.path {
			if s.rfile != nil {
				_ = s.rfile.Close()
			}
			f, err := os.Open(seg.path)
			if err != nil {
				return seg, off, seq, n, err
			}
			s.rfile = f
		}
		r := bufio.NewReaderSize(io.NewSectionReader(s.rfile, off, sizes[i]-off), 1<<20)
		for off < sizes[i] && (max < 0 || n < max) {
			if _, err := io.ReadFull(r, hdr[:]); err != nil {
				return seg, off, seq, n, fmt.Errorf("filelog: %s@%d: %w", seg.path, off, err)
			}
			l := binary.BigEndian.Uint32(hdr[0:4])
			if cap(buf) < int(l) {
				buf = make([]byte, l)
			}
			buf = buf[:l]
			if _, err := io.ReadFull(r, buf); err != nil {
				return seg, off, seq, n, fmt.Errorf("filelog: %s@%d: %w", seg.path, off, err)
			}
			if crc32.Checksum(buf, crcTable) != binary.BigEndian.Uint32(hdr[4:8]) {
				return seg, off, seq, n, fmt.Errorf("filelog: %s@%d: checksum mismatch", seg.path, off)
			}
			if seq >= s.head {
				if err := fn(seq, buf); err != nil {
					return seg, off, seq, n, err
				}
				n++
			}
			off += fileRecHdr + int64(l)
			seq++
		}
		if max >= 0 && n >= max {
			break
		}
	}
	return seg, off, seq, n, nil
}

func (s *fileStore) ReadHead(max int, fn func(uint64, []byte)) (first, last uint64, n int, err error) {
	// Resume at the last read position when it is still the head; a
	// record read but not yet deleted is read again (at-least-once).
	if s.rseq > s.head {
		s.rseg, s.roff, s.rseq = s.segs[0], 0, s.segs[0].first
	}
	seg, off, seq, n, err := s.read(s.rseg, s.roff, s.rseq, max, func(q uint64, v []byte) error {
		if first == 0 {
			first = q
		}
		last = q
		fn(q, v)
		return nil
	})
	s.pend.seg, s.pend.off, s.pend.seq, s.pend.last = seg, off, seq, last
	return first, last, n, err
}

func (s *fileStore) Delete(_, last uint64) error {
	// Move the read position forward to just past last (where ReadHead
	// stopped, normally), then persist the head.
	seg, off, seq := s.pend.seg, s.pend.off, s.pend.seq
	if seg == nil || s.pend.last != last {
		var err error
		seg, off, seq, _, err = s.read(s.rseg, s.roff, s.rseq, int(last+1-s.head), func(uint64, []byte) error { return nil })
		if err != nil {
			return err
		}
	}
	s.pend.seg = nil
	var mb [12]byte
	binary.BigEndian.PutUint64(mb[:8], last+1)
	binary.BigEndian.PutUint32(mb[8:], crc32.Checksum(mb[:8], crcTable))
	if _, err := s.meta.WriteAt(mb[:], 0); err != nil {
		return err
	}
	if err := s.meta.Sync(); err != nil {
		return err
	}
	s.head = last + 1
	s.rseg, s.roff, s.rseq = seg, off, seq
	// Drop segments that are wholly drained.
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.segs) > 1 && s.segs[1].first <= s.head {
		if s.rfile != nil && s.rfile.Name() == s.segs[0].path {
			_ = s.rfile.Close()
			s.rfile = nil
		}
		if err := os.Remove(s.segs[0].path); err != nil {
			return err
		}
		s.segs = s.segs[1:]
	}
	if s.rseg.first < s.segs[0].first {
		s.rseg, s.roff, s.rseq = s.segs[0], 0, s.segs[0].first
	}
	return nil
}

func (s *fileStore) Scan(fn func(uint64, []byte) error) error {
	s.mu.Lock()
	first := s.segs[0]
	s.mu.Unlock()
	_, _, _, _, err := s.read(first, 0, first.first, -1, fn)
	return err
}

func (s *fileStore) GroupStats() (int64, int64, bool) {
	c, r := s.gc.stats()
	return c, r, true
}

func (s *fileStore) Close() error {
	s.gc.Close()
	if s.rfile != nil {
		_ = s.rfile.Close()
	}
	_ = s.meta.Close()
	return s.tail.Close()
}
