package oauthflow

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/extauthz/extauthz/pkg/token"
)

// Refresh timing.
const (
	// refreshBefore: an access token expiring within this is refreshed.
	refreshBefore = 30 * time.Second
	// lockTTL is the refresh lock's lifetime; renewed while the refresh runs, so it only
	// matters when the holder dies.
	lockTTL = 10 * time.Second
	// refreshWait is how long a caller waits for another replica's refresh of an expired
	// token, polling every refreshPoll.
	refreshWait = 2 * time.Second
	refreshPoll = 50 * time.Millisecond
)

// errRefreshPending: the access token has expired and its refresh did not complete in time
// (another replica is still at it, or the server cannot be reached). The session is kept.
var errRefreshPending = errors.New("login: the session's access token has expired and could not be refreshed now")

// AccessToken returns the access token of the request's session for resource, refreshing it
// when it expires within 30 seconds. cookieHeader is the request's raw Cookie header (several
// headers joined with "; "). found is false, with no error, when there is no valid session
// cookie for the resource; the error is set when the sessions cannot be read now, or when an
// expired token cannot be refreshed now (see the package documentation, "Refresh"). This is
// the credential side of the authorization engine's authz.BrowserLogin, which the Handler
// implements.
func (h *Handler) AccessToken(ctx context.Context, resource, cookieHeader string) (tok string, found bool, err error) {
	tok, err = h.accessToken(ctx, resource, cookieHeader)
	switch {
	case errors.Is(err, errNoSession):
		return "", false, nil
	case err != nil:
		return "", false, err
	}
	return tok, true, nil
}

// accessToken is [Handler.AccessToken] with errNoSession for no valid session.
func (h *Handler) accessToken(ctx context.Context, resource, cookieHeader string) (string, error) {
	id, found := h.sessionID([]string{cookieHeader})
	if !found {
		return "", errNoSession
	}
	sess, err := h.getSession(ctx, id)
	if err != nil {
		return "", err
	}
	if sess.Resource != resource {
		return "", errNoSession // a session for another resource is not this one's credential
	}
	c := h.clients[sess.Resource]
	now := h.now()
	if c == nil || c.Issuer != sess.Issuer || !now.Before(sess.Created.Add(h.sessionTTL)) {
		// Login turned off or moved to another server, or the session's lifetime is over.
		h.endSession(ctx, id)
		return "", errNoSession
	}
	if sess.Expiry.IsZero() || now.Add(refreshBefore).Before(sess.Expiry) {
		return sess.AccessToken, nil
	}
	if sess.RefreshToken == "" {
		if now.Before(sess.Expiry) {
			return sess.AccessToken, nil
		}
		h.endSession(ctx, id)
		return "", errNoSession
	}
	return h.refresh(ctx, id, sess, c)
}

// getSession reads a session: errNoSession when absent or undecryptable (then deleted).
func (h *Handler) getSession(ctx context.Context, id string) (*Session, error) {
	sess, ok, err := h.store.Get(ctx, id)
	switch {
	case errors.Is(err, ErrCorrupt):
		h.endSession(ctx, id)
		return nil, errNoSession
	case err != nil:
		return nil, err
	case !ok:
		return nil, errNoSession
	}
	return sess, nil
}

// endSession deletes a session, best effort: it expires by itself otherwise.
func (h *Handler) endSession(ctx context.Context, id string) {
	if err := h.store.Delete(context.WithoutCancel(ctx), id); err != nil {
		h.log.LogAttrs(ctx, slog.LevelDebug, "deleting a session failed", slog.String("err", err.Error()))
	}
}

