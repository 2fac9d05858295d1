package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/trends"
)

// render executes a page into a buffer first, so that a template error
// becomes a clean 500 rather than half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	if sess := sessionFrom(r.Context()); sess != nil {
		data["SignedIn"] = true
		data["CSRF"] = sess.csrf
		data["NavTeams"] = h.cfg.Teams()
		data["ZendeskNotice"] = h.cfg.ZendeskNotice
	}
	var buf bytes.Buffer
	if err := h.pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		h.cfg.Logger.Error("ui: rendering a page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// Pages hold reports' personal data: never store them.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (h *Handler) errorPage(w http.ResponseWriter, r *http.Request, status int, title, text string) {
	h.render(w, r, status, "error", map[string]any{"Title": title, "Text": text, "Status": status})
}

// fail shows a domain error: its message for the person, never internals.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch bugreport.ErrorCode(err) {
	case bugreport.ENOTFOUND:
		h.errorPage(w, r, http.StatusNotFound, "Not found", errMessage(err))
	case bugreport.EINVALID:
		h.errorPage(w, r, http.StatusBadRequest, "Invalid request", errMessage(err))
	case bugreport.EUNAVAILABLE:
		h.errorPage(w, r, http.StatusServiceUnavailable, "Unavailable", errMessage(err))
	default:
		h.cfg.Logger.Warn("ui request failed", "path", r.URL.Path, "err", err)
		h.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "The request failed; it has been logged. Retry in a moment.")
	}
}

func (h *Handler) funcs() template.FuncMap {
	return template.FuncMap{
		"asset": h.asset,
		"time":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
		"isotime": func(t time.Time) string {
			return t.UTC().Format(time.RFC3339)
		},
		"ago":  func(t time.Time) string { return ago(h.cfg.Now().Sub(t)) },
		"join": strings.Join,
		"indent": func(depth int) string {
			return "depth-" + strconv.Itoa(min(depth, 5))
		},
		"add": func(a, b int) int { return a + b },
	}
}

func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	}
}

func (h *Handler) teamExists(name string) bool {
	return slices.ContainsFunc(h.cfg.Teams(), func(t bugreport.Team) bool { return t.Name == name })
}

// rangeDays reads the overview's range: 7, 30 or 90 days (default 30).
func rangeDays(r *http.Request) int {
	switch d, _ := strconv.Atoi(r.URL.Query().Get("days")); d {
	case 7, 90:
		return d
	default:
		return 30
	}
}

type teamRow struct {
	Name         string
	Reports, D7  uint64
	ZendeskGroup string
}

type chartSpec struct {
	ID, Title, Kind, Src, Unit, Empty string
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Store == nil {
		h.errorPage(w, r, http.StatusServiceUnavailable, "Unavailable", "The report store is not configured.")
		return
	}
	days := rangeDays(r)
	team := r.URL.Query().Get("team")
	if team != "" && !h.teamExists(team) {
		team = ""
	}
	now := h.cfg.Now()
	data := map[string]any{"Title": "Overview", "Nav": "overview", "Days": days, "Team": team, "DayChoices": []int{7, 30, 90}}

	// The team counts and the top lists (one query for the three) are
	// independent: run them at once, so the page waits for the slower.
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		counts map[string]bugreport.TeamStats
	)
	wg.Go(func() {
		c, err := h.cfg.Store.TeamCounts(r.Context(), now)
		mu.Lock()
		defer mu.Unlock()
		counts = c
		if err != nil {
			data["CountsError"] = errMessage(err)
		}
	})
	if h.cfg.Trends != nil {
		from := now.Add(-time.Duration(days) * 24 * time.Hour)
		wg.Go(func() {
			top, err := h.cfg.Trends.Top(r.Context(), trends.TopQuery{Lists: []string{"pages", "exceptions", "organisations"},
				From: from, To: now, Filters: trends.Filters{Team: team}, Limit: 10})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				data["TopError"] = errMessage(err)
				return
			}
			data["TopPages"], data["TopErrors"], data["TopOrgs"] = top["pages"], top["exceptions"], top["organisations"]
		})
	} else {
		data["TopError"] = "Trends are not available."
	}
	wg.Wait()
	var rows []teamRow
	for _, t := range h.cfg.Teams() {
		c := counts[t.Name]
		rows = append(rows, teamRow{t.Name, c.Reports, c.Last7d, t.ZendeskGroup})
	}
	data["TeamRows"] = rows

	q := url.Values{"days": {strconv.Itoa(days)}}
	if team != "" {
		q.Set("team", team)
	}
	src := func(metric, breakdown string) string {
		v := url.Values{"metric": {metric}}
		for k, vs := range q {
			v[k] = vs
		}
		if breakdown != "" {
			v.Set("breakdown", breakdown)
		}
		return Prefix + "/data/trend?" + v.Encode()
	}
	data["Charts"] = []chartSpec{
		{ID: "reports-by-team", Title: "Reports per day by team", Kind: "stacked", Src: src(trends.Reports, "team"), Empty: "No reports in this range."},
		{ID: "reports-by-area", Title: "Reports per day by product area", Kind: "stacked", Src: src(trends.Reports, "product_area"), Empty: "No reports in this range."},
		{ID: "first-response", Title: "Median time to first response", Kind: "line", Unit: "seconds", Src: src(trends.FirstResponse, ""), Empty: "No report has had a reply yet in this range."},
		{ID: "open-solved", Title: "Open vs solved, by report day", Kind: "stacked", Src: src(trends.OpenSolved, ""), Empty: "No reports in this range."},
	}
	h.render(w, r, http.StatusOK, "overview", data)
}

