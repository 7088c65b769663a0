package revocation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/token"
)

// Redis names of the shared tier: the sorted set of watermarks (scored by
// expiry) and the channel they are announced on. Replicas of one fleet
// must agree on both.
const (
	DefaultKey     = "extauthz:v1:revocations"
	DefaultChannel = "extauthz:v1:revoke"
)

// Defaults of StoreOptions.
const (
	defaultSyncInterval = time.Minute
	defaultTimeout      = 2 * time.Second
	// scanCount is how many entries one ZSCAN asks for: each reply stays
	// small, within a short per-command timeout.
	scanCount = 256
)

// StoreOptions configures NewStore.
type StoreOptions struct {
	// Redis is the shared tier (built with cache.NewRedisClient; the
	// caller closes it). nil: watermarks hold on this replica only, and
	// Revoke returns ErrNoSharedTier.
	Redis redis.UniversalClient
	// Key and Channel override DefaultKey and DefaultChannel (tests).
	Key, Channel string
	// Retention is how long past its Before a watermark is kept: at least
	// the longest a token issued before it can be valid (the longest
	// token lifetime accepted) plus the longest a verdict is cached
	// (cache.max_ttl), after which no token it revokes is valid anyway.
	// Required.
	Retention time.Duration
	// SyncInterval is how often expired watermarks are dropped, here and
	// in Redis, and the others loaded again from Redis (default 1m).
	SyncInterval time.Duration
	// Timeout bounds each Redis call (default 2s; the client's own read
	// and write timeouts still apply to each command).
	Timeout time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Observer is told of revocations, of watermarks going live and of
	// the tokens refused (nil: nobody).
	Observer Observer
	// Logger gets the audit line of each revocation (with log=audit) and
	// Redis's failures (nil: discard).
	Logger *slog.Logger
}

// Store is the Revoker of the fleet: it holds watermarks in an Index
// (Revoked), stores each in Redis, one member of a sorted set scored by
// its expiry, and announces it on a channel that every replica follows.
// A replica reads the whole set when its subscription is confirmed, the
// first time and after every reconnection (so one that missed
// announcements catches up), and again every SyncInterval, when it also
// drops what has expired, here and in Redis.
//
// A watermark expires Retention after its Before. Without Redis it holds
// on this replica only; with Redis failing it holds here, and Revoke says
// so, so that the sender retries.
type Store struct {
	idx    *Index
	o      StoreOptions
	pubsub *cache.Redis // nil without Redis
	log    *slog.Logger
	audit  *slog.Logger
}

var _ Revoker = (*Store)(nil)

// NewStore returns a Store; Run follows the shared tier.
func NewStore(o StoreOptions) (*Store, error) {
	if o.Retention <= 0 {
		return nil, errors.New("revocation: the store needs a retention above 0")
	}
	if o.Key == "" {
		o.Key = DefaultKey
	}
	if o.Channel == "" {
		o.Channel = DefaultChannel
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = defaultSyncInterval
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Observer == nil {
		o.Observer = NopObserver{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		idx:   NewIndex(o.Observer),
		o:     o,
		log:   o.Logger.With("component", "revocation"),
		audit: o.Logger.With("log", "audit"),
	}
	if o.Redis != nil {
		s.pubsub = cache.NewRedis(o.Redis, cache.RedisOptions{Timeout: o.Timeout, Now: o.Now, Logger: s.log})
	}
	return s, nil
}

// Shared reports whether the store has a shared tier.
func (s *Store) Shared() bool { return s.o.Redis != nil }

// Until is when a watermark of the given before expires.
func (s *Store) Until(before time.Time) time.Time { return before.Add(s.o.Retention) }

// Revoked reports whether a watermark held here revokes the token of c:
// see Index.Revoked.
func (s *Store) Revoked(c *token.Claims) bool { return s.idx.Revoked(c) }

// Len is the number of watermarks held here.
func (s *Store) Len() int { return s.idx.Len() }

// Revoke implements Revoker. A zero Before is now; w must then pass
// Validate. It holds w here at once, before anything reaches Redis.
func (s *Store) Revoke(ctx context.Context, w Watermark) error {
	now := s.o.Now()
	if w.Before.IsZero() {
		w.Before = now
	}
	if err := w.Validate(); err != nil {
		return err
	}
	h := newHeld(w, s.Until(w.Before))
	s.o.Observer.Revocation(sourceKind(w.Source))
	s.live(s.idx.add(h), now)
	err := s.share(ctx, h)
	s.auditLine(ctx, h, err)
	return err
}

// share stores h in Redis and announces it.
func (s *Store) share(ctx context.Context, h *held) error {
	if s.o.Redis == nil {
		return ErrNoSharedTier
	}
	member, err := encode(h)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	err = s.o.Redis.ZAdd(cctx, s.o.Key, redis.Z{Score: float64(h.expires.UnixMilli()), Member: member}).Err()
	cancel()
	if err != nil {
		return fmt.Errorf("revocation: not stored in Redis, held on this replica only: %w", err)
	}
	if _, err := s.pubsub.Publish(ctx, s.o.Channel, member); err != nil {
		// Stored: every replica loads it at its next sync, but until
		// then only this one refuses.
		return fmt.Errorf("revocation: stored in Redis but not announced, the other replicas load it within %v: %w", s.o.SyncInterval, err)
	}
	return nil
}

// live reports the watermarks that have just started refusing tokens here.
func (s *Store) live(hs []*held, now time.Time) {
	for _, h := range hs {
		if !h.w.EventTime.IsZero() {
			s.o.Observer.WatermarkLive(sourceKind(h.w.Source), now.Sub(h.w.EventTime))
		}
	}
}

// auditLine writes the one audit line of a revocation made through this
// replica. The session id is not written: the log's redaction treats
// session ids as credentials.
func (s *Store) auditLine(ctx context.Context, h *held, err error) {
	w := &h.w
	shared := "fleet"
	switch {
	case errors.Is(err, ErrNoSharedTier):
		shared = "replica"
	case err != nil:
		shared = "replica, Redis failed"
	}
	attrs := []slog.Attr{
		slog.String("source", w.Source), slog.String("event", w.Event),
		slog.Time("before", w.Before), slog.Time("expires", h.expires), slog.String("held", shared),
	}
	for _, a := range [...]struct{ k, v string }{{"issuer", w.Issuer}, {"subject", w.Subject}, {"client_id", w.ClientID}, {"claim", w.Claim}, {"claim_value", w.Value}} {
		if a.v != "" {
			attrs = append(attrs, slog.String(a.k, a.v))
		}
	}
	if w.SessionID != "" {
		attrs = append(attrs, slog.Bool("by_sid", true))
	}
	if !w.EventTime.IsZero() {
		attrs = append(attrs, slog.Time("event_time", w.EventTime))
	}
	if err != nil && !errors.Is(err, ErrNoSharedTier) {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	s.audit.LogAttrs(ctx, slog.LevelInfo, "revocation", attrs...)
}

// Run follows the shared tier until ctx ends: it applies the watermarks
// other replicas announce, reads the whole set on every subscription
// confirmation, and syncs every SyncInterval. Without Redis it only drops
// expired watermarks.
func (s *Store) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(s.o.SyncInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.Sync(ctx); err != nil && ctx.Err() == nil {
					s.log.Warn("revocation watermarks not synced with Redis", "err", err)
				}
			}
		}
	}()
	if s.pubsub != nil {
		s.pubsub.SubscribeConfirmed(ctx, s.o.Channel, s.receive, func(bool) {
			if err := s.Sync(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("revocation watermarks not loaded from Redis; retried every sync interval", "err", err)
			}
		})
	}
	wg.Wait()
}

