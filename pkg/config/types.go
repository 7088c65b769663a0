package config

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole policy file. Field comments name the YAML key and its
// default; the README's Configuration section documents each key for operators.
type Config struct {
	// Listen holds the listener addresses.
	Listen Listen `yaml:"listen"`
	// PublicURL is how clients reach the gateway (scheme://host[:port], no
	// path). It prefixes the protected-resource metadata URL in challenges.
	// Empty: the origin of each resource's canonical URI.
	PublicURL string `yaml:"public_url"`
	// Cache configures the verified-token cache.
	Cache Cache `yaml:"cache"`
	// GRPC tunes the Check server.
	GRPC GRPC `yaml:"grpc"`
	// JWKS tunes how issuers' key sets are fetched and refreshed.
	JWKS JWKS `yaml:"jwks"`
	// Tokens holds the JWT acceptance rules shared by all issuers.
	Tokens Tokens `yaml:"tokens"`
	// Upstream says what an allowed request carries to the MCP server.
	Upstream Upstream `yaml:"upstream"`
	// Unmatched is the answer for a request that matches no resource:
	// "deny" (default, 403) or "allow" (passes with no identity headers).
	Unmatched string `yaml:"unmatched"`
	// Log configures the process log.
	Log Log `yaml:"log"`
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
	// RedisURL selects the shared Redis tier; empty means in-process only.
	RedisURL string `yaml:"redis_url"`
	// RedisPassword is read from the environment or a file, never inline.
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
}

// GRPC tunes the Check server.
type GRPC struct {
	// MaxRecvMsgBytes bounds one CheckRequest (default 4194304).
	MaxRecvMsgBytes int `yaml:"max_recv_msg_bytes"`
	// MaxConcurrentStreams per connection (default 0: gRPC's default).
	MaxConcurrentStreams uint32 `yaml:"max_concurrent_streams"`
	// Keepalive settings for connections from Envoy.
	Keepalive Keepalive `yaml:"keepalive"`
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
}

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
}

// AuthorizationServer is one trusted token issuer.
type AuthorizationServer struct {
	// Issuer is compared exactly with the token's iss.
	Issuer string `yaml:"issuer"`
	// JWKSURI, when empty, is discovered from the issuer's RFC 8414
	// metadata, then OpenID Connect discovery.
	JWKSURI string `yaml:"jwks_uri"`
}

// Secret names where a secret comes from: an environment variable or a file.
// Secrets are never written inline in the policy file.
type Secret struct {
	Env  string `yaml:"env"`
	File string `yaml:"file"`
}

// IsZero reports whether no source is named.
func (s Secret) IsZero() bool { return s.Env == "" && s.File == "" }

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
