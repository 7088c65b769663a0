package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// redisURL is what Validate needs from a well-formed cache.redis_url.
type redisURL struct {
	host string // without port or brackets
	user string
	db   int  // from the path; -1 when the path names none
	tls  bool // rediss://
}

func (c *Cache) validate(ch *checker) {
	var ru *redisURL
	if c.RedisURL != "" {
		ru = parseRedisURL(ch, c.RedisURL)
	}
	switch {
	case c.RedisPassword.Env != "" && c.RedisPassword.File != "":
		ch.add("cache.redis_password", msgBothSources)
	case !c.RedisPassword.IsZero() && c.RedisMode() == RedisModeNone:
		ch.add("cache.redis_password", msgNoRedis)
	}
	if c.MaxTTL <= 0 {
		ch.add("cache.max_ttl", msgPositive)
	}
	if c.NegativeTTL < 0 {
		ch.add("cache.negative_ttl", msgNonNegative)
	}
	positive(ch, "cache.revoked_ttl", c.RevokedTTL)
	c.validateRedis(ch, ru)
}

// parseRedisURL reports what is wrong with cache.redis_url and returns its
// parts, or nil when it is not a usable URL. Messages never quote the URL:
// it may hold the very password this rule exists to keep out of the file
// and the logs.
func parseRedisURL(ch *checker, raw string) *redisURL {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		ch.add("cache.redis_url", "must be a redis:// or rediss:// URL with a host")
		return nil
	}
	if _, has := u.User.Password(); has {
		ch.add("cache.redis_url", "must not contain a password (use cache.redis_password)")
	}
	// go-redis reads options such as skip_verify and read_timeout from the
	// query, which would bypass the rules on the cache.redis keys.
	if u.RawQuery != "" || u.ForceQuery {
		ch.add("cache.redis_url", "must not have a query (use the cache.redis keys for options)")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		ch.add("cache.redis_url", "must not have a fragment")
	}
	ru := &redisURL{host: u.Hostname(), user: u.User.Username(), db: -1, tls: u.Scheme == "rediss"}
	// As go-redis reads it: empty segments are ignored, one segment is
	// the database number.
	switch f := strings.FieldsFunc(u.Path, func(r rune) bool { return r == '/' }); len(f) {
	case 0:
	case 1:
		if n, err := strconv.Atoi(f[0]); err == nil && n >= 0 && n <= maxRedisDB && f[0] == strconv.Itoa(n) {
			ru.db = n
			break
		}
		fallthrough
	default:
		ch.add("cache.redis_url", "path must be empty or a database number from /0 to /%d", maxRedisDB)
	}
	return ru
}

func (c *Cache) validateRedis(ch *checker, ru *redisURL) {
	r := &c.Redis
	sentinel, cluster := r.Sentinel.isSet(), r.Cluster.isSet()
	if sentinel && c.RedisURL != "" {
		ch.add("cache.redis.sentinel", "cannot be combined with cache.redis_url")
	}
	if cluster {
		switch {
		case c.RedisURL != "":
			ch.add("cache.redis.cluster", "cannot be combined with cache.redis_url")
		case sentinel:
			ch.add("cache.redis.cluster", "cannot be combined with cache.redis.sentinel")
		}
	}
	if sentinel {
		if r.Sentinel.MasterName == "" {
			ch.add("cache.redis.sentinel.master_name", msgRequired)
		}
		redisAddresses(ch, "cache.redis.sentinel.addresses", r.Sentinel.Addresses, "10.0.0.1:26379")
		validateSecret(ch, "cache.redis.sentinel.password", r.Sentinel.Password)
	}
	if cluster {
		redisAddresses(ch, "cache.redis.cluster.addresses", r.Cluster.Addresses, "10.0.0.1:6379")
	}

	mode := c.RedisMode()
	if mode == RedisModeNone {
		// A setting with nothing to apply to is a mistake: most likely
		// the operator believes a Redis is in use. Defaults (and zero,
		// for a Config built in memory) are not settings.
		for _, k := range []struct {
			path string
			set  bool
		}{
			{"cache.redis.username", r.Username != ""},
			{"cache.redis.db", r.DB != 0},
			{"cache.redis.tls.enabled", r.TLS.Enabled},
			{"cache.redis.tls.ca_file", r.TLS.CAFile != ""},
			{"cache.redis.tls.cert_file", r.TLS.CertFile != ""},
			{"cache.redis.tls.key_file", r.TLS.KeyFile != ""},
			{"cache.redis.tls.server_name", r.TLS.ServerName != ""},
			{"cache.redis.tls.insecure_skip_verify", r.TLS.InsecureSkipVerify},
			{"cache.redis.pool_size", r.PoolSize != 0},
			{"cache.redis.dial_timeout", r.DialTimeout != 0 && r.DialTimeout.D() != defaultRedisDialTimeout},
			{"cache.redis.timeout", r.Timeout != 0 && r.Timeout.D() != defaultRedisTimeout},
			{"cache.redis.circuit_failures", r.CircuitFailures != 0 && r.CircuitFailures != defaultCircuitFailures},
			{"cache.redis.circuit_cooldown", r.CircuitCooldown != 0 && r.CircuitCooldown.D() != defaultCircuitCooldown},
		} {
			if k.set {
				ch.add(k.path, msgNoRedis)
			}
		}
		return
	}

	if mode == RedisModeStandalone && ru != nil && r.Username != "" && ru.user != "" && r.Username != ru.user {
		ch.add("cache.redis.username", "differs from the user name in cache.redis_url")
	}
	switch {
	case r.DB != 0 && mode == RedisModeCluster:
		ch.add("cache.redis.db", "must be 0 in cluster mode (Redis Cluster has one database)")
	case r.DB != 0 && mode == RedisModeStandalone && ru != nil && ru.db >= 0 && ru.db != r.DB:
		ch.add("cache.redis.db", "differs from the database number in the path of cache.redis_url (/%d)", ru.db)
	}
	c.validateRedisTLS(ch, mode, ru)
	positive(ch, "cache.redis.dial_timeout", r.DialTimeout)
	switch {
	case r.Timeout <= 0:
		ch.add("cache.redis.timeout", msgPositive)
	case r.Timeout.D() > maxRedisTimeout:
		ch.add("cache.redis.timeout", "must not exceed %s (a slow Redis must be a cache miss, never a slow decision)", maxRedisTimeout)
	}
	positive(ch, "cache.redis.circuit_cooldown", r.CircuitCooldown)
}

