package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/introspect"
	"github.com/extauthz/extauthz/pkg/metadata"
	"github.com/extauthz/extauthz/pkg/oauthflow"
)

// newFacadeSigner reads oauth_facade.signing_keys and builds the facade's
// token signer; it also returns a digest of the keys read, which tells a
// reload whether they changed.
func newFacadeSigner(cfg *config.Config, now func() time.Time) (*oauthflow.TokenSigner, string, error) {
	f := cfg.OAuthFacade
	keys := make([]oauthflow.SigningKey, 0, len(f.SigningKeys))
	sum := sha256.New()
	for i, s := range f.SigningKeys {
		p := fmt.Sprintf("oauth_facade.signing_keys[%d]", i)
		pemData, err := s.Resolve()
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", p, err)
		}
		k, err := oauthflow.ParseSigningKeyPEM([]byte(pemData))
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", p, err)
		}
		sum.Write([]byte(pemData))
		keys = append(keys, oauthflow.SigningKey{Signer: k})
	}
	signer, err := oauthflow.NewTokenSigner(oauthflow.TokenSignerOptions{
		Issuer: cfg.FacadeIssuer(), Keys: keys, Active: f.ActiveKey, Now: now,
	})
	if err != nil {
		return nil, "", fmt.Errorf("oauth_facade.signing_keys: %w", err)
	}
	return signer, hex.EncodeToString(sum.Sum(nil)), nil
}

// newFacade builds the OAuth facade when a resource enables it; nil
// otherwise. It attaches itself to the login handler, whose callback
// completes its upstream sign-ins; its records live in the cache's Redis
// when there is one.
func newFacade(a *app, login *oauthflow.Handler, now func() time.Time) (*oauthflow.Facade, error) {
	cfg := a.cfg
	if !cfg.FacadeEnabled() {
		return nil, nil
	}
	if login == nil {
		return nil, fmt.Errorf("oauth_facade: no login handler")
	}
	rawKey, err := cfg.Login.SessionKey.Resolve()
	if err != nil {
		return nil, fmt.Errorf("login.session_key: %w", err)
	}
	key, err := oauthflow.ParseKey(rawKey)
	if err != nil {
		return nil, fmt.Errorf("login.session_key: %w", err)
	}
	store, err := oauthflow.NewFacadeStore(oauthflow.FacadeStoreOptions{
		Key: key, Redis: a.redis, ClientTTL: cfg.OAuthFacade.ClientTTL.D(), MaxClients: cfg.OAuthFacade.MaxClients, Now: now,
	})
	if err != nil {
		return nil, fmt.Errorf("oauth_facade: %w", err)
	}
	var allow []netip.Prefix
	for _, n := range cfg.OAuthFacade.ClientDocuments.AllowNetworks {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return nil, fmt.Errorf("oauth_facade.client_documents.allow_networks: %w", err)
		}
		allow = append(allow, p.Masked())
	}
	docs, err := oauthflow.NewClientDocuments(oauthflow.ClientDocumentsOptions{
		Now: now, Logger: a.log.With("component", "oauth_facade"), AllowNetworks: allow,
	})
	if err != nil {
		return nil, fmt.Errorf("oauth_facade: %w", err)
	}
	resolver, err := oauthflow.NewClientResolver(oauthflow.ClientResolverOptions{Store: store, Documents: docs})
	if err != nil {
		return nil, fmt.Errorf("oauth_facade: %w", err)
	}
	signer, _, err := newFacadeSigner(cfg, now)
	if err != nil {
		return nil, err
	}
	var resources []oauthflow.FacadeResource
	var scopes []string
	for i, r := range cfg.Resources {
		rf := r.OAuthFacade
		if !rf.Enabled {
			continue
		}
		fp := fmt.Sprintf("resources[%d].oauth_facade", i)
		up, err := facadeUpstream(a, r, fp, now)
		if err != nil {
			return nil, err
		}
		supported := r.ScopesSupported
		if len(supported) == 0 {
			supported = r.RequiredScopes
		}
		for _, s := range supported {
			if !slices.Contains(scopes, s) {
				scopes = append(scopes, s)
			}
		}
		resources = append(resources, oauthflow.FacadeResource{
			Name: r.Name, URI: r.Resource, ScopesSupported: supported, DefaultScopes: r.RequiredScopes,
			Upstream: up, TokenTTL: rf.TokenTTL.D(),
		})
	}
	md, err := oauthflow.NewFacadeMetadata(oauthflow.FacadeMetadataOptions{Issuer: cfg.FacadeIssuer(), ScopesSupported: scopes})
	if err != nil {
		return nil, fmt.Errorf("oauth_facade: %w", err)
	}
	reg, err := oauthflow.NewRegistration(oauthflow.RegistrationOptions{
		Store: store, Now: now, Logger: a.log.With("component", "oauth_facade"), OnEvent: a.tel.Metrics.FacadeEvent,
	})
	if err != nil {
		return nil, fmt.Errorf("oauth_facade: %w", err)
	}
	return oauthflow.NewFacade(oauthflow.FacadeOptions{
		Login: login, Issuer: cfg.FacadeIssuer(), Resources: resources, Store: store, Clients: resolver,
		Signer: signer, Metadata: md, Registration: reg, ConsentTTL: cfg.OAuthFacade.ConsentTTL.D(),
		Now: now, Logger: a.log.With("component", "oauth_facade"), OnEvent: a.tel.Metrics.FacadeEvent,
		RevokeAccessToken: a.revokeFacadeToken,
	})
}