// refresh renews the session's tokens, once across all replicas: see the package
// documentation, "Refresh". seen is the session as read before.
func (h *Handler) refresh(ctx context.Context, id string, seen *Session, c *Client) (string, error) {
	// The refresh, once started, runs to its end even if the request goes away: a rotated
	// refresh token must be stored. The HTTP client's timeout bounds it.
	lctx := context.WithoutCancel(ctx)
	var wait <-chan time.Time
	for {
		release, locked, err := h.store.TryLock(lctx, id, lockTTL)
		if err != nil {
			return h.stillValid(seen, err)
		}
		if locked {
			tok, err := h.refreshLocked(lctx, id, seen, c)
			release()
			return tok, err
		}
		// Another caller is refreshing. A token that has not expired yet is still good.
		if h.now().Before(seen.Expiry) {
			return seen.AccessToken, nil
		}
		if wait == nil {
			t := time.NewTimer(refreshWait)
			defer t.Stop()
			wait = t.C
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-wait:
			return h.stillValid(seen, errRefreshPending)
		case <-time.After(refreshPoll):
		}
		cur, err := h.getSession(ctx, id)
		if err != nil {
			return "", err // errNoSession when the refresh failed and ended it
		}
		if cur.AccessToken != seen.AccessToken {
			return cur.AccessToken, nil
		}
	}
}

// stillValid is the answer when a refresh could not be done now: the current token while it
// has not expired, err afterwards.
func (h *Handler) stillValid(seen *Session, err error) (string, error) {
	if h.now().Before(seen.Expiry) {
		return seen.AccessToken, nil
	}
	return "", err
}

// refreshLocked refreshes under the session's lock.
func (h *Handler) refreshLocked(ctx context.Context, id string, seen *Session, c *Client) (string, error) {
	// Read again: another replica may have refreshed between our read and our lock.
	cur, err := h.getSession(ctx, id)
	if err != nil {
		return "", err
	}
	if cur.AccessToken != seen.AccessToken {
		return cur.AccessToken, nil
	}
	md, err := h.metadata(ctx, c)
	if err != nil {
		h.logFailure(ctx, "refresh_failed", c.Resource, cur.Subject, err)
		return h.stillValid(cur, fmt.Errorf("login: refresh: %w", err))
	}
	tr, err := h.requestToken(ctx, c, md, url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {cur.RefreshToken},
		"resource":      {c.ResourceURI},
	})
	if err != nil {
		h.logFailure(ctx, "refresh_failed", c.Resource, cur.Subject, err)
		var ee *endpointError
		if errors.As(err, &ee) && ee.definitive() {
			h.endSession(ctx, id)
			return "", errNoSession
		}
		return h.stillValid(cur, fmt.Errorf("login: refresh: %w", err))
	}

	now := h.now()
	claims, err := h.verify(ctx, c, tr.AccessToken)
	switch {
	case err == nil && claims.Subject != cur.Subject:
		err = errors.New("the refreshed access token names another subject")
		fallthrough
	case err != nil && (errors.Is(err, errWrongAudience) || token.Definitive(err)):
		h.logFailure(ctx, "refresh_failed", c.Resource, cur.Subject, err)
		h.endSession(ctx, id)
		return "", errNoSession
	case err != nil:
		// It cannot be verified now (keys unreachable): keep the new token set, which the
		// server has issued and may have rotated; the Check verifies the token anyway.
		h.logFailure(ctx, "refresh_failed", c.Resource, cur.Subject, err)
		claims = nil
	}

	next := *cur
	next.AccessToken = tr.AccessToken
	if tr.RefreshToken != "" {
		next.RefreshToken = tr.RefreshToken
	}
	if tr.IDToken != "" {
		next.IDToken = tr.IDToken
	}
	next.Expiry = expiry(now, tr, claims)
	if next.Expiry.IsZero() {
		next.Expiry = now.Add(refreshBefore + time.Minute) // neither said: renew soon
	}
	ttl := h.sessionTTLFor(now, &next, tr)
	if ttl <= 0 {
		h.endSession(ctx, id)
		return "", errNoSession
	}
	if err := h.store.Put(ctx, id, &next, ttl); err != nil {
		h.logFailure(ctx, "refresh_failed", c.Resource, cur.Subject, err)
		// The new tokens are lost for the other replicas; this request may still use them.
		return next.AccessToken, nil
	}
	h.onEvent("refresh")
	h.log.LogAttrs(ctx, slog.LevelInfo, "session refreshed",
		slog.String("event", "refresh"), slog.String("resource", c.Resource),
		slog.String("subject", cur.Subject), slog.Bool("rotated", tr.RefreshToken != "" && tr.RefreshToken != cur.RefreshToken))
	return next.AccessToken, nil
}

