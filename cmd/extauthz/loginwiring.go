package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/introspect"
	"github.com/extauthz/extauthz/pkg/metadata"
	"github.com/extauthz/extauthz/pkg/oauthflow"
	"github.com/extauthz/extauthz/pkg/token"
)

// newLogin builds the browser login flow when a resource enables it; nil
// otherwise. Its store lives in the cache's Redis when there is one.
func newLogin(a *app, verifier token.Verifier, rc redis.UniversalClient, now func() time.Time) (*oauthflow.Handler, error) {
	cfg := a.cfg
	clients := map[string]*oauthflow.Client{}
	for i, r := range cfg.Resources {
		if !r.Login.Enabled {
			continue
		}
		lp := fmt.Sprintf("resources[%d].login", i)
		parts := a.issuers[r.Login.Issuer]
		if parts == nil {
			return nil, fmt.Errorf("%s.issuer: not one of the resource's authorization servers", lp)
		}
		src := parts.discovery
		if src == nil {
			// jwks_uri and endpoints configured: the login still needs the
			// authorization and token endpoints. Its discovery runs in the
			// background without holding up readiness: Checks do not need it.
			src = metadata.NewSource(r.Login.Issuer, metadata.SourceOptions{
				HTTPClient: &http.Client{Timeout: cfg.JWKS.Timeout.D()}, Refresh: cfg.JWKS.MaxRefresh.D(), Now: now,
				Logger: a.log.With("issuer", r.Login.Issuer),
			})
			a.background = append(a.background, src.Run)
		}
		trusted := map[string]struct{}{}
		for _, as := range r.AuthorizationServers {
			trusted[as.Issuer] = struct{}{}
		}
		c := &oauthflow.Client{
			Resource:    r.Name,
			ResourceURI: r.Resource,
			Issuer:      r.Login.Issuer,
			Metadata: func(ctx context.Context) (*oauthflow.Metadata, error) {
				md, err := src.Get(ctx)
				if err != nil {
					return nil, err
				}
				return &oauthflow.Metadata{
					Issuer: md.Issuer, AuthorizationEndpoint: md.AuthorizationEndpoint, TokenEndpoint: md.TokenEndpoint,
					RevocationEndpoint:                         md.RevocationEndpoint,
					CodeChallengeMethodsSupported:              md.CodeChallengeMethodsSupported,
					AuthorizationResponseIssParameterSupported: md.AuthorizationResponseIssParameterSupported,
				}, nil
			},
			ClientID:   r.Login.ClientID,
			AuthMethod: r.Login.AuthMethod,
			Scopes:     r.Login.Scopes,
			Trusted:    trusted,
		}
		switch r.Login.AuthMethod {
		case config.AuthPrivateKeyJWT:
			pemData, err := r.Login.PrivateKey.Resolve()
			if err != nil {
				return nil, fmt.Errorf("%s.private_key: %w", lp, err)
			}
			if c.Signer, err = introspect.NewAssertionSigner([]byte(pemData), r.Login.KeyID); err != nil {
				return nil, fmt.Errorf("%s.private_key: %w", lp, err)
			}
		default:
			secret, err := r.Login.ClientSecret.Resolve()
			if err != nil {
				return nil, fmt.Errorf("%s.client_secret: %w", lp, err)
			}
			c.ClientSecret = secret
		}
		clients[r.Name] = c
	}
	if len(clients) == 0 && !cfg.FacadeEnabled() {
		// The OAuth facade's upstream sign-ins go through the login's
		// callback: it needs the handler even without browser logins.
		return nil, nil
	}
	rawKey, err := cfg.Login.SessionKey.Resolve()
	if err != nil {
		return nil, fmt.Errorf("login.session_key: %w", err)
	}
	key, err := oauthflow.ParseKey(rawKey)
	if err != nil {
		return nil, fmt.Errorf("login.session_key: %w", err)
	}
	store, err := oauthflow.NewStore(oauthflow.StoreOptions{Key: key, Redis: rc, Timeout: 250 * time.Millisecond, Now: now})
	if err != nil {
		return nil, err
	}
	l := cfg.Login
	return oauthflow.New(oauthflow.Options{
		Clients: clients,
		Route: func(host, path string) (string, bool) {
			return a.engine.Policy().ResourceFor(host, path)
		},
		Sessions:        store,
		Verifier:        verifier,
		PublicURL:       cfg.PublicURL,
		LoginPath:       l.LoginPath,
		CallbackPath:    l.CallbackPath,
		LogoutPath:      l.LogoutPath,
		CookieName:      l.CookieName,
		SessionTTL:      l.SessionTTL.D(),
		StateTTL:        l.StateTTL.D(),
		SuccessRedirect: l.SuccessRedirect,
		ErrorPage:       l.ErrorPage,
		Now:             now,
		Logger:          a.log.With("component", "login"),
		OnEvent:         a.tel.Metrics.LoginEvent,
	})
}

// The login handler is what the engine calls for a browser's login cookie, with no adapter.
var _ authz.BrowserLogin = (*oauthflow.Handler)(nil)
