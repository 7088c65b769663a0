package upstream

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sync/singleflight"

	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/introspect"
	"github.com/extauthz/extauthz/pkg/token"
)

// Modes of a Minter.
const (
	// ModeExchange mints, per incoming token, a token for the upstream by
	// RFC 8693 token exchange of that token.
	ModeExchange = "exchange"
	// ModeClientCredentials mints one token for the gateway itself
	// (RFC 6749 §4.4), sent upstream with every request.
	ModeClientCredentials = "client_credentials"
)

// Results reported to Observer.Exchange.
const (
	ResultOK      = "ok"
	ResultRefused = "refused"
	ResultError   = "error"
)

// Sources of a Credential.
const (
	SourceLocal  = "local"  // this replica's memory
	SourceRedis  = "redis"  // the shared tier (another replica minted it)
	SourceMinted = "minted" // the token endpoint, for this request
)

// Subject is the verified incoming token an exchange is for.
type Subject struct {
	Raw string
	// Hash is token.CacheHash(Raw): the cache key is built from it, so
	// the two must belong together (checked before every mint).
	Hash [sha256.Size]byte
	// Expiry is the incoming token's exp: a token minted from it is never
	// cached beyond it (zero: not cached at all).
	Expiry time.Time
}

// Credential is an access token to send upstream.
type Credential struct {
	Token string
	// Authorization is "Bearer " + Token, the header value the upstream
	// gets: built once per entry, not per request.
	Authorization string
	// Expiry is the minted token's own expiry (its exp, or expires_in).
	Expiry time.Time
	// Source is SourceLocal, SourceRedis or SourceMinted.
	Source string
}

// Observer receives events for metrics. Its methods must be quick.
type Observer interface {
	// Exchange reports one token endpoint call: its result (ResultOK,
	// ResultRefused, ResultError) and duration. mode is the grant made:
	// an exchange's actor token is a client_credentials call.
	Exchange(resource, mode, result string, d time.Duration)
	// Lookup reports one Token: the tier that answered ("local",
	// "redis") or "none" for a miss. (The lookups of an exchange's actor
	// token are not reported.)
	Lookup(resource, tier string, hit bool)
}

type nopObserver struct{}

func (nopObserver) Exchange(string, string, string, time.Duration) {}
func (nopObserver) Lookup(string, string, bool)                    {}

// Options configures a Minter.
type Options struct {
	// Name is the protected resource's: in logs, metrics, and the cache
	// key.
	Name string
	// Mode is ModeExchange or ModeClientCredentials.
	Mode string
	// Issuer is the authorization server's issuer identifier: the aud of
	// private_key_jwt assertions and the required iss of a minted JWT.
	Issuer string
	// TokenEndpoint returns the token endpoint: configured, or discovered
	// (RFC 8414) by the caller. An error means it is not known now.
	TokenEndpoint func(ctx context.Context) (string, error)
	// Keys verify a minted JWT (the server's JWKS). nil: a minted JWT
	// cannot be verified, and is not used (ErrUnavailable).
	Keys token.KeySource
	// Algorithms accepted for minted JWTs (nil: token.DefaultAlgorithms).
	Algorithms []string
	// ClientID and the gateway's credentials at the server, as in package
	// introspect: AuthMethod is introspect.ClientSecretBasic (default),
	// ClientSecretPost or PrivateKeyJWT.
	ClientID, AuthMethod, ClientSecret string
	Signer                             *introspect.AssertionSigner
	// Audience (RFC 8693 §2.1), Resource (RFC 8707) and Scopes to ask
	// for. At least one audience or resource is required: a minted JWT's
	// aud must be within them (Audience if set, else Resource).
	Audience, Resource, Scopes []string
	// Actor (exchange only) also sends, as actor_token, the gateway's own
	// client_credentials token from the same server, asked for with this
	// Audience and Resource and no scope (it identifies the gateway; it
	// must not carry a permission of its own). It is cached like any
	// minted token.
	Actor bool
	// Timeout bounds one token endpoint call (default 2s).
	Timeout time.Duration
	// ExpiryMargin: a minted token is not used in the last this-long of
	// its life, so that it does not expire in flight. Zero is taken as
	// zero, as pkg/config gives it (whose default is 30s); not negative.
	ExpiryMargin time.Duration
	// RefreshAhead is the fraction of its cached life that an entry may
	// have left when a hit starts a background re-mint, in [0, 0.9]; 0
	// disables it, as in pkg/config (whose default is 0.2).
	RefreshAhead float64
	// RefusalTTL is how long a definitive refusal is cached (default 30s).
	RefusalTTL time.Duration
	// MaxTTL caps how long a minted token is cached (default 1h).
	MaxTTL time.Duration
	// DefaultLifetime is the life of an opaque minted token without
	// expires_in (default 60s).
	DefaultLifetime time.Duration
	// HTTPClient makes the calls (nil: a plain client; Timeout applies).
	// Redirects are never followed.
	HTTPClient *http.Client
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Logger receives what an operator must fix (nil: discard). Never a
	// token, a secret or an assertion.
	Logger *slog.Logger
	// Tracer traces mints (nil: none).
	Tracer trace.Tracer
	// Observer receives metrics events (nil: none).
	Observer Observer
	// Store holds the credentials; required, shared by all Minters of a
	// process.
	Store *Store
}

