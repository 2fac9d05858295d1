package capture

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/arubug/arubug/internal/bugreport"
)

// rawEvent is one event as clients send it. Fields that clients type loosely
// are kept raw and converted by hand so that a number where a string was
// expected is normalised rather than rejecting the whole request.
type rawEvent struct {
	UUID             json.RawMessage `json:"uuid"`
	Event            json.RawMessage `json:"event"`
	DistinctID       json.RawMessage `json:"distinct_id"`
	DollarDistinctID json.RawMessage `json:"$distinct_id"`
	Properties       json.RawMessage `json:"properties"`
	Timestamp        json.RawMessage `json:"timestamp"`
	Offset           json.RawMessage `json:"offset"`
	Set              json.RawMessage `json:"$set"`
	SetOnce          json.RawMessage `json:"$set_once"`
	Token            json.RawMessage `json:"token"`
	DollarToken      json.RawMessage `json:"$token"`
	APIKey           json.RawMessage `json:"api_key"`

	// Envelope fields, meaningful only at the top level.
	Batch  json.RawMessage `json:"batch"`
	SentAt json.RawMessage `json:"sent_at"`
}

// promoted are the properties lifted into typed columns.
type promoted struct {
	Token      json.RawMessage `json:"token"`
	DistinctID json.RawMessage `json:"distinct_id"`
	SessionID  json.RawMessage `json:"$session_id"`
	WindowID   json.RawMessage `json:"$window_id"`
	DeviceID   json.RawMessage `json:"$device_id"`
	CurrentURL json.RawMessage `json:"$current_url"`
	Pathname   json.RawMessage `json:"$pathname"`
	Host       json.RawMessage `json:"$host"`
	Lib        json.RawMessage `json:"$lib"`
	LibVersion json.RawMessage `json:"$lib_version"`
	Set        json.RawMessage `json:"$set"`
	SetOnce    json.RawMessage `json:"$set_once"`
}

// parsed is a request's events before the token is resolved to a project.
type parsed struct {
	token  string
	events []bugreport.Event
}

// parseContext carries what parsing needs beyond the payload.
type parseContext struct {
	now      time.Time
	sentAtMS string // "_" query parameter
	engage   bool   // the /engage route: people updates without an event name
	limits   Limits
}

