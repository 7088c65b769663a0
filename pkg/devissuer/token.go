package devissuer

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jws"
)

// Protocol names (RFC 6749 §4.4.2, RFC 8693 §2.1 and §3).
const (
	grantClientCredentials = "client_credentials"
	grantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange" //nolint:gosec // a grant type name, not a credential
	tokenTypeAccessToken   = "urn:ietf:params:oauth:token-type:access_token"   //nolint:gosec // a token type name, not a credential
)

// exchangeTTL is the longest life of an exchanged token; it never
// outlives the subject token either.
const exchangeTTL = 15 * time.Minute

// client is the one confidential client the token endpoint knows.
type client struct{ id, secret string }

// SetClient makes id the one confidential client of the token endpoint,
// authenticated by client_secret_basic (RFC 6749 §2.3.1) with secret. It
// is the only client that may exchange tokens, and the only one that must
// authenticate: client_credentials still serves anyone else who asks.
// Without it, every token exchange is refused with invalid_client.
func (i *Issuer) SetClient(id, secret string) {
	i.mu.Lock()
	i.client = client{id: id, secret: secret}
	i.mu.Unlock()
}

func (i *Issuer) authMethods() []string {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.client.id != "" {
		return []string{"none", "client_secret_basic"}
	}
	return []string{"none"}
}

// tokenError is an OAuth error answer (RFC 6749 §5.2).
type tokenError struct {
	status      int
	code        string
	description string
}

func (e *tokenError) Error() string { return e.code + ": " + e.description }

func badRequest(code, format string, args ...any) *tokenError {
	return &tokenError{status: http.StatusBadRequest, code: code, description: fmt.Sprintf(format, args...)}
}

var errInvalidClient = &tokenError{status: http.StatusUnauthorized, code: "invalid_client", description: "client authentication failed"}

// tokenAnswer is a successful token response (RFC 6749 §5.1, RFC 8693
// §2.2.1).
type tokenAnswer struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type,omitempty"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope,omitempty"`
}

// serveToken is the token endpoint: client_credentials (RFC 6749 §4.4),
// honouring RFC 8707 resource, audience and scope, and RFC 8693 token
// exchange for the client set by SetClient.
func (i *Issuer) serveToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	ans, err := i.token(r)
	if err != nil {
		var te *tokenError
		if !errors.As(err, &te) {
			te = &tokenError{status: http.StatusInternalServerError, code: "server_error"}
		}
		if te.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="devissuer"`)
		}
		body := map[string]string{"error": te.code}
		if te.description != "" {
			body["error_description"] = te.description
		}
		writeJSON(w, te.status, body)
		return
	}
	writeJSON(w, http.StatusOK, ans)
}

func (i *Issuer) token(r *http.Request) (*tokenAnswer, error) {
	if err := r.ParseForm(); err != nil {
		return nil, badRequest("invalid_request", "the body is not a form")
	}
	f := r.PostForm
	for name, vs := range f {
		// RFC 6749 §3.2; RFC 8707 and RFC 8693 let these two repeat.
		if len(vs) > 1 && name != "resource" && name != "audience" {
			return nil, badRequest("invalid_request", "parameter %s repeated", name)
		}
	}
	clientID, authenticated, err := i.authenticate(r)
	if err != nil {
		return nil, err
	}
	switch f.Get("grant_type") {
	case grantClientCredentials:
		return i.clientCredentials(f, clientID)
	case grantTokenExchange:
		if !authenticated {
			return nil, errInvalidClient
		}
		return i.exchange(f, clientID)
	}
	return nil, badRequest("unsupported_grant_type", "grant_type must be client_credentials or %s", grantTokenExchange)
}

