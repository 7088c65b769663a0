package authz

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/token"
	"github.com/extauthz/extauthz/pkg/verdict"
)

// Revocation names a token to revoke: the token itself, or the hex
// SHA-256 of its canonical spelling (token.CacheHash: what the cache knows
// it by), on one resource or all.
type Revocation struct {
	Token       string
	TokenSHA256 string
	Resource    string // "" for every resource
}

// RevokeResult says what a revocation did.
type RevokeResult struct {
	Resources []string // the resources it applies to
	// Replicas that were told to drop the token from their in-process
	// tier, and how many confirmed. Acknowledged equal to a non-zero
	// Replicas means no replica will allow the token again without seeing
	// the revocation.
	Replicas, Acknowledged int64
	// Shared reports whether the revocation reached the shared cache: if
	// not, it holds on this replica only.
	Shared bool
	Until  time.Time
	// TokenSHA256 is the hex SHA-256 of the token's canonical spelling,
	// by which it was revoked (and can be revoked again).
	TokenSHA256 string
}

// Revoke makes a token invalid until it expires — verifying it again does
// not bring it back, which matters for a JWT whose signature stays good. It
// writes a revoked verdict for the token into every tier, replacing any
// verdict held, then has every replica drop its in-process copy, so their
// next lookup finds the revocation in the shared tier.
func (e *Engine) Revoke(ctx context.Context, rv Revocation) (RevokeResult, error) {
	if e.opts.Cache == nil {
		return RevokeResult{}, errors.New("revocation needs the cache, which is disabled")
	}
	hash := rv.TokenSHA256
	ttl := e.opts.RevokedTTL
	switch {
	case rv.Token != "" && hash != "":
		return RevokeResult{}, errors.New("give the token or its SHA-256, not both")
	case rv.Token != "":
		// Every spelling of the token has this hash: revoking one
		// revokes them all.
		sum := token.CacheHash(rv.Token)
		hash = hex.EncodeToString(sum[:])
		// The token's own exp bounds how long it needs revoking; it is
		// read unverified, which is fine: a forged exp only shortens the
		// revocation of a token that does not verify anyway.
		if exp, ok := token.UnverifiedExpiry(rv.Token); ok {
			ttl = max(exp.Add(e.opts.Leeway).Sub(e.opts.Now()), time.Minute)
		}
	case len(hash) != 64 || !isLowerHex(hash):
		return RevokeResult{}, errors.New("token_sha256 must be 64 lower-case hex digits")
	}
	p := e.policy.Load()
	var targets []*resource
	if rv.Resource != "" {
		r, ok := p.byName[rv.Resource]
		if !ok {
			return RevokeResult{}, fmt.Errorf("unknown resource %q", rv.Resource)
		}
		targets = []*resource{r}
	} else {
		targets = p.resources
	}
	res := RevokeResult{Shared: true, Until: e.opts.Now().Add(ttl), TokenSHA256: hash}
	for _, r := range targets {
		key, err := cache.KeyForHash(r.ns, hash)
		if err != nil {
			return RevokeResult{}, err
		}
		// Every replica stores the revocation in its own tier too: it
		// holds there even if the shared cache goes down or loses it.
		inv, err := e.opts.Cache.Replace(ctx, key, verdict.Verdict{Err: verdict.ErrRevoked}, ttl)
		if err != nil {
			res.Shared = false
			if !errors.Is(err, cache.ErrNoSharedTier) {
				e.opts.Logger.Warn("revocation not stored in the shared cache", "resource", r.name, "err", err)
			}
		}
		if r.mintsUpstream && e.opts.Upstream != nil {
			// What was minted on the token's behalf goes with it. The
			// revoked verdict already refuses every request before the
			// minted token is looked at; this keeps none of it around.
			e.opts.Upstream.Forget(ctx, r.name, key.Hash)
		}
		res.Resources = append(res.Resources, r.name)
		// Every key goes to the same replicas; report the weakest.
		if len(res.Resources) == 1 || inv.Acknowledged < res.Acknowledged {
			res.Replicas, res.Acknowledged = inv.Replicas, inv.Acknowledged
		}
	}
	return res, nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
