// Package keytable keeps, for a key object, a value computed from it once,
// for as long as the object lives: the prepared forms of public keys that
// internal/rsasig, internal/p256sig and internal/ed25519sig check
// signatures with.
//
// An entry is held by a weak pointer to its key, so it never keeps the key
// alive, and a cleanup removes the entry once the key is collected: a key
// set refreshed drops its old keys and their entries with them. A key
// changed in place after its value was computed is noticed by the caller's
// check (Get's current), and its value computed again.
//
// A Table may bound the values it holds (Max): for keys anyone can send,
// whose values are large. A value is held from its computation until it
// is collected, so room is made as keys are.
package keytable

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"weak"
)

// ErrFull is Get's answer for a key without a value while the Table holds
// Max values: nothing is computed or kept.
var ErrFull = errors.New("keytable: the table holds as many values as it may")

// KeySetKeys bounds the keys of key sets held prepared, per kind of key,
// where a prepared key is large (a table of its multiples, about 132 KB).
// The configured issuers' key sets hold a few keys each, but a key set may
// be a 1 MiB document of thousands, and a token naming each key would have
// each prepared before its signature fails: 256 keys (34 MB) is far more
// than any issuer publishes, and bounds that.
const KeySetKeys = 256

// Table maps *K to the *V computed from it. The zero value is ready, with
// no bound.
type Table[K, V any] struct {
	// Max bounds the values held at once; 0 is no bound.
	Max int

	m    sync.Map // weak.Pointer[K] → *V
	held atomic.Int64
}

// Get returns the value kept for key when current reports it still fits
// the key; otherwise the value compute returns, kept in its place. An
// error from compute is returned and nothing is kept; ErrFull when a value
// would be computed and the Table holds Max.
func (t *Table[K, V]) Get(key *K, current func(*V) bool, compute func() (*V, error)) (*V, error) {
	wp := weak.Make(key)
	if v, ok := t.m.Load(wp); ok {
		if p := v.(*V); current(p) { //nolint:errcheck,forcetypeassert // the map holds nothing else
			return p, nil
		}
		// Changed since: computed again, the entry replaced (its cleanup,
		// registered once, still holds), whatever the bound: the value
		// replaced is freed.
		p, err := t.compute(compute, true)
		if err != nil {
			return nil, err
		}
		t.m.Store(wp, p)
		return p, nil
	}
	p, err := t.compute(compute, false)
	if err != nil {
		return nil, err
	}
	if _, loaded := t.m.LoadOrStore(wp, p); !loaded {
		runtime.AddCleanup(key, func(wp weak.Pointer[K]) { t.m.Delete(wp) }, wp)
	}
	return p, nil
}

// Len is the number of entries: keys used and not yet collected.
func (t *Table[K, V]) Len() int {
	n := 0
	t.m.Range(func(any, any) bool { n++; return true })
	return n
}

// compute runs compute within the bound (unless the value replaces one),
// and counts its value held until it is collected: dropped with its key,
// replaced after the key changed, or a concurrent first use's duplicate.
func (t *Table[K, V]) compute(compute func() (*V, error), replacing bool) (*V, error) {
	if n := t.held.Add(1); t.Max > 0 && n > int64(t.Max) && !replacing {
		t.held.Add(-1)
		return nil, ErrFull
	}
	p, err := compute()
	if err != nil {
		t.held.Add(-1)
		return nil, err
	}
	runtime.AddCleanup(p, func(held *atomic.Int64) { held.Add(-1) }, &t.held)
	return p, nil
}

// Held is the number of values computed and not yet collected: those
// kept, and until the collector has run those dropped lately.
func (t *Table[K, V]) Held() int { return int(t.held.Load()) }
