package oauthflow

import (
	"context"
	"errors"
	"html"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/extauthz/extauthz/pkg/token"
)

// FacadeRequest is an MCP client's authorization request to the facade, as the authorize
// endpoint accepted it: it travels sealed in the login state of the upstream sign-in, bound
// to the browser, until the callback answers the client.
type FacadeRequest struct {
	ClientID      string
	RedirectURI   string
	CodeChallenge string // S256
	State         string // the client's, echoed back; "" when none
	Resource      string // the facade resource's name
	Scopes        []string
}

// facadeRequestRecord is a FacadeRequest under short JSON names.
type facadeRequestRecord struct {
	ClientID      string   `json:"cid"`
	RedirectURI   string   `json:"ru"`
	CodeChallenge string   `json:"cc"`
	State         string   `json:"st,omitempty"`
	Resource      string   `json:"res"`
	Scopes        []string `json:"scp,omitempty"`
}

func (q *FacadeRequest) record() *facadeRequestRecord {
	if q == nil {
		return nil
	}
	r := facadeRequestRecord(*q)
	r.Scopes = slices.Clone(q.Scopes)
	return &r
}

func (r *facadeRequestRecord) request() *FacadeRequest {
	if r == nil {
		return nil
	}
	q := FacadeRequest(*r)
	return &q
}

// serveAuthorize is the authorization endpoint (RFC 6749 §4.1.1 with RFC 7636 PKCE and RFC
// 8707 resource indicators): GET <issuer>/authorize.
//
// Until the client and its redirect URI are known good, a fault is shown to the user on an
// error page and never redirected (RFC 6749 §4.1.2.1: an unchecked redirect URI would make
// the gateway an open redirector). After, faults go back to the client's redirect URI with
// the client's state and the facade's iss (RFC 9207).
func (f *Facade) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	for _, p := range []string{"client_id", "redirect_uri"} {
		if len(q[p]) > 1 {
			f.authorizePage(ctx, w, http.StatusBadRequest, "The request repeats "+p+".", "repeated "+p)
			return
		}
	}
	clientID := q.Get("client_id")
	if clientID == "" {
		f.authorizePage(ctx, w, http.StatusBadRequest, "The request names no application (client_id).", "no client_id")
		return
	}
	cl, err := f.clients.ResolveClient(ctx, clientID)
	if err != nil {
		code, status := ClientErrorCode(err)
		msg := "The application that sent you here is not known to this site."
		if code == "temporarily_unavailable" {
			msg = "The application that sent you here cannot be looked up now. Please try again later."
		}
		f.authorizePage(ctx, w, status, msg, err.Error())
		return
	}
	ru := q.Get("redirect_uri")
	if ru == "" || !cl.RedirectURIAllowed(ru) {
		// OAuth 2.1 and MCP: the redirect URI is always sent and matched exactly.
		f.authorizePage(ctx, w, http.StatusBadRequest,
			"The application asked to return to an address it has not registered.", "redirect_uri not registered")
		return
	}

	state := q.Get("state")
	if len(state) > maxClientState {
		state = "" // not echoed: it is the fault
		f.authorizeError(ctx, w, ru, state, "invalid_request", "state is too long")
		return
	}
	for _, p := range []string{"response_type", "state", "code_challenge", "code_challenge_method", "scope"} {
		if len(q[p]) > 1 {
			f.authorizeError(ctx, w, ru, state, "invalid_request", "the request repeats "+p)
			return
		}
	}
	if q.Has("request") || q.Has("request_uri") {
		f.authorizeError(ctx, w, ru, state, "request_not_supported", "request objects are not supported")
		return
	}
	if q.Get("response_type") != responseTypeCode {
		f.authorizeError(ctx, w, ru, state, "unsupported_response_type", "response_type must be code")
		return
	}
	if !cl.AllowsGrant(grantAuthorizationCode) {
		f.authorizeError(ctx, w, ru, state, "unauthorized_client", "the client may not use the authorization code grant")
		return
	}
	// PKCE with S256 is mandatory (OAuth 2.1 §4.1.1, MCP authorization): plain would let a
	// code intercepted with its challenge be redeemed.
	if q.Get("code_challenge_method") != "S256" {
		f.authorizeError(ctx, w, ru, state, "invalid_request", "PKCE with code_challenge_method S256 is required")
		return
	}
	challenge := q.Get("code_challenge")
	if !validChallenge(challenge) {
		f.authorizeError(ctx, w, ru, state, "invalid_request", "code_challenge is not an S256 challenge")
		return
	}
	// RFC 8707 §2: the resource the token is for; exactly one, and one of the facade's.
	var res *facadeResource
	if rs := q["resource"]; len(rs) == 1 {
		res = f.byURI[rs[0]]
	}
	if res == nil {
		f.authorizeError(ctx, w, ru, state, "invalid_target", "resource must be the canonical URI of a resource this server authorizes")
		return
	}
	scopes, ok := res.grantScopes(q.Get("scope"))
	if !ok {
		f.authorizeError(ctx, w, ru, state, "invalid_scope", "a requested scope is not supported for this resource")
		return
	}
	req := &FacadeRequest{
		ClientID: cl.ClientID, RedirectURI: ru, CodeChallenge: challenge, State: state,
		Resource: res.name, Scopes: scopes,
	}
	f.onEvent("authorize")
	f.h.authorizeAtProvider(w, r, res.upstream, "/", req, func(status int, _, _ string) {
		code := "invalid_request" // the request does not fit in the login state's cookie
		if status >= 500 {
			code = "temporarily_unavailable"
		}
		f.authorizeError(ctx, w, ru, state, code, "the sign-in at the identity provider cannot be started")
	})
}

