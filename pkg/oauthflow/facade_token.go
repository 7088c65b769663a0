package oauthflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/extauthz/extauthz/internal/b64seg"
	"github.com/extauthz/extauthz/pkg/token"
)

// maxTokenForm bounds a token or revocation request's body.
const maxTokenForm = 16 << 10

// tokenAnswer is the facade's RFC 6749 §5.1 token response.
type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// errUpstreamUnavailable: the provider could not be asked about the user on a refresh; the
// client may try again.
var errUpstreamUnavailable = errors.New("the identity provider cannot be reached")

// tokenRequest reads a token or revocation request: POST, application/x-www-form-urlencoded,
// no parameter repeated (RFC 6749 §3.2), and no client authentication other than client_id
// (the facade's clients are public). It answers the faults itself; ok false then.
func (f *Facade) tokenRequest(w http.ResponseWriter, r *http.Request) (form url.Values, ok bool) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	// Browser-based MCP clients call these endpoints from their own origin. No cookie is
	// read here, so any origin may.
	h.Set("Access-Control-Allow-Origin", "*")
	switch r.Method {
	case http.MethodPost:
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "POST")
		h.Set("Access-Control-Allow-Headers", "Content-Type")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return nil, false
	default:
		h.Set("Allow", "POST, OPTIONS")
		writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return nil, false
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return nil, false
	}
	if r.Header.Get("Authorization") != "" {
		// Public clients only: a client that authenticates was not registered here.
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "clients of this server authenticate with PKCE only (token_endpoint_auth_method none)")
		return nil, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenForm)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "the body cannot be read")
		return nil, false
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "the request repeats "+k)
			return nil, false
		}
	}
	return r.PostForm, true
}

