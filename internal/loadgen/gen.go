package loadgen

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Bodies are rendered from templates pre-generated once per run: a template
// is JSON text with fixed-width holes for the per-event UUID and the
// per-request timestamps, so rendering a request is a memcpy plus a few
// hole fills (see BenchmarkRender).

type holeKind uint8

const (
	holeUUID   holeKind = iota // 36 bytes, a fresh UUIDv7
	holeTS                     // 24 bytes, RFC 3339 UTC with milliseconds
	holeCHTime                 // 19 bytes, "2006-01-02 15:04:05" (ClickHouse DateTime)
)

const (
	tsLayout     = "2006-01-02T15:04:05.000Z"
	chTimeLayout = "2006-01-02 15:04:05"
)

// holeWidth is the fixed width of each kind of hole.
var holeWidth = [...]int{holeUUID: 36, holeTS: len(tsLayout), holeCHTime: len(chTimeLayout)}

// Sentinels put where holes go while building templates; '@' is never
// escaped by encoding/json and never occurs in the generated content.
var sentinels = [...]string{
	holeUUID:   sentinel("UUID", holeWidth[holeUUID]),
	holeTS:     sentinel("TS", holeWidth[holeTS]),
	holeCHTime: sentinel("CHTIME", holeWidth[holeCHTime]),
}

func sentinel(name string, width int) string {
	return "@@" + name + strings.Repeat("@", width-2-len(name))
}

type hole struct {
	off  int32
	kind holeKind
}

type template struct {
	b     []byte
	holes []hole
}

// newTemplate finds the sentinels in b and records them as holes.
func newTemplate(b []byte) template {
	t := template{b: b}
	for i := 0; i < len(b); i++ {
		if b[i] != '@' {
			continue
		}
		found := false
		for k, s := range sentinels {
			if bytes.HasPrefix(b[i:], []byte(s)) {
				t.holes = append(t.holes, hole{off: int32(i), kind: holeKind(k)})
				i += len(s) - 1
				found = true
				break
			}
		}
		if !found {
			panic(fmt.Sprintf("loadgen: stray '@' in template at %d: %q", i, b))
		}
	}
	return t
}

// renderState carries the per-request values filled into holes.
type renderState struct {
	ts     [len(tsLayout)]byte
	chTime [len(chTimeLayout)]byte
	uuids  []uuid.UUID // UUIDs of the events rendered so far
}

func (rs *renderState) setTime(now time.Time) {
	now = now.UTC()
	// AppendFormat may need more room than the result while formatting.
	var scratch [64]byte
	copy(rs.ts[:], now.AppendFormat(scratch[:0], tsLayout))
	copy(rs.chTime[:], now.AppendFormat(scratch[:0], chTimeLayout))
}

func (t *template) appendTo(dst []byte, rs *renderState) []byte {
	start := len(dst)
	dst = append(dst, t.b...)
	for _, h := range t.holes {
		p := dst[start+int(h.off):]
		switch h.kind {
		case holeUUID:
			// crypto/rand never fails since Go 1.24, so neither does NewV7.
			u := uuid.Must(uuid.NewV7())
			putUUID(p[:36], u)
			rs.uuids = append(rs.uuids, u)
		case holeTS:
			copy(p, rs.ts[:])
		case holeCHTime:
			copy(p, rs.chTime[:])
		}
	}
	return dst
}

// putUUID writes the canonical 36-byte form of u into dst.
func putUUID(dst []byte, u uuid.UUID) {
	hex.Encode(dst[0:8], u[0:4])
	dst[8] = '-'
	hex.Encode(dst[9:13], u[4:6])
	dst[13] = '-'
	hex.Encode(dst[14:18], u[6:8])
	dst[18] = '-'
	hex.Encode(dst[19:23], u[8:10])
	dst[23] = '-'
	hex.Encode(dst[24:36], u[10:16])
}

// generator renders request bodies for one run. It is read-only after
// construction and safe for concurrent use; each worker keeps its own cursor
// and renderState.
type generator struct {
	mode   string
	batch  int
	single []template // capture, BatchSize 1: whole bodies with api_key
	events []template // capture batch: event objects; clickhouse-http: rows
	prefix template   // batch envelope / INSERT statement head
	suffix template   // batch envelope tail (sent_at)
}

