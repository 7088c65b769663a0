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

// Config is the whole policy file. The doc comments of the fields that
// yaml tags name are written for operators: they are the descriptions of
// api/config.schema.json and of the reference in docs/configuration.md,
// both generated from these types (generate.go says how).
type Config struct {
	// Listener addresses, each host:port. "off" disables the HTTP or admin
	// listener; gRPC cannot be disabled.
	Listen Listen `yaml:"listen"`
	// How clients reach the gateway: scheme://host[:port], no path, query or
	// fragment; https, or http only for localhost and loopback addresses. It
	// prefixes the protected-resource metadata URL in WWW-Authenticate
	// challenges. Empty: the origin of each resource's canonical URI. A trailing
	// "/" is removed.
	PublicURL string `yaml:"public_url"`
	// The verified-token cache: in-process, plus a shared Redis tier when
	// redis_url, redis.sentinel or redis.cluster is set. Only verified claims
	// are cached, keyed by the token's SHA-256; never the token.
	Cache Cache `yaml:"cache"`
	// What protects the admin listener's mutating endpoints.
	Admin Admin `yaml:"admin"`
	// Tuning of the Check gRPC server.
	GRPC GRPC `yaml:"grpc"`
	// Tuning of the Go runtime.
	Runtime Runtime `yaml:"runtime"`
	// How issuers' JSON Web Key Sets are fetched and refreshed.
	JWKS JWKS `yaml:"jwks"`
	// JWT acceptance rules shared by all issuers.
	Tokens Tokens `yaml:"tokens"`
	// What an allowed request carries to the MCP server. Header names are
	// lower-cased; they may not be pseudo-headers, authorization, cookie, host,
	// content-length, transfer-encoding or hop-by-hop headers, and must differ
	// from one another.
	Upstream Upstream `yaml:"upstream"`
	// Answer for a request that matches no resource: "deny" (403) or "allow"
	// (passes with no identity headers).
	Unmatched string `yaml:"unmatched" schema:"enum=deny|allow"`
	// Refuse (403) every Check whose route does not name its resource (Envoy
	// context_extensions, or the HTTP mode's /authz/<proxy>/<resource>
	// endpoints): the Host header, which a client writes, then never chooses the
	// resource.
	RequireExplicitResource bool `yaml:"require_explicit_resource"`
	// The process log (log/slog).
	Log Log `yaml:"log"`
	// How MCP operations are read for the rules.
	MCP MCP `yaml:"mcp"`
	// The browser login flow (authorization code with PKCE) shared by the
	// resources that enable it.
	Login Login `yaml:"login"`
	// The protected resources (MCP servers). At least one. A request is routed
	// to the resource named by Envoy's context_extensions {resource: NAME}, else
	// to the first whose hosts and path_prefix match it.
	Resources []Resource `yaml:"resources" schema:"required,minItems=1"`

	// written holds the key paths (as in "cache.negative_ttl") that Parse
	// found in the file with a value, so ApplyDefaults keeps an explicit
	// zero ("negative_ttl: 0s" disables negative caching) instead of
	// replacing it. Nil for a Config built in memory: there, zero means unset.
	written map[string]bool
}

// Listen holds listener addresses (host:port). An omitted address takes its
// default; "off" disables the HTTP or admin listener (gRPC cannot be disabled).
type Listen struct {
	// Address of the Envoy ext_authz gRPC server
	// (envoy.service.auth.v3.Authorization).
	GRPC string `yaml:"grpc" pattern:"^.*:[0-9]{1,5}$"`
	// Address of the HTTP listener: protected-resource metadata, login flow,
	// HTTP authorization mode, /healthz and /readyz. "off" disables it.
	HTTP string `yaml:"http" pattern:"^(off|.*:[0-9]{1,5})$"`
	// Address of the admin listener: /metrics, pprof, cache purge. Keep it on
	// loopback or a private network. "off" disables it.
	Admin string `yaml:"admin" pattern:"^(off|.*:[0-9]{1,5})$"`
}

