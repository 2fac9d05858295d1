package clickhouse

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/clickhouse/localch/localchtest"
	"github.com/arubug/arubug/internal/trends"
)

// TestClusterStatements checks the cluster form of every statement of every
// migration: a replicated local table (or view) ON CLUSTER with everything
// but the head and the engine kept as written, and a Distributed table under
// the original name sharded by the table's key.
func TestClusterStatements(t *testing.T) {
	// What each table's replicated engine must be; a new table needs a line.
	wantEngine := map[string]string{
		"events":          "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/adb/events', '{replica}')",
		"bug_reports":     "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/adb/bug_reports', '{replica}', version)",
		"screenshots":     "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/adb/screenshots', '{replica}')",
		"person_events":   "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/adb/person_events', '{replica}')",
		"report_messages": "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/adb/report_messages', '{replica}')",
		"ticket_links":    "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/adb/ticket_links', '{replica}', version)",
		"ticket_status":   "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/adb/ticket_status', '{replica}', version)",
	}
	seen := map[string]bool{}
	for _, m := range Migrations {
		for i, stmt := range m.Statements {
			head := createRE.FindStringSubmatch(strings.TrimSpace(stmt))
			if head == nil {
				t.Errorf("migration %d statement %d: not a CREATE … IF NOT EXISTS", m.Version, i+1)
				continue
			}
			kind, table := head[1], head[2]
			t.Run(fmt.Sprintf("%d/%s", m.Version, table), func(t *testing.T) {
				seen[table] = true
				got, err := ClusterStatements(stmt, "ck", "adb")
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != 2 {
					t.Fatalf("got %d statements, want 2", len(got))
				}
				local, dist := got[0], got[1]
				wantHead := "CREATE " + kind + " IF NOT EXISTS adb." + table + "_local ON CLUSTER ck"
				if !strings.HasPrefix(local, wantHead) {
					t.Errorf("local statement starts %.80q, want %q", local, wantHead)
				}
				engine, ok := wantEngine[table]
				if !ok {
					t.Fatalf("no expected engine for %s in this test", table)
				}
				if !strings.Contains(local, "ENGINE = "+engine+"\n") {
					t.Errorf("local statement lacks ENGINE = %s:\n%s", engine, local)
				}
				// Undo the edits: what remains must be the original.
				orig := strings.TrimSpace(stmt)
				back := strings.Replace(local, wantHead, "CREATE "+kind+" IF NOT EXISTS "+table, 1)
				back = strings.Replace(back, "ENGINE = "+engine, engineRE.FindString(orig), 1)
				if kind == "MATERIALIZED VIEW" {
					if !strings.Contains(local, "FROM adb.events_local") || strings.Count(local, "FROM ") != strings.Count(orig, "FROM ") {
						t.Errorf("view does not read the local events table: …%s", local[len(local)-60:])
					}
					back = strings.Replace(back, "FROM adb.events_local", "FROM events", 1)
				}
				if back != orig {
					t.Errorf("the local statement changed more than its head and engine:\n%s\n--- original ---\n%s", local, orig)
				}
				wantDist := "CREATE TABLE IF NOT EXISTS adb." + table + " ON CLUSTER ck AS adb." + table + "_local\n" +
					"ENGINE = Distributed(ck, adb, " + table + "_local, " + ShardingKeys[table] + ")"
				if dist != wantDist {
					t.Errorf("distributed statement:\n%s\nwant\n%s", dist, wantDist)
				}
			})
		}
	}
	for table := range ShardingKeys {
		if !seen[table] {
			t.Errorf("ShardingKeys has %s, which no migration creates", table)
		}
	}
}

func TestShardingKeysKeepVersionsTogether(t *testing.T) {
	// Every version of a row must reach one shard: the key may only use
	// columns of the table's ORDER BY that never change between versions.
	for table, want := range map[string]string{
		"events": "uuid", "person_events": "uuid", "report_messages": "uuid",
		"bug_reports": "report_id", "screenshots": "report_id", "ticket_links": "report_id", "ticket_status": "report_id",
	} {
		if got := ShardingKeys[table]; got != "cityHash64(toString("+want+"))" {
			t.Errorf("%s is sharded by %q, want by %s", table, got, want)
		}
	}
}

