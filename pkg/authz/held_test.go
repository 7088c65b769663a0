package authz

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extauthz/extauthz/pkg/token"
)

// heldVerifier is countingVerifier for a verifier that can verify with the
// keys it holds (token.HeldVerifier): it counts both kinds of call, and
// holds VerifyHeld calls at gate, when set, as countingVerifier holds Verify.
type heldVerifier struct {
	countingVerifier
	heldCalls atomic.Int64
	heldGate  chan struct{}
	// needsNetwork, when set, makes every VerifyHeld call fail with
	// token.ErrNeedsNetwork; panics makes it panic.
	needsNetwork, panics bool
}

func (v *heldVerifier) VerifyHeld(raw string, trusted map[string]struct{}) (*token.Claims, error) {
	v.heldCalls.Add(1)
	if v.heldGate != nil {
		<-v.heldGate
	}
	switch {
	case v.panics:
		panic("a verifier bug")
	case v.needsNetwork:
		return nil, token.ErrNeedsNetwork
	}
	return v.inner.(token.HeldVerifier).VerifyHeld(raw, trusted)
}

// heldFixture is newFixture with a heldVerifier, its key set fetched.
func heldFixture(t *testing.T) (*fixture, *heldVerifier) {
	t.Helper()
	f := newFixture(t, time.Minute, 10*time.Second)
	hv := &heldVerifier{countingVerifier: countingVerifier{inner: f.verifier.inner}}
	f.engine.opts.Verifier = hv
	// The key set is fetched once, by a first token's verification.
	if d := f.check(f.mint(t, time.Hour), "/mcp"); !d.Allow {
		t.Fatalf("first token: %v", d.Err)
	}
	hv.calls.Store(0)
	hv.heldCalls.Store(0)
	return f, hv
}

// A token whose key is held is verified once, with the keys held, and
// cached; Verify (the path that may fetch) is not called.
func TestHeldKeyVerifiesWithoutTheNetwork(t *testing.T) {
	f, hv := heldFixture(t)
	fetches := f.issuer.JWKSFetches()
	tok := f.mint(t, time.Hour)
	for range 3 {
		if d := f.check(tok, "/mcp"); !d.Allow {
			t.Fatalf("denied: %v", d.Err)
		}
	}
	if h, v := hv.heldCalls.Load(), hv.calls.Load(); h != 1 || v != 0 {
		t.Fatalf("%d verifications with the held keys and %d with the network for 3 checks; want 1 and 0", h, v)
	}
	if n := f.issuer.JWKSFetches(); n != fetches {
		t.Fatalf("the key set was fetched again (%d, was %d)", n, fetches)
	}
}

// Concurrent misses for one token still share one verification when it
// runs on the first caller's goroutine: the others wait for its verdict.
func TestHeldVerificationIsShared(t *testing.T) {
	f, hv := heldFixture(t)
	f.engine.opts.Cache = nil // only the single flight can collapse the verifications
	hv.heldGate = make(chan struct{})
	const n = 32
	var joined sync.WaitGroup
	joined.Add(n)
	f.engine.joiningFlight = joined.Done
	tok := f.mint(t, time.Hour)
	var wg sync.WaitGroup
	var allowed atomic.Int64
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if f.check(tok, "/mcp").Allow {
				allowed.Add(1)
			}
		}()
	}
	joined.Wait() // every request is at the flight; the leader is held in VerifyHeld
	close(hv.heldGate)
	wg.Wait()
	if h, v := hv.heldCalls.Load(), hv.calls.Load(); h != 1 || v != 0 {
		t.Fatalf("%d verifications with the held keys, %d with the network, for %d concurrent requests of one token; want 1 and 0", h, v, n)
	}
	if allowed.Load() != n {
		t.Fatalf("%d of %d allowed", allowed.Load(), n)
	}
}