// authenticate finds the client of a token request: the client set by
// SetClient when its client_secret_basic credentials are right
// (authenticated), else the form's client_id, which nothing vouches for.
// Any other client authentication, wrong credentials, and the configured
// client's id without its secret are invalid_client.
func (i *Issuer) authenticate(r *http.Request) (id string, authenticated bool, err error) {
	f := r.PostForm
	if f.Has("client_secret") || f.Has("client_assertion") || f.Has("client_assertion_type") {
		return "", false, errInvalidClient
	}
	i.mu.RLock()
	c := i.client
	i.mu.RUnlock()
	user, pass, basic := r.BasicAuth()
	if !basic {
		if r.Header.Get("Authorization") != "" {
			return "", false, errInvalidClient
		}
		if c.id != "" && f.Get("client_id") == c.id {
			return "", false, errInvalidClient // a confidential client authenticates (RFC 6749 §3.2.1)
		}
		return f.Get("client_id"), false, nil
	}
	// Both parts are form-encoded before base64 (RFC 6749 §2.3.1).
	user, uerr := url.QueryUnescape(user)
	pass, perr := url.QueryUnescape(pass)
	if uerr != nil || perr != nil || c.id == "" || !equal(user, c.id) || !equal(pass, c.secret) {
		return "", false, errInvalidClient
	}
	if cid := f.Get("client_id"); cid != "" && cid != c.id {
		return "", false, errInvalidClient
	}
	return c.id, true, nil
}

