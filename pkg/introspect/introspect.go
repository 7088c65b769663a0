// Package introspect is an RFC 7662 token introspection client. It asks
// the authorization server that issued an opaque token whether the token
// is active, authenticating as a confidential client (client_secret_basic,
// client_secret_post or private_key_jwt), checks the answer, and turns it
// into token.Claims. That client authentication, ClientAuth, is also how
// package upstream authenticates at the token endpoint.
//
// Every failure to get a usable answer — a timeout, a 5xx, a refused
// client authentication, a body that is not a JSON object — wraps
// token.ErrUnavailable: it says nothing about the token and must not be
// cached. Only the server's own verdicts (active false, a wrong issuer,
// a refresh token) are definitive.
package introspect

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

// Client authentication methods (RFC 7591 §2 names).
const (
	ClientSecretBasic = "client_secret_basic"
	ClientSecretPost  = "client_secret_post"
	PrivateKeyJWT     = "private_key_jwt"
)

// maxResponseBytes bounds an introspection response; real ones are well
// under 4 KiB.
const maxResponseBytes = 64 << 10

// Options configures a Client.
type Options struct {
	// Issuer is the server's configured issuer identifier. A response that
	// names another iss is refused; one that names none is taken to be
	// this issuer's (the endpoint is its own). It is also the audience of
	// private_key_jwt client assertions.
	Issuer string
	// Endpoint returns the introspection endpoint: configured, or from the
	// issuer's discovered metadata. An error means it is not known now.
	Endpoint func(ctx context.Context) (string, error)
	// ClientID and the credentials of the gateway at the server.
	ClientID   string
	AuthMethod string // ClientSecretBasic (default), ClientSecretPost or PrivateKeyJWT
	// ClientSecret, for the client_secret_* methods.
	ClientSecret string
	// Signer signs private_key_jwt client assertions.
	Signer *AssertionSigner
	// Timeout bounds one call (default 300ms).
	Timeout time.Duration
	// CacheTTL caps how long an answer may be cached (token.Grant.CacheTTL)
	// and how long an answer without exp is trusted (default 60s).
	CacheTTL time.Duration
	// Claims names where the server puts audiences, scopes and client id.
	Claims token.ClaimNames
	// Leeway tolerated on exp, nbf and iat.
	Leeway time.Duration
	// HTTPClient makes the calls (nil: a client without its own timeout;
	// Timeout applies per call).
	HTTPClient *http.Client
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Logger receives what an operator must fix, such as refused client
	// credentials (nil: discard). Never a token.
	Logger *slog.Logger
	// Observe, when set, is told of every call for metrics: its result
	// (ResultActive, ResultInactive, ResultRejected or ResultError) and how
	// long it took. It must be quick.
	Observe func(result string, d time.Duration)
}

// Results reported to Options.Observe.
const (
	ResultActive   = "active"   // the token is active and acceptable
	ResultInactive = "inactive" // the server said active:false
	ResultRejected = "rejected" // active, but not acceptable here (type, cnf, issuer, time, claims)
	ResultError    = "error"    // no usable answer: timeout, transport, status, body
)

// Client introspects tokens at one authorization server. It is safe for
// concurrent use.
type Client struct {
	o    Options
	auth ClientAuth
}

// New checks the options and builds a client.
func New(o Options) (*Client, error) {
	if o.Issuer == "" || o.Endpoint == nil || o.ClientID == "" {
		return nil, errors.New("introspect: issuer, endpoint and client id are required")
	}
	auth := ClientAuth{
		Method: o.AuthMethod, ClientID: o.ClientID, ClientSecret: o.ClientSecret, Signer: o.Signer,
		Audience: o.Issuer,
	}
	if err := auth.Validate(); err != nil {
		return nil, fmt.Errorf("introspect: %w", err)
	}
	if o.Timeout <= 0 {
		o.Timeout = 300 * time.Millisecond
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = time.Minute
	}
	hc := &http.Client{}
	if o.HTTPClient != nil {
		c := *o.HTTPClient
		hc = &c
	}
	// Never follow a redirect: a 307 or 308 would resend the token, and
	// the client's credentials, to wherever the answer points.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	o.HTTPClient = hc
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Client{o: o, auth: auth}, nil
}

// response is the part of an introspection response (RFC 7662 §2.2) read
// beyond the claims that token.ParsePayload reads.
type response struct {
	Active    json.RawMessage `json:"active"`
	TokenType string          `json:"token_type"`
	Cnf       json.RawMessage `json:"cnf"`
}

