package check

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// repo is the repository root.
var repo = func() string {
	p, err := filepath.Abs("../..")
	if err != nil {
		panic(err)
	}
	return p
}()

// arubugBin is the binary built the way deploy/docker/Dockerfile builds it: from the build
// context that .dockerignore leaves, with CGO_ENABLED=0 and -trimpath.
var arubugBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "arubug-deploy-check-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Readable by the image's non-root user, whom the run tests start it as.
	_ = os.Chmod(dir, 0o755)
	code := func() int {
		defer os.RemoveAll(dir)
		bin, err := buildFromDockerContext(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "building arubug from the Docker build context:", err)
			return 1
		}
		arubugBin = bin
		return m.Run()
	}()
	os.Exit(code)
}

// dockerContext lists the files (relative, slash-separated) that `docker build` sends with
// the repository root as context, applying .dockerignore as Docker does.
func dockerContext() ([]string, error) {
	f, err := os.Open(filepath.Join(repo, ".dockerignore"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, err
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, err
	}
	var files []string
	err = filepath.WalkDir(repo, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repo, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			if d.Name() == "node_modules" {
				// Too large to walk file by file: it must be excluded as a whole.
				if excluded, err := pm.MatchesOrParentMatches(rel); err != nil || !excluded {
					return fmt.Errorf(".dockerignore sends %s to the Docker daemon", rel)
				}
				return filepath.SkipDir
			}
			return nil
		}
		excluded, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			return err
		}
		if !excluded {
			files = append(files, rel)
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

func buildFromDockerContext(dir string) (string, error) {
	files, err := dockerContext()
	if err != nil {
		return "", err
	}
	src := filepath.Join(dir, "context")
	for _, rel := range files {
		b, err := os.ReadFile(filepath.Join(repo, rel))
		if err != nil {
			return "", err
		}
		dst := filepath.Join(src, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return "", err
		}
	}
	bin := filepath.Join(dir, "arubug")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=deploy-check", "-o", bin, "./cmd/arubug")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=-mod=readonly -buildvcs=false", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v\n%s", err, out)
	}
	return bin, nil
}

func TestDockerBuildIsStatic(t *testing.T) {
	f, err := elf.Open(arubugBin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the image's binary is dynamically linked; distroless/static has no libc")
		}
	}
	if imports, _ := f.ImportedLibraries(); len(imports) > 0 {
		t.Fatalf("the image's binary needs %v", imports)
	}
}

// settings returns the ARUBUG_* variables `arubug serve` knows, from its --help table.
var settings = sync.OnceValues(func() (map[string]bool, error) {
	out, _ := exec.Command(arubugBin, "serve", "--help").CombinedOutput()
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`\s(ARUBUG_[A-Z0-9_]+)\s`).FindAllStringSubmatch(string(out), -1) {
		names[m[1]] = true
	}
	if len(names) < 20 {
		return nil, fmt.Errorf("arubug serve --help listed %d variables:\n%s", len(names), out)
	}
	return names, nil
})

var secretFileVars sync.Map // name → bool

// isSecretFileVar reports whether arubug reads NAME_FILE for the setting NAME: it does so
// only for secrets, and then fails on a missing file, naming the variable.
func isSecretFileVar(t *testing.T, name string) bool {
	t.Helper()
	if v, ok := secretFileVars.Load(name); ok {
		return v.(bool)
	}
	cmd := exec.Command(arubugBin, "serve")
	cmd.Env = []string{name + "=/nonexistent/deploy-check", "PATH=/usr/bin:/bin"}
	out, _ := cmd.CombinedOutput()
	ok := strings.Contains(string(out), name+":")
	secretFileVars.Store(name, ok)
	return ok
}

// checkEnvNames fails for an ARUBUG_* name the binary would silently ignore.
func checkEnvNames(t *testing.T, where string, env map[string]string) {
	t.Helper()
	known, err := settings()
	if err != nil {
		t.Fatal(err)
	}
	for name := range env {
		if !strings.HasPrefix(name, "ARUBUG_") {
			continue
		}
		if base, ok := strings.CutSuffix(name, "_FILE"); ok && known[base] {
			if !isSecretFileVar(t, name) {
				t.Errorf("%s: %s is not read by arubug (only secrets have a _FILE form)", where, name)
			}
			continue
		}
		if !known[name] {
			t.Errorf("%s: %s is not a setting of arubug serve (see arubug serve --help)", where, name)
		}
	}
}

