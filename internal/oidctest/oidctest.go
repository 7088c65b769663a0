// Package oidctest starts a real OAuth 2.1 / OpenID Connect authorization server for
// integration tests: the npm package oidc-provider, run by `node test/authserver/server.mjs`
// on 127.0.0.1 and a free port, configured entirely from Go (clients, RFC 8707 resource
// servers with JWT or opaque access tokens, scopes, an optional issuer path), and stopped by
// PID when the test ends.
//
// It exists so that the gateway's token validation, introspection, revocation and metadata
// discovery are tested against an independent, certified implementation rather than against
// tokens the tests minted themselves.
//
// The server supports the client_credentials grant, the authorization code grant with PKCE
// through oidc-provider's development login and consent pages (any login and password), token
// introspection (RFC 7662: any confidential client may introspect any opaque token),
// revocation (RFC 7009), open dynamic client registration (RFC 7591), resource indicators
// (RFC 8707) and RFC 8414 metadata, also path-inserted for an issuer with a path. JWT access
// tokens (RFC 9068, typ at+jwt, RS256, aud = the resource) cannot be introspected or revoked:
// oidc-provider answers 400 unsupported_token_type.
//
// It also supports RFC 8693 token exchange (grant GrantTokenExchange) for the clients that list
// it in GrantTypes: an access token of this server is exchanged for a JWT access token for one
// of Options.TokenExchange.Targets (see TokenExchange). Test controls count the exchange
// requests the server received (Exchanges) and make the following ones fail or slow down
// (SetExchangeBehaviour). test/authserver/server.mjs documents the server side in full.
//
// It issues DPoP-bound access tokens (RFC 9449): oidc-provider 9.13.3 has its DPoP feature on by
// default, and a token request with a DPoP proof (TokenDPoP, ClientCredentialsDPoP) gets a token
// of token_type DPoP bound to the proof's key, its cnf.jkt in the JWT's claims or in the
// introspection answer. Options.DPoP turns the feature off or makes it demand server nonces.
//
// Clients authenticating with private_key_jwt may use as client assertion aud the issuer, the
// token endpoint URL, or the URL of the endpoint being called (e.g. the introspection
// endpoint); the match is exact (no trailing-slash tolerance), and a jti may be used only once.
//
// Node.js and the server's npm dependencies are required: a missing `node` or a missing
// test/authserver/node_modules is a test failure saying to run `npm ci --prefix
// test/authserver`, never a skip. It is test support only: nothing outside _test.go files
// should import it.
package oidctest

// This file is long because it is one server's whole life: its config from Go,
// start and stop by PID, and the client calls the tests make against it.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/childproc"
	"github.com/extauthz/extauthz/internal/testkit"
)

// startTimeout bounds how long the server may take to print its ready line:
// generous, since Node starts slowly on a loaded 2-core machine (it takes a
// third of a second of CPU, but CI runs several packages' tests at once; a
// start has been seen to take over a minute there).
const startTimeout = 3 * time.Minute

// startAttempts is how many times a start that never gets ready is tried,
// each with its share of startTimeout.
const startAttempts = 2

// stopTimeout is how long the server gets to exit after SIGTERM before it is killed.
const stopTimeout = 5 * time.Second

// defaultTTL is a resource's access token lifetime when Resource.TTL is zero, and an exchange
// target's when ExchangeTarget.TTL is zero.
const defaultTTL = 300 * time.Second

// RFC 8693 identifiers.
const (
	// GrantTokenExchange is the token exchange grant type (RFC 8693 section 2.1); list it in a
	// Client's GrantTypes to let the client exchange tokens.
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	// TokenTypeAccessToken is the only subject, actor and requested token type the server
	// accepts (RFC 8693 section 3).
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
)

