package authz

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/extauthz/extauthz/pkg/token"
)

// panickingVerifier panics on every verification.
type panickingVerifier struct{}

func (panickingVerifier) Verify(context.Context, string, map[string]struct{}) (*token.Claims, error) {
	panic("a verifier bug")
}

// A verification that panics is a 503 denial for every caller waiting on it, the process goes
// on, and the next request for the token is verified again (nothing was cached).
func TestVerificationPanicIsADenial(t *testing.T) {
	f := newFixture(t, time.Minute, 10*time.Second)
	f.engine.opts.Verifier = panickingVerifier{}
	tok := f.mint(t, time.Hour)
	checkPanicDenials(t, f, tok)
	f.engine.opts.Verifier = f.verifier
	if d := f.check(tok, "/mcp"); !d.Allow {
		t.Fatalf("after the panic, with a working verifier: %v", d.Err)
	}
}

// checkPanicDenials sends eight concurrent Checks of tok, whose verification panics: each
// must be a 503 denial.
func checkPanicDenials(t *testing.T, f *fixture, tok string) {
	t.Helper()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := f.check(tok, "/mcp")
			if d.Allow || d.Status != 503 || !errors.Is(d.Err, token.ErrUnavailable) {
				t.Errorf("a verification that panicked: allow=%v status %d err %v, want a 503 denial", d.Allow, d.Status, d.Err)
			}
		}()
	}
	wg.Wait()
}

// More slow verifications than there are workers: none waits for another (a new goroutine
// takes what no idle worker can), and each caller gets its own token's verdict.
func TestFlightNeverQueuesBehindASlowVerification(t *testing.T) {
	f := newFixture(t, time.Minute, 10*time.Second)
	f.engine.opts.Cache = nil
	f.verifier.gate = make(chan struct{})
	const n = 64 // more than the 2 × GOMAXPROCS workers
	toks := make([]string, n)
	for i := range toks {
		toks[i] = f.mint(t, time.Hour)
	}
	var wg sync.WaitGroup
	results := make(chan bool, n)
	for _, tok := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- f.check(tok, "/mcp").Allow
		}()
	}
	// Every verification starts while all the others are held.
	deadline := time.Now().Add(10 * time.Second)
	for f.verifier.calls.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d verifications started while the others were held", f.verifier.calls.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
	close(f.verifier.gate)
	wg.Wait()
	close(results)
	for ok := range results {
		if !ok {
			t.Fatal("a token was denied")
		}
	}
}
