// Package bugreport holds Arubug's domain types and the interfaces that the
// rest of the service implements. It imports only the standard library so
// that every other package can depend on it and nothing here depends on them.
package bugreport

import (
	"context"
	"encoding/hex"
	"errors"
	"time"
)

// UUID is a 16-byte RFC 9562 identifier. It has the same memory layout as
// github.com/google/uuid.UUID, so the two convert without copying.
type UUID [16]byte

// String returns the canonical 36-character hyphenated form.
func (u UUID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// IsZero reports whether u is the nil UUID.
func (u UUID) IsZero() bool { return u == UUID{} }

// MarshalText writes the canonical form, so JSON carries UUIDs as strings.
func (u UUID) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// UnmarshalText reads the canonical hyphenated form.
func (u *UUID) UnmarshalText(b []byte) error {
	p, err := ParseUUID(string(b))
	if err != nil {
		return err
	}
	*u = p
	return nil
}

// ParseUUID parses the canonical 36-character hyphenated form.
func ParseUUID(s string) (UUID, error) {
	var u UUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, errors.New("invalid UUID: want the 36-character hyphenated form")
	}
	hexpart := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	if _, err := hex.Decode(u[:], []byte(hexpart)); err != nil {
		return UUID{}, errors.New("invalid UUID: not hexadecimal")
	}
	return u, nil
}

// Event is one captured event after decoding and normalisation: the unit that
// the spool stores and the events table holds. Properties, Set and SetOnce are
// JSON object texts (empty means absent) so that arbitrary client data passes
// through unchanged; the fields that dashboards and routing need are promoted
// to typed fields at ingest.
type Event struct {
	UUID       UUID      `json:"uuid"`
	Project    string    `json:"project"`
	Event      string    `json:"event"`
	DistinctID string    `json:"distinct_id"`
	Timestamp  time.Time `json:"timestamp"`  // event time, corrected for client clock skew
	CreatedAt  time.Time `json:"created_at"` // when the collector received it
	Properties string    `json:"properties"`
	Set        string    `json:"set,omitempty"`
	SetOnce    string    `json:"set_once,omitempty"`

	SessionID  string `json:"session_id,omitempty"`
	WindowID   string `json:"window_id,omitempty"`
	DeviceID   string `json:"device_id,omitempty"`
	CurrentURL string `json:"current_url,omitempty"`
	Pathname   string `json:"pathname,omitempty"`
	Host       string `json:"host,omitempty"`
	Lib        string `json:"lib,omitempty"`
	LibVersion string `json:"lib_version,omitempty"`
	IP         string `json:"ip,omitempty"`
}

// EventBugReport is the event name the widget sends for a bug report.
const EventBugReport = "$bug_report"

// EventSink accepts events durably. A nil error promises that the events
// survive a crash of this process and will reach the event store. Errors are
// *Error values: EUNAVAILABLE (with RetryAfter) when the sink is full or
// closed, EINTERNAL otherwise.
type EventSink interface {
	Append(ctx context.Context, events []Event) error
}

// EventWriter stores events in the analytical store. Writing the same event
// (same UUID) twice must not produce two events once the store has merged.
type EventWriter interface {
	WriteEvents(ctx context.Context, events []Event) error
}

// Project is one source of events with its public capture token.
type Project struct {
	Name  string
	Token string
	// ReplayHost is the PostHog UI host that builds session-replay links.
	ReplayHost string
}