// serveToken is the token endpoint (RFC 6749 §3.2): the authorization_code grant (with its
// PKCE verifier) and the refresh_token grant, for public clients. Errors are RFC 6749 §5.2.
func (f *Facade) serveToken(w http.ResponseWriter, r *http.Request) {
	form, ok := f.tokenRequest(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	clientID := form.Get("client_id")
	if clientID == "" {
		f.tokenError(ctx, w, http.StatusUnauthorized, "invalid_client", "client_id is required", nil)
		return
	}
	cl, err := f.clients.ResolveClient(ctx, clientID)
	if err != nil {
		code, status := ClientErrorCode(err)
		if code == "invalid_request" {
			code, status = "invalid_client", http.StatusUnauthorized
		}
		f.tokenError(ctx, w, status, code, "the client is not known", err)
		return
	}
	gt := form.Get("grant_type")
	if !cl.AllowsGrant(gt) {
		code := "unauthorized_client"
		if gt != grantAuthorizationCode && gt != grantRefreshToken {
			code = "unsupported_grant_type"
		}
		f.tokenError(ctx, w, http.StatusBadRequest, code, "grant_type "+gt+" is not available", nil)
		return
	}
	switch gt {
	case grantAuthorizationCode:
		f.codeGrant(ctx, w, cl, form)
	case grantRefreshToken:
		f.refreshGrant(ctx, w, cl, form)
	}
}

func (f *Facade) codeGrant(ctx context.Context, w http.ResponseWriter, cl *RegisteredClient, form url.Values) {
	code, ru, verifier := form.Get("code"), form.Get("redirect_uri"), form.Get("code_verifier")
	if code == "" || ru == "" || verifier == "" {
		f.tokenError(ctx, w, http.StatusBadRequest, "invalid_request", "code, redirect_uri and code_verifier are required", nil)
		return
	}
	g, err := f.store.RedeemCode(ctx, code, CodeRedemption{ClientID: cl.ClientID, RedirectURI: ru, CodeVerifier: verifier})
	if err != nil {
		if errors.Is(err, ErrInvalidGrant) {
			// A code presented again: what it granted goes (RFC 6749 §4.1.2).
			if revoked, rerr := f.store.RevokeFamilyOfCode(ctx, code); rerr != nil {
				err = errors.Join(err, rerr)
			} else if revoked {
				err = fmt.Errorf("%w; the refresh family it started is revoked", err)
			}
		}
		f.grantError(ctx, w, err)
		return
	}
	res := f.byURI[g.Resource]
	if res == nil {
		f.tokenError(ctx, w, http.StatusBadRequest, "invalid_grant", "the code is for a resource no longer served", nil)
		return
	}
	if rs, ok := form["resource"]; ok && rs[0] != g.Resource {
		f.tokenError(ctx, w, http.StatusBadRequest, "invalid_target", "resource differs from the authorization request's", nil)
		return
	}
	var rt string
	if cl.AllowsGrant(grantRefreshToken) {
		rt, err = f.store.StartFamily(ctx, &RefreshFamily{
			ClientID: cl.ClientID, Subject: g.Subject, Resource: g.Resource, Scopes: g.Scopes,
			UpstreamIssuer: g.UpstreamIssuer, UpstreamRefreshToken: g.UpstreamRefreshToken, AuthTime: g.AuthTime,
		})
		if err != nil {
			f.tokenError(ctx, w, http.StatusServiceUnavailable, "temporarily_unavailable", "the grant cannot be stored now", err)
			return
		}
		id, _, _ := strings.Cut(rt, ".")
		if err := f.store.CodeStartedFamily(ctx, code, id); err != nil {
			// Without the marker a replay cannot revoke the family: refuse rather than
			// issue a grant that cannot be taken back.
			_ = f.store.RevokeFamily(ctx, id)
			f.tokenError(ctx, w, http.StatusServiceUnavailable, "temporarily_unavailable", "the grant cannot be stored now", err)
			return
		}
	}
	f.answerToken(ctx, w, res, cl.ClientID, g.Subject, g.Scopes, g.AuthTime, rt, "code")
}

func (f *Facade) refreshGrant(ctx context.Context, w http.ResponseWriter, cl *RegisteredClient, form url.Values) {
	rt := form.Get("refresh_token")
	if rt == "" {
		f.tokenError(ctx, w, http.StatusBadRequest, "invalid_request", "refresh_token is required", nil)
		return
	}
	var narrowed []string
	if sc := form.Get("scope"); form.Has("scope") {
		narrowed = token.SplitScope(sc)
		if len(narrowed) == 0 {
			f.tokenError(ctx, w, http.StatusBadRequest, "invalid_scope", "scope is empty", nil)
			return
		}
	}
	var res *facadeResource
	var badScope, badTarget bool
	next, fam, err := f.store.RotateRefresh(ctx, rt, cl.ClientID, func(fam *RefreshFamily) error {
		if res = f.byURI[fam.Resource]; res == nil {
			badTarget = true
			return ErrInvalidGrant
		}
		if rs, ok := form["resource"]; ok && rs[0] != fam.Resource {
			badTarget = true
			return ErrInvalidGrant
		}
		if narrowed != nil {
			for _, s := range narrowed {
				if !slices.Contains(fam.Scopes, s) {
					badScope = true
					return ErrInvalidGrant
				}
			}
			fam.Scopes = narrowed
		}
		if fam.UpstreamRefreshToken == "" {
			return nil
		}
		// The provider is asked whether the user is still allowed in: a user disabled there
		// gets no new token here either.
		up, err := f.refreshUpstream(ctx, res.upstream, fam)
		if err != nil {
			return err
		}
		fam.UpstreamRefreshToken = up
		return nil
	})
	switch {
	case badScope:
		f.tokenError(ctx, w, http.StatusBadRequest, "invalid_scope", "a refresh may only narrow the scopes", nil)
		return
	case badTarget:
		f.tokenError(ctx, w, http.StatusBadRequest, "invalid_target", "resource differs from the grant's", nil)
		return
	case errors.Is(err, errUpstreamUnavailable):
		f.tokenError(ctx, w, http.StatusServiceUnavailable, "temporarily_unavailable", "the identity provider cannot be reached now", err)
		return
	case errors.Is(err, ErrInvalidGrant):
		f.grantError(ctx, w, err)
		return
	case err != nil:
		var ee *endpointError
		if errors.As(err, &ee) || errors.Is(err, errUpstreamSubject) || errors.Is(err, errWrongAudience) {
			// The provider refused for good: the user must sign in again.
			if id, _, ok := strings.Cut(rt, "."); ok {
				_ = f.store.RevokeFamily(ctx, id)
			}
			f.tokenError(ctx, w, http.StatusBadRequest, "invalid_grant", "the identity provider no longer accepts this sign-in", err)
			return
		}
		f.tokenError(ctx, w, http.StatusServiceUnavailable, "temporarily_unavailable", "the grant cannot be refreshed now", err)
		return
	}
	f.answerToken(ctx, w, res, cl.ClientID, fam.Subject, fam.Scopes, fam.AuthTime, next, "refresh")
}

// refreshUpstream refreshes the family's provider refresh token and checks that the new
// access token verifies and names the same user; it returns the provider's refresh token to
// keep (the new one when the provider rotated it). A failure that may pass is
// errUpstreamUnavailable.
func (f *Facade) refreshUpstream(ctx context.Context, c *Client, fam *RefreshFamily) (string, error) {
	md, err := f.h.metadata(ctx, c)
	if err != nil {
		return "", errors.Join(errUpstreamUnavailable, err)
	}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {fam.UpstreamRefreshToken}}
	c.setAudience(form)
	tr, err := f.h.requestToken(ctx, c, md, form)
	if err != nil {
		var ee *endpointError
		if errors.As(err, &ee) && !ee.definitive() {
			return "", errors.Join(errUpstreamUnavailable, err)
		}
		return "", err
	}
	claims, err := f.h.verify(ctx, c, tr.AccessToken)
	if err != nil {
		if errors.Is(err, errWrongAudience) {
			return "", err
		}
		return "", errors.Join(errUpstreamUnavailable, err)
	}
	if claims.Subject != fam.Subject {
		return "", errUpstreamSubject
	}
	if tr.RefreshToken != "" {
		return tr.RefreshToken, nil
	}
	return fam.UpstreamRefreshToken, nil
}

