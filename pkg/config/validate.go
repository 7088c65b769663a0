package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/extauthz/extauthz/pkg/mcp"
	"github.com/extauthz/extauthz/pkg/policy"
	"github.com/extauthz/extauthz/pkg/target"
)

// Limits enforced by Validate.
const (
	minRecvMsgBytes  = 1024
	maxRecvMsgBytes  = 64 << 20
	maxStreamWorkers = 65536
	maxGCHeadroom    = 1 << 40
	maxTokenBytes    = 1 << 20
	maxLeeway        = 5 * time.Minute
	maxRedisDB       = 1023
	maxRedisTimeout  = time.Second
	maxMCPBodyBytes  = 1 << 20
)

// Messages shared by several keys, so that one rule always reads the same.
const (
	msgRequired    = "required"
	msgNotEmpty    = "must not be empty"
	msgPositive    = "must be greater than 0"
	msgNonNegative = "must not be negative"
	msgHTTPS       = "must be an absolute https URL (http is allowed only for localhost and loopback addresses)"
	msgBothSources = "set env or file, not both"
	msgNoRedis     = "is set but no Redis is configured (set cache.redis_url, cache.redis.sentinel or cache.redis.cluster)"
)

// checker collects problems; Validate reports all of them, never just the first.
type checker struct{ errs Errors }

