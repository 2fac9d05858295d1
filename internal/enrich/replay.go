package enrich

import (
	"net/url"
	"strconv"
	"strings"
)

// DefaultReplayTemplate is the replay link posthog-js builds:
// {ui_host}/project/{project token}/replay/{session id}?t={seconds into the
// session}. A project whose replays live elsewhere configures its own
// template with the same placeholders.
const DefaultReplayTemplate = "{host}/project/{token}/replay/{session_id}?t={seconds}"

// ReplayURL fills a replay link template. The placeholders are {host} (the
// replay UI's base URL, a trailing slash dropped), {token} (the project's
// public token), {session_id} and {seconds} (the offset into the session
// where the report was sent). An empty template means DefaultReplayTemplate.
//
// Token and session id are path-escaped, since both come from clients and
// must not be able to change the link's path, add a query or inject markup.
// Negative seconds become 0.
//
// It returns "" rather than a dead or unsafe link: when sessionID is empty,
// when the template uses {host} or {token} and that value is empty, or when
// the result is not an absolute http(s) URL.
func ReplayURL(template, host, token, sessionID string, seconds int64) string {
	if sessionID == "" {
		return ""
	}
	if template == "" {
		template = DefaultReplayTemplate
	}
	host = strings.TrimRight(host, "/")
	if (host == "" && strings.Contains(template, "{host}")) ||
		(token == "" && strings.Contains(template, "{token}")) {
		return ""
	}
	if seconds < 0 {
		seconds = 0
	}
	// One pass, so that a value that happens to contain a placeholder is
	// not expanded again.
	link := strings.NewReplacer(
		"{host}", host,
		"{token}", url.PathEscape(token),
		"{session_id}", url.PathEscape(sessionID),
		"{seconds}", strconv.FormatInt(seconds, 10),
	).Replace(template)
	u, err := url.Parse(link)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return link
}