func (c *Cache) validateRedisTLS(ch *checker, mode string, ru *redisURL) {
	t := &c.Redis.TLS
	if t.CertFile != "" && t.KeyFile == "" {
		ch.add("cache.redis.tls.key_file", "is required when cache.redis.tls.cert_file is set")
	}
	if t.KeyFile != "" && t.CertFile == "" {
		ch.add("cache.redis.tls.cert_file", "is required when cache.redis.tls.key_file is set")
	}
	if t.ServerName != "" && net.ParseIP(t.ServerName) == nil && !isHostname(strings.ToLower(t.ServerName)) {
		ch.add("cache.redis.tls.server_name", "must be a host name or an IP address, with no port")
	}
	if t.InsecureSkipVerify && !c.allRedisLoopback(ru) {
		ch.add("cache.redis.tls.insecure_skip_verify",
			"may be true only when every Redis address is loopback (localhost, 127.0.0.0/8 or ::1); "+
				"to trust a private CA, set cache.redis.tls.ca_file")
	}
	if mode == RedisModeStandalone && ru == nil {
		// Whether the URL turns TLS on is unknown; its own error says why.
		return
	}
	on := t.Enabled || (ru != nil && ru.tls)
	if !on && (t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify) {
		if mode == RedisModeStandalone {
			ch.add("cache.redis.tls", "tls settings need tls.enabled: true or a rediss:// URL")
		} else {
			ch.add("cache.redis.tls", "tls settings need tls.enabled: true")
		}
	}
}

// allRedisLoopback reports whether every Redis address written in the file
// is loopback. Malformed addresses are skipped: they have their own error.
func (c *Cache) allRedisLoopback(ru *redisURL) bool {
	if ru != nil && !IsLoopbackHost(ru.host) {
		return false
	}
	for _, a := range slices.Concat(c.Redis.Sentinel.Addresses, c.Redis.Cluster.Addresses) {
		if host, _, err := net.SplitHostPort(a); err == nil && host != "" && !IsLoopbackHost(host) {
			return false
		}
	}
	return true
}

// redisAddresses checks a list of Redis or sentinel addresses.
func redisAddresses(ch *checker, path string, addrs []string, example string) {
	if len(addrs) == 0 {
		ch.add(path, "at least one address is required")
		return
	}
	// Repeats: the unique tag's check reports them.
	for i, a := range addrs {
		p := fmt.Sprintf("%s[%d]", path, i)
		host, port, err := net.SplitHostPort(a)
		switch {
		case err != nil || host == "":
			ch.add(p, "must be host:port, such as %q", example)
		case net.ParseIP(host) == nil && !isHostname(strings.ToLower(host)):
			ch.add(p, "host must be an IP address or a host name")
		case !isPort(port):
			ch.add(p, "port must be a number from 1 to 65535")
		}
	}
}

func isPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 65535 && s == strconv.Itoa(n)
}