// Cache configures the verified-token cache.
type Cache struct {
	// redis:// or rediss:// URL of a single Redis server (standalone mode),
	// without a password, query or fragment. The path /N, if any, is the
	// database number; rediss:// turns TLS on. Cannot be combined with
	// cache.redis.sentinel or cache.redis.cluster. Empty, with neither of those:
	// in-process cache only.
	RedisURL string `yaml:"redis_url" pattern:"^(|rediss?://[^:@/]*@?[^@]+)$"`
	// Where the password of the Redis data nodes is read from, in every mode: an
	// environment variable or a file, at most one. Never written inline. Set
	// only when a Redis is configured.
	RedisPassword Secret `yaml:"redis_password"`
	// Longest time a verified token is cached; an entry never outlives the
	// token's exp. Must be greater than 0.
	MaxTTL Duration `yaml:"max_ttl"`
	// How long a definitively invalid token is remembered as invalid. "0s"
	// disables negative caching.
	NegativeTTL Duration `yaml:"negative_ttl"`
	// Bound on valid tokens held in the in-process tier.
	MaxEntries int `yaml:"max_entries" schema:"min=1"`
	// Bound on invalid tokens held in the in-process tier, so a flood of garbage
	// tokens cannot grow memory.
	MaxNegativeEntries int `yaml:"max_negative_entries" schema:"min=1"`
	// How long a token purged through the admin listener stays revoked when its
	// exp is not known; when it is known, until exp. Must be greater than 0.
	RevokedTTL Duration `yaml:"revoked_ttl"`
	// Sentinel and Cluster modes, and the connection settings shared by every
	// Redis mode. At most one of cache.redis_url (standalone),
	// cache.redis.sentinel and cache.redis.cluster may be set. Setting any other
	// key here, other than to its default, with no Redis configured is an error.
	Redis Redis `yaml:"redis"`
}

// Redis configures the connection to the shared tier. Setting any key here
// with no Redis configured (RedisMode() == "") is an error rather than
// silently ignored.
type Redis struct {
	// Redis Sentinel mode: the master is found through the sentinels. Setting
	// any field selects this mode; then master_name and at least one address are
	// required.
	Sentinel RedisSentinel `yaml:"sentinel"`
	// Redis Cluster mode. Setting addresses selects this mode.
	Cluster RedisCluster `yaml:"cluster"`
	// ACL user name for the data nodes. Empty: the default user. In standalone
	// mode it may be written in redis_url instead; if both are set they must
	// agree.
	Username string `yaml:"username"`
	// Database number, 0 to 1023. In standalone mode the path of redis_url (/N)
	// gives it; if both are set they must agree. Must be 0 in cluster mode
	// (Redis Cluster has one database).
	DB int `yaml:"db" schema:"min=0,max=1023"`
	// TLS to Redis and the sentinels. TLS is on when enabled is true or
	// redis_url is rediss://; the other keys need it on. Files are read when the
	// server starts, not by check-config.
	TLS RedisTLS `yaml:"tls"`
	// Connections per Redis node. 0: go-redis's default (10 per CPU; 5 per CPU
	// per node in cluster mode).
	PoolSize int `yaml:"pool_size" schema:"min=0"`
	// Time limit for opening one connection. Must be greater than 0.
	DialTimeout Duration `yaml:"dial_timeout"`
	// Time limit for each read or write: a slow Redis is a cache miss, never a
	// slow decision. Greater than 0 and at most 1s.
	Timeout Duration `yaml:"timeout"`
	// Consecutive Redis failures that open the circuit; while it is open Redis
	// is skipped and only the in-process tier is used. At least 1.
	CircuitFailures int `yaml:"circuit_failures" schema:"min=1"`
	// How long the circuit stays open before one probe request is let through to
	// Redis. Must be greater than 0.
	CircuitCooldown Duration `yaml:"circuit_cooldown"`
}

// RedisSentinel names the sentinels and the master they watch.
type RedisSentinel struct {
	// Name the sentinels know the master by. Required in sentinel mode.
	MasterName string `yaml:"master_name"`
	// Sentinel addresses, host:port, no repeats. At least one in sentinel mode.
	Addresses []string `yaml:"addresses" schema:"unique,items.ref=host_port"`
	// Where the sentinels' own password is read from, when they require one. The
	// data nodes use cache.redis_password.
	Password Secret `yaml:"password"`
}

