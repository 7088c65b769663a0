package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/introspect"
	"github.com/extauthz/extauthz/pkg/jwks"
	"github.com/extauthz/extauthz/pkg/metadata"
	"github.com/extauthz/extauthz/pkg/telemetry"
	"github.com/extauthz/extauthz/pkg/upstream"
)

// upstreamMinters adapts pkg/upstream to the engine: one Minter per
// resource with an upstream_token, all sharing one Store.
type upstreamMinters struct {
	byResource map[string]*upstream.Minter
	store      *upstream.Store
}

// Credential implements authz.UpstreamCredentials.
func (u *upstreamMinters) Credential(ctx context.Context, resource, raw string, hash [32]byte, expiry time.Time) (authz.UpstreamCredential, bool, error) {
	m := u.byResource[resource]
	if m == nil {
		return authz.UpstreamCredential{}, false, nil
	}
	c, err := m.Token(ctx, upstream.Subject{Raw: raw, Hash: hash, Expiry: expiry})
	if err != nil {
		return authz.UpstreamCredential{}, true, classifyMint(err)
	}
	return authz.UpstreamCredential{Token: c.Token, Authorization: c.Authorization, Expiry: c.Expiry, Source: c.Source}, true, nil
}

// Forget implements authz.UpstreamCredentials.
func (u *upstreamMinters) Forget(ctx context.Context, resource string, hash [32]byte) {
	if m := u.byResource[resource]; m != nil {
		_ = m.Forget(ctx, hash) // the revoked verdict refuses the token anyway
	}
}

// upstreamObserver reports minting to the metrics.
type upstreamObserver struct{ m *telemetry.Metrics }

func (o upstreamObserver) Exchange(resource, mode, result string, d time.Duration) {
	o.m.UpstreamMint(resource, mode, result, d)
}
func (o upstreamObserver) Lookup(resource, tier string, hit bool) {
	o.m.UpstreamLookup(resource, tier, hit)
}

// mintError carries a minting failure to the engine: its class (refused
// or unavailable) and how long a client should wait.
type mintError struct {
	class, cause error
	retryAfter   time.Duration
}

func (e *mintError) Error() string             { return e.cause.Error() }
func (e *mintError) Unwrap() []error           { return []error{e.class, e.cause} }
func (e *mintError) RetryAfter() time.Duration { return e.retryAfter }

func classifyMint(err error) error {
	if errors.Is(err, upstream.ErrRefused) {
		return &mintError{class: authz.ErrUpstreamRefused, cause: err}
	}
	return &mintError{class: authz.ErrUpstreamUnavailable, cause: err, retryAfter: upstream.RetryAfter(err)}
}

