// Package localch runs a private clickhouse-server as a child process.
//
// It backs the serve and dev commands when no ClickHouse DSN is configured,
// and tests (see the localchtest subpackage). The server listens on loopback
// only, keeps everything (data, logs, generated configuration) under one data
// directory, and dies with its parent. It works with the clickhouse-server
// 18.16 that Debian ships as well as with current releases.
package localch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// InstallCommand is the shell command that installs the ClickHouse server on
// the Debian/Ubuntu machines this project is developed on.
const InstallCommand = "apt-get update && apt-get install -y clickhouse-server clickhouse-client"

// ErrNotInstalled is returned (wrapped, with installation instructions in the
// message) by Start when no clickhouse-server binary can be found.
var ErrNotInstalled = errors.New("localch: clickhouse-server is not installed")

// ErrDataDirInUse is returned (wrapped) by Start and Restart when another
// process is already using the data directory: another Server, or a
// clickhouse-server left over from an earlier run.
var ErrDataDirInUse = errors.New("localch: data directory is in use")

const (
	defaultStartTimeout = 60 * time.Second
	defaultStopTimeout  = 20 * time.Second
	killWait            = 10 * time.Second
	staleWait           = 5 * time.Second
	portAttempts        = 5
	pollInterval        = 50 * time.Millisecond
	tailLines           = 20
)

// portInUseError marks a start that failed because one of the server's
// ports was taken.
type portInUseError struct {
	port int // 0 when the server's message did not name it
	err  error
}

func (e *portInUseError) Error() string { return e.err.Error() }
func (e *portInUseError) Unwrap() error { return e.err }

// addrInUse matches both 18.16's "Address already in use: 127.0.0.1:9000" and
// current releases' "Listen [127.0.0.1]:9000 failed: ... Address already in
// use: 127.0.0.1:9000".
var addrInUse = regexp.MustCompile(`Address already in use: \S*:(\d+)`)

// Options configures Start. Only DataDir is required.
type Options struct {
	// Binary is the clickhouse-server executable, as a path or a name looked
	// up in PATH. A binary named "clickhouse" is run as "clickhouse server".
	// Default: clickhouse-server from PATH, then /usr/bin, /usr/sbin,
	// /usr/local/bin, /usr/local/sbin, then the "clickhouse" multi-tool.
	Binary string

	// DataDir holds everything the server uses: data, tmp, user_files,
	// format_schemas, logs (DataDir/log) and the generated configuration
	// (DataDir/config). Data found there from an earlier run is reused.
	DataDir string

	// TCPPort and HTTPPort are the loopback ports for the native and HTTP
	// protocols. 0 picks a free port; the choice is kept for the life of
	// the Server, so Restart comes back on the same ports.
	TCPPort, HTTPPort int

	// StartTimeout bounds how long Start and Restart wait for the server to
	// answer. Default 60s.
	StartTimeout time.Duration

	// Logger receives lifecycle messages. nil discards them.
	Logger *slog.Logger

	// Nice lowers the server's CPU priority (0–19) when it shares a machine
	// with the collector: a durable ack waits on the collector, while
	// inserts and merges can wait a little. 0 leaves it alone.
	Nice int

	// pickPorts replaces the port picker in tests that need a lost race.
	pickPorts func(tcp, http int) (int, int, error)
}

// Server is a running (or stopped) managed clickhouse-server. Its methods are
// safe for concurrent use.
type Server struct {
	bin          string
	binArgs      []string
	dirs         layout
	startTimeout time.Duration
	nice         int
	log          *slog.Logger

	// Fixed once Start returns, hence read without mu.
	tcpPort, httpPort int

	mu   sync.Mutex
	proc *process // nil when not running
	lock *os.File // flock on dirs.lockFile while this Server owns DataDir
}