// StripCookie removes the session cookie (and any sign-in binding cookie) from a Cookie header
// value, for the upstream: the session id is a credential. It returns "" if nothing remains.
// Cookies are separated by ";" (RFC 6265 §5.4); a proxy that merges two Cookie headers may join
// them with "," instead, so a ","-separated run is searched too, and only the session's part
// of it is dropped.
func (h *Handler) StripCookie(cookieHeader string) string {
	if !strings.Contains(cookieHeader, h.cookieName) {
		return strings.TrimSpace(cookieHeader)
	}
	var kept []string
	for part := range strings.SplitSeq(cookieHeader, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if strings.IndexByte(part, ',') >= 0 {
			var sub []string
			for crumb := range strings.SplitSeq(part, ",") {
				if !h.isLoginCookie(crumb) {
					sub = append(sub, crumb)
				}
			}
			if part = strings.TrimSpace(strings.Join(sub, ",")); part == "" {
				continue
			}
		}
		if h.isLoginCookie(part) {
			continue
		}
		kept = append(kept, part)
	}
	return strings.Join(kept, "; ")
}

// isLoginCookie reports whether a "name=value" cookie pair is the session cookie or a sign-in
// binding cookie.
func (h *Handler) isLoginCookie(pair string) bool {
	name, _, _ := strings.Cut(pair, "=")
	name = strings.TrimSpace(name)
	return name == h.cookieName || strings.HasPrefix(name, h.statePrefix)
}

// LoginURL is where an unauthenticated browser navigation to pathAndQuery on host is sent
// (the Location of a 302), or "" when there is no sign-in for it: host is not PublicURL's
// host (the session cookie would never reach it), pathAndQuery is not a valid return path, or
// its resource has no Client.
func (h *Handler) LoginURL(host, pathAndQuery string) string {
	if normalizeHost(host, h.scheme) != h.hostKey || !validReturnPath(pathAndQuery) {
		return ""
	}
	resource, ok := h.route(host, routePath(pathAndQuery))
	if !ok || h.clients[resource] == nil {
		return ""
	}
	return h.publicURL + h.loginPath + "?rd=" + url.QueryEscape(pathAndQuery)
}

// sessionID finds the session cookie in Cookie header values: the first cookie of that name
// whose value looks like a session id.
func (h *Handler) sessionID(headers []string) (string, bool) {
	for _, hv := range headers {
		for part := range strings.SplitSeq(hv, ";") {
			name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok || strings.TrimSpace(name) != h.cookieName {
				continue
			}
			value = strings.Trim(strings.TrimSpace(value), `"`)
			if validID(value) {
				return value, true
			}
		}
	}
	return "", false
}

// cookieValue returns the value of the first cookie called name.
func cookieValue(headers []string, name string) (string, bool) {
	for _, hv := range headers {
		for part := range strings.SplitSeq(hv, ";") {
			n, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok && strings.TrimSpace(n) == name {
				return strings.Trim(strings.TrimSpace(v), `"`), true
			}
		}
	}
	return "", false
}

// validID reports whether s looks like a NewID value: 43 base64url characters.
func validID(s string) bool {
	if len(s) != base64.RawURLEncoding.EncodedLen(IDBytes) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// randomString is 32 random bytes as base64url (43 characters): PKCE verifiers and nonces.
func randomString() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("login: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
