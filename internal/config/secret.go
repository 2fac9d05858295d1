package config

import "log/slog"

// Secret is a string that never prints: fmt, JSON, YAML and slog all see
// "<secret>". Call Reveal where the value is really needed.
type Secret string

const redacted = "<secret>"

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer, so %#v does not reveal it either.
func (s Secret) GoString() string { return s.String() }

// MarshalText implements encoding.TextMarshaler (used by JSON and YAML).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }
