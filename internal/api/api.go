// Package api is Arubug's admin JSON API: team queues, report details and
// manual re-routing, behind the admin token; plus the public list of
// product areas that the widget shows.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/httperr"
)

// Store reads and writes reports.
type Store interface {
	Report(ctx context.Context, id bugreport.UUID) (*bugreport.Report, error)
	Reports(ctx context.Context, f bugreport.ReportFilter) (bugreport.ReportPage, error)
	TeamCounts(ctx context.Context, now time.Time) (map[string]bugreport.TeamStats, error)
	SaveReport(ctx context.Context, r *bugreport.Report, source string) error
	Screenshot(ctx context.Context, id bugreport.UUID) (mime string, data []byte, err error)
}

// Config configures the API.
type Config struct {
	Store Store
	// Sink records re-routes as events.
	Sink bugreport.EventSink
	// AdminToken guards every admin route; empty disables them.
	AdminToken   string
	Teams        func() []bugreport.Team
	ProductAreas func() []bugreport.ProductArea
	// Tickets is the Zendesk sync; nil when it is off.
	Tickets Tickets
	// Trends answers the trend and top-list queries.
	Trends Trends
	// Reload reloads the routing rules (POST /-/reload).
	Reload func() error
	Now    func() time.Time
	Logger *slog.Logger
}

// API serves the routes.
type API struct{ cfg Config }

