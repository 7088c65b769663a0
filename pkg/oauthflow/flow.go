package oauthflow

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/extauthz/extauthz/pkg/token"
)

// serveLogin starts a sign-in: GET LoginPath?rd=<return path>.
func (h *Handler) serveLogin(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if len(q["rd"]) > 1 {
		h.page(w, http.StatusBadRequest, "Invalid sign-in link", "The sign-in link names more than one return address.", "")
		return
	}
	rd := q.Get("rd")
	if rd == "" {
		rd = h.successRedirect
	}
	if !validReturnPath(rd) {
		h.page(w, http.StatusBadRequest, "Invalid sign-in link",
			"The sign-in link's return address is not a path on this site.", "")
		return
	}
	resource, ok := h.route(h.publicHost, routePath(rd))
	c := h.clients[resource]
	if !ok || c == nil {
		h.page(w, http.StatusBadRequest, "No sign-in here", "This address does not offer a sign-in.", "")
		return
	}
	h.authorizeAtProvider(w, r, c, rd, nil, func(status int, title, message string) {
		h.page(w, status, title, message, "")
	})
}

// authorizeAtProvider sends the browser to c's authorization server with a new state, PKCE
// verifier and (for openid) nonce, sealed in the cookie that binds the sign-in to this
// browser. rd is where a browser sign-in returns; fac, when set, makes it the upstream leg
// of an authorization request to the facade. fail answers a failure (after it was logged).
func (h *Handler) authorizeAtProvider(w http.ResponseWriter, r *http.Request, c *Client, rd string, fac *FacadeRequest,
	fail func(status int, title, message string),
) {
	ctx := r.Context()
	md, err := h.metadata(ctx, c)
	if err != nil {
		h.logFailure(ctx, "login_failed", c.Resource, "", err)
		fail(http.StatusBadGateway, "Sign-in unavailable",
			"The authorization server's metadata cannot be read now. Please try again later.")
		return
	}
	if !supportsS256(md) {
		h.logFailure(ctx, "login_failed", c.Resource, "", errors.New("the authorization server does not support PKCE with S256"))
		fail(http.StatusBadGateway, "Sign-in unavailable",
			"The authorization server does not support PKCE with S256 (code_challenge_methods_supported), which signing in requires.")
		return
	}
	authz, err := url.Parse(md.AuthorizationEndpoint)
	if err != nil || md.AuthorizationEndpoint == "" || (authz.Scheme != "https" && authz.Scheme != "http") || authz.Host == "" {
		h.logFailure(ctx, "login_failed", c.Resource, "", errors.New("the metadata has no usable authorization_endpoint"))
		fail(http.StatusBadGateway, "Sign-in unavailable", "The authorization server has no usable authorization endpoint.")
		return
	}

	state, err1 := NewID()
	verifier, challenge, err2 := pkce()
	var nonce string
	var err3 error
	if c.wants("openid") {
		nonce, err3 = randomString()
	}
	if err := errors.Join(err1, err2, err3); err != nil {
		fail(http.StatusInternalServerError, "Sign-in unavailable", "No random numbers are available.")
		return
	}
	// Nothing is stored: the login state travels sealed in the binding cookie (see the
	// package documentation, "Login states"), so an unauthenticated request costs no storage.
	sealed, err := h.store.SealState(state, &LoginState{
		Resource:    c.Resource,
		Issuer:      c.Issuer,
		Verifier:    verifier,
		Nonce:       nonce,
		ReturnTo:    rd,
		RedirectURI: h.redirectURI,
		Facade:      fac,
		Expires:     h.now().Add(h.stateTTL),
	})
	if err != nil {
		h.logFailure(ctx, "login_failed", c.Resource, "", err)
		fail(http.StatusInternalServerError, "Sign-in unavailable", "Sign-in cannot be started now. Please try again later.")
		return
	}
	if len(h.stateCookieName(state))+1+len(sealed) > MaxSealedState {
		// A browser would drop the cookie, and the callback could only fail.
		h.logFailure(ctx, "login_failed", c.Resource, "", errors.New("the login state is too large for a cookie"))
		fail(http.StatusBadRequest, "Sign-in unavailable", "The request is too large.")
		return
	}

	params := authz.Query() // RFC 6749 §3.1: the endpoint's own query is kept
	params.Set("response_type", "code")
	params.Set("client_id", c.ClientID)
	params.Set("redirect_uri", h.redirectURI)
	if sc := c.requestScopes(); len(sc) > 0 {
		params.Set("scope", strings.Join(sc, " "))
	} else {
		params.Del("scope")
	}
	params.Set("state", state)
	params.Set("code_challenge", challenge)
	params.Set("code_challenge_method", "S256")
	c.setAudience(params)
	if nonce != "" {
		params.Set("nonce", nonce)
	} else {
		params.Del("nonce")
	}
	if c.wants("offline_access") {
		// OIDC Core §11: a request for offline access must ask for consent, or the server
		// drops the scope and issues no refresh token.
		params.Set("prompt", "consent")
	}
	authz.RawQuery = params.Encode()
	authz.Fragment = ""

	h.setCookie(w, h.stateCookieName(state), sealed, h.stateTTL)
	w.Header().Set("Location", authz.String())
	w.WriteHeader(http.StatusFound)
}

