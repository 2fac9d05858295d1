package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/httperr"
	"github.com/arubug/arubug/internal/trends"
)

// Trends answers the dashboards' queries.
type Trends interface {
	Trend(ctx context.Context, q trends.Query) (*trends.Result, error)
	Top(ctx context.Context, q trends.TopQuery) (map[string][]bugreport.Count, error)
}

func invalid(format string, args ...any) error {
	return bugreport.Errorf(bugreport.EINVALID, "invalid_query", format, args...)
}

// trendRange reads tz, from and to. Dates without a time are midnight in
// tz; the default range is the 30 days up to now.
func (a *API) trendRange(r *http.Request) (from, to time.Time, loc *time.Location, err error) {
	q := r.URL.Query()
	loc = time.UTC
	if tz := q.Get("tz"); tz != "" {
		// Only names the zone database knows reach ClickHouse.
		if loc, err = time.LoadLocation(tz); err != nil || strings.ContainsAny(tz, "'\\") {
			return from, to, nil, invalid("tz %q is not an IANA time zone such as Europe/Berlin", tz)
		}
	}
	parse := func(name string, def time.Time) (time.Time, error) {
		v := q.Get(name)
		if v == "" {
			return def, nil
		}
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			return t, nil
		}
		if t, err := time.ParseInLocation(time.DateOnly, v, loc); err == nil {
			return t, nil
		}
		return time.Time{}, invalid("%s %q must be a date (2026-11-27) or an RFC 3339 time", name, v)
	}
	now := a.cfg.Now()
	if to, err = parse("to", now); err != nil {
		return
	}
	from, err = parse("from", to.Add(-30*24*time.Hour))
	return
}

func filters(r *http.Request) trends.Filters {
	q := r.URL.Query()
	return trends.Filters{Project: q.Get("project"), Team: q.Get("team"), ProductArea: q.Get("product_area"), Severity: q.Get("severity")}
}

func (a *API) trend(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Trends == nil {
		httperr.Write(w, bugreport.Errorf(bugreport.EUNAVAILABLE, "trends_unavailable", "trends are not available"))
		return
	}
	from, to, loc, err := a.trendRange(r)
	if err != nil {
		httperr.Write(w, err)
		return
	}
	q := r.URL.Query()
	query := trends.Query{Metric: q.Get("metric"), Interval: q.Get("interval"), Breakdown: q.Get("breakdown"), From: from, To: to, Location: loc, Filters: filters(r)}
	if query.Metric == "" {
		query.Metric = trends.Reports
	}
	if query.Interval == "" {
		query.Interval = "day"
	}
	if v := q.Get("limit"); v != "" {
		if query.Limit, err = strconv.Atoi(v); err != nil {
			httperr.Write(w, invalid("limit must be a number"))
			return
		}
	}
	if err := query.Validate(); err != nil {
		httperr.Write(w, invalid("%s", err.Error()))
		return
	}
	res, err := a.cfg.Trends.Trend(r.Context(), query)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httperr.JSON(w, http.StatusOK, res)
}

func (a *API) top(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Trends == nil {
		httperr.Write(w, bugreport.Errorf(bugreport.EUNAVAILABLE, "trends_unavailable", "trends are not available"))
		return
	}
	from, to, _, err := a.trendRange(r)
	if err != nil {
		httperr.Write(w, err)
		return
	}
	list := r.URL.Query().Get("list")
	q := trends.TopQuery{Lists: []string{list}, From: from, To: to, Filters: filters(r)}
	if v := r.URL.Query().Get("limit"); v != "" {
		if q.Limit, err = strconv.Atoi(v); err != nil {
			httperr.Write(w, invalid("limit must be a number"))
			return
		}
	}
	top, err := a.cfg.Trends.Top(r.Context(), q)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httperr.JSON(w, http.StatusOK, map[string]any{"list": list, "from": from.Format(time.RFC3339), "to": to.Format(time.RFC3339), "top": top[list]})
}