// Introspect implements token.Introspector.
func (c *Client) Introspect(ctx context.Context, raw string) (*token.Claims, error) {
	if c.o.Observe == nil {
		return c.introspect(ctx, raw)
	}
	start := time.Now()
	claims, err := c.introspect(ctx, raw)
	result := ResultActive
	switch {
	case errors.Is(err, token.ErrInactive):
		result = ResultInactive
	case errors.Is(err, token.ErrUnavailable):
		result = ResultError
	case err != nil:
		result = ResultRejected
	}
	c.o.Observe(result, time.Since(start))
	return claims, err
}

func (c *Client) introspect(ctx context.Context, raw string) (*token.Claims, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	endpoint, err := c.o.Endpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: introspection endpoint: %v", token.ErrUnavailable, err)
	}
	body, err := c.call(ctx, endpoint, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: introspection: %v", token.ErrUnavailable, err)
	}
	return c.interpret(body)
}

// call posts the token and returns the body of a 200 answer.
func (c *Client) call(ctx context.Context, endpoint, raw string) ([]byte, error) {
	form := url.Values{"token": {raw}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, nil)
	if err != nil {
		return nil, err
	}
	if err := c.auth.Apply(req, form, c.o.Now()); err != nil {
		return nil, err
	}
	resp, err := c.o.HTTPClient.Do(req)
	if err != nil {
		// The URL error would repeat the endpoint; the cause is enough.
		var ue *url.Error
		if errors.As(err, &ue) {
			return nil, ue.Err
		}
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusBadRequest:
		// Our credentials or request, not the token: an operator must
		// fix the configuration. Loud, and never the token's fault.
		c.o.Logger.Error("introspection refused the gateway's request; check introspection.client_id and its credentials",
			"issuer", c.o.Issuer, "status", resp.StatusCode, "error", oauthError(body))
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	default:
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	if len(body) > maxResponseBytes {
		return nil, errors.New("response larger than 64 KiB")
	}
	return body, nil
}

// interpret checks a 200 answer and turns an active one into Claims.
func (c *Client) interpret(body []byte) (*token.Claims, error) {
	var r response
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%w: introspection response is not a JSON object", token.ErrUnavailable)
	}
	// RFC 7662 §2.2: active is REQUIRED and boolean; anything but true
	// (false, absent, "true") is not an active token.
	if string(r.Active) != "true" {
		return nil, token.ErrInactive
	}
	// Only access tokens may pass. A server tells a sender-constrained
	// token by cnf: its presenter must prove possession of a key. The one
	// binding the gateway can check is DPoP's cnf.jkt alone (RFC 9449
	// §6.2, token.ConfirmationJKT): such a token passes, its thumbprint in
	// the claims (Grant.JKT, which a Bearer request cannot satisfy). Any
	// other (mTLS, RFC 8705 §3.2) is refused here.
	bound := false
	if len(r.Cnf) > 0 && string(r.Cnf) != "null" {
		if _, bound = token.ConfirmationJKT(r.Cnf); !bound {
			return nil, fmt.Errorf("%w: sender-constrained (cnf) other than by a DPoP key thumbprint (cnf.jkt)", token.ErrNotAccessToken)
		}
	}
	// A refresh token it tells by token_type. A DPoP-bound access token
	// may be typed "DPoP", the token type of RFC 9449 §5 (oidc-provider
	// answers so), but only along with the cnf.jkt that binds it.
	switch tt := r.TokenType; {
	case tt == "", strings.EqualFold(tt, "bearer"), tt == "access_token", tt == "urn:ietf:params:oauth:token-type:access_token":
	case bound && strings.EqualFold(tt, "dpop"):
	default:
		return nil, fmt.Errorf("%w: token_type %q", token.ErrNotAccessToken, tt)
	}
	p, err := token.ParsePayload(body, c.o.Claims)
	if err != nil {
		return nil, fmt.Errorf("%w: introspection response: %v", token.ErrUnavailable, err)
	}
	if (p.JKT != "") != bound {
		// Both read the one cnf member of an object ParsePayload found
		// unambiguous; should they ever disagree, no binding is dropped.
		return nil, fmt.Errorf("%w: introspection response: cnf read two ways", token.ErrUnavailable)
	}
	switch p.Issuer {
	case "":
		p.Issuer = c.o.Issuer
	case c.o.Issuer:
	default:
		return nil, fmt.Errorf("%w: introspection names issuer %q", token.ErrUnknownIssuer, p.Issuer)
	}
	now := c.o.Now()
	if p.Expiry.IsZero() {
		// No exp: the answer holds for as long as it may be cached.
		p.Expiry = now.Add(c.o.CacheTTL)
	}
	claims, err := p.Claims(now, c.o.Leeway, true)
	if err != nil {
		return nil, err
	}
	claims.CacheTTL = c.o.CacheTTL
	return claims, nil
}

// oauthError extracts the error code of an OAuth error body for the log;
// never the whole body, which a server might fill with anything.
func oauthError(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Error) > 64 {
		return ""
	}
	return e.Error
}
