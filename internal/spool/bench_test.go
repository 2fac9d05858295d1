package spool

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkAppendParallel measures durable single-event appends from many
// goroutines: each returns after its fsync, shared through group commit.
func BenchmarkAppendParallel(b *testing.B) {
	s, err := Open(Options{Dir: filepath.Join(b.TempDir(), "s.db"), MaxBytes: 8 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	evs := events("bench", 1)
	b.SetParallelism(16)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Append(context.Background(), evs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAppendSerial is the worst case: one writer, one fsync per append.
func BenchmarkAppendSerial(b *testing.B) {
	for _, n := range []int{1, 50} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			s, err := Open(Options{Dir: filepath.Join(b.TempDir(), "s.db"), MaxBytes: 8 << 30})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			evs := events("bench", n)
			for b.Loop() {
				if err := s.Append(context.Background(), evs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