// RedisCluster names the seed nodes of a Redis Cluster; the others are
// discovered from them.
type RedisCluster struct {
	// Seed nodes, host:port, no repeats; the other nodes are discovered from
	// them. At least one in cluster mode.
	Addresses []string `yaml:"addresses" schema:"unique,items.ref=host_port"`
}

// RedisTLS configures TLS to Redis. TLS is on when Enabled is true or
// redis_url is rediss://; certificate files are read at start, not by
// Validate.
type RedisTLS struct {
	// Turn TLS on. A rediss:// redis_url also does.
	Enabled bool `yaml:"enabled"`
	// PEM bundle of the certificate authorities that verify the server. Empty:
	// the system roots.
	CAFile string `yaml:"ca_file"`
	// PEM client certificate for mutual TLS. Set together with key_file.
	CertFile string `yaml:"cert_file"`
	// PEM private key of cert_file. Set together with cert_file.
	KeyFile string `yaml:"key_file"`
	// Name sent in SNI and verified in the server's certificate: a host name or
	// IP address, no port. Empty: the host dialled.
	ServerName string `yaml:"server_name"`
	// Do not verify the server's certificate. Refused unless every Redis address
	// is loopback (localhost, 127.0.0.0/8 or ::1); use ca_file to trust a
	// private CA.
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
	// Where the bearer token required by POST /cache/purge on the admin listener
	// is read from: an environment variable or a file, at most one. Unset:
	// purging is disabled.
	Token Secret `yaml:"token"`
}

// GRPC tunes the Check server.
type GRPC struct {
	// Largest CheckRequest accepted, in bytes (1024 to 67108864). Raise it when
	// Envoy sends request bodies.
	MaxRecvMsgBytes int `yaml:"max_recv_msg_bytes" schema:"min=1024,max=67108864"`
	// Concurrent streams per connection. 0: gRPC's default.
	MaxConcurrentStreams uint32 `yaml:"max_concurrent_streams" schema:"min=0,max=4294967295"`
	// Long-lived goroutines that serve Checks, keeping their grown stacks from
	// one Check to the next; a Check arriving while all are busy gets a
	// goroutine of its own. Size it for the Checks in flight at once across all
	// proxies. 0: a new goroutine for every Check.
	StreamWorkers int `yaml:"stream_workers" schema:"min=0,max=65536"`
	// gRPC server keepalive parameters and enforcement policy for connections
	// from Envoy.
	Keepalive Keepalive `yaml:"keepalive"`
}

// Runtime tunes the Go runtime.
type Runtime struct {
	// The heap may grow at least this many bytes past its live data before a
	// garbage collection: with a small live heap the collector runs rarely,
	// costing this much more memory at most; once the live heap is larger than
	// this, GOGC alone decides. 0: GOGC alone decides. GOGC=off in the
	// environment turns it off; GOMEMLIMIT still applies. Applied at start.
	GCHeadroomBytes int `yaml:"gc_headroom_bytes" schema:"min=0,max=1099511627776"`
}

// Keepalive mirrors gRPC's server keepalive parameters and enforcement policy.
type Keepalive struct {
	// Ping a connection after it has been idle this long. Must be greater than
	// 0.
	Time Duration `yaml:"time"`
	// Close the connection if a ping is not answered within this time. Must be
	// greater than 0.
	Timeout Duration `yaml:"timeout"`
	// Clients that ping more often than this are disconnected. Must be greater
	// than 0.
	MinTime Duration `yaml:"min_time"`
	// Allow client pings on connections with no active stream (Envoy keeps idle
	// ext_authz connections open).
	PermitWithoutStream *bool `yaml:"permit_without_stream"`
	// Close connections after this age so that load rebalances across replicas.
	// "0s": unlimited.
	MaxConnectionAge Duration `yaml:"max_connection_age"`
}

