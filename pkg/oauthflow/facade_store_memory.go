package oauthflow

import (
	"bytes"
	"context"
	"sync"
	"time"
)

// facadeMemory is the facade's in-process backend: two maps under one mutex, clients apart
// from codes and families so that each has its own bound. Expiry is by the injected clock;
// expired entries are dropped when read, and by a sweep at most once a minute (sweepInterval)
// or, when a map is full, at most once a second (fullSweepGap).
type facadeMemory struct {
	now        func() time.Time
	maxEntries int

	mu            sync.Mutex
	clients       map[string]facadeEntry
	entries       map[string]facadeEntry
	nextSweep     time.Time
	nextFullSweep time.Time
}

type facadeEntry struct {
	val []byte
	exp time.Time
}

func newFacadeMemory(maxEntries int, now func() time.Time) *facadeMemory {
	return &facadeMemory{
		now:        now,
		maxEntries: maxEntries,
		clients:    make(map[string]facadeEntry),
		entries:    make(map[string]facadeEntry),
	}
}

// begin takes the lock and sweeps if due; the caller unlocks.
func (m *facadeMemory) begin() time.Time {
	now := m.now()
	m.mu.Lock()
	if !now.Before(m.nextSweep) {
		m.sweep(now)
		m.nextSweep = now.Add(sweepInterval)
	}
	return now
}

func (m *facadeMemory) sweep(now time.Time) {
	for _, mp := range []map[string]facadeEntry{m.clients, m.entries} {
		for k, e := range mp {
			if !now.Before(e.exp) {
				delete(mp, k)
			}
		}
	}
}

// roomIn reports whether mp has room for one more entry below limit, sweeping first when it
// is full and a sweep is allowed.
func (m *facadeMemory) roomIn(mp map[string]facadeEntry, limit int, now time.Time) bool {
	if len(mp) < limit {
		return true
	}
	if now.Before(m.nextFullSweep) {
		return false
	}
	m.nextFullSweep = now.Add(fullSweepGap)
	m.sweep(now)
	return len(mp) < limit
}

// live returns the live entry at key of mp, dropping an expired one. The caller holds the lock.
func live(mp map[string]facadeEntry, key string, now time.Time) (facadeEntry, bool) {
	e, ok := mp[key]
	if !ok {
		return facadeEntry{}, false
	}
	if !now.Before(e.exp) {
		delete(mp, key)
		return facadeEntry{}, false
	}
	return e, true
}

func (m *facadeMemory) addClient(_ context.Context, key string, val []byte, ttl time.Duration, maxClients int) (bool, error) {
	now := m.begin()
	defer m.mu.Unlock()
	if _, ok := live(m.clients, key, now); ok {
		return false, nil
	}
	if !m.roomIn(m.clients, maxClients, now) {
		return false, ErrTooManyClients
	}
	m.clients[key] = facadeEntry{val: val, exp: now.Add(ttl)}
	return true, nil
}

func (m *facadeMemory) touchClient(_ context.Context, key string, ttl time.Duration) ([]byte, bool, error) {
	now := m.begin()
	defer m.mu.Unlock()
	e, ok := live(m.clients, key, now)
	if !ok {
		return nil, false, nil
	}
	e.exp = now.Add(ttl)
	m.clients[key] = e
	return e.val, true, nil
}

func (m *facadeMemory) delClient(_ context.Context, key string) error {
	m.begin()
	defer m.mu.Unlock()
	delete(m.clients, key)
	return nil
}

func (m *facadeMemory) add(_ context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	now := m.begin()
	defer m.mu.Unlock()
	if _, ok := live(m.entries, key, now); ok {
		return false, nil
	}
	if !m.roomIn(m.entries, m.maxEntries, now) {
		return false, ErrFull
	}
	m.entries[key] = facadeEntry{val: val, exp: now.Add(ttl)}
	return true, nil
}

func (m *facadeMemory) get(_ context.Context, key string) ([]byte, bool, error) {
	now := m.begin()
	defer m.mu.Unlock()
	e, ok := live(m.entries, key, now)
	return e.val, ok, nil
}

func (m *facadeMemory) getdel(_ context.Context, key string) ([]byte, bool, error) {
	now := m.begin()
	defer m.mu.Unlock()
	e, ok := live(m.entries, key, now)
	if ok {
		delete(m.entries, key)
	}
	return e.val, ok, nil
}

func (m *facadeMemory) swap(_ context.Context, key string, old, val []byte, ttl time.Duration) (bool, error) {
	now := m.begin()
	defer m.mu.Unlock()
	e, ok := live(m.entries, key, now)
	if !ok || !bytes.Equal(e.val, old) {
		return false, nil
	}
	m.entries[key] = facadeEntry{val: val, exp: now.Add(ttl)}
	return true, nil
}

func (m *facadeMemory) del(_ context.Context, key string) error {
	m.begin()
	defer m.mu.Unlock()
	delete(m.entries, key)
	return nil
}