// equal compares secrets in time independent of where they differ.
func equal(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// clientCredentials mints a token for the client itself (RFC 6749 §4.4),
// for the RFC 8707 resources and RFC 8693-style audiences asked for (the
// default audience without any), with the scopes asked for and an
// optional expires_in.
func (i *Issuer) clientCredentials(f url.Values, clientID string) (*tokenAnswer, error) {
	t := Token{
		Subject:  clientID,
		ClientID: clientID,
		Scopes:   strings.Fields(f.Get("scope")),
		TTL:      time.Hour,
	}
	if t.Subject == "" {
		t.Subject, t.ClientID = "dev-client", "dev-client"
	}
	if aud := append(append([]string(nil), f["resource"]...), f["audience"]...); len(aud) > 0 {
		t.Audience = aud
	}
	if s := f.Get("expires_in"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n > 86400 {
			return nil, badRequest("invalid_request", "expires_in must be 1..86400")
		}
		t.TTL = time.Duration(n) * time.Second
	}
	tok, err := i.Mint(t)
	if err != nil {
		return nil, err
	}
	return &tokenAnswer{AccessToken: tok, TokenType: "Bearer", ExpiresIn: int64(t.TTL.Seconds()), Scope: strings.Join(t.Scopes, " ")}, nil
}

// exchange is RFC 8693 token exchange (§2.1): a token of this issuer's,
// still valid, for one audience, naming the same subject, the exchanging
// client as client_id and, with an actor token, the actor in act (§4.1;
// an act the subject token already carries is nested as the prior
// actor). The exchanged token expires with the subject token or sooner.
// Errors follow §2.2.2: a subject or actor token this issuer will not
// exchange is invalid_request, a target it will not serve invalid_target.
func (i *Issuer) exchange(f url.Values, clientID string) (*tokenAnswer, error) {
	if f.Get("subject_token") == "" {
		return nil, badRequest("invalid_request", "subject_token is required")
	}
	if f.Get("subject_token_type") != tokenTypeAccessToken {
		return nil, badRequest("invalid_request", "subject_token_type must be %s", tokenTypeAccessToken)
	}
	if rt := f.Get("requested_token_type"); rt != "" && rt != tokenTypeAccessToken {
		return nil, badRequest("invalid_request", "requested_token_type must be %s", tokenTypeAccessToken)
	}
	if f.Has("actor_token") != f.Has("actor_token_type") {
		return nil, badRequest("invalid_request", "actor_token and actor_token_type go together")
	}
	if f.Has("actor_token") && f.Get("actor_token_type") != tokenTypeAccessToken {
		return nil, badRequest("invalid_request", "actor_token_type must be %s", tokenTypeAccessToken)
	}
	switch aud := f["audience"]; {
	case len(f["resource"]) > 0:
		return nil, badRequest("invalid_target", "this issuer exchanges for an audience, not a resource")
	case len(aud) == 0 || aud[0] == "":
		return nil, badRequest("invalid_target", "audience is required")
	case len(aud) > 1:
		return nil, badRequest("invalid_target", "one audience only")
	}
	now := i.now()
	subject, err := i.verifyOwn(f.Get("subject_token"), now)
	if err != nil {
		return nil, badRequest("invalid_request", "subject_token: %v", err)
	}
	extra := map[string]any{}
	if f.Has("actor_token") {
		actor, err := i.verifyOwn(f.Get("actor_token"), now)
		if err != nil {
			return nil, badRequest("invalid_request", "actor_token: %v", err)
		}
		act := map[string]any{"sub": actor.Sub}
		if len(subject.Act) > 0 {
			act["act"] = subject.Act
		}
		extra["act"] = act
	} else if len(subject.Act) > 0 {
		extra["act"] = subject.Act
	}
	exp := min(now.Add(exchangeTTL).Unix(), subject.Exp)
	expiresIn := exp - now.Unix()
	if expiresIn <= 0 {
		return nil, badRequest("invalid_request", "subject_token: expires within the second")
	}
	extra["exp"] = exp
	scopes := strings.Fields(f.Get("scope"))
	tok, err := i.Mint(Token{
		Subject:  subject.Sub,
		ClientID: clientID,
		Audience: f["audience"],
		Scopes:   scopes,
		Extra:    extra,
	})
	if err != nil {
		return nil, err
	}
	return &tokenAnswer{
		AccessToken:     tok,
		IssuedTokenType: tokenTypeAccessToken,
		TokenType:       "Bearer",
		ExpiresIn:       expiresIn,
		Scope:           strings.Join(scopes, " "),
	}, nil
}

// ownClaims are the claims read from a token this issuer signed.
type ownClaims struct {
	Iss string          `json:"iss"`
	Sub string          `json:"sub"`
	Exp int64           `json:"exp"`
	Nbf int64           `json:"nbf"`
	Act json.RawMessage `json:"act"`
}

// verifyOwn checks that raw is an access token this issuer signed with a
// key it still publishes, with that key's algorithm (never the one the
// header asks for: alg none or an HMAC keyed with the public key fail
// here), that it is typed at+jwt (RFC 9068 §2.1), names this issuer and a
// subject, and is valid at now.
func (i *Issuer) verifyOwn(raw string, now time.Time) (*ownClaims, error) {
	head, _, ok := strings.Cut(raw, ".")
	if !ok || strings.Count(raw, ".") != 2 {
		return nil, errors.New("not a JWS compact serialization")
	}
	hb, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return nil, errors.New("malformed header")
	}
	var h struct {
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, errors.New("malformed header")
	}
	if typ := strings.ToLower(h.Typ); typ != "at+jwt" && typ != "application/at+jwt" {
		return nil, errors.New("not an access token (typ at+jwt)")
	}
	i.mu.RLock()
	var k *key
	for _, kid := range i.published {
		if kid == h.Kid {
			k = i.keys[kid]
		}
	}
	i.mu.RUnlock()
	if k == nil {
		return nil, errors.New("not signed by a key of this issuer")
	}
	// VerifyCompactFast also refuses a header whose alg is not the key's,
	// and crit or b64 headers.
	payload, err := jws.VerifyCompactFast(k.priv.Public(), []byte(raw), k.alg)
	if err != nil {
		return nil, errors.New("signature does not verify")
	}
	var c ownClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, errors.New("malformed claims")
	}
	switch {
	case c.Iss != i.issuer:
		return nil, errors.New("issued by another issuer")
	case c.Sub == "":
		return nil, errors.New("no sub")
	case c.Exp == 0:
		return nil, errors.New("no exp")
	case now.Unix() >= c.Exp:
		return nil, errors.New("expired")
	case c.Nbf > now.Unix():
		return nil, errors.New("not yet valid")
	}
	if string(c.Act) == "null" {
		c.Act = nil
	}
	return &c, nil
}