func (ch *checker) add(path, format string, args ...any) {
	ch.errs = append(ch.errs, &Error{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Validate reports every problem with the configuration as Errors, each
// naming its key path, or returns nil. It checks values, not presence, so
// call ApplyDefaults first (Parse does). It never modifies c.
func (c *Config) Validate() error {
	var ch checker
	if c.MCP.MaxBodyBytes < 1 || c.MCP.MaxBodyBytes > maxMCPBodyBytes {
		ch.add("mcp.max_body_bytes", "must be between 1 and %d (1 MiB)", maxMCPBodyBytes)
	}
	c.validateListen(&ch)
	if c.PublicURL != "" {
		for _, msg := range checkWebURL(c.PublicURL, urlOrigin) {
			ch.add("public_url", "%s", msg)
		}
	}
	c.Cache.validate(&ch)
	validateSecret(&ch, "admin.token", c.Admin.Token)
	c.GRPC.validate(&ch)
	if h := c.Runtime.GCHeadroomBytes; h < 0 || h > maxGCHeadroom {
		ch.add("runtime.gc_headroom_bytes", "must be between 0 and %d (1 TiB)", maxGCHeadroom)
	}
	c.JWKS.validate(&ch)
	c.Tokens.validate(&ch)
	c.Upstream.validate(&ch)
	if c.Unmatched != "deny" && c.Unmatched != "allow" {
		ch.add("unmatched", `must be "deny" or "allow"`)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		ch.add("log.level", "must be one of debug, info, warn, error")
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		ch.add("log.format", `must be "json" or "text"`)
	}
	if r := c.Log.Audit.AllowSampleRate; !(r >= 0 && r <= 1) {
		ch.add("log.audit.allow_sample_rate", "must be from 0 to 1")
	}
	c.validateResources(&ch)
	c.validateLogin(&ch)
	if len(ch.errs) == 0 {
		return nil
	}
	return ch.errs
}

type listener struct{ path, host, port string }

func (c *Config) validateListen(ch *checker) {
	var ls []listener
	for _, l := range []struct {
		path, addr, example string
		canBeOff            bool
	}{
		{"listen.grpc", c.Listen.GRPC, defaultGRPCAddr, false},
		{"listen.http", c.Listen.HTTP, defaultHTTPAddr, true},
		{"listen.admin", c.Listen.Admin, defaultAdminAddr, true},
	} {
		if l.addr == Off {
			if !l.canBeOff {
				ch.add(l.path, `cannot be "off" (only the http and admin listeners can be disabled)`)
			}
			continue
		}
		host, port, err := net.SplitHostPort(l.addr)
		if err != nil {
			if l.canBeOff {
				ch.add(l.path, `must be host:port, such as %q, or "off"`, l.example)
			} else {
				ch.add(l.path, "must be host:port, such as %q", l.example)
			}
			continue
		}
		ok := true
		if host != "" && net.ParseIP(host) == nil && !isHostname(strings.ToLower(host)) {
			ch.add(l.path, "host must be an IP address, a host name, or empty for all interfaces")
			ok = false
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 || port != strconv.Itoa(n) {
			ch.add(l.path, "port must be a number from 0 to 65535")
			ok = false
		}
		if !ok {
			continue
		}
		for _, prev := range ls {
			if port != "0" && port == prev.port && (host == prev.host || allInterfaces(host) || allInterfaces(prev.host)) {
				ch.add(l.path, "conflicts with %s (same port)", prev.path)
				break
			}
		}
		ls = append(ls, listener{l.path, host, port})
	}
}

func allInterfaces(host string) bool {
	return host == "" || host == "0.0.0.0" || host == "::"
}

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
	if c.MaxEntries <= 0 {
		ch.add("cache.max_entries", msgPositive)
	}
	if c.MaxNegativeEntries <= 0 {
		ch.add("cache.max_negative_entries", msgPositive)
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
	case r.DB < 0 || r.DB > maxRedisDB:
		ch.add("cache.redis.db", "must be a database number from 0 to %d", maxRedisDB)
	case r.DB != 0 && mode == RedisModeCluster:
		ch.add("cache.redis.db", "must be 0 in cluster mode (Redis Cluster has one database)")
	case r.DB != 0 && mode == RedisModeStandalone && ru != nil && ru.db >= 0 && ru.db != r.DB:
		ch.add("cache.redis.db", "differs from the database number in the path of cache.redis_url (/%d)", ru.db)
	}
	c.validateRedisTLS(ch, mode, ru)
	if r.PoolSize < 0 {
		ch.add("cache.redis.pool_size", msgNonNegative)
	}
	positive(ch, "cache.redis.dial_timeout", r.DialTimeout)
	switch {
	case r.Timeout <= 0:
		ch.add("cache.redis.timeout", msgPositive)
	case r.Timeout.D() > maxRedisTimeout:
		ch.add("cache.redis.timeout", "must not exceed %s (a slow Redis must be a cache miss, never a slow decision)", maxRedisTimeout)
	}
	if r.CircuitFailures < 1 {
		ch.add("cache.redis.circuit_failures", "must be at least 1")
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
	listed := firsts{}
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
		default:
			if j, dup := listed.add(a, i); dup {
				ch.add(p, "%q is already listed at %s[%d]", a, path, j)
			}
		}
	}
}

func isPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 65535 && s == strconv.Itoa(n)
}

func validateSecret(ch *checker, path string, s Secret) {
	if s.Env != "" && s.File != "" {
		ch.add(path, msgBothSources)
	}
}

func (g *GRPC) validate(ch *checker) {
	if g.MaxRecvMsgBytes < minRecvMsgBytes || g.MaxRecvMsgBytes > maxRecvMsgBytes {
		ch.add("grpc.max_recv_msg_bytes", "must be between %d and %d (64 MiB)", minRecvMsgBytes, maxRecvMsgBytes)
	}
	if g.StreamWorkers < 0 || g.StreamWorkers > maxStreamWorkers {
		ch.add("grpc.stream_workers", "must be between 0 and %d", maxStreamWorkers)
	}
	positive(ch, "grpc.keepalive.time", g.Keepalive.Time)
	positive(ch, "grpc.keepalive.timeout", g.Keepalive.Timeout)
	positive(ch, "grpc.keepalive.min_time", g.Keepalive.MinTime)
	if g.Keepalive.MaxConnectionAge < 0 {
		ch.add("grpc.keepalive.max_connection_age", msgNonNegative)
	}
}

func (j *JWKS) validate(ch *checker) {
	positive(ch, "jwks.min_refresh", j.MinRefresh)
	if j.MaxRefresh <= 0 {
		ch.add("jwks.max_refresh", msgPositive)
	} else if j.MinRefresh > 0 && j.MaxRefresh < j.MinRefresh {
		ch.add("jwks.max_refresh", "must not be less than jwks.min_refresh (%s)", j.MinRefresh.D())
	}
	positive(ch, "jwks.unknown_kid_min_interval", j.UnknownKIDInterval)
	positive(ch, "jwks.timeout", j.Timeout)
}

func positive(ch *checker, path string, d Duration) {
	if d <= 0 {
		ch.add(path, msgPositive)
	}
}

// supportedAlgorithms are the asymmetric JWS algorithms the verifier
// implements; a function so the list cannot be changed at run time.
func supportedAlgorithms() []string {
	return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
}

func (t *Tokens) validate(ch *checker) {
	if t.MaxBytes < 1 || t.MaxBytes > maxTokenBytes {
		ch.add("tokens.max_bytes", "must be between 1 and %d", maxTokenBytes)
	}
	if t.Leeway < 0 {
		ch.add("tokens.leeway", msgNonNegative)
	} else if t.Leeway.D() > maxLeeway {
		ch.add("tokens.leeway", "must not exceed 5m")
	}
	if len(t.Algorithms) == 0 {
		ch.add("tokens.algorithms", msgNotEmpty)
	}
	supported := supportedAlgorithms()
	listed := firsts{}
	for i, alg := range t.Algorithms {
		p := fmt.Sprintf("tokens.algorithms[%d]", i)
		switch {
		case strings.EqualFold(alg, "none"):
			// An unsigned token proves nothing.
			ch.add(p, "%q is never accepted (tokens must be signed)", alg)
		case strings.HasPrefix(strings.ToUpper(alg), "HS"):
			// With a shared secret, every holder of the key (each
			// resource server) could mint tokens for all the others.
			ch.add(p, "%q is never accepted (symmetric algorithms are not allowed)", alg)
		case !slices.Contains(supported, alg):
			ch.add(p, "%q is not supported (use one of %s)", alg, strings.Join(supported, ", "))
		default:
			if k, dup := listed.add(alg, i); dup {
				ch.add(p, "%q is already listed at tokens.algorithms[%d]", alg, k)
			}
		}
	}
}

// reservedHeaders cannot carry identity: they have their own meaning to the
// proxy or the upstream, and overwriting one would break the request or,
// for authorization and cookie, pass a credential along.
func reservedHeaders() []string {
	return []string{
		"authorization", "cookie", "host", "content-length", "transfer-encoding",
		"connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer", "upgrade",
	}
}

func (u *Upstream) validate(ch *checker) {
	headers := []struct{ path, name string }{
		{"upstream.subject_header", u.SubjectHeader},
		{"upstream.client_id_header", u.ClientIDHeader},
		{"upstream.scopes_header", u.ScopesHeader},
	}
	for i, h := range headers {
		switch {
		case h.name == "":
			ch.add(h.path, msgNotEmpty)
		case strings.HasPrefix(h.name, ":"):
			ch.add(h.path, "must not be a pseudo-header")
		case !isToken(h.name):
			ch.add(h.path, "must be a valid HTTP header name (RFC 9110 token characters)")
		case h.name != strings.ToLower(h.name):
			ch.add(h.path, "must be lower case")
		case slices.Contains(reservedHeaders(), h.name):
			ch.add(h.path, "must not be %q", h.name)
		default:
			for _, prev := range headers[:i] {
				if prev.name == h.name {
					ch.add(h.path, "must differ from %s", prev.path)
					break
				}
			}
		}
	}
}

// issuerUse remembers where an issuer was first listed, to hold every
// listing of it to the same settings: the key set, the discovery document
// and the introspection client exist once per issuer.
type issuerUse struct {
	path string
	as   AuthorizationServer
}

// validateLogin checks the browser login settings: the shared ones always
// (they have defaults), the secrets and clients when a resource enables it.
func (c *Config) validateLogin(ch *checker) {
	l := &c.Login
	validateSecret(ch, "login.session_key", l.SessionKey)
	positive(ch, "login.session_ttl", l.SessionTTL)
	positive(ch, "login.state_ttl", l.StateTTL)
	if l.CookieName != "" && !isToken(l.CookieName) {
		ch.add("login.cookie_name", "must be a cookie name (RFC 6265 token characters)")
	} else if l.CookieName != "" {
		// The prefixes (RFC 6265bis §4.1.3): on https the session cookie is Secure, Path=/ and
		// without Domain, so __Host- is always possible, and keeps a sibling host from setting
		// it; plain http cannot set Secure cookies, which both prefixes require.
		scheme, _, _ := strings.Cut(strings.ToLower(c.PublicURL), "://")
		lower := strings.ToLower(l.CookieName)
		switch {
		case scheme == "https" && !strings.HasPrefix(l.CookieName, "__Host-"):
			ch.add("login.cookie_name", "must start with __Host- when public_url is https (the cookie is Secure, Path=/ and without Domain, so sibling hosts cannot overwrite it)")
		case scheme == "http" && (strings.HasPrefix(lower, "__host-") || strings.HasPrefix(lower, "__secure-")):
			ch.add("login.cookie_name", "must not start with __Host- or __Secure- when public_url is plain http (such cookies must be Secure)")
		}
	}
	paths := firsts{}
	for _, p := range []struct{ key, path string }{
		{"login.login_path", l.LoginPath}, {"login.callback_path", l.CallbackPath}, {"login.logout_path", l.LogoutPath},
	} {
		switch {
		case !strings.HasPrefix(p.path, "/") || strings.HasPrefix(p.path, "//") || strings.ContainsAny(p.path, "?#\\ "):
			ch.add(p.key, `must be a path such as "/oauth/login" (no query, fragment or spaces)`)
		case strings.HasPrefix(p.path, wellKnownPrefix):
			ch.add(p.key, "must not be under %s", wellKnownPrefix)
		default:
			if _, dup := paths.add(p.path, 0); dup {
				ch.add(p.key, "%q is used by another login path", p.path)
			}
		}
	}
	if !strings.HasPrefix(l.SuccessRedirect, "/") || strings.HasPrefix(l.SuccessRedirect, "//") || strings.Contains(l.SuccessRedirect, "\\") {
		ch.add("login.success_redirect", `must be a same-origin path such as "/"`)
	}
	if e := l.ErrorPage; e != "" && (!strings.HasPrefix(e, "/") || strings.HasPrefix(e, "//") || strings.Contains(e, "\\")) {
		ch.add("login.error_page", `must be a same-origin path such as "/signin-error"`)
	}
	enabled := false
	for i := range c.Resources {
		r := &c.Resources[i]
		lp := fmt.Sprintf("resources[%d].login", i)
		rl := &r.Login
		if !rl.Enabled {
			if rl.ClientID != "" || !rl.ClientSecret.IsZero() || !rl.PrivateKey.IsZero() || rl.KeyID != "" || rl.Issuer != "" || len(rl.Scopes) > 0 ||
				(rl.AuthMethod != "" && rl.AuthMethod != defaultIntrospectAuth) {
				ch.add(lp, "is set but not enabled (set enabled: true)")
			}
			continue
		}
		enabled = true
		if rl.ClientID == "" {
			ch.add(lp+".client_id", "is required when login is enabled")
		}
		trusted := false
		for _, as := range r.AuthorizationServers {
			trusted = trusted || as.Issuer == rl.Issuer
		}
		if !trusted {
			ch.add(lp+".issuer", "must be one of the resource's authorization_servers")
		}
		validateSecret(ch, lp+".client_secret", rl.ClientSecret)
		validateSecret(ch, lp+".private_key", rl.PrivateKey)
		validateClientAuth(ch, lp, rl.AuthMethod, rl.ClientSecret, rl.PrivateKey, "")
		// offline_access is allowed here: asking for a refresh token is
		// the sign-in's business, unlike a resource's scopes.
		for k, sc := range rl.Scopes {
			if !isScopeToken(sc) {
				ch.add(fmt.Sprintf("%s.scopes[%d]", lp, k), "must be a scope token: printable ASCII without spaces, double quotes or backslashes")
			}
		}
	}
	if !enabled {
		return
	}
	if l.SessionKey.IsZero() {
		ch.add("login.session_key", "is required when a resource enables login (32 bytes, hex or base64, from env or file)")
	}
	if c.PublicURL == "" {
		ch.add("public_url", "is required when a resource enables login (the redirect URI is public_url + login.callback_path)")
	}
}

// wellKnownPrefix is the RFC 9728 path prefix the login paths must stay
// out of.
const wellKnownPrefix = "/.well-known/"

// validatePolicy compiles a CEL policy; each problem is reported with its
// line and column in the expression.
func validatePolicy(ch *checker, path, expr string) {
	if expr == "" {
		ch.add(path, msgNotEmpty)
		return
	}
	if err := compilePolicy(expr); err != nil {
		var ce policy.CompileErrors
		if errors.As(err, &ce) {
			for _, e := range ce {
				ch.add(path, "line %d, column %d: %s", e.Line, e.Column, e.Msg)
			}
			return
		}
		ch.add(path, "%v", err)
	}
}

// compilePolicy compiles with one shared compiler, built on first use.
var compilePolicy = sync.OnceValue(func() func(string) error {
	c, err := policy.NewCompiler()
	if err != nil {
		return func(string) error { return err }
	}
	return func(expr string) error { _, err := c.Compile(expr); return err }
})()

func (c *Config) validateResources(ch *checker) {
	if len(c.Resources) == 0 {
		ch.add("resources", "at least one resource is required")
		return
	}
	names := map[string]string{}
	uris := map[string]string{}
	issuers := map[string]issuerUse{}
	for i := range c.Resources {
		r := &c.Resources[i]
		p := fmt.Sprintf("resources[%d]", i)

		switch {
		case r.Name == "":
			ch.add(p+".name", msgRequired)
		case !isResourceName(r.Name):
			ch.add(p+".name", `must match ^[a-z0-9][a-z0-9_-]*$ (lower-case letters, digits, "-" and "_")`)
		case names[r.Name] != "":
			ch.add(p+".name", "%q is already used by %s", r.Name, names[r.Name])
		default:
			names[r.Name] = p
		}

		if r.Resource == "" {
			ch.add(p+".resource", msgRequired)
		} else {
			for _, msg := range checkWebURL(r.Resource, urlCanonical) {
				ch.add(p+".resource", "%s", msg)
			}
			if prev := uris[r.Resource]; prev != "" {
				ch.add(p+".resource", "%q is already used by %s", r.Resource, prev)
			} else {
				uris[r.Resource] = p
			}
		}
		// When hosts and path_prefix could not be derived, the canonical
		// URI's own error says why; do not repeat it as "empty".
		u, err := url.Parse(r.Resource)
		derivable := err == nil && u.Hostname() != ""

		if len(r.Hosts) == 0 && derivable {
			ch.add(p+".hosts", msgNotEmpty)
		}
		hosts := firsts{}
		for k, h := range r.Hosts {
			hp := fmt.Sprintf("%s.hosts[%d]", p, k)
			if msg := hostProblem(h); msg != "" {
				ch.add(hp, "%s", msg)
			} else if j, dup := hosts.add(h, k); dup {
				ch.add(hp, "%q is already listed at %s.hosts[%d]", h, p, j)
			}
		}

		switch {
		case r.PathPrefix == "" && !derivable:
		case !strings.HasPrefix(r.PathPrefix, "/"):
			ch.add(p+".path_prefix", `must start with "/"`)
		case strings.ContainsAny(r.PathPrefix, "?#"):
			ch.add(p+".path_prefix", `must not contain "?" or "#"`)
		default:
			// The router compares canonical paths (dot segments removed,
			// unreserved characters unescaped): a prefix in another form
			// would never match, or match what the operator did not mean.
			if canon, ok := target.Canonical(r.PathPrefix); !ok {
				if canon == "" {
					ch.add(p+".path_prefix", `must be a plain path: no control characters, spaces, "\", ";", malformed or escaped control percent-escapes`)
				} else {
					ch.add(p+".path_prefix", "is not in canonical form; write %q", canon)
				}
			}
		}
		if r.Preflight != "" && r.Preflight != "answer" && r.Preflight != "forward" {
			ch.add(p+".preflight", `must be "answer" or "forward"`)
		}

		validateAuthorizationServers(ch, p, r.AuthorizationServers, issuers)
		validatePublic(ch, p, r)

		scopeList(ch, p+".scopes_supported", r.ScopesSupported)
		scopeList(ch, p+".required_scopes", r.RequiredScopes)
		for k, rule := range r.Rules {
			scopeList(ch, fmt.Sprintf("%s.rules[%d].scopes", p, k), rule.Scopes)
		}
		if len(r.ScopesSupported) > 0 {
			supported := make(map[string]bool, len(r.ScopesSupported))
			for _, s := range r.ScopesSupported {
				supported[s] = true
			}
			for k, s := range r.RequiredScopes {
				if isScopeToken(s) && !supported[s] {
					ch.add(fmt.Sprintf("%s.required_scopes[%d]", p, k), "%q is not in scopes_supported", s)
				}
			}
			for k, rule := range r.Rules {
				for j, s := range rule.Scopes {
					if isScopeToken(s) && !supported[s] {
						ch.add(fmt.Sprintf("%s.rules[%d].scopes[%d]", p, k, j), "%q is not in scopes_supported", s)
					}
				}
			}
		}
		validateImplications(ch, p+".scope_implications", r.ScopeImplications)
		validateOrigins(ch, p+".allowed_origins", r.AllowedOrigins)
		validateCORS(ch, p+".cors", r.CORS)
		if r.Policy != "" || c.written[p+".policy"] {
			validatePolicy(ch, p+".policy", r.Policy)
		}
		for k, rule := range r.Rules {
			rp := fmt.Sprintf("%s.rules[%d]", p, k)
			if rule.Method == "" {
				ch.add(rp+".method", `must not be empty (omit it, or write "*", for any method)`)
			}
			if len(rule.Scopes) == 0 && rule.Policy == "" {
				ch.add(rp, "adds nothing: set scopes, a policy, or both")
			}
			// Resource URIs are matched in canonical form: a pattern
			// spelled otherwise would silently match nothing.
			if canon, err := mcp.CheckRuleName(rule.Method, rule.Name); err != nil && canon != "" {
				ch.add(rp+".name", "%q %v: write %q", rule.Name, err, canon)
			} else if err != nil {
				ch.add(rp+".name", "%q %v", rule.Name, err)
			}
			if rule.Policy != "" || c.written[rp+".policy"] {
				validatePolicy(ch, rp+".policy", rule.Policy)
			}
		}

		for k, a := range r.Audiences {
			if a == "" {
				ch.add(fmt.Sprintf("%s.audiences[%d]", p, k), msgNotEmpty)
			}
		}
		if r.ResourceDocumentation != "" {
			if u, err := url.Parse(r.ResourceDocumentation); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				ch.add(p+".resource_documentation", "must be an absolute http or https URL")
			}
		}
	}
	validateRouting(ch, c.Resources)
	validateRootMetadata(ch, c.Resources)
}

