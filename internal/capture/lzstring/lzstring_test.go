package lzstring

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf16"
)

// vectorFile mirrors testdata/vectors.json, written by testdata/gen.js with
// the real npm lz-string 1.5.0.
type vectorFile struct {
	Generator string `json:"generator"`
	Cases     []struct {
		Name   string   `json:"name"`
		Input  string   `json:"input"`
		Base64 string   `json:"base64"`
		UTF16  []uint16 `json:"utf16"` // LZString.compress(input)
	} `json:"cases"`
	LoneSurrogates []struct {
		Name   string   `json:"name"`
		Units  []uint16 `json:"units"`
		Base64 string   `json:"base64"`
	} `json:"lone_surrogates"`
}

var loadVectors = sync.OnceValues(func() (*vectorFile, error) {
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		return nil, err
	}
	v := new(vectorFile)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, err
	}
	return v, nil
})

func vectors(tb testing.TB) *vectorFile {
	tb.Helper()
	v, err := loadVectors()
	if err != nil {
		tb.Fatalf("loading vectors: %v", err)
	}
	if len(v.Cases) < 30 {
		tb.Fatalf("only %d vectors", len(v.Cases))
	}
	return v
}

func vector(tb testing.TB, name string) string {
	tb.Helper()
	for _, c := range vectors(tb).Cases {
		if c.Name == name {
			return c.Input
		}
	}
	tb.Fatalf("no vector %q", name)
	return ""
}

func toUnits(s string) []uint16 { return utf16.Encode([]rune(s)) }

// encodeVals renders width-6 values in the base64 alphabet with padding, as
// CompressToBase64 does.
func encodeVals(vals []uint16) string {
	var b strings.Builder
	for _, v := range vals {
		b.WriteByte(keyStrBase64[v])
	}
	for i := len(vals); i%4 != 0; i++ {
		b.WriteByte('=')
	}
	return b.String()
}

func TestVectors(t *testing.T) {
	v := vectors(t)
	t.Logf("vectors from %s", v.Generator)
	for _, c := range v.Cases {
		t.Run(c.Name, func(t *testing.T) {
			if got := CompressToBase64(c.Input); got != c.Base64 {
				t.Errorf("CompressToBase64 = %.80q (len %d), JS gives %.80q (len %d)", got, len(got), c.Base64, len(c.Base64))
			}
			got, err := DecompressFromBase64(c.Base64, len(c.Input))
			if err != nil || got != c.Input {
				t.Errorf("DecompressFromBase64(JS output, exact limit) = %.80q, %v; want input", got, err)
			}
			if len(c.Input) > 0 {
				if _, err := DecompressFromBase64(c.Base64, len(c.Input)-1); !errors.Is(err, ErrTooLarge) {
					t.Errorf("DecompressFromBase64(limit-1) error = %v, want ErrTooLarge", err)
				}
			}

			// The 16-bit raw format (LZString.compress) shares the core.
			units := toUnits(c.Input)
			if raw := compress(units, 16); !slices.Equal(raw, c.UTF16) {
				t.Errorf("compress(16) differs from LZString.compress (len %d vs %d)", len(raw), len(c.UTF16))
			}
			dec, size, err := decompress(c.UTF16, 16, len(c.Input))
			if err != nil || !slices.Equal(dec, units) || size != len(c.Input) {
				t.Errorf("decompress(16) = len %d, size %d, %v; want len %d, size %d", len(dec), size, err, len(units), len(c.Input))
			}
		})
	}
}

// JavaScript happily round-trips unpaired surrogates; we must produce the
// same compressed bytes but refuse to decode them into a Go string.
func TestLoneSurrogates(t *testing.T) {
	for _, c := range vectors(t).LoneSurrogates {
		t.Run(c.Name, func(t *testing.T) {
			if got := encodeVals(compress(c.Units, 6)); got != c.Base64 {
				t.Errorf("compress(6) = %q, JS gives %q", got, c.Base64)
			}
			vals := make([]byte, 0, len(c.Base64))
			for i := 0; i < len(c.Base64) && c.Base64[i] != '='; i++ {
				vals = append(vals, base64Value[c.Base64[i]])
			}
			units, _, err := decompress(vals, 6, 1000)
			if err != nil || !slices.Equal(units, c.Units) {
				t.Errorf("decompress = %x, %v; want %x", units, err, c.Units)
			}
			if got, err := DecompressFromBase64(c.Base64, 1000); !errors.Is(err, ErrInvalid) {
				t.Errorf("DecompressFromBase64 = %q, %v; want ErrInvalid", got, err)
			}
		})
	}
}

// stream builds a base64 payload from raw (value, bits) codes, for inputs the
// compressor would never produce.
func stream(codes ...[2]int) string {
	w := bitWriter{width: 6}
	for _, c := range codes {
		w.write(c[0], uint(c[1]))
	}
	w.flush()
	return encodeVals(w.out)
}

