// Package trends answers the dashboards' questions over ClickHouse: how many
// reports, reporters and messages per hour, day or week, broken down by
// team, product area and the like; how fast teams answer; how many reports
// are still open; and the top pages, errors and organisations. Series are
// gap-filled here, in Go, because ClickHouse 18.16 has no WITH FILL; every
// query is bounded in time range, series and rows.
package trends

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Metrics.
const (
	Reports       = "reports"        // distinct reports, by report time
	Reporters     = "reporters"      // distinct reporters (distinct_id), by report time
	Messages      = "messages"       // thread messages, by message time
	FirstResponse = "first_response" // median seconds from report to the first agent reply, by report time
	OpenSolved    = "open_solved"    // reports by report time whose ticket is open vs solved or closed
)

// Metrics lists the metrics in documentation order.
var Metrics = []string{Reports, Reporters, Messages, FirstResponse, OpenSolved}

// Intervals, with the longest range each may span.
var maxRange = map[string]time.Duration{
	"hour": 31 * 24 * time.Hour,
	"day":  400 * 24 * time.Hour,
	"week": 3 * 366 * 24 * time.Hour,
}

// Breakdowns maps a breakdown name to its bug_reports column.
var Breakdowns = map[string]string{
	"team":         "team",
	"product_area": "product_area",
	"severity":     "severity",
	"browser":      "browser",
	"os":           "os",
	"path":         "path",
	"similarity":   "fingerprint",
}

// Top lists.
var TopLists = []string{"pages", "exceptions", "organisations"}

// Filters narrow the reports counted. Empty fields do not filter.
type Filters struct {
	Project     string
	Team        string
	ProductArea string
	Severity    string
}

// Query asks for one metric as time series.
type Query struct {
	Metric    string
	Interval  string // hour, day, week
	Breakdown string // "" or a key of Breakdowns; messages also take "kind"
	From, To  time.Time
	Location  *time.Location // buckets start at midnight (or the hour) here
	Filters   Filters
	// Limit bounds the series: the largest Limit keys by total, the rest
	// summed as "other". 0 means 10; at most 50.
	Limit int
}

// MaxSeries bounds Query.Limit.
const MaxSeries = 50

// Validate checks the query and fills defaults.
func (q *Query) Validate() error {
	var errs []string
	if !slices.Contains(Metrics, q.Metric) {
		errs = append(errs, fmt.Sprintf("metric must be one of %s", strings.Join(Metrics, ", ")))
	}
	longest, ok := maxRange[q.Interval]
	if !ok {
		errs = append(errs, "interval must be hour, day or week")
	}
	_, isColumn := Breakdowns[q.Breakdown]
	switch {
	case q.Breakdown == "" || isColumn:
	case q.Breakdown == "kind" && q.Metric == Messages:
	default:
		names := make([]string, 0, len(Breakdowns))
		for k := range Breakdowns {
			names = append(names, k)
		}
		slices.Sort(names)
		errs = append(errs, fmt.Sprintf("breakdown must be one of %s (and kind for messages)", strings.Join(names, ", ")))
	}
	if q.Metric == OpenSolved && q.Breakdown != "" {
		errs = append(errs, "open_solved is broken down by status already; leave breakdown empty")
	}
	switch {
	case q.From.IsZero() || q.To.IsZero():
		errs = append(errs, "from and to are required")
	case !q.To.After(q.From):
		errs = append(errs, "to must be after from")
	case ok && q.To.Sub(q.From) > longest:
		errs = append(errs, fmt.Sprintf("a %s series spans at most %d days", q.Interval, int(longest.Hours()/24)))
	}
	if q.Location == nil {
		q.Location = time.UTC
	}
	if q.Limit == 0 {
		q.Limit = 10
	}
	if q.Limit < 1 || q.Limit > MaxSeries {
		errs = append(errs, fmt.Sprintf("limit must be between 1 and %d", MaxSeries))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// Result is a metric as gap-filled series over the same buckets.
type Result struct {
	Metric    string    `json:"metric"`
	Interval  string    `json:"interval"`
	Breakdown string    `json:"breakdown,omitempty"`
	TZ        string    `json:"tz"`
	Buckets   []string  `json:"buckets"` // bucket starts, RFC 3339 in TZ
	Series    []*Series `json:"series"`
	bucketAt  []time.Time
}

// Series is one key's values per bucket. A bucket without data is 0 for
// counts and null for the median response time.
type Series struct {
	Key    string     `json:"key"`
	Values []*float64 `json:"values"`
	// Total sums the buckets (for counts; for reporters a person counted
	// in two buckets counts twice).
	Total float64 `json:"total"`
}

// BucketStarts returns the starts of the buckets that cover [from, to) in
// loc: whole hours, local midnights, or Mondays at local midnight. Days
// and weeks follow the calendar, so they are 23 or 25 hours long across a
// daylight-saving change.
func BucketStarts(from, to time.Time, interval string, loc *time.Location) []time.Time {
	t := truncate(from.In(loc), interval)
	var out []time.Time
	for t.Before(to) {
		out = append(out, t)
		switch interval {
		case "hour":
			t = t.Add(time.Hour) // an instant step: local hours repeat or vanish at DST, instants don't
			t = truncate(t, "hour")
		case "day":
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, loc)
		default:
			t = time.Date(t.Year(), t.Month(), t.Day()+7, 0, 0, 0, 0, loc)
		}
	}
	return out
}

func truncate(t time.Time, interval string) time.Time {
	loc := t.Location()
	switch interval {
	case "hour":
		// The local hour's start: in zones with half-hour offsets it is
		// not a whole UTC hour.
		return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), 0, 0, 0, loc)
	case "day":
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
	default:
		d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
		back := (int(d.Weekday()) + 6) % 7 // days since Monday
		return time.Date(d.Year(), d.Month(), d.Day()-back, 0, 0, 0, 0, loc)
	}
}

