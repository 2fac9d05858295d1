package capture

import (
	"bytes"
	"encoding/json"
	"testing"
)

var fastJSONSeeds = []string{
	`{}`, ` { } `, `{"a":1}`, `"x"`, `[]`, `null`, `{"token":"t"}`,
	`{"$session_id":"s","$window_id":"w","$device_id":"d","$current_url":"https://x/y?a={b}","$pathname":"/p","$host":"h","$lib":"web","$lib_version":"1.2","token":"phc","distinct_id":"u","$set":{"a":[1,{"b":"}"}]},"$set_once":null}`,
	`{"$HOST":"upper","$host":"lower"}`, `{"$host":"lower","$HOST":"upper"}`,
	`{"$ſession_id":"long s folds to s"}`, `{"\u0024host":"escaped key"}`, `{"$h\u006fst":"x"}`,
	`{"nested":{"$host":"no"},"list":[{"token":"no"}],"$host":"yes"}`,
	`{"a":"quote \" and brace } inside","$lib":"x\\"}`, `{"$lib" : 12.5e3 , "$host":true,"token":false}`,
	"{\n\t\"$pathname\"\r\n:\n\"/a\"\n}", `{"distinct_id":"café ☕","$host":"\ud83d\ude00"}`,
	`[{"event":"e","properties":{"$host":"h"}},{"EVENT":"x","Event":"y","uuid":null}]`, ` [ 1 , "two" , [3] , {"4":4} , null ] `, `[[],{}]`,
	`{"api_key":"k","batch":[{"event":"a"}],"sent_at":"2026-11-27T10:00:00Z","$distinct_id":"d","offset":5}`,
	`{"a":1,}`, `{"a" 1}`, `{"a":1 "b":2}`, `{"a":[1,2}`, `"abc`, `"a\"b"`, `"tab	x"`,
	``, ` `, `01`, `-`, `-0`, `1.`, `1.5e`, `1e+`, `.5`, `+1`, `-01`, `1E-7`, `tru`, `nul`, `truex`, `[true false]`,
	`"\x"`, `"\u12G4"`, `"\u00e9\n\/"`, `"\u12"`, `{} x`, `{}}`, `[}`, `{]`, `{"a":}`, `{,}`, `[,1]`, `[1,]`, `{"a"}`, `{1:2}`,
	"\"\x7f\xff\"", "\"\x00\"",
}

// FuzzFastJSON checks the hot-path helpers against encoding/json: on any
// input encoding/json accepts, scanPromoted and scanRawEvent yield the
// same fields (or decline), splitArray the same elements of any array, and
// plainString the same string (or declines).
func FuzzFastJSON(f *testing.F) {
	for _, s := range fastJSONSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkFastJSON(t, b)
	})
}

func TestFastJSONSeeds(t *testing.T) {
	for _, s := range fastJSONSeeds {
		checkFastJSON(t, []byte(s))
	}
	// encoding/json's nesting bound, on both sides of it.
	for _, depth := range []int{maxNestingDepth, maxNestingDepth + 1} {
		deep := bytes.Repeat([]byte("["), depth)
		checkFastJSON(t, append(deep, bytes.Repeat([]byte("]"), depth)...))
	}
	var p promoted
	if !scanPromoted([]byte(fastJSONSeeds[7]), &p) || string(p.Host) != `"h"` || string(p.Set) != `{"a":[1,{"b":"}"}]}` || string(p.SetOnce) != `null` {
		t.Errorf("scan: %+v", p)
	}
	p = promoted{}
	if !scanPromoted([]byte(`{"$HOST":"upper","$host":"lower"}`), &p) || string(p.Host) != `"lower"` {
		t.Errorf("last duplicate should win: %s", p.Host)
	}
	if scanPromoted([]byte(`{"\u0024host":"escaped key"}`), &p) {
		t.Error("an escaped key must make the scan decline")
	}
}

func checkFastJSON(t *testing.T, b []byte) {
	t.Helper()
	if got, want := validJSON(b), json.Valid(b); got != want {
		t.Fatalf("%q: validJSON %v, json.Valid %v", b, got, want)
	}
	if !json.Valid(b) {
		return // the other helpers only ever see JSON the decoder accepted
	}
	checkScan(t, b, promotedFields[:], &promoted{}, &promoted{}, func(b []byte, dst rawFields) bool { return scanPromoted(b, dst.(*promoted)) })
	checkScan(t, b, rawEventFields[:], &rawEvent{}, &rawEvent{}, func(b []byte, dst rawFields) bool { return scanRawEvent(b, dst.(*rawEvent)) })
	var wantList []json.RawMessage
	werr := json.Unmarshal(b, &wantList)
	if gotList, ok := splitArray(b); ok {
		if werr != nil || len(gotList) != len(wantList) {
			t.Fatalf("%q: split into %d elements, json.Unmarshal into %d (%v)", b, len(gotList), len(wantList), werr)
		}
		for i := range gotList {
			if !bytes.Equal(gotList[i], wantList[i]) {
				t.Fatalf("%q: element %d = %q, json.Unmarshal gives %q", b, i, gotList[i], wantList[i])
			}
		}
	} else if b := bytes.TrimSpace(b); len(b) > 0 && b[0] == '[' {
		t.Fatalf("%q: split declined a valid array", b)
	}
	var ws string
	serr := json.Unmarshal(b, &ws)
	if s, ok := plainString(b); ok && (serr != nil || s != ws) {
		t.Fatalf("%q: plainString %q, json.Unmarshal %q (%v)", b, s, ws, serr)
	}
}

// checkScan compares scan(b, got) with json.Unmarshal(b, want), field by
// field, whenever the scan accepts b.
func checkScan(t *testing.T, b []byte, names []string, got, want rawFields, scan func([]byte, rawFields) bool) {
	t.Helper()
	werr := json.Unmarshal(b, want)
	if !scan(b, got) {
		return
	}
	if werr != nil {
		t.Fatalf("%q: scan into %T accepted what json.Unmarshal refused: %v", b, got, werr)
	}
	for i, name := range names {
		if !bytes.Equal(*got.field(i), *want.field(i)) {
			t.Fatalf("%q: %T field %s = %q, json.Unmarshal gives %q", b, got, name, *got.field(i), *want.field(i))
		}
	}
}