func validateAuthorizationServers(ch *checker, p string, servers []AuthorizationServer, issuers map[string]issuerUse) {
	if len(servers) == 0 {
		ch.add(p+".authorization_servers", "at least one authorization server is required")
		return
	}
	listed := firsts{}
	introspecting := map[string]int{}
	for k, as := range servers {
		ap := fmt.Sprintf("%s.authorization_servers[%d]", p, k)
		if as.JWKSURI != "" {
			for _, msg := range checkWebURL(as.JWKSURI, urlEndpoint) {
				ch.add(ap+".jwks_uri", "%s", msg)
			}
		}
		if as.Issuer == "" {
			ch.add(ap+".issuer", msgRequired)
			continue
		}
		for _, msg := range checkWebURL(as.Issuer, urlEndpoint) {
			ch.add(ap+".issuer", "%s", msg)
		}
		if j, dup := listed.add(as.Issuer, k); dup {
			ch.add(ap+".issuer", "%q is already listed at %s.authorization_servers[%d]", as.Issuer, p, j)
			continue
		}
		validateTokenMode(ch, ap, &as)
		if as.Introspects() {
			if j, ok := introspecting[p]; ok {
				// An opaque token does not name its issuer: with two
				// introspecting servers it would have to be sent to
				// both, disclosing one server's tokens to the other.
				ch.add(ap+".token_mode", "only one authorization server per resource may introspect; %s.authorization_servers[%d] already does", p, j)
			} else {
				introspecting[p] = k
			}
		}
		prev, seen := issuers[as.Issuer]
		switch {
		case !seen:
			issuers[as.Issuer] = issuerUse{ap, as}
		case prev.as.JWKSURI == as.JWKSURI:
			if !reflect.DeepEqual(prev.as, as) {
				ch.add(ap, "differs from %s, which lists the same issuer (an issuer is configured once: repeat it identically, for example with a YAML anchor)", prev.path)
			}
		case prev.as.JWKSURI == "":
			ch.add(ap+".jwks_uri", "is set, but %s lists the same issuer without one (discovery)", prev.path)
		case as.JWKSURI == "":
			ch.add(ap+".jwks_uri", "is missing, but %s.jwks_uri sets it for the same issuer", prev.path)
		default:
			ch.add(ap+".jwks_uri", "differs from %s.jwks_uri for the same issuer", prev.path)
		}
	}
}

