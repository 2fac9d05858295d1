// Command spool-choice measures durable-queue storage candidates for
// Arubug's spool under one workload: concurrent appends that each return
// only after their record is fsynced, then a restart (reopen and scan), then
// a FIFO drain that reads from the head and deletes in chunks.
//
//	go run . -n 20000 -c 32 -size 600          # benchmark, medians of 3 runs
//	go run . -crash -c 32 -size 600            # SIGKILL crash check
//	go run . -torn                             # torn final write check
//
// See RESULTS.md for numbers and what they mean.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type config struct {
	n        int
	c        int
	size     int
	dur      time.Duration
	reps     int
	chunk    int
	dir      string
	stores   []storeKind
	jsonOut  string
	crash    bool
	runs     int
	killAt   time.Duration
	child    bool
	childDir string
	list     bool
	torn     bool
	pause    time.Duration
}

func main() {
	var cfg config
	var stores string
	flag.IntVar(&cfg.n, "n", 20000, "appends per run (upper bound)")
	flag.IntVar(&cfg.c, "c", 32, "concurrent appenders")
	flag.IntVar(&cfg.size, "size", 600, "record size in bytes (JSON events; >1 KB becomes a batch of ~600-byte events)")
	flag.DurationVar(&cfg.dur, "dur", 10*time.Second, "time bound of the append phase of one run")
	flag.IntVar(&cfg.reps, "reps", 3, "repetitions; the median is reported")
	flag.DurationVar(&cfg.pause, "pause", time.Second, "pause after each run (after sync(2)) so runs do not share writeback")
	flag.IntVar(&cfg.chunk, "chunk", 20000, "drain: records read and then deleted per step")
	flag.StringVar(&cfg.dir, "dir", os.TempDir(), "parent of the per-run temporary directories")
	flag.StringVar(&stores, "stores", "all", "comma-separated stores: "+storeNames())
	flag.StringVar(&cfg.jsonOut, "json", "", "also write every run as JSON to this file")
	flag.BoolVar(&cfg.crash, "crash", false, "run the SIGKILL crash check instead of the benchmark")
	flag.BoolVar(&cfg.torn, "torn", false, "run the torn-tail check (log-structured stores) instead of the benchmark")
	flag.IntVar(&cfg.runs, "runs", 5, "crash check: kills per store")
	flag.DurationVar(&cfg.killAt, "kill-after", time.Second, "crash check: SIGKILL the child after this long (plus up to 25% jitter)")
	flag.BoolVar(&cfg.list, "list", false, "print each store's files after the append phase and after the drain")
	flag.BoolVar(&cfg.child, "child", false, "internal: crash-check child")
	flag.StringVar(&cfg.childDir, "child-dir", "", "internal: crash-check child's store directory")
	flag.Parse()

	var err error
	if cfg.stores, err = pickStores(stores); err != nil {
		fatal(err)
	}
	switch {
	case cfg.child:
		err = crashChild(cfg)
	case cfg.crash:
		err = crashCheck(cfg)
	case cfg.torn:
		err = tornCheck(cfg)
	default:
		err = bench(cfg)
	}
	if err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "spool-choice:", err)
	os.Exit(1)
}

func storeNames() string {
	var names []string
	for _, k := range storeKinds {
		names = append(names, k.name)
	}
	return strings.Join(names, ",")
}

func pickStores(list string) ([]storeKind, error) {
	if list == "all" {
		return storeKinds, nil
	}
	var out []storeKind
	for _, name := range strings.Split(list, ",") {
		found := false
		for _, k := range storeKinds {
			if k.name == strings.TrimSpace(name) {
				out = append(out, k)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown store %q (have %s)", name, storeNames())
		}
	}
	return out, nil
}

// ---------------------------------------------------------------- payloads

var words = strings.Fields(`checkout signup pricing docs blog settings billing team invite
dashboard insights funnel retention cohort export import feature flag experiment
survey session replay toolbar person group annotation action cohort alert`)

var browsers = []string{"Chrome", "Firefox", "Safari", "Edge", "Mobile Safari", "Chrome iOS"}
var oses = []string{"Mac OS X", "Windows", "Linux", "iOS", "Android"}

func hexID(r *rand.Rand, n int) string {
	const hexd = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = hexd[r.IntN(16)]
	}
	return string(b)
}

