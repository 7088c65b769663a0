package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/extauthz/extauthz/pkg/token"
)

// Protocol names (RFC 8693 §2.1, §3).
const (
	grantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange" //nolint:gosec // a grant type name, not a credential
	grantClientCredentials = "client_credentials"
	tokenTypeAccessToken   = "urn:ietf:params:oauth:token-type:access_token" //nolint:gosec // a token type name, not a credential
)

// maxResponseBytes bounds a token endpoint's answer; real ones are a few
// KiB at most.
const maxResponseBytes = 64 << 10

// clockSkew is tolerated on a minted JWT's nbf and iat, which the
// authorization server's clock wrote. Its exp is checked without any, by
// Minter (with ExpiryMargin on top).
const clockSkew = 30 * time.Second

// grant is one token request to make: its form, less client
// authentication.
type grant struct {
	mode string // ModeExchange or ModeClientCredentials, for logs and metrics
	form url.Values
}

// exchangeGrant is the RFC 8693 §2.1 request for subject (and actor, when
// not empty).
func (m *Minter) exchangeGrant(subject, actor string) grant {
	f := url.Values{
		"grant_type":           {grantTokenExchange},
		"subject_token":        {subject},
		"subject_token_type":   {tokenTypeAccessToken},
		"requested_token_type": {tokenTypeAccessToken},
	}
	if actor != "" {
		f.Set("actor_token", actor)
		f.Set("actor_token_type", tokenTypeAccessToken)
	}
	m.target(f, true)
	return grant{mode: ModeExchange, form: f}
}

// clientCredentialsGrant is the RFC 6749 §4.4.2 request; the actor token
// is requested without scopes.
func (m *Minter) clientCredentialsGrant(scopes bool) grant {
	f := url.Values{"grant_type": {grantClientCredentials}}
	m.target(f, scopes)
	return grant{mode: ModeClientCredentials, form: f}
}

// target adds audience (RFC 8693 §2.1), resource (RFC 8707 §2) and scope.
func (m *Minter) target(f url.Values, scopes bool) {
	if len(m.o.Audience) > 0 {
		f["audience"] = m.o.Audience
	}
	if len(m.o.Resource) > 0 {
		f["resource"] = m.o.Resource
	}
	if scopes && len(m.o.Scopes) > 0 {
		f.Set("scope", strings.Join(m.o.Scopes, " "))
	}
}

// response is the part of a token response (RFC 6749 §5.1, RFC 8693
// §2.2.1) that is read.
type response struct {
	AccessToken     *string         `json:"access_token"`
	TokenType       string          `json:"token_type"`
	IssuedTokenType *string         `json:"issued_token_type"`
	ExpiresIn       json.RawMessage `json:"expires_in"`
}

// minted is a usable credential from the token endpoint.
type minted struct {
	token  string
	expiry time.Time
}

// call makes one token request and returns the credential, an ErrRefused
// (a definitive refusal) or an ErrUnavailable.
func (m *Minter) call(ctx context.Context, g grant) (minted, error) {
	endpoint, err := m.o.TokenEndpoint(ctx)
	if err != nil {
		return minted{}, unavailable("token endpoint: %v", err)
	}
	req, err := m.request(ctx, endpoint, g)
	if err != nil {
		return minted{}, unavailable("%v", err)
	}
	resp, err := m.o.HTTPClient.Do(req)
	if err != nil {
		// The URL error would repeat the endpoint; the cause is enough.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return minted{}, unavailable("token endpoint: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return minted{}, unavailable("token endpoint: reading the answer: %v", err)
	}
	if len(body) > maxResponseBytes {
		return minted{}, unavailable("token endpoint: answer larger than 64 KiB")
	}
	if resp.StatusCode != http.StatusOK {
		return minted{}, m.failure(g, resp, body)
	}
	return m.interpret(ctx, g, body)
}

// request builds the POST of g's form, authenticated by the client
// authentication that introspection requests use (introspect.ClientAuth).
func (m *Minter) request(ctx context.Context, endpoint string, g grant) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, nil)
	if err != nil {
		return nil, errors.New("token endpoint: not a valid URL")
	}
	if err := m.auth.Apply(req, g.form, m.o.Now()); err != nil {
		return nil, err
	}
	return req, nil
}

