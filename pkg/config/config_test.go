package config

import (
	"cmp"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func dur(s string) Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return Duration(d)
}

// defaultsWith returns the fully defaulted configuration around rs, built by
// hand from the documented defaults rather than by ApplyDefaults, so that a
// wrong default in the code fails the test.
// serverDefaults fills the authorization servers written in a test
// without a token mode with every default, so tests spell out only what
// they are about.
func serverDefaults(rs []Resource) {
	for i := range rs {
		if rs[i].Login.AuthMethod == "" {
			rs[i].Login.AuthMethod = "client_secret_basic"
		}
		if f := &rs[i].OAuthFacade; f.AuthMethod == "" {
			f.AuthMethod, f.AudienceStyle, f.TokenTTL = "client_secret_basic", "resource", dur("1h")
		}
		if rs[i].Preflight == "" {
			rs[i].Preflight = "answer"
		}
		if d := &rs[i].DPoP; d.Mode == "" {
			d.Mode, d.MaxAge, d.Algorithms = "allowed", dur("1m"), []string{"ES256", "ES384", "EdDSA", "RS256", "PS256"}
		}
		if u := &rs[i].UpstreamToken; u.AuthMethod == "" {
			u.AuthMethod, u.Timeout, u.ExpiryMargin, u.RefreshAhead = "client_secret_basic", dur("2s"), dur("30s"), 0.2
			u.RefusalTTL, u.DefaultLifetime = dur("30s"), dur("1m")
		}
		if rs[i].CORS.AllowMethods == nil && rs[i].CORS.AllowHeaders == nil && rs[i].CORS.MaxAge == 0 {
			// No cors block in the want: the defaults.
			rs[i].CORS = CORS{AllowMethods: []string{"GET", "POST", "DELETE"}, AllowHeaders: []string{"Authorization", "Content-Type",
				"Mcp-Protocol-Version", "Mcp-Method", "Mcp-Name", "Mcp-Session-Id", "Last-Event-ID", "Mcp-Param-*"}, MaxAge: dur("10m")}
		}
		for k := range rs[i].AuthorizationServers {
			as := &rs[i].AuthorizationServers[k]
			if as.RequireTyp == nil {
				as.RequireTyp = ptr(true)
			}
			if as.TokenMode != "" {
				continue
			}
			as.TokenMode, as.AudienceClaim, as.ScopeClaim, as.ClientIDClaim = "jwt", "aud", "scope", "client_id"
			as.Introspection.AuthMethod = "client_secret_basic"
			as.Introspection.Timeout, as.Introspection.CacheTTL = dur("300ms"), dur("60s")
		}
	}
}

func defaultsWith(rs ...Resource) *Config {
	serverDefaults(rs)
	return &Config{
		Listen: Listen{GRPC: "127.0.0.1:9001", HTTP: "127.0.0.1:8080", Admin: "127.0.0.1:9090"},
		Cache: Cache{
			MaxTTL: dur("5m"), NegativeTTL: dur("10s"),
			MaxEntries: 100000, MaxNegativeEntries: 10000,
			RevokedTTL: dur("24h"),
			Redis:      redisDefaults(),
		},
		GRPC: GRPC{
			MaxRecvMsgBytes: 4194304,
			StreamWorkers:   128,
			Keepalive: Keepalive{
				Time: dur("60s"), Timeout: dur("20s"), MinTime: dur("10s"),
				PermitWithoutStream: ptr(true),
			},
		},
		Runtime: Runtime{GCHeadroomBytes: 32 << 20},
		JWKS:    JWKS{MinRefresh: dur("5m"), MaxRefresh: dur("1h"), UnknownKIDInterval: dur("10s"), Timeout: dur("5s")},
		Tokens: Tokens{
			MaxBytes: 16384, Leeway: dur("60s"),
			Algorithms: []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"},
		},
		Upstream: Upstream{
			SubjectHeader: "x-extauthz-subject", ClientIDHeader: "x-extauthz-client-id",
			ScopesHeader: "x-extauthz-scopes", StripAuthorization: ptr(true),
			TokenCacheEntries: 100000,
		},
		Unmatched: "deny",
		MCP:       MCP{MaxBodyBytes: 65536},
		ExtProc:   ExtProc{MaxBodyBytes: 1 << 20},
		Login: Login{SessionTTL: dur("8h"), StateTTL: dur("10m"), LoginPath: "/oauth/login", CallbackPath: "/oauth/callback",
			LogoutPath: "/oauth/logout", SuccessRedirect: "/"},
		DPoP:        DPoPShared{NonceLifetime: dur("5m"), Leeway: dur("5s"), ReplayEntries: 1000000},
		Revocation:  Revocation{MaxTokenLifetime: dur("24h"), SyncInterval: dur("1m")},
		Log:         Log{Level: "info", Format: "json", Audit: Audit{Enabled: ptr(true), AllowSampleRate: 1}},
		Resources:   rs,
		OAuthFacade: OAuthFacade{ClientTTL: dur("720h"), MaxClients: 10000, ConsentTTL: dur("720h")},
		SSF:         ssfDefaults(),
	}
}

// ssfDefaults are the documented defaults of the ssf section.
func ssfDefaults() SSF {
	return SSF{Path: "/ssf/events", MaxAge: dur("1h"), Leeway: dur("1m"), MaxBytes: 65536}
}

// redisDefaults are the documented defaults of cache.redis.
func redisDefaults() Redis {
	return Redis{DialTimeout: dur("1s"), Timeout: dur("25ms"), CircuitFailures: 5, CircuitCooldown: dur("2s")}
}

// assertConfig compares everything an operator can set; which keys were
// written is bookkeeping, not configuration.
func assertConfig(t *testing.T, got, want *Config) {
	t.Helper()
	g := *got
	g.written = nil
	serverDefaults(want.Resources)
	if !reflect.DeepEqual(&g, want) {
		t.Errorf("config mismatch\n got: %+v\nwant: %+v", g, *want)
	}
}

// mcpResource is the one resource of most testdata files, as defaulted.
func mcpResource() Resource {
	return Resource{
		Name: "mcp", Resource: "https://mcp.example.com/mcp",
		Hosts: []string{"mcp.example.com"}, PathPrefix: "/mcp",
		AuthorizationServers: []AuthorizationServer{{Issuer: "https://auth.example.com"}},
	}
}

