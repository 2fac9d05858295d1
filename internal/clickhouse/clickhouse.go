// Package clickhouse stores Arubug's events, reports and messages in
// ClickHouse over the native protocol. Its SQL runs on ClickHouse 18.16 (the
// version Debian ships) and on current releases alike.
package clickhouse

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"

	"github.com/arubug/arubug/internal/bugreport"
)

// DB is a connection pool to one ClickHouse database.
type DB struct {
	conn     driver.Conn
	database string
	cluster  string // "" outside cluster mode
	log      *slog.Logger
	reports  reportBatcher  // shares bug_reports inserts between concurrent SaveReport calls
	tz       *time.Location // the server's time zone, in which toDate cuts days (eventorder.go)
}

var _ bugreport.EventWriter = (*DB)(nil)

// Options configures Open.
type Options struct {
	// DSN is clickhouse://user:password@host:9000/database?dial_timeout=5s.
	DSN    string
	Logger *slog.Logger
	// CreateDatabase creates the DSN's database if it does not exist (in
	// cluster mode on every node, ON CLUSTER).
	CreateDatabase bool
	// Cluster, when set, is the name of the ClickHouse cluster (the
	// server's remote_servers) the schema lives on: Migrate creates
	// replicated tables behind Distributed ones on every node (see
	// ClusterStatements), and inserts wait for the shards (see Open).
	Cluster string
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ParseDSN checks a DSN and returns the database it names.
func ParseDSN(dsn string) (database string, err error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("clickhouse DSN is not a URL: %w", redactURLError(err))
	}
	if u.Scheme != "clickhouse" && u.Scheme != "tcp" {
		return "", fmt.Errorf("clickhouse DSN must start with clickhouse:// (native protocol), got %q", u.Scheme+"://")
	}
	if u.Host == "" {
		return "", errors.New("clickhouse DSN has no host")
	}
	database = strings.Trim(u.Path, "/")
	if database == "" {
		database = "default"
	}
	if !identRE.MatchString(database) {
		return "", fmt.Errorf("clickhouse database name %q must match %s", database, identRE)
	}
	if _, err := ch.ParseDSN(dsn); err != nil {
		return "", fmt.Errorf("clickhouse DSN: %w", redactURLError(err))
	}
	return database, nil
}