// failure classifies an answer other than 200.
func (m *Minter) failure(g grant, resp *http.Response, body []byte) error {
	st := resp.StatusCode
	switch st {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
		code := oauthError(body)
		if refusal := m.refusalCode(g, code); refusal != nil {
			m.o.Logger.Info("authorization server refused an upstream credential",
				"resource", m.o.Name, "mode", g.mode, "status", st, "error", code)
			if code == "invalid_request" {
				m.throttled(slog.LevelWarn, "token exchange refused as invalid_request, which RFC 8693 §2.2.2 gives a subject token the server will not exchange; if every exchange is refused so, check upstream_token",
					"status", st)
			}
			return refusal
		}
		switch code {
		case "invalid_client", "invalid_request":
			m.loud("token endpoint refused the gateway's request; check upstream_token client credentials",
				"status", st, "error", code, "mode", g.mode)
		default:
			m.loud("token endpoint refused the gateway's request; check upstream_token",
				"status", st, "error", code, "mode", g.mode)
		}
		return unavailable("token endpoint: status %d, error %q", st, code)
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		e := &unavailableError{msg: fmt.Sprintf("token endpoint: status %d", st)}
		e.retryAfter, e.hasRetry = parseRetryAfter(resp.Header.Get("Retry-After"), m.o.Now())
		return e
	}
	return unavailable("token endpoint: status %d", st)
}

// refusalCode returns the refusal an error code stands for, nil for one
// that says the gateway cannot get a credential now.
//
// invalid_request refuses an exchange: RFC 8693 §2.2.2 makes it the code
// of a subject token the server finds invalid or unacceptable by policy,
// which is a verdict on this request, and caching it keeps one such
// client from making the gateway call the server at its request rate.
// Elsewhere — client credentials, the actor's token — there is no
// subject, and it means the gateway's request is wrong.
func (m *Minter) refusalCode(g grant, code string) error {
	if code == "invalid_request" && g.mode != ModeExchange {
		return nil
	}
	return refusals[code]
}

// oauthError extracts the error code of an OAuth error body (RFC 6749
// §5.2) for logs and errors; never the whole body, which a server might
// fill with anything. A code outside its grammar is dropped.
func oauthError(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Error) > 64 {
		return ""
	}
	for i := 0; i < len(e.Error); i++ {
		// error = 1*( %x20-21 / %x23-5B / %x5D-7E )
		if c := e.Error[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return ""
		}
	}
	return e.Error
}

// interpret checks a 200 answer and the credential in it.
func (m *Minter) interpret(ctx context.Context, g grant, body []byte) (minted, error) {
	r, err := parseResponse(body, g.mode == ModeExchange)
	if err != nil {
		m.loud("token endpoint answered an unusable credential", "mode", g.mode, "reason", err.Error())
		return minted{}, unavailable("token endpoint: %v", err)
	}
	now := m.o.Now()
	if r.expiresIn > 0 {
		r.expiry = now.Add(r.expiresIn)
	}
	if !isJWS(r.token) {
		// Opaque: only the server knows what it is; its expires_in
		// is all there is to go by.
		if r.expiresIn == 0 {
			r.expiry = now.Add(m.o.DefaultLifetime)
		}
		return minted{token: r.token, expiry: r.expiry}, nil
	}
	exp, err := m.verifyJWT(ctx, r.token)
	if err != nil {
		m.loud("token endpoint answered a JWT the gateway does not accept", "mode", g.mode, "reason", err.Error())
		return minted{}, unavailable("minted token: %v", err)
	}
	if r.expiry.IsZero() || exp.Before(r.expiry) {
		r.expiry = exp
	}
	return minted{token: r.token, expiry: r.expiry}, nil
}

// parsed is a token response's usable content.
type parsed struct {
	token     string
	expiresIn time.Duration // 0: absent
	expiry    time.Time
}

