package verdict

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/token"
)

var _ cache.LocalTier[Verdict] = (*CompactTier)(nil)

// countEvictions counts Evicted reports.
type countEvictions struct {
	cache.NopObserver
	n atomic.Int64
}

func (c *countEvictions) Evicted(tier string) {
	if tier == "local" {
		c.n.Add(1)
	}
}

type compactFixture struct {
	tier   *CompactTier
	clock  *testkit.Clock
	grants *Grants
	obs    *countEvictions
}

func newCompactFixture(t *testing.T, maxEntries int) *compactFixture {
	t.Helper()
	f := &compactFixture{clock: testkit.NewClock(), grants: NewGrants(1 << 16), obs: &countEvictions{}}
	f.tier = NewCompactTier(maxEntries, f.grants, f.clock.Now, f.obs)
	return f
}

// valid is a verified verdict for subject sub, whose token expires in an
// hour.
func (f *compactFixture) valid(sub string) Verdict {
	g := f.grants.Intern(&token.Grant{Issuer: "https://issuer.example", ClientID: "client", Audience: []string{"https://mcp.example/mcp"},
		Scopes: []string{"mcp:tools", "openid"}, Scope: "mcp:tools openid"})
	return Verdict{Claims: &token.Claims{Subject: sub, Expiry: f.clock.Now().Add(time.Hour).Add(123456789), Grant: g}}
}

// key is a token's key as the engine makes it (pkg/authz).
func key(ns, tok string) cache.Key { return cache.Key{Namespace: ns, Hash: token.CacheHash(tok)} }

// wantVerdict fails unless the tier holds want for k (nil: a miss).
func wantVerdict(t *testing.T, tier cache.LocalTier[Verdict], k cache.Key, want *token.Claims) {
	t.Helper()
	got, ok, err := tier.Get(context.Background(), k)
	switch {
	case err != nil:
		t.Fatalf("Get: %v", err)
	case want == nil && ok:
		t.Fatalf("Get = %+v, want a miss", got.Claims)
	case want == nil:
	case !ok:
		t.Fatalf("Get missed, want subject %q", want.Subject)
	case got.Err != nil || got.Claims.Subject != want.Subject || !got.Claims.Expiry.Equal(want.Expiry) ||
		got.Claims.IssuedAt != want.IssuedAt || got.Claims.SessionID != want.SessionID ||
		got.Claims.Key() != want.Key() || fmt.Sprint(got.Claims.Extra) != fmt.Sprint(want.Extra):
		t.Fatalf("Get = %+v (grant %+v), want %+v (grant %+v)", got.Claims, got.Claims.Grant, want, want.Grant)
	}
}

func TestCompactSlotLayout(t *testing.T) {
	// The budget per token (docs/benchmarks.md) rests on this size, and
	// the slab's alignment on its being a multiple of 8.
	if n := unsafe.Sizeof(compactSlot{}); n != 144 {
		t.Fatalf("compactSlot is %d bytes, want 144", n)
	}
}

