package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/arubug/arubug/internal/clickhouse"
	"github.com/arubug/arubug/internal/clickhouse/localch/localchtest"
)

func TestMain(m *testing.M) { localchtest.Main(m) }

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the arubug command once per test run: the end-to-end tests
// run the real binary so that signals, crashes and restarts are real.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "arubug-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "arubug")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// instance is one running arubug process.
type instance struct {
	t       *testing.T
	cmd     *exec.Cmd
	addr    string
	dataDir string
	env     []string
	logPath string
	exited  chan struct{}
	waitErr error
}

const (
	testToken      = "phc_e2e"
	testAdminToken = "test-admin-token-0123456789"
)

// startArubug runs `arubug serve` against dsn with env overrides, waits
// until it answers, and kills it when the test ends.
func startArubug(t *testing.T, dsn string, env ...string) *instance {
	t.Helper()
	in := &instance{t: t, addr: freeAddr(t), dataDir: t.TempDir()}
	in.env = append([]string{
		"ARUBUG_ADDR=" + in.addr,
		"ARUBUG_DATA_DIR=" + in.dataDir,
		"ARUBUG_CLICKHOUSE_DSN=" + dsn,
		"ARUBUG_PROJECT_TOKENS=" + testToken,
		"ARUBUG_LOG_FORMAT=json",
		"ARUBUG_FLUSH_INTERVAL=200ms",
		"ARUBUG_RULES_FILE=../../routing-rules/rules.yaml",
		"ARUBUG_ADMIN_TOKEN=" + testAdminToken,
	}, env...)
	in.start()
	t.Cleanup(func() {
		in.kill()
		if t.Failed() {
			in.dumpLog()
		}
	})
	return in
}

func (in *instance) start() {
	in.t.Helper()
	in.logPath = filepath.Join(in.dataDir, fmt.Sprintf("arubug-%d.log", time.Now().UnixNano()))
	logf, err := os.Create(in.logPath)
	if err != nil {
		in.t.Fatal(err)
	}
	in.cmd = exec.Command(binary(in.t), "serve")
	in.cmd.Env = append(os.Environ(), in.env...)
	in.cmd.Stdout, in.cmd.Stderr = logf, logf
	if err := in.cmd.Start(); err != nil {
		in.t.Fatal(err)
	}
	in.exited = make(chan struct{})
	go func() {
		in.waitErr = in.cmd.Wait()
		logf.Close()
		close(in.exited)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-in.exited:
			in.dumpLog()
			in.t.Fatalf("arubug exited during start: %v", in.waitErr)
		default:
		}
		resp, err := http.Get("http://" + in.addr + "/_health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	in.dumpLog()
	in.t.Fatal("arubug did not answer /_health within 60s")
}

func (in *instance) url(path string) string { return "http://" + in.addr + path }

// kill sends SIGKILL: no shutdown code runs, as in a crash.
func (in *instance) kill() {
	if in.cmd == nil || in.cmd.Process == nil {
		return
	}
	select {
	case <-in.exited:
		return
	default:
	}
	_ = in.cmd.Process.Signal(syscall.SIGKILL)
	<-in.exited
}

// terminate sends SIGTERM and waits for a clean exit.
func (in *instance) terminate(timeout time.Duration) error {
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.exited:
		return in.waitErr
	case <-time.After(timeout):
		in.kill()
		return fmt.Errorf("arubug did not exit within %s of SIGTERM", timeout)
	}
}

func (in *instance) log() string {
	b, _ := os.ReadFile(in.logPath)
	return string(b)
}

func (in *instance) dumpLog() {
	lines := strings.Split(in.log(), "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	in.t.Logf("arubug log (%s), last lines:\n%s", in.logPath, strings.Join(lines, "\n"))
}

func openDB(t *testing.T, dsn string) *clickhouse.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := clickhouse.Open(ctx, clickhouse.Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s (last: %s)", timeout, what, last)
}

// uuidCounts returns, for the events whose distinct_id starts with prefix,
// how many rows each uuid has after OPTIMIZE … FINAL.
func uuidCounts(t *testing.T, db *clickhouse.DB, prefix string, optimize bool) map[string]uint64 {
	t.Helper()
	ctx := context.Background()
	if optimize {
		if err := db.Conn().Exec(ctx, "OPTIMIZE TABLE events FINAL"); err != nil {
			t.Fatalf("optimize: %v", err)
		}
	}
	// OPTIMIZE … FINAL is a no-op on 18.16 when a background merge holds
	// the parts (optimize_throw_if_noop is off), so the merged view is read
	// with FINAL as well: it is what "after merges" means.
	return uuidRows(t, db, prefix, optimize)
}

// uuidRows returns how many rows each uuid of the events whose distinct_id
// starts with prefix has, as merged (FINAL) or as stored.
func uuidRows(t *testing.T, db *clickhouse.DB, prefix string, final bool) map[string]uint64 {
	t.Helper()
	from := "events"
	if final {
		from = "events FINAL"
	}
	rows, err := db.Conn().Query(context.Background(), "SELECT toString(uuid), count() FROM "+from+" WHERE startsWith(distinct_id, ?) GROUP BY uuid", prefix)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var id string
		var n uint64
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		out[id] = n
	}
	return out
}

func post(t *testing.T, url, contentType string, body io.Reader) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Post(url, contentType, body)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// logHas reports whether the JSON log has a line with msg.
func logHas(log, msg string) bool {
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"msg":"`+msg+`"`) {
			return true
		}
	}
	return false
}