func newGenerator(cfg Config) *generator {
	h := fnv.New64a()
	h.Write([]byte(cfg.RunID))
	seed := h.Sum64()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	g := &generator{mode: cfg.Mode, batch: cfg.BatchSize}
	users := makeUsers(rng, cfg.RunID, max(1, cfg.PoolSize/4))
	for range cfg.PoolSize {
		ev := makeEvent(rng, &users[rng.IntN(len(users))], cfg.Token, cfg.RunID)
		switch {
		case cfg.Mode == ModeClickHouseHTTP:
			g.events = append(g.events, newTemplate(chRow(ev, cfg.Token)))
		case cfg.BatchSize == 1:
			ev.APIKey = cfg.Token
			g.single = append(g.single, newTemplate(mustJSON(ev)))
		default:
			g.events = append(g.events, newTemplate(mustJSON(ev)))
		}
	}
	switch {
	case cfg.Mode == ModeClickHouseHTTP:
		g.prefix = newTemplate([]byte("INSERT INTO " + cfg.Table + " FORMAT JSONEachRow\n"))
	case cfg.BatchSize > 1:
		g.prefix = newTemplate([]byte(`{"api_key":` + string(mustJSON(cfg.Token)) + `,"batch":[`))
		g.suffix = newTemplate([]byte(`],"sent_at":"` + sentinels[holeTS] + `"}`))
	}
	return g
}

// render appends one request body to dst. cursor is the worker's position
// in the template pool.
func (g *generator) render(dst []byte, cursor *int, now time.Time, rs *renderState) []byte {
	rs.setTime(now)
	if g.single != nil {
		t := &g.single[*cursor%len(g.single)]
		*cursor++
		return t.appendTo(dst, rs)
	}
	dst = g.prefix.appendTo(dst, rs)
	for i := range g.batch {
		if i > 0 && g.mode == ModeCapture {
			dst = append(dst, ',')
		}
		t := &g.events[*cursor%len(g.events)]
		*cursor++
		dst = t.appendTo(dst, rs)
		if g.mode == ModeClickHouseHTTP {
			dst = append(dst, '\n')
		}
	}
	return g.suffix.appendTo(dst, rs)
}

// ---- event content ----

type user struct {
	distinctID string
	deviceID   string
	sessionID  string
	windowID   string
	browser    browser
	lang       string
	screen     [2]int
}

type browser struct {
	name, version, os, osVersion, device, ua string
}

