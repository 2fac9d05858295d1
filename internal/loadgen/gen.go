package loadgen

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"math/rand/v2"
	"slices"
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

// Sentinels put where holes go while building templates: '@' is never
// escaped by encoding/json, and a run of '@' this long does not occur in
// the generated content (a token or run id with an odd '@' is fine).
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
	gz    gzTemplate // precompressed pieces, when the run gzips
}

// newTemplate finds the sentinels in b and records them as holes.
func newTemplate(b []byte) template {
	t := template{b: b}
	for i := 0; i < len(b); i++ {
		if b[i] != '@' {
			continue
		}
		for k, s := range sentinels {
			if bytes.HasPrefix(b[i:], []byte(s)) {
				t.holes = append(t.holes, hole{off: int32(i), kind: holeKind(k)})
				i += len(s) - 1
				break
			}
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
	batch  int
	single []template // capture, BatchSize 1: whole bodies with api_key
	events []template // capture batch: event objects; clickhouse-http: rows
	prefix template   // batch envelope / INSERT statement head
	comma  template   // between the events of a capture batch
	suffix template   // batch envelope tail (sent_at)
	// gzBodies are whole request bodies with precompressed gzip pieces,
	// built only when the run gzips (and not with Config.GzipFull).
	gzBodies []template
}

func newGenerator(cfg Config) *generator {
	h := fnv.New64a()
	h.Write([]byte(cfg.RunID))
	seed := h.Sum64()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	g := &generator{batch: cfg.BatchSize}
	users := makeUsers(rng, cfg.RunID, max(1, cfg.PoolSize/4))
	for range cfg.PoolSize {
		ev := makeEvent(rng, &users[rng.IntN(len(users))], cfg.Token, cfg.RunID)
		if cfg.BugReports {
			ev = asBugReport(rng, ev)
		}
		switch {
		case cfg.Mode == ModeClickHouseHTTP:
			g.events = append(g.events, newTemplate(append(chRow(ev, cfg.Token), '\n')))
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
		g.comma = newTemplate([]byte(","))
		g.suffix = newTemplate([]byte(`],"sent_at":"` + sentinels[holeTS] + `"}`))
	}
	if cfg.Gzip && !cfg.GzipFull {
		g.buildGzBodies(cfg.PoolSize)
	}
	return g
}

// buildGzBodies assembles whole bodies from the templates (every single
// event, or about PoolSize/BatchSize batches, at least 4) and precompresses
// them.
func (g *generator) buildGzBodies(poolSize int) {
	fw, _ := flate.NewWriter(nil, flate.BestCompression)
	if g.single != nil {
		for _, t := range g.single {
			g.gzBodies = append(g.gzBodies, gzBody(t.b, fw))
		}
		return
	}
	for i := range min(poolSize, max(4, poolSize/g.batch)) {
		b := slices.Clone(g.prefix.b)
		for j := range g.batch {
			if j > 0 {
				b = append(b, g.comma.b...)
			}
			b = append(b, g.events[(i*g.batch+j)%len(g.events)].b...)
		}
		b = append(b, g.suffix.b...)
		g.gzBodies = append(g.gzBodies, gzBody(b, fw))
	}
}

// render renders one request body: the JSON into raw and, when the
// generator has gzBodies, the gzip stream of the same bytes into gz. cursor
// is the worker's position in the template pool.
func (g *generator) render(raw, gz []byte, cursor *int, now time.Time, rs *renderState) ([]byte, []byte) {
	rs.setTime(now)
	if g.gzBodies != nil {
		t := &g.gzBodies[*cursor%len(g.gzBodies)]
		*cursor++
		start := len(raw)
		raw = t.appendTo(raw, rs)
		gz = append(gz, gzipHeader...)
		gstart := len(gz)
		gz = append(gz, t.gz.b...)
		for _, c := range t.gz.copies {
			copy(gz[gstart+int(c.dst):gstart+int(c.dst+c.n)], raw[start+int(c.src):])
		}
		// Empty final fixed-Huffman block, then CRC-32 and size of the data.
		gz = append(gz, 0x03, 0x00)
		gz = binary.LittleEndian.AppendUint32(gz, crc32.ChecksumIEEE(raw[start:]))
		gz = binary.LittleEndian.AppendUint32(gz, uint32(len(raw)-start))
		return raw, gz
	}
	if g.single != nil {
		t := &g.single[*cursor%len(g.single)]
		*cursor++
		return t.appendTo(raw, rs), gz
	}
	raw = g.prefix.appendTo(raw, rs)
	for i := range g.batch {
		if i > 0 {
			raw = g.comma.appendTo(raw, rs)
		}
		raw = g.events[*cursor%len(g.events)].appendTo(raw, rs)
		*cursor++
	}
	return g.suffix.appendTo(raw, rs), gz
}

// ---- gzip without compressing per request ----
//
// A body template is compressed once as one DEFLATE stream, sync-flushed
// at the edges of every hole. The compressor is fed 0xFF bytes for a hole
// and its output for them is replaced by a stored (uncompressed) block of
// the same length, whose payload is copied in per request. The window of
// the decompressor then holds the real hole bytes where the compressor saw
// 0xFF; that is harmless because no later match can have referenced them:
// outside the holes the text is UTF-8, where 0xFF never occurs, so no match
// source can overlap a hole. A request body is then the gzip header, the
// pieces with the holes filled, an empty final block and the CRC-32/size
// trailer: a valid gzip stream (gzip.Reader verifies it in the tests) with
// the compression ratio of compressing the whole body, for the price of a
// memcpy and a CRC instead of ~50µs and more of compress/gzip per body.

var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

type gzTemplate struct {
	b      []byte
	copies []gzCopy
}

// gzCopy copies n bytes of the rendered body at src into the stored block
// payload at dst.
type gzCopy struct{ dst, src, n int32 }

func gzBody(b []byte, fw *flate.Writer) template {
	t := newTemplate(b)
	var buf bytes.Buffer
	fw.Reset(&buf)
	var ff [64]byte
	for i := range ff {
		ff[i] = 0xff
	}
	pos := 0
	for _, h := range t.holes {
		if int(h.off) > pos {
			_, _ = fw.Write(t.b[pos:h.off])
			_ = fw.Flush()
			t.gz.b = append(t.gz.b, buf.Bytes()...)
		}
		n := holeWidth[h.kind]
		_, _ = fw.Write(ff[:n])
		_ = fw.Flush()
		buf.Reset()                                                               // the compressed hole is dropped: the stored block replaces it
		t.gz.b = append(t.gz.b, 0x00, byte(n), byte(n>>8), ^byte(n), ^byte(n>>8)) // stored, not final
		t.gz.copies = append(t.gz.copies, gzCopy{dst: int32(len(t.gz.b)), src: h.off, n: int32(n)})
		t.gz.b = append(t.gz.b, ff[:n]...)
		pos = int(h.off) + n
	}
	buf.Reset()
	if pos < len(t.b) {
		_, _ = fw.Write(t.b[pos:])
		_ = fw.Flush()
		t.gz.b = append(t.gz.b, buf.Bytes()...)
	}
	return t
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

// asBugReport turns an event into a $bug_report as the Arubug widget sends
// it: a description, severity, product area and captured context.
func asBugReport(rng *rand.Rand, ev event) event {
	ev.Event = "$bug_report"
	p := ev.Properties
	areas := []string{"product-analytics", "session-replay", "billing", "feature-flags", "not-sure"}
	p["$description"] = []string{
		"The checkout button does nothing when I click it.\nTried twice in Chrome.",
		"Charts on the dashboard stay empty after the last update.",
		"I was charged twice this month, please help.",
		"The replay player freezes at 2 minutes.",
	}[rng.IntN(4)]
	p["$severity"] = []string{"low", "medium", "high", "critical"}[rng.IntN(4)]
	p["$product_area"] = areas[rng.IntN(len(areas))]
	p["$time_to_submit_ms"] = 4000 + rng.IntN(60000)
	p["$console"] = []any{map[string]any{"level": "error", "message": "TypeError: Cannot read properties of undefined (reading 'id')"}}
	p["$network"] = []any{map[string]any{"method": "POST", "url": "https://api.example.com/checkout", "status": 500, "duration_ms": 230}}
	return ev
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
