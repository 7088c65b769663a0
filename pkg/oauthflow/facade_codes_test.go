package oauthflow

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The RFC 7636 Appendix B example: this verifier and its S256 challenge.
const (
	sampleVerifier  = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	sampleChallenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
)

func sampleCode(t *testing.T) *AuthCode {
	t.Helper()
	return &AuthCode{
		ClientID:             "client-1",
		RedirectURI:          "http://127.0.0.1:33418/callback",
		CodeChallenge:        sampleChallenge,
		Resource:             "https://mcp.example.com/mcp",
		Scopes:               []string{"mcp:tools", "mcp:read"},
		Subject:              "user-42",
		UpstreamIssuer:       "https://login.example.com",
		UpstreamRefreshToken: "UPSTREAM-REFRESH-" + strings.Repeat("u", 20),
		AuthTime:             clockStart.Add(-time.Minute),
	}
}

func sampleRedemption() CodeRedemption {
	return CodeRedemption{ClientID: "client-1", RedirectURI: "http://127.0.0.1:33418/callback", CodeVerifier: sampleVerifier}
}

func TestPKCES256(t *testing.T) {
	t.Parallel()
	if !pkceS256Matches(sampleVerifier, sampleChallenge) {
		t.Fatal("the RFC 7636 Appendix B verifier does not match its challenge")
	}
	for name, v := range map[string]string{
		"plain: the challenge itself":         sampleChallenge,
		"empty":                               "",
		"one character off":                   sampleVerifier[:42] + "j",
		"42 characters":                       sampleVerifier[:42],
		"129 characters":                      strings.Repeat("a", 129),
		"a character outside [A-Za-z0-9-._~]": sampleVerifier[:42] + "+",
		"a space":                             sampleVerifier[:21] + " " + sampleVerifier[22:],
	} {
		if pkceS256Matches(v, sampleChallenge) {
			t.Errorf("%s: verifier %q matches", name, v)
		}
	}
	for name, c := range map[string]string{
		"ok":           sampleChallenge,
		"padded":       sampleChallenge + "=",
		"std alphabet": strings.ReplaceAll(sampleChallenge, "-", "+"),
		"short":        sampleChallenge[:42],
		"plain method": "plain-verifier-that-is-long-enough-to-pass-43chars",
	} {
		if got := validChallenge(c); got != (name == "ok") {
			t.Errorf("validChallenge(%s) = %v", name, got)
		}
	}
}

func TestIssueCodeRefuses(t *testing.T) {
	t.Parallel()
	h := newFacadeHarness(t, inProcess, FacadeStoreOptions{})
	ctx := t.Context()
	for name, mod := range map[string]func(c *AuthCode) time.Duration{
		"a lifetime over 60s": func(*AuthCode) time.Duration { return MaxCodeTTL + time.Millisecond },
		"a negative lifetime": func(*AuthCode) time.Duration { return -time.Second },
		"no challenge":        func(c *AuthCode) time.Duration { c.CodeChallenge = ""; return 0 },
		"a plain challenge":   func(c *AuthCode) time.Duration { c.CodeChallenge = sampleVerifier + "x"; return 0 },
		"no client":           func(c *AuthCode) time.Duration { c.ClientID = ""; return 0 },
		"no redirect URI":     func(c *AuthCode) time.Duration { c.RedirectURI = ""; return 0 },
		"no resource":         func(c *AuthCode) time.Duration { c.Resource = ""; return 0 },
		"no subject":          func(c *AuthCode) time.Duration { c.Subject = ""; return 0 },
	} {
		c := sampleCode(t)
		ttl := mod(c)
		if code, err := h.s.IssueCode(ctx, c, ttl); err == nil {
			t.Errorf("%s: issued %q", name, code)
		}
	}
	if _, err := h.s.IssueCode(ctx, nil, 0); err == nil {
		t.Error("a nil code was issued")
	}
}

