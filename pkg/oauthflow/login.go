package oauthflow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/extauthz/extauthz/pkg/introspect"
	"github.com/extauthz/extauthz/pkg/token"
)

// clientAuth is how the gateway authenticates as c at the server's token
// and revocation endpoints (private_key_jwt assertions for its issuer).
func (c *Client) clientAuth() introspect.ClientAuth {
	return introspect.ClientAuth{Method: c.AuthMethod, ClientID: c.ClientID, ClientSecret: c.ClientSecret, Signer: c.Signer, Audience: c.Issuer}
}

// Defaults of [Options].
const (
	defaultLoginPath       = "/oauth/login"
	defaultCallbackPath    = "/oauth/callback"
	defaultLogoutPath      = "/oauth/logout"
	defaultCookieName      = "__Host-extauthz-session"
	devCookieName          = "extauthz-session" // plain-http loopback PublicURL
	defaultSessionTTL      = 8 * time.Hour
	defaultStateTTL        = 10 * time.Minute
	defaultSuccessRedirect = "/"
	defaultHTTPTimeout     = 10 * time.Second
)

// errNoSession: the request carries no valid session for the resource (no cookie, an unknown,
// expired, tampered with or ended session, or a refresh the authorization server refused).
// [Handler.AccessToken] answers it as found false.
var errNoSession = errors.New("login: no valid session")

// Client is the gateway's confidential client at one authorization server, for one protected
// resource.
type Client struct {
	// Resource is the protected resource's name (the session records it); it must equal the
	// client's key in Options.Clients, and is set from it when empty.
	Resource string
	// ResourceURI is the resource's canonical URI, sent as the RFC 8707 resource parameter on
	// authorization, token and refresh requests; a returned access token's aud must include it.
	ResourceURI string
	// Issuer is the authorization server's issuer identifier (RFC 9207 iss, assertion aud).
	Issuer string
	// Metadata returns the server's metadata (endpoints etc.), cached by the caller.
	Metadata func(ctx context.Context) (*Metadata, error)
	// ClientID is the gateway's client id at the server.
	ClientID string
	// AuthMethod is "client_secret_basic" (default), "client_secret_post" or
	// "private_key_jwt".
	AuthMethod string
	// ClientSecret is for the client_secret_* methods.
	ClientSecret string
	// Signer makes the private_key_jwt client assertions (aud = Issuer).
	Signer *introspect.AssertionSigner
	// Scopes are requested at sign-in; "openid" adds a nonce.
	Scopes []string
	// Trusted are the issuers the resource trusts, passed to the Verifier (default: Issuer).
	Trusted map[string]struct{}
	// AudienceScope, when set, names the audience as a scope instead of the RFC 8707
	// resource parameter, which is then not sent: for servers without resource indicators,
	// such as Microsoft Entra ID ("api://…/.default"). The returned access token's aud must
	// still include ResourceURI (set it to the audience such tokens carry).
	AudienceScope string
}

// Metadata is what the flow needs from RFC 8414 / OIDC metadata.
type Metadata struct {
	Issuer, AuthorizationEndpoint, TokenEndpoint, RevocationEndpoint string
	CodeChallengeMethodsSupported                                    []string
	AuthorizationResponseIssParameterSupported                       bool
}

// Options configures [New].
type Options struct {
	// Clients are the login clients, by resource name. Resources without one cannot sign in.
	Clients map[string]*Client
	// Route says which resource a return path belongs to (the gateway's router). host is
	// PublicURL's host (or the Host given to LoginURL), possibly with a port; path is rd's path,
	// without query or fragment, as sent (not decoded).
	Route func(host, path string) (resource string, ok bool)
	// Sessions seals login states, and keeps sessions, markers of used states and refresh
	// locks.
	Sessions *Store
	// Verifier verifies returned access tokens exactly as a Check does; the audience is then
	// checked here (the token's aud must include the client's ResourceURI).
	Verifier token.Verifier
	// PublicURL is scheme://host[:port] of the gateway as browsers see it; redirect_uri is
	// PublicURL + CallbackPath. https, or http on a loopback host for development.
	PublicURL string
	// LoginPath, CallbackPath, LogoutPath default to /oauth/login, /oauth/callback and
	// /oauth/logout.
	LoginPath, CallbackPath, LogoutPath string
	// CookieName defaults to "__Host-extauthz-session", or "extauthz-session" when PublicURL is
	// plain http on loopback (where cookies are not Secure, which the __Host- prefix needs). On
	// https it must start with "__Host-".
	CookieName string
	// SessionTTL caps a session's life (default 8h).
	SessionTTL time.Duration
	// StateTTL bounds a sign-in at the authorization server (default 10m).
	StateTTL time.Duration
	// SuccessRedirect is where a sign-in without rd, and a sign-out, end (default "/"); a
	// same-origin path, checked like rd.
	SuccessRedirect string
	// ErrorPage, when set, is a same-origin path that failed sign-ins are sent to (303, with
	// error and error_description in the query) instead of the built-in error page.
	ErrorPage string
	// HTTPClient makes the token and revocation calls (default: 10s timeout). It is copied and
	// never follows redirects.
	HTTPClient *http.Client
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Logger receives one record per login, login failure, refresh, refresh failure and
	// logout (nil: discard).
	Logger *slog.Logger
	// OnEvent, when set, is told of each of those events for metrics: login, login_failed,
	// refresh, refresh_failed, logout, logout_failed. It must be quick.
	OnEvent func(event string)
}

