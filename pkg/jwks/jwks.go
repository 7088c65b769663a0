// Package jwks fetches one issuer's JSON Web Key Set, keeps it current and
// hands out the public keys that token signatures are verified with.
//
// It does not verify tokens: a caller parses the JWT header, asks Key for
// the header's kid and alg, and checks the signature itself.
//
// It exists instead of jwx's jwk.Cache because that cache only refreshes on
// a schedule. Here an unknown kid triggers a refetch, so an issuer's key
// rotation is picked up without a restart, while a flood of made-up kids
// costs at most one fetch per UnknownKIDInterval. When the JWKS endpoint is
// down, the last good keys keep serving.
package jwks

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/extauthz/extauthz/internal/refresh"
)

// Locator returns the JWKS URL; it may run discovery and may fail.
type Locator func(ctx context.Context) (string, error)

// Options tune a Source. Zero values take the documented defaults.
type Options struct {
	// HTTPClient sends the JWKS requests. nil: a client with Timeout. A
	// given client is copied and its CheckRedirect replaced, so the
	// redirect rule (see New) holds whatever the caller passes.
	HTTPClient *http.Client
	// Now decides every interval rule and the times in Status.
	// nil: time.Now.
	Now func() time.Time
	// MinRefresh and MaxRefresh bound the refresh interval taken from the
	// response's Cache-Control max-age (defaults 5m and 1h). MaxRefresh is
	// also the interval when the response has no max-age. A MaxRefresh
	// below MinRefresh is raised to MinRefresh.
	MinRefresh time.Duration
	MaxRefresh time.Duration
	// UnknownKIDInterval is the minimum time between the start of the last
	// fetch and a refetch caused by a kid that is not in the set
	// (default 10s).
	UnknownKIDInterval time.Duration
	// Timeout bounds one fetch attempt: Locator plus the HTTP exchange
	// (default 5s).
	Timeout time.Duration
	// MaxBytes caps the response body (default 1 MiB); a larger body is a
	// failed fetch.
	MaxBytes int64
	// Logger receives fetch failures and skipped keys. nil: discard.
	Logger *slog.Logger
	// OnFetch, when set, is told the outcome of every fetch attempt (nil
	// error: a usable key set was stored), for metrics. It must be quick.
	OnFetch func(err error)
}

const (
	defaultMinRefresh         = 5 * time.Minute
	defaultMaxRefresh         = time.Hour
	defaultUnknownKIDInterval = 10 * time.Second
	defaultTimeout            = 5 * time.Second
	defaultMaxBytes           = 1 << 20

	backoffStart = time.Second
	backoffLimit = time.Minute
)

var (
	// ErrKeyNotFound means the current, successfully fetched key set has no
	// key for the kid and alg: the token is invalid.
	ErrKeyNotFound = errors.New("jwks: no suitable key in the key set")
	// ErrUnavailable means no key set was ever fetched successfully, or the
	// refetch needed for this kid failed: the token cannot be verified now.
	ErrUnavailable = errors.New("jwks: key set unavailable")

	// errUnsupportedAlg is preallocated so that tokens with an alg we never
	// serve keys for (none, HS256, garbage) cost no allocation and no fetch.
	errUnsupportedAlg = fmt.Errorf("%w: unsupported alg", ErrKeyNotFound)
)

// Status describes a Source for readiness checks and diagnostics.
type Status struct {
	// LastSuccess is when a usable key set was last fetched; zero if never.
	LastSuccess time.Time
	// LastAttempt is when the most recent fetch attempt began; zero if none.
	LastAttempt time.Time
	// LastError is the error of the most recent finished attempt; nil if it
	// succeeded or none has finished.
	LastError error
	// Keys is how many usable keys the held set has (0 if none is held).
	Keys int
	// KeyIDs are the held keys' kid values, sorted (keys without a kid
	// are in Keys only). The slice is shared: do not modify it.
	KeyIDs []string
}

// Source keeps one issuer's key set. It is safe for concurrent use.
type Source struct {
	locate             Locator
	client             *http.Client
	now                func() time.Time
	log                *slog.Logger
	onFetch            func(error)
	minRefresh         time.Duration
	maxRefresh         time.Duration
	unknownKIDInterval time.Duration
	timeout            time.Duration
	maxBytes           int64

	// wait pauses Run between fetches. Tests replace it so that backoff is
	// observed step by step instead of by sleeping.
	wait refresh.Wait

	// keys is what Key reads: an immutable index swapped whole, so the hot
	// path takes no lock.
	keys    atomic.Pointer[keySet]
	fetches atomic.Int64

	mu          sync.Mutex
	inflight    *flight // the fetch every caller joins, nil when idle
	attempted   bool
	lastAttempt time.Time
	lastSuccess time.Time
	lastErr     error
}

// flight is one fetch attempt shared by everyone who needs its outcome.
// err and next are written before done is closed and only read after.
type flight struct {
	done chan struct{}
	err  error
	next time.Duration // refresh interval from a successful response
}

