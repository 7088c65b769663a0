package metadata

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/extauthz/extauthz/internal/refresh"
)

// Retry and refresh intervals of a Source.
const (
	retryStart     = time.Second
	retryLimit     = time.Minute
	defaultRefresh = time.Hour
)

// SourceOptions configures a Source.
type SourceOptions struct {
	// HTTPClient fetches the documents; its Timeout bounds one attempt at
	// every discovery URL together (nil: 5s).
	HTTPClient *http.Client
	// Refresh is how often a known document is fetched again (default 1h).
	Refresh time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Logger (nil: discard).
	Logger *slog.Logger
}

// Source keeps one issuer's discovered metadata (RFC 8414, then OpenID
// Connect Discovery; see Discover). Run fetches it at start, retrying with
// backoff while the server is unreachable — start-up never fails for it —
// and refreshes it periodically, keeping the last good document when a
// refresh fails. It is safe for concurrent use.
type Source struct {
	issuer  string
	client  *http.Client
	refresh time.Duration
	now     func() time.Time
	log     *slog.Logger

	// wait pauses Run; tests replace it to step through retries.
	wait refresh.Wait

	doc atomic.Pointer[AuthorizationServer]

	mu          sync.Mutex
	inflight    *attempt
	lastAttempt time.Time
	lastErr     error
}

// attempt is one discovery shared by everyone waiting for it; err is
// written before done is closed.
type attempt struct {
	done chan struct{}
	err  error
}

// NewSource returns a Source for issuer. It fetches nothing until Run or
// Get needs it.
func NewSource(issuer string, o SourceOptions) *Source {
	s := &Source{issuer: issuer, client: o.HTTPClient, refresh: o.Refresh, now: o.Now, log: o.Logger, wait: refresh.Sleep}
	if s.client == nil {
		s.client = &http.Client{Timeout: 5 * time.Second}
	}
	if s.refresh <= 0 {
		s.refresh = defaultRefresh
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Get returns the current document. Before the first success it waits for
// the attempt in progress (bounded by ctx), starting one unless the last
// failed less than a second ago, so a burst of requests against an
// unreachable server costs one fetch, not one each.
func (s *Source) Get(ctx context.Context) (*AuthorizationServer, error) {
	if d := s.doc.Load(); d != nil {
		return d, nil
	}
	s.mu.Lock()
	a := s.inflight
	if a == nil {
		if s.lastErr != nil && s.now().Sub(s.lastAttempt) < retryStart {
			err := s.lastErr
			s.mu.Unlock()
			return nil, err
		}
		a = s.startLocked()
	}
	s.mu.Unlock()
	select {
	case <-a.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if d := s.doc.Load(); d != nil {
		return d, nil
	}
	return nil, a.err
}

// Ready reports whether a document has been discovered.
func (s *Source) Ready() bool { return s.doc.Load() != nil }

// Run discovers at once and keeps the document fresh until ctx ends: a
// failure is retried after 1s, doubling up to 1m; a success is refreshed
// after Refresh.
func (s *Source) Run(ctx context.Context) {
	b := refresh.Backoff{Start: retryStart, Limit: retryLimit}
	refresh.Run(ctx, b, s.wait, func(ctx context.Context) (time.Duration, error) {
		s.mu.Lock()
		a := s.inflight
		if a == nil {
			a = s.startLocked()
		}
		s.mu.Unlock()
		select {
		case <-a.done:
			return s.refresh, a.err
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
}

// startLocked begins an attempt that no caller's cancellation can cut
// short: its outcome serves everyone. The HTTP client's timeout bounds it.
func (s *Source) startLocked() *attempt {
	a := &attempt{done: make(chan struct{})}
	s.inflight = a
	s.lastAttempt = s.now()
	go func() {
		md, err := Discover(context.Background(), s.client, s.issuer)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.inflight = nil
		s.lastErr = err
		if err != nil {
			if s.doc.Load() != nil {
				s.log.Warn("metadata refresh failed; keeping the last good document", "err", err)
			} else {
				s.log.Warn("metadata discovery failed; will retry", "err", err)
			}
		} else {
			if s.doc.Load() == nil {
				s.log.Info("metadata discovered", "jwks_uri", md.JWKSURI, "introspection_endpoint", md.IntrospectionEndpoint)
			}
			s.doc.Store(md)
		}
		a.err = err
		close(a.done)
	}()
	return a
}
