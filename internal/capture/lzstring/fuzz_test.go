package lzstring

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzMaxOutput caps the fuzzed output limit so a tiny input cannot make a
// fuzz iteration slow; the decompressor itself is bounded by the limit.
const fuzzMaxOutput = 1 << 20

// refOutcome classifies a decompression the way the package should.
type refOutcome int

const (
	refOK refOutcome = iota
	refInvalid
	refTooLarge
)

// refDecompress is a line-by-line port of lz-string 1.5.0's _decompress for
// 6-bit input, with strings modelled as copied []uint16, used as a
// differential oracle for the offset-based implementation. It departs from
// JavaScript only where the package documents it does: reading past the end
// of input is invalid (JS reads zeros or returns ""), and the output is
// limited to limit UTF-8 bytes, checked before each append.
//
// For refOK it also reports whether every bit after the end marker is zero.
func refDecompress(vals []byte, limit int) ([]uint16, refOutcome, bool) {
	const resetValue = 32
	index, position := 0, resetValue
	val := 0
	past := false
	next := func() {
		if index < len(vals) {
			val = int(vals[index])
		} else {
			val = 0
			past = true
		}
		index++
	}
	next()
	readBits := func(n int) (int, bool) {
		bits := 0
		for power := 1; power != 1<<n; power <<= 1 {
			if past {
				return 0, false
			}
			resb := val & position
			position >>= 1
			if position == 0 {
				position = resetValue
				next()
			}
			if resb > 0 {
				bits |= power
			}
		}
		return bits, true
	}
	restZero := func() bool {
		if val&(2*position-1) != 0 {
			return false
		}
		for _, v := range vals[min(index, len(vals)):] {
			if v != 0 {
				return false
			}
		}
		return true
	}
	size := 0
	var result []uint16
	push := func(entry []uint16) bool {
		for _, u := range entry {
			size += utf8Len(u)
		}
		if size > max(limit, 0) {
			return false
		}
		result = append(result, entry...)
		return true
	}

	dictionary := [][]uint16{nil, nil, nil}
	first, ok := readBits(2)
	if !ok {
		return nil, refInvalid, false
	}
	var c []uint16
	switch first {
	case 0, 1:
		b, ok := readBits(8 << first)
		if !ok {
			return nil, refInvalid, false
		}
		c = []uint16{uint16(b)}
	case 2:
		return nil, refOK, restZero()
	default:
		return nil, refInvalid, false
	}
	dictionary = append(dictionary, c)
	w := c
	if !push(c) {
		return nil, refTooLarge, false
	}
	enlargeIn, numBits := 4, 3
	for {
		code, ok := readBits(numBits)
		if !ok {
			return nil, refInvalid, false
		}
		switch code {
		case 0, 1:
			b, ok := readBits(8 << code)
			if !ok {
				return nil, refInvalid, false
			}
			dictionary = append(dictionary, []uint16{uint16(b)})
			code = len(dictionary) - 1
			enlargeIn--
		case 2:
			return result, refOK, restZero()
		}
		if enlargeIn == 0 {
			enlargeIn = 1 << numBits
			numBits++
		}
		var entry []uint16
		switch {
		case code < len(dictionary):
			entry = dictionary[code]
		case code == len(dictionary):
			entry = append(slices.Clone(w), w[0])
		default:
			return nil, refInvalid, false
		}
		if !push(entry) {
			return nil, refTooLarge, false
		}
		dictionary = append(dictionary, append(slices.Clone(w), entry[0]))
		enlargeIn--
		w = entry
		if enlargeIn == 0 {
			enlargeIn = 1 << numBits
			numBits++
		}
	}
}

func fuzzSeeds(f *testing.F) []string {
	seeds := []string{
		"", "Q===", "Q", "R===", "A", "AAAA", "////", "B", "Q=A=", "Q====", "Q A=", "Qé==",
		"this is not lz-string at all", "eyJldmVudCI6IiRwYWdldmlldyJ9",
		stream([2]int{0, 2}, [2]int{'a', 8}, [2]int{4, 3}, [2]int{2, 3}),
		stream([2]int{0, 2}, [2]int{'a', 8}, [2]int{5, 3}, [2]int{2, 3}),
		stream([2]int{1, 2}, [2]int{0xd800, 16}, [2]int{2, 3}),
	}
	v := vectors(f)
	for _, c := range v.Cases {
		if len(c.Base64) <= 4096 {
			seeds = append(seeds, c.Base64, unpadded(c.Base64)[:len(unpadded(c.Base64))/2])
		}
	}
	for _, c := range v.LoneSurrogates {
		seeds = append(seeds, c.Base64)
	}
	return seeds
}