func TestLoadValid(t *testing.T) {
	tests := []struct {
		file string
		want *Config
	}{
		{
			// The minimal example of docs/configuration.md; everything else defaulted.
			file: "valid-minimal.yaml",
			want: func() *Config {
				c := defaultsWith(Resource{
					Name:                 "mcp",
					Resource:             "https://mcp.example.com/mcp",
					Hosts:                []string{"mcp.example.com"},
					PathPrefix:           "/mcp",
					AuthorizationServers: []AuthorizationServer{{Issuer: "https://auth.example.com"}},
					ScopesSupported:      []string{"mcp:tools"},
					RequiredScopes:       []string{"mcp:tools"},
				})
				c.PublicURL = "https://mcp.example.com"
				return c
			}(),
		},
		{
			// Every key written, most with a non-default value.
			file: "valid-full.yaml",
			want: &Config{
				Listen:    Listen{GRPC: "0.0.0.0:19001", HTTP: "[::1]:18080", Admin: "off"},
				PublicURL: "https://gateway.example.com", // trailing "/" removed
				Cache: Cache{
					RedisURL:      "rediss://extauthz@redis.example.com:6380/2",
					RedisPassword: Secret{File: "/run/secrets/redis-password"},
					MaxTTL:        dur("2m"),
					NegativeTTL:   0, // written as 0s: disabled, not defaulted
					MaxEntries:    5000, MaxNegativeEntries: 500,
					RevokedTTL: dur("1h"),
					Redis: Redis{
						// Written as empty lists: empty, not nil.
						Sentinel: RedisSentinel{Addresses: []string{}},
						Cluster:  RedisCluster{Addresses: []string{}},
						Username: "extauthz",
						DB:       2,
						TLS: RedisTLS{
							Enabled:    true,
							CAFile:     "/etc/extauthz/redis-ca.pem",
							CertFile:   "/etc/extauthz/redis-client.pem",
							KeyFile:    "/etc/extauthz/redis-client-key.pem",
							ServerName: "redis.internal.example.com",
						},
						PoolSize:        50,
						DialTimeout:     dur("3s"),
						Timeout:         dur("100ms"),
						CircuitFailures: 10,
						CircuitCooldown: dur("30s"),
					},
				},
				Admin: Admin{Token: Secret{Env: "EXTAUTHZ_ADMIN_TOKEN"}},
				GRPC: GRPC{
					MaxRecvMsgBytes: 1048576, MaxConcurrentStreams: 1000, StreamWorkers: 0, // written as 0
					Keepalive: Keepalive{
						Time: dur("30s"), Timeout: dur("5s"), MinTime: dur("1s"),
						PermitWithoutStream: ptr(false), MaxConnectionAge: dur("30m"),
					},
				},
				Runtime: Runtime{GCHeadroomBytes: 0}, // written as 0
				JWKS:    JWKS{MinRefresh: dur("1m"), MaxRefresh: dur("2h"), UnknownKIDInterval: dur("30s"), Timeout: dur("2s")},
				Tokens: Tokens{
					MaxBytes: 8192, Leeway: 0, // written as 0s: no leeway
					Algorithms: []string{"ES256", "ES512", "EdDSA"},
				},
				Upstream: Upstream{
					SubjectHeader:  "x-user", // lower-cased
					ClientIDHeader: "x-client", ScopesHeader: "x-scope",
					StripAuthorization: ptr(false), TokenCacheEntries: 100000,
				},
				SSF: SSF{
					Path: "/signals/push", Audience: "https://gateway.example.com/ssf",
					MaxAge: dur("30m"), Leeway: 0, MaxBytes: 8192,
					Transmitters: []SSFTransmitter{
						{
							Issuer: "https://idp.example.com", ConfigurationURL: "https://idp.example.com/ssf/config",
							PushToken: Secret{Env: "SSF_PUSH_TOKEN"}, Algorithms: []string{"RS256"},
							SubjectClaims: SSFSubjectClaims{Email: "upn", Opaque: "sid"},
							TokenIssuer:   "https://auth.example.com/realms/mcp",
							Poll:          SSFPoll{Interval: dur("30s"), MaxEvents: 100},
						},
						{
							Issuer: "https://signals.example.net/tenant/7", JWKSURI: "https://signals.example.net/keys",
							Algorithms:    []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"},
							SubjectClaims: SSFSubjectClaims{Email: "email", Opaque: "sub"},
							Poll: SSFPoll{Endpoint: "https://signals.example.net/poll/7", Token: Secret{File: "/run/secrets/ssf-poll-token"},
								Interval: dur("10s"), MaxEvents: 500},
						},
					},
				},
				Unmatched:   "allow",
				DPoP:        DPoPShared{NonceLifetime: dur("5m"), Leeway: dur("5s"), ReplayEntries: 1000000},
				Revocation:  Revocation{MaxTokenLifetime: dur("2h"), SyncInterval: dur("30s")},
				Log:         Log{Level: "debug", Format: "text", Audit: Audit{Enabled: ptr(false), AllowSampleRate: 0.25}},
				MCP:         MCP{MaxBodyBytes: 131072, RequireBody: true},
				OAuthFacade: OAuthFacade{ClientTTL: dur("720h"), MaxClients: 10000, ConsentTTL: dur("720h")},
				ExtProc:     ExtProc{MaxBodyBytes: 1 << 20},
				Login: Login{SessionTTL: dur("8h"), StateTTL: dur("10m"), LoginPath: "/oauth/login", CallbackPath: "/oauth/callback",
					LogoutPath: "/oauth/logout", SuccessRedirect: "/"},
				Resources: []Resource{
					{
						Name:       "files",
						Resource:   "https://mcp.example.com/files",
						Hosts:      []string{"mcp.example.com", "*.mcp.example.com", "10.0.0.7"},
						PathPrefix: "/files/",
						AuthorizationServers: []AuthorizationServer{
							{Issuer: "https://auth.example.com/realms/mcp", JWKSURI: "https://auth.example.com/realms/mcp/certs"},
							{Issuer: "http://localhost:9000", RequireTyp: ptr(false)},
						},
						ScopesSupported:       []string{"files:read", "files:write", "openid"},
						RequiredScopes:        []string{"files:read"},
						Audiences:             []string{"files-api"},
						ResourceName:          "File server",
						ResourceDocumentation: "https://docs.example.com/files",
						CORS:                  CORS{AllowMethods: []string{"POST"}, AllowHeaders: []string{"Authorization", "X-Tenant-*"}, MaxAge: 0}, // written as 0s
					},
					{
						Name:       "search_v2",
						Resource:   "http://127.0.0.1:3000",
						Hosts:      []string{"127.0.0.1"}, // from resource
						PathPrefix: "/",                   // resource has no path
						AuthorizationServers: []AuthorizationServer{
							{Issuer: "https://auth.example.com/realms/mcp", JWKSURI: "https://auth.example.com/realms/mcp/certs"},
						},
						ScopesSupported: []string{"search"}, // from required_scopes
						RequiredScopes:  []string{"search"},
					},
				},
			},
		},
		{
			// Anchors, aliases and merge keys work as in any YAML tool,
			// and an explicit override beats the merged value.
			file: "valid-anchors.yaml",
			want: defaultsWith(
				Resource{
					Name: "a", Resource: "https://mcp.example.com/a",
					Hosts: []string{"mcp.example.com"}, PathPrefix: "/a",
					AuthorizationServers: []AuthorizationServer{{Issuer: "https://auth.example.com", JWKSURI: "https://auth.example.com/jwks"}},
					ScopesSupported:      []string{"read"}, RequiredScopes: []string{"read"},
				},
				Resource{
					Name: "b", Resource: "https://mcp.example.com/b",
					Hosts: []string{"mcp.example.com"}, PathPrefix: "/b",
					AuthorizationServers: []AuthorizationServer{{Issuer: "https://auth.example.com", JWKSURI: "https://auth.example.com/jwks"}},
					ScopesSupported:      []string{"write"}, RequiredScopes: []string{"write"},
				},
			),
		},
		{
			file: "valid-redis-sentinel.yaml",
			want: func() *Config {
				c := defaultsWith(mcpResource())
				c.Cache.RedisPassword = Secret{Env: "REDIS_PASSWORD"}
				c.Cache.Redis.Sentinel = RedisSentinel{
					MasterName: "mymaster",
					Addresses:  []string{"10.0.0.1:26379", "10.0.0.2:26379", "[fd00::3]:26379", "sentinel-3.redis.svc:26379"},
					Password:   Secret{Env: "SENTINEL_PASSWORD"},
				}
				c.Cache.Redis.Username = "extauthz"
				c.Cache.Redis.DB = 3
				return c
			}(),
		},
		{
			file: "valid-redis-cluster.yaml",
			want: func() *Config {
				c := defaultsWith(mcpResource())
				c.Cache.RedisPassword = Secret{File: "/run/secrets/redis-password"}
				c.Cache.Redis.Cluster = RedisCluster{Addresses: []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"}}
				c.Cache.Redis.TLS = RedisTLS{Enabled: true, CAFile: "/etc/extauthz/redis-ca.pem"}
				c.Cache.Redis.PoolSize = 20
				c.Cache.Redis.Timeout = dur("1s")
				return c
			}(),
		},
		{
			file: "valid-redis-tls.yaml",
			want: func() *Config {
				c := defaultsWith(mcpResource())
				c.Cache.RedisURL = "rediss://127.0.0.1:6380/5"
				c.Cache.Redis.DB = 5
				c.Cache.Redis.TLS = RedisTLS{
					CertFile:           "/etc/extauthz/redis-client.pem",
					KeyFile:            "/etc/extauthz/redis-client-key.pem",
					ServerName:         "redis.localhost",
					InsecureSkipVerify: true,
				}
				return c
			}(),
		},
		{
			// Keys written with no value, as left behind when their
			// children are commented out, take their defaults.
			file: "valid-null-sections.yaml",
			want: defaultsWith(Resource{
				Name: "mcp", Resource: "https://mcp.example.com",
				Hosts: []string{"mcp.example.com"}, PathPrefix: "/",
				AuthorizationServers: []AuthorizationServer{{Issuer: "https://auth.example.com"}},
			}),
		},
		{
			// Token modes and claim names; what is not written defaults.
			file: "valid-introspection.yaml",
			want: func() *Config {
				server := func(issuer, mode, aud, scope, clientID string, in Introspection) AuthorizationServer {
					in.AuthMethod = cmp.Or(in.AuthMethod, "client_secret_basic")
					in.Timeout = cmp.Or(in.Timeout, dur("300ms"))
					in.CacheTTL = cmp.Or(in.CacheTTL, dur("60s"))
					return AuthorizationServer{Issuer: issuer, TokenMode: mode, AudienceClaim: aud, ScopeClaim: scope, ClientIDClaim: clientID, Introspection: in}
				}
				return defaultsWith(
					Resource{
						Name: "mcp", Resource: "https://mcp.example.com/mcp",
						Hosts: []string{"mcp.example.com"}, PathPrefix: "/mcp",
						Audiences: []string{"7f3c2a9e-1b2d-4c5e-8f90-a1b2c3d4e5f6"},
						AuthorizationServers: []AuthorizationServer{
							func() AuthorizationServer {
								as := server("https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0", "jwt", "aud", "scp", "azp", Introspection{})
								as.KeepClaims = []string{"roles", "tid"}
								return as
							}(),
							server("https://idp.example.com/realms/mcp", "auto", "aud", "scope", "client_id",
								Introspection{ClientID: "extauthz", ClientSecret: Secret{Env: "KEYCLOAK_SECRET"}}),
						},
					},
					Resource{
						Name: "opaque", Resource: "https://mcp.example.com/opaque",
						Hosts: []string{"mcp.example.com"}, PathPrefix: "/opaque",
						AuthorizationServers: []AuthorizationServer{
							server("https://zitadel.example.com", "introspection", "aud", "scope", "client_id", Introspection{
								Endpoint: "https://zitadel.example.com/oauth/v2/introspect", ClientID: "extauthz",
								AuthMethod: "private_key_jwt", PrivateKey: Secret{File: "/run/secrets/extauthz.pem"},
								KeyID: "key-1", Timeout: dur("150ms"), CacheTTL: dur("30s"),
							}),
						},
					},
					Resource{
						Name: "cognito", Resource: "https://mcp.example.com/cognito",
						Hosts: []string{"mcp.example.com"}, PathPrefix: "/cognito",
						Audiences: []string{"3n4b5urk1ft4fl3mg5e62d9ado"},
						AuthorizationServers: []AuthorizationServer{
							server("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf", "jwt", "client_id", "scope", "client_id", Introspection{}),
							server("http://127.0.0.1:4444", "introspection", "aud", "scope", "client_id", Introspection{
								ClientID: "gateway", AuthMethod: "client_secret_post", ClientSecret: Secret{File: "/run/secrets/gateway"},
							}),
						},
					},
				)
			}(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := Load(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			assertConfig(t, got, tt.want)

			// ApplyDefaults again must not undo a written zero.
			again := *got
			again.ApplyDefaults()
			assertConfig(t, &again, tt.want)
		})
	}
}

func TestLoadInvalid(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"invalid-login.yaml", `
login.session_key: is required when a resource enables login (32 bytes, hex or base64, from env or file)
login.callback_path: must be a path such as "/oauth/login" (no query, fragment or spaces)
login.logout_path: "/oauth/login" is used by another login path
login.success_redirect: must be a same-origin path such as "/"
resources[0].login.client_id: is required when login is enabled
resources[0].login.private_key: is required with auth_method private_key_jwt
resources[0].login.issuer: must be one of the resource's authorization_servers
resources[0].login.client_secret: is not used with auth_method private_key_jwt
resources[1].login: is set but not enabled (set enabled: true)
public_url: is required when a resource enables login (the redirect URI is public_url + login.callback_path)`},
		{"invalid-dpop.yaml", `
dpop.nonce_key: is required when a resource sets dpop.nonce (at least 32 bytes, the same on every replica)
dpop.leeway: must be between 0s and 1m
resources[0].dpop.mode: must be "off", "allowed" or "required"
resources[0].dpop.algorithms[0]: "HS256" is not supported (use one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)
resources[0].dpop.max_age: must be at most 10m (a proof is for one request)
resources[0].dpop.htu_origin: must not have a path (only scheme://host[:port])
resources[0].dpop.htu_origin: must not have a query
resources[1].dpop: sets nonce or htu_origin with mode off (they apply to DPoP requests only)`},
		{"invalid-ssf.yaml", `
ssf.audience: is required when transmitters are listed
ssf.path: must not be a path the HTTP listener serves otherwise (/.well-known/, /authz/, /healthz, /readyz)
ssf.max_age: must be at most 24h
ssf.leeway: must be between 0s and 5m
ssf.max_bytes: must be between 1024 and 1048576 (1 MiB)
ssf.transmitters: are listed but listen.http is off (the push endpoint is on the HTTP listener)
ssf.transmitters[0].issuer: must be an absolute https URL (http is allowed only for localhost and loopback addresses)
ssf.transmitters[0].configuration_url: is not read when jwks_uri is set (set one)
ssf.transmitters[0].push_token: set env or file, not both
ssf.transmitters[0].algorithms[0]: "HS256" is not supported (use one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)
ssf.transmitters[0].subject_claims.email: must not be empty
ssf.transmitters[0].token_issuer: must be the issuer of one of the resources' authorization_servers
ssf.transmitters[1].issuer: must be an absolute https URL (http is allowed only for localhost and loopback addresses)
ssf.transmitters[1].issuer: is also ssf.transmitters[0]'s
ssf.transmitters[1].poll.token: is set but poll.endpoint is not
ssf.transmitters[1].poll.interval: must be at most 1h
ssf.transmitters[1].poll.max_events: must be between 1 and 1000
ssf.transmitters[2].issuer: required
ssf.transmitters[2].jwks_uri: must not have a query
ssf.transmitters[2].poll.endpoint: must be an absolute https URL (http is allowed only for localhost and loopback addresses)`},
		{"invalid-ssf-audience.yaml", `
ssf.audience: is set but no transmitters are listed
ssf.path: "/oauth/login" is a login path`},
		{"invalid-upstream-token.yaml", `
resources[0].upstream_token.client_id: is required when mode is set
resources[0].upstream_token.private_key: is required with auth_method private_key_jwt
resources[0].upstream_token.token_endpoint: must be an absolute https URL (http is allowed only for localhost and loopback addresses)
resources[0].upstream_token.client_secret: is not used with auth_method private_key_jwt
resources[0].upstream_token.resources[0]: must not have a fragment
resources[0].upstream_token.scopes[0]: must be a scope token: printable ASCII without spaces, double quotes or backslashes
resources[0].upstream_token.timeout: must be at most 10s
resources[0].upstream_token.expiry_margin: must not be negative (line 16)
resources[1].upstream_token: must name the upstream in audience or resources: a minted token is narrowed to it
resources[1].upstream_token.actor: is used only with mode exchange
resources[2].upstream_token: is set but has no mode (set mode: exchange or client_credentials)
resources[3].upstream_token.mode: must be "", "exchange" or "client_credentials"
upstream.token_encryption_key: is required when a resource sets upstream_token and Redis is configured: minted tokens are stored encrypted (at least 32 bytes, the same on every replica)`},
		{"invalid-revocation.yaml", `
revocation.max_token_lifetime: must be between 1m and 8760h
revocation.sync_interval: must be between 1s and 1h`},
		{"invalid-login-cookie.yaml", `
login.cookie_name: must start with __Host- when public_url is https (the cookie is Secure, Path=/ and without Domain, so sibling hosts cannot overwrite it)`},
		{"invalid-login-cookie-http.yaml", `
login.cookie_name: must not start with __Host- or __Secure- when public_url is plain http (such cookies must be Secure)`},
		{"invalid-mcp-rules.yaml", `
mcp.max_body_bytes: must be between 1 and 1048576 (1 MiB)
resources[0].scopes_supported[1]: offline_access is for the authorization server (refresh tokens), never a resource's scope
resources[0].scope_implications["mcp:admin"]: "mcp:admin" cannot imply itself
resources[0].scope_implications["offline_access"]: offline_access is for the authorization server (refresh tokens), never a resource's scope
resources[0].allowed_origins[0]: must be lower case, as browsers send the Origin header
resources[0].allowed_origins[1]: must be an origin only: scheme://host[:port], with no path, query or user
resources[0].allowed_origins[2]: must be "*" or an origin such as "https://app.example.com" (scheme://host[:port])
resources[0].allowed_origins[3]: must not include the default port (browsers omit it)
resources[0].policy: line 1, column 6: undefined field 'sbu'
resources[0].rules[0].method: must not be empty (omit it, or write "*", for any method)
resources[0].rules[0].scopes[0]: "mcp:write" is not in scopes_supported
resources[0].rules[1]: adds nothing: set scopes, a policy, or both
resources[0].rules[2].policy: line 3, column 1: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}
resources[0].rules[3].name: "FILE://localhost/secrets/*" is not in canonical form, which resource URIs are matched in: write "file:///secrets/*"
resources[0].rules[4].name: "file:secrets/*" is not a valid resource URI pattern: a file URI needs a path starting with "/"
resources[0].rules[5].name: "secrets" has no scheme and no glob, so it matches no resource URI`},
		{"invalid-cors.yaml", `
resources[0].cors.allow_methods[1]: must be a method name such as "POST" ("*" is not honoured on credentialed requests: list the methods)
resources[0].cors.allow_methods[2]: "GET" is already listed at resources[0].cors.allow_methods[0]
resources[0].cors.allow_headers[1]: "MCP-METHOD" is already listed at resources[0].cors.allow_headers[0] (header names are case-insensitive)
resources[0].cors.allow_headers[2]: must be a header name such as "Mcp-Method", a prefix ending in "*" such as "Mcp-Param-*", or "*"
resources[0].cors.allow_headers[3]: must be a header name such as "Mcp-Method", a prefix ending in "*" such as "Mcp-Param-*", or "*"
resources[0].cors.allow_headers[4]: "*" allows every header: list nothing beside it
resources[0].cors.max_age: must be a whole number of seconds, 0 or more, such as "10m"
resources[1].cors.max_age: must not be negative (line 12)`},
		{"invalid-public.yaml", `
resources[0].public[0].path: must be under the resource's path_prefix "/mcp"
resources[0].public[1].path: is not in canonical form; write "/mcp/health"
resources[0].public[1].methods[0]: must be a method name in upper case, as sent (GET, HEAD, POST...)
resources[0].public[2].path: must be a plain path starting with "/": no control characters, spaces, "\", ";", malformed or escaped control percent-escapes
resources[0].public[2].methods[1]: "GET" is already listed at resources[0].public[2].methods[0]
resources[0].public[3].path: a prefix is written without a trailing slash (it matches on whole segments)
resources[0].public[4].prefix: would make the whole resource public; list the public paths under it
resources[0].public[5].path: must be under the resource's path_prefix "/mcp"
resources[0].public[5].methods[0]: must be a method name in upper case, as sent (GET, HEAD, POST...)
resources[0].public[6].methods: list the methods that pass without a token, such as [GET, HEAD]
resources[0].public[8].path: "/mcp/h" is already listed at resources[0].public[7]
resources[0].public[9].path: required`},
		{"invalid-introspection.yaml", `
resources[0].authorization_servers[0].introspection.client_id: is set but token_mode is "jwt" (set token_mode: introspection or auto)
resources[0].authorization_servers[0].introspection.timeout: is set but token_mode is "jwt" (set token_mode: introspection or auto)
resources[0].authorization_servers[1].token_mode: must be "jwt", "introspection" or "auto"
resources[0].authorization_servers[2].jwks_uri: is not used when token_mode is "introspection"
resources[0].authorization_servers[2].introspection.client_id: is required when token_mode is "introspection"
resources[0].authorization_servers[2].introspection.private_key: is required with auth_method private_key_jwt
resources[0].authorization_servers[2].introspection.endpoint: must be an absolute https URL (http is allowed only for localhost and loopback addresses)
resources[0].authorization_servers[2].introspection.client_secret: is not used with auth_method private_key_jwt
resources[0].authorization_servers[2].introspection.timeout: must not exceed 10s (keep it under the proxy's ext_authz timeout)
resources[0].authorization_servers[2].introspection.cache_ttl: must be greater than 0
resources[0].authorization_servers[2].scope_claim: must not be empty
resources[0].authorization_servers[2].require_typ: is not used when token_mode is "introspection"
resources[0].authorization_servers[3].token_mode: only one authorization server per resource may introspect; resources[0].authorization_servers[2] already does
resources[0].authorization_servers[3].introspection.auth_method: must be "client_secret_basic", "client_secret_post" or "private_key_jwt"
resources[1].authorization_servers[0]: differs from resources[0].authorization_servers[0], which lists the same issuer (an issuer is configured once: repeat it identically, for example with a YAML anchor)`},
		{"invalid-unknown-key-deep.yaml", `
resources[0].authorization_servers[1].isuer: unknown key (line 6)
resources[0].authorization_servers[1].issuer: required`},
		{"invalid-unknown-key-top.yaml", `
listen.metrics: unknown key (line 3)
caches: unknown key (line 4)`},
		{"invalid-wrong-type.yaml", `
listen.grpc: must be a string (line 2)
cache.max_entries: must be an integer (line 4)
grpc.max_recv_msg_bytes: must be an integer (line 6)
grpc.keepalive.permit_without_stream: must be true or false (line 8)
tokens: must be a mapping (line 9)
resources[0].hosts: must be a list (line 13)
log.audit.allow_sample_rate: must be a number (line 18)
log.audit.enabled: must be true or false (line 19)`},
		{"invalid-duration-number.yaml", `
cache.max_ttl: must be a duration string such as "30s" or "5m" (line 3)
cache.negative_ttl: must be a duration string such as "30s" or "5m", not "5 minutes" (line 4)
jwks.timeout: must not be negative (line 6)`},
		{"invalid-algorithms.yaml", `
tokens.algorithms[1]: "HS256" is never accepted (symmetric algorithms are not allowed)
tokens.algorithms[2]: "none" is never accepted (tokens must be signed)
tokens.algorithms[3]: "RS1" is not supported (use one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)
tokens.algorithms[4]: "RS256" is already listed at tokens.algorithms[0]`},
		{"invalid-canonical-uri.yaml", `
resources[0].resource: scheme and host must be lower case (canonical form)
resources[1].resource: must not have a fragment
resources[2].resource: must be an absolute https URL (http is allowed only for localhost and loopback addresses)
resources[3].resource: must be an absolute https URL (http is allowed only for localhost and loopback addresses)
resources[4].resource: scheme and host must be lower case (canonical form)
resources[4].resource: must not include the default port (canonical form)
resources[4].resource: must not have a query`},
		{"invalid-duplicate-name.yaml", `
resources[1].name: "mcp" is already used by resources[0]
resources[2].name: must match ^[a-z0-9][a-z0-9_-]*$ (lower-case letters, digits, "-" and "_")
resources[2]: has the same hosts and path_prefix as resources[0] (ambiguous routing)
resources[2].resource: "https://mcp.example.com/mcp" is already used by resources[0]`},
		{"invalid-required-scope.yaml", `
resources[0].scopes_supported[1]: "mcp:tools" is already listed at resources[0].scopes_supported[0]
resources[0].scopes_supported[2]: must be a scope token: printable ASCII without spaces, double quotes or backslashes
resources[0].required_scopes[1]: "mcp:admin" is not in scopes_supported
resources[0].required_scopes[2]: must be a scope token: printable ASCII without spaces, double quotes or backslashes`},
		{"invalid-secret-both.yaml", `
cache.redis_password: set env or file, not both`},
		{"invalid-redis-password.yaml", `
cache.redis_url: must not contain a password (use cache.redis_password)`},
		{"invalid-issuer-jwks.yaml", `
resources[1].authorization_servers[0].jwks_uri: differs from resources[0].authorization_servers[0].jwks_uri for the same issuer
resources[2].authorization_servers[0].jwks_uri: is missing, but resources[0].authorization_servers[0].jwks_uri sets it for the same issuer`},
		{"invalid-empty-resources.yaml", `
resources: at least one resource is required`},
		{"invalid-no-resources.yaml", `
resources: at least one resource is required`},
		{"invalid-ambiguous-routing.yaml", `
resources[1]: has the same hosts and path_prefix as resources[0] (ambiguous routing)`},
		{"invalid-root-metadata.yaml", `
resources[1].root_metadata: resources[0] already serves the root metadata document of host "mcp.example.com"
resources[3].root_metadata: resources[2] has the path / and serves the root metadata document of host "tools.example.com"`},
		{"invalid-ext-proc.yaml", `
ext_proc.max_body_bytes: must be at most grpc.max_recv_msg_bytes (1048576) less 64 KiB: Envoy sends a buffered body as one gRPC message`},
		{"invalid-listen.yaml", `
listen.grpc: cannot be "off" (only the http and admin listeners can be disabled)
listen.admin: conflicts with listen.http (same port)`},
		{"invalid-upstream.yaml", `
upstream.subject_header: must not be "authorization"
upstream.client_id_header: must not be a pseudo-header
upstream.scopes_header: must be a valid HTTP header name (RFC 9110 token characters)
upstream.strip_authorization: must be true or false (line 5)`},
		{"invalid-upstream-distinct.yaml", `
upstream.scopes_header: must differ from upstream.subject_header`},
		{"invalid-explicit-zero.yaml", `
listen.http: must be host:port, such as "127.0.0.1:8080", or "off"
cache.max_negative_entries: must be greater than 0
grpc.keepalive.time: must be greater than 0
tokens.max_bytes: must be between 1 and 1048576 (1 MiB)
resources[0].hosts: must not be empty
resources[0].path_prefix: must start with "/"`},
		{"invalid-multiple.yaml", `
listen.grpc: must be host:port, such as "127.0.0.1:9001"
public_url: must not have a path (only scheme://host[:port])
public_url: must not have a query
cache.max_ttl: must be greater than 0
cache.max_entries: must be greater than 0
grpc.max_recv_msg_bytes: must be between 1024 and 67108864 (64 MiB)
jwks.max_refresh: must not be less than jwks.min_refresh (2h0m0s)
tokens.max_bytes: must be between 1 and 1048576 (1 MiB)
tokens.leeway: must not exceed 5m
tokens.algorithms: must not be empty
unmatched: must be "deny" or "allow"
log.level: must be "debug", "info", "warn" or "error"
log.format: must be "json" or "text"
resources[0].hosts[0]: must be a host name, an IP address or "*.suffix", with no scheme, port or path
resources[0].hosts[1]: must be lower case
resources[0].hosts[2]: must be a host name, an IP address or "*.suffix", with no scheme, port or path
resources[0].path_prefix: must start with "/"
resources[0].authorization_servers[0].issuer: must be an absolute https URL (http is allowed only for localhost and loopback addresses)
resources[0].authorization_servers[0].jwks_uri: must not have a fragment
resources[0].authorization_servers[1].issuer: required
resources[0].audiences[0]: must not be empty
resources[0].colour: unknown key (line 31)
resources[0].required_scopes: must be a list (line 32)
resources[1].authorization_servers: at least one authorization server is required`},
		{"invalid-not-a-mapping.yaml", `
the file must be a YAML mapping of keys such as listen, cache and resources (line 1)`},
		{"invalid-two-documents.yaml", `
the file must hold exactly one YAML document (line 7)`},
		{"invalid-duplicate-key.yaml", `
cache.max_ttl: duplicate key, first written on line 2 (line 3)`},
		{"invalid-syntax.yaml", `
yaml: line 3: found unexpected end of stream`},
		{"invalid-self-alias.yaml", `
resources[0].authorization_servers[0]: merge key (<<) refers to the mapping that contains it (line 5)`},
		{"invalid-redis-two-modes.yaml", `
cache.redis.sentinel: cannot be combined with cache.redis_url
cache.redis.cluster: cannot be combined with cache.redis_url`},
		{"invalid-redis-sentinel.yaml", `
cache.redis.sentinel.master_name: required
cache.redis.sentinel.addresses[1]: must be host:port, such as "10.0.0.1:26379"
cache.redis.sentinel.addresses[2]: port must be a number from 1 to 65535
cache.redis.sentinel.addresses[3]: "10.0.0.1:26379" is already listed at cache.redis.sentinel.addresses[0]
cache.redis.sentinel.password: set env or file, not both`},
		{"invalid-redis-cluster-db.yaml", `
cache.redis.db: must be 0 in cluster mode (Redis Cluster has one database)`},
		{"invalid-redis-tls-cert.yaml", `
cache.redis.tls.key_file: is required when cache.redis.tls.cert_file is set`},
		{"invalid-redis-insecure.yaml", `
cache.redis.tls.insecure_skip_verify: may be true only when every Redis address is loopback (localhost, 127.0.0.0/8 or ::1); to trust a private CA, set cache.redis.tls.ca_file`},
		{"invalid-redis-no-mode.yaml", `
cache.redis_password: is set but no Redis is configured (set cache.redis_url, cache.redis.sentinel or cache.redis.cluster)
cache.redis.username: is set but no Redis is configured (set cache.redis_url, cache.redis.sentinel or cache.redis.cluster)
cache.redis.tls.enabled: is set but no Redis is configured (set cache.redis_url, cache.redis.sentinel or cache.redis.cluster)
cache.redis.circuit_failures: is set but no Redis is configured (set cache.redis_url, cache.redis.sentinel or cache.redis.cluster)`},
		{"invalid-redis-timeout.yaml", `
cache.revoked_ttl: must be greater than 0
cache.redis.timeout: must not exceed 1s (a slow Redis must be a cache miss, never a slow decision)
cache.redis.dial_timeout: must be greater than 0
cache.redis.pool_size: must not be negative
cache.redis.circuit_failures: must be greater than 0
cache.redis.circuit_cooldown: must be greater than 0`},
		{"invalid-admin-token-both.yaml", `
admin.token: set env or file, not both`},
		{"invalid-redis-url-db.yaml", `
cache.redis.username: differs from the user name in cache.redis_url
cache.redis.db: differs from the database number in the path of cache.redis_url (/2)`},
		{"invalid-redis-tls-off.yaml", `
cache.redis.tls: tls settings need tls.enabled: true or a rediss:// URL
cache.redis.tls.server_name: must be a host name or an IP address, with no port`},
		{"invalid-redis-url.yaml", `
cache.redis_url: must not have a query (use the cache.redis keys for options)
cache.redis_url: path must be empty or a database number from /0 to /1023
cache.redis.db: must be between 0 and 1023`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c, err := Load(filepath.Join("testdata", tt.file))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if c != nil {
				t.Error("Load returned a config along with its error")
			}
			if got, want := err.Error(), strings.TrimPrefix(tt.want, "\n"); got != want {
				t.Errorf("error text mismatch\n got:\n%s\nwant:\n%s", got, want)
			}
		})
	}

	// Every invalid-*.yaml is in the table, so none is silently untested.
	files, err := filepath.Glob("testdata/invalid-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, tt := range tests {
		listed[tt.file] = true
	}
	for _, f := range files {
		if !listed[filepath.Base(f)] {
			t.Errorf("%s has no expected error in TestLoadInvalid", f)
		}
	}
}

