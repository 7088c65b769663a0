package dpop_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/dpop"
)

var nonceKey = bytes.Repeat([]byte("k"), dpop.MinNonceKeyBytes)

// nonceFixture is a verifier requiring nonces of one-minute slots.
func nonceFixture(t *testing.T) (*fixture, *dpop.Nonces) {
	t.Helper()
	clock := testkit.NewClockAt(t0)
	n, err := dpop.NewNonces(nonceKey, time.Minute, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, dpop.Options{Nonces: n, Now: clock.Now, MaxAge: 10 * time.Minute})
	f.clock = clock
	return f, n
}

func TestNonceRefuses(t *testing.T) {
	t.Parallel()
	k := newKey(t, "ES256")
	otherKey, err := dpop.NewNonces(bytes.Repeat([]byte("o"), 32), time.Minute, testkit.NewClockAt(t0).Now)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		nonce any // nil: no nonce claim
		age   time.Duration
		want  error
		msg   string
	}{
		{"missing", nil, 0, dpop.ErrUseNonce, "no nonce"},
		{"two slots old", "current", 2 * time.Minute, dpop.ErrUseNonce, "not current"},
		{"issued with another key", otherKey.Current(), 0, dpop.ErrUseNonce, "not current"},
		{"another server's nonce", "eyJ7S_zG.eyJH0-Z.HX4w-7v", 0, dpop.ErrUseNonce, "not current"},
		{"a number", 12345, 0, dpop.ErrInvalidProof, "not a non-empty string"},
		{"null", json.RawMessage("null"), 0, dpop.ErrInvalidProof, "not a non-empty string"},
		{"empty", "", 0, dpop.ErrInvalidProof, "not a non-empty string"},
		{"too long", strings.Repeat("n", 257), 0, dpop.ErrInvalidProof, "not a non-empty string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, n := nonceFixture(t)
			c := f.claims()
			if s, ok := tt.nonce.(string); ok && s == "current" {
				c["nonce"] = n.Current()
			} else if tt.nonce != nil {
				c["nonce"] = tt.nonce
			}
			p := k.proof(t, k.header(), c)
			f.clock.Advance(tt.age)
			_, err := f.verify(p)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Verify: %v; want %v saying %q", err, tt.want, tt.msg)
			}
			if f.store.Len() != 0 {
				t.Fatal("a proof refused for its nonce took a replay entry")
			}
		})
	}
}

// The current nonce and the previous slot's are accepted; a proof refused
// for its nonce did not spend its jti, so the retry may reuse it.
func TestNonceAccepts(t *testing.T) {
	t.Parallel()
	f, n := nonceFixture(t)
	k := newKey(t, "ES256")
	c := f.claims()
	if _, err := f.verify(k.proof(t, k.header(), c)); !errors.Is(err, dpop.ErrUseNonce) {
		t.Fatalf("without a nonce: %v", err)
	}
	c["nonce"] = n.Current()
	if res, err := f.verify(k.proof(t, k.header(), c)); err != nil || res.NextNonce != "" {
		t.Fatalf("the retry with the nonce and the same jti: %v (next nonce %q, want none: it is current)", err, res.NextNonce)
	}
	issued := n.Current()
	f.clock.Advance(time.Minute) // the next slot: issued is the previous one
	if n.Current() == issued {
		t.Fatal("the nonce did not change with the slot")
	}
	c = f.claims()
	c["nonce"] = issued
	if res, err := f.verify(k.proof(t, k.header(), c)); err != nil || res.NextNonce != n.Current() {
		t.Fatalf("the previous slot's nonce: %v (next nonce %q, want the current %q)", err, res.NextNonce, n.Current())
	}
}

// A proof with a bad signature is invalid, not a nonce problem: only an
// authentic proof is told to retry.
func TestNonceAfterSignature(t *testing.T) {
	t.Parallel()
	f, _ := nonceFixture(t)
	k := newKey(t, "ES256")
	p := freshKey(t, "ES256").proof(t, k.header(), f.claims())
	if _, err := f.verify(p); !errors.Is(err, dpop.ErrInvalidProof) || errors.Is(err, dpop.ErrUseNonce) {
		t.Fatalf("forged proof without a nonce: %v; want ErrInvalidProof only", err)
	}
}

// Replicas sharing the key issue and accept the same nonces.
func TestNoncesShared(t *testing.T) {
	t.Parallel()
	clock := testkit.NewClockAt(t0)
	a, _ := dpop.NewNonces(nonceKey, time.Minute, clock.Now)
	b, _ := dpop.NewNonces(append([]byte(nil), nonceKey...), time.Minute, clock.Now)
	if a.Current() != b.Current() || a.Current() == "" {
		t.Fatalf("replicas disagree: %q, %q", a.Current(), b.Current())
	}
}

func TestNewNoncesRefuses(t *testing.T) {
	t.Parallel()
	if _, err := dpop.NewNonces(make([]byte, 31), time.Minute, nil); err == nil {
		t.Error("a 31-byte key was accepted")
	}
	if _, err := dpop.NewNonces(nonceKey, time.Millisecond, nil); err == nil {
		t.Error("a 1ms slot was accepted")
	}
}