// grantScopes returns the scopes a request for scope (space-separated, RFC 6749 §3.3) is
// granted: each must be supported; none asked for means the resource's defaults. Repeats
// are dropped.
func (res *facadeResource) grantScopes(scope string) ([]string, bool) {
	asked := token.SplitScope(scope) // a tab is no separator: "a\tb" is one unsupported scope
	if len(asked) == 0 {
		return slices.Clone(res.defaults), true
	}
	var out []string
	for _, s := range asked {
		if !slices.Contains(res.scopes, s) {
			return nil, false
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, true
}

// authorizePage answers an authorization request that cannot go back to its client.
func (f *Facade) authorizePage(ctx context.Context, w http.ResponseWriter, status int, message, reason string) {
	f.onEvent("authorize_refused")
	f.log.LogAttrs(ctx, slog.LevelInfo, "facade authorization refused",
		slog.String("event", "authorize_refused"), slog.String("reason", reason))
	writeHTML(w, status, pageCSP, "Cannot continue", "<p>"+html.EscapeString(message)+"</p>")
}

// authorizeError sends an error response to the client's checked redirect URI (RFC 6749
// §4.1.2.1) with its state and the facade's iss (RFC 9207).
func (f *Facade) authorizeError(ctx context.Context, w http.ResponseWriter, redirectURI, state, code, description string) {
	f.onEvent("authorize_refused")
	f.log.LogAttrs(ctx, slog.LevelInfo, "facade authorization refused",
		slog.String("event", "authorize_refused"), slog.String("error", code), slog.String("reason", description))
	p := url.Values{"error": {code}, "error_description": {description}}
	if state != "" {
		p.Set("state", state)
	}
	f.redirectToClient(w, redirectURI, p, http.StatusFound)
}

// redirectToClient sends the browser to the client's checked redirect URI with params and
// iss added to its query (RFC 6749 §3.1.2: the URI's own query is kept).
func (f *Facade) redirectToClient(w http.ResponseWriter, redirectURI string, params url.Values, status int) {
	params.Set("iss", f.issuer)
	sep := "?"
	if strings.Contains(redirectURI, "?") {
		sep = "&"
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", redirectURI+sep+params.Encode())
	w.WriteHeader(status)
}

// upstreamRefused answers the client when the provider refused the sign-in (the user
// cancelled, or the provider would not): access_denied stays access_denied, anything else
// is the facade's server_error (the provider's codes mean nothing to the client).
func (f *Facade) upstreamRefused(w http.ResponseWriter, req *FacadeRequest, code string) {
	if code != "access_denied" {
		code = "server_error"
	}
	p := url.Values{"error": {code}, "error_description": {"the identity provider did not sign the user in"}}
	if req.State != "" {
		p.Set("state", req.State)
	}
	f.onEvent("authorize_refused")
	f.redirectToClient(w, req.RedirectURI, p, http.StatusFound)
}

// errUpstreamSubject: the provider's refreshed token names another user.
var errUpstreamSubject = errors.New("the provider's refreshed token names another subject")
