package capture

import (
	"errors"
	"fmt"
)

// Limits bounds what one capture request may cost. Every bound is explicit so
// that no request, however hostile, can make the collector run out of memory.
type Limits struct {
	MaxBodyBytes         int64 // raw body on the single-event routes (/e, /capture, …)
	MaxBatchBodyBytes    int64 // raw body on /batch
	MaxDecompressedBytes int64 // payload after gzip / base64 / lz64 decoding
	MaxEventsPerRequest  int
	MaxEventBytes        int // one event's JSON text
	MaxDepth             int // JSON nesting depth
	MaxStringBytes       int // any single JSON string, keys included
	MaxDistinctIDLength  int // in bytes
	MaxEventNameLength   int // in bytes
}

// DefaultLimits returns the limits PostHog's own capture service applies where
// it has one, and conservative ones elsewhere.
func DefaultLimits() Limits {
	return Limits{
		MaxBodyBytes:         2 << 20,
		MaxBatchBodyBytes:    20 << 20,
		MaxDecompressedBytes: 32 << 20,
		MaxEventsPerRequest:  5000,
		MaxEventBytes:        1 << 20,
		MaxDepth:             64,
		MaxStringBytes:       1 << 20,
		MaxDistinctIDLength:  200,
		MaxEventNameLength:   200,
	}
}

// Validate reports every limit that is not usable.
func (l Limits) Validate() error {
	var errs []error
	check := func(name string, v int64) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("capture limit %s must be positive, got %d", name, v))
		}
	}
	check("max_body_bytes", l.MaxBodyBytes)
	check("max_batch_body_bytes", l.MaxBatchBodyBytes)
	check("max_decompressed_bytes", l.MaxDecompressedBytes)
	check("max_events_per_request", int64(l.MaxEventsPerRequest))
	check("max_event_bytes", int64(l.MaxEventBytes))
	check("max_json_depth", int64(l.MaxDepth))
	check("max_string_bytes", int64(l.MaxStringBytes))
	check("max_distinct_id_length", int64(l.MaxDistinctIDLength))
	check("max_event_name_length", int64(l.MaxEventNameLength))
	if l.MaxDecompressedBytes > 0 && l.MaxDecompressedBytes < l.MaxBatchBodyBytes {
		errs = append(errs, fmt.Errorf("capture limit max_decompressed_bytes (%d) must be at least max_batch_body_bytes (%d)", l.MaxDecompressedBytes, l.MaxBatchBodyBytes))
	}
	return errors.Join(errs...)
}