// Client is an OAuth client registered with the server at start.
type Client struct {
	ID, Secret string
	// AuthMethod is the token_endpoint_auth_method: "client_secret_basic",
	// "client_secret_post", "private_key_jwt" or "none". Empty means client_secret_basic
	// when Secret is set, private_key_jwt when JWKS is set, none otherwise.
	AuthMethod   string
	JWKS         json.RawMessage // public keys for private_key_jwt: {"keys":[...]}
	GrantTypes   []string        // default ["client_credentials"]
	Scope        string          // scopes the client may request; empty: any
	RedirectURIs []string
}

// Resource is an RFC 8707 resource server known to the authorization server. A token
// request naming any other resource is refused with invalid_target.
type Resource struct {
	Resource string        // absolute URI; also the access tokens' aud
	Scope    string        // space-separated scopes a token for this resource may carry
	Format   string        // "jwt" (default) or "opaque"
	TTL      time.Duration // access token lifetime (default 300s), whole seconds
	// Audience, if set, is the access tokens' aud instead of Resource: a server that issues
	// tokens for another audience than the one requested, which clients must refuse.
	Audience string
}

// ExchangeTarget is a service the server issues exchanged tokens for: a token exchange request
// must name it, by its Audience, in its audience or resource parameter.
type ExchangeTarget struct {
	// Audience is the exchanged tokens' aud. If it is an absolute URI, it is also an RFC 8707
	// resource for client_credentials (unless Options.Resources has it): a JWT with this aud,
	// the target's scopes and TTL, such as a gateway's own actor token.
	Audience string
	Scope    string        // space-separated scopes an exchanged token may carry (the default)
	TTL      time.Duration // exchanged token lifetime (default 300s), whole seconds
}

// TokenExchange configures RFC 8693 token exchange. An exchanged token is a JWT signed with the
// server's key (typ at+jwt) with iss, sub (the subject token's), aud (the target's Audience),
// client_id (the exchanging client), scope, iat, exp, jti and, given an actor token, act
// {"sub": the actor token's sub}. Its exp is now + the target's TTL, but never later than the
// subject token's exp.
type TokenExchange struct {
	Targets []ExchangeTarget
	// InvalidTokenError is the error code for a subject or actor token that is not a live access
	// token of the server: "invalid_request" (the default, as RFC 8693 section 2.2.2 requires) or
	// "invalid_grant" (as many deployed servers answer).
	InvalidTokenError string
}

// Options configure Start.
type Options struct {
	// IssuerPath, such as "/tenant1", mounts the provider under that path, so that the
	// issuer is http://127.0.0.1:PORT/tenant1.
	IssuerPath string
	Clients    []Client
	Resources  []Resource
	// Scopes are extra scopes the server supports (resource scopes are supported anyway).
	Scopes []string
	// DefaultResource, if set, must be one of Resources: token requests without a resource
	// parameter get a token for it. If empty, such requests get an opaque token with no aud.
	DefaultResource string
	// RegistrationIgnoresScope drops the scope of dynamic client registration requests, so
	// that a registered client may request every scope the server supports. oidc-provider
	// otherwise limits a client to the scopes it registered with, and MCP clients register
	// with their first challenge's scopes: a later step-up to another scope would fail.
	RegistrationIgnoresScope bool
	// DisableRegistration turns dynamic client registration off, as at most companies'
	// identity providers: only the configured Clients exist.
	DisableRegistration bool
	// TokenExchange configures the targets of RFC 8693 token exchange. The grant is supported
	// whether or not it is set; without targets every exchange is refused with invalid_target.
	TokenExchange TokenExchange
	// DPoP configures DPoP at the token endpoint; the zero value keeps the library's default.
	DPoP DPoP
}

// DPoP configures oidc-provider's DPoP feature (RFC 9449). The zero value is the library's
// default in 9.13.3: enabled, proofs signed with ES256, Ed25519 or EdDSA, no nonces, each
// proof's jti usable once. A token request without a DPoP header gets a Bearer token either
// way.
type DPoP struct {
	// Disabled turns the feature off: DPoP headers are ignored and every token is a Bearer
	// token, as from a server that knows nothing of DPoP.
	Disabled bool
	// RequireNonce makes the token endpoint demand a server nonce in every proof (RFC 9449
	// section 8): a proof without one is refused with 400 use_dpop_nonce and a DPoP-Nonce
	// header. TokenDPoP retries once with it.
	RequireNonce bool
}

