package zendesktest

import (
	"io"
	"net/http"
	"strings"
	"time"
)

type faultKind int

const (
	faultStatus faultKind = iota
	faultDrop
	faultSlow
)

type fault struct {
	kind       faultKind
	method     string
	pathPrefix string
	left       int
	status     int
	delay      time.Duration
}

// FailNext makes the next n authenticated /api/v2 requests matching method ("" or "*" for
// any) and path prefix (e.g. "/api/v2/tickets") answer status without doing anything.
// 503 and 429 answers carry "Retry-After: 1"; 429 has Zendesk's text/plain body.
func (s *Server) FailNext(method, pathPrefix string, n, status int) {
	s.addFault(&fault{kind: faultStatus, method: method, pathPrefix: pathPrefix, left: n, status: status})
}

// CommitThenDrop makes the next n matching requests perform their action (create the
// ticket, add the comment, ...) and then close the connection without any response: the
// client sees an error although the change happened.
func (s *Server) CommitThenDrop(method, pathPrefix string, n int) {
	s.addFault(&fault{kind: faultDrop, method: method, pathPrefix: pathPrefix, left: n})
}

// Slow delays the next n matching requests by d before handling them. If the client
// cancels during the delay, the request is abandoned without any effect.
func (s *Server) Slow(method, pathPrefix string, n int, d time.Duration) {
	s.addFault(&fault{kind: faultSlow, method: method, pathPrefix: pathPrefix, left: n, delay: d})
}

// ClearFaults removes every scripted fault not yet consumed.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

func (s *Server) addFault(f *fault) {
	if f.left <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// takeFault consumes one use of the first scripted fault matching r, in the order they
// were scripted.
func (s *Server) takeFault(r *http.Request) *fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if (f.method == "" || f.method == "*" || strings.EqualFold(f.method, r.Method)) &&
			strings.HasPrefix(r.URL.Path, f.pathPrefix) {
			f.left--
			if f.left <= 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
			return f
		}
	}
	return nil
}

func writeFault(w http.ResponseWriter, status int) {
	switch status {
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		io.WriteString(w, "Rate limit exceeded")
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
		writeError(w, status, "ServiceUnavailable", "Simulated service unavailable")
	default:
		writeError(w, status, http.StatusText(status), "Simulated failure")
	}
}
