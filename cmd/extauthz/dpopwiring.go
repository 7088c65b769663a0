package main

import (
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/dpop"
)

// newDPoPParts builds what the resources' DPoP checks share: the store of
// proofs seen (in process, then Redis when there is one, so that a proof
// replayed to another replica is caught) and, when a nonce key is
// configured, the server nonces (RFC 9449 §9).
func newDPoPParts(cfg *config.Config, rc redis.UniversalClient, now func() time.Time) (dpop.ReplayStore, *dpop.Nonces, error) {
	local := dpop.NewMemoryReplay(cfg.DPoP.ReplayEntries, now)
	var replay dpop.ReplayStore = local
	if rc != nil {
		replay = dpop.NewRedisReplay(rc, local)
	}
	if cfg.DPoP.NonceKey.IsZero() {
		return replay, nil, nil
	}
	key, err := cfg.DPoP.NonceKey.Resolve()
	if err != nil {
		return nil, nil, fmt.Errorf("dpop.nonce_key: %w", err)
	}
	nonces, err := dpop.NewNonces([]byte(key), cfg.DPoP.NonceLifetime.D(), now)
	if err != nil {
		return nil, nil, fmt.Errorf("dpop.nonce_key: %w", err)
	}
	return replay, nonces, nil
}
