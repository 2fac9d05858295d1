package clickhouse

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
	_ "time/tzdata" // the zones of TestServerDay, wherever the test runs

	"github.com/google/uuid"

	"github.com/arubug/arubug/internal/bugreport"
)

func TestServerDay(t *testing.T) {
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	newYork, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		t   string
		loc *time.Location
	}{
		{"2026-11-27T23:59:59.999Z", time.UTC},
		{"2026-11-28T00:00:00Z", time.UTC},
		{"2026-11-27T18:29:59.5Z", kolkata}, // 23:59:59 there
		{"2026-11-27T18:30:00Z", kolkata},
		{"2026-03-08T04:59:59Z", newYork}, // the night clocks move forward
		{"2026-03-08T05:00:00Z", newYork},
		{"2026-11-01T03:59:59Z", newYork}, // and back
		{"2026-11-01T04:00:00Z", newYork},
		{"1970-01-01T00:00:00Z", kolkata},
		{"1969-12-31T23:59:59.5Z", time.UTC}, // a day before the epoch
	} {
		ts, err := time.Parse(time.RFC3339Nano, tc.t)
		if err != nil {
			t.Fatal(err)
		}
		// The oracle: the date of the stored whole second, where the
		// server is, counted from 1970-01-01.
		y, m, d := ts.Truncate(time.Second).In(tc.loc).Date()
		want := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
		if got := serverDay(ts, tc.loc); got != want {
			t.Errorf("serverDay(%s, %s) = %d, want %d", tc.t, tc.loc, got, want)
		}
	}
}

// unsortedEvents are n events in a random order that exercise every part
// of the events table's sorting key: ties in the leading parts, the
// server's midnight (in loc), and pairs of events equal but for one half of
// their UUIDs.
func unsortedEvents(n int, loc *time.Location) []bugreport.Event {
	r := rand.New(rand.NewPCG(1, 2))
	midnight := time.Date(2026, 11, 28, 0, 0, 0, 0, loc)
	evs := make([]bugreport.Event, n)
	for i := range evs {
		var id bugreport.UUID
		binary.BigEndian.PutUint64(id[:8], r.Uint64())
		binary.BigEndian.PutUint64(id[8:], r.Uint64())
		ts := midnight.Add(time.Duration(r.IntN(4000)-2000) * time.Second).Add(time.Duration(r.IntN(1000)) * time.Millisecond)
		evs[i] = bugreport.Event{
			UUID:       id,
			Project:    []string{"order-a", "order-b", "order-ab"}[r.IntN(3)],
			Event:      []string{"$pageview", "$autocapture", "$pageleave", "signup"}[r.IntN(4)],
			DistinctID: fmt.Sprintf("user-%d", r.IntN(7)),
			Timestamp:  ts, CreatedAt: ts,
			Properties: `{}`,
		}
		if i%5 == 1 || i%5 == 2 {
			// The key of the event before, but for one half of the UUID.
			prev := evs[i-1]
			prev.UUID = id
			if i%5 == 1 {
				copy(prev.UUID[:8], evs[i-1].UUID[:8])
			} else {
				copy(prev.UUID[8:], evs[i-1].UUID[8:])
			}
			evs[i] = prev
		}
	}
	r.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	return evs
}

func TestSortedOrderKeepsReplaysInBatchOrder(t *testing.T) {
	// Copies of two events, interleaved; each later copy is a replay.
	var evs []bugreport.Event
	for i := range 64 {
		evs = append(evs, bugreport.Event{UUID: bugreport.UUID{byte(i % 2)}, Project: "p", Event: "e", DistinctID: "u",
			Timestamp: time.Unix(1e9, 0), Properties: fmt.Sprintf(`{"copy":%d}`, i)})
	}
	var want []int
	for i := 0; i < 64; i += 2 {
		want = append(want, i)
	}
	for i := 1; i < 64; i += 2 {
		want = append(want, i)
	}
	if got := sortedOrder(evs, time.UTC); !slices.Equal(got, want) {
		t.Errorf("sortedOrder = %v, want %v: replays must keep their order, as ClickHouse keeps the last", got, want)
	}
}

func TestWriteEventsSendsTheTableOrder(t *testing.T) {
	db, ctx := migrated(t)
	// More than one block: the server squashes them into one part.
	evs := unsortedEvents(2*insertBlockRows+1, db.tz)
	// The order computed here is the server's own ORDER BY.
	var want []uuid.UUID
	for _, i := range sortedOrder(evs, db.tz) {
		want = append(want, uuid.UUID(evs[i].UUID))
	}
	sortedBlocks := func() uint64 {
		var n uint64
		if err := db.conn.QueryRow(ctx, "SELECT toUInt64(sum(value)) FROM system.events WHERE event = 'MergeTreeDataWriterBlocksAlreadySorted'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// The counter is the server's: first show that an unsorted insert
	// leaves it alone (two rows in descending UUID order, for the events
	// table and for person_events alike).
	before := sortedBlocks()
	control, err := db.conn.PrepareBatch(ctx, "INSERT INTO events (uuid, project, event, distinct_id, timestamp, created_at, properties)")
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	for _, id := range []string{"00000000-0000-0000-0000-000000000002", "00000000-0000-0000-0000-000000000001"} {
		if err := control.Append(uuid.MustParse(id), "control", "e", "u", ts, ts, "{}"); err != nil {
			t.Fatal(err)
		}
	}
	if err := control.Send(); err != nil {
		t.Fatal(err)
	}
	if after := sortedBlocks(); after != before {
		t.Fatalf("an unsorted insert moved MergeTreeDataWriterBlocksAlreadySorted from %d to %d: the counter cannot tell", before, after)
	}
	if err := db.WriteEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	// ClickHouse found WriteEvents' block sorted, so skipped sorting it.
	if after := sortedBlocks(); after <= before {
		t.Errorf("MergeTreeDataWriterBlocksAlreadySorted stayed at %d: ClickHouse sorted the insert itself", after)
	}
	rows, err := db.conn.Query(ctx, "SELECT uuid FROM events WHERE project LIKE 'order-%' ORDER BY project, toDate(timestamp), event, cityHash64(distinct_id), uuid")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		got = append(got, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("the server's order and sortedOrder differ first at row %d of %d/%d: %s, want %s", i, len(got), len(want), got[i], want[i])
			}
		}
		t.Fatalf("the server has %d rows, sortedOrder %d", len(got), len(want))
	}
}

// BenchmarkSortedOrder orders 8 000 events, the drainer's insert at 8 000
// events/s: the collector's side of the saving.
func BenchmarkSortedOrder(b *testing.B) {
	evs := unsortedEvents(8000, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		sortedOrder(evs, time.UTC)
	}
}
