package zendesk

import (
	"crypto/sha256"
	"testing"
	"time"
)

func TestWebhookReplayMemoryBound(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	m := replayMemory{max: 3, seen: map[[sha256.Size]byte]replayEntry{}}
	key := func(i byte) [sha256.Size]byte { return [sha256.Size]byte{i} }
	for i := byte(1); i <= 4; i++ {
		if !m.reserve(key(i), now) {
			t.Fatalf("key %d refused", i)
		}
		m.commit(key(i), now.Add(time.Minute))
	}
	if len(m.seen) != 3 || len(m.order) != 3 {
		t.Fatalf("remembered %d (%d in order), want 3", len(m.seen), len(m.order))
	}
	if !m.reserve(key(1), now) {
		t.Error("the oldest key was not evicted")
	}
	m.release(key(1))
	if m.reserve(key(4), now) {
		t.Error("a remembered key was accepted")
	}
	// A reserved key is refused until released; a released one is accepted.
	if !m.reserve(key(9), now) || m.reserve(key(9), now) {
		t.Error("pending key handling")
	}
	m.release(key(9))
	if !m.reserve(key(9), now) {
		t.Error("released key refused")
	}
	m.release(key(9))
	// Expired entries are dropped.
	later := now.Add(2 * time.Minute)
	if !m.reserve(key(4), later) {
		t.Error("an expired key was refused")
	}
	if len(m.order) != 0 {
		t.Errorf("%d expired entries kept", len(m.order))
	}
}