// serveCallback finishes a sign-in: GET CallbackPath?code=…&state=…[&iss=…] or ?error=….
func (h *Handler) serveCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	for _, p := range []string{"state", "code", "iss", "error"} {
		if len(q[p]) > 1 {
			h.logFailure(ctx, "login_failed", "", "", errors.New("repeated parameter "+p))
			h.page(w, http.StatusBadRequest, "Sign-in failed", "The authorization response repeats a parameter.", "")
			return
		}
	}
	state := q.Get("state")
	oauthErr := q.Get("error")
	if state == "" {
		if oauthErr != "" {
			code := oauthErrorCode(oauthErr)
			h.logFailure(ctx, "login_failed", "", "", errors.New("authorization error without state: "+code))
			h.page(w, http.StatusBadRequest, "Sign-in failed", "The authorization server refused the sign-in.", code)
			return
		}
		h.logFailure(ctx, "login_failed", "", "", errors.New("callback without state"))
		h.page(w, http.StatusBadRequest, "Sign-in failed", "The authorization response has no state.", "")
		return
	}

	// Whatever happens next, this sign-in is over in this browser: its binding cookie goes.
	bindName := h.stateCookieName(state)
	h.clearCookie(w, bindName)
	sealed, found := cookieValue(r.Header.Values("Cookie"), bindName)
	if !found {
		// Expired (the browser dropped it), completed (the callback cleared it), or never
		// here: the sign-in was started in another browser (login CSRF).
		h.logFailure(ctx, "login_failed", "", "", errors.New("no login-state cookie for this state: expired, already used, or started in another browser"))
		h.page(w, http.StatusBadRequest, "Sign-in expired",
			"This sign-in has expired, was already completed, or was started in another browser. "+
				"Please start again from the page you wanted to open.", "")
		return
	}
	st, err := h.store.OpenState(state, sealed, h.now())
	switch {
	case errors.Is(err, ErrStateExpired):
		h.logFailure(ctx, "login_failed", "", "", err)
		h.page(w, http.StatusBadRequest, "Sign-in expired",
			"This sign-in has expired. Please start again from the page you wanted to open.", "")
		return
	case err != nil:
		h.logFailure(ctx, "login_failed", "", "", errors.New("the login-state cookie does not open for this state (changed, or sealed for another sign-in or under another key)"))
		h.page(w, http.StatusBadRequest, "Sign-in failed",
			"This sign-in was not started in this browser. Please start again.", "")
		return
	}

	c := h.stateClient(st)
	if c == nil || c.Issuer != st.Issuer {
		h.logFailure(ctx, "login_failed", st.Resource, "", errors.New("the resource no longer has this login client"))
		h.page(w, http.StatusBadRequest, "Sign-in failed", "This sign-in is no longer valid. Please start again.", "")
		return
	}
	md, err := h.metadata(ctx, c)
	if err != nil {
		h.logFailure(ctx, "login_failed", c.Resource, "", err)
		h.page(w, http.StatusBadGateway, "Sign-in unavailable", "The authorization server's metadata cannot be read now. Please try again later.", "")
		return
	}

	// RFC 9207: iss must be present when the server says it sends it, and right whenever it
	// is present, error responses included (a mix-up attack also works through errors).
	iss, issSent := q["iss"]
	if (md.AuthorizationResponseIssParameterSupported && !issSent) || (issSent && iss[0] != st.Issuer) {
		h.logFailure(ctx, "login_failed", c.Resource, "", errors.New("the authorization response's iss is missing or names another issuer"))
		h.page(w, http.StatusBadRequest, "Sign-in failed",
			"The authorization response does not come from the expected authorization server.", "")
		return
	}
	if oauthErr != "" {
		code := oauthErrorCode(oauthErr)
		h.logFailure(ctx, "login_failed", c.Resource, "", errors.New("authorization error: "+code))
		if f := h.facade.Load(); f != nil && st.Facade != nil {
			f.upstreamRefused(w, st.Facade, code)
			return
		}
		h.page(w, http.StatusBadRequest, "Sign-in failed", "The authorization server refused the sign-in.", code)
		return
	}
	code := q.Get("code")
	if code == "" {
		h.logFailure(ctx, "login_failed", c.Resource, "", errors.New("callback without code"))
		h.page(w, http.StatusBadRequest, "Sign-in failed", "The authorization response has no code.", "")
		return
	}
	// A replayed callback (its URL and cookie captured) is refused before its code is spent
	// again. The server refuses a second use of a code anyway (RFC 6749 §4.1.2): this is
	// defence in depth, recorded only once a code was accepted, below.
	if used, err := h.store.StateUsed(ctx, state); err != nil || used {
		h.refuseUsed(ctx, w, c.Resource, err)
		return
	}

	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {st.RedirectURI},
		"code_verifier": {st.Verifier},
	}
	c.setAudience(form)
	tr, err := h.requestToken(ctx, c, md, form)
	if err != nil {
		h.logFailure(ctx, "login_failed", c.Resource, "", err)
		h.page(w, http.StatusBadGateway, "Sign-in failed", "The authorization server did not issue tokens.", "")
		return
	}
	claims, err := h.verify(ctx, c, tr.AccessToken)
	if err != nil {
		h.logFailure(ctx, "login_failed", c.Resource, "", err)
		if errors.Is(err, errWrongAudience) {
			h.page(w, http.StatusBadGateway, "Sign-in failed", "The authorization server returned a token for another resource.", "")
		} else {
			h.page(w, http.StatusBadGateway, "Sign-in failed", "The authorization server returned a token that does not verify.", "")
		}
		return
	}
	if st.Nonce != "" && tr.IDToken != "" && !idTokenNonceMatches(tr.IDToken, st.Nonce) {
		h.logFailure(ctx, "login_failed", c.Resource, claims.Subject, errors.New("the ID token's nonce does not match"))
		h.page(w, http.StatusBadGateway, "Sign-in failed", "The authorization server returned an ID token for another sign-in.", "")
		return
	}

	now := h.now()
	// The state is spent: one session per sign-in, even if the server let a code be used
	// twice, or two copies of the callback raced past the check above. The marker lives as
	// long as the state could still open, plus a margin for replicas' clocks.
	first, err := h.store.MarkStateUsed(ctx, state, max(st.Expires.Sub(now), 0)+usedMarkerSlack)
	if err != nil || !first {
		h.refuseUsed(ctx, w, c.Resource, err)
		return
	}
	if st.Facade != nil {
		h.facade.Load().finishUpstream(w, r, c, st, claims, tr)
		return
	}
	sess := &Session{
		Resource:     c.Resource,
		Issuer:       c.Issuer,
		Subject:      claims.Subject,
		AccessToken:  tr.AccessToken,
		RefreshToken: tr.RefreshToken,
		IDToken:      tr.IDToken,
		Expiry:       expiry(now, tr, claims),
		Created:      now,
	}
	// At least a second: a token that verified (within the leeway) but expires at once still
	// gets a session, which the first Check then ends.
	ttl := max(h.sessionTTLFor(now, sess, tr), time.Second)
	id, err := NewID()
	if err == nil {
		err = h.store.Put(ctx, id, sess, ttl)
	}
	if err != nil {
		h.logFailure(ctx, "login_failed", c.Resource, claims.Subject, err)
		h.page(w, http.StatusServiceUnavailable, "Sign-in unavailable", "The session cannot be stored now. Please try again later.", "")
		return
	}
	// A previous session of this browser is replaced: delete it rather than leave it behind.
	if old, found := h.sessionID(r.Header.Values("Cookie")); found && old != id {
		if err := h.store.Delete(ctx, old); err != nil {
			h.log.LogAttrs(ctx, slog.LevelDebug, "deleting the replaced session failed", slog.String("err", err.Error()))
		}
	}
	h.setCookie(w, h.cookieName, id, ttl)
	h.onEvent("login")
	h.log.LogAttrs(ctx, slog.LevelInfo, "browser sign-in",
		slog.String("event", "login"), slog.String("resource", c.Resource),
		slog.String("subject", claims.Subject), slog.String("issuer", c.Issuer),
		slog.String("session_ttl", ttl.String()))
	w.Header().Set("Location", st.ReturnTo)
	w.WriteHeader(http.StatusFound)
}

