package oauthflow

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// Reclaiming expired in-process entries. Not options: they trade a pass over the map against
// how long dead entries hold memory, which no deployment needs to tune.
const (
	// sweepInterval is how often, at most, a call sweeps the whole store for expired entries.
	sweepInterval = time.Minute
	// fullSweepGap is how often, at most, a new entry meeting a full store sweeps it first: a
	// store full of live entries does not pay a pass over the map on every insert.
	fullSweepGap = time.Second
)

// memory is the in-process backend: one map under one mutex, with the markers also in a list,
// oldest first, for eviction. Expiry is by the injected clock.
type memory struct {
	now func() time.Time
	max int

	mu            sync.Mutex
	entries       map[string]*memEntry
	markers       list.List // of *memEntry, the markers of completed sign-ins, oldest first
	locks         map[string]memLock
	nextSweep     time.Time
	nextFullSweep time.Time
}

type memEntry struct {
	key  string
	val  []byte
	exp  time.Time
	elem *list.Element // in memory.markers; nil for a session
}

type memLock struct {
	token string
	exp   time.Time
}

func newMemory(maxEntries int, now func() time.Time) *memory {
	return &memory{
		now:     now,
		max:     maxEntries,
		entries: make(map[string]*memEntry),
		locks:   make(map[string]memLock),
	}
}

// begin takes the lock and reclaims expired entries if the periodic sweep is due; the caller
// unlocks.
func (m *memory) begin() time.Time {
	now := m.now()
	m.mu.Lock()
	if !now.Before(m.nextSweep) {
		m.sweep(now)
		m.nextSweep = now.Add(sweepInterval)
	}
	return now
}

// sweep drops every expired entry and lock.
func (m *memory) sweep(now time.Time) {
	for _, e := range m.entries {
		if !now.Before(e.exp) {
			m.remove(e)
		}
	}
	for k, l := range m.locks {
		if !now.Before(l.exp) {
			delete(m.locks, k)
		}
	}
}

func (m *memory) remove(e *memEntry) {
	delete(m.entries, e.key)
	if e.elem != nil {
		m.markers.Remove(e.elem)
		e.elem = nil
	}
}

// makeRoom frees one place in a full store, as the package documentation describes: expired
// entries first (at most one sweep per fullSweepGap), then the oldest marker.
func (m *memory) makeRoom(now time.Time) bool {
	if !now.Before(m.nextFullSweep) {
		m.nextFullSweep = now.Add(fullSweepGap)
		m.sweep(now)
		if len(m.entries) < m.max {
			return true
		}
	}
	if front := m.markers.Front(); front != nil {
		m.remove(front.Value.(*memEntry))
		return true
	}
	return false
}

func (m *memory) set(_ context.Context, key string, val []byte, ttl time.Duration) error {
	now := m.begin()
	defer m.mu.Unlock()
	exp := now.Add(ttl)
	if e, ok := m.entries[key]; ok {
		e.val, e.exp = val, exp
		return nil
	}
	if len(m.entries) >= m.max && !m.makeRoom(now) {
		return ErrFull
	}
	m.entries[key] = &memEntry{key: key, val: val, exp: exp}
	return nil
}

// add stores a marker, evictable, unless key holds a live entry.
func (m *memory) add(_ context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	now := m.begin()
	defer m.mu.Unlock()
	if m.lookup(key, now) != nil {
		return false, nil
	}
	if len(m.entries) >= m.max && !m.makeRoom(now) {
		return false, ErrFull
	}
	e := &memEntry{key: key, val: val, exp: now.Add(ttl)}
	e.elem = m.markers.PushBack(e)
	m.entries[key] = e
	return true, nil
}

// lookup returns the live entry at key, dropping an expired one. The caller holds the lock.
func (m *memory) lookup(key string, now time.Time) *memEntry {
	e, ok := m.entries[key]
	if !ok {
		return nil
	}
	if !now.Before(e.exp) {
		m.remove(e)
		return nil
	}
	return e
}

func (m *memory) get(_ context.Context, key string) ([]byte, bool, error) {
	now := m.begin()
	defer m.mu.Unlock()
	if e := m.lookup(key, now); e != nil {
		return e.val, true, nil
	}
	return nil, false, nil
}

func (m *memory) del(_ context.Context, key string) error {
	m.begin()
	defer m.mu.Unlock()
	if e, ok := m.entries[key]; ok {
		m.remove(e)
	}
	return nil
}

func (m *memory) lock(_ context.Context, key, token string, ttl time.Duration) (bool, error) {
	now := m.begin()
	defer m.mu.Unlock()
	if l, ok := m.locks[key]; ok && now.Before(l.exp) {
		return false, nil
	}
	m.locks[key] = memLock{token: token, exp: now.Add(ttl)}
	return true, nil
}

func (m *memory) renew(_ context.Context, key, token string, ttl time.Duration) (bool, error) {
	now := m.begin()
	defer m.mu.Unlock()
	l, ok := m.locks[key]
	if !ok || l.token != token || !now.Before(l.exp) {
		return false, nil
	}
	m.locks[key] = memLock{token: token, exp: now.Add(ttl)}
	return true, nil
}

func (m *memory) unlock(_ context.Context, key, token string) error {
	m.begin()
	defer m.mu.Unlock()
	if l, ok := m.locks[key]; ok && l.token == token {
		delete(m.locks, key)
	}
	return nil
}