// parseResponse reads a 200 token response. The token must be a Bearer
// access token (RFC 6750): the upstream receives it in an Authorization
// Bearer header, so a DPoP-bound token (RFC 9449 §5) or RFC 8693's N_A
// (not an access token) is unusable. For an exchange, issued_token_type
// is required (RFC 8693 §2.2.1) and must be the access token type that
// was requested: "urn:ietf:params:oauth:token-type:jwt" is refused too,
// as it names the token's format, not its kind — an ID token is one —
// and the server that answers it did not issue what was asked for.
func parseResponse(body []byte, exchange bool) (parsed, error) {
	var r response
	if err := json.Unmarshal(body, &r); err != nil {
		return parsed{}, errors.New("answer is not a JSON object")
	}
	if r.AccessToken == nil || *r.AccessToken == "" {
		return parsed{}, errors.New("no access_token")
	}
	if !isB64Token(*r.AccessToken) {
		// It goes into a header: nothing but the b64token grammar of
		// RFC 6750 §2.1 may (no spaces, no line breaks).
		return parsed{}, errors.New("access_token is not a b64token")
	}
	if !strings.EqualFold(r.TokenType, "bearer") {
		return parsed{}, fmt.Errorf("token_type %q (not Bearer)", truncate(r.TokenType))
	}
	switch {
	case r.IssuedTokenType != nil && *r.IssuedTokenType != tokenTypeAccessToken:
		return parsed{}, fmt.Errorf("issued_token_type %q (not an access token)", truncate(*r.IssuedTokenType))
	case exchange && r.IssuedTokenType == nil:
		return parsed{}, errors.New("no issued_token_type")
	}
	p := parsed{token: *r.AccessToken}
	if len(r.ExpiresIn) > 0 && string(r.ExpiresIn) != "null" {
		// A number, as RFC 6749 §5.1 says; some servers quote it.
		var n json.Number
		if err := json.Unmarshal(r.ExpiresIn, &n); err != nil {
			return parsed{}, errors.New("expires_in is not a number")
		}
		secs, err := n.Int64()
		if err != nil || secs <= 0 || secs > 1<<31 {
			return parsed{}, errors.New("expires_in is not a positive integer")
		}
		p.expiresIn = time.Duration(secs) * time.Second
	}
	return p, nil
}

// verifyJWT verifies a minted JWT as the gateway verifies incoming ones
// (package token: strict parsing, signature with the configured
// algorithms only, never none or HS*, keys from Keys only, no cnf, typ
// at+jwt, JWT or none), plus: iss is the Issuer, exp present and in the
// future, and every aud is one the gateway asked for (Audience, else
// Resource), with at least one. A token wider than asked for could be
// replayed by the upstream elsewhere; the gateway does not pass it on.
func (m *Minter) verifyJWT(ctx context.Context, raw string) (time.Time, error) {
	if m.verifier == nil {
		return time.Time{}, errors.New("a JWT, and no keys to verify it with (jwks_uri)")
	}
	c, err := m.verifier.Verify(ctx, raw, m.issuers)
	if err != nil {
		return time.Time{}, err
	}
	if c.JKT != "" {
		// Bound by DPoP to a key the gateway does not hold: the upstream
		// would get a token it can only use with a proof nobody can make.
		return time.Time{}, fmt.Errorf("%w: sender-constrained (cnf.jkt, DPoP-bound)", token.ErrNotAccessToken)
	}
	if !m.o.Now().Before(c.Expiry) {
		return time.Time{}, token.ErrExpired
	}
	if len(c.Audience) == 0 {
		return time.Time{}, errors.New("no aud")
	}
	for _, a := range c.Audience {
		if _, ok := m.audiences[a]; !ok {
			return time.Time{}, fmt.Errorf("aud %q was not asked for", truncate(a))
		}
	}
	return c.Expiry, nil
}

// isJWS reports whether a token has the shape of a JWS compact
// serialization (three segments), which the gateway must then verify. A
// JWE (five segments) is opaque to the gateway, as to any client. An
// opaque token of exactly three dot-separated segments (a PASETO
// "v4.public.…", say) is taken for a JWT and refused: it cannot be told
// from a JWT that the upstream would read more leniently than the gateway.
func isJWS(s string) bool { return strings.Count(s, ".") == 2 }

// isB64Token reports whether s matches RFC 6750 §2.1's b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// truncate shortens a server-supplied value for a log line or an error.
func truncate(s string) string {
	const limit = 40
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
