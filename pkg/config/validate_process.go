package config

import (
	"fmt"
	"slices"
	"strings"
)

func (g *GRPC) validate(ch *checker) {
	positive(ch, "grpc.keepalive.time", g.Keepalive.Time)
	positive(ch, "grpc.keepalive.timeout", g.Keepalive.Timeout)
	positive(ch, "grpc.keepalive.min_time", g.Keepalive.MinTime)
	if g.Keepalive.MaxConnectionAge < 0 {
		ch.add("grpc.keepalive.max_connection_age", msgNonNegative)
	}
}

func (j *JWKS) validate(ch *checker) {
	positive(ch, "jwks.min_refresh", j.MinRefresh)
	if j.MaxRefresh <= 0 {
		ch.add("jwks.max_refresh", msgPositive)
	} else if j.MinRefresh > 0 && j.MaxRefresh < j.MinRefresh {
		ch.add("jwks.max_refresh", "must not be less than jwks.min_refresh (%s)", j.MinRefresh.D())
	}
	positive(ch, "jwks.unknown_kid_min_interval", j.UnknownKIDInterval)
	positive(ch, "jwks.timeout", j.Timeout)
}

// The algorithms the verifier implements (the asymmetric JWS ones) are
// the enum of the tokens.algorithms tag; Validate explains why the usual
// wrong guesses are refused.
func (t *Tokens) validate(ch *checker) {
	if t.Leeway < 0 {
		ch.add("tokens.leeway", msgNonNegative)
	} else if t.Leeway.D() > maxLeeway {
		ch.add("tokens.leeway", "must not exceed 5m")
	}
	if len(t.Algorithms) == 0 {
		ch.add("tokens.algorithms", msgNotEmpty)
	}
	for i, alg := range t.Algorithms {
		p := fmt.Sprintf("tokens.algorithms[%d]", i)
		switch {
		case strings.EqualFold(alg, "none"):
			// An unsigned token proves nothing.
			ch.add(p, "%q is never accepted (tokens must be signed)", alg)
		case strings.HasPrefix(strings.ToUpper(alg), "HS"):
			// With a shared secret, every holder of the key (each
			// resource server) could mint tokens for all the others.
			ch.add(p, "%q is never accepted (symmetric algorithms are not allowed)", alg)
		}
	}
}

// reservedHeaders cannot carry identity: they have their own meaning to the
// proxy or the upstream, and overwriting one would break the request or,
// for authorization and cookie, pass a credential along.
func reservedHeaders() []string {
	return []string{
		"authorization", "cookie", "host", "content-length", "transfer-encoding",
		"connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer", "upgrade",
	}
}

func (u *Upstream) validate(ch *checker) {
	headers := []struct{ path, name string }{
		{"upstream.subject_header", u.SubjectHeader},
		{"upstream.client_id_header", u.ClientIDHeader},
		{"upstream.scopes_header", u.ScopesHeader},
	}
	for i, h := range headers {
		switch {
		case h.name == "":
			ch.add(h.path, msgNotEmpty)
		case strings.HasPrefix(h.name, ":"):
			ch.add(h.path, "must not be a pseudo-header")
		case !isToken(h.name):
			ch.add(h.path, "must be a valid HTTP header name (RFC 9110 token characters)")
		case h.name != strings.ToLower(h.name):
			ch.add(h.path, "must be lower case")
		case slices.Contains(reservedHeaders(), h.name):
			ch.add(h.path, "must not be %q", h.name)
		default:
			for _, prev := range headers[:i] {
				if prev.name == h.name {
					ch.add(h.path, "must differ from %s", prev.path)
					break
				}
			}
		}
	}
}
