package capture

import (
	"unicode/utf8"

	"github.com/arubug/arubug/internal/bugreport"
)

// checkJSON enforces the structural limits on a payload in one pass before
// any decoding allocates: valid UTF-8, nesting depth, string length, and no
// NUL characters (escaped or raw), which ClickHouse and the downstream tools
// would store but nothing displays safely. Syntax errors are left to the
// decoder, which reports them better.
func checkJSON(b []byte, l Limits) error {
	if !utf8.Valid(b) {
		return invalid("invalid_utf8", "the payload is not valid UTF-8")
	}
	depth := 0
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '{', '[':
			depth++
			if depth > l.MaxDepth {
				return invalid("too_deep", "the payload nests deeper than %d levels", l.MaxDepth)
			}
		case '}', ']':
			depth--
		case 0:
			return invalid("nul_byte", "the payload contains a NUL byte")
		case '"':
			start := i
			for i++; i < len(b); i++ {
				c := b[i]
				if c == '"' {
					break
				}
				if c == 0 {
					return invalid("nul_byte", "the payload contains a NUL byte")
				}
				if c == '\\' && i+1 < len(b) {
					i++
					if b[i] == 'u' && i+4 < len(b) && b[i+1] == '0' && b[i+2] == '0' && b[i+3] == '0' && b[i+4] == '0' {
						return invalid("nul_byte", `the payload contains a NUL character (\u0000)`)
					}
				}
			}
			if i-start-1 > l.MaxStringBytes {
				return bugreport.Errorf(bugreport.ETOOLARGE, "string_too_long", "a string in the payload is longer than %d bytes", l.MaxStringBytes)
			}
		}
	}
	return nil
}
