package spool

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const testSegment = 64 << 10

func openPrealloc(t *testing.T, dir string) *Spool {
	t.Helper()
	return openPreallocReg(t, dir, nil)
}

func openPreallocReg(t *testing.T, dir string, reg prometheus.Registerer) *Spool {
	t.Helper()
	s, err := Open(Options{Dir: dir, MaxBytes: 1 << 30, SegmentBytes: testSegment, Preallocate: true, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	// Also when a test fails before its own Close; a second Close does nothing.
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// waitPrepared waits until a zero-filled segment is ready to be taken.
func waitPrepared(t *testing.T, s *Spool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !s.pre.isReady(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no segment prepared in a minute")
		}
	}
}

// startPrepared opens a preallocating spool in a new directory, appends a-0
// to its first (grown) segment and waits until the next one is prepared.
func startPrepared(t *testing.T) (string, *Spool) {
	t.Helper()
	dir, s, _ := startPreparedReg(t)
	return dir, s
}

// startPreparedReg is startPrepared, with the registry of the spool's
// metrics.
func startPreparedReg(t *testing.T) (string, *Spool, *prometheus.Registry) {
	t.Helper()
	for range 20 {
		dir := filepath.Join(t.TempDir(), "log")
		reg := prometheus.NewRegistry()
		s := openPreallocReg(t, dir, reg)
		appendEach(t, s, "a")
		// On a busy machine the first prepare can finish before that
		// append, which then goes straight into the prepared segment:
		// start over.
		if s.tailSeg.room < s.opts.SegmentBytes {
			waitPrepared(t, s)
			return dir, s, reg
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("20 first appends in a row went into a prepared segment")
	return "", nil, nil
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// The first segment grows (nothing is prepared yet at Open); the tail moves
// onto the prepared one as soon as it is ready, and the records written into
// its zeros survive a restart, after which appends go on in its room.
func TestTailMovesOntoPreparedSegment(t *testing.T) {
	dir, s, reg := startPreparedReg(t)
	appendEach(t, s, "b")
	segs := segmentFiles(t, dir)
	if len(segs) != 2 {
		t.Fatalf("%d segments, want the grown first one and the prepared one", len(segs))
	}
	if n := fileSize(t, segs[1]); n != testSegment {
		t.Errorf("the tail is %d bytes, want the prepared %d", n, testSegment)
	}
	for label, want := range map[string]float64{"false": 1, "true": 1} {
		if got := labelledCounter(t, reg, "arubug_spool_segments_total", label); got != want {
			t.Errorf("segments started with preallocated=%s: %v, want %v", label, got, want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for _, pre := range []bool{true, false} { // an older binary reads it too
		t.Run(fmt.Sprintf("reopen preallocate=%v", pre), func(t *testing.T) {
			s, err := Open(Options{Dir: dir, MaxBytes: 1 << 30, SegmentBytes: testSegment, Preallocate: pre})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if n, _ := s.Stats(); n != 2 {
				t.Fatalf("after reopen: %d events, want 2", n)
			}
			if n := corruptFiles(t, dir); n != 0 {
				t.Fatalf("the zeros after the records were set aside as damage (%d files)", n)
			}
			before := len(segmentFiles(t, dir))
			appendEach(t, s, "c")
			if n := len(segmentFiles(t, dir)); n != before {
				t.Errorf("%d segments, then %d: the append did not go into the tail's room", before, n)
			}
			if got := drainAll(t, s, 100); fmt.Sprint(got) != "[a-0 b-0 c-0]" {
				t.Fatalf("events %v", got)
			}
		})
		if t.Failed() {
			return
		}
		// Put back what the subtest drained, for the next one.
		s := openPrealloc(t, dir)
		appendEach(t, s, "a", "b")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A crash in a commit into a prepared segment can leave any of its sectors
// written, the first ones or only later ones. Recovery must cut all of it:
// bytes left past the end could otherwise be read as records once new
// appends reach them.
func TestTornWriteInPreallocatedTailIsCut(t *testing.T) {
	ghost, err := encode(time.Now(), events("ghost", 1))
	if err != nil {
		t.Fatal(err)
	}
	ghostFrame := appendFrame(nil, ghost)
	c, err := encode(time.Now(), events("c", 1))
	if err != nil {
		t.Fatal(err)
	}
	cLen := int64(len(appendFrame(nil, c)))
	big, err := encode(time.Now(), events("big", 40))
	if err != nil {
		t.Fatal(err)
	}
	twoRecords := appendFrame(appendFrame(nil, big), ghost)
	for _, tc := range []struct {
		name  string
		at    int64 // from the end of the records
		bytes []byte
		hole  bool // leave the first whole sector of the first record unwritten
	}{
		// Only a later sector reached the disk: an intact frame after a
		// gap of zeros, exactly where c's record will end.
		{name: "intact frame after zeros", at: cLen, bytes: ghostFrame},
		{name: "first half of a record", bytes: ghostFrame[:len(ghostFrame)/2]},
		// Both records of one commit, but a sector of the first never
		// reached the disk: the second is intact, and was no more
		// acknowledged than the first (bit rot would look the same,
		// but for the zeros).
		{name: "unwritten sector before an intact record", bytes: twoRecords, hole: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, s := startPrepared(t)
			appendEach(t, s, "b")
			tail := segmentFiles(t, dir)[1]
			end := s.tailSeg.size
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(tail, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(tc.bytes, end+tc.at); err != nil {
				t.Fatal(err)
			}
			if tc.hole {
				sector := (end + frameLen + sectorLen - 1) / sectorLen * sectorLen
				if sector+sectorLen > end+frameLen+int64(len(big)) {
					t.Fatalf("no whole sector inside a record of %d bytes", len(big))
				}
				if _, err := f.WriteAt(make([]byte, sectorLen), sector); err != nil {
					t.Fatal(err)
				}
			}
			_ = f.Close()

			s = openPrealloc(t, dir)
			if n, _ := s.Stats(); n != 2 {
				t.Errorf("after the torn write: %d events, want 2", n)
			}
			if n := corruptFiles(t, dir); n != 1 {
				t.Errorf("%d files set aside, want the torn write", n)
			}
			appendEach(t, s, "c")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openPrealloc(t, dir)
			defer s.Close()
			if got := drainAll(t, s, 100); fmt.Sprint(got) != "[a-0 b-0 c-0]" {
				t.Fatalf("events %v, want a, b and c only", got)
			}
		})
	}
}

// Close does not wait for a segment being filled, and a restart prepares a
// whole one of its own size.
func TestCloseStopsPreparing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	const huge = 8 << 30 // far more than is written before Close
	s, err := Open(Options{Dir: dir, MaxBytes: 1 << 30, SegmentBytes: huge, Preallocate: true})
	if err != nil {
		t.Fatal(err)
	}
	appendEach(t, s, "a")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, preparedName)); err == nil {
		t.Fatal("a prepared segment of 8 GiB was finished before Close returned")
	}
	if fi, err := os.Stat(filepath.Join(dir, preparingName)); err == nil && fi.Size() >= huge {
		t.Fatalf("the segment being prepared is %d bytes", fi.Size())
	}
	s = openPrealloc(t, dir)
	defer s.Close()
	waitPrepared(t, s)
	if n := fileSize(t, filepath.Join(dir, preparedName)); n != testSegment {
		t.Errorf("prepared segment of %d bytes, want %d", n, testSegment)
	}
	if got := drainAll(t, s, 100); fmt.Sprint(got) != "[a-0]" {
		t.Fatalf("events %v", got)
	}
}

// A zero-filled segment is filled before the tail moves on (its last commit
// grows it past the zeros), so that only the tail has zeros after its
// records: a version without preallocation would take them for damage.
func TestFullSegmentKeepsNoZeros(t *testing.T) {
	dir, s := startPrepared(t)
	defer s.Close()
	for i := 0; len(segmentFiles(t, dir)) < 3; i++ {
		if i == 1000 {
			t.Fatal("1000 appends of 700 bytes did not fill a segment of 64 KiB")
		}
		appendEach(t, s, strings.Repeat("f", 640))
	}
	full := segmentFiles(t, dir)[1]
	f, err := os.Open(full)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	end, err := scanSegment(f, 0, func([]byte) {})
	if err != nil {
		t.Fatal(err)
	}
	if size := fileSize(t, full); end != size || size < testSegment {
		t.Errorf("full segment: records end at %d of %d bytes (segments are %d)", end, size, testSegment)
	}
}

// Moving the prepared segment into place never replaces a file already at
// the segment's name (which no path should leave, but a segment holds
// acknowledged events): the commit fails instead.
func TestPreparedSegmentNeverReplacesAFile(t *testing.T) {
	dir, s := startPrepared(t)
	defer s.Close()
	next := filepath.Join(dir, segName(2))
	if err := os.WriteFile(next, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(context.Background(), events("b", 1)); err == nil {
		t.Fatal("the append went through with a file in the new segment's place")
	}
	if b, err := os.ReadFile(next); err != nil || string(b) != "keep" {
		t.Fatalf("the file in the way now holds %q (%v)", b, err)
	}
}

// A prepare that failed (a full disk, here a directory in the way) is
// tried again at the next rotation, not given up for the process's life.
func TestPrepareRetriedAfterFailure(t *testing.T) {
	dir, s := startPrepared(t)
	defer s.Close()
	block := filepath.Join(dir, preparingName)
	if err := os.MkdirAll(filepath.Join(block, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	failed := make(chan struct{}, 1)
	s.pre.failed = func(error) { failed <- struct{}{} }
	// The tail is on a grown segment (startPrepared), so this append moves
	// it onto the prepared one; preparing the next one then fails.
	appendEach(t, s, "b")
	if s.pre.isReady() {
		t.Fatalf("the tail never took the prepared segment (%d segments)", len(segmentFiles(t, dir)))
	}
	select {
	case <-failed:
	case <-time.After(time.Minute):
		t.Fatal("preparing did not fail with a directory in the way")
	}
	if err := os.RemoveAll(block); err != nil {
		t.Fatal(err)
	}
	// Fill the tail: the commit after it rotates, which asks again.
	for i := 0; i < 1000 && !s.pre.isReady(); i++ {
		appendEach(t, s, strings.Repeat("f", testSegment/100))
	}
	if !s.pre.isReady() {
		t.Fatalf("no segment prepared after %d segments", len(segmentFiles(t, dir)))
	}
}

// labelledCounter returns the value of counter name whose only label has
// value label.
func labelledCounter(t *testing.T, g prometheus.Gatherer, name, label string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == name && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("metric %s{%s} not found", name, label)
	return 0
}