// usedMarkerSlack is how much longer a completed sign-in's marker lives than its state: for
// replicas whose clocks disagree on when the state expires.
const usedMarkerSlack = time.Minute

// refuseUsed answers a callback whose state was completed already (err == nil), or cannot be
// checked now.
func (h *Handler) refuseUsed(ctx context.Context, w http.ResponseWriter, resource string, err error) {
	if err != nil {
		h.logFailure(ctx, "login_failed", resource, "", err)
		h.page(w, http.StatusServiceUnavailable, "Sign-in unavailable", "The sign-in cannot be completed now. Please try again later.", "")
		return
	}
	h.logFailure(ctx, "login_failed", resource, "", errors.New("the state was already used (a replayed callback)"))
	h.page(w, http.StatusBadRequest, "Sign-in expired",
		"This sign-in was already completed. Please start again from the page you wanted to open.", "")
}

// errWrongAudience: the access token's aud does not include the resource URI.
var errWrongAudience = errors.New("the access token is not for this resource (aud)")

// verify verifies an access token as a Check does, then its audience.
func (h *Handler) verify(ctx context.Context, c *Client, raw string) (*token.Claims, error) {
	claims, err := h.verifier.Verify(ctx, raw, c.Trusted)
	if err != nil {
		return nil, err
	}
	if claims.Grant == nil || !claims.HasAudience(map[string]struct{}{c.ResourceURI: {}}) {
		return nil, errWrongAudience
	}
	return claims, nil
}