func TestErrorsCarryPathAndLine(t *testing.T) {
	_, err := Parse([]byte("cache:\n  max_ttl: 300\nresources: []\n"))
	var es Errors
	if !errors.As(err, &es) || len(es) != 2 {
		t.Fatalf("want Errors with 2 entries, got %#v", err)
	}
	var first *Error
	if !errors.As(err, &first) {
		t.Fatal("errors.As cannot reach an individual *Error")
	}
	if first.Path != "cache.max_ttl" || first.Line != 2 {
		t.Errorf("first error = %+v, want path cache.max_ttl at line 2", first)
	}
	if es[1].Path != "resources" || es[1].Line != 0 {
		t.Errorf("second error = %+v, want path resources with no line", es[1])
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want an error wrapping os.ErrNotExist", err)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", "# only a comment\n", "~\n", "---\n"} {
		_, err := Parse([]byte(in))
		if err == nil || err.Error() != "resources: at least one resource is required" {
			t.Errorf("Parse(%q) = %v, want the missing-resources error", in, err)
		}
	}
}

// The dev mode builds its configuration in memory; ApplyDefaults and
// Validate must be enough for it, with zero meaning unset.
func TestInMemoryConfig(t *testing.T) {
	c := &Config{
		Upstream: Upstream{SubjectHeader: "X-Sub"},
		Resources: []Resource{{
			Name:                 "dev",
			Resource:             "http://localhost:8000/mcp",
			AuthorizationServers: []AuthorizationServer{{Issuer: "http://127.0.0.1:9999"}},
			RequiredScopes:       []string{"mcp"},
		}},
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	want := defaultsWith(Resource{
		Name:                 "dev",
		Resource:             "http://localhost:8000/mcp",
		Hosts:                []string{"localhost"},
		PathPrefix:           "/mcp",
		AuthorizationServers: []AuthorizationServer{{Issuer: "http://127.0.0.1:9999"}},
		ScopesSupported:      []string{"mcp"},
		RequiredScopes:       []string{"mcp"},
	})
	want.Upstream.SubjectHeader = "x-sub"
	assertConfig(t, c, want)

	// Without ApplyDefaults, the zero values are reported, not accepted.
	err := (&Config{}).Validate()
	if err == nil || !strings.Contains(err.Error(), "cache.max_ttl: must be greater than 0") {
		t.Errorf("Validate of a zero Config = %v, want it to report cache.max_ttl", err)
	}
}

func TestValidateReportsInStructOrder(t *testing.T) {
	c := defaultsWith()
	c.Unmatched = "maybe"
	c.Cache.RedisPassword = Secret{Env: "X"}
	want := "cache.redis_password: is set but no Redis is configured (set cache.redis_url, cache.redis.sentinel or cache.redis.cluster)\n" +
		"unmatched: must be \"deny\" or \"allow\"\n" +
		"resources: at least one resource is required"
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate =\n%v\nwant\n%s", err, want)
	}
}

