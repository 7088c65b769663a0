package verdict

import (
	"errors"
	"log/slog"
	"time"

	"github.com/extauthz/extauthz/pkg/cache"
)

// CacheOptions configures NewCache.
type CacheOptions struct {
	// MaxEntries bounds the tier of valid tokens, held in compact form (as
	// many again for verdicts that do not fit an entry: see CompactTier).
	MaxEntries int
	// MaxNegativeEntries bounds the tier of invalid tokens and that of
	// revoked ones, each.
	MaxNegativeEntries int
	// Grants numbers the grants of valid verdicts and interns decoded
	// ones. Pass the table verification interns with, so that storing a
	// verdict finds its grant by pointer (nil: a table of 65536 of its own).
	Grants *Grants
	// Shared is the tier shared between replicas (cache.Redis), its
	// entries in Codec's format; nil for in-process tiers only.
	Shared cache.Shared
	// WriteQueue, above 0, queues the shared tier's writes and sends
	// them in the background (cache.TieredOptions.WriteQueue); 0: each
	// write is a round trip on the caller's path.
	WriteQueue int
	// Entries, when set, is given each in-process tier's entry count, by
	// kind ("valid", "invalid", "revoked"): the service's gauge.
	Entries func(kind string, n func() int)
	// Now is the clock deciding expiry (nil: time.Now).
	Now func() time.Time
	// Observer is told of lookups, evictions and shared-tier errors
	// (nil: nobody).
	Observer cache.Observer
	// Logger (nil: discard).
	Logger *slog.Logger
}

// kindNames are the kinds' names in CacheOptions.Entries.
var kindNames = [...]string{KindValid: "valid", KindInvalid: "invalid", KindRevoked: "revoked"}

// NewCache builds the verdict cache, the one the service runs and the
// tests exercise alike: an in-process tier per kind, each bounded on its
// own, revocations sticky, and the shared tier behind them when there is
// one. Valid tokens, the bulk, are in a CompactTier: fixed-size entries
// outside the Go heap, about 152 bytes each, allocated for MaxEntries up
// front and resident as they fill. Failures and revocations, few and
// short-lived, are in general stores.
func NewCache(o CacheOptions) (*cache.Tiered[Verdict], error) {
	if o.MaxEntries <= 0 || o.MaxNegativeEntries <= 0 {
		return nil, errors.New("verdict: the cache needs MaxEntries and MaxNegativeEntries above 0")
	}
	if o.Grants == nil {
		o.Grants = NewGrants(1 << 16)
	}
	local := make([]cache.LocalTier[Verdict], len(kindNames))
	local[KindValid] = NewCompactTier(o.MaxEntries, o.Grants, o.Now, o.Observer)
	for _, k := range []int{KindInvalid, KindRevoked} {
		local[k] = cache.NewMemory[cache.Key, Verdict](cache.MemoryOptions{MaxEntries: o.MaxNegativeEntries, Now: o.Now, Observer: o.Observer})
	}
	if o.Entries != nil {
		for k, name := range kindNames {
			o.Entries(name, local[k].Len)
		}
	}
	return cache.NewTiered(cache.TieredOptions[Verdict]{
		Local:      local,
		Place:      Place,
		Sticky:     []int{KindRevoked},
		Shared:     o.Shared,
		WriteQueue: o.WriteQueue,
		Codec:      Codec{Grants: o.Grants},
		Now:        o.Now,
		Observer:   o.Observer,
		Logger:     o.Logger,
	})
}

// LocalCache is NewCache with in-process tiers only, each bounded at
// maxEntries: for tests, benchmarks and embedding. It panics if
// maxEntries <= 0.
func LocalCache(maxEntries int, now func() time.Time) *cache.Tiered[Verdict] {
	t, err := NewCache(CacheOptions{MaxEntries: maxEntries, MaxNegativeEntries: maxEntries, Now: now})
	if err != nil {
		panic(err)
	}
	return t
}
