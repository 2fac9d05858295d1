package enrich

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"

	"github.com/arubug/arubug/internal/bugreport"
)

// Windows and bounds of Usage. They are fixed rather than configurable
// because the report template and the people reading it rely on them.
const (
	// UsageWindow is how far back Events30d, ActiveDays30d, Sessions30d,
	// TopEvents and TopPages look.
	UsageWindow = 30 * 24 * time.Hour
	// HistoryWindow bounds "all time" for FirstSeen, LastSeen, Person and
	// FeatureFlags, so that one report never scans a project's whole
	// history: FirstSeen is "first seen in the last 365 days".
	HistoryWindow = 365 * 24 * time.Hour
	// ExceptionWindow is how far back RecentExceptions look.
	ExceptionWindow = 30 * time.Minute

	// DefaultMaxExecution is the query time limit NewQuerier uses when given
	// none.
	DefaultMaxExecution = 5 * time.Second

	maxTopEvents        = 5
	maxTopPages         = 5
	maxExceptions       = 10
	maxExceptionMessage = 500 // characters
	maxExceptionType    = 200 // characters
	maxPersonValue      = 500 // characters
	maxFeatureFlags     = 50
	maxFlagName         = 200 // characters
)

// PersonKeys are the person properties Usage reports, from $set and
// $set_once.
var PersonKeys = []string{"email", "name", "plan", "company", "organization"}

// Querier reads what a bug report learns about its reporter from the events
// table. Every query it runs carries a deadline and the server-side
// max_execution_time, and returns a bounded number of rows. It is safe for
// concurrent use.
type Querier struct {
	conn         driver.Conn
	maxExecution time.Duration
}

// NewQuerier returns a Querier on conn (from clickhouse.DB.Conn()). Each
// call of SessionStart or Usage gets at most maxExecution in all (its
// queries run concurrently under one deadline); maxExecution <= 0 means
// DefaultMaxExecution.
//
// The server is also told max_execution_time, rounded up to whole seconds
// (0 would mean unlimited). That is the backstop for when the driver's read
// deadline fires before the context's timer: the driver then drops the
// connection without sending a cancel, and the server would otherwise run
// the query to its end. clickhouse-go raises the setting to the deadline
// plus 5 s when the deadline is more than a second away; the client-side
// deadline is the limit callers can rely on.
func NewQuerier(conn driver.Conn, maxExecution time.Duration) *Querier {
	if maxExecution <= 0 {
		maxExecution = DefaultMaxExecution
	}
	return &Querier{conn: conn, maxExecution: maxExecution}
}

// withLimits returns ctx with the Querier's deadline and server settings.
func (q *Querier) withLimits(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, q.maxExecution)
	secs := int(math.Ceil(q.maxExecution.Seconds()))
	if secs < 1 {
		secs = 1
	}
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
		"max_execution_time": secs,
		// Reports read the same recent, small parts of person_events over
		// and over (a granule holds 8192 rows of many people): keeping them
		// decompressed saves most of a query's work under insert load.
		"use_uncompressed_cache": 1,
		// Reports are triaged several at a time (triage.DefaultConcurrency)
		// on a server that is also ingesting: splitting each query over
		// threads adds their coordination and wins nothing when the cores
		// are already busy. In 40 s runs under 5 000 events/s, one thread
		// per query took the ack → routed p95 from 0.8–1.7 s to 0.44–0.55 s
		// (docs/benchmarks.md, triage, fourth round).
		"max_threads": 1,
	})), cancel
}

// scanRow runs a query that returns one row. When the deadline or the
// caller ended it, the error says so (errors.Is context.DeadlineExceeded or
// context.Canceled): the driver reports those as i/o timeouts or broken
// reads, which would look like ClickHouse failing.
func (q *Querier) scanRow(ctx context.Context, query string, args []any, dest ...any) error {
	return ctxErr(ctx, q.conn.QueryRow(ctx, query, args...).Scan(dest...))
}