// Start launches clickhouse-server on DataDir and returns once it answers on
// both its HTTP (/ping) and native ports. ctx bounds only the startup; the
// server keeps running until Stop or Kill, and is killed by the kernel if
// this process dies.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.DataDir == "" {
		return nil, errors.New("localch: Options.DataDir is required")
	}
	root, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("localch: data dir: %w", err)
	}
	bin, binArgs, err := findBinary(opts.Binary)
	if err != nil {
		return nil, err
	}
	s := &Server{
		bin:          bin,
		binArgs:      binArgs,
		dirs:         newLayout(root),
		startTimeout: opts.StartTimeout,
		nice:         opts.Nice,
		log:          opts.Logger,
	}
	if s.startTimeout <= 0 {
		s.startTimeout = defaultStartTimeout
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.dirs.mkdirs(); err != nil {
		return nil, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.acquireLock(); err != nil {
		return nil, err
	}
	pick := opts.pickPorts
	if pick == nil {
		pick = pickPorts
	}
	if err := s.startPickingPorts(ctx, opts.TCPPort, opts.HTTPPort, pick); err != nil {
		s.releaseLock()
		return nil, err
	}
	return s, nil
}

// DSN returns a clickhouse-go DSN for the native protocol, e.g.
// "clickhouse://127.0.0.1:9000/mydb". The database is not created.
func (s *Server) DSN(database string) string {
	return "clickhouse://" + s.TCPAddr() + "/" + url.PathEscape(database)
}

// TCPAddr returns the host:port of the native protocol listener.
func (s *Server) TCPAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.tcpPort))
}

// HTTPAddr returns the host:port of the HTTP listener.
func (s *Server) HTTPAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.httpPort))
}

// DataDir returns the absolute data directory of the server.
func (s *Server) DataDir() string { return s.dirs.root }

// LogDir returns the directory holding the server's log files and its
// captured stdout and stderr.
func (s *Server) LogDir() string { return s.dirs.logDir }

// Stop shuts the server down with SIGTERM and waits for it to exit; if it
// has not exited when ctx is done or after 20 seconds, whichever comes
// first, it is killed with SIGKILL. Stopping a stopped server is a no-op.
// Stop releases the data directory; Restart may still be called afterwards.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.stopLocked(ctx)
	s.releaseLock()
	return err
}

// Restart stops the server (as Stop does, if it is running) and starts it
// again on the same ports and data directory.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stopLocked(ctx); err != nil {
		return err
	}
	if s.lock == nil {
		if err := s.acquireLock(); err != nil {
			return err
		}
	}
	return s.startOnce(ctx)
}

// Kill kills the server with SIGKILL, without letting it shut down, and
// waits until it is gone. It is a no-op when the server is not running.
// Restart brings a killed server back.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	s.log.Info("killing clickhouse-server", "pid", p.pid)
	return p.kill()
}

func (s *Server) stopLocked(ctx context.Context) error {
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	if p.exited() {
		s.log.Warn("clickhouse-server had already exited", "pid", p.pid, "status", p.err, "logs", s.dirs.logDir)
		return nil
	}
	began := time.Now()
	if err := p.signal(syscall.SIGTERM); err != nil {
		s.log.Warn("SIGTERM failed, killing clickhouse-server", "pid", p.pid, "err", err)
		return p.kill()
	}
	grace := time.NewTimer(defaultStopTimeout)
	defer grace.Stop()
	select {
	case <-p.done:
		s.log.Info("clickhouse-server stopped", "pid", p.pid, "took", time.Since(began).Round(time.Millisecond))
		return nil
	case <-ctx.Done():
	case <-grace.C:
	}
	s.log.Warn("clickhouse-server did not stop in time, killing it", "pid", p.pid, "waited", time.Since(began).Round(time.Millisecond))
	return p.kill()
}

// mallocConf tunes the jemalloc of Debian's clickhouse-server (18.16 links
// the system's libjemalloc 5.3, which reads MALLOC_CONF). jemalloc serves
// allocations of 8 MiB and more from an arena that returns them to the
// kernel as soon as they are freed; every insert and merge allocates such
// column buffers afresh, and faulting their pages back in was a third of
// the server's CPU while it ingested 5 000 events/s (perf: exc_page_fault
// under memmove in the insert and merge threads). oversize_threshold:0
// puts them in the ordinary arenas, which keep freed pages for reuse
// (10 s decay): 30 % less server CPU in the same run, peak RSS 400 → 520
// MiB (docs/benchmarks.md). Keeping every freed page (dirty_decay_ms:-1)
// saved little more and grew the RSS to 740 MiB–1.6 GiB. An operator's own
// MALLOC_CONF wins.
const mallocConf = "oversize_threshold:0"

