package ssf

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"go.opentelemetry.io/otel/metric"
	noopmetric "go.opentelemetry.io/otel/metric/noop"

	"github.com/extauthz/extauthz/internal/refresh"
	"github.com/extauthz/extauthz/pkg/jwks"
	"github.com/extauthz/extauthz/pkg/revocation"
)

// Defaults of Options.
const (
	DefaultMaxAge     = time.Hour
	DefaultLeeway     = time.Minute
	DefaultMaxBytes   = 64 << 10
	DefaultRetryAfter = 5 * time.Second
	DefaultPath       = "/ssf/events"
)

// DefaultAlgorithms are the JWS algorithms a transmitter's SETs may use
// unless its settings say otherwise: asymmetric only.
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"}

// Transmitter is one SET transmitter the receiver trusts.
type Transmitter struct {
	// Issuer is the iss of its SETs, compared exactly.
	Issuer string
	// JWKSURI is its key set; "" reads jwks_uri from its configuration
	// document.
	JWKSURI string
	// ConfigurationURL is its configuration document; "" is the
	// well-known one (ConfigurationURL(Issuer)). Not read when JWKSURI is
	// set.
	ConfigurationURL string
	// PushToken, when set, must be presented by every push of this
	// transmitter's SETs, as Authorization: Bearer <token>.
	PushToken string
	// Algorithms its SETs may be signed with; nil is DefaultAlgorithms.
	// none and HS* are never accepted.
	Algorithms []string
	// Subjects maps its subject identifiers to token claims.
	Subjects SubjectClaims
	// TokenIssuer, when set, narrows each revocation to tokens of this
	// iss, but for iss_sub subjects, which name their own.
	TokenIssuer string
	// Poll, when set, has Run poll the transmitter (RFC 8936).
	Poll *Poll
}

// Options configure a Receiver. Zero values take the documented defaults.
type Options struct {
	// Audience is the aud every SET must carry (required).
	Audience string
	// Transmitters trusted (at least one).
	Transmitters []Transmitter
	// Revoker records the watermarks (required).
	Revoker revocation.Revoker
	// Replay remembers the SETs received; nil is a MemoryReplay (one
	// replica). With Redis, a RedisReplay.
	Replay ReplayStore
	// MaxAge: a SET issued longer ago is refused (default 1h). Its jti is
	// remembered for MaxAge + Leeway.
	MaxAge time.Duration
	// Leeway is the clock skew allowed on iat and exp (default 1m;
	// negative for none).
	Leeway time.Duration
	// MaxBytes bounds a push's body (default 64 KiB).
	MaxBytes int64
	// RetryAfter is told to the transmitter with a 503 (default 5s).
	RetryAfter time.Duration
	// HTTPClient fetches configuration documents and key sets (nil: one
	// bounded by JWKS.Timeout).
	HTTPClient *http.Client
	// JWKS tunes the transmitters' key sets; its HTTPClient, Now, Logger
	// and OnFetch are set by New.
	JWKS jwks.Options
	// OnJWKSFetch, when set, is told every key fetch's outcome.
	OnJWKSFetch func(issuer string, err error)
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Logger (nil: discard).
	Logger *slog.Logger
	// Meter registers the receiver's metrics (nil: none).
	Meter metric.Meter
}

// transmitter is a Transmitter as the receiver uses it.
type transmitter struct {
	issuer      string
	keys        *jwks.Source
	algs        map[string]jwa.SignatureAlgorithm
	pushToken   [sha256.Size]byte // SHA-256 of the token, compared in constant time
	hasToken    bool
	subjects    SubjectClaims
	tokenIssuer string
}

// Receiver is a Shared Signals receiver (SSF 1.0): an http.Handler, the
// RFC 8935 push endpoint, that verifies each SET, turns its event into a
// revocation watermark and answers the transmitter; and, in Run, the
// RFC 8936 poller of the transmitters that are polled.
type Receiver struct {
	audience     string
	transmitters map[string]*transmitter
	revoker      revocation.Revoker
	replay       ReplayStore
	maxAge       time.Duration
	leeway       time.Duration
	maxBytes     int64
	retryAfter   string
	client       *http.Client
	pollers      []*poller
	now          func() time.Time
	log          *slog.Logger
	events       metric.Int64Counter

	// pollWait pauses the pollers; tests replace it to step through
	// polls instead of sleeping.
	pollWait refresh.Wait
}

