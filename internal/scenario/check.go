package scenario

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/arubug/arubug/internal/bugreport"
)

// store reads what the invariants need from ClickHouse.
type store struct {
	conn driver.Conn
}

func openStore(dsn string) (*store, error) {
	o, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	o.DialTimeout = 5 * time.Second
	o.ReadTimeout = 60 * time.Second
	conn, err := clickhouse.Open(o)
	if err != nil {
		return nil, err
	}
	return &store{conn: conn}, nil
}

func (s *store) Close() error { return s.conn.Close() }

// uuidCounts returns the number of rows per event uuid among the events
// whose distinct_id starts with prefix. With final, the table is read with
// FINAL (replays collapsed, which is what "stored once" means for a
// ReplacingMergeTree), after an OPTIMIZE … FINAL: on ClickHouse 18.16 the
// OPTIMIZE is silently a no-op while a background merge holds the parts, so
// the FINAL read is what makes the count exact.
func (s *store) uuidCounts(ctx context.Context, prefix string, final bool) (map[string]uint64, error) {
	from := "events"
	if final {
		if err := s.conn.Exec(ctx, "OPTIMIZE TABLE events FINAL"); err != nil {
			return nil, fmt.Errorf("optimize events: %w", err)
		}
		from = "events FINAL"
	}
	return s.countBy(ctx, "SELECT toString(uuid), count() FROM "+from+" WHERE startsWith(distinct_id, ?) GROUP BY uuid", prefix)
}

// messageCounts returns the rows per uuid of the thread events
// ($bug_report_message) of the given tickets, read with FINAL.
func (s *store) messageCounts(ctx context.Context, tickets []int64) (map[string]uint64, error) {
	if len(tickets) == 0 {
		return map[string]uint64{}, nil
	}
	ids := make([]string, 0, len(tickets))
	for _, t := range tickets {
		ids = append(ids, "'zendesk_ticket_"+strconv.FormatInt(t, 10)+"'")
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	q := "SELECT toString(uuid), count() FROM events FINAL WHERE event = ? AND distinct_id IN (" + strings.Join(ids, ",") + ") GROUP BY uuid"
	return s.countBy(ctx, q, bugreport.EventBugReportMessage)
}

func (s *store) countBy(ctx context.Context, q string, args ...any) (map[string]uint64, error) {
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var id string
		var n uint64
		if err := rows.Scan(&id, &n); err != nil {
			return nil, err
		}
		out[id] = n
	}
	return out, rows.Err()
}

// reports returns the ids of the reports of the run (by distinct_id
// prefix) that triage flagged as spam, and the number of reports stored.
func (s *store) reports(ctx context.Context, prefix string) (stored int, spam map[string]bool, err error) {
	rows, err := s.conn.Query(ctx, "SELECT toString(report_id), max(spam) FROM bug_reports FINAL WHERE startsWith(distinct_id, ?) GROUP BY report_id", prefix)
	if err != nil {
		return 0, nil, err
	}
	defer rows.Close()
	spam = map[string]bool{}
	for rows.Next() {
		var id string
		var sp uint8
		if err := rows.Scan(&id, &sp); err != nil {
			return 0, nil, err
		}
		stored++
		if sp != 0 {
			spam[id] = true
		}
	}
	return stored, spam, rows.Err()
}
