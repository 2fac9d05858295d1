// Package web is Arubug's web UI for teams and managers: an overview of
// trends, the team queues, a report's page with its conversation, and the
// routing rules in force. It is served by the collector under /ui/ from
// embedded assets (no CDN), rendered on the server with html/template, and
// reads and acts through the same interfaces as the admin JSON API
// (internal/api): the report store, the Zendesk tickets, the trends and the
// API's own actions for replies, notes and re-routes.
//
// Access: the admin token, entered once on the sign-in page, opens a
// server-side session (an HttpOnly, SameSite=Strict cookie holding a
// random id). Every state-changing request carries the session's
// synchronizer token and must come from the UI's own origin. Every page is
// sent with a strict Content-Security-Policy: scripts and styles come only
// from /ui/assets/.
package web

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/arubug/arubug/internal/api"
	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/routing"
	"github.com/arubug/arubug/internal/ruleset"
)

// Actions change reports exactly as the admin API's routes do; *api.API
// implements them.
type Actions interface {
	Reroute(ctx context.Context, id bugreport.UUID, team, reason string) (*bugreport.Report, error)
	QueueMessage(ctx context.Context, id bugreport.UUID, body string, public bool) (bugreport.UUID, error)
	RetrySync(ctx context.Context, id bugreport.UUID) error
}

var _ Actions = (*api.API)(nil)

// Config configures the UI. Store, Actions, Teams and AdminToken are needed
// for anything but the sign-in page; the others may be nil, and the pages
// say what is missing.
type Config struct {
	Store api.Store
	// Tickets is the Zendesk sync; nil when it is off.
	Tickets api.Tickets
	// Trends answers the overview's charts and top lists.
	Trends  api.Trends
	Actions Actions
	// AdminToken is what the sign-in page accepts; empty disables the UI.
	AdminToken   string
	Teams        func() []bugreport.Team
	ProductAreas func() []bugreport.ProductArea
	// Rules returns the routing rules in force; RulesStatus the outcome of
	// their last reload.
	Rules       func() *routing.Rules
	RulesStatus func() ruleset.Status
	// RedirectRoot sends GET / to /ui/ (arubug dev).
	RedirectRoot bool
	// ZendeskNotice, when set, is shown on every page: e.g. that tickets go
	// to the built-in Zendesk simulator, not a real account.
	ZendeskNotice string
	// SessionTTL is how long a sign-in lasts (default 12 h); MaxSessions
	// bounds the sessions held in memory (default 1000; past it the one
	// closest to expiry is dropped).
	SessionTTL  time.Duration
	MaxSessions int
	Now         func() time.Time
	Logger      *slog.Logger
}

// Handler serves the UI.
type Handler struct {
	cfg      Config
	sessions *sessions
	pages    map[string]*template.Template
	version  string
}

// Prefix is where the UI is mounted.
const Prefix = "/ui"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/app.css assets/app.js assets/vendor/uPlot.iife.min.js assets/vendor/uPlot.min.css
var assetFS embed.FS

var assets, _ = fs.Sub(assetFS, "assets")

// assetVersion hashes the assets, so their URLs change whenever they do
// and can be cached for good.
var assetVersion = func() string {
	h := sha256.New()
	_ = fs.WalkDir(assets, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(assets, p)
		h.Write([]byte(p))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}()

// New returns the UI's handler.
func New(cfg Config) *Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 1000
	}
	if cfg.Teams == nil {
		cfg.Teams = func() []bugreport.Team { return nil }
	}
	if cfg.ProductAreas == nil {
		cfg.ProductAreas = func() []bugreport.ProductArea { return nil }
	}
	h := &Handler{cfg: cfg, sessions: newSessions(cfg.SessionTTL, cfg.MaxSessions, cfg.Now), version: assetVersion}
	h.pages = parsePages(h.funcs())
	return h
}

func parsePages(funcs template.FuncMap) map[string]*template.Template {
	pages := map[string]*template.Template{}
	for _, name := range []string{"signin", "overview", "team", "report", "rules", "error"} {
		pages[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	return pages
}

// Mount registers the UI's routes on r.
func (h *Handler) Mount(r chi.Router) {
	if h.cfg.RedirectRoot {
		r.Get("/", func(w http.ResponseWriter, req *http.Request) {
			http.Redirect(w, req, Prefix+"/", http.StatusFound)
		})
	}
	r.Route(Prefix, func(r chi.Router) {
		r.Use(securityHeaders)
		r.Get("/assets/{version}/*", h.serveAsset)
		r.Get("/signin", h.signinPage)
		r.With(h.sameOrigin).Post("/signin", h.signin)
		r.Group(func(r chi.Router) {
			r.Use(h.requireSession)
			r.Get("/", h.overview)
			r.Get("/data/trend", h.trendData)
			r.Get("/teams/{team}", h.teamQueue)
			r.Get("/reports/{id}", h.report)
			r.Get("/reports/{id}/screenshot", h.screenshot)
			r.Get("/rules", h.rules)
			r.Group(func(r chi.Router) {
				r.Use(h.sameOrigin, h.checkCSRF)
				r.Post("/signout", h.signout)
				r.Post("/reports/{id}/reply", h.postMessage(true))
				r.Post("/reports/{id}/note", h.postMessage(false))
				r.Post("/reports/{id}/route", h.postReroute)
				r.Post("/reports/{id}/sync", h.postRetrySync)
				r.Post("/rules/test", h.rulesTest)
			})
		})
		r.NotFound(func(w http.ResponseWriter, req *http.Request) {
			h.errorPage(w, req, http.StatusNotFound, "Page not found", "There is no page at this address.")
		})
	})
}

// securityHeaders sets the headers every UI response carries. The policy
// allows scripts, styles, images and fetches from this origin only: no
// inline script or style, no frames, forms posting only here.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", CSP)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		// same-origin: our own forms carry a Referer (checked on POST);
		// links to Zendesk and replays leak nothing.
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		next.ServeHTTP(w, r)
	})
}

// CSP is the Content-Security-Policy of every UI response.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

var assetTypes = map[string]string{
	".js":  "application/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
}

func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "*")
	ctype, ok := assetTypes[path.Ext(name)]
	b, err := fs.ReadFile(assets, name)
	if !ok || err != nil || chi.URLParam(r, "version") != h.version || strings.Contains(name, "..") {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", ctype)
	// The version is the assets' hash: this URL never changes content.
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	_, _ = w.Write(b)
}

// asset is the versioned URL of an embedded asset.
func (h *Handler) asset(name string) string {
	return Prefix + "/assets/" + h.version + "/" + name
}