func TestCompactTier(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, f *compactFixture)
	}{
		{"missing", func(t *testing.T, f *compactFixture) {
			wantVerdict(t, f.tier, key("mcp", "a"), nil)
		}},
		{"set then get", func(t *testing.T, f *compactFixture) {
			v := f.valid("alice")
			_ = f.tier.Set(ctx, key("mcp", "a"), v, time.Minute)
			wantVerdict(t, f.tier, key("mcp", "a"), v.Claims)
			wantVerdict(t, f.tier, key("mcp", "b"), nil)
			if f.tier.Len() != 1 {
				t.Fatalf("Len = %d, want 1", f.tier.Len())
			}
		}},
		{"token expiry kept to the nanosecond, grant by content", func(t *testing.T, f *compactFixture) {
			v := f.valid("alice")
			// A grant equal to an interned one but not it, as decoded from
			// Redis by a codec without a table.
			c := *v.Claims
			g := *c.Grant
			c.Grant = &g
			_ = f.tier.Set(ctx, key("mcp", "a"), Verdict{Claims: &c}, time.Minute)
			got, _, _ := f.tier.Get(ctx, key("mcp", "a"))
			if !got.Claims.Expiry.Equal(v.Claims.Expiry) || got.Claims.Grant != v.Claims.Grant || got.Claims.Scope != "mcp:tools openid" {
				t.Fatalf("got %+v %+v, want expiry %v and the interned grant", got.Claims, got.Claims.Grant, v.Claims.Expiry)
			}
		}},
		{"replace", func(t *testing.T, f *compactFixture) {
			_ = f.tier.Set(ctx, key("mcp", "a"), f.valid("alice"), time.Minute)
			v := f.valid("bob")
			_ = f.tier.Set(ctx, key("mcp", "a"), v, 2*time.Minute)
			wantVerdict(t, f.tier, key("mcp", "a"), v.Claims)
			f.clock.Advance(time.Minute + time.Second)
			wantVerdict(t, f.tier, key("mcp", "a"), v.Claims) // the new ttl replaced the old
			if f.tier.Len() != 1 {
				t.Fatalf("Len = %d, want 1", f.tier.Len())
			}
		}},
		{"delete", func(t *testing.T, f *compactFixture) {
			_ = f.tier.Set(ctx, key("mcp", "a"), f.valid("alice"), time.Minute)
			_ = f.tier.Delete(ctx, key("mcp", "a"))
			_ = f.tier.Delete(ctx, key("mcp", "never"))
			_ = f.tier.Delete(ctx, key("unknown-namespace", "a"))
			wantVerdict(t, f.tier, key("mcp", "a"), nil)
			if f.tier.Len() != 0 {
				t.Fatalf("Len = %d, want 0", f.tier.Len())
			}
		}},
		{"non-positive ttl removes", func(t *testing.T, f *compactFixture) {
			_ = f.tier.Set(ctx, key("mcp", "a"), f.valid("alice"), time.Minute)
			_ = f.tier.Set(ctx, key("mcp", "a"), f.valid("alice"), 0)
			wantVerdict(t, f.tier, key("mcp", "a"), nil)
			_ = f.tier.Set(ctx, key("mcp", "b"), f.valid("bob"), -time.Second)
			wantVerdict(t, f.tier, key("mcp", "b"), nil)
		}},
		{"clear", func(t *testing.T, f *compactFixture) {
			for i := range 100 {
				_ = f.tier.Set(ctx, key("mcp", strconv.Itoa(i)), f.valid("u"+strconv.Itoa(i)), time.Minute)
			}
			long := f.valid(strings.Repeat("x", 200))
			_ = f.tier.Set(ctx, key("mcp", "long"), long, time.Minute)
			f.tier.Clear()
			if f.tier.Len() != 0 {
				t.Fatalf("Len after Clear = %d", f.tier.Len())
			}
			for i := range 100 {
				wantVerdict(t, f.tier, key("mcp", strconv.Itoa(i)), nil)
			}
			wantVerdict(t, f.tier, key("mcp", "long"), nil)
			// And it fills again, to the bound.
			for i := range 1000 {
				_ = f.tier.Set(ctx, key("mcp", strconv.Itoa(i)), f.valid("u"+strconv.Itoa(i)), time.Minute)
			}
			// Each shard holds its share of the bound, so a tier can start
			// evicting a little before it is full, never after.
			wantVerdict(t, f.tier, key("mcp", "999"), f.valid("u999").Claims)
			if n := f.tier.Len(); n > f.tier.Capacity() || n < f.tier.Capacity()*3/4 {
				t.Fatalf("Len = %d after filling to the capacity %d", n, f.tier.Capacity())
			}
		}},
		{"served until the ttl, not an instant after", func(t *testing.T, f *compactFixture) {
			v := f.valid("alice")
			ttl := 10*time.Second + 300*time.Millisecond
			_ = f.tier.Set(ctx, key("mcp", "a"), v, ttl)
			f.clock.Advance(ttl - time.Nanosecond)
			wantVerdict(t, f.tier, key("mcp", "a"), v.Claims)
			f.clock.Advance(time.Nanosecond)
			wantVerdict(t, f.tier, key("mcp", "a"), nil)
			f.clock.Advance(time.Hour)
			wantVerdict(t, f.tier, key("mcp", "a"), nil)
		}},
		{"namespaces kept apart", func(t *testing.T, f *compactFixture) {
			va, vb := f.valid("alice"), f.valid("bob")
			_ = f.tier.Set(ctx, key("mcp", "same token"), va, time.Minute)
			wantVerdict(t, f.tier, key("other", "same token"), nil)
			_ = f.tier.Set(ctx, key("other", "same token"), vb, time.Minute)
			wantVerdict(t, f.tier, key("mcp", "same token"), va.Claims)
			wantVerdict(t, f.tier, key("other", "same token"), vb.Claims)
			_ = f.tier.Delete(ctx, key("mcp", "same token"))
			wantVerdict(t, f.tier, key("mcp", "same token"), nil)
			wantVerdict(t, f.tier, key("other", "same token"), vb.Claims)
		}},
		{"iat and sid are held inline", func(t *testing.T, f *compactFixture) {
			// A UUID subject and a UUID session (Keycloak's) fit an entry.
			uuid := "08a5019c-17e1-4977-8f42-65a12843ea02"
			v := f.valid(uuid)
			v.Claims.SessionID, v.Claims.IssuedAt = strings.ToUpper(uuid), 1_800_000_000
			noSID := f.valid("bob")
			noSID.Claims.IssuedAt = 1
			sidOnly := f.valid("")
			sidOnly.Claims.SessionID = "s"
			latest := f.valid("carol")
			latest.Claims.IssuedAt = math.MaxUint32
			for name, v := range map[string]Verdict{"uuid": v, "no sid": noSID, "sid only": sidOnly, "latest": latest} {
				_ = f.tier.Set(ctx, key("mcp", name), v, time.Minute)
				wantVerdict(t, f.tier, key("mcp", name), v.Claims)
			}
			if f.tier.fallbackUsed.Load() {
				t.Fatal("went to the general store; this case is for the compact form")
			}
		}},
		{"what does not fit goes to the fallback", func(t *testing.T, f *compactFixture) {
			long := f.valid(strings.Repeat("s", compactSubjectMax+1))
			fits := f.valid(strings.Repeat("s", compactSubjectMax))
			extra := f.valid("carol")
			extra.Claims.Extra = map[string]any{"tenant": "acme"}
			far := f.valid("dave")
			far.Claims.Expiry = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
			failure := Verdict{Err: token.ErrSignature}
			// Subject and sid share the room of an entry.
			withSID := f.valid(strings.Repeat("s", compactSubjectMax-10))
			withSID.Claims.SessionID = strings.Repeat("i", 11)
			lateIAT := f.valid("erin")
			lateIAT.Claims.IssuedAt = math.MaxUint32 + 1
			for name, v := range map[string]Verdict{"long": long, "fits": fits, "extra": extra, "far": far, "failure": failure,
				"with sid": withSID, "late iat": lateIAT} {
				_ = f.tier.Set(ctx, key("mcp", name), v, time.Minute)
			}
			wantVerdict(t, f.tier, key("mcp", "long"), long.Claims)
			wantVerdict(t, f.tier, key("mcp", "fits"), fits.Claims)
			wantVerdict(t, f.tier, key("mcp", "extra"), extra.Claims)
			wantVerdict(t, f.tier, key("mcp", "far"), far.Claims)
			wantVerdict(t, f.tier, key("mcp", "with sid"), withSID.Claims)
			wantVerdict(t, f.tier, key("mcp", "late iat"), lateIAT.Claims)
			if got, ok, _ := f.tier.Get(ctx, key("mcp", "failure")); !ok || got.Err != token.ErrSignature {
				t.Fatalf("failure: %+v %v", got, ok)
			}
			if n := f.tier.fallback.Len(); n != 6 {
				t.Fatalf("fallback holds %d, want 6 (all but the subject that fits)", n)
			}
			if f.tier.Len() != 7 {
				t.Fatalf("Len = %d, want 7", f.tier.Len())
			}
			// Moving between the forms leaves one copy.
			_ = f.tier.Set(ctx, key("mcp", "long"), fits, time.Minute)
			_ = f.tier.Set(ctx, key("mcp", "fits"), long, time.Minute)
			wantVerdict(t, f.tier, key("mcp", "long"), fits.Claims)
			wantVerdict(t, f.tier, key("mcp", "fits"), long.Claims)
			if f.tier.Len() != 7 {
				t.Fatalf("Len = %d after swapping forms, want 7", f.tier.Len())
			}
			// Expiry and Delete apply there too.
			_ = f.tier.Delete(ctx, key("mcp", "extra"))
			wantVerdict(t, f.tier, key("mcp", "extra"), nil)
			f.clock.Advance(time.Minute)
			wantVerdict(t, f.tier, key("mcp", "far"), nil)
		}},
		{"grants beyond the table go to the fallback", func(t *testing.T, f *compactFixture) {
			f.tier = NewCompactTier(100, NewGrants(1), f.clock.Now, f.obs)
			v1, v2 := f.valid("alice"), f.valid("bob")
			v2.Claims.Grant = &token.Grant{Issuer: "https://other.example", Scopes: []string{"x"}, Scope: "x"}
			_ = f.tier.Set(ctx, key("mcp", "1"), v1, time.Minute)
			_ = f.tier.Set(ctx, key("mcp", "2"), v2, time.Minute)
			wantVerdict(t, f.tier, key("mcp", "1"), v1.Claims)
			wantVerdict(t, f.tier, key("mcp", "2"), v2.Claims)
			if f.tier.fallback.Len() != 1 {
				t.Fatalf("fallback holds %d, want 1", f.tier.fallback.Len())
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newCompactFixture(t, 1000))
		})
	}
}

