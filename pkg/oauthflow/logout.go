package oauthflow

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
)

// maxLogoutForm bounds a sign-out form's body: it has one short field.
const maxLogoutForm = 4 << 10

// serveLogout serves LogoutPath[?rd=<return path>]. A GET changes nothing: it answers a page
// whose button POSTs to the same address. A POST ends the browser's session, when it comes
// from this site (see the package documentation, "Sign-out"); rd may also be a form field.
func (h *Handler) serveLogout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rd := r.URL.Query().Get("rd")
	if r.Method != http.MethodPost {
		if !validReturnPath(rd) {
			rd = ""
		}
		h.logoutPage(w, rd)
		return
	}
	if !h.sameOrigin(r.Header) {
		h.logFailure(ctx, "logout", "", "", errors.New("a sign-out request from another site (Origin / Sec-Fetch-Site) was refused"))
		h.page(w, http.StatusForbidden, "Sign-out refused",
			"This sign-out request did not come from this site. Use the sign-out button of this site.", "")
		return
	}
	if rd == "" {
		r.Body = http.MaxBytesReader(w, r.Body, maxLogoutForm)
		rd = r.PostFormValue("rd") // "" when absent or unreadable: SuccessRedirect
	}
	if !validReturnPath(rd) {
		rd = h.successRedirect // also for an invalid one: the sign-out happens anyway
	}
	var resource, subject string
	if id, found := h.sessionID(r.Header.Values("Cookie")); found {
		sess, ok, err := h.store.Get(ctx, id)
		if err == nil && ok {
			resource, subject = sess.Resource, sess.Subject
			h.revokeSession(ctx, sess)
		}
		if err := h.store.Delete(ctx, id); err != nil {
			h.logFailure(ctx, "logout", resource, subject, err)
		}
	}
	h.clearCookie(w, h.cookieName)
	attrs := []slog.Attr{slog.String("event", "logout")}
	if resource != "" {
		attrs = append(attrs, slog.String("resource", resource), slog.String("subject", subject))
	}
	h.onEvent("logout")
	h.log.LogAttrs(ctx, slog.LevelInfo, "browser sign-out", attrs...)
	w.Header().Set("Location", rd)
	w.WriteHeader(http.StatusFound)
}

// sameOrigin reports whether a POST's headers say it comes from a page of PublicURL's
// origin: an Origin header (RFC 6454 §7) naming exactly that origin; or, when there is no
// Origin or it is "null", Sec-Fetch-Site "same-origin" or "none" (a request the user made
// directly), as browsers send it (Fetch Metadata; pages cannot set it). Browsers send
// "Origin: null" on a form POST from a page whose Referrer-Policy is no-referrer, even to its
// own origin (Fetch, "append a request Origin header"). A request that says neither, as a
// plain HTTP client's, is refused.
func (h *Handler) sameOrigin(hd http.Header) bool {
	origins := hd.Values("Origin")
	if len(origins) > 1 {
		return false
	}
	if len(origins) == 1 && origins[0] != "null" {
		u, err := url.Parse(origins[0])
		if err != nil || u.Scheme != h.scheme || u.Host == "" || u.User != nil || u.Opaque != "" ||
			u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
			return false // a list, or anything but scheme://host[:port]
		}
		return normalizeHost(u.Host, u.Scheme) == h.hostKey
	}
	sites := hd.Values("Sec-Fetch-Site")
	return len(sites) == 1 && (sites[0] == "same-origin" || sites[0] == "none")
}

// revokeSession revokes the session's refresh token, then its access token, when the server
// has a revocation endpoint. Failures are logged only: the session ends anyway.
func (h *Handler) revokeSession(ctx context.Context, sess *Session) {
	c := h.clients[sess.Resource]
	if c == nil || c.Issuer != sess.Issuer {
		return
	}
	md, err := h.metadata(ctx, c)
	if err != nil || md.RevocationEndpoint == "" {
		if err != nil {
			h.logFailure(ctx, "logout", sess.Resource, sess.Subject, err)
		}
		return
	}
	// Revocation must not be cut short by the browser going away: the refresh token would
	// stay valid at the server.
	rctx := context.WithoutCancel(ctx)
	for _, t := range []struct{ tok, hint string }{
		{sess.RefreshToken, "refresh_token"},
		{sess.AccessToken, "access_token"},
	} {
		if t.tok == "" {
			continue
		}
		if err := h.revoke(rctx, c, md, t.tok, t.hint); err != nil {
			level := slog.LevelWarn
			var ee *endpointError
			if errors.As(err, &ee) && ee.code == "unsupported_token_type" {
				level = slog.LevelDebug // e.g. JWT access tokens, which many servers cannot revoke
			}
			h.log.LogAttrs(ctx, level, "token revocation failed",
				slog.String("event", "logout"), slog.String("resource", sess.Resource),
				slog.String("subject", sess.Subject), slog.String("token_type_hint", t.hint),
				slog.String("reason", err.Error()))
		}
	}
}
