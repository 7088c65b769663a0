package cache

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Invalidation reports how far an invalidation reached.
type Invalidation struct {
	Replicas     int64 // subscribers the message was delivered to (this replica included)
	Acknowledged int64 // those that confirmed dropping the key
}

// ErrNoSharedTier means that Invalidate, with no shared tier, reached this
// replica only (which it has done).
var ErrNoSharedTier = errors.New("cache: no shared tier: invalidated this replica only")

// Invalidate drops key from this replica's local tiers and asks every
// replica to do the same, waiting (up to AckTimeout or ctx) until each one
// that received the message has confirmed.
func (t *Tiered[V]) Invalidate(ctx context.Context, key Key) (Invalidation, error) {
	t.deleteLocal(ctx, key)
	if t.o.Shared == nil {
		return Invalidation{Replicas: 1, Acknowledged: 1}, ErrNoSharedTier
	}
	if t.w != nil {
		// Writes queued before this one reach the shared tier before the
		// replicas drop their copies, and a queued add settled meanwhile
		// may have put its copy back here.
		_ = t.writeWait(ctx, key, WriteOp{}, true)
		t.deleteLocal(ctx, key)
	}
	return t.broadcast(ctx, func(id string) string { return "i " + id + " " + key.String() })
}

// Replace stores v for key in every tier of every replica — this one's
// local and shared tiers, and, through the shared tier's pub/sub, the
// local tiers of every other replica, which also confirm — waiting (up to
// AckTimeout or ctx) for the confirmations. Unlike Invalidate, a replica
// that cannot reach the shared tier afterwards still holds v: this is how
// a revocation survives Redis going down. Without a shared tier it stores
// v locally and returns ErrNoSharedTier; if the shared tier fails, v is
// still held here and the error is returned.
func (t *Tiered[V]) Replace(ctx context.Context, key Key, v V, ttl time.Duration) (Invalidation, error) {
	t.setLocal(ctx, key, v, ttl)
	if t.o.Shared == nil {
		return Invalidation{Replicas: 1, Acknowledged: 1}, ErrNoSharedTier
	}
	b, err := t.o.Codec.Encode(v)
	if err != nil {
		return Invalidation{}, err
	}
	if t.w != nil {
		// Behind the writes already queued, so that none overwrites it.
		err = t.writeWait(ctx, key, WriteOp{Kind: WriteSet, Key: key.String(), Value: b, ExpiresAt: t.o.Now().Add(ttl)}, false)
	} else {
		err = t.o.Shared.Set(ctx, key.String(), b, ttl)
	}
	if err != nil {
		return Invalidation{}, fmt.Errorf("cache: not stored in the shared tier: %w", err)
	}
	expiry := t.o.Now().Add(ttl).UnixMilli()
	tail := " " + key.String() + " " + strconv.FormatInt(expiry, 10) + " " + base64.RawURLEncoding.EncodeToString(b)
	return t.broadcast(ctx, func(id string) string { return "s " + id + tail })
}

// Delete removes key from every tier of every replica: the shared tier,
// this replica's local tiers, and, through the shared tier's pub/sub, the
// local tiers of the other replicas, waiting (up to AckTimeout or ctx) for
// their confirmations. Sticky entries go too: it is the explicit removal.
// Without a shared tier it removes key here and returns ErrNoSharedTier.
// If the shared tier's delete fails, the replicas are still told, and the
// error is returned: the entry may live on in the shared tier.
func (t *Tiered[V]) Delete(ctx context.Context, key Key) (Invalidation, error) {
	t.deleteLocal(ctx, key)
	if t.o.Shared == nil {
		return Invalidation{Replicas: 1, Acknowledged: 1}, ErrNoSharedTier
	}
	// The shared entry goes first: a replica that drops its copy on the
	// message and reads again must not find it there.
	var derr error
	if t.w != nil {
		// Behind the writes already queued, so that none puts the entry
		// back; a queued add settled meanwhile may have put its copy back
		// here.
		derr = t.writeWait(ctx, key, WriteOp{Kind: WriteDelete, Key: key.String()}, false)
		t.deleteLocal(ctx, key)
	} else {
		derr = t.o.Shared.Delete(ctx, key.String())
	}
	if derr != nil {
		derr = fmt.Errorf("cache: not deleted from the shared tier: %w", derr)
	}
	inv, err := t.broadcast(ctx, func(id string) string { return "i " + id + " " + key.String() })
	return inv, errors.Join(derr, err)
}

