// Command fsynccost measures one pwrite plus fdatasync, wall time and CPU,
// when the write grows the file ("append"), overwrites a zero-filled file
// ("prezero") or writes into fallocate'd blocks ("falloc"). Usage:
// go run ./prealloc/fsynccost DIR (DIR on the disk to measure).
package main

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func run(name string, prezero bool, size, n int) {
	path := os.Args[1] + "/" + name
	os.Remove(path)
	f, _ := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if name == "falloc" {
		syscall.Fallocate(int(f.Fd()), 0, 0, int64(size*n+(1<<20)))
		f.Sync()
	}
	if prezero {
		z := make([]byte, 1<<20)
		for off := 0; off < size*n+(1<<20); off += len(z) {
			f.WriteAt(z, int64(off))
		}
		f.Sync()
	}
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i)
	}
	c0, t0 := cpu(), time.Now()
	for i := 0; i < n; i++ {
		f.WriteAt(buf, int64(i*size))
		syscall.Fdatasync(int(f.Fd()))
	}
	c1, t1 := cpu(), time.Now()
	fmt.Printf("%-8s size=%6d: wall %6.0f µs/op, cpu %6.0f µs/op\n", name, size, float64(t1.Sub(t0).Microseconds())/float64(n), float64((c1-c0).Microseconds())/float64(n))
	f.Close()
	os.Remove(path)
}

func main() {
	for _, size := range []int{1000, 17000, 64000} {
		run("append", false, size, 2000)
		run("prezero", true, size, 2000)
		run("falloc", false, size, 2000)
	}
}
