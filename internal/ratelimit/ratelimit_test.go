package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(6, 3, 100, func() time.Time { return now }) // one token every 10 s
	for i := 0; i < 3; i++ {
		if ok, _ := l.Allow("ip", 1); !ok {
			t.Fatalf("burst request %d refused", i)
		}
	}
	ok, wait := l.Allow("ip", 1)
	if ok || wait != 10*time.Second {
		t.Fatalf("over the burst: ok=%v wait=%s, want refused for 10s", ok, wait)
	}
	if ok, _ := l.Allow("other", 1); !ok {
		t.Fatal("another key shares the bucket")
	}
	now = now.Add(10 * time.Second)
	if ok, _ := l.Allow("ip", 1); !ok {
		t.Fatal("a refilled token was refused")
	}
	if ok, _ := l.Allow("ip", 5); ok {
		t.Fatal("more than the burst at once was allowed")
	}
}

func TestLimiterForgetsLeastRecentlyUsed(t *testing.T) {
	l := New(60, 1, 10, nil)
	for i := 0; i < 25; i++ {
		l.Allow(fmt.Sprint(i), 1)
	}
	if l.Len() != 10 {
		t.Fatalf("tracking %d keys, want at most 10", l.Len())
	}
	if ok, _ := l.Allow("24", 1); ok {
		t.Error("a recent key was forgotten")
	}
}