// Server is a running authorization server.
type Server struct {
	Issuer string // e.g. http://127.0.0.1:PORT or http://127.0.0.1:PORT/tenant1
	Port   int

	http *http.Client

	mu       sync.Mutex
	metadata *Metadata // fetched lazily, once successfully
}

// Metadata is the part of the server's discovery document the helpers use.
type Metadata struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
	RevocationEndpoint    string `json:"revocation_endpoint"`
	RegistrationEndpoint  string `json:"registration_endpoint"`
	JWKSURI               string `json:"jwks_uri"`
}

// ResponseError is a non-success answer from one of the server's endpoints. Code and
// Description are the OAuth error and error_description, when the body had them.
type ResponseError struct {
	Endpoint    string
	StatusCode  int
	Code        string
	Description string
	Body        string
	Header      http.Header // the answer's headers, such as Retry-After
}

func (e *ResponseError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("oidctest: %s: HTTP %d: %s: %s", e.Endpoint, e.StatusCode, e.Code, e.Description)
	}
	return fmt.Sprintf("oidctest: %s: HTTP %d: %s", e.Endpoint, e.StatusCode, e.Body)
}

// config is the AUTHSERVER_CONFIG document read by test/authserver/server.mjs.
type config struct {
	Port            int              `json:"port"`
	IssuerPath      string           `json:"issuerPath,omitempty"`
	Clients         []map[string]any `json:"clients"`
	Resources       []resourceConfig `json:"resources"`
	Scopes          []string         `json:"scopes,omitempty"`
	DefaultResource string           `json:"defaultResource,omitempty"`
	// RegistrationIgnoresScope: see Options.
	RegistrationIgnoresScope bool                 `json:"registrationIgnoresScope,omitempty"`
	DisableRegistration      bool                 `json:"disableRegistration,omitempty"`
	TokenExchange            *tokenExchangeConfig `json:"tokenExchange,omitempty"`
	DPoP                     *dpopConfig          `json:"dpop,omitempty"`
}

type dpopConfig struct {
	Enabled      bool `json:"enabled"`
	RequireNonce bool `json:"requireNonce"`
}

type tokenExchangeConfig struct {
	Targets           []exchangeTargetConfig `json:"targets"`
	InvalidTokenError string                 `json:"invalidTokenError,omitempty"`
}

type exchangeTargetConfig struct {
	Audience string `json:"audience"`
	Scope    string `json:"scope"`
	TTL      int64  `json:"ttl"`
}

type resourceConfig struct {
	Resource       string `json:"resource"`
	Scope          string `json:"scope"`
	Format         string `json:"format"`
	AccessTokenTTL int64  `json:"accessTokenTTL"`
	Audience       string `json:"audience,omitempty"`
}