// TestCompactTierEviction fills a tier past its bound: it never holds more
// than maxEntries, reports each live entry it drops, prefers entries read
// since the hand last passed, and reclaims expired ones without reporting.
func TestCompactTierEviction(t *testing.T) {
	ctx := context.Background()
	for _, max := range []int{1, 7, 100, 5000} {
		t.Run(strconv.Itoa(max), func(t *testing.T) {
			t.Parallel()
			f := newCompactFixture(t, max)
			if f.tier.Capacity() != max {
				t.Fatalf("capacity %d, want %d", f.tier.Capacity(), max)
			}
			n := 3 * max
			for i := range n {
				_ = f.tier.Set(ctx, key("mcp", strconv.Itoa(i)), f.valid("u"+strconv.Itoa(i)), time.Minute)
				if l := f.tier.Len(); l > max {
					t.Fatalf("Len = %d after %d Sets, bound %d", l, i+1, max)
				}
			}
			hits := 0
			for i := range n {
				if _, ok, _ := f.tier.Get(ctx, key("mcp", strconv.Itoa(i))); ok {
					hits++
				}
			}
			if hits != f.tier.Len() || f.obs.n.Load() != int64(n-hits) {
				t.Fatalf("%d hits, Len %d, %d evictions reported; want Len = hits and %d evictions", hits, f.tier.Len(), f.obs.n.Load(), n-hits)
			}
			// Every entry read just now survives the next insertion (only
			// the fallback-free compact form is in play here).
			if max >= 100 {
				_ = f.tier.Set(ctx, key("mcp", "new"), f.valid("new"), time.Minute)
				gone := 0
				for i := range n {
					if _, ok, _ := f.tier.Get(ctx, key("mcp", strconv.Itoa(i))); !ok {
						gone++
					}
				}
				if gone != n-hits+1 {
					t.Fatalf("one insertion into a full tier dropped %d entries", gone-(n-hits))
				}
			}
			// Expired entries are reclaimed silently.
			// Expired entries are reclaimed silently: refill every shard to
			// its share, no more.
			before := f.obs.n.Load()
			f.clock.Advance(time.Minute)
			room := make([]int, len(f.tier.shards))
			for i := range room {
				room[i] = len(f.tier.shards[i].slots)
			}
			var later []cache.Key
			for i := 0; len(later) < max; i++ {
				k := key("mcp", "later"+strconv.Itoa(i))
				if s := f.tier.hash(&k.Hash) >> f.tier.shift; room[s] > 0 {
					room[s]--
					later = append(later, k)
					_ = f.tier.Set(ctx, k, f.valid("l"), time.Minute)
				}
			}
			if f.obs.n.Load() != before {
				t.Fatalf("%d evictions reported for expired entries", f.obs.n.Load()-before)
			}
			for _, k := range later {
				wantVerdict(t, f.tier, k, f.valid("l").Claims)
			}
		})
	}
}

