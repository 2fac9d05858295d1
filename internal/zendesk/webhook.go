package zendesk

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/httperr"
)

// Headers of a signed Zendesk webhook delivery.
const (
	HeaderWebhookSignature          = "X-Zendesk-Webhook-Signature"
	HeaderWebhookSignatureTimestamp = "X-Zendesk-Webhook-Signature-Timestamp"
)

// Kinds of webhook payloads, the "kind" field of the trigger templates.
const (
	// WebhookKindReport is the ticket's creation: the comment is the
	// ticket's first comment, the report itself.
	WebhookKindReport = "report"
	// WebhookKindComment is a comment added to an existing ticket.
	WebhookKindComment = "comment"
	// WebhookKindStatus is a change of the ticket's status.
	WebhookKindStatus = "status"
)

// The body templates of the triggers that Setup creates. Zendesk renders
// the placeholders (escaped for JSON, since the webhook's request format is
// json) and signs the result. Every value is quoted so that the body stays
// valid JSON whatever a placeholder renders to, numbers and booleans
// included; the receiver parses them back.
const (
	webhookTicketFields = `"ticket":{` +
		`"id":"{{ticket.id}}",` +
		`"external_id":"{{ticket.external_id}}",` +
		`"status":"{{ticket.status}}",` +
		`"updated_at":"{{ticket.updated_at}}",` +
		`"requester_id":"{{ticket.requester.id}}"}`
	webhookCommentFields = `"comment":{` +
		`"id":"{{ticket.latest_comment.id}}",` +
		`"body":"{{ticket.latest_comment.body}}",` +
		`"public":"{{ticket.latest_comment.is_public}}",` +
		`"via":"{{ticket.latest_comment.via}}",` +
		`"created_at":"{{ticket.latest_comment.created_at}}",` +
		`"author_id":"{{ticket.latest_comment.author.id}}",` +
		`"author_name":"{{ticket.latest_comment.author.name}}"}`

	// ReportWebhookTemplate is the body sent when a ticket tagged for
	// Arubug is created: its first comment is the report.
	ReportWebhookTemplate = `{"kind":"` + WebhookKindReport + `",` + webhookTicketFields + `,` + webhookCommentFields + `}`
	// CommentWebhookTemplate is the body sent when a comment (public reply,
	// emailed reply or internal note) is added to such a ticket.
	CommentWebhookTemplate = `{"kind":"` + WebhookKindComment + `",` + webhookTicketFields + `,` + webhookCommentFields + `}`
	// StatusWebhookTemplate is the body sent when such a ticket's status
	// changes.
	StatusWebhookTemplate = `{"kind":"` + WebhookKindStatus + `",` + webhookTicketFields + `}`
)

// Defaults of WebhookConfig.
const (
	DefaultWebhookMaxAge       = 5 * time.Minute
	DefaultWebhookMaxBodyBytes = 256 << 10
	// webhookReplayEntries bounds the memory of accepted signatures.
	webhookReplayEntries = 100_000
	// webhookRetryAfter is what a 503 asks Zendesk to wait when the cause
	// gives no better hint.
	webhookRetryAfter = 5 * time.Second
)

// WebhookConfig configures a WebhookReceiver.
type WebhookConfig struct {
	// Secret is the webhook's signing secret (required).
	Secret string
	// Sink stores the message events durably (required).
	Sink bugreport.EventSink
	// Project names the project of a report (required). A *bugreport.Error
	// with ENOTFOUND means the report is not Arubug's (the delivery is
	// acknowledged and ignored); any other error answers 503 so that
	// Zendesk retries.
	Project func(ctx context.Context, report bugreport.UUID) (string, error)
	// OnStatus, if set, is called after a status change was stored, with
	// the ticket's updated_at from the delivery.
	OnStatus func(report bugreport.UUID, ticketID int64, status string, at time.Time)
	// MaxAge bounds how far the signed timestamp may be from now, in both
	// directions, and how long a signature is remembered against replays.
	// 0 means 5 minutes.
	MaxAge time.Duration
	// MaxBodyBytes bounds the request body; 0 means 256 KiB.
	MaxBodyBytes int64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives one line per rejected or stored delivery; nil
	// discards. Secrets and signatures are never logged.
	Logger *slog.Logger
	// Registerer receives arubug_zendesk_webhooks_total; nil means a
	// private registry.
	Registerer prometheus.Registerer
}

// WebhookReceiver is the HTTP handler behind /webhooks/zendesk: it
// authenticates Zendesk's signed deliveries and stores the comments and
// status changes they carry as message events. It is safe for concurrent
// use.
type WebhookReceiver struct {
	cfg     WebhookConfig
	secret  []byte
	results *prometheus.CounterVec
	replay  replayMemory
}

var _ http.Handler = (*WebhookReceiver)(nil)

