package loadgen

import (
	"math"
	"math/bits"
	"sync"
	"time"
)

// Histogram is the load generator's latency histogram for callers: fixed
// memory (~30 KiB) whatever the number of samples, values off by at most
// ~1.6 %. It is safe for concurrent use; the zero value is empty.
type Histogram struct {
	mu sync.Mutex
	h  histogram
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	h.mu.Lock()
	h.h.record(d)
	h.mu.Unlock()
}

// Quantile returns the latency at quantile q in [0,1] (0 when empty).
func (h *Histogram) Quantile(q float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.h.quantile(q)
}

// Max returns the largest latency recorded.
func (h *Histogram) Max() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return time.Duration(h.h.max)
}

// Count returns the number of latencies recorded.
func (h *Histogram) Count() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.h.n
}

// histogram is a fixed-size log-linear (HDR-style) latency histogram over
// nanoseconds: values below 2^subBits are exact, above that every power of
// two is split into 2^(subBits-1) equal buckets, so a recorded value is off
// by at most 1/2^(subBits-1) (~1.6%) relative. Memory is fixed (~30 KiB)
// whatever the number of samples.
type histogram struct {
	counts [numBuckets]uint64
	n      uint64
	max    int64
}

const (
	subBits    = 7
	subCount   = 1 << subBits            // 128
	halfCount  = subCount / 2            // 64
	numBuckets = subCount + 57*halfCount // covers every int64
)

func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	u := uint64(v)
	if u < subCount {
		return int(u)
	}
	e := bits.Len64(u) - subBits // >= 1
	sub := u >> uint(e)          // in [halfCount, subCount)
	return subCount + (e-1)*halfCount + int(sub-halfCount)
}

// bucketHigh is the largest value that falls into bucket i.
func bucketHigh(i int) int64 {
	if i < subCount {
		return int64(i)
	}
	e := (i-subCount)/halfCount + 1
	sub := uint64((i-subCount)%halfCount + halfCount)
	hi := (sub+1)<<uint(e) - 1
	if hi > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(hi)
}

func (h *histogram) record(d time.Duration) {
	h.counts[bucketOf(int64(d))]++
	h.n++
	if int64(d) > h.max {
		h.max = int64(d)
	}
}

func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the value at quantile q in [0,1] (the upper edge of its
// bucket, capped at the observed maximum); 0 when empty.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(bucketHigh(i), h.max))
		}
	}
	return time.Duration(h.max)
}
