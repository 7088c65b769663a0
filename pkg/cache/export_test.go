package cache

import (
	"crypto/sha256"
	"time"
)

// ClockStart is where the tests' clocks (testkit.NewClockAt) start, internal and external: a
// fixed instant, so that failures reproduce. It lives in a _test file so that no build of the
// package carries it.
var ClockStart = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// What the package's own tests, and those of package cache_test, use to
// key a token: production keys a token by token.CacheHash of its canonical
// spelling (pkg/authz), which this package, a leaf, cannot import.

// hashChunk is the size of the stack buffer KeyOf copies the token through:
// converting a string longer than 32 bytes to []byte would allocate.
const hashChunk = 256

// KeyOf is the key of a token in a namespace. It does not allocate.
func KeyOf(namespace, token string) Key {
	h := sha256.New()
	var chunk [hashChunk]byte
	for len(token) > 0 {
		n := copy(chunk[:], token)
		h.Write(chunk[:n]) // hash.Hash.Write never returns an error.
		token = token[n:]
	}
	k := Key{Namespace: namespace}
	h.Sum(k.Hash[:0])
	return k
}

// TokenKey is KeyOf(namespace, token).String().
func TokenKey(namespace, token string) string { return KeyOf(namespace, token).String() }

// Complete reports whether every replica that got the message confirmed.
// The invalidating replica follows the channel itself, so a message that
// reached nobody proves nothing: it is not complete.
func (i Invalidation) Complete() bool { return i.Replicas > 0 && i.Acknowledged >= i.Replicas }