// NewWebhookReceiver returns a receiver for cfg. It fails when a required
// field is missing or the metric cannot be registered.
func NewWebhookReceiver(cfg WebhookConfig) (*WebhookReceiver, error) {
	var errs []error
	if cfg.Secret == "" {
		errs = append(errs, errors.New("zendesk webhook: a signing secret is required"))
	}
	if cfg.Sink == nil {
		errs = append(errs, errors.New("zendesk webhook: an event sink is required"))
	}
	if cfg.Project == nil {
		errs = append(errs, errors.New("zendesk webhook: a project lookup is required"))
	}
	if cfg.MaxAge < 0 || cfg.MaxBodyBytes < 0 {
		errs = append(errs, errors.New("zendesk webhook: MaxAge and MaxBodyBytes must not be negative"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultWebhookMaxAge
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultWebhookMaxBodyBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	h := &WebhookReceiver{
		cfg:    cfg,
		secret: []byte(cfg.Secret),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arubug_zendesk_webhooks_total",
			Help: "Zendesk webhook deliveries by result: stored, ignored, bad_signature, stale, replay, malformed, too_large, unavailable, error.",
		}, []string{"result"}),
		replay: replayMemory{max: webhookReplayEntries, seen: map[[sha256.Size]byte]replayEntry{}},
	}
	if err := cfg.Registerer.Register(h.results); err != nil {
		return nil, err
	}
	for _, r := range []string{"stored", "ignored", "bad_signature", "stale", "replay", "malformed", "too_large", "unavailable", "error"} {
		h.results.WithLabelValues(r)
	}
	return h, nil
}

// webhookText is a payload value: our templates quote every placeholder,
// but a number, boolean or null is accepted too.
type webhookText string

func (t *webhookText) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = webhookText(s)
	case string(b) == "null":
		*t = ""
	case len(b) > 0 && (b[0] == '{' || b[0] == '['):
		return errors.New("want a string, number or boolean")
	default:
		*t = webhookText(b)
	}
	return nil
}

// webhookPayload is what the trigger templates render to.
type webhookPayload struct {
	Kind   string `json:"kind"`
	Ticket struct {
		ID          webhookText `json:"id"`
		ExternalID  webhookText `json:"external_id"`
		Status      webhookText `json:"status"`
		UpdatedAt   webhookText `json:"updated_at"`
		RequesterID webhookText `json:"requester_id"`
	} `json:"ticket"`
	Comment *struct {
		ID         webhookText `json:"id"`
		Body       webhookText `json:"body"`
		Public     webhookText `json:"public"`
		Via        webhookText `json:"via"`
		CreatedAt  webhookText `json:"created_at"`
		AuthorID   webhookText `json:"author_id"`
		AuthorName webhookText `json:"author_name"`
	} `json:"comment"`
}

