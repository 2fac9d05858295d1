// Command fillimpact measures what filling the next segment with zeros does
// to the commits beside it: a 17 KB pwrite plus fdatasync into a zero-filled
// file every millisecond, first alone, then while 64 MiB of zeros are
// written in CHUNK-byte writes, with an fdatasync every SYNC chunks and a
// REST between chunks. Usage: go run ./prealloc/fillimpact DIR CHUNK SYNC REST
// (e.g. DIR 1048576 1 5ms).
package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"syscall"
	"time"
)

func main() {
	dir := os.Args[1]
	chunk, _ := strconv.Atoi(os.Args[2])
	syncEvery, _ := strconv.Atoi(os.Args[3])
	pause, _ := time.ParseDuration(os.Args[4])
	tail, _ := os.OpenFile(dir+"/tail", os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	z := make([]byte, 1<<20)
	for off := 0; off < 32<<20; off += len(z) {
		tail.WriteAt(z, int64(off))
	}
	tail.Sync()
	buf := make([]byte, 17000)
	for i := range buf {
		buf[i] = 'x'
	}
	measure := func(d time.Duration) []time.Duration {
		var lat []time.Duration
		end := time.Now().Add(d)
		off := int64(0)
		for time.Now().Before(end) {
			t0 := time.Now()
			tail.WriteAt(buf, off)
			syscall.Fdatasync(int(tail.Fd()))
			lat = append(lat, time.Since(t0))
			off += int64(len(buf))
			time.Sleep(time.Millisecond)
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		return lat
	}
	q := func(l []time.Duration) string {
		return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", len(l), l[len(l)/2].Round(10*time.Microsecond), l[len(l)*99/100].Round(10*time.Microsecond), l[len(l)-1].Round(10*time.Microsecond))
	}
	fmt.Println("idle:      ", q(measure(2*time.Second)))
	done := make(chan time.Duration)
	go func() {
		t0 := time.Now()
		f, _ := os.OpenFile(dir+"/next", os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
		zc := make([]byte, chunk)
		n := 0
		for off := 0; off < 64<<20; off += chunk {
			f.WriteAt(zc, int64(off))
			n++
			if n%syncEvery == 0 {
				syscall.Fdatasync(int(f.Fd()))
			}
			if pause > 0 {
				time.Sleep(pause)
			}
		}
		syscall.Fdatasync(int(f.Fd()))
		f.Close()
		done <- time.Since(t0)
	}()
	var all []time.Duration
	var took time.Duration
	for took == 0 {
		l := measure(200 * time.Millisecond)
		all = append(all, l...)
		select {
		case took = <-done:
		default:
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	fmt.Printf("prepare %v: %s\n", took.Round(time.Millisecond), q(all))
	os.Remove(dir + "/tail")
	os.Remove(dir + "/next")
}
