// Package cache holds key/value stores with a per-entry TTL, used to remember the result of
// verifying an access token so that a repeated token costs one lookup instead of a signature
// check or an introspection call.
//
// It is a leaf: it imports nothing of this project, knows a token only by the SHA-256 its caller
// computed, knows nothing of claims, and stores whatever value type its caller chooses. Deciding what to
// cache and for how long (for example min(exp − now, cap)) is the caller's job. Every
// implementation of [Store] must pass the shared conformance suite in package cachetest, so that
// a caller can swap the in-process store for a remote or tiered one without changing behaviour.
//
// The package is about 2,500 lines because the Redis tier carries its client options, circuit
// breaker, batched reads and writes and invalidation protocol, and the tiered store its queue
// of shared writes, whose ordering against revocations is what keeps them correct.
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"time"
)

// Store is a key/value store with per-entry TTL. Implementations are safe for concurrent use.
//
// Keys are opaque strings; a token's is [Key.String], so that every store, in-process or shared,
// agrees on it.
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
const tokenKeyPrefix = "extauthz:v1:" //nolint:gosec // a key prefix, not a credential

// Key identifies a token's cache entry: the namespace (the protected resource's name) and the
// SHA-256 of the token. The token itself is never stored: a dump of the cache, or of a shared
// Redis, yields no credential. The namespace keeps a token verified for one resource from being a
// hit for another, whose audience or issuer rules may differ.
//
// In process the key is this fixed-size value (a map key with no allocation, 32 bytes of hash
// rather than 64 of hex); the shared tier names it by String.
type Key struct {
	Namespace string
	Hash      [sha256.Size]byte
}

// String is the key's name in the shared tier:
// "extauthz:v1:" + namespace + ":" + lower-hex SHA-256 of the token.
func (k Key) String() string {
	var hexSum [2 * sha256.Size]byte
	hex.Encode(hexSum[:], k.Hash[:])
	var b strings.Builder
	b.Grow(len(tokenKeyPrefix) + len(k.Namespace) + 1 + len(hexSum))
	b.WriteString(tokenKeyPrefix)
	b.WriteString(k.Namespace)
	b.WriteByte(':')
	b.Write(hexSum[:])
	return b.String()
}

// KeyForHash is the key of a token known only by its lower-hex SHA-256 (as an operator revoking
// it from a log line would know it).
func KeyForHash(namespace, hexSHA256 string) (Key, error) {
	k := Key{Namespace: namespace}
	if len(hexSHA256) != 2*sha256.Size || strings.ToLower(hexSHA256) != hexSHA256 {
		return Key{}, errors.New("cache: a token hash is 64 lower-case hex digits")
	}
	if _, err := hex.Decode(k.Hash[:], []byte(hexSHA256)); err != nil {
		return Key{}, errors.New("cache: a token hash is 64 lower-case hex digits")
	}
	return k, nil
}

// ParseKey reads back a Key from its String form.
func ParseKey(s string) (Key, bool) {
	rest, ok := strings.CutPrefix(s, tokenKeyPrefix)
	if !ok || len(rest) < 2*sha256.Size+2 {
		return Key{}, false
	}
	ns, h := rest[:len(rest)-2*sha256.Size-1], rest[len(rest)-2*sha256.Size:]
	if rest[len(ns)] != ':' || ns == "" {
		return Key{}, false
	}
	k, err := KeyForHash(ns, h)
	return k, err == nil
}