// trendData answers the overview's charts: trends.Result as JSON for the
// browser's time zone.
func (h *Handler) trendData(w http.ResponseWriter, r *http.Request) {
	writeJSON := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	if h.cfg.Trends == nil {
		writeJSON(http.StatusServiceUnavailable, map[string]string{"type": "unavailable", "code": "trends_unavailable", "detail": "trends are not available"})
		return
	}
	q := r.URL.Query()
	loc := time.UTC
	if tz := q.Get("tz"); tz != "" && !strings.ContainsAny(tz, "'\\") {
		if l, err := time.LoadLocation(tz); err == nil {
			loc = l
		}
	}
	days := rangeDays(r)
	now := h.cfg.Now().In(loc)
	// Whole local days: from midnight days-1 days ago to the next midnight.
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc)
	tq := trends.Query{
		Metric: q.Get("metric"), Interval: "day", Breakdown: q.Get("breakdown"),
		From: today.AddDate(0, 0, -(days - 1)), To: today.AddDate(0, 0, 1), Location: loc,
		Filters: trends.Filters{Team: q.Get("team")}, Limit: 8,
	}
	if err := tq.Validate(); err != nil {
		writeJSON(http.StatusBadRequest, map[string]string{"type": "validation_error", "code": "invalid_query", "detail": err.Error()})
		return
	}
	res, err := h.cfg.Trends.Trend(r.Context(), tq)
	if err != nil {
		h.cfg.Logger.Warn("ui: trend query failed", "err", err)
		writeJSON(http.StatusServiceUnavailable, map[string]string{"type": "unavailable", "code": "trend_failed", "detail": errMessage(err)})
		return
	}
	writeJSON(http.StatusOK, res)
}

// queueRow is one report in a team queue with its ticket.
type queueRow struct {
	R      *bugreport.Report
	Ticket *ticketView
}

type ticketView struct {
	ID        int64
	URL       string
	State     string
	Status    string
	Error     string
	ProblemID int64
	Attempts  uint32
}

// ticket reads a report's ticket; nil when the sync is off.
func (h *Handler) ticket(ctx context.Context, id bugreport.UUID) (*ticketView, error) {
	if h.cfg.Tickets == nil {
		return nil, nil
	}
	l, err := h.cfg.Tickets.TicketLink(ctx, id)
	if bugreport.ErrorCode(err) == bugreport.ENOTFOUND {
		return &ticketView{State: "pending"}, nil
	}
	if err != nil {
		return nil, err
	}
	return h.ticketView(l), nil
}

func (h *Handler) ticketView(l *bugreport.TicketLink) *ticketView {
	t := &ticketView{ID: l.TicketID, State: l.State, Status: l.Status, Error: l.Error, ProblemID: l.ProblemID, Attempts: l.Attempts}
	if l.TicketID != 0 {
		t.URL = h.cfg.Tickets.TicketURL(l.TicketID)
	}
	return t
}

// QueuePageSize is how many reports a team queue page reads.
const QueuePageSize = 50

var (
	priorityRank = map[string]int{"urgent": 0, "high": 1, "normal": 2, "low": 3}
	severityRank = map[string]int{"critical": 0, "high": 1, "medium": 2, "low": 3}
	sorts        = []string{"newest", "oldest", "priority", "severity", "similar"}
	ticketFilter = []string{"", "new", "open", "pending", "hold", "solved", "closed", "none"}
)

func rank(m map[string]int, k string) int {
	if v, ok := m[k]; ok {
		return v
	}
	return len(m)
}

