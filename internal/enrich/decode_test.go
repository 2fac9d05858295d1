package enrich

import (
	"fmt"
	"reflect"
	"testing"
)

func TestDecodeJSONString(t *testing.T) {
	tests := []struct{ raw, want string }{
		{`"abc"`, "abc"},
		{` "abc"`, "abc"}, // visitParamExtractRaw keeps the space after the colon
		{`"a\"b\u00e9"`, `a"bé`},
		{`"abc`, "abc"},     // cut by the query's size bound
		{`"a\"b`, `a"b`},    // cut after an escape
		{`"caf\u00`, "caf"}, // cut inside an escape
		{`"caf\`, "caf"},    // cut at a backslash
		{`""`, ""},
		{`123`, ""},
		{`null`, ""},
		{`{"a":1}`, ""},
		{``, ""},
	}
	for _, tt := range tests {
		if got := decodeJSONString(tt.raw); got != tt.want {
			t.Errorf("decodeJSONString(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

func TestFirstException(t *testing.T) {
	tests := []struct {
		raw  string
		want exceptionEntry
	}{
		{`[{"type":"TypeError","value":"x is undefined"}]`, exceptionEntry{"TypeError", "x is undefined"}},
		{` [ {"mechanism": {"type": "onerror"}, "type": "E", "value": "v"} ]`, exceptionEntry{"E", "v"}},
		// The list was cut inside its second entry: the first still counts.
		{`[{"type":"A","value":"first"},{"type":"B","value":"sec`, exceptionEntry{"A", "first"}},
		{`[{"type":"A","value":"cut insi`, exceptionEntry{}},
		{`[]`, exceptionEntry{}},
		{`{"type":"A"}`, exceptionEntry{}},
		{``, exceptionEntry{}},
	}
	for _, tt := range tests {
		if got := firstException(tt.raw); got != tt.want {
			t.Errorf("firstException(%q) = %+v, want %+v", tt.raw, got, tt.want)
		}
	}
}

func TestFeatureFlags(t *testing.T) {
	many := "["
	for i := range 60 {
		if i > 0 {
			many += ","
		}
		many += fmt.Sprintf(`"f%02d"`, i)
	}
	many += "]"
	tests := []struct {
		name   string
		active string
		props  []string
		want   []string
	}{
		{"union sorted unique", `["b","a"]`, []string{"c", "a"}, []string{"a", "b", "c"}},
		{"spaces and non-strings", ` [ "x", 1, null, "" , "y" ]`, nil, []string{"x", "y"}},
		{"cut array keeps what was read", `["a","b","cu`, nil, []string{"a", "b"}},
		{"not an array", `"a"`, []string{"p"}, []string{"p"}},
		{"none", ``, nil, []string{}},
		{"at most 50", many, nil, func() []string {
			var w []string
			for i := range 50 {
				w = append(w, fmt.Sprintf("f%02d", i))
			}
			return w
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := featureFlags(tt.active, tt.props); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("featureFlags(%q, %q) = %q, want %q", tt.active, tt.props, got, tt.want)
			}
		})
	}
}
