package verdict

import (
	"context"
	"crypto/sha256"
	"hash/maphash"
	"math"
	mathbits "math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/token"
)

// CompactTier is the in-process tier of valid tokens, built for a million
// entries: a fixed-size slab of fixed-size entries, allocated once outside
// the Go heap, with no pointer in it. A general-purpose store (cache.Memory)
// holds each verdict as a heap object graph — the Claims, its subject
// string, the cache's own node — about 275 bytes a token that the collector
// must scan, and whose garbage headroom roughly doubles in RSS. Here an
// entry is 144 bytes plus 8 of index, paid once for max_entries, whatever
// the traffic does.
//
// An entry holds the token's full SHA-256 and a namespace number (the key),
// the cache deadline and the token's expiry (Unix nanoseconds, exact), the
// grant's number in the Grants table, the token's iat (whole seconds), and
// the subject and sid inline, up to 82 bytes together: a UUID subject and
// a UUID session fit, and so do a 43-character Entra ID subject and one. A DPoP-bound token's thumbprint (Grant.JKT) is part
// of its grant, which the table never merges with an unbound one
// (Grant.Key), so it comes back with the grant. A verdict that does not
// fit — kept claims (Claims.Extra), a longer subject and sid, a grant the
// full Grants table cannot number, an expiry outside the years 1678–2262,
// an iat past 2106, or a failure — goes to a general store inside the
// tier, bounded at the same maxEntries, so nothing is refused. Get rebuilds
// the Claims, in one allocation (see claimsBox).
//
// The slab is split into up to 64 shards by a keyed hash of the token's
// SHA-256 (maphash, with a seed of this tier's: an issuer's tokens cannot be
// ground to pile into one shard). Each shard has its own lock (readers share
// it), a fixed share of maxEntries and an open-addressing index of slot
// numbers at most half full, with linear probing and backward-shift
// deletion, so no tombstone ever lengthens a probe. A shard that is full
// reclaims a slot by CLOCK: the hand frees the first entry that has expired
// or has not been read since the hand last passed (clearing the mark of
// those that have); only a live entry dropped so counts as an eviction.
// Since each shard holds maxEntries/shards, evictions can start a little
// before the whole tier is full (at a million entries in 64 shards, a
// shard's load varies by about 1 %: give max_entries a few percent of room).
//
// The key keeps all 32 bytes of the SHA-256. Sixteen would save 13 % of the
// entry, and finding a token whose truncated hash equals that of one of a
// million cached tokens still costs about 2¹⁰⁸ hashes — but what a match
// buys is another token's verified identity on the same resource, and the
// margin would rest on assumptions (a grinder cannot mint valid tokens, no
// quantum search: Grover halves the exponent) that a store cannot check.
// Both namespace and hash are compared on every match, and a namespace's
// number is never reused for another name.
//
// Expiry is decided at Get by the injected clock, exactly as cache.Memory
// does: an entry is served while now < deadline. Len counts the entries
// held, expired ones included until the hand reclaims their slots.
type CompactTier struct {
	shards []compactShard
	shift  uint // shard of a hash: h >> shift
	seed   maphash.Seed
	// An index entry is tag | slot+1: the slot number in the low slotBits
	// bits, and above them as many bits of the key's hash as are left, so
	// that a probe reads a slot (a likely cache miss) only when they match.
	slotBits uint

	grants *Grants
	ns     namespaceTable
	now    func() time.Time
	obs    cache.Observer

	// fallback holds what does not fit an entry; fallbackUsed spares the
	// lookup of a miss until something has been put there.
	fallback     *cache.Memory[cache.Key, Verdict]
	fallbackUsed atomic.Bool
}

