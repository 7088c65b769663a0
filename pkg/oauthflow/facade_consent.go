package oauthflow

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"html/template"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/extauthz/extauthz/pkg/token"
)

// Storage keys of consents: a pending one (an authorization waiting for the user's answer,
// named by a random id the browser holds in a cookie) and a remembered one (per provider,
// user and client).
const (
	facadePendingPrefix = keyPrefix + "fpending:"
	facadeConsentPrefix = keyPrefix + "fconsent:"
)

// maxConsentForm bounds the consent form's body.
const maxConsentForm = 4 << 10

// pendingConsent is an authorization the provider completed, waiting for the user to allow
// the client: the code it will become, the client's state, and the form's CSRF token.
type pendingConsent struct {
	Grant AuthCode
	State string
	CSRF  string
}

type pendingRecord struct {
	Code  codeRecord `json:"c"`
	State string     `json:"st,omitempty"`
	CSRF  string     `json:"x"`
}

type consentRecord struct {
	Scopes []string `json:"scp,omitempty"`
}

// putPending stores p under a new random id for ttl and returns the id.
func (s *FacadeStore) putPending(ctx context.Context, p *pendingConsent, ttl time.Duration) (string, error) {
	id, err := NewID()
	if err != nil {
		return "", err
	}
	key := storageKey(facadePendingPrefix, id)
	val, err := s.seal.sealJSON(key, &pendingRecord{Code: newCodeRecord(&p.Grant), State: p.State, CSRF: p.CSRF})
	if err != nil {
		return "", err
	}
	ok, err := s.b.add(ctx, key, val, ttl)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", errors.New("facade: pending consent id collision") // 256 random bits: never
	}
	return id, nil
}

// pending returns the pending consent id names, without spending it.
func (s *FacadeStore) pending(ctx context.Context, id string) (*pendingConsent, bool, error) {
	if len(id) < MinIDLen || len(id) > 64 {
		return nil, false, nil
	}
	key := storageKey(facadePendingPrefix, id)
	val, ok, err := s.b.get(ctx, key)
	if err != nil || !ok {
		return nil, false, err
	}
	var rec pendingRecord
	if err := s.seal.openJSON(key, val, &rec); err != nil {
		return nil, false, err
	}
	return &pendingConsent{Grant: *rec.Code.authCode(), State: rec.State, CSRF: rec.CSRF}, true, nil
}

// takePending removes the pending consent id names, atomically; true for the one caller, on
// any replica, that removed it.
func (s *FacadeStore) takePending(ctx context.Context, id string) (bool, error) {
	_, ok, err := s.b.getdel(ctx, storageKey(facadePendingPrefix, id))
	return ok, err
}

// consentKey names the consent of subject at issuer to clientID. The NUL separators cannot
// occur in any of the three (each is checked printable, or is the provider's issuer).
func consentKey(issuer, subject, clientID string) string {
	return storageKey(facadeConsentPrefix, issuer+"\x00"+subject+"\x00"+clientID)
}

// consented reports whether subject at issuer allowed clientID every one of scopes, and the
// consent is still remembered.
func (s *FacadeStore) consented(ctx context.Context, issuer, subject, clientID string, scopes []string) (bool, error) {
	key := consentKey(issuer, subject, clientID)
	val, ok, err := s.b.get(ctx, key)
	if err != nil || !ok {
		return false, err
	}
	var rec consentRecord
	if s.seal.openJSON(key, val, &rec) != nil {
		return false, nil //nolint:nilerr // sealed under another key: no consent, ask again
	}
	for _, sc := range scopes {
		if !slices.Contains(rec.Scopes, sc) {
			return false, nil
		}
	}
	return true, nil
}

// rememberConsent records that subject at issuer allowed clientID scopes (with any scopes it
// allowed before), for ttl.
func (s *FacadeStore) rememberConsent(ctx context.Context, issuer, subject, clientID string, scopes []string, ttl time.Duration) error {
	key := consentKey(issuer, subject, clientID)
	var rec consentRecord
	if val, ok, err := s.b.get(ctx, key); err != nil {
		return err
	} else if ok && s.seal.openJSON(key, val, &rec) != nil {
		rec = consentRecord{}
	}
	for _, sc := range scopes {
		if !slices.Contains(rec.Scopes, sc) {
			rec.Scopes = append(rec.Scopes, sc)
		}
	}
	val, err := s.seal.sealJSON(key, &rec)
	if err != nil {
		return err
	}
	if err := s.b.del(ctx, key); err != nil {
		return err
	}
	_, err = s.b.add(ctx, key, val, ttl)
	return err
}