// Start runs the authorization server configured by o and returns once it listens. The
// server is stopped (SIGTERM, then SIGKILL after 5s) when the test ends; if the test failed,
// its log (stderr) is printed with tb.Logf.
func Start(tb testing.TB, o Options) *Server {
	tb.Helper()

	root, err := testkit.RepoRoot()
	if err != nil {
		tb.Fatalf("oidctest: %v", err)
	}
	dir := filepath.Join(root, "test", "authserver")
	node, err := exec.LookPath("node")
	if err != nil {
		tb.Fatalf("oidctest: node not found in PATH (%v): these tests need Node.js (20.19 or later) "+
			"and the authorization server's packages: install Node.js, then run `npm ci --prefix test/authserver`", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider", "package.json")); err != nil {
		tb.Fatalf("oidctest: %s is missing (%v): run `npm ci --prefix test/authserver` in %s",
			filepath.Join(dir, "node_modules", "oidc-provider"), err, root)
	}

	cfg, err := o.config()
	if err != nil {
		tb.Fatalf("oidctest: %v", err)
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		tb.Fatalf("oidctest: encoding config: %v", err)
	}

	transport := &http.Transport{
		Proxy:               nil, // loopback only; never through an HTTP(S)_PROXY
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
	s := &Server{http: &http.Client{Transport: transport, Timeout: 10 * time.Second}}

	// A start that never prints its ready line is stopped and tried once
	// more: Node has been seen, rarely and only on a loaded machine, to sit
	// blocked (futex wait, no CPU) before its first line for minutes. The
	// log of every attempt is kept.
	var (
		proc     *childproc.Proc
		ready    *readyWriter
		logs     *testkit.LockedBuffer
		previous string
	)
	for attempt := 1; ; attempt++ {
		logs = &testkit.LockedBuffer{}
		ready = &readyWriter{ready: make(chan struct{}), rest: logs}
		proc, err = childproc.Start([]string{node, "server.mjs"}, childproc.Options{
			Dir:    dir,
			Env:    append(os.Environ(), "AUTHSERVER_CONFIG="+string(cfgJSON)),
			Stdout: ready,
			Stderr: logs,
		})
		if err != nil {
			tb.Fatalf("oidctest: starting %s server.mjs: %v", node, err)
		}
		err = childproc.Await(context.Background(), proc, startTimeout/startAttempts, ready.ready)
		if err == nil {
			break
		}
		proc.Stop(stopTimeout)
		if attempt == startAttempts {
			tb.Fatalf("oidctest: authorization server: %v (attempt %d of %d); its log:\n%s%s", err, attempt, startAttempts, previous, logs.String())
		}
		previous += fmt.Sprintf("[attempt %d: %v]\n%s", attempt, err, logs.String())
		tb.Logf("oidctest: authorization server not ready (%v); starting it once more", err)
	}

	logShown := false
	tb.Cleanup(func() {
		proc.Stop(stopTimeout)
		transport.CloseIdleConnections()
		if tb.Failed() && !logShown {
			tb.Logf("oidctest: authorization server %s (pid %d) log:\n%s%s", s.Issuer, proc.PID(), previous, logs.String())
		}
	})
	line := ready.line // written before ready.ready was closed

	var r struct {
		Ready  bool   `json:"ready"`
		Issuer string `json:"issuer"`
		Port   int    `json:"port"`
	}
	if err := json.Unmarshal([]byte(line), &r); err != nil || !r.Ready || r.Issuer == "" || r.Port == 0 {
		logShown = true
		tb.Fatalf("oidctest: unexpected ready line %q (%v); log:\n%s", line, err, logs.String())
	}
	s.Issuer, s.Port = r.Issuer, r.Port
	return s
}

// config builds the server's configuration document.
func (o Options) config() (config, error) {
	cfg := config{
		IssuerPath:      o.IssuerPath,
		Clients:         []map[string]any{},
		Resources:       []resourceConfig{},
		Scopes:          o.Scopes,
		DefaultResource: o.DefaultResource,

		RegistrationIgnoresScope: o.RegistrationIgnoresScope,
		DisableRegistration:      o.DisableRegistration,
	}
	for _, r := range o.Resources {
		if r.Resource == "" {
			return config{}, errors.New("a Resource has no Resource URI")
		}
		format := r.Format
		if format == "" {
			format = "jwt"
		}
		cfg.Resources = append(cfg.Resources, resourceConfig{
			Resource:       r.Resource,
			Scope:          r.Scope,
			Format:         format,
			AccessTokenTTL: wholeSeconds(r.TTL),
			Audience:       r.Audience,
		})
	}
	if te := o.TokenExchange; len(te.Targets) > 0 || te.InvalidTokenError != "" {
		cfg.TokenExchange = &tokenExchangeConfig{
			Targets:           []exchangeTargetConfig{},
			InvalidTokenError: te.InvalidTokenError,
		}
		for _, t := range te.Targets {
			if t.Audience == "" {
				return config{}, errors.New("an ExchangeTarget has no Audience")
			}
			cfg.TokenExchange.Targets = append(cfg.TokenExchange.Targets, exchangeTargetConfig{
				Audience: t.Audience,
				Scope:    t.Scope,
				TTL:      wholeSeconds(t.TTL),
			})
		}
	}
	if o.DPoP != (DPoP{}) {
		if o.DPoP.Disabled && o.DPoP.RequireNonce {
			return config{}, errors.New("DPoP: RequireNonce with Disabled")
		}
		cfg.DPoP = &dpopConfig{Enabled: !o.DPoP.Disabled, RequireNonce: o.DPoP.RequireNonce}
	}
	for _, c := range o.Clients {
		if c.ID == "" {
			return config{}, errors.New("a Client has no ID")
		}
		cfg.Clients = append(cfg.Clients, c.metadata())
	}
	return cfg, nil
}

// wholeSeconds is a token lifetime as the server's config has it: whole seconds, rounded up,
// defaultTTL if d is not positive.
func wholeSeconds(d time.Duration) int64 {
	if d <= 0 {
		d = defaultTTL
	}
	return int64(math.Ceil(d.Seconds()))
}

// authMethod is c's token_endpoint_auth_method, defaults applied.
func (c Client) authMethod() string {
	switch {
	case c.AuthMethod != "":
		return c.AuthMethod
	case c.Secret != "":
		return "client_secret_basic"
	case len(c.JWKS) > 0:
		return "private_key_jwt"
	default:
		return "none"
	}
}

// metadata is c as oidc-provider client metadata.
func (c Client) metadata() map[string]any {
	grants := c.GrantTypes
	if len(grants) == 0 {
		grants = []string{"client_credentials"}
	}
	// Response types follow the grants: a client_credentials-only client has none, and so
	// needs no redirect_uris.
	responseTypes := []string{}
	if slices.Contains(grants, "authorization_code") {
		responseTypes = append(responseTypes, "code")
	}
	if slices.Contains(grants, "implicit") {
		responseTypes = append(responseTypes, "id_token")
	}
	redirects := c.RedirectURIs
	if redirects == nil {
		redirects = []string{}
	}
	m := map[string]any{
		"client_id":                  c.ID,
		"token_endpoint_auth_method": c.authMethod(),
		"grant_types":                grants,
		"response_types":             responseTypes,
		"redirect_uris":              redirects,
	}
	if c.Secret != "" {
		m["client_secret"] = c.Secret
	}
	if c.Scope != "" {
		m["scope"] = c.Scope
	}
	if len(c.JWKS) > 0 {
		m["jwks"] = c.JWKS
	}
	return m
}

// Metadata returns the server's discovery document (fetched from
// Issuer/.well-known/openid-configuration on first use).
func (s *Server) Metadata(ctx context.Context) (Metadata, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.metadata != nil {
		return *s.metadata, nil
	}
	u := s.Issuer + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Metadata{}, err
	}
	req.Header.Set("Accept", "application/json")
	body, err := s.do(req, "discovery")
	if err != nil {
		return Metadata{}, err
	}
	var m Metadata
	if err := json.Unmarshal(body, &m); err != nil {
		return Metadata{}, fmt.Errorf("oidctest: decoding %s: %w", u, err)
	}
	if m.Issuer != s.Issuer {
		return Metadata{}, fmt.Errorf("oidctest: %s: issuer %q, want %q", u, m.Issuer, s.Issuer)
	}
	s.metadata = &m
	return m, nil
}

// ClientCredentials obtains an access token for resource (omitted if empty) and scope
// (omitted if empty) with the client_credentials grant, authenticating as c with
// client_secret_basic (client_secret_post or none if that is c's AuthMethod), and returns the
// access_token. A refusal is a *ResponseError.
func (s *Server) ClientCredentials(ctx context.Context, c Client, resource, scope string) (string, error) {
	m, err := s.Metadata(ctx)
	if err != nil {
		return "", err
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if resource != "" {
		form.Set("resource", resource)
	}
	if scope != "" {
		form.Set("scope", scope)
	}
	body, err := s.post(ctx, "token", m.TokenEndpoint, c, form)
	if err != nil {
		return "", err
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return "", fmt.Errorf("oidctest: decoding token response: %w", err)
	}
	if tr.AccessToken == "" {
		return "", fmt.Errorf("oidctest: token response without access_token: %s", body)
	}
	return tr.AccessToken, nil
}

// Revoke revokes token (RFC 7009), authenticating as c with client_secret_basic. Revoking an
// unknown token succeeds; a JWT access token is refused (unsupported_token_type).
func (s *Server) Revoke(ctx context.Context, c Client, token string) error {
	m, err := s.Metadata(ctx)
	if err != nil {
		return err
	}
	if m.RevocationEndpoint == "" {
		return errors.New("oidctest: the server advertises no revocation_endpoint")
	}
	_, err = s.post(ctx, "revocation", m.RevocationEndpoint, c, url.Values{"token": {token}})
	return err
}

// Introspect calls the introspection endpoint (RFC 7662) as c with client_secret_basic and
// returns the response object. A JWT access token is refused (a *ResponseError with Code
// unsupported_token_type).
func (s *Server) Introspect(ctx context.Context, c Client, token string) (map[string]any, error) {
	m, err := s.Metadata(ctx)
	if err != nil {
		return nil, err
	}
	if m.IntrospectionEndpoint == "" {
		return nil, errors.New("oidctest: the server advertises no introspection_endpoint")
	}
	body, err := s.post(ctx, "introspection", m.IntrospectionEndpoint, c, url.Values{"token": {token}})
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("oidctest: decoding introspection response: %w", err)
	}
	return out, nil
}

// Exchange performs an RFC 8693 token exchange as c (authenticated like ClientCredentials) of
// subjectToken and returns the response object. form carries the other parameters (audience,
// resource, scope, actor_token, actor_token_type, requested_token_type…); subject_token_type
// defaults to TokenTypeAccessToken, and a subject_token_type in form wins (an empty one is
// sent empty). form is not modified. A refusal is a *ResponseError.
func (s *Server) Exchange(ctx context.Context, c Client, subjectToken string, form url.Values) (map[string]any, error) {
	m, err := s.Metadata(ctx)
	if err != nil {
		return nil, err
	}
	f := url.Values{}
	for k, v := range form {
		f[k] = slices.Clone(v)
	}
	f.Set("grant_type", GrantTokenExchange)
	f.Set("subject_token", subjectToken)
	if _, ok := f["subject_token_type"]; !ok {
		f.Set("subject_token_type", TokenTypeAccessToken)
	}
	body, err := s.post(ctx, "token", m.TokenEndpoint, c, f)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("oidctest: decoding token exchange response: %w", err)
	}
	return out, nil
}