// Defaults of Options.
const (
	defaultTimeout         = 2 * time.Second
	defaultRefusalTTL      = 30 * time.Second
	defaultMaxTTL          = time.Hour
	defaultDefaultLifetime = time.Minute
	// pollInterval is how often a replica waiting for another's mint
	// looks for the result.
	pollInterval = 20 * time.Millisecond
	// loudEvery throttles each loud log line of a Minter: a broken
	// configuration fails every request, and one line says it.
	loudEvery = 10 * time.Second
)

// Minter gets upstream credentials for one protected resource. It is safe
// for concurrent use.
type Minter struct {
	o      Options
	auth   introspect.ClientAuth
	store  *Store
	tracer trace.Tracer

	// fp fingerprints what a credential depends on besides the incoming
	// token; ccKey and actorKey are the fixed keys of client_credentials
	// mode and of the actor token.
	fp              [sha256.Size]byte
	ccKey, actorKey cache.Key

	verifier  *token.IssuerSet // nil without Keys
	issuers   map[string]struct{}
	audiences map[string]struct{}

	flight singleflight.Group

	loudMu sync.Mutex
	loudAt map[string]time.Time
}

// kind is what one cache entry of a Minter holds.
type kind uint8

const (
	kindExchange kind = iota
	kindClientCredentials
	kindActor
)

// New checks the options and builds a Minter.
func New(o Options) (*Minter, error) {
	switch {
	case o.Name == "":
		return nil, errors.New("upstream: a name is required")
	case o.Mode != ModeExchange && o.Mode != ModeClientCredentials:
		return nil, fmt.Errorf("upstream: unknown mode %q", o.Mode)
	case o.Issuer == "" || o.TokenEndpoint == nil || o.ClientID == "":
		return nil, errors.New("upstream: issuer, token endpoint and client id are required")
	case o.Store == nil:
		return nil, errors.New("upstream: a store is required")
	case len(o.Audience) == 0 && len(o.Resource) == 0:
		return nil, errors.New("upstream: an audience or a resource is required")
	case o.Actor && o.Mode != ModeExchange:
		return nil, errors.New("upstream: an actor token is for exchange mode only")
	case o.RefreshAhead < 0 || o.RefreshAhead > 0.9:
		return nil, errors.New("upstream: refresh ahead is a fraction from 0 to 0.9")
	case o.ExpiryMargin < 0:
		return nil, errors.New("upstream: the expiry margin must not be negative")
	}
	auth := introspect.ClientAuth{
		Method: o.AuthMethod, ClientID: o.ClientID, ClientSecret: o.ClientSecret, Signer: o.Signer,
		Audience: o.Issuer,
	}
	if err := auth.Validate(); err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	setDefaults(&o)
	if o.DefaultLifetime <= o.ExpiryMargin {
		o.Logger.Warn("upstream_token default_lifetime is not longer than expiry_margin: an opaque token without expires_in is minted for every request",
			"resource", o.Name, "default_lifetime", o.DefaultLifetime, "expiry_margin", o.ExpiryMargin)
	}
	m := &Minter{o: o, auth: auth, store: o.Store, tracer: o.Tracer, loudAt: map[string]time.Time{}}
	m.issuers = map[string]struct{}{o.Issuer: {}}
	allowed := o.Audience
	if len(allowed) == 0 {
		allowed = o.Resource
	}
	m.audiences = make(map[string]struct{}, len(allowed))
	for _, a := range allowed {
		m.audiences[a] = struct{}{}
	}
	if o.Keys != nil {
		v, err := token.NewIssuerSet(token.Options{
			Issuers: map[string]token.Issuer{o.Issuer: {
				Mode: token.ModeJWT, Keys: o.Keys,
				// The server's access tokens need not be typed at+jwt;
				// a JWT typed as anything else (an ID token, a refresh
				// token) is still refused.
				AllowUntyped: true,
			}},
			Algorithms: o.Algorithms,
			Leeway:     clockSkew,
			MaxBytes:   maxResponseBytes,
			Now:        o.Now,
		})
		if err != nil {
			return nil, fmt.Errorf("upstream: %w", err)
		}
		m.verifier = v
	}
	m.fp = fingerprint(o, o.Mode, o.Scopes)
	m.ccKey = fixedKey(m.fp)
	m.actorKey = fixedKey(fingerprint(o, "actor", nil))
	return m, nil
}

