package clickhouse

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/clickhouse/localch/localchtest"
)

func TestMain(m *testing.M) { localchtest.Main(m) }

func open(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), Options{DSN: localchtest.DSN(t), CreateDatabase: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMigrateIsIdempotentAndRecorded(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	n, err := db.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(Migrations) {
		t.Fatalf("first run applied %d, want %d", n, len(Migrations))
	}
	n, err = db.Migrate(ctx)
	if err != nil || n != 0 {
		t.Fatalf("second run applied %d (%v), want 0", n, err)
	}
	applied, err := db.AppliedVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range Migrations {
		if !applied[m.Version] {
			t.Errorf("migration %d not recorded", m.Version)
		}
	}
}

func TestMigrationsRerunSafelyWhenNotRecorded(t *testing.T) {
	// A crash between a statement and its record reruns the statement: it
	// must be idempotent.
	db := open(t)
	ctx := context.Background()
	for _, m := range Migrations {
		for _, stmt := range m.Statements {
			for i := 0; i < 2; i++ {
				if err := db.conn.Exec(ctx, stmt); err != nil {
					t.Fatalf("migration %d run %d: %v", m.Version, i, err)
				}
			}
			if !strings.Contains(stmt, "IF NOT EXISTS") {
				t.Errorf("migration %d statement is not guarded by IF NOT EXISTS", m.Version)
			}
		}
	}
}

func TestWriteEventsReplayCollapses(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 11, 27, 10, 0, 0, 123e6, time.UTC)
	evs := []bugreport.Event{
		{UUID: bugreport.UUID{1}, Project: "p", Event: "a", DistinctID: "u1", Timestamp: ts, CreatedAt: ts, Properties: `{"x":"<&>"}`, SessionID: "s"},
		{UUID: bugreport.UUID{2}, Project: "p", Event: "b", DistinctID: "u2", Timestamp: ts, CreatedAt: ts, Properties: `{}`, Set: `{"email":"a@b"}`},
	}
	for i := 0; i < 3; i++ {
		if err := db.WriteEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.conn.Exec(ctx, "OPTIMIZE TABLE events FINAL"); err != nil {
		t.Fatal(err)
	}
	var rows uint64
	if err := db.conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 2 {
		t.Fatalf("%d rows after three writes of two events and OPTIMIZE FINAL, want 2", rows)
	}
	var props, set string
	var ms uint16
	var got time.Time
	if err := db.conn.QueryRow(ctx, "SELECT properties, timestamp, timestamp_ms FROM events WHERE event = 'a'").Scan(&props, &got, &ms); err != nil {
		t.Fatal(err)
	}
	if props != `{"x":"<&>"}` || !got.Equal(ts.Truncate(time.Second)) || ms != 123 {
		t.Errorf("row: %s %s %d", props, got, ms)
	}
	if err := db.conn.QueryRow(ctx, "SELECT person_set FROM events WHERE event = 'b'").Scan(&set); err != nil || set != `{"email":"a@b"}` {
		t.Errorf("person_set %q %v", set, err)
	}
}

func TestParseDSN(t *testing.T) {
	tests := []struct {
		dsn, db, err string
	}{
		{"clickhouse://127.0.0.1:9000/arubug", "arubug", ""},
		{"clickhouse://u:p@h:9000", "default", ""},
		{"http://h:8123/db", "", "must start with clickhouse://"},
		{"clickhouse:///db", "", "no host"},
		{"clickhouse://h:9000/bad-name", "", "must match"},
		{"clickhouse://u:secretpw@h:x/db", "", "clickhouse DSN"},
	}
	for _, tt := range tests {
		db, err := ParseDSN(tt.dsn)
		if tt.err == "" && (err != nil || db != tt.db) {
			t.Errorf("ParseDSN(%q) = %q, %v; want %q", tt.dsn, db, err, tt.db)
		}
		if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("ParseDSN(%q) error %v, want %q", tt.dsn, err, tt.err)
		}
		if err != nil && strings.Contains(err.Error(), "secretpw") {
			t.Errorf("ParseDSN error leaks the password: %v", err)
		}
	}
}
