package cache

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// RedisClientOptions says how to reach Redis, in plain values, so that this package does not
// depend on the configuration package. Exactly one mode is chosen: URL (standalone),
// SentinelMaster (Sentinel) or ClusterAddrs (Cluster).
type RedisClientOptions struct {
	// URL selects standalone mode: redis://[user[:password]@]host:port[/db], or rediss:// for
	// TLS. Query parameters are refused: every setting has a field here, and a URL parameter
	// that this function then overrode (a timeout, a retry count) would mislead.
	URL string
	// SentinelMaster selects Sentinel mode: the master's name, found through SentinelAddrs.
	SentinelMaster   string
	SentinelAddrs    []string
	SentinelPassword string
	// ClusterAddrs selects Cluster mode: seed nodes, the rest are discovered.
	ClusterAddrs []string
	// Username and Password override the URL's when set.
	Username, Password string
	// DB is the database number in Sentinel mode, and in standalone mode when the URL names none
	// (a URL that names another one is an error). Cluster mode has only database 0.
	DB int
	// TLS turns TLS on with this configuration. nil: TLS only for a rediss:// URL.
	TLS *tls.Config
	// PoolSize is the connection pool size per node; 0: go-redis's default (10 per CPU).
	PoolSize int
	// DialTimeout bounds connecting; default 1s. A call's own deadline still applies first.
	DialTimeout time.Duration
	// Timeout is the read and write timeout of each command; default 25ms. The store built on
	// the client also bounds each call (RedisOptions.Timeout); this one covers what runs outside
	// a call, such as the pub/sub connection's set-up.
	Timeout time.Duration
	// WriteTimeout is the budget of a batch of writes sent in the background (the store's
	// RedisOptions.WriteTimeout), which no decision waits for; 0: Timeout. The sockets' read
	// and write timeouts are the larger of the two: each call on the request path still ends
	// at its own context deadline (RedisOptions.Timeout).
	WriteTimeout time.Duration
}

// Defaults of [RedisClientOptions].
const (
	defaultRedisDialTimeout = time.Second
	defaultRedisTimeout     = 25 * time.Millisecond
)

