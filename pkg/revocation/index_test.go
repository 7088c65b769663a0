package revocation

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extauthz/extauthz/pkg/token"
)

// t0 is a watermark's Before in these tests: 1,800,000,000 s and a half.
var t0 = time.Unix(1_800_000_000, 500_000_000)

const far = 1_900_000_000 // an expiry in seconds after every t0 used here

// claims are a token's claims: alice of client app at the issuer, issued
// at iat, with session sid and kept claims extra.
func claims(sub string, iat int64, sid string, extra map[string]any) *token.Claims {
	return &token.Claims{Subject: sub, IssuedAt: iat, SessionID: sid, Extra: extra,
		Grant: &token.Grant{Issuer: "https://as.example", ClientID: "app"}}
}

// countRefused counts RefusedByWatermark.
type countRefused struct {
	NopObserver
	n atomic.Int64
}

func (c *countRefused) RefusedByWatermark() { c.n.Add(1) }

func TestIndexMatches(t *testing.T) {
	sec := t0.Unix() // Before's whole second
	alice := func(iat int64) *token.Claims {
		return claims("alice", iat, "s-1", map[string]any{"email": "a@x.example", "n": 3.0})
	}
	cases := []struct {
		name string
		w    Watermark
		c    *token.Claims
		want bool
	}{
		{"subject, issued before", Watermark{Subject: "alice"}, alice(sec - 60), true},
		{"subject, issued in Before's second (after it, within the second)", Watermark{Subject: "alice"}, alice(sec), true},
		{"subject, issued the second after", Watermark{Subject: "alice"}, alice(sec + 1), false},
		{"subject, no iat: the epoch", Watermark{Subject: "alice"}, alice(0), true},
		{"another subject", Watermark{Subject: "bob"}, alice(sec - 60), false},
		{"subject and issuer", Watermark{Subject: "alice", Issuer: "https://as.example"}, alice(sec - 60), true},
		{"subject and another issuer", Watermark{Subject: "alice", Issuer: "https://other.example"}, alice(sec - 60), false},
		{"subject and client", Watermark{Subject: "alice", ClientID: "app"}, alice(sec - 60), true},
		{"subject and another client", Watermark{Subject: "alice", ClientID: "cli"}, alice(sec - 60), false},
		{"session", Watermark{SessionID: "s-1"}, alice(sec - 60), true},
		{"another session", Watermark{SessionID: "s-2"}, alice(sec - 60), false},
		{"session, token without sid", Watermark{SessionID: "s-1"}, claims("alice", sec-60, "", nil), false},
		{"subject and session, another session", Watermark{Subject: "alice", SessionID: "s-2"}, alice(sec - 60), false},
		{"client", Watermark{ClientID: "app"}, alice(sec - 60), true},
		{"client and issuer", Watermark{ClientID: "app", Issuer: "https://as.example"}, alice(sec - 60), true},
		{"issuer alone", Watermark{Issuer: "https://as.example"}, alice(sec - 60), true},
		{"issuer alone, issued after", Watermark{Issuer: "https://as.example"}, alice(sec + 1), false},
		{"another issuer alone", Watermark{Issuer: "https://other.example"}, alice(sec - 60), false},
		{"claim", Watermark{Claim: "email", Value: "a@x.example"}, alice(sec - 60), true},
		{"claim, another value", Watermark{Claim: "email", Value: "b@x.example"}, alice(sec - 60), false},
		{"claim not kept", Watermark{Claim: "tenant", Value: "acme"}, alice(sec - 60), false},
		{"claim not a string", Watermark{Claim: "n", Value: "3"}, alice(sec - 60), false},
		{"claim and subject", Watermark{Claim: "email", Value: "a@x.example", Subject: "alice"}, alice(sec - 60), true},
		{"claim and another subject", Watermark{Claim: "email", Value: "a@x.example", Subject: "bob"}, alice(sec - 60), false},
		{"client, claims without a grant", Watermark{ClientID: "app"}, &token.Claims{Subject: "alice"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obs := &countRefused{}
			x := NewIndex(obs)
			tc.w.Before = t0
			if err := x.Add(tc.w, time.Unix(far, 0)); err != nil {
				t.Fatal(err)
			}
			if got := x.Revoked(tc.c); got != tc.want {
				t.Fatalf("Revoked = %v, want %v", got, tc.want)
			}
			if want := map[bool]int64{true: 1}[tc.want]; obs.n.Load() != want {
				t.Fatalf("counted %d refusals, want %d", obs.n.Load(), want)
			}
		})
	}
}

func TestIndexEmpty(t *testing.T) {
	var none *Index
	if none.Revoked(claims("alice", 0, "", nil)) {
		t.Fatal("a nil index revoked a token")
	}
	x := NewIndex(nil)
	if x.Revoked(claims("alice", 0, "", nil)) || x.Len() != 0 {
		t.Fatal("an empty index revoked a token")
	}
}

