package oauthflow

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// facadeRedis keeps the facade's records in Redis, each call under its own deadline. Client
// records and their index share a hash tag, so the scripts that touch both run on a Cluster;
// every other command touches one key.
type facadeRedis struct {
	c       redis.UniversalClient
	timeout time.Duration
	addC    *redis.Script
	touchC  *redis.Script
	delC    *redis.Script
	swapS   *redis.Script
	idxKey  string
}

// The client index (KEYS[1]) is a sorted set of client keys scored by their expiry in
// milliseconds of Redis's own clock, so that counting the live clients needs no scan: expired
// members are dropped first. The index itself expires once every member has.
const redisNow = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// extendIndex makes the index live at least as long as the client just written.
const extendIndex = `
local pttl = redis.call('PTTL', KEYS[1])
if pttl >= 0 and pttl < ttl or pttl == -1 then redis.call('PEXPIRE', KEYS[1], ttl) end
`

// addClientScript: KEYS[1] index, KEYS[2] client; ARGV[1] value, ARGV[2] ttl ms, ARGV[3]
// the most live clients. 1 stored, 0 exists, -1 full.
const addClientScript = redisNow + `
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return -1 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[1], now + ttl, KEYS[2])
` + extendIndex + `
return 1
`

// touchClientScript: KEYS[1] index, KEYS[2] client; ARGV[1] ttl ms. The record, its life
// restarted, or nil.
const touchClientScript = redisNow + `
local ttl = tonumber(ARGV[1])
local v = redis.call('GET', KEYS[2])
if not v then
  redis.call('ZREM', KEYS[1], KEYS[2])
  return false
end
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[1], now + ttl, KEYS[2])
` + extendIndex + `
return v
`

// delClientScript: KEYS[1] index, KEYS[2] client.
const delClientScript = `
redis.call('ZREM', KEYS[1], KEYS[2])
return redis.call('DEL', KEYS[2])
`

// swapScript: KEYS[1]; ARGV[1] the value expected, ARGV[2] the new value, ARGV[3] ttl ms.
// Sealed values carry a random nonce, so an unchanged value means nobody wrote meanwhile.
const swapScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
`

func newFacadeRedis(c redis.UniversalClient, timeout time.Duration) *facadeRedis {
	return &facadeRedis{
		c:       c,
		timeout: timeout,
		addC:    redis.NewScript(addClientScript),
		touchC:  redis.NewScript(touchClientScript),
		delC:    redis.NewScript(delClientScript),
		swapS:   redis.NewScript(swapScript),
		idxKey:  facadeClientIndex,
	}
}

func (r *facadeRedis) addClient(ctx context.Context, key string, val []byte, ttl time.Duration, maxClients int) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	n, err := r.addC.Run(cctx, r.c, []string{r.idxKey, key}, val, pxTTL(ttl).Milliseconds(), maxClients).Int64()
	if err != nil {
		return false, redisErr("register client", err)
	}
	switch n {
	case 1:
		return true, nil
	case -1:
		return false, ErrTooManyClients
	}
	return false, nil
}

func (r *facadeRedis) touchClient(ctx context.Context, key string, ttl time.Duration) ([]byte, bool, error) {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	v, err := r.touchC.Run(cctx, r.c, []string{r.idxKey, key}, pxTTL(ttl).Milliseconds()).Text()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, redisErr("read client", err)
	}
	return []byte(v), true, nil
}

func (r *facadeRedis) delClient(ctx context.Context, key string) error {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.delC.Run(cctx, r.c, []string{r.idxKey, key}).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return redisErr("delete client", err)
	}
	return nil
}

func (r *facadeRedis) add(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	ok, err := r.c.SetNX(cctx, key, val, pxTTL(ttl)).Result()
	if err != nil {
		return false, redisErr("set nx", err)
	}
	return ok, nil
}

func (r *facadeRedis) get(ctx context.Context, key string) ([]byte, bool, error) {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return bytesReply("get", r.c.Get(cctx, key))
}

func (r *facadeRedis) getdel(ctx context.Context, key string) ([]byte, bool, error) {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return bytesReply("getdel", r.c.GetDel(cctx, key))
}

func (r *facadeRedis) swap(ctx context.Context, key string, old, val []byte, ttl time.Duration) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	n, err := r.swapS.Run(cctx, r.c, []string{key}, old, val, pxTTL(ttl).Milliseconds()).Int64()
	if err != nil {
		return false, redisErr("swap", err)
	}
	return n == 1, nil
}

func (r *facadeRedis) del(ctx context.Context, key string) error {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.c.Del(cctx, key).Err(); err != nil {
		return redisErr("del", err)
	}
	return nil
}
