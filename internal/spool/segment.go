package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The log is a directory of segment files numbered from 1 (20 decimal
// digits, so that names sort in order). A record is a frame header, frameLen
// bytes: the payload length (uint32) and the payload's CRC-32C (uint32),
// then the payload. HEAD holds the position of the first record not yet
// drained (segment number and byte offset) with its own CRC; segments wholly
// before it are deleted.
const (
	frameLen   = 8
	segSuffix  = ".log"
	headName   = "HEAD"
	lockName   = "LOCK"
	corruptDir = "corrupt"
	// maxRecord bounds a payload length read from disk, so that a damaged
	// length cannot make recovery allocate gigabytes.
	maxRecord = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segment is one log file. size is the length of its committed (fsynced)
// records; it is guarded by Spool.mu. room is the file's length, more than
// size when it was zero-filled ahead (see prealloc.go); after recovery only
// the commit loop reads it (and tests, once an Append has returned).
type segment struct {
	id   uint64
	path string
	size int64
	room int64
}

// position is where a record starts.
type position struct {
	seg *segment
	off int64
}

func segName(id uint64) string { return fmt.Sprintf("%020d%s", id, segSuffix) }

// listSegments returns the directory's segments in sequence order.
func listSegments(dir string) ([]*segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []*segment
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, segSuffix) {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
		if err != nil || id == 0 {
			continue
		}
		segs = append(segs, &segment{id: id, path: filepath.Join(dir, name)})
	}
	slices.SortFunc(segs, func(a, b *segment) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	return segs, nil
}

// scanSegment reads the intact records of f from byte from on and calls fn
// for each. It returns where they end: a torn or damaged record, or the end
// of the file, ends the scan.
func scanSegment(f *os.File, from int64, fn func(payload []byte)) (end int64, err error) {
	end = from
	r := bufio.NewReaderSize(io.NewSectionReader(f, from, 1<<62), 1<<20)
	var hdr [frameLen]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return end, ignoreEOF(err)
		}
		n := binary.BigEndian.Uint32(hdr[0:4])
		// A zero length is not a record the spool writes, whatever its CRC
		// (the CRC of nothing is 0): zeroed blocks after a crash end the log.
		if n == 0 || n > maxRecord {
			return end, nil
		}
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return end, ignoreEOF(err)
		}
		if crc32.Checksum(buf, castagnoli) != binary.BigEndian.Uint32(hdr[4:8]) {
			return end, nil
		}
		fn(buf)
		end += frameLen + int64(n)
	}
}

// frameFits reports whether a frame of payload length n at off can be a
// record of a segment of size bytes.
func frameFits(off, n, size int64) bool {
	return n > 0 && n <= maxRecord && off+frameLen+n <= size
}

// frameAt reads the frame header at off of f and returns its payload
// length (0 when there is no header), and whether the whole frame lies
// within size and its CRC holds.
func frameAt(f *os.File, off, size int64) (n int64, valid bool) {
	var hdr [frameLen]byte
	if off+frameLen > size {
		return 0, false
	}
	if _, err := f.ReadAt(hdr[:], off); err != nil {
		return 0, false
	}
	n = int64(binary.BigEndian.Uint32(hdr[0:4]))
	if !frameFits(off, n, size) {
		return n, false
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, off+frameLen); err != nil {
		return n, false
	}
	return n, crc32.Checksum(buf, castagnoli) == binary.BigEndian.Uint32(hdr[4:8])
}

// damagedRecordEnd returns where the record at off ends when only that one
// record is damaged: its length fits and an intact frame follows it. A
// length that does not fit, or nothing intact after it, gives false: the
// rest cannot be told apart from a write cut by a crash.
func damagedRecordEnd(f *os.File, off, size int64) (int64, bool) {
	n, _ := frameAt(f, off, size) // its CRC fails: that is why we are here
	next := off + frameLen + n
	if !frameFits(off, n, size) || next == size {
		return 0, false
	}
	if _, ok := frameAt(f, next, size); !ok {
		return 0, false
	}
	return next, true
}

// ignoreEOF turns the end of the file, clean or in the middle of a record,
// into the end of the scan; other read errors are real.
func ignoreEOF(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return err
}

// appendFrame appends payload as one record to dst.
func appendFrame(dst, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(payload, castagnoli))
	return append(dst, payload...)
}

const headLen = 20

// readHead returns the segment number and offset HEAD records, and false
// when HEAD is missing or damaged.
func readHead(f *os.File) (id uint64, off int64, ok bool) {
	var b [headLen]byte
	if n, _ := f.ReadAt(b[:], 0); n != len(b) {
		return 0, 0, false
	}
	if crc32.Checksum(b[:16], castagnoli) != binary.BigEndian.Uint32(b[16:]) {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(b[:8]), int64(binary.BigEndian.Uint64(b[8:16])), true
}

// writeHead records p in HEAD durably. The 20 bytes sit in one sector, and
// a torn write fails the CRC, which replays from the oldest segment: at
// worst events are written to ClickHouse twice, where they collapse.
func writeHead(f *os.File, p position) error {
	var b [headLen]byte
	binary.BigEndian.PutUint64(b[:8], p.seg.id)
	binary.BigEndian.PutUint64(b[8:16], uint64(p.off))
	binary.BigEndian.PutUint32(b[16:], crc32.Checksum(b[:16], castagnoli))
	if _, err := f.WriteAt(b[:], 0); err != nil {
		return err
	}
	return fdatasync(f)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// setAside copies bytes [off, end) of path into the corrupt directory, so
// that data the spool cannot read is kept for inspection rather than lost
// silently. It returns the copy's path.
func setAside(dir, path string, off, end int64) (string, error) {
	if end <= off {
		return "", nil
	}
	if err := os.MkdirAll(filepath.Join(dir, corruptDir), 0o750); err != nil {
		return "", err
	}
	src, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer src.Close()
	out := filepath.Join(dir, corruptDir, fmt.Sprintf("%s.%d", filepath.Base(path), off))
	dst, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(dst, io.NewSectionReader(src, off, end-off)); err != nil {
		_ = dst.Close()
		return "", err
	}
	if err := dst.Sync(); err != nil {
		_ = dst.Close()
		return "", err
	}
	if err := dst.Close(); err != nil {
		return "", err
	}
	// The copy's name must outlive a crash before the segment is cut.
	if err := syncDir(filepath.Join(dir, corruptDir)); err != nil {
		return "", err
	}
	return out, syncDir(dir)
}
