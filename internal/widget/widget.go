// Package widget serves the bug-report widget's bundles and a demo page
// that uses them.
package widget

import (
	"encoding/json"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/httperr"
)

// Config configures the handler.
type Config struct {
	// Files holds arubug.js, site-app.js, site-app-loader.js, screenshot.js,
	// plugin.json and, for the demo, posthog-array.full.js.
	Files fs.FS
	// Version is the content hash in versioned URLs.
	Version string
	// DemoToken is the project token the demo pages report to; empty
	// disables the demo.
	DemoToken string
}

// Handler serves /static/arubug/…, the site app and the demo pages.
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

// AssetsPath is the versioned directory of the widget's files; the
// bundles load the lazy screenshot.js from it.
func (h *Handler) AssetsPath() string { return "/static/arubug/" + h.cfg.Version + "/" }

// ScriptPath is the versioned path of the standalone script.
func (h *Handler) ScriptPath() string { return h.AssetsPath() + "arubug.js" }

// Mount registers the routes.
func (h *Handler) Mount(r chi.Router) {
	r.Get("/static/arubug/{version}/{file}", h.serveFile)
	r.Get("/site_app/"+SiteAppID+"/{token}/{version}", h.serveSiteApp)
	if h.cfg.DemoToken != "" {
		r.Get("/demo", h.serveDemo)
		r.Get("/demo/posthog", h.serveDemoPostHog)
		r.Get("/demo/{asset}", h.serveDemoAsset)
	}
}

