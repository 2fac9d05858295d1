package clickhouse

import (
	"context"
	"fmt"
	"time"
)

// Migration is one versioned schema change. Statements must be idempotent
// (IF NOT EXISTS) so that two instances starting together, or a crash
// between a statement and its record, do no harm.
type Migration struct {
	Version    uint32
	Name       string
	Statements []string
	// Backfill runs once, after Statements, when the migration is first
	// applied: INSERT … SELECT statements that copy existing rows into a
	// new table. They run as written in cluster mode too, on the
	// Distributed tables, whose sharding keys send each row to its shard.
	// A crash before the migration is recorded runs them again; the tables
	// they fill must collapse the duplicates (ReplacingMergeTree by the
	// source's key) and their readers must not count them twice.
	Backfill []string
}

// Migrations is the schema, in order. Append; never edit a released one.
var Migrations = []Migration{
	{
		Version: 1,
		Name:    "events",
		Statements: []string{
			// ReplacingMergeTree keyed like PostHog's events table: a replayed
			// event (same uuid, same day) collapses into one row on merge.
			// Time is DateTime plus milliseconds: 18.16 has no DateTime64.
			// Properties stay a JSON string; what dashboards and routing use
			// is promoted to columns at ingest.
			`CREATE TABLE IF NOT EXISTS events (
	uuid UUID,
	project String,
	event String,
	distinct_id String,
	timestamp DateTime,
	timestamp_ms UInt16,
	created_at DateTime,
	properties String,
	person_set String,
	person_set_once String,
	session_id String,
	window_id String,
	device_id String,
	current_url String,
	pathname String,
	host String,
	lib String,
	lib_version String,
	ip String
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project, toDate(timestamp), event, cityHash64(distinct_id), uuid)
SETTINGS index_granularity = 8192`,
		},
	},
	{
		Version: 2,
		Name:    "bug_reports and screenshots",
		Statements: []string{
			// One row per version of a report; the highest version wins on
			// merge (and with FINAL). reported_at never changes, so every
			// version of a report lands in the same partition.
			`CREATE TABLE IF NOT EXISTS bug_reports (
	report_id UUID,
	version UInt64,
	project String,
	reported_at DateTime,
	received_at DateTime,
	updated_at DateTime,
	distinct_id String,
	reporter_email String,
	reporter_name String,
	title String,
	description String,
	product_area String,
	severity String,
	url String,
	path String,
	host String,
	browser String,
	browser_version String,
	os String,
	os_version String,
	device String,
	user_agent String,
	session_id String,
	window_id String,
	device_id String,
	console String,
	network String,
	screenshot_id String,
	spam UInt8,
	spam_reason String,
	replay_url String,
	usage_available UInt8,
	usage String,
	team String,
	route String,
	priority String,
	tags Array(String),
	cc Array(String),
	assignee String,
	route_explanation String,
	route_source String,
	fingerprint String,
	similar_count UInt64,
	properties String
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(reported_at)
ORDER BY (project, report_id)`,
			// Screenshots are large and read one at a time: their own table
			// keeps them out of the events that dashboards scan.
			`CREATE TABLE IF NOT EXISTS screenshots (
	report_id UUID,
	project String,
	created_at DateTime,
	mime String,
	data String
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(created_at)
ORDER BY (project, report_id)`,
		},
	},
	{
		Version: 3,
		Name:    "person_events",
		Statements: []string{
			// The events of each person, keyed by person: enrichment reads one
			// reporter's history, which the events table (keyed by time and
			// event for dashboards) can only find by scanning a whole
			// project. Each event is filed under its distinct_id and, when
			// different, its device_id, so an anonymous visitor's history on
			// the same device is found too. It keeps only what enrichment
			// reads: the properties of $exception events, and the feature
			// flag state extracted at insert; copying every event's
			// properties would double the cost of each insert. (An alias
			// named properties would shadow the column in the expressions
			// below, hence exception_properties.) Events stored
			// before this migration are not copied (POPULATE is unsafe while
			// inserts run).
			`CREATE MATERIALIZED VIEW IF NOT EXISTS person_events
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project, person_key, timestamp, uuid)
AS SELECT
	project,
	arrayJoin(arrayFilter(k -> k != '', arrayDistinct([distinct_id, device_id]))) AS person_key,
	uuid, event, distinct_id, device_id, timestamp, timestamp_ms, session_id, pathname, current_url,
	person_set, person_set_once,
	if(event = '$exception', properties, '') AS exception_properties,
	toUInt8(position(properties, '"$active_feature_flags"') > 0 OR position(properties, '"$feature/') > 0) AS has_flags,
	substring(visitParamExtractRaw(properties, '$active_feature_flags'), 1, 65536) AS active_flags,
	arraySlice(extractAll(properties, '"\\$feature/([^"\\\\]{1,200})":\\s*(true|"[^"])'), 1, 200) AS feature_props
FROM events`,
		},
	},
	{
		Version: 4,
		Name:    "ticket_links and ticket_status",
		Statements: []string{
			// The Zendesk ticket of each report and the state of its sync;
			// one row per change, the highest version wins. Every instance
			// reads it to find reports nobody has ticketed yet.
			`CREATE TABLE IF NOT EXISTS ticket_links (
	report_id UUID,
	version UInt64,
	project String,
	reported_at DateTime,
	ticket_id Int64,
	problem_id Int64,
	team String,
	state String,
	error String,
	attempts UInt32,
	updated_at DateTime
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(reported_at)
ORDER BY (project, report_id)`,
			// The ticket's Zendesk status, apart from the sync state so that
			// the webhook and the syncer never overwrite each other's rows.
			// The version is Zendesk's updated_at: a late delivery of an
			// older status loses to the newer one.
			`CREATE TABLE IF NOT EXISTS ticket_status (
	report_id UUID,
	version UInt64,
	project String,
	reported_at DateTime,
	ticket_id Int64,
	status String,
	updated_at DateTime
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(reported_at)
ORDER BY (project, report_id)`,
		},
	},
	{
		Version: 5,
		Name:    "report_messages",
		Statements: []string{
			// The messages of report threads with their report and kind as
			// columns: the message and first-response trends read these
			// instead of extracting both from the JSON properties (bodies
			// included) of every $bug_report_message event in their range,
			// 650 ms → 280 ms over 90 days at 400 k messages. A replayed
			// event (same uuid and timestamp) collapses like in events;
			// readers count uniqExact(uuid) or take min(timestamp), so a
			// row not yet collapsed changes nothing. report_id stays a
			// string: a conversion failing on a malformed id would fail the
			// events insert it rides on.
			`CREATE MATERIALIZED VIEW IF NOT EXISTS report_messages
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project, timestamp, uuid)
AS SELECT
	project, uuid, timestamp,
	visitParamExtractString(properties, 'report_id') AS report_id,
	visitParamExtractString(properties, 'kind') AS kind
FROM events
WHERE event = '$bug_report_message'`,
		},
		// The messages stored before the view existed. Those written
		// between the view's creation and this copy are in both; they
		// collapse (see above).
		Backfill: []string{
			`INSERT INTO report_messages (project, uuid, timestamp, report_id, kind)
SELECT project, uuid, timestamp, visitParamExtractString(properties, 'report_id'), visitParamExtractString(properties, 'kind')
FROM events
WHERE event = '$bug_report_message'`,
		},
	},
}

