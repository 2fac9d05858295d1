// Package lzstring implements the compression format of the JavaScript
// library lz-string 1.5.0 (npm "lz-string"), which posthog-js uses for
// request bodies sent with compression=lz64.
//
// Both directions are byte-for-byte compatible with lz-string's
// compressToBase64 and decompressFromBase64 for well-formed data. The
// decompressor is meant for untrusted input: unlike the JavaScript library,
// which silently returns null or "" (or garbage) for malformed data, it
// reports errors, bounds its memory use by the caller's output limit, and
// rejects output that is not valid UTF-16 text.
//
// lz-string works on JavaScript strings, i.e. sequences of UTF-16 code
// units; this package converts from and to Go's UTF-8 strings at the edges,
// so characters outside the Basic Multilingual Plane are compressed as
// surrogate pairs exactly as JavaScript would.
package lzstring

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strings"
	"unicode/utf16"
)

// ErrInvalid is returned (possibly wrapped, test with errors.Is) when the
// compressed input is malformed: it is empty, contains a character outside
// the lz-string base64 alphabet, ends before the end-of-stream marker, refers
// to a dictionary entry that does not exist, or decompresses to text that is
// not valid UTF-16 (an unpaired surrogate).
var ErrInvalid = errors.New("lzstring: invalid compressed data")

// ErrTooLarge is returned (possibly wrapped, test with errors.Is) when the
// decompressed text would be longer than the caller's limit, measured in
// UTF-8 bytes. Decompression stops as soon as the limit would be crossed, so
// no more than the limit is ever produced.
var ErrTooLarge = errors.New("lzstring: decompressed data exceeds size limit")

// keyStrBase64 is lz-string's alphabet for compressToBase64; the final '='
// is only ever used as padding.
const keyStrBase64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="

// Codes 0 to 2 are reserved: a new 8-bit character, a new 16-bit
// character, and the end of the stream. Dictionary codes start at 3.
const (
	codeChar8  = 0
	codeChar16 = 1
	codeEnd    = 2
)

// maxLimit caps the output length in code units so that dictionary entries
// can be stored as pairs of uint32 offsets into the output.
const maxLimit = math.MaxInt32

// base64Value maps a byte to its 6-bit value, or 0xff if it is not part of
// the alphabet proper ('=' included, since it is only valid as padding).
var base64Value = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := 0; i < 64; i++ {
		t[keyStrBase64[i]] = byte(i)
	}
	return t
}()

// CompressToBase64 returns the same string that lz-string 1.5.0's
// LZString.compressToBase64 returns for s (seen by JavaScript as UTF-16), so
// its output can be fed to any lz-string decompressor, including
// DecompressFromBase64. The result is always a non-empty multiple of four
// characters from the lz-string base64 alphabet ("=" padded).
//
// s should be valid UTF-8; each byte of an invalid UTF-8 sequence is
// compressed as U+FFFD, as a Go range loop would decode it. It never fails.
func CompressToBase64(s string) string {
	units := make([]uint16, 0, len(s))
	for _, r := range s {
		units = utf16.AppendRune(units, r)
	}
	vals := compress(units, 6)
	var b strings.Builder
	b.Grow(len(vals) + 3)
	for _, v := range vals {
		b.WriteByte(keyStrBase64[v])
	}
	// Same padding rule as lz-string: round the length up to a multiple of 4.
	for i := len(vals); i%4 != 0; i++ {
		b.WriteByte('=')
	}
	return b.String()
}

