package enrich

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mileusna/useragent"
)

// MaxUserAgentBytes bounds the user agent text that ParseUserAgent reads.
// Real user agents are a few hundred bytes; a hostile client can send
// megabytes, and the parser's cost grows with its input.
const MaxUserAgentBytes = 1024

// Device classes that Client.Device takes.
const (
	DeviceDesktop = "desktop"
	DeviceMobile  = "mobile"
	DeviceTablet  = "tablet"
	DeviceBot     = "bot"
	DeviceUnknown = "unknown"
)

// Client is what a user agent string says about the reporter's browser.
// Fields the user agent does not reveal are empty; Device is then
// DeviceUnknown rather than a guess.
type Client struct {
	Browser        string
	BrowserVersion string
	OS             string
	OSVersion      string
	// Device is one of DeviceDesktop, DeviceMobile, DeviceTablet, DeviceBot
	// or DeviceUnknown. A bot wins over its claimed form factor, and a tablet
	// over "mobile", because triage treats those differently.
	Device string
}

// ParseUserAgent parses a User-Agent header with github.com/mileusna/useragent.
// Only the first MaxUserAgentBytes bytes are read (cut at a UTF-8 boundary),
// so its cost is bounded whatever the client sends. It never fails: an empty
// or unrecognisable string gives empty fields and DeviceUnknown. Fields are
// printable text: a name needs a letter or digit and a version must start
// with a digit, otherwise they are empty.
func ParseUserAgent(ua string) Client {
	ua = truncateBytes(ua, MaxUserAgentBytes)
	if ua == "" {
		return Client{Device: DeviceUnknown}
	}
	p := useragent.Parse(ua)
	// The parser echoes what it does not recognise, and reports carry these
	// fields into tickets: keep them printable and plausible.
	c := Client{
		Browser:        cleanName(p.Name),
		BrowserVersion: cleanVersion(p.Version),
		OS:             cleanName(p.OS),
		OSVersion:      cleanVersion(p.OSVersion),
	}
	switch {
	case p.Bot:
		c.Device = DeviceBot
	case p.Tablet:
		c.Device = DeviceTablet
	case p.Mobile:
		c.Device = DeviceMobile
	case p.Desktop:
		c.Device = DeviceDesktop
	default:
		c.Device = DeviceUnknown
	}
	return c
}

// truncateBytes cuts s to at most n bytes without splitting a UTF-8
// sequence, so that the result stays valid text when s was.
func truncateBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// truncateRunes cuts s to at most n characters (runes).
func truncateRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}

// cleanName drops invalid UTF-8 and unprintable characters, and returns ""
// for what has no letter or digit left.
func cleanName(s string) string {
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, "")))
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) < 0 {
		return ""
	}
	return s
}

// cleanVersion is cleanName for version numbers, which start with a digit.
func cleanVersion(s string) string {
	s = cleanName(s)
	if s == "" || s[0] < '0' || s[0] > '9' {
		return ""
	}
	return s
}
