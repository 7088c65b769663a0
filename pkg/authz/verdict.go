package authz

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/token"
)

// Verdict kinds, which also pick the in-process tier that holds a verdict
// (see Place): valid tokens, invalid tokens, revoked tokens. Each tier is
// bounded on its own, so a flood of garbage tokens can evict neither the
// valid entries nor the revocations.
const (
	TierValid = iota
	TierInvalid
	TierRevoked
)

// Place returns the in-process tier for a verdict.
func Place(v Verdict) int {
	switch {
	case v.Err == nil:
		return TierValid
	case errors.Is(v.Err, ErrRevoked):
		return TierRevoked
	}
	return TierInvalid
}

// cachedFailures are the failures a cached verdict can carry, by wire code.
// Codes are part of the shared-cache format: append only. The cached error
// is the bare sentinel; details stay with the replica that verified.
var cachedFailures = []error{
	1:  token.ErrMalformed,
	2:  token.ErrCritical,
	3:  token.ErrMissingExpiry,
	4:  token.ErrAlgorithm,
	5:  token.ErrUnknownIssuer,
	6:  token.ErrSignature,
	7:  token.ErrExpired,
	8:  ErrWrongAudience,
	9:  ErrRevoked,
	10: token.ErrInactive,
	11: token.ErrNotAccessToken,
}

// verdictFormat is the first byte of an encoded verdict; a change of
// layout takes a new value (and the key prefix's version moves with it).
const verdictFormat = 1

// verdictFormatExtra is verdictFormat followed by the kept claims
// (token.Claims.Extra) as a length-prefixed JSON object. It is used only
// when there are kept claims, so that a replica that knows only format 1
// reads every other entry; one reading a format-2 entry treats it as a
// miss and verifies the token itself.
const verdictFormatExtra = 2

// VerdictCodec encodes verdicts compactly for the shared cache: a format
// byte, a kind byte, then for a valid token the claims as length-prefixed
// strings and the expiry as varint milliseconds; for an invalid one a
// failure code. The token itself is never part of it.
type VerdictCodec struct {
	// Grants interns decoded grants; nil interns nothing.
	Grants *Grants
}

// Encode implements cache.Codec.
func (VerdictCodec) Encode(v Verdict) ([]byte, error) {
	if v.Err != nil {
		for code, e := range cachedFailures {
			if e != nil && errors.Is(v.Err, e) {
				return []byte{verdictFormat, TierInvalid, byte(code)}, nil
			}
		}
		return nil, fmt.Errorf("authz: failure %v is not cacheable", v.Err)
	}
	c := v.Claims
	n := 2 + 6*binary.MaxVarintLen64 + len(c.Subject) + len(c.Issuer) + len(c.ClientID)
	for _, s := range c.Audience {
		n += len(s) + binary.MaxVarintLen64
	}
	for _, s := range c.Scopes {
		n += len(s) + binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	b = append(b, verdictFormat, TierValid)
	for _, s := range []string{c.Subject, c.Issuer, c.ClientID} {
		b = appendString(b, s)
	}
	for _, l := range [][]string{c.Audience, c.Scopes} {
		b = binary.AppendUvarint(b, uint64(len(l)))
		for _, s := range l {
			b = appendString(b, s)
		}
	}
	b = binary.AppendVarint(b, c.Expiry.UnixMilli())
	if len(c.Extra) > 0 {
		extra, err := json.Marshal(c.Extra)
		if err != nil {
			return nil, fmt.Errorf("authz: kept claims: %w", err)
		}
		b[0] = verdictFormatExtra
		b = appendString(b, string(extra))
	}
	return b, nil
}

// Decode implements cache.Codec. The grant is interned when the codec has
// a table.
func (vc VerdictCodec) Decode(b []byte) (Verdict, error) {
	if len(b) < 3 || (b[0] != verdictFormat && b[0] != verdictFormatExtra) {
		return Verdict{}, errors.New("authz: unknown verdict format")
	}
	if b[1] == TierInvalid {
		code := int(b[2])
		if b[0] != verdictFormat {
			return Verdict{}, errors.New("authz: unknown verdict format")
		}
		if len(b) != 3 || code >= len(cachedFailures) || cachedFailures[code] == nil {
			return Verdict{}, errors.New("authz: unknown cached failure")
		}
		return Verdict{Err: cachedFailures[code]}, nil
	}
	if b[1] != TierValid {
		return Verdict{}, errors.New("authz: unknown verdict kind")
	}
	r := reader{b: b[2:]}
	c := &token.Claims{Grant: &token.Grant{}}
	for _, s := range []*string{&c.Subject, &c.Issuer, &c.ClientID} {
		*s = r.string()
	}
	for _, l := range []*[]string{&c.Audience, &c.Scopes} {
		n := r.uvarint()
		if n > uint64(len(r.b)) {
			return Verdict{}, errors.New("authz: corrupt verdict")
		}
		for i := uint64(0); i < n; i++ {
			*l = append(*l, r.string())
		}
	}
	c.Expiry = time.UnixMilli(r.varint())
	if b[0] == verdictFormatExtra {
		extra := r.string()
		if r.err == nil {
			if err := json.Unmarshal([]byte(extra), &c.Extra); err != nil || len(c.Extra) == 0 {
				return Verdict{}, errors.New("authz: corrupt verdict")
			}
		}
	}
	if r.err != nil || len(r.b) != 0 {
		return Verdict{}, errors.New("authz: corrupt verdict")
	}
	c.Scope = strings.Join(c.Scopes, " ")
	c.Grant = vc.Grants.Intern(c.Grant)
	return Verdict{Claims: c}, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// reader decodes what Encode appended, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errors.New("truncated")
	}
	r.b = nil
}

// LocalCache is an in-process-only verdict cache with every tier bounded
// at maxEntries, valid tokens in a CompactTier: for tests, benchmarks and
// embedding. The service builds its own from the configuration.
func LocalCache(maxEntries int, now func() time.Time) *cache.Tiered[Verdict] {
	local := make([]cache.LocalTier[Verdict], 3)
	local[TierValid] = NewCompactTier(maxEntries, nil, now, nil)
	local[TierInvalid] = cache.NewMemory[cache.Key, Verdict](cache.MemoryOptions{MaxEntries: maxEntries, Now: now})
	local[TierRevoked] = cache.NewMemory[cache.Key, Verdict](cache.MemoryOptions{MaxEntries: maxEntries, Now: now})
	t, err := cache.NewTiered(cache.TieredOptions[Verdict]{Local: local, Place: Place, Sticky: []int{TierRevoked}, Now: now})
	if err != nil {
		panic(err) // unreachable: the options above are complete
	}
	return t
}

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
	mu  sync.Mutex
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
	k := g.Key()
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.m[k]; ok {
		return cur
	}
	if len(t.m) < t.max {
		t.add(k, g)
	}
	return g
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
