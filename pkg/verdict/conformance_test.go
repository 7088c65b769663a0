package verdict

import (
	"context"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/cache/cachetest"
	"github.com/extauthz/extauthz/pkg/token"
)

// compactStore presents a CompactTier as the cache.Store the conformance
// suite drives: the suite's keys are tokens of one namespace, and its
// values the subjects of valid verdicts. A value the suite reads back is
// the subject's own bytes, not a copy, so that the suite's check that a
// held value never changes covers the claims a hit rebuilds.
//
// spill decides which values go to the tier's general store rather than
// the compact form: they are stored with a subject too long for an entry
// (spillPad in front), which Get takes off again.
type compactStore struct {
	tier  *CompactTier
	grant *token.Grant
	exp   time.Time
	spill func(v []byte) bool
}

// spillPad makes any subject longer than an entry holds.
var spillPad = strings.Repeat("-", compactSubjectMax+1)

func (s compactStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	v, ok, err := s.tier.Get(ctx, cache.Key{Namespace: "conformance", Hash: token.CacheHash(key)})
	if err != nil || !ok {
		return nil, false, err
	}
	if v.Err != nil || v.Claims == nil || v.Claims.Grant != s.grant || !v.Claims.Expiry.Equal(s.exp) {
		// Not what Set stored: hand the suite a value it never set.
		return []byte("corrupt verdict"), true, nil //nolint:nilerr // v.Err is the stored verdict's error, not a failure of Get
	}
	sub := strings.TrimPrefix(v.Claims.Subject, spillPad)
	return unsafe.Slice(unsafe.StringData(sub), len(sub)), true, nil
}

func (s compactStore) Set(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	sub := string(v)
	if s.spill(v) {
		sub = spillPad + sub
	}
	return s.tier.Set(ctx, cache.Key{Namespace: "conformance", Hash: token.CacheHash(key)}, Verdict{Claims: &token.Claims{Subject: sub, Expiry: s.exp, Grant: s.grant}}, ttl)
}

func (s compactStore) Delete(ctx context.Context, key string) error {
	return s.tier.Delete(ctx, cache.Key{Namespace: "conformance", Hash: token.CacheHash(key)})
}

// TestCompactTierConformance runs the suite every store passes on the
// tier of valid tokens, with its verdicts in compact form, in the general
// store inside it, and moving between the two as a key is overwritten.
func TestCompactTierConformance(t *testing.T) {
	for _, m := range []struct {
		name  string
		spill func(v []byte) bool
	}{
		{"compact", func([]byte) bool { return false }},
		{"fallback", func([]byte) bool { return true }},
		{"mixed", func(v []byte) bool { return len(v)%2 == 1 }},
	} {
		t.Run(m.name, func(t *testing.T) {
			cachetest.Run(t, func(t *testing.T) cachetest.Harness {
				t.Parallel()
				clock := testkit.NewClock()
				grants := NewGrants(16)
				s := compactStore{
					tier:  NewCompactTier(1000, grants, clock.Now, nil),
					grant: grants.Intern(&token.Grant{Issuer: "https://issuer.example", Scopes: []string{"mcp:tools"}, Scope: "mcp:tools"}),
					exp:   clock.Now().Add(24 * time.Hour),
					spill: m.spill,
				}
				return cachetest.Harness{Store: s, Advance: clock.Advance, Now: clock.Now}
			})
		})
	}
}