// Limits on the introspection client.
const (
	maxIntrospectTimeout = 10 * time.Second
	maxClaimNameBytes    = 256
	maxKeepClaims        = 32
)

// validateTokenMode checks the token mode, the claim names and the
// introspection client of one authorization server.
func validateTokenMode(ch *checker, ap string, as *AuthorizationServer) {
	for _, c := range []struct{ key, name string }{
		{"audience_claim", as.AudienceClaim}, {"scope_claim", as.ScopeClaim}, {"client_id_claim", as.ClientIDClaim},
	} {
		if c.name == "" || len(c.name) > maxClaimNameBytes {
			ch.add(ap+"."+c.key, "must be a claim name of 1 to %d bytes", maxClaimNameBytes)
		}
	}
	if len(as.KeepClaims) > maxKeepClaims {
		ch.add(ap+".keep_claims", "must not list more than %d claims", maxKeepClaims)
	}
	kept := firsts{}
	for k, c := range as.KeepClaims {
		kp := fmt.Sprintf("%s.keep_claims[%d]", ap, k)
		switch {
		case c == "" || len(c) > maxClaimNameBytes:
			ch.add(kp, "must be a claim name of 1 to %d bytes", maxClaimNameBytes)
		default:
			if j, dup := kept.add(c, k); dup {
				ch.add(kp, "%q is already listed at %s.keep_claims[%d]", c, ap, j)
			}
		}
	}
	in := &as.Introspection
	ip := ap + ".introspection"
	switch as.TokenMode {
	case TokenModeJWT:
		for _, k := range []struct {
			path string
			set  bool
		}{
			{ip + ".endpoint", in.Endpoint != ""},
			{ip + ".client_id", in.ClientID != ""},
			{ip + ".auth_method", in.AuthMethod != "" && in.AuthMethod != defaultIntrospectAuth},
			{ip + ".client_secret", !in.ClientSecret.IsZero()},
			{ip + ".private_key", !in.PrivateKey.IsZero()},
			{ip + ".key_id", in.KeyID != ""},
			{ip + ".timeout", in.Timeout != 0 && in.Timeout.D() != defaultIntrospectTimeout},
			{ip + ".cache_ttl", in.CacheTTL != 0 && in.CacheTTL.D() != defaultIntrospectCacheTTL},
		} {
			if k.set {
				ch.add(k.path, `is set but token_mode is "jwt" (set token_mode: introspection or auto)`)
			}
		}
		return
	case TokenModeIntrospection:
		if as.JWKSURI != "" {
			ch.add(ap+".jwks_uri", `is not used when token_mode is "introspection"`)
		}
		if !as.RequiresTyp() {
			// The server's introspection answer says what kind of
			// token it is (token_type); no JWT header is read.
			ch.add(ap+".require_typ", `is not used when token_mode is "introspection"`)
		}
	case TokenModeAuto:
	default:
		ch.add(ap+".token_mode", `must be "jwt", "introspection" or "auto"`)
		return
	}
	if in.Endpoint != "" {
		for _, msg := range checkWebURL(in.Endpoint, urlEndpoint) {
			ch.add(ip+".endpoint", "%s", msg)
		}
	}
	if in.ClientID == "" {
		ch.add(ip+".client_id", "is required when token_mode is %q", as.TokenMode)
	}
	validateSecret(ch, ip+".client_secret", in.ClientSecret)
	validateSecret(ch, ip+".private_key", in.PrivateKey)
	validateClientAuth(ch, ip, in.AuthMethod, in.ClientSecret, in.PrivateKey, in.KeyID)
	switch {
	case in.Timeout <= 0:
		ch.add(ip+".timeout", msgPositive)
	case in.Timeout.D() > maxIntrospectTimeout:
		ch.add(ip+".timeout", "must not exceed %s (keep it under the proxy's ext_authz timeout)", maxIntrospectTimeout)
	}
	positive(ch, ip+".cache_ttl", in.CacheTTL)
}

// validateClientAuth checks a confidential client's authentication at p
// (an introspection or login block): the credential its method needs, and
// none it does not use.
func validateClientAuth(ch *checker, p, method string, secret, key Secret, keyID string) {
	switch method {
	case AuthClientSecretBasic, AuthClientSecretPost:
		if secret.IsZero() {
			ch.add(p+".client_secret", "is required with auth_method %s", method)
		}
		if !key.IsZero() {
			ch.add(p+".private_key", "is used only with auth_method private_key_jwt")
		}
		if keyID != "" {
			ch.add(p+".key_id", "is used only with auth_method private_key_jwt")
		}
	case AuthPrivateKeyJWT:
		if key.IsZero() {
			ch.add(p+".private_key", "is required with auth_method private_key_jwt")
		}
		if !secret.IsZero() {
			ch.add(p+".client_secret", "is not used with auth_method private_key_jwt")
		}
	default:
		ch.add(p+".auth_method", "must be client_secret_basic, client_secret_post or private_key_jwt")
	}
}

// firsts finds repeated list entries in linear time: a generated file with
// thousands of hosts should not make check-config quadratic.
type firsts map[string]int

// add records v at index i, or reports the index where v was first seen.
func (f firsts) add(v string, i int) (first int, dup bool) {
	if j, ok := f[v]; ok {
		return j, true
	}
	f[v] = i
	return i, false
}

