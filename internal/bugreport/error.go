package bugreport

import (
	"errors"
	"fmt"
	"time"
)

// Error codes: the classes of failure that callers act on. Only the HTTP
// layer maps them to status codes.
const (
	EINVALID      = "invalid"      // the input is malformed or breaks a limit
	ETOOLARGE     = "too_large"    // the input is larger than allowed
	EUNAUTHORIZED = "unauthorized" // missing or wrong credentials
	ERATELIMIT    = "rate_limited" // too many requests; retry after a while
	EUNAVAILABLE  = "unavailable"  // temporarily unable to accept; retry
	EINTERNAL     = "internal"     // a bug or an unexpected failure
	ENOTFOUND     = "not_found"    // no such thing
)

// Error is a coded domain error. Reason is a stable machine-readable detail
// (for example "invalid_json"); Message is for humans and never contains
// secrets or internals.
type Error struct {
	Code       string
	Reason     string
	Message    string
	RetryAfter time.Duration
	Err        error // cause, for logs; never shown to clients
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Reason, e.Message, e.Err)
	}
	return e.Reason + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and reason.
func Errorf(code, reason, format string, args ...any) *Error {
	return &Error{Code: code, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}
