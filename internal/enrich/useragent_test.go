package enrich

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseUserAgent(t *testing.T) {
	tests := []struct {
		name string
		ua   string
		want Client
	}{
		{
			name: "chrome desktop windows",
			ua:   "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
			want: Client{Browser: "Chrome", BrowserVersion: "124.0.0.0", OS: "Windows", OSVersion: "10.0", Device: DeviceDesktop},
		},
		{
			name: "safari iphone",
			ua:   "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
			want: Client{Browser: "Safari", BrowserVersion: "17.4.1", OS: "iOS", OSVersion: "17.4.1", Device: DeviceMobile},
		},
		{
			name: "firefox linux",
			ua:   "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
			want: Client{Browser: "Firefox", BrowserVersion: "125.0", OS: "Linux", Device: DeviceDesktop}, // x86_64 is no version,
		},
		{
			name: "edge windows",
			ua:   "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67",
			want: Client{Browser: "Edge", BrowserVersion: "124.0.2478.67", OS: "Windows", OSVersion: "10.0", Device: DeviceDesktop},
		},
		{
			name: "chrome android mobile",
			ua:   "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
			want: Client{Browser: "Chrome", BrowserVersion: "124.0.6367.82", OS: "Android", OSVersion: "14", Device: DeviceMobile},
		},
		{
			name: "safari ipad",
			ua:   "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
			want: Client{Browser: "Safari", BrowserVersion: "16.6", OS: "iOS", OSVersion: "16.6", Device: DeviceTablet},
		},
		{
			name: "googlebot",
			ua:   "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
			want: Client{Browser: "Googlebot", BrowserVersion: "2.1", Device: DeviceBot},
		},
		{
			name: "empty",
			ua:   "",
			want: Client{Device: DeviceUnknown},
		},
		{
			name: "markup",
			ua:   "<script>alert(1)</script>",
			want: Client{Device: DeviceUnknown},
		},
		{
			name: "garbage",
			ua:   "\x00\xff}{;;((",
			want: Client{Device: DeviceUnknown},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseUserAgent(tt.ua); got != tt.want {
				t.Errorf("ParseUserAgent(%q)\n got %+v\nwant %+v", tt.ua, got, tt.want)
			}
		})
	}
}

func TestParseUserAgentReadsOnlyTheFirstKilobyte(t *testing.T) {
	chrome := "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	// What follows the first kilobyte must make no difference, however
	// large: a bot marker there is not seen.
	padded := chrome + strings.Repeat(" ", MaxUserAgentBytes-len(chrome)) + "Googlebot/2.1" + strings.Repeat("x", 10<<20)
	if got, want := ParseUserAgent(padded), ParseUserAgent(chrome); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestTruncateBytesKeepsUTF8(t *testing.T) {
	s := strings.Repeat("a", 1023) + "é" // é straddles byte 1024
	got := truncateBytes(s, 1024)
	if len(got) != 1023 || !utf8.ValidString(got) {
		t.Errorf("truncateBytes cut to %d bytes (valid %v), want 1023", len(got), utf8.ValidString(got))
	}
}
