package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/arubug/arubug/internal/capture/lzstring"
	"github.com/arubug/arubug/internal/clickhouse/localch/localchtest"
)

type storedEvent struct {
	UUID, Project, Event, DistinctID       string
	Timestamp                              time.Time
	TimestampMS                            uint16
	Properties, PersonSet, SessionID       string
	WindowID, CurrentURL, Pathname, Host   string
	Lib, LibVersion, DeviceID, PersonSetOn string
}

// TestEveryEncodingRoundTripsIntoClickHouse sends the same kind of event in
// every encoding and body shape PostHog SDKs use to the real binary, and
// reads each back from the events table.
func TestEveryEncodingRoundTripsIntoClickHouse(t *testing.T) {
	dsn := localchtest.DSN(t)
	in := startArubug(t, dsn)
	db := openDB(t, dsn)

	eventJSON := func(id, marker string) string {
		return fmt.Sprintf(`{"token":%q,"event":"$pageview","distinct_id":"rt-%s","uuid":%q,"timestamp":"2026-11-20T10:11:12.345Z",`+
			`"$set":{"email":"%s@example.com"},"properties":{"$current_url":"https://app.example.com/p/%s?x=1","$pathname":"/p/%s",`+
			`"$host":"app.example.com","$lib":"web","$lib_version":"1.449.2","$session_id":"s-%s","$window_id":"w-%s","$device_id":"d-%s","marker":%q,"nested":{"ok":[1,2,"<b>&"]}}}`,
			testToken, marker, id, marker, marker, marker, marker, marker, marker, marker)
	}
	gzipBytes := func(s string) []byte {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write([]byte(s))
		w.Close()
		return b.Bytes()
	}
	type sendFn func(body string) (*http.Response, error)
	postWith := func(path, ct string, enc func(string) []byte) sendFn {
		return func(body string) (*http.Response, error) {
			return http.Post(in.url(path), ct, bytes.NewReader(enc(body)))
		}
	}
	raw := func(s string) []byte { return []byte(s) }
	form := func(compression string, enc func(string) string) func(string) []byte {
		return func(s string) []byte {
			v := url.Values{"data": {enc(s)}}
			if compression != "" {
				v.Set("compression", compression)
			}
			return []byte(v.Encode())
		}
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cases := []struct {
		name  string
		send  sendFn
		batch bool // body is an envelope of the event
		array bool
	}{
		{"json", postWith("/e/", "application/json", raw), false, false},
		{"gzip-js", postWith("/e/?compression=gzip-js", "text/plain", gzipBytes), false, false},
		{"gzip-magic", postWith("/i/v0/e/", "text/plain", gzipBytes), false, false},
		{"form-base64", postWith("/e/", "application/x-www-form-urlencoded", form("", b64)), false, false},
		{"form-lz64", postWith("/e/", "application/x-www-form-urlencoded", form("lz64", lzstring.CompressToBase64)), false, false},
		{"body-lz64", postWith("/e/?compression=lz64", "text/plain", func(s string) []byte { return []byte(lzstring.CompressToBase64(s)) }), false, false},
		{"body-base64", postWith("/capture/", "text/plain", func(s string) []byte { return []byte(b64(s)) }), false, false},
		{"get-data", func(body string) (*http.Response, error) {
			return http.Get(in.url("/e/?data=" + url.QueryEscape(b64(body))))
		}, false, false},
		{"batch-envelope", postWith("/batch/", "application/json", raw), true, false},
		{"batch-gzip", postWith("/batch/?compression=gzip-js", "application/json", gzipBytes), true, false},
		{"array", postWith("/track/", "application/json", raw), false, true},
		{"beacon", postWith("/e/?beacon=1", "text/plain", raw), false, false},
	}
	ids := map[string]string{}
	for _, c := range cases {
		id := uuid.Must(uuid.NewV7()).String()
		ids[c.name] = id
		body := eventJSON(id, c.name)
		switch {
		case c.batch:
			// sent_at equal to the event time: zero skew keeps the timestamp
			// comparable; skew is covered by its own test.
			body = fmt.Sprintf(`{"api_key":%q,"sent_at":%q,"batch":[%s]}`, testToken, time.Now().UTC().Format(time.RFC3339Nano), body)
		case c.array:
			body = "[" + body + "]"
		}
		resp, err := c.send(body)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		resp.Body.Close()
		want := 200
		if c.name == "beacon" {
			want = 204
		}
		if resp.StatusCode != want {
			t.Fatalf("%s: status %d, want %d", c.name, resp.StatusCode, want)
		}
	}

	var got map[string]storedEvent
	waitFor(t, 20*time.Second, "all events in ClickHouse", func() (bool, string) {
		got = map[string]storedEvent{}
		rows, err := db.Conn().Query(context.Background(), `SELECT toString(uuid), project, event, distinct_id, timestamp, timestamp_ms, properties, person_set,
			session_id, window_id, current_url, pathname, host, lib, lib_version, device_id, person_set_once FROM events WHERE startsWith(distinct_id, 'rt-')`)
		if err != nil {
			return false, err.Error()
		}
		defer rows.Close()
		for rows.Next() {
			var e storedEvent
			if err := rows.Scan(&e.UUID, &e.Project, &e.Event, &e.DistinctID, &e.Timestamp, &e.TimestampMS, &e.Properties, &e.PersonSet,
				&e.SessionID, &e.WindowID, &e.CurrentURL, &e.Pathname, &e.Host, &e.Lib, &e.LibVersion, &e.DeviceID, &e.PersonSetOn); err != nil {
				return false, err.Error()
			}
			got[e.UUID] = e
		}
		return len(got) == len(cases), fmt.Sprintf("%d of %d", len(got), len(cases))
	})
	for _, c := range cases {
		e, ok := got[ids[c.name]]
		if !ok {
			t.Errorf("%s: not stored", c.name)
			continue
		}
		m := c.name
		checks := []struct{ field, got, want string }{
			{"project", e.Project, testToken},
			{"event", e.Event, "$pageview"},
			{"distinct_id", e.DistinctID, "rt-" + m},
			{"session_id", e.SessionID, "s-" + m},
			{"window_id", e.WindowID, "w-" + m},
			{"device_id", e.DeviceID, "d-" + m},
			{"current_url", e.CurrentURL, "https://app.example.com/p/" + m + "?x=1"},
			{"pathname", e.Pathname, "/p/" + m},
			{"host", e.Host, "app.example.com"},
			{"lib", e.Lib, "web"},
			{"lib_version", e.LibVersion, "1.449.2"},
			{"person_set", e.PersonSet, `{"email":"` + m + `@example.com"}`},
			{"person_set_once", e.PersonSetOn, ""},
		}
		for _, ch := range checks {
			if ch.got != ch.want {
				t.Errorf("%s: %s = %q, want %q", m, ch.field, ch.got, ch.want)
			}
		}
		if !strings.Contains(e.Properties, `"marker":"`+m+`"`) || !strings.Contains(e.Properties, `"nested":{"ok":[1,2,"<b>&"]}`) {
			t.Errorf("%s: properties not kept verbatim: %s", m, e.Properties)
		}
		wantTS := time.Date(2026, 11, 20, 10, 11, 12, 0, time.UTC)
		if !c.batch {
			if !e.Timestamp.Equal(wantTS) || e.TimestampMS != 345 {
				t.Errorf("%s: timestamp %s + %d ms, want %s + 345 ms", m, e.Timestamp.UTC(), e.TimestampMS, wantTS)
			}
		} else if d := e.Timestamp.Sub(wantTS); d < -2*time.Second || d > 2*time.Second {
			// Zero skew by construction, give or take the request's time.
			t.Errorf("%s: timestamp %s, want about %s", m, e.Timestamp.UTC(), wantTS)
		}
	}
}

// TestClockSkewIsCorrectedEndToEnd checks the stored time of an event whose
// client clock is an hour fast.
func TestClockSkewIsCorrectedEndToEnd(t *testing.T) {
	dsn := localchtest.DSN(t)
	in := startArubug(t, dsn)
	db := openDB(t, dsn)
	now := time.Now().UTC()
	id := uuid.Must(uuid.NewV7()).String()
	body := fmt.Sprintf(`{"api_key":%q,"sent_at":%q,"batch":[{"event":"skew","distinct_id":"skew-1","uuid":%q,"timestamp":%q}]}`,
		testToken, now.Add(time.Hour).Format(time.RFC3339Nano), id, now.Add(time.Hour-10*time.Minute).Format(time.RFC3339Nano))
	if code, b, _ := post(t, in.url("/batch/"), "application/json", strings.NewReader(body)); code != 200 {
		t.Fatalf("status %d: %s", code, b)
	}
	var ts time.Time
	waitFor(t, 20*time.Second, "skewed event", func() (bool, string) {
		row := db.Conn().QueryRow(context.Background(), "SELECT timestamp FROM events WHERE uuid = toUUID(?)", id)
		if err := row.Scan(&ts); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	want := now.Add(-10 * time.Minute)
	if d := ts.Sub(want); d < -3*time.Second || d > 3*time.Second {
		t.Errorf("stored %s, want about %s (client clock one hour fast)", ts.UTC(), want)
	}
}
