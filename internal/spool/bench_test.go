package spool

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// openBench opens a spool for a benchmark. With preallocate, it waits until
// the tail has moved onto a zero-filled segment, as it does in the first
// second of a real process, so that the timed appends overwrite zeros.
func openBench(b *testing.B, preallocate bool) *Spool {
	b.Helper()
	s, err := Open(Options{Dir: filepath.Join(b.TempDir(), "log"), MaxBytes: 8 << 30, Preallocate: preallocate})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	if !preallocate {
		return s
	}
	for deadline := time.Now().Add(time.Minute); !s.pre.isReady(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("no segment prepared in a minute")
		}
	}
	if err := s.Append(context.Background(), events("warm", 1)); err != nil {
		b.Fatal(err)
	}
	return s
}

// reportCPU adds the process's CPU time (user and system, fdatasync's
// included) per operation: on a machine as small as 2 cores, CPU per append
// bounds throughput more than latency does.
func reportCPU(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() { b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op") }
}

// BenchmarkAppendParallel measures durable single-event appends from many
// goroutines: each returns after its fsync, shared through group commit.
func BenchmarkAppendParallel(b *testing.B) {
	for _, pre := range []bool{false, true} {
		b.Run(fmt.Sprintf("preallocate=%v", pre), func(b *testing.B) {
			s := openBench(b, pre)
			evs := events("bench", 1)
			b.SetParallelism(16)
			b.ReportAllocs()
			b.ResetTimer()
			defer reportCPU(b)()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.Append(context.Background(), evs); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkAppendSerial is the worst case: one writer, one fsync per append.
func BenchmarkAppendSerial(b *testing.B) {
	for _, pre := range []bool{false, true} {
		for _, n := range []int{1, 50} {
			b.Run(fmt.Sprintf("preallocate=%v/events=%d", pre, n), func(b *testing.B) {
				s := openBench(b, pre)
				evs := events("bench", n)
				defer reportCPU(b)()
				for b.Loop() {
					if err := s.Append(context.Background(), evs); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
