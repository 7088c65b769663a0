package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole policy file. Field comments name the YAML key and its
// default; docs/configuration.md documents each key for operators.
type Config struct {
	// Listen holds the listener addresses.
	Listen Listen `yaml:"listen"`
	// PublicURL is how clients reach the gateway (scheme://host[:port], no
	// path). It prefixes the protected-resource metadata URL in challenges.
	// Empty: the origin of each resource's canonical URI.
	PublicURL string `yaml:"public_url"`
	// Cache configures the verified-token cache.
	Cache Cache `yaml:"cache"`
	// Admin holds what protects the admin listener's mutating endpoints.
	Admin Admin `yaml:"admin"`
	// GRPC tunes the Check server.
	GRPC GRPC `yaml:"grpc"`
	// Runtime tunes the Go runtime.
	Runtime Runtime `yaml:"runtime"`
	// JWKS tunes how issuers' key sets are fetched and refreshed.
	JWKS JWKS `yaml:"jwks"`
	// Tokens holds the JWT acceptance rules shared by all issuers.
	Tokens Tokens `yaml:"tokens"`
	// Upstream says what an allowed request carries to the MCP server.
	Upstream Upstream `yaml:"upstream"`
	// Unmatched is the answer for a request that matches no resource:
	// "deny" (default, 403) or "allow" (passes with no identity headers).
	Unmatched string `yaml:"unmatched"`
	// RequireExplicitResource refuses (403) every Check whose route does
	// not name its resource (Envoy context_extensions, or the HTTP mode's
	// per-resource endpoints): the resource is then never chosen by the
	// Host header, which a client writes.
	RequireExplicitResource bool `yaml:"require_explicit_resource"`
	// Log configures the process log.
	Log Log `yaml:"log"`
	// MCP holds the limits of reading MCP operations for the rules.
	MCP MCP `yaml:"mcp"`
	// Login configures the browser login flow (sessions, cookie, paths),
	// used by the resources that enable it.
	Login Login `yaml:"login"`
	// Resources are the protected resources (MCP servers). At least one.
	Resources []Resource `yaml:"resources"`

	// written holds the key paths (as in "cache.negative_ttl") that Parse
	// found in the file with a value, so ApplyDefaults keeps an explicit
	// zero ("negative_ttl: 0s" disables negative caching) instead of
	// replacing it. Nil for a Config built in memory: there, zero means unset.
	written map[string]bool
}

// Listen holds listener addresses (host:port). An omitted address takes its
// default; "off" disables the HTTP or admin listener (gRPC cannot be disabled).
type Listen struct {
	GRPC  string `yaml:"grpc"`  // default 127.0.0.1:9001
	HTTP  string `yaml:"http"`  // default 127.0.0.1:8080
	Admin string `yaml:"admin"` // default 127.0.0.1:9090
}

// Cache configures the verified-token cache.
type Cache struct {
	// RedisURL selects a single Redis server as the shared tier (standalone
	// mode; default empty). At most one of RedisURL, Redis.Sentinel and
	// Redis.Cluster is set; none means in-process only. Its path (/N) is the
	// database number, and rediss:// turns TLS on.
	RedisURL string `yaml:"redis_url"`
	// RedisPassword is the password of the Redis data nodes in every mode,
	// read from the environment or a file, never inline (default unset).
	RedisPassword Secret `yaml:"redis_password"`
	// MaxTTL caps how long a verified token is cached (default 5m); an entry
	// never outlives its token's exp.
	MaxTTL Duration `yaml:"max_ttl"`
	// NegativeTTL is how long a definitively invalid token is remembered as
	// invalid (default 10s; 0 disables negative caching).
	NegativeTTL Duration `yaml:"negative_ttl"`
	// MaxEntries bounds the in-process tier of valid tokens (default 100000).
	MaxEntries int `yaml:"max_entries"`
	// MaxNegativeEntries bounds the in-process tier of invalid tokens
	// (default 10000), so a flood of garbage tokens cannot grow memory.
	MaxNegativeEntries int `yaml:"max_negative_entries"`
	// RevokedTTL is how long a purged token stays revoked when its exp is
	// not known (default 24h); when it is known, until exp.
	RevokedTTL Duration `yaml:"revoked_ttl"`
	// Redis holds the Sentinel and Cluster modes and the connection
	// settings shared by every mode.
	Redis Redis `yaml:"redis"`
}

