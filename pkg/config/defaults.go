package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Off disables the HTTP or admin listener when written as its address.
const Off = "off"

// Defaults. api/config.schema.json and docs/configuration.md show them as
// ApplyDefaults sets them: both are generated (generate.go).
const (
	defaultGRPCAddr           = "127.0.0.1:9001"
	defaultHTTPAddr           = "127.0.0.1:8080"
	defaultAdminAddr          = "127.0.0.1:9090"
	defaultMaxTTL             = 5 * time.Minute
	defaultNegativeTTL        = 10 * time.Second
	defaultMaxEntries         = 100000
	defaultMaxNegativeEntries = 10000
	defaultRevokedTTL         = 24 * time.Hour
	defaultRedisDialTimeout   = time.Second
	defaultRedisTimeout       = 25 * time.Millisecond
	defaultCircuitFailures    = 5
	defaultCircuitCooldown    = 2 * time.Second
	defaultMaxRecvMsgBytes    = 4 << 20
	defaultGCHeadroomBytes    = 32 << 20
	defaultStreamWorkers      = 128
	defaultKeepaliveTime      = 60 * time.Second
	defaultKeepaliveTimeout   = 20 * time.Second
	defaultKeepaliveMinTime   = 10 * time.Second
	defaultJWKSMinRefresh     = 5 * time.Minute
	defaultJWKSMaxRefresh     = time.Hour
	defaultUnknownKIDInterval = 10 * time.Second
	defaultJWKSTimeout        = 5 * time.Second
	defaultTokenMaxBytes      = 16384
	defaultLeeway             = 60 * time.Second
	defaultSubjectHeader      = "x-extauthz-subject"
	defaultClientIDHeader     = "x-extauthz-client-id"
	defaultScopesHeader       = "x-extauthz-scopes"
	defaultUnmatched          = "deny"
	defaultPreflight          = "answer"
	defaultLogLevel           = "info"
	defaultLogFormat          = "json"
	defaultTokenMode          = TokenModeJWT
	defaultAudienceClaim      = "aud"
	defaultScopeClaim         = "scope"
	defaultClientIDClaim      = "client_id"
	defaultIntrospectAuth     = AuthClientSecretBasic
	defaultIntrospectTimeout  = 300 * time.Millisecond
	defaultIntrospectCacheTTL = time.Minute
	defaultMCPMaxBodyBytes    = 64 << 10
	defaultExtProcMaxBody     = 1 << 20
	defaultRuleGlob           = "*"
	defaultSessionTTL         = 8 * time.Hour
	defaultStateTTL           = 10 * time.Minute
	defaultLoginPath          = "/oauth/login"
	defaultCallbackPath       = "/oauth/callback"
	defaultLogoutPath         = "/oauth/logout"
	defaultSuccessRedirect    = "/"

	defaultUpstreamTimeout         = 2 * time.Second
	defaultUpstreamExpiryMargin    = 30 * time.Second
	defaultUpstreamRefreshAhead    = 0.2
	defaultUpstreamRefusalTTL      = 30 * time.Second
	defaultUpstreamDefaultLifetime = time.Minute
	defaultUpstreamTokenEntries    = 100000

	defaultDPoPMode          = DPoPAllowed
	defaultDPoPMaxAge        = time.Minute
	defaultDPoPNonceLifetime = 5 * time.Minute
	defaultDPoPLeeway        = 5 * time.Second
	defaultDPoPReplayEntries = 1000000

	defaultMaxTokenLifetime       = 24 * time.Hour
	defaultRevocationSyncInterval = time.Minute
)

// Defaults of the ssf section.
const (
	defaultSSFPath          = "/ssf/events"
	defaultSSFMaxAge        = time.Hour
	defaultSSFLeeway        = time.Minute
	defaultSSFMaxBytes      = 64 << 10
	defaultSSFEmailClaim    = "email"
	defaultSSFOpaqueClaim   = "sub"
	defaultSSFPollInterval  = 30 * time.Second
	defaultSSFPollMaxEvents = 100
)

