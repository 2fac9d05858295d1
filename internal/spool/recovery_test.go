package spool

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Bit rot in the tail segment: the records committed (and acknowledged)
// after the damaged one must not be cut with it on the next Open.
func TestTailDamageKeepsTheRecordsAfterIt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	s := open(t, dir, 1<<20)
	appendEach(t, s, "a", "b", "c", "d")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seg := segmentFiles(t, dir)[0]
	b, _ := os.ReadFile(seg)
	second := frameLen + int(binary.BigEndian.Uint32(b[0:4]))
	b[second+frameLen+20] ^= 0xff // damage b; c and d stay intact
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, 1<<20)
	defer s.Close()
	if got := drainAll(t, s, 100); fmt.Sprint(got) != "[a-0 c-0 d-0]" {
		t.Fatalf("delivered %v, want a, c and d around the damaged b", got)
	}
	if n := corruptFiles(t, dir); n != 1 {
		t.Errorf("%d files set aside, want the damaged record", n)
	}
}

// Runtime skip of damage in the tail, then appends, then a restart before
// the batch holding the damage is acked (ClickHouse down).
func TestDamageSkippedWhileRunningThenRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	s := open(t, dir, 1<<20)
	appendEach(t, s, "a", "b")
	f, _ := os.OpenFile(segmentFiles(t, dir)[0], os.O_RDWR, 0)
	var hdr [frameLen]byte
	f.ReadAt(hdr[:], 0)
	second := int64(frameLen) + int64(binary.BigEndian.Uint32(hdr[0:4]))
	f.WriteAt([]byte{0xee}, second+frameLen+15)
	f.Close()
	bt, err := s.Peek(100, 1<<20) // drainer sees a-0, sets b aside, but the insert fails: no ack
	if err != nil {
		t.Fatal(err)
	}
	_ = bt
	for _, p := range []string{"c", "d"} { // acknowledged appends after the damage
		if err := s.Append(context.Background(), events(p, 1)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = open(t, dir, 1<<20)
	defer s.Close()
	got := drainAll(t, s, 100)
	t.Logf("after restart: %v", got)
	if fmt.Sprint(got) != "[a-0 c-0 d-0]" {
		t.Fatalf("got %v, want [a-0 c-0 d-0]", got)
	}
}

// appendEach appends one event per prefix.
func appendEach(t *testing.T, s *Spool, prefixes ...string) {
	t.Helper()
	for _, p := range prefixes {
		if err := s.Append(context.Background(), events(p, 1)); err != nil {
			t.Fatal(err)
		}
	}
}

// HEAD points where the log has no record any more: recovery moves the
// head, and must record it, or the appends made before the next ack are
// read from the stale offset on the restart after.
func TestHeadRewrittenWhenRecoveryMovesIt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, segs []string)
	}{
		{"head segment deleted (an operator freeing space)", func(t *testing.T, segs []string) {
			for _, p := range segs {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"head segment shorter than HEAD's offset", func(t *testing.T, segs []string) {
			if err := os.Truncate(segs[0], 0); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "log")
			s := open(t, dir, 1<<20)
			appendEach(t, s, "a", "b", "c")
			drainAll(t, s, 100) // HEAD = (1, end)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, segmentFiles(t, dir))
			s = open(t, dir, 1<<20)
			appendEach(t, s, "x", "y", "z", "w")
			if err := s.Close(); err != nil { // a clean restart, no ack in between
				t.Fatal(err)
			}
			s = open(t, dir, 1<<20)
			defer s.Close()
			if got := drainAll(t, s, 100); fmt.Sprint(got) != "[x-0 y-0 z-0 w-0]" {
				t.Fatalf("after restart: %v, want [x-0 y-0 z-0 w-0]", got)
			}
		})
	}
}
