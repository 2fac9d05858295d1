package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/arubug/arubug/internal/clickhouse"
	"github.com/arubug/arubug/internal/clickhouse/localch/localchtest"
	"github.com/arubug/arubug/internal/loadgen"
)

// TestClusterReplicaKilledUnderLoad runs Arubug on a real ClickHouse cluster
// (deploy/clickhouse/local-cluster.sh: ZooKeeper, two shards, the first with
// two replicas): `arubug migrate --cluster` creates the schema, two
// instances take load through the Distributed tables, one replica is killed
// with SIGKILL and started again during the load, and afterwards every
// 2xx'd event is in the Distributed events table exactly once, and the
// killed replica has caught up with its twin.
func TestClusterReplicaKilledUnderLoad(t *testing.T) {
	began := time.Now()
	c := localchtest.NewCluster(t, "2,1")
	t.Logf("cluster %s up in %s: zookeeper %s, nodes %v", c.Name, time.Since(began).Round(time.Millisecond), c.ZooKeeper, c.Nodes)
	const database = "arubug"

	migrate := exec.Command(binary(t), "migrate", "--cluster", c.Name)
	migrate.Env = append(os.Environ(), "ARUBUG_CLICKHOUSE_DSN="+c.DSN(database), "ARUBUG_DATA_DIR="+t.TempDir(), "ARUBUG_LOG_FORMAT=json")
	out, err := migrate.CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("migrations applied: %d", len(clickhouse.Migrations))) {
		t.Fatalf("arubug migrate --cluster: %v\n%s", err, out)
	}

	// Each instance prefers a different node: a's first choice is the
	// replica that gets killed, so its connections must fail over; b writes
	// through the other shard's node, whose Distributed table must find
	// the surviving replica.
	cluster := "ARUBUG_CLICKHOUSE_CLUSTER=" + c.Name
	a := startArubug(t, c.DSN(database, "s1r1", "s1r2", "s2r1"), cluster)
	b := startArubug(t, c.DSN(database, "s2r1", "s1r2", "s1r1"), cluster)

	// The load runs until a few seconds after the replica is back, however
	// long its start takes on a busy machine (Duration only caps it).
	run := "cluster-" + uuid.NewString()[:8]
	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	la := startLoadUntil(ctx, t, "http://"+a.addr, loadgen.Config{RunID: run + "a", Concurrency: 4, Duration: 2 * time.Minute, Rate: 150, BatchSize: 10})
	lb := startLoadUntil(ctx, t, "http://"+b.addr, loadgen.Config{RunID: run + "b", Concurrency: 4, Duration: 2 * time.Minute, Rate: 150, BatchSize: 10, Gzip: true})

	time.Sleep(3 * time.Second)
	if err := c.Kill("s1r1"); err != nil {
		t.Fatal(err)
	}
	t.Log("killed replica s1r1 with SIGKILL")
	time.Sleep(4 * time.Second)
	restart := time.Now()
	if err := c.StartNode("s1r1"); err != nil {
		t.Fatal(err)
	}
	t.Logf("replica s1r1 answers again after %s", time.Since(restart).Round(time.Millisecond))
	time.Sleep(4 * time.Second)
	stopLoad()

	ra, rb := <-la, <-lb
	t.Logf("instance a: %d requests, %d ok, errors %v", ra.Requests, ra.OK, ra.ErrorsByKind)
	t.Logf("instance b: %d requests, %d ok, errors %v", rb.Requests, rb.OK, rb.ErrorsByKind)
	for _, in := range []*instance{a, b} {
		if logHas(in.log(), "clickhouse insert failed; will retry") {
			t.Logf("instance %s retried inserts during the outage, as it should when they fail", in.addr)
		}
	}

	db := openDB(t, c.DSN(database))
	checkClusterExactlyOnce(t, db, run+"a:", ra.AckedUUIDs)
	checkClusterExactlyOnce(t, db, run+"b:", rb.AckedUUIDs)

	// The killed replica caught up: both replicas of shard 1 hold the same
	// events of the run, and shard 2 holds the rest.
	perNode := map[string]uint64{}
	for _, node := range []string{"s1r1", "s1r2", "s2r1"} {
		n, _ := c.Node(node)
		ndb := openDB(t, "clickhouse://"+n.TCPAddr+"/"+database)
		syncCtx, syncCancel := context.WithTimeout(context.Background(), 60*time.Second)
		if err := ndb.Conn().Exec(syncCtx, "SYSTEM SYNC REPLICA events_local"); err != nil {
			t.Errorf("%s: SYSTEM SYNC REPLICA: %v", node, err)
		}
		syncCancel()
		var count uint64
		if err := ndb.Conn().QueryRow(context.Background(), "SELECT uniqExact(uuid) FROM events_local WHERE startsWith(distinct_id, ?)", run).Scan(&count); err != nil {
			t.Fatal(err)
		}
		perNode[node] = count
	}
	total := len(ra.AckedUUIDs) + len(rb.AckedUUIDs)
	t.Logf("events of the run per node: %v (%d acknowledged)", perNode, total)
	if perNode["s1r1"] != perNode["s1r2"] {
		t.Errorf("the replicas of shard 1 differ: s1r1 has %d events, s1r2 %d", perNode["s1r1"], perNode["s1r2"])
	}
	if perNode["s1r2"] == 0 || perNode["s2r1"] == 0 {
		t.Errorf("the events are not spread over both shards: %v", perNode)
	}
	t.Logf("whole test took %s", time.Since(began).Round(time.Millisecond))
}

