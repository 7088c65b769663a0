package oauthflow

import (
	"cmp"
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Facade storage keys. Registered clients share a Redis Cluster hash tag with their index, so
// that registering one can count them all in one script; every other entry is one key.
const (
	facadeClientPrefix = keyPrefix + "{fclient}:"
	facadeClientIndex  = facadeClientPrefix + "index"
	facadeCodePrefix   = keyPrefix + "fcode:"
	facadeFamilyPrefix = keyPrefix + "ffamily:"
)

// Defaults of [FacadeStoreOptions].
const (
	DefaultClientTTL  = 30 * 24 * time.Hour
	DefaultMaxClients = 10000
)

// ErrTooManyClients is returned by [FacadeStore.RegisterClient] when MaxClients registered
// clients are live: registration is closed until some expire.
var ErrTooManyClients = errors.New("facade: too many registered clients")

// FacadeStoreOptions configures [NewFacadeStore].
type FacadeStoreOptions struct {
	// Key seals every stored record (clients, codes, refresh families); required. It may be
	// the session store's key: every record's additional data names its kind.
	Key Key
	// Redis is the shared store; the caller keeps and closes it. nil: in process, for a single
	// replica.
	Redis redis.UniversalClient
	// Timeout bounds each Redis call; default 250ms.
	Timeout time.Duration
	// ClientTTL is how long a registered client lives after its registration or its last use
	// (default 30 days): clients that are never used again go away by themselves.
	ClientTTL time.Duration
	// MaxClients bounds the registered clients alive at once, in Redis and in process
	// (default 10000); registration answers ErrTooManyClients beyond it.
	MaxClients int
	// RefreshIdleTTL ends a refresh family not used for that long (default 7 days), and
	// RefreshMaxTTL ends one that long after its authorization whatever its use (default 30
	// days): then the user signs in again.
	RefreshIdleTTL, RefreshMaxTTL time.Duration
	// MaxEntries bounds the in-process store's codes and refresh families together (default
	// 100000); beyond it a new one is ErrFull. Not used with Redis.
	MaxEntries int
	// Now is the clock for what the store decides by time: codes' and families' lifetimes,
	// and the in-process store's expiry. nil: time.Now. Redis expires keys by its own clock.
	Now func() time.Time
}

// FacadeStore keeps what the OAuth facade remembers between requests and replicas: the
// clients registered with it (RFC 7591), its single-use authorization codes, and its refresh
// token families. Every record is sealed (see the package documentation, "Facade storage").
// It is safe for concurrent use.
type FacadeStore struct {
	seal       *sealer
	b          facadeBackend
	now        func() time.Time
	clientTTL  time.Duration
	maxClients int

	refreshIdle, refreshMax time.Duration
}

// facadeBackend is where the facade's sealed records live. Keys are complete (prefix and
// hash). Values passed in and returned are never modified in place.
type facadeBackend interface {
	// addClient stores a new client record under key for ttl, unless maxClients live clients
	// exist (ErrTooManyClients) or key holds one already (false).
	addClient(ctx context.Context, key string, val []byte, ttl time.Duration, maxClients int) (bool, error)
	// touchClient returns the client record at key and restarts its ttl.
	touchClient(ctx context.Context, key string, ttl time.Duration) ([]byte, bool, error)
	// delClient removes a client record.
	delClient(ctx context.Context, key string) error
	// add stores val under key for ttl unless key holds a live entry; true when it did.
	add(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error)
	get(ctx context.Context, key string) ([]byte, bool, error)
	// getdel returns the entry at key and removes it, atomically: of concurrent callers, on
	// any replicas, one gets it.
	getdel(ctx context.Context, key string) ([]byte, bool, error)
	// swap replaces the entry at key with val for ttl if it still holds old, atomically.
	swap(ctx context.Context, key string, old, val []byte, ttl time.Duration) (bool, error)
	del(ctx context.Context, key string) error
}

// NewFacadeStore returns a store with o's settings.
func NewFacadeStore(o FacadeStoreOptions) (*FacadeStore, error) {
	if o.Key.isZero() {
		return nil, errors.New("facade: no key: FacadeStoreOptions.Key is all zeros")
	}
	switch {
	case o.Timeout < 0, o.ClientTTL < 0, o.MaxClients < 0, o.MaxEntries < 0, o.RefreshIdleTTL < 0, o.RefreshMaxTTL < 0:
		return nil, errors.New("facade: negative store option")
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ClientTTL == 0 {
		o.ClientTTL = DefaultClientTTL
	}
	if o.ClientTTL < time.Minute {
		return nil, errors.New("facade: ClientTTL shorter than a minute")
	}
	o.RefreshIdleTTL = cmp.Or(o.RefreshIdleTTL, DefaultRefreshIdleTTL)
	o.RefreshMaxTTL = cmp.Or(o.RefreshMaxTTL, DefaultRefreshMaxTTL)
	if o.RefreshIdleTTL < time.Minute || o.RefreshMaxTTL < o.RefreshIdleTTL {
		return nil, errors.New("facade: RefreshIdleTTL must be at least a minute, and RefreshMaxTTL at least RefreshIdleTTL")
	}
	if o.MaxClients == 0 {
		o.MaxClients = DefaultMaxClients
	}
	if o.MaxEntries == 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	sl, err := newSealer(o.Key)
	if err != nil {
		return nil, err
	}
	s := &FacadeStore{
		seal: sl, now: o.Now, clientTTL: o.ClientTTL, maxClients: o.MaxClients,
		refreshIdle: o.RefreshIdleTTL, refreshMax: o.RefreshMaxTTL,
	}
	if o.Redis != nil {
		s.b = newFacadeRedis(o.Redis, o.Timeout)
	} else {
		s.b = newFacadeMemory(o.MaxEntries, o.Now)
	}
	return s, nil
}

// ClientTTL is how long an unused registered client lives.
func (s *FacadeStore) ClientTTL() time.Duration { return s.clientTTL }