// redactURLError drops the URL text from url.Error, which may hold a password.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Open connects to the DSN's server and checks it answers.
func Open(ctx context.Context, o Options) (*DB, error) {
	database, err := ParseDSN(o.DSN)
	if err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Cluster != "" && !identRE.MatchString(o.Cluster) {
		return nil, fmt.Errorf("clickhouse cluster name %q must match %s", o.Cluster, identRE)
	}
	opts, _ := ch.ParseDSN(o.DSN)
	if o.Cluster != "" {
		if opts.Settings == nil {
			opts.Settings = ch.Settings{}
		}
		// An INSERT into a Distributed table returns, by default, once the
		// rows are queued on the local disk of the node that received them,
		// to be forwarded in the background: an acknowledged insert could
		// then be lost with that node, or wait there while its shard is
		// down, and Arubug would already have deleted the events from its
		// spool. insert_distributed_sync=1 makes the INSERT return only
		// when every shard has written its rows to one of its replicas
		// (internal_replication then copies them to the others), so a
		// successful insert is as durable as a single-node one and a
		// failed one is retried from the spool; rows a shard did write
		// before a failure collapse with the retry, which the sharding key
		// sends to the same shard. Both 18.16 and current releases accept
		// this name (current ones as an alias of
		// distributed_foreground_insert). It is forced, whatever the DSN
		// says, because the spool's guarantee depends on it.
		opts.Settings["insert_distributed_sync"] = 1
	}
	if opts.DialTimeout == 0 || opts.DialTimeout > 10*time.Second {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.MaxOpenConns == 0 {
		opts.MaxOpenConns = 16
	}
	if o.CreateDatabase && database != "default" {
		opts.Auth.Database = "default"
		conn, err := ch.Open(opts)
		if err != nil {
			return nil, fmt.Errorf("clickhouse: %w", err)
		}
		err = createDatabase(ctx, conn, database, o.Cluster)
		_ = conn.Close()
		if err != nil {
			return nil, fmt.Errorf("clickhouse: create database %s: %w", database, err)
		}
		opts.Auth.Database = database
	}
	conn, err := ch.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	if err := conn.Ping(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("clickhouse: ping %s: %w", opts.Addr, err)
	}
	if o.Cluster != "" {
		if conn, err = withProductMode(ctx, conn, opts); err != nil {
			return nil, err
		}
	}
	tz := time.UTC
	if v, err := conn.ServerVersion(); err != nil || v.Timezone == nil {
		// Inserts still work; on a server not in UTC they only lose the
		// presorting of eventorder.go.
		o.Logger.Warn("clickhouse: the server's time zone is unknown; inserts are ordered by UTC days", "err", err)
	} else {
		tz = v.Timezone
	}
	return &DB{conn: conn, database: database, cluster: o.Cluster, log: o.Logger, tz: tz}, nil
}

// createDatabase creates the database, on every node of the cluster if
// there is one. ON CLUSTER waits for every node, so it is skipped when the
// database exists here already: a node that is down then does not hold up
// the start of an instance (`arubug migrate --cluster` creates it on nodes
// added later).
func createDatabase(ctx context.Context, conn driver.Conn, database, cluster string) error {
	if cluster == "" {
		return conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+database)
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", database).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	return conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+database+" ON CLUSTER "+cluster)
}

// Close closes the pool.
func (db *DB) Close() error { return db.conn.Close() }

// Ping checks that the server answers.
func (db *DB) Ping(ctx context.Context) error { return db.conn.Ping(ctx) }

// Conn exposes the driver connection for queries in tests and tools.
func (db *DB) Conn() driver.Conn { return db.conn }

// Database returns the database name.
func (db *DB) Database() string { return db.database }

// Cluster returns the cluster name given to Open, or "" outside cluster mode.
func (db *DB) Cluster() string { return db.cluster }

// eventColumns is the explicit column list batches need on 18.16.
const eventColumns = "uuid, project, event, distinct_id, timestamp, timestamp_ms, created_at, properties, person_set, person_set_once, session_id, window_id, device_id, current_url, pathname, host, lib, lib_version, ip"

// The largest block WriteEvents sends, in rows and in bytes of the bulky
// columns; an insert is one or more blocks.
const (
	insertBlockRows  = 1024
	insertBlockBytes = 1 << 20
)

// WriteEvents inserts events in one batch. Replays of the same events
// collapse by UUID in the ReplacingMergeTree.
//
// The rows go in the table's sorting order (eventorder.go), in blocks of
// bounded size within the one INSERT (ClickHouse squashes them into one
// part), appended a column at a time: the client's
// columns keep their capacity from block to block instead of doubling up to
// the size of the whole insert, and no value is boxed per row. At 5 000
// events/s that doubling and boxing were a seventh of the collector's CPU;
// BenchmarkWriteEvents (5 000 events of 1.2 KB): 36 → 7 MB allocated and
// 60 600 → 1 200 allocations per insert.
func (db *DB) WriteEvents(ctx context.Context, events []bugreport.Event) error {
	if len(events) == 0 {
		return nil
	}
	// Screenshots first: if the events insert then fails, the retry writes
	// both again and the screenshot collapses by report id.
	if err := db.writeScreenshots(ctx, events); err != nil {
		return err
	}
	// Ordered before the INSERT opens: sorting holds no connection.
	order := sortedOrder(events, db.tz)
	batch, err := db.conn.PrepareBatch(ctx, "INSERT INTO events ("+eventColumns+")")
	if err != nil {
		return fmt.Errorf("clickhouse: prepare insert: %w", err)
	}
	defer func() { _ = batch.Abort() }()
	var b eventBlock
	for start := 0; start < len(order); {
		end, bytes := start, 0
		for end < len(order) && end-start < insertBlockRows && bytes < insertBlockBytes {
			e := &events[order[end]]
			bytes += len(e.Properties) + len(e.Set) + len(e.SetOnce) + len(e.CurrentURL)
			end++
		}
		b.fill(events, order[start:end])
		for i, col := range b.columns() {
			if err := batch.Column(i).Append(col); err != nil {
				return fmt.Errorf("clickhouse: append events column %d: %w", i, err)
			}
		}
		if end < len(order) {
			if err := batch.Flush(); err != nil {
				return fmt.Errorf("clickhouse: insert %d events: %w", len(events), err)
			}
		}
		start = end
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("clickhouse: insert %d events: %w", len(events), err)
	}
	return nil
}

// eventBlock holds one block of events by column, in eventColumns' order;
// its slices are reused from block to block.
type eventBlock struct {
	uuids                 []uuid.UUID
	timestamps, createdAt []time.Time
	millis                []uint16
	strs                  [15][]string
}

// eventStrings are an event's string columns, in eventColumns' order
// around the uuid and the three time columns.
func eventStrings(e *bugreport.Event) [15]string {
	return [15]string{e.Project, e.Event, e.DistinctID, e.Properties, e.Set, e.SetOnce,
		e.SessionID, e.WindowID, e.DeviceID, e.CurrentURL, e.Pathname, e.Host, e.Lib, e.LibVersion, e.IP}
}

// fill puts events[order[0]], events[order[1]], ... in the block.
func (b *eventBlock) fill(events []bugreport.Event, order []int) {
	b.uuids, b.timestamps, b.createdAt, b.millis = b.uuids[:0], b.timestamps[:0], b.createdAt[:0], b.millis[:0]
	for i := range b.strs {
		b.strs[i] = b.strs[i][:0]
	}
	for _, i := range order {
		e := &events[i]
		ts := e.Timestamp.UTC()
		b.uuids = append(b.uuids, uuid.UUID(e.UUID))
		b.timestamps = append(b.timestamps, ts)
		b.millis = append(b.millis, uint16(ts.Nanosecond()/int(time.Millisecond)))
		b.createdAt = append(b.createdAt, e.CreatedAt.UTC())
		for j, v := range eventStrings(e) {
			b.strs[j] = append(b.strs[j], v)
		}
	}
}

// columns returns the block's columns in eventColumns' order.
func (b *eventBlock) columns() []any {
	s := b.strs
	return []any{b.uuids, s[0], s[1], s[2], b.timestamps, b.millis, b.createdAt,
		s[3], s[4], s[5], s[6], s[7], s[8], s[9], s[10], s[11], s[12], s[13], s[14]}
}

// screenshotProperty is the $bug_report property carrying the screenshot as
// a data URL; it is moved to the screenshots table and replaced by
// screenshotIDProperty so that events stay small for the dashboards.
const (
	screenshotProperty   = "$screenshot"
	screenshotIDProperty = "$screenshot_id"
)

// screenshotOf reads the screenshot of a $bug_report event and returns the
// event's properties without it ("" when they do not change); e itself is
// not changed. ok is false when there is none or it is not an image data
// URL (the property is dropped all the same: nothing renders it).
func screenshotOf(e *bugreport.Event) (mime string, data []byte, properties string, ok bool) {
	if e.Event != bugreport.EventBugReport || !strings.Contains(e.Properties, `"`+screenshotProperty+`"`) {
		return "", nil, "", false
	}
	var props map[string]json.RawMessage
	if json.Unmarshal([]byte(e.Properties), &props) != nil {
		return "", nil, "", false
	}
	raw, present := props[screenshotProperty]
	if !present {
		return "", nil, "", false
	}
	delete(props, screenshotProperty)
	var url string
	if json.Unmarshal(raw, &url) == nil {
		if m, b64, found := strings.Cut(strings.TrimPrefix(url, "data:"), ";base64,"); found && allowedImage[m] {
			if b, err := base64.StdEncoding.DecodeString(b64); err == nil && len(b) > 0 {
				mime, data, ok = m, b, true
				props[screenshotIDProperty], _ = json.Marshal(e.UUID.String())
			}
		}
	}
	if out, err := json.Marshal(props); err == nil {
		properties = string(out)
	}
	return mime, data, properties, ok
}

// allowedImage lists the raster types kept; SVG is refused because it can
// carry script when served back.
var allowedImage = map[string]bool{"image/png": true, "image/jpeg": true, "image/webp": true}

func (db *DB) writeScreenshots(ctx context.Context, events []bugreport.Event) error {
	// The events' properties change only once the screenshots are stored:
	// a failed insert is retried with the same events, which must still
	// carry their screenshots.
	type edit struct {
		i          int
		properties string
	}
	var edits []edit
	var batch driver.Batch
	for i := range events {
		mime, data, props, ok := screenshotOf(&events[i])
		if props != "" {
			edits = append(edits, edit{i, props})
		}
		if !ok {
			continue
		}
		if batch == nil {
			var err error
			if batch, err = db.conn.PrepareBatch(ctx, "INSERT INTO screenshots (report_id, project, created_at, mime, data)"); err != nil {
				return fmt.Errorf("clickhouse: prepare screenshot insert: %w", err)
			}
			defer func() { _ = batch.Abort() }()
		}
		e := &events[i]
		if err := batch.Append(uuid.UUID(e.UUID), e.Project, e.CreatedAt.UTC(), mime, string(data)); err != nil {
			return fmt.Errorf("clickhouse: append screenshot: %w", err)
		}
	}
	if batch != nil {
		if err := batch.Send(); err != nil {
			return fmt.Errorf("clickhouse: insert screenshots: %w", err)
		}
	}
	for _, e := range edits {
		events[e.i].Properties = e.properties
	}
	return nil
}