// A token whose key is not held is verified apart, with the network: the
// issuer's new key is fetched and the token allowed. ErrNeedsNetwork is
// never a verdict, and the verdict cached is Verify's.
func TestKeyNotHeldIsFetched(t *testing.T) {
	f, hv := heldFixture(t)
	kid, err := f.issuer.AddKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	f.issuer.Use(kid)
	f.clock.Advance(11 * time.Second) // past the unknown-kid refetch interval
	fetches := f.issuer.JWKSFetches()
	tok := f.mint(t, time.Hour)
	if d := f.check(tok, "/mcp"); !d.Allow {
		t.Fatalf("a token of the issuer's new key: %v", d.Err)
	}
	if h, v := hv.heldCalls.Load(), hv.calls.Load(); h != 1 || v != 1 {
		t.Fatalf("%d verifications with the held keys and %d with the network; want 1 and 1", h, v)
	}
	if n := f.issuer.JWKSFetches(); n != fetches+1 {
		t.Fatalf("%d key set fetches, want 1", n-fetches)
	}
	// Cached: the next check verifies nothing.
	if d := f.check(tok, "/mcp"); !d.Allow || hv.heldCalls.Load() != 1 || hv.calls.Load() != 1 {
		t.Fatalf("second check: allow=%v, held %d, network %d", d.Allow, hv.heldCalls.Load(), hv.calls.Load())
	}
}

// A verifier whose held path always needs the network is answered by its
// Verify, allowing or refusing as Verify says, never by the held path's
// empty answer.
func TestNeedsNetworkIsNeverAVerdict(t *testing.T) {
	f, hv := heldFixture(t)
	hv.needsNetwork = true
	good := f.mint(t, time.Hour)
	if d := f.check(good, "/mcp"); !d.Allow || d.Claims == nil || d.Claims.Subject != "alice" {
		t.Fatalf("good token: allow=%v claims %+v err %v", d.Allow, d.Claims, d.Err)
	}
	bad := good[:len(good)-4] + "AAAA"
	if d := f.check(bad, "/mcp"); d.Allow || d.Status != 401 || !errors.Is(d.Err, token.ErrSignature) {
		t.Fatalf("tampered token: allow=%v status %d err %v, want 401 invalid signature", d.Allow, d.Status, d.Err)
	}
	if v := hv.calls.Load(); v != 2 {
		t.Fatalf("Verify called %d times, want 2", v)
	}
}

// A panic on the held path is a 503 for every caller waiting on that
// verification, and nothing is cached: the next request verifies again.
func TestHeldVerificationPanicIsADenial(t *testing.T) {
	f, hv := heldFixture(t)
	hv.panics = true
	tok := f.mint(t, time.Hour)
	checkPanicDenials(t, f, tok)
	hv.panics = false
	if d := f.check(tok, "/mcp"); !d.Allow {
		t.Fatalf("after the panic: %v", d.Err)
	}
}

// A caller who gives up while another leads a held verification gets a
// 503 at once; the leader's verdict is still cached for the next request.
func TestFollowerGivingUpOnAHeldVerification(t *testing.T) {
	f, hv := heldFixture(t)
	hv.heldGate = make(chan struct{})
	tok := f.mint(t, time.Hour)
	leader := make(chan Decision)
	go func() { leader <- f.check(tok, "/mcp") }()
	for hv.heldCalls.Load() == 0 { // the leader is verifying, held at the gate
		time.Sleep(time.Millisecond)
	}
	var joined sync.WaitGroup
	joined.Add(1)
	f.engine.joiningFlight = joined.Done
	ctx, cancel := context.WithCancel(context.Background())
	follower := make(chan Decision)
	go func() {
		follower <- f.engine.Check(ctx, &Request{Method: "POST", Host: "mcp.example.com", Path: "/mcp", Headers: map[string]string{"authorization": "Bearer " + tok}})
	}()
	joined.Wait()
	cancel()
	if d := <-follower; d.Status != 503 {
		t.Fatalf("follower who gave up: status %d, want 503", d.Status)
	}
	close(hv.heldGate)
	if d := <-leader; !d.Allow {
		t.Fatalf("leader: %v", d.Err)
	}
	f.engine.joiningFlight = nil
	if d := f.check(tok, "/mcp"); !d.Allow || hv.heldCalls.Load() != 1 {
		t.Fatalf("next request: allow=%v, %d held verifications (want 1: cached)", d.Allow, hv.heldCalls.Load())
	}
}