// parsePayload turns a decoded JSON payload into normalised events. It
// accepts the three shapes PostHog SDKs send: an array of events, an envelope
// with a batch, and a single event.
func parsePayload(payload []byte, pc parseContext) (parsed, error) {
	if err := checkJSON(payload, pc.limits); err != nil {
		return parsed{}, err
	}
	payload = bytes.TrimSpace(payload)
	if len(payload) == 0 || (payload[0] != '[' && payload[0] != '{') {
		return parsed{}, invalid("invalid_payload", "the payload is not a JSON object or array")
	}
	// One validation of the whole payload; every decode below reads JSON
	// known to be well-formed, which lets the one-pass scanners of
	// fastjson.go split the batch and pick each event's fields instead of
	// encoding/json validating and copying the same bytes again at every
	// level (a quarter of the collector's CPU on gzip batches).
	if !validJSON(payload) {
		var v any
		return parsed{}, jsonError(json.Unmarshal(payload, &v))
	}
	var (
		raws          []rawEvent
		envelopeToken string
		sentAt        json.RawMessage
	)
	switch {
	case len(payload) > 0 && payload[0] == '[':
		list, err := decodeList(payload)
		if err != nil {
			return parsed{}, err
		}
		if raws, err = decodeEvents(list, pc.limits); err != nil {
			return parsed{}, err
		}
	case len(payload) > 0 && payload[0] == '{':
		var top rawEvent
		if err := decodeEvent(payload, &top); err != nil {
			return parsed{}, err
		}
		envelopeToken = firstString(top.APIKey, top.Token)
		sentAt = top.SentAt
		if isPresent(top.Batch) {
			if top.Batch[0] != '[' {
				return parsed{}, invalid("invalid_payload", "batch must be an array of events")
			}
			list, err := decodeList(top.Batch)
			if err != nil {
				return parsed{}, err
			}
			if raws, err = decodeEvents(list, pc.limits); err != nil {
				return parsed{}, err
			}
		} else {
			if len(payload) > pc.limits.MaxEventBytes {
				return parsed{}, bugreport.Errorf(bugreport.ETOOLARGE, "event_too_large", "an event is larger than %d bytes", pc.limits.MaxEventBytes)
			}
			raws = []rawEvent{top}
			// A single event's own token fields are per-event fields.
			envelopeToken = ""
		}
	default:
		return parsed{}, invalid("invalid_payload", "the payload is not a JSON object or array")
	}
	if len(raws) == 0 {
		return parsed{}, invalid("empty_batch", "the request contains no events")
	}
	if len(raws) > pc.limits.MaxEventsPerRequest {
		return parsed{}, bugreport.Errorf(bugreport.ETOOLARGE, "too_many_events", "the request has %d events; at most %d are accepted", len(raws), pc.limits.MaxEventsPerRequest)
	}

	skew, haveSkew, err := clockSkew(sentAt, pc.sentAtMS, pc.now)
	if err != nil {
		return parsed{}, err
	}

	out := parsed{token: envelopeToken, events: make([]bugreport.Event, 0, len(raws))}
	for i := range raws {
		ev, token, err := normalise(&raws[i], pc, skew, haveSkew)
		if err != nil {
			return parsed{}, err
		}
		switch {
		case token == "":
		case out.token == "":
			out.token = token
		case out.token != token:
			return parsed{}, bugreport.Errorf(bugreport.EUNAUTHORIZED, "token_mismatch", "the events of one request carry different project tokens")
		}
		out.events = append(out.events, ev)
	}
	return out, nil
}

func decodeEvents(list []json.RawMessage, l Limits) ([]rawEvent, error) {
	if len(list) > l.MaxEventsPerRequest {
		return nil, bugreport.Errorf(bugreport.ETOOLARGE, "too_many_events", "the request has %d events; at most %d are accepted", len(list), l.MaxEventsPerRequest)
	}
	raws := make([]rawEvent, len(list))
	for i, m := range list {
		if len(m) > l.MaxEventBytes {
			return nil, bugreport.Errorf(bugreport.ETOOLARGE, "event_too_large", "event %d is larger than %d bytes", i, l.MaxEventBytes)
		}
		if len(m) == 0 || m[0] != '{' {
			return nil, invalid("invalid_event", "event %d is not a JSON object", i)
		}
		if err := decodeEvent(m, &raws[i]); err != nil {
			return nil, err
		}
	}
	return raws, nil
}

// decodeList splits a JSON array that validJSON accepted into its
// elements.
func decodeList(b []byte) ([]json.RawMessage, error) {
	if list, ok := splitArray(b); ok {
		return list, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, jsonError(err)
	}
	return list, nil
}

// decodeEvent reads an event object that validJSON accepted; the scanner
// declines keys with escapes, which encoding/json then decodes.
func decodeEvent(b []byte, r *rawEvent) error {
	if scanRawEvent(b, r) {
		return nil
	}
	*r = rawEvent{}
	if err := json.Unmarshal(b, r); err != nil {
		return jsonError(err)
	}
	return nil
}

func jsonError(err error) error {
	e := invalid("invalid_json", "the payload is not valid JSON")
	e.Err = err
	return e
}

