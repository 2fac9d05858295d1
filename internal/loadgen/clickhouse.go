package loadgen

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// CountOptions tunes CountInClickHouseWith.
type CountOptions struct {
	// Table is the events table in the DSN's database. Default "events".
	Table string
	// Optimize runs OPTIMIZE TABLE <table> FINAL before counting, so that
	// ReplacingMergeTree duplicates are merged away on disk too.
	Optimize bool
}

// CountInClickHouse counts the stored events of run runID in table "events"
// of the database named by dsn (e.g. clickhouse://127.0.0.1:9000/arubug),
// over the native protocol: rows is count() with FINAL (duplicates
// collapsed), unique is uniqExact(uuid). Events of a run are recognised by
// their distinct_id prefix "<runID>:" (no JSON functions needed, so it works
// on ClickHouse 18.16).
func CountInClickHouse(ctx context.Context, dsn, runID string) (rows, unique uint64, err error) {
	return CountInClickHouseWith(ctx, dsn, runID, CountOptions{})
}

// CountInClickHouseWith is CountInClickHouse with options.
func CountInClickHouseWith(ctx context.Context, dsn, runID string, opt CountOptions) (rows, unique uint64, err error) {
	if runID == "" {
		return 0, 0, fmt.Errorf("loadgen: empty run id")
	}
	if opt.Table == "" {
		opt.Table = "events"
	}
	if !validTable(opt.Table) {
		return 0, 0, fmt.Errorf("loadgen: bad table name %q", opt.Table)
	}
	conn, err := openNative(dsn)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	if opt.Optimize {
		if err := conn.Exec(ctx, "OPTIMIZE TABLE "+opt.Table+" FINAL"); err != nil {
			return 0, 0, fmt.Errorf("loadgen: optimize: %w", err)
		}
	}
	where, prefix := runFilter(runID)
	q := "SELECT count(), uniqExact(uuid) FROM " + opt.Table + " FINAL WHERE " + where
	if err := conn.QueryRow(ctx, q, prefix).Scan(&rows, &unique); err != nil {
		return 0, 0, fmt.Errorf("loadgen: count: %w", err)
	}
	return rows, unique, nil
}

// StoredUUIDs returns the distinct UUIDs (canonical lower-case strings) of
// the events of run runID stored in table opt.Table (default "events"), to
// check exactly which acknowledged events are missing.
func StoredUUIDs(ctx context.Context, dsn, runID string, opt CountOptions) (map[string]struct{}, error) {
	if runID == "" {
		return nil, fmt.Errorf("loadgen: empty run id")
	}
	if opt.Table == "" {
		opt.Table = "events"
	}
	if !validTable(opt.Table) {
		return nil, fmt.Errorf("loadgen: bad table name %q", opt.Table)
	}
	conn, err := openNative(dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	where, prefix := runFilter(runID)
	rows, err := conn.Query(ctx, "SELECT DISTINCT toString(uuid) FROM "+opt.Table+" WHERE "+where, prefix)
	if err != nil {
		return nil, fmt.Errorf("loadgen: stored uuids: %w", err)
	}
	defer rows.Close()
	out := map[string]struct{}{}
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, fmt.Errorf("loadgen: stored uuids: %w", err)
		}
		out[u] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("loadgen: stored uuids: %w", err)
	}
	return out, nil
}

// runFilter is the WHERE clause (with one ? for the returned argument)
// that selects a run's events by their distinct_id prefix "<runID>:". The
// prefix is compared as a plain string (substring is 1-based and
// byte-wise), so run ids need no LIKE escaping, and no JSON function is
// needed (ClickHouse 18.16 has none).
func runFilter(runID string) (where string, arg string) {
	prefix := runID + ":"
	return fmt.Sprintf("substring(distinct_id, 1, %d) = ?", len(prefix)), prefix
}

func openNative(dsn string) (driver.Conn, error) {
	o, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("loadgen: clickhouse dsn: %w", err)
	}
	if o.Protocol != clickhouse.Native {
		return nil, fmt.Errorf("loadgen: clickhouse dsn must use the native protocol (clickhouse://host:9000/db)")
	}
	conn, err := clickhouse.Open(o)
	if err != nil {
		return nil, fmt.Errorf("loadgen: clickhouse open: %w", err)
	}
	return conn, nil
}

func validTable(t string) bool {
	for _, r := range t {
		if !(r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return t != ""
}
