package verdict

import (
	"sync"
	"sync/atomic"

	"github.com/extauthz/extauthz/pkg/token"
)

// Grants interns token grants. Many tokens share one issuer, client,
// audience list and scope set; a replica caching a million tokens holds
// each combination once instead of a million times. Only verified grants
// are interned, and the table is bounded: once full, new combinations are
// simply not shared.
//
// Each interned grant also gets a small number, stable for the table's
// life (the table never drops a grant), so that the compact tier of valid
// tokens can store a grant in four bytes and read it back without a lock.
type Grants struct {
	mu  sync.RWMutex // read-locked by lookups, which every shared-tier hit makes
	m   map[string]*token.Grant
	max int
	// ids numbers the interned grants; pages holds them by number, in
	// pages published atomically so that grant reads take no lock.
	ids   map[*token.Grant]uint32
	pages []atomic.Pointer[grantPage]
}

// grantPageSize grants per page of Grants.pages.
const grantPageSize = 256

type grantPage [grantPageSize]*token.Grant

// NewGrants returns a table of at most max grants.
func NewGrants(max int) *Grants {
	return &Grants{
		m:     make(map[string]*token.Grant),
		max:   max,
		ids:   make(map[*token.Grant]uint32),
		pages: make([]atomic.Pointer[grantPage], (max+grantPageSize-1)/grantPageSize),
	}
}

// Intern returns the table's grant equal to g, adding g if there is room.
// A nil table interns nothing.
func (t *Grants) Intern(g *token.Grant) *token.Grant {
	if t == nil {
		return g
	}
	// The key is built on the stack: a grant already interned, the
	// common case, is found without allocating.
	var buf [256]byte
	k := g.AppendKey(buf[:0])
	if cur := t.lookup(k); cur != nil {
		return cur
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.m[string(k)]; ok {
		return cur
	}
	if len(t.m) < t.max {
		t.add(string(k), g)
	}
	return g
}

// lookup returns the interned grant whose Key is k, or nil (also for a nil
// table). It does not allocate.
func (t *Grants) lookup(k []byte) *token.Grant {
	if t == nil {
		return nil
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.m[string(k)]
}

// add interns g under key k and numbers it. t.mu is held and there is room.
func (t *Grants) add(k string, g *token.Grant) uint32 {
	id := uint32(len(t.m)) //nolint:gosec // len(t.m) < t.max, a table size far below 2^32
	t.m[k] = g
	t.ids[g] = id
	p := t.pages[id/grantPageSize].Load()
	if p == nil {
		p = new(grantPage)
		p[id%grantPageSize] = g
		t.pages[id/grantPageSize].Store(p)
	} else {
		// Readers only ask for numbers handed out after this store (the
		// entry carrying it is written under a lock taken later).
		p[id%grantPageSize] = g
	}
	return id
}

// index returns the number of the table's grant equal to g, interning g if
// there is room; false when the table is full without it. The common case,
// g being the interned grant itself, costs a map lookup by pointer.
func (t *Grants) index(g *token.Grant) (uint32, bool) {
	t.mu.RLock()
	id, ok := t.ids[g]
	t.mu.RUnlock()
	if ok {
		return id, true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if id, ok := t.ids[g]; ok {
		return id, true
	}
	k := g.Key()
	if cur, ok := t.m[k]; ok {
		return t.ids[cur], true
	}
	if len(t.m) >= t.max {
		return 0, false
	}
	return t.add(k, g), true
}

// at returns grant number id, which index returned. It takes no lock.
func (t *Grants) at(id uint32) *token.Grant {
	return t.pages[id/grantPageSize].Load()[id%grantPageSize]
}