// receive applies one announced watermark.
func (s *Store) receive(msg []byte) {
	h, err := decode(msg)
	if err != nil {
		s.log.Warn("revocation announcement ignored", "err", err)
		return
	}
	s.live(s.idx.addLive(s.o.Now, h), s.o.Now())
}

// Sync drops the watermarks expired by the clock, here and in Redis, and
// holds every other one Redis has. Without Redis it only drops. Those it
// cannot read stay as they were, and the error is returned.
func (s *Store) Sync(ctx context.Context) error {
	now := s.o.Now()
	s.idx.prune(now)
	if s.o.Redis == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	err := s.o.Redis.ZRemRangeByScore(cctx, s.o.Key, "-inf", strconv.FormatInt(now.UnixMilli(), 10)).Err()
	cancel()
	if err != nil {
		return fmt.Errorf("revocation: pruning Redis: %w", err)
	}
	var (
		found  []*held
		cursor uint64
		bad    int
	)
	for {
		// ZSCAN returns every member present for the whole scan, however
		// the set changes meanwhile, in replies of about scanCount.
		cctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
		kv, next, err := s.o.Redis.ZScan(cctx, s.o.Key, cursor, "", scanCount).Result()
		cancel()
		if err != nil {
			return fmt.Errorf("revocation: reading Redis: %w", err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			h, err := decode([]byte(kv[i]))
			if err != nil {
				bad++
				continue
			}
			if now.Before(h.expires) {
				found = append(found, h)
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	if bad > 0 {
		s.log.Warn("revocation watermarks in Redis ignored: not readable", "count", bad)
	}
	// Caught up with, not announced: no delay to report for them. The
	// clock is read again as they go in: a prune that ran while this load
	// was reading Redis must not be undone by it.
	s.idx.addLive(s.o.Now, found...)
	return nil
}

// record is a watermark as Redis holds and announces it: JSON, times in
// Unix milliseconds.
type record struct {
	Issuer    string `json:"iss,omitempty"`
	Subject   string `json:"sub,omitempty"`
	SessionID string `json:"sid,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Claim     string `json:"claim,omitempty"`
	Value     string `json:"value,omitempty"`
	Before    int64  `json:"before"`
	Expires   int64  `json:"expires"`
	Source    string `json:"source,omitempty"`
	Event     string `json:"event,omitempty"`
	EventTime int64  `json:"event_time,omitempty"`
}

func encode(h *held) ([]byte, error) {
	w := &h.w
	r := record{Issuer: w.Issuer, Subject: w.Subject, SessionID: w.SessionID, ClientID: w.ClientID, Claim: w.Claim, Value: w.Value,
		Before: w.Before.UnixMilli(), Expires: h.expires.UnixMilli(), Source: w.Source, Event: w.Event}
	if !w.EventTime.IsZero() {
		r.EventTime = w.EventTime.UnixMilli()
	}
	return json.Marshal(r)
}

// decode reads a record. Members it does not know are ignored: a later
// release may add a selector, and a watermark read without it revokes
// more tokens, never fewer.
func decode(b []byte) (*held, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("revocation: not a watermark: %w", err)
	}
	w := Watermark{Issuer: r.Issuer, Subject: r.Subject, SessionID: r.SessionID, ClientID: r.ClientID, Claim: r.Claim, Value: r.Value,
		Before: time.UnixMilli(r.Before), Source: r.Source, Event: r.Event}
	if r.EventTime != 0 {
		w.EventTime = time.UnixMilli(r.EventTime)
	}
	if err := w.Validate(); err != nil {
		return nil, err
	}
	return newHeld(w, time.UnixMilli(r.Expires)), nil
}
