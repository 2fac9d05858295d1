package clickhouse

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

// Cluster mode. With Options.Cluster set, every table of the schema is
// created ON CLUSTER as <table>_local with the Replicated variant of its
// engine, and a Distributed table under the original name sits in front of
// it, so that every query of the code base runs unchanged. The cluster DDL is
// derived from the single-node statements of Migrations by ClusterStatements,
// so there is one schema, not two.

// ShardingKeys is the sharding expression of each table of the schema. All
// versions of a row must land on the same shard, or ReplacingMergeTree could
// not collapse them and FINAL would return one row per shard:
//   - events by uuid, the key replays collapse on;
//   - the report tables by report_id, which is the uuid of the $bug_report
//     event, so a report lives on the shard of its event;
//   - person_events and report_messages by uuid too: their rows are written by the materialized
//     view on the shard that stores the event, never through the
//     Distributed table, so the Distributed table's key must agree with
//     where the view puts them (a person's rows are spread over the
//     shards; a query for one person reads every shard, as it would anyway).
//
// cityHash64 of the UUID's text: 18.16 refuses cityHash64 of a UUID value.
// A migration that adds a table must add its key here (TestClusterStatements
// fails otherwise).
var ShardingKeys = map[string]string{
	"events":          "cityHash64(toString(uuid))",
	"person_events":   "cityHash64(toString(uuid))",
	"report_messages": "cityHash64(toString(uuid))",
	"bug_reports":     "cityHash64(toString(report_id))",
	"screenshots":     "cityHash64(toString(report_id))",
	"ticket_links":    "cityHash64(toString(report_id))",
	"ticket_status":   "cityHash64(toString(report_id))",
}

// LocalSuffix names the replicated table behind each Distributed table.
const LocalSuffix = "_local"

// ReplicationPath is the ZooKeeper path of a table's replicas: one per shard
// (the {shard} macro) and database, so that two Arubug databases on one
// cluster do not share replicas. {shard} and {replica} are macros each
// server defines (deploy/clickhouse/config.d/macros.xml). The {database} and
// {table} macros of current releases are not used: 18.16 lacks them.
func ReplicationPath(database, table string) string {
	return "/clickhouse/tables/{shard}/" + database + "/" + table
}

var (
	createRE = regexp.MustCompile(`^CREATE (TABLE|MATERIALIZED VIEW) IF NOT EXISTS ([A-Za-z_][A-Za-z0-9_]*)\b`)
	engineRE = regexp.MustCompile(`\bENGINE = ([A-Za-z]*MergeTree)\(([^()]*)\)`)
	// The source of a materialized view: its statement ends with it, or
	// with it and a WHERE clause.
	viewFromRE = regexp.MustCompile(`\bFROM ([A-Za-z_][A-Za-z0-9_]*)(?:\s+WHERE\s[^;]*)?\s*$`)
)