// unpadded strips the "=" padding, to splice streams.
func unpadded(s string) string { return strings.TrimRight(s, "=") }

// chainStream is the classic LZW bomb: a literal 'a' followed by n codes
// that each refer to the entry being defined (w + w[0]), so code k outputs
// k+1 characters and the output is (n+1)(n+2)/2 'a's from O(n log n) bits.
func chainStream(n int) string {
	codes := [][2]int{{0, 2}, {'a', 8}}
	numBits, enlargeIn := 3, 4
	for i := range n {
		codes = append(codes, [2]int{4 + i, numBits})
		if enlargeIn--; enlargeIn == 0 {
			enlargeIn = 1 << numBits
			numBits++
		}
	}
	return stream(append(codes, [2]int{2, numBits})...)
}

func TestDecompressFromBase64Table(t *testing.T) {
	big := CompressToBase64(strings.Repeat("a", 100000))
	// Literal 'a' followed by n more literal 'a's: every code costs bits and
	// adds two dictionary entries, the worst dictionary-to-output ratio.
	flood := func(n int) string {
		codes := [][2]int{{0, 2}, {'a', 8}}
		numBits, enlargeIn := 3, 4
		dec := func() {
			if enlargeIn--; enlargeIn == 0 {
				enlargeIn = 1 << numBits
				numBits++
			}
		}
		for range n {
			codes = append(codes, [2]int{0, numBits}, [2]int{'a', 8})
			dec()
			dec()
		}
		return stream(append(codes, [2]int{2, numBits})...)
	}

	tests := []struct {
		name    string
		input   string
		max     int
		want    string
		wantErr error
	}{
		{name: "empty_stream", input: "Q===", max: 0, want: ""},
		{name: "empty_stream_negative_limit", input: "Q===", max: -5, want: ""},
		{name: "empty_stream_unpadded", input: "Q", max: 10, want: ""},
		{name: "hello", input: CompressToBase64("hello"), max: 5, want: "hello"},
		{name: "hello_unpadded", input: unpadded(CompressToBase64("hello")), max: 5, want: "hello"},
		{name: "trailing_zero_chars", input: unpadded(CompressToBase64("hello")) + "AAAA", max: 5, want: "hello"},
		{name: "huge_limit", input: CompressToBase64("hello"), max: math.MaxInt, want: "hello"},
		{name: "bomb_exact_limit", input: big, max: 100000, want: strings.Repeat("a", 100000)},
		{name: "flood_exact_limit", input: flood(999), max: 1000, want: strings.Repeat("a", 1000)},
		{name: "emoji_exact_limit", input: CompressToBase64("😀"), max: 4, want: "😀"},
		{name: "chain_100", input: chainStream(100), max: 101 * 102 / 2, want: strings.Repeat("a", 101*102/2)},
		{name: "kwkwk_code", input: stream([2]int{0, 2}, [2]int{'a', 8}, [2]int{4, 3}, [2]int{2, 3}), max: 10, want: "aaa"},

		{name: "empty_input", input: "", max: 10, wantErr: ErrInvalid},
		{name: "only_padding", input: "===", max: 10, wantErr: ErrInvalid},
		{name: "too_much_padding", input: "Q====", max: 10, wantErr: ErrInvalid},
		{name: "padding_in_middle", input: "Q=A=", max: 10, wantErr: ErrInvalid},
		{name: "space", input: "Q A=", max: 10, wantErr: ErrInvalid},
		{name: "url_safe_minus", input: "Q-==", max: 10, wantErr: ErrInvalid},
		{name: "url_safe_dollar", input: "Q$==", max: 10, wantErr: ErrInvalid},
		{name: "newline", input: "Q==\n", max: 10, wantErr: ErrInvalid},
		{name: "non_ascii", input: "Qé==", max: 10, wantErr: ErrInvalid},
		{name: "nul_byte", input: "Q\x00==", max: 10, wantErr: ErrInvalid},
		{name: "first_code_3", input: "////", max: 10, wantErr: ErrInvalid},
		{name: "all_zero_garbage", input: "AAAA", max: 10, wantErr: ErrInvalid},
		{name: "garbage_text", input: "this is not lz-string at all", max: 1000, wantErr: ErrInvalid},
		{name: "plain_base64", input: "eyJldmVudCI6IiRwYWdldmlldyJ9", max: 1000, wantErr: ErrInvalid},
		{name: "truncated_first_literal", input: "B", max: 10, wantErr: ErrInvalid},
		{name: "truncated_hello", input: unpadded(CompressToBase64("hello"))[:4], max: 10, wantErr: ErrInvalid},
		{name: "truncated_bomb", input: big[:len(big)/2], max: 1 << 20, wantErr: ErrInvalid},
		{name: "undefined_code", input: stream([2]int{0, 2}, [2]int{'a', 8}, [2]int{5, 3}, [2]int{2, 3}), max: 10, wantErr: ErrInvalid},
		{name: "missing_end_marker", input: stream([2]int{0, 2}, [2]int{'a', 8}), max: 10, wantErr: ErrInvalid},
		{name: "lone_surrogate_literal", input: stream([2]int{1, 2}, [2]int{0xd800, 16}, [2]int{2, 3}), max: 10, wantErr: ErrInvalid},
		{name: "trailing_garbage", input: unpadded(CompressToBase64("hello")) + "ABCDxyz+", max: 5, wantErr: ErrInvalid},
		{name: "nonzero_bits_after_marker", input: "R===", max: 5, wantErr: ErrInvalid},

		{name: "bomb_over_limit", input: big, max: 1000, wantErr: ErrTooLarge},
		{name: "bomb_one_over", input: big, max: 99999, wantErr: ErrTooLarge},
		{name: "flood_over_limit", input: flood(1000), max: 1000, wantErr: ErrTooLarge},
		{name: "zero_limit", input: CompressToBase64("a"), max: 0, wantErr: ErrTooLarge},
		{name: "negative_limit", input: CompressToBase64("a"), max: -1, wantErr: ErrTooLarge},
		{name: "two_byte_char_over", input: CompressToBase64("é"), max: 1, wantErr: ErrTooLarge},
		{name: "emoji_over", input: CompressToBase64("😀"), max: 3, wantErr: ErrTooLarge},
		{name: "chain_100_over", input: chainStream(100), max: 101*102/2 - 1, wantErr: ErrTooLarge},
		{name: "kwkwk_over", input: stream([2]int{0, 2}, [2]int{'a', 8}, [2]int{4, 3}, [2]int{2, 3}), max: 2, wantErr: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecompressFromBase64(tt.input, tt.max)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("DecompressFromBase64(%.40q, %d) = %.40q, %v; want %v", tt.input, tt.max, got, err, tt.wantErr)
				}
				if got != "" {
					t.Errorf("got %.40q alongside error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("DecompressFromBase64(%.40q, %d) = %.40q (len %d), %v; want %.40q (len %d)", tt.input, tt.max, got, len(got), err, tt.want, len(tt.want))
			}
		})
	}
}