// finishUpstream continues a facade authorization once the provider signed the user in (the
// login callback verified the provider's token and spent the state): to the consent page
// when this user has not allowed this client yet, else straight to the code.
func (f *Facade) finishUpstream(w http.ResponseWriter, r *http.Request, c *Client, st *LoginState, claims *token.Claims, tr *tokenResponse) {
	ctx := r.Context()
	req := st.Facade
	res := f.byName[st.Resource]
	cl, err := f.clients.ResolveClient(ctx, req.ClientID)
	if res == nil || err != nil || !cl.RedirectURIAllowed(req.RedirectURI) {
		f.authorizePage(ctx, w, http.StatusBadRequest, "The application that started this sign-in is no longer known.", "client gone after the provider's sign-in")
		return
	}
	grant := AuthCode{
		ClientID: req.ClientID, RedirectURI: req.RedirectURI, CodeChallenge: req.CodeChallenge,
		Resource: res.uri, Scopes: req.Scopes, Subject: claims.Subject,
		UpstreamIssuer: c.Issuer, UpstreamRefreshToken: tr.RefreshToken, AuthTime: f.now(),
	}
	ok, err := f.store.consented(ctx, c.Issuer, claims.Subject, req.ClientID, req.Scopes)
	if err != nil {
		f.fail(ctx, w, err)
		return
	}
	if ok {
		f.issue(ctx, w, &grant, req.State, http.StatusFound)
		return
	}
	csrf, err := NewID()
	var id string
	if err == nil {
		id, err = f.store.putPending(ctx, &pendingConsent{Grant: grant, State: req.State, CSRF: csrf}, f.h.stateTTL)
	}
	if err != nil {
		f.fail(ctx, w, err)
		return
	}
	f.h.setCookie(w, f.consentCookie, id, f.h.stateTTL)
	w.Header().Set("Location", f.consentPath)
	w.WriteHeader(http.StatusSeeOther)
}

// issue issues the code grant stands for and sends it to the client with its state.
func (f *Facade) issue(ctx context.Context, w http.ResponseWriter, grant *AuthCode, state string, status int) {
	code, err := f.store.IssueCode(ctx, grant, f.codeTTL)
	p := url.Values{}
	if state != "" {
		p.Set("state", state)
	}
	if err != nil {
		f.log.LogAttrs(ctx, slog.LevelWarn, "facade code issuance failed", slog.String("event", "authorize_failed"), slog.String("reason", err.Error()))
		f.onEvent("authorize_failed")
		p.Set("error", "temporarily_unavailable")
		f.redirectToClient(w, grant.RedirectURI, p, status)
		return
	}
	f.onEvent("code_issued")
	f.log.LogAttrs(ctx, slog.LevelInfo, "facade authorization code issued",
		slog.String("event", "code_issued"), slog.String("client_id", grant.ClientID),
		slog.String("subject", grant.Subject), slog.String("resource", grant.Resource))
	p.Set("code", code)
	f.redirectToClient(w, grant.RedirectURI, p, status)
}

// fail answers a store or randomness failure in the browser part of the flow.
func (f *Facade) fail(ctx context.Context, w http.ResponseWriter, err error) {
	f.onEvent("authorize_failed")
	f.log.LogAttrs(ctx, slog.LevelWarn, "facade authorization failed", slog.String("event", "authorize_failed"), slog.String("reason", err.Error()))
	writeHTML(w, http.StatusServiceUnavailable, pageCSP, "Cannot continue", "<p>This sign-in cannot be completed now. Please try again later.</p>")
}

// serveConsent shows the consent page (GET) and takes the user's answer (POST). The
// pending authorization is the one the browser's consent cookie names; the form's CSRF
// token must be that authorization's (a form posted from another site has neither).
func (f *Facade) serveConsent(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, _ := cookieValue(r.Header.Values("Cookie"), f.consentCookie)
	p, found, err := f.store.pending(ctx, id)
	switch {
	case err != nil && !errors.Is(err, ErrCorrupt):
		f.fail(ctx, w, err)
		return
	case !found:
		f.consentRefused(ctx, w, http.StatusBadRequest, "No sign-in is waiting for your answer in this browser: it expired or was answered already.", "no pending consent")
		return
	}
	if r.Method == http.MethodGet {
		f.consentPage(ctx, w, p)
		return
	}

	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		f.consentRefused(ctx, w, http.StatusUnsupportedMediaType, "The answer was not sent by the consent form.", "consent form content type")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxConsentForm)
	if err := r.ParseForm(); err != nil {
		f.consentRefused(ctx, w, http.StatusBadRequest, "The answer was not sent by the consent form.", "consent form unreadable")
		return
	}
	tok := r.PostForm.Get("csrf_token")
	if len(r.PostForm["csrf_token"]) != 1 || subtle.ConstantTimeCompare([]byte(tok), []byte(p.CSRF)) != 1 {
		// Another site's form: the pending authorization stays for the real page's answer.
		f.consentRefused(ctx, w, http.StatusForbidden, "This answer was not sent from this site's consent page, and was ignored.", "consent CSRF token missing or wrong")
		return
	}
	decision := r.PostForm.Get("decision")
	if decision != "approve" && decision != "deny" {
		f.consentRefused(ctx, w, http.StatusBadRequest, "The answer was neither allow nor deny.", "consent decision")
		return
	}
	taken, err := f.store.takePending(ctx, id)
	if err != nil {
		f.fail(ctx, w, err)
		return
	}
	f.h.clearCookie(w, f.consentCookie)
	if !taken {
		f.consentRefused(ctx, w, http.StatusBadRequest, "This sign-in was answered already.", "pending consent taken")
		return
	}
	g := &p.Grant
	if decision == "deny" {
		f.onEvent("consent_denied")
		f.log.LogAttrs(ctx, slog.LevelInfo, "facade consent denied", slog.String("event", "consent_denied"),
			slog.String("client_id", g.ClientID), slog.String("subject", g.Subject))
		q := url.Values{"error": {"access_denied"}, "error_description": {"the user denied the request"}}
		if p.State != "" {
			q.Set("state", p.State)
		}
		f.redirectToClient(w, g.RedirectURI, q, http.StatusSeeOther)
		return
	}
	if err := f.store.rememberConsent(ctx, g.UpstreamIssuer, g.Subject, g.ClientID, g.Scopes, f.consentTTL); err != nil {
		// The user answered: go on; they will be asked again next time.
		f.log.LogAttrs(ctx, slog.LevelWarn, "remembering a facade consent failed", slog.String("reason", err.Error()))
	}
	f.onEvent("consent_approved")
	f.log.LogAttrs(ctx, slog.LevelInfo, "facade consent approved", slog.String("event", "consent_approved"),
		slog.String("client_id", g.ClientID), slog.String("subject", g.Subject))
	f.issue(ctx, w, g, p.State, http.StatusSeeOther)
}

