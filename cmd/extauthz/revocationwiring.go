package main

import (
	"log/slog"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/revocation"
	"github.com/extauthz/extauthz/pkg/telemetry"
)

// newRevoker builds the revocation watermarks' store: shared through rc
// when Redis is configured (nil: this replica only). A watermark is kept
// for the longest token lifetime accepted, the longest a verdict is
// cached, and the leeway past a token's exp, after its before: by then
// no token it revokes is valid any more.
func newRevoker(cfg *config.Config, log *slog.Logger, tel *telemetry.Telemetry, rc redis.UniversalClient, now func() time.Time) (*revocation.Store, error) {
	s, err := revocation.NewStore(revocation.StoreOptions{
		Redis:        rc,
		Retention:    cfg.Revocation.MaxTokenLifetime.D() + cfg.Cache.MaxTTL.D() + cfg.Tokens.Leeway.D(),
		SyncInterval: cfg.Revocation.SyncInterval.D(),
		Now:          now,
		Observer:     tel.Metrics,
		Logger:       log,
	})
	if err != nil {
		return nil, err
	}
	tel.Metrics.RevocationWatermarks(s.Len)
	return s, nil
}

// claimKept reports whether some authorization server keeps claim
// (keep_claims): a watermark on a claim no token keeps would revoke
// nothing.
func (a *app) claimKept(claim string) bool {
	a.issuersMu.Lock()
	defer a.issuersMu.Unlock()
	for _, p := range a.issuers {
		if slices.Contains(p.spec.Server.KeepClaims, claim) {
			return true
		}
	}
	return false
}