// fakeRoot is an empty directory standing for the container's /, traversable by any user.
func fakeRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "arubug-root-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeFile writes a file under root at an absolute container path; parents are 0755.
func writeFile(t *testing.T, root, path string, data []byte, mode os.FileMode) {
	t.Helper()
	full := filepath.Join(root, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, data, mode); err != nil {
		t.Fatal(err)
	}
}

// mkdirOwned creates a directory under root owned by uid:gid (when the test runs as root),
// as an image layer or a volume with fsGroup would give it.
func mkdirOwned(t *testing.T, root, path string, uid, gid int) {
	t.Helper()
	full := filepath.Join(root, filepath.FromSlash(path))
	if err := os.MkdirAll(full, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 && uid >= 0 {
		if err := os.Chown(full, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// run describes one start of the binary inside a fake root directory: every absolute path
// the deployment uses is taken relative to root.
type run struct {
	root    string
	args    []string
	env     map[string]string
	workdir string // absolute in the container
	uid     int    // -1: as the test
	gid     int
}

// process is a running arubug.
type process struct {
	cmd  *exec.Cmd
	base string
	out  *bytes.Buffer
	done chan error
}

// containerPath maps an absolute container path into the fake root.
func (r run) containerPath(p string) string { return filepath.Join(r.root, filepath.FromSlash(p)) }

// start runs arubug with r's arguments and environment, path-valued variables mapped into
// the root, and ARUBUG_ADDR moved to a free loopback port (the one change: the machine's
// :8000 may be taken). It waits for /_health.
func (r run) start(t *testing.T) *process {
	t.Helper()
	addr := r.env["ARUBUG_ADDR"]
	if addr == "" {
		addr = ":8000"
	}
	port := freePort(t)
	var env []string
	for k, v := range r.env {
		switch {
		case k == "ARUBUG_ADDR":
			v = "127.0.0.1:" + port
		case strings.HasPrefix(v, "/"):
			v = r.containerPath(v)
		}
		env = append(env, k+"="+v)
	}
	env = append(env, "PATH=/nonexistent") // distroless: no PATH to find a clickhouse-server in
	cmd := exec.Command(arubugBin, r.args...)
	cmd.Env = env
	cmd.Dir = r.containerPath(r.workdir)
	if r.uid >= 0 && os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.gid)}}
	}
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, base: "http://127.0.0.1:" + port, out: out, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("arubug %v output:\n%s", r.args, out)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _ := p.get(t, "/_health", ""); code == 200 {
			return p
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("arubug exited at start: %v\n%s", err, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("/_health did not answer 200 within 20 s\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *process) get(t *testing.T, path, bearer string) (int, string) {
	t.Helper()
	return p.do(t, http.MethodGet, path, bearer, "")
}

func (p *process) do(t *testing.T, method, path, bearer, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, p.base+path, strings.NewReader(body))
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric returns the value of the first /metrics line that starts with series.
func (p *process) metric(t *testing.T, series string) (float64, bool) {
	t.Helper()
	_, body := p.get(t, "/metrics", "")
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// stop sends SIGTERM and expects a clean exit within limit.
func (p *process) stop(t *testing.T, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("arubug exited with %v after SIGTERM", err)
		}
	case <-time.After(limit):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("arubug did not stop within %s of SIGTERM", limit)
	}
	return time.Since(start)
}

// exerciseCollector checks what every deployment must give: the collector answers, is not
// ready without ClickHouse (none runs in these tests), still acknowledges an event into its
// spool under dataDir, and exports the metrics the alert rules use.
func exerciseCollector(t *testing.T, p *process, r run, dataDir, token string) {
	t.Helper()
	code, body := p.get(t, "/_ready", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "clickhouse") {
		t.Errorf("/_ready without ClickHouse: %d %s", code, body)
	}
	code, body = p.do(t, http.MethodPost, "/e/", "", `{"api_key":"`+token+`","event":"deploy-check","distinct_id":"me"}`)
	if code != http.StatusOK {
		t.Fatalf("POST /e/: %d %s", code, body)
	}
	if _, err := os.Stat(filepath.Join(r.containerPath(dataDir), "spool", "events", "HEAD")); err != nil {
		t.Errorf("the spool is not in the data volume %s: %v", dataDir, err)
	}
	if v, ok := p.metric(t, "arubug_spool_events"); !ok || v != 1 {
		t.Errorf("arubug_spool_events = %v (%v), want 1", v, ok)
	}
}