const (
	// compactSubjectMax is the room for the subject and the sid inline,
	// together: a UUID subject (36) or an Entra ID one (43) with a UUID
	// sid (36, Keycloak's), and most e-mail addresses with no sid fit.
	compactSubjectMax = 82
	// compactMaxShards bounds the shards; fewer are used for small tiers,
	// so that each holds at least compactMinShardSlots.
	compactMaxShards     = 64
	compactMinShardSlots = 16
	// compactMaxNamespaces bounds the namespace numbers. A namespace is a
	// resource's name and config digest: a few per reload. Past the bound,
	// new namespaces go to the fallback store.
	compactMaxNamespaces = 4096
	// compactMaxEntries (144 GiB of slab) keeps slot numbers within 31 bits.
	compactMaxEntries = 1 << 30
	// An expiry is kept in Unix nanoseconds: these bounds, in seconds, are
	// within what an int64 of nanoseconds holds (years 1678–2262).
	compactMinExpiry = math.MinInt64/int64(time.Second) + 1
	compactMaxExpiry = math.MaxInt64/int64(time.Second) - 1
)

// compactSlot is one entry. It must hold no Go pointer: the slab lives
// outside the Go heap (see allocSlab). Its size, 144 bytes, is a multiple
// of 8 so that every slot's int64s stay aligned.
type compactSlot struct {
	hash     [sha256.Size]byte
	deadline int64  // cache deadline, Unix ns by the injected clock
	exp      int64  // the token's expiry, Unix ns
	grant    uint32 // number in Grants; in a free slot, the next free slot + 1
	ns       uint32 // namespace number, ≥ 1; 0 in a free slot
	iat      uint32 // the token's iat, Unix seconds; 0 when it has none
	subLen   uint8
	sidLen   uint8
	sub      [compactSubjectMax]byte // the subject, then the sid
}

type compactShard struct {
	mu    sync.RWMutex
	slots []compactSlot // fixed: this shard's share of maxEntries
	// index maps a probe position to tag | slot+1 (0: empty). It has
	// twice as many positions as slots, so a probe always reaches an empty
	// one.
	index []uint32
	ref   []atomic.Uint32 // CLOCK marks, a bit per slot, set by readers
	used  uint32          // slots handed out in order so far
	free  uint32          // first free slot + 1, 0 when none
	live  int             // entries in index
	hand  uint32          // CLOCK hand
	_     [64]byte        // keeps neighbouring shards' locks off one cache line
}

// NewCompactTier returns an empty tier of at most maxEntries verdicts in
// compact form (and as many in the fallback store). grants numbers the
// grants; pass the table verification interns with, so that storing a
// verdict finds its grant by pointer (nil: a table of 65536 of its own).
// now is the clock deciding expiry (nil: time.Now); obs is told of every
// eviction, as Evicted("local") (nil: nobody). It panics if maxEntries <= 0,
// as cache.NewMemory does.
func NewCompactTier(maxEntries int, grants *Grants, now func() time.Time, obs cache.Observer) *CompactTier {
	if maxEntries <= 0 || maxEntries > compactMaxEntries {
		panic("verdict: NewCompactTier needs 0 < maxEntries <= 1<<30")
	}
	if grants == nil {
		grants = NewGrants(1 << 16)
	}
	if obs == nil {
		obs = cache.NopObserver{}
	}
	fallback := cache.NewMemory[cache.Key, Verdict](cache.MemoryOptions{MaxEntries: maxEntries, Now: now, Observer: obs})
	if now == nil {
		now = time.Now
	}
	bits := uint(0)
	for 1<<(bits+1) <= compactMaxShards && maxEntries>>(bits+1) >= compactMinShardSlots {
		bits++
	}
	n := 1 << bits
	slots, index, free := allocSlab(maxEntries, 2*maxEntries)
	t := &CompactTier{
		shards:   make([]compactShard, n),
		shift:    64 - bits,
		slotBits: uint(mathbits.Len(uint(maxEntries/n + 1))),
		seed:     maphash.MakeSeed(),
		grants:   grants,
		now:      now,
		obs:      obs,
		fallback: fallback,
	}
	for i := range t.shards {
		c := maxEntries / n
		if i < maxEntries%n {
			c++
		}
		s := &t.shards[i]
		s.slots, slots = slots[:c:c], slots[c:]
		s.index, index = index[:2*c:2*c], index[2*c:]
		s.ref = make([]atomic.Uint32, (c+31)/32)
	}
	runtime.AddCleanup(t, func(free func()) { free() }, free)
	return t
}

