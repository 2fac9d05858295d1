package scenario

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// child is a process of the stack started by the harness: the Zendesk
// simulator or an arubug instance. Output goes to a log file that is
// appended to across restarts.
type child struct {
	name    string
	bin     string
	args    []string
	env     []string
	logPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	starts  int
}

func (c *child) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "--- %s start %d at %s\n", c.name, c.starts+1, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(c.bin, c.args...)
	cmd.Env = c.env
	cmd.Stdout, cmd.Stderr = logf, logf
	// The stack dies with the harness, whatever kills it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", c.name, err)
	}
	c.starts++
	c.cmd = cmd
	exited := make(chan struct{})
	c.exited = exited
	go func() {
		err := cmd.Wait()
		logf.Close()
		c.mu.Lock()
		c.waitErr = err
		c.mu.Unlock()
		close(exited)
	}()
	return nil
}

// pid returns the running process's id, 0 when it is not running.
func (c *child) pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil || c.cmd.Process == nil {
		return 0
	}
	select {
	case <-c.exited:
		return 0
	default:
	}
	return c.cmd.Process.Pid
}

// running reports whether the process is alive, with its exit error when
// it is not.
func (c *child) running() (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.exited == nil {
		return false, errors.New("never started")
	}
	select {
	case <-c.exited:
		return false, c.waitErr
	default:
		return true, nil
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *child) kill() {
	c.signal(syscall.SIGKILL, 0)
}

// stop sends SIGTERM, waits up to grace, then kills.
func (c *child) stop(grace time.Duration) error {
	return c.signal(syscall.SIGTERM, grace)
}

func (c *child) signal(sig syscall.Signal, grace time.Duration) error {
	c.mu.Lock()
	cmd, exited := c.cmd, c.exited
	c.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return nil
	}
	select {
	case <-exited:
		return nil
	default:
	}
	_ = cmd.Process.Signal(sig)
	if sig == syscall.SIGKILL {
		<-exited
		return nil
	}
	select {
	case <-exited:
		return nil
	case <-time.After(grace):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		return fmt.Errorf("%s did not exit within %s of SIGTERM; killed", c.name, grace)
	}
}

// tail returns the last n lines of the child's log.
func (c *child) tail(n int) string {
	return tailFile(c.logPath, n)
}

func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 256<<10 {
		_, _ = f.Seek(st.Size()-256<<10, io.SeekStart)
	}
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// waitHTTP polls url until it answers 200 (or, with anyStatus, anything),
// the child exits, or timeout passes.
func waitHTTP(ctx context.Context, c *child, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if ok, err := c.running(); !ok {
			return fmt.Errorf("%s exited while starting (%v); log tail:\n%s", c.name, err, c.tail(30))
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer %s within %s; log tail:\n%s", c.name, url, timeout, c.tail(30))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// baseEnv is the harness's environment without ARUBUG_* settings, so that
// only what the scenario sets configures its processes.
func baseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ARUBUG_") {
			out = append(out, kv)
		}
	}
	return out
}

// ---- /proc accounting ----

// procStat is what the harness reads of a process in /proc.
type procStat struct {
	cpu   time.Duration // utime + stime
	hwm   int64         // VmHWM, bytes
	rss   int64         // VmRSS, bytes
	comm  string
	ppid  int
	valid bool
}

// clockTicks is USER_HZ, 100 on every Linux the project runs on.
const clockTicks = 100

func readProcStat(pid int) procStat {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}
	}
	st, ok := parseStat(string(b))
	if !ok {
		return procStat{}
	}
	if s, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status")); err == nil {
		st.hwm = statusKB(string(s), "VmHWM:")
		st.rss = statusKB(string(s), "VmRSS:")
	}
	return st
}

// parseStat reads comm, ppid, utime and stime from a /proc/<pid>/stat line.
// comm may hold spaces and parentheses, so fields are counted from the
// last ')'.
func parseStat(s string) (procStat, bool) {
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, false
	}
	f := strings.Fields(s[end+1:])
	// After comm: state(0) ppid(1) ... utime(11) stime(12).
	if len(f) < 13 {
		return procStat{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	stt, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return procStat{}, false
	}
	return procStat{
		cpu:   time.Duration(ut+stt) * time.Second / clockTicks,
		comm:  s[open+1 : end],
		ppid:  ppid,
		valid: true,
	}, true
}

func statusKB(s, key string) int64 {
	for line := range strings.SplitSeq(s, "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n << 10
			}
		}
	}
	return 0
}

// childrenNamed lists the pids of this process's children whose comm starts
// with prefix (the managed clickhouse-server is one: localch does not
// export its pid).
func childrenNamed(prefix string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		st, ok := parseStat(string(b))
		if ok && st.ppid == self && strings.HasPrefix(st.comm, prefix) {
			out = append(out, pid)
		}
	}
	return out
}

// cpuMeter accumulates the CPU time and peak RSS of a role (arubug,
// clickhouse) over every process that played it: each pid's last reading
// is kept, so a killed process's CPU counts up to its last sample (the
// harness samples right before it kills or stops one).
type cpuMeter struct {
	mu      sync.Mutex
	last    map[int]procStat
	base    map[int]time.Duration // CPU already used when measuring began
	peakHWM int64
}

func newCPUMeter() *cpuMeter {
	return &cpuMeter{last: map[int]procStat{}, base: map[int]time.Duration{}}
}

func (m *cpuMeter) sample(pids ...int) {
	for _, pid := range pids {
		if pid <= 0 {
			continue
		}
		st := readProcStat(pid)
		if !st.valid {
			continue
		}
		m.mu.Lock()
		if _, seen := m.last[pid]; !seen {
			m.base[pid] = 0
		}
		m.last[pid] = st
		m.peakHWM = max(m.peakHWM, st.hwm)
		m.mu.Unlock()
	}
}

// mark makes the CPU used so far by the known processes not count: the
// figures then cover only what follows (the load, not the start-up).
func (m *cpuMeter) mark(pids ...int) {
	m.sample(pids...)
	m.mu.Lock()
	defer m.mu.Unlock()
	for pid, st := range m.last {
		m.base[pid] = st.cpu
	}
}

// total returns the CPU time used since mark and the peak VmHWM.
func (m *cpuMeter) total() (time.Duration, int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var sum time.Duration
	for pid, st := range m.last {
		sum += st.cpu - m.base[pid]
	}
	return sum, m.peakHWM
}