// Handler serves LoginPath, CallbackPath and LogoutPath, and resolves session cookies for the
// Check. It is safe for concurrent use.
type Handler struct {
	clients  map[string]*Client
	route    func(host, path string) (string, bool)
	store    *Store
	verifier token.Verifier

	publicURL   string // no trailing slash
	publicHost  string // as in PublicURL (Route's host)
	hostKey     string // normalized host:port, for comparing Host headers
	scheme      string
	redirectURI string

	loginPath, callbackPath, logoutPath string

	cookieName  string
	statePrefix string // binding cookies: cookieName + "-state-"
	secure      bool

	sessionTTL, stateTTL time.Duration
	successRedirect      string
	errorPage            string

	http *http.Client
	now  func() time.Time
	log  *slog.Logger
	// onEvent counts flow events (never nil).
	onEvent func(event string)
	// facade is the OAuth facade whose upstream sign-ins this handler completes, once
	// NewFacade attached it; nil before.
	facade atomic.Pointer[Facade]
}

// New checks o and builds a Handler.
func New(o Options) (*Handler, error) {
	if o.Sessions == nil {
		return nil, errors.New("login: no session store")
	}
	if o.Verifier == nil {
		return nil, errors.New("login: no verifier")
	}
	if o.Route == nil {
		return nil, errors.New("login: no router")
	}
	h := &Handler{
		clients:  make(map[string]*Client, len(o.Clients)),
		route:    o.Route,
		store:    o.Sessions,
		verifier: o.Verifier,
		now:      o.Now,
		log:      o.Logger,
		onEvent:  o.OnEvent,
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.onEvent == nil {
		h.onEvent = func(string) {}
	}

	u, err := url.Parse(o.PublicURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("login: public URL %q must be scheme://host[:port] (http or https), without path or query", o.PublicURL)
	}
	loopback := isLoopback(u.Hostname())
	if u.Scheme == "http" && !loopback {
		return nil, fmt.Errorf("login: public URL %q must be https (plain http only on a loopback host)", o.PublicURL)
	}
	h.scheme = u.Scheme
	h.publicHost = u.Host
	h.hostKey = normalizeHost(u.Host, u.Scheme)
	h.publicURL = u.Scheme + "://" + u.Host
	h.secure = u.Scheme == "https"

	h.loginPath = orDefault(o.LoginPath, defaultLoginPath)
	h.callbackPath = orDefault(o.CallbackPath, defaultCallbackPath)
	h.logoutPath = orDefault(o.LogoutPath, defaultLogoutPath)
	for _, p := range []string{h.loginPath, h.callbackPath, h.logoutPath} {
		if !validReturnPath(p) || strings.ContainsAny(p, "?#%") {
			return nil, fmt.Errorf("login: endpoint path %q must be a plain absolute path", p)
		}
	}
	if h.loginPath == h.callbackPath || h.loginPath == h.logoutPath || h.callbackPath == h.logoutPath {
		return nil, errors.New("login: the login, callback and logout paths must differ")
	}
	h.redirectURI = h.publicURL + h.callbackPath

	h.cookieName = o.CookieName
	if h.cookieName == "" {
		h.cookieName = defaultCookieName
		if !h.secure {
			h.cookieName = devCookieName
		}
	}
	if !validCookieName(h.cookieName) {
		return nil, fmt.Errorf("login: cookie name %q is not a valid cookie name", h.cookieName)
	}
	if !h.secure && (hasPrefixFold(h.cookieName, "__Host-") || hasPrefixFold(h.cookieName, "__Secure-")) {
		return nil, fmt.Errorf("login: cookie name %q needs Secure cookies, which plain http cannot set", h.cookieName)
	}
	if h.secure && !strings.HasPrefix(h.cookieName, "__Host-") {
		return nil, fmt.Errorf("login: cookie name %q must start with __Host- on https (see Options.CookieName)", h.cookieName)
	}
	h.statePrefix = h.cookieName + "-state-"

	h.sessionTTL = o.SessionTTL
	if h.sessionTTL == 0 {
		h.sessionTTL = defaultSessionTTL
	}
	h.stateTTL = o.StateTTL
	if h.stateTTL == 0 {
		h.stateTTL = defaultStateTTL
	}
	if h.sessionTTL < time.Second || h.stateTTL < time.Second {
		return nil, errors.New("login: session and state lifetimes must be at least 1s")
	}
	h.successRedirect = orDefault(o.SuccessRedirect, defaultSuccessRedirect)
	if !validReturnPath(h.successRedirect) {
		return nil, fmt.Errorf("login: success redirect %q is not a same-origin path", h.successRedirect)
	}
	if h.errorPage = o.ErrorPage; h.errorPage != "" && !validReturnPath(h.errorPage) {
		return nil, fmt.Errorf("login: error page %q is not a same-origin path", h.errorPage)
	}

	if o.HTTPClient != nil {
		c := *o.HTTPClient
		h.http = &c
	} else {
		h.http = &http.Client{Timeout: defaultHTTPTimeout}
	}
	h.http.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	for name, c := range o.Clients {
		if c == nil {
			return nil, fmt.Errorf("login: resource %q: nil client", name)
		}
		cc := *c
		if err := cc.check(name); err != nil {
			return nil, fmt.Errorf("login: resource %q: %w", name, err)
		}
		h.clients[name] = &cc
	}
	return h, nil
}

// check validates a client and applies its defaults.
func (c *Client) check(name string) error {
	if c.Resource == "" {
		c.Resource = name
	}
	switch {
	case c.Resource != name:
		return fmt.Errorf("client is for resource %q", c.Resource)
	case c.ResourceURI == "":
		return errors.New("no resource URI")
	case c.Issuer == "":
		return errors.New("no issuer")
	case c.Metadata == nil:
		return errors.New("no metadata source")
	case c.ClientID == "":
		return errors.New("no client id")
	}
	if c.AuthMethod == "" {
		c.AuthMethod = introspect.ClientSecretBasic
	}
	if err := c.clientAuth().Validate(); err != nil {
		return err
	}
	for _, s := range c.Scopes {
		if s == "" || strings.ContainsAny(s, " \"\\") {
			return fmt.Errorf("invalid scope %q", s)
		}
	}
	if c.AudienceScope != "" && !validScopeToken(c.AudienceScope) {
		return fmt.Errorf("invalid audience scope %q", c.AudienceScope)
	}
	if len(c.Trusted) == 0 {
		c.Trusted = map[string]struct{}{c.Issuer: {}}
	}
	c.Scopes = append([]string(nil), c.Scopes...)
	return nil
}

// ServeHTTP serves LoginPath, CallbackPath (GET) and LogoutPath (GET and POST); anything else
// is 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("Referrer-Policy", "no-referrer")
	switch r.URL.Path {
	case h.loginPath:
		if !allowMethod(w, r, http.MethodGet) {
			return
		}
		h.serveLogin(w, r)
	case h.callbackPath:
		if !allowMethod(w, r, http.MethodGet) {
			return
		}
		h.serveCallback(w, r)
	case h.logoutPath:
		if !allowMethod(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		h.serveLogout(w, r)
	default:
		h.page(w, http.StatusNotFound, "Not found", "There is nothing here.", "")
	}
}

func allowMethod(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// isLoopback reports whether host (no port) is localhost or a loopback address.
func isLoopback(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// normalizeHost lower-cases an authority and makes its port explicit (the scheme's default
// when absent), so that "Example.com" and "example.com:443" compare equal for https.
func normalizeHost(authority, scheme string) string {
	host, port, err := net.SplitHostPort(authority)
	if err != nil {
		host, port = strings.Trim(authority, "[]"), ""
	}
	if port == "" {
		port = "443"
		if scheme == "http" {
			port = "80"
		}
	}
	return net.JoinHostPort(strings.TrimSuffix(strings.ToLower(host), "."), port)
}

// validCookieName reports whether name is an RFC 6265 token.
func validCookieName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= 0x20 || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}