// startPickingPorts starts the server, choosing free ports for those not
// given. Picking a port and the server binding it are not atomic, so a lost
// race is retried with fresh ports; explicitly requested ports are not.
func (s *Server) startPickingPorts(ctx context.Context, wantTCP, wantHTTP int, pick func(int, int) (int, int, error)) error {
	attempts := 1
	if wantTCP == 0 || wantHTTP == 0 {
		attempts = portAttempts
	}
	var err error
	for range attempts {
		s.tcpPort, s.httpPort, err = pick(wantTCP, wantHTTP)
		if err != nil {
			return err
		}
		err = s.startOnce(ctx)
		var inUse *portInUseError
		if !errors.As(err, &inUse) {
			return err
		}
		pickedTaken := inUse.port == s.tcpPort && wantTCP == 0 ||
			inUse.port == s.httpPort && wantHTTP == 0 ||
			inUse.port == 0 && wantTCP == 0 && wantHTTP == 0
		if !pickedTaken {
			return err
		}
		s.log.Warn("a port picked for clickhouse-server was taken, retrying with new ones", "port", inUse.port)
	}
	return err
}

func pickPorts(tcp, httpPort int) (int, int, error) {
	// All listeners stay open until both ports are chosen so the kernel
	// cannot hand out the same port twice.
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	pick := func(avoid int) (int, error) {
		for {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return 0, fmt.Errorf("localch: pick a free port: %w", err)
			}
			listeners = append(listeners, l)
			if p := l.Addr().(*net.TCPAddr).Port; p != avoid {
				return p, nil
			}
		}
	}
	var err error
	if tcp == 0 {
		if tcp, err = pick(httpPort); err != nil {
			return 0, 0, err
		}
	}
	if httpPort == 0 {
		if httpPort, err = pick(tcp); err != nil {
			return 0, 0, err
		}
	}
	return tcp, httpPort, nil
}

