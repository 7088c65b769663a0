package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	noopmetric "go.opentelemetry.io/otel/metric/noop"

	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/introspect"
	"github.com/extauthz/extauthz/pkg/jwks"
	"github.com/extauthz/extauthz/pkg/metadata"
	"github.com/extauthz/extauthz/pkg/telemetry"
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
	// spec is everything the parts were built from, secrets included
	// (compared, never logged): a reload keeps parts whose spec is equal,
	// with their fetched keys, and rebuilds the others.
	spec issuerSpec
	// stop ends run; set by app.startIssuer.
	stop context.CancelFunc
}

// issuerSpec is what one issuer's parts are built from.
type issuerSpec struct {
	Server  config.AuthorizationServer
	JWKS    config.JWKS
	Leeway  config.Duration
	Secrets [2]string // the introspection client secret or private key, as read
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
func buildIssuers(cfg *config.Config, log *slog.Logger, tel *telemetry.Telemetry, now func() time.Time) (map[string]*issuerParts, error) {
	out := map[string]*issuerParts{}
	// Discovery and key fetches share one client; each call is bounded by
	// jwks.timeout. Introspection has its own, bounded per call by its
	// own deadline.
	fetch := &http.Client{Timeout: cfg.JWKS.Timeout.D(), Transport: traced(tel, http.DefaultTransport)}
	// Every Check that misses the cache may call the endpoint: keep
	// enough idle connections that concurrent calls reuse them instead
	// of opening (and leaving in TIME_WAIT) a connection each.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 256
	introspectHTTP := &http.Client{Transport: traced(tel, transport)}
	for i, r := range cfg.Resources {
		for k, as := range r.AuthorizationServers {
			if _, ok := out[as.Issuer]; ok {
				continue
			}
			path := fmt.Sprintf("resources[%d].authorization_servers[%d]", i, k)
			ilog := log.With("issuer", as.Issuer)
			// Claims an SSF transmitter revokes by (email, say) are kept
			// from the tokens too, so that a watermark can match them.
			as.KeepClaims = cfg.KeptClaims(as)
			p := &issuerParts{
				token: token.Issuer{Mode: tokenMode(as.TokenMode), Claims: claimNames(as), AllowUntyped: !as.RequiresTyp()},
				spec:  issuerSpec{Server: as, JWKS: cfg.JWKS, Leeway: cfg.Tokens.Leeway},
			}
			needKeys := as.TokenMode != config.TokenModeIntrospection
			if (needKeys && as.JWKSURI == "") || (as.Introspects() && as.Introspection.Endpoint == "") {
				p.discovery = metadata.NewSource(as.Issuer, metadata.SourceOptions{
					HTTPClient: fetch, Refresh: cfg.JWKS.MaxRefresh.D(), Now: now, Logger: ilog,
				})
			}
			if needKeys {
				p.keys = jwks.New(jwksLocator(as.Issuer, as.JWKSURI, "jwks_uri", p.discovery), jwks.Options{
					Now:                now,
					MinRefresh:         cfg.JWKS.MinRefresh.D(),
					MaxRefresh:         cfg.JWKS.MaxRefresh.D(),
					UnknownKIDInterval: cfg.JWKS.UnknownKIDInterval.D(),
					Timeout:            cfg.JWKS.Timeout.D(),
					Logger:             ilog,
					OnFetch:            func(err error) { tel.Metrics.JWKSFetch(as.Issuer, err) },
				})
				p.token.Keys = p.keys
			}
			if as.Introspects() {
				c, secrets, err := newIntrospector(as, p.discovery, introspectHTTP, cfg.Tokens.Leeway.D(), now, ilog,
					func(result string, d time.Duration) { tel.Metrics.Introspection(as.Issuer, result, d) })
				if err != nil {
					return nil, fmt.Errorf("%s.introspection.%w", path, err)
				}
				p.token.Introspector = c
				p.spec.Secrets = secrets
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

// jwksLocator gives an issuer's JWKS URL: configured (jwksURI), else
// from its discovered metadata. key names the setting that would
// configure it, for the error when the metadata has none.
func jwksLocator(issuer, jwksURI, key string, discovery *metadata.Source) jwks.Locator {
	if jwksURI != "" {
		return func(context.Context) (string, error) { return jwksURI, nil }
	}
	return func(ctx context.Context) (string, error) {
		md, err := discovery.Get(ctx)
		if err != nil {
			return "", err
		}
		if md.JWKSURI == "" {
			return "", fmt.Errorf("issuer %q publishes no jwks_uri (set %s)", issuer, key)
		}
		return md.JWKSURI, nil
	}
}

// newIntrospector builds the RFC 7662 client of one server. Errors read as
// the rest of a key path ("client_secret: environment variable X is not
// set").
func newIntrospector(as config.AuthorizationServer, discovery *metadata.Source, client *http.Client,
	leeway time.Duration, now func() time.Time, log *slog.Logger, observe func(string, time.Duration)) (*introspect.Client, [2]string, error) {
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
		Observe:    observe,
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
	var secrets [2]string
	switch in.AuthMethod {
	case config.AuthPrivateKeyJWT:
		pemData, err := in.PrivateKey.Resolve()
		if err != nil {
			return nil, [2]string{}, fmt.Errorf("private_key: %w", err)
		}
		if o.Signer, err = introspect.NewAssertionSigner([]byte(pemData), in.KeyID); err != nil {
			return nil, [2]string{}, fmt.Errorf("private_key: %w", err)
		}
		secrets[1] = pemData
	default:
		secret, err := in.ClientSecret.Resolve()
		if err != nil {
			return nil, [2]string{}, fmt.Errorf("client_secret: %w", err)
		}
		o.ClientSecret = secret
		secrets[0] = secret
	}
	c, err := introspect.New(o)
	return c, secrets, err
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

// traced wraps an HTTP transport in client spans when tracing is on: a
// JWKS fetch or an introspection call made for a Check is a child of its
// span.
func traced(tel *telemetry.Telemetry, rt http.RoundTripper) http.RoundTripper {
	if !tel.Tracing() {
		return rt
	}
	return otelhttp.NewTransport(rt,
		otelhttp.WithTracerProvider(tel.TracerProvider()),
		otelhttp.WithPropagators(tel.Propagator()),
		otelhttp.WithMeterProvider(noopmetric.NewMeterProvider()))
}

// newVerifier builds the token verifier over the issuers' parts.
func newVerifier(cfg *config.Config, issuers map[string]*issuerParts, now func() time.Time) (*token.IssuerSet, error) {
	byIssuer := make(map[string]token.Issuer, len(issuers))
	for iss, p := range issuers {
		byIssuer[iss] = p.token
	}
	return token.NewIssuerSet(token.Options{
		Issuers:    byIssuer,
		Algorithms: cfg.Tokens.Algorithms,
		Leeway:     cfg.Tokens.Leeway.D(),
		MaxBytes:   cfg.Tokens.MaxBytes,
		Now:        now,
	})
}

// registerKeyAges publishes how old each issuer's keys are.
func registerKeyAges(tel *telemetry.Telemetry, issuers map[string]*issuerParts) {
	for iss, p := range issuers {
		if p.keys == nil {
			continue
		}
		keys := p.keys
		tel.Metrics.KeysAge(iss, func() (time.Time, bool) {
			at := keys.Status().LastSuccess
			return at, !at.IsZero()
		})
	}
}

// startIssuer runs an issuer's parts until the app's run context ends or
// the parts are stopped. The caller holds issuersMu.
func (a *app) startIssuer(p *issuerParts) {
	ctx, cancel := context.WithCancel(a.runCtx)
	p.stop = cancel
	go p.run(ctx)
}

// stopIssuers stops every issuer's background work.
func (a *app) stopIssuers() {
	a.issuersMu.Lock()
	defer a.issuersMu.Unlock()
	for _, p := range a.issuers {
		if p.stop != nil {
			p.stop()
		}
	}
}
