package capture

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/arubug/arubug/internal/bugreport"
)

type discardSink struct{}

func (discardSink) Append(context.Context, []bugreport.Event) error { return nil }

func benchHandler(b *testing.B) http.Handler {
	h, err := New(Config{Sink: discardSink{}, Projects: []bugreport.Project{{Name: "main", Token: token}}, Limits: DefaultLimits()})
	if err != nil {
		b.Fatal(err)
	}
	r := chi.NewRouter()
	h.Mount(r)
	return r
}

// BenchmarkCaptureSingle measures decoding and normalising one posthog-js
// shaped event, without the spool.
func BenchmarkCaptureSingle(b *testing.B) {
	h := benchHandler(b)
	body := []byte(single)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", "/e/", bytes.NewReader(body)))
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}

// BenchmarkCaptureBatchGzip measures a gzip-compressed /batch of 50 events.
func BenchmarkCaptureBatchGzip(b *testing.B) {
	h := benchHandler(b)
	ev := strings.TrimPrefix(single, `{"api_key":"phc_test",`)
	var parts []string
	for i := 0; i < 50; i++ {
		parts = append(parts, `{`+strings.Replace(ev, `"uuid":"0190a6b2-7c3e-7d4f-9a1b-2c3d4e5f6a7b",`, "", 1))
	}
	body := gz(b, `{"api_key":"phc_test","sent_at":"2026-11-27T12:00:00Z","batch":[`+strings.Join(parts, ",")+`]}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", "/batch/?compression=gzip-js", bytes.NewReader(body)))
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}

// BenchmarkValidate compares validJSON with json.Valid on one posthog-js
// shaped event, the check every capture request pays.
func BenchmarkValidate(b *testing.B) {
	body := []byte(single)
	for _, v := range []struct {
		name  string
		valid func([]byte) bool
	}{{"validJSON", validJSON}, {"json.Valid", json.Valid}} {
		b.Run(v.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if !v.valid(body) {
					b.Fatal("invalid")
				}
			}
		})
	}
}