func (f *Facade) consentRefused(ctx context.Context, w http.ResponseWriter, status int, message, reason string) {
	f.onEvent("consent_refused")
	f.log.LogAttrs(ctx, slog.LevelInfo, "facade consent request refused", slog.String("event", "consent_refused"), slog.String("reason", reason))
	writeHTML(w, status, pageCSP, "Cannot continue", "<p>"+template.HTMLEscapeString(message)+"</p>")
}

// consentTemplate is the consent page. Everything the client said about itself is shown as
// the client's claim; the redirect host is where the browser will go, which the facade did
// check (registered, or in the client's own document). Each answer is its own form of hidden
// fields, so that the decision is sent by the button's form alone, whatever the browser.
var consentTemplate = template.Must(template.New("consent").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Allow access?</title>
<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}code{background:#eee;padding:.1em .3em}button{font-size:1em;padding:.4em 1.2em;margin-right:1em}</style>
</head><body>
<h1>Allow {{.Name}} to act for you?</h1>
<p>An application calling itself <strong>{{.Name}}</strong>{{if .ClientHost}} ({{.ClientHost}}){{end}} asks for access to <code>{{.Resource}}</code> on your behalf.</p>
{{if .Document}}<p>It is identified by <code>{{.ClientID}}</code>.</p>{{else}}<p>It registered itself with this site; its name is its own claim.</p>{{end}}
{{if .Scopes}}<p>It asks for:</p><ul>{{range .Scopes}}<li><code>{{.}}</code></li>{{end}}</ul>{{end}}
<p>If you allow it, you will be sent to <strong>{{.RedirectHost}}</strong>.</p>
<p>Allow only applications you started yourself and trust.</p>
<form method="post" action="{{.Action}}" style="display:inline">
<input type="hidden" name="csrf_token" value="{{.CSRF}}"><input type="hidden" name="decision" value="approve">
<button type="submit">Allow</button>
</form>
<form method="post" action="{{.Action}}" style="display:inline">
<input type="hidden" name="csrf_token" value="{{.CSRF}}"><input type="hidden" name="decision" value="deny">
<button type="submit">Deny</button>
</form>
</body></html>
`))

type consentView struct {
	Name, ClientHost, ClientID, Resource, RedirectHost, Action, CSRF string
	Document                                                         bool
	Scopes                                                           []string
}

// consentPage shows the consent page for p. It has no script, and nothing may frame it
// (frame-ancestors, X-Frame-Options): a framed page could be clicked through.
func (f *Facade) consentPage(ctx context.Context, w http.ResponseWriter, p *pendingConsent) {
	g := &p.Grant
	cl, err := f.clients.ResolveClient(ctx, g.ClientID)
	if err != nil {
		f.consentRefused(ctx, w, http.StatusBadRequest, "The application that started this sign-in is no longer known.", "client gone before consent")
		return
	}
	v := consentView{
		Name: cl.ClientName, ClientID: cl.ClientID, Resource: g.Resource, Action: f.consentPath, CSRF: p.CSRF,
		Document: cl.MetadataDocument, Scopes: g.Scopes,
	}
	if v.Name == "" {
		v.Name = "an unnamed application"
	}
	if u, err := url.Parse(cl.ClientURI); err == nil && cl.ClientURI != "" {
		v.ClientHost = u.Host
	}
	if u, err := url.Parse(g.RedirectURI); err == nil {
		v.RedirectHost = u.Host
	}
	var b bytes.Buffer
	if err := consentTemplate.Execute(&b, v); err != nil {
		f.fail(ctx, w, err)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	// No form-action: the answer is redirected to the client's own origin, which browsers
	// would check against form-action too.
	hd.Set("Content-Security-Policy", pageCSP)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Bytes())
}