// New checks the options and builds a Receiver. It fetches nothing: keys
// are fetched by Run, or by the first SET that needs them.
func New(o Options) (*Receiver, error) {
	if o.Audience == "" {
		return nil, errors.New("ssf: no audience")
	}
	if len(o.Transmitters) == 0 {
		return nil, errors.New("ssf: no transmitters")
	}
	if o.Revoker == nil {
		return nil, errors.New("ssf: no revoker")
	}
	r := &Receiver{
		audience:     o.Audience,
		transmitters: map[string]*transmitter{},
		revoker:      o.Revoker,
		replay:       o.Replay,
		maxAge:       orDefault(o.MaxAge, DefaultMaxAge),
		leeway:       o.Leeway,
		maxBytes:     orDefault(o.MaxBytes, DefaultMaxBytes),
		retryAfter:   fmt.Sprint(int64(orDefault(o.RetryAfter, DefaultRetryAfter).Round(time.Second) / time.Second)),
		now:          o.Now,
		log:          o.Logger,
	}
	switch {
	case o.Leeway == 0:
		r.leeway = DefaultLeeway
	case o.Leeway < 0:
		r.leeway = 0
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.replay == nil {
		r.replay = NewMemoryReplay(0, r.now)
	}
	meter := o.Meter
	if meter == nil {
		meter = noopmetric.NewMeterProvider().Meter("")
	}
	var err error
	if r.events, err = meter.Int64Counter("extauthz_ssf_events", metric.WithUnit("{event}"),
		metric.WithDescription("Security Event Tokens pushed or polled, by transmitter, event type, result and delivery.")); err != nil {
		return nil, fmt.Errorf("ssf: %w", err)
	}
	client := o.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: orDefault(o.JWKS.Timeout, 5*time.Second)}
	}
	r.client = client
	tokens := map[[sha256.Size]byte]string{}
	for _, t := range o.Transmitters {
		if _, dup := r.transmitters[t.Issuer]; dup || t.Issuer == "" {
			return nil, fmt.Errorf("ssf: transmitter %q: empty or listed twice", t.Issuer)
		}
		tr := &transmitter{issuer: t.Issuer, algs: map[string]jwa.SignatureAlgorithm{}, subjects: t.Subjects, tokenIssuer: t.TokenIssuer}
		tr.subjects.Email = orDefault(tr.subjects.Email, claimEmail)
		tr.subjects.Opaque = orDefault(tr.subjects.Opaque, claimSub)
		names := t.Algorithms
		if names == nil {
			names = DefaultAlgorithms
		}
		for _, n := range names {
			a, ok := jwa.LookupSignatureAlgorithm(n)
			if n == "none" || strings.HasPrefix(n, "HS") || !ok {
				return nil, fmt.Errorf("ssf: transmitter %q: algorithm %q is never accepted", t.Issuer, n)
			}
			tr.algs[n] = a
		}
		if t.PushToken != "" {
			tr.pushToken, tr.hasToken = sha256.Sum256([]byte(t.PushToken)), true
			if other, dup := tokens[tr.pushToken]; dup {
				return nil, fmt.Errorf("ssf: transmitters %q and %q have the same push token", other, t.Issuer)
			}
			tokens[tr.pushToken] = t.Issuer
		}
		configURL := t.ConfigurationURL
		if configURL == "" && t.JWKSURI == "" {
			if configURL, err = ConfigurationURL(t.Issuer); err != nil {
				return nil, fmt.Errorf("ssf: transmitter: %w", err)
			}
		}
		log := r.log.With("transmitter", t.Issuer)
		jo := o.JWKS
		jo.HTTPClient, jo.Now, jo.Logger, jo.OnFetch = client, r.now, log, nil
		if o.OnJWKSFetch != nil {
			iss := t.Issuer
			jo.OnFetch = func(err error) { o.OnJWKSFetch(iss, err) }
		}
		tr.keys = jwks.New(jwksLocator(t.Issuer, t.JWKSURI, configURL, client, log), jo)
		r.transmitters[t.Issuer] = tr
		if t.Poll != nil {
			p := *t.Poll
			if p.Endpoint == "" {
				return nil, fmt.Errorf("ssf: transmitter %q: poll without an endpoint", t.Issuer)
			}
			p.Interval = orDefault(p.Interval, DefaultPollInterval)
			p.MaxEvents = orDefault(p.MaxEvents, DefaultPollMaxEvents)
			r.pollers = append(r.pollers, &poller{tr: tr, poll: p})
		}
	}
	return r, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Run fetches every transmitter's keys at once and keeps them fresh, and
// polls the transmitters that are polled, until ctx ends.
func (r *Receiver) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, tr := range r.transmitters {
		wg.Go(func() { tr.keys.Run(ctx) })
	}
	for _, pl := range r.pollers {
		wg.Go(func() { r.runPoll(ctx, pl) })
	}
	wg.Wait()
}

// NotReady lists the transmitters whose keys are not loaded yet, sorted.
func (r *Receiver) NotReady() []string {
	var out []string
	for iss, tr := range r.transmitters {
		if !tr.keys.Ready() {
			out = append(out, iss)
		}
	}
	sort.Strings(out)
	return out
}
