package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// The OAuth facade's issuer path under public_url, its endpoints' paths
// under the issuer, and its defaults.
const (
	FacadePath                 = "/oauth"
	defaultFacadeClientTTL     = 30 * 24 * time.Hour
	defaultFacadeMaxClients    = 10000
	defaultFacadeConsentTTL    = 30 * 24 * time.Hour
	defaultFacadeTokenTTL      = time.Hour
	defaultFacadeAudienceStyle = FacadeAudienceResource
)

// The values of ResourceOAuthFacade.AudienceStyle.
const (
	FacadeAudienceResource = "resource"
	FacadeAudienceScope    = "scope"
)

// facadeEndpoints are the paths the facade serves under its issuer.
var facadeEndpoints = []string{"/authorize", "/consent", "/token", "/revoke", "/register", "/jwks"}

// FacadeIssuer is the OAuth facade's issuer: public_url + /oauth; "" without
// public_url.
func (c *Config) FacadeIssuer() string {
	if c.PublicURL == "" {
		return ""
	}
	return strings.TrimSuffix(c.PublicURL, "/") + FacadePath
}

// FacadeEnabled reports whether any resource enables the OAuth facade.
func (c *Config) FacadeEnabled() bool {
	for _, r := range c.Resources {
		if r.OAuthFacade.Enabled {
			return true
		}
	}
	return false
}

// applyFacadeDefaults fills the facade's settings, and lists the facade's
// issuer first among the authorization servers of each resource that
// enables it: its tokens are then verified like any trusted issuer's (keys
// at its jwks_uri, which the gateway serves itself), and its
// protected-resource metadata names the facade first. It runs before the
// resources' own defaults, which then apply to that server too.
func (c *Config) applyFacadeDefaults() {
	f := &c.OAuthFacade
	orDefault(c, "oauth_facade.client_ttl", &f.ClientTTL, Duration(defaultFacadeClientTTL))
	orDefault(c, "oauth_facade.max_clients", &f.MaxClients, defaultFacadeMaxClients)
	orDefault(c, "oauth_facade.consent_ttl", &f.ConsentTTL, Duration(defaultFacadeConsentTTL))
	iss := c.FacadeIssuer()
	for i := range c.Resources {
		r := &c.Resources[i]
		rf := &r.OAuthFacade
		p := fmt.Sprintf("resources[%d].oauth_facade", i)
		// Always, as the login's: the enums show their defaults.
		orDefault(c, p+".auth_method", &rf.AuthMethod, defaultIntrospectAuth)
		orDefault(c, p+".audience_style", &rf.AudienceStyle, defaultFacadeAudienceStyle)
		orDefault(c, p+".token_ttl", &rf.TokenTTL, Duration(defaultFacadeTokenTTL))
		if !rf.Enabled {
			continue
		}
		if rf.Issuer == "" && !c.written[p+".issuer"] {
			for _, as := range r.AuthorizationServers {
				if as.Issuer != iss {
					rf.Issuer = as.Issuer
					break
				}
			}
		}
		if len(rf.Scopes) == 0 && !c.written[p+".scopes"] {
			rf.Scopes = []string{"openid", "offline_access"}
		}
		orDefault(c, p+".upstream_audience", &rf.UpstreamAudience, r.Resource)
		if iss != "" && !slices.ContainsFunc(r.AuthorizationServers, func(as AuthorizationServer) bool { return as.Issuer == iss }) {
			r.AuthorizationServers = append([]AuthorizationServer{{Issuer: iss, JWKSURI: iss + "/jwks", TokenMode: TokenModeJWT}}, r.AuthorizationServers...)
		}
	}
}