// TestCompactTierIndexChurn deletes and re-inserts at random against a map,
// so that backward-shift deletion is exercised on long clusters.
func TestCompactTierIndexChurn(t *testing.T) {
	ctx := context.Background()
	const max, keys = 31, 48
	f := newCompactFixture(t, max) // one shard: long probe runs
	if len(f.tier.shards) != 1 {
		t.Fatalf("%d shards, want 1", len(f.tier.shards))
	}
	want := map[int]bool{}
	seed := uint64(1)
	for step := range 20000 {
		seed = seed*6364136223846793005 + 1442695040888963407
		i := int(seed>>33) % keys
		k := key("mcp", strconv.Itoa(i))
		switch {
		case seed>>62 == 0:
			_ = f.tier.Delete(ctx, k)
			delete(want, i)
		case !want[i] && len(want) < max:
			_ = f.tier.Set(ctx, k, f.valid(strconv.Itoa(i)), time.Hour)
			want[i] = true
		}
		if step%97 == 0 {
			for j := range keys {
				_, ok, _ := f.tier.Get(ctx, key("mcp", strconv.Itoa(j)))
				if ok != want[j] {
					t.Fatalf("step %d: key %d held=%v, want %v", step, j, ok, want[j])
				}
			}
			if f.tier.Len() != len(want) {
				t.Fatalf("step %d: Len %d, want %d", step, f.tier.Len(), len(want))
			}
		}
	}
	if f.obs.n.Load() != 0 {
		t.Fatalf("%d evictions below the bound", f.obs.n.Load())
	}
}