// ServeHTTP answers a delivery: 405 for other methods than POST, 413 for a
// body over MaxBodyBytes, 401 for a missing or wrong signature, a timestamp
// out of the MaxAge window or a replayed signature, 400 for a payload that
// is not the template's JSON, 200 {"status":"ignored"} for a ticket that is
// not an Arubug report's, 503 with Retry-After when the project lookup or
// the sink cannot take it now (Zendesk retries), 500 for other sink errors,
// and 200 {"status":"stored"} once the event was appended durably.
func (h *WebhookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := h.cfg.Logger
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httperr.JSON(w, http.StatusMethodNotAllowed, map[string]string{"type": "validation_error", "code": "method_not_allowed", "detail": "use POST"})
		return
	}
	if r.ContentLength > h.cfg.MaxBodyBytes {
		h.reject(w, "too_large", tooLarge(h.cfg.MaxBodyBytes))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.reject(w, "too_large", tooLarge(h.cfg.MaxBodyBytes))
			return
		}
		h.reject(w, "malformed", bugreport.Errorf(bugreport.EINVALID, "unreadable_body", "the request body could not be read"))
		return
	}

	// Authenticate before looking at the payload.
	ts := r.Header.Get(HeaderWebhookSignatureTimestamp)
	mac, ok := h.verify(ts, r.Header.Get(HeaderWebhookSignature), body)
	if !ok {
		log.Warn("zendesk webhook: bad signature", "remote", r.RemoteAddr)
		h.reject(w, "bad_signature", unauthorized("bad_signature", "missing or invalid webhook signature"))
		return
	}
	now := h.cfg.Now()
	at, err := time.Parse(time.RFC3339, ts)
	if err != nil || now.Sub(at) > h.cfg.MaxAge || at.Sub(now) > h.cfg.MaxAge {
		log.Warn("zendesk webhook: timestamp outside the accepted window", "remote", r.RemoteAddr, "max_age", h.cfg.MaxAge)
		h.reject(w, "stale", unauthorized("stale_timestamp", "the signature timestamp is too old or in the future"))
		return
	}
	if !h.replay.reserve(mac, now) {
		log.Warn("zendesk webhook: replayed delivery", "remote", r.RemoteAddr)
		h.reject(w, "replay", unauthorized("replay", "this delivery was already accepted"))
		return
	}
	committed := false
	defer func() {
		if !committed {
			h.replay.release(mac)
		}
	}()

	ev, report, ticketID, status, result, err := h.event(r.Context(), body, now)
	if err != nil || result == "ignored" {
		if result == "ignored" {
			// An acknowledged delivery must not be processed twice either.
			committed = true
			h.replay.commit(mac, at.Add(h.cfg.MaxAge))
			h.results.WithLabelValues("ignored").Inc()
			log.Debug("zendesk webhook: ignored", "ticket_id", ticketID)
			httperr.JSON(w, http.StatusOK, map[string]string{"status": "ignored"})
			return
		}
		if result == "unavailable" {
			log.Warn("zendesk webhook: project lookup failed", "ticket_id", ticketID, "err", err)
		}
		h.reject(w, result, err)
		return
	}
	if err := h.cfg.Sink.Append(r.Context(), []bugreport.Event{ev}); err != nil {
		if bugreport.ErrorCode(err) == bugreport.EUNAVAILABLE {
			log.Warn("zendesk webhook: sink unavailable", "ticket_id", ticketID, "err", err)
			h.reject(w, "unavailable", unavailable(err))
			return
		}
		log.Error("zendesk webhook: storing the event failed", "ticket_id", ticketID, "err", err)
		h.reject(w, "error", &bugreport.Error{Code: bugreport.EINTERNAL, Reason: "internal", Message: "internal error", Err: err})
		return
	}
	committed = true
	h.replay.commit(mac, at.Add(h.cfg.MaxAge))
	h.results.WithLabelValues("stored").Inc()
	log.Info("zendesk webhook: stored", "ticket_id", ticketID, "report_id", report.String(), "event", ev.Event, "uuid", ev.UUID.String())
	if status != "" && h.cfg.OnStatus != nil {
		h.cfg.OnStatus(report, ticketID, status, ev.Timestamp)
	}
	httperr.JSON(w, http.StatusOK, map[string]string{"status": "stored"})
}

// verify checks the signature in constant time and returns the decoded MAC.
func (h *WebhookReceiver) verify(ts, sig string, body []byte) ([sha256.Size]byte, bool) {
	var got [sha256.Size]byte
	if ts == "" || sig == "" {
		return got, false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sig))
	if err != nil || len(raw) != sha256.Size {
		return got, false
	}
	copy(got[:], raw)
	m := hmac.New(sha256.New, h.secret)
	m.Write([]byte(ts))
	m.Write(body)
	return got, hmac.Equal(m.Sum(nil), raw)
}

// event decodes an authenticated payload into the event to store. result
// is "ignored" for tickets that are not Arubug's, else the metric label of
// err.
func (h *WebhookReceiver) event(ctx context.Context, body []byte, now time.Time) (ev bugreport.Event, report bugreport.UUID, ticketID int64, status, result string, err error) {
	malformed := func(format string, args ...any) (bugreport.Event, bugreport.UUID, int64, string, string, error) {
		return bugreport.Event{}, bugreport.UUID{}, ticketID, "", "malformed", bugreport.Errorf(bugreport.EINVALID, "invalid_payload", format, args...)
	}
	var p webhookPayload
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&p); err != nil {
		return malformed("the body is not the JSON of Arubug's trigger template")
	}
	if dec.More() {
		return malformed("the body has data after its JSON object")
	}
	ticketID, err = strconv.ParseInt(string(p.Ticket.ID), 10, 64)
	if err != nil || ticketID <= 0 {
		ticketID = 0
		return malformed("ticket.id must be a positive number")
	}
	switch p.Kind {
	case WebhookKindReport, WebhookKindComment, WebhookKindStatus:
	default:
		return malformed("kind must be %s, %s or %s", WebhookKindReport, WebhookKindComment, WebhookKindStatus)
	}
	report, err = bugreport.ParseUUID(strings.TrimSpace(string(p.Ticket.ExternalID)))
	if err != nil || report.IsZero() {
		return bugreport.Event{}, bugreport.UUID{}, ticketID, "", "ignored", nil
	}

	var m bugreport.Message
	if p.Kind == WebhookKindStatus {
		status = strings.TrimSpace(string(p.Ticket.Status))
		at, ok := parseWebhookTime(string(p.Ticket.UpdatedAt))
		if status == "" || !ok {
			return malformed("a status change needs ticket.status and ticket.updated_at")
		}
		m = bugreport.Message{ID: StatusEventID(ticketID, status, at), ReportID: report, TicketID: ticketID, Kind: "status", Status: status, At: at.UTC()}
	} else {
		c := p.Comment
		if c == nil {
			return malformed("a %s delivery needs a comment", p.Kind)
		}
		commentID, err := strconv.ParseInt(string(c.ID), 10, 64)
		if err != nil || commentID <= 0 {
			return malformed("comment.id must be a positive number")
		}
		public, err := strconv.ParseBool(string(c.Public))
		if err != nil {
			return malformed("comment.public must be true or false")
		}
		authorID, _ := strconv.ParseInt(string(c.AuthorID), 10, 64)
		requesterID, _ := strconv.ParseInt(string(p.Ticket.RequesterID), 10, 64)
		at, _ := parseWebhookTime(string(c.CreatedAt))
		m = bugreport.Message{
			ID:         CommentEventID(ticketID, commentID),
			ReportID:   report,
			TicketID:   ticketID,
			CommentID:  commentID,
			Kind:       MessageKind(p.Kind == WebhookKindReport, public, authorID, requesterID),
			Public:     public,
			AuthorID:   authorID,
			AuthorName: string(c.AuthorName),
			Via:        string(c.Via),
			Body:       string(c.Body),
			At:         at.UTC(),
		}
	}

	project, err := h.cfg.Project(ctx, report)
	if err != nil {
		if bugreport.ErrorCode(err) == bugreport.ENOTFOUND {
			return bugreport.Event{}, report, ticketID, "", "ignored", nil
		}
		return bugreport.Event{}, report, ticketID, "", "unavailable", unavailable(err)
	}
	return MessageEvent(project, m, now), report, ticketID, status, "", nil
}

