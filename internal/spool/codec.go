package spool

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"time"
	"unsafe"

	"github.com/arubug/arubug/internal/bugreport"
)

// The record codec is a compact binary form of []bugreport.Event: JSON
// encoding and decoding cost more CPU than the rest of the spool together.
// Layout: version byte, uvarint count, then per event the 16-byte UUID, two
// varint Unix-nanosecond times, and each string field as uvarint length +
// bytes, in the order of eventStrings. A new field needs a new version.
const codecVersion = 1

func eventStrings(e *bugreport.Event) []*string {
	return []*string{
		&e.Project, &e.Event, &e.DistinctID, &e.Properties, &e.Set, &e.SetOnce,
		&e.SessionID, &e.WindowID, &e.DeviceID, &e.CurrentURL, &e.Pathname, &e.Host,
		&e.Lib, &e.LibVersion, &e.IP,
	}
}

// zeroTime stands for time.Time{}, which UnixNano cannot represent.
const zeroTime = math.MinInt64

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return zeroTime
	}
	return t.UnixNano()
}

var errCorrupt = errors.New("corrupt spool record")

func appendEvents(dst []byte, events []bugreport.Event) []byte {
	dst = append(dst, codecVersion)
	dst = binary.AppendUvarint(dst, uint64(len(events)))
	for i := range events {
		e := &events[i]
		dst = append(dst, e.UUID[:]...)
		dst = binary.AppendVarint(dst, unixNano(e.Timestamp))
		dst = binary.AppendVarint(dst, unixNano(e.CreatedAt))
		for _, s := range eventStrings(e) {
			dst = binary.AppendUvarint(dst, uint64(len(*s)))
			dst = append(dst, *s...)
		}
	}
	return dst
}

func encodedSize(events []bugreport.Event) int {
	n := 1 + binary.MaxVarintLen64
	for i := range events {
		n += 16 + 2*binary.MaxVarintLen64
		for _, s := range eventStrings(&events[i]) {
			n += binary.MaxVarintLen64 + len(*s)
		}
	}
	return n
}

// decodeEvents decodes a record. The events' strings share b's memory
// rather than copying it (the drainer's largest allocation): b must not
// change while they are in use. Peek reads every chunk into a buffer that
// is reused only once the batch is released.
func decodeEvents(b []byte) ([]bugreport.Event, error) { return appendDecoded(nil, b) }

// appendDecoded is decodeEvents appending to dst, so that a batch decodes
// into one slice. On error it returns dst as it was.
func appendDecoded(dst []bugreport.Event, b []byte) ([]bugreport.Event, error) {
	if len(b) < 1 || b[0] != codecVersion {
		return dst, errCorrupt
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return dst, errCorrupt
	}
	b = b[k:]
	start := len(dst)
	dst = slices.Grow(dst, int(n))[:start+int(n)]
	out := dst[start:]
	clear(out)
	for i := range out {
		e := &out[i]
		if len(b) < 16 {
			return dst[:start], errCorrupt
		}
		copy(e.UUID[:], b[:16])
		b = b[16:]
		for _, t := range []*time.Time{&e.Timestamp, &e.CreatedAt} {
			ns, k := binary.Varint(b)
			if k <= 0 {
				return dst[:start], errCorrupt
			}
			if ns != zeroTime {
				*t = time.Unix(0, ns).UTC()
			}
			b = b[k:]
		}
		for _, s := range eventStrings(e) {
			l, k := binary.Uvarint(b)
			if k <= 0 || l > uint64(len(b)-k) {
				return dst[:start], errCorrupt
			}
			if l > 0 {
				*s = unsafe.String(&b[k], int(l))
			} else {
				*s = ""
			}
			b = b[k+int(l):]
		}
	}
	if len(b) != 0 {
		return dst[:start], errCorrupt
	}
	return dst, nil
}
