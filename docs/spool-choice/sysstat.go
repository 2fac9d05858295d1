package main

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procIO returns this process's write_bytes from /proc/self/io: bytes it
// caused to be written to storage (counted when a page is dirtied, so a
// page rewritten after each fsync counts each time), less cancelled ones.
func procIO() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	var w, c int64
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "write_bytes":
			w = n
		case "cancelled_write_bytes":
			c = n
		}
	}
	return w - c
}

// cpuTime returns the user+system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAvg returns the 1-minute load average (other work on the machine).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// fsyncProbe measures the disk as it is right now: the median of 100
// serial 4 KB overwrite + fdatasync rounds in dir.
func fsyncProbe(dir string) time.Duration {
	f, err := os.CreateTemp(dir, "probe-")
	if err != nil {
		return 0
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	if _, err := f.WriteAt(buf, 0); err != nil {
		return 0
	}
	_ = f.Sync()
	lat := make([]time.Duration, 0, 100)
	for i := range 100 {
		buf[0] = byte(i)
		t := time.Now()
		if _, err := f.WriteAt(buf, 0); err != nil {
			return 0
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return 0
		}
		lat = append(lat, time.Since(t))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	_ = filepath.Base(f.Name())
	return lat[len(lat)/2]
}