// revokeFacadeToken revokes one of the facade's access tokens on every
// resource and replica, as POST /cache/purge does; with Redis configured
// but failing it holds on this replica only, and the client is told to
// retry.
func (a *app) revokeFacadeToken(ctx context.Context, tok string) error {
	res, err := a.engine.Revoke(ctx, authz.Revocation{Token: tok})
	if err != nil {
		return err
	}
	if !res.Shared && a.redis != nil {
		return errors.New("the revocation did not reach the shared cache")
	}
	return nil
}

// facadeUpstream is the gateway's client at the provider of one facade
// resource, built like a browser login's.
func facadeUpstream(a *app, r config.Resource, fp string, now func() time.Time) (*oauthflow.Client, error) {
	cfg, rf := a.cfg, r.OAuthFacade
	var src *metadata.Source
	if parts := a.issuers[rf.Issuer]; parts != nil {
		src = parts.discovery
	}
	if src == nil {
		src = metadata.NewSource(rf.Issuer, metadata.SourceOptions{
			HTTPClient: &http.Client{Timeout: cfg.JWKS.Timeout.D()}, Refresh: cfg.JWKS.MaxRefresh.D(), Now: now,
			Logger: a.log.With("issuer", rf.Issuer),
		})
		a.background = append(a.background, src.Run)
	}
	c := &oauthflow.Client{
		Resource: r.Name, ResourceURI: rf.UpstreamAudience, Issuer: rf.Issuer,
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
		ClientID: rf.ClientID, AuthMethod: rf.AuthMethod, Scopes: rf.Scopes,
		// The provider's tokens are verified as its own, whatever else the
		// resource trusts.
		Trusted: map[string]struct{}{rf.Issuer: {}},
	}
	if rf.AudienceStyle == config.FacadeAudienceScope {
		c.AudienceScope = rf.AudienceScope
	}
	switch rf.AuthMethod {
	case config.AuthPrivateKeyJWT:
		pemData, err := rf.PrivateKey.Resolve()
		if err != nil {
			return nil, fmt.Errorf("%s.private_key: %w", fp, err)
		}
		if c.Signer, err = introspect.NewAssertionSigner([]byte(pemData), rf.KeyID); err != nil {
			return nil, fmt.Errorf("%s.private_key: %w", fp, err)
		}
	default:
		secret, err := rf.ClientSecret.Resolve()
		if err != nil {
			return nil, fmt.Errorf("%s.client_secret: %w", fp, err)
		}
		c.ClientSecret = secret
	}
	return c, nil
}