// broadcast publishes msg(id), id being a fresh message id, on the
// store's channel and waits for every receiver to confirm.
func (t *Tiered[V]) broadcast(ctx context.Context, msg func(id string) string) (Invalidation, error) {
	id := randomID()
	w := &ackWaiter{done: make(chan struct{})}
	t.mu.Lock()
	t.waiters[id] = w
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.waiters, id)
		t.mu.Unlock()
	}()
	// Acks may arrive before we know how many to expect; count down from
	// a large number and correct it once Publish says how many received it.
	const unknown = int64(1) << 40
	w.remaining.Store(unknown)
	n, err := t.o.Shared.Publish(ctx, t.o.Channel, []byte(msg(id)))
	if err != nil {
		return Invalidation{}, fmt.Errorf("cache: invalidation not published: %w", err)
	}
	if w.remaining.Add(n-unknown) <= 0 {
		w.finish()
	}
	wctx, cancel := context.WithTimeout(ctx, t.o.AckTimeout)
	defer cancel()
	select {
	case <-w.done:
	case <-wctx.Done():
	}
	acked := n - max(w.remaining.Load(), 0)
	return Invalidation{Replicas: n, Acknowledged: acked}, nil
}

func (w *ackWaiter) finish() { w.once.Do(func() { close(w.done) }) }

// Run follows invalidations until ctx ends: it drops the keys other
// replicas invalidate, confirms each, and clears the local tiers whenever
// the subscription had to be re-established. Without a shared tier it
// returns at once.
func (t *Tiered[V]) Run(ctx context.Context) {
	if t.o.Shared == nil {
		return
	}
	t.o.Shared.Subscribe(ctx, t.o.Channel, func(msg []byte) {
		kind, rest, _ := strings.Cut(string(msg), " ")
		switch kind {
		case "i":
			id, name, ok := strings.Cut(rest, " ")
			key, valid := ParseKey(name)
			if !ok || !valid {
				return
			}
			t.deleteLocal(ctx, key)
			t.ack(ctx, id)
		case "s":
			// s <id> <key> <expiry unix ms> <base64url encoded value>
			f := strings.SplitN(rest, " ", 4)
			if len(f) != 4 {
				return
			}
			key, valid := ParseKey(f[1])
			ms, err := strconv.ParseInt(f[2], 10, 64)
			b, berr := base64.RawURLEncoding.DecodeString(f[3])
			if !valid || err != nil || berr != nil {
				return
			}
			v, err := t.o.Codec.Decode(b)
			if err != nil {
				t.o.Observer.Error(tierRedis, "decode")
				t.deleteLocal(ctx, key) // at least do not keep the old value
				return
			}
			if ttl := time.UnixMilli(ms).Sub(t.o.Now()); ttl > 0 {
				t.setLocal(ctx, key, v, ttl)
			} else {
				t.deleteLocal(ctx, key)
			}
			t.ack(ctx, f[0])
		case "a":
			t.mu.Lock()
			w := t.waiters[rest]
			t.mu.Unlock()
			if w != nil && w.remaining.Add(-1) <= 0 {
				w.finish()
			}
		}
	}, func() {
		// Invalidations may have been missed while disconnected: nothing
		// held locally can be trusted any more, except the sticky tiers
		// (revocations), which only make answers stricter.
		for i, l := range t.o.Local {
			if !slices.Contains(t.o.Sticky, i) {
				l.Clear()
			}
		}
		t.o.Logger.Info("cache subscription re-established; local tier cleared")
	})
}

// ack confirms message id to its sender.
func (t *Tiered[V]) ack(ctx context.Context, id string) {
	if _, err := t.o.Shared.Publish(ctx, t.o.Channel, []byte("a "+id)); err != nil {
		t.o.Logger.Warn("invalidation not acknowledged", "err", err)
	}
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
