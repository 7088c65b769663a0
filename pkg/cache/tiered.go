package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Codec turns values into bytes for the shared tier and back.
type Codec[V any] interface {
	Encode(V) ([]byte, error)
	Decode([]byte) (V, error)
}

// Shared is the second tier, shared by every replica: *Redis implements it.
type Shared interface {
	GetExpiry(ctx context.Context, key string) ([]byte, time.Time, bool, error)
	Set(ctx context.Context, key string, v []byte, ttl time.Duration) error
	Add(ctx context.Context, key string, v []byte, ttl time.Duration) (bool, error)
	Delete(ctx context.Context, key string) error
	Publish(ctx context.Context, channel string, msg []byte) (int64, error)
	Subscribe(ctx context.Context, channel string, onMessage func([]byte), onResubscribe func())
}

// InvalidationChannel is the pub/sub channel replicas drop local entries on.
const InvalidationChannel = "extauthz:v1:invalidate"

// LocalTier is one in-process tier of a [Tiered] store. A *Memory[Key, V]
// implements it; a caller may supply a store shaped for its values (the
// verdict cache holds valid tokens in a compact, fixed-size store).
//
// Like [Store], a LocalTier is safe for concurrent use and never blocks on
// the network: Tiered ignores the errors its methods return.
type LocalTier[V any] interface {
	// Get returns the value and true, or the zero value and false when
	// absent or expired by the store's clock.
	Get(ctx context.Context, key Key) (V, bool, error)
	// Set stores v for ttl, replacing any entry; ttl <= 0 stores nothing
	// and removes any existing entry.
	Set(ctx context.Context, key Key, v V, ttl time.Duration) error
	// Delete removes key; deleting an absent key is not an error.
	Delete(ctx context.Context, key Key) error
	// Clear drops every entry (not reported as evictions).
	Clear()
	// Len returns the number of entries held, possibly including expired
	// ones not yet reclaimed.
	Len() int
}

// TieredOptions configures a Tiered store.
type TieredOptions[V any] struct {
	// Local are the in-process tiers, looked up in order. A value lives in
	// exactly one of them, chosen by Place, so that each can be bounded on
	// its own (valid tokens must not be evicted by a flood of invalid ones).
	// None at all (with a Shared tier) measures the shared tier alone.
	Local []LocalTier[V]
	// Place returns the index in Local of the tier that holds v.
	Place func(v V) int
	// Shared is the second tier; nil for in-process only.
	Shared Shared
	// Codec encodes values for Shared. Required with Shared.
	Codec Codec[V]
	// Sticky lists the local tiers (indexes in Local) whose entries are
	// final — revocations: neither Add nor the local copy of a shared hit
	// ever replaces them with another value, even when the sticky entry
	// arrives while that call's shared round trip is under way, and they
	// survive the clearing that follows a lost subscription (they can only
	// make answers stricter, and the shared tier may have lost them).
	Sticky []int
	// AckTimeout bounds how long Invalidate, Replace and Delete wait for
	// replicas to confirm (default 2s).
	AckTimeout time.Duration
	// Channel is the pub/sub channel the store's invalidations travel on
	// (default InvalidationChannel). Two Tiered stores of a process that
	// hold different things need different channels: a broadcast waits
	// for as many acknowledgements as the channel has subscribers, and a
	// store that is not the sender's kind would receive the message and
	// acknowledge it, or not, for the wrong reason.
	Channel string
	// WriteQueue, above 0, takes the shared tier's writes off the caller's path: Add and Set
	// store locally, queue the shared write and return, and a background goroutine sends what
	// is queued in batches, one round trip each, in order. WriteQueue is how many writes may
	// wait; a verdict's write that finds the queue full is dropped (and counted, see
	// DropObserver), never waited for. Replace, Delete and Invalidate queue behind what is
	// already queued and wait for it, so that no older write overtakes them (see writer).
	// Close drains the queue. 0: every write is a round trip made by the caller.
	WriteQueue int
	Now        func() time.Time
	Observer   Observer
	Logger     *slog.Logger
}

// Tiered is an in-process tier in front of a shared tier. Reads try the
// local tiers, then the shared one, filling the local tier on a shared hit
// with the entry's remaining lifetime. Writes go to both. Invalidate drops a
// key from every replica's local tiers through the shared tier's pub/sub,
// and a replica that lost its subscription (and so may have missed
// invalidations) drops all its local entries when it resubscribes.
//
// The shared tier is an optimisation: when it fails, reads miss, writes are
// local only, and the caller carries on.
type Tiered[V any] struct {
	o TieredOptions[V]

	// writes serialise, per key (a stripe of keys), the local writes that
	// decide between a sticky value and another: a non-sticky value is
	// stored only if no sticky one is held (fill), and a sticky one is
	// stored before the others are removed (setLocal). Reads take no lock:
	// with these two steps atomic against each other, a reader that starts
	// after a sticky store returned can no longer find another value.
	writes [writeStripes]sync.Mutex

	mu      sync.Mutex
	waiters map[string]*ackWaiter

	// w is the write queue (nil without WriteQueue or a shared tier).
	w *writer
}

