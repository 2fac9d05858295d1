// Package ratelimit is a keyed token-bucket limiter with bounded memory,
// for limits per client IP or per user.
package ratelimit

import (
	"container/list"
	"sync"
	"time"
)

// Limiter allows Burst events at once per key and refills Rate tokens per
// second. At most MaxKeys keys are tracked; the least recently used is
// forgotten first, which can only make the limiter more lenient.
type Limiter struct {
	rate    float64
	burst   float64
	maxKeys int
	now     func() time.Time

	mu    sync.Mutex
	order *list.List // front = most recently used
	keys  map[string]*list.Element
}

type bucket struct {
	key    string
	tokens float64
	at     time.Time
}

// New returns a Limiter. perMinute events per minute are allowed on
// average, burst at once.
func New(perMinute, burst, maxKeys int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	if maxKeys <= 0 {
		maxKeys = 100000
	}
	return &Limiter{rate: float64(perMinute) / 60, burst: float64(burst), maxKeys: maxKeys, now: now,
		order: list.New(), keys: map[string]*list.Element{}}
}

// Allow takes n tokens for key. It returns ok, or how long until n tokens
// are available.
func (l *Limiter) Allow(key string, n int) (ok bool, retryAfter time.Duration) {
	return l.take(key, n, true)
}

// Check reports what Allow would answer without taking tokens, so that a
// request refused by one limiter does not use up another's budget.
func (l *Limiter) Check(key string, n int) (ok bool, retryAfter time.Duration) {
	return l.take(key, n, false)
}

func (l *Limiter) take(key string, n int, consume bool) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var b *bucket
	if el, found := l.keys[key]; found {
		b = el.Value.(*bucket)
		l.order.MoveToFront(el)
		b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
		b.at = now
	} else {
		b = &bucket{key: key, tokens: l.burst, at: now}
		l.keys[key] = l.order.PushFront(b)
		if l.order.Len() > l.maxKeys {
			oldest := l.order.Back()
			l.order.Remove(oldest)
			delete(l.keys, oldest.Value.(*bucket).key)
		}
	}
	need := float64(n)
	if b.tokens >= need {
		if consume {
			b.tokens -= need
		}
		return true, 0
	}
	if l.rate <= 0 {
		return false, time.Hour
	}
	wait := time.Duration((need - b.tokens) / l.rate * float64(time.Second))
	return false, max(wait, time.Second)
}

// Len returns the number of keys tracked.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.order.Len()
}
