package verdict

import (
	"context"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/token"
)

// TestNewCacheCountsEachKind: the counts NewCache hands to Entries (the
// service's gauge) are those of the tier each kind is stored in.
func TestNewCacheCountsEachKind(t *testing.T) {
	ctx := context.Background()
	clock := testkit.NewClock()
	counts := map[string]func() int{}
	c, err := NewCache(CacheOptions{MaxEntries: 10, MaxNegativeEntries: 5, Now: clock.Now,
		Entries: func(kind string, n func() int) { counts[kind] = n }})
	if err != nil {
		t.Fatal(err)
	}
	valid := Verdict{Claims: &token.Claims{Subject: "alice", Expiry: clock.Now().Add(time.Hour), Grant: &token.Grant{Issuer: "i"}}}
	for i, v := range []Verdict{valid, valid, {Err: token.ErrExpired}, {Err: ErrRevoked}, {Err: ErrRevoked}} {
		if _, err := c.Add(ctx, key("mcp", string(rune('a'+i))), v, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int{"valid": 2, "invalid": 1, "revoked": 2}
	if len(counts) != len(want) {
		t.Fatalf("Entries told of %d kinds, want %d", len(counts), len(want))
	}
	for kind, n := range want {
		if counts[kind] == nil || counts[kind]() != n {
			t.Errorf("%s: count missing or not %d", kind, n)
		}
	}
	// The negative tiers are bounded by MaxNegativeEntries, not MaxEntries.
	for i := range 20 {
		_, _ = c.Add(ctx, key("mcp", "bad"+string(rune('a'+i))), Verdict{Err: token.ErrSignature}, time.Minute)
	}
	if n := counts["invalid"](); n > 5+1 {
		t.Errorf("invalid tier holds %d entries; bound 5", n)
	}
}

func TestNewCacheNeedsBounds(t *testing.T) {
	for _, o := range []CacheOptions{{MaxEntries: 1}, {MaxNegativeEntries: 1}, {MaxEntries: -1, MaxNegativeEntries: 1}} {
		if _, err := NewCache(o); err == nil {
			t.Errorf("NewCache(%+v) built an unbounded cache", o)
		}
	}
}