// normalise validates one event and converts it to the domain form. It
// returns the token the event itself carries, if any.
func normalise(r *rawEvent, pc parseContext, skew time.Duration, haveSkew bool) (bugreport.Event, string, error) {
	var p promoted
	props := r.Properties
	if isPresent(props) {
		if props[0] != '{' {
			return bugreport.Event{}, "", invalid("invalid_properties", "properties must be a JSON object")
		}
		// props was accepted by the decoder with the whole payload, so the
		// one-pass scan gives what json.Unmarshal would; it declines
		// (escaped keys) rather than guess.
		if !scanPromoted(props, &p) {
			p = promoted{}
			if err := json.Unmarshal(props, &p); err != nil {
				return bugreport.Event{}, "", jsonError(err)
			}
		}
	} else {
		props = json.RawMessage("{}")
	}

	name, ok := jsonString(r.Event)
	if !ok && isPresent(r.Event) {
		return bugreport.Event{}, "", invalid("invalid_event_name", "event must be a string")
	}
	if name == "" && pc.engage {
		name = "$identify"
	}
	if name == "" {
		return bugreport.Event{}, "", invalid("missing_event_name", "every event needs a non-empty event name")
	}
	if len(name) > pc.limits.MaxEventNameLength {
		return bugreport.Event{}, "", invalid("event_name_too_long", "event name is longer than %d bytes", pc.limits.MaxEventNameLength)
	}

	distinctID := firstID(r.DistinctID, p.DistinctID, r.DollarDistinctID)
	if strings.TrimSpace(distinctID) == "" {
		return bugreport.Event{}, "", invalid("missing_distinct_id", "every event needs a non-empty distinct_id")
	}
	if len(distinctID) > pc.limits.MaxDistinctIDLength {
		return bugreport.Event{}, "", invalid("distinct_id_too_long", "distinct_id is longer than %d bytes", pc.limits.MaxDistinctIDLength)
	}

	var id bugreport.UUID
	if s, ok := jsonString(r.UUID); ok && s != "" {
		u, err := uuid.Parse(s)
		if err != nil {
			return bugreport.Event{}, "", invalid("invalid_uuid", "uuid %q is not a valid UUID", truncate(s, 40))
		}
		id = bugreport.UUID(u)
	} else if isPresent(r.UUID) {
		return bugreport.Event{}, "", invalid("invalid_uuid", "uuid must be a string")
	} else {
		u, err := uuid.NewV7()
		if err != nil {
			return bugreport.Event{}, "", err
		}
		id = bugreport.UUID(u)
	}

	ts, err := eventTime(r, pc.now, skew, haveSkew)
	if err != nil {
		return bugreport.Event{}, "", err
	}

	set, err := objectText(r.Set, p.Set, "$set")
	if err != nil {
		return bugreport.Event{}, "", err
	}
	setOnce, err := objectText(r.SetOnce, p.SetOnce, "$set_once")
	if err != nil {
		return bugreport.Event{}, "", err
	}

	ev := bugreport.Event{
		UUID:       id,
		Event:      name,
		DistinctID: distinctID,
		Timestamp:  ts,
		CreatedAt:  pc.now,
		Properties: string(props),
		Set:        set,
		SetOnce:    setOnce,
		SessionID:  stringOf(p.SessionID),
		WindowID:   stringOf(p.WindowID),
		DeviceID:   stringOf(p.DeviceID),
		CurrentURL: stringOf(p.CurrentURL),
		Pathname:   stringOf(p.Pathname),
		Host:       stringOf(p.Host),
		Lib:        stringOf(p.Lib),
		LibVersion: stringOf(p.LibVersion),
	}
	return ev, firstString(r.APIKey, r.Token, r.DollarToken, p.Token), nil
}

// maxFuture is how far ahead of the collector's clock an event may be
// stamped before it is treated as a broken client clock; PostHog uses 23 h.
const maxFuture = 23 * time.Hour

// clockSkew computes how far the client's clock is ahead of ours, from the
// envelope's sent_at or else the "_" query parameter.
func clockSkew(sentAt json.RawMessage, underscore string, now time.Time) (time.Duration, bool, error) {
	if s, ok := jsonString(sentAt); ok && s != "" {
		t, err := parseTime(s)
		if err != nil {
			return 0, false, invalid("invalid_sent_at", "sent_at %q is not an ISO 8601 time", truncate(s, 40))
		}
		return t.Sub(now), true, nil
	}
	if underscore != "" {
		ms, err := strconv.ParseInt(underscore, 10, 64)
		if err != nil || ms <= 0 {
			return 0, false, invalid("invalid_sent_at", "the _ parameter must be epoch milliseconds")
		}
		return time.UnixMilli(ms).Sub(now), true, nil
	}
	return 0, false, nil
}

