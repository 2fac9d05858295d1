package zendesk

import (
	"net/http"
	"testing"
	"time"
)

func TestLimiterNeverExceedsThePlanInAMinute(t *testing.T) {
	for _, rpm := range []int{20, 200, 400, 700, 2500} {
		l := newLimiter(rpm)
		perMinute := float64(l.bucket.Limit())*60 + float64(l.bucket.Burst())
		if perMinute > float64(rpm)+1e-9 || perMinute < float64(rpm)*0.9 {
			t.Errorf("rpm %d: the bucket allows %.1f requests in a minute", rpm, perMinute)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 0 ", 0},
		{"-3", 0},
		{"soon", 0},
	} {
		h := http.Header{}
		if tc.header != "" {
			h.Set("Retry-After", tc.header)
		}
		if got := retryAfter(h); got != tc.want {
			t.Errorf("Retry-After %q = %s, want %s", tc.header, got, tc.want)
		}
	}
	h := http.Header{}
	h.Set("Retry-After", time.Now().Add(90*time.Second).UTC().Format(http.TimeFormat))
	if got := retryAfter(h); got < 80*time.Second || got > 91*time.Second {
		t.Errorf("HTTP-date Retry-After = %s, want about 90s", got)
	}
}