func TestHelpers(t *testing.T) {
	var c Config
	if !c.StripAuthorization() {
		t.Error("StripAuthorization of an unset field = false, want true")
	}
	c.Upstream.StripAuthorization = ptr(false)
	if c.StripAuthorization() {
		t.Error("StripAuthorization with false = true")
	}
	var k Keepalive
	if !k.PermitsWithoutStream() {
		t.Error("PermitsWithoutStream of an unset field = false, want true")
	}
	k.PermitWithoutStream = ptr(false)
	if k.PermitsWithoutStream() {
		t.Error("PermitsWithoutStream with false = true")
	}
}

func TestIsLoopbackHost(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"localhost", true},
		{"LOCALHOST", true},
		{"localhost.", true},
		{"mcp.localhost", true},
		{"127.0.0.1", true},
		{"127.3.2.1", true},
		{"::1", true},
		{"[::1]", true},
		{"::ffff:127.0.0.1", true},
		{".localhost", false},
		{"localhost.example.com", false},
		{"notlocalhost", false},
		{"128.0.0.1", false},
		{"0.0.0.0", false},
		{"::", false},
		{"10.0.0.1", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			if got := IsLoopbackHost(tt.host); got != tt.want {
				t.Errorf("IsLoopbackHost(%q) = %v, want %v", tt.host, got, tt.want)
			}
		})
	}
}

