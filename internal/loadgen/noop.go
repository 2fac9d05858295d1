package loadgen

import (
	"io"
	"net/http"
)

var okBody = []byte(`{"status":1}`)

// NoopHandler is the do-nothing baseline: it reads and discards the request
// body and answers 200 {"status":1}, whatever the method or path. Running
// the load against it measures the ceiling of the generator, the Go HTTP
// stack and the machine, to compare the real collector with.
func NoopHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(okBody)
	})
}