func uuidish(r *rand.Rand) string {
	h := hexID(r, 32)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func path(r *rand.Rand) string {
	k := 1 + r.IntN(3)
	p := ""
	for range k {
		p += "/" + words[r.IntN(len(words))]
	}
	return p
}

// genEvent returns one PostHog-like capture event of exactly target bytes
// (when target is at least the bare event's size): random IDs and a padding
// property of words, so it compresses about as much as real events do.
func genEvent(r *rand.Rand, target int) []byte {
	p := path(r)
	ev := map[string]any{
		"uuid":        uuidish(r),
		"event":       []string{"$pageview", "$autocapture", "signed_up", "$pageleave"}[r.IntN(4)],
		"distinct_id": hexID(r, 32),
		"timestamp":   time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int64N(int64(300 * 24 * time.Hour)))).Format(time.RFC3339Nano),
		"properties": map[string]any{
			"$current_url":  "https://app.example.com" + p,
			"$pathname":     p,
			"$host":         "app.example.com",
			"$browser":      browsers[r.IntN(len(browsers))],
			"$os":           oses[r.IntN(len(oses))],
			"$device_type":  "Desktop",
			"$screen_width": 1280 + r.IntN(1280),
			"$lib":          "web",
			"$lib_version":  "1.200.0",
			"$session_id":   uuidish(r),
			"$window_id":    uuidish(r),
			"$insert_id":    hexID(r, 16),
			"$time":         1.7e9 + r.Float64()*1e7,
			"pad":           "",
		},
	}
	b, _ := json.Marshal(ev)
	if len(b) >= target {
		return b
	}
	var pad strings.Builder
	for pad.Len() < target-len(b) {
		if pad.Len() > 0 {
			pad.WriteByte(' ')
		}
		pad.WriteString(words[r.IntN(len(words))])
	}
	ev["properties"].(map[string]any)["pad"] = pad.String()[:target-len(b)]
	b, _ = json.Marshal(ev)
	return b
}

// genRecord returns a record of exactly size bytes: one event, or for
// sizes over 1 KB a JSON array of ~600-byte events (a batch request).
func genRecord(r *rand.Rand, size int) []byte {
	if size <= 1024 {
		b := genEvent(r, size)
		if len(b) > size {
			b = b[:size] // too small for an event: the bytes still count
		}
		return b
	}
	k := max(1, size/600)
	each := (size - 2 - (k - 1)) / k
	out := []byte{'['}
	for i := range k {
		if i > 0 {
			out = append(out, ',')
		}
		t := each
		if i == k-1 {
			t = size - 1 - len(out)
		}
		out = append(out, genEvent(r, t)...)
	}
	return append(out, ']')
}

func genPayloads(size int) [][]byte {
	r := rand.New(rand.NewPCG(1, uint64(size)))
	out := make([][]byte, 256)
	for i := range out {
		out[i] = genRecord(r, size)
	}
	return out
}

// ---------------------------------------------------------------- benchmark

