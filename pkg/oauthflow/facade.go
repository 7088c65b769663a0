package oauthflow

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// FacadeConsentPath is the consent page's path under the facade's issuer.
const FacadeConsentPath = "/consent"

// Defaults of [FacadeOptions].
const (
	DefaultConsentTTL = 30 * 24 * time.Hour
)

// maxClientState bounds the state parameter an MCP client sends to the authorize endpoint:
// it travels sealed in a cookie with the rest of the request.
const maxClientState = 512

// FacadeResource is one protected resource whose clients the facade authorizes.
type FacadeResource struct {
	// Name is the resource's name in the configuration.
	Name string
	// URI is its canonical URI: the resource parameter clients must send (RFC 8707) and the
	// audience of the access tokens the facade mints for it.
	URI string
	// ScopesSupported are the scopes a client may be granted for it.
	ScopesSupported []string
	// DefaultScopes are granted when a request names none (the resource's required scopes);
	// each must be in ScopesSupported.
	DefaultScopes []string
	// Upstream is the gateway's own client at the provider users sign in with. Its Resource
	// is set to Name; its ResourceURI is the audience the provider's access tokens carry
	// (often URI itself, with RFC 8707), checked like a browser sign-in's.
	Upstream *Client
	// TokenTTL shortens the access tokens of this resource below the signer's lifetime; 0:
	// the signer's.
	TokenTTL time.Duration
}

// facadeResource is a checked FacadeResource.
type facadeResource struct {
	name, uri        string
	scopes, defaults []string
	upstream         *Client
	tokenTTL         time.Duration
}

// FacadeOptions configures [NewFacade].
type FacadeOptions struct {
	// Login is the browser sign-in whose provider clients, login states and callback the
	// facade's upstream leg uses; required. NewFacade attaches the facade to it: a handler
	// serves at most one facade, and must not serve requests before NewFacade returns.
	Login *Handler
	// Issuer is the facade's issuer, on Login's public URL (default [FacadeIssuer] of it).
	Issuer string
	// Resources are the resources the facade authorizes clients for; at least one.
	Resources []FacadeResource
	// Store keeps clients, codes, refresh families, pending consents and remembered ones.
	Store *FacadeStore
	// Clients resolves client_ids (registered clients, metadata documents).
	Clients *ClientResolver
	// Signer mints the access tokens and publishes their keys.
	Signer *TokenSigner
	// Metadata and Registration, when set, are served at their paths; the key set is served
	// at the issuer's FacadeJWKSPath.
	Metadata     *FacadeMetadata
	Registration *Registration
	// ConsentTTL is how long a user's consent to a client is remembered (default 30 days).
	ConsentTTL time.Duration
	// CodeTTL is an authorization code's lifetime (default and at most MaxCodeTTL).
	CodeTTL time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Logger receives one record per authorization, consent, token and revocation outcome
	// (nil: discard).
	Logger *slog.Logger
	// OnEvent, when set, is told of each outcome for metrics (bounded event names). It must
	// be quick.
	OnEvent func(event string)
	// RevokeAccessToken, when set, revokes one of the facade's access tokens wherever the
	// gateway would accept it (the engine's revocation by the token's hash); an error means
	// it may still be accepted somewhere, and the client is told to retry. Nil: access tokens
	// are refused at the revocation endpoint with unsupported_token_type.
	RevokeAccessToken func(ctx context.Context, token string) error
}

// Facade is the OAuth facade's authorization server: it serves the authorize, consent,
// token and revocation endpoints (and the metadata, registration and key set given to it)
// under its issuer, and completes its upstream sign-ins at the login handler's callback. It
// is safe for concurrent use.
type Facade struct {
	h      *Handler
	issuer string

	authorizePath, consentPath, tokenPath, revokePath, registerPath, jwksPath string

	byURI  map[string]*facadeResource
	byName map[string]*facadeResource

	store    *FacadeStore
	clients  *ClientResolver
	signer   *TokenSigner
	metadata *FacadeMetadata
	register *Registration

	consentTTL, codeTTL time.Duration
	consentCookie       string

	now         func() time.Time
	log         *slog.Logger
	onEvent     func(string)
	revokeToken func(context.Context, string) error
}