// Get implements cache.LocalTier.
func (t *CompactTier) Get(ctx context.Context, key cache.Key) (Verdict, bool, error) {
	if ns, ok := t.ns.lookup(key.Namespace); ok {
		h := t.hash(&key.Hash)
		s := &t.shards[h>>t.shift]
		s.mu.RLock()
		if pos, ok := t.find(s, h, ns, &key.Hash); ok {
			i := t.slot(s.index[pos])
			e := &s.slots[i]
			if t.now().UnixNano() < e.deadline { // the clock is read for an entry found only
				c := t.claims(e)
				s.mark(i)
				s.mu.RUnlock()
				runtime.KeepAlive(t) // the slab is unmapped when t is collected
				return Verdict{Claims: c}, true, nil
			}
		}
		s.mu.RUnlock()
		runtime.KeepAlive(t)
	}
	if t.fallbackUsed.Load() {
		return t.fallback.Get(ctx, key)
	}
	return Verdict{}, false, nil
}

// Set implements cache.LocalTier. A key is held in one form only: storing
// it in one removes it from the other.
func (t *CompactTier) Set(ctx context.Context, key cache.Key, v Verdict, ttl time.Duration) error {
	if ttl <= 0 {
		return t.Delete(ctx, key)
	}
	now := t.now().UnixNano()
	e, ok := t.encode(key, v)
	if !ok {
		t.fallbackUsed.Store(true)
		_ = t.fallback.Set(ctx, key, v, ttl)
		t.deleteCompact(key)
		return nil
	}
	e.deadline = now + int64(ttl)
	if e.deadline < now { // overflow: as cache.Memory, "until evicted"
		e.deadline = math.MaxInt64
	}
	h := t.hash(&key.Hash)
	s := &t.shards[h>>t.shift]
	s.mu.Lock()
	if pos, ok := t.find(s, h, e.ns, &e.hash); ok {
		s.slots[t.slot(s.index[pos])] = e
	} else {
		i := t.alloc(s, now)
		s.slots[i] = e
		t.insert(s, h, i)
	}
	s.mu.Unlock()
	runtime.KeepAlive(t)
	if t.fallbackUsed.Load() {
		_ = t.fallback.Delete(ctx, key)
	}
	return nil
}

// Delete implements cache.LocalTier.
func (t *CompactTier) Delete(ctx context.Context, key cache.Key) error {
	t.deleteCompact(key)
	if t.fallbackUsed.Load() {
		_ = t.fallback.Delete(ctx, key)
	}
	return nil
}

// Clear implements cache.LocalTier. Namespace numbers are kept: one stays
// bound to its name for the tier's life, so that a Set racing with Clear
// can never file an entry under a number given to another name since.
func (t *CompactTier) Clear() {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		clear(s.index)
		for j := range s.ref {
			s.ref[j].Store(0)
		}
		s.used, s.free, s.live, s.hand = 0, 0, 0, 0
		s.mu.Unlock()
	}
	runtime.KeepAlive(t)
	t.fallback.Clear()
}

// Len implements cache.LocalTier: entries held in either form, expired
// ones included until reclaimed.
func (t *CompactTier) Len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.RLock()
		n += s.live
		s.mu.RUnlock()
	}
	if t.fallbackUsed.Load() {
		n += t.fallback.Len()
	}
	return n
}

