// This file is long because its field comments are the configuration
// reference (internal/configgen publishes them); it holds types only.

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
	// How clients reach the gateway, `scheme://host[:port]` with no path, query
	// or fragment; prefixes the metadata URL in `WWW-Authenticate`. https, or
	// http for localhost/loopback only. A trailing `/` is dropped.
	PublicURL string `yaml:"public_url" doctype:"URL" docdefault:"origin of each 'resource'"`
	// The verified-token cache: in-process, plus a shared Redis tier when
	// redis_url, redis.sentinel or redis.cluster is set. Only verified claims
	// are cached, keyed by the token's SHA-256; never the token.
	Cache Cache `yaml:"cache"`
	// What protects the admin listener's mutating endpoints.
	Admin Admin `yaml:"admin"`
	// Revocation watermarks: the tokens of a subject, session, client, claim
	// value or issuer issued before a time are refused, on every replica
	// ([Revocation](revocation.md)).
	Revocation Revocation `yaml:"revocation"`
	// Tuning of the Check gRPC server.
	GRPC GRPC `yaml:"grpc"`
	// Tuning of the Go runtime.
	Runtime Runtime `yaml:"runtime"`
	// How issuers' JSON Web Key Sets are fetched and refreshed.
	JWKS JWKS `yaml:"jwks"`
	// JWT acceptance rules shared by all issuers.
	Tokens Tokens `yaml:"tokens"`
	// The Shared Signals receiver: security events pushed by identity providers
	// revoke users' and sessions' tokens ([Shared Signals](ssf.md)).
	SSF SSF `yaml:"ssf"`
	// What an allowed request carries to the MCP server. Header names are
	// lower-cased; they may not be pseudo-headers, authorization, cookie, host,
	// content-length, transfer-encoding or hop-by-hop headers, and must differ
	// from one another.
	Upstream Upstream `yaml:"upstream"`
	// Answer for a request that matches no resource. `deny` is 403; `allow`
	// passes it with no identity headers and no session cookie.
	Unmatched string `yaml:"unmatched" schema:"enum=deny|allow"`
	// Refuse (403) every Check whose route does not name its resource (Envoy
	// `context_extensions`, the HTTP mode's `/authz/<proxy>/<resource>`), so the
	// `Host` header a client writes never chooses it. Set it once every route
	// names its resource; `check-config` warns about resources that differ only
	// by host while it is off.
	RequireExplicitResource bool `yaml:"require_explicit_resource"`
	// The process log (log/slog).
	Log Log `yaml:"log"`
	// How MCP operations are read for the rules.
	MCP MCP `yaml:"mcp"`
	// Envoy external processing of MCP responses: listings filtered by the
	// caller's scopes ([List filtering](list-filtering.md)).
	ExtProc ExtProc `yaml:"ext_proc"`
	// The browser login flow (authorization code with PKCE) shared by the
	// resources that enable it.
	Login Login `yaml:"login"`
	// DPoP (RFC 9449) settings shared by every resource ([DPoP](dpop.md)).
	DPoP DPoPShared `yaml:"dpop"`
	// The protected resources (MCP servers). At least one. A request is routed
	// to the resource named by Envoy's context_extensions {resource: NAME}, else
	// to the first whose hosts and path_prefix match it.
	Resources []Resource `yaml:"resources" schema:"required,minItems=1"`
	// The OAuth facade's settings shared by the resources that enable
	// `oauth_facade` ([OAuth facade](oauth-facade.md)).
	OAuthFacade OAuthFacade `yaml:"oauth_facade"`

	// written holds the key paths (as in "cache.negative_ttl") that Parse
	// found in the file with a value, so ApplyDefaults keeps an explicit
	// zero ("negative_ttl: 0s" disables negative caching) instead of
	// replacing it. Nil for a Config built in memory: there, zero means unset.
	written map[string]bool
}

// Listen holds listener addresses (host:port). An omitted address takes its
// default; "off" disables the HTTP or admin listener (gRPC cannot be disabled).
type Listen struct {
	// Envoy ext_authz gRPC server. Cannot be `off`.
	GRPC string `yaml:"grpc" pattern:"^.*:[0-9]{1,5}$" doctype:"host:port"`
	// Protected-resource metadata, `/healthz`, `/readyz`.
	HTTP string `yaml:"http" pattern:"^(off|.*:[0-9]{1,5})$" doctype:"host:port | 'off'"`
	// `/healthz`, `/readyz`, `/metrics`, the status page at `/`, the cache purge
	// and revocations, and pprof under `/debug/pprof/` with `admin.pprof`. Keep it
	// off the public network.
	Admin string `yaml:"admin" pattern:"^(off|.*:[0-9]{1,5})$" doctype:"host:port | 'off'"`
}

