package oauthflow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisBackend keeps entries and locks in Redis, each call under its own deadline. Every
// command touches one key, so it works the same on a Cluster.
type redisBackend struct {
	c       redis.UniversalClient
	timeout time.Duration
	renewS  *redis.Script
	unlockS *redis.Script
}

// renewScript extends the lock at KEYS[1] to ARGV[2] milliseconds if ARGV[1], the caller's
// token, still holds it; 1 if it did, 0 if the lock has expired or another holder has it.
const renewScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`

// unlockScript deletes the lock at KEYS[1] if ARGV[1], the caller's token, holds it, and never
// another holder's lock.
const unlockScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`

func newRedisBackend(c redis.UniversalClient, timeout time.Duration) *redisBackend {
	return &redisBackend{
		c:       c,
		timeout: timeout,
		renewS:  redis.NewScript(renewScript),
		unlockS: redis.NewScript(unlockScript),
	}
}

// pxTTL rounds ttl up to a whole millisecond, Redis's PX resolution, so that an entry never
// lives shorter than asked (nor gets no expiry at all from a sub-millisecond ttl).
func pxTTL(ttl time.Duration) time.Duration {
	return (ttl + time.Millisecond - 1).Truncate(time.Millisecond)
}

// redisErr wraps a client error with the operation's name. go-redis's errors name neither
// keys nor values; keys are hashes anyway.
func redisErr(op string, err error) error {
	return fmt.Errorf("session: redis %s: %w", op, err)
}

func (r *redisBackend) set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.c.Set(cctx, key, val, pxTTL(ttl)).Err(); err != nil {
		return redisErr("set", err)
	}
	return nil
}

func (r *redisBackend) get(ctx context.Context, key string) ([]byte, bool, error) {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return bytesReply("get", r.c.Get(cctx, key))
}

// add is SET key val NX PX ttl.
func (r *redisBackend) add(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	ok, err := r.c.SetNX(cctx, key, val, pxTTL(ttl)).Result()
	if err != nil {
		return false, redisErr("set nx", err)
	}
	return ok, nil
}

func bytesReply(op string, cmd *redis.StringCmd) ([]byte, bool, error) {
	v, err := cmd.Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, redisErr(op, err)
	}
	return v, true, nil
}

func (r *redisBackend) del(ctx context.Context, key string) error {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.c.Del(cctx, key).Err(); err != nil {
		return redisErr("del", err)
	}
	return nil
}

// lock is SET key token NX PX ttl.
func (r *redisBackend) lock(ctx context.Context, key, token string, ttl time.Duration) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	ok, err := r.c.SetNX(cctx, key, token, pxTTL(ttl)).Result()
	if err != nil {
		return false, redisErr("lock", err)
	}
	return ok, nil
}

func (r *redisBackend) renew(ctx context.Context, key, token string, ttl time.Duration) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	n, err := r.renewS.Run(cctx, r.c, []string{key}, token, pxTTL(ttl).Milliseconds()).Int64()
	if err != nil {
		return false, redisErr("renew lock", err)
	}
	return n == 1, nil
}

func (r *redisBackend) unlock(ctx context.Context, key, token string) error {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.unlockS.Run(cctx, r.c, []string{key}, token).Err(); err != nil {
		return redisErr("unlock", err)
	}
	return nil
}