type runResult struct {
	Store        string        `json:"store"`
	Rep          int           `json:"rep"`
	Appends      int           `json:"appends"`
	AppendTime   time.Duration `json:"append_ns"`
	AppendsPerS  float64       `json:"appends_per_s"`
	P50          time.Duration `json:"p50_ns"`
	P99          time.Duration `json:"p99_ns"`
	Max          time.Duration `json:"max_ns"`
	GroupSize    float64       `json:"group_size,omitempty"` // records per fsync group (wrapper stores)
	PayloadBytes int64         `json:"payload_bytes"`
	DiskBytes    int64         `json:"disk_bytes"`          // allocated, after the append phase and Close
	DiskApparent int64         `json:"disk_apparent_bytes"` // sum of file sizes
	Recovery     time.Duration `json:"recovery_ns"`         // reopen + scan every record
	Recovered    int           `json:"recovered"`
	DrainTime    time.Duration `json:"drain_ns"`
	DrainPerS    float64       `json:"drain_per_s"`
	DiskDrained  int64         `json:"disk_after_drain_bytes"`
	Err          string        `json:"error,omitempty"`

	// Context and noise-free measures.
	Load1         float64       `json:"load1"`              // 1-min load average at the start
	FsyncProbe    time.Duration `json:"fsync_probe_p50_ns"` // disk's serial 4 KB fdatasync p50 just before the run
	WrittenAppend int64         `json:"written_append_bytes"`
	WrittenDrain  int64         `json:"written_drain_bytes"`
	CPUPerAppend  time.Duration `json:"cpu_per_append_ns"`
}