// newUpstreamMinters builds the minters of every resource with an
// upstream_token (nil when none has one). Each distinct issuer gets its
// own discovery and key set, run in the background; the store follows
// its invalidations through Redis when there is one.
func newUpstreamMinters(a *app, tel *telemetry.Telemetry, now func() time.Time) (*upstreamMinters, error) {
	cfg := a.cfg
	minting := false
	for _, r := range cfg.Resources {
		minting = minting || r.UpstreamToken.Mode != ""
	}
	if !minting {
		return nil, nil
	}
	so := upstream.StoreOptions{
		MaxEntries: cfg.Upstream.TokenCacheEntries,
		Now:        now,
		Logger:     a.log.With("component", "upstream_token"),
	}
	if a.redis != nil {
		secret, err := cfg.Upstream.TokenEncryptionKey.Resolve()
		if err != nil {
			return nil, fmt.Errorf("upstream.token_encryption_key: %w", err)
		}
		if so.Key, err = upstream.DeriveKey([]byte(secret)); err != nil {
			return nil, fmt.Errorf("upstream.token_encryption_key: %w", err)
		}
		c := cfg.Cache.Redis
		so.Shared = cache.NewRedis(a.redis, cache.RedisOptions{
			Timeout:         c.Timeout.D(),
			CircuitFailures: c.CircuitFailures,
			CircuitCooldown: c.CircuitCooldown.D(),
			Now:             now,
			Logger:          a.log.With("component", "redis", "store", "upstream_token"),
		})
		so.Locker = upstream.NewRedisLocker(a.redis)
	}
	store, err := upstream.NewStore(so)
	if err != nil {
		return nil, err
	}
	a.background = append(a.background, store.Run)

	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64
	client := &http.Client{Transport: traced(tel, transport)}
	fetch := &http.Client{Timeout: cfg.JWKS.Timeout.D(), Transport: traced(tel, http.DefaultTransport)}
	type issuerSources struct {
		discovery *metadata.Source
		keys      map[string]*jwks.Source // by jwks_uri ("" discovered)
	}
	issuers := map[string]*issuerSources{}
	out := &upstreamMinters{byResource: map[string]*upstream.Minter{}, store: store}
	for i, r := range cfg.Resources {
		ut := r.UpstreamToken
		if ut.Mode == "" {
			continue
		}
		p := fmt.Sprintf("resources[%d].upstream_token", i)
		ilog := a.log.With("issuer", ut.Issuer, "resource", r.Name)
		src := issuers[ut.Issuer]
		if src == nil {
			src = &issuerSources{keys: map[string]*jwks.Source{}}
			issuers[ut.Issuer] = src
		}
		if (ut.TokenEndpoint == "" || ut.JWKSURI == "") && src.discovery == nil {
			src.discovery = metadata.NewSource(ut.Issuer, metadata.SourceOptions{
				HTTPClient: fetch, Refresh: cfg.JWKS.MaxRefresh.D(), Now: now, Logger: ilog,
			})
			a.background = append(a.background, src.discovery.Run)
		}
		keys := src.keys[ut.JWKSURI]
		if keys == nil {
			keys = jwks.New(jwksLocator(ut.Issuer, ut.JWKSURI, "upstream_token.jwks_uri", src.discovery), jwks.Options{
				Now:                now,
				MinRefresh:         cfg.JWKS.MinRefresh.D(),
				MaxRefresh:         cfg.JWKS.MaxRefresh.D(),
				UnknownKIDInterval: cfg.JWKS.UnknownKIDInterval.D(),
				Timeout:            cfg.JWKS.Timeout.D(),
				Logger:             ilog,
			})
			src.keys[ut.JWKSURI] = keys
			a.background = append(a.background, keys.Run)
		}
		o := upstream.Options{
			Name:            r.Name,
			Mode:            ut.Mode,
			Issuer:          ut.Issuer,
			TokenEndpoint:   upstreamTokenEndpoint(ut, src.discovery),
			Keys:            keys,
			Algorithms:      cfg.Tokens.Algorithms,
			ClientID:        ut.ClientID,
			AuthMethod:      ut.AuthMethod,
			Audience:        ut.Audience,
			Resource:        ut.Resources,
			Scopes:          ut.Scopes,
			Actor:           ut.Actor,
			Timeout:         ut.Timeout.D(),
			ExpiryMargin:    ut.ExpiryMargin.D(),
			RefreshAhead:    ut.RefreshAhead,
			RefusalTTL:      ut.RefusalTTL.D(),
			DefaultLifetime: ut.DefaultLifetime.D(),
			HTTPClient:      client,
			Now:             now,
			Logger:          ilog,
			Observer:        upstreamObserver{tel.Metrics},
			Store:           store,
		}
		if tel.Tracing() {
			o.Tracer = tel.Tracer()
		}
		if err := upstreamClientAuth(&o, ut); err != nil {
			return nil, fmt.Errorf("%s.%w", p, err)
		}
		m, err := upstream.New(o)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out.byResource[r.Name] = m
	}
	return out, nil
}

// upstreamClientAuth reads the client credentials of an upstream_token
// block. Errors read as the rest of a key path.
func upstreamClientAuth(o *upstream.Options, ut config.UpstreamToken) error {
	if ut.AuthMethod == config.AuthPrivateKeyJWT {
		pemData, err := ut.PrivateKey.Resolve()
		if err != nil {
			return fmt.Errorf("private_key: %w", err)
		}
		if o.Signer, err = introspect.NewAssertionSigner([]byte(pemData), ut.KeyID); err != nil {
			return fmt.Errorf("private_key: %w", err)
		}
		return nil
	}
	secret, err := ut.ClientSecret.Resolve()
	if err != nil {
		return fmt.Errorf("client_secret: %w", err)
	}
	o.ClientSecret = secret
	return nil
}

func upstreamTokenEndpoint(ut config.UpstreamToken, discovery *metadata.Source) func(context.Context) (string, error) {
	if ut.TokenEndpoint != "" {
		return func(context.Context) (string, error) { return ut.TokenEndpoint, nil }
	}
	return func(ctx context.Context) (string, error) {
		md, err := discovery.Get(ctx)
		if err != nil {
			return "", err
		}
		if md.TokenEndpoint == "" {
			return "", fmt.Errorf("issuer %q publishes no token_endpoint (set upstream_token.token_endpoint)", ut.Issuer)
		}
		return md.TokenEndpoint, nil
	}
}
