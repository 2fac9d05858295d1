// Package httperr maps domain errors to HTTP answers in one place: a status
// from the error's code and a JSON body {"type","code","detail"} in the
// shape PostHog's capture service uses. Internal causes are never written.
package httperr

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/arubug/arubug/internal/bugreport"
)

// Write answers err. Errors that are not *bugreport.Error become a 500
// whose detail says nothing about the cause.
func Write(w http.ResponseWriter, err error) {
	var e *bugreport.Error
	if !errors.As(err, &e) {
		e = &bugreport.Error{Code: bugreport.EINTERNAL, Reason: "internal", Message: "internal error"}
	}
	status, typ := Status(e.Code)
	if e.RetryAfter > 0 {
		secs := int((e.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	msg := e.Message
	if e.Code == bugreport.EINTERNAL {
		msg = "internal error"
	}
	_ = json.NewEncoder(w).Encode(struct {
		Type   string `json:"type"`
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}{typ, e.Reason, msg})
}

// Status returns the HTTP status and error type for a domain error code.
func Status(code string) (int, string) {
	switch code {
	case bugreport.EINVALID:
		return http.StatusBadRequest, "validation_error"
	case bugreport.ETOOLARGE:
		return http.StatusRequestEntityTooLarge, "validation_error"
	case bugreport.EUNAUTHORIZED:
		return http.StatusUnauthorized, "authentication_error"
	case bugreport.ERATELIMIT:
		return http.StatusTooManyRequests, "rate_limited"
	case bugreport.EUNAVAILABLE:
		return http.StatusServiceUnavailable, "server_error"
	case bugreport.ENOTFOUND:
		return http.StatusNotFound, "not_found"
	}
	return http.StatusInternalServerError, "server_error"
}

// JSON writes v with status.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
