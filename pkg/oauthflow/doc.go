// Package oauthflow runs the OAuth flows the gateway takes part in on its HTTP listener, as a
// client of the identity provider and, for the OAuth facade, as the MCP clients'
// authorization server in front of it. As a client: the browser login (the OAuth 2.1
// authorization-code flow with PKCE, as the gateway's confidential client), its callback and
// logout, the sealed login state that ties a callback to the browser that started it, and the
// sessions that keep a signed-in browser's tokens server-side. People can thus sign in to a
// protected resource without the resource knowing anything about OAuth; a browser carries
// only a random session id in a cookie.
//
// The OAuth facade (issue #22, docs/oauth-facade.md) is built here in parts that need no
// browser: its RFC 8414 metadata ([FacadeMetadata]), RFC 7591 registration of public
// clients ([Registration]), Client ID Metadata Documents fetched safely ([ClientDocuments]),
// one lookup for both ([ClientResolver.ResolveClient]), the access tokens it mints and their
// key set ([TokenSigner]), and its storage ([FacadeStore]: registered clients, single-use
// codes, rotating refresh-token families; see Facade storage). Its authorize, consent,
// callback, token and revocation endpoints, its configuration and its wiring are not built
// yet. It is not for verifying tokens (pkg/token) nor for the resource's own metadata
// (pkg/metadata).
//
// [Handler] serves the endpoints and, for the authorization engine, turns a request's session
// cookie into the access token it holds ([Handler.AccessToken]), strips the cookie from what
// the upstream sees ([Handler.StripCookie]) and names where a browser signs in
// ([Handler.LoginURL]). [Store] keeps the sessions (see Storage).
//
// # Endpoints
//
// [Handler] serves three paths on the gateway's HTTP listener (defaults shown):
//
//   - GET /oauth/login?rd=<return path>: checks rd (see below), finds the resource rd belongs
//     to ([Options.Route]) and its [Client], refuses to start unless the authorization server
//     supports PKCE with S256, seals a login state (the PKCE verifier, a nonce when openid is
//     requested, rd, its expiry) into a cookie, storing nothing (see Login states), and
//     redirects the browser to the authorization endpoint with response_type=code, client_id,
//     redirect_uri (PublicURL + CallbackPath), scope, state, code_challenge,
//     code_challenge_method=S256, resource (RFC 8707), nonce (when openid is requested) and
//     prompt=consent (when offline_access is requested: OIDC Core §11 requires it, and
//     servers such as oidc-provider otherwise drop offline_access and issue no refresh token).
//   - GET /oauth/callback: opens the state's cookie (absent, changed, sealed for another state
//     or expired: a 400 page; see Login states), clears it, checks iss (RFC 9207), shows an
//     error page for an error response, refuses a state already used, exchanges the code (with
//     the verifier, resource and the client's authentication), verifies the access token
//     exactly as a Check would plus its audience, checks the ID token's nonce, records the state
//     as used, stores a session and sets the session cookie, then redirects to rd.
//   - GET /oauth/logout[?rd=<return path>] answers a page that asks to sign out, and changes
//     nothing; POST /oauth/logout[?rd=<return path>], from this site only (see Sign-out),
//     revokes the session's refresh and access tokens at the server's revocation endpoint when
//     it has one (RFC 7009; failures are logged, not shown), deletes the session, clears the
//     cookie and redirects to rd or SuccessRedirect.
//
// Every answer carries Cache-Control: no-store and Referrer-Policy: no-referrer (same-origin on
// the sign-out page, so that its form's POST carries its Origin). Error pages are tiny HTML
// documents (text/html; charset=utf-8) in which every dynamic value is escaped; they
// never show an error_description, which the authorization response lets anyone write.
//
// # Return paths
//
// rd accepts only a same-origin relative path: it must start with a single "/" (not "//",
// not "/\"), contain only visible ASCII (no control characters, no spaces, no backslash
// anywhere), parse as a URL without scheme or host, and percent-decoding it (up to three
// times, as layers of proxies and browsers might) must never yield a leading "//", a
// backslash or a control character. No double quote (browsers send %22). At most 1024 bytes,
// which keeps the login-state cookie small. Anything else is a 400 page at /oauth/login; at
// /oauth/logout an invalid rd is ignored (the browser is still signed out and sent to
// SuccessRedirect). A missing or empty rd means SuccessRedirect. A navigation to a longer path
// is not sent to sign in ([Handler.LoginURL] offers nothing): the Check answers its 401.
//
// # Sessions and cookies
//
// A session is created only by a successful callback: its id is [NewID] (256 bits,
// 43 base64url characters) and is the whole cookie value; the tokens stay in the
// [Store], encrypted at rest. The cookie is "name=id; Path=/; Max-Age=<ttl>;
// HttpOnly; Secure; SameSite=Lax", without Secure only when PublicURL is plain http on a
// loopback host (development), where the default name is "extauthz-session" instead of
// "__Host-extauthz-session" (the __Host- prefix requires Secure). On https a CookieName must
// keep the __Host- prefix: the cookie is Secure, Path=/ and without Domain, so the prefix is
// always possible, and without it a sibling host could set the cookie for this one (cookie
// tossing). ttl is the session lifetime (SessionTTL), shortened to refresh_token_expires_in
// when the server sends it, and to the access token's expiry when there is no refresh token
// (nothing could renew it). A session also ends SessionTTL after its creation whatever
// refreshes happened meanwhile.
//
// One cookie holds one session, for one resource: signing in to another resource on the same
// host replaces it (the previous session is deleted).
//
// # Login states
//
// Starting a sign-in stores nothing, so that unauthenticated requests cannot fill the store
// (in Redis, shared with the verdict cache and the revocations). The state parameter is a
// fresh random value (256 bits), and the login state travels in a short-lived cookie named
// after it (CookieName + "-state-" + 16 hex characters of its SHA-256, same attributes as the
// session cookie, Max-Age StateTTL), sealed with AES-256-GCM under the session key
// ([Store.SealState]): the state is its additional data and its expiry (StateTTL) is
// inside, so a cookie opens only for its own state, and not after StateTTL whatever the
// browser does with Max-Age. Each sign-in has its own cookie, so several tabs may sign in at
// once; with the longest rd a cookie is about 1.7 KB. SameSite=Lax cookies are sent on the
// authorization server's top-level redirect back to the callback.
//
// The cookie is also what ties a callback to the browser that started the sign-in (login
// CSRF): an attacker could start one, stop at the redirect back, and send a victim to the
// callback URL to sign the victim in to the attacker's account; the victim's browser has no
// cookie for that state, and the callback refuses it.
//
// A state is used once. The authorization server refuses a second use of a code (RFC 6749
// §4.1.2), and the callback clears the cookie that holds the code's PKCE verifier. As defence
// in depth, once the server has accepted a code the state is recorded as used
// ([Store.MarkStateUsed], until it expires), and a callback whose state is recorded is
// refused before its code is exchanged: so only sign-ins that the server accepted write to the
// store, one small marker each.
//
// # Sign-out
//
// A GET of LogoutPath changes nothing, so that a link, an image or a redirect on another site
// cannot sign anyone out: it answers a page whose button POSTs to the same address. A POST
// signs out only when it comes from a page of PublicURL's origin: its Origin header names
// exactly that origin or, without Origin (or with "null", which browsers send from pages under
// Referrer-Policy: no-referrer), Sec-Fetch-Site is "same-origin" or "none". Anything else
// (another site's form, a client that sends neither header) is a 403 page and changes nothing.
// rd may be in the query or a form field.
//
// # Hosts
//
// The callback runs on PublicURL's host, so the session cookie belongs to that host alone.
// [Handler.LoginURL] therefore offers the login only for requests to PublicURL's host (default
// ports aside): a resource on another host would never see the cookie and would loop through
// the authorization server. /oauth/login routes rd on PublicURL's host too.
//
// # Refresh
//
// [Handler.AccessToken] refreshes an access token that expires within 30 seconds. One replica
// at a time refreshes a session, under [Store.TryLock] on the session id (renewed
// while the refresh runs, which continues even if the request that started it is cancelled, so
// that a rotated refresh token is never lost): the holder reads the session again, refreshes,
// verifies the new access token as a Check would, and stores the new token set (keeping the
// old refresh token when no new one is returned). A caller that finds the lock taken returns
// the current access token if it has not expired yet; otherwise it polls the store for up to
// two seconds for the refreshed session, retrying the lock meanwhile. A refresh the server
// refuses (an OAuth error answer, such as invalid_grant for a revoked refresh token), or whose
// access token fails verification for good, deletes the session: no session is found. A refresh
// that cannot be done now (server unreachable, 5xx, the wait running out) ends nothing: the
// current access token is returned while it is valid, an error afterwards.
//
// # ID tokens
//
// When a nonce was sent and the token response carries an id_token, the callback compares the
// ID token's nonce claim with it. The ID token's signature is not verified for that: it came
// over TLS straight from the token endpoint, authenticated by the gateway's client credentials
// (OIDC Core §3.1.3.7 allows relying on TLS server validation in this case), and nothing else
// is read from it. Identity comes only from the verified access token.
//
// # Logging
//
// One structured record per event, with event=login|login_failed|refresh|refresh_failed|logout,
// resource, subject when known, and reason for failures. Tokens, codes, states, verifiers,
// session ids and cookies are never logged.
//
// # Storage
//
// A [Store] keeps what the login needs across requests and replicas: login states, between
// /oauth/login and /oauth/callback, sealed for a cookie and never stored; sessions, which hold a
// signed-in browser's token set, found by the random id in its cookie; markers of completed
// sign-ins, so that a callback is not replayed; and a fleet-wide lock, so that one replica at a
// time refreshes a session's tokens.
//
// # Where the store keeps them
//
// A [Store] keeps sessions, markers and locks in Redis when it is given a client (standalone,
// Sentinel or Cluster: every command touches one key), shared by every replica; otherwise in
// process, for a single replica. Login states are not kept anywhere: [Store.SealState] turns
// one into a cookie value and [Store.OpenState] reads it back, so starting a sign-in writes
// nothing, and a flood of unauthenticated sign-ins costs the store nothing.
//
// Redis keys are
//
//	extauthz:v1:session:<hex SHA-256 of the session id>
//	extauthz:v1:used:<hex SHA-256 of the state>
//	extauthz:v1:lock:<hex SHA-256 of the lock name>
//
// so the raw id or state never appears in Redis: a leaked key list yields no usable cookie.
// The in-process store uses the same keys.
//
// # Stored format
//
// A session is stored as AES-256-GCM under the [Key], with a random 96-bit nonce and the
// entry's key string as additional data: the value is nonce || ciphertext || tag, where the
// plaintext is a compact JSON object (short field names, empty fields left out). A value that
// does not open (another key, a changed byte, or a value copied under another key, which the
// additional data catches) is reported as [ErrCorrupt]; the caller ends that session. The
// in-process store keeps the same encrypted bytes, so that tokens are not in memory in the
// clear between requests, and everything said here about tampering holds for both.
//
// A sealed login state is the same construction, base64url-encoded (unpadded) for a cookie,
// with "extauthz:v1:state:<hex SHA-256 of the state>" as additional data: it opens only for
// the state it was sealed for, so a cookie cannot be replayed under another sign-in. Its
// plaintext carries its expiry, which [Store.OpenState] enforces whatever the browser does
// with the cookie's Max-Age.
//
// A marker's value is "1", and a lock's value its holder's random token, both in the clear
// (neither names a session).
//
// # Store lifetimes
//
// Every session and marker is written with a lifetime (ttl > 0): in Redis as the key's PX (the
// ttl rounded up to a millisecond), which alone decides expiry there; in process as an expiry
// time by [StoreOptions.Now]. Expired in-process entries are dropped when they are read, and by a
// sweep of the whole store that runs, at most once a minute, on whichever call comes first
// after the minute: no goroutine, so nothing to close.
//
// # Store bound
//
// Nothing here is written for an unauthenticated request: a marker follows a code exchange
// that the authorization server accepted, a session a completed sign-in. The in-process store
// holds at most [StoreOptions.MaxEntries] sessions and markers together. When it is full, a new
// entry first reclaims expired ones (a sweep, at most once a second), then evicts the oldest
// marker (a marker is defence in depth: the authorization server refuses a second use of a
// code anyway), and only when no marker is left is it refused with [ErrFull]. Overwriting an
// existing session is always allowed. Locks are not counted: one exists only while its holder
// holds it.
//
// # Store timeouts
//
// Every Redis call has its own deadline of [StoreOptions.Timeout] on top of the caller's context.
// The client must let contexts set socket deadlines (ContextTimeoutEnabled, as
// cache.NewRedisClient builds it), and its own read and write timeouts apply as well: the
// shorter wins.
//
// Errors never contain tokens, ids, states, lock names or key material.
//
// # Facade storage
//
// A [FacadeStore] keeps the facade's records in Redis (standalone, Sentinel or Cluster) or in
// process, each sealed like a session (AES-256-GCM under the [Key], the storage key as
// additional data: a record moved to another key, or written without the key, does not open;
// a Redis writer cannot forge a client, a code or a refresh family), under
//
//	extauthz:v1:{fclient}:<hex SHA-256 of the client id>   registered clients
//	extauthz:v1:{fclient}:index                           their expiries (a sorted set)
//	extauthz:v1:fcode:<hex SHA-256 of the code>            authorization codes
//	extauthz:v1:ffamily:<hex SHA-256 of the family id>     refresh families
//
// Clients and their index share a hash tag, so that registering one counts the live ones in
// one script on a Cluster too; MaxClients bounds them in both backends. A client lives
// ClientTTL after its registration or last use. A code lives at most 60 seconds and is taken
// with GETDEL, so it is spent by its first redemption on any replica. A refresh family is
// rotated by a compare-and-swap of its sealed record. The in-process store bounds codes and
// families together with MaxEntries ([ErrFull]).
//
// The package is over ~1,500 lines because it holds three flows (sign-in, callback, sign-out),
// the session store in two backends (memory, Redis) and the session's access token with its
// refresh, which share one Handler and one sealed-cookie key, and the facade's parts, which
// will share the provider client, state and callback with the sign-in; about 230 of its lines
// are this documentation.
package oauthflow