func (s *Server) startOnce(ctx context.Context) error {
	if err := s.checkStale(); err != nil {
		return err
	}
	token, err := randomToken()
	if err != nil {
		return err
	}
	if err := s.dirs.writeConfig(s.tcpPort, s.httpPort, token); err != nil {
		return err
	}
	// The logs accumulate across runs; only what this run appends is worth
	// showing when it fails.
	errLogOffset := fileSize(s.dirs.errorLog)
	stderrOffset := fileSize(s.dirs.stderrLog)

	stdout, err := openAppend(s.dirs.stdoutLog)
	if err != nil {
		return err
	}
	defer stdout.Close()
	stderr, err := openAppend(s.dirs.stderrLog)
	if err != nil {
		return err
	}
	defer stderr.Close()

	args := append(append([]string(nil), s.binArgs...), "--config-file="+s.dirs.configFile)
	bin := s.bin
	if niceBin, err := exec.LookPath("nice"); err == nil && s.nice > 0 {
		// nice execs the server in place, so it stays our child.
		args = append([]string{"-n", strconv.Itoa(s.nice), bin}, args...)
		bin = niceBin
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.dirs.root
	// Current releases fork a watchdog parent when not attached to a
	// terminal; the server itself would then not be our child, and neither
	// Pdeathsig nor our signals would reach it directly.
	cmd.Env = append(os.Environ(), "CLICKHOUSE_WATCHDOG_ENABLE=0")
	if _, set := os.LookupEnv("MALLOC_CONF"); !set {
		cmd.Env = append(cmd.Env, "MALLOC_CONF="+mallocConf)
	}
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.SysProcAttr = sysProcAttr()

	began := time.Now()
	s.log.Debug("starting clickhouse-server", "binary", s.bin, "config", s.dirs.configFile)
	p, err := startProcess(cmd)
	if err != nil {
		return fmt.Errorf("localch: run %s: %w", s.bin, err)
	}
	if err := s.waitReady(ctx, p, token); err != nil {
		_ = p.kill()
		tail := readTail(s.dirs.errorLog, errLogOffset, tailLines)
		if tail == "" {
			tail = readTail(s.dirs.stderrLog, stderrOffset, tailLines)
		}
		if tail != "" {
			err = fmt.Errorf("%w\nlast lines of the server's error log (%s):\n%s", err, s.dirs.logDir, tail)
		} else {
			err = fmt.Errorf("%w (no error output; see logs in %s)", err, s.dirs.logDir)
		}
		if m := addrInUse.FindStringSubmatch(tail); m != nil {
			port, _ := strconv.Atoi(m[1])
			return &portInUseError{port: port, err: err}
		}
		return err
	}
	s.proc = p
	s.log.Info("clickhouse-server ready",
		"pid", p.pid, "tcp", s.TCPAddr(), "http", s.HTTPAddr(),
		"data_dir", s.dirs.root, "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// waitReady polls both protocols, since HTTP comes up slightly before the
// native port and clients of this package use the native one.
func (s *Server) waitReady(ctx context.Context, p *process, token string) error {
	deadline := time.NewTimer(s.startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	// No proxy from the environment may stand between us and loopback.
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()

	var lastErr error
	for {
		lastErr = s.probe(ctx, client, token)
		if lastErr == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("localch: clickhouse-server exited during startup (%v)", p.err)
		case <-ctx.Done():
			return fmt.Errorf("localch: start clickhouse-server: %w", ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("localch: clickhouse-server did not become ready within %s (tcp %s, http %s): %v",
				s.startTimeout, s.TCPAddr(), s.HTTPAddr(), lastErr)
		case <-tick.C:
		}
	}
}

func (s *Server) probe(ctx context.Context, client *http.Client, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.HTTPAddr()+"/ping", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("http ping: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "Ok." {
		return fmt.Errorf("http ping: %s %q", resp.Status, body)
	}

	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:         []string{s.TCPAddr()},
		Auth:         clickhouse.Auth{Database: "default", Username: "default"},
		DialTimeout:  time.Second,
		MaxOpenConns: 1,
		MaxIdleConns: 1,
	})
	if err != nil {
		return fmt.Errorf("native ping: %w", err)
	}
	defer conn.Close()
	pingCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := conn.Ping(pingCtx); err != nil {
		return fmt.Errorf("native ping: %w", err)
	}
	// The port may have been grabbed by some other ClickHouse between our
	// picking it and the child binding it; the per-start display name tells
	// our server apart. Any other server sends at least its host name, so an
	// empty one only means a protocol that no longer carries it.
	v, err := conn.ServerVersion()
	if err != nil {
		return fmt.Errorf("native ping: %w", err)
	}
	if v.DisplayName != token && v.DisplayName != "" {
		return fmt.Errorf("native ping: %s is answered by another server (display name %q)", s.TCPAddr(), v.DisplayName)
	}
	return nil
}

// acquireLock makes the data directory exclusively ours. ClickHouse's own
// lock on data/status would catch a second server too, but only after it
// started, and with a less helpful message.
func (s *Server) acquireLock() error {
	f, err := os.OpenFile(s.dirs.lockFile, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("localch: open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := io.ReadAll(io.LimitReader(f, 32))
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("%w: %s is used by another process (pid %s) running a local ClickHouse; stop it first",
				ErrDataDirInUse, s.dirs.root, orUnknown(strings.TrimSpace(string(holder))))
		}
		return fmt.Errorf("localch: lock %s: %w", s.dirs.lockFile, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	s.lock = f
	return nil
}

func (s *Server) releaseLock() {
	if s.lock == nil {
		return
	}
	// Closing drops the flock; the file stays so that its pid is not
	// misread by a concurrent acquirer between unlink and create.
	_ = s.lock.Close()
	s.lock = nil
}

// checkStale refuses to start when a clickhouse-server not managed by us
// (typically one that outlived its parent on a system without Pdeathsig, or
// one started by hand) still runs on the data directory.
//
// A server whose parent was just killed is still tearing down for a moment,
// and a multi-threaded process keeps its files, and so its lock, until its
// last thread is gone, so the lock gets a few seconds to be released.
func (s *Server) checkStale() error {
	deadline := time.Now().Add(staleWait)
	for {
		pid, held, err := s.statusLockHolder()
		if err != nil || !held {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: a clickhouse-server from an earlier run (pid %s) is still running on %s; stop it (kill %s) and try again",
				ErrDataDirInUse, orUnknown(pid), s.dirs.root, orUnknown(pid))
		}
		time.Sleep(pollInterval)
	}
}

func (s *Server) statusLockHolder() (pid string, held bool, err error) {
	f, err := os.Open(s.dirs.statusFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("localch: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return statusPID(f), true, nil
		}
		return "", false, fmt.Errorf("localch: lock %s: %w", s.dirs.statusFile, err)
	}
	return "", false, syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}

// statusPID extracts the "PID: 1234" line ClickHouse writes to data/status.
func statusPID(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 4096))
	for line := range strings.Lines(string(b)) {
		if pid, ok := strings.CutPrefix(line, "PID:"); ok {
			return strings.TrimSpace(pid)
		}
	}
	return ""
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func findBinary(name string) (string, []string, error) {
	if name != "" {
		path, err := exec.LookPath(name)
		if err != nil {
			return "", nil, notInstalled(strconv.Quote(name))
		}
		return path, binaryArgs(path), nil
	}
	if path, err := exec.LookPath("clickhouse-server"); err == nil {
		return path, nil, nil
	}
	// /usr/sbin, where Debian puts it, is often missing from a non-root PATH.
	for _, dir := range []string{"/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"} {
		if path, err := exec.LookPath(filepath.Join(dir, "clickhouse-server")); err == nil {
			return path, nil, nil
		}
	}
	if path, err := exec.LookPath("clickhouse"); err == nil {
		return path, binaryArgs(path), nil
	}
	return "", nil, notInstalled("clickhouse-server in PATH, /usr/bin, /usr/sbin, /usr/local/bin, /usr/local/sbin, and clickhouse in PATH")
}

// binaryArgs selects the server mode of the single "clickhouse" binary that
// current releases ship; clickhouse-server (often a symlink to it) picks the
// mode from its own name.
func binaryArgs(path string) []string {
	if filepath.Base(path) == "clickhouse" {
		return []string{"server"}
	}
	return nil
}

func notInstalled(lookedFor string) error {
	return fmt.Errorf("%w (looked for %s); install it with `%s` (or run `make run`, which does it)",
		ErrNotInstalled, lookedFor, InstallCommand)
}

func randomToken() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("localch: %w", err)
	}
	return "localch-" + hex.EncodeToString(b), nil
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("localch: %w", err)
	}
	return f, nil
}