// Redis configures the connection to the shared tier. Setting any key here
// with no Redis configured (RedisMode() == "") is an error rather than
// silently ignored.
type Redis struct {
	// Sentinel selects a master through Redis Sentinel (any field set).
	Sentinel RedisSentinel `yaml:"sentinel"`
	// Cluster selects a Redis Cluster (any field set).
	Cluster RedisCluster `yaml:"cluster"`
	// Username is the ACL user of the data nodes (default "": the default
	// user). In standalone mode it may also be written in redis_url; both
	// must then agree.
	Username string `yaml:"username"`
	// DB is the database number, 0 to 1023 (default 0). In standalone mode
	// the path of redis_url (/N) gives it; DB may be set instead of, or
	// equal to, that path. Cluster mode has only database 0.
	DB int `yaml:"db"`
	// TLS configures TLS to Redis (and to the sentinels).
	TLS RedisTLS `yaml:"tls"`
	// PoolSize bounds connections per node (default 0: go-redis's own
	// default, 10 per CPU; 5 per CPU per node in cluster mode).
	PoolSize int `yaml:"pool_size"`
	// DialTimeout bounds establishing one connection (default 1s).
	DialTimeout Duration `yaml:"dial_timeout"`
	// Timeout bounds each read or write (default 25ms, at most 1s): a slow
	// Redis must become a cache miss, never a slow decision.
	Timeout Duration `yaml:"timeout"`
	// CircuitFailures is the number of consecutive failures that open the
	// circuit, after which Redis is skipped (default 5, at least 1).
	CircuitFailures int `yaml:"circuit_failures"`
	// CircuitCooldown is how long the circuit stays open before one probe
	// is let through (default 2s).
	CircuitCooldown Duration `yaml:"circuit_cooldown"`
}

// RedisSentinel names the sentinels and the master they watch.
type RedisSentinel struct {
	// MasterName is the name the sentinels know the master by (required in
	// sentinel mode).
	MasterName string `yaml:"master_name"`
	// Addresses of the sentinels, host:port (at least one in sentinel mode).
	Addresses []string `yaml:"addresses"`
	// Password is the sentinels' own password, when they require one
	// (default unset); the data nodes use cache.redis_password.
	Password Secret `yaml:"password"`
}

// RedisCluster names the seed nodes of a Redis Cluster; the others are
// discovered from them.
type RedisCluster struct {
	// Addresses of seed nodes, host:port (at least one in cluster mode).
	Addresses []string `yaml:"addresses"`
}

