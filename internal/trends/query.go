package trends

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/arubug/arubug/internal/bugreport"
)

// MaxRows bounds the rows one trend query may return.
const MaxRows = 100_000

// Querier runs trend queries.
type Querier struct {
	conn driver.Conn
	// timeout is ClickHouse's max_execution_time for each query.
	timeout time.Duration
}

// NewQuerier returns a Querier whose queries ClickHouse stops after timeout.
func NewQuerier(conn driver.Conn, timeout time.Duration) *Querier {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &Querier{conn: conn, timeout: timeout}
}

func (qr *Querier) ctx(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
		"max_execution_time": int(qr.timeout.Seconds()),
	}))
}

// bucketExpr is the SQL for the unix start of col's bucket in the query's
// zone. The zone name comes from time.LoadLocation, never from the user
// directly, and is bound as a parameter.
func bucketExpr(interval, col string) string {
	switch interval {
	case "hour":
		return "toUnixTimestamp(toStartOfHour(" + col + ", ?))"
	case "day":
		return "toUnixTimestamp(toStartOfDay(" + col + ", ?))"
	default:
		return "toUnixTimestamp(toDateTime(toMonday(" + col + ", ?), ?))"
	}
}

func bucketArgs(q Query) []any {
	if q.Interval == "week" {
		return []any{q.Location.String(), q.Location.String()}
	}
	return []any{q.Location.String()}
}

