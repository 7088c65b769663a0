// Package verdict is the cached result of verifying a token: what
// verification concluded about one token for one resource (Verdict), its
// binary encoding for the shared cache (Codec), and the in-process compact
// tier that holds a million valid ones outside the Go heap (CompactTier),
// with the grant table both intern through (Grants). NewCache assembles
// them into the verdict cache, the same for the service and its tests.
//
// It holds and encodes verdicts; it does not reach them. Verifying tokens is
// package token's, deciding requests package authz's, and the tiers' general
// machinery (keys, the tiered store, Redis) package cache's.
package verdict

import (
	"errors"

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
