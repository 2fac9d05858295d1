package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/routing"
)

// sampleReport is the rules page's test form.
type sampleReport struct {
	Description, URL, ProductArea, Severity, Email, Browser, OS, Plan string
	Events30d                                                         string
	Spam                                                              bool
}

func (h *Handler) rulesData() map[string]any {
	data := map[string]any{"Title": "Routing rules", "Nav": "rules", "Areas": h.cfg.ProductAreas(), "Severities": []string{"low", "medium", "high", "critical"}}
	if h.cfg.Rules != nil {
		rules := h.cfg.Rules()
		data["Rules"] = rules
		data["RulesTeams"] = rules.Teams()
		data["Routes"] = rules.Routes()
		data["RuleAreas"] = rules.ProductAreas()
	}
	if h.cfg.RulesStatus != nil {
		st := h.cfg.RulesStatus()
		data["Status"] = &st
	}
	return data
}

func (h *Handler) rules(w http.ResponseWriter, r *http.Request) {
	data := h.rulesData()
	data["Sample"] = sampleReport{URL: "https://app.example.com/insights/42", Severity: "medium"}
	h.render(w, r, http.StatusOK, "rules", data)
}

// rulesTest routes a sample report with the rules in force and shows the
// decision and its explanation. Nothing is stored.
func (h *Handler) rulesTest(w http.ResponseWriter, r *http.Request) {
	data := h.rulesData()
	f := r.PostForm
	s := sampleReport{
		Description: f.Get("description"), URL: strings.TrimSpace(f.Get("url")), ProductArea: f.Get("product_area"),
		Severity: f.Get("severity"), Email: strings.TrimSpace(f.Get("email")), Browser: f.Get("browser"), OS: f.Get("os"),
		Plan: strings.TrimSpace(f.Get("plan")), Events30d: strings.TrimSpace(f.Get("events_30d")), Spam: f.Get("spam") != "",
	}
	data["Sample"] = s
	if h.cfg.Rules == nil {
		data["TestError"] = "The routing rules are not available."
		h.render(w, r, http.StatusServiceUnavailable, "rules", data)
		return
	}
	rep := &bugreport.Report{
		Description: s.Description, URL: s.URL, ProductArea: s.ProductArea, Severity: s.Severity,
		Reporter: bugreport.Reporter{Email: s.Email}, Browser: s.Browser, OS: s.OS, Spam: s.Spam,
	}
	rep.Title, _, _ = strings.Cut(strings.TrimSpace(s.Description), "\n")
	if len([]rune(rep.Title)) > 80 {
		rep.Title = string([]rune(rep.Title)[:80])
	}
	if u, err := url.Parse(s.URL); err == nil {
		rep.Path, rep.Host = u.Path, u.Host
	}
	if s.Events30d != "" || s.Plan != "" {
		rep.Usage = &bugreport.Usage{Person: map[string]string{}}
		if s.Events30d != "" {
			n, err := strconv.ParseUint(s.Events30d, 10, 64)
			if err != nil {
				data["TestError"] = "Events in 30 days must be a whole number."
				h.render(w, r, http.StatusUnprocessableEntity, "rules", data)
				return
			}
			rep.Usage.Events30d = n
		}
		if s.Plan != "" {
			rep.Usage.Person["plan"] = s.Plan
		}
	}
	var rules *routing.Rules = h.cfg.Rules()
	d := rules.Route(rep)
	data["Decision"] = &d
	h.render(w, r, http.StatusOK, "rules", data)
}
