package dpop_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/dpop"
)

// replica is one gateway replica: its own Redis client, in-process tier
// and verifier, sharing the fleet's Redis and clock.
type replica struct {
	v *dpop.Verifier
}

func newReplica(t *testing.T, addr string, clock *testkit.Clock) *replica {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr: addr,
		// As the gateway's client: no retries, deadlines from the context.
		MaxRetries: -1, ContextTimeoutEnabled: true,
		DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
	})
	t.Cleanup(func() { _ = c.Close() })
	v, err := dpop.NewVerifier(dpop.Options{
		Replay: dpop.NewRedisReplay(c, dpop.NewMemoryReplay(1024, clock.Now)),
		Now:    clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &replica{v: v}
}

func (r *replica) verify(ctx context.Context, proof string) error {
	_, err := r.v.Verify(ctx, dpop.Proof{Header: proof, Method: testMethod, URI: testURI, AccessToken: testToken})
	return err
}

// redisKey is the key a proof is remembered under, computed here from the
// documented scheme: prefix + hex SHA-256(thumbprint ‖ jti).
func redisKey(jkt, jti string) string {
	h := sha256.Sum256([]byte(jkt + jti))
	return dpop.RedisKeyPrefix + hex.EncodeToString(h[:])
}

// A proof accepted by one replica is a replay at another; Redis keeps it
// for MaxAge + Leeway.
func TestRedisReplayAcrossReplicas(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	clock := testkit.NewClockAt(t0)
	a, b := newReplica(t, srv.Addr(), clock), newReplica(t, srv.Addr(), clock)
	f := &fixture{clock: clock}
	k := newKey(t, "ES256")
	c := f.claims()
	p := k.proof(t, k.header(), c)
	ctx := t.Context()

	if err := a.verify(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := b.verify(ctx, p); !errors.Is(err, dpop.ErrInvalidProof) || !strings.Contains(err.Error(), "replayed") {
		t.Fatalf("the proof at the second replica: %v; want a replay", err)
	}
	pttl, err := redistest.Do(srv.Addr(), "PTTL", redisKey(jwxThumbprint(t, k.jwk()), c["jti"].(string)))
	if err != nil {
		t.Fatal(err)
	}
	if ms, _ := pttl.(int64); ms <= 0 || ms > (dpop.DefaultMaxAge+dpop.DefaultLeeway).Milliseconds() {
		t.Fatalf("PTTL %v; want the key to live at most MaxAge+Leeway", pttl)
	}
}

// Of the same proof sent to two replicas at once, exactly one accepts it.
func TestRedisReplayRace(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	clock := testkit.NewClockAt(t0)
	replicas := []*replica{newReplica(t, srv.Addr(), clock), newReplica(t, srv.Addr(), clock)}
	f := &fixture{clock: clock}
	k := newKey(t, "ES256")
	p := k.proof(t, k.header(), f.claims())
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = replicas[i%2].verify(t.Context(), p) })
	}
	wg.Wait()
	accepted := 0
	for _, err := range errs {
		switch {
		case err == nil:
			accepted++
		case !strings.Contains(err.Error(), "replayed"):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if accepted != 1 {
		t.Fatalf("%d of %d accepted; want exactly 1", accepted, n)
	}
}

// With Redis down, a new proof is refused with ErrUnavailable, never
// accepted unchecked; a proof this replica has seen is still a replay,
// answered by the in-process tier. A proof refused for Redis being down
// is not held against the client: once Redis is back, the same proof is
// accepted (once).
func TestRedisReplayUnavailable(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	clock := testkit.NewClockAt(t0)
	a, b := newReplica(t, srv.Addr(), clock), newReplica(t, srv.Addr(), clock)
	f := &fixture{clock: clock}
	k := newKey(t, "ES256")
	ctx := t.Context()
	seen := k.proof(t, k.header(), f.claims())
	if err := a.verify(ctx, seen); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	fresh := k.proof(t, k.header(), f.claims())
	for _, r := range []*replica{a, b} {
		if err := r.verify(ctx, fresh); !errors.Is(err, dpop.ErrUnavailable) || errors.Is(err, dpop.ErrInvalidProof) {
			t.Fatalf("a new proof with Redis down: %v; want ErrUnavailable", err)
		}
	}
	if err := a.verify(ctx, seen); !errors.Is(err, dpop.ErrInvalidProof) || !strings.Contains(err.Error(), "replayed") {
		t.Fatalf("a seen proof with Redis down: %v; want a replay from the local tier", err)
	}

	srv.Restart() // empty: no persistence
	if err := b.verify(ctx, fresh); err != nil {
		t.Fatalf("the refused proof, Redis back: %v", err)
	}
	if err := a.verify(ctx, fresh); !errors.Is(err, dpop.ErrInvalidProof) {
		t.Fatalf("the same proof at the other replica: %v; want a replay", err)
	}
}

// A Redis that stops answering (frozen) is ErrUnavailable once the
// request's context ends: a slow store never means an accepted proof.
func TestRedisReplayFrozen(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	clock := testkit.NewClockAt(t0)
	a := newReplica(t, srv.Addr(), clock)
	f := &fixture{clock: clock}
	k := newKey(t, "ES256")
	if err := a.verify(t.Context(), k.proof(t, k.header(), f.claims())); err != nil {
		t.Fatal(err) // connected
	}
	srv.Freeze()
	t.Cleanup(srv.Thaw)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := a.verify(ctx, k.proof(t, k.header(), f.claims())); !errors.Is(err, dpop.ErrUnavailable) {
		t.Fatalf("Redis frozen: %v; want ErrUnavailable", err)
	}
}