func (h *Handler) teamQueue(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "team")
	if !h.teamExists(name) {
		h.errorPage(w, r, http.StatusNotFound, "No such team", "There is no team named "+strconv.Quote(name)+" in the routing rules.")
		return
	}
	if h.cfg.Store == nil {
		h.errorPage(w, r, http.StatusServiceUnavailable, "Unavailable", "The report store is not configured.")
		return
	}
	q := r.URL.Query()
	status := q.Get("status")
	f := bugreport.ReportFilter{Team: name, Cursor: q.Get("cursor"), Limit: QueuePageSize}
	switch status {
	case "all":
	case "spam":
		f.Spam = ptr(true)
	default:
		status = "open"
		f.Spam = ptr(false)
	}
	sortBy := q.Get("sort")
	if !slices.Contains(sorts, sortBy) {
		sortBy = "newest"
	}
	tstatus := q.Get("ticket")
	if !slices.Contains(ticketFilter, tstatus) {
		tstatus = ""
	}
	text := strings.TrimSpace(q.Get("q"))
	page, err := h.cfg.Store.Reports(r.Context(), f)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	rows := make([]queueRow, len(page.Reports))
	for i, rep := range page.Reports {
		rows[i].R = rep
	}
	// Ticket statuses, in one query for the page.
	if h.cfg.Tickets != nil {
		ids := make([]bugreport.UUID, len(rows))
		for i := range rows {
			ids[i] = rows[i].R.ID
		}
		links, err := h.cfg.Tickets.TicketLinks(r.Context(), ids)
		for i := range rows {
			switch l := links[rows[i].R.ID]; {
			case err != nil:
				rows[i].Ticket = &ticketView{State: "unknown", Error: errMessage(err)}
			case l == nil:
				rows[i].Ticket = &ticketView{State: "pending"}
			default:
				rows[i].Ticket = h.ticketView(l)
			}
		}
	}
	read := len(rows)
	rows = slices.DeleteFunc(rows, func(row queueRow) bool {
		if text != "" && !containsFold(row.R.Title, text) && !containsFold(row.R.Reporter.Email, text) &&
			!containsFold(row.R.Path, text) && !containsFold(row.R.Description, text) {
			return true
		}
		switch tstatus {
		case "":
			return false
		case "none":
			return row.Ticket != nil && row.Ticket.Status != ""
		default:
			return row.Ticket == nil || row.Ticket.Status != tstatus
		}
	})
	slices.SortStableFunc(rows, func(a, b queueRow) int {
		switch sortBy {
		case "oldest":
			return a.R.ReportedAt.Compare(b.R.ReportedAt)
		case "priority":
			return rank(priorityRank, a.R.Route.Priority) - rank(priorityRank, b.R.Route.Priority)
		case "severity":
			return rank(severityRank, a.R.Severity) - rank(severityRank, b.R.Severity)
		case "similar":
			return int(b.R.SimilarCount) - int(a.R.SimilarCount)
		}
		return b.R.ReportedAt.Compare(a.R.ReportedAt)
	})
	next := ""
	if page.NextCursor != "" {
		v := url.Values{"status": {status}, "sort": {sortBy}, "cursor": {page.NextCursor}}
		if tstatus != "" {
			v.Set("ticket", tstatus)
		}
		if text != "" {
			v.Set("q", text)
		}
		next = Prefix + "/teams/" + url.PathEscape(name) + "?" + v.Encode()
	}
	h.render(w, r, http.StatusOK, "team", map[string]any{
		"Title": "Team " + name, "Nav": "team:" + name, "TeamName": name, "Rows": rows, "Read": read,
		"Status": status, "Sort": sortBy, "TicketStatus": tstatus, "Q": text, "Next": next, "FirstPage": f.Cursor == "",
		"Sorts": sorts, "TicketFilters": ticketFilter[1:], "TicketsOn": h.cfg.Tickets != nil, "PageSize": QueuePageSize,
	})
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

func ptr[T any](v T) *T { return &v }

func parseID(s string) (bugreport.UUID, bool) {
	u, err := uuid.Parse(s)
	return bugreport.UUID(u), err == nil
}

// notices shown after a form was handled (Post/Redirect/Get).
var notices = map[string]string{
	"reply": "Reply queued: Zendesk emails it to the reporter, and it appears in the conversation once Zendesk confirms it.",
	"note":  "Internal note queued: it appears in the conversation once Zendesk confirms it.",
	"route": "Report re-routed.",
	"sync":  "Ticket sync queued again.",
}

// reportForm carries a failed form back to the page.
type reportForm struct {
	Error, Reply, Note, Reason, Team string
	Which                            string
}

func (h *Handler) report(w http.ResponseWriter, r *http.Request) {
	h.renderReport(w, r, http.StatusOK, reportForm{})
}