// JWKS tunes how issuers' key sets are fetched.
type JWKS struct {
	// Lower bound on the refresh interval taken from the JWKS response's
	// Cache-Control max-age. Greater than 0, at most max_refresh.
	MinRefresh Duration `yaml:"min_refresh"`
	// Upper bound on the refresh interval; also the interval when the response
	// has no max-age.
	MaxRefresh Duration `yaml:"max_refresh"`
	// Minimum time between two refetches caused by tokens whose kid is not in
	// the key set, so forged kids cannot hammer the issuer. Must be greater than
	// 0.
	UnknownKIDInterval Duration `yaml:"unknown_kid_min_interval"`
	// Time limit for one JWKS fetch. Must be greater than 0.
	Timeout Duration `yaml:"timeout"`
}

// Tokens holds the JWT acceptance rules.
type Tokens struct {
	// Longer tokens are rejected without being parsed (1 to 1048576).
	MaxBytes int `yaml:"max_bytes" schema:"min=1,max=1048576"`
	// Clock skew tolerated on exp, nbf and iat; at most 5m. "0s": none.
	Leeway Duration `yaml:"leeway"`
	// JWS algorithms accepted. "none" and the symmetric HS256, HS384 and HS512
	// are never accepted.
	Algorithms []string `yaml:"algorithms" schema:"minItems=1,unique,items.enum=RS256|RS384|RS512|PS256|PS384|PS512|ES256|ES384|ES512|EdDSA"`
}

// Upstream says what an allowed request carries to the MCP server.
type Upstream struct {
	// Header set to the token's sub claim.
	SubjectHeader string `yaml:"subject_header" schema:"ref=header_name"`
	// Header set to the token's client_id claim, else azp.
	ClientIDHeader string `yaml:"client_id_header" schema:"ref=header_name"`
	// Header set to the granted scopes, space separated.
	ScopesHeader string `yaml:"scopes_header" schema:"ref=header_name"`
	// Remove the inbound Authorization header before the request reaches the
	// upstream. MCP forbids passing the client's token through.
	StripAuthorization *bool `yaml:"strip_authorization"`
}

// Log configures the process log.
type Log struct {
	// Lowest level written.
	Level string `yaml:"level" schema:"enum=debug|info|warn|error"`
	// Line format.
	Format string `yaml:"format" schema:"enum=json|text"`
	// The audit trail: one line per decision (log=audit).
	Audit Audit `yaml:"audit"`
}

// Audit configures the audit trail: one log line per decision.
type Audit struct {
	// Write audit lines.
	Enabled *bool `yaml:"enabled"`
	// Fraction of allowed requests written; denials are always written.
	AllowSampleRate float64 `yaml:"allow_sample_rate" schema:"min=0,max=1"`
}

// AuditEnabled reports whether audit lines are written; unset means true.
func (l Log) AuditEnabled() bool { return l.Audit.Enabled == nil || *l.Audit.Enabled }