// ClusterStatements turns one single-node statement of Migrations into the
// statements that create the same object on every node of cluster:
//
//	CREATE TABLE IF NOT EXISTS t (…) ENGINE = ReplacingMergeTree(v) …
//
// becomes
//
//	CREATE TABLE IF NOT EXISTS db.t_local ON CLUSTER c (…)
//	  ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/t', '{replica}', v) …
//	CREATE TABLE IF NOT EXISTS db.t ON CLUSTER c AS db.t_local
//	  ENGINE = Distributed(c, db, t_local, <ShardingKeys[t]>)
//
// and a materialized view over a table becomes a view over the table's
// local table, so that each shard's view feeds its own replicated table.
// Names are qualified with the database: ON CLUSTER statements run on other
// servers, whose current database is not the caller's.
//
// It returns an error for a statement of another shape, or for a table
// without a sharding key; both are caught by the tests of every migration.
func ClusterStatements(stmt, cluster, database string) ([]string, error) {
	if !identRE.MatchString(cluster) || !identRE.MatchString(database) {
		return nil, fmt.Errorf("clickhouse: cluster %q and database %q must match %s", cluster, database, identRE)
	}
	stmt = strings.TrimSpace(stmt)
	head := createRE.FindStringSubmatch(stmt)
	if head == nil {
		return nil, fmt.Errorf("clickhouse: cluster mode: statement does not start with CREATE TABLE|MATERIALIZED VIEW IF NOT EXISTS name: %.60q", stmt)
	}
	kind, table := head[1], head[2]
	key, ok := ShardingKeys[table]
	if !ok {
		return nil, fmt.Errorf("clickhouse: cluster mode: table %s has no sharding key in ShardingKeys", table)
	}
	local := table + LocalSuffix
	q := func(name string) string { return database + "." + name }

	engines := engineRE.FindAllStringSubmatchIndex(stmt, -1)
	if len(engines) != 1 {
		return nil, fmt.Errorf("clickhouse: cluster mode: %s: want one ENGINE = …MergeTree(…) clause, found %d", table, len(engines))
	}
	e := engines[0]
	engine, args := stmt[e[2]:e[3]], strings.TrimSpace(stmt[e[4]:e[5]])
	replicated := fmt.Sprintf("ENGINE = Replicated%s('%s', '{replica}'", engine, ReplicationPath(database, table))
	if args != "" {
		replicated += ", " + args
	}
	replicated += ")"

	body := stmt[len(head[0]):e[0]] + replicated + stmt[e[1]:]
	if kind == "MATERIALIZED VIEW" {
		from := viewFromRE.FindStringSubmatchIndex(body)
		if from == nil {
			return nil, fmt.Errorf("clickhouse: cluster mode: view %s does not end with FROM <table> [WHERE …]", table)
		}
		source := body[from[2]:from[3]]
		if _, ok := ShardingKeys[source]; !ok {
			return nil, fmt.Errorf("clickhouse: cluster mode: view %s reads %s, which is not a table of the schema", table, source)
		}
		if ShardingKeys[source] != key {
			// The view writes on the shard of each source row; a different
			// key would put rows where the Distributed table does not
			// expect them.
			return nil, fmt.Errorf("clickhouse: cluster mode: view %s must be sharded like its source %s (%s), not by %s", table, source, ShardingKeys[source], key)
		}
		body = body[:from[2]] + q(source+LocalSuffix) + body[from[3]:]
	}
	return []string{
		fmt.Sprintf("CREATE %s IF NOT EXISTS %s ON CLUSTER %s%s", kind, q(local), cluster, body),
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s ON CLUSTER %s AS %s\nENGINE = Distributed(%s, %s, %s, %s)",
			q(table), cluster, q(local), cluster, database, local, key),
	}, nil
}

