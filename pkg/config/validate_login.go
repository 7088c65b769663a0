package config

import (
	"fmt"
	"strings"
)

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