// TestCompactTierConcurrent runs every operation at once (with -race).
func TestCompactTierConcurrent(t *testing.T) {
	ctx := context.Background()
	f := newCompactFixture(t, 500)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 3000 {
				k := key([]string{"mcp", "other"}[i%2], strconv.Itoa((i*7+w)%800))
				switch i % 11 {
				case 0:
					_ = f.tier.Delete(ctx, k)
				case 1:
					v := f.valid("x")
					v.Claims.Extra = map[string]any{"a": 1.0}
					_ = f.tier.Set(ctx, k, v, time.Minute)
				case 2:
					if i%220 == 2 {
						f.tier.Clear()
					}
					_ = f.tier.Len()
				case 3, 4, 5:
					_ = f.tier.Set(ctx, k, f.valid(strconv.Itoa(i)), time.Minute)
				default:
					if v, ok, _ := f.tier.Get(ctx, k); ok && (v.Claims == nil || v.Claims.Grant == nil) {
						t.Errorf("Get returned a broken verdict %+v", v)
					}
				}
			}
		})
	}
	wg.Wait()
	if n := f.tier.Len(); n > 2*500 {
		t.Fatalf("Len %d beyond both bounds", n)
	}
}

// TestLocalCacheUsesCompactTier: the valid tier behind LocalCache is the
// compact one, with revocations still winning over it.
func TestLocalCacheUsesCompactTier(t *testing.T) {
	ctx := context.Background()
	clock := testkit.NewClock()
	c := LocalCache(10, clock.Now)
	k := key("mcp", "t")
	v := Verdict{Claims: &token.Claims{Subject: "alice", Expiry: clock.Now().Add(time.Hour), Grant: &token.Grant{Issuer: "i"}}}
	if got, _ := c.Add(ctx, k, v, time.Minute); got.Claims != v.Claims {
		t.Fatal("Add did not keep the verdict")
	}
	got, tier, _ := c.GetFrom(ctx, k)
	if tier != cache.TierLocal || got.Claims.Subject != "alice" || got.Claims.Issuer != "i" {
		t.Fatalf("GetFrom = %+v %v", got.Claims, tier)
	}
	if _, err := c.Replace(ctx, k, Verdict{Err: ErrRevoked}, time.Hour); err != cache.ErrNoSharedTier {
		t.Fatal(err)
	}
	if got, _, _ := c.GetFrom(ctx, k); got.Err != ErrRevoked {
		t.Fatalf("after revocation: %+v", got)
	}
	if got, _ := c.Add(ctx, k, v, time.Minute); got.Err != ErrRevoked {
		t.Fatalf("Add replaced the revocation: %+v", got)
	}
}

// TestCompactTierKeepsWhatIsRead: in a full shard, the entry read since
// the hand last passed survives, and the next one in the hand's way goes.
func TestCompactTierKeepsWhatIsRead(t *testing.T) {
	ctx := context.Background()
	f := newCompactFixture(t, 20) // one shard, slots handed out in order
	for i := range 20 {
		_ = f.tier.Set(ctx, key("mcp", strconv.Itoa(i)), f.valid(strconv.Itoa(i)), time.Minute)
	}
	wantVerdict(t, f.tier, key("mcp", "0"), f.valid("0").Claims) // the oldest, under the hand
	_ = f.tier.Set(ctx, key("mcp", "new"), f.valid("new"), time.Minute)
	wantVerdict(t, f.tier, key("mcp", "0"), f.valid("0").Claims)
	wantVerdict(t, f.tier, key("mcp", "1"), nil)
	wantVerdict(t, f.tier, key("mcp", "new"), f.valid("new").Claims)
	if f.obs.n.Load() != 1 {
		t.Fatalf("%d evictions reported, want 1", f.obs.n.Load())
	}
}