// Migrate applies the migrations not yet recorded in schema_migrations and
// returns how many it applied. In cluster mode (Options.Cluster) each
// statement runs ON CLUSTER in the shape ClusterStatements gives it, and
// schema_migrations is replicated to every node. It refuses a database whose
// tables were made for the other mode.
func (db *DB) Migrate(ctx context.Context) (int, error) {
	return db.migrate(ctx, false, Migrations)
}

// MigrateEveryNode is Migrate for `arubug migrate`: in cluster mode it also
// runs the statements of the migrations already recorded again, ON CLUSTER,
// so that nodes added to the cluster since get the database and every table
// (the statements are idempotent). Outside cluster mode it is Migrate.
//
// Migrate, which serve runs at every start, does not: ON CLUSTER waits for
// every node, and one node being down must not hold up a start.
func (db *DB) MigrateEveryNode(ctx context.Context) (int, error) {
	if db.cluster == "" {
		return db.migrate(ctx, false, Migrations)
	}
	if err := db.checkCluster(ctx); err != nil {
		return 0, err
	}
	if err := db.conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db.database+" ON CLUSTER "+db.cluster); err != nil {
		return 0, fmt.Errorf("clickhouse: create database %s on cluster %s: %w", db.database, db.cluster, err)
	}
	return db.migrate(ctx, true, Migrations)
}

