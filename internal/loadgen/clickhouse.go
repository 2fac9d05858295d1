package loadgen

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2"
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
	for _, r := range opt.Table {
		if !(r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return 0, 0, fmt.Errorf("loadgen: bad table name %q", opt.Table)
		}
	}
	o, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return 0, 0, fmt.Errorf("loadgen: clickhouse dsn: %w", err)
	}
	if o.Protocol != clickhouse.Native {
		return 0, 0, fmt.Errorf("loadgen: clickhouse dsn must use the native protocol (clickhouse://host:9000/db)")
	}
	conn, err := clickhouse.Open(o)
	if err != nil {
		return 0, 0, fmt.Errorf("loadgen: clickhouse open: %w", err)
	}
	defer conn.Close()
	if opt.Optimize {
		if err := conn.Exec(ctx, "OPTIMIZE TABLE "+opt.Table+" FINAL"); err != nil {
			return 0, 0, fmt.Errorf("loadgen: optimize: %w", err)
		}
	}
	// The prefix is compared as a plain string (substring is 1-based and
	// byte-wise), so run ids need no LIKE escaping.
	prefix := runID + ":"
	q := fmt.Sprintf("SELECT count(), uniqExact(uuid) FROM %s FINAL WHERE substring(distinct_id, 1, %d) = ?",
		opt.Table, len(prefix))
	if err := conn.QueryRow(ctx, q, prefix).Scan(&rows, &unique); err != nil {
		return 0, 0, fmt.Errorf("loadgen: count: %w", err)
	}
	return rows, unique, nil
}
