package capture

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/capture/lzstring"
)

// transport is what a request carries around its JSON payload.
type transport struct {
	compression string // normalised: "", "gzip", "lz64" or "base64"
	sentAtMS    string // the "_" query parameter, epoch milliseconds
	beacon      bool
	skipIP      bool
}

func invalid(reason, format string, args ...any) *bugreport.Error {
	return bugreport.Errorf(bugreport.EINVALID, reason, format, args...)
}

func normaliseCompression(v string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "none":
		return "", nil
	case "gzip", "gzip-js":
		return "gzip", nil
	case "lz64", "lz-string":
		return "lz64", nil
	case "base64":
		return "base64", nil
	}
	return "", invalid("unsupported_compression", "compression %q is not supported; use gzip-js, lz64, base64 or none", truncate(v, 32))
}

// readPayload extracts the JSON payload of a capture request from the query,
// a form field or the body, undoing any transport encoding. maxBody bounds
// the raw body; the decoded payload is bounded by limits.MaxDecompressedBytes.
func readPayload(r *http.Request, maxBody int64, limits Limits) ([]byte, transport, error) {
	q := r.URL.Query()
	var t transport
	var err error
	if t.compression, err = normaliseCompression(q.Get("compression")); err != nil {
		return nil, t, err
	}
	t.sentAtMS = q.Get("_")
	t.beacon = q.Get("beacon") == "1"
	t.skipIP = q.Get("ip") == "0"

	body, err := readBody(r.Body, maxBody, r.ContentLength)
	if err != nil {
		return nil, t, err
	}

	ct := r.Header.Get("Content-Type")
	mediaType := ""
	if ct != "" {
		mediaType, _, err = mime.ParseMediaType(ct)
		if err != nil {
			return nil, t, bugreport.Errorf(bugreport.EINVALID, "invalid_content_type", "Content-Type %q cannot be parsed", truncate(ct, 64))
		}
	}
	switch {
	case len(body) == 0:
		data := q.Get("data")
		if data == "" {
			return nil, t, invalid("empty_payload", "the request has no body and no data parameter")
		}
		// Query values are URL-decoded already; a '+' in base64 may have
		// become a space on the way.
		payload, err := decodeData(data, t.compression, limits)
		return payload, t, err
	case mediaType == "application/x-www-form-urlencoded" && !looksLikeJSON(body):
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, t, invalid("invalid_form", "the form body cannot be parsed")
		}
		if c := form.Get("compression"); c != "" {
			if t.compression, err = normaliseCompression(c); err != nil {
				return nil, t, err
			}
		}
		data := form.Get("data")
		if data == "" {
			return nil, t, invalid("empty_payload", "the form has no data field")
		}
		payload, err := decodeData(data, t.compression, limits)
		return payload, t, err
	case strings.HasPrefix(mediaType, "multipart/"):
		return nil, t, bugreport.Errorf(bugreport.EINVALID, "unsupported_content_type", "multipart bodies are not accepted; send JSON, form data=, gzip or lz64")
	case mediaType != "" && mediaType != "application/x-www-form-urlencoded" && !acceptedBodyType(mediaType):
		return nil, t, bugreport.Errorf(bugreport.EINVALID, "unsupported_content_type", "Content-Type %q is not accepted", truncate(mediaType, 64))
	}
	payload, err := decodeBody(body, t.compression, limits)
	return payload, t, err
}

func acceptedBodyType(mediaType string) bool {
	switch mediaType {
	case "application/json", "text/plain", "application/octet-stream", "application/x-gzip", "application/gzip", "application/javascript":
		return true
	}
	return false
}

func readBody(body io.Reader, max, sizeHint int64) ([]byte, error) {
	if body == nil {
		return nil, nil
	}
	// A declared length sizes the buffer at once (io.ReadAll would grow it
	// from 512 bytes, copying each time); the limit still applies to what
	// is read, whatever the header says.
	var buf []byte
	if sizeHint > 0 && sizeHint <= max {
		buf = make([]byte, 0, sizeHint+1)
	}
	buf, err := readAllInto(buf, io.LimitReader(body, max+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, bugreport.Errorf(bugreport.ETOOLARGE, "payload_too_large", "the body is larger than %d bytes", max)
		}
		return nil, invalid("body_read_failed", "the body could not be read completely")
	}
	if int64(len(buf)) > max {
		return nil, bugreport.Errorf(bugreport.ETOOLARGE, "payload_too_large", "the body is larger than %d bytes", max)
	}
	return buf, nil
}

