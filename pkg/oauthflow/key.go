package oauthflow

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// KeySize is the length of a [Key] in bytes.
const KeySize = 32

// Key is the 32-byte AES-256-GCM key that encrypts sessions at rest and seals login states.
//
// It formats as a fixed placeholder with every fmt verb, so that printing a configuration or an
// [StoreOptions] value never shows key material.
type Key [KeySize]byte

// String returns a placeholder, never the key.
func (Key) String() string { return "oauthflow.Key(redacted)" }

// Format writes the placeholder for every verb (%v, %x, %d, %#v, …).
func (k Key) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// isZero reports whether every byte of k is zero: a key that was never set.
func (k Key) isZero() bool { return k == Key{} }

// errKeyZero refuses a key of zeros, which is what an unset key looks like.
var errKeyZero = errors.New("session: key is all zeros")

// ParseKey reads a key written in one of the usual ways: 32 raw bytes, 64 hexadecimal
// characters, or the standard or URL-safe base64 of 32 bytes, with or without padding.
// Whitespace around the text (a file's trailing newline) is ignored. An input of exactly 32
// bytes is taken as raw bytes as it is, before trimming, since a random key may begin or end
// with a byte that looks like whitespace; after trimming, 32 bytes are raw too (no encoding of
// 32 bytes is 32 characters long). A key of all zeros is refused: it is what an unset key
// looks like.
//
// Errors never include the input, nor any part of it.
func ParseKey(s string) (Key, error) {
	var k Key
	if len(s) == KeySize {
		copy(k[:], s)
		return checkKey(k)
	}
	t := strings.TrimSpace(s)
	if len(t) == 2*KeySize {
		b, err := hex.DecodeString(t)
		if err != nil {
			// Not hex: 64 characters can also be base64, of 48 bytes, which is refused below.
			if b, ok := decodeBase64(t); ok {
				return Key{}, fmt.Errorf("session: key is base64 of %d bytes, want %d", len(b), KeySize)
			}
			return Key{}, errors.New("session: key of 64 characters is not hexadecimal")
		}
		copy(k[:], b)
		return checkKey(k)
	}
	if len(t) == KeySize {
		// Raw bytes with whitespace around them. No encoding of 32 bytes is 32 characters long
		// (hex takes 64, base64 43 or 44), so this cannot shadow one.
		copy(k[:], t)
		return checkKey(k)
	}
	if b, ok := decodeBase64(t); ok {
		if len(b) != KeySize {
			return Key{}, fmt.Errorf("session: key is base64 of %d bytes, want %d", len(b), KeySize)
		}
		copy(k[:], b)
		return checkKey(k)
	}
	return Key{}, errors.New("session: key must be 32 raw bytes, 64 hexadecimal characters " +
		"or the base64 of 32 bytes")
}

// decodeBase64 decodes s in the first of the four base64 variants that accepts it.
func decodeBase64(s string) ([]byte, bool) {
	if s == "" {
		return nil, false
	}
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		if b, err := enc.Strict().DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

func checkKey(k Key) (Key, error) {
	if k.isZero() {
		return Key{}, errKeyZero
	}
	return k, nil
}

// IDBytes is how many random bytes [NewID] draws: 256 bits.
const IDBytes = 32

// MinIDLen is the shortest id or state [Store] accepts, in characters: 22 characters of
// base64url carry 128 bits, the least a session id or a state may have. [NewID] returns 43.
// Put, SealState and MarkStateUsed refuse a shorter one (a caller that made its own, weak
// identifiers); Get, StateUsed and Delete treat it as absent, and OpenState as corrupt, without
// a Redis call, so that a forged short cookie costs nothing.
const MinIDLen = 22

// NewID returns a new random identifier of 256 bits from crypto/rand, as unpadded base64url
// (43 characters): for session ids, OAuth state values and lock tokens.
func NewID() (string, error) {
	var b [IDBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("session: random id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