// eventTime applies PostHog's rules: offset wins (now − offset); else the
// timestamp corrected by the client's clock skew; else now. Anything more
// than 23 h in the future is a broken clock and becomes now.
func eventTime(r *rawEvent, now time.Time, skew time.Duration, haveSkew bool) (time.Time, error) {
	var ts time.Time
	switch {
	case isPresent(r.Offset):
		ms, err := strconv.ParseInt(string(r.Offset), 10, 64)
		if err != nil {
			f, ferr := strconv.ParseFloat(string(r.Offset), 64)
			if ferr != nil {
				return time.Time{}, invalid("invalid_offset", "offset must be a number of milliseconds")
			}
			ms = int64(f)
		}
		// More than ten years either way is a broken client, and would
		// overflow the duration.
		if ms > 10*365*24*3600*1000 || ms < -10*365*24*3600*1000 {
			return time.Time{}, invalid("invalid_offset", "offset %d ms is out of range", ms)
		}
		ts = now.Add(-time.Duration(ms) * time.Millisecond)
	case isPresent(r.Timestamp):
		s, ok := jsonString(r.Timestamp)
		if !ok {
			return time.Time{}, invalid("invalid_timestamp", "timestamp must be an ISO 8601 string")
		}
		t, err := parseTime(s)
		if err != nil {
			return time.Time{}, invalid("invalid_timestamp", "timestamp %q is not an ISO 8601 time", truncate(s, 40))
		}
		ts = t
		if haveSkew {
			ts = t.Add(-skew)
		}
	default:
		ts = now
	}
	if ts.After(now.Add(maxFuture)) {
		ts = now
	}
	// The events table stores DateTime, which cannot hold times before 1970
	// or after 2105; such times come from broken clients.
	if ts.Year() < 1971 || ts.Year() > 2100 {
		return time.Time{}, invalid("invalid_timestamp", "timestamp %s is out of the supported range", ts.UTC().Format(time.RFC3339))
	}
	return ts.UTC(), nil
}

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
}

func parseTime(s string) (time.Time, error) {
	var err error
	for _, layout := range timeLayouts {
		var t time.Time
		if t, err = time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}

func isPresent(m json.RawMessage) bool {
	return len(m) > 0 && !bytes.Equal(m, []byte("null"))
}

// jsonString returns m's value when m is a JSON string.
func jsonString(m json.RawMessage) (string, bool) {
	if len(m) == 0 || m[0] != '"' {
		return "", false
	}
	if s, ok := plainString(m); ok {
		return s, true
	}
	var s string
	if json.Unmarshal(m, &s) != nil {
		return "", false
	}
	return s, true
}

func stringOf(m json.RawMessage) string {
	s, _ := jsonString(m)
	return s
}

func firstString(ms ...json.RawMessage) string {
	for _, m := range ms {
		if s, ok := jsonString(m); ok && s != "" {
			return s
		}
	}
	return ""
}

// firstID returns the first non-empty identifier; SDKs in typed languages
// send numeric ids, which PostHog stores as their decimal text.
func firstID(ms ...json.RawMessage) string {
	for _, m := range ms {
		if s, ok := jsonString(m); ok && s != "" {
			return s
		}
		if len(m) > 0 && (m[0] == '-' || (m[0] >= '0' && m[0] <= '9')) {
			return string(m)
		}
	}
	return ""
}

func objectText(top, inProps json.RawMessage, name string) (string, error) {
	m := top
	if !isPresent(m) {
		m = inProps
	}
	if !isPresent(m) {
		return "", nil
	}
	if m[0] != '{' {
		return "", invalid("invalid_properties", "%s must be a JSON object", name)
	}
	return string(m), nil
}
