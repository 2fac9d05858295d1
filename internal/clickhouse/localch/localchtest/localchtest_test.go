package localchtest

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

func TestMain(m *testing.M) { Main(m) }

func open(t *testing.T, dsn string) driver.Conn {
	t.Helper()
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func databaseExists(t *testing.T, conn driver.Conn, db string) bool {
	t.Helper()
	var n uint64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", db).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestDSN(t *testing.T) {
	var dsn1, dsn2 string
	t.Run("use", func(t *testing.T) {
		began := time.Now()
		dsn1 = DSN(t)
		t.Logf("first DSN (includes the shared server's start if this runs first) took %s", time.Since(began).Round(time.Millisecond))
		dsn2 = DSN(t)
		if dsn1 == dsn2 {
			t.Fatalf("two DSN calls returned the same database: %s", dsn1)
		}
		conn := open(t, dsn1)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Unqualified: the DSN's database must be the connection's default.
		if err := conn.Exec(ctx, "CREATE TABLE t (a UInt64) ENGINE = MergeTree ORDER BY a"); err != nil {
			t.Fatal(err)
		}
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO t (a)")
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			if err := batch.Append(uint64(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := batch.Send(); err != nil {
			t.Fatal(err)
		}
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM t").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 10 {
			t.Fatalf("count = %d, want 10", n)
		}
		var current string
		if err := conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&current); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(current, "test_TestDSN_use_") {
			t.Fatalf("currentDatabase() = %q", current)
		}
	})

	admin := open(t, Server(t).DSN("default"))
	if os.Getenv(EnvDSN) != "" {
		admin = open(t, os.Getenv(EnvDSN))
	}
	for _, dsn := range []string{dsn1, dsn2} {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		if db := strings.TrimPrefix(u.Path, "/"); databaseExists(t, admin, db) {
			t.Errorf("database %s still exists after its test ended", db)
		}
	}
}

func TestServerIsShared(t *testing.T) {
	a, b := Server(t), Server(t)
	if a != b {
		t.Fatal("Server returned two different servers")
	}
	conn := open(t, a.DSN("default"))
	if err := conn.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestNewServer(t *testing.T) {
	var dir string
	t.Run("private", func(t *testing.T) {
		srv := NewServer(t)
		dir = srv.DataDir()
		if srv == Server(t) {
			t.Fatal("NewServer returned the shared server")
		}
		if err := srv.Kill(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := srv.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		if err := open(t, srv.DSN("default")).Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("private server's data dir %s not removed: %v", dir, err)
	}
}

func TestDatabaseName(t *testing.T) {
	a, b := databaseName("TestX/sub case#1"), databaseName("TestX/sub case#1")
	if a == b {
		t.Fatal("databaseName is not unique")
	}
	if !strings.HasPrefix(a, "test_TestX_sub_case_1_") {
		t.Fatalf("databaseName = %q", a)
	}
	long := databaseName(strings.Repeat("x", 500))
	if len(long) > 64 {
		t.Fatalf("databaseName too long: %d", len(long))
	}
	for _, r := range a + long {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			t.Fatalf("databaseName has %q", r)
		}
	}
}

func TestWithDatabase(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"clickhouse://127.0.0.1:9000", "clickhouse://127.0.0.1:9000/db"},
		{"clickhouse://127.0.0.1:9000/default", "clickhouse://127.0.0.1:9000/db"},
		{"clickhouse://u:p@h:9000/other?dial_timeout=1s&database=x", "clickhouse://u:p@h:9000/db?dial_timeout=1s"},
		{"http://h:8123/other", "http://h:8123/db"},
	} {
		got, err := withDatabase(tc.in, "db")
		if err != nil || got != tc.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := withDatabase("u:secret@nohost", "db"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("withDatabase of a bad DSN: %v", err)
	}
}
