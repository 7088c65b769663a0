package dpop

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ReplayStore remembers the proofs a resource server has accepted, for as
// long as each could be presented again (RFC 9449 §11.1).
type ReplayStore interface {
	// Claim records key for ttl and reports whether it was new; false
	// means it was recorded before and has not expired: a replay. An error
	// means the store cannot tell, and the proof must not be accepted.
	Claim(ctx context.Context, key string, ttl time.Duration) (fresh bool, err error)
}

// ErrReplayFull is the error of a MemoryReplay that holds its maximum of
// unexpired entries and is asked to record another. Verify wraps it in
// ErrUnavailable.
var ErrReplayFull = errors.New("dpop: replay store full")

// DefaultReplayEntries is the bound of a MemoryReplay built with
// maxEntries ≤ 0: 2^18 proofs, about 4,000 a second sustained over the
// default 65-second window, in about 35 MiB (some 140 bytes an entry).
const DefaultReplayEntries = 1 << 18

// MemoryReplay is a ReplayStore in this process's memory, bounded.
//
// When it holds maxEntries unexpired entries it refuses to record another
// (ErrReplayFull, which Verify turns into ErrUnavailable: 503), rather than
// forget one early. A store that evicted under pressure would let whoever
// floods it with valid proofs of their own push out the entry of a proof
// they captured, and then replay it: eviction turns a flood into a
// bypass; refusal turns it into a denial of service that is visible (the
// error, its metric) and ends with the flood. A key already recorded is
// still reported as a replay when the store is full. Behind RedisReplay a
// full local store is only skipped: Redis still decides.
//
// Entries expire in the order they were recorded (a constant ttl, as
// Verify gives, keeps that order exact), and each Claim drops the expired
// ones at the head of that order: memory follows the entries live in the
// window, with no sweeper goroutine and no scan.
type MemoryReplay struct {
	max int
	now func() time.Time

	mu   sync.Mutex
	seen map[[sha256.Size]byte]int64 // key's hash → expiry, Unix ns
	fifo []replayEntry               // in recording order, from head
	head int
}

type replayEntry struct {
	key [sha256.Size]byte
	exp int64
}

// NewMemoryReplay returns an in-process store of at most maxEntries
// unexpired entries (DefaultReplayEntries when maxEntries ≤ 0). now nil
// means time.Now.
func NewMemoryReplay(maxEntries int, now func() time.Time) *MemoryReplay {
	if maxEntries <= 0 {
		maxEntries = DefaultReplayEntries
	}
	if now == nil {
		now = time.Now
	}
	return &MemoryReplay{max: maxEntries, now: now, seen: make(map[[sha256.Size]byte]int64)}
}

// Claim implements ReplayStore. Keys are held as their SHA-256, so an
// entry's size does not depend on the key's.
func (m *MemoryReplay) Claim(_ context.Context, key string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, fmt.Errorf("dpop: replay ttl %s is not positive", ttl)
	}
	k := sha256String(key)
	now := m.now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expire(now)
	if exp, ok := m.seen[k]; ok && exp > now {
		return false, nil
	}
	if len(m.fifo)-m.head >= m.max {
		return false, ErrReplayFull
	}
	exp := now + int64(ttl)
	m.seen[k] = exp
	m.fifo = append(m.fifo, replayEntry{key: k, exp: exp})
	return true, nil
}

// forget drops key if it is recorded: RedisReplay's undo of a local
// record when Redis could not be asked, so that the client's retry of the
// same, refused, proof is judged by Redis rather than refused here.
func (m *MemoryReplay) forget(key string) {
	k := sha256String(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.seen, k)
	// Its fifo entry stays until it expires: one slot of the bound, and
	// expire deletes from seen only an entry whose expiry is the fifo's.
}

// Len is the number of entries counted against the bound.
func (m *MemoryReplay) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expire(m.now().UnixNano())
	return len(m.fifo) - m.head
}

// expire drops the entries at the head of the fifo that have expired.
// An entry recorded with a longer ttl than those after it holds them
// until it expires itself: they count against the bound a little longer,
// never less.
func (m *MemoryReplay) expire(now int64) {
	for m.head < len(m.fifo) && m.fifo[m.head].exp <= now {
		e := m.fifo[m.head]
		if exp, ok := m.seen[e.key]; ok && exp == e.exp {
			delete(m.seen, e.key)
		}
		m.fifo[m.head] = replayEntry{}
		m.head++
	}
	switch {
	case m.head == len(m.fifo):
		m.fifo, m.head = m.fifo[:0], 0
	case m.head >= 1024 && m.head >= len(m.fifo)/2:
		n := copy(m.fifo, m.fifo[m.head:])
		m.fifo, m.head = m.fifo[:n], 0
	}
}