// A code redeems once, with everything the authorization request bound it to; a failed
// redemption spends it too.
func TestRedeemCode(t *testing.T) {
	t.Parallel()
	facadeBoth(t, FacadeStoreOptions{}, func(t *testing.T, h *facadeHarness) {
		ctx := t.Context()
		want := sampleCode(t)
		code, err := h.s.IssueCode(ctx, want, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(code) != 43 {
			t.Errorf("code of %d characters, want 43 (256 bits)", len(code))
		}
		got, err := h.replica().RedeemCode(ctx, code, sampleRedemption())
		if err != nil {
			t.Fatal(err)
		}
		if got.ClientID != want.ClientID || got.RedirectURI != want.RedirectURI || got.Resource != want.Resource ||
			strings.Join(got.Scopes, " ") != "mcp:tools mcp:read" || got.Subject != want.Subject ||
			got.UpstreamIssuer != want.UpstreamIssuer || got.UpstreamRefreshToken != want.UpstreamRefreshToken ||
			!got.AuthTime.Equal(want.AuthTime.Truncate(time.Second)) || !got.Expires.Equal(clockStart.Add(30*time.Second)) {
			t.Errorf("redeemed %+v, want %+v", got, want)
		}
		if _, err := h.s.RedeemCode(ctx, code, sampleRedemption()); !errors.Is(err, ErrInvalidGrant) {
			t.Errorf("a replayed code: %v, want ErrInvalidGrant", err)
		}

		wrong := map[string]CodeRedemption{
			"another client":            {ClientID: "client-2", RedirectURI: sampleRedemption().RedirectURI, CodeVerifier: sampleVerifier},
			"another redirect URI":      {ClientID: "client-1", RedirectURI: "http://127.0.0.1:33419/callback", CodeVerifier: sampleVerifier},
			"a redirect URI with /":     {ClientID: "client-1", RedirectURI: sampleRedemption().RedirectURI + "/", CodeVerifier: sampleVerifier},
			"no redirect URI":           {ClientID: "client-1", CodeVerifier: sampleVerifier},
			"no verifier":               {ClientID: "client-1", RedirectURI: sampleRedemption().RedirectURI},
			"the challenge as verifier": {ClientID: "client-1", RedirectURI: sampleRedemption().RedirectURI, CodeVerifier: sampleChallenge},
			"another verifier":          {ClientID: "client-1", RedirectURI: sampleRedemption().RedirectURI, CodeVerifier: strings.Repeat("a", 43)},
		}
		for name, p := range wrong {
			code, err := h.s.IssueCode(ctx, sampleCode(t), 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.s.RedeemCode(ctx, code, p); !errors.Is(err, ErrInvalidGrant) {
				t.Errorf("%s: %v, want ErrInvalidGrant", name, err)
			}
			// Spent: the right request fails now too, so a verifier cannot be guessed at.
			if _, err := h.s.RedeemCode(ctx, code, sampleRedemption()); !errors.Is(err, ErrInvalidGrant) {
				t.Errorf("%s, then the right request: %v, want ErrInvalidGrant", name, err)
			}
		}
		for _, c := range []string{"", "short", strings.Repeat("x", 65), code + "x"} {
			if _, err := h.s.RedeemCode(ctx, c, sampleRedemption()); !errors.Is(err, ErrInvalidGrant) {
				t.Errorf("RedeemCode(%q): %v, want ErrInvalidGrant", c, err)
			}
		}
	})
}

// A code past its lifetime is refused by the sealed expiry, whatever the backend still holds.
func TestRedeemCodeExpired(t *testing.T) {
	t.Parallel()
	facadeBoth(t, FacadeStoreOptions{}, func(t *testing.T, h *facadeHarness) {
		ctx := t.Context()
		code, err := h.s.IssueCode(ctx, sampleCode(t), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		h.clock.Advance(10 * time.Second)
		if _, err := h.s.RedeemCode(ctx, code, sampleRedemption()); !errors.Is(err, ErrInvalidGrant) {
			t.Errorf("a code at its expiry: %v, want ErrInvalidGrant", err)
		}
		if h.client != nil {
			code, err := h.s.IssueCode(ctx, sampleCode(t), 0)
			if err != nil {
				t.Fatal(err)
			}
			if d := h.pttl(storageKey(facadeCodePrefix, code)); d <= 0 || d > MaxCodeTTL {
				t.Errorf("the code's Redis key lives %v, want (0, 60s]", d)
			}
		}
	})
}

// Of concurrent redemptions of one code on several replicas, exactly one succeeds.
func TestRedeemCodeConcurrent(t *testing.T) {
	t.Parallel()
	facadeBoth(t, FacadeStoreOptions{}, func(t *testing.T, h *facadeHarness) {
		ctx := t.Context()
		code, err := h.s.IssueCode(ctx, sampleCode(t), 0)
		if err != nil {
			t.Fatal(err)
		}
		var wins, refusals atomic.Int32
		var wg sync.WaitGroup
		for range 16 {
			s := h.replica()
			wg.Go(func() {
				_, err := s.RedeemCode(ctx, code, sampleRedemption())
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, ErrInvalidGrant):
					refusals.Add(1)
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 || refusals.Load() != 15 {
			t.Errorf("%d redemptions succeeded and %d were refused; want 1 and 15", wins.Load(), refusals.Load())
		}
	})
}
