package enrich

import "testing"

func TestReplayURL(t *testing.T) {
	const host = "https://eu.posthog.com"
	tests := []struct {
		name                           string
		template, host, token, session string
		seconds                        int64
		want                           string
	}{
		{
			name: "default template", host: host, token: "phc_abc", session: "0190e9a8-7c1e-7a3b-9f00-1234567890ab", seconds: 95,
			want: "https://eu.posthog.com/project/phc_abc/replay/0190e9a8-7c1e-7a3b-9f00-1234567890ab?t=95",
		},
		{
			name: "trailing slash on host", host: host + "/", token: "phc_abc", session: "s1", seconds: 0,
			want: "https://eu.posthog.com/project/phc_abc/replay/s1?t=0",
		},
		{
			name: "negative seconds", host: host, token: "phc_abc", session: "s1", seconds: -30,
			want: "https://eu.posthog.com/project/phc_abc/replay/s1?t=0",
		},
		{
			name: "no session means no link", host: host, token: "phc_abc", session: "", seconds: 10,
			want: "",
		},
		{
			name: "no host means no link", host: "", token: "phc_abc", session: "s1",
			want: "",
		},
		{
			name: "no token means no link", host: host, token: "", session: "s1",
			want: "",
		},
		{
			name: "custom template", template: "https://replay.example.com/s/{session_id}#{seconds}", session: "s1", seconds: 7,
			want: "https://replay.example.com/s/s1#7",
		},
		{
			name: "custom template without host needs none", template: "https://replay.example.com/{token}/{session_id}", token: "t", session: "s1",
			want: "https://replay.example.com/t/s1",
		},
		{
			name: "spaces", host: host, token: "phc_abc", session: "a b", seconds: 1,
			want: "https://eu.posthog.com/project/phc_abc/replay/a%20b?t=1",
		},
		{
			name: "slashes cannot change the path", host: host, token: "phc_abc", session: "../../admin/x", seconds: 1,
			want: "https://eu.posthog.com/project/phc_abc/replay/..%2F..%2Fadmin%2Fx?t=1",
		},
		{
			name: "query and fragment cannot be injected", host: host, token: "phc_abc", session: "s?t=999&x=1#frag", seconds: 1,
			want: "https://eu.posthog.com/project/phc_abc/replay/s%3Ft=999&x=1%23frag?t=1",
		},
		{
			name: "markup is escaped", host: host, token: "phc_abc", session: `<script>alert("x")</script>`, seconds: 1,
			want: "https://eu.posthog.com/project/phc_abc/replay/%3Cscript%3Ealert%28%22x%22%29%3C%2Fscript%3E?t=1",
		},
		{
			name: "placeholders in values are not expanded", host: host, token: "{seconds}", session: "{host}", seconds: 3,
			want: "https://eu.posthog.com/project/%7Bseconds%7D/replay/%7Bhost%7D?t=3",
		},
		{
			name: "hostile token", host: host, token: "x/../../y", session: "s1", seconds: 1,
			want: "https://eu.posthog.com/project/x%2F..%2F..%2Fy/replay/s1?t=1",
		},
		{
			name: "non-http host gives no link", host: "javascript:alert(1)//", token: "t", session: "s1",
			want: "",
		},
		{
			name: "relative host gives no link", host: "eu.posthog.com", token: "t", session: "s1",
			want: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ReplayURL(tt.template, tt.host, tt.token, tt.session, tt.seconds); got != tt.want {
				t.Errorf("ReplayURL(%q, %q, %q, %q, %d)\n got %q\nwant %q", tt.template, tt.host, tt.token, tt.session, tt.seconds, got, tt.want)
			}
		})
	}
}