func bench(cfg config) error {
	payloads := genPayloads(cfg.size)
	fmt.Fprintf(os.Stderr, "workload: n=%d c=%d size=%d dur=%s reps=%d chunk=%d dir=%s GOMAXPROCS=%d\n",
		cfg.n, cfg.c, cfg.size, cfg.dur, cfg.reps, cfg.chunk, cfg.dir, runtime.GOMAXPROCS(0))
	all := map[string][]runResult{}
	var flat []runResult
	// Interleave stores within each repetition so that drift of the disk
	// over time does not favour one store.
	for rep := 1; rep <= cfg.reps; rep++ {
		for i := range cfg.stores {
			// Rotate the order too, so no store always follows the same one.
			k := cfg.stores[(i+rep-1)%len(cfg.stores)]
			res := runOnce(cfg, k, rep, payloads)
			all[k.name] = append(all[k.name], res)
			flat = append(flat, res)
			status := "ok"
			if res.Err != "" {
				status = "ERROR " + res.Err
			}
			fmt.Fprintf(os.Stderr, "  rep %d %-13s load %4.1f probe %-7s %6d appends %8.0f/s p50 %-9s p99 %-9s max %-9s disk %6.1f MB wamp %4.2f cpu/append %-7s recover %-9s drain %8.0f/s %s\n",
				rep, k.name, res.Load1, rd(res.FsyncProbe), res.Appends, res.AppendsPerS, rd(res.P50), rd(res.P99), rd(res.Max),
				mb(res.DiskBytes), float64(res.WrittenAppend)/float64(max(1, res.PayloadBytes)), rd(res.CPUPerAppend), rd(res.Recovery), res.DrainPerS, status)
		}
	}
	if cfg.jsonOut != "" {
		b, _ := json.MarshalIndent(flat, "", "  ")
		if err := os.WriteFile(cfg.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("\nWorkload: -n %d -c %d -size %d (bound %s), median of %d runs\n\n", cfg.n, cfg.c, cfg.size, cfg.dur, cfg.reps)
	fmt.Println("| store | appends (of n) | appends/s (min–max) | p50 | p99 | max | recs/commit | disk after appends (payload) | written/payload | CPU/append | reopen+scan | drain recs/s | written by drain | disk after drain | errors |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, k := range cfg.stores {
		rs := all[k.name]
		errs := 0
		for _, r := range rs {
			if r.Err != "" {
				errs++
			}
		}
		gs := "—"
		if g := medianF(rs, func(r runResult) float64 { return r.GroupSize }); g > 0 {
			gs = fmt.Sprintf("%.1f", g)
		}
		fmt.Printf("| %s | %d | %.0f (%.0f–%.0f) | %s | %s | %s | %s | %.1f MB (%.1f MB) | %.2f | %s | %s | %.0f | %.0f KB | %.1f MB | %d |\n",
			k.name,
			int(medianF(rs, func(r runResult) float64 { return float64(r.Appends) })),
			medianF(rs, func(r runResult) float64 { return r.AppendsPerS }),
			minF(rs, func(r runResult) float64 { return r.AppendsPerS }),
			maxF(rs, func(r runResult) float64 { return r.AppendsPerS }),
			rd(medianD(rs, func(r runResult) time.Duration { return r.P50 })),
			rd(medianD(rs, func(r runResult) time.Duration { return r.P99 })),
			rd(medianD(rs, func(r runResult) time.Duration { return r.Max })),
			gs,
			mb(int64(medianF(rs, func(r runResult) float64 { return float64(r.DiskBytes) }))),
			mb(int64(medianF(rs, func(r runResult) float64 { return float64(r.PayloadBytes) }))),
			medianF(rs, func(r runResult) float64 { return float64(r.WrittenAppend) / float64(max(1, r.PayloadBytes)) }),
			rd(medianD(rs, func(r runResult) time.Duration { return r.CPUPerAppend })),
			rd(medianD(rs, func(r runResult) time.Duration { return r.Recovery })),
			medianF(rs, func(r runResult) float64 { return r.DrainPerS }),
			medianF(rs, func(r runResult) float64 { return float64(r.WrittenDrain) })/1024,
			mb(int64(medianF(rs, func(r runResult) float64 { return float64(r.DiskDrained) }))),
			errs)
	}
	var loads, probes []float64
	for _, r := range flat {
		loads = append(loads, r.Load1)
		probes = append(probes, float64(r.FsyncProbe))
	}
	sort.Float64s(loads)
	sort.Float64s(probes)
	if len(flat) > 0 {
		fmt.Printf("\nMachine during these runs: 1-min load average %.1f–%.1f (median %.1f); disk probe (serial 4 KB write+fdatasync, p50 of 100 before each run) %s–%s (median %s).\n",
			loads[0], loads[len(loads)-1], loads[len(loads)/2],
			rd(time.Duration(probes[0])), rd(time.Duration(probes[len(probes)-1])), rd(time.Duration(probes[len(probes)/2])))
	}
	return nil
}

func runOnce(cfg config, k storeKind, rep int, payloads [][]byte) (res runResult) {
	res = runResult{Store: k.name, Rep: rep}
	dir, err := os.MkdirTemp(cfg.dir, "spool-choice-"+k.name+"-")
	if err != nil {
		res.Err = err.Error()
		return res
	}
	defer func() {
		_ = os.RemoveAll(dir)
		syscall.Sync() // don't leave this run's writeback to the next one
		time.Sleep(cfg.pause)
	}()
	res.Load1 = loadAvg()
	res.FsyncProbe = fsyncProbe(dir)
	s, err := k.open(dir)
	if err != nil {
		res.Err = "open: " + err.Error()
		return res
	}

	// Append phase.
	var (
		claimed  atomic.Int64
		payload  atomic.Int64
		firstErr atomic.Value
		wg       sync.WaitGroup
		lats     = make([][]time.Duration, cfg.c)
	)
	io0, cpu0 := procIO(), cpuTime()
	start := time.Now()
	deadline := start.Add(cfg.dur)
	for w := range cfg.c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, cfg.n/cfg.c+1)
			for {
				i := claimed.Add(1)
				if i > int64(cfg.n) || time.Now().After(deadline) {
					break
				}
				v := payloads[int(i)%len(payloads)]
				t := time.Now()
				if _, err := s.Append(v); err != nil {
					firstErr.CompareAndSwap(nil, err.Error())
					break
				}
				lat = append(lat, time.Since(t))
				payload.Add(int64(len(v)))
			}
			lats[w] = lat
		}()
	}
	wg.Wait()
	res.AppendTime = time.Since(start)
	res.CPUPerAppend = (cpuTime() - cpu0) / time.Duration(max(1, claimedDone(lats)))
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	res.Appends = len(all)
	res.AppendsPerS = float64(len(all)) / res.AppendTime.Seconds()
	res.PayloadBytes = payload.Load()
	if len(all) > 0 {
		res.P50 = all[len(all)/2]
		res.P99 = all[min(len(all)-1, len(all)*99/100)]
		res.Max = all[len(all)-1]
	}
	if c, r, ok := s.GroupStats(); ok && c > 0 {
		res.GroupSize = float64(r) / float64(c)
	}
	if e := firstErr.Load(); e != nil {
		res.Err = "append: " + e.(string)
	}
	if err := s.Close(); err != nil && res.Err == "" {
		res.Err = "close: " + err.Error()
	}
	res.WrittenAppend = procIO() - io0
	res.DiskBytes, res.DiskApparent = diskUsage(dir)
	if cfg.list {
		listFiles(k.name+" after appends", dir)
	}

	// Restart: reopen and scan every record, as Spool.Open does to rebuild
	// its byte and event counters.
	t := time.Now()
	s, err = k.open(dir)
	if err != nil {
		res.Err = "reopen: " + err.Error()
		return res
	}
	var scanned int64
	err = s.Scan(func(_ uint64, v []byte) error {
		res.Recovered++
		scanned += int64(len(v))
		return nil
	})
	res.Recovery = time.Since(t)
	if err != nil && res.Err == "" {
		res.Err = "scan: " + err.Error()
	}
	if (res.Recovered != res.Appends || scanned != res.PayloadBytes) && res.Err == "" {
		res.Err = fmt.Sprintf("recovered %d records/%d bytes, appended %d/%d", res.Recovered, scanned, res.Appends, res.PayloadBytes)
	}

	// Drain: read from the head in order, delete, repeat.
	io0 = procIO()
	t = time.Now()
	drained := 0
	var next uint64
	for {
		first, last, n, err := s.ReadHead(cfg.chunk, func(seq uint64, v []byte) {
			if next != 0 && seq != next && res.Err == "" {
				res.Err = fmt.Sprintf("drain: got seq %d, want %d", seq, next)
			}
			next = seq + 1
		})
		if err != nil {
			res.Err = "drain read: " + err.Error()
			break
		}
		if n == 0 {
			break
		}
		if err := s.Delete(first, last); err != nil {
			res.Err = "drain delete: " + err.Error()
			break
		}
		drained += n
	}
	res.DrainTime = time.Since(t)
	res.WrittenDrain = procIO() - io0
	res.DrainPerS = float64(drained) / res.DrainTime.Seconds()
	if drained != res.Recovered && res.Err == "" {
		res.Err = fmt.Sprintf("drained %d of %d", drained, res.Recovered)
	}
	if err := s.Close(); err != nil && res.Err == "" {
		res.Err = "close: " + err.Error()
	}
	res.DiskDrained, _ = diskUsage(dir)
	if cfg.list {
		listFiles(k.name+" after drain", dir)
	}
	return res
}