// DecompressFromBase64 decompresses input produced by lz-string's
// compressToBase64 (or by CompressToBase64) and returns the text as a UTF-8
// string whose length is at most maxOutput bytes; a negative maxOutput is
// treated as zero, and limits above math.MaxInt32 are lowered to it.
//
// input must consist of characters from "A–Z a–z 0–9 + /", optionally
// followed by up to three "=" padding characters. Unlike lz-string, which
// ignores anything after the end-of-stream marker, it requires the bits
// after the marker to be zero (any number of trailing "A"s is accepted), as
// lz-string's compressor writes them.
//
// It returns ErrInvalid (wrapped) for malformed input, including an empty
// input (for which lz-string returns null) and a stream that decompresses to
// unpaired UTF-16 surrogates, and ErrTooLarge (wrapped) when the output would
// exceed maxOutput bytes. Work and memory are linear in len(input) plus
// maxOutput; it does not panic on any input.
func DecompressFromBase64(input string, maxOutput int) (string, error) {
	if input == "" {
		return "", fmt.Errorf("%w: empty input", ErrInvalid)
	}
	data := strings.TrimRight(input, "=")
	if len(input)-len(data) > 3 {
		return "", fmt.Errorf("%w: more than three padding characters", ErrInvalid)
	}
	vals := make([]byte, len(data))
	for i := 0; i < len(data); i++ {
		v := base64Value[data[i]]
		if v == 0xff {
			return "", fmt.Errorf("%w: invalid character %q at offset %d", ErrInvalid, data[i], i)
		}
		vals[i] = v
	}
	units, size, err := decompress(vals, 6, maxOutput)
	if err != nil {
		return "", err
	}
	return utf16ToString(units, size)
}

// utf16ToString converts UTF-16 code units to UTF-8, rejecting unpaired
// surrogates instead of replacing them, because a payload carrying them was
// not produced from valid text. size is the expected UTF-8 length.
func utf16ToString(units []uint16, size int) (string, error) {
	var b strings.Builder
	b.Grow(size)
	for i := 0; i < len(units); i++ {
		u := units[i]
		switch {
		case u < 0x80:
			b.WriteByte(byte(u))
		case !utf16.IsSurrogate(rune(u)):
			b.WriteRune(rune(u))
		case u < 0xdc00 && i+1 < len(units) && units[i+1] >= 0xdc00 && units[i+1] <= 0xdfff:
			b.WriteRune(utf16.DecodeRune(rune(u), rune(units[i+1])))
			i++
		default:
			return "", fmt.Errorf("%w: unpaired UTF-16 surrogate %#04x at code unit %d", ErrInvalid, u, i)
		}
	}
	return b.String(), nil
}

// utf8Len is the number of UTF-8 bytes code unit u contributes to the
// output. A surrogate counts 2 so that a valid pair counts 4, the length of
// its UTF-8 encoding; lone surrogates are rejected later anyway.
func utf8Len(u uint16) int {
	switch {
	case u < 0x80:
		return 1
	case u < 0x800:
		return 2
	case u >= 0xd800 && u <= 0xdfff:
		return 2
	default:
		return 3
	}
}

// compress is lz-string's _compress over UTF-16 code units: it returns the
// output characters as integers of width bits each (6 for base64, 16 for
// LZString.compress), without any padding.
func compress(units []uint16, width uint) []uint16 {
	w := bitWriter{width: width, out: make([]uint16, 0, len(units)/2+4)}

	// lz-string keys its dictionaries by JavaScript strings; here single
	// characters map to their code and longer phrases are kept as a trie
	// keyed by (code of the prefix, next unit), which holds the same set.
	chars := make(map[uint16]int)
	pending := make(map[uint16]bool) // lz-string's context_dictionaryToCreate
	phrases := make(map[uint64]int)

	dictSize := 3
	numBits := uint(2)
	// lz-string starts at 2 to compensate for the first entry; int64 keeps
	// 1<<numBits exact even where int is 32 bits.
	enlargeIn := int64(2)

	decEnlarge := func() {
		enlargeIn--
		if enlargeIn == 0 {
			enlargeIn = 1 << numBits
			numBits++
		}
	}
	// A character's first occurrence is sent as a literal, which also
	// creates its dictionary entry on the decoding side.
	emitW := func(wCode int, wLen int, wFirst uint16) {
		if wLen == 1 && pending[wFirst] {
			if wFirst < 256 {
				w.write(codeChar8, numBits)
				w.write(int(wFirst), 8)
			} else {
				w.write(codeChar16, numBits)
				w.write(int(wFirst), 16)
			}
			decEnlarge()
			delete(pending, wFirst)
		} else {
			w.write(wCode, numBits)
		}
		decEnlarge()
	}

	wCode, wLen := 0, 0
	for i, c := range units {
		cCode, ok := chars[c]
		if !ok {
			cCode = dictSize
			dictSize++
			chars[c] = cCode
			pending[c] = true
		}
		if wLen == 0 {
			wCode, wLen = cCode, 1
			continue
		}
		key := uint64(wCode)<<16 | uint64(c)
		if code, ok := phrases[key]; ok {
			wCode = code
			wLen++
			continue
		}
		emitW(wCode, wLen, units[i-wLen])
		// In lz-string, assigning context_dictionary["__proto__"] on a plain
		// object is a no-op, so that phrase is never found although its code
		// is consumed; mirror it to stay byte-for-byte compatible.
		if wLen+1 != len(protoUnits) || !equalUnits(units[i-wLen:i+1], protoUnits) {
			phrases[key] = dictSize
		}
		dictSize++
		wCode, wLen = cCode, 1
	}
	if wLen > 0 {
		emitW(wCode, wLen, units[len(units)-wLen])
	}
	w.write(codeEnd, numBits)
	w.flush()
	return w.out
}

