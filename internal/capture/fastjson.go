package capture

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// The helpers here replace encoding/json on the capture hot path where
// its result is known exactly: they return what json.Unmarshal would, or
// report that they cannot tell, and the caller then uses json.Unmarshal.
// FuzzFastJSON checks them against encoding/json.

// plainString returns the value of the JSON string literal m when it needs
// no unquoting (no escape, no control character, valid UTF-8): encoding/json
// returns those bytes unchanged. ok is false for anything else.
func plainString(m []byte) (s string, ok bool) {
	if len(m) < 2 || m[0] != '"' || m[len(m)-1] != '"' {
		return "", false
	}
	in := m[1 : len(m)-1]
	for _, c := range in {
		if c == '\\' || c == '"' || c < ' ' {
			return "", false
		}
	}
	if !utf8.Valid(in) {
		return "", false
	}
	return string(in), true
}

// promotedFields are the JSON names of promoted's fields, in field order.
var promotedFields = [...]string{"token", "distinct_id", "$session_id", "$window_id", "$device_id",
	"$current_url", "$pathname", "$host", "$lib", "$lib_version", "$set", "$set_once"}

func (p *promoted) field(i int) *json.RawMessage {
	switch i {
	case 0:
		return &p.Token
	case 1:
		return &p.DistinctID
	case 2:
		return &p.SessionID
	case 3:
		return &p.WindowID
	case 4:
		return &p.DeviceID
	case 5:
		return &p.CurrentURL
	case 6:
		return &p.Pathname
	case 7:
		return &p.Host
	case 8:
		return &p.Lib
	case 9:
		return &p.LibVersion
	case 10:
		return &p.Set
	default:
		return &p.SetOnce
	}
}

// rawEventFields are the JSON names of rawEvent's fields, in field order.
var rawEventFields = [...]string{"uuid", "event", "distinct_id", "$distinct_id", "properties", "timestamp", "offset",
	"$set", "$set_once", "token", "$token", "api_key", "batch", "sent_at"}

func (r *rawEvent) field(i int) *json.RawMessage {
	switch i {
	case 0:
		return &r.UUID
	case 1:
		return &r.Event
	case 2:
		return &r.DistinctID
	case 3:
		return &r.DollarDistinctID
	case 4:
		return &r.Properties
	case 5:
		return &r.Timestamp
	case 6:
		return &r.Offset
	case 7:
		return &r.Set
	case 8:
		return &r.SetOnce
	case 9:
		return &r.Token
	case 10:
		return &r.DollarToken
	case 11:
		return &r.APIKey
	case 12:
		return &r.Batch
	default:
		return &r.SentAt
	}
}

// rawFields is a struct of json.RawMessage fields that scanObject fills.
type rawFields interface {
	field(i int) *json.RawMessage
}

// scanPromoted fills p from the JSON object obj as json.Unmarshal(obj, p)
// would; see scanObject.
func scanPromoted(obj []byte, p *promoted) bool { return scanObject(obj, promotedFields[:], p) }

// scanRawEvent fills r from the JSON object obj as json.Unmarshal(obj, r)
// would; see scanObject.
func scanRawEvent(obj []byte, r *rawEvent) bool { return scanObject(obj, rawEventFields[:], r) }

// scanObject fills dst, whose fields are named names, from the JSON object
// obj as json.Unmarshal(obj, dst) would: a top-level key matches a field by
// its exact name or, failing that, case-insensitively (bytes.EqualFold, as
// encoding/json folds); the last of duplicate keys wins; values are kept raw
// (aliasing obj). It reads obj once, without reflection or copies. ok is
// false when obj is not a well-formed object or a key has escapes; the
// caller then decodes with encoding/json. obj must be JSON a decoder has
// accepted (valueEnd does not check nested values).
func scanObject(obj []byte, names []string, dst rawFields) (ok bool) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return false
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return skipSpace(obj, i+1) == len(obj)
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return false
		}
		end, escaped := stringEnd(obj, i)
		if end < 0 || escaped {
			return false
		}
		key := obj[i+1 : end-1]
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return false
		}
		i = skipSpace(obj, i+1)
		vend := valueEnd(obj, i)
		if vend < 0 {
			return false
		}
		if f := fieldIndex(names, key); f >= 0 {
			*dst.field(f) = obj[i:vend:vend]
		}
		i = skipSpace(obj, vend)
		if i >= len(obj) {
			return false
		}
		switch obj[i] {
		case ',':
			i = skipSpace(obj, i+1)
		case '}':
			return skipSpace(obj, i+1) == len(obj)
		default:
			return false
		}
	}
}

