package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arubug/arubug/internal/loadgen"
)

// syncBuffer is a bytes.Buffer safe to read while run writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb syncBuffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	code, out, _ := runCLI(t, "-h")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var o options
	newFlagSet(&o).VisitAll(func(f *flag.Flag) {
		if !strings.Contains(out, "  -"+f.Name) {
			t.Errorf("-h lacks -%s", f.Name)
		}
	})
	for _, want := range []string{"Examples:", "-noop-server 127.0.0.1:18080", "Exit status"} {
		if !strings.Contains(out, want) {
			t.Errorf("-h lacks %q", want)
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-nope"}, {"extra"}, {"-mode", "x", "-n", "1"}, {"-url", "ftp://x", "-n", "1"}} {
		if code, _, errs := runCLI(t, args...); code != exitUsage || errs == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
}

func TestJSONAndUUIDsOut(t *testing.T) {
	srv := httptest.NewServer(loadgen.NoopHandler())
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "acked.txt")
	code, out, errs := runCLI(t, "-url", srv.URL, "-n", "60", "-c", "4", "-batch", "5", "-gzip",
		"-json", "-run-id", "cli-json", "-uuids-out", file, "-progress", "20ms")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep struct {
		RunID  string             `json:"run_id"`
		Result loadgen.Result     `json:"result"`
		Lat    map[string]float64 `json:"latency_ms"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if rep.RunID != "cli-json" || rep.Result.OK != 60 || rep.Result.AckedEvents != 300 || rep.Lat["p99"] <= 0 || rep.Result.AckedUUIDs != nil {
		t.Fatalf("%s", out)
	}
	if !strings.Contains(errs, "reqs 60") {
		t.Errorf("no final progress line on stderr: %q", errs)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(b))
	seen := map[string]bool{}
	for _, l := range lines {
		seen[l] = true
	}
	if len(lines) != 300 || len(seen) != 300 {
		t.Fatalf("%d uuids, %d unique", len(lines), len(seen))
	}
}

func TestSummaryAndFailOnError(t *testing.T) {
	var n int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		n++
		fail := n%2 == 0
		mu.Unlock()
		if fail {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "spool full", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, `{"status":1}`)
	}))
	defer srv.Close()

	code, out, _ := runCLI(t, "-url", srv.URL, "-n", "20", "-c", "2", "-quiet")
	if code != 0 {
		t.Fatalf("without -fail-on-error: exit %d", code)
	}
	for _, re := range []string{`requests\s+20 .* ok 10\s+errors 10`, `error\s+http_503\s+10\s+e\.g\. 503 spool full`, `latency\s+p50 \S+`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("summary lacks %s:\n%s", re, out)
		}
	}
	if code, _, _ := runCLI(t, "-url", srv.URL, "-n", "20", "-c", "2", "-quiet", "-fail-on-error"); code != exitFailed {
		t.Fatalf("with -fail-on-error: exit %d", code)
	}
}

func TestNoopServerMode(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errb syncBuffer
	done := make(chan int)
	go func() { done <- run(ctx, []string{"-noop-server", "127.0.0.1:0"}, io.Discard, &errb) }()
	re := regexp.MustCompile(`listening on (\S+)`)
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(errb.String()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatalf("no listening line: %q", errb.String())
	}
	code, out, errs := runCLI(t, "-url", "http://"+addr, "-d", "200ms", "-c", "4", "-quiet", "-fail-on-error")
	if code != 0 || !strings.Contains(out, "errors 0") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("noop server exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("noop server did not stop")
	}
}