// Cache configures the verified-token cache.
type Cache struct {
	// Standalone Redis: `redis://` or `rediss://` (TLS) URL of the shared tier.
	// A user name and a database path (`/0`…`/1023`) are allowed; a password, a
	// query or a fragment are not. Cannot be combined with `redis.sentinel` or
	// `redis.cluster`; with none of the three, the cache is in-process only.
	RedisURL string `yaml:"redis_url" pattern:"^(|rediss?://[^:@/]*@?[^@]+)$" doctype:"URL"`
	// Where the password of the Redis data nodes is read from, in every mode: an
	// environment variable or a file, at most one. Never written inline. Set
	// only when a Redis is configured.
	RedisPassword Secret `yaml:"redis_password"`
	// Longest a verified token stays cached; never past its `exp`. Must be > 0.
	MaxTTL Duration `yaml:"max_ttl"`
	// How long an invalid token is remembered as invalid. `0s` disables.
	NegativeTTL Duration `yaml:"negative_ttl"`
	// Valid tokens held in process: the size of the compact store (about 160
	// bytes of RSS each, once used), plus at most as many again for tokens it
	// cannot hold compactly (kept claims, long subjects and session ids).
	MaxEntries int `yaml:"max_entries" schema:"min=1"`
	// Invalid tokens held in process, so garbage floods cannot grow memory.
	MaxNegativeEntries int `yaml:"max_negative_entries" schema:"min=1"`
	// How long a token purged through the admin listener stays revoked when its
	// `exp` is not known (otherwise until `exp`). Must be > 0.
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
	// ACL user of the data nodes. In standalone mode it may be in `redis_url`
	// instead; if both, they must agree.
	Username string `yaml:"username" docdefault:"'\"\"' (default user)"`
	// Database number, 0 to 1023. Standalone takes it from `redis_url`'s path;
	// if both are set they must agree. Must be 0 in Cluster mode (Redis Cluster
	// has one database).
	DB int `yaml:"db" schema:"min=0,max=1023"`
	// TLS to Redis and the sentinels. TLS is on when enabled is true or
	// redis_url is rediss://; the other keys need it on. Files are read when the
	// server starts, not by check-config.
	TLS RedisTLS `yaml:"tls"`
	// Connections per node; go-redis's default is 10 per CPU (5 per CPU per node
	// in Cluster mode).
	PoolSize int `yaml:"pool_size" schema:"min=0" docdefault:"'0' (go-redis default)"`
	// Time limit for opening a connection. Must be > 0.
	DialTimeout Duration `yaml:"dial_timeout"`
	// Time limit for each lookup and each pub/sub publish. > 0 and at most
	// `1s`: a slow Redis is a cache miss, never a slow decision. Writes
	// (verdicts, and the entries of purges and revocations) go through a
	// background queue in batches with a budget of their own (500ms), which
	// no decision waits for.
	Timeout Duration `yaml:"timeout"`
	// Consecutive Redis failures that open the circuit; while open, Redis is
	// skipped and only the in-process tier answers. A run that ends in a
	// timeout opens it only if Redis then fails a PING too: a busy replica's
	// own delays are not Redis's failure. At least 1.
	CircuitFailures int `yaml:"circuit_failures" schema:"min=1"`
	// How long the circuit stays open before one probe goes to Redis. Must be >
	// 0.
	CircuitCooldown Duration `yaml:"circuit_cooldown"`
}

// RedisSentinel names the sentinels and the master they watch.
type RedisSentinel struct {
	// Name the sentinels know the master by. Required in Sentinel mode.
	MasterName string `yaml:"master_name"`
	// Sentinels to ask for the master. At least one in Sentinel mode; no
	// repeats.
	Addresses []string `yaml:"addresses" schema:"unique,items.ref=host_port"`
	// Where the sentinels' own password is read from, when they require one. The
	// data nodes use cache.redis_password.
	Password Secret `yaml:"password"`
}

// RedisCluster names the seed nodes of a Redis Cluster; the others are
// discovered from them.
type RedisCluster struct {
	// Seed nodes of a Redis Cluster; the others are discovered. At least one in
	// Cluster mode; no repeats.
	Addresses []string `yaml:"addresses" schema:"unique,items.ref=host_port"`
}