// offlineAccess asks an authorization server for a refresh token (OpenID
// Connect Core §11). It is never a resource's scope: a resource that
// required or advertised it would make MCP clients ask every user for
// offline access.
const offlineAccess = "offline_access"

const msgOfflineAccess = "offline_access is for the authorization server (refresh tokens), never a resource's scope"

func scopeList(ch *checker, path string, scopes []string) {
	listed := firsts{}
	for k, s := range scopes {
		sp := fmt.Sprintf("%s[%d]", path, k)
		switch {
		case s == "":
			ch.add(sp, msgNotEmpty)
		case s == offlineAccess:
			ch.add(sp, msgOfflineAccess)
		case !isScopeToken(s):
			ch.add(sp, "must be a scope token: printable ASCII without spaces, double quotes or backslashes")
		default:
			if j, dup := listed.add(s, k); dup {
				ch.add(sp, "%q is already listed at %s[%d]", s, path, j)
			}
		}
	}
}

// validateImplications checks a scope hierarchy: scope tokens throughout,
// no scope implying itself. Keys are visited in sorted order so that
// messages come out the same on every run.
func validateImplications(ch *checker, path string, imp map[string][]string) {
	keys := make([]string, 0, len(imp))
	for k := range imp {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		kp := fmt.Sprintf("%s[%q]", path, k)
		switch {
		case k == offlineAccess:
			ch.add(kp, msgOfflineAccess)
			continue
		case !isScopeToken(k):
			ch.add(kp, "the key must be a scope token: printable ASCII without spaces, double quotes or backslashes")
			continue
		}
		if len(imp[k]) == 0 {
			ch.add(kp, "must list at least one implied scope")
		}
		scopeList(ch, kp, imp[k])
		if slices.Contains(imp[k], k) {
			ch.add(kp, "%q cannot imply itself", k)
		}
	}
}

