package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

// floorGetServer is floor-tuned that reads one value from Redis for each
// request and does nothing else: the Redis-tier hit's limit, measured. The
// issue's limit is "the in-process hit plus one pipelined GET"; what one GET
// costs a gRPC handler at this concurrency is what this server adds to
// floor-tuned's CPU per Check.
//
// The GET goes through rueidis, a Redis client built around automatic
// pipelining (concurrent commands share one connection and go out together),
// rather than through the gateway's own batcher, so that the limit is not
// the gateway's code measured against itself. The key is the token's last
// floorGetKeyChars characters (its signature's, distinct for every token)
// after a prefix; no hash, no decoding of the value: the gateway's hashing,
// decoding and filling of its in-process tier are its own work. A key not
// there yet (the warm-up pass) is set to a value of floorGetValueBytes, and
// the request allowed all the same.
//
// With the go-redis client instead (--client go-redis), each GET is a round
// trip of its own on a pooled connection: the client the gateway's writes and
// its Cluster and Sentinel reads go through.
type floorGetServer struct {
	authv3.UnimplementedAuthorizationServer
	get   func(ctx context.Context, key string) ([]byte, error) // nil, errFloorGetNil for a missing key
	set   func(ctx context.Context, key, value string) error
	close func()
	value string
}

var errFloorGetNil = errors.New("no such key")

// Clients of floor-get-server (--client).
const (
	floorGetRueidis = "rueidis"
	floorGetGoRedis = "go-redis"
)

const (
	floorGetPrefix     = "extauthz-load:floor-get:"
	floorGetKeyChars   = 43
	floorGetSetTimeout = time.Second
	// floorGetValueBytes is about the size of the gateway's entries for the
	// harness's tokens (mintToken): a 9-byte envelope and a verdict of some
	// 210 bytes (subject, issuer, client id, audience, four scopes, expiry,
	// iat and sid).
	floorGetValueBytes = 220
)

func newFloorGetServer(addr, client string) (*floorGetServer, error) {
	if addr == "" {
		return nil, errors.New("--redis is required")
	}
	if err := requireLoopback(addr); err != nil {
		return nil, err
	}
	s := &floorGetServer{value: strings.Repeat("v", floorGetValueBytes)}
	switch client {
	case floorGetRueidis:
		c, err := rueidis.NewClient(rueidis.ClientOption{
			InitAddress:  []string{addr},
			DisableCache: true, // a GET, not an in-process copy of the value
		})
		if err != nil {
			return nil, fmt.Errorf("rueidis: %w", err)
		}
		s.get = func(ctx context.Context, key string) ([]byte, error) {
			v, err := c.Do(ctx, c.B().Get().Key(key).Build()).AsBytes()
			if rueidis.IsRedisNil(err) {
				err = errFloorGetNil
			}
			return v, err
		}
		s.set = func(ctx context.Context, key, value string) error {
			return c.Do(ctx, c.B().Set().Key(key).Value(value).Build()).Error()
		}
		s.close = c.Close
	case floorGetGoRedis:
		c := redis.NewClient(&redis.Options{Addr: addr})
		s.get = func(ctx context.Context, key string) ([]byte, error) {
			v, err := c.Get(ctx, key).Bytes()
			if errors.Is(err, redis.Nil) {
				err = errFloorGetNil
			}
			return v, err
		}
		s.set = func(ctx context.Context, key, value string) error { return c.Set(ctx, key, value, 0).Err() }
		s.close = func() { _ = c.Close() }
	default:
		return nil, fmt.Errorf("--client %q: want %s or %s", client, floorGetRueidis, floorGetGoRedis)
	}
	return s, nil
}

func (s *floorGetServer) Close() { s.close() }

func (s *floorGetServer) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	tok, ok := strings.CutPrefix(req.GetAttributes().GetRequest().GetHttp().GetHeaders()["authorization"], "Bearer ")
	if !ok || len(tok) < floorGetKeyChars {
		return denied("no bearer token"), nil
	}
	key := floorGetPrefix + tok[len(tok)-floorGetKeyChars:]
	// No deadline of its own: a timer per GET would be the floor's cost, not the GET's (the
	// gateway arms none either), and this Redis is the harness's own, on loopback.
	v, err := s.get(ctx, key)
	switch {
	case err == nil && len(v) > 0:
		return allowed, nil
	case errors.Is(err, errFloorGetNil):
		sctx, cancel := context.WithTimeout(ctx, floorGetSetTimeout)
		defer cancel()
		if err := s.set(sctx, key, s.value); err != nil {
			return denied("redis SET: " + err.Error()), nil
		}
		return allowed, nil
	default:
		return denied(fmt.Sprintf("redis GET: %v", err)), nil
	}
}
