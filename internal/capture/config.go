package capture

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
)

// remoteConfig is the minimal answer to posthog-js's start-up config call:
// no feature flags, no session recording, gzip accepted. With it the
// unmodified library runs against Arubug and sends its events here.
func (h *Handler) remoteConfig(token string) map[string]any {
	apps := []any{}
	if h.siteApps != nil {
		for _, a := range h.siteApps(token) {
			apps = append(apps, map[string]string{"id": a.ID, "url": a.URL})
		}
	}
	return map[string]any{
		"token":                 token,
		"supportedCompression":  []string{"gzip-js", "gzip", "lz64"},
		"hasFeatureFlags":       false,
		"captureDeadClicks":     false,
		"capturePerformance":    false,
		"autocapture_opt_out":   false,
		"autocaptureExceptions": false,
		"analytics":             map[string]any{"endpoint": "/e/"},
		"elementsChainAsString": true,
		"sessionRecording":      false,
		"heatmaps":              false,
		// "surveys" is left out on purpose: posthog-js loads its surveys
		// script from api_host whenever the key is present, even as false.
		"defaultIdentifiedOnly": true,
		"siteApps":              apps,
	}
}

// knownToken reports whether token belongs to a project; start-up calls for
// unknown tokens get 401 like capture does, so a typo shows at once.
func (h *Handler) knownToken(w http.ResponseWriter, r *http.Request, token string) bool {
	if _, err := h.project(token); err != nil {
		h.fail(w, r, err)
		return false
	}
	return true
}

func (h *Handler) serveRemoteConfig(w http.ResponseWriter, r *http.Request) {
	token := chi.URLParam(r, "token")
	if !h.knownToken(w, r, token) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_ = json.NewEncoder(w).Encode(h.remoteConfig(token))
}

func (h *Handler) serveRemoteConfigJS(w http.ResponseWriter, r *http.Request) {
	token := chi.URLParam(r, "token")
	if !h.knownToken(w, r, token) {
		return
	}
	cfg, _ := json.Marshal(h.remoteConfig(token))
	key, _ := json.Marshal(token)
	var b strings.Builder
	b.WriteString("(function() {\n  window._POSTHOG_REMOTE_CONFIG = window._POSTHOG_REMOTE_CONFIG || {};\n  window._POSTHOG_REMOTE_CONFIG[")
	// json.Marshal escapes <, > and & so a token cannot close a script tag.
	b.Write(key)
	b.WriteString("] = {\n    config: ")
	b.Write(cfg)
	b.WriteString(",\n    siteApps: []\n  };\n}());\n")
	w.Header().Set("Content-Type", "application/javascript")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write([]byte(b.String()))
}

// serveFlags answers /flags (v2) and the older /decide with no flags. The
// token is not checked: posthog-js ignores a failed flags call, and answering
// it keeps the browser console clean.
func (h *Handler) serveFlags(w http.ResponseWriter, r *http.Request) {
	if r.Body != nil {
		// The body (person properties for flag evaluation) is not needed;
		// drain a bounded amount so keep-alive connections are reused.
		r.Body = http.MaxBytesReader(w, r.Body, h.limits.MaxBodyBytes)
		_, _ = readBody(r.Body, h.limits.MaxBodyBytes, r.ContentLength)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"flags":                     map[string]any{},
		"featureFlags":              map[string]any{},
		"featureFlagPayloads":       map[string]any{},
		"errorsWhileComputingFlags": false,
		"quotaLimited":              []string{},
		"requestId":                 uuid.NewString(),
		"sessionRecording":          false,
		"supportedCompression":      []string{"gzip-js", "gzip", "lz64"},
		"siteApps":                  []any{},
	})
}
