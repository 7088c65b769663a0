// Package verdict is the cached result of verifying a token: what
// verification concluded about one token for one resource (Verdict), its
// binary encoding for the shared cache (Codec), and the in-process compact
// tier that holds a million valid ones outside the Go heap (CompactTier),
// with the grant table both intern through (Grants).
//
// It holds and encodes verdicts; it does not reach them. Verifying tokens is
// package token's, deciding requests package authz's, and the tiers' general
// machinery (keys, the tiered store, Redis) package cache's.
package verdict

import (
	"errors"
	"time"

	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/token"
)

// Verdict is what verification concluded about one token for one resource:
// its claims, or the definitive reason it is invalid. Verdicts are what the
// cache holds — never the token.
type Verdict struct {
	Claims *token.Claims
	Err    error
}

// Failures a verdict carries beyond the token package's own: they are
// decided with the resource, and cached with the rest (see Codec).
var (
	// ErrWrongAudience means the token's audience lacks the resource.
	ErrWrongAudience = errors.New("token audience does not include this resource")
	// ErrRevoked means an operator revoked the token through the admin API.
	ErrRevoked = errors.New("token revoked")
)

// Verdict kinds, which also pick the in-process tier that holds a verdict
// (see Place): valid tokens, invalid tokens, revoked tokens. Each tier is
// bounded on its own, so a flood of garbage tokens can evict neither the
// valid entries nor the revocations.
const (
	KindValid = iota
	KindInvalid
	KindRevoked
)

// Place returns a verdict's kind: the index of the in-process tier that
// holds it (cache.TieredOptions.Place).
func Place(v Verdict) int {
	switch {
	case v.Err == nil:
		return KindValid
	case errors.Is(v.Err, ErrRevoked):
		return KindRevoked
	}
	return KindInvalid
}

// LocalCache is an in-process-only verdict cache with every tier bounded
// at maxEntries, valid tokens in a CompactTier: for tests, benchmarks and
// embedding. The service builds its own from the configuration.
func LocalCache(maxEntries int, now func() time.Time) *cache.Tiered[Verdict] {
	local := make([]cache.LocalTier[Verdict], 3)
	local[KindValid] = NewCompactTier(maxEntries, nil, now, nil)
	local[KindInvalid] = cache.NewMemory[cache.Key, Verdict](cache.MemoryOptions{MaxEntries: maxEntries, Now: now})
	local[KindRevoked] = cache.NewMemory[cache.Key, Verdict](cache.MemoryOptions{MaxEntries: maxEntries, Now: now})
	t, err := cache.NewTiered(cache.TieredOptions[Verdict]{Local: local, Place: Place, Sticky: []int{KindRevoked}, Now: now})
	if err != nil {
		panic(err) // unreachable: the options above are complete
	}
	return t
}