// readTail returns the last n lines written to path after offset.
func readTail(path string, offset int64, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	if fi.Size() < offset {
		// Rotated since the offset was taken: all of it is new.
		offset = 0
	}
	const maxRead = 64 << 10
	if fi.Size()-offset > maxRead {
		offset = fi.Size() - maxRead
	}
	b := make([]byte, fi.Size()-offset)
	if _, err := f.ReadAt(b, offset); err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// process is a started clickhouse-server child.
type process struct {
	pid  int
	done chan struct{} // closed once the child has exited and been reaped
	err  error         // exit status; valid after done is closed
}

// startProcess starts cmd from a goroutine locked to its OS thread for the
// child's whole life: Pdeathsig fires when the creating thread exits, and an
// unlocked thread can be retired by the Go runtime at any time.
func startProcess(cmd *exec.Cmd) (*process, error) {
	p := &process{done: make(chan struct{})}
	started := make(chan error, 1)
	go p.wait(cmd, started)
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

func (p *process) wait(cmd *exec.Cmd, started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		started <- err
		return
	}
	p.pid = cmd.Process.Pid
	started <- nil
	p.err = cmd.Wait()
	close(p.done)
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal signals the child's whole process group, so helpers the server may
// spawn (odbc/library bridges in current releases) go with it.
func (p *process) signal(sig syscall.Signal) error {
	if p.exited() {
		return nil
	}
	if err := syscall.Kill(-p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("localch: signal clickhouse-server (pid %d): %w", p.pid, err)
	}
	return nil
}

func (p *process) kill() error {
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(killWait):
		return fmt.Errorf("localch: clickhouse-server (pid %d) still running %s after SIGKILL", p.pid, killWait)
	}
}