// RedisTLS configures TLS to Redis. TLS is on when Enabled is true or
// redis_url is rediss://; certificate files are read at start, not by
// Validate.
type RedisTLS struct {
	// Enabled turns TLS on (default false; a rediss:// URL also does).
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle that verifies the server (default "": the
	// system roots).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate and key for mutual
	// TLS: both or neither (default "").
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name sent in SNI and verified in the server's
	// certificate (default "": the host dialled).
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify skips verifying the server's certificate (default
	// false). Validate refuses it unless every Redis address is loopback.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// The values of Cache.RedisMode.
const (
	RedisModeNone       = ""           // no Redis: in-process cache only
	RedisModeStandalone = "standalone" // cache.redis_url
	RedisModeSentinel   = "sentinel"   // cache.redis.sentinel
	RedisModeCluster    = "cluster"    // cache.redis.cluster
)

// RedisMode reports which Redis the shared tier uses: RedisModeNone,
// RedisModeStandalone, RedisModeSentinel or RedisModeCluster. Validate
// allows at most one; should several be set, the first in that order wins.
func (c Cache) RedisMode() string {
	switch {
	case c.RedisURL != "":
		return RedisModeStandalone
	case c.Redis.Sentinel.isSet():
		return RedisModeSentinel
	case c.Redis.Cluster.isSet():
		return RedisModeCluster
	}
	return RedisModeNone
}

func (s RedisSentinel) isSet() bool {
	return s.MasterName != "" || len(s.Addresses) > 0 || !s.Password.IsZero()
}

func (c RedisCluster) isSet() bool { return len(c.Addresses) > 0 }

// Admin protects the admin listener's mutating endpoints.
type Admin struct {
	// Token is the bearer token that POST /cache/purge requires, read from
	// the environment or a file (default unset: purging is disabled).
	Token Secret `yaml:"token"`
}

// GRPC tunes the Check server.
type GRPC struct {
	// MaxRecvMsgBytes bounds one CheckRequest (default 4194304).
	MaxRecvMsgBytes int `yaml:"max_recv_msg_bytes"`
	// MaxConcurrentStreams per connection (default 0: gRPC's default).
	MaxConcurrentStreams uint32 `yaml:"max_concurrent_streams"`
	// StreamWorkers is how many long-lived goroutines serve Checks; a
	// Check arriving while all are busy gets a goroutine of its own
	// (default 128; 0: a new goroutine for every Check).
	StreamWorkers int `yaml:"stream_workers"`
	// Keepalive settings for connections from Envoy.
	Keepalive Keepalive `yaml:"keepalive"`
}

// Runtime tunes the Go runtime.
type Runtime struct {
	// GCHeadroomBytes is how far the heap may grow past its live data
	// before a garbage collection, at least (default 33554432, 32 MiB;
	// 0: GOGC alone decides).
	GCHeadroomBytes int `yaml:"gc_headroom_bytes"`
}

// Keepalive mirrors gRPC's server keepalive parameters and enforcement policy.
type Keepalive struct {
	Time                Duration `yaml:"time"`                  // default 60s: ping an idle connection after this
	Timeout             Duration `yaml:"timeout"`               // default 20s: close if the ping is not answered
	MinTime             Duration `yaml:"min_time"`              // default 10s: clients pinging more often are disconnected
	PermitWithoutStream *bool    `yaml:"permit_without_stream"` // default true
	MaxConnectionAge    Duration `yaml:"max_connection_age"`    // default 0: unlimited
}

// JWKS tunes how issuers' key sets are fetched.
type JWKS struct {
	// MinRefresh and MaxRefresh bound the periodic refresh interval taken
	// from the JWKS response's Cache-Control max-age (defaults 5m and 1h;
	// without max-age, MaxRefresh).
	MinRefresh Duration `yaml:"min_refresh"`
	MaxRefresh Duration `yaml:"max_refresh"`
	// UnknownKIDInterval is the minimum time between two refetches caused by
	// tokens whose kid is not in the key set (default 10s).
	UnknownKIDInterval Duration `yaml:"unknown_kid_min_interval"`
	// Timeout bounds one fetch (default 5s).
	Timeout Duration `yaml:"timeout"`
}

// Tokens holds the JWT acceptance rules.
type Tokens struct {
	// MaxBytes: longer tokens are rejected without parsing (default 16384).
	MaxBytes int `yaml:"max_bytes"`
	// Leeway tolerated on exp, nbf and iat (default 60s).
	Leeway Duration `yaml:"leeway"`
	// Algorithms accepted (default RS256 RS384 RS512 PS256 PS384 PS512 ES256
	// ES384 EdDSA). "none" and HS* are never accepted.
	Algorithms []string `yaml:"algorithms"`
}

// Upstream says what an allowed request carries to the MCP server.
type Upstream struct {
	// SubjectHeader carries the token's sub (default x-extauthz-subject).
	SubjectHeader string `yaml:"subject_header"`
	// ClientIDHeader carries client_id, else azp (default x-extauthz-client-id).
	ClientIDHeader string `yaml:"client_id_header"`
	// ScopesHeader carries the granted scopes, space separated
	// (default x-extauthz-scopes).
	ScopesHeader string `yaml:"scopes_header"`
	// StripAuthorization removes the inbound Authorization header (default
	// true: MCP forbids passing the client's token through).
	StripAuthorization *bool `yaml:"strip_authorization"`
}

// Log configures the process log.
type Log struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // json (default) or text
	Audit  Audit  `yaml:"audit"`
}

// Audit configures the audit trail: one log line per decision.
type Audit struct {
	// Enabled turns the audit lines on (default true).
	Enabled *bool `yaml:"enabled"`
	// AllowSampleRate is the fraction of allowed requests written, 0 to 1
	// (default 1). Denials are always written.
	AllowSampleRate float64 `yaml:"allow_sample_rate"`
}

// AuditEnabled reports whether audit lines are written; unset means true.
func (l Log) AuditEnabled() bool { return l.Audit.Enabled == nil || *l.Audit.Enabled }

// Resource is one protected resource: an MCP server behind the gateway.
type Resource struct {
	// Name identifies the resource; Envoy routes may select it with
	// context_extensions {resource: NAME}.
	Name string `yaml:"name"`
	// Resource is the canonical URI (RFC 8707 §2, RFC 9728 §1.2): the
	// audience tokens must carry, compared byte for byte.
	Resource string `yaml:"resource"`
	// Hosts match the request's :authority, port-insensitive; empty: the
	// canonical URI's host.
	Hosts []string `yaml:"hosts"`
	// PathPrefix matches whole path segments; empty: the canonical URI's path.
	PathPrefix string `yaml:"path_prefix"`
	// PathCaseInsensitive matches PathPrefix ignoring ASCII letter case,
	// for upstreams that route that way. Off, a path that differs from a
	// protected prefix only in case is refused (400).
	PathCaseInsensitive bool `yaml:"path_case_insensitive"`
	// RootMetadata: this resource's RFC 9728 document is also the one at
	// the root well-known path of its hosts
	// (/.well-known/oauth-protected-resource without a path suffix), for
	// clients that look only there. A resource whose URI has the path "/"
	// owns that path anyway; at most one resource per host may claim it.
	// Default false: with neither, the root path is not found (404).
	RootMetadata bool `yaml:"root_metadata"`
	// Preflight says who answers a CORS preflight from an allowed origin:
	// "answer" (default: the gateway, 204 with the CORS headers) or
	// "forward" (the upstream, reached without a token).
	Preflight string `yaml:"preflight"`
	// AuthorizationServers trusted for this resource; at least one.
	AuthorizationServers []AuthorizationServer `yaml:"authorization_servers"`
	// ScopesSupported is published in the metadata document.
	ScopesSupported []string `yaml:"scopes_supported"`
	// RequiredScopes must all be granted for any request to the resource.
	RequiredScopes []string `yaml:"required_scopes"`
	// Audiences accepted in addition to the canonical URI.
	Audiences []string `yaml:"audiences"`
	// ResourceName and ResourceDocumentation are optional RFC 9728 fields.
	ResourceName          string `yaml:"resource_name"`
	ResourceDocumentation string `yaml:"resource_documentation"`
	// ScopeImplications say which scopes a granted scope stands for, as
	// the MCP specification asks servers to account for scope
	// hierarchies: {"mcp:admin": ["mcp:write"], "mcp:write": ["mcp:read"]}
	// lets a token with mcp:admin do what needs mcp:read. Transitive.
	ScopeImplications map[string][]string `yaml:"scope_implications"`
	// AllowedOrigins are the browser origins (scheme://host[:port]) whose
	// requests are accepted; a request with any other Origin gets 403
	// (MCP streamable HTTP transport; DNS rebinding). "*" allows every
	// origin. Default: the origins of resource and public_url. A request
	// without Origin is not affected.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// CORS shapes the CORS headers of the gateway's own answers to those
	// origins: preflights it answers, and denials.
	CORS CORS `yaml:"cors"`
	// Policy is a CEL expression that every request with a valid token must
	// satisfy (default: none).
	Policy string `yaml:"policy,omitempty"`
	// Rules add requirements to the MCP operations they match.
	Rules []Rule `yaml:"rules"`
	// Login lets browsers sign in to this resource through the gateway
	// (authorization code with PKCE) and use a session cookie instead of
	// a Bearer token.
	Login ResourceLogin `yaml:"login"`
	// Public lists paths that pass without a token (public.go).
	Public []PublicPath `yaml:"public"`
}

// CORS is what the gateway tells browsers about a resource in the CORS
// headers of its own answers (Fetch standard, CORS protocol). Which
// origins may read them is Resource.AllowedOrigins, the one list the
// Origin check also uses; the upstream's own answers carry the upstream's
// CORS headers.
type CORS struct {
	// AllowMethods answer Access-Control-Request-Method in a preflight
	// (default GET, POST, DELETE).
	AllowMethods []string `yaml:"allow_methods"`
	// AllowHeaders are the request headers a page may send: header names
	// (any case), name prefixes ending in "*" such as "Mcp-Param-*" (the
	// requested names with that prefix are echoed; CORS itself has no
	// prefix pattern), or "*" alone for every requested name (echoed, as
	// a literal "*" does not cover credentialed requests). A preflight
	// requesting another header gets an answer without it, which the
	// browser treats as a refusal.
	AllowHeaders []string `yaml:"allow_headers"`
	// MaxAge is how long a browser may cache a preflight answer
	// (Access-Control-Max-Age, whole seconds; default 10m; Chromium caps it
	// at 2h).
	MaxAge Duration `yaml:"max_age"`
}

// Login configures the browser login flow shared by every resource that
// enables it.
type Login struct {
	// SessionKey is the 32-byte key (hex or base64) that encrypts sessions
	// at rest and seals login states in their cookies, from the environment
	// or a file; required when a resource enables login. Every replica needs
	// the same key.
	SessionKey Secret `yaml:"session_key"`
	// SessionTTL caps a session's life (default 8h).
	SessionTTL Duration `yaml:"session_ttl"`
	// StateTTL bounds how long a login may take at the authorization
	// server (default 10m).
	StateTTL Duration `yaml:"state_ttl"`
	// CookieName names the session cookie (default "__Host-extauthz-session";
	// "extauthz-session" when public_url is plain http on loopback, where
	// cookies cannot be Secure). On https it must start with "__Host-".
	CookieName string `yaml:"cookie_name"`
	// LoginPath, CallbackPath and LogoutPath are served on the HTTP
	// listener (defaults /oauth/login, /oauth/callback, /oauth/logout);
	// the redirect URI registered at the authorization server is
	// public_url + callback_path.
	LoginPath    string `yaml:"login_path"`
	CallbackPath string `yaml:"callback_path"`
	LogoutPath   string `yaml:"logout_path"`
	// SuccessRedirect is where a login without a return path, and a
	// logout, end (default "/").
	SuccessRedirect string `yaml:"success_redirect"`
	// ErrorPage, when set, is a same-origin path failed sign-ins are sent
	// to, with error and error_description in the query (default "": the
	// gateway's own error page).
	ErrorPage string `yaml:"error_page"`
}

// ResourceLogin is the gateway's confidential client for one resource's
// browser login.
type ResourceLogin struct {
	// Enabled turns the login flow on for this resource (default false).
	Enabled bool `yaml:"enabled"`
	// Issuer picks the authorization server users sign in at; one of the
	// resource's (default: the first).
	Issuer string `yaml:"issuer"`
	// ClientID, AuthMethod, ClientSecret, PrivateKey and KeyID are the
	// gateway's client registration, as for introspection.
	ClientID     string `yaml:"client_id"`
	AuthMethod   string `yaml:"auth_method"`
	ClientSecret Secret `yaml:"client_secret"`
	PrivateKey   Secret `yaml:"private_key"`
	KeyID        string `yaml:"key_id"`
	// Scopes requested at sign-in (default: required_scopes).
	Scopes []string `yaml:"scopes"`
}

// Rule adds required scopes, a policy, or both to the MCP operations it
// matches. Every matching rule applies.
type Rule struct {
	// Method is a glob over the JSON-RPC method ("tools/call",
	// "resources/*"); default "*": any method.
	Method string `yaml:"method"`
	// Name is a glob over the tool name, resource URI or prompt name
	// ("delete_*", "file:///secrets/*"); default "*": any name, or none.
	Name string `yaml:"name"`
	// Scopes are required in addition to the resource's required_scopes.
	Scopes []string `yaml:"scopes"`
	// Policy is a CEL expression the request must also satisfy.
	Policy string `yaml:"policy,omitempty"`
}

// MCP holds the limits of reading MCP operations.
type MCP struct {
	// MaxBodyBytes bounds a JSON-RPC body read for the rules (default
	// 65536). Envoy's with_request_body.max_request_bytes should match.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// RequireBody refuses a POST to a resource with rules or a policy when
	// the proxy did not forward its body (default false). Without the
	// body, the Mcp-Method and Mcp-Name headers decide alone, and only the
	// MCP server can tell whether they match the body it executes; with
	// Envoy's with_request_body, set this so the gateway always checks.
	RequireBody bool `yaml:"require_body"`
}

// AuthorizationServer is one trusted token issuer. An issuer listed by
// several resources is the same server: every listing must be identical
// (a YAML anchor keeps them so).
type AuthorizationServer struct {
	// Issuer is compared exactly with the token's iss.
	Issuer string `yaml:"issuer"`
	// JWKSURI, when empty, is discovered from the issuer's RFC 8414
	// metadata, then OpenID Connect discovery.
	JWKSURI string `yaml:"jwks_uri"`
	// TokenMode says how this server's tokens are verified: "jwt" (default:
	// signature checked locally against the JWKS), "introspection" (every
	// token asked about at the RFC 7662 endpoint) or "auto" (a JWT naming
	// this issuer is verified locally, any other token introspected).
	TokenMode string `yaml:"token_mode"`
	// Introspection configures the RFC 7662 client; used by the
	// "introspection" and "auto" modes only.
	Introspection Introspection `yaml:"introspection"`
	// AudienceClaim names the claim holding the audiences compared with the
	// resource (default "aud", RFC 8707). Set "client_id" for servers that
	// put no aud in access tokens (AWS Cognito) and list the client ids
	// in the resource's audiences.
	AudienceClaim string `yaml:"audience_claim"`
	// ScopeClaim names the claim holding the granted scopes, a
	// space-separated string or an array (default "scope", RFC 9068; "scp"
	// for Okta and Microsoft Entra ID).
	ScopeClaim string `yaml:"scope_claim"`
	// ClientIDClaim names the claim holding the client id (default
	// "client_id", falling back to "azp"; "cid" for Okta).
	ClientIDClaim string `yaml:"client_id_claim"`
	// KeepClaims names further claims (tenant, groups, roles) kept with a
	// verified token so that CEL policies can read them as
	// token.claims["name"] (default none: nothing beyond the standard
	// claims is kept or cached).
	KeepClaims []string `yaml:"keep_claims"`
	// RequireTyp, true by default, accepts a JWT verified locally only if
	// its typ header is at+jwt (RFC 9068). false also accepts typ JWT or
	// none, for servers whose access tokens are not typed; other types
	// (a refresh token's rt+jwt, say) are refused either way.
	RequireTyp *bool `yaml:"require_typ"`
}

// RequiresTyp reports whether the server's JWT access tokens must be
// typed at+jwt. Unset means true.
func (as AuthorizationServer) RequiresTyp() bool { return as.RequireTyp == nil || *as.RequireTyp }

// The values of AuthorizationServer.TokenMode.
const (
	TokenModeJWT           = "jwt"
	TokenModeIntrospection = "introspection"
	TokenModeAuto          = "auto"
)

// Introspects reports whether the server's tokens may be introspected.
func (as AuthorizationServer) Introspects() bool {
	return as.TokenMode == TokenModeIntrospection || as.TokenMode == TokenModeAuto
}

// The values of Introspection.AuthMethod (RFC 7591 §2 names).
const (
	AuthClientSecretBasic = "client_secret_basic"
	AuthClientSecretPost  = "client_secret_post"
	AuthPrivateKeyJWT     = "private_key_jwt"
)

// Introspection configures the RFC 7662 introspection client of one
// authorization server.
type Introspection struct {
	// Endpoint is the introspection endpoint (default: the
	// introspection_endpoint of the server's discovered metadata).
	Endpoint string `yaml:"endpoint"`
	// ClientID is the gateway's client id at the server (required).
	ClientID string `yaml:"client_id"`
	// AuthMethod is how the gateway authenticates: client_secret_basic
	// (default), client_secret_post or private_key_jwt (RFC 7523).
	AuthMethod string `yaml:"auth_method"`
	// ClientSecret, for the client_secret_* methods, read from the
	// environment or a file.
	ClientSecret Secret `yaml:"client_secret"`
	// PrivateKey, for private_key_jwt: a PEM private key (RSA, EC P-256,
	// P-384 or Ed25519) read from the environment or a file.
	PrivateKey Secret `yaml:"private_key"`
	// KeyID is the kid header of the client assertion (default: none).
	KeyID string `yaml:"key_id"`
	// Timeout bounds one introspection call (default 300ms). Keep it well
	// under the proxy's ext_authz timeout: a slow server must be a 503,
	// not a proxy error.
	Timeout Duration `yaml:"timeout"`
	// CacheTTL caps how long an introspection result is cached (default
	// 60s): a token revoked at the server stops being accepted within it.
	// It never outlives the token's exp, nor cache.max_ttl.
	CacheTTL Duration `yaml:"cache_ttl"`
}

// Secret names where a secret comes from: an environment variable or a file.
// Secrets are never written inline in the policy file.
type Secret struct {
	Env  string `yaml:"env,omitempty"`
	File string `yaml:"file,omitempty"`
}

// IsZero reports whether no source is named.
func (s Secret) IsZero() bool { return s.Env == "" && s.File == "" }

// maxSecretBytes bounds a secret file, so that a path such as /dev/zero
// fails instead of filling memory.
const maxSecretBytes = 64 << 10

// Resolve reads the secret from the environment variable or the file that
// s names. One trailing newline ("\n" or "\r\n", as left by echo or an
// editor) is removed from a file's content. An unset or empty variable, an
// unreadable or empty file, or a Secret naming both sources or neither is an
// error. Error messages name the variable or the file, never any part of
// the value; they read as the rest of a sentence that the caller begins
// with the key path ("cache.redis_password: environment variable X is not
// set").
//
// Parse and Validate never call it: the caller resolves a secret when it
// builds what uses it, so check-config runs without access to secrets.
func (s Secret) Resolve() (string, error) {
	switch {
	case s.Env != "" && s.File != "":
		return "", errors.New("set env or file, not both")
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", s.Env)
		}
		if v == "" {
			return "", fmt.Errorf("environment variable %s is empty", s.Env)
		}
		return v, nil
	case s.File != "":
		v, err := readSecretFile(s.File)
		if err != nil {
			return "", err
		}
		if v == "" {
			return "", fmt.Errorf("file %s is empty", s.File)
		}
		return v, nil
	default:
		return "", errors.New("no source (set env or file)")
	}
}