// NewRedisClient builds the go-redis client for the mode o selects, tuned for a cache on the
// request path: no retries inside the client (a failed call is a miss now, and the store's
// circuit breaker decides when to try again), one dial attempt per call, socket deadlines that
// follow the caller's context, and no connection-time extras that an older or managed Redis
// might reject or that cost round trips (CLIENT SETINFO, maintenance notifications).
//
// It does not connect: a Redis that is down at start-up makes calls fail, not this function.
func NewRedisClient(o RedisClientOptions) (redis.UniversalClient, error) {
	modes := 0
	if o.URL != "" {
		modes++
	}
	if o.SentinelMaster != "" {
		modes++
	}
	if len(o.ClusterAddrs) > 0 {
		modes++
	}
	switch {
	case modes == 0:
		return nil, errors.New("cache: redis: no mode chosen: set a URL, a sentinel master or cluster addresses")
	case modes > 1:
		return nil, errors.New("cache: redis: more than one mode chosen: set only one of URL, sentinel master, cluster addresses")
	case o.SentinelMaster == "" && (len(o.SentinelAddrs) > 0 || o.SentinelPassword != ""):
		return nil, errors.New("cache: redis: sentinel addresses or password without a sentinel master name")
	case o.SentinelMaster != "" && len(o.SentinelAddrs) == 0:
		return nil, errors.New("cache: redis: sentinel master name without sentinel addresses")
	case o.DB < 0:
		return nil, fmt.Errorf("cache: redis: DB %d is negative", o.DB)
	case len(o.ClusterAddrs) > 0 && o.DB != 0:
		return nil, fmt.Errorf("cache: redis: DB %d in cluster mode: a cluster has only database 0", o.DB)
	case o.PoolSize < 0:
		return nil, fmt.Errorf("cache: redis: pool size %d is negative", o.PoolSize)
	case o.DialTimeout < 0 || o.Timeout < 0 || o.WriteTimeout < 0:
		return nil, errors.New("cache: redis: timeouts must not be negative")
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = defaultRedisDialTimeout
	}
	if o.Timeout == 0 {
		o.Timeout = defaultRedisTimeout
	}
	// From here on, Timeout is the sockets' timeout (see WriteTimeout).
	o.Timeout = max(o.Timeout, o.WriteTimeout)
	var tlsConfig *tls.Config
	if o.TLS != nil {
		// A clone, so that go-redis (which fills in ServerName per node) and the caller do not
		// share one mutable value.
		tlsConfig = o.TLS.Clone()
	}
	// Maintenance notifications are a Redis Enterprise/Cloud feature negotiated on every new
	// connection; against other servers the negotiation is a wasted round trip inside the
	// first call's budget.
	noMaint := func() *maintnotifications.Config {
		return &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	}

	switch {
	case len(o.ClusterAddrs) > 0:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:                    o.ClusterAddrs,
			Username:                 o.Username,
			Password:                 o.Password,
			TLSConfig:                tlsConfig,
			PoolSize:                 o.PoolSize,
			DialTimeout:              o.DialTimeout,
			DialerRetries:            1,
			ReadTimeout:              o.Timeout,
			WriteTimeout:             o.Timeout,
			ContextTimeoutEnabled:    true,
			MaxRetries:               -1,
			DisableIdentity:          true,
			MaintNotificationsConfig: noMaint(),
		}), nil

	case o.SentinelMaster != "":
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:            o.SentinelMaster,
			SentinelAddrs:         o.SentinelAddrs,
			SentinelPassword:      o.SentinelPassword,
			Username:              o.Username,
			Password:              o.Password,
			DB:                    o.DB,
			TLSConfig:             tlsConfig,
			PoolSize:              o.PoolSize,
			DialTimeout:           o.DialTimeout,
			DialerRetries:         1,
			ReadTimeout:           o.Timeout,
			WriteTimeout:          o.Timeout,
			ContextTimeoutEnabled: true,
			MaxRetries:            -1,
			DisableIdentity:       true,
			// FailoverOptions has no MaintNotificationsConfig: go-redis disables them itself
			// for clients behind Sentinel.
		}), nil
	}

	opt, err := parseRedisURL(o.URL, o.DB)
	if err != nil {
		return nil, err
	}
	if o.Username != "" {
		opt.Username = o.Username
	}
	if o.Password != "" {
		opt.Password = o.Password
	}
	if tlsConfig != nil {
		if tlsConfig.ServerName == "" && opt.TLSConfig != nil {
			tlsConfig.ServerName = opt.TLSConfig.ServerName
		}
		opt.TLSConfig = tlsConfig
	}
	opt.PoolSize = o.PoolSize
	opt.DialTimeout = o.DialTimeout
	opt.DialerRetries = 1
	opt.ReadTimeout = o.Timeout
	opt.WriteTimeout = o.Timeout
	opt.ContextTimeoutEnabled = true
	opt.MaxRetries = -1
	opt.DisableIdentity = true
	opt.MaintNotificationsConfig = noMaint()
	return redis.NewClient(opt), nil
}

// parseRedisURL parses a standalone URL with go-redis's own parser, after the checks it does
// not make: the scheme, no query parameters, and a database number that agrees with db.
func parseRedisURL(raw string, db int) (*redis.Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse quotes the whole URL in its error, password included.
		return nil, errors.New("cache: redis: URL does not parse")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("cache: redis: URL scheme %q: want redis:// or rediss://", u.Scheme)
	}
	if u.RawQuery != "" {
		return nil, errors.New("cache: redis: URL query parameters are not supported: use the options")
	}
	if u.Host == "" {
		return nil, errors.New("cache: redis: URL has no host")
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("cache: redis: URL path %q is not a database number", u.Path)
		}
		if db != 0 && db != n {
			return nil, fmt.Errorf("cache: redis: URL names database %d but DB is %d", n, db)
		}
		db = n
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("cache: redis: URL not accepted: %w", err) // names no secret
	}
	opt.DB = db
	return opt, nil
}
