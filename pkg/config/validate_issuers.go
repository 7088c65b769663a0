package config

import (
	"fmt"
	"reflect"
	"time"
)

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
			continue // required: the tag's check says so
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
	maxClaimNameBytes    = 256 // not empty: their tags say so
	maxKeepClaims        = 32
)

// validateTokenMode checks the token mode, the claim names and the
// introspection client of one authorization server.
func validateTokenMode(ch *checker, ap string, as *AuthorizationServer) {
	for _, c := range []struct{ key, name string }{
		{"audience_claim", as.AudienceClaim}, {"scope_claim", as.ScopeClaim}, {"client_id_claim", as.ClientIDClaim},
	} {
		if len(c.name) > maxClaimNameBytes {
			ch.add(ap+"."+c.key, "must be a claim name of 1 to %d bytes", maxClaimNameBytes)
		}
	}
	if len(as.KeepClaims) > maxKeepClaims {
		ch.add(ap+".keep_claims", "must not list more than %d claims", maxKeepClaims)
	}
	for k, c := range as.KeepClaims {
		if len(c) > maxClaimNameBytes {
			ch.add(fmt.Sprintf("%s.keep_claims[%d]", ap, k), "must be a claim name of 1 to %d bytes", maxClaimNameBytes)
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
		return // not one of the tag's enum: its check says so
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
		// Not one of the tag's enum: its check says so.
	}
}
