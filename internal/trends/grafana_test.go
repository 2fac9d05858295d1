package trends

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// TestGrafanaDashboardQueriesRun runs every panel query of the shipped
// Grafana dashboard against the seeded history, with the plugin's macros
// expanded as 18.16 understands them, and checks the reports panel agrees
// with the trends API.
func TestGrafanaDashboardQueriesRun(t *testing.T) {
	b, err := os.ReadFile("../../deploy/grafana/dashboards/arubug-trends.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				RawSQL string `json:"rawSql"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	if dash.UID == "" || len(dash.Panels) < 8 {
		t.Fatalf("dashboard uid %q with %d panels", dash.UID, len(dash.Panels))
	}
	qr, _ := seed(t)
	from, to := time.Date(2026, 3, 26, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	lit := func(t time.Time) string { return "toDateTime('" + t.Format(time.DateTime) + "', 'UTC')" }
	expand := func(sql string) string {
		for _, col := range []string{"reported_at", "timestamp"} {
			sql = strings.ReplaceAll(sql, "$__timeInterval("+col+")", "toStartOfDay("+col+")")
			sql = strings.ReplaceAll(sql, "$__timeFilter("+col+")", col+" >= "+lit(from)+" AND "+col+" < "+lit(to))
		}
		sql = strings.ReplaceAll(sql, "$__fromTime", lit(from))
		sql = strings.ReplaceAll(sql, "${team:raw}", "All")
		sql = strings.ReplaceAll(sql, "${team:singlequote}", "'All'")
		return sql
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			sql := expand(tg.RawSQL)
			if strings.Contains(sql, "$__") {
				t.Errorf("%s: unexpanded macro in %s", p.Title, sql)
				continue
			}
			rows, err := qr.conn.Query(context.Background(), sql)
			if err != nil {
				t.Errorf("%s: %v\n%s", p.Title, err, sql)
				continue
			}
			n := 0
			var total float64
			for rows.Next() {
				n++
				if p.Title == "Reports per day by team" {
					var day time.Time
					var team string
					var count uint64
					if err := rows.Scan(&day, &team, &count); err != nil {
						t.Fatal(err)
					}
					total += float64(count)
				}
			}
			rows.Close()
			if n == 0 {
				t.Errorf("%s: no rows on the seeded history", p.Title)
			}
			if p.Title == "Reports per day by team" {
				res, err := qr.Trend(context.Background(), Query{Metric: Reports, Interval: "day", Breakdown: "team", From: from, To: to})
				if err != nil {
					t.Fatal(err)
				}
				var api float64
				for _, s := range res.Series {
					api += s.Total
				}
				if total != api || total != 5 {
					t.Errorf("Grafana panel counts %v reports, the trends API %v; want 5 each", total, api)
				}
			}
		}
	}
}