// Capacity returns how many verdicts the compact form holds (maxEntries).
func (t *CompactTier) Capacity() int {
	n := 0
	for i := range t.shards {
		n += len(t.shards[i].slots)
	}
	return n
}

// TestCompactTierKeepsBinding: a DPoP-bound verdict comes back bound from
// the compact form and from the general store, and never shares a grant
// with an unbound verdict of the same issuer, client, audiences and scopes
// (it would come back unbound, and pass as a Bearer token).
func TestCompactTierKeepsBinding(t *testing.T) {
	ctx := context.Background()
	bind := func(v Verdict, jkt string) Verdict {
		c := *v.Claims
		g := *c.Grant // equal to the interned grant but for JKT, as a codec without a table decodes it
		g.JKT = jkt
		c.Grant = &g
		return Verdict{Claims: &c}
	}
	t.Run("compact", func(t *testing.T) {
		f := newCompactFixture(t, 64)
		unbound := f.valid("alice")
		bound := bind(f.valid("alice"), thumbprint)
		other := bind(f.valid("alice"), strings.Repeat("A", 43))
		_ = f.tier.Set(ctx, key("mcp", "unbound"), unbound, time.Minute)
		_ = f.tier.Set(ctx, key("mcp", "bound"), bound, time.Minute)
		_ = f.tier.Set(ctx, key("mcp", "other"), other, time.Minute)
		_ = f.tier.Set(ctx, key("mcp", "unbound again"), unbound, time.Minute)
		for k, want := range map[string]string{"unbound": "", "bound": thumbprint, "other": other.Claims.JKT, "unbound again": ""} {
			got, ok, _ := f.tier.Get(ctx, key("mcp", k))
			if !ok || got.Claims.JKT != want || got.Claims.Subject != "alice" || got.Claims.Scope != "mcp:tools openid" {
				t.Fatalf("%s: got %+v (grant %+v), want JKT %q", k, got.Claims, got.Claims.Grant, want)
			}
		}
		if f.tier.fallbackUsed.Load() {
			t.Fatal("bound verdicts went to the general store; this case is for the compact form")
		}
	})
	t.Run("general store", func(t *testing.T) {
		// A subject too long for an entry.
		f := newCompactFixture(t, 64)
		v := bind(f.valid(strings.Repeat("s", compactSubjectMax+1)), thumbprint)
		_ = f.tier.Set(ctx, key("mcp", "a"), v, time.Minute)
		wantVerdict(t, f.tier, key("mcp", "a"), v.Claims)
		if got, _, _ := f.tier.Get(ctx, key("mcp", "a")); got.Claims.JKT != thumbprint {
			t.Fatalf("JKT %q", got.Claims.JKT)
		}
	})
	t.Run("grant table full", func(t *testing.T) {
		// The table holds the unbound grant only: the bound one cannot be
		// numbered, and must not be filed under the unbound one's number.
		clock := testkit.NewClock()
		grants := NewGrants(1)
		tier := NewCompactTier(64, grants, clock.Now, nil)
		g := grants.Intern(&token.Grant{Issuer: "i", ClientID: "c", Scopes: []string{"x"}, Scope: "x"})
		unbound := Verdict{Claims: &token.Claims{Subject: "alice", Expiry: clock.Now().Add(time.Hour), Grant: g}}
		_ = tier.Set(ctx, key("mcp", "unbound"), unbound, time.Minute)
		bound := bind(unbound, thumbprint)
		_ = tier.Set(ctx, key("mcp", "bound"), bound, time.Minute)
		if got, ok, _ := tier.Get(ctx, key("mcp", "bound")); !ok || got.Claims.JKT != thumbprint {
			t.Fatalf("got %+v, %v", got.Claims, ok)
		}
		if got, ok, _ := tier.Get(ctx, key("mcp", "unbound")); !ok || got.Claims.JKT != "" {
			t.Fatalf("got %+v, %v", got.Claims, ok)
		}
	})
}
