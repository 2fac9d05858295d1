package widget

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/go-chi/chi/v5"
)

func TestServesVersionedBundlesAndDemo(t *testing.T) {
	h := New(Config{Files: fstest.MapFS{
		"arubug.js":             {Data: []byte("/*widget*/")},
		"site-app.js":           {Data: []byte("export function inject(){}")},
		"plugin.json":           {Data: []byte(`{}`)},
		"site-app-loader.js":    {Data: []byte("/*loader*/")},
		"screenshot.js":         {Data: []byte("export function capture(){}")},
		"posthog-array.full.js": {Data: []byte(`/*posthog*/jr.LIB_VERSION="1.449.2",x`)},
	}, Version: "abc123", DemoToken: `phc_demo"<x>`})
	r := chi.NewRouter()
	h.Mount(r)
	srv := httptest.NewServer(r)
	defer srv.Close()
	get := func(path string) (*http.Response, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	tests := []struct {
		path, status, cache, body string
	}{
		{"/static/arubug/abc123/arubug.js", "200", "immutable", "/*widget*/"},
		{"/static/arubug/latest/arubug.js", "200", "max-age=300", "/*widget*/"},
		{"/static/arubug/abc123/site-app.js", "200", "immutable", "inject"},
		{"/static/arubug/abc123/screenshot.js", "200", "immutable", "capture"},
		{"/static/arubug/abc123/posthog-array.full.js", "404", "", ""},
		{"/static/arubug/old999/arubug.js", "404", "", "current version is abc123"},
		{"/static/arubug/abc123/../../etc/passwd", "404", "", ""},
		{"/static/arubug/abc123/secret.go", "404", "", ""},
	}
	for _, tt := range tests {
		resp, body := get(tt.path)
		if got := resp.Status[:3]; got != tt.status || !strings.Contains(resp.Header.Get("Cache-Control"), tt.cache) || !strings.Contains(body, tt.body) {
			t.Errorf("GET %s: %s cache %q body %q", tt.path, resp.Status, resp.Header.Get("Cache-Control"), body)
		}
	}
	resp, body := get(h.SiteAppPath("phc_x"))
	if resp.StatusCode != 200 || !strings.HasPrefix(body, `window.__arubug_site_app={"assets":"/static/arubug/abc123/","config":{},"id":"arubug"};`) ||
		!strings.Contains(body, "/*loader*/") || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("site app: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get("/site_app/arubug/phc_x/oldversion"); resp.StatusCode != 404 {
		t.Errorf("old site app version: %d", resp.StatusCode)
	}
	resp, body = get("/demo")
	if resp.StatusCode != 200 || !strings.Contains(body, `src="/static/arubug/abc123/arubug.js"`) ||
		strings.Contains(body, `"<x>`) || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Errorf("demo: %d %s\n%s", resp.StatusCode, resp.Header, body)
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, "style=") || !strings.Contains(body, `data-screenshot="true"`) ||
		!strings.Contains(body, `href="/demo/posthog"`) {
		t.Errorf("demo page: inline script or style, no screenshot, or no link to the posthog-js page:\n%s", body)
	}
	resp, body = get("/demo/posthog")
	if resp.StatusCode != 200 || !strings.Contains(body, `src="/demo/posthog.js"`) || !strings.Contains(body, `data-token="phc_demo&#34;&lt;x&gt;"`) ||
		!strings.Contains(body, "posthog-js 1.449.2") || !strings.Contains(body, `href="/demo"`) ||
		strings.Contains(body, "<script>") || resp.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("demo/posthog: %d %s\n%s", resp.StatusCode, resp.Header, body)
	}
	for path, want := range map[string]string{
		"/demo/posthog.js":      "/*posthog*/",
		"/demo/posthog-init.js": "opt_in_site_apps: true",
		"/demo/app.js":          "broken",
		"/demo/demo.css":        "body{",
	} {
		if resp, body := get(path); resp.StatusCode != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d %q", path, resp.StatusCode, body)
		}
	}
	if resp, _ := get("/demo/nothing.js"); resp.StatusCode != 404 {
		t.Errorf("unknown demo asset: %d", resp.StatusCode)
	}
}