func TestIndexKeepsTheLaterBefore(t *testing.T) {
	x := NewIndex(nil)
	exp := time.Unix(far, 0)
	late := claims("alice", t0.Unix()+100, "", nil)
	_ = x.Add(Watermark{Subject: "alice", Before: t0.Add(200 * time.Second)}, exp)
	_ = x.Add(Watermark{Subject: "alice", Before: t0}, exp) // older: changes nothing
	if !x.Revoked(late) || x.Len() != 1 {
		t.Fatalf("Revoked = %v, Len = %d; want the later watermark kept alone", x.Revoked(late), x.Len())
	}
	_ = x.Add(Watermark{Subject: "alice", Issuer: "https://as.example", Before: t0}, exp) // other selectors: a second one
	if x.Len() != 2 {
		t.Fatalf("Len = %d, want 2", x.Len())
	}
}

func TestIndexPrune(t *testing.T) {
	x := NewIndex(nil)
	c := claims("alice", 0, "", nil)
	_ = x.Add(Watermark{Subject: "alice", Before: t0}, t0.Add(time.Hour))
	_ = x.Add(Watermark{Subject: "bob", Before: t0}, t0.Add(2*time.Hour))
	if n := x.prune(t0.Add(time.Hour - time.Nanosecond)); n != 0 || !x.Revoked(c) {
		t.Fatalf("pruned %d before the expiry", n)
	}
	if n := x.prune(t0.Add(time.Hour)); n != 1 || x.Revoked(c) || x.Len() != 1 {
		t.Fatalf("pruned %d at the expiry; Revoked %v, Len %d", n, x.Revoked(c), x.Len())
	}
}

func TestWatermarkValidate(t *testing.T) {
	long := string(make([]byte, maxSelectorBytes+1))
	for name, w := range map[string]Watermark{
		"no selector":         {Before: t0, Source: "admin", Event: "admin"},
		"claim without value": {Claim: "email", Before: t0},
		"value without claim": {Subject: "alice", Value: "x", Before: t0},
		"no before":           {Subject: "alice"},
		"before the epoch":    {Subject: "alice", Before: time.Unix(-1, 0)},
		"long subject":        {Subject: long, Before: t0},
	} {
		if err := w.Validate(); err == nil {
			t.Errorf("%s: valid", name)
		}
	}
	if err := (&Watermark{Before: t0}).Validate(); !errors.Is(err, ErrNoSelector) {
		t.Errorf("no selector: %v", err)
	}
	if err := (&Watermark{Issuer: "https://as.example", Before: time.Unix(0, 0)}).Validate(); err != nil {
		t.Errorf("issuer alone at the epoch: %v", err)
	}
}

// Revoked runs on every decision while watermarks change: it must see
// either snapshot, never a torn one (the race detector watches).
func TestIndexConcurrentChange(t *testing.T) {
	x := NewIndex(nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := claims("bob", 0, "", nil)
			for {
				select {
				case <-stop:
					return
				default:
					_ = x.Revoked(c)
				}
			}
		}()
	}
	for i := range 200 {
		_ = x.Add(Watermark{Subject: fmt.Sprint("user-", i), Before: t0}, time.Unix(far, 0))
	}
	close(stop)
	wg.Wait()
	if !x.Revoked(claims("user-199", 0, "", nil)) || x.Revoked(claims("bob", 0, "", nil)) {
		t.Fatal("wrong answer after the changes")
	}
}

// The check on a cache hit: with no watermark one atomic load; with
// 10,000 (subjects, and some sessions, clients and claims) a map lookup or
// two for a token that none revokes, and for one a watermark revokes.
func BenchmarkRevoked(b *testing.B) {
	c := claims("user-not-revoked", t0.Unix()-60, "sess-x", map[string]any{"email": "x@x.example"})
	b.Run("0", func(b *testing.B) {
		x := NewIndex(nil)
		b.ReportAllocs()
		for b.Loop() {
			if x.Revoked(c) {
				b.Fatal("revoked")
			}
		}
	})
	x := NewIndex(nil)
	exp := time.Unix(far, 0)
	for i := range 10_000 {
		w := Watermark{Subject: fmt.Sprint("user-", i), Before: t0}
		switch i % 100 {
		case 1:
			w = Watermark{SessionID: fmt.Sprint("sess-", i), Before: t0}
		case 2:
			w = Watermark{ClientID: fmt.Sprint("client-", i), Issuer: "https://as.example", Before: t0}
		case 3:
			w = Watermark{Claim: "email", Value: fmt.Sprint(i, "@x.example"), Before: t0}
		}
		if err := x.Add(w, exp); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("10000/not-revoked", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if x.Revoked(c) {
				b.Fatal("revoked")
			}
		}
	})
	revoked := claims("user-5000", t0.Unix()-60, "", nil)
	b.Run("10000/revoked", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !x.Revoked(revoked) {
				b.Fatal("not revoked")
			}
		}
	})
}
