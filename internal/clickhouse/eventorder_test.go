package clickhouse

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

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

// orderedEvents are n distinct events in a random order that exercise every
// part of the events table's sorting key: ties in the leading parts, a day
// boundary, and UUIDs that differ only in one half.
func orderedEvents(n int) []bugreport.Event {
	r := rand.New(rand.NewPCG(1, 2))
	midnight := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	evs := make([]bugreport.Event, n)
	for i := range evs {
		id := bugreport.UUID(uuid.New())
		switch i % 5 {
		case 1: // the same first half as the one before
			copy(id[:8], evs[i-1].UUID[:8])
		case 2: // the same second half as the one before
			copy(id[8:], evs[i-1].UUID[8:])
		}
		ts := midnight.Add(time.Duration(r.IntN(4000)-2000) * time.Second).Add(time.Duration(r.IntN(1000)) * time.Millisecond)
		evs[i] = bugreport.Event{
			UUID:       id,
			Project:    []string{"order-a", "order-b", "order-ab"}[r.IntN(3)],
			Event:      []string{"$pageview", "$autocapture", "$pageleave", "signup"}[r.IntN(4)],
			DistinctID: fmt.Sprintf("user-%d", r.IntN(7)),
			Timestamp:  ts, CreatedAt: ts,
			Properties: `{}`,
		}
	}
	r.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	return evs
}

func TestWriteEventsSendsTheTableOrder(t *testing.T) {
	db, ctx := migrated(t)
	evs := orderedEvents(600)
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
	before := sortedBlocks()
	if err := db.WriteEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	// ClickHouse found the block sorted, so skipped sorting it.
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
	evs := orderedEvents(8000)
	b.ReportAllocs()
	for b.Loop() {
		sortedOrder(evs, time.UTC)
	}
}
