package config

import (
	"fmt"
	"strings"
	"time"
)

// maxSSFMaxAge bounds ssf.max_age: every SET's jti is remembered this
// long.
const maxSSFMaxAge = 24 * time.Hour

// validateSSF checks the Shared Signals receiver: its settings always
// (they have defaults), the audience and the transmitters when any is
// listed.
func (c *Config) validateSSF(ch *checker) {
	s := &c.SSF
	switch p := s.Path; {
	case !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasSuffix(p, "/") || strings.ContainsAny(p, "?#\\ "):
		ch.add("ssf.path", `must be a path such as "/ssf/events" (no query, fragment, spaces or trailing "/")`)
	case strings.HasPrefix(p, wellKnownPrefix) || strings.HasPrefix(p, "/authz/") || p == "/authz" || p == "/healthz" || p == "/readyz":
		ch.add("ssf.path", "must not be a path the HTTP listener serves otherwise (/.well-known/, /authz/, /healthz, /readyz)")
	case p == c.Login.LoginPath || p == c.Login.CallbackPath || p == c.Login.LogoutPath:
		ch.add("ssf.path", "%q is a login path", p)
	}
	switch {
	case s.MaxAge <= 0:
		ch.add("ssf.max_age", msgPositive)
	case s.MaxAge.D() > maxSSFMaxAge:
		ch.add("ssf.max_age", "must be at most 24h")
	}
	if s.Leeway < 0 || s.Leeway.D() > maxLeeway {
		ch.add("ssf.leeway", "must be between 0s and 5m")
	}
	if len(s.Transmitters) == 0 {
		if s.Audience != "" {
			ch.add("ssf.audience", "is set but no transmitters are listed")
		}
		return
	}
	if s.Audience == "" {
		ch.add("ssf.audience", "is required when transmitters are listed")
	}
	if c.Listen.HTTP == Off {
		ch.add("ssf.transmitters", "are listed but listen.http is off (the push endpoint is on the HTTP listener)")
	}
	issuers := map[string]bool{}
	for _, r := range c.Resources {
		for _, as := range r.AuthorizationServers {
			issuers[as.Issuer] = true
		}
	}
	seen := firsts{}
	for i := range s.Transmitters {
		t := &s.Transmitters[i]
		p := fmt.Sprintf("ssf.transmitters[%d]", i)
		if t.Issuer != "" {
			for _, msg := range checkWebURL(t.Issuer, urlEndpoint) {
				ch.add(p+".issuer", "%s", msg)
			}
			if first, dup := seen.add(t.Issuer, i); dup {
				ch.add(p+".issuer", "is also ssf.transmitters[%d]'s", first)
			}
		}
		for _, u := range []struct{ key, url string }{{"configuration_url", t.ConfigurationURL}, {"jwks_uri", t.JWKSURI}} {
			if u.url != "" {
				for _, msg := range checkWebURL(u.url, urlEndpoint) {
					ch.add(p+"."+u.key, "%s", msg)
				}
			}
		}
		if t.ConfigurationURL != "" && t.JWKSURI != "" {
			ch.add(p+".configuration_url", "is not read when jwks_uri is set (set one)")
		}
		validateSecret(ch, p+".push_token", t.PushToken)
		if t.TokenIssuer != "" && !issuers[t.TokenIssuer] {
			ch.add(p+".token_issuer", "must be the issuer of one of the resources' authorization_servers")
		}
		validateSecret(ch, p+".poll.token", t.Poll.Token)
		switch {
		case t.Poll.Endpoint != "":
			for _, msg := range checkWebURL(t.Poll.Endpoint, urlEndpoint) {
				ch.add(p+".poll.endpoint", "%s", msg)
			}
		case !t.Poll.Token.IsZero():
			ch.add(p+".poll.token", "is set but poll.endpoint is not")
		}
		switch {
		case t.Poll.Interval <= 0:
			ch.add(p+".poll.interval", msgPositive)
		case t.Poll.Interval.D() > time.Hour:
			ch.add(p+".poll.interval", "must be at most 1h")
		}
	}
}
