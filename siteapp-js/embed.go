// Package siteappjs embeds the built bug-report widget (dist/, produced by
// `make widget` and checked by CI) so that the collector can serve it.
package siteappjs

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
)

//go:embed dist/arubug.js dist/site-app.js dist/site-app-loader.js dist/screenshot.js dist/plugin.json dist/posthog-array.full.js
var dist embed.FS

// Files holds the bundles at their root: arubug.js, site-app.js,
// site-app-loader.js, screenshot.js (loaded lazily by the other three from
// their own directory), plugin.json, and posthog-array.full.js (posthog-js
// from npm, for the dev demo).
var Files, _ = fs.Sub(dist, "dist")

// Version is a hash of the widget's files: it changes whenever they do,
// so URLs that carry it can be cached for good.
var Version = func() string {
	h := sha256.New()
	for _, name := range []string{"arubug.js", "site-app.js", "site-app-loader.js", "screenshot.js", "plugin.json"} {
		b, _ := fs.ReadFile(Files, name)
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}()