// New returns a Source that fetches from the URL locate returns. It fetches
// nothing until Run or Key needs it.
//
// Redirects are followed (at most 5) only to https URLs, or to loopback
// http URLs when the original URL was loopback http (a local issuer during
// development); anything else is a failed fetch.
func New(locate Locator, opts Options) *Source {
	s := &Source{
		locate:             locate,
		now:                opts.Now,
		log:                opts.Logger,
		onFetch:            opts.OnFetch,
		minRefresh:         opts.MinRefresh,
		maxRefresh:         opts.MaxRefresh,
		unknownKIDInterval: opts.UnknownKIDInterval,
		timeout:            opts.Timeout,
		maxBytes:           opts.MaxBytes,
		wait:               refresh.Sleep,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.minRefresh <= 0 {
		s.minRefresh = defaultMinRefresh
	}
	if s.maxRefresh <= 0 {
		s.maxRefresh = defaultMaxRefresh
	}
	if s.maxRefresh < s.minRefresh {
		s.maxRefresh = s.minRefresh
	}
	if s.unknownKIDInterval <= 0 {
		s.unknownKIDInterval = defaultUnknownKIDInterval
	}
	if s.timeout <= 0 {
		s.timeout = defaultTimeout
	}
	if s.maxBytes <= 0 {
		s.maxBytes = defaultMaxBytes
	}
	if opts.HTTPClient != nil {
		c := *opts.HTTPClient
		s.client = &c
	} else {
		s.client = &http.Client{Timeout: s.timeout}
	}
	s.client.CheckRedirect = checkRedirect
	return s
}

// Run fetches at once and then keeps the set fresh until ctx ends. A failed
// fetch is retried after 1s, doubling up to min(MinRefresh, 1m); a
// successful one schedules the next at its Cache-Control max-age clamped to
// [MinRefresh, MaxRefresh]. Run returns when ctx ends without waiting for a
// fetch in progress, which ends by itself within Timeout.
func (s *Source) Run(ctx context.Context) {
	// An outage is retried quickly at first but never more often than needed.
	b := refresh.Backoff{Start: backoffStart, Limit: min(s.minRefresh, backoffLimit)}
	refresh.Run(ctx, b, s.wait, func(ctx context.Context) (time.Duration, error) {
		s.mu.Lock()
		f := s.inflight
		if f == nil {
			f = s.startLocked(ctx)
		}
		s.mu.Unlock()
		select {
		case <-f.done:
			return f.next, f.err
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
}

// Key returns the public key (*rsa.PublicKey, *ecdsa.PublicKey or
// ed25519.PublicKey) for a token header's kid and alg (a JWA name such as
// "RS256"). With an empty kid it returns the only key in the set that fits
// alg, if there is exactly one.
//
// A miss refetches the set once, shared by all concurrent callers, unless
// the last fetch began less than UnknownKIDInterval ago. ctx bounds only
// this caller's wait. Errors wrap ErrKeyNotFound (the token is invalid) or
// ErrUnavailable (the key cannot be known now).
func (s *Source) Key(ctx context.Context, kid, alg string) (crypto.PublicKey, error) {
	a := parseAlg(alg)
	if a == algUnknown {
		return nil, errUnsupportedAlg
	}
	if k := s.keys.Load().lookup(kid, a); k != nil {
		return k, nil
	}
	return s.keyMiss(ctx, kid, a)
}

// HeldKey is Key without the network: the key held now for kid and alg,
// or nil (none held, or alg unsupported). It fetches nothing.
func (s *Source) HeldKey(kid, alg string) crypto.PublicKey {
	a := parseAlg(alg)
	if a == algUnknown {
		return nil
	}
	return s.keys.Load().lookup(kid, a)
}

// keyMiss is Key's slow path, kept apart so the hit path stays small.
func (s *Source) keyMiss(ctx context.Context, kid string, a alg) (crypto.PublicKey, error) {
	s.mu.Lock()
	f := s.inflight
	if f == nil && (!s.attempted || !s.now().Before(s.lastAttempt.Add(s.unknownKIDInterval))) {
		f = s.startLocked(ctx)
	}
	s.mu.Unlock()

	if f != nil {
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, context.Cause(ctx))
		}
	}

	// Read the set and the last outcome together: a fetch finishing in
	// between must not pair a new failure with an old set or vice versa.
	s.mu.Lock()
	ks, lastErr := s.keys.Load(), s.lastErr
	s.mu.Unlock()
	if k := ks.lookup(kid, a); k != nil {
		return k, nil
	}
	// If the most recent fetch failed, the kid may be a new key we could not
	// fetch: refusing as invalid would reject good tokens during an outage.
	if ks == nil || lastErr != nil {
		if lastErr == nil {
			return nil, ErrUnavailable
		}
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, lastErr)
	}
	return nil, ErrKeyNotFound
}

// startLocked begins a fetch that every caller can join. The fetch does not
// inherit the cancellation of the ctx that happened to start it (other
// callers share its outcome) but keeps its values, and has its own Timeout.
// s.mu must be held.
func (s *Source) startLocked(ctx context.Context) *flight {
	f := &flight{done: make(chan struct{})}
	s.inflight = f
	s.attempted = true
	s.lastAttempt = s.now()
	fctx := context.WithoutCancel(ctx)

	go func() {
		ks, next, err := s.fetch(fctx)
		if err != nil {
			s.log.Warn("jwks: fetch failed; keeping the previous key set", "error", err)
		}
		s.mu.Lock()
		if err == nil {
			s.keys.Store(ks)
			s.lastSuccess = s.now()
		}
		s.lastErr = err
		s.inflight = nil
		s.mu.Unlock()
		if s.onFetch != nil {
			s.onFetch(err)
		}
		f.err, f.next = err, next
		close(f.done)
	}()
	return f
}

// Ready reports whether a usable key set is held. It stays true while the
// endpoint is down, since the last good keys keep serving.
func (s *Source) Ready() bool {
	return s.keys.Load() != nil
}

// Status reports when the keys were last fetched, the last error and how
// many usable keys are held.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{
		LastSuccess: s.lastSuccess,
		LastAttempt: s.lastAttempt,
		LastError:   s.lastErr,
	}
	if ks := s.keys.Load(); ks != nil {
		st.Keys, st.KeyIDs = ks.count, ks.kids
	}
	return st
}