// Resource is one protected resource: an MCP server behind the gateway.
type Resource struct {
	// Unique name; used in metrics and selectable from Envoy routes with
	// context_extensions {resource: NAME}.
	Name string `yaml:"name" schema:"required" pattern:"^[a-z0-9][a-z0-9_-]*$"`
	// The canonical URI (RFC 8707, RFC 9728): the audience tokens must carry,
	// compared byte for byte, and the resource in the metadata document.
	// Absolute https (http only for loopback), lower-case scheme and host, no
	// default port, no query or fragment. Unique.
	Resource string `yaml:"resource" schema:"required,format=uri"`
	// Hosts whose requests belong to this resource, matched against :authority
	// ignoring the port: bare lower-case host names, IP addresses or "*.suffix"
	// wildcards. Default: the host of resource.
	Hosts []string `yaml:"hosts" schema:"minItems=1,nodefault" itemPattern:"^(\\*\\.)?[a-z0-9.:-]+$"`
	// Path prefix, matched on whole segments, that selects this resource. Starts
	// with "/", no "?" or "#". Default: the path of resource, or "/".
	PathPrefix string `yaml:"path_prefix" schema:"nodefault" pattern:"^/[^?#]*$"`
	// Match path_prefix ignoring ASCII letter case, for upstreams that route
	// that way. Off, a path that differs from a protected prefix only in case is
	// refused (400).
	PathCaseInsensitive bool `yaml:"path_case_insensitive"`
	// Serve this resource's RFC 9728 document also at the root well-known path
	// of its hosts (/.well-known/oauth-protected-resource without a path
	// suffix). A resource whose URI has the path / owns that path anyway; at
	// most one resource per host may claim it. Off and with no resource at /,
	// the root path is 404.
	RootMetadata bool `yaml:"root_metadata"`
	// Who answers a CORS preflight (OPTIONS with Origin and
	// Access-Control-Request-Method, no body) from an allowed origin: "answer"
	// (the gateway, 204 with the CORS headers) or "forward" (the upstream,
	// reached without a token).
	Preflight string `yaml:"preflight" schema:"enum=answer|forward"`
	// Issuers trusted for this resource; at least one.
	AuthorizationServers []AuthorizationServer `yaml:"authorization_servers" schema:"required,minItems=1"`
	// Scopes published in the protected-resource metadata. Default:
	// required_scopes.
	ScopesSupported []string `yaml:"scopes_supported" schema:"unique,items.ref=scope,nodefault"`
	// Scopes that every request to the resource needs; each must be in
	// scopes_supported.
	RequiredScopes []string `yaml:"required_scopes" schema:"unique,items.ref=scope"`
	// Audience values accepted in addition to the canonical URI.
	Audiences []string `yaml:"audiences" schema:"items.minLength=1"`
	// Human-readable name published in the metadata document (RFC 9728
	// resource_name).
	ResourceName string `yaml:"resource_name"`
	// URL of human-readable documentation, published in the metadata document
	// (RFC 9728 resource_documentation).
	ResourceDocumentation string `yaml:"resource_documentation"`
	// Scope hierarchy: each key stands for the scopes it lists, transitively
	// (mcp:admin: [mcp:write] lets a token with mcp:admin do what needs
	// mcp:write). offline_access is refused.
	ScopeImplications map[string][]string `yaml:"scope_implications" schema:"items.minItems=1,items.items.ref=scope"`
	// Browser origins (scheme://host[:port], lower case) whose requests are
	// accepted; any other Origin gets 403. "*" allows every origin. Default: the
	// origins of resource and public_url. Requests without Origin are not
	// affected. Also the origins the gateway's CORS answers (preflights,
	// denials) are for: cors holds the rest of the CORS settings.
	AllowedOrigins []string `yaml:"allowed_origins" schema:"nodefault"`
	// The CORS headers of the gateway's own answers to the allowed_origins:
	// preflights it answers and denials. The upstream's own answers carry the
	// upstream's CORS headers.
	CORS CORS `yaml:"cors"`
	// A CEL expression over token, request and mcp that every request with a
	// valid token must satisfy; compiled and type-checked at load.
	Policy string `yaml:"policy,omitempty"`
	// Rules adding scopes and policies to the MCP operations they match; every
	// matching rule applies.
	Rules []Rule `yaml:"rules"`
	// Browser sign-in for this resource: the gateway's confidential client at
	// one of its authorization servers.
	Login ResourceLogin `yaml:"login"`
	// Paths of this resource that pass without a token, for the listed methods:
	// decided on the canonical path, exactly or (prefix) on whole segments; a
	// request whose other readings of the path disagree is refused (400). No
	// identity headers, session cookie or Authorization reach the upstream.
	Public []PublicPath `yaml:"public"`
}

// CORS is what the gateway tells browsers about a resource in the CORS
// headers of its own answers (Fetch standard, CORS protocol). Which
// origins may read them is Resource.AllowedOrigins, the one list the
// Origin check also uses; the upstream's own answers carry the upstream's
// CORS headers.
type CORS struct {
	// Access-Control-Allow-Methods of a preflight answer: method names ("*" is
	// not accepted: browsers do not honour it on credentialed requests).
	AllowMethods []string `yaml:"allow_methods" schema:"items.ref=header_name"`
	// Request headers a page may send: header names (any case); prefixes ending
	// in "*" such as "Mcp-Param-*", whose requested names are echoed; or "*"
	// alone, every requested name echoed. A preflight requesting any other
	// header gets an answer without it, which the browser treats as a refusal.
	AllowHeaders []string `yaml:"allow_headers" schema:"items.ref=header_name"`
	// Access-Control-Max-Age of a preflight answer: how long a browser may cache
	// it, whole seconds (Chromium caps it at 2h).
	MaxAge Duration `yaml:"max_age"`
}