// validateOrigins checks allowed_origins: "*", or serialized origins
// (RFC 6454 §6.2) in lower case, as browsers send them.
func validateOrigins(ch *checker, path string, origins []string) {
	listed := firsts{}
	for k, o := range origins {
		op := fmt.Sprintf("%s[%d]", path, k)
		if j, dup := listed.add(o, k); dup {
			ch.add(op, "%q is already listed at %s[%d]", o, path, j)
			continue
		}
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		switch {
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Opaque != "":
			ch.add(op, `must be "*" or an origin such as "https://app.example.com" (scheme://host[:port])`)
		case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.ContainsAny(o, "?#"):
			ch.add(op, "must be an origin only: scheme://host[:port], with no path, query or user")
		case o != strings.ToLower(o):
			ch.add(op, "must be lower case, as browsers send the Origin header")
		case (u.Scheme == "https" && u.Port() == "443") || (u.Scheme == "http" && u.Port() == "80"):
			ch.add(op, "must not include the default port (browsers omit it)")
		}
	}
}

// validateCORS checks a resource's cors block: what it lists is sent in
// headers, so only tokens (RFC 9110 §5.6.2) may appear, and "*" only where
// it has the meaning types.go gives it.
func validateCORS(ch *checker, path string, c CORS) {
	methods := firsts{}
	for k, m := range c.AllowMethods {
		mp := fmt.Sprintf("%s.allow_methods[%d]", path, k)
		switch {
		case !isToken(m) || strings.Contains(m, "*"):
			ch.add(mp, `must be a method name such as "POST" ("*" is not honoured on credentialed requests: list the methods)`)
		default:
			if j, dup := methods.add(m, k); dup {
				ch.add(mp, "%q is already listed at %s.allow_methods[%d]", m, path, j)
			}
		}
	}
	headers := firsts{}
	for k, h := range c.AllowHeaders {
		hp := fmt.Sprintf("%s.allow_headers[%d]", path, k)
		star := strings.IndexByte(h, '*')
		switch {
		case !isToken(h) || (star >= 0 && h != "*" && star != len(h)-1):
			ch.add(hp, `must be a header name such as "Mcp-Method", a prefix ending in "*" such as "Mcp-Param-*", or "*"`)
		case h == "*" && len(c.AllowHeaders) > 1:
			ch.add(hp, `"*" allows every header: list nothing beside it`)
		default:
			if j, dup := headers.add(strings.ToLower(h), k); dup {
				ch.add(hp, "%q is already listed at %s.allow_headers[%d] (header names are case-insensitive)", h, path, j)
			}
		}
	}
	if c.MaxAge < 0 || c.MaxAge.D()%time.Second != 0 {
		ch.add(path+".max_age", `must be a whole number of seconds, 0 or more, such as "10m"`)
	}
}

// Warnings returns what a valid configuration allows but an operator
// should know: settings that are safe only if the proxy is wired a certain
// way. check-config prints them; serve logs them.
func Warnings(c *Config) []string {
	var out []string
	if !c.RequireExplicitResource {
		// Two resources told apart only by host: whoever writes the Host
		// header (the client) picks the resource, and with it the audience
		// a token must carry (RFC 8707), unless the proxy routes by the same
		// host or names the resource itself.
		for j := range c.Resources {
			for i := range j {
				a, b := c.Resources[i], c.Resources[j]
				if strings.TrimSuffix(a.PathPrefix, "/") == strings.TrimSuffix(b.PathPrefix, "/") {
					out = append(out, fmt.Sprintf("resources[%d] and resources[%d] differ only by host: unless every proxy route names its resource "+
						"(Envoy context_extensions, /authz/nginx/<resource>, /authz/traefik/<resource>) or routes by the same hosts, "+
						"a client chooses between them with the Host header; once every route names its resource, set require_explicit_resource: true", i, j))
				}
			}
		}
	}
	return out
}

// validateRouting rejects two resources that would match exactly the same
// requests: the first would always win and the second could only be reached
// through context_extensions, which is never what the operator meant.
func validateRouting(ch *checker, rs []Resource) {
	routes := map[string]int{}
	for j, r := range rs {
		if len(r.Hosts) == 0 || r.PathPrefix == "" {
			continue
		}
		// The host set, order and repeats ignored, then the prefix; NUL
		// cannot occur in a valid host.
		hosts := slices.Clone(r.Hosts)
		slices.Sort(hosts)
		key := strings.Join(slices.Compact(hosts), "\x00") + "\x00\x00" + r.PathPrefix
		if i, dup := routes[key]; dup {
			ch.add(fmt.Sprintf("resources[%d]", j), "has the same hosts and path_prefix as resources[%d] (ambiguous routing)", i)
			continue
		}
		routes[key] = j
	}
}