// A bomb that would expand to ~50 GB must fail after producing at most the
// limit, allocating memory proportional to the limit and input only.
func TestBombMemoryBounded(t *testing.T) {
	bomb := chainStream(300000) // (n+1)(n+2)/2 ≈ 4.5e10 characters
	const limit = 1 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := DecompressFromBase64(bomb, limit)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	// Input-sized buffers plus output growth up to the limit (as UTF-16,
	// with append's slack) and its dictionary.
	budget := uint64(8*len(bomb) + 8*limit)
	if got := after.TotalAlloc - before.TotalAlloc; got > budget {
		t.Errorf("allocated %d bytes for a %d-byte input and %d-byte limit, budget %d", got, len(bomb), limit, budget)
	} else {
		t.Logf("allocated %d bytes (input %d bytes, limit %d)", got, len(bomb), limit)
	}
}

// Cutting two or more data characters always removes part of the
// end-of-stream marker (the final flush adds at most 6 padding bits), so
// every truncation of every vector must be rejected, never mis-decoded.
func TestTruncatedVectors(t *testing.T) {
	for _, c := range vectors(t).Cases {
		data := unpadded(c.Base64)
		cuts := []int{len(data) - 2, len(data) / 2, 1, 0}
		for _, n := range cuts {
			if n < 0 || n > len(data)-2 {
				continue
			}
			got, err := DecompressFromBase64(data[:n], 1<<30)
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%s cut to %d chars: %.40q, %v; want ErrInvalid", c.Name, n, got, err)
			}
		}
	}
}

func TestCompressInvalidUTF8(t *testing.T) {
	// Invalid bytes are compressed as U+FFFD, one per byte, like []rune(s).
	in := "a\xffb\xc3"
	got, err := DecompressFromBase64(CompressToBase64(in), 100)
	if want := string([]rune(in)); err != nil || got != want {
		t.Fatalf("round trip of invalid UTF-8 = %q, %v; want %q", got, err, want)
	}
}

func BenchmarkDecompressFromBase64(b *testing.B) {
	input := vector(b, "posthog_batch_2kb")
	compressed := CompressToBase64(input)
	b.SetBytes(int64(len(input)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecompressFromBase64(compressed, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompressToBase64(b *testing.B) {
	input := vector(b, "posthog_batch_2kb")
	b.SetBytes(int64(len(input)))
	b.ReportAllocs()
	for b.Loop() {
		CompressToBase64(input)
	}
}