// Rules that the testdata files do not each spell out, checked on a valid
// base config one change at a time.
func TestValidateRules(t *testing.T) {
	base := func() *Config {
		return defaultsWith(Resource{
			Name: "mcp", Resource: "https://mcp.example.com/mcp",
			Hosts: []string{"mcp.example.com"}, PathPrefix: "/mcp",
			AuthorizationServers: []AuthorizationServer{{Issuer: "https://auth.example.com"}},
		})
	}
	tests := []struct {
		name   string
		modify func(*Config)
		want   string // "" means valid
	}{
		{"http issuer on loopback", func(c *Config) { c.Resources[0].AuthorizationServers[0].Issuer = "http://127.0.0.1:8080/realms/x" }, ""},
		{"http issuer on localhost subdomain", func(c *Config) { c.Resources[0].AuthorizationServers[0].Issuer = "http://auth.localhost" }, ""},
		{"issuer with query", func(c *Config) { c.Resources[0].AuthorizationServers[0].Issuer = "https://auth.example.com?x=1" },
			"resources[0].authorization_servers[0].issuer: must not have a query"},
		{"issuer not a URL", func(c *Config) { c.Resources[0].AuthorizationServers[0].Issuer = "auth.example.com" },
			"resources[0].authorization_servers[0].issuer: must be an absolute https URL (http is allowed only for localhost and loopback addresses)"},
		{"issuer with credentials", func(c *Config) { c.Resources[0].AuthorizationServers[0].Issuer = "https://u:p@auth.example.com" },
			"resources[0].authorization_servers[0].issuer: must not contain a user name or password"},
		{"issuer listed twice", func(c *Config) {
			c.Resources[0].AuthorizationServers = append(c.Resources[0].AuthorizationServers, c.Resources[0].AuthorizationServers[0])
		}, `resources[0].authorization_servers[1].issuer: "https://auth.example.com" is already listed at resources[0].authorization_servers[0]`},
		{"jwks_uri plain http", func(c *Config) { c.Resources[0].AuthorizationServers[0].JWKSURI = "http://auth.example.com/keys" },
			"resources[0].authorization_servers[0].jwks_uri: must be an absolute https URL (http is allowed only for localhost and loopback addresses)"},
		{"issuer given jwks_uri after discovery", func(c *Config) {
			r := c.Resources[0]
			r.Name, r.Resource, r.PathPrefix = "two", "https://mcp.example.com/two", "/two"
			r.AuthorizationServers = []AuthorizationServer{{Issuer: "https://auth.example.com", JWKSURI: "https://auth.example.com/keys"}}
			c.Resources = append(c.Resources, r)
		}, "resources[1].authorization_servers[0].jwks_uri: is set, but resources[0].authorization_servers[0] lists the same issuer without one (discovery)"},
		{"invalid URL", func(c *Config) { c.Resources[0].Resource = "https://mcp example.com/" },
			`resources[0].resource: must be a valid URL: invalid character " " in host name`},
		{"canonical URI with credentials", func(c *Config) { c.Resources[0].Resource = "https://me@mcp.example.com/mcp" },
			"resources[0].resource: must not contain a user name or password"},
		{"canonical URI non-default port", func(c *Config) { c.Resources[0].Resource = "https://mcp.example.com:8443/mcp" }, ""},
		{"canonical URI on ipv6 loopback", func(c *Config) { c.Resources[0].Resource = "http://[::1]:8000/mcp" }, ""},
		{"wildcard host", func(c *Config) { c.Resources[0].Hosts = []string{"*.example.com", "::1"} }, ""},
		{"bare wildcard", func(c *Config) { c.Resources[0].Hosts = []string{"*"} },
			`resources[0].hosts[0]: must be a host name, an IP address or "*.suffix", with no scheme, port or path`},
		{"host with path", func(c *Config) { c.Resources[0].Hosts = []string{"mcp.example.com/mcp"} },
			`resources[0].hosts[0]: must be a host name, an IP address or "*.suffix", with no scheme, port or path`},
		{"host listed twice", func(c *Config) { c.Resources[0].Hosts = []string{"a.example", "a.example"} },
			`resources[0].hosts[1]: "a.example" is already listed at resources[0].hosts[0]`},
		{"path prefix with query", func(c *Config) { c.Resources[0].PathPrefix = "/mcp?x" },
			`resources[0].path_prefix: must not contain "?" or "#"`},
		{"same prefix on other hosts", func(c *Config) {
			r := c.Resources[0]
			r.Name, r.Resource, r.Hosts = "other", "https://other.example.com/mcp", []string{"other.example.com"}
			c.Resources = append(c.Resources, r)
		}, ""},
		{"same host set in another order", func(c *Config) {
			c.Resources[0].Hosts = []string{"a.example", "b.example"}
			r := c.Resources[0]
			r.Name, r.Resource, r.Hosts = "other", "https://mcp.example.com/other", []string{"b.example", "a.example"}
			c.Resources = append(c.Resources, r)
		}, "resources[1]: has the same hosts and path_prefix as resources[0] (ambiguous routing)"},
		{"scope with backslash", func(c *Config) { c.Resources[0].ScopesSupported = []string{`a\b`} },
			"resources[0].scopes_supported[0]: must be a scope token: printable ASCII without spaces, double quotes or backslashes"},
		{"scope non-ascii", func(c *Config) { c.Resources[0].RequiredScopes = []string{"lesen:é"} },
			"resources[0].required_scopes[0]: must be a scope token: printable ASCII without spaces, double quotes or backslashes"},
		{"required scopes without scopes_supported", func(c *Config) { c.Resources[0].RequiredScopes = []string{"a"} }, ""},
		{"resource_documentation relative", func(c *Config) { c.Resources[0].ResourceDocumentation = "/docs" },
			"resources[0].resource_documentation: must be an absolute http or https URL"},
		{"public_url http non-loopback", func(c *Config) { c.PublicURL = "http://mcp.example.com" },
			"public_url: must be an absolute https URL (http is allowed only for localhost and loopback addresses)"},
		{"public_url with fragment", func(c *Config) { c.PublicURL = "https://mcp.example.com#x" },
			"public_url: must not have a fragment"},
		{"public_url on localhost", func(c *Config) { c.PublicURL = "http://localhost:8080/" }, ""},
		{"redis url wrong scheme", func(c *Config) { c.Cache.RedisURL = "http://redis:6379" },
			"cache.redis_url: must be a redis:// or rediss:// URL with a host"},
		{"redis url with user only", func(c *Config) { c.Cache.RedisURL = "redis://extauthz@redis:6379/0" }, ""},
		{"redis url unparsable keeps password out", func(c *Config) { c.Cache.RedisURL = "redis://u:se cret@re dis" },
			"cache.redis_url: must be a redis:// or rediss:// URL with a host"},
		{"negative ttl in memory", func(c *Config) { c.Cache.NegativeTTL = -1 }, "cache.negative_ttl: must not be negative"},
		{"negative ttl zero", func(c *Config) { c.Cache.NegativeTTL = 0 }, ""},
		{"leeway zero", func(c *Config) { c.Tokens.Leeway = 0 }, ""},
		{"leeway at the limit", func(c *Config) { c.Tokens.Leeway = dur("5m") }, ""},
		{"max_bytes at the limit", func(c *Config) { c.Tokens.MaxBytes = 1 << 20 }, ""},
		{"recv bytes at the limits", func(c *Config) { c.GRPC.MaxRecvMsgBytes = 64 << 20 }, ""},
		{"stream workers negative", func(c *Config) { c.GRPC.StreamWorkers = -1 }, "grpc.stream_workers: must be between 0 and 65536"},
		{"stream workers over the limit", func(c *Config) { c.GRPC.StreamWorkers = 65537 }, "grpc.stream_workers: must be between 0 and 65536"},
		{"gc headroom negative", func(c *Config) { c.Runtime.GCHeadroomBytes = -1 },
			"runtime.gc_headroom_bytes: must be between 0 and 1099511627776 (1 TiB)"},
		{"gc headroom at the limit", func(c *Config) { c.Runtime.GCHeadroomBytes = 1 << 40 }, ""},
		{"lower-case hs", func(c *Config) { c.Tokens.Algorithms = []string{"hs512"} },
			`tokens.algorithms[0]: "hs512" is never accepted (symmetric algorithms are not allowed)`},
		{"ES512 accepted when listed", func(c *Config) { c.Tokens.Algorithms = []string{"ES512"} }, ""},
		{"min_refresh equal to max", func(c *Config) { c.JWKS.MinRefresh, c.JWKS.MaxRefresh = dur("1h"), dur("1h") }, ""},
		{"header upper case in memory", func(c *Config) { c.Upstream.ScopesHeader = "X-Scopes" },
			"upstream.scopes_header: must be lower case"},
		{"header hop-by-hop", func(c *Config) { c.Upstream.ScopesHeader = "connection" },
			`upstream.scopes_header: must not be "connection"`},
		{"listen on all interfaces", func(c *Config) { c.Listen.GRPC = ":9001"; c.Listen.Admin = "off" }, ""},
		{"listen port zero twice", func(c *Config) { c.Listen.GRPC, c.Listen.HTTP = "127.0.0.1:0", "127.0.0.1:0" }, ""},
		{"listen port out of range", func(c *Config) { c.Listen.Admin = "127.0.0.1:70000" },
			"listen.admin: port must be a number from 0 to 65535"},
		{"listen named port", func(c *Config) { c.Listen.Admin = "127.0.0.1:http" },
			"listen.admin: port must be a number from 0 to 65535"},
		{"listen bad host", func(c *Config) { c.Listen.HTTP = "bad_host:80" },
			"listen.http: host must be an IP address, a host name, or empty for all interfaces"},
		{"listen conflict with wildcard", func(c *Config) { c.Listen.HTTP = "0.0.0.0:9001" },
			"listen.http: conflicts with listen.grpc (same port)"},
		{"listen same port other hosts", func(c *Config) { c.Listen.HTTP = "10.0.0.1:9001" }, ""},

		// Redis modes.
		{"sentinel and cluster", func(c *Config) {
			c.Cache.Redis.Sentinel = RedisSentinel{MasterName: "m", Addresses: []string{"s:26379"}}
			c.Cache.Redis.Cluster.Addresses = []string{"n:6379"}
		}, "cache.redis.cluster: cannot be combined with cache.redis.sentinel"},
		{"sentinel selected by its password alone", func(c *Config) { c.Cache.Redis.Sentinel.Password = Secret{Env: "P"} },
			"cache.redis.sentinel.master_name: required\ncache.redis.sentinel.addresses: at least one address is required"},
		{"sentinel with url", func(c *Config) {
			c.Cache.RedisURL = "redis://r:6379"
			c.Cache.Redis.Sentinel.MasterName = "m"
		}, "cache.redis.sentinel: cannot be combined with cache.redis_url\ncache.redis.sentinel.addresses: at least one address is required"},
		{"sentinel bad host", func(c *Config) {
			c.Cache.Redis.Sentinel = RedisSentinel{MasterName: "m", Addresses: []string{"bad_host:26379"}}
		}, "cache.redis.sentinel.addresses[0]: host must be an IP address or a host name"},
		{"cluster ipv6 and names", func(c *Config) {
			c.Cache.Redis.Cluster.Addresses = []string{"[::1]:7000", "Redis-0.example.com:7001"}
		}, ""},
		{"cluster address without host", func(c *Config) { c.Cache.Redis.Cluster.Addresses = []string{":6379"} },
			`cache.redis.cluster.addresses[0]: must be host:port, such as "10.0.0.1:6379"`},
		{"cluster named port", func(c *Config) { c.Cache.Redis.Cluster.Addresses = []string{"n:redis"} },
			"cache.redis.cluster.addresses[0]: port must be a number from 1 to 65535"},
		{"password in sentinel mode", func(c *Config) {
			c.Cache.Redis.Sentinel = RedisSentinel{MasterName: "m", Addresses: []string{"s:26379"}}
			c.Cache.RedisPassword = Secret{File: "/p"}
		}, ""},
		{"password in cluster mode", func(c *Config) {
			c.Cache.Redis.Cluster.Addresses = []string{"n:6379"}
			c.Cache.RedisPassword = Secret{Env: "P"}
		}, ""},

		// The database number.
		{"db from url path only", func(c *Config) { c.Cache.RedisURL = "redis://r:6379/7" }, ""},
		{"db equal to url path", func(c *Config) { c.Cache.RedisURL = "redis://r:6379/7"; c.Cache.Redis.DB = 7 }, ""},
		{"db with url without path", func(c *Config) { c.Cache.RedisURL = "redis://r:6379/"; c.Cache.Redis.DB = 7 }, ""},
		{"db zero with url path", func(c *Config) { c.Cache.RedisURL = "redis://r:6379/7"; c.Cache.Redis.DB = 0 }, ""},
		{"db at the limit", func(c *Config) { c.Cache.RedisURL = "redis://r:6379/1023"; c.Cache.Redis.DB = 1023 }, ""},
		{"db negative", func(c *Config) { c.Cache.RedisURL = "redis://r"; c.Cache.Redis.DB = -1 },
			"cache.redis.db: must be between 0 and 1023"},
		{"db in sentinel mode", func(c *Config) {
			c.Cache.Redis.Sentinel = RedisSentinel{MasterName: "m", Addresses: []string{"s:26379"}}
			c.Cache.Redis.DB = 9
		}, ""},
		{"url path with two segments", func(c *Config) { c.Cache.RedisURL = "redis://r/1/2" },
			"cache.redis_url: path must be empty or a database number from /0 to /1023"},
		{"url path signed", func(c *Config) { c.Cache.RedisURL = "redis://r/+1" },
			"cache.redis_url: path must be empty or a database number from /0 to /1023"},
		{"url with fragment", func(c *Config) { c.Cache.RedisURL = "redis://r/0#x" }, "cache.redis_url: must not have a fragment"},
		{"username equal to url user", func(c *Config) { c.Cache.RedisURL = "redis://u@r"; c.Cache.Redis.Username = "u" }, ""},
		{"username with url without user", func(c *Config) { c.Cache.RedisURL = "redis://r"; c.Cache.Redis.Username = "u" }, ""},

		// TLS.
		{"tls by rediss", func(c *Config) { c.Cache.RedisURL = "rediss://r"; c.Cache.Redis.TLS.CAFile = "/ca.pem" }, ""},
		{"tls enabled on redis url", func(c *Config) {
			c.Cache.RedisURL = "redis://r"
			c.Cache.Redis.TLS = RedisTLS{Enabled: true, ServerName: "10.0.0.1"}
		}, ""},
		{"tls key without cert", func(c *Config) { c.Cache.RedisURL = "rediss://r"; c.Cache.Redis.TLS.KeyFile = "/k.pem" },
			"cache.redis.tls.cert_file: is required when cache.redis.tls.key_file is set"},
		{"tls settings off in cluster mode", func(c *Config) {
			c.Cache.Redis.Cluster.Addresses = []string{"n:6379"}
			c.Cache.Redis.TLS.CAFile = "/ca.pem"
		}, "cache.redis.tls: tls settings need tls.enabled: true"},
		{"insecure on loopback url", func(c *Config) {
			c.Cache.RedisURL = "rediss://localhost:6380"
			c.Cache.Redis.TLS.InsecureSkipVerify = true
		}, ""},
		{"insecure on loopback cluster", func(c *Config) {
			c.Cache.Redis.Cluster.Addresses = []string{"127.0.0.1:7000", "[::1]:7001"}
			c.Cache.Redis.TLS = RedisTLS{Enabled: true, InsecureSkipVerify: true}
		}, ""},
		{"insecure on remote url", func(c *Config) {
			c.Cache.RedisURL = "rediss://redis.example.com"
			c.Cache.Redis.TLS.InsecureSkipVerify = true
		}, "cache.redis.tls.insecure_skip_verify: may be true only when every Redis address is loopback (localhost, 127.0.0.0/8 or ::1); to trust a private CA, set cache.redis.tls.ca_file"},
		{"tls settings with a broken url", func(c *Config) {
			c.Cache.RedisURL = "http://r"
			c.Cache.Redis.TLS.CAFile = "/ca.pem"
		}, "cache.redis_url: must be a redis:// or rediss:// URL with a host"},
		{"insecure with tls off", func(c *Config) {
			c.Cache.RedisURL = "redis://127.0.0.1"
			c.Cache.Redis.TLS.InsecureSkipVerify = true
		}, "cache.redis.tls: tls settings need tls.enabled: true or a rediss:// URL"},

		// Timeouts, pool and circuit.
		{"timeout at the limit", func(c *Config) { c.Cache.RedisURL = "redis://r"; c.Cache.Redis.Timeout = dur("1s") }, ""},
		{"timeout just over", func(c *Config) { c.Cache.RedisURL = "redis://r"; c.Cache.Redis.Timeout = dur("1.001s") },
			"cache.redis.timeout: must not exceed 1s (a slow Redis must be a cache miss, never a slow decision)"},
		{"timeout zero", func(c *Config) { c.Cache.RedisURL = "redis://r"; c.Cache.Redis.Timeout = 0 },
			"cache.redis.timeout: must be greater than 0"},
		{"circuit of one failure", func(c *Config) { c.Cache.RedisURL = "redis://r"; c.Cache.Redis.CircuitFailures = 1 }, ""},
		{"revoked ttl without redis", func(c *Config) { c.Cache.RevokedTTL = dur("1m") }, ""},

		// Without Redis: defaults and zeros are not settings, other values are.
		{"no redis, defaults", func(c *Config) {}, ""},
		{"no redis, zeros", func(c *Config) { c.Cache.Redis = Redis{} }, ""},
		{"no redis, every key", func(c *Config) {
			c.Cache.Redis = Redis{
				Username: "u", DB: 1,
				TLS:         RedisTLS{Enabled: true, CAFile: "a", CertFile: "b", KeyFile: "c", ServerName: "d", InsecureSkipVerify: true},
				PoolSize:    -1,
				DialTimeout: dur("2s"), Timeout: dur("5s"), CircuitFailures: 1, CircuitCooldown: dur("1s"),
			}
		}, strings.Join([]string{
			"cache.redis.username", "cache.redis.db", "cache.redis.tls.enabled", "cache.redis.tls.ca_file",
			"cache.redis.tls.cert_file", "cache.redis.tls.key_file", "cache.redis.tls.server_name",
			"cache.redis.tls.insecure_skip_verify", "cache.redis.pool_size", "cache.redis.dial_timeout",
			"cache.redis.timeout", "cache.redis.circuit_failures", "cache.redis.circuit_cooldown",
		}, ": "+msgNoRedis+"\n") + ": " + msgNoRedis},

		// The admin token.
		{"admin token from a file", func(c *Config) { c.Admin.Token = Secret{File: "/run/secrets/admin"} }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.modify(c)
			serverDefaults(c.Resources)
			err := c.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestRedisPasswordNeverInMessages(t *testing.T) {
	for _, u := range []string{"redis://:hunter2@redis:6379", "ftp://u:hunter2@x", "redis://u:hunter2@%zz"} {
		_, err := Parse([]byte("cache: {redis_url: \"" + u + "\"}\n"))
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("redis_url %q: error %v must exist and must not show the password", u, err)
		}
	}
}

// The sentinels' password and the admin token must not leak either: no
// message quotes a Secret, only its key path.
func TestSecretsNeverInMessages(t *testing.T) {
	in := `
cache:
  redis_url: "redis://:hunter2@r"
  redis_password: {env: hunter2, file: hunter2}
  redis:
    sentinel: {password: {env: hunter2, file: hunter2}}
admin: {token: {env: hunter2, file: hunter2}}
resources: []
`
	_, err := Parse([]byte(in))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %v must exist and must not show the secrets", err)
	}
}

func TestRedisMode(t *testing.T) {
	tests := []struct {
		name  string
		cache Cache
		want  string
	}{
		{"none", Cache{}, RedisModeNone},
		{"none, with settings", Cache{Redis: Redis{Username: "u", TLS: RedisTLS{Enabled: true}}}, ""},
		{"none, empty lists", Cache{Redis: Redis{Sentinel: RedisSentinel{Addresses: []string{}}, Cluster: RedisCluster{Addresses: []string{}}}}, ""},
		{"standalone", Cache{RedisURL: "redis://r"}, "standalone"},
		{"sentinel by master name", Cache{Redis: Redis{Sentinel: RedisSentinel{MasterName: "m"}}}, "sentinel"},
		{"sentinel by addresses", Cache{Redis: Redis{Sentinel: RedisSentinel{Addresses: []string{"s:26379"}}}}, "sentinel"},
		{"sentinel by password", Cache{Redis: Redis{Sentinel: RedisSentinel{Password: Secret{File: "/p"}}}}, "sentinel"},
		{"cluster", Cache{Redis: Redis{Cluster: RedisCluster{Addresses: []string{"n:6379"}}}}, "cluster"},
		// Invalid combinations: the first in the documented order.
		{"url wins", Cache{RedisURL: "redis://r", Redis: Redis{Cluster: RedisCluster{Addresses: []string{"n:6379"}}}}, "standalone"},
		{"sentinel wins over cluster", Cache{Redis: Redis{
			Sentinel: RedisSentinel{MasterName: "m"}, Cluster: RedisCluster{Addresses: []string{"n:6379"}},
		}}, "sentinel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cache.RedisMode(); got != tt.want {
				t.Errorf("RedisMode() = %q, want %q", got, tt.want)
			}
		})
	}
	// The testdata files, as the wiring will see them.
	for file, want := range map[string]string{
		"valid-minimal.yaml":        "",
		"valid-full.yaml":           "standalone",
		"valid-redis-tls.yaml":      "standalone",
		"valid-redis-sentinel.yaml": "sentinel",
		"valid-redis-cluster.yaml":  "cluster",
	} {
		c, err := Load(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Cache.RedisMode(); got != want {
			t.Errorf("%s: RedisMode() = %q, want %q", file, got, want)
		}
	}
}

