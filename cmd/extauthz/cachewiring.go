package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/telemetry"
	"github.com/extauthz/extauthz/pkg/verdict"
)

// teeObserver reports cache events to two observers (a test's counters
// and the metrics).
type teeObserver [2]cache.Observer

func (t teeObserver) Lookup(tier string, hit bool) { t[0].Lookup(tier, hit); t[1].Lookup(tier, hit) }
func (t teeObserver) Error(tier, op string)        { t[0].Error(tier, op); t[1].Error(tier, op) }
func (t teeObserver) Evicted(tier string)          { t[0].Evicted(tier); t[1].Evicted(tier) }
func (t teeObserver) CircuitOpen(open bool)        { t[0].CircuitOpen(open); t[1].CircuitOpen(open) }

// Dropped implements cache.DropObserver for whichever side does.
func (t teeObserver) Dropped(op, reason string) {
	for _, o := range t {
		if d, ok := o.(cache.DropObserver); ok {
			d.Dropped(op, reason)
		}
	}
}

// The shared tier's write queue. Not configuration: the queue only holds
// what arrives while one batch is on its way to Redis, so its bound is
// reached only when Redis cannot keep up for seconds — and a dropped write
// costs a verification on another replica, never a wrong answer.
const (
	// sharedWriteQueue is how many verdict writes may wait for Redis
	// (each a few hundred bytes: about 3 MB when full).
	sharedWriteQueue = 8192
	// sharedWriteTimeout bounds one batch of writes: nobody waits for it,
	// so it is far longer than a read's budget and survives the scheduler
	// delays of a saturated box.
	sharedWriteTimeout = 500 * time.Millisecond
)

// newVerdictCache builds the verdict cache from the configuration (see
// verdict.NewCache) and, when Redis is configured, the shared tier behind
// it. It also returns the Redis client to close.
func newVerdictCache(cfg *config.Config, log *slog.Logger, tel *telemetry.Telemetry, obs cache.Observer, grants *verdict.Grants, now func() time.Time) (*cache.Tiered[verdict.Verdict], redis.UniversalClient, error) {
	c := cfg.Cache
	o := verdict.CacheOptions{
		MaxEntries:         c.MaxEntries,
		MaxNegativeEntries: c.MaxNegativeEntries,
		Grants:             grants,
		Entries:            tel.Metrics.CacheEntries,
		Now:                now,
		Observer:           obs,
		Logger:             log,
	}
	if c.RedisMode() == "" {
		t, err := verdict.NewCache(o)
		return t, nil, err
	}
	client, err := newRedisClient(c)
	if err != nil {
		return nil, nil, err
	}
	if tel.Tracing() {
		client.AddHook(telemetry.RedisHook(tel.Tracer()))
	}
	o.WriteQueue = sharedWriteQueue
	o.Shared = cache.NewRedis(client, cache.RedisOptions{
		Timeout:         c.Redis.Timeout.D(),
		WriteTimeout:    sharedWriteTimeout,
		BatchReads:      true,
		CircuitFailures: c.Redis.CircuitFailures,
		CircuitCooldown: c.Redis.CircuitCooldown.D(),
		Now:             now,
		Observer:        obs,
		Logger:          log.With("component", "redis"),
	})
	t, err := verdict.NewCache(o)
	if err != nil {
		client.Close()
		return nil, nil, err
	}
	return t, client, nil
}

// newRedisClient maps the config onto the Redis client options, reading
// the secrets from where the config says they are.
func newRedisClient(c config.Cache) (redis.UniversalClient, error) {
	r := c.Redis
	o := cache.RedisClientOptions{
		URL:          c.RedisURL,
		Username:     r.Username,
		DB:           r.DB,
		PoolSize:     r.PoolSize,
		DialTimeout:  r.DialTimeout.D(),
		Timeout:      r.Timeout.D(),
		WriteTimeout: sharedWriteTimeout,
	}
	switch c.RedisMode() {
	case "sentinel":
		o.SentinelMaster, o.SentinelAddrs = r.Sentinel.MasterName, r.Sentinel.Addresses
		if !r.Sentinel.Password.IsZero() {
			pw, err := r.Sentinel.Password.Resolve()
			if err != nil {
				return nil, fmt.Errorf("cache.redis.sentinel.password: %w", err)
			}
			o.SentinelPassword = pw
		}
	case "cluster":
		o.ClusterAddrs = r.Cluster.Addresses
	}
	if !c.RedisPassword.IsZero() {
		pw, err := c.RedisPassword.Resolve()
		if err != nil {
			return nil, fmt.Errorf("cache.redis_password: %w", err)
		}
		o.Password = pw
	}
	// TLS is on when asked for or implied by a rediss:// URL; validation
	// refuses TLS keys with TLS off.
	if r.TLS.Enabled || strings.HasPrefix(c.RedisURL, "rediss://") {
		t, err := tlsConfig(r.TLS)
		if err != nil {
			return nil, err
		}
		o.TLS = t
	}
	return cache.NewRedisClient(o)
}

func tlsConfig(c config.RedisTLS) (*tls.Config, error) {
	// InsecureSkipVerify: config validation refuses it unless every Redis address is loopback.
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // see above
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cache.redis.tls.ca_file: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return nil, errors.New("cache.redis.tls.ca_file: no PEM certificate in it")
		}
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cache.redis.tls.cert_file/key_file: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// redisLog routes go-redis's own messages (failed dials, pool trouble)
// into the structured log. go-redis keeps its logger in a package variable,
// so serve sets it once for the process (not newApp: tests run several
// replicas in one process).
type redisLog struct{ log *slog.Logger }

func (r redisLog) Printf(_ context.Context, format string, v ...any) {
	r.log.Warn(fmt.Sprintf(format, v...), "component", "go-redis")
}