// Login configures the browser login flow shared by every resource that
// enables it.
type Login struct {
	// The 32-byte key (hex or base64) encrypting sessions at rest and sealing
	// login states in their cookies; required when a resource enables login; the
	// same on every replica.
	SessionKey Secret `yaml:"session_key"`
	// Longest life of a session.
	SessionTTL Duration `yaml:"session_ttl"`
	// How long a sign-in at the authorization server may take.
	StateTTL Duration `yaml:"state_ttl"`
	// The session cookie's name. Default: __Host-extauthz-session, or
	// extauthz-session when public_url is plain http on loopback. Must start
	// with __Host- when public_url is https, and must not start with __Host- or
	// __Secure- on plain http.
	CookieName string `yaml:"cookie_name"`
	// Path of the login endpoint on the HTTP listener.
	LoginPath string `yaml:"login_path"`
	// Path of the redirect URI (public_url + callback_path) on the HTTP
	// listener.
	CallbackPath string `yaml:"callback_path"`
	// Path of the logout endpoint on the HTTP listener.
	LogoutPath string `yaml:"logout_path"`
	// Where a login without a return path, and a logout, end: a same-origin
	// path.
	SuccessRedirect string `yaml:"success_redirect"`
	// A same-origin path failed sign-ins are sent to, with error and
	// error_description in the query. Empty: the gateway's own error page.
	ErrorPage string `yaml:"error_page"`
}

// ResourceLogin is the gateway's confidential client for one resource's
// browser login.
type ResourceLogin struct {
	// Turn the login flow on for this resource.
	Enabled bool `yaml:"enabled"`
	// The authorization server users sign in at, one of the resource's. Default:
	// the first.
	Issuer string `yaml:"issuer" schema:"nodefault"`
	// The gateway's client id; required when enabled.
	ClientID string `yaml:"client_id"`
	// Client authentication at the token and revocation endpoints.
	AuthMethod string `yaml:"auth_method" schema:"enum=client_secret_basic|client_secret_post|private_key_jwt"`
	// For the client_secret_* methods.
	ClientSecret Secret `yaml:"client_secret"`
	// A PEM private key, for private_key_jwt.
	PrivateKey Secret `yaml:"private_key"`
	// kid of the client assertion.
	KeyID string `yaml:"key_id"`
	// Scopes requested at sign-in (openid adds a nonce). Default:
	// required_scopes.
	Scopes []string `yaml:"scopes" schema:"unique,items.ref=scope,nodefault"`
}

// Rule adds required scopes, a policy, or both to the MCP operations it
// matches. Every matching rule applies.
type Rule struct {
	// Glob over the JSON-RPC method (tools/call, resources/*): * matches any run
	// of characters, ? one character.
	Method string `yaml:"method" schema:"minLength=1"`
	// Glob over the tool name, resource URI or prompt name; * also matches an
	// operation without a name.
	Name string `yaml:"name"`
	// Scopes required in addition to the resource's required_scopes; each must
	// be in scopes_supported.
	Scopes []string `yaml:"scopes" schema:"unique,items.ref=scope"`
	// A CEL expression the matching requests must also satisfy.
	Policy string `yaml:"policy,omitempty"`
}

// MCP holds the limits of reading MCP operations.
type MCP struct {
	// Largest JSON-RPC body read for the rules, 1 to 1048576; a longer one is
	// refused with 400. Match Envoy's with_request_body.max_request_bytes.
	MaxBodyBytes int `yaml:"max_body_bytes" schema:"min=1,max=1048576"`
	// Refuse (400) a POST to a resource with rules or a policy when the proxy
	// did not forward its JSON-RPC body, so that the gateway itself checks the
	// Mcp-Method/Mcp-Name headers against the body. Set it with Envoy's
	// with_request_body; nginx auth_request cannot forward bodies.
	RequireBody bool `yaml:"require_body"`
}