// answerToken mints the access token and answers RFC 6749 §5.1.
func (f *Facade) answerToken(ctx context.Context, w http.ResponseWriter, res *facadeResource, clientID, subject string, scopes []string, authTime time.Time, rt, grant string) {
	at, exp, err := f.signer.Mint(AccessToken{
		Subject: subject, ClientID: clientID, Audience: res.uri, Scopes: scopes, AuthTime: authTime, TTL: res.tokenTTL,
	})
	if err != nil {
		f.tokenError(ctx, w, http.StatusInternalServerError, "server_error", "the access token cannot be signed", err)
		return
	}
	f.onEvent("token_" + grant)
	f.log.LogAttrs(ctx, slog.LevelInfo, "facade token issued", slog.String("event", "token_"+grant),
		slog.String("client_id", clientID), slog.String("subject", subject), slog.String("resource", res.name))
	writeJSON(w, http.StatusOK, tokenAnswer{
		AccessToken: at, TokenType: "Bearer", ExpiresIn: max(int64(exp.Sub(f.now())/time.Second), 1),
		RefreshToken: rt, Scope: strings.Join(scopes, " "),
	})
}

// grantError answers a refused code or refresh token: invalid_grant, or a store failure.
func (f *Facade) grantError(ctx context.Context, w http.ResponseWriter, err error) {
	if errors.Is(err, ErrInvalidGrant) {
		f.tokenError(ctx, w, http.StatusBadRequest, "invalid_grant", "the grant is invalid, expired, revoked or used already", err)
		return
	}
	f.tokenError(ctx, w, http.StatusServiceUnavailable, "temporarily_unavailable", "the grant cannot be checked now", err)
}

