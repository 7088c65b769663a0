package oauthflow

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func sampleFamily() *RefreshFamily {
	return &RefreshFamily{
		ClientID:             "client-1",
		Subject:              "user-42",
		Resource:             "https://mcp.example.com/mcp",
		Scopes:               []string{"mcp:tools", "mcp:read"},
		UpstreamIssuer:       "https://login.example.com",
		UpstreamRefreshToken: "UPSTREAM-REFRESH-" + strings.Repeat("f", 20),
		AuthTime:             clockStart.Add(-time.Minute),
	}
}

// rotate spends rt and returns the next token, failing the test on error.
func rotate(t *testing.T, s *FacadeStore, rt string) string {
	t.Helper()
	next, _, err := s.RotateRefresh(t.Context(), rt, "client-1", nil)
	if err != nil {
		t.Fatalf("RotateRefresh: %v", err)
	}
	return next
}

func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	facadeBoth(t, FacadeStoreOptions{}, func(t *testing.T, h *facadeHarness) {
		ctx := t.Context()
		f := sampleFamily()
		rt1, err := h.s.StartFamily(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if f.ID == "" || !f.Created.Equal(clockStart) || !strings.HasPrefix(rt1, f.ID+".1.") {
			t.Fatalf("family %+v, token %q", f, rt1)
		}
		rt2, got, err := h.replica().RotateRefresh(ctx, rt1, "client-1", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != f.ID || got.Subject != "user-42" || got.Resource != f.Resource || got.ClientID != "client-1" ||
			strings.Join(got.Scopes, " ") != "mcp:tools mcp:read" || got.UpstreamRefreshToken != f.UpstreamRefreshToken ||
			got.UpstreamIssuer != f.UpstreamIssuer || !got.AuthTime.Equal(f.AuthTime.Truncate(time.Second)) || !got.Created.Equal(clockStart) {
			t.Errorf("family after rotation %+v, want %+v", got, f)
		}
		if rt2 == rt1 || !strings.HasPrefix(rt2, f.ID+".2.") {
			t.Errorf("rotated token %q", rt2)
		}
		rt3 := rotate(t, h.s, rt2)

		// rt1, spent two rotations ago, comes back: the family is revoked, rt3 included.
		if _, _, err := h.s.RotateRefresh(ctx, rt1, "client-1", nil); !errors.Is(err, ErrRefreshReused) || !errors.Is(err, ErrInvalidGrant) {
			t.Fatalf("a reused refresh token: %v, want ErrRefreshReused", err)
		}
		if _, _, err := h.s.RotateRefresh(ctx, rt3, "client-1", nil); !errors.Is(err, ErrInvalidGrant) {
			t.Errorf("the latest token after a reuse: %v, want ErrInvalidGrant", err)
		}
		if len(h.raw()) != 0 {
			t.Errorf("the revoked family is still stored")
		}
	})
}

// Tokens the facade did not issue are refused, and do not revoke the family.
func TestRefreshForgeries(t *testing.T) {
	t.Parallel()
	facadeBoth(t, FacadeStoreOptions{}, func(t *testing.T, h *facadeHarness) {
		ctx := t.Context()
		rt1, err := h.s.StartFamily(ctx, sampleFamily())
		if err != nil {
			t.Fatal(err)
		}
		rt2 := rotate(t, h.s, rt1)
		id, _, _ := strings.Cut(rt2, ".")
		mac := rt2[strings.LastIndex(rt2, ".")+1:]
		flip := func(s string, i int) string {
			b := []byte(s)
			if b[i] == 'A' {
				b[i] = 'B'
			} else {
				b[i] = 'A'
			}
			return string(b)
		}
		forged := map[string]string{
			"a changed MAC":           flip(rt2, len(rt2)-5),
			"the next generation":     id + ".3." + mac,
			"generation 0":            id + ".0." + mac,
			"a leading zero":          id + ".02." + mac,
			"a huge generation":       id + "." + strconv.FormatUint(1<<63, 10) + "." + mac,
			"another family's id":     flip(id, 3) + ".2." + mac,
			"no MAC":                  id + ".2.",
			"a padded MAC":            rt2 + "=",
			"two dots":                id + "..2." + mac,
			"empty":                   "",
			"an access token instead": "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
			"much too long":           rt2 + strings.Repeat("A", 100),
		}
		for name, tok := range forged {
			if _, _, err := h.s.RotateRefresh(ctx, tok, "client-1", nil); !errors.Is(err, ErrInvalidGrant) || errors.Is(err, ErrRefreshReused) {
				t.Errorf("%s: %v, want ErrInvalidGrant without reuse", name, err)
			}
		}
		// Another client presenting the token: refused, and the family lives on.
		if _, _, err := h.s.RotateRefresh(ctx, rt2, "client-2", nil); !errors.Is(err, ErrInvalidGrant) || errors.Is(err, ErrRefreshReused) {
			t.Errorf("another client: %v, want ErrInvalidGrant", err)
		}
		rotate(t, h.s, rt2)
	})
}

// Of concurrent rotations of one token on several replicas, one wins; the first of the others
// to come is a reuse, which revokes the family, and those after it find no family.
func TestRefreshRotationConcurrent(t *testing.T) {
	t.Parallel()
	facadeBoth(t, FacadeStoreOptions{}, func(t *testing.T, h *facadeHarness) {
		ctx := t.Context()
		rt, err := h.s.StartFamily(ctx, sampleFamily())
		if err != nil {
			t.Fatal(err)
		}
		var wins, reused, gone atomic.Int32
		var winner atomic.Value
		var wg sync.WaitGroup
		for range 8 {
			s := h.replica()
			wg.Go(func() {
				next, _, err := s.RotateRefresh(ctx, rt, "client-1", nil)
				switch {
				case err == nil:
					wins.Add(1)
					winner.Store(next)
				case errors.Is(err, ErrRefreshReused):
					reused.Add(1)
				case errors.Is(err, ErrInvalidGrant):
					gone.Add(1)
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 || reused.Load() < 1 || reused.Load()+gone.Load() != 7 {
			t.Fatalf("%d rotations won, %d were reuses, %d found no family; want 1, at least 1, and 7 refused in all",
				wins.Load(), reused.Load(), gone.Load())
		}
		if _, _, err := h.s.RotateRefresh(ctx, winner.Load().(string), "client-1", nil); !errors.Is(err, ErrInvalidGrant) {
			t.Errorf("the winner's token after the reuses: %v, want ErrInvalidGrant", err)
		}
	})
}

// Two rotations of one token interleaved, deterministically: the second runs inside the
// first's update, after the first read the family and before it writes. The second wins; the
// first's write must then fail as a reuse, which revokes the family and the second's token
// with it.
func TestRefreshRotationInterleaved(t *testing.T) {
	t.Parallel()
	facadeBoth(t, FacadeStoreOptions{}, func(t *testing.T, h *facadeHarness) {
		ctx := t.Context()
		rt, err := h.s.StartFamily(ctx, sampleFamily())
		if err != nil {
			t.Fatal(err)
		}
		other := h.replica()
		var second string
		_, _, err = h.s.RotateRefresh(ctx, rt, "client-1", func(*RefreshFamily) error {
			next, _, err := other.RotateRefresh(ctx, rt, "client-1", nil)
			if err != nil {
				t.Errorf("the inner rotation: %v", err)
			}
			second = next
			return nil
		})
		if !errors.Is(err, ErrRefreshReused) {
			t.Fatalf("the outer rotation, overtaken: %v, want ErrRefreshReused", err)
		}
		if _, _, err := h.s.RotateRefresh(ctx, second, "client-1", nil); !errors.Is(err, ErrInvalidGrant) {
			t.Errorf("the inner rotation's token after the reuse: %v, want ErrInvalidGrant", err)
		}
	})
}

// update sees the family, may replace the provider's refresh token and narrow the scopes; an
// error rotates nothing.
func TestRefreshUpdate(t *testing.T) {
	t.Parallel()
	facadeBoth(t, FacadeStoreOptions{}, func(t *testing.T, h *facadeHarness) {
		ctx := t.Context()
		rt, err := h.s.StartFamily(ctx, sampleFamily())
		if err != nil {
			t.Fatal(err)
		}
		refused := errors.New("the provider refused")
		if _, _, err := h.s.RotateRefresh(ctx, rt, "client-1", func(*RefreshFamily) error { return refused }); !errors.Is(err, refused) {
			t.Fatalf("update's error: %v", err)
		}
		if _, _, err := h.s.RotateRefresh(ctx, rt, "client-1", func(f *RefreshFamily) error {
			f.Scopes = append(f.Scopes, "mcp:admin")
			return nil
		}); err == nil {
			t.Fatal("a refresh widened the scopes")
		}
		rt2, f, err := h.s.RotateRefresh(ctx, rt, "client-1", func(f *RefreshFamily) error {
			if f.UpstreamRefreshToken != sampleFamily().UpstreamRefreshToken {
				t.Errorf("update sees the provider's token %q", f.UpstreamRefreshToken)
			}
			f.UpstreamRefreshToken = "ROTATED-UPSTREAM"
			f.Scopes = []string{"mcp:read"}
			f.Subject = "someone-else" // not kept
			return nil
		})
		if err != nil {
			t.Fatalf("after update's error the token still rotates: %v", err)
		}
		if f.UpstreamRefreshToken != "ROTATED-UPSTREAM" || strings.Join(f.Scopes, " ") != "mcp:read" || f.Subject != "user-42" {
			t.Errorf("family %+v", f)
		}
		_, f, err = h.s.RotateRefresh(ctx, rt2, "client-1", nil)
		if err != nil || f.UpstreamRefreshToken != "ROTATED-UPSTREAM" || strings.Join(f.Scopes, " ") != "mcp:read" {
			t.Errorf("the next rotation sees %+v, %v", f, err)
		}
	})
}

// A family ends RefreshIdleTTL after its last use, and RefreshMaxTTL after its start however
// it is used.
func TestRefreshLifetimes(t *testing.T) {
	t.Parallel()
	o := FacadeStoreOptions{RefreshIdleTTL: 7 * 24 * time.Hour, RefreshMaxTTL: 30 * 24 * time.Hour}
	facadeBoth(t, o, func(t *testing.T, h *facadeHarness) {
		ctx := t.Context()
		rt, err := h.s.StartFamily(ctx, sampleFamily())
		if err != nil {
			t.Fatal(err)
		}
		if h.client != nil {
			id, _, _ := strings.Cut(rt, ".")
			if d := h.pttl(storageKey(facadeFamilyPrefix, id)); d < 6*24*time.Hour || d > 7*24*time.Hour {
				t.Errorf("a new family's key lives %v, want 7 days", d)
			}
		}
		for range 4 { // days 6, 12, 18, 24: each within the idle time
			h.clock.Advance(6 * 24 * time.Hour)
			rt = rotate(t, h.s, rt)
		}
		h.clock.Advance(6*24*time.Hour + time.Second) // day 30 and a second
		if _, _, err := h.s.RotateRefresh(ctx, rt, "client-1", nil); !errors.Is(err, ErrInvalidGrant) {
			t.Errorf("a family past RefreshMaxTTL: %v, want ErrInvalidGrant", err)
		}

		if h.client == nil {
			rt, err := h.s.StartFamily(ctx, sampleFamily())
			if err != nil {
				t.Fatal(err)
			}
			h.clock.Advance(7 * 24 * time.Hour)
			if _, _, err := h.s.RotateRefresh(ctx, rt, "client-1", nil); !errors.Is(err, ErrInvalidGrant) {
				t.Errorf("a family idle for RefreshIdleTTL: %v, want ErrInvalidGrant", err)
			}
		}
	})
}

func TestRevokeRefresh(t *testing.T) {
	t.Parallel()
	facadeBoth(t, FacadeStoreOptions{}, func(t *testing.T, h *facadeHarness) {
		ctx := t.Context()
		f := sampleFamily()
		rt1, err := h.s.StartFamily(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		rt2 := rotate(t, h.s, rt1)
		if err := h.s.RevokeRefresh(ctx, rt2, "client-2"); !errors.Is(err, ErrInvalidGrant) {
			t.Errorf("revocation by another client: %v, want ErrInvalidGrant", err)
		}
		for _, tok := range []string{"", "garbage", rt2[:len(rt2)-2] + "AA"} {
			if err := h.s.RevokeRefresh(ctx, tok, "client-1"); err != nil {
				t.Errorf("revoking %q: %v, want nil (RFC 7009 §2.2)", tok, err)
			}
		}
		rt3 := rotate(t, h.s, rt2)
		// An older token of the family revokes it as well as the current one does.
		if err := h.s.RevokeRefresh(ctx, rt1, "client-1"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := h.s.RotateRefresh(ctx, rt3, "client-1", nil); !errors.Is(err, ErrInvalidGrant) {
			t.Errorf("after revocation: %v, want ErrInvalidGrant", err)
		}

		rt, err := h.s.StartFamily(ctx, sampleFamily())
		if err != nil {
			t.Fatal(err)
		}
		id, _, _ := strings.Cut(rt, ".")
		if err := h.s.RevokeFamily(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, _, err := h.s.RotateRefresh(ctx, rt, "client-1", nil); !errors.Is(err, ErrInvalidGrant) {
			t.Errorf("after RevokeFamily: %v, want ErrInvalidGrant", err)
		}
		if _, err := h.s.StartFamily(ctx, &RefreshFamily{ClientID: "c"}); err == nil {
			t.Error("a family without subject and resource was started")
		}
	})
}

// FuzzParseRefreshToken: a refresh token is attacker input. parseRefreshToken never panics,
// and what it accepts is exactly what refreshToken writes.
func FuzzParseRefreshToken(f *testing.F) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	id := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	f.Add(refreshToken(id, 1, secret))
	f.Add(refreshToken(id, 18446744073709551615, secret))
	f.Add(id + ".01.AAAA")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, rt string) {
		gotID, gen, mac, ok := parseRefreshToken(rt)
		if !ok {
			return
		}
		if len(mac) != 32 || gen == 0 || len(gotID) < MinIDLen {
			t.Fatalf("parsed %q as %q, %d, %x", rt, gotID, gen, mac)
		}
		if again := gotID + "." + strconv.FormatUint(gen, 10) + "." + base64.RawURLEncoding.EncodeToString(mac); again != rt {
			t.Fatalf("parsed %q, which writes back as %q", rt, again)
		}
	})
}