func FuzzDecompressFromBase64(f *testing.F) {
	for i, s := range fuzzSeeds(f) {
		f.Add(s, []int{0, 1, 5, 100, 1 << 16}[i%5])
	}
	f.Fuzz(func(t *testing.T, input string, maxOutput int) {
		maxOutput = min(maxOutput, fuzzMaxOutput)
		got, err := DecompressFromBase64(input, maxOutput)
		switch {
		case err == nil:
			if !utf8.ValidString(got) {
				t.Fatalf("invalid UTF-8 output %q", got)
			}
			if len(got) > max(maxOutput, 0) {
				t.Fatalf("output length %d exceeds limit %d", len(got), maxOutput)
			}
			// Whatever we accept must survive our own round trip.
			again, err := DecompressFromBase64(CompressToBase64(got), len(got))
			if err != nil || again != got {
				t.Fatalf("round trip of accepted output %q: %q, %v", got, again, err)
			}
		case errors.Is(err, ErrInvalid), errors.Is(err, ErrTooLarge):
			if got != "" {
				t.Fatalf("non-empty output %q with error %v", got, err)
			}
		default:
			t.Fatalf("unexpected error type: %v", err)
		}

		// Differential check against the straightforward port.
		data := strings.TrimRight(input, "=")
		if input == "" || len(input)-len(data) > 3 || strings.ContainsFunc(data, func(r rune) bool {
			return r >= utf8.RuneSelf || base64Value[r] == 0xff
		}) {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("malformed input %q: %v, want ErrInvalid", input, err)
			}
			return
		}
		vals := make([]byte, len(data))
		for i := range len(data) {
			vals[i] = base64Value[data[i]]
		}
		refUnits, outcome, restZero := refDecompress(vals, maxOutput)
		switch {
		case outcome == refTooLarge:
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("reference says too large, got %q, %v", got, err)
			}
		case outcome == refInvalid || !restZero || hasLoneSurrogate(refUnits):
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("reference says invalid (outcome %d, restZero %v), got %q, %v", outcome, restZero, got, err)
			}
		default:
			if err != nil || !slices.Equal(toUnits(got), refUnits) {
				t.Fatalf("DecompressFromBase64 = %q, %v; reference = %x", got, err, refUnits)
			}
		}
	})
}

func hasLoneSurrogate(u []uint16) bool {
	for i := 0; i < len(u); i++ {
		switch {
		case u[i] >= 0xd800 && u[i] < 0xdc00 && i+1 < len(u) && u[i+1] >= 0xdc00 && u[i+1] <= 0xdfff:
			i++
		case u[i] >= 0xd800 && u[i] <= 0xdfff:
			return true
		}
	}
	return false
}

func FuzzRoundTrip(f *testing.F) {
	for _, c := range vectors(f).Cases {
		if len(c.Input) <= 4096 {
			f.Add(c.Input)
		}
	}
	f.Add("a\xffb\xc3")
	f.Fuzz(func(t *testing.T, s string) {
		// Invalid UTF-8 bytes are documented to become U+FFFD each.
		want := string([]rune(s))
		c := CompressToBase64(s)
		if len(c) == 0 || len(c)%4 != 0 {
			t.Fatalf("compressed length %d is not a positive multiple of 4", len(c))
		}
		got, err := DecompressFromBase64(c, len(want))
		if err != nil || got != want {
			t.Fatalf("round trip of %q = %q, %v", s, got, err)
		}
		if len(want) > 0 {
			if _, err := DecompressFromBase64(c, len(want)-1); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("limit len-1: %v, want ErrTooLarge", err)
			}
		}
		units := toUnits(want)
		dec, size, err := decompress(compress(units, 16), 16, len(want))
		if err != nil || !slices.Equal(dec, units) || size != len(want) {
			t.Fatalf("16-bit round trip: %x, %d, %v", dec, size, err)
		}
	})
}