func TestSecretResolve(t *testing.T) {
	// A value no message could contain by accident.
	const value = "s3cr3t-Value-4a7f"
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain := write("plain", value)
	newline := write("newline", value+"\n")
	crlf := write("crlf", value+"\r\n")
	twoNewlines := write("two-newlines", value+"\n\n")
	empty := write("empty", "")
	onlyNewline := write("only-newline", "\n")
	inner := write("inner", " "+value+"\nline2\n")
	large := write("large", strings.Repeat(value, 64<<10/len(value)+1))
	missing := filepath.Join(dir, "missing")

	t.Setenv("EXTAUTHZ_TEST_SECRET", value)
	t.Setenv("EXTAUTHZ_TEST_EMPTY", "")
	os.Unsetenv("EXTAUTHZ_TEST_UNSET") // t.Setenv above makes the test non-parallel

	tests := []struct {
		name    string
		secret  Secret
		want    string
		wantErr string
		is      error // errors.Is target, when not nil
	}{
		{name: "env", secret: Secret{Env: "EXTAUTHZ_TEST_SECRET"}, want: value},
		{name: "env unset", secret: Secret{Env: "EXTAUTHZ_TEST_UNSET"},
			wantErr: "environment variable EXTAUTHZ_TEST_UNSET is not set"},
		{name: "env empty", secret: Secret{Env: "EXTAUTHZ_TEST_EMPTY"},
			wantErr: "environment variable EXTAUTHZ_TEST_EMPTY is empty"},
		{name: "file", secret: Secret{File: plain}, want: value},
		{name: "file newline trimmed", secret: Secret{File: newline}, want: value},
		{name: "file crlf trimmed", secret: Secret{File: crlf}, want: value},
		{name: "file only one newline trimmed", secret: Secret{File: twoNewlines}, want: value + "\n"},
		{name: "file inner whitespace kept", secret: Secret{File: inner}, want: " " + value + "\nline2"},
		{name: "file missing", secret: Secret{File: missing},
			wantErr: "file " + missing + ": no such file or directory", is: fs.ErrNotExist},
		{name: "file is a directory", secret: Secret{File: dir},
			wantErr: "file " + dir + ": is a directory"},
		{name: "file empty", secret: Secret{File: empty}, wantErr: "file " + empty + " is empty"},
		{name: "file only a newline", secret: Secret{File: onlyNewline}, wantErr: "file " + onlyNewline + " is empty"},
		{name: "file too large", secret: Secret{File: large},
			wantErr: "file " + large + " is larger than 65536 bytes"},
		{name: "both", secret: Secret{Env: "EXTAUTHZ_TEST_SECRET", File: plain}, wantErr: "set env or file, not both"},
		{name: "neither", secret: Secret{}, wantErr: "no source (set env or file)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.secret.Resolve()
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Errorf("Resolve() = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Resolve() = %q, want error %q", got, tt.wantErr)
			}
			if got != "" {
				t.Errorf("Resolve() returned %q along with its error", got)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("error %q, want %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), value) || strings.Contains(err.Error(), value[:8]) {
				t.Errorf("error %q contains the secret", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q does not wrap %v", err, tt.is)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if c != nil {
				t.Fatal("config returned with an error")
			}
			if err.Error() == "" {
				t.Fatal("empty error text")
			}
			return
		}
		// Whatever Parse accepts is valid and stable under ApplyDefaults.
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate rejects: %v", err)
		}
		before := *c
		before.Resources = append([]Resource(nil), c.Resources...)
		c.ApplyDefaults()
		if !reflect.DeepEqual(&before, c) {
			t.Fatal("ApplyDefaults changed a parsed config")
		}
	})
}
