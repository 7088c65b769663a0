package upstream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Locker is a fleet-wide lock: the replica that takes a key's lock mints
// its credential, the others wait for the result in the shared tier.
type Locker interface {
	// TryLock takes the lock on key for ttl, without waiting. ok false
	// means another holds it. err means the lock cannot be known now (the
	// caller then mints without it). unlock releases the lock if it is
	// still this caller's; it is nil unless ok.
	TryLock(ctx context.Context, key string, ttl time.Duration) (unlock func(), ok bool, err error)
}

// lockCallTimeout bounds one lock command: a Redis that does not answer
// must cost a mint its fleet lock, not its time.
const lockCallTimeout = 100 * time.Millisecond

// NewRedisLocker returns a Locker on Redis: SET key owner NX PX ttl, owner
// being a random id per lock taken, and an unlock that deletes the key
// only if it still holds that owner (a Lua compare-and-delete), so that a
// holder whose lock expired never releases its successor's.
func NewRedisLocker(c redis.UniversalClient) Locker {
	return &redisLocker{c: c, unlock: redis.NewScript(unlockScript)}
}

type redisLocker struct {
	c      redis.UniversalClient
	unlock *redis.Script
}

const unlockScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`

func (l *redisLocker) TryLock(ctx context.Context, key string, ttl time.Duration) (func(), bool, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, false, err
	}
	owner := hex.EncodeToString(id[:])
	cctx, cancel := context.WithTimeout(ctx, lockCallTimeout)
	defer cancel()
	err := l.c.SetArgs(cctx, key, owner, redis.SetArgs{Mode: "NX", TTL: ttl}).Err()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return func() {
		// Not the caller's context: the lock is released even when the
		// request that took it has gone.
		uctx, cancel := context.WithTimeout(context.Background(), lockCallTimeout)
		defer cancel()
		_ = l.unlock.Run(uctx, l.c, []string{key}, owner).Err()
	}, true, nil
}
