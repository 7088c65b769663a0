package check_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/extauthz/extauthz/pkg/check"
)

const dNotAccess = "the token is not a bearer access token"

// notAccessTokenCases are JWTs signed by the resource's trusted issuer
// with the right audience and scopes that are not bearer access tokens,
// or not declared to be, each with its answer for an issuer that requires
// typ at+jwt (the default) and for one that does not.
func notAccessTokenCases(t *testing.T, ri *rawIssuer) (strict, lax []hostileCase) {
	t.Helper()
	now := time.Now()
	claims := func(extra string) string {
		return fmt.Sprintf(`{"iss":%q,"sub":"alice","aud":%q,"scope":"mcp:tools mcp:write","exp":%d,"iat":%d%s}`,
			ri.url, resourceURI, now.Add(time.Hour).Unix(), now.Unix(), extra)
	}
	typed := func(typ string) string {
		if typ == "" {
			return fmt.Sprintf(`{"alg":"RS256","kid":%q}`, rawKID)
		}
		return fmt.Sprintf(`{"alg":"RS256","typ":%s,"kid":%q}`, typ, rawKID)
	}
	req := func(header, cl string) check.EnvoyRequest {
		return check.EnvoyRequest{URL: resourceURI, Headers: bearer(ri.sign(t, header, cl))}
	}
	for _, c := range []struct {
		name        string
		req         check.EnvoyRequest
		strict, lax int    // status; 200 allowed
		desc        string // of a 401
	}{
		{"typ at+jwt", req(typed(`"at+jwt"`), claims("")), 200, 200, ""},
		{"typ application/at+jwt", req(typed(`"application/at+jwt"`), claims("")), 200, 200, ""},
		{"typ AT+JWT (case-insensitive, RFC 7515 §4.1.9)", req(typed(`"AT+JWT"`), claims("")), 200, 200, ""},
		{"typ Application/At+Jwt", req(typed(`"Application/At+Jwt"`), claims("")), 200, 200, ""},
		{"typ JWT", req(typed(`"JWT"`), claims("")), 401, 200, dNotAccess},
		{"typ jwt", req(typed(`"jwt"`), claims("")), 401, 200, dNotAccess},
		{"typ application/jwt", req(typed(`"application/jwt"`), claims("")), 401, 200, dNotAccess},
		{"no typ", req(typed(""), claims("")), 401, 200, dNotAccess},
		{"typ rt+jwt (a refresh token)", req(typed(`"rt+jwt"`), claims("")), 401, 401, dNotAccess},
		{"typ application/rt+jwt", req(typed(`"application/rt+jwt"`), claims("")), 401, 401, dNotAccess},
		{"typ secevent+jwt", req(typed(`"secevent+jwt"`), claims("")), 401, 401, dNotAccess},
		{"typ dpop+jwt", req(typed(`"dpop+jwt"`), claims("")), 401, 401, dNotAccess},
		{"typ logout+jwt", req(typed(`"logout+jwt"`), claims("")), 401, 401, dNotAccess},
		{"typ id_token+jwt", req(typed(`"id_token+jwt"`), claims("")), 401, 401, dNotAccess},
		{"typ empty", req(typed(`""`), claims("")), 401, 401, dNotAccess},
		{"typ null", req(typed(`null`), claims("")), 401, 401, dNotAccess},
		{"typ at+jwt with a space", req(typed(`"at+jwt "`), claims("")), 401, 401, dNotAccess},
		{"typ application/at+jwt; charset", req(typed(`"application/at+jwt; charset=utf-8"`), claims("")), 401, 401, dNotAccess},
		{"typ not a string", req(typed(`1`), claims("")), 401, 401, dMalformed},
		{"TYP for typ", req(fmt.Sprintf(`{"alg":"RS256","TYP":"at+jwt","kid":%q}`, rawKID), claims("")), 401, 401, dMalformed},
		{"cnf jkt (DPoP-bound)", req(typed(`"at+jwt"`), claims(`,"cnf":{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}`)), 401, 401, dNotAccess},
		{"cnf x5t#S256 (mTLS-bound)", req(typed(`"at+jwt"`), claims(`,"cnf":{"x5t#S256":"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}`)), 401, 401, dNotAccess},
		{"cnf empty", req(typed(`"at+jwt"`), claims(`,"cnf":{}`)), 401, 401, dNotAccess},
		{"cnf null", req(typed(`"at+jwt"`), claims(`,"cnf":null`)), 401, 401, dNotAccess},
		{"cnf on an untyped token", req(typed(""), claims(`,"cnf":{"jkt":"x"}`)), 401, 401, dNotAccess},
		{"CNF beside nothing", req(typed(`"at+jwt"`), claims(`,"CNF":{"jkt":"x"}`)), 401, 401, dMalformed},
	} {
		strict = append(strict, hostileCase{c.name, c.req, c.strict, map[bool]string{true: c.desc}[c.strict != 200]})
		lax = append(lax, hostileCase{c.name, c.req, c.lax, map[bool]string{true: c.desc}[c.lax != 200]})
	}
	return strict, lax
}

// TestNotBearerAccessTokens: a JWT is a bearer access token only if its
// header says so (typ at+jwt, RFC 9068 §2.1 and §4) and no cnf claim binds
// it to a key its presenter would have to prove (DPoP, RFC 9449; mTLS,
// RFC 8705), which a Bearer request cannot. An issuer whose access tokens
// are not typed (require_typ: false) may send typ JWT or none, never the
// type of another kind of JWT.
func TestNotBearerAccessTokens(t *testing.T) {
	t.Run("require_typ true (the default)", func(t *testing.T) {
		g, ri := startRawGateway(t)
		strict, _ := notAccessTokenCases(t, ri)
		runHostile(t, g, strict)
	})
	t.Run("require_typ false", func(t *testing.T) {
		g, ri := startRawGatewayTyp(t, false)
		_, lax := notAccessTokenCases(t, ri)
		runHostile(t, g, lax)
	})
}