// writeStripes is the number of locks the local writes of different keys
// spread over; writes happen on misses only, so a few suffice.
const writeStripes = 64

type ackWaiter struct {
	remaining atomic.Int64
	done      chan struct{}
	once      sync.Once
}

// NewTiered builds a tiered store.
func NewTiered[V any](o TieredOptions[V]) (*Tiered[V], error) {
	if len(o.Local) == 0 && o.Shared == nil {
		return nil, errors.New("cache: a tiered store needs a local or a shared tier")
	}
	if len(o.Local) > 0 && o.Place == nil {
		return nil, errors.New("cache: local tiers need Place")
	}
	for _, i := range o.Sticky {
		if i < 0 || i >= len(o.Local) {
			return nil, fmt.Errorf("cache: sticky tier %d does not exist", i)
		}
	}
	if o.Shared != nil && o.Codec == nil {
		return nil, errors.New("cache: a shared tier needs a codec")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = 2 * time.Second
	}
	if o.Channel == "" {
		o.Channel = InvalidationChannel
	}
	if o.Observer == nil {
		o.Observer = NopObserver{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Tiered[V]{o: o, waiters: map[string]*ackWaiter{}}
	if o.WriteQueue > 0 && o.Shared != nil {
		t.w = newWriter(o.WriteQueue)
		go t.run(t.w)
	}
	return t, nil
}

// Tier says where a lookup found its value.
type Tier uint8

// The tiers a value can come from.
const (
	TierNone   Tier = iota // not found
	TierLocal              // an in-process tier
	TierShared             // the shared tier (Redis)
)

// String returns the tier's metric label: "local", "redis", or "none".
func (t Tier) String() string {
	switch t {
	case TierLocal:
		return tierLocal
	case TierShared:
		return tierRedis
	}
	return "none"
}

// Get looks the key up locally, then in the shared tier. A shared tier that
// cannot answer is a miss; its error is returned for the caller's logs.
func (t *Tiered[V]) Get(ctx context.Context, key Key) (V, bool, error) {
	v, tier, err := t.GetFrom(ctx, key)
	return v, tier != TierNone, err
}

// GetFrom is Get that also says which tier answered (TierNone: a miss).
func (t *Tiered[V]) GetFrom(ctx context.Context, key Key) (V, Tier, error) {
	for _, l := range t.o.Local {
		if v, ok, _ := l.Get(ctx, key); ok {
			t.o.Observer.Lookup(tierLocal, true)
			return v, TierLocal, nil
		}
	}
	if len(t.o.Local) > 0 {
		t.o.Observer.Lookup(tierLocal, false)
	}
	var zero V
	if t.o.Shared == nil {
		return zero, TierNone, nil
	}
	b, exp, ok, err := t.o.Shared.GetExpiry(ctx, key.String())
	if err != nil || !ok {
		t.o.Observer.Lookup(tierRedis, false)
		return zero, TierNone, err
	}
	v, err := t.o.Codec.Decode(b)
	if err != nil {
		t.o.Observer.Lookup(tierRedis, false)
		t.o.Observer.Error(tierRedis, "decode")
		return zero, TierNone, fmt.Errorf("cache: undecodable shared entry: %w", err)
	}
	t.o.Observer.Lookup(tierRedis, true)
	// A revocation may have arrived during the round trip: then it is the
	// value in force, and v is not kept.
	if cur, won := t.fill(ctx, key, v, exp.Sub(t.o.Now())); won {
		return cur, TierLocal, nil
	}
	return v, TierShared, nil
}

// Add stores v unless the shared tier already holds a value for key, or
// a sticky tier here does, and returns the value in force: v, or the one
// held. This is how a verification that finishes after a revocation loses
// to it: the revocation's entry stays, and every tier ends up holding it —
// also when the revocation arrives (from this replica or another) while
// Add waits for the shared tier, and when that wait ends in an error.
//
// With a write queue (WriteQueue), Add does not wait for the shared tier:
// it returns v (or the sticky value held here), and the queued add, still
// refused by a live shared entry, replaces this replica's copy with that
// entry when it is sent. So a revocation this replica has not heard of is
// answered from the next lookup on rather than by this call — as it is
// when the shared tier cannot answer in time.
func (t *Tiered[V]) Add(ctx context.Context, key Key, v V, ttl time.Duration) (V, error) {
	if ttl <= 0 {
		return v, nil
	}
	if cur, ok := t.sticky(ctx, key); ok {
		// A revocation held here wins, whatever the shared tier says
		// (it may be down, or have lost the entry).
		return cur, nil
	}
	if t.o.Shared == nil {
		cur, _ := t.fill(ctx, key, v, ttl)
		return cur, nil
	}
	if t.w != nil {
		expires := t.o.Now().Add(ttl)
		cur, won := t.fill(ctx, key, v, ttl)
		if won {
			return cur, nil
		}
		b, err := t.o.Codec.Encode(v)
		if err != nil {
			return cur, err
		}
		t.enqueue(key, WriteOp{Kind: WriteAdd, Key: key.String(), Value: b, ExpiresAt: expires})
		return cur, nil
	}
	b, err := t.o.Codec.Encode(v)
	if err != nil {
		cur, _ := t.fill(ctx, key, v, ttl)
		return cur, err
	}
	added, err := t.o.Shared.Add(ctx, key.String(), b, ttl)
	if err != nil || added {
		cur, _ := t.fill(ctx, key, v, ttl)
		return cur, err
	}
	// Someone else's entry is already there: take it. If it cannot be
	// read back, it may be a revocation: answer with v this once, as with
	// Redis down, but do not keep v locally in its place.
	if cur, ok, err := t.Get(ctx, key); ok && err == nil {
		return cur, nil
	}
	return v, nil
}

// Set stores v in every tier, replacing what is there, a sticky value
// included: it is the explicit overwrite, which no verification calls.
// With a write queue, the shared tier's write is queued (see Add).
func (t *Tiered[V]) Set(ctx context.Context, key Key, v V, ttl time.Duration) error {
	expires := t.o.Now().Add(ttl)
	t.setLocal(ctx, key, v, ttl)
	if t.o.Shared == nil {
		return nil
	}
	b, err := t.o.Codec.Encode(v)
	if err != nil {
		return err
	}
	if t.w != nil {
		t.enqueue(key, WriteOp{Kind: WriteSet, Key: key.String(), Value: b, ExpiresAt: expires})
		return nil
	}
	return t.o.Shared.Set(ctx, key.String(), b, ttl)
}

// setLocal puts v in its local tier and removes key from the others, so a
// key is never held twice with different values. It replaces whatever is
// held, sticky or not. v is stored before the others are removed: a
// reader finds the old value or v, never neither, and once setLocal
// returns, only v.
func (t *Tiered[V]) setLocal(ctx context.Context, key Key, v V, ttl time.Duration) {
	if len(t.o.Local) == 0 {
		return
	}
	mu := t.lock(key)
	defer mu.Unlock()
	t.storeLocked(ctx, key, v, ttl, true)
}

// fill stores v locally as Add and a shared hit do: unless a sticky tier
// holds key, in which case v is dropped and the sticky value is returned
// as the one in force (won true). A sticky v is stored as setLocal does.
//
// The sticky check and the store are one step against setLocal (the
// stripe lock), so a revocation stored while the caller waited for the
// shared tier either is seen here, or removes v after it was stored: v
// can never be left beside it, nor replace it.
func (t *Tiered[V]) fill(ctx context.Context, key Key, v V, ttl time.Duration) (V, bool) {
	if len(t.o.Local) == 0 {
		return v, false
	}
	stickyV := slices.Contains(t.o.Sticky, t.o.Place(v))
	mu := t.lock(key)
	defer mu.Unlock()
	if !stickyV {
		if cur, ok := t.sticky(ctx, key); ok {
			return cur, true
		}
	}
	if ttl > 0 {
		t.storeLocked(ctx, key, v, ttl, stickyV)
	}
	return v, false
}

// storeLocked is setLocal with the key's stripe lock held. Unless all is
// set, the sticky tiers are left alone (fill has just seen that they do
// not hold key, and nothing stores there without the lock).
func (t *Tiered[V]) storeLocked(ctx context.Context, key Key, v V, ttl time.Duration, all bool) {
	place := t.o.Place(v)
	_ = t.o.Local[place].Set(ctx, key, v, ttl)
	for i, l := range t.o.Local {
		if i != place && (all || !slices.Contains(t.o.Sticky, i)) {
			_ = l.Delete(ctx, key)
		}
	}
}

// lock locks and returns the stripe lock of key. The key is a SHA-256, so
// its first byte spreads keys evenly.
func (t *Tiered[V]) lock(key Key) *sync.Mutex {
	mu := &t.writes[int(key.Hash[0])%writeStripes]
	mu.Lock()
	return mu
}

// sticky returns the value a sticky tier holds for key.
func (t *Tiered[V]) sticky(ctx context.Context, key Key) (V, bool) {
	for _, i := range t.o.Sticky {
		if v, ok, _ := t.o.Local[i].Get(ctx, key); ok {
			return v, true
		}
	}
	var zero V
	return zero, false
}

func (t *Tiered[V]) deleteLocal(ctx context.Context, key Key) {
	for _, l := range t.o.Local {
		_ = l.Delete(ctx, key)
	}
}