// reportFilter is the WHERE clause on bug_reports for q's range and filters.
// Reports are counted by report time; spam is left out.
func reportFilter(f Filters, from, to time.Time) (string, []any) {
	where := []string{"reported_at >= ?", "reported_at < ?", "spam = 0"}
	args := []any{from.UTC(), to.UTC()}
	for _, c := range []struct{ col, v string }{{"project", f.Project}, {"team", f.Team}, {"product_area", f.ProductArea}, {"severity", f.Severity}} {
		if c.v != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	return strings.Join(where, " AND "), args
}

// Trend answers q.
func (qr *Querier) Trend(ctx context.Context, q Query) (*Result, error) {
	if err := q.Validate(); err != nil {
		return nil, bugreport.Errorf(bugreport.EINVALID, "invalid_query", "%s", err.Error())
	}
	// Widen the range to whole buckets so the first and last are complete.
	starts := BucketStarts(q.From, q.To, q.Interval, q.Location)
	from := starts[0]
	dim := "''"
	if col, ok := Breakdowns[q.Breakdown]; ok {
		dim = col
	}
	where, wargs := reportFilter(q.Filters, from, q.To)
	var sql string
	var args []any
	sums := true
	switch q.Metric {
	case Reports, Reporters:
		agg := "uniqExact(report_id)"
		if q.Metric == Reporters {
			agg = "uniqExact(distinct_id)"
		}
		sql = fmt.Sprintf("SELECT %s AS b, %s AS k, toFloat64(%s) AS v FROM bug_reports FINAL WHERE %s GROUP BY b, k LIMIT %d",
			bucketExpr(q.Interval, "reported_at"), dim, agg, where, MaxRows)
		args = append(bucketArgs(q), wargs...)
	case OpenSolved:
		sql = fmt.Sprintf(`SELECT %s AS b, if(status IN ('solved', 'closed'), 'solved', 'open') AS k, toFloat64(uniqExact(rid)) AS v
FROM (SELECT toString(report_id) AS rid, reported_at FROM bug_reports FINAL WHERE %s)
ANY LEFT JOIN (SELECT toString(report_id) AS rid, status FROM ticket_status FINAL WHERE reported_at >= ?) USING rid
GROUP BY b, k LIMIT %d`, bucketExpr(q.Interval, "reported_at"), where, MaxRows)
		args = append(append(bucketArgs(q), wargs...), from.UTC())
	case FirstResponse:
		sums = false
		sql = fmt.Sprintf(`SELECT %s AS b, k, quantileExact(0.5)(toFloat64(first - reported_at)) AS v
FROM (SELECT toString(report_id) AS rid, reported_at, %s AS k FROM bug_reports FINAL WHERE %s)
ALL INNER JOIN (
  SELECT visitParamExtractString(properties, 'report_id') AS rid, min(timestamp) AS first FROM events
  WHERE event = ? AND timestamp >= ? AND visitParamExtractString(properties, 'kind') = ?
  GROUP BY rid) USING rid
GROUP BY b, k LIMIT %d`, bucketExpr(q.Interval, "reported_at"), dim, where, MaxRows)
		args = append(append(bucketArgs(q), wargs...), bugreport.EventBugReportMessage, from.UTC(), bugreport.MessageAgentReply)
	case Messages:
		// Messages are counted by their own time and joined to their
		// report for filters and breakdowns; reports up to 90 days older
		// than the range are looked at.
		rdim := dim
		if q.Breakdown == "kind" {
			rdim = "''"
		}
		rwhere, rargs := reportFilter(q.Filters, from.Add(-90*24*time.Hour), q.To)
		kdim := "rk"
		if q.Breakdown == "kind" {
			kdim = "kind"
		}
		sql = fmt.Sprintf(`SELECT %s AS b, %s AS k, toFloat64(uniqExact(uuid)) AS v
FROM (
  SELECT uuid, timestamp, visitParamExtractString(properties, 'report_id') AS rid, visitParamExtractString(properties, 'kind') AS kind
  FROM events WHERE event = ? AND timestamp >= ? AND timestamp < ?)
ALL INNER JOIN (SELECT toString(report_id) AS rid, %s AS rk FROM bug_reports FINAL WHERE %s) USING rid
GROUP BY b, k LIMIT %d`, bucketExpr(q.Interval, "timestamp"), kdim, rdim, rwhere, MaxRows)
		args = append(append(bucketArgs(q), bugreport.EventBugReportMessage, from.UTC(), q.To.UTC()), rargs...)
	}
	rows, err := qr.conn.Query(qr.ctx(ctx), sql, args...)
	if err != nil {
		return nil, fmt.Errorf("trends: %s: %w", q.Metric, err)
	}
	defer rows.Close()
	var points []point
	for rows.Next() {
		var b uint32
		var p point
		if err := rows.Scan(&b, &p.key, &p.value); err != nil {
			return nil, fmt.Errorf("trends: %s: %w", q.Metric, err)
		}
		p.bucket = int64(b)
		points = append(points, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("trends: %s: %w", q.Metric, err)
	}
	return fill(q, points, sums), nil
}

// TopQuery asks for a top list.
type TopQuery struct {
	List     string // pages, exceptions, organisations
	From, To time.Time
	Filters  Filters
	Limit    int // 0 means 10; at most 100
}

// Top returns the most frequent pages, exception messages or organisations
// (the reporter's company person property) among the reports of the range.
func (qr *Querier) Top(ctx context.Context, q TopQuery) ([]bugreport.Count, error) {
	if q.Limit == 0 {
		q.Limit = 10
	}
	switch {
	case !slices.Contains(TopLists, q.List):
		return nil, bugreport.Errorf(bugreport.EINVALID, "invalid_query", "list must be one of %s", strings.Join(TopLists, ", "))
	case q.Limit < 1 || q.Limit > 100:
		return nil, bugreport.Errorf(bugreport.EINVALID, "invalid_query", "limit must be between 1 and 100")
	case q.From.IsZero() || !q.To.After(q.From) || q.To.Sub(q.From) > 400*24*time.Hour:
		return nil, bugreport.Errorf(bugreport.EINVALID, "invalid_query", "from and to must span up to 400 days")
	}
	expr := map[string]string{
		"pages":         "path",
		"exceptions":    "visitParamExtractString(usage, 'message')", // the newest exception before each report
		"organisations": "visitParamExtractString(usage, 'company')",
	}[q.List]
	where, args := reportFilter(q.Filters, q.From, q.To)
	sql := fmt.Sprintf("SELECT %s AS name, uniqExact(report_id) AS n FROM bug_reports FINAL WHERE %s AND name != '' GROUP BY name ORDER BY n DESC, name LIMIT %d",
		expr, where, q.Limit)
	rows, err := qr.conn.Query(qr.ctx(ctx), sql, args...)
	if err != nil {
		return nil, fmt.Errorf("trends: top %s: %w", q.List, err)
	}
	defer rows.Close()
	out := []bugreport.Count{}
	for rows.Next() {
		var c bugreport.Count
		if err := rows.Scan(&c.Name, &c.Count); err != nil {
			return nil, fmt.Errorf("trends: top %s: %w", q.List, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