// RedisTLS configures TLS to Redis. TLS is on when Enabled is true or
// redis_url is rediss://; certificate files are read at start, not by
// Validate.
type RedisTLS struct {
	// Use TLS. A `rediss://` URL turns it on too. The other `tls` keys are
	// refused while TLS is off.
	Enabled bool `yaml:"enabled"`
	// PEM bundle of the CAs that verify the server.
	CAFile string `yaml:"ca_file" doctype:"path" docdefault:"'\"\"' (system roots)"`
	// Client certificate for mutual TLS. Set together with `key_file`.
	CertFile string `yaml:"cert_file" doctype:"path"`
	// Its private key. Set together with `cert_file`.
	KeyFile string `yaml:"key_file" doctype:"path"`
	// Name sent in SNI and verified in the certificate.
	ServerName string `yaml:"server_name" doctype:"host" docdefault:"'\"\"' (host dialled)"`
	// Skip verifying the server's certificate. Refused unless every Redis
	// address is loopback (`localhost`, `127.0.0.0/8`, `::1`); use `ca_file` for
	// a private CA.
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

// Admin protects the admin listener's mutating endpoints and turns its
// profiler on.
type Admin struct {
	// Where the bearer token required by POST /cache/purge and POST
	// /revocations on the admin listener is read from: an environment variable
	// or a file, at most one. Unset: both are disabled.
	Token Secret `yaml:"token"`
	// Serve Go's profiler (`net/http/pprof`) under `/debug/pprof/` on the admin
	// listener. Off by default: a profile shows the process's memory and call
	// stacks, and a CPU profile or trace costs CPU while it runs. Turn it on to
	// investigate, then off again (a restart applies it).
	PProf bool `yaml:"pprof"`
}

// Revocation configures revocation watermarks (POST /revocations on the
// admin listener, and the events that revoke tokens).
type Revocation struct {
	// The longest lifetime (`exp` − `iat`) of the access tokens the
	// authorization servers issue. A watermark is kept this long plus
	// `cache.max_ttl` past its `before`, after which no token it revokes can
	// still be valid. A token that lives longer could be allowed again once
	// the watermark that revoked it is gone: set it to at least the longest
	// lifetime your servers give. `1m` to `8760h`.
	MaxTokenLifetime Duration `yaml:"max_token_lifetime"`
	// How often each replica drops expired watermarks (also from Redis) and
	// reads Redis's set again, catching up with any announcement it missed.
	// `1s` to `1h`.
	SyncInterval Duration `yaml:"sync_interval"`
}

// GRPC tunes the Check server.
type GRPC struct {
	// Largest CheckRequest, 1024 to 67108864. Raise it if Envoy sends bodies.
	MaxRecvMsgBytes int `yaml:"max_recv_msg_bytes" schema:"min=1024,max=67108864"`
	// Streams per connection.
	MaxConcurrentStreams uint32 `yaml:"max_concurrent_streams" schema:"min=0,max=4294967295" docdefault:"'0' (gRPC default)"`
	// Long-lived goroutines that serve Checks, 0 to 65536. A worker keeps the
	// stack it has grown; a goroutine started for each Check grows its stack
	// again, by copying, every time. A Check that arrives while every worker is
	// busy gets a goroutine of its own, so too few workers costs speed, never a
	// refusal. Size it for the Checks in flight at once, across all proxies; an
	// idle worker holds its stack (tens of KiB). `0`: a new goroutine for every
	// Check (gRPC's default).
	StreamWorkers int `yaml:"stream_workers" schema:"min=0,max=65536"`
	// gRPC server keepalive parameters and enforcement policy for connections
	// from Envoy.
	Keepalive Keepalive `yaml:"keepalive"`
}

// Runtime tunes the Go runtime.
type Runtime struct {
	// The heap may grow at least this far past its live data before a garbage
	// collection. With `GOGC=100` alone, the collector starts a cycle once the
	// heap has grown by the live data. The gateway's live heap is small, because
	// the valid-token tier lives outside the Go heap, so without a headroom it
	// would collect many times a second under load, and shrink every idle
	// goroutine's stack each time. With a headroom the process holds up to this
	// much more memory. Once the live heap is larger than this, `GOGC` alone
	// decides. `0`: `GOGC` alone. A `GOGC` set in the environment is the lower
	// bound; `GOGC=off` turns the headroom off. `GOMEMLIMIT` still applies: set
	// it under the container's memory limit. The live percentage is
	// `go_gc_gogc_percent` in [`/metrics`](operating.md#metrics).
	GCHeadroomBytes int `yaml:"gc_headroom_bytes" schema:"min=0,max=1099511627776" docdefault:"'33554432' (32 MiB)"`
}

// Keepalive mirrors gRPC's server keepalive parameters and enforcement policy.
type Keepalive struct {
	// Ping a connection idle this long.
	Time Duration `yaml:"time"`
	// Close it if the ping is not answered in time.
	Timeout Duration `yaml:"timeout"`
	// Disconnect clients that ping more often.
	MinTime Duration `yaml:"min_time"`
	// Allow pings on connections with no active stream (Envoy keeps idle
	// connections).
	PermitWithoutStream *bool `yaml:"permit_without_stream"`
	// Recycle connections so load spreads over new replicas.
	MaxConnectionAge Duration `yaml:"max_connection_age" docdefault:"'0s' (unlimited)"`
}

// JWKS tunes how issuers' key sets are fetched.
type JWKS struct {
	// Lower bound on the refresh interval taken from the JWKS `Cache-Control:
	// max-age`.
	MinRefresh Duration `yaml:"min_refresh"`
	// Upper bound; the interval when there is no `max-age`. Must be ≥
	// `min_refresh`.
	MaxRefresh Duration `yaml:"max_refresh"`
	// Minimum gap between refetches triggered by unknown `kid`s, so forged kids
	// cannot hammer the issuer.
	UnknownKIDInterval Duration `yaml:"unknown_kid_min_interval"`
	// Time limit for one fetch.
	Timeout Duration `yaml:"timeout"`
}

// Tokens holds the JWT acceptance rules.
type Tokens struct {
	// Longer tokens are rejected unparsed. 1 to 1048576.
	MaxBytes int `yaml:"max_bytes" schema:"min=1,max=1048576"`
	// Clock skew allowed on `exp`, `nbf`, `iat`. At most `5m`; `0s` for none.
	Leeway Duration `yaml:"leeway"`
	// Accepted JWS algorithms; `ES512` may be added. `none` and `HS256/384/512`
	// are never accepted.
	Algorithms []string `yaml:"algorithms" schema:"minItems=1,unique,items.enum=RS256|RS384|RS512|PS256|PS384|PS512|ES256|ES384|ES512|EdDSA"`
}

// SSF configures the Shared Signals Framework receiver (OpenID SSF 1.0): the
// RFC 8935 endpoint on the HTTP listener to which transmitters push Security
// Event Tokens, each turned into a revocation. See [Shared Signals](ssf.md).
type SSF struct {
	// Path of the push endpoint on the HTTP listener: the endpoint the streams
	// are configured with at the transmitters (`public_url` + `path`).
	Path string `yaml:"path"`
	// The `aud` every SET must carry: the audience the streams are configured
	// with at the transmitters. Required when transmitters are listed.
	Audience string `yaml:"audience"`
	// A SET issued longer ago is refused; each `jti` is remembered this long
	// plus `leeway` (in Redis when configured). At most `24h`. A transmitter
	// retrying a SET the gateway answered 503 must retry within it.
	MaxAge Duration `yaml:"max_age"`
	// Clock skew allowed on a SET's `iat` and `exp`. At most `5m`; `0s` for
	// none.
	Leeway Duration `yaml:"leeway"`
	// Largest push body, 1024 to 1048576; a larger one is refused (400
	// `invalid_request`).
	MaxBytes int `yaml:"max_bytes" schema:"min=1024,max=1048576"`
	// The transmitters whose SETs are accepted. None: the receiver is off.
	Transmitters []SSFTransmitter `yaml:"transmitters"`
}

// SSFTransmitter is one transmitter of Security Event Tokens.
type SSFTransmitter struct {
	// Compared exactly with the SETs' `iss`. https (http for loopback only),
	// no query or fragment.
	Issuer string `yaml:"issuer" schema:"required,format=uri"`
	// The transmitter's configuration document, from which `jwks_uri` is read.
	// Empty: `/.well-known/ssf-configuration` inserted between the issuer's host
	// and path. Not read when `jwks_uri` is set.
	ConfigurationURL string `yaml:"configuration_url" doctype:"URL" docdefault:"'\"\"' (well-known)"`
	// The transmitter's JWKS. Empty: from its configuration document.
	JWKSURI string `yaml:"jwks_uri" doctype:"URL" docdefault:"'\"\"' (discovered)"`
	// The bearer token the transmitter's pushes carry in `Authorization` (set
	// on the stream at the transmitter): `{env: NAME}` or `{file: PATH}`.
	// Unset: its pushes need none; a push carrying another transmitter's token
	// is refused either way.
	PushToken Secret `yaml:"push_token"`
	// Accepted JWS algorithms of its SETs. `none` and `HS256/384/512` are never
	// accepted.
	Algorithms []string `yaml:"algorithms" schema:"minItems=1,unique,items.enum=RS256|RS384|RS512|PS256|PS384|PS512|ES256|ES384|ES512|EdDSA"`
	// Which claim of the resources' tokens its subject identifiers (RFC 9493)
	// name. `iss_sub` names `iss` and `sub`; a session its `sid`.
	SubjectClaims SSFSubjectClaims `yaml:"subject_claims"`
	// The `iss` of the tokens its events revoke, one of the
	// `authorization_servers`. Empty: tokens of every issuer whose subject (or
	// email, or session) matches. An `iss_sub` subject names its own issuer.
	TokenIssuer string `yaml:"token_issuer" doctype:"URL" docdefault:"'\"\"' (every issuer)"`
	// Polling (RFC 8936), for a gateway the transmitter cannot push to. Its
	// pushes are received either way.
	Poll SSFPoll `yaml:"poll"`
}

// SSFPoll configures polling a transmitter's stream (RFC 8936).
type SSFPoll struct {
	// The stream's polling endpoint. Empty: not polled.
	Endpoint string `yaml:"endpoint" doctype:"URL"`
	// The bearer token the polls carry in `Authorization`: `{env: NAME}` or
	// `{file: PATH}`.
	Token Secret `yaml:"token"`
	// Wait after a poll that brought nothing to answer; polled again at once
	// while there are acknowledgements to send. At most `1h`.
	Interval Duration `yaml:"interval"`
	// SETs asked for by one poll, 1 to 1000.
	MaxEvents int `yaml:"max_events" schema:"min=1,max=1000"`
}

// SSFSubjectClaims maps a transmitter's subject identifiers to token claims.
type SSFSubjectClaims struct {
	// The claim an `email` identifier is compared with (exactly). The tokens
	// must carry it.
	Email string `yaml:"email" schema:"minLength=1"`
	// The claim an `opaque` identifier is compared with: `sub`, `sid`,
	// `client_id` or another claim the tokens carry.
	Opaque string `yaml:"opaque" schema:"minLength=1"`
}

// Upstream says what an allowed request carries to the MCP server.
type Upstream struct {
	// Set to the token's `sub`.
	SubjectHeader string `yaml:"subject_header" schema:"ref=header_name"`
	// Set to `client_id`, else `azp`.
	ClientIDHeader string `yaml:"client_id_header" schema:"ref=header_name"`
	// Set to the granted scopes, space separated.
	ScopesHeader string `yaml:"scopes_header" schema:"ref=header_name"`
	// Remove the inbound `Authorization` header (MCP forbids token passthrough).
	StripAuthorization *bool `yaml:"strip_authorization"`
	// Encrypts minted upstream tokens in Redis (AES-256-GCM, key derived by
	// HKDF-SHA256): `{env: NAME}` or `{file: PATH}` holding at least 32 bytes,
	// the same on every replica. Required with Redis when a resource sets
	// `upstream_token`.
	TokenEncryptionKey Secret `yaml:"token_encryption_key"`
	// Bound on minted tokens held in process.
	TokenCacheEntries int `yaml:"token_cache_entries" schema:"min=1,max=10000000"`
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
	// Write one [audit line](operating.md#logs-and-the-audit-trail) per
	// decision.
	Enabled *bool `yaml:"enabled"`
	// Fraction of allowed requests written, 0 to 1; denials are always written.
	AllowSampleRate float64 `yaml:"allow_sample_rate" schema:"min=0,max=1"`
}

// AuditEnabled reports whether audit lines are written; unset means true.
func (l Log) AuditEnabled() bool { return l.Audit.Enabled == nil || *l.Audit.Enabled }

// Resource is one protected resource: an MCP server behind the gateway.
type Resource struct {
	// Unique, `^[a-z0-9][a-z0-9_-]*$`. Used in metrics; an Envoy route selects
	// it with `context_extensions: {resource: NAME}`.
	Name string `yaml:"name" schema:"required" pattern:"^[a-z0-9][a-z0-9_-]*$"`
	// Canonical URI (RFC 8707/9728): the audience tokens must carry, byte for
	// byte, and the `resource` of the metadata document. https (http for
	// loopback only), lower-case scheme and host, no default port, no query or
	// fragment. Unique.
	Resource string `yaml:"resource" schema:"required,format=uri"`
	// `:authority` values (port ignored) routed here: lower-case names, IPs, or
	// `*.suffix`.
	Hosts []string `yaml:"hosts" schema:"minItems=1,nodefault" itemPattern:"^(\\*\\.)?[a-z0-9.:-]+$" docdefault:"host of 'resource'"`
	// Path prefix, matched on whole segments. Starts with `/`; in canonical form
	// (no dot segments, `//`, escaped unreserved characters, `\`, `;`):
	// `check-config` names the form to write.
	PathPrefix string `yaml:"path_prefix" schema:"nodefault" pattern:"^/[^?#]*$" docdefault:"path of 'resource', or '/'"`
	// Match `path_prefix` ignoring ASCII letter case, for an upstream that
	// routes that way (Express does by default). Off, a path that differs from a
	// protected prefix only in case is refused (400), since the upstream may
	// serve it as the protected path.
	PathCaseInsensitive bool `yaml:"path_case_insensitive"`
	// Serve this resource's RFC 9728 document also at the root well-known path
	// of its hosts (`/.well-known/oauth-protected-resource`, no path suffix). A
	// resource whose URI has the path `/` owns that path anyway; at most one
	// resource per host may claim it (`check-config` refuses a second). Without
	// either, the root path serves the host's only resource, and is a 404 on a
	// host with several ([Metadata](decision.md#how-a-request-is-decided)).
	RootMetadata bool `yaml:"root_metadata"`
	// Who answers a CORS preflight (`OPTIONS` with `Origin` and
	// `Access-Control-Request-Method`, no body) from an allowed origin: the
	// gateway (204 with the CORS headers of `cors`), or the upstream, reached
	// without a token. In the [HTTP
	// mode](operating.md#http-authorization-mode-nginx-traefik-caddy-envoy-http_service)
	// a subrequest cannot carry the gateway's answer: nginx proxies preflights
	// to `/authz/nginx-preflight/<resource>` (as shown there); with Traefik or
	// Caddy use `forward`.
	Preflight string `yaml:"preflight" schema:"enum=answer|forward"`
	// Trusted issuers, at least one (below).
	AuthorizationServers []AuthorizationServer `yaml:"authorization_servers" schema:"required,minItems=1"`
	// Published in the metadata document.
	ScopesSupported []string `yaml:"scopes_supported" schema:"unique,items.ref=scope,nodefault" docdefault:"'required_scopes'"`
	// Needed by every request; each must be in `scopes_supported`.
	RequiredScopes []string `yaml:"required_scopes" schema:"unique,items.ref=scope"`
	// Audiences accepted besides `resource`.
	Audiences []string `yaml:"audiences" schema:"items.minLength=1"`
	// RFC 9728 `resource_name`.
	ResourceName string `yaml:"resource_name"`
	// RFC 9728 `resource_documentation`.
	ResourceDocumentation string `yaml:"resource_documentation" doctype:"URL"`
	// Scope hierarchy: `{"mcp:admin": ["mcp:write"], "mcp:write": ["mcp:read"]}`
	// lets a token with `mcp:admin` do what needs `mcp:write` or `mcp:read`.
	// Transitive; no scope implies itself.
	ScopeImplications map[string][]string `yaml:"scope_implications" schema:"items.minItems=1,items.items.ref=scope"`
	// Browser origins (`scheme://host[:port]`, lower case) whose requests are
	// accepted; a request with any other `Origin` gets 403. `"*"` allows all. A
	// request without `Origin` is not affected. Also the origins the gateway's
	// [CORS](mcp-rules.md#cors-for-browser-clients) answers are for (the rest is
	// under `cors`).
	AllowedOrigins []string `yaml:"allowed_origins" schema:"nodefault" docdefault:"origins of 'resource' and 'public_url'"`
	// The CORS headers of the gateway's own answers (preflights, denials):
	// [`resources[].cors`](#resourcescors).
	CORS CORS `yaml:"cors"`
	// An expression every request with a valid token must satisfy (see
	// [Policies](mcp-rules.md#policies-cel)).
	Policy string `yaml:"policy,omitempty" doctype:"CEL"`
	// Per-operation scopes and policies (below).
	Rules []Rule `yaml:"rules"`
	// Browser sign-in for this resource: the gateway's confidential client at
	// one of its authorization servers.
	Login ResourceLogin `yaml:"login"`
	// Paths that pass without a token, for listed methods
	// ([below](#resourcespublic)).
	Public []PublicPath `yaml:"public"`
	// A credential the gateway mints for the MCP server, sent in place of the
	// client's token ([upstream credentials](upstream-credentials.md); off
	// unless `mode` is set).
	UpstreamToken UpstreamToken `yaml:"upstream_token"`
	// Sender-constrained tokens: DPoP proofs (RFC 9449) ([DPoP](dpop.md)).
	DPoP DPoP `yaml:"dpop"`
	// The gateway as this resource's OAuth authorization server for MCP
	// clients, in front of a provider that registers no clients ([OAuth
	// facade](oauth-facade.md)).
	OAuthFacade ResourceOAuthFacade `yaml:"oauth_facade"`
}

// DPoP configures how a resource treats DPoP (RFC 9449): tokens bound to a
// client's key (`cnf.jkt`), presented with `Authorization: DPoP` and a
// proof of possession on every request.
type DPoP struct {
	// `allowed`: DPoP-bound tokens with their proofs, and Bearer tokens;
	// `required`: DPoP only (a Bearer token is refused); `off`: Bearer only
	// (a DPoP-bound token is refused either way). See [DPoP](dpop.md).
	Mode string `yaml:"mode" schema:"enum=off|allowed|required"`
	// JWS algorithms accepted for proofs (asymmetric only).
	Algorithms []string `yaml:"algorithms" schema:"minItems=1,unique,items.enum=RS256|RS384|RS512|PS256|PS384|PS512|ES256|ES384|ES512|EdDSA"`
	// A proof's `iat` may be at most this old (and `dpop.leeway` in the
	// future); its `jti` is remembered this long, across replicas with Redis.
	MaxAge Duration `yaml:"max_age"`
	// Require a server nonce in every proof (RFC 9449 §9): a proof without the
	// current one is answered `401 use_dpop_nonce` with a `DPoP-Nonce` header.
	// Needs `dpop.nonce_key`.
	Nonce bool `yaml:"nonce"`
	// The origin clients address (`scheme://host[:port]`): a proof's `htu` is
	// compared with this origin and the request's path. Empty: the origin of
	// `resource`. Never read from the request, whose `Host` and
	// `X-Forwarded-Proto` the client chooses.
	HTUOrigin string `yaml:"htu_origin" doctype:"URL" docdefault:"origin of 'resource'"`
}

// The values of DPoP.Mode.
const (
	DPoPAllowed  = "allowed"
	DPoPRequired = "required"
	DPoPOff      = "off"
)

// DPoPShared is what every resource's DPoP checks share.
type DPoPShared struct {
	// Key of the stateless server nonces (an HMAC of a time slot):
	// `{env: NAME}` or `{file: PATH}` holding at least 32 bytes, the same on
	// every replica. Required when a resource sets `dpop.nonce`.
	NonceKey Secret `yaml:"nonce_key"`
	// How long one nonce is current; the previous one is accepted too.
	NonceLifetime Duration `yaml:"nonce_lifetime"`
	// Clock skew allowed on a proof's `iat` in the future.
	Leeway Duration `yaml:"leeway"`
	// Bound on the proof ids (`jti`) remembered in process (with Redis, also
	// there). A full table refuses new proofs rather than forgetting one.
	ReplayEntries int `yaml:"replay_entries" schema:"min=1,max=100000000"`
}

// UpstreamToken configures the access token an allowed request carries to
// the MCP server: minted by RFC 8693 token exchange of the client's token,
// or with the gateway's own client credentials, and cached (encrypted in
// Redis) for every replica. See [upstream credentials](upstream-credentials.md).
type UpstreamToken struct {
	// `exchange`: RFC 8693 token exchange of the verified incoming token (the
	// upstream acts as the user); `client_credentials`: a token of the gateway
	// itself (the user is in the identity headers); `""`: none. See [upstream
	// credentials](upstream-credentials.md).
	Mode string `yaml:"mode" schema:"enum=|exchange|client_credentials" doctype:"'exchange' | 'client_credentials' | '\"\"'"`
	// The authorization server that mints it: the `aud` of `private_key_jwt`
	// assertions and the required `iss` of a minted JWT.
	Issuer string `yaml:"issuer" schema:"nodefault" doctype:"URL" docdefault:"the first authorization server"`
	// Token endpoint; empty: `token_endpoint` from the issuer's RFC 8414 (or
	// OpenID) metadata.
	TokenEndpoint string `yaml:"token_endpoint" doctype:"URL" docdefault:"'\"\"' (discovered)"`
	// Key set that verifies a minted JWT; empty: the issuer's `jwks_uri`.
	JWKSURI string `yaml:"jwks_uri" doctype:"URL" docdefault:"'\"\"' (discovered)"`
	// The gateway's client id at the issuer.
	ClientID string `yaml:"client_id" docdefault:"required when mode is set"`
	// Client authentication, as for introspection.
	AuthMethod string `yaml:"auth_method" schema:"enum=client_secret_basic|client_secret_post|private_key_jwt"`
	// `{env: NAME}` or `{file: PATH}`, for the `client_secret_*` methods.
	ClientSecret Secret `yaml:"client_secret"`
	// A PEM private key, for `private_key_jwt`.
	PrivateKey Secret `yaml:"private_key"`
	// `kid` of the assertion.
	KeyID string `yaml:"key_id"`
	// RFC 8693 `audience` values asked for. A minted JWT must name only these
	// (or, without any, only `resources`) in its `aud`.
	Audience []string `yaml:"audience" schema:"unique,items.minLength=1"`
	// RFC 8707 `resource` values asked for: absolute URIs of the upstream.
	Resources []string `yaml:"resources" schema:"unique,items.format=uri"`
	// Scopes asked for; none: the issuer's default for the target.
	Scopes []string `yaml:"scopes" schema:"unique,items.ref=scope"`
	// `exchange` only: also send the gateway's own client-credentials token as
	// `actor_token`, so that the minted token carries an `act` claim (RFC 8693
	// §4.1) naming the gateway.
	Actor bool `yaml:"actor"`
	// Bound on one call to the token endpoint, at most `10s`; the request
	// waiting for it gets a 503 after it.
	Timeout Duration `yaml:"timeout"`
	// A minted token is used until this long before its `exp`.
	ExpiryMargin Duration `yaml:"expiry_margin"`
	// When less than this fraction of a cached token's lifetime is left, a
	// request that uses it starts one re-mint in the background; `0` disables.
	RefreshAhead float64 `yaml:"refresh_ahead" schema:"min=0,max=0.9"`
	// How long a definitive refusal (`invalid_grant`, `invalid_target`,
	// `unauthorized_client`, `invalid_scope`, `access_denied`) is remembered.
	RefusalTTL Duration `yaml:"refusal_ttl"`
	// Lifetime assumed for an opaque token answered without `expires_in`.
	DefaultLifetime Duration `yaml:"default_lifetime"`
}

// The values of UpstreamToken.Mode.
const (
	UpstreamModeExchange          = "exchange"
	UpstreamModeClientCredentials = "client_credentials"
)

// CORS is what the gateway tells browsers about a resource in the CORS
// headers of its own answers (Fetch standard, CORS protocol). Which
// origins may read them is Resource.AllowedOrigins, the one list the
// Origin check also uses; the upstream's own answers carry the upstream's
// CORS headers.
type CORS struct {
	// `Access-Control-Allow-Methods` of a preflight answer: method names (`*` is
	// refused: browsers do not honour it on credentialed requests).
	AllowMethods []string `yaml:"allow_methods" schema:"items.ref=header_name"`
	// Request headers a page may send: names (any case); prefixes ending in `*`,
	// whose requested names are echoed; or `*` alone, every requested name
	// echoed. A preflight requesting another header is answered without it, and
	// the browser refuses the request.
	AllowHeaders []string `yaml:"allow_headers" schema:"items.ref=header_name"`
	// `Access-Control-Max-Age` of a preflight answer, whole seconds (Chromium
	// caps it at 2h).
	MaxAge Duration `yaml:"max_age"`
}

// Login configures the browser login flow shared by every resource that
// enables it.
type Login struct {
	// 32 bytes (hex or base64) encrypting sessions and sealing login states;
	// required when a resource enables login; the same on every replica.
	SessionKey Secret `yaml:"session_key"`
	// Longest life of a session.
	SessionTTL Duration `yaml:"session_ttl"`
	// How long a sign-in at the authorization server may take (sealed in its
	// login-state cookie).
	StateTTL Duration `yaml:"state_ttl"`
	// `extauthz-session` when `public_url` is plain http on loopback. Must start
	// with `__Host-` when `public_url` is https, and must not start with
	// `__Host-` or `__Secure-` on plain http.
	CookieName string `yaml:"cookie_name" docdefault:"'__Host-extauthz-session'"`
	// Path of the login endpoint on the HTTP listener.
	LoginPath string `yaml:"login_path"`
	// Path of the redirect URI (public_url + callback_path) on the HTTP
	// listener.
	CallbackPath string `yaml:"callback_path"`
	// Path of the logout endpoint on the HTTP listener.
	LogoutPath string `yaml:"logout_path"`
	// Where a sign-in without `rd`, and a sign-out, end.
	SuccessRedirect string `yaml:"success_redirect" doctype:"path"`
	// Where a failed sign-in is sent (303) with `error` and `error_description`
	// in the query; empty: the gateway's own small error page.
	ErrorPage string `yaml:"error_page" doctype:"path"`
}

// ResourceLogin is the gateway's confidential client for one resource's
// browser login.
type ResourceLogin struct {
	// Browsers may sign in to this resource and use the session cookie ([Browser
	// login](login.md#browser-login)). Requires `public_url` and
	// `login.session_key`.
	Enabled bool `yaml:"enabled"`
	// Where users sign in; one of the resource's authorization servers.
	Issuer string `yaml:"issuer" schema:"nodefault" doctype:"URL" docdefault:"the first authorization server"`
	// The gateway's confidential client, registered with the redirect URI
	// `public_url` + `login.callback_path`.
	ClientID string `yaml:"client_id" docdefault:"required when enabled"`
	// Client authentication at the token and revocation endpoints.
	AuthMethod string `yaml:"auth_method" schema:"enum=client_secret_basic|client_secret_post|private_key_jwt"`
	// For the `client_secret_*` methods, as for introspection.
	ClientSecret Secret `yaml:"client_secret"`
	// A PEM private key, for `private_key_jwt`, as for introspection.
	PrivateKey Secret `yaml:"private_key"`
	// `kid` of the client assertion, when the server holds several of the
	// client's keys.
	KeyID string `yaml:"key_id"`
	// Requested at sign-in; add `openid` and `offline_access` for refresh
	// tokens.
	Scopes []string `yaml:"scopes" schema:"unique,items.ref=scope,nodefault" docdefault:"'required_scopes'"`
}

// Rule adds required scopes, a policy, or both to the MCP operations it
// matches. Every matching rule applies.
type Rule struct {
	// JSON-RPC method: `tools/call`, `resources/*`, `prompts/get`. `*` matches
	// any run of characters (including `/`), `?` one character.
	Method string `yaml:"method" schema:"minLength=1" doctype:"glob"`
	// Tool name, resource URI or prompt name: `delete_*`, `file:///secrets/*`.
	// `*` also matches an operation without a name. Names match byte for byte;
	// resource URIs in [canonical form](mcp-rules.md#mcp-rules), so a URI
	// pattern must be written canonically (`check-config` shows the spelling);
	// `?` is always the glob, never a query.
	Name string `yaml:"name" doctype:"glob"`
	// Required in addition to `required_scopes`; each must be in
	// `scopes_supported` (which defaults to `required_scopes` plus every rule's
	// scopes).
	Scopes []string `yaml:"scopes" schema:"unique,items.ref=scope"`
	// An expression the matching requests must also satisfy.
	Policy string `yaml:"policy,omitempty" doctype:"CEL"`
}

// MCP holds the limits of reading MCP operations.
type MCP struct {
	// Largest JSON-RPC body read for the [MCP rules](mcp-rules.md#mcp-rules), 1
	// to 1048576; a longer one is a 400. Set Envoy's
	// `with_request_body.max_request_bytes` to the same value.
	MaxBodyBytes int `yaml:"max_body_bytes" schema:"min=1,max=1048576"`
	// Refuse (400) a `POST` to a resource with rules or a policy when the proxy
	// did not forward its body, so that the gateway itself checks the `Mcp-*`
	// headers against the body. Set it with Envoy's `with_request_body`; nginx
	// `auth_request` cannot forward bodies.
	RequireBody bool `yaml:"require_body"`
}

// ExtProc is the Envoy external processor (ext_proc) that filters the
// answers to tools/list, prompts/list, resources/list and
// resources/templates/list by the caller's scopes.
type ExtProc struct {
	// Serve `envoy.service.ext_proc.v3.ExternalProcessor` on the gRPC
	// listener, beside the Check. Envoy must run its `ext_proc` filter after
	// `ext_authz` and forward ext_authz's dynamic metadata
	// ([List filtering](list-filtering.md)).
	Enabled bool `yaml:"enabled"`
	// Largest JSON response body, and largest single server-sent event,
	// filtered, 1024 to 16777216, and with `enabled` at most
	// `grpc.max_recv_msg_bytes` less 64 KiB (Envoy sends a buffered body as
	// one gRPC message); a larger one is replaced by a JSON-RPC error, never
	// passed unfiltered.
	MaxBodyBytes int `yaml:"max_body_bytes" schema:"min=1024,max=16777216"`
}

// AuthorizationServer is one trusted token issuer. An issuer listed by
// several resources is the same server: every listing must be identical
// (a YAML anchor keeps them so).
type AuthorizationServer struct {
	// Compared exactly with the token's `iss`. https (http for loopback only),
	// no query or fragment.
	Issuer string `yaml:"issuer" schema:"required,format=uri"`
	// The issuer's JWKS. Empty: found through RFC 8414 metadata, then OpenID
	// Connect discovery. Not used with `token_mode: introspection`.
	JWKSURI string `yaml:"jwks_uri" doctype:"URL" docdefault:"'\"\"' (discovered)"`
	// `jwt`: signatures checked locally. `introspection`: every token is sent to
	// the RFC 7662 endpoint. `auto`: a JWT whose `iss` is this issuer is
	// verified locally, any other token (opaque, encrypted, a JWT without `iss`)
	// is introspected. At most one server per resource may introspect: an opaque
	// token does not say whose it is, and sending it to two servers would
	// disclose one server's tokens to the other.
	TokenMode string `yaml:"token_mode" schema:"enum=jwt|introspection|auto"`
	// The RFC 7662 introspection client; used by the introspection and auto
	// modes only.
	Introspection Introspection `yaml:"introspection"`
	// The claim compared with the resource's canonical URI and `audiences` (RFC
	// 8707).
	AudienceClaim string `yaml:"audience_claim" schema:"minLength=1"`
	// The claim holding granted scopes, a space-separated string or an array.
	// The default falls back to `scp` when `scope` is absent.
	ScopeClaim string `yaml:"scope_claim" schema:"minLength=1"`
	// The claim sent upstream as the client id. The default falls back to `azp`.
	ClientIDClaim string `yaml:"client_id_claim" schema:"minLength=1"`
	// Further claims (`tenant`, `groups`, `roles`; at most 32) kept with the
	// verified token — and cached with it, in Redis too — for
	// [policies](mcp-rules.md#policies-cel) to read as `token.claims["name"]`.
	// Nothing else beyond the standard claims is kept.
	KeepClaims []string `yaml:"keep_claims" schema:"unique,items.minLength=1"`
	// A JWT verified locally (`token_mode` `jwt` or `auto`) is accepted only if
	// its `typ` header is `at+jwt` (RFC 9068 §2.1, §4; compared without regard
	// to case, `application/` optional). `false` also accepts `typ: JWT` and no
	// `typ`, for servers whose access tokens are not typed (see the [provider
	// examples](#provider-examples)). A JWT of any other type — a refresh
	// token's `rt+jwt`, an ID token, a security event — is refused either way,
	// as is one with a `cnf` claim. Not used with `token_mode: introspection`,
	// where the server's answer says what the token is. **Changed default:**
	// before this key existed any `typ` was accepted, so tokens from a server
	// that types its access tokens `JWT` or not at all are now refused with `401
	// invalid_token` (reason `not_access_token`); set `require_typ: false` on
	// that server to accept them again.
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
	// The introspection endpoint; empty: `introspection_endpoint` from the
	// discovered metadata.
	Endpoint string `yaml:"endpoint" doctype:"URL" docdefault:"'\"\"' (discovered)"`
	// The gateway's client id at the server.
	ClientID string `yaml:"client_id" docdefault:"required when introspecting"`
	// Client authentication. `private_key_jwt` signs an RFC 7523 assertion
	// (`iss`=`sub`=client id, `aud`=the issuer, unique `jti`, one minute) per
	// call.
	AuthMethod string `yaml:"auth_method" schema:"enum=client_secret_basic|client_secret_post|private_key_jwt"`
	// `{env: NAME}` or `{file: PATH}`, for the `client_secret_*` methods.
	ClientSecret Secret `yaml:"client_secret"`
	// A PEM private key (RSA ≥ 2048 bits → RS256, P-256 → ES256, P-384 → ES384,
	// Ed25519 → EdDSA), for `private_key_jwt`.
	PrivateKey Secret `yaml:"private_key"`
	// `kid` of the assertion, when the server holds several of the client's
	// keys.
	KeyID string `yaml:"key_id"`
	// Bound on one call, at most `10s`. Keep it well under Envoy's ext_authz
	// `timeout` so a slow server is a clean 503, not a proxy error.
	Timeout Duration `yaml:"timeout"`
	// Cap on caching an answer (also bounded by the token's `exp` and
	// `cache.max_ttl`): a token revoked at the server stops being accepted
	// within it, or at once after a [purge](cache.md#revocation). An answer
	// without `exp` is trusted this long.
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

// OAuthFacade holds the OAuth facade's settings shared by every resource
// that enables it. Its issuer is `public_url` + `/oauth`; its sealed records
// (clients, codes, refresh families, consents) use `login.session_key`, and
// live in the cache's Redis when there is one.
type OAuthFacade struct {
	// PEM private keys (ES256, ES384, RS256/PS256 of 2048 bits or more,
	// Ed25519) that sign the access tokens, each from env or a file; all are
	// published at `/oauth/jwks`. Required when a resource enables the facade.
	SigningKeys []Secret `yaml:"signing_keys"`
	// The `kid` (the key's RFC 7638 thumbprint, logged at start) of the key
	// that signs; empty: the first.
	ActiveKey string `yaml:"active_key"`
	// How long a registered client lives after its registration or last use.
	ClientTTL Duration `yaml:"client_ttl"`
	// The most registered clients alive at once; registration answers 503
	// beyond.
	MaxClients int `yaml:"max_clients" schema:"minimum=1"`
	// How long a user's consent to a client is remembered.
	ConsentTTL Duration `yaml:"consent_ttl"`
	// Where Client ID Metadata Documents may be fetched from.
	ClientDocuments FacadeClientDocuments `yaml:"client_documents"`
}

// FacadeClientDocuments constrains the fetches of Client ID Metadata
// Documents (client_ids that are https URLs). By default only public
// addresses are fetched: loopback, private, link-local, shared and unique
// local addresses, among others, are refused (server-side request forgery).
type FacadeClientDocuments struct {
	// Networks (CIDR) documents may be fetched from although the default
	// policy refuses them: clients inside the network on purpose, or a test
	// server on loopback. Each one opens the gateway's fetcher to that
	// network; never list the cloud metadata service's.
	AllowNetworks []string `yaml:"allow_networks" schema:"unique"`
}

// ResourceOAuthFacade makes the gateway the authorization server MCP clients
// see for one resource: they register with it (or present a Client ID
// Metadata Document), sign in through it at the provider with the gateway's
// own client, and get tokens it mints.
type ResourceOAuthFacade struct {
	// Serve the facade for this resource: its protected-resource metadata
	// names the facade first, and the facade is a trusted issuer of the
	// resource. Requires `public_url`, `login.session_key` and
	// `oauth_facade.signing_keys`.
	Enabled bool `yaml:"enabled"`
	// The provider users sign in at; one of the resource's authorization
	// servers.
	Issuer string `yaml:"issuer" schema:"nodefault" doctype:"URL" docdefault:"the first authorization server"`
	// The gateway's confidential client at the provider, registered with the
	// redirect URI `public_url` + `login.callback_path`.
	ClientID string `yaml:"client_id" docdefault:"required when enabled"`
	// Client authentication at the provider's token endpoint.
	AuthMethod string `yaml:"auth_method" schema:"enum=client_secret_basic|client_secret_post|private_key_jwt"`
	// For the `client_secret_*` methods.
	ClientSecret Secret `yaml:"client_secret"`
	// A PEM private key, for `private_key_jwt`.
	PrivateKey Secret `yaml:"private_key"`
	// `kid` of the client assertion.
	KeyID string `yaml:"key_id"`
	// Requested at the provider; `offline_access` gets the provider's refresh
	// token, which the facade uses to check the user at every refresh.
	Scopes []string `yaml:"scopes" schema:"unique,items.ref=scope,nodefault" docdefault:"'[openid, offline_access]'"`
	// How the provider is told which API the token is for: `resource` (RFC
	// 8707) or `scope` (`audience_scope` added to the scopes, no resource
	// parameter: Microsoft Entra ID's `api://…/.default`).
	AudienceStyle string `yaml:"audience_style" schema:"enum=resource|scope"`
	// The scope naming the audience, for `audience_style: scope`.
	AudienceScope string `yaml:"audience_scope"`
	// The `aud` the provider's access tokens carry, checked at sign-in.
	UpstreamAudience string `yaml:"upstream_audience" docdefault:"'resource'"`
	// Lifetime of the access tokens the facade mints.
	TokenTTL Duration `yaml:"token_ttl"`
}
