package config

import (
	"fmt"
	"time"
)

// maxUpstreamTimeout bounds upstream_token.timeout: a request waits for
// the token endpoint, and Envoy's own ext_authz timeout is usually shorter.
const maxUpstreamTimeout = 10 * time.Second

// validateUpstreamTokens checks every resource's upstream_token block and
// the process-wide settings it needs.
func (c *Config) validateUpstreamTokens(ch *checker) {
	validateSecret(ch, "upstream.token_encryption_key", c.Upstream.TokenEncryptionKey)
	minting := false
	for i := range c.Resources {
		r := &c.Resources[i]
		p := fmt.Sprintf("resources[%d].upstream_token", i)
		u := &r.UpstreamToken
		if u.Mode == "" {
			if u.unusedSettings() {
				ch.add(p, "is set but has no mode (set mode: exchange or client_credentials)")
			}
			continue
		}
		if u.Mode != UpstreamModeExchange && u.Mode != UpstreamModeClientCredentials {
			continue // the tag's enum check says so; the rest depends on the mode
		}
		minting = true
		if u.ClientID == "" {
			ch.add(p+".client_id", "is required when mode is set")
		}
		if u.Issuer == "" {
			ch.add(p+".issuer", msgRequired)
		}
		for _, k := range []struct{ key, url string }{
			{".issuer", u.Issuer}, {".token_endpoint", u.TokenEndpoint}, {".jwks_uri", u.JWKSURI},
		} {
			if k.url == "" {
				continue
			}
			for _, msg := range checkWebURL(k.url, urlEndpoint) {
				ch.add(p+k.key, "%s", msg)
			}
		}
		validateSecret(ch, p+".client_secret", u.ClientSecret)
		validateSecret(ch, p+".private_key", u.PrivateKey)
		validateClientAuth(ch, p, u.AuthMethod, u.ClientSecret, u.PrivateKey, u.KeyID)
		if len(u.Audience) == 0 && len(u.Resources) == 0 {
			// The point of minting is a token for the upstream alone
			// (RFC 8693 §2.1, RFC 8707): one for any audience the server
			// picks is what MCP forbids passing on.
			ch.add(p, "must name the upstream in audience or resources: a minted token is narrowed to it")
		}
		for k, res := range u.Resources {
			for _, msg := range checkWebURL(res, urlEndpoint) {
				ch.add(fmt.Sprintf("%s.resources[%d]", p, k), "%s", msg)
			}
		}
		for k, sc := range u.Scopes {
			if !isScopeToken(sc) {
				ch.add(fmt.Sprintf("%s.scopes[%d]", p, k), "must be a scope token: printable ASCII without spaces, double quotes or backslashes")
			}
		}
		if u.Actor && u.Mode != UpstreamModeExchange {
			ch.add(p+".actor", "is used only with mode exchange")
		}
		switch {
		case u.Timeout <= 0:
			ch.add(p+".timeout", msgPositive)
		case u.Timeout.D() > maxUpstreamTimeout:
			ch.add(p+".timeout", "must be at most %s", maxUpstreamTimeout)
		}
		if u.ExpiryMargin < 0 {
			ch.add(p+".expiry_margin", "must not be negative")
		}
		positive(ch, p+".refusal_ttl", u.RefusalTTL)
		positive(ch, p+".default_lifetime", u.DefaultLifetime)
	}
	if minting && c.Cache.RedisMode() != RedisModeNone && c.Upstream.TokenEncryptionKey.IsZero() {
		ch.add("upstream.token_encryption_key", "is required when a resource sets upstream_token and Redis is configured: minted tokens are stored encrypted (at least 32 bytes, the same on every replica)")
	}
}

// unusedSettings reports whether a block without a mode sets anything
// beyond the defaults: a typo'd or forgotten mode, which must not pass
// silently as "no credential".
func (u *UpstreamToken) unusedSettings() bool {
	return u.Issuer != "" || u.TokenEndpoint != "" || u.JWKSURI != "" || u.ClientID != "" ||
		!u.ClientSecret.IsZero() || !u.PrivateKey.IsZero() || u.KeyID != "" ||
		len(u.Audience) > 0 || len(u.Resources) > 0 || len(u.Scopes) > 0 || u.Actor ||
		(u.AuthMethod != "" && u.AuthMethod != defaultIntrospectAuth)
}