// migrate applies migrations, a prefix of Migrations (tests give shorter
// ones to see how a later migration meets an existing database).
func (db *DB) migrate(ctx context.Context, everyNode bool, migrations []Migration) (int, error) {
	if db.cluster != "" && !everyNode {
		if err := db.checkCluster(ctx); err != nil {
			return 0, err
		}
	}
	if err := db.checkSchemaMode(ctx); err != nil {
		return 0, err
	}
	if err := db.createSchemaMigrations(ctx, everyNode); err != nil {
		return 0, fmt.Errorf("clickhouse: create schema_migrations: %w", err)
	}
	applied, err := db.AppliedVersions(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range migrations {
		if applied[m.Version] && !everyNode {
			continue
		}
		stmts, err := db.statements(m)
		if err != nil {
			return n, err
		}
		for i, stmt := range stmts {
			if err := db.conn.Exec(ctx, stmt); err != nil {
				return n, fmt.Errorf("clickhouse: migration %d (%s) statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		if applied[m.Version] {
			continue
		}
		for i, stmt := range m.Backfill {
			if err := db.conn.Exec(ctx, stmt); err != nil {
				return n, fmt.Errorf("clickhouse: migration %d (%s) backfill %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		batch, err := db.conn.PrepareBatch(ctx, "INSERT INTO schema_migrations (version, name, applied_at)")
		if err != nil {
			return n, fmt.Errorf("clickhouse: record migration %d: %w", m.Version, err)
		}
		if err := batch.Append(m.Version, m.Name, time.Now().UTC()); err != nil {
			return n, fmt.Errorf("clickhouse: record migration %d: %w", m.Version, err)
		}
		if err := batch.Send(); err != nil {
			return n, fmt.Errorf("clickhouse: record migration %d: %w", m.Version, err)
		}
		db.log.Info("clickhouse migration applied", "version", m.Version, "name", m.Name, "cluster", db.cluster)
		n++
	}
	return n, nil
}

// statements returns the statements of m as this mode runs them.
func (db *DB) statements(m Migration) ([]string, error) {
	if db.cluster == "" {
		return m.Statements, nil
	}
	var out []string
	for _, stmt := range m.Statements {
		cs, err := ClusterStatements(stmt, db.cluster, db.database)
		if err != nil {
			return nil, fmt.Errorf("clickhouse: migration %d (%s): %w", m.Version, m.Name, err)
		}
		out = append(out, cs...)
	}
	return out, nil
}

// createSchemaMigrations creates the record of applied migrations. In
// cluster mode the ON CLUSTER statement is skipped when the table exists
// here already, unless everyNode asks for it.
func (db *DB) createSchemaMigrations(ctx context.Context, everyNode bool) error {
	if db.cluster == "" {
		return db.conn.Exec(ctx, schemaMigrationsTable)
	}
	if !everyNode {
		var n uint64
		if err := db.conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = 'schema_migrations'", db.database).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
	}
	return db.conn.Exec(ctx, clusterSchemaMigrations(db.cluster, db.database))
}

// AppliedVersions returns the recorded migration versions.
func (db *DB) AppliedVersions(ctx context.Context) (map[uint32]bool, error) {
	rows, err := db.conn.Query(ctx, "SELECT DISTINCT version FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("clickhouse: read schema_migrations: %w", err)
	}
	defer rows.Close()
	out := map[uint32]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out[v] = true
	}
	return out, rows.Err()
}
