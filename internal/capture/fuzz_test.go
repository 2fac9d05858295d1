package capture

import (
	"bytes"
	"encoding/base64"
	"net/http/httptest"
	"testing"
	"unicode/utf8"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/capture/lzstring"
)

// FuzzDecode feeds arbitrary bodies and compression hints through the whole
// decoding path. It must never panic, and whatever it accepts must satisfy
// the invariants the rest of the pipeline relies on.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(single), "", "application/json")
	f.Add(gz(f, single), "gzip-js", "text/plain")
	f.Add([]byte(lzstring.CompressToBase64(single)), "lz64", "text/plain")
	f.Add([]byte("data="+base64.StdEncoding.EncodeToString([]byte(single))), "", "application/x-www-form-urlencoded")
	f.Add([]byte(`{"api_key":"phc_test","batch":[{"event":"a","distinct_id":"u"}],"sent_at":"2026-11-27T12:00:00Z"}`), "", "")
	f.Add([]byte(`[{"event":"a","distinct_id":1,"token":"phc_test","offset":5}]`), "", "")
	f.Add([]byte{0x1f, 0x8b, 0x08, 0, 0, 0}, "gzip", "")
	limits := DefaultLimits()
	limits.MaxDecompressedBytes = 1 << 20
	limits.MaxBatchBodyBytes = 1 << 20
	f.Fuzz(func(t *testing.T, body []byte, compression, contentType string) {
		r := httptest.NewRequest("POST", "/e/?compression="+urlQueryEscape(compression), bytes.NewReader(body))
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		payload, _, err := readPayload(r, 1<<20, limits)
		if err != nil {
			if bugreport.ErrorCode(err) == bugreport.EINTERNAL {
				t.Fatalf("decode error not classified: %v", err)
			}
			return
		}
		if int64(len(payload)) > limits.MaxDecompressedBytes {
			t.Fatalf("payload of %d bytes passed the limit", len(payload))
		}
		p, err := parsePayload(payload, parseContext{now: testNow, limits: limits})
		if err != nil {
			if c := bugreport.ErrorCode(err); c != bugreport.EINVALID && c != bugreport.ETOOLARGE && c != bugreport.EUNAUTHORIZED {
				t.Fatalf("parse error not classified: %v", err)
			}
			return
		}
		if len(p.events) == 0 || len(p.events) > limits.MaxEventsPerRequest {
			t.Fatalf("%d events accepted", len(p.events))
		}
		for _, e := range p.events {
			if e.Event == "" || e.DistinctID == "" || e.UUID.IsZero() {
				t.Fatalf("accepted an incomplete event: %+v", e)
			}
			for _, s := range []string{e.Event, e.DistinctID, e.Properties, e.Set, e.SetOnce, e.CurrentURL} {
				if !utf8.ValidString(s) || bytes.IndexByte([]byte(s), 0) >= 0 {
					t.Fatalf("accepted invalid text %q", s)
				}
			}
			if y := e.Timestamp.Year(); y < 1971 || y > 2100 {
				t.Fatalf("accepted timestamp %s", e.Timestamp)
			}
		}
	})
}

func urlQueryEscape(s string) string {
	var b bytes.Buffer
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' {
			b.WriteByte(c)
		} else {
			b.WriteString("%")
			b.WriteString(string("0123456789ABCDEF"[c>>4]) + string("0123456789ABCDEF"[c&15]))
		}
	}
	return b.String()
}