var browsers = []browser{
	{"Chrome", "131", "Mac OS X", "10.15.7", "Desktop", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"},
	{"Chrome", "130", "Windows", "10.0", "Desktop", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"},
	{"Firefox", "133", "Linux", "", "Desktop", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"},
	{"Mobile Safari", "18.1", "iOS", "18.1.1", "Mobile", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"},
	{"Chrome", "131", "Android", "14", "Mobile", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"},
	{"Safari", "18.1", "Mac OS X", "10.15.7", "Desktop", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15"},
}

var (
	hosts     = []string{"shop.example.com", "www.example.com", "docs.example.com"}
	pathnames = []string{"/", "/pricing", "/blog/how-we-scaled-ingestion", "/docs/getting-started",
		"/product/1432", "/product/88", "/cart", "/checkout", "/signup", "/login", "/account/settings",
		"/search"}
	referrers = []string{"$direct", "https://www.google.com/", "https://news.ycombinator.com/", "https://t.co/"}
	langs     = []string{"en-US", "en-GB", "de-DE", "fr-FR", "ja-JP", "pt-BR"}
	screens   = [][2]int{{1920, 1080}, {2560, 1440}, {1440, 900}, {390, 844}, {412, 915}, {1536, 864}}
	clicks    = []struct{ tag, text, class, href string }{
		{"button", "Sign up", "btn btn-primary", ""},
		{"a", "Pricing", "nav-link", "/pricing"},
		{"button", "Add to cart", "btn add-to-cart", ""},
		{"a", "Read more", "post-link", "/blog/how-we-scaled-ingestion"},
		{"input", "", "search-input", ""},
		{"button", "Checkout", "btn btn-success", ""},
	}
	customEvents = []string{"signup_clicked", "checkout_started", "purchase_completed",
		"search_performed", "video_played", "$pageleave"}
)

const libVersion = "1.200.2"

func makeUsers(rng *rand.Rand, runID string, n int) []user {
	us := make([]user, n)
	for i := range us {
		us[i] = user{
			distinctID: fmt.Sprintf("%s:user-%05d", runID, i),
			deviceID:   randUUIDv7(rng),
			sessionID:  randUUIDv7(rng),
			windowID:   randUUIDv7(rng),
			browser:    browsers[rng.IntN(len(browsers))],
			lang:       langs[rng.IntN(len(langs))],
			screen:     screens[rng.IntN(len(screens))],
		}
	}
	return us
}

// randUUIDv7 makes a plausible, deterministic UUIDv7 string for the
// per-user ids (session, window, device) that do not need to be unique.
func randUUIDv7(rng *rand.Rand) string {
	var u uuid.UUID
	ms := uint64(time.Now().UnixMilli()) - rng.Uint64N(3600_000)
	for i := range 6 {
		u[i] = byte(ms >> (40 - 8*i))
	}
	r := rng.Uint64()
	for i := 6; i < 16; i++ {
		u[i] = byte(r >> (8 * (i % 8)))
		if i%8 == 7 {
			r = rng.Uint64()
		}
	}
	u[6] = 0x70 | u[6]&0x0f
	u[8] = 0x80 | u[8]&0x3f
	return u.String()
}

// event is the posthog-js wire shape of one captured event.
type event struct {
	APIKey     string         `json:"api_key,omitempty"`
	UUID       string         `json:"uuid"`
	Event      string         `json:"event"`
	DistinctID string         `json:"distinct_id"`
	Properties map[string]any `json:"properties"`
	Timestamp  string         `json:"timestamp"`
}

func makeEvent(rng *rand.Rand, u *user, token, runID string) event {
	host := hosts[rng.IntN(len(hosts))]
	path := pathnames[rng.IntN(len(pathnames))]
	ref := referrers[rng.IntN(len(referrers))]
	refDomain := "$direct"
	if ref != "$direct" {
		refDomain = strings.TrimSuffix(strings.TrimPrefix(ref, "https://"), "/")
	}
	vw, vh := u.screen[0], u.screen[1]-rng.IntN(200)
	p := map[string]any{
		"$os":               u.browser.os,
		"$os_version":       u.browser.osVersion,
		"$browser":          u.browser.name,
		"$browser_version":  u.browser.version,
		"$device_type":      u.browser.device,
		"$raw_user_agent":   u.browser.ua,
		"$browser_language": u.lang,
		"$current_url":      "https://" + host + path,
		"$host":             host,
		"$pathname":         path,
		"$screen_width":     u.screen[0],
		"$screen_height":    u.screen[1],
		"$viewport_width":   vw,
		"$viewport_height":  vh,
		"$lib":              "web",
		"$lib_version":      libVersion,
		"$insert_id":        fmt.Sprintf("%016x", rng.Uint64()),
		"distinct_id":       u.distinctID,
		"$device_id":        u.deviceID,
		"$session_id":       u.sessionID,
		"$window_id":        u.windowID,
		"$pageview_id":      randUUIDv7(rng),
		"$referrer":         ref,
		"$referring_domain": refDomain,
		"$is_identified":    false,
		"token":             token,
		"arubug_run_id":     runID,
	}
	var name string
	switch r := rng.IntN(10); {
	case r < 5:
		name = "$pageview"
		p["title"] = "Example — " + strings.Trim(path, "/")
	case r < 8:
		name = "$autocapture"
		c := clicks[rng.IntN(len(clicks))]
		el := map[string]any{
			"tag_name":    c.tag,
			"attr__class": c.class,
			"classes":     strings.Fields(c.class),
			"nth_child":   1 + rng.IntN(4),
			"nth_of_type": 1 + rng.IntN(2),
		}
		if c.text != "" {
			el["$el_text"] = c.text
		}
		if c.href != "" {
			el["attr__href"] = c.href
		}
		p["$event_type"] = "click"
		p["$ce_version"] = 1
		p["$elements"] = []any{
			el,
			map[string]any{"tag_name": "div", "attr__class": "container", "classes": []string{"container"}, "nth_child": 2, "nth_of_type": 1},
			map[string]any{"tag_name": "body", "nth_child": 2, "nth_of_type": 1},
		}
	default:
		name = customEvents[rng.IntN(len(customEvents))]
		p["plan"] = []string{"free", "pro", "enterprise"}[rng.IntN(3)]
		p["amount"] = float64(rng.IntN(50000)) / 100
		p["experiment_variant"] = []string{"control", "test"}[rng.IntN(2)]
		p["step"] = 1 + rng.IntN(5)
	}
	return event{
		UUID:       sentinels[holeUUID],
		Event:      name,
		DistinctID: u.distinctID,
		Properties: p,
		Timestamp:  sentinels[holeTS],
	}
}

// chRow is the JSONEachRow line for an event in clickhouse-http mode: the
// columns the collector fills (Arubug's events table), properties as a JSON
// string. Columns the target table lacks are skipped
// (input_format_skip_unknown_fields=1).
func chRow(ev event, project string) []byte {
	str := func(k string) string { s, _ := ev.Properties[k].(string); return s }
	return mustJSON(struct {
		UUID       string `json:"uuid"`
		Project    string `json:"project"`
		Event      string `json:"event"`
		DistinctID string `json:"distinct_id"`
		Timestamp  string `json:"timestamp"`
		CreatedAt  string `json:"created_at"`
		Properties string `json:"properties"`
		SessionID  string `json:"session_id"`
		WindowID   string `json:"window_id"`
		DeviceID   string `json:"device_id"`
		CurrentURL string `json:"current_url"`
		Pathname   string `json:"pathname"`
		Host       string `json:"host"`
		Lib        string `json:"lib"`
		LibVersion string `json:"lib_version"`
	}{
		sentinels[holeUUID], project, ev.Event, ev.DistinctID, sentinels[holeCHTime], sentinels[holeCHTime],
		string(mustJSON(ev.Properties)), str("$session_id"), str("$window_id"), str("$device_id"),
		str("$current_url"), str("$pathname"), str("$host"), str("$lib"), str("$lib_version"),
	})
}

func mustJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}