// point is one (bucket, key, value) row from ClickHouse.
type point struct {
	bucket int64 // unix seconds of the bucket start
	key    string
	value  float64
}

// fill builds the result from points: the top keys by total, the rest as
// "other" (not for medians, which do not add up), zero or null in buckets
// without data.
func fill(q Query, points []point, sums bool) *Result {
	starts := BucketStarts(q.From, q.To, q.Interval, q.Location)
	index := make(map[int64]int, len(starts))
	res := &Result{Metric: q.Metric, Interval: q.Interval, Breakdown: q.Breakdown, TZ: q.Location.String(), bucketAt: starts}
	for i, s := range starts {
		index[s.Unix()] = i
		res.Buckets = append(res.Buckets, s.Format(time.RFC3339))
	}
	totals := map[string]float64{}
	for _, p := range points {
		totals[p.key] += p.value
	}
	keys := make([]string, 0, len(totals))
	for k := range totals {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if totals[a] != totals[b] {
			if totals[a] > totals[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	keep := map[string]bool{}
	for i, k := range keys {
		if i < q.Limit {
			keep[k] = true
		}
	}
	byKey := map[string]*Series{}
	series := func(k string) *Series {
		s := byKey[k]
		if s == nil {
			s = &Series{Key: k, Values: make([]*float64, len(starts))}
			if sums {
				for i := range s.Values {
					s.Values[i] = new(float64)
				}
			}
			byKey[k] = s
		}
		return s
	}
	for _, k := range keys {
		if keep[k] {
			series(k)
		}
	}
	for _, p := range points {
		i, ok := index[p.bucket]
		if !ok {
			continue // outside the range (a report time rounded into a neighbour)
		}
		k := p.key
		if !keep[k] {
			if !sums {
				continue
			}
			k = "other"
		}
		s := series(k)
		if s.Values[i] == nil {
			s.Values[i] = new(float64)
		}
		*s.Values[i] += p.value
		s.Total += p.value
	}
	for _, k := range keys {
		if keep[k] {
			res.Series = append(res.Series, byKey[k])
		}
	}
	if o := byKey["other"]; o != nil && !keep["other"] {
		res.Series = append(res.Series, o)
	}
	if res.Series == nil {
		res.Series = []*Series{}
	}
	return res
}