// reject counts a refused delivery and answers err through httperr.
func (h *WebhookReceiver) reject(w http.ResponseWriter, result string, err error) {
	h.results.WithLabelValues(result).Inc()
	httperr.Write(w, err)
}

func parseWebhookTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04Z07:00", "2006-01-02 15:04:05 -0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func tooLarge(n int64) error {
	return bugreport.Errorf(bugreport.ETOOLARGE, "body_too_large", "the body exceeds %d bytes", n)
}

func unauthorized(reason, msg string) error {
	return bugreport.Errorf(bugreport.EUNAUTHORIZED, reason, "%s", msg)
}

// unavailable turns err into a 503 that tells Zendesk when to retry.
func unavailable(err error) error {
	e := &bugreport.Error{Code: bugreport.EUNAVAILABLE, Reason: "unavailable", Message: "cannot store the delivery now; retry later", RetryAfter: webhookRetryAfter, Err: err}
	var be *bugreport.Error
	if errors.As(err, &be) && be.Code == bugreport.EUNAVAILABLE && be.RetryAfter > 0 {
		e.RetryAfter = be.RetryAfter
	}
	return e
}

// replayMemory remembers the signatures of accepted deliveries until their
// timestamps leave the accepted window, at most max of them (the oldest go
// first). A signature is reserved while its delivery is processed and kept
// only once the delivery was stored, so that Zendesk's retry of a delivery
// we failed is accepted.
type replayMemory struct {
	mu    sync.Mutex
	max   int
	seen  map[[sha256.Size]byte]replayEntry
	order []replayKey // committed keys, oldest first
}

type replayEntry struct {
	expires time.Time
	pending bool
}

type replayKey struct {
	mac     [sha256.Size]byte
	expires time.Time
}

// reserve reports whether mac is new, and if so holds it until commit or
// release.
func (m *replayMemory) reserve(mac [sha256.Size]byte, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for len(m.order) > 0 && !m.order[0].expires.After(now) {
		k := m.order[0]
		if e, ok := m.seen[k.mac]; ok && !e.pending && e.expires.Equal(k.expires) {
			delete(m.seen, k.mac)
		}
		m.order = m.order[1:]
	}
	if e, ok := m.seen[mac]; ok && (e.pending || e.expires.After(now)) {
		return false
	}
	m.seen[mac] = replayEntry{pending: true}
	return true
}

// commit remembers mac until expires.
func (m *replayMemory) commit(mac [sha256.Size]byte, expires time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seen[mac] = replayEntry{expires: expires}
	m.order = append(m.order, replayKey{mac: mac, expires: expires})
	for len(m.order) > m.max {
		k := m.order[0]
		if e, ok := m.seen[k.mac]; ok && !e.pending && e.expires.Equal(k.expires) {
			delete(m.seen, k.mac)
		}
		m.order = m.order[1:]
	}
}

// release forgets a reservation whose delivery was not stored.
func (m *replayMemory) release(mac [sha256.Size]byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.seen[mac]; ok && e.pending {
		delete(m.seen, mac)
	}
}