// defaultDPoPAlgorithms are the proof algorithms accepted by default: those
// clients use (ES256 above all), none that is slow to verify (ES512) or
// rare (RS384/512, PS384/512).
func defaultDPoPAlgorithms() []string {
	return []string{"ES256", "ES384", "EdDSA", "RS256", "PS256"}
}

// defaultAlgorithms is a function, not a variable, so that no caller can
// change the default for everyone by appending to a shared slice. ES512 is
// accepted when listed but is not a default: P-521 keys are rare and slow.
func defaultAlgorithms() []string {
	return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"}
}

// ApplyDefaults fills every unset field with its default, derives each
// resource's hosts, path_prefix and scopes_supported from its other fields,
// lower-cases the upstream header names and drops a trailing "/" from
// public_url. It is safe to call more than once.
//
// For a Config built in memory a zero value means unset, so a dev-mode
// caller that wants negative caching off or no leeway sets those fields to 0
// after calling ApplyDefaults. For a Config from Parse, a key written in the
// file is never overwritten, even when its value is zero.
func (c *Config) ApplyDefaults() {
	orDefault(c, "listen.grpc", &c.Listen.GRPC, defaultGRPCAddr)
	orDefault(c, "listen.http", &c.Listen.HTTP, defaultHTTPAddr)
	orDefault(c, "listen.admin", &c.Listen.Admin, defaultAdminAddr)
	if u, err := url.Parse(c.PublicURL); err == nil && u.Path == "/" && strings.HasSuffix(c.PublicURL, "/") &&
		!strings.ContainsAny(c.PublicURL, "?#") {
		c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	}

	orDefault(c, "cache.max_ttl", &c.Cache.MaxTTL, Duration(defaultMaxTTL))
	orDefault(c, "cache.negative_ttl", &c.Cache.NegativeTTL, Duration(defaultNegativeTTL))
	orDefault(c, "cache.max_entries", &c.Cache.MaxEntries, defaultMaxEntries)
	orDefault(c, "cache.max_negative_entries", &c.Cache.MaxNegativeEntries, defaultMaxNegativeEntries)
	orDefault(c, "cache.revoked_ttl", &c.Cache.RevokedTTL, Duration(defaultRevokedTTL))
	// Applied whatever the Redis mode, so that a config without Redis
	// still shows the values a Redis would get, and Validate can tell a
	// default from a setting that has no Redis to apply to.
	orDefault(c, "cache.redis.dial_timeout", &c.Cache.Redis.DialTimeout, Duration(defaultRedisDialTimeout))
	orDefault(c, "cache.redis.timeout", &c.Cache.Redis.Timeout, Duration(defaultRedisTimeout))
	orDefault(c, "cache.redis.circuit_failures", &c.Cache.Redis.CircuitFailures, defaultCircuitFailures)
	orDefault(c, "cache.redis.circuit_cooldown", &c.Cache.Redis.CircuitCooldown, Duration(defaultCircuitCooldown))

	orDefault(c, "grpc.max_recv_msg_bytes", &c.GRPC.MaxRecvMsgBytes, defaultMaxRecvMsgBytes)
	orDefault(c, "grpc.stream_workers", &c.GRPC.StreamWorkers, defaultStreamWorkers)
	orDefault(c, "runtime.gc_headroom_bytes", &c.Runtime.GCHeadroomBytes, defaultGCHeadroomBytes)
	orDefault(c, "grpc.keepalive.time", &c.GRPC.Keepalive.Time, Duration(defaultKeepaliveTime))
	orDefault(c, "grpc.keepalive.timeout", &c.GRPC.Keepalive.Timeout, Duration(defaultKeepaliveTimeout))
	orDefault(c, "grpc.keepalive.min_time", &c.GRPC.Keepalive.MinTime, Duration(defaultKeepaliveMinTime))
	if c.GRPC.Keepalive.PermitWithoutStream == nil {
		c.GRPC.Keepalive.PermitWithoutStream = ptr(true)
	}

	orDefault(c, "jwks.min_refresh", &c.JWKS.MinRefresh, Duration(defaultJWKSMinRefresh))
	orDefault(c, "jwks.max_refresh", &c.JWKS.MaxRefresh, Duration(defaultJWKSMaxRefresh))
	orDefault(c, "jwks.unknown_kid_min_interval", &c.JWKS.UnknownKIDInterval, Duration(defaultUnknownKIDInterval))
	orDefault(c, "jwks.timeout", &c.JWKS.Timeout, Duration(defaultJWKSTimeout))

	orDefault(c, "tokens.max_bytes", &c.Tokens.MaxBytes, defaultTokenMaxBytes)
	orDefault(c, "tokens.leeway", &c.Tokens.Leeway, Duration(defaultLeeway))
	if len(c.Tokens.Algorithms) == 0 && !c.written["tokens.algorithms"] {
		c.Tokens.Algorithms = defaultAlgorithms()
	}

	orDefault(c, "upstream.subject_header", &c.Upstream.SubjectHeader, defaultSubjectHeader)
	orDefault(c, "upstream.client_id_header", &c.Upstream.ClientIDHeader, defaultClientIDHeader)
	orDefault(c, "upstream.scopes_header", &c.Upstream.ScopesHeader, defaultScopesHeader)
	// Envoy and HTTP/2 carry header names in lower case; matching and
	// removing them is simpler when the config already does.
	c.Upstream.SubjectHeader = strings.ToLower(c.Upstream.SubjectHeader)
	c.Upstream.ClientIDHeader = strings.ToLower(c.Upstream.ClientIDHeader)
	c.Upstream.ScopesHeader = strings.ToLower(c.Upstream.ScopesHeader)
	if c.Upstream.StripAuthorization == nil {
		c.Upstream.StripAuthorization = ptr(true)
	}
	orDefault(c, "upstream.token_cache_entries", &c.Upstream.TokenCacheEntries, defaultUpstreamTokenEntries)
	orDefault(c, "dpop.nonce_lifetime", &c.DPoP.NonceLifetime, Duration(defaultDPoPNonceLifetime))
	orDefault(c, "dpop.leeway", &c.DPoP.Leeway, Duration(defaultDPoPLeeway))
	orDefault(c, "dpop.replay_entries", &c.DPoP.ReplayEntries, defaultDPoPReplayEntries)
	orDefault(c, "revocation.max_token_lifetime", &c.Revocation.MaxTokenLifetime, Duration(defaultMaxTokenLifetime))
	orDefault(c, "revocation.sync_interval", &c.Revocation.SyncInterval, Duration(defaultRevocationSyncInterval))

	orDefault(c, "unmatched", &c.Unmatched, defaultUnmatched)
	orDefault(c, "log.level", &c.Log.Level, defaultLogLevel)
	orDefault(c, "log.format", &c.Log.Format, defaultLogFormat)
	orDefault(c, "log.audit.allow_sample_rate", &c.Log.Audit.AllowSampleRate, 1.0)
	if c.Log.Audit.Enabled == nil {
		c.Log.Audit.Enabled = ptr(true)
	}
	orDefault(c, "mcp.max_body_bytes", &c.MCP.MaxBodyBytes, defaultMCPMaxBodyBytes)
	orDefault(c, "ext_proc.max_body_bytes", &c.ExtProc.MaxBodyBytes, defaultExtProcMaxBody)
	orDefault(c, "login.session_ttl", &c.Login.SessionTTL, Duration(defaultSessionTTL))
	orDefault(c, "login.state_ttl", &c.Login.StateTTL, Duration(defaultStateTTL))
	orDefault(c, "login.login_path", &c.Login.LoginPath, defaultLoginPath)
	orDefault(c, "login.callback_path", &c.Login.CallbackPath, defaultCallbackPath)
	orDefault(c, "login.logout_path", &c.Login.LogoutPath, defaultLogoutPath)
	orDefault(c, "login.success_redirect", &c.Login.SuccessRedirect, defaultSuccessRedirect)

	c.applyFacadeDefaults()
	for i := range c.Resources {
		c.Resources[i].applyDefaults(c, fmt.Sprintf("resources[%d]", i))
	}
	c.SSF.applyDefaults(c)
}