// splitArray returns the elements of the JSON array arr as
// json.Unmarshal(arr, &[]json.RawMessage{}) would, aliasing arr. ok is false
// when arr is not a well-formed array. arr must be JSON a decoder has
// accepted.
func splitArray(arr []byte) (elems []json.RawMessage, ok bool) {
	i := skipSpace(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return nil, false
	}
	elems = []json.RawMessage{}
	i = skipSpace(arr, i+1)
	if i < len(arr) && arr[i] == ']' {
		return elems, skipSpace(arr, i+1) == len(arr)
	}
	for {
		end := valueEnd(arr, i)
		if end < 0 {
			return nil, false
		}
		elems = append(elems, arr[i:end:end])
		i = skipSpace(arr, end)
		if i >= len(arr) {
			return nil, false
		}
		switch arr[i] {
		case ',':
			i = skipSpace(arr, i+1)
		case ']':
			return elems, skipSpace(arr, i+1) == len(arr)
		default:
			return nil, false
		}
	}
}

// fieldIndex is the index of the field of names that key sets, or -1.
func fieldIndex(names []string, key []byte) int {
	for f, name := range names {
		if string(key) == name {
			return f
		}
	}
	for f, name := range names {
		if bytes.EqualFold(key, []byte(name)) {
			return f
		}
	}
	return -1
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the string literal starting at b[i]
// (a '"'), whether it holds a backslash, or -1 if it does not end or holds
// a control character.
func stringEnd(b []byte, i int) (int, bool) {
	escaped := false
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, escaped
		case c == '\\':
			escaped = true
			j++
		case c < ' ':
			return -1, false
		}
	}
	return -1, false
}

// valueEnd returns the index after the JSON value starting at b[i], or -1.
// Nested values are matched by brackets outside strings; their content is
// not otherwise checked, so callers must only use it on JSON that a
// decoder has accepted or will check.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		end, _ := stringEnd(b, i)
		return end
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, _ := stringEnd(b, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default: // number, true, false, null
		j := i
		for j < len(b) && !(b[j] == ',' || b[j] == '}' || b[j] == ']' || b[j] == ' ' || b[j] == '\t' || b[j] == '\n' || b[j] == '\r') {
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
}

// maxNestingDepth is encoding/json's own bound, which validJSON mirrors.
const maxNestingDepth = 10000

// validJSON reports exactly what json.Valid reports, in one tight pass
// instead of encoding/json's state machine with a function call per byte:
// validating each payload was a tenth of the collector's CPU on
// single-event requests. Like json.Valid it does not check UTF-8 (checkJSON
// does). FuzzFastJSON compares the two.
func validJSON(b []byte) bool {
	var stack []byte // the open containers, '{' or '['
	i := 0
value:
	i = skipSpace(b, i)
	if i >= len(b) {
		return false
	}
	switch b[i] {
	case '{', '[':
		if len(stack) == maxNestingDepth {
			return false
		}
		open := b[i]
		stack = append(stack, open)
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == open+2 { // '{'+2 is '}', '['+2 is ']'
			i++
			stack = stack[:len(stack)-1]
			goto end
		}
		if open == '{' {
			goto key
		}
		goto value
	case '"':
		i = validStringEnd(b, i)
	case 't':
		i = literalEnd(b, i, "true")
	case 'f':
		i = literalEnd(b, i, "false")
	case 'n':
		i = literalEnd(b, i, "null")
	default:
		i = numberEnd(b, i)
	}
	if i < 0 {
		return false
	}
end: // after a value
	i = skipSpace(b, i)
	if len(stack) == 0 {
		return i == len(b)
	}
	if i >= len(b) {
		return false
	}
	switch top := stack[len(stack)-1]; {
	case b[i] == ',':
		i++
		if top == '{' {
			goto key
		}
		goto value
	case b[i] == top+2:
		i++
		stack = stack[:len(stack)-1]
		goto end
	}
	return false
key:
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != '"' {
		return false
	}
	if i = validStringEnd(b, i); i < 0 {
		return false
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return false
	}
	i++
	goto value
}

// validStringEnd returns the index after the string literal starting at
// b[i], or -1 when it is not a valid one.
func validStringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < ' ':
			return -1
		case c == '\\':
			i++
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return -1
				}
				for _, h := range b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

func literalEnd(b []byte, i int, lit string) int {
	if !bytes.HasPrefix(b[i:], []byte(lit)) {
		return -1
	}
	return i + len(lit)
}

// numberEnd returns the index after the JSON number starting at b[i], or -1.
func numberEnd(b []byte, i int) int {
	digits := func(i int) int {
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(i + 1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if j := digits(i + 1); j > i+1 {
			i = j
		} else {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}
