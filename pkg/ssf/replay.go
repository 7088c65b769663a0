package ssf

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ReplayStore remembers the SETs received, by issuer and jti, for as long
// as each could be accepted again (MaxAge + Leeway).
//
// Seen and Remember are separate on purpose: the receiver asks Seen
// first, and calls Remember only once the SET has taken effect (its
// watermark stored). A SET whose revocation could not be stored is
// answered 503 and must be accepted when the transmitter sends it again;
// remembering it first would turn the retry into a "replay", and the
// revocation would be lost. The cost: the same SET delivered twice at
// once may take effect twice, which for a watermark changes nothing.
type ReplayStore interface {
	// Seen reports whether key was remembered and has not expired. An
	// error means the store cannot tell: the SET is not accepted.
	Seen(ctx context.Context, key string) (bool, error)
	// Remember records key for ttl.
	Remember(ctx context.Context, key string, ttl time.Duration) error
}

// replayKey is the store's key for a SET: jti is unique per issuer (RFC
// 7519 §4.1.7), and hashing bounds the key's size.
func replayKey(iss, jti string) string {
	h := sha256.New()
	h.Write([]byte(iss))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	return hex.EncodeToString(h.Sum(nil))
}

// ErrReplayFull is the error of a MemoryReplay that holds its maximum of
// unexpired entries: Seen refuses to judge (the SET is answered 503)
// rather than forget an entry early, which would let a SET be replayed.
var ErrReplayFull = errors.New("ssf: replay store full")

// DefaultReplayEntries bounds a MemoryReplay built with maxEntries ≤ 0.
const DefaultReplayEntries = 100000

// MemoryReplay is a ReplayStore in this process's memory, for a gateway
// without Redis: a replay is caught on this replica only.
type MemoryReplay struct {
	max int
	now func() time.Time

	mu   sync.Mutex
	seen map[string]time.Time // key → expiry
}

// NewMemoryReplay returns an in-process store of at most maxEntries
// unexpired entries (DefaultReplayEntries when ≤ 0); now nil is time.Now.
func NewMemoryReplay(maxEntries int, now func() time.Time) *MemoryReplay {
	if maxEntries <= 0 {
		maxEntries = DefaultReplayEntries
	}
	if now == nil {
		now = time.Now
	}
	return &MemoryReplay{max: maxEntries, now: now, seen: map[string]time.Time{}}
}

// Seen implements ReplayStore.
func (m *MemoryReplay) Seen(_ context.Context, key string) (bool, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if exp, ok := m.seen[key]; ok && now.Before(exp) {
		return true, nil
	}
	if len(m.seen) >= m.max {
		m.expire(now)
		if len(m.seen) >= m.max {
			return false, ErrReplayFull
		}
	}
	return false, nil
}

// Remember implements ReplayStore.
func (m *MemoryReplay) Remember(_ context.Context, key string, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("ssf: replay ttl %s is not positive", ttl)
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.seen[key]; !ok && len(m.seen) >= m.max {
		m.expire(now)
		if len(m.seen) >= m.max {
			return ErrReplayFull
		}
	}
	m.seen[key] = now.Add(ttl)
	return nil
}

// expire drops expired entries: a scan, run only when the store is full,
// which SETs (a handful a minute) rarely make it.
func (m *MemoryReplay) expire(now time.Time) {
	for k, exp := range m.seen {
		if !now.Before(exp) {
			delete(m.seen, k)
		}
	}
}

// RedisKeyPrefix starts the name of every key RedisReplay writes.
const RedisKeyPrefix = "extauthz:ssf:jti:"

// RedisReplay is a ReplayStore shared by every replica through Redis: a
// SET received by one replica is a replay at all the others. Remember is
// SET key 1 PX ttl, so the key expires by itself when the SET would be too
// old anyway; the ttl is a duration, so replicas' clocks need not agree
// with Redis's. Any Redis error is returned: the SET is answered 503 and
// the transmitter retries.
type RedisReplay struct{ c redis.UniversalClient }

// NewRedisReplay returns a Redis-backed store.
func NewRedisReplay(c redis.UniversalClient) *RedisReplay { return &RedisReplay{c: c} }

// Seen implements ReplayStore.
func (r *RedisReplay) Seen(ctx context.Context, key string) (bool, error) {
	n, err := r.c.Exists(ctx, RedisKeyPrefix+key).Result()
	return n > 0, err
}

// Remember implements ReplayStore.
func (r *RedisReplay) Remember(ctx context.Context, key string, ttl time.Duration) error {
	return r.c.Set(ctx, RedisKeyPrefix+key, "1", ttl).Err()
}