// applyDefaults fills the ssf section and each transmitter's settings.
func (s *SSF) applyDefaults(c *Config) {
	orDefault(c, "ssf.path", &s.Path, defaultSSFPath)
	orDefault(c, "ssf.max_age", &s.MaxAge, Duration(defaultSSFMaxAge))
	orDefault(c, "ssf.leeway", &s.Leeway, Duration(defaultSSFLeeway))
	orDefault(c, "ssf.max_bytes", &s.MaxBytes, defaultSSFMaxBytes)
	for i := range s.Transmitters {
		t := &s.Transmitters[i]
		p := fmt.Sprintf("ssf.transmitters[%d]", i)
		if len(t.Algorithms) == 0 && !c.written[p+".algorithms"] {
			t.Algorithms = defaultAlgorithms()
		}
		orDefault(c, p+".subject_claims.email", &t.SubjectClaims.Email, defaultSSFEmailClaim)
		orDefault(c, p+".subject_claims.opaque", &t.SubjectClaims.Opaque, defaultSSFOpaqueClaim)
		orDefault(c, p+".poll.interval", &t.Poll.Interval, Duration(defaultSSFPollInterval))
		orDefault(c, p+".poll.max_events", &t.Poll.MaxEvents, defaultSSFPollMaxEvents)
	}
}

