package spool

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
)

func TestPeekDeliversInOrderWithinLimits(t *testing.T) {
	for seed := uint64(0); seed < 30; seed++ {
		r := rand.New(rand.NewPCG(seed, 1))
		dir := filepath.Join(t.TempDir(), fmt.Sprint(seed))
		s, err := Open(Options{Dir: dir, MaxBytes: 1 << 30, SegmentBytes: int64(200 + r.IntN(200000))})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		n := 5 + r.IntN(60)
		for i := 0; i < n; i++ {
			evs := events(fmt.Sprintf("r%d-", i), 1+r.IntN(4))
			if r.IntN(4) == 0 {
				evs[0].Properties = strings.Repeat("x", r.IntN(200000))
			}
			if err := s.Append(context.Background(), evs); err != nil {
				t.Fatal(err)
			}
			for _, e := range evs {
				want = append(want, e.DistinctID)
			}
		}
		var got []string
		for iter := 0; ; iter++ {
			maxE := 1 + r.IntN(10)
			maxB := int64(1 + r.IntN(300000))
			b, err := s.Peek(maxE, maxB)
			if err != nil {
				t.Fatal(err)
			}
			if b.Len() == 0 {
				if b.Full {
					t.Fatalf("seed %d: empty batch Full", seed)
				}
				break
			}
			if b.records > 1 && (b.Len() > maxE+3 || b.bytes > maxB) {
				// at most one record past maxEvents; bytes never above budget unless one record
				if b.bytes > maxB {
					t.Fatalf("seed %d: batch of %d records %d bytes > budget %d", seed, b.records, b.bytes, maxB)
				}
			}
			rem := len(want) - len(got) - b.Len()
			if b.Full && rem == 0 {
				t.Fatalf("seed %d: Full with nothing behind", seed)
			}
			if !b.Full && rem > 0 {
				t.Fatalf("seed %d: not Full with %d events behind (len %d maxE %d bytes %d maxB %d)", seed, rem, b.Len(), maxE, b.bytes, maxB)
			}
			for _, e := range b.Events {
				got = append(got, strings.Clone(e.DistinctID))
			}
			if err := s.Ack(b); err != nil {
				t.Fatal(err)
			}
			s.Release(&b)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("seed %d: got %d events want %d", seed, len(got), len(want))
		}
		if n, by := s.Stats(); n != 0 || by != 0 {
			t.Fatalf("seed %d: stats %d %d", seed, n, by)
		}
		s.Close()
	}
}
