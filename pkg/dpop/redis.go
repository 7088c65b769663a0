package dpop

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisKeyPrefix starts the name of every key RedisReplay writes.
const RedisKeyPrefix = "extauthz:dpop:jti:"

// RedisReplay is a ReplayStore shared by every replica through Redis, so
// that a proof accepted by one replica is a replay at all the others (RFC
// 9449 §11.1). Each claim is one SET key 1 NX PX ttl: atomic, so of two
// replicas that receive the same proof at once exactly one is told it is
// new, and the key expires by itself when the proof would be stale
// anyway. The ttl is a duration, so replicas' clocks need not agree with
// Redis's.
//
// An in-process store is asked first: a proof it has seen is a replay
// without a round trip (the cheap answer to a client, or an attacker,
// sending the same proof again and again to one replica). A proof new to
// it still goes to Redis, which alone can say whether another replica has
// seen it. If the local store is full, Redis decides alone.
//
// Any Redis error (down, timed out, cancelled, a cluster without the slot)
// is returned: Verify refuses the proof with ErrUnavailable, never accepts
// it unchecked. Calls are bounded by the caller's context and the
// client's own timeouts (the client from cache.NewRedisClient has 25ms
// and no retries); there is no circuit breaker here.
type RedisReplay struct {
	c     redis.UniversalClient
	local ReplayStore
}

// NewRedisReplay returns a Redis-backed store; local (nil for none) is
// the in-process tier asked first, normally a MemoryReplay.
func NewRedisReplay(c redis.UniversalClient, local ReplayStore) *RedisReplay {
	return &RedisReplay{c: c, local: local}
}

// Claim implements ReplayStore.
func (r *RedisReplay) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	recorded := false
	if r.local != nil {
		fresh, err := r.local.Claim(ctx, key, ttl)
		if err == nil && !fresh {
			return false, nil
		}
		recorded = err == nil
	}
	fresh, err := r.c.SetNX(ctx, RedisKeyPrefix+key, "1", ttl).Result()
	if err != nil {
		if f, ok := r.local.(interface{ forget(string) }); ok && recorded {
			// The proof is refused (503) without having been accepted
			// anywhere this store knows of: the same proof sent again is
			// for Redis to judge, not a replay of this refusal.
			f.forget(key)
		}
		return false, err
	}
	return fresh, nil
}
