// Package cache holds key/value stores with a per-entry TTL, used to remember the result of
// verifying an access token so that a repeated token costs one lookup instead of a signature
// check or an introspection call.
//
// It is a leaf: it imports nothing of this project, treats a token as an opaque string to hash,
// knows nothing of claims, and stores whatever value type its caller chooses. Deciding what to
// cache and for how long (for example min(exp − now, cap)) is the caller's job. Every
// implementation of [Store] must pass the shared conformance suite in package cachetest, so that
// a caller can swap the in-process store for a remote or tiered one without changing behaviour.
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// Store is a key/value store with per-entry TTL. Implementations are safe for concurrent use.
//
// Keys are opaque strings; build token keys with [TokenKey] so that every store, in-process or
// shared, agrees on them.
//
// A value passes to the store on Set and is shared with every reader afterwards: an in-process
// store hands out the value it was given, without copying. So the caller must not modify a value
// after passing it to Set, nor modify a value returned by Get (for a []byte or a pointer type,
// copy it first). A store never modifies a value it has returned, so holding one is safe.
type Store[V any] interface {
	// Get returns the value and true, or the zero value and false when absent or expired.
	// An error means the store could not answer (the caller treats it as a miss).
	Get(ctx context.Context, key string) (V, bool, error)
	// Set stores v for ttl; ttl <= 0 stores nothing (and removes any existing entry).
	// Setting an existing key replaces both its value and its TTL.
	Set(ctx context.Context, key string, v V, ttl time.Duration) error
	// Delete removes key. Deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error
}

// tokenKeyPrefix versions the key layout, so that a change of layout or of the cached value's
// encoding can move to "v2" without reading entries written by an older replica.
const tokenKeyPrefix = "extauthz:v1:"

// hashChunk is the size of the stack buffer TokenKey copies the token through. sha256.Sum256
// takes a []byte, and converting a string longer than 32 bytes (every JWT) to []byte allocates;
// copying through a fixed array keeps TokenKey at its one allocation, the returned string.
const hashChunk = 256

// TokenKey is the cache key of a token for a namespace (the protected resource's name):
// "extauthz:v1:" + namespace + ":" + lower-hex SHA-256 of the token.
//
// The token itself is never stored: a dump of the cache, or of a shared Redis, yields no
// credential. The namespace keeps a token verified for one resource from being a hit for another,
// whose audience or issuer rules may differ.
func TokenKey(namespace, token string) string {
	h := sha256.New()
	var chunk [hashChunk]byte
	for len(token) > 0 {
		n := copy(chunk[:], token)
		h.Write(chunk[:n]) // hash.Hash.Write never returns an error.
		token = token[n:]
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	var hexSum [2 * sha256.Size]byte
	hex.Encode(hexSum[:], sum[:])

	var b strings.Builder
	b.Grow(len(tokenKeyPrefix) + len(namespace) + 1 + len(hexSum))
	b.WriteString(tokenKeyPrefix)
	b.WriteString(namespace)
	b.WriteByte(':')
	b.Write(hexSum[:])
	return b.String()
}

// KeyForHash is TokenKey for a token known only by its lower-hex SHA-256
// (as an operator revoking it from a log line would know it).
func KeyForHash(namespace, hexSHA256 string) string {
	return tokenKeyPrefix + namespace + ":" + hexSHA256
}
