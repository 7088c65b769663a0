package dpop

import (
	"strings"
	"sync"
)

// Every proof a client makes with one key carries the same protected
// header (typ, alg, jwk), byte for byte: reading it — strict JSON, the
// jwk's checks, the point on the curve, the thumbprint — gives the same
// answer each time. So the answer is kept, keyed by the header's exact
// base64url segment, and only the claims and the signature are read per
// proof.
//
// The key is the segment's whole text, compared in full: a header that
// differs by one byte (another jwk, another alg, another kid, another
// spacing) is another entry, read afresh. Reading a header depends on
// nothing but its text and the Verifier's accepted algorithms, so a kept
// answer is the answer reading would give. Only the header of a proof
// that was accepted is kept: not one that fails to parse (a refusal is not
// remembered, it is found again), nor one whose proof fails any later
// check — its signature, the token's binding, the nonce, the replay
// store — so that each entry costs whoever fills the cache a signature,
// by the key their access token is bound to when the engine gives
// Proof.JKT.

// DefaultHeaderCacheEntries is the bound of a Verifier's header cache when
// Options.HeaderCacheEntries is 0: the 4096 latest keys (or header
// spellings) seen, which hold about 3 MiB when they are P-256 keys, 5 MiB
// for 2048-bit RSA keys, and 14 MiB at worst, every entry an 8192-bit RSA
// key (measured: 810, 1256 and 3593 bytes an entry, segment included).
const DefaultHeaderCacheEntries = 4096

// cachedHeader is what a proof's protected header says, read and checked:
// the algorithm, the public key ready to verify with, and its RFC 7638
// thumbprint. Never modified once in the cache.
type cachedHeader struct {
	alg *algorithm
	key jwk // the parsed key only: ec, ed or rsa, and kty
	jkt string
}

// headerCache holds at most limit headers, by segment. Lookups take no lock
// (sync.Map); adding one takes mu, and when the cache is full first drops
// the oldest entry (first in, first out): a client whose entry was pushed
// out by others pays one read of its header on its next proof.
//
// An attacker can send any number of distinct headers. Only those of
// accepted proofs are added, each a signature the attacker made; they can
// push every other client's entry out, which costs those clients what
// this cache saves and nothing more: the bound holds, and an entry is
// only ever found by its exact segment.
type headerCache struct {
	m sync.Map // segment (string) → *cachedHeader

	mu    sync.Mutex
	ring  []string // the segments in m, oldest at head
	head  int      // when len(ring) == limit, the oldest, next to go
	limit int
}

func newHeaderCache(limit int) *headerCache {
	return &headerCache{limit: limit, ring: make([]string, 0, min(limit, 1024))}
}

// get returns the header kept for segment h64, if any.
func (c *headerCache) get(h64 string) (*cachedHeader, bool) {
	v, ok := c.m.Load(h64)
	if !ok {
		return nil, false
	}
	return v.(*cachedHeader), true //nolint:forcetypeassert // only add stores, and only *cachedHeader
}

// add keeps h for segment h64, which the caller has read into h, of a
// proof it accepted. The segment is copied: the proof it
// is part of is not kept.
func (c *headerCache) add(h64 string, h *cachedHeader) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m.Load(h64); ok {
		return // added meanwhile by another proof of the same key
	}
	key := strings.Clone(h64) // not a slice of the whole proof
	if len(c.ring) < c.limit {
		c.ring = append(c.ring, key)
	} else {
		c.m.Delete(c.ring[c.head])
		c.ring[c.head] = key
		c.head = (c.head + 1) % c.limit
	}
	c.m.Store(key, h)
}

// size is the number of headers kept.
func (c *headerCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ring)
}