// encode returns v's entry (deadline not set), or false when v does not
// fit one. It numbers the namespace and the grant if need be.
func (t *CompactTier) encode(key cache.Key, v Verdict) (compactSlot, bool) {
	c := v.Claims
	if v.Err != nil || c == nil || c.Grant == nil || c.Extra != nil || len(c.Subject)+len(c.SessionID) > compactSubjectMax ||
		c.IssuedAt < 0 || c.IssuedAt > math.MaxUint32 || c.Expiry.Unix() < compactMinExpiry || c.Expiry.Unix() > compactMaxExpiry {
		return compactSlot{}, false
	}
	g, ok := t.grants.index(c.Grant)
	if !ok {
		return compactSlot{}, false
	}
	ns, ok := t.ns.number(key.Namespace)
	if !ok {
		return compactSlot{}, false
	}
	e := compactSlot{hash: key.Hash, exp: c.Expiry.UnixNano(), grant: g, ns: ns, iat: uint32(c.IssuedAt),
		subLen: uint8(len(c.Subject)), sidLen: uint8(len(c.SessionID))}
	copy(e.sub[copy(e.sub[:], c.Subject):], c.SessionID)
	return e, true
}

func (t *CompactTier) deleteCompact(key cache.Key) {
	ns, ok := t.ns.lookup(key.Namespace)
	if !ok {
		return
	}
	h := t.hash(&key.Hash)
	s := &t.shards[h>>t.shift]
	s.mu.Lock()
	if pos, ok := t.find(s, h, ns, &key.Hash); ok {
		i := t.slot(s.index[pos])
		t.removeAt(s, pos)
		s.slots[i].ns, s.slots[i].grant = 0, s.free
		s.free = i + 1
	}
	s.mu.Unlock()
	runtime.KeepAlive(t)
}

// claimsBox lets Get rebuild a verdict's claims in one allocation: the
// subject and sid strings point into the same object, and nothing writes
// to it once built.
type claimsBox struct {
	c   token.Claims
	sub [compactSubjectMax]byte
}

// claims rebuilds the claims entry e holds.
func (t *CompactTier) claims(e *compactSlot) *token.Claims {
	b := &claimsBox{}
	n := copy(b.sub[:], e.sub[:int(e.subLen)+int(e.sidLen)])
	b.c = token.Claims{Subject: unsafe.String(&b.sub[0], e.subLen), Expiry: time.Unix(0, e.exp), IssuedAt: int64(e.iat),
		Grant: t.grants.at(e.grant)}
	if n > int(e.subLen) {
		b.c.SessionID = unsafe.String(&b.sub[e.subLen], e.sidLen)
	}
	return &b.c
}

// mark records that slot i was read. Readers share the lock, hence the
// atomic; the common case, already marked, writes nothing.
func (s *compactShard) mark(i uint32) {
	w, bit := &s.ref[i/32], uint32(1)<<(i%32)
	if w.Load()&bit == 0 {
		w.Or(bit)
	}
}

// unmark clears slot i's mark and reports whether it was set.
func (s *compactShard) unmark(i uint32) bool {
	bit := uint32(1) << (i % 32)
	return s.ref[i/32].And(^bit)&bit != 0
}

// namespaceTable numbers namespaces for the compact tier. Reads take no
// lock: the map is replaced, never modified, when a namespace is added.
type namespaceTable struct {
	mu sync.Mutex
	m  atomic.Pointer[map[string]uint32]
}

func (n *namespaceTable) lookup(ns string) (uint32, bool) {
	m := n.m.Load()
	if m == nil {
		return 0, false
	}
	id, ok := (*m)[ns]
	return id, ok
}

// number returns ns's number, adding it if there is room.
func (n *namespaceTable) number(ns string) (uint32, bool) {
	if id, ok := n.lookup(ns); ok {
		return id, true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	old := map[string]uint32{}
	if m := n.m.Load(); m != nil {
		old = *m
	}
	if id, ok := old[ns]; ok {
		return id, true
	}
	if len(old) >= compactMaxNamespaces {
		return 0, false
	}
	m := make(map[string]uint32, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	id := uint32(len(old)) + 1
	m[ns] = id
	n.m.Store(&m)
	return id, true
}