// checkClusterExactlyOnce is checkExactlyOnce for a cluster: OPTIMIZE is
// not a Distributed table's to run, so the merged view is read with FINAL,
// which each shard applies to its own rows; all versions of an event are on
// one shard (clickhouse.ShardingKeys), so that is every event's final row.
func checkClusterExactlyOnce(t *testing.T, db *clickhouse.DB, prefix string, acked []string) {
	t.Helper()
	if len(acked) == 0 {
		t.Fatalf("%s: no event was acknowledged; the test proves nothing", prefix)
	}
	waitFor(t, 90*time.Second, "every acknowledged event in ClickHouse", func() (bool, string) {
		got := uuidRows(t, db, prefix, false)
		missing := 0
		for _, id := range acked {
			if got[id] == 0 {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d acknowledged events missing", missing, len(acked))
	})
	raw, final := uuidRows(t, db, prefix, false), uuidRows(t, db, prefix, true)
	dups, extra := 0, 0
	for _, id := range acked {
		if final[id] != 1 {
			dups++
			if dups < 5 {
				t.Errorf("%s: event %s has %d rows with FINAL", prefix, id, final[id])
			}
		}
		extra += int(raw[id]) - 1
	}
	if dups > 0 {
		t.Errorf("%s: %d of %d acknowledged events are not stored exactly once", prefix, dups, len(acked))
	}
	t.Logf("%s: %d acknowledged events, all stored exactly once (%d replayed rows awaiting merge)", prefix, len(acked), extra)
}

// startLoadUntil is startLoad for a load that runs until ctx is cancelled:
// the cancellation is its normal end, not an error.
func startLoadUntil(ctx context.Context, t *testing.T, baseURL string, cfg loadgen.Config) <-chan loadgen.Result {
	t.Helper()
	return goLoad(ctx, t, baseURL, cfg, true)
}

func TestClusterFlagAlias(t *testing.T) {
	got := clusterFlagAlias([]string{"--cluster", "c1", "-cluster=c2", "--clickhouse-dsn=x", "--clusters", "--", "--cluster"})
	want := []string{"--clickhouse-cluster", "c1", "--clickhouse-cluster=c2", "--clickhouse-dsn=x", "--clusters", "--", "--cluster"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("clusterFlagAlias = %q, want %q", got, want)
	}
}