// NewFacade checks o, builds the facade and attaches it to o.Login.
func NewFacade(o FacadeOptions) (*Facade, error) {
	switch {
	case o.Login == nil:
		return nil, errors.New("facade: no login handler")
	case o.Store == nil:
		return nil, errors.New("facade: no store")
	case o.Clients == nil:
		return nil, errors.New("facade: no client resolver")
	case o.Signer == nil:
		return nil, errors.New("facade: no token signer")
	case len(o.Resources) == 0:
		return nil, errors.New("facade: no resources")
	case o.CodeTTL < 0 || o.CodeTTL > MaxCodeTTL:
		return nil, fmt.Errorf("facade: code lifetime outside (0, %v]", MaxCodeTTL)
	case o.ConsentTTL < 0:
		return nil, errors.New("facade: negative consent lifetime")
	}
	h := o.Login
	f := &Facade{
		h: h, store: o.Store, clients: o.Clients, signer: o.Signer, metadata: o.Metadata, register: o.Registration,
		consentTTL: cmp.Or(o.ConsentTTL, DefaultConsentTTL), codeTTL: cmp.Or(o.CodeTTL, MaxCodeTTL),
		consentCookie: h.cookieName + "-consent",
		now:           o.Now, log: o.Logger, onEvent: o.OnEvent, revokeToken: o.RevokeAccessToken,
		byURI: map[string]*facadeResource{}, byName: map[string]*facadeResource{},
	}
	if f.now == nil {
		f.now = h.now
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.onEvent == nil {
		f.onEvent = func(string) {}
	}
	f.issuer = o.Issuer
	if f.issuer == "" {
		iss, err := FacadeIssuer(h.publicURL)
		if err != nil {
			return nil, err
		}
		f.issuer = iss
	}
	if err := checkIssuer(f.issuer); err != nil {
		return nil, err
	}
	// The consent page and the callback set and read the gateway's cookies: the facade must
	// live on the login's origin.
	if !strings.HasPrefix(f.issuer, h.publicURL+"/") {
		return nil, fmt.Errorf("facade: issuer %q is not under the public URL %q", f.issuer, h.publicURL)
	}
	base := strings.TrimPrefix(f.issuer, h.publicURL)
	f.authorizePath, f.consentPath, f.tokenPath = base+FacadeAuthorizePath, base+FacadeConsentPath, base+FacadeTokenPath
	f.revokePath, f.registerPath, f.jwksPath = base+FacadeRevokePath, base+FacadeRegisterPath, base+FacadeJWKSPath
	for _, p := range []string{f.authorizePath, f.consentPath, f.tokenPath, f.revokePath, f.registerPath, f.jwksPath} {
		if p == h.loginPath || p == h.callbackPath || p == h.logoutPath {
			return nil, fmt.Errorf("facade: endpoint %s is also a login path", p)
		}
	}
	if o.Metadata != nil && o.Metadata.Document().Issuer != f.issuer {
		return nil, errors.New("facade: the metadata is for another issuer")
	}
	for i, r := range o.Resources {
		if err := f.addResource(r); err != nil {
			return nil, fmt.Errorf("facade: resource %d (%q): %w", i, r.Name, err)
		}
	}
	if !h.facade.CompareAndSwap(nil, f) {
		return nil, errors.New("facade: the login handler serves another facade already")
	}
	return f, nil
}

func (f *Facade) addResource(r FacadeResource) error {
	u, err := url.Parse(r.URI)
	switch {
	case r.Name == "":
		return errors.New("no name")
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "":
		return fmt.Errorf("URI %q is not an absolute http(s) URI without fragment", r.URI)
	case f.byName[r.Name] != nil || f.byURI[r.URI] != nil:
		return errors.New("listed twice")
	case r.Upstream == nil:
		return errors.New("no upstream client")
	case r.TokenTTL < 0:
		return errors.New("negative token lifetime")
	}
	for _, s := range r.ScopesSupported {
		if !validScopeToken(s) {
			return fmt.Errorf("invalid scope %q", s)
		}
	}
	for _, s := range r.DefaultScopes {
		if !slices.Contains(r.ScopesSupported, s) {
			return fmt.Errorf("default scope %q is not supported", s)
		}
	}
	up := *r.Upstream
	if err := up.check(r.Name); err != nil {
		return fmt.Errorf("upstream client: %w", err)
	}
	res := &facadeResource{
		name: r.Name, uri: r.URI, upstream: &up, tokenTTL: r.TokenTTL,
		scopes: slices.Clone(r.ScopesSupported), defaults: slices.Clone(r.DefaultScopes),
	}
	f.byName[r.Name], f.byURI[r.URI] = res, res
	return nil
}

// Issuer is the facade's issuer identifier.
func (f *Facade) Issuer() string { return f.issuer }

// Paths are the paths the facade serves, for the listener's router: its endpoints, and the
// metadata's when it has one.
func (f *Facade) Paths() []string {
	p := []string{f.authorizePath, f.consentPath, f.tokenPath, f.revokePath, f.jwksPath}
	if f.register != nil {
		p = append(p, f.registerPath)
	}
	if f.metadata != nil {
		p = append(p, f.metadata.Path())
	}
	return p
}

// ServeHTTP serves the facade's paths; anything else is 404.
func (f *Facade) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case f.jwksPath:
		f.signer.ServeHTTP(w, r)
		return
	case f.registerPath:
		if f.register != nil {
			f.register.ServeHTTP(w, r)
			return
		}
	case f.tokenPath:
		f.serveToken(w, r)
		return
	case f.revokePath:
		f.serveRevoke(w, r)
		return
	}
	if f.metadata != nil && r.URL.Path == f.metadata.Path() {
		f.metadata.ServeHTTP(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	switch r.URL.Path {
	case f.authorizePath:
		if !allowMethod(w, r, http.MethodGet) {
			return
		}
		f.serveAuthorize(w, r)
	case f.consentPath:
		if !allowMethod(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		f.serveConsent(w, r)
	default:
		f.h.page(w, http.StatusNotFound, "Not found", "There is nothing here.", "")
	}
}