func (h *Handler) renderReport(w http.ResponseWriter, r *http.Request, status int, form reportForm) {
	id, ok := parseID(chi.URLParam(r, "id"))
	if !ok {
		h.errorPage(w, r, http.StatusNotFound, "Not found", "A report id is a UUID.")
		return
	}
	if h.cfg.Store == nil {
		h.errorPage(w, r, http.StatusServiceUnavailable, "Unavailable", "The report store is not configured.")
		return
	}
	rep, err := h.cfg.Store.Report(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	data := map[string]any{"Title": rep.Title, "Nav": "team:" + rep.Route.Team, "R": rep, "Form": form,
		"Notice": notices[r.URL.Query().Get("done")], "Teams": h.cfg.Teams(), "TicketsOn": h.cfg.Tickets != nil}
	if data["Title"] == "" {
		data["Title"] = "Report " + rep.ID.String()
	}
	if h.cfg.Tickets != nil {
		t, err := h.ticket(r.Context(), id)
		if err != nil {
			data["TicketError"] = errMessage(err)
		}
		data["Ticket"] = t
		msgs, err := h.cfg.Tickets.Thread(r.Context(), rep)
		if err != nil {
			data["ThreadError"] = errMessage(err)
		}
		data["Messages"] = msgs
	}
	h.render(w, r, status, "report", data)
}

func (h *Handler) screenshot(w http.ResponseWriter, r *http.Request) {
	id, ok := parseID(chi.URLParam(r, "id"))
	if !ok || h.cfg.Store == nil {
		http.NotFound(w, r)
		return
	}
	mime, data, err := h.cfg.Store.Screenshot(r.Context(), id)
	if err != nil || !strings.HasPrefix(mime, "image/") {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", mime)
	w.Header().Set("Content-Security-Policy", "default-src 'none'")
	w.Header().Set("Cache-Control", "private, max-age=3600")
	_, _ = w.Write(data)
}

func (h *Handler) reportURL(id bugreport.UUID, done string) string {
	return Prefix + "/reports/" + id.String() + "?done=" + done + "#" + map[string]string{"reply": "conversation", "note": "conversation", "route": "routing", "sync": "conversation"}[done]
}

// actionReport is the report a form posts to; it answers the request itself
// and returns ok=false when the id is not a UUID or actions are off.
func (h *Handler) actionReport(w http.ResponseWriter, r *http.Request) (bugreport.UUID, bool) {
	id, ok := parseID(chi.URLParam(r, "id"))
	if !ok {
		h.errorPage(w, r, http.StatusNotFound, "Not found", "A report id is a UUID.")
		return id, false
	}
	if h.cfg.Actions == nil {
		h.errorPage(w, r, http.StatusServiceUnavailable, "Unavailable", "Actions are not configured.")
		return id, false
	}
	return id, true
}

func (h *Handler) postMessage(public bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := h.actionReport(w, r)
		if !ok {
			return
		}
		body := strings.ReplaceAll(r.PostForm.Get("body"), "\r\n", "\n")
		done := "note"
		if public {
			done = "reply"
		}
		if _, err := h.cfg.Actions.QueueMessage(r.Context(), id, body, public); err != nil {
			if c := bugreport.ErrorCode(err); c != bugreport.EINVALID && c != bugreport.EUNAVAILABLE {
				h.fail(w, r, err)
				return
			}
			form := reportForm{Error: errMessage(err), Which: done}
			if public {
				form.Reply = body
			} else {
				form.Note = body
			}
			h.renderReport(w, r, http.StatusUnprocessableEntity, form)
			return
		}
		http.Redirect(w, r, h.reportURL(id, done), http.StatusSeeOther)
	}
}

func (h *Handler) postReroute(w http.ResponseWriter, r *http.Request) {
	id, ok := h.actionReport(w, r)
	if !ok {
		return
	}
	team, reason := r.PostForm.Get("team"), strings.TrimSpace(r.PostForm.Get("reason"))
	if _, err := h.cfg.Actions.Reroute(r.Context(), id, team, reason); err != nil {
		if bugreport.ErrorCode(err) != bugreport.EINVALID {
			h.fail(w, r, err)
			return
		}
		h.renderReport(w, r, http.StatusUnprocessableEntity, reportForm{Error: errMessage(err), Which: "route", Reason: reason, Team: team})
		return
	}
	http.Redirect(w, r, h.reportURL(id, "route"), http.StatusSeeOther)
}

func (h *Handler) postRetrySync(w http.ResponseWriter, r *http.Request) {
	id, ok := h.actionReport(w, r)
	if !ok {
		return
	}
	if err := h.cfg.Actions.RetrySync(r.Context(), id); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, h.reportURL(id, "sync"), http.StatusSeeOther)
}

// errMessage is what a person may read about err: a domain error's
// message, never the internals of anything else.
func errMessage(err error) string {
	var e *bugreport.Error
	if errors.As(err, &e) && e.Code != bugreport.EINTERNAL {
		return e.Message
	}
	return "an internal error occurred; it has been logged"
}