// New returns an API.
func New(cfg Config) (*API, error) {
	if cfg.Store == nil || cfg.Sink == nil || cfg.Teams == nil || cfg.ProductAreas == nil {
		return nil, errors.New("api: store, sink, teams and product areas are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &API{cfg: cfg}, nil
}

// Mount registers the routes on r.
func (a *API) Mount(r chi.Router) {
	r.Get("/api/v1/product-areas", a.productAreas)
	r.Group(func(r chi.Router) {
		r.Use(a.requireAdmin)
		r.Get("/api/v1/teams", a.teams)
		r.Get("/api/v1/teams/{team}/reports", a.teamReports)
		r.Get("/api/v1/reports/{id}", a.report)
		r.Get("/api/v1/reports/{id}/screenshot", a.screenshot)
		r.Post("/api/v1/reports/{id}/route", a.reroute)
		r.Get("/api/v1/reports/{id}/thread", a.thread)
		r.Post("/api/v1/reports/{id}/messages", a.message(true))
		r.Post("/api/v1/reports/{id}/notes", a.message(false))
		r.Post("/api/v1/reports/{id}/sync", a.retrySync)
		r.Get("/api/v1/trends", a.trend)
		r.Get("/api/v1/trends/top", a.top)
		r.Post("/-/reload", a.reload)
	})
}

// requireAdmin checks the bearer token in constant time. It says nothing
// about why a token failed.
func (a *API) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.AdminToken == "" {
			httperr.Write(w, bugreport.Errorf(bugreport.EUNAVAILABLE, "admin_disabled", "the admin API is disabled: set ARUBUG_ADMIN_TOKEN"))
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.cfg.AdminToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="arubug"`)
			httperr.Write(w, bugreport.Errorf(bugreport.EUNAUTHORIZED, "invalid_admin_token", "a valid admin token is required (Authorization: Bearer …)"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *API) productAreas(w http.ResponseWriter, _ *http.Request) {
	areas := append([]bugreport.ProductArea{}, a.cfg.ProductAreas()...)
	areas = append(areas, bugreport.ProductArea{ID: "not-sure", Label: "Not sure"})
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Cache-Control", "public, max-age=60")
	httperr.JSON(w, http.StatusOK, map[string]any{"product_areas": areas})
}

type teamJSON struct {
	Name            string   `json:"name"`
	ZendeskGroup    string   `json:"zendesk_group"`
	Tags            []string `json:"tags"`
	DefaultPriority string   `json:"default_priority"`
	Assignee        string   `json:"assignee,omitempty"`
	Reports         uint64   `json:"reports"`
	Reports7d       uint64   `json:"reports_7d"`
}

func (a *API) teams(w http.ResponseWriter, r *http.Request) {
	counts, err := a.cfg.Store.TeamCounts(r.Context(), a.cfg.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var out []teamJSON
	for _, t := range a.cfg.Teams() {
		c := counts[t.Name]
		out = append(out, teamJSON{t.Name, t.ZendeskGroup, nonNil(t.Tags), t.DefaultPriority, t.Assignee, c.Reports, c.Last7d})
	}
	httperr.JSON(w, http.StatusOK, map[string]any{"teams": out})
}

func (a *API) team(name string) (bugreport.Team, bool) {
	for _, t := range a.cfg.Teams() {
		if t.Name == name {
			return t, true
		}
	}
	return bugreport.Team{}, false
}

func (a *API) teamReports(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "team")
	if _, ok := a.team(name); !ok {
		httperr.Write(w, bugreport.Errorf(bugreport.ENOTFOUND, "unknown_team", "no team named %q", name))
		return
	}
	q := r.URL.Query()
	f := bugreport.ReportFilter{Team: name, Cursor: q.Get("cursor")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 200 {
			httperr.Write(w, bugreport.Errorf(bugreport.EINVALID, "invalid_limit", "limit must be a number from 1 to 200"))
			return
		}
		f.Limit = n
	}
	switch q.Get("status") {
	case "", "all":
	case "spam":
		f.Spam = ptr(true)
	case "open", "new":
		f.Spam = ptr(false)
	default:
		httperr.Write(w, bugreport.Errorf(bugreport.EINVALID, "invalid_status", "status must be all, new, open or spam"))
		return
	}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			httperr.Write(w, bugreport.Errorf(bugreport.EINVALID, "invalid_since", "since must be an RFC 3339 time"))
			return
		}
		f.Since = t
	}
	page, err := a.cfg.Store.Reports(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]summaryJSON, 0, len(page.Reports))
	for _, rep := range page.Reports {
		out = append(out, summary(rep))
	}
	httperr.JSON(w, http.StatusOK, map[string]any{"reports": out, "next_cursor": page.NextCursor})
}

func ptr[T any](v T) *T { return &v }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func parseID(w http.ResponseWriter, r *http.Request) (bugreport.UUID, bool) {
	u, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		httperr.Write(w, bugreport.Errorf(bugreport.EINVALID, "invalid_id", "the report id must be a UUID"))
		return bugreport.UUID{}, false
	}
	return bugreport.UUID(u), true
}

func (a *API) report(w http.ResponseWriter, r *http.Request) {
	id, ok := parseID(w, r)
	if !ok {
		return
	}
	rep, err := a.cfg.Store.Report(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.writeDetail(w, r, rep)
}

// writeDetail answers with everything about rep, its ticket included when
// the Zendesk sync is on.
func (a *API) writeDetail(w http.ResponseWriter, r *http.Request, rep *bugreport.Report) {
	d := detail(rep)
	if a.cfg.Tickets != nil {
		t, err := a.ticket(r.Context(), rep.ID)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		d.Ticket = t
	}
	httperr.JSON(w, http.StatusOK, d)
}

func (a *API) screenshot(w http.ResponseWriter, r *http.Request) {
	id, ok := parseID(w, r)
	if !ok {
		return
	}
	mime, data, err := a.cfg.Store.Screenshot(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", mime)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'")
	w.Header().Set("Cache-Control", "private, max-age=3600")
	_, _ = w.Write(data)
}

type rerouteRequest struct {
	Team   string `json:"team"`
	Reason string `json:"reason"`
}

func (a *API) reroute(w http.ResponseWriter, r *http.Request) {
	id, ok := parseID(w, r)
	if !ok {
		return
	}
	var req rerouteRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		httperr.Write(w, bugreport.Errorf(bugreport.EINVALID, "invalid_json", "the body must be JSON {\"team\": …, \"reason\": …}"))
		return
	}
	rep, err := a.Reroute(r.Context(), id, req.Team, req.Reason)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.writeDetail(w, r, rep)
}

// MaxReasonBytes bounds a re-route's reason.
const MaxReasonBytes = 1000

// Reroute moves report id to the team named teamName by hand, as
// POST /api/v1/reports/{id}/route does: it records a $bug_report_route
// event first, then stores the report with the manual route, and returns
// it. Errors: EINVALID for an unknown team or a reason longer than
// MaxReasonBytes, ENOTFOUND for an unknown report, and the store's or the
// sink's errors.
func (a *API) Reroute(ctx context.Context, id bugreport.UUID, teamName, reason string) (*bugreport.Report, error) {
	team, ok := a.team(teamName)
	if !ok {
		return nil, bugreport.Errorf(bugreport.EINVALID, "unknown_team", "no team named %q", teamName)
	}
	if len(reason) > MaxReasonBytes {
		return nil, bugreport.Errorf(bugreport.EINVALID, "reason_too_long", "reason is longer than %d characters", MaxReasonBytes)
	}
	rep, err := a.cfg.Store.Report(ctx, id)
	if err != nil {
		return nil, err
	}
	from := rep.Route.Team
	now := a.cfg.Now().UTC()
	// The event first: a re-route that is not recorded does not happen.
	props, _ := json.Marshal(map[string]any{"report_id": id.String(), "from_team": from, "to_team": team.Name, "reason": reason, "by": "admin"})
	evID, _ := uuid.NewV7()
	if err := a.cfg.Sink.Append(ctx, []bugreport.Event{{
		UUID: bugreport.UUID(evID), Project: rep.Project, Event: "$bug_report_route", DistinctID: rep.Reporter.DistinctID,
		Timestamp: now, CreatedAt: now, Properties: string(props),
	}}); err != nil {
		return nil, err
	}
	tags := append(slices.Clone(team.Tags), "arubug", "rerouted")
	rep.Route = bugreport.RouteDecision{
		Team: team.Name, Route: "manual", Priority: orDefault(rep.Route.Priority, team.DefaultPriority), Tags: tags, Assignee: team.Assignee,
		Explanation: append(rep.Route.Explanation, bugreport.RouteStep{Route: "manual", Matched: true,
			Reason: "re-routed by an admin from " + from + " to " + team.Name + reasonSuffix(reason)}),
	}
	if err := a.cfg.Store.SaveReport(ctx, rep, "manual"); err != nil {
		return nil, err
	}
	rep.RouteSource = "manual"
	a.cfg.Logger.Info("report re-routed", "report", id.String(), "from", from, "to", team.Name)
	return rep, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func reasonSuffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

func (a *API) reload(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Reload == nil {
		httperr.Write(w, bugreport.Errorf(bugreport.EUNAVAILABLE, "reload_unavailable", "rules reload is not configured"))
		return
	}
	if err := a.cfg.Reload(); err != nil {
		httperr.Write(w, bugreport.Errorf(bugreport.EINVALID, "invalid_rules", "%s", err.Error()))
		return
	}
	httperr.JSON(w, http.StatusOK, map[string]any{"status": "reloaded"})
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	if c := bugreport.ErrorCode(err); c == bugreport.EINTERNAL || c == bugreport.EUNAVAILABLE {
		a.cfg.Logger.Warn("api request failed", "path", r.URL.Path, "err", err)
	}
	httperr.Write(w, err)
}
