// Package localchtest gives tests a ClickHouse server: a managed local
// clickhouse-server shared by a package's tests, private servers for tests
// that stop or kill theirs, and fresh databases for isolation.
//
// A package using DSN or Server runs its tests through Main:
//
//	func TestMain(m *testing.M) { localchtest.Main(m) }
//
// Tests that need ClickHouse fail, never skip, when it is not installed; the
// failure says how to install it.
package localchtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/arubug/arubug/internal/clickhouse/localch"
	"github.com/arubug/arubug/internal/clickhouse/localch/localcluster"
)

// EnvDSN names the environment variable that points DSN at an existing
// ClickHouse server instead of the managed one, e.g.
// ARUBUG_TEST_CLICKHOUSE_DSN=clickhouse://127.0.0.1:9000/default.
const EnvDSN = "ARUBUG_TEST_CLICKHOUSE_DSN"

const (
	startTimeout = 90 * time.Second
	stopTimeout  = 30 * time.Second
	ddlTimeout   = 30 * time.Second
)

var shared struct {
	mu      sync.Mutex
	inMain  bool
	started bool // a start was attempted; err holds its failure
	srv     *localch.Server
	dir     string
	err     error
}

// Main runs the package's tests (m.Run) with one shared server, started
// lazily by the first DSN or Server call, then stops the server, removes its
// data and exits with the tests' status. Call it from TestMain.
func Main(m *testing.M) {
	shared.mu.Lock()
	shared.inMain = true
	shared.mu.Unlock()

	code := m.Run()

	if err := stopShared(); err != nil {
		fmt.Fprintf(os.Stderr, "localchtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func stopShared() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.inMain = false
	if shared.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		if err := shared.srv.Stop(ctx); err != nil {
			return fmt.Errorf("stop shared clickhouse-server: %w", err)
		}
		shared.srv = nil
	}
	if shared.dir != "" {
		if err := os.RemoveAll(shared.dir); err != nil {
			return fmt.Errorf("remove shared clickhouse data: %w", err)
		}
		shared.dir = ""
	}
	return nil
}

// Server returns the package's shared managed server, starting it on first
// use. Tests must not stop, kill or restart it; use NewServer for that.
//
// The managed server is used even when ARUBUG_TEST_CLICKHOUSE_DSN is set:
// a caller of Server needs a process it can address, which an external DSN
// cannot give, so such a test needs clickhouse-server installed locally.
func Server(t testing.TB) *localch.Server {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.inMain {
		t.Fatal("localchtest: the shared ClickHouse server needs localchtest.Main: add\n\tfunc TestMain(m *testing.M) { localchtest.Main(m) }\nto this package's tests")
	}
	if !shared.started {
		shared.started = true
		shared.srv, shared.dir, shared.err = startShared()
	}
	if shared.err != nil {
		hint := ""
		if os.Getenv(EnvDSN) != "" {
			hint = " (" + EnvDSN + " is set, but this test controls a local server and cannot use it)"
		}
		t.Fatalf("localchtest: shared ClickHouse server%s: %v", hint, shared.err)
	}
	return shared.srv
}

// startShared runs outside any one test's lifetime, hence its own temporary
// directory instead of t.TempDir.
func startShared() (*localch.Server, string, error) {
	dir, err := os.MkdirTemp("", "arubug-localchtest-")
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	srv, err := localch.Start(ctx, localch.Options{DataDir: dir, StartTimeout: startTimeout})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", err
	}
	return srv, dir, nil
}

// NewServer starts a private managed server in a temporary directory, for
// tests that stop, kill or restart it. It is stopped and its data removed
// when the test ends, whether or not the test passed.
func NewServer(t testing.TB) *localch.Server {
	t.Helper()
	// Registered before the Stop cleanup below, so it runs after it.
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	srv, err := localch.Start(ctx, localch.Options{DataDir: dir, StartTimeout: startTimeout})
	if err != nil {
		t.Fatalf("localchtest: start ClickHouse server: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("localchtest: stop ClickHouse server: %v", err)
		}
	})
	return srv
}

// DSN creates a fresh, uniquely named database and returns a DSN that uses
// it. The database lives on the server named by ARUBUG_TEST_CLICKHOUSE_DSN
// when that is set, otherwise on the shared managed server (see Server). It
// is dropped when the test ends.
func DSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvDSN)
	if base == "" {
		base = Server(t).DSN("default")
	}
	db := databaseName(t.Name())
	dsn, err := withDatabase(base, db)
	if err != nil {
		t.Fatalf("localchtest: %s: %v", EnvDSN, err)
	}
	if err := execDDL(base, "CREATE DATABASE `"+db+"`"); err != nil {
		t.Fatalf("localchtest: create test database %s: %v", db, err)
	}
	t.Cleanup(func() {
		if err := execDDL(base, "DROP DATABASE IF EXISTS `"+db+"`"); err != nil {
			t.Errorf("localchtest: drop test database %s: %v", db, err)
		}
	})
	return dsn
}

// execDDL uses a connection of its own so that the caller's connections,
// and whatever state they are in, play no part.
func execDDL(dsn, query string) error {
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return err
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), ddlTimeout)
	defer cancel()
	return conn.Exec(ctx, query)
}

// databaseName keeps the test's name in the database name, so that leftovers
// on an external server can be traced to their test, plus randomness so that
// repeated and parallel runs never collide.
func databaseName(testName string) string {
	var b strings.Builder
	b.WriteString("test_")
	for _, r := range testName {
		if b.Len() >= 40 {
			break
		}
		if r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	random := make([]byte, 6)
	_, _ = rand.Read(random)
	b.WriteByte('_')
	b.WriteString(hex.EncodeToString(random))
	return b.String()
}

// withDatabase replaces the database of a clickhouse-go DSN, which may be
// given in the path or in a database query parameter.
func withDatabase(dsn, db string) (string, error) {
	// The DSN may hold a password, so errors do not quote it.
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		return "", errors.New("not a DSN of the form clickhouse://[user[:password]@]host:port[/database][?options]")
	}
	u.Path = "/" + db
	u.RawPath = ""
	if q := u.Query(); q.Has("database") {
		q.Del("database")
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

// NewCluster starts a local ClickHouse cluster (deploy/clickhouse/local-cluster.sh:
// ZooKeeper and one clickhouse-server per replica, on loopback ports) with
// the given layout (replicas per shard, e.g. "2" or "2,1"), and stops it
// when the test ends, whether or not the test passed; the nodes' logs are
// kept in the test's log when it failed.
//
// A missing ClickHouse or ZooKeeper (Debian's zookeeper package) fails the
// test, like a missing ClickHouse everywhere else: a skip would hide it.
func NewCluster(t testing.TB, layout string) *localcluster.Cluster {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := localcluster.Start(ctx, localcluster.Options{Dir: dir, Layout: layout})
	if err != nil {
		if errors.Is(err, localcluster.ErrMissing) {
			t.Fatalf("localchtest: %v\n(install it with `apt-get install zookeeper clickhouse-server`, or run `make test`, which does)", err)
		}
		t.Fatalf("localchtest: start ClickHouse cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range c.Nodes {
				b, _ := os.ReadFile(filepath.Join(n.LogDir, "clickhouse-server.err.log"))
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				if len(lines) > 15 {
					lines = lines[len(lines)-15:]
				}
				t.Logf("%s error log (last lines):\n%s", n.Name, strings.Join(lines, "\n"))
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("localchtest: stop ClickHouse cluster: %v", err)
		}
	})
	return c
}
