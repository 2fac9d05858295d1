// Command fsyncstall looks for stalls of fdatasync: FILES goroutines each
// append 6 000 bytes plus fdatasync to their own file in DIR, about three
// times a millisecond, for 5 s, and print when a commit took over 8 ms (ms
// since the start). With "burn", two goroutines of the same process keep
// both cores about half busy, as a loaded collector does.
// Usage: go run ./fsyncstall DIR FILES [burn]
//
// On the project's 2-core VM the slow commits of all files start at the same
// moments, one every ~100 ms, and only under CPU load: a stall of the disk's
// flush, not of one file (docs/benchmarks.md, capture, seventh round).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: fsyncstall DIR FILES [burn]")
		os.Exit(2)
	}
	dir := os.Args[1]
	files, err := strconv.Atoi(os.Args[2])
	if err != nil || files < 1 {
		fmt.Fprintln(os.Stderr, "FILES must be a positive number")
		os.Exit(2)
	}
	if len(os.Args) > 3 && os.Args[3] == "burn" {
		for range 2 {
			go func() {
				for {
					t := time.Now()
					for time.Since(t) < 500*time.Microsecond {
					}
					time.Sleep(500 * time.Microsecond)
				}
			}()
		}
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		slow  = make([][]int64, files)
		count = make([]int, files)
		start = time.Now()
	)
	for k := range files {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("stall%d", k)), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer os.Remove(f.Name())
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 6000)
			for off := int64(0); time.Since(start) < 5*time.Second; off += int64(len(buf)) {
				t0 := time.Now()
				if _, err := f.WriteAt(buf, off); err != nil {
					panic(err)
				}
				if err := syscall.Fdatasync(int(f.Fd())); err != nil {
					panic(err)
				}
				d := time.Since(t0)
				mu.Lock()
				count[k]++
				if d > 8*time.Millisecond {
					slow[k] = append(slow[k], t0.Sub(start).Milliseconds())
				}
				mu.Unlock()
				time.Sleep(300 * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	for k := range files {
		fmt.Printf("file %d: %d commits, %d over 8 ms, starting at (ms): %v\n", k, count[k], len(slow[k]), slow[k])
	}
}
