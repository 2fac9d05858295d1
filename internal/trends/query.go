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
	conds, args := filterConds(f, func(col string) string { return col })
	return strings.Join(append([]string{"reported_at >= ?", "reported_at < ?"}, conds...), " AND "), append([]any{from.UTC(), to.UTC()}, args...)
}

// filterConds are the conditions of f (spam left out) on the report columns
// that col names.
func filterConds(f Filters, col func(string) string) ([]string, []any) {
	where := []string{col("spam") + " = 0"}
	var args []any
	for _, c := range []struct{ col, v string }{{"project", f.Project}, {"team", f.Team}, {"product_area", f.ProductArea}, {"severity", f.Severity}} {
		if c.v != "" {
			where = append(where, col(c.col)+" = ?")
			args = append(args, c.v)
		}
	}
	return where, args
}

// latestColumns are the filtered columns of each report's latest version,
// as an aggregation by report_id reads them.
const latestColumns = "argMax(spam, version) AS spam_, argMax(project, version) AS project_, argMax(team, version) AS team_, argMax(product_area, version) AS product_area_, argMax(severity, version) AS severity_"

// latestReportFilter is reportFilter's condition on latestColumns, for a
// query that keeps each report's latest version by aggregation.
func latestReportFilter(f Filters) (string, []any) {
	conds, args := filterConds(f, func(col string) string { return col + "_" })
	return strings.Join(conds, " AND "), args
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
  SELECT report_id AS rid, min(timestamp) AS first FROM report_messages
  WHERE timestamp >= ? AND kind = ?
  GROUP BY rid) USING rid
GROUP BY b, k LIMIT %d`, bucketExpr(q.Interval, "reported_at"), dim, where, MaxRows)
		args = append(append(bucketArgs(q), wargs...), from.UTC(), bugreport.MessageAgentReply)
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
FROM (SELECT uuid, timestamp, report_id AS rid, kind FROM report_messages WHERE timestamp >= ? AND timestamp < ?)
ALL INNER JOIN (SELECT toString(report_id) AS rid, %s AS rk FROM bug_reports FINAL WHERE %s) USING rid
GROUP BY b, k LIMIT %d`, bucketExpr(q.Interval, "timestamp"), kdim, rdim, rwhere, MaxRows)
		args = append(append(bucketArgs(q), from.UTC(), q.To.UTC()), rargs...)
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

// TopQuery asks for top lists over one range.
type TopQuery struct {
	Lists    []string // of TopLists: pages, exceptions, organisations
	From, To time.Time
	Filters  Filters
	Limit    int // per list; 0 means 10; at most 100
}

// topExprs is what each top list counts, per report.
var topExprs = map[string]string{
	"pages":         "path",
	"exceptions":    "visitParamExtractString(usage, 'message')", // the newest exception before each report
	"organisations": "visitParamExtractString(usage, 'company')",
}

// Top returns, for each list asked, the most frequent pages, exception
// messages or organisations (the reporter's company person property) among
// the reports of the range, with one read of the reports for all of them:
// the overview shows the three together.
func (qr *Querier) Top(ctx context.Context, q TopQuery) (map[string][]bugreport.Count, error) {
	if q.Limit == 0 {
		q.Limit = 10
	}
	seen := map[string]bool{}
	for _, l := range q.Lists {
		if !slices.Contains(TopLists, l) || seen[l] {
			return nil, bugreport.Errorf(bugreport.EINVALID, "invalid_query", "list must be one of %s, each at most once", strings.Join(TopLists, ", "))
		}
		seen[l] = true
	}
	switch {
	case len(q.Lists) == 0:
		return nil, bugreport.Errorf(bugreport.EINVALID, "invalid_query", "list must be one of %s", strings.Join(TopLists, ", "))
	case q.Limit < 1 || q.Limit > 100:
		return nil, bugreport.Errorf(bugreport.EINVALID, "invalid_query", "limit must be between 1 and 100")
	case q.From.IsZero() || !q.To.After(q.From) || q.To.Sub(q.From) > 400*24*time.Hour:
		return nil, bugreport.Errorf(bugreport.EINVALID, "invalid_query", "from and to must span up to 400 days")
	}
	// Each report's latest version by argMax rather than FINAL: FINAL
	// merges every selected column of every version in key order, and
	// the usage JSON is the bulkiest column lists read (organisations
	// over 30 days at 100 k reports: 560 ms with FINAL, 170 ms this way).
	// The filters apply to the latest version, as under FINAL; the range
	// may apply to every version, as reported_at never changes. The lists
	// are rows of one ARRAY JOIN, cut to Limit each by LIMIT BY.
	names, values := make([]string, len(q.Lists)), make([]string, len(q.Lists))
	for i, l := range q.Lists {
		names[i] = "'" + l + "'" // a constant of TopLists
		values[i] = fmt.Sprintf("argMax(%s, version)", topExprs[l])
	}
	where, args := latestReportFilter(q.Filters)
	sql := fmt.Sprintf(`SELECT list, name, count() AS n FROM (
  SELECT [%s] AS names, %s FROM bug_reports WHERE reported_at >= ? AND reported_at < ? GROUP BY report_id)
ARRAY JOIN [%s] AS list, names AS name
WHERE %s AND name != '' GROUP BY list, name ORDER BY list, n DESC, name LIMIT %d BY list`,
		strings.Join(values, ", "), latestColumns, strings.Join(names, ", "), where, q.Limit)
	args = append([]any{q.From.UTC(), q.To.UTC()}, args...)
	rows, err := qr.conn.Query(qr.ctx(ctx), sql, args...)
	if err != nil {
		return nil, fmt.Errorf("trends: top %s: %w", strings.Join(q.Lists, ", "), err)
	}
	defer rows.Close()
	out := map[string][]bugreport.Count{}
	for _, l := range q.Lists {
		out[l] = []bugreport.Count{}
	}
	for rows.Next() {
		var list string
		var c bugreport.Count
		if err := rows.Scan(&list, &c.Name, &c.Count); err != nil {
			return nil, fmt.Errorf("trends: top %s: %w", strings.Join(q.Lists, ", "), err)
		}
		out[list] = append(out[list], c)
	}
	return out, rows.Err()
}