// metadata returns the client's server metadata, refusing a document for another issuer.
func (h *Handler) metadata(ctx context.Context, c *Client) (*Metadata, error) {
	md, err := c.Metadata(ctx)
	if err != nil {
		return nil, err
	}
	if md == nil {
		return nil, errors.New("no metadata")
	}
	if md.Issuer != "" && md.Issuer != c.Issuer {
		return nil, errors.New("the metadata names another issuer")
	}
	return md, nil
}

// expiry is when the access token expires: the earlier of expires_in and the token's exp;
// the session's lifetime cap when neither says.
func expiry(now time.Time, tr *tokenResponse, claims *token.Claims) time.Time {
	var e time.Time
	if tr.ExpiresIn > 0 {
		e = now.Add(tr.ExpiresIn.duration())
	}
	if claims != nil && !claims.Expiry.IsZero() && (e.IsZero() || claims.Expiry.Before(e)) {
		e = claims.Expiry
	}
	return e
}

// sessionTTLFor is how long a session created or refreshed at now is kept: until SessionTTL
// after its creation, or refresh_token_expires_in when shorter, or the access token's expiry
// when there is no refresh token to renew it. Zero or less: the session is over.
func (h *Handler) sessionTTLFor(now time.Time, sess *Session, tr *tokenResponse) time.Duration {
	ttl := sess.Created.Add(h.sessionTTL).Sub(now)
	if tr.RefreshTokenExpiresIn > 0 {
		ttl = min(ttl, tr.RefreshTokenExpiresIn.duration())
	}
	if sess.RefreshToken == "" && !sess.Expiry.IsZero() {
		ttl = min(ttl, sess.Expiry.Sub(now))
	}
	return ttl.Truncate(time.Second)
}

