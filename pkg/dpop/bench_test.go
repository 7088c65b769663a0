package dpop_test

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"syscall"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/p256sig"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/dpop"
)

// BenchmarkVerifyES256 is the whole per-request cost of an ES256 proof
// with the in-memory replay store: parse, strict JSON, htu, signature,
// thumbprint, replay. Each iteration verifies a different proof (a new
// jti), as requests do. Compare with BenchmarkECDSAVerifyASN1: the
// difference is what this package adds to one signature check.
func BenchmarkVerifyES256(b *testing.B) {
	clock := testkit.NewClockAt(t0)
	v, err := dpop.NewVerifier(dpop.Options{Replay: dpop.NewMemoryReplay(b.N+1, clock.Now), Now: clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	f := &fixture{clock: clock}
	k := newKey(b, "ES256")
	proofs := make([]dpop.Proof, b.N)
	for i := range proofs {
		proofs[i] = dpop.Proof{Header: k.proof(b, k.header(), f.claims()), Method: testMethod, URI: testURI, AccessToken: testToken}
	}
	ctx := b.Context()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime(b)
	for i := range b.N {
		if _, err := v.Verify(ctx, proofs[i]); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// BenchmarkECDSAVerifyASN1 is one raw P-256 signature check on a
// precomputed digest, the floor under BenchmarkVerifyES256.
func BenchmarkECDSAVerifyASN1(b *testing.B) {
	k := newKey(b, "ES256").priv.(*ecdsa.PrivateKey)
	digest := sha256.Sum256([]byte("a DPoP proof's signing input"))
	sig, err := ecdsa.SignASN1(rand.Reader, k, digest[:])
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime(b)
	for range b.N {
		if !ecdsa.VerifyASN1(&k.PublicKey, digest[:], sig) {
			b.Fatal("does not verify")
		}
	}
	reportCPU(b, cpu)
}

// cpuTime is the CPU time this process has used (user and system, GC
// included). On a machine shared with other work, ns/op counts the time
// the benchmark waited for a core; cpu-ns/op, what reportCPU reports, does
// not, which makes the two benchmarks comparable on a loaded machine
// (run them with -cpu 1, so that the process's time is the benchmark's).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

// TestVerifyAllocations: with its header kept, a proof costs a handful of
// allocations beyond those of crypto/ecdsa's verify: the decoded claims
// and signature, the jti, the digest and DER signature handed to
// crypto/ecdsa, and the replay key. Garbage is CPU too, at every Check.
func TestVerifyAllocations(t *testing.T) {
	clock := testkit.NewClockAt(t0)
	v, err := dpop.NewVerifier(dpop.Options{Replay: dpop.NewMemoryReplay(1000, clock.Now), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{clock: clock}
	k := newKey(t, "ES256")
	const runs = 100
	proofs := make([]dpop.Proof, runs+2)
	for i := range proofs {
		proofs[i] = dpop.Proof{Header: k.proof(t, k.header(), f.claims()), Method: testMethod, URI: testURI, AccessToken: testToken}
	}
	ctx := t.Context()
	if _, err := v.Verify(ctx, proofs[runs+1]); err != nil { // keeps the header
		t.Fatal(err)
	}
	i := 0
	got := testing.AllocsPerRun(runs, func() {
		if _, err := v.Verify(ctx, proofs[i]); err != nil {
			t.Fatal(err)
		}
		i++
	})

	// The floor: the signature check a kept key's proof gets.
	pub := k.priv.(*ecdsa.PrivateKey)
	digest := sha256.Sum256([]byte("a DPoP proof's signing input"))
	r, s, err := ecdsa.Sign(rand.Reader, pub, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, p256sig.SignatureSize)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	floor := testing.AllocsPerRun(runs, func() { p256sig.Verify(&pub.PublicKey, digest[:], sig) })
	t.Logf("%v allocations per Verify, %v per p256sig.Verify", got, floor)
	const extra = 4
	if got > floor+extra {
		t.Fatalf("%v allocations per Verify; the signature check alone %v, want at most %d more", got, floor, extra)
	}
}