// validateRootMetadata: the document at a host's root well-known path
// (RFC 9728 §3 without a path suffix) must be one resource's, never a
// guess: the resource whose URI has the path "/", else the one marked
// root_metadata. Two claimants on one host are refused.
func validateRootMetadata(ch *checker, rs []Resource) {
	type claim struct {
		i      int
		atRoot bool // the URI's path is "/": the root document is its own
	}
	owners := map[string]claim{}
	for j, r := range rs {
		u, err := url.Parse(r.Resource)
		atRoot := err == nil && (u.EscapedPath() == "" || u.EscapedPath() == "/")
		if !atRoot && !r.RootMetadata {
			continue
		}
		for _, h := range r.Hosts {
			h = strings.ToLower(h)
			prev, taken := owners[h]
			switch {
			case !taken:
				owners[h] = claim{j, atRoot}
			case r.RootMetadata && prev.atRoot:
				ch.add(fmt.Sprintf("resources[%d].root_metadata", j), "resources[%d] has the path / and serves the root metadata document of host %q", prev.i, h)
			case r.RootMetadata:
				ch.add(fmt.Sprintf("resources[%d].root_metadata", j), "resources[%d] already serves the root metadata document of host %q", prev.i, h)
			case rs[prev.i].RootMetadata:
				ch.add(fmt.Sprintf("resources[%d].root_metadata", prev.i), "resources[%d] has the path / and serves the root metadata document of host %q", j, h)
			}
		}
	}
}

// urlRule selects what checkWebURL allows beyond an absolute https URL.
type urlRule int

const (
	urlOrigin    urlRule = iota // public_url: scheme://host[:port], at most a "/" path
	urlEndpoint                 // issuer, jwks_uri: any path
	urlCanonical                // resource: any path, canonical (lower-case) scheme and host
)

// checkWebURL returns every problem with raw as a URL that clients or the
// gateway will use: absolute, https (http only on loopback, for local
// development, as OAuth 2.1 and MCP allow), no credentials, no query or
// fragment.
func checkWebURL(raw string, rule urlRule) []string {
	u, err := url.Parse(raw)
	if err != nil {
		// The inner error, because url.Error repeats the whole URL.
		var ue *url.Error
		if errors.As(err, &ue) {
			return []string{"must be a valid URL: " + ue.Err.Error()}
		}
		return []string{"must be a valid URL"}
	}
	if u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		return []string{msgHTTPS}
	}
	var msgs []string
	if u.Scheme != "https" && (u.Scheme != "http" || !IsLoopbackHost(u.Hostname())) {
		msgs = append(msgs, msgHTTPS)
	}
	if u.User != nil {
		msgs = append(msgs, "must not contain a user name or password")
	}
	if rule == urlCanonical {
		// url.Parse lower-cases the scheme, so look at the text itself.
		if raw[:len(u.Scheme)] != u.Scheme || u.Host != strings.ToLower(u.Host) {
			msgs = append(msgs, "scheme and host must be lower case (canonical form)")
		}
		if (u.Scheme == "https" && u.Port() == "443") || (u.Scheme == "http" && u.Port() == "80") {
			msgs = append(msgs, "must not include the default port (canonical form)")
		}
	}
	if rule == urlOrigin && u.Path != "" && u.Path != "/" {
		msgs = append(msgs, "must not have a path (only scheme://host[:port])")
	}
	if u.RawQuery != "" || u.ForceQuery {
		msgs = append(msgs, "must not have a query")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		msgs = append(msgs, "must not have a fragment")
	}
	return msgs
}

// IsLoopbackHost reports whether host (a host name or IP address, without
// port; brackets around an IPv6 address are allowed) names this machine:
// localhost, a *.localhost name (RFC 6761 reserves them), 127.0.0.0/8 or
// ::1. Plain http is allowed only to such hosts.
func IsLoopbackHost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if h == "localhost" || (strings.HasSuffix(h, ".localhost") && len(h) > len(".localhost")) {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// hostProblem returns what is wrong with a resources[].hosts entry, or "".
func hostProblem(h string) string {
	if h == "" {
		return msgNotEmpty
	}
	lower := strings.ToLower(h)
	name, _ := strings.CutPrefix(lower, "*.")
	if net.ParseIP(lower) == nil && !isHostname(name) {
		return `must be a host name, an IP address or "*.suffix", with no scheme, port or path`
	}
	if h != lower {
		return "must be lower case"
	}
	return ""
}

// isHostname reports whether s is a lower-case DNS name (RFC 1123 labels).
func isHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := range len(label) {
			c := label[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return false
			}
		}
	}
	return true
}

// isResourceName matches ^[a-z0-9][a-z0-9_-]*$: names appear in metric
// labels and Envoy context_extensions, so they stay plain.
func isResourceName(s string) bool {
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

// isScopeToken matches RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
func isScopeToken(s string) bool {
	for i := range len(s) {
		c := s[i]
		if c != 0x21 && (c < 0x23 || c > 0x5B) && (c < 0x5D || c > 0x7E) {
			return false
		}
	}
	return s != ""
}

// isToken matches an RFC 9110 §5.6.2 token, the syntax of a header name.
func isToken(s string) bool {
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return s != ""
}
