package clickhouse

import (
	"cmp"
	"encoding/binary"
	"slices"
	"strings"
	"time"

	"github.com/go-faster/city"

	"github.com/arubug/arubug/internal/bugreport"
)

// WriteEvents sends each insert already in the order of the events table's
// sorting key, (project, toDate(timestamp), event, cityHash64(distinct_id),
// uuid). Before it writes a block as a part, ClickHouse checks whether the
// block is sorted (MergeTreeDataWriter, in 18.16 as in current releases;
// the MergeTreeDataWriterBlocksAlreadySorted counter) and then skips
// sorting it and, in 18.16, copying every column, properties included, into
// the sorted order: at 5 000-8 000 events/s that copy
// (ColumnString::permute) was 10-15 % of the managed server's CPU
// (docs/benchmarks.md). Current releases with optimize_on_insert copy the
// columns once anyway; they still skip the sort.
//
// Should the order computed here differ from the server's (another time
// zone database, say, or cluster nodes in different time zones: toDate is
// cut in the zone of the node the driver first reached), the server sorts
// the block as it always did. What is stored is the same, with one rare
// exception: replays of one event whose days differ only by that time zone
// disagreement may then reach the server in another order, which decides
// which copy a ReplacingMergeTree keeps.

// eventKey is an event's sorting key, in the form ClickHouse compares it.
type eventKey struct {
	project, event string
	day            int64  // toDate(timestamp): the day in the server's time zone
	hash           uint64 // cityHash64(distinct_id)
	// The UUID as the server compares it: a UInt128 whose high half is the
	// UUID's last 8 bytes, so those bytes sort first.
	uuidHigh, uuidLow uint64
	i                 int // the event's index in the batch
}

// compareEventKeys stops at the first difference: cmp.Or, which computes
// every comparison, made BenchmarkSortedOrder half as slow again.
func compareEventKeys(a, b eventKey) int {
	if c := strings.Compare(a.project, b.project); c != 0 {
		return c
	}
	if c := cmp.Compare(a.day, b.day); c != 0 {
		return c
	}
	if c := strings.Compare(a.event, b.event); c != 0 {
		return c
	}
	if c := cmp.Compare(a.hash, b.hash); c != 0 {
		return c
	}
	if c := cmp.Compare(a.uuidHigh, b.uuidHigh); c != 0 {
		return c
	}
	if c := cmp.Compare(a.uuidLow, b.uuidLow); c != 0 {
		return c
	}
	// Rows with equal keys are replays of one event, and a
	// ReplacingMergeTree without a version keeps the last one inserted:
	// the server's own sort is stable, so keep the batch's order.
	return cmp.Compare(a.i, b.i)
}

// serverDay is toDate of the DateTime t is stored as (whole seconds) in
// loc: the days since 1970-01-01 of t's date there.
func serverDay(t time.Time, loc *time.Location) int64 {
	sec := t.Unix()
	local := sec
	if loc != nil && loc != time.UTC {
		_, offset := time.Unix(sec, 0).In(loc).Zone()
		local += int64(offset)
	}
	// Floor division: days before 1970 are negative. (The server's
	// DateTime cannot hold them, and capture refuses such timestamps, but
	// a wrong key only costs the presorting.)
	day := local / 86400
	if local%86400 < 0 {
		day--
	}
	return day
}

// sortedOrder returns the indexes of events in the events table's order,
// with toDate taken in loc, the server's time zone.
func sortedOrder(events []bugreport.Event, loc *time.Location) []int {
	keys := make([]eventKey, 0, len(events))
	for i := range events {
		e := &events[i]
		keys = append(keys, eventKey{
			project:  e.Project,
			event:    e.Event,
			day:      serverDay(e.Timestamp, loc),
			hash:     city.CH64([]byte(e.DistinctID)),
			uuidHigh: binary.BigEndian.Uint64(e.UUID[8:]),
			uuidLow:  binary.BigEndian.Uint64(e.UUID[:8]),
			i:        i,
		})
	}
	slices.SortFunc(keys, compareEventKeys)
	order := make([]int, len(keys))
	for j, k := range keys {
		order[j] = k.i
	}
	return order
}
