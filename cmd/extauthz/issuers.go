package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"time"

	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/introspect"
	"github.com/extauthz/extauthz/pkg/jwks"
	"github.com/extauthz/extauthz/pkg/metadata"
	"github.com/extauthz/extauthz/pkg/token"
)

// issuerParts are the running pieces behind one authorization server:
// its discovered metadata (when something must be discovered), its key set
// (jwt and auto modes) and its introspection client (introspection and
// auto modes).
type issuerParts struct {
	discovery *metadata.Source
	keys      *jwks.Source
	token     token.Issuer
}

// ready reports whether the issuer can verify tokens now: what must be
// discovered has been, and its keys, if it has any, are loaded.
func (p *issuerParts) ready() bool {
	if p.discovery != nil && !p.discovery.Ready() {
		return false
	}
	return p.keys == nil || p.keys.Ready()
}

// run keeps the discovery document and the key set fresh until ctx ends.
func (p *issuerParts) run(ctx context.Context) {
	done := make(chan struct{})
	if p.discovery != nil {
		go func() { p.discovery.Run(ctx); close(done) }()
	} else {
		close(done)
	}
	if p.keys != nil {
		p.keys.Run(ctx)
	}
	<-done
}

// buildIssuers makes the parts of every authorization server the
// configuration lists, once per issuer (Validate holds every listing of
// one issuer to the same settings). Secrets are read here; an error names
// the key path.
func buildIssuers(cfg *config.Config, log *slog.Logger, now func() time.Time) (map[string]*issuerParts, error) {
	out := map[string]*issuerParts{}
	// Discovery and key fetches share one client; each call is bounded by
	// jwks.timeout. Introspection has its own, bounded per call by its
	// own deadline.
	fetch := &http.Client{Timeout: cfg.JWKS.Timeout.D()}
	// Every Check that misses the cache may call the endpoint: keep
	// enough idle connections that concurrent calls reuse them instead
	// of opening (and leaving in TIME_WAIT) a connection each.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 256
	introspectHTTP := &http.Client{Transport: transport}
	for i, r := range cfg.Resources {
		for k, as := range r.AuthorizationServers {
			if _, ok := out[as.Issuer]; ok {
				continue
			}
			path := fmt.Sprintf("resources[%d].authorization_servers[%d]", i, k)
			ilog := log.With("issuer", as.Issuer)
			p := &issuerParts{token: token.Issuer{
				Mode:   tokenMode(as.TokenMode),
				Claims: claimNames(as),
			}}
			needKeys := as.TokenMode != config.TokenModeIntrospection
			if (needKeys && as.JWKSURI == "") || (as.Introspects() && as.Introspection.Endpoint == "") {
				p.discovery = metadata.NewSource(as.Issuer, metadata.SourceOptions{
					HTTPClient: fetch, Refresh: cfg.JWKS.MaxRefresh.D(), Now: now, Logger: ilog,
				})
			}
			if needKeys {
				p.keys = jwks.New(jwksLocator(as, p.discovery), jwks.Options{
					Now:                now,
					MinRefresh:         cfg.JWKS.MinRefresh.D(),
					MaxRefresh:         cfg.JWKS.MaxRefresh.D(),
					UnknownKIDInterval: cfg.JWKS.UnknownKIDInterval.D(),
					Timeout:            cfg.JWKS.Timeout.D(),
					Logger:             ilog,
				})
				p.token.Keys = p.keys
			}
			if as.Introspects() {
				c, err := newIntrospector(as, p.discovery, introspectHTTP, cfg.Tokens.Leeway.D(), now, ilog)
				if err != nil {
					return nil, fmt.Errorf("%s.introspection.%w", path, err)
				}
				p.token.Introspector = c
			}
			out[as.Issuer] = p
		}
	}
	return out, nil
}

// claimNames says where a server puts the claims a decision reads, and
// which further ones to keep for policies.
func claimNames(as config.AuthorizationServer) token.ClaimNames {
	return token.ClaimNames{Audience: as.AudienceClaim, Scope: as.ScopeClaim, ClientID: as.ClientIDClaim, Keep: as.KeepClaims}
}

func tokenMode(m string) token.Mode {
	switch m {
	case config.TokenModeIntrospection:
		return token.ModeIntrospection
	case config.TokenModeAuto:
		return token.ModeAuto
	}
	return token.ModeJWT
}

// jwksLocator gives an issuer's JWKS URL: configured, else from its
// discovered metadata.
func jwksLocator(as config.AuthorizationServer, discovery *metadata.Source) jwks.Locator {
	if as.JWKSURI != "" {
		return func(context.Context) (string, error) { return as.JWKSURI, nil }
	}
	return func(ctx context.Context) (string, error) {
		md, err := discovery.Get(ctx)
		if err != nil {
			return "", err
		}
		if md.JWKSURI == "" {
			return "", fmt.Errorf("issuer %q publishes no jwks_uri (set jwks_uri)", as.Issuer)
		}
		return md.JWKSURI, nil
	}
}

// newIntrospector builds the RFC 7662 client of one server. Errors read as
// the rest of a key path ("client_secret: environment variable X is not
// set").
func newIntrospector(as config.AuthorizationServer, discovery *metadata.Source, client *http.Client,
	leeway time.Duration, now func() time.Time, log *slog.Logger) (*introspect.Client, error) {
	in := as.Introspection
	o := introspect.Options{
		Issuer:     as.Issuer,
		ClientID:   in.ClientID,
		AuthMethod: in.AuthMethod,
		Timeout:    in.Timeout.D(),
		CacheTTL:   in.CacheTTL.D(),
		Claims:     claimNames(as),
		Leeway:     leeway,
		HTTPClient: client,
		Now:        now,
		Logger:     log,
	}
	if in.Endpoint != "" {
		o.Endpoint = func(context.Context) (string, error) { return in.Endpoint, nil }
	} else {
		o.Endpoint = func(ctx context.Context) (string, error) {
			md, err := discovery.Get(ctx)
			if err != nil {
				return "", err
			}
			if md.IntrospectionEndpoint == "" {
				return "", errors.New("the issuer's metadata has no introspection_endpoint (set introspection.endpoint)")
			}
			return md.IntrospectionEndpoint, nil
		}
	}
	switch in.AuthMethod {
	case config.AuthPrivateKeyJWT:
		pemData, err := in.PrivateKey.Resolve()
		if err != nil {
			return nil, fmt.Errorf("private_key: %w", err)
		}
		if o.Signer, err = introspect.NewAssertionSigner([]byte(pemData), in.KeyID); err != nil {
			return nil, fmt.Errorf("private_key: %w", err)
		}
	default:
		secret, err := in.ClientSecret.Resolve()
		if err != nil {
			return nil, fmt.Errorf("client_secret: %w", err)
		}
		o.ClientSecret = secret
	}
	return introspect.New(o)
}

// notReady lists the issuers that cannot verify tokens yet, sorted.
func notReady(issuers map[string]*issuerParts) []string {
	var out []string
	for iss, p := range issuers {
		if !p.ready() {
			out = append(out, iss)
		}
	}
	sort.Strings(out)
	return out
}