func (r *Resource) applyDefaults(c *Config, path string) {
	// An unparsable canonical URI derives nothing; Validate reports it.
	u, err := url.Parse(r.Resource)
	if err != nil {
		u = &url.URL{}
	}
	if len(r.Hosts) == 0 && !c.written[path+".hosts"] && u.Hostname() != "" {
		// Lower-cased so that an upper-case canonical URI is reported once,
		// at resource, not a second time at hosts.
		r.Hosts = []string{strings.ToLower(u.Hostname())}
	}
	if r.PathPrefix == "" && !c.written[path+".path_prefix"] && r.Resource != "" && err == nil {
		// The escaped form, because Envoy's :path is the raw request path.
		r.PathPrefix = u.EscapedPath()
		if r.PathPrefix == "" {
			r.PathPrefix = "/"
		}
	}
	orDefault(c, path+".preflight", &r.Preflight, defaultPreflight)
	r.CORS.applyDefaults(c, path+".cors")
	for k := range r.Rules {
		rp := fmt.Sprintf("%s.rules[%d]", path, k)
		orDefault(c, rp+".method", &r.Rules[k].Method, defaultRuleGlob)
		orDefault(c, rp+".name", &r.Rules[k].Name, defaultRuleGlob)
	}
	if len(r.ScopesSupported) == 0 && !c.written[path+".scopes_supported"] {
		// Every scope a request may be asked for: the resource's own,
		// then those of its rules, in order, once each.
		seen := map[string]bool{}
		for _, s := range r.RequiredScopes {
			if !seen[s] {
				seen[s] = true
				r.ScopesSupported = append(r.ScopesSupported, s)
			}
		}
		for _, rule := range r.Rules {
			for _, s := range rule.Scopes {
				if !seen[s] {
					seen[s] = true
					r.ScopesSupported = append(r.ScopesSupported, s)
				}
			}
		}
	}
	for k := range r.AuthorizationServers {
		r.AuthorizationServers[k].applyDefaults(c, fmt.Sprintf("%s.authorization_servers[%d]", path, k))
	}
	// Login settings take their defaults whether or not login is enabled,
	// like the Redis and introspection settings.
	orDefault(c, path+".login.auth_method", &r.Login.AuthMethod, defaultIntrospectAuth)
	if r.Login.Issuer == "" && !c.written[path+".login.issuer"] && len(r.AuthorizationServers) > 0 && r.Login.Enabled {
		r.Login.Issuer = r.AuthorizationServers[0].Issuer
	}
	if len(r.Login.Scopes) == 0 && !c.written[path+".login.scopes"] && r.Login.Enabled {
		r.Login.Scopes = append([]string(nil), r.RequiredScopes...)
	}
	r.UpstreamToken.applyDefaults(c, path+".upstream_token", r.AuthorizationServers)
	orDefault(c, path+".dpop.mode", &r.DPoP.Mode, defaultDPoPMode)
	orDefault(c, path+".dpop.max_age", &r.DPoP.MaxAge, Duration(defaultDPoPMaxAge))
	if len(r.DPoP.Algorithms) == 0 && !c.written[path+".dpop.algorithms"] {
		r.DPoP.Algorithms = defaultDPoPAlgorithms()
	}
}