func TestClusterStatementsRejects(t *testing.T) {
	for _, tc := range []struct{ name, stmt, cluster, want string }{
		{"bad cluster", "CREATE TABLE IF NOT EXISTS events (a UInt8) ENGINE = MergeTree() ORDER BY a", "my-cluster", "must match"},
		{"not a create", "ALTER TABLE events ADD COLUMN x String", "c", "does not start with CREATE"},
		{"no IF NOT EXISTS", "CREATE TABLE events (a UInt8) ENGINE = MergeTree() ORDER BY a", "c", "does not start with CREATE"},
		{"unknown table", "CREATE TABLE IF NOT EXISTS sessions (a UInt8) ENGINE = MergeTree() ORDER BY a", "c", "no sharding key"},
		{"no engine", "CREATE TABLE IF NOT EXISTS events (a UInt8) ENGINE = Memory", "c", "found 0"},
		{"view of an unknown table", "CREATE MATERIALIZED VIEW IF NOT EXISTS person_events ENGINE = MergeTree() ORDER BY a AS SELECT a FROM other", "c", "not a table of the schema"},
		{"view sharded unlike its source", "CREATE MATERIALIZED VIEW IF NOT EXISTS person_events ENGINE = MergeTree() ORDER BY a AS SELECT a FROM bug_reports", "c", "must be sharded like its source"},
		{"view without FROM at the end", "CREATE MATERIALIZED VIEW IF NOT EXISTS person_events ENGINE = MergeTree() ORDER BY a AS SELECT 1 FROM events GROUP BY a", "c", "does not end with FROM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ClusterStatements(tc.stmt, tc.cluster, "db")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestClusterSchemaMigrations(t *testing.T) {
	got := clusterSchemaMigrations("ck", "adb")
	for _, want := range []string{
		"CREATE TABLE IF NOT EXISTS adb.schema_migrations ON CLUSTER ck (",
		"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/adb/schema_migrations', '{shard}-{replica}')",
		"ORDER BY version",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("schema_migrations for a cluster lacks %q:\n%s", want, got)
		}
	}
}

// TestClusterMode runs the schema and the store's queries on a real
// cluster: two shards, the first with two replicas.
func TestClusterMode(t *testing.T) {
	c := localchtest.NewCluster(t, "2,1")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const database = "arubug_cluster"
	db, err := Open(ctx, Options{DSN: c.DSN(database), CreateDatabase: true, Cluster: c.Name})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The migrations before report_messages first, with messages written
	// in between: the last migration must copy them on the cluster.
	ts := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	if n, err := db.migrate(ctx, true, Migrations[:4]); err != nil || n != 4 {
		t.Fatalf("first migrate (1-4): applied %d, %v; want 4", n, err)
	}
	msgs := messageEvents(ts)
	if err := db.WriteEvents(ctx, msgs[:2]); err != nil {
		t.Fatal(err)
	}
	if n, err := db.MigrateEveryNode(ctx); err != nil || n != len(Migrations)-4 {
		t.Fatalf("migrate: applied %d, %v; want %d", n, err, len(Migrations)-4)
	}
	if n, err := db.MigrateEveryNode(ctx); err != nil || n != 0 {
		t.Fatalf("second migrate: applied %d, %v; want 0", n, err)
	}

	// Every node has every table in its cluster shape, and the record.
	for _, node := range c.Nodes {
		ndb, err := Open(ctx, Options{DSN: "clickhouse://" + node.TCPAddr + "/" + database, Cluster: c.Name})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := ndb.Migrate(ctx); err != nil || n != 0 {
			t.Errorf("%s: migrate applied %d, %v; want 0", node.Name, n, err)
		}
		engines := map[string]string{}
		rows, err := ndb.conn.Query(ctx, "SELECT name, engine FROM system.tables WHERE database = ?", database)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var name, engine string
			if err := rows.Scan(&name, &engine); err != nil {
				t.Fatal(err)
			}
			engines[name] = engine
		}
		rows.Close()
		for _, table := range schemaTables() {
			want := "ReplicatedReplacingMergeTree"
			if table == "person_events" || table == "report_messages" {
				want = "MaterializedView"
			}
			if engines[table] != "Distributed" || engines[table+LocalSuffix] != want {
				t.Errorf("%s: %s is %q and %s_local %q", node.Name, table, engines[table], table, engines[table+LocalSuffix])
			}
		}
		if engines["schema_migrations"] != "ReplicatedReplacingMergeTree" {
			t.Errorf("%s: schema_migrations is %q", node.Name, engines["schema_migrations"])
		}
		ndb.Close()
	}

	// A single-node instance must not take the cluster's database for its own.
	single, err := Open(ctx, Options{DSN: c.DSN(database)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := single.Migrate(ctx); err == nil || !strings.Contains(err.Error(), "set clickhouse_cluster") {
		t.Errorf("single-node migrate of a cluster database: %v", err)
	}
	single.Close()

	// The copied messages, and one more through the view on its shard
	// (after the migration that re-ran every statement: no copy twice).
	if err := db.WriteEvents(ctx, msgs[2:]); err != nil {
		t.Fatal(err)
	}
	if got, want := reportMessages(t, db), []string{"a note", "a agent_reply", "b reporter_reply"}; !slices.Equal(got, want) {
		t.Errorf("report_messages = %q, want %q", got, want)
	}
	var copies uint64
	if err := db.conn.QueryRow(ctx, "SELECT count() FROM report_messages").Scan(&copies); err != nil || copies != 3 {
		t.Errorf("report_messages holds %d rows before merges (%v), want 3: the backfill ran more than once", copies, err)
	}

	// Events, each written twice (a replay), land on both shards and
	// collapse to one row each through the Distributed table.
	var evs []bugreport.Event
	for i := range 200 {
		id := bugreport.UUID{byte(i), byte(i >> 8), 7, 7}
		evs = append(evs, bugreport.Event{UUID: id, Project: "p", Event: "e", DistinctID: fmt.Sprintf("u%d", i%7), DeviceID: "d", Timestamp: ts, CreatedAt: ts, Properties: "{}"})
	}
	for range 2 {
		if err := db.WriteEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	var rowsAll, rowsFinal, persons uint64
	if err := db.conn.QueryRow(ctx, "SELECT count() FROM events WHERE project = 'p'").Scan(&rowsAll); err != nil {
		t.Fatal(err)
	}
	if err := db.conn.QueryRow(ctx, "SELECT count() FROM events FINAL WHERE project = 'p'").Scan(&rowsFinal); err != nil {
		t.Fatal(err)
	}
	if err := db.conn.QueryRow(ctx, "SELECT count() FROM person_events FINAL WHERE project = 'p'").Scan(&persons); err != nil {
		t.Fatal(err)
	}
	t.Logf("events: %d rows, %d after FINAL; person_events: %d after FINAL", rowsAll, rowsFinal, persons)
	if rowsFinal != 200 || persons != 400 {
		t.Errorf("events FINAL = %d (want 200), person_events FINAL = %d (want 400: distinct_id and device_id)", rowsFinal, persons)
	}
	for _, node := range []string{"s1r1", "s2r1"} {
		n, _ := c.Node(node)
		ndb, err := Open(ctx, Options{DSN: "clickhouse://" + n.TCPAddr + "/" + database, Cluster: c.Name})
		if err != nil {
			t.Fatal(err)
		}
		var local uint64
		if err := ndb.conn.QueryRow(ctx, "SELECT uniqExact(uuid) FROM events_local WHERE project = 'p'").Scan(&local); err != nil {
			t.Fatal(err)
		}
		ndb.Close()
		if local == 0 || local == 200 {
			t.Errorf("shard of %s holds %d of the 200 events: the events are not spread over the shards", node, local)
		}
	}

	// The report and ticket queries, IN subqueries and FINAL included.
	png := []byte("\x89PNG\r\n\x1a\nfake")
	rep := bugreport.Event{UUID: bugreport.UUID{9, 9}, Project: "p", Event: bugreport.EventBugReport, DistinctID: "u1", Timestamp: ts, CreatedAt: ts,
		Properties: `{"$description":"it broke","$screenshot":"data:image/png;base64,` + base64.StdEncoding.EncodeToString(png) + `"}`}
	other := bugreport.Event{UUID: bugreport.UUID{9, 10}, Project: "p", Event: bugreport.EventBugReport, DistinctID: "u2", Timestamp: ts, CreatedAt: ts, Properties: `{}`}
	if err := db.WriteEvents(ctx, []bugreport.Event{rep, other}); err != nil {
		t.Fatal(err)
	}
	if mime, data, err := db.Screenshot(ctx, rep.UUID); err != nil || mime != "image/png" || string(data) != string(png) {
		t.Errorf("screenshot: %q %q %v", mime, data, err)
	}
	now := ts.Add(10 * time.Minute)
	pending, err := db.PendingReportEvents(ctx, []string{"p"}, now, 24*time.Hour, 10)
	if err != nil || len(pending) != 2 {
		t.Fatalf("pending report events: %d, %v; want 2", len(pending), err)
	}
	for _, e := range []bugreport.Event{rep, other} {
		r := &bugreport.Report{ID: e.UUID, Project: "p", ReportedAt: ts, ReceivedAt: ts, Title: "t", Fingerprint: "fp",
			Reporter: bugreport.Reporter{DistinctID: e.DistinctID}, Route: bugreport.RouteDecision{Team: "billing", Route: "r"}}
		if err := db.SaveReport(ctx, r, "rules"); err != nil {
			t.Fatal(err)
		}
		r.Route.Team = "platform"
		if err := db.SaveReport(ctx, r, "manual"); err != nil {
			t.Fatal(err)
		}
	}
	if pending, err := db.PendingReportEvents(ctx, []string{"p"}, now, 24*time.Hour, 10); err != nil || len(pending) != 0 {
		t.Errorf("pending after saving the reports: %d, %v; want 0", len(pending), err)
	}
	if got, err := db.Report(ctx, rep.UUID); err != nil || got.Route.Team != "platform" {
		t.Errorf("report: %+v, %v; want the latest version (team platform)", got, err)
	}
	if page, err := db.Reports(ctx, bugreport.ReportFilter{Team: "platform", Limit: 10}); err != nil || len(page.Reports) != 2 {
		t.Errorf("reports of team platform: %d, %v; want 2", len(page.Reports), err)
	}
	if n, err := db.SimilarCount(ctx, "p", "fp", ts.Add(-time.Hour), rep.UUID); err != nil || n != 1 {
		t.Errorf("similar count: %d, %v; want 1", n, err)
	}
	toTicket, err := db.ReportsToTicket(ctx, now, time.Minute, 24*time.Hour, 10)
	if err != nil || len(toTicket) != 2 {
		t.Fatalf("reports to ticket: %v, %v; want both", toTicket, err)
	}
	link := &bugreport.TicketLink{ReportID: other.UUID, Project: "p", ReportedAt: ts, TicketID: 41, Team: "platform", State: bugreport.SyncSynced}
	if err := db.SaveTicketLink(ctx, link); err != nil {
		t.Fatal(err)
	}
	if toTicket, err := db.ReportsToTicket(ctx, now, time.Minute, 24*time.Hour, 10); err != nil || !slices.Equal(toTicket, []bugreport.UUID{rep.UUID}) {
		t.Errorf("reports to ticket after one link: %v, %v; want only %s", toTicket, err, rep.UUID)
	}
	if id, err := db.ProblemTicket(ctx, "p", "fp", ts.Add(-time.Hour), rep.UUID); err != nil || id != 41 {
		t.Errorf("problem ticket: %d, %v; want 41", id, err)
	}
	if open, err := db.OpenTicketLinks(ctx, ts.Add(-time.Hour), 10); err != nil || len(open) != 1 {
		t.Errorf("open ticket links: %d, %v; want 1", len(open), err)
	}
	if err := db.SaveTicketStatus(ctx, link, "closed", now); err != nil {
		t.Fatal(err)
	}
	if open, err := db.OpenTicketLinks(ctx, ts.Add(-time.Hour), 10); err != nil || len(open) != 0 {
		t.Errorf("open ticket links after closing: %d, %v; want 0", len(open), err)
	}
	// A trend with a JOIN of two Distributed tables.
	res, err := trends.NewQuerier(db.Conn(), 10*time.Second).Trend(ctx, trends.Query{Metric: trends.OpenSolved, Interval: "day",
		From: ts.Add(-24 * time.Hour), To: now.Add(time.Hour), Location: time.UTC})
	if err != nil {
		t.Fatalf("open/solved trend: %v", err)
	}
	t.Logf("open/solved trend: %+v", res)
}

// TestDeployExamples checks deploy/clickhouse's example server configs:
// well-formed, one macros file per replica of remote_servers with that
// replica's shard, and the profile setting 18.16 needs.
func TestDeployExamples(t *testing.T) {
	dir := filepath.Join("..", "..", "deploy", "clickhouse")
	var remote struct {
		Cluster []struct {
			XMLName xml.Name
			Shards  []struct {
				InternalReplication bool `xml:"internal_replication"`
				Replicas            []struct {
					Host string `xml:"host"`
				} `xml:"replica"`
			} `xml:"shard"`
		} `xml:"remote_servers>arubug"`
	}
	decode := func(name string, v any) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := xml.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	decode("config.d/remote_servers.xml", &remote)
	if len(remote.Cluster) != 1 || len(remote.Cluster[0].Shards) != 2 {
		t.Fatalf("remote_servers: want cluster arubug with 2 shards: %+v", remote)
	}
	for i, shard := range remote.Cluster[0].Shards {
		if !shard.InternalReplication || len(shard.Replicas) != 2 {
			t.Errorf("shard %d: want internal_replication and 2 replicas: %+v", i+1, shard)
		}
		for _, r := range shard.Replicas {
			name, _, _ := strings.Cut(r.Host, ".")
			var m struct {
				Shard   string `xml:"macros>shard"`
				Replica string `xml:"macros>replica"`
			}
			decode("macros/"+name+".xml", &m)
			if m.Shard != fmt.Sprint(i+1) || m.Replica != name {
				t.Errorf("macros/%s.xml: shard %q replica %q, want %d and %s", name, m.Shard, m.Replica, i+1, name)
			}
		}
	}
	var zk struct {
		Nodes []string `xml:"zookeeper>node>host"`
		DDL   string   `xml:"distributed_ddl>path"`
	}
	decode("config.d/zookeeper.xml", &zk)
	if len(zk.Nodes) == 0 || zk.DDL == "" {
		t.Errorf("zookeeper.xml: %+v", zk)
	}
	var users struct {
		Mode string `xml:"profiles>arubug>distributed_product_mode"`
		Sync string `xml:"profiles>arubug>insert_distributed_sync"`
	}
	decode("users.d/arubug.xml", &users)
	if users.Mode != "global" || users.Sync != "1" {
		t.Errorf("users.d/arubug.xml profile: %+v", users)
	}
	var inter struct {
		Port string `xml:"interserver_http_port"`
	}
	decode("config.d/interserver.xml", &inter)
	if inter.Port == "" {
		t.Error("interserver.xml has no interserver_http_port")
	}
}