// validateFacade checks the OAuth facade's settings.
func (c *Config) validateFacade(ch *checker) {
	f := &c.OAuthFacade
	positive(ch, "oauth_facade.client_ttl", f.ClientTTL)
	positive(ch, "oauth_facade.consent_ttl", f.ConsentTTL)
	if f.ClientTTL > 0 && f.ClientTTL.D() < time.Minute {
		ch.add("oauth_facade.client_ttl", "must be at least a minute")
	}
	for k, s := range f.SigningKeys {
		kp := fmt.Sprintf("oauth_facade.signing_keys[%d]", k)
		validateSecret(ch, kp, s)
		if s.IsZero() {
			ch.add(kp, "must name a PEM private key (env or file)")
		}
	}
	for k, n := range f.ClientDocuments.AllowNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			ch.add(fmt.Sprintf("oauth_facade.client_documents.allow_networks[%d]", k), "must be a network in CIDR notation, such as 10.1.0.0/16")
		}
	}
	iss := c.FacadeIssuer()
	enabled := false
	for i := range c.Resources {
		r := &c.Resources[i]
		rf := &r.OAuthFacade
		p := fmt.Sprintf("resources[%d].oauth_facade", i)
		if !rf.Enabled {
			if rf.ClientID != "" || !rf.ClientSecret.IsZero() || !rf.PrivateKey.IsZero() || rf.Issuer != "" || rf.AudienceScope != "" {
				ch.add(p, "is set but not enabled (set enabled: true)")
			}
			continue
		}
		enabled = true
		if rf.ClientID == "" {
			ch.add(p+".client_id", "is required when the facade is enabled")
		}
		switch {
		case rf.Issuer == "":
			ch.add(p+".issuer", "is required: the provider users sign in at, one of the resource's authorization_servers")
		case rf.Issuer == iss:
			ch.add(p+".issuer", "must be the provider, not the facade itself")
		case !slices.ContainsFunc(r.AuthorizationServers, func(as AuthorizationServer) bool { return as.Issuer == rf.Issuer }):
			ch.add(p+".issuer", "must be one of the resource's authorization_servers")
		}
		validateSecret(ch, p+".client_secret", rf.ClientSecret)
		validateSecret(ch, p+".private_key", rf.PrivateKey)
		validateClientAuth(ch, p, rf.AuthMethod, rf.ClientSecret, rf.PrivateKey, "")
		for k, sc := range rf.Scopes {
			if !isScopeToken(sc) {
				ch.add(fmt.Sprintf("%s.scopes[%d]", p, k), "must be a scope token: printable ASCII without spaces, double quotes or backslashes")
			}
		}
		switch {
		case rf.AudienceStyle == FacadeAudienceScope && !isScopeToken(rf.AudienceScope):
			ch.add(p+".audience_scope", "is required with audience_style: scope, and must be a scope token (such as api://gateway/.default)")
		case rf.AudienceStyle != FacadeAudienceScope && rf.AudienceScope != "":
			ch.add(p+".audience_scope", "is used only with audience_style: scope")
		}
		positive(ch, p+".token_ttl", rf.TokenTTL)
		if rf.TokenTTL.D() > 24*time.Hour {
			ch.add(p+".token_ttl", "must be at most 24h (refresh tokens renew access)")
		}
	}
	if !enabled {
		return
	}
	if c.PublicURL == "" {
		ch.add("public_url", "is required when a resource enables oauth_facade (the facade's issuer is public_url + /oauth)")
	}
	if c.Login.SessionKey.IsZero() {
		ch.add("login.session_key", "is required when a resource enables oauth_facade (it seals the facade's records and sign-ins)")
	}
	if len(f.SigningKeys) == 0 {
		ch.add("oauth_facade.signing_keys", "at least one key is required when a resource enables oauth_facade")
	}
	for _, lp := range []struct{ key, path string }{
		{"login.login_path", c.Login.LoginPath}, {"login.callback_path", c.Login.CallbackPath}, {"login.logout_path", c.Login.LogoutPath},
	} {
		for _, e := range facadeEndpoints {
			if lp.path == FacadePath+e {
				ch.add(lp.key, "%q is an endpoint of the OAuth facade", lp.path)
			}
		}
	}
}
