package mcp

import (
	"encoding/base64"
	"strings"
	"unicode/utf8"
)

const (
	sentinelPrefix = "=?base64?"
	sentinelSuffix = "?="
)

// b64 is standard base64 with padding. Strict: the padding bits must be zero,
// so every name has exactly one encoded form.
var b64 = base64.StdEncoding.Strict()

// DecodeName decodes an Mcp-Name header value (the base64 sentinel form or
// plain).
//
// The value is first checked like every MCP header value (see the package
// documentation): at most [MaxHeaderBytes] long, trimmed of surrounding
// spaces and tabs, not empty, no control character other than tab, no DEL,
// no non-ASCII byte.
//
// A value that starts with "=?base64?" is the sentinel form: it must end with
// "?=" and what lies between must be standard, padded base64 of a non-empty
// valid UTF-8 string, which is returned. The markers are case-sensitive, as
// in the specification, but a value that starts with a case variant of
// "=?base64?" (such as "=?BASE64?") is refused rather than taken as plain,
// since a lenient server might decode it. So a value that starts with the
// prefix but lacks the closing "?=" is an error, not a plain name: a client
// must encode any name that looks like the sentinel, and accepting it as
// plain would give it two readings. Everything else is a plain name, returned
// as it is.
//
// In either form the name must be a valid name (see the package
// documentation): a tab inside a plain value, or a control character in a
// decoded one, is an error.
func DecodeName(v string) (string, error) {
	v, err := headerValue(v)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(v, sentinelPrefix) {
		if len(v) >= len(sentinelPrefix) && strings.EqualFold(v[:len(sentinelPrefix)], sentinelPrefix) {
			return "", detail(ErrBadHeader, "Mcp-Name looks like a miscased base64 sentinel")
		}
		if !validName(v) {
			return "", detail(ErrBadHeader, "Mcp-Name holds a control character")
		}
		return v, nil
	}
	if len(v) < len(sentinelPrefix)+len(sentinelSuffix) || !strings.HasSuffix(v, sentinelSuffix) {
		return "", detail(ErrBadHeader, "Mcp-Name base64 sentinel is not terminated")
	}
	dec, err := b64.DecodeString(v[len(sentinelPrefix) : len(v)-len(sentinelSuffix)])
	if err != nil {
		return "", detail(ErrBadHeader, "Mcp-Name base64 sentinel is not valid base64")
	}
	if len(dec) == 0 {
		return "", detail(ErrBadHeader, "Mcp-Name is empty")
	}
	if !utf8.Valid(dec) {
		return "", detail(ErrBadHeader, "Mcp-Name base64 sentinel is not UTF-8")
	}
	if !validName(dec) {
		return "", detail(ErrBadHeader, "Mcp-Name holds a control character")
	}
	return string(dec), nil
}

// validName reports whether a decoded name is valid UTF-8 without C0
// controls (tab included), DEL or C1 controls (U+0080-U+009F). Such
// characters have no place in a tool, prompt or resource name, and a name
// holding them could be displayed, logged or compared differently by the
// gateway, the server and the people reading the audit log.
func validName[T string | []byte](s T) bool {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return false
			}
			i++
			continue
		}
		// At most 4 bytes: the conversion stays on the stack.
		r, n := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if (r == utf8.RuneError && n <= 1) || (r >= 0x80 && r <= 0x9f) {
			return false
		}
		i += n
	}
	return true
}

// headerValue applies the checks common to Mcp-Method and Mcp-Name and
// returns the value without surrounding spaces and tabs.
func headerValue(v string) (string, error) {
	if len(v) > MaxHeaderBytes {
		return "", detail(ErrBadHeader, "value too long")
	}
	v = strings.Trim(v, " \t")
	if v == "" {
		return "", detail(ErrBadHeader, "empty value")
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c >= 0x7f {
			return "", detail(ErrBadHeader, "control or non-ASCII byte in value")
		}
	}
	return v, nil
}