// Exchanges returns how many token exchange requests the server has received, whatever their
// outcome (refused client authentication and answers forced by SetExchangeBehaviour count too).
func (s *Server) Exchanges(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.origin()+"/_test/exchanges", nil)
	if err != nil {
		return 0, err
	}
	body, err := s.do(req, "exchanges")
	if err != nil {
		return 0, err
	}
	var r struct {
		Count *int `json:"count"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Count == nil {
		return 0, fmt.Errorf("oidctest: exchanges: unexpected answer %s (%v)", body, err)
	}
	return *r.Count, nil
}

// ExchangeBehaviour is how the server answers the token exchange requests it receives from now
// on, once their client has been authenticated. The zero value is normal service.
type ExchangeBehaviour struct {
	// Status, if set (400 to 599), is the HTTP status of every answer, with an OAuth error body
	// and no token.
	Status int
	// Error is the answers' OAuth error code with Status; the default is temporarily_unavailable
	// for 503, server_error for other 5xx and invalid_request for 4xx.
	Error string
	// RetryAfter, if positive, is sent (in whole seconds, rounded up) as Retry-After with Status.
	RetryAfter time.Duration
	// Delay, if positive, is how long the server waits before answering (rounded up to a
	// millisecond), with or without Status.
	Delay time.Duration
}

// SetExchangeBehaviour changes how the server answers the following token exchange requests,
// until the next call; SetExchangeBehaviour(ctx, ExchangeBehaviour{}) restores normal service.
// Exchanges already waiting for their Delay are not affected.
func (s *Server) SetExchangeBehaviour(ctx context.Context, b ExchangeBehaviour) error {
	doc := map[string]any{"mode": "ok"}
	switch {
	case b.Status != 0:
		doc["mode"] = "status"
		doc["status"] = b.Status
		if b.Error != "" {
			doc["error"] = b.Error
		}
		if b.RetryAfter > 0 {
			doc["retryAfter"] = int64(math.Ceil(b.RetryAfter.Seconds()))
		}
	case b.Error != "" || b.RetryAfter != 0:
		return errors.New("oidctest: ExchangeBehaviour: Error and RetryAfter need a Status")
	case b.Delay > 0:
		doc["mode"] = "slow"
	}
	if b.Delay > 0 {
		doc["delayMs"] = (b.Delay + time.Millisecond - 1).Milliseconds()
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.origin()+"/_test/exchange-behaviour", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	_, err = s.do(req, "exchange-behaviour")
	return err
}

// origin is the server's scheme, host and port: where the test controls are, whatever the
// issuer's path.
func (s *Server) origin() string {
	return fmt.Sprintf("http://127.0.0.1:%d", s.Port)
}

// post sends a form to an endpoint with c's client authentication.
func (s *Server) post(ctx context.Context, name, endpoint string, c Client, form url.Values) ([]byte, error) {
	req, err := newPost(ctx, endpoint, c, form)
	if err != nil {
		return nil, err
	}
	return s.do(req, name)
}

// newPost is the request that sends a form to an endpoint with c's client authentication.
func newPost(ctx context.Context, endpoint string, c Client, form url.Values) (*http.Request, error) {
	method := c.authMethod()
	switch method {
	case "none", "client_secret_post":
		form.Set("client_id", c.ID)
		if method == "client_secret_post" {
			form.Set("client_secret", c.Secret)
		}
	case "client_secret_basic":
	default:
		return nil, fmt.Errorf("oidctest: client %q: auth method %q is not supported by this helper", c.ID, method)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if method == "client_secret_basic" {
		// RFC 6749 section 2.3.1: both parts form-urlencoded before base64.
		req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	}
	return req, nil
}

// do sends req and returns the body of a 200 answer; anything else is a *ResponseError.
func (s *Server) do(req *http.Request, name string) ([]byte, error) {
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("oidctest: %s: %w", name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("oidctest: %s: reading body: %w", name, err)
	}
	if resp.StatusCode != http.StatusOK {
		e := &ResponseError{Endpoint: name, StatusCode: resp.StatusCode, Body: string(body), Header: resp.Header}
		var oe struct {
			Error            string `json:"error"`
			ErrorDescription string `json:"error_description"`
		}
		if json.Unmarshal(body, &oe) == nil {
			e.Code, e.Description = oe.Error, oe.ErrorDescription
		}
		return nil, e
	}
	return body, nil
}

// readyWriter receives the server's stdout: the first line (the ready line) is stored in line
// and ready closed; anything after it goes to rest.
type readyWriter struct {
	ready chan struct{}
	line  string
	rest  io.Writer
	buf   []byte
	sent  bool
}

func (w *readyWriter) Write(p []byte) (int, error) {
	if w.sent {
		return w.rest.Write(p)
	}
	w.buf = append(w.buf, p...)
	i := bytes.IndexByte(w.buf, '\n')
	if i < 0 {
		return len(p), nil
	}
	w.sent = true
	w.line = string(bytes.TrimSpace(w.buf[:i]))
	close(w.ready)
	if tail := w.buf[i+1:]; len(tail) > 0 {
		_, _ = w.rest.Write(tail)
	}
	w.buf = nil
	return len(p), nil
}