// tokenError answers an RFC 6749 §5.2 error and logs its reason (never a token).
func (f *Facade) tokenError(ctx context.Context, w http.ResponseWriter, status int, code, description string, reason error) {
	event := "token_refused"
	if status >= 500 {
		event = "token_failed"
	}
	f.onEvent(event)
	attrs := []slog.Attr{slog.String("event", event), slog.String("error", code)}
	if reason != nil {
		attrs = append(attrs, slog.String("reason", reason.Error()))
	}
	f.log.LogAttrs(ctx, slog.LevelInfo, "facade token request refused", attrs...)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="extauthz"`)
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	writeOAuthError(w, status, code, description)
}

// serveRevoke is the revocation endpoint (RFC 7009) for public clients (client_id in the
// body). A refresh token revokes its whole family. An access token of the facade issued to
// the client is revoked through RevokeAccessToken (the engine's revocation by its hash, on
// every replica); without it, access tokens are refused with unsupported_token_type (RFC
// 7009 §2.2.1).
func (f *Facade) serveRevoke(w http.ResponseWriter, r *http.Request) {
	form, ok := f.tokenRequest(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	tok, clientID := form.Get("token"), form.Get("client_id")
	if clientID == "" {
		f.tokenError(ctx, w, http.StatusUnauthorized, "invalid_client", "client_id is required", nil)
		return
	}
	if tok == "" {
		f.tokenError(ctx, w, http.StatusBadRequest, "invalid_request", "token is required", nil)
		return
	}
	if _, _, _, isRefresh := parseRefreshToken(tok); !isRefresh {
		if strings.Count(tok, ".") == 2 && form.Get("token_type_hint") != grantRefreshToken {
			f.revokeAccess(ctx, w, tok, clientID)
			return
		}
		// Not a token of the facade: nothing to revoke (RFC 7009 §2.2).
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		return
	}
	switch err := f.store.RevokeRefresh(ctx, tok, clientID); {
	case errors.Is(err, ErrInvalidGrant):
		f.tokenError(ctx, w, http.StatusBadRequest, "unauthorized_client", "the token was issued to another client", err)
		return
	case err != nil:
		f.tokenError(ctx, w, http.StatusServiceUnavailable, "temporarily_unavailable", "the token cannot be revoked now", err)
		return
	}
	f.onEvent("revoked")
	f.log.LogAttrs(ctx, slog.LevelInfo, "facade refresh token revoked", slog.String("event", "revoked"), slog.String("client_id", clientID))
	w.WriteHeader(http.StatusOK)
}

// revokeAccess revokes tok, a JWT-shaped token, when it is one of the facade's access tokens
// issued to clientID. Its claims are read without checking the signature: revocation is by
// the token's hash, so revoking a forged string revokes nothing anyone could use, and a
// client may revoke only what names it as client_id (RFC 7009 §2.1). A JWT of another issuer
// is not the facade's: nothing to revoke (RFC 7009 §2.2).
func (f *Facade) revokeAccess(ctx context.Context, w http.ResponseWriter, tok, clientID string) {
	if f.revokeToken == nil {
		f.tokenError(ctx, w, http.StatusBadRequest, "unsupported_token_type", "access tokens cannot be revoked here; they expire by themselves", nil)
		return
	}
	var claims struct {
		Issuer   string `json:"iss"`
		ClientID string `json:"client_id"`
	}
	payload, ok := b64seg.Decode(strings.Split(tok, ".")[1])
	if !ok || json.Unmarshal(payload, &claims) != nil || claims.Issuer != f.issuer {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		return
	}
	if claims.ClientID != clientID {
		f.tokenError(ctx, w, http.StatusBadRequest, "unauthorized_client", "the token was issued to another client", nil)
		return
	}
	if err := f.revokeToken(ctx, tok); err != nil {
		f.tokenError(ctx, w, http.StatusServiceUnavailable, "temporarily_unavailable", "the token cannot be revoked everywhere now", err)
		return
	}
	f.onEvent("revoked")
	f.log.LogAttrs(ctx, slog.LevelInfo, "facade access token revoked", slog.String("event", "revoked"), slog.String("client_id", clientID))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}