// AuthorizationServer is one trusted token issuer. An issuer listed by
// several resources is the same server: every listing must be identical
// (a YAML anchor keeps them so).
type AuthorizationServer struct {
	// Issuer identifier, compared exactly with the token's iss. https (http only
	// for loopback), no query or fragment.
	Issuer string `yaml:"issuer" schema:"required,format=uri"`
	// URL of the issuer's JWKS. Empty: discovered from RFC 8414 metadata, then
	// OpenID Connect discovery. One issuer must be listed identically everywhere
	// it appears. Not used with token_mode introspection.
	JWKSURI string `yaml:"jwks_uri"`
	// How this server's tokens are verified: jwt (signature checked locally
	// against the JWKS), introspection (every token asked about at the RFC 7662
	// endpoint) or auto (a JWT naming this issuer is verified locally, any other
	// token introspected). At most one server per resource may introspect.
	TokenMode string `yaml:"token_mode" schema:"enum=jwt|introspection|auto"`
	// The RFC 7662 introspection client; used by the introspection and auto
	// modes only.
	Introspection Introspection `yaml:"introspection"`
	// The claim holding the audiences compared with the resource: aud (RFC
	// 8707), or for example client_id for servers that put no aud in access
	// tokens (AWS Cognito).
	AudienceClaim string `yaml:"audience_claim" schema:"minLength=1"`
	// The claim holding the granted scopes, a space-separated string or an
	// array: scope (RFC 9068), or scp (Okta, Microsoft Entra ID).
	ScopeClaim string `yaml:"scope_claim" schema:"minLength=1"`
	// The claim holding the client id sent upstream: client_id (falling back to
	// azp), or for example cid (Okta).
	ClientIDClaim string `yaml:"client_id_claim" schema:"minLength=1"`
	// Further claims (tenant, groups, roles) kept with a verified token, and
	// cached with it, so that CEL policies can read them as
	// token.claims["name"]. At most 32.
	KeepClaims []string `yaml:"keep_claims" schema:"unique,items.minLength=1"`
	// Accept a JWT verified locally (token_mode jwt or auto) only if its typ
	// header is at+jwt (RFC 9068). false also accepts typ JWT or no typ, for
	// servers whose access tokens are not typed; a JWT of another type (rt+jwt,
	// a refresh token) is refused either way. Not used with token_mode
	// introspection.
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
	// Introspection endpoint URL. Empty: the introspection_endpoint of the
	// discovered metadata.
	Endpoint string `yaml:"endpoint"`
	// The gateway's client id at the authorization server. Required in the
	// introspection and auto modes.
	ClientID string `yaml:"client_id"`
	// Client authentication at the introspection endpoint.
	AuthMethod string `yaml:"auth_method" schema:"enum=client_secret_basic|client_secret_post|private_key_jwt"`
	// The client secret, for client_secret_basic and client_secret_post.
	ClientSecret Secret `yaml:"client_secret"`
	// A PEM private key (RSA, EC P-256 or P-384, Ed25519) that signs the RFC
	// 7523 client assertion, for private_key_jwt.
	PrivateKey Secret `yaml:"private_key"`
	// The kid header of the client assertion. Empty: none.
	KeyID string `yaml:"key_id"`
	// Bound on one introspection call, at most 10s; keep it well under the
	// proxy's ext_authz timeout.
	Timeout Duration `yaml:"timeout"`
	// How long an introspection result is cached at most (never beyond the
	// token's exp nor cache.max_ttl): a token revoked at the server stops being
	// accepted within it.
	CacheTTL Duration `yaml:"cache_ttl"`
}

// Secret names where a secret comes from: an environment variable or a file.
// Secrets are never written inline in the policy file.
type Secret struct {
	// Name of the environment variable holding the secret.
	Env string `yaml:"env,omitempty"`
	// Path of the file holding the secret, such as a mounted Kubernetes Secret.
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
