// Package widget serves the bug-report widget's bundles and a demo page
// that uses them.
package widget

import (
	"encoding/json"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/httperr"
)

// Config configures the handler.
type Config struct {
	// Files holds arubug.js, site-app.js and plugin.json.
	Files fs.FS
	// Version is the content hash in versioned URLs.
	Version string
	// DemoToken is the project token the demo page reports to; empty
	// disables the demo.
	DemoToken string
}

// Handler serves /static/arubug/… and /demo.
type Handler struct{ cfg Config }

// New returns a Handler.
func New(cfg Config) *Handler { return &Handler{cfg: cfg} }

// SiteAppID is the id posthog-js knows the widget's site app by.
const SiteAppID = "arubug"

// SiteAppPath is the path posthog-js loads the site app from (relative to
// its api_host) for a project token.
func (h *Handler) SiteAppPath(token string) string {
	return "/site_app/" + SiteAppID + "/" + url.PathEscape(token) + "/" + h.cfg.Version
}

// ScriptPath is the versioned path of the standalone script.
func (h *Handler) ScriptPath() string { return "/static/arubug/" + h.cfg.Version + "/arubug.js" }

// Mount registers the routes.
func (h *Handler) Mount(r chi.Router) {
	r.Get("/static/arubug/{version}/{file}", h.serveFile)
	r.Get("/site_app/"+SiteAppID+"/{token}/{version}", h.serveSiteApp)
	if h.cfg.DemoToken != "" {
		r.Get("/demo", h.serveDemo)
		r.Get("/demo/app.js", h.serveDemoApp)
	}
}

var types = map[string]string{
	"arubug.js":   "application/javascript; charset=utf-8",
	"site-app.js": "application/javascript; charset=utf-8",
	"plugin.json": "application/json",
}

func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request) {
	version, file := chi.URLParam(r, "version"), chi.URLParam(r, "file")
	ctype, known := types[file]
	if !known || (version != h.cfg.Version && version != "latest") {
		httperr.Write(w, bugreport.Errorf(bugreport.ENOTFOUND, "not_found", "no such widget file; the current version is %s", h.cfg.Version))
		return
	}
	b, err := fs.ReadFile(h.cfg.Files, file)
	if err != nil {
		httperr.Write(w, err)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if version == "latest" {
		w.Header().Set("Cache-Control", "public, max-age=300")
	} else {
		// The version is the content's hash: this URL never changes content.
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	}
	_, _ = w.Write(b)
}

// serveSiteApp serves the site app as posthog-js loads it: a classic
// script, cross-origin, that finds posthog-js's instance by the app's id.
func (h *Handler) serveSiteApp(w http.ResponseWriter, r *http.Request) {
	if chi.URLParam(r, "version") != h.cfg.Version {
		httperr.Write(w, bugreport.Errorf(bugreport.ENOTFOUND, "not_found", "no such site app version; the current version is %s", h.cfg.Version))
		return
	}
	b, err := fs.ReadFile(h.cfg.Files, "site-app-loader.js")
	if err != nil {
		httperr.Write(w, err)
		return
	}
	// json.Marshal escapes <, > and &, so nothing here can end the script.
	boot, _ := json.Marshal(map[string]any{"id": SiteAppID, "config": map[string]any{}})
	w.Header().Set("Content-Type", "application/javascript; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	_, _ = w.Write([]byte("window.__arubug_site_app=" + string(boot) + ";\n"))
	_, _ = w.Write(b)
}

var demoPage = template.Must(template.New("demo").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Arubug demo shop</title>
</head>
<body>
<h1>Arubug demo shop</h1>
<p>This page embeds the Arubug bug-report widget as a plain script, under a strict
Content-Security-Policy. Use the <strong>Report a bug</strong> button (or Alt+Shift+B),
then find the report in the admin API.</p>
<p><button type="button" id="broken">Pay now</button> — this button is broken on purpose: it
logs an error and a failed request, which the report will carry.</p>
<script src="{{.Script}}" data-token="{{.Token}}" data-host="{{.Host}}" async></script>
<script src="/demo/app.js"></script>
</body>
</html>
`))

const demoApp = `document.getElementById('broken').addEventListener('click', function () {
  console.error('TypeError: payment.intent is undefined');
  fetch('/demo/api/pay', { method: 'POST' }).catch(function () {});
});
`

func (h *Handler) serveDemo(w http.ResponseWriter, r *http.Request) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := scheme + "://" + r.Host
	if strings.ContainsAny(r.Host, "\"'<> ") {
		host = ""
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_ = demoPage.Execute(w, map[string]string{"Script": h.ScriptPath(), "Token": h.cfg.DemoToken, "Host": host})
}

// serveDemoApp serves the demo page's own script (no inline script under
// the page's CSP).
func (h *Handler) serveDemoApp(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/javascript; charset=utf-8")
	_, _ = w.Write([]byte(demoApp))
}