// schemaMigrationsTable records the applied migrations (Migrate).
const schemaMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version UInt32,
	name String,
	applied_at DateTime
) ENGINE = ReplacingMergeTree()
ORDER BY version`

// clusterSchemaMigrations is schemaMigrationsTable for a cluster: one
// replicated table with a replica on every node of every shard (one
// ZooKeeper path for all shards, replicas named shard-replica), so that
// every node reads the whole record locally, agrees with the others, and
// can tell what is applied while another node is down. It is small and
// written once per migration, so it needs no Distributed table.
func clusterSchemaMigrations(cluster, database string) string {
	stmt := strings.Replace(schemaMigrationsTable, "IF NOT EXISTS schema_migrations",
		"IF NOT EXISTS "+database+".schema_migrations ON CLUSTER "+cluster, 1)
	return strings.Replace(stmt, "ENGINE = ReplacingMergeTree()",
		"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/"+database+"/schema_migrations', '{shard}-{replica}')", 1)
}

// schemaTables lists the tables (and views) the migrations create, in order.
func schemaTables() []string {
	var out []string
	for _, m := range Migrations {
		for _, stmt := range m.Statements {
			if h := createRE.FindStringSubmatch(strings.TrimSpace(stmt)); h != nil && !slices.Contains(out, h[2]) {
				out = append(out, h[2])
			}
		}
	}
	return out
}

// checkSchemaMode refuses to migrate a database whose existing tables were
// created for the other mode: CREATE … IF NOT EXISTS would silently keep a
// single-node events table in cluster mode (each instance would then write
// to the node it is connected to) or a Distributed one without a cluster.
func (db *DB) checkSchemaMode(ctx context.Context) error {
	rows, err := db.conn.Query(ctx, "SELECT name, engine FROM system.tables WHERE database = ?", db.database)
	if err != nil {
		return fmt.Errorf("clickhouse: read system.tables: %w", err)
	}
	defer rows.Close()
	engines := map[string]string{}
	for rows.Next() {
		var name, engine string
		if err := rows.Scan(&name, &engine); err != nil {
			return err
		}
		engines[name] = engine
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, t := range schemaTables() {
		engine, exists := engines[t]
		if !exists {
			continue
		}
		switch {
		case db.cluster != "" && engine != "Distributed":
			return fmt.Errorf("clickhouse: table %s.%s exists with engine %s, not Distributed: the database was created without a cluster; "+
				"cluster mode needs a new database (copy the data over, see deploy/clickhouse/README.md)", db.database, t, engine)
		case db.cluster == "" && engine == "Distributed":
			return fmt.Errorf("clickhouse: table %s.%s is Distributed: the database was created in cluster mode; set clickhouse_cluster", db.database, t)
		}
	}
	return nil
}

// checkCluster fails early, with a message naming the fix, when the server
// does not know the cluster or lacks the macros replication needs.
func (db *DB) checkCluster(ctx context.Context) error {
	var n uint64
	if err := db.conn.QueryRow(ctx, "SELECT count() FROM system.clusters WHERE cluster = ?", db.cluster).Scan(&n); err != nil {
		return fmt.Errorf("clickhouse: read system.clusters: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("clickhouse: cluster %q is not defined in the remote_servers of the server Arubug is connected to (see deploy/clickhouse/config.d/remote_servers.xml)", db.cluster)
	}
	rows, err := db.conn.Query(ctx, "SELECT macro FROM system.macros")
	if err != nil {
		return fmt.Errorf("clickhouse: read system.macros: %w", err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return err
		}
		have[m] = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, m := range []string{"shard", "replica"} {
		if !have[m] {
			return fmt.Errorf("clickhouse: cluster mode: the server defines no {%s} macro (see deploy/clickhouse/config.d/macros.xml)", m)
		}
	}
	return nil
}

// withProductMode returns a connection that may run queries such as
// "… FROM bug_reports WHERE report_id NOT IN (SELECT report_id FROM
// ticket_links)", where a subquery reads a Distributed table inside a query
// on another. ClickHouse refuses those unless distributed_product_mode
// allows them; global runs the subquery once and sends its result to every
// shard, which is correct whatever the sharding and cheap for the small
// sets Arubug's subqueries return.
//
// A value from the user's profile or the DSN is kept. Otherwise the
// connection is opened again with global, which current releases accept
// from a client. 18.16's protocol takes only numeric settings from a client
// (clickhouse-go refuses to send a string one), so there it must come from
// the profile (deploy/clickhouse/users.d/arubug.xml), and Open says so.
func withProductMode(ctx context.Context, conn driver.Conn, opts *ch.Options) (driver.Conn, error) {
	var mode string
	if err := conn.QueryRow(ctx, "SELECT value FROM system.settings WHERE name = 'distributed_product_mode'").Scan(&mode); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("clickhouse: read distributed_product_mode: %w", err)
	}
	if mode != "deny" {
		return conn, nil
	}
	v, err := conn.ServerVersion()
	if err != nil || v.Revision < proto.DBMS_MIN_REVISION_WITH_SETTINGS_SERIALIZED_AS_STRINGS {
		_ = conn.Close()
		return nil, fmt.Errorf("clickhouse: cluster mode needs distributed_product_mode = global (or local) for Arubug's user, " +
			"and this server only takes it from the user's profile: add it there (see deploy/clickhouse/users.d/arubug.xml)")
	}
	_ = conn.Close()
	opts.Settings["distributed_product_mode"] = "global"
	next, err := ch.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	if err := next.Ping(ctx); err != nil {
		_ = next.Close()
		return nil, fmt.Errorf("clickhouse: ping %s: %w", opts.Addr, err)
	}
	return next, nil
}