func readSecretFile(name string) (string, error) {
	f, err := os.Open(name) //nolint:gosec // the config names the secret file
	if err != nil {
		return "", fmt.Errorf("file %s: %w", name, pathErrCause(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretBytes+1))
	if err != nil {
		// A read error carries no file content, only the path and cause.
		return "", fmt.Errorf("file %s: %w", name, pathErrCause(err))
	}
	if len(data) > maxSecretBytes {
		return "", fmt.Errorf("file %s is larger than %d bytes", name, maxSecretBytes)
	}
	v := string(data)
	if t, ok := strings.CutSuffix(v, "\n"); ok {
		v = strings.TrimSuffix(t, "\r")
	}
	return v, nil
}

// pathErrCause drops the *fs.PathError wrapper, whose text would repeat the
// file name, keeping the cause for errors.Is (fs.ErrNotExist and so on).
func pathErrCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Duration is a time.Duration written in YAML as a Go duration string
// ("90s", "5m"). A bare number is refused: it would silently mean nanoseconds.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML accepts only duration strings.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		return fmt.Errorf("must be a duration string such as \"30s\" or \"5m\"")
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("must be a duration string such as \"30s\" or \"5m\", not %q", n.Value)
	}
	if v < 0 {
		return fmt.Errorf("must not be negative")
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }
