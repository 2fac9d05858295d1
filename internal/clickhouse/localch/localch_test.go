package localch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// startServer starts a server for one test and stops it in t.Cleanup.
func startServer(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	began := time.Now()
	srv, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("clickhouse-server started in %s (tcp %s, http %s)", time.Since(began).Round(time.Millisecond), srv.TCPAddr(), srv.HTTPAddr())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return srv
}

func connect(t *testing.T, dsn string) driver.Conn {
	t.Helper()
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("ParseDSN(%q): %v", dsn, err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.Ping(ctx); err != nil {
		t.Fatalf("Ping %s: %v", dsn, err)
	}
	return conn
}

func createAndFill(t *testing.T, conn driver.Conn, rows int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Exec(ctx, "CREATE TABLE t (a UInt64) ENGINE = MergeTree ORDER BY a"); err != nil {
		t.Fatalf("CREATE TABLE: %v", err)
	}
	// Batches, not INSERT ... VALUES through Exec, which hangs on 18.16.
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO t (a)")
	if err != nil {
		t.Fatalf("PrepareBatch: %v", err)
	}
	for i := range rows {
		if err := batch.Append(uint64(i)); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatalf("Send: %v", err)
	}
}

func count(t *testing.T, conn driver.Conn) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM t").Scan(&n); err != nil {
		t.Fatalf("SELECT count(): %v", err)
	}
	return n
}

func httpPingOK(addr string) bool {
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + addr + "/ping")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func processAlive(pid int) bool {
	// A zombie still accepts signal 0, so look at its state as well.
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(fields) == 0 || fields[0] != "Z"
}

func TestStartInsertRestartStop(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := startServer(t, Options{DataDir: dir})

	if !strings.HasPrefix(srv.DSN("default"), "clickhouse://127.0.0.1:") {
		t.Fatalf("DSN = %q", srv.DSN("default"))
	}
	conn := connect(t, srv.DSN("default"))
	createAndFill(t, conn, 1000)
	if n := count(t, conn); n != 1000 {
		t.Fatalf("count = %d, want 1000", n)
	}
	// The server runs with the jemalloc tuning, unless the environment
	// has its own.
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", srv.proc.pid))
	if err != nil {
		t.Fatal(err)
	}
	want := "MALLOC_CONF=" + mallocConf
	if v, set := os.LookupEnv("MALLOC_CONF"); set {
		want = "MALLOC_CONF=" + v
	}
	if !slices.Contains(strings.Split(string(environ), "\x00"), want) {
		t.Errorf("clickhouse-server's environment lacks %s", want)
	}
	for _, f := range []string{"config/config.xml", "config/users.xml", "log/clickhouse-server.log", "data/status"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("expected %s under the data dir: %v", f, err)
		}
	}

	tcp, httpAddr, dsn := srv.TCPAddr(), srv.HTTPAddr(), srv.DSN("default")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	began := time.Now()
	if err := srv.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	t.Logf("Restart (stop + start) took %s", time.Since(began).Round(time.Millisecond))
	if srv.TCPAddr() != tcp || srv.HTTPAddr() != httpAddr || srv.DSN("default") != dsn {
		t.Fatalf("addresses changed on restart: %s %s -> %s %s", tcp, httpAddr, srv.TCPAddr(), srv.HTTPAddr())
	}
	if n := count(t, connect(t, srv.DSN("default"))); n != 1000 {
		t.Fatalf("after restart: count = %d, want 1000", n)
	}

	began = time.Now()
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("Stop took %s", time.Since(began).Round(time.Millisecond))
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatalf("Kill after Stop: %v", err)
	}
	if httpPingOK(httpAddr) {
		t.Fatalf("server still answers on %s after Stop", httpAddr)
	}

	// A new Server on the same directory finds the data of the earlier one,
	// as `arubug dev` does across runs.
	srv2 := startServer(t, Options{DataDir: dir})
	if n := count(t, connect(t, srv2.DSN("default"))); n != 1000 {
		t.Fatalf("second run: count = %d, want 1000", n)
	}
}

func TestKillThenRestart(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Options{})
	createAndFill(t, connect(t, srv.DSN("default")), 500)

	pid := statusFilePID(t, srv)
	if err := srv.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if processAlive(pid) {
		t.Fatalf("clickhouse-server pid %d alive after Kill", pid)
	}
	if httpPingOK(srv.HTTPAddr()) {
		t.Fatal("server still answers after Kill")
	}
	if err := srv.Kill(); err != nil {
		t.Fatalf("second Kill: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	began := time.Now()
	if err := srv.Restart(ctx); err != nil {
		t.Fatalf("Restart after Kill: %v", err)
	}
	t.Logf("Restart after Kill took %s", time.Since(began).Round(time.Millisecond))
	if n := count(t, connect(t, srv.DSN("default"))); n != 500 {
		t.Fatalf("after kill and restart: count = %d, want 500", n)
	}
}

func TestMissingBinary(t *testing.T) {
	t.Parallel()
	for _, bin := range []string{"/nonexistent/clickhouse-server", "clickhouse-server-not-installed"} {
		dir := t.TempDir()
		_, err := Start(context.Background(), Options{Binary: bin, DataDir: dir})
		if !errors.Is(err, ErrNotInstalled) {
			t.Fatalf("Start(Binary: %q) error = %v, want ErrNotInstalled", bin, err)
		}
		if !strings.Contains(err.Error(), "apt-get update && apt-get install -y clickhouse-server clickhouse-client") {
			t.Fatalf("error lacks the install command: %v", err)
		}
		t.Logf("error: %v", err)
	}
}

func TestDataDirRequired(t *testing.T) {
	t.Parallel()
	if _, err := Start(context.Background(), Options{}); err == nil {
		t.Fatal("Start without DataDir succeeded")
	}
}

func TestTwoServers(t *testing.T) {
	t.Parallel()
	type result struct {
		srv *Server
		err error
	}
	results := make(chan result, 2)
	for range 2 {
		dir := t.TempDir()
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			srv, err := Start(ctx, Options{DataDir: dir})
			results <- result{srv, err}
		}()
	}
	var servers []*Server
	for range 2 {
		r := <-results
		if r.err != nil {
			t.Errorf("Start: %v", r.err)
			continue
		}
		servers = append(servers, r.srv)
		t.Cleanup(func() { _ = r.srv.Stop(context.Background()) })
	}
	if t.Failed() {
		t.FailNow()
	}
	a, b := servers[0], servers[1]
	ports := map[string]bool{}
	for _, addr := range []string{a.TCPAddr(), a.HTTPAddr(), b.TCPAddr(), b.HTTPAddr()} {
		if ports[addr] {
			t.Fatalf("address %s used twice: %s %s / %s %s", addr, a.TCPAddr(), a.HTTPAddr(), b.TCPAddr(), b.HTTPAddr())
		}
		ports[addr] = true
	}
	connect(t, a.DSN("default"))
	connect(t, b.DSN("default"))
}

func TestDataDirInUse(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Options{})
	_, err := Start(context.Background(), Options{DataDir: srv.DataDir()})
	if !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("second Start on the same dir: error = %v, want ErrDataDirInUse", err)
	}
	t.Logf("error: %v", err)
	// The failed attempt must not have disturbed the running server.
	connect(t, srv.DSN("default"))
}

// TestStaleServer covers a clickhouse-server that runs on the data directory
// without a localch parent, e.g. one that outlived a crashed parent on a
// system without Pdeathsig.
func TestStaleServer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dirs := newLayout(dir)
	if err := dirs.mkdirs(); err != nil {
		t.Fatal(err)
	}
	tcp, httpPort, err := pickPorts(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := dirs.writeConfig(tcp, httpPort, "stale"); err != nil {
		t.Fatal(err)
	}
	bin, args, err := findBinary("")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append(args, "--config-file="+dirs.configFile)...)
	cmd.Env = append(os.Environ(), "CLICKHOUSE_WATCHDOG_ENABLE=0")
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort))
	for deadline := time.Now().Add(60 * time.Second); !httpPingOK(addr); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("hand-started clickhouse-server did not come up")
		}
	}

	_, err = Start(context.Background(), Options{DataDir: dir})
	if !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("Start over a running server: error = %v, want ErrDataDirInUse", err)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(cmd.Process.Pid)) {
		t.Fatalf("error does not name pid %d: %v", cmd.Process.Pid, err)
	}
	t.Logf("error: %v", err)
	if !httpPingOK(addr) {
		t.Fatal("the refused Start disturbed the running server")
	}
}

func TestExplicitPortTakenShowsErrorLog(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port

	dir := t.TempDir()
	began := time.Now()
	_, err = Start(context.Background(), Options{DataDir: dir, TCPPort: taken})
	if err == nil {
		t.Fatal("Start on a taken port succeeded")
	}
	t.Logf("failed after %s with: %v", time.Since(began).Round(time.Millisecond), err)
	if !strings.Contains(err.Error(), "Address already in use") {
		t.Fatalf("error does not carry the server's error log: %v", err)
	}
	var inUse *portInUseError
	if !errors.As(err, &inUse) || inUse.port != taken {
		t.Fatalf("error not marked as a conflict on port %d: %v", taken, err)
	}
	// An explicitly requested port is not retried, unlike a picked one.
	if n := strings.Count(readTail(filepath.Join(dir, "log", "clickhouse-server.err.log"), 0, 100), "Address already in use"); n != 1 {
		t.Fatalf("server started %d times, want 1", n)
	}
}