// wants reports whether the client requests scope.
func (c *Client) wants(scope string) bool {
	return slices.Contains(c.Scopes, scope)
}

// stateCookieName names the cookie binding a sign-in to the browser that started it.
func (h *Handler) stateCookieName(state string) string {
	sum := sha256.Sum256([]byte(state))
	return h.statePrefix + hex.EncodeToString(sum[:8])
}

// setCookie sets one of the handler's cookies with the attributes of the package
// documentation.
func (h *Handler) setCookie(w http.ResponseWriter, name, value string, ttl time.Duration) {
	maxAge := int(ttl / time.Second)
	if maxAge < 1 {
		maxAge = 1
	}
	// Secure follows the gateway's scheme: plain http is allowed only for
	// loopback development (config validation).
	http.SetCookie(w, &http.Cookie{ //nolint:gosec // see above
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode,
	})
}

// clearCookie deletes one of the handler's cookies (Max-Age=0, same attributes).
func (h *Handler) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{ //nolint:gosec // as setCookie
		Name: name, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode,
	})
}

// logFailure logs a failed login, refresh or logout step.
func (h *Handler) logFailure(ctx context.Context, event, resource, subject string, err error) {
	attrs := []slog.Attr{slog.String("event", event)}
	if resource != "" {
		attrs = append(attrs, slog.String("resource", resource))
	}
	if subject != "" {
		attrs = append(attrs, slog.String("subject", subject))
	}
	attrs = append(attrs, slog.String("reason", err.Error()))
	msg := "browser sign-in failed"
	switch event {
	case "refresh_failed":
		msg = "session refresh failed"
		h.onEvent(event)
	case "logout":
		msg = "browser sign-out step failed"
		h.onEvent("logout_failed")
	default:
		h.onEvent(event)
	}
	h.log.LogAttrs(ctx, slog.LevelWarn, msg, attrs...)
}

// stateClient is the client a login state was sealed for: a browser sign-in's, or the
// facade's upstream client for its resource.
func (h *Handler) stateClient(st *LoginState) *Client {
	if st.Facade == nil {
		return h.clients[st.Resource]
	}
	if f := h.facade.Load(); f != nil {
		if res := f.byName[st.Resource]; res != nil {
			return res.upstream
		}
	}
	return nil
}

// requestScopes are the scopes c asks the authorization server for: Scopes, and the
// AudienceScope that names the audience at servers without RFC 8707.
func (c *Client) requestScopes() []string {
	if c.AudienceScope == "" || c.wants(c.AudienceScope) {
		return c.Scopes
	}
	return append(slices.Clone(c.Scopes), c.AudienceScope)
}

// setAudience names the audience in an authorization or token request: the RFC 8707
// resource parameter, unless the server takes it as a scope (AudienceScope), in which case a
// resource parameter is left out (some such servers refuse it).
func (c *Client) setAudience(params url.Values) {
	if c.AudienceScope != "" {
		params.Del("resource")
		return
	}
	params.Set("resource", c.ResourceURI)
}