var protoUnits = utf16.Encode([]rune("__proto__"))

func equalUnits(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// bitWriter packs bits into output characters of width bits, first bit in
// the most significant position, as lz-string does.
type bitWriter struct {
	width uint
	val   uint32
	pos   uint
	out   []uint16
}

// write emits the low n bits of v, least significant bit first.
func (w *bitWriter) write(v int, n uint) {
	for i := uint(0); i < n; i++ {
		w.val = w.val<<1 | uint32(v&1)
		v >>= 1
		if w.pos == w.width-1 {
			w.out = append(w.out, uint16(w.val))
			w.val, w.pos = 0, 0
		} else {
			w.pos++
		}
	}
}

// flush pads the last character with zero bits. Like lz-string it emits a
// whole zero character when the previous one was just completed.
func (w *bitWriter) flush() {
	for {
		w.val <<= 1
		if w.pos == w.width-1 {
			w.out = append(w.out, uint16(w.val))
			return
		}
		w.pos++
	}
}

// bitReader reads the bit stream written by bitWriter. It buffers whole
// input characters in acc (most recent in the low bits) and hands out codes
// least significant bit first.
type bitReader[T uint8 | uint16] struct {
	vals  []T
	idx   int
	width uint
	acc   uint64
	nacc  uint
}

// read returns the next n-bit code (n <= 32); ok is false if the input ends
// first.
func (r *bitReader[T]) read(n uint) (v int, ok bool) {
	for r.nacc < n {
		if r.idx >= len(r.vals) {
			return 0, false
		}
		r.acc = r.acc<<r.width | uint64(r.vals[r.idx])
		r.idx++
		r.nacc += r.width
	}
	r.nacc -= n
	x := (r.acc >> r.nacc) & (1<<n - 1)
	// The stream's first bit is the code's least significant one.
	return int(bits.Reverse64(x) >> (64 - n)), true
}

// restZero reports whether every bit after the last one read is zero.
// lz-string ignores whatever follows the end-of-stream marker, but its
// compressor only ever writes zero bits there, so anything else means the
// input is not lz-string data (standard base64 of JSON, "eyJ...", would
// otherwise decode to "" because 'e' starts with the end marker).
func (r *bitReader[T]) restZero() bool {
	if r.acc&(1<<r.nacc-1) != 0 {
		return false
	}
	for _, v := range r.vals[r.idx:] {
		if v != 0 {
			return false
		}
	}
	return true
}

// span is a dictionary entry: every lz-string dictionary entry is a
// substring of the output produced so far, so it is stored as an offset and
// length instead of a copy, keeping memory linear in the output.
type span struct {
	start, n uint32
}

var (
	errTruncated  = fmt.Errorf("%w: input ends before the end-of-stream marker", ErrInvalid)
	errTrailing   = fmt.Errorf("%w: non-zero data after the end-of-stream marker", ErrInvalid)
	errFirstCode  = fmt.Errorf("%w: bad first code", ErrInvalid)
	errDictTooBig = fmt.Errorf("%w: dictionary too large", ErrTooLarge)
)

// maxNumBits bounds the code width. The output limit already bounds the
// dictionary to fewer than 2^33 entries; this keeps read within its 32-bit
// contract regardless.
const maxNumBits = 32

// decompress is lz-string's _decompress over input characters of width bits
// each. It returns the output as UTF-16 code units together with their UTF-8
// length, which is at most maxOutput.
func decompress[T uint8 | uint16](vals []T, width uint, maxOutput int) ([]uint16, int, error) {
	limit := min(max(maxOutput, 0), maxLimit)
	r := bitReader[T]{vals: vals, width: width}
	// Sized from the input so typical payloads need no regrowth, but never
	// beyond what the limit allows; large inputs grow by appending.
	out := make([]uint16, 0, min(limit, 3*len(vals), 1<<20))
	size := 0
	// emit appends out[s.start:s.start+s.n] (plus extra, if withExtra) to the
	// output after checking the limit, so an oversized entry is never
	// materialised.
	emit := func(s span, extra uint16, withExtra bool) error {
		add := 0
		for _, u := range out[s.start : s.start+s.n] {
			add += utf8Len(u)
		}
		if withExtra {
			add += utf8Len(extra)
		}
		if add > limit-size {
			return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
		}
		size += add
		out = append(out, out[s.start:s.start+s.n]...)
		if withExtra {
			out = append(out, extra)
		}
		return nil
	}
	literal := func(code int) (uint16, error) {
		n := uint(8)
		if code == codeChar16 {
			n = 16
		}
		v, ok := r.read(n)
		if !ok {
			return 0, errTruncated
		}
		return uint16(v), nil
	}

	first, ok := r.read(2)
	if !ok {
		return nil, 0, errTruncated
	}
	// The first code is always 2 bits wide and cannot refer to the
	// dictionary, which is still empty.
	switch first {
	case codeChar8, codeChar16:
	case codeEnd:
		if !r.restZero() {
			return nil, 0, errTrailing
		}
		return nil, 0, nil
	default:
		return nil, 0, errFirstCode
	}
	c0, err := literal(first)
	if err != nil {
		return nil, 0, err
	}
	if err := emit(span{}, c0, true); err != nil {
		return nil, 0, err
	}
	// dict[i] holds code i+3, the first code not reserved.
	dict := make([]span, 1, min(len(vals)*int(width)/8, 2*limit, 1<<16)+4)
	dict[0] = span{0, 1}
	w := span{0, 1}
	numBits := uint(3)
	enlargeIn := int64(4)
	decEnlarge := func() {
		enlargeIn--
		if enlargeIn == 0 {
			enlargeIn = 1 << numBits
			numBits++
		}
	}

	for {
		if numBits > maxNumBits {
			return nil, 0, errDictTooBig
		}
		code, ok := r.read(numBits)
		if !ok {
			return nil, 0, errTruncated
		}
		start := uint32(len(out))
		var entry span
		switch {
		case code == codeEnd:
			if !r.restZero() {
				return nil, 0, errTrailing
			}
			return out, size, nil
		case code == codeChar8 || code == codeChar16:
			lit, err := literal(code)
			if err != nil {
				return nil, 0, err
			}
			// The new literal entry is output right away, so it lives at
			// the current end of the output.
			dict = append(dict, span{start, 1})
			decEnlarge()
			if err := emit(span{}, lit, true); err != nil {
				return nil, 0, err
			}
			entry = span{start, 1}
		case code-3 < len(dict):
			entry = dict[code-3]
			if err := emit(entry, 0, false); err != nil {
				return nil, 0, err
			}
			entry = span{start, entry.n}
		case code-3 == len(dict):
			// The code being defined right now (the classic LZW KwKwK
			// case): its value is w followed by w's first unit.
			if err := emit(w, out[w.start], true); err != nil {
				return nil, 0, err
			}
			entry = span{start, w.n + 1}
		default:
			return nil, 0, fmt.Errorf("%w: reference to undefined dictionary entry %d", ErrInvalid, code)
		}
		// w + entry[0] is contiguous in the output because entry directly
		// follows w.
		dict = append(dict, span{w.start, w.n + 1})
		decEnlarge()
		w = entry
	}
}