// applyDefaults fills an upstream_token block's unset keys. Like the login
// settings, they take their defaults whether or not a mode is set; the
// issuer is derived only when one is.
func (u *UpstreamToken) applyDefaults(c *Config, path string, servers []AuthorizationServer) {
	orDefault(c, path+".auth_method", &u.AuthMethod, defaultIntrospectAuth)
	orDefault(c, path+".timeout", &u.Timeout, Duration(defaultUpstreamTimeout))
	orDefault(c, path+".expiry_margin", &u.ExpiryMargin, Duration(defaultUpstreamExpiryMargin))
	orDefault(c, path+".refresh_ahead", &u.RefreshAhead, defaultUpstreamRefreshAhead)
	orDefault(c, path+".refusal_ttl", &u.RefusalTTL, Duration(defaultUpstreamRefusalTTL))
	orDefault(c, path+".default_lifetime", &u.DefaultLifetime, Duration(defaultUpstreamDefaultLifetime))
	if u.Issuer == "" && !c.written[path+".issuer"] && u.Mode != "" && len(servers) > 0 {
		u.Issuer = servers[0].Issuer
	}
}

func (as *AuthorizationServer) applyDefaults(c *Config, path string) {
	orDefault(c, path+".token_mode", &as.TokenMode, defaultTokenMode)
	orDefault(c, path+".audience_claim", &as.AudienceClaim, defaultAudienceClaim)
	orDefault(c, path+".scope_claim", &as.ScopeClaim, defaultScopeClaim)
	orDefault(c, path+".client_id_claim", &as.ClientIDClaim, defaultClientIDClaim)
	if as.RequireTyp == nil {
		// Set, so that two listings of one issuer, one with the default
		// written out and one without, are the same settings.
		as.RequireTyp = ptr(true)
	}
	// Applied whatever the mode, like the Redis settings: Validate tells
	// a default from a setting that a "jwt" server would ignore.
	in := &as.Introspection
	orDefault(c, path+".introspection.auth_method", &in.AuthMethod, defaultIntrospectAuth)
	orDefault(c, path+".introspection.timeout", &in.Timeout, Duration(defaultIntrospectTimeout))
	orDefault(c, path+".introspection.cache_ttl", &in.CacheTTL, Duration(defaultIntrospectCacheTTL))
}

// orDefault sets *p to def when it is zero and the file did not write it.
func orDefault[T comparable](c *Config, path string, p *T, def T) {
	var zero T
	if *p == zero && !c.written[path] {
		*p = def
	}
}

func ptr[T any](v T) *T { return &v }

// StripAuthorization reports whether the inbound Authorization header is
// removed before the request reaches the upstream. Unset means true: MCP
// forbids passing the client's token through.
func (c *Config) StripAuthorization() bool {
	return c.Upstream.StripAuthorization == nil || *c.Upstream.StripAuthorization
}

// PermitsWithoutStream reports whether clients may send keepalive pings on
// a connection with no active stream. Unset means true: Envoy keeps idle
// ext_authz connections open and pings them.
func (k Keepalive) PermitsWithoutStream() bool {
	return k.PermitWithoutStream == nil || *k.PermitWithoutStream
}

// The request headers an MCP client sends in the streamable HTTP transport
// (2025-06-18 and 2026-07-28, SEP-2243), allowed by default.
var defaultCORSHeaders = []string{"Authorization", "Content-Type", "Mcp-Protocol-Version", "Mcp-Method", "Mcp-Name",
	"Mcp-Session-Id", "Last-Event-ID", "Mcp-Param-*"}

func (cc *CORS) applyDefaults(c *Config, path string) {
	if len(cc.AllowMethods) == 0 && !c.written[path+".allow_methods"] {
		cc.AllowMethods = []string{"GET", "POST", "DELETE"}
	}
	if len(cc.AllowHeaders) == 0 && !c.written[path+".allow_headers"] {
		cc.AllowHeaders = slices.Clone(defaultCORSHeaders)
	}
	orDefault(c, path+".max_age", &cc.MaxAge, Duration(10*time.Minute))
}