// readAllInto is io.ReadAll appending to buf.
func readAllInto(buf []byte, r io.Reader) ([]byte, error) {
	if buf == nil {
		return io.ReadAll(r)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

var gzipMagic = []byte{0x1f, 0x8b}

// decodeBody undoes the body's encoding. Gzip is recognised by its magic
// bytes whatever the compression hint says, because some clients compress
// without saying so and proxies rewrite query strings.
func decodeBody(body []byte, compression string, limits Limits) ([]byte, error) {
	if bytes.HasPrefix(body, gzipMagic) {
		return gunzip(body, limits.MaxDecompressedBytes)
	}
	switch compression {
	case "gzip":
		return nil, invalid("invalid_gzip", "compression is gzip-js but the body is not gzip data")
	case "lz64":
		return lz64(string(body), limits)
	}
	if looksLikeJSON(body) {
		return body, nil
	}
	return decodeBase64(string(body), limits)
}

// decodeData decodes the data form or query field.
func decodeData(data, compression string, limits Limits) ([]byte, error) {
	// Form encoding turns '+' into ' '; base64 and lz64 have no spaces.
	data = strings.ReplaceAll(data, " ", "+")
	switch compression {
	case "lz64":
		return lz64(data, limits)
	case "gzip":
		raw, err := decodeBase64(data, limits)
		if err != nil {
			return nil, err
		}
		return gunzip(raw, limits.MaxDecompressedBytes)
	}
	if looksLikeJSON([]byte(data)) {
		return []byte(data), nil
	}
	raw, err := decodeBase64(data, limits)
	if err != nil {
		return nil, err
	}
	if bytes.HasPrefix(raw, gzipMagic) {
		return gunzip(raw, limits.MaxDecompressedBytes)
	}
	return raw, nil
}

func looksLikeJSON(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{', '[':
			return true
		}
		return false
	}
	return false
}

func decodeBase64(s string, limits Limits) ([]byte, error) {
	s = strings.TrimSpace(s)
	if int64(base64.StdEncoding.DecodedLen(len(s))) > limits.MaxDecompressedBytes {
		return nil, bugreport.Errorf(bugreport.ETOOLARGE, "payload_too_large", "the decoded payload is larger than %d bytes", limits.MaxDecompressedBytes)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if out, err := enc.DecodeString(s); err == nil {
			if !looksLikeJSON(out) && !bytes.HasPrefix(out, gzipMagic) {
				return nil, invalid("invalid_payload", "the payload is neither JSON nor base64-encoded JSON")
			}
			return out, nil
		}
	}
	return nil, invalid("invalid_payload", "the payload is neither JSON nor valid base64")
}

func gunzip(b []byte, max int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, invalid("invalid_gzip", "the gzip header is invalid")
	}
	out, err := io.ReadAll(io.LimitReader(zr, max+1))
	if err != nil {
		return nil, invalid("invalid_gzip", "the gzip data is truncated or corrupt")
	}
	if int64(len(out)) > max {
		return nil, bugreport.Errorf(bugreport.ETOOLARGE, "payload_too_large", "the decompressed payload is larger than %d bytes", max)
	}
	return out, nil
}

func lz64(s string, limits Limits) ([]byte, error) {
	out, err := lzstring.DecompressFromBase64(strings.TrimSpace(s), int(limits.MaxDecompressedBytes))
	switch {
	case errors.Is(err, lzstring.ErrTooLarge):
		return nil, bugreport.Errorf(bugreport.ETOOLARGE, "payload_too_large", "the decompressed payload is larger than %d bytes", limits.MaxDecompressedBytes)
	case err != nil:
		return nil, invalid("invalid_lz64", "the lz64 payload is corrupt")
	case out == "":
		return nil, invalid("invalid_lz64", "the lz64 payload decompresses to nothing")
	}
	return []byte(out), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
