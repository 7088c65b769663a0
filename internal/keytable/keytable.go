// Package keytable keeps, for a key object, a value computed from it once,
// for as long as the object lives: the prepared forms of public keys that
// internal/rsasig and internal/ed25519sig check signatures with.
//
// An entry is held by a weak pointer to its key, so it never keeps the key
// alive, and a cleanup removes the entry once the key is collected: a key
// set refreshed drops its old keys and their entries with them. A key
// changed in place after its value was computed is noticed by the caller's
// check (Get's current), and its value computed again.
package keytable

import (
	"runtime"
	"sync"
	"weak"
)

// Table maps *K to the *V computed from it. The zero value is ready.
type Table[K, V any] struct {
	m sync.Map // weak.Pointer[K] → *V
}

// Get returns the value kept for key when current reports it still fits
// the key; otherwise the value compute returns, kept in its place. An
// error from compute is returned and nothing is kept.
func (t *Table[K, V]) Get(key *K, current func(*V) bool, compute func() (*V, error)) (*V, error) {
	wp := weak.Make(key)
	if v, ok := t.m.Load(wp); ok {
		if p := v.(*V); current(p) { //nolint:errcheck,forcetypeassert // the map holds nothing else
			return p, nil
		}
		// Changed since: computed again, the entry replaced (its cleanup,
		// registered once, still holds).
		p, err := compute()
		if err != nil {
			return nil, err
		}
		t.m.Store(wp, p)
		return p, nil
	}
	p, err := compute()
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