func TestPickedPortTakenIsRetried(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	calls := 0
	srv := startServer(t, Options{pickPorts: func(tcp, httpPort int) (int, int, error) {
		calls++
		tcp, httpPort, err := pickPorts(tcp, httpPort)
		if calls == 1 {
			// Someone else got the picked port before the server bound it.
			tcp = taken
		}
		return tcp, httpPort, err
	}})
	if calls != 2 {
		t.Fatalf("ports picked %d times, want 2", calls)
	}
	if srv.TCPAddr() == l.Addr().String() {
		t.Fatalf("server claims the taken port %s", srv.TCPAddr())
	}
	connect(t, srv.DSN("default"))
}

func TestPickPortsDistinct(t *testing.T) {
	t.Parallel()
	for range 20 {
		tcp, httpPort, err := pickPorts(0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if tcp == httpPort || tcp == 0 || httpPort == 0 {
			t.Fatalf("pickPorts = %d, %d", tcp, httpPort)
		}
	}
	tcp, httpPort, err := pickPorts(12345, 0)
	if err != nil || tcp != 12345 || httpPort == 0 || httpPort == 12345 {
		t.Fatalf("pickPorts(12345, 0) = %d, %d, %v", tcp, httpPort, err)
	}
}

func TestReadTail(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "log")
	old := "old 1\nold 2\n"
	var b strings.Builder
	b.WriteString(old)
	for i := range 30 {
		fmt.Fprintf(&b, "new %d\n", i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	got := readTail(path, int64(len(old)), 3)
	if got != "new 27\nnew 28\nnew 29" {
		t.Fatalf("readTail = %q", got)
	}
	if got := readTail(path, int64(b.Len()), 3); got != "" {
		t.Fatalf("readTail past the end = %q", got)
	}
	if got := readTail(path, int64(b.Len())+100, 1); got != "new 29" {
		t.Fatalf("readTail after rotation = %q", got)
	}
}

func statusFilePID(t *testing.T, srv *Server) int {
	t.Helper()
	f, err := os.Open(filepath.Join(srv.DataDir(), "data", "status"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pid, err := strconv.Atoi(statusPID(f))
	if err != nil {
		t.Fatalf("status file: %v", err)
	}
	return pid
}

const helperEnv = "LOCALCH_TEST_HELPER_DATA_DIR"

// TestHelperParent is not a test: TestParentDeathKillsServer runs the test
// binary with it as a parent process that starts a server and is then
// killed with SIGKILL.
func TestHelperParent(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper process for TestParentDeathKillsServer")
	}
	srv, err := Start(context.Background(), Options{DataDir: dir})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ready", srv.DSN("default"))
	// A goroutine that exits while locked to its thread makes the runtime
	// terminate that thread. Pdeathsig must not fire on such thread churn,
	// only when the whole parent dies.
	for {
		done := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(done)
		}()
		<-done
		time.Sleep(10 * time.Millisecond)
	}
}

func TestParentDeathKillsServer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperParent$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := bufio.NewScanner(out)
	var dsn string
	for lines.Scan() {
		line := lines.Text()
		if rest, ok := strings.CutPrefix(line, "ready "); ok {
			dsn = rest
			break
		}
		if strings.HasPrefix(line, "error:") {
			t.Fatalf("helper: %s", line)
		}
	}
	if dsn == "" {
		t.Fatalf("helper exited without starting a server: %v", lines.Err())
	}
	go func() {
		for lines.Scan() {
		}
	}()
	connect(t, dsn)
	f, err := os.Open(filepath.Join(dir, "data", "status"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(statusPID(f))
	_ = f.Close()
	if err != nil {
		t.Fatal(err)
	}

	// Let the helper run a while so that thread churn would have had a
	// chance to fire Pdeathsig early.
	time.Sleep(time.Second)
	if !processAlive(pid) {
		t.Fatalf("clickhouse-server pid %d died while its parent was alive", pid)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("clickhouse-server pid %d outlived its SIGKILLed parent", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The crash left the data directory reusable.
	srv := startServer(t, Options{DataDir: dir})
	connect(t, srv.DSN("default"))
}