func listFiles(title, dir string) {
	fmt.Fprintf(os.Stderr, "    files of %s:\n", title)
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		var alloc int64
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			alloc = st.Blocks * 512
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(os.Stderr, "      %-40s size %10d alloc %10d\n", rel, fi.Size(), alloc)
		return nil
	})
}

func claimedDone(lats [][]time.Duration) int {
	n := 0
	for _, l := range lats {
		n += len(l)
	}
	return n
}

func diskUsage(dir string) (alloc, apparent int64) {
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		apparent += fi.Size()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			alloc += st.Blocks * 512
		}
		return nil
	})
	return alloc, apparent
}

func medianF(rs []runResult, f func(runResult) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	sort.Float64s(v)
	return v[len(v)/2]
}

func minF(rs []runResult, f func(runResult) float64) float64 {
	m := 0.0
	for i, r := range rs {
		if v := f(r); i == 0 || v < m {
			m = v
		}
	}
	return m
}

func maxF(rs []runResult, f func(runResult) float64) float64 {
	m := 0.0
	for _, r := range rs {
		m = max(m, f(r))
	}
	return m
}

func medianD(rs []runResult, f func(runResult) time.Duration) time.Duration {
	return time.Duration(medianF(rs, func(r runResult) float64 { return float64(f(r)) }))
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// rd rounds a duration for display.
func rd(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}