func setDefaults(o *Options) {
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	if o.RefusalTTL <= 0 {
		o.RefusalTTL = defaultRefusalTTL
	}
	if o.MaxTTL <= 0 {
		o.MaxTTL = defaultMaxTTL
	}
	if o.DefaultLifetime <= 0 {
		o.DefaultLifetime = defaultDefaultLifetime
	}
	hc := &http.Client{}
	if o.HTTPClient != nil {
		c := *o.HTTPClient
		hc = &c
	}
	// Never follow a redirect: a 307 or 308 would resend the incoming
	// token and the gateway's credentials to wherever the answer points.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	o.HTTPClient = hc
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Tracer == nil {
		o.Tracer = noop.NewTracerProvider().Tracer("")
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
}

// keyTag separates these keys' hashes from any other SHA-256 of the
// project.
const keyTag = "extauthz upstream credential key v1\x00"

// fingerprint hashes what a credential depends on besides the incoming
// token, each field length-prefixed so that no two configurations share
// an encoding. Scopes are sorted: their order asks for nothing different.
func fingerprint(o Options, mode string, scopes []string) [sha256.Size]byte {
	h := sha256.New()
	field := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	list := func(l []string) {
		field(fmt.Sprint(len(l)))
		for _, s := range l {
			field(s)
		}
	}
	field(o.Name)
	field(mode)
	field(o.Issuer)
	field(o.ClientID)
	list(o.Audience)
	list(o.Resource)
	sorted := slices.Clone(scopes)
	slices.Sort(sorted)
	list(sorted)
	field(fmt.Sprint(o.Actor))
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// fixedKey is the key of a credential that does not depend on an incoming
// token.
func fixedKey(fp [sha256.Size]byte) cache.Key {
	var b [len(keyTag) + sha256.Size]byte
	copy(b[:], keyTag)
	copy(b[len(keyTag):], fp[:])
	return cache.Key{Namespace: namespace, Hash: sha256.Sum256(b[:])}
}

// exchangeKey is the key of the credential minted from the incoming token
// of hash h. It does not allocate.
func (m *Minter) exchangeKey(h *[sha256.Size]byte) cache.Key {
	var b [len(keyTag) + 2*sha256.Size]byte
	copy(b[:], keyTag)
	copy(b[len(keyTag):], m.fp[:])
	copy(b[len(keyTag)+sha256.Size:], h[:])
	return cache.Key{Namespace: namespace, Hash: sha256.Sum256(b[:])}
}

// errNoSubject: Token in exchange mode without an incoming token.
var errNoSubject = &unavailableError{msg: "no incoming token to exchange"}

// Token returns the access token to send upstream for s (ignored in
// client_credentials mode, where one token serves every request): from
// this replica's memory, from the shared tier, or minted — at most once
// per key across the fleet at a time. ctx bounds the wait only: a mint
// others wait for too goes on when this caller gives up.
//
// Errors wrap ErrRefused (answer 403) or ErrUnavailable (answer 503 with
// RetryAfter).
func (m *Minter) Token(ctx context.Context, s Subject) (Credential, error) {
	if m.o.Mode == ModeClientCredentials {
		return m.token(ctx, &m.ccKey, &s, kindClientCredentials)
	}
	if s.Raw == "" || s.Hash == ([sha256.Size]byte{}) {
		return Credential{}, errNoSubject
	}
	key := m.exchangeKey(&s.Hash)
	return m.token(ctx, &key, &s, kindExchange)
}

func (m *Minter) token(ctx context.Context, key *cache.Key, s *Subject, k kind) (Credential, error) {
	e, tier := m.store.get(ctx, *key)
	now := m.o.Now().UnixNano()
	if e.usable(key, now) {
		src := SourceLocal
		if tier == cache.TierShared {
			src = SourceRedis
		}
		if k != kindActor {
			m.o.Observer.Lookup(m.o.Name, src, true)
		}
		if e.refusal != nil {
			return Credential{}, e.refusal
		}
		if e.refreshAt != 0 && now >= e.refreshAt {
			m.refreshAhead(ctx, e, *key, *s, k, now)
		}
		return Credential{Token: e.token, Authorization: e.authorization, Expiry: time.Unix(0, e.expiry), Source: src}, nil
	}
	if k != kindActor {
		m.o.Observer.Lookup(m.o.Name, "none", false)
	}
	return m.mint(ctx, *key, *s, k)
}

// result is the outcome of a flight.
type result struct {
	c   Credential
	err error
}

// mint gets the credential of key from one flight per key in this
// process, waiting for it no longer than ctx allows.
func (m *Minter) mint(ctx context.Context, key cache.Key, s Subject, k kind) (Credential, error) {
	ch := m.flight.DoChan(string(key.Hash[:]), func() (any, error) {
		// The mint serves every waiter, so one caller giving up must
		// not cancel it for the others.
		return m.mintFleet(context.WithoutCancel(ctx), key, s, k), nil
	})
	select {
	case r := <-ch:
		res := r.Val.(result)
		return res.c, res.err
	case <-ctx.Done():
		return Credential{}, unavailable("waiting for the upstream credential: %v", ctx.Err())
	}
}

// mintFleet mints under the fleet lock of key: the replica that takes it
// mints and stores; the others poll the shared tier until the entry
// appears, the lock is free again (and they take it), or Timeout+1s has
// passed. Without a lock (none configured, or Redis unreachable) it
// mints.
func (m *Minter) mintFleet(ctx context.Context, key cache.Key, s Subject, k kind) result {
	locker := m.store.locker
	if locker == nil {
		return m.mintAndStore(ctx, key, s, k)
	}
	lockKey := lockPrefix + hex.EncodeToString(key.Hash[:])
	hold := m.o.Timeout + time.Second
	wctx, cancel := context.WithTimeout(ctx, hold)
	defer cancel()
	for {
		unlock, ok, err := locker.TryLock(ctx, lockKey, hold)
		if err != nil {
			m.throttled(slog.LevelWarn, "upstream credential lock unavailable; minting without it", "err", err)
			return m.mintAndStore(ctx, key, s, k)
		}
		if ok {
			// The previous holder may have just stored it.
			if e := m.store.getShared(ctx, key); e.usable(&key, m.o.Now().UnixNano()) {
				unlock()
				return fromEntry(e, SourceRedis)
			}
			r := m.mintAndStore(ctx, key, s, k)
			unlock()
			return r
		}
		if e := m.store.getShared(ctx, key); e.usable(&key, m.o.Now().UnixNano()) {
			return fromEntry(e, SourceRedis)
		}
		if !sleepCtx(wctx, pollInterval) {
			return result{err: unavailable("another replica's mint did not finish in %v", hold)}
		}
	}
}

func fromEntry(e *entry, src string) result {
	if e.refusal != nil {
		return result{err: e.refusal}
	}
	return result{c: Credential{Token: e.token, Authorization: e.authorization, Expiry: time.Unix(0, e.expiry), Source: src}}
}

// sleepCtx waits d or until ctx ends, and reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// mintAndStore calls the token endpoint and caches what it answers: a
// credential until it must stop being used, a refusal for RefusalTTL.
// Nothing transient is cached.
func (m *Minter) mintAndStore(ctx context.Context, key cache.Key, s Subject, k kind) result {
	var g grant
	switch k {
	case kindExchange:
		if token.CacheHash(s.Raw) != s.Hash {
			// The key would say another token's credential is here.
			m.loud("upstream credential requested with a subject hash that is not its token's; a bug in the caller")
			return result{err: unavailable("subject hash does not match its token")}
		}
		actor := ""
		if m.o.Actor {
			c, err := m.token(ctx, &m.actorKey, &Subject{}, kindActor)
			if err != nil {
				if errors.Is(err, ErrRefused) {
					m.loud("token endpoint refused the gateway's own (actor) token; check upstream_token client credentials",
						"error", err.Error())
					return result{err: unavailable("actor token refused")}
				}
				return result{err: err}
			}
			actor = c.Token
		}
		g = m.exchangeGrant(s.Raw, actor)
	case kindClientCredentials:
		g = m.clientCredentialsGrant(true)
	case kindActor:
		g = m.clientCredentialsGrant(false)
	}
	cred, err := m.callTraced(ctx, g)
	now := m.o.Now()
	if err != nil {
		if errors.Is(err, ErrRefused) {
			m.storeRefusal(ctx, key, s, k, err, now)
		}
		return result{err: err}
	}
	e, ttl := m.newEntry(key, cred, s, k, now)
	if ttl > 0 {
		m.store.put(ctx, key, e, ttl)
	}
	return result{c: Credential{Token: e.token, Authorization: e.authorization, Expiry: cred.expiry, Source: SourceMinted}}
}

// newEntry builds the cache entry of a minted credential and its TTL:
// until min(its expiry − ExpiryMargin, the incoming token's expiry,
// now + MaxTTL). Refresh ahead starts when RefreshAhead of that time is
// left — unless the incoming token's expiry is what ends it, which a new
// credential could not extend.
func (m *Minter) newEntry(key cache.Key, c minted, s Subject, k kind, now time.Time) (*entry, time.Duration) {
	n := now.UnixNano()
	e := &entry{hash: key.Hash, expiry: c.expiry.UnixNano()}
	e.setToken(c.token)
	e.until = min(e.expiry-int64(m.o.ExpiryMargin), n+int64(m.o.MaxTTL))
	bySubject := false
	if k == kindExchange {
		if s.Expiry.IsZero() {
			return e, 0 // how long the incoming token lives is unknown
		}
		e.subject = s.Expiry.UnixNano()
		if e.subject <= e.until {
			e.until, bySubject = e.subject, true
		}
	}
	ttl := time.Duration(e.until - n)
	if m.o.RefreshAhead > 0 && !bySubject && ttl > 0 {
		e.refreshAt = e.until - int64(float64(ttl)*m.o.RefreshAhead)
	}
	return e, ttl
}

// storeRefusal caches a definitive refusal for RefusalTTL (not beyond the
// incoming token's life), in every tier: the replicas waiting for this
// mint read it there.
func (m *Minter) storeRefusal(ctx context.Context, key cache.Key, s Subject, k kind, err error, now time.Time) {
	var code string
	for c, r := range refusals {
		if r == err {
			code = c
		}
	}
	if code == "" {
		return
	}
	n := now.UnixNano()
	e := &entry{hash: key.Hash, refusal: err, code: code, until: n + int64(m.o.RefusalTTL)}
	if k == kindExchange {
		if s.Expiry.IsZero() {
			return
		}
		e.subject = s.Expiry.UnixNano()
		e.until = min(e.until, e.subject)
	}
	if ttl := time.Duration(e.until - n); ttl > 0 {
		m.store.put(ctx, key, e, ttl)
	}
}

// callTraced is call within a span and reported to the Observer.
func (m *Minter) callTraced(ctx context.Context, g grant) (minted, error) {
	ctx, span := m.tracer.Start(ctx, "extauthz.upstream_token", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("resource", m.o.Name), attribute.String("mode", g.mode)))
	defer span.End()
	cctx, cancel := context.WithTimeout(ctx, m.o.Timeout)
	defer cancel()
	start := time.Now()
	c, err := m.call(cctx, g)
	res := ResultOK
	switch {
	case errors.Is(err, ErrRefused):
		res = ResultRefused
	case err != nil:
		res = ResultError
		span.SetStatus(codes.Error, "no upstream credential")
	}
	span.SetAttributes(attribute.String("result", res))
	m.o.Observer.Exchange(m.o.Name, g.mode, res, time.Since(start))
	return c, err
}

// refreshAhead starts, at most once at a time per entry, a background
// re-mint of an entry near its end. No request waits for it: they go on
// with the entry until the new one replaces it. A failed one is retried
// no sooner than RetryAfter later.
func (m *Minter) refreshAhead(ctx context.Context, e *entry, key cache.Key, s Subject, k kind, now int64) {
	if now < e.retryAt.Load() || !e.refreshing.CompareAndSwap(false, true) {
		return
	}
	ctx = context.WithoutCancel(ctx)
	go func() {
		defer e.refreshing.Store(false)
		// Its own flight: a mint that a miss started must not receive
		// a refresh's "skipped".
		r, _, _ := m.flight.Do("refresh\x00"+string(key.Hash[:]), func() (any, error) {
			return m.refresh(ctx, key, s, k), nil
		})
		if retry := r.(time.Duration); retry > 0 {
			e.retryAt.Store(m.o.Now().Add(retry).UnixNano())
		}
	}()
}

// refresh re-mints key unless another replica is doing it or has done it,
// and returns how long to wait before trying again (0: done).
func (m *Minter) refresh(ctx context.Context, key cache.Key, s Subject, k kind) time.Duration {
	if locker := m.store.locker; locker != nil {
		hold := m.o.Timeout + time.Second
		unlock, ok, err := locker.TryLock(ctx, lockPrefix+hex.EncodeToString(key.Hash[:]), hold)
		switch {
		case err != nil:
			// Redis is unreachable: each replica refreshes its own.
		case !ok:
			return hold // another replica is at it; take its result then
		default:
			defer unlock()
		}
		if e := m.store.getShared(ctx, key); e.usable(&key, m.o.Now().UnixNano()) && e.refusal == nil &&
			(e.refreshAt == 0 || m.o.Now().UnixNano() < e.refreshAt) {
			return 0 // refreshed elsewhere, now held here too
		}
	}
	if r := m.mintAndStore(ctx, key, s, k); r.err != nil && !errors.Is(r.err, ErrRefused) {
		return RetryAfter(r.err)
	}
	return 0
}

// Forget drops the credential minted from the incoming token of hash h
// (exchange mode; nothing in client_credentials mode) from every tier of
// every replica, and reports an error unless every replica confirmed. A
// refusal cached for h goes too. A mint for h under way may still store
// its result afterwards: a caller forgets a token it has stopped
// accepting, so that such an entry is never asked for.
func (m *Minter) Forget(ctx context.Context, h [sha256.Size]byte) error {
	if m.o.Mode != ModeExchange {
		return nil
	}
	inv, err := m.store.tiered.Delete(ctx, m.exchangeKey(&h))
	switch {
	case errors.Is(err, cache.ErrNoSharedTier):
		return nil // in process only: done
	case err != nil:
		return fmt.Errorf("upstream: forgetting a credential: %w", err)
	case inv.Acknowledged < inv.Replicas || inv.Replicas == 0:
		return fmt.Errorf("upstream: credential forgotten by %d of %d replicas", inv.Acknowledged, inv.Replicas)
	}
	return nil
}

// loud logs, at error level and at most once per loudEvery per message,
// what an operator must fix.
func (m *Minter) loud(msg string, args ...any) { m.throttled(slog.LevelError, msg, args...) }

// throttled logs msg at level, at most once per loudEvery: a broken
// configuration or a Redis outage fails every request, and one line a
// while says so.
func (m *Minter) throttled(level slog.Level, msg string, args ...any) {
	now := m.o.Now()
	m.loudMu.Lock()
	last, seen := m.loudAt[msg]
	if seen && now.Sub(last) < loudEvery {
		m.loudMu.Unlock()
		return
	}
	m.loudAt[msg] = now
	m.loudMu.Unlock()
	m.o.Logger.Log(context.Background(), level, msg, append([]any{"resource", m.o.Name, "issuer", m.o.Issuer}, args...)...)
}