// ctxErr makes err wrap ctx's error when ctx has ended.
func ctxErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ended(ctx); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %v", cerr, err)
	}
	return err
}

// ended returns why ctx has ended, or nil. The driver's read deadline, set
// from ctx's deadline, can fire before ctx's own timer does.
func ended(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// tsMS is an event's time in epoch milliseconds: the table keeps DateTime
// plus a millisecond column because 18.16 has no DateTime64. Arithmetic on
// epoch numbers also keeps results independent of the server's timezone.
const tsMS = "(toUInt64(timestamp) * 1000 + timestamp_ms)"

// personMatch selects one person's events: by distinct_id, or by device_id
// so that the anonymous events before identification count too. Its
// parameters are project, distinct id, device id, device id.
//
// The queries read person_events, the events keyed by person (see
// migration 3): person_key IN (…) uses its primary key, so a query reads one
// person's rows instead of a whole project's.
const personMatch = "project = ? AND person_key IN (?, ?) AND (distinct_id = ? OR (? != '' AND device_id = ?))"

// timeRange bounds events to [from, to]. The whole-second bounds on
// timestamp and toDate(timestamp) let ClickHouse prune partitions and
// primary-key ranges; the millisecond bounds are the exact ones. Its
// parameters are from and to in seconds, twice, then in milliseconds.
const timeRange = "timestamp >= toDateTime(?) AND timestamp <= toDateTime(?)" +
	" AND toDate(timestamp) >= toDate(toDateTime(?)) AND toDate(timestamp) <= toDate(toDateTime(?))" +
	" AND " + tsMS + " >= ? AND " + tsMS + " <= ?"

func timeRangeArgs(from, to time.Time) []any {
	f, t := max(from.Unix(), 0), max(to.Unix(), 0)
	return []any{f, t, f, t, max(from.UnixMilli(), 0), max(to.UnixMilli(), 0)}
}

// isActivity says an event is the person's own activity: everything except
// the bug report itself and the widget's own $bug_report_* events (opened,
// dismissed, …), which would otherwise make every reporter look active just
// now.
const isActivity = "(event != '$bug_report' AND NOT startsWith(event, '$bug_report_'))"

// isNonEmptyJSONString matches the raw text of a JSON value that is a
// non-empty string. visitParamExtractString would be simpler but finds
// nothing when the JSON has a space after the colon, as Python's json.dumps
// writes; visitParamExtractRaw copes, and Go decodes the string.
const isNonEmptyJSONString = `match(%s, '^\\s*"[^"]')`

// usageQuery reads, in one pass over the person's last HistoryWindow of
// events, everything Usage reports except a list of several recent
// exceptions: counts, first and last seen, person properties, feature flags,
// the top events and pages, and the number (and, when there is just one, the
// content) of the recent exceptions. One pass instead of one query per part
// matters under insert load: each read of person_events costs at least a
// granule per part, whatever the person.
//
// The inner query groups the person's events by name and page (the page only
// for $pageview), so that the top lists come from per-group counts; every
// other figure is kept as an aggregate state and merged across the groups by
// the outer query, which gives exactly what a single ungrouped aggregate
// would. Counting uniqExact(uuid) rather than rows keeps replayed
// duplicates, which the ReplacingMergeTree collapses only eventually, from
// counting twice. Ties in the top lists are broken by name so that the same
// data always gives the same report. A $pageview without $pathname falls back
// to the path of $current_url. Person properties and flags take the
// $bug_report events into account: they describe state, and the report may
// carry the freshest.
//
// Its parameters: the 30-day bound (ms) three times, the exception bound
// (ms), then the person and the history range (personMatch, timeRange).
var usageQuery = func() string {
	act30 := fmt.Sprintf("(%s AND %s >= ?)", isActivity, tsMS)
	var b strings.Builder
	b.WriteString("SELECT\n")
	b.WriteString("  uniqExactMerge(s_events) AS events_30d,\n")
	b.WriteString("  uniqExactMerge(s_days) AS active_days_30d,\n")
	b.WriteString("  uniqExactMerge(s_sessions) AS sessions_30d,\n")
	b.WriteString("  sum(seen) AS seen_total,\n")
	b.WriteString("  minIf(first_ms, seen > 0) AS first_seen_ms,\n")
	b.WriteString("  max(last_ms) AS last_seen_ms,\n")
	for _, col := range []struct{ merge, alias string }{{"argMaxMerge", "set"}, {"argMinMerge", "set_once"}} {
		for i := range PersonKeys {
			fmt.Fprintf(&b, "  %s(%s_%d),\n", col.merge, col.alias, i)
		}
	}
	b.WriteString("  argMaxMerge(s_active_flags) AS active_flags,\n")
	b.WriteString("  argMaxMerge(s_feature_props) AS feature_props,\n")
	// Every event but $pageview has one group; $pageview has one per page.
	b.WriteString("  sumIf(n, event = '$pageview') AS pageviews,\n")
	fmt.Fprintf(&b, "  arrayMap(x -> x.1, arraySlice(arraySort(x -> (-toInt64(x.2), x.1), groupArrayIf((event, n), event != '$pageview' AND n > 0)), 1, %d) AS top_events) AS top_event_names,\n", maxTopEvents)
	b.WriteString("  arrayMap(x -> x.2, top_events) AS top_event_counts,\n")
	fmt.Fprintf(&b, "  arrayMap(x -> x.1, arraySlice(arraySort(x -> (-toInt64(x.2), x.1), groupArrayIf((page, n), page != '' AND n > 0)), 1, %d) AS top_pages) AS top_page_names,\n", maxTopPages)
	b.WriteString("  arrayMap(x -> x.2, top_pages) AS top_page_counts,\n")
	b.WriteString("  sum(exc_n) AS exceptions,\n")
	b.WriteString("  max(exc_at_ms) AS exception_at_ms,\n")
	b.WriteString("  anyIf(exc_type, exc_n > 0) AS exception_type,\n")
	b.WriteString("  anyIf(exc_message, exc_n > 0) AS exception_message,\n")
	b.WriteString("  anyIf(exc_list, exc_n > 0) AS exception_list\n")
	b.WriteString("FROM (\n  SELECT\n")
	b.WriteString("    event,\n")
	b.WriteString("    if(event = '$pageview', if(pathname != '', pathname, path(current_url)), '') AS page,\n")
	fmt.Fprintf(&b, "    uniqExactIf(uuid, %s) AS n,\n", act30)
	fmt.Fprintf(&b, "    uniqExactStateIf(uuid, %s) AS s_events,\n", act30)
	fmt.Fprintf(&b, "    uniqExactStateIf(intDiv(toUInt32(timestamp), 86400), %s) AS s_days,\n", act30)
	fmt.Fprintf(&b, "    uniqExactStateIf(session_id, %s AND session_id != '') AS s_sessions,\n", act30)
	fmt.Fprintf(&b, "    countIf(%s) AS seen,\n", isActivity)
	fmt.Fprintf(&b, "    minIf(%[2]s, %[1]s) AS first_ms,\n", isActivity, tsMS)
	fmt.Fprintf(&b, "    maxIf(%[2]s, %[1]s) AS last_ms,\n", isActivity, tsMS)
	for _, col := range []struct{ agg, column, alias string }{{"argMaxStateIf", "person_set", "set"}, {"argMinStateIf", "person_set_once", "set_once"}} {
		for i, k := range PersonKeys {
			raw := fmt.Sprintf("visitParamExtractRaw(%s, '%s')", col.column, k)
			fmt.Fprintf(&b, "    %s(substring(%s, 1, 4096), %s, %s) AS %s_%d,\n",
				col.agg, raw, tsMS, fmt.Sprintf(isNonEmptyJSONString, raw), col.alias, i)
		}
	}
	// person_events extracts the flag state at insert (migration 3).
	fmt.Fprintf(&b, "    argMaxStateIf(active_flags, %s, has_flags = 1) AS s_active_flags,\n", tsMS)
	fmt.Fprintf(&b, "    argMaxStateIf(feature_props, %s, has_flags = 1) AS s_feature_props,\n", tsMS)
	isExc := fmt.Sprintf("(event = '$exception' AND %s >= ?)", tsMS)
	fmt.Fprintf(&b, "    uniqExactIf(uuid, %s) AS exc_n,\n", isExc)
	fmt.Fprintf(&b, "    maxIf(%[1]s, %[2]s) AS exc_at_ms,\n", tsMS, isExc)
	fmt.Fprintf(&b, "    argMaxIf(substring(visitParamExtractRaw(exception_properties, '$exception_type'), 1, 4096), %[1]s, %[2]s) AS exc_type,\n", tsMS, isExc)
	fmt.Fprintf(&b, "    argMaxIf(substring(visitParamExtractRaw(exception_properties, '$exception_message'), 1, 8192), %[1]s, %[2]s) AS exc_message,\n", tsMS, isExc)
	fmt.Fprintf(&b, "    argMaxIf(substring(visitParamExtractRaw(exception_properties, '$exception_list'), 1, 65536), %[1]s, %[2]s) AS exc_list\n", tsMS, isExc)
	b.WriteString("  FROM person_events\n")
	fmt.Fprintf(&b, "  WHERE %s\n    AND %s\n", personMatch, timeRange)
	b.WriteString("  GROUP BY event, page\n)")
	return b.String()
}()

// exceptionQuery reads the latest $exception events. The raw values are
// decoded in Go, which copes with whitespace and escapes; they are cut to a
// size that bounds the transfer. LIMIT 1 BY uuid drops replayed duplicates.
var exceptionQuery = fmt.Sprintf(`SELECT
  %[3]s AS at_ms,
  substring(visitParamExtractRaw(exception_properties, '$exception_type'), 1, 4096) AS raw_type,
  substring(visitParamExtractRaw(exception_properties, '$exception_message'), 1, 8192) AS raw_message,
  substring(visitParamExtractRaw(exception_properties, '$exception_list'), 1, 65536) AS raw_list
FROM person_events
WHERE %[1]s AND event = '$exception' AND %[2]s
ORDER BY at_ms DESC, uuid ASC
LIMIT 1 BY uuid
LIMIT %[4]d`, personMatch, timeRange, tsMS, maxExceptions)

// sessionStartQuery reads the first event time of a session; the caller
// appends a time range when it can bound the session.
const sessionStartQuery = "SELECT count() AS n, min(" + tsMS + ") AS start_ms FROM events WHERE project = ? AND session_id = ?"

// SessionStart returns the time of the first event of a session, for the
// replay link's offset. ok is false when no event of the session is stored.
//
// posthog-js session ids are UUIDv7s whose first 48 bits are the client's
// clock at session start. For those, only the days around that time are
// read, and the whole project only if nothing is found there (a client clock
// far off). Any other id reads the whole project, within the time limit.
func (q *Querier) SessionStart(ctx context.Context, project, sessionID string) (start time.Time, ok bool, err error) {
	if sessionID == "" {
		return time.Time{}, false, nil
	}
	ctx, cancel := q.withLimits(ctx)
	defer cancel()
	if t, isV7 := uuidV7Time(sessionID); isV7 {
		// Sessions last at most a day in posthog-js; the margin covers clock
		// skew that capture corrected in event times but not in the id.
		start, ok, err = q.sessionStart(ctx, project, sessionID, t.Add(-24*time.Hour), t.Add(48*time.Hour))
		if err != nil || ok {
			return start, ok, err
		}
	}
	return q.sessionStart(ctx, project, sessionID, time.Time{}, time.Time{})
}

func (q *Querier) sessionStart(ctx context.Context, project, sessionID string, from, to time.Time) (time.Time, bool, error) {
	query, args := sessionStartQuery, []any{project, sessionID}
	if !to.IsZero() {
		query += " AND " + timeRange
		args = append(args, timeRangeArgs(from, to)...)
	}
	var n, startMS uint64
	if err := q.scanRow(ctx, query, args, &n, &startMS); err != nil {
		return time.Time{}, false, fmt.Errorf("enrich: session start: %w", err)
	}
	if n == 0 {
		return time.Time{}, false, nil
	}
	return time.UnixMilli(int64(startMS)).UTC(), true, nil
}

// MaxSessionLength is the longest a posthog-js session lasts: it starts a
// new session id after 24 hours whatever the activity.
const MaxSessionLength = 24 * time.Hour

// SessionStartFromID returns the start of a session read from its id, with
// no query, when the id says it: posthog-js session ids are UUIDv7s whose
// first 48 bits are the client's clock, in milliseconds, when it started the
// session (posthog-js stamps the id and its own session start time from the
// same clock reading, and measures its own replay offsets from it).
//
// ok is false when the id is not a UUIDv7, or when its time cannot be the
// start of a session that the report at reportedAt belongs to: after the
// report, or more than MaxSessionLength before it. That is a client clock
// far off (reportedAt is corrected for skew, the id is not); SessionStart,
// which reads the session's first stored event, is the answer then.
func SessionStartFromID(sessionID string, reportedAt time.Time) (start time.Time, ok bool) {
	t, ok := uuidV7Time(sessionID)
	if !ok || reportedAt.IsZero() || t.After(reportedAt) || reportedAt.Sub(t) > MaxSessionLength {
		return time.Time{}, false
	}
	return t, true
}

// uuidV7Time returns the timestamp in a version 7 UUID.
func uuidV7Time(s string) (time.Time, bool) {
	u, err := uuid.Parse(s)
	if err != nil || u.Version() != 7 {
		return time.Time{}, false
	}
	var b [8]byte
	copy(b[2:], u[:6])
	return time.UnixMilli(int64(binary.BigEndian.Uint64(b[:]))).UTC(), true
}

// Usage returns the product usage, as of at, of the person who sent a
// report: their events matched by distinctID, or by deviceID when it is not
// empty, so that anonymous events from the same device before they
// identified count too.
//
//   - Events30d, ActiveDays30d (UTC days), Sessions30d, TopEvents and
//     TopPages cover the UsageWindow before at; FirstSeen and LastSeen the
//     HistoryWindow before at. These exclude $bug_report and $bug_report_*
//     events, so that they describe use of the product, not the report.
//     Events are counted once per uuid, however often they were replayed.
//   - RecentExceptions are the newest $exception events in the
//     ExceptionWindow before at, at most 10.
//   - Person holds the non-empty string values of PersonKeys: the latest
//     $set value, else the earliest $set_once value, within the
//     HistoryWindow. ClickHouse 18.16 has no JSON parser, so keys are found
//     with visitParamExtractRaw: the first "key": anywhere in the object,
//     nested or not, and not at all if a space precedes the colon.
//   - FeatureFlags are the flags active on the person's latest event that
//     carries any ($active_feature_flags, plus $feature/<flag> properties
//     that are true or name a variant), sorted, at most 50.
//
// Nothing after at counts, so enriching a report again later gives the same
// answer. It reads person_events once (usageQuery), and a second time only
// when the person has more than one recent exception; both share one
// deadline. Errors are wrapped "enrich: usage: …"; a deadline gives context.DeadlineExceeded.
func (q *Querier) Usage(ctx context.Context, project, distinctID, deviceID string, at time.Time) (*bugreport.Usage, error) {
	if distinctID == "" && deviceID == "" {
		return nil, errors.New("enrich: usage: no distinct_id or device_id to match")
	}
	if at.IsZero() {
		return nil, errors.New("enrich: usage: no report time")
	}
	ctx, cancel := q.withLimits(ctx)
	defer cancel()

	u := &bugreport.Usage{
		TopEvents:        []bugreport.Count{},
		TopPages:         []bugreport.Count{},
		RecentExceptions: []bugreport.Exception{},
		Person:           map[string]string{},
		FeatureFlags:     []string{},
	}
	person := []any{project, distinctID, deviceID, distinctID, deviceID, deviceID}
	n, err := q.readUsage(ctx, u, person, at)
	if err == nil && n > 1 {
		// Several recent exceptions: the one pass kept only the latest.
		err = q.readExceptions(ctx, u, person, at)
	}
	if err != nil {
		// A deadline fails every query; say so plainly.
		if cerr := ended(ctx); cerr != nil {
			return nil, fmt.Errorf("enrich: usage: %w", cerr)
		}
		return nil, fmt.Errorf("enrich: usage: %w", err)
	}
	return u, nil
}

// readUsage runs usageQuery and fills u. It returns the number of recent
// exceptions; when that is one, u holds it, when more, the caller reads
// them with readExceptions.
func (q *Querier) readUsage(ctx context.Context, u *bugreport.Usage, person []any, at time.Time) (exceptions uint64, err error) {
	from30 := max(at.Add(-UsageWindow).UnixMilli(), 0)
	fromExc := max(at.Add(-ExceptionWindow).UnixMilli(), 0)
	args := []any{from30, from30, from30, from30, fromExc, fromExc, fromExc, fromExc, fromExc}
	args = append(args, person...)
	args = append(args, timeRangeArgs(at.Add(-HistoryWindow), at)...)

	var (
		seen, firstMS, lastMS, pageviews, excAtMS uint64
		set, setOnce                              = make([]string, len(PersonKeys)), make([]string, len(PersonKeys))
		activeFlags, excType, excMsg, excList     string
		featureProps, eventNames, pageNames       []string
		eventCounts, pageCounts                   []uint64
	)
	dest := []any{&u.Events30d, &u.ActiveDays30d, &u.Sessions30d, &seen, &firstMS, &lastMS}
	for i := range set {
		dest = append(dest, &set[i])
	}
	for i := range setOnce {
		dest = append(dest, &setOnce[i])
	}
	dest = append(dest, &activeFlags, &featureProps, &pageviews, &eventNames, &eventCounts, &pageNames, &pageCounts,
		&exceptions, &excAtMS, &excType, &excMsg, &excList)
	if err := q.scanRow(ctx, usageQuery, args, dest...); err != nil {
		return 0, fmt.Errorf("usage: %w", err)
	}
	if seen > 0 {
		u.FirstSeen = time.UnixMilli(int64(firstMS)).UTC()
		u.LastSeen = time.UnixMilli(int64(lastMS)).UTC()
	}
	for i, k := range PersonKeys {
		v := decodeJSONString(set[i])
		if v == "" {
			v = decodeJSONString(setOnce[i])
		}
		if v != "" {
			u.Person[k] = truncateRunes(v, maxPersonValue)
		}
	}
	u.FeatureFlags = featureFlags(activeFlags, featureProps)
	u.TopEvents = topCounts(eventNames, eventCounts, bugreport.Count{Name: "$pageview", Count: pageviews}, maxTopEvents)
	u.TopPages = topCounts(pageNames, pageCounts, bugreport.Count{}, maxTopPages)
	if exceptions == 1 {
		u.RecentExceptions = append(u.RecentExceptions, exception(excAtMS, excType, excMsg, excList))
	}
	return exceptions, nil
}

// topCounts returns the n largest counts, ties broken by name, of the named
// counts plus extra (when its count is not zero).
func topCounts(names []string, counts []uint64, extra bugreport.Count, n int) []bugreport.Count {
	out := make([]bugreport.Count, 0, len(names)+1)
	for i, name := range names {
		if i < len(counts) {
			out = append(out, bugreport.Count{Name: name, Count: counts[i]})
		}
	}
	if extra.Count > 0 {
		out = append(out, extra)
	}
	slices.SortFunc(out, func(a, b bugreport.Count) int {
		if a.Count != b.Count {
			if a.Count > b.Count {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

func (q *Querier) readExceptions(ctx context.Context, u *bugreport.Usage, person []any, at time.Time) error {
	args := append(append([]any{}, person...), timeRangeArgs(at.Add(-ExceptionWindow), at)...)
	rows, err := q.conn.Query(ctx, exceptionQuery, args...)
	if err != nil {
		return fmt.Errorf("recent exceptions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			atMS                     uint64
			rawType, rawMsg, rawList string
		)
		if err := rows.Scan(&atMS, &rawType, &rawMsg, &rawList); err != nil {
			return fmt.Errorf("recent exceptions: %w", err)
		}
		u.RecentExceptions = append(u.RecentExceptions, exception(atMS, rawType, rawMsg, rawList))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("recent exceptions: %w", err)
	}
	return nil
}

// exception decodes an $exception event's raw type, message and list.
func exception(atMS uint64, rawType, rawMsg, rawList string) bugreport.Exception {
	e := bugreport.Exception{
		Type:    decodeJSONString(rawType),
		Message: decodeJSONString(rawMsg),
		At:      time.UnixMilli(int64(atMS)).UTC(),
	}
	if e.Type == "" || e.Message == "" {
		first := firstException(rawList)
		if e.Type == "" {
			e.Type = first.Type
		}
		if e.Message == "" {
			e.Message = first.Value
		}
	}
	e.Type = truncateRunes(e.Type, maxExceptionType)
	e.Message = truncateRunes(e.Message, maxExceptionMessage)
	return e
}

// decodeJSONString decodes the raw text of a JSON string value. A value cut
// short by the query's size bound is decoded as far as it goes; anything
// that is not a string gives "".
func decodeJSONString(raw string) string {
	raw = strings.TrimSpace(raw)
	if !strings.HasPrefix(raw, `"`) {
		return ""
	}
	var s string
	if json.Unmarshal([]byte(raw), &s) == nil {
		return s
	}
	// Cut short: close the string, dropping at most a partial escape
	// sequence (\uXXXX is the longest) at the cut.
	for drop := 0; drop <= 6 && drop < len(raw); drop++ {
		if json.Unmarshal([]byte(raw[:len(raw)-drop]+`"`), &s) == nil {
			return s
		}
	}
	return ""
}

// exceptionEntry is the part of an $exception_list entry that a report shows.
type exceptionEntry struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// firstException decodes the first entry of the raw $exception_list. It reads
// only that entry, so the rest of the list (stack frames, later causes) may
// have been cut by the query's size bound.
func firstException(raw string) exceptionEntry {
	var e exceptionEntry
	dec := json.NewDecoder(strings.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return exceptionEntry{}
	}
	if !dec.More() {
		return exceptionEntry{}
	}
	if err := dec.Decode(&e); err != nil {
		return exceptionEntry{}
	}
	return e
}

// featureFlags merges the raw $active_feature_flags array with the names of
// $feature/<flag> properties that are on, and returns them sorted, unique
// and bounded.
func featureFlags(rawActive string, featureProps []string) []string {
	flags := []string{}
	add := func(f string) {
		if f != "" && len(f) <= maxFlagName {
			flags = append(flags, f)
		}
	}
	// A streaming decoder keeps the names read before a cut made by the
	// query's size bound.
	dec := json.NewDecoder(bytes.NewReader([]byte(rawActive)))
	if t, err := dec.Token(); err == nil && t == json.Delim('[') {
		for dec.More() {
			var v any
			if dec.Decode(&v) != nil {
				break
			}
			if s, ok := v.(string); ok {
				add(s)
			}
		}
	}
	for _, f := range featureProps {
		add(f)
	}
	slices.Sort(flags)
	flags = slices.Compact(flags)
	if len(flags) > maxFeatureFlags {
		flags = flags[:maxFeatureFlags]
	}
	return flags
}