var types = map[string]string{
	"arubug.js":     "application/javascript; charset=utf-8",
	"site-app.js":   "application/javascript; charset=utf-8",
	"screenshot.js": "application/javascript; charset=utf-8",
	"plugin.json":   "application/json",
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
	boot, _ := json.Marshal(map[string]any{"id": SiteAppID, "config": map[string]any{}, "assets": h.AssetsPath()})
	w.Header().Set("Content-Type", "application/javascript; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	_, _ = w.Write([]byte("window.__arubug_site_app=" + string(boot) + ";\n"))
	_, _ = w.Write(b)
}

// demoCSP is the demo pages' policy: nothing inline; images from data: URLs
// for the screenshot preview (and the screenshot's own rendering).
const demoCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'"

var demoPages = template.Must(template.New("demo").Parse(`{{define "head"}}<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<link rel="stylesheet" href="/demo/demo.css">
</head>
<body>
<nav><a href="/demo"{{if eq .Page "standalone"}} aria-current="page"{{end}}>Standalone script</a>
<a href="/demo/posthog"{{if eq .Page "posthog"}} aria-current="page"{{end}}>With posthog-js (site app)</a></nav>
<h1>{{.Title}}</h1>
{{end}}
{{define "shop"}}
<form id="checkout" autocomplete="off">
<h2>Checkout</h2>
<label for="card">Card number</label>
<input id="card" name="card" inputmode="numeric" value="4242 4242 4242 4242">
<label for="note">Delivery note</label>
<textarea id="note" name="note">Leave it with the neighbour at no. 12</textarea>
<p class="balance" data-arubug-mask>Store credit: 1 234,56 €</p>
<p><button type="button" id="broken">Pay now</button> — broken on purpose: it logs an error
and makes a failed request, which the report will carry.</p>
</form>
{{end}}
{{define "standalone"}}{{template "head" .}}
<p>This page embeds the Arubug bug-report widget as a plain script, under a strict
Content-Security-Policy. Use the <strong>Report a bug</strong> button (or Alt+Shift+B),
then find the report in the admin API. <strong>Add a screenshot</strong> in the dialog shows what
is sent: the card number, the note and the store credit are blanked out.</p>
{{template "shop" .}}
<script src="{{.Script}}" data-token="{{.Token}}" data-host="{{.Host}}" data-screenshot="true" async></script>
<script src="/demo/app.js"></script>
</body>
</html>
{{end}}
{{define "posthog"}}{{template "head" .}}
<p>This page runs the real posthog-js ({{.PostHog}}, from npm, served by this collector) with
<code>opt_in_site_apps: true</code> and <code>api_host</code> pointing here. posthog-js finds the
widget in the collector's remote config and loads it as a site app by itself; a report sent from
here carries posthog-js's distinct id and session id.</p>
{{template "shop" .}}
<script src="/demo/posthog.js"></script>
<script src="/demo/posthog-init.js" data-token="{{.Token}}"></script>
<script src="/demo/app.js"></script>
</body>
</html>
{{end}}`))

// demoAssets are the demo pages' own scripts and styles (nothing inline
// under the pages' CSP).
var demoAssets = map[string]struct{ ctype, body string }{
	"app.js": {"application/javascript; charset=utf-8", `document.getElementById('broken').addEventListener('click', function () {
  console.error('TypeError: payment.intent is undefined');
  fetch('/demo/api/pay', { method: 'POST' }).catch(function () {});
});
`},
	"posthog-init.js": {"application/javascript; charset=utf-8", `posthog.init(document.currentScript.dataset.token, {
  api_host: location.origin,
  opt_in_site_apps: true,
  disable_session_recording: true
});
`},
	"demo.css": {"text/css; charset=utf-8", `body{font:16px/1.5 system-ui,sans-serif;margin:0 auto;max-width:720px;padding:16px;color:#1f2937}
nav{display:flex;gap:16px;padding-bottom:8px;border-bottom:1px solid #e5e7eb}
nav a[aria-current]{font-weight:600;color:inherit;text-decoration:none}
form{border:1px solid #e5e7eb;border-radius:8px;padding:16px;margin-top:16px}
h2{margin-top:0}
label{display:block;font-weight:600;margin-top:12px}
input,textarea{display:block;width:100%;box-sizing:border-box;font:inherit;padding:6px 8px;border:1px solid #9ca3af;border-radius:6px}
.balance{background:#ecfdf5;padding:8px;border-radius:6px}
`},
}

func (h *Handler) serveDemoAsset(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "asset")
	if name == "posthog.js" {
		b, err := fs.ReadFile(h.cfg.Files, "posthog-array.full.js")
		if err != nil {
			httperr.Write(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/javascript; charset=utf-8")
		_, _ = w.Write(b)
		return
	}
	a, ok := demoAssets[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", a.ctype)
	_, _ = w.Write([]byte(a.body))
}

func (h *Handler) serveDemo(w http.ResponseWriter, r *http.Request) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := scheme + "://" + r.Host
	if strings.ContainsAny(r.Host, "\"'<> ") {
		host = ""
	}
	h.renderDemo(w, "standalone", map[string]string{"Title": "Arubug demo shop", "Script": h.ScriptPath(), "Token": h.cfg.DemoToken, "Host": host})
}

func (h *Handler) serveDemoPostHog(w http.ResponseWriter, _ *http.Request) {
	h.renderDemo(w, "posthog", map[string]string{"Title": "Arubug demo shop with posthog-js", "Token": h.cfg.DemoToken, "PostHog": posthogVersion(h.cfg.Files)})
}

func (h *Handler) renderDemo(w http.ResponseWriter, page string, data map[string]string) {
	data["Page"] = page
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", demoCSP)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_ = demoPages.ExecuteTemplate(w, page, data)
}

var posthogVersionRE = regexp.MustCompile(`LIB_VERSION="([0-9A-Za-z.+-]{1,40})"`)

// posthogVersion finds posthog-js's version in its bundle ("posthog-js"
// when it cannot).
func posthogVersion(files fs.FS) string {
	b, _ := fs.ReadFile(files, "posthog-array.full.js")
	if m := posthogVersionRE.FindSubmatch(b); m != nil {
		return "posthog-js " + string(m[1])
	}
	return "posthog-js"
}
