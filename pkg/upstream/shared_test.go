package upstream_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/upstream"
)

// redisValues returns every key of the Redis at addr with its value.
func redisValues(t *testing.T, addr string) map[string]string {
	t.Helper()
	reply, err := redistest.Do(addr, "KEYS", "*")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range reply.([]any) {
		v, err := redistest.Do(addr, "GET", k.(string))
		if err != nil {
			t.Fatal(err)
		}
		s, _ := v.(string)
		out[k.(string)] = s
	}
	return out
}

// TestNoCredentialInRedisInClear: a dump of Redis yields neither the
// minted tokens nor the incoming ones (nor their hashes' hex as values).
func TestNoCredentialInRedisInClear(t *testing.T) {
	srv := redistest.Start(t)
	e := newEnv(t)
	r := e.sharedStore(srv.Addr(), testKey)
	m := e.minter(r.store, nil)
	cc := e.minter(r.store, func(o *upstream.Options) { o.Name, o.Mode = "cc", upstream.ModeClientCredentials })
	var subjects []upstream.Subject
	for i := range 5 {
		s := e.subject(fmt.Sprint("user", i), time.Hour)
		subjects = append(subjects, s)
		mustToken(t, m, s)
	}
	mustToken(t, cc, upstream.Subject{})
	vals := redisValues(t, srv.Addr())
	if len(vals) != 6 {
		t.Fatalf("Redis holds %d keys; want 6 entries: %v", len(vals), vals)
	}
	secrets := e.as.issuedTokens()
	for _, s := range subjects {
		secrets = append(secrets, s.Raw)
	}
	for k, v := range vals {
		if !strings.HasPrefix(k, "extauthz:v1:upstream:") {
			t.Errorf("unexpected key %q", k)
		}
		for _, s := range secrets {
			if strings.Contains(v, s) || strings.Contains(k, s) {
				t.Errorf("Redis key %q holds %q in the clear", k, s)
			}
		}
	}
}

// TestCopiedCiphertextIsAMiss: someone who can write to Redis copies
// alice's sealed entry under bob's key. Bob must not receive alice's
// credential: a fresh replica reading it finds the wrong key inside, and
// mints bob's own.
func TestCopiedCiphertextIsAMiss(t *testing.T) {
	srv := redistest.Start(t)
	e := newEnv(t)
	e.as.reply(func(_ int64, form url.Values) (int, http.Header, string) {
		return tokenAnswer("for-"+form.Get("subject_token"), 600)
	})
	a := e.sharedStore(srv.Addr(), testKey)
	alice, bob := e.subject("alice", time.Hour), e.subject("bob", time.Hour)
	mustToken(t, e.minter(a.store, nil), alice)
	mustToken(t, e.minter(a.store, nil), bob)
	vals := redisValues(t, srv.Addr())
	if len(vals) != 2 {
		t.Fatalf("want 2 entries, have %d", len(vals))
	}
	var keys []string
	for k := range vals {
		keys = append(keys, k)
	}
	// Swap the two entries.
	for i, k := range keys {
		if _, err := redistest.Do(srv.Addr(), "SET", k, vals[keys[1-i]], "PX", "3600000"); err != nil {
			t.Fatal(err)
		}
	}
	b := e.sharedStore(srv.Addr(), testKey)
	m := e.minter(b.store, nil)
	for _, s := range []upstream.Subject{alice, bob} {
		c := mustToken(t, m, s)
		if c.Token != "for-"+s.Raw || c.Source != upstream.SourceMinted {
			t.Fatalf("got %+v; want a fresh mint of the subject's own credential", c)
		}
	}
}

// TestOtherKeyIsAMiss: entries sealed under another key (a rotation) do
// not decrypt: a miss, and one new mint.
func TestOtherKeyIsAMiss(t *testing.T) {
	srv := redistest.Start(t)
	e := newEnv(t)
	a := e.sharedStore(srv.Addr(), testKey)
	s := e.subject("alice", time.Hour)
	first := mustToken(t, e.minter(a.store, nil), s)
	rotated, err := upstream.DeriveKey([]byte("the next operator secret, also of 32+ bytes"))
	if err != nil {
		t.Fatal(err)
	}
	b := e.sharedStore(srv.Addr(), rotated)
	c := mustToken(t, e.minter(b.store, nil), s)
	if c.Source != upstream.SourceMinted || c.Token == first.Token {
		t.Fatalf("after a key rotation: %+v; want a new mint", c)
	}
	// And the same key reads the same entries.
	same := e.sharedStore(srv.Addr(), rotated)
	if c2 := mustToken(t, e.minter(same.store, nil), s); c2.Source != upstream.SourceRedis || c2.Token != c.Token {
		t.Fatalf("a replica with the same key: %+v; want the shared entry", c2)
	}
}

// TestOneMintAcrossTheFleet: 50 concurrent first requests for one subject,
// spread over two replicas, make one token endpoint call.
func TestOneMintAcrossTheFleet(t *testing.T) {
	srv := redistest.Start(t)
	e := newEnv(t)
	a, b := e.sharedStore(srv.Addr(), testKey), e.sharedStore(srv.Addr(), testKey)
	ma, mb := e.minter(a.store, nil), e.minter(b.store, nil)
	arrived, release := e.as.holdAnswers(t)
	s := e.subject("alice", time.Hour)
	var wg sync.WaitGroup
	creds := make(chan upstream.Credential, 50)
	for i := range 50 {
		m := ma
		if i%2 == 1 {
			m = mb
		}
		wg.Go(func() {
			c, err := m.Token(context.Background(), s)
			if err != nil {
				t.Errorf("Token: %v", err)
			}
			creds <- c
		})
	}
	<-arrived
	// The mint is held at the endpoint until both replicas have tried
	// the lock: one holds it, the other is waiting for its result.
	waitFor(t, "both replicas try the lock", func() bool { return a.locker.tries.Load() >= 1 && b.locker.tries.Load() >= 1 })
	release()
	wg.Wait()
	close(creds)
	for c := range creds {
		if c.Token != "minted-1" {
			t.Fatalf("a request got %+v; want minted-1", c)
		}
	}
	if n := e.as.calls.Load(); n != 1 {
		t.Fatalf("token endpoint called %d times; want 1", n)
	}
}

// TestWaiterTakesOverAFreedLock: a replica waiting on another's lock
// mints itself once the lock is gone without a result (the holder died).
func TestWaiterTakesOverAFreedLock(t *testing.T) {
	srv := redistest.Start(t)
	e := newEnv(t)
	r := e.sharedStore(srv.Addr(), testKey)
	m := e.minter(r.store, nil)
	s := e.subject("alice", time.Hour)
	lock := lockKeyOf(t, e, srv.Addr(), m, r, s)
	if _, err := redistest.Do(srv.Addr(), "SET", lock, "someone else", "PX", "60000"); err != nil {
		t.Fatal(err)
	}
	done := make(chan upstream.Credential, 1)
	go func() { done <- mustTokenNoFatal(t, m, s) }()
	waitFor(t, "the replica waits on the lock", func() bool { return r.locker.tries.Load() >= 2 })
	if n := e.as.calls.Load(); n != 0 {
		t.Fatalf("minted while the lock was held (%d calls)", n)
	}
	if _, err := redistest.Do(srv.Addr(), "DEL", lock); err != nil {
		t.Fatal(err)
	}
	if c := <-done; c.Source != upstream.SourceMinted {
		t.Fatalf("Token = %+v; want its own mint", c)
	}
	if n := e.as.calls.Load(); n != 1 {
		t.Fatalf("%d calls; want 1", n)
	}
	// The lock was released after the mint.
	if v, err := redistest.Do(srv.Addr(), "EXISTS", lock); err != nil || v != int64(0) {
		t.Fatalf("lock still held: %v %v", v, err)
	}
}

// TestWaiterGivesUp: a lock held without a result for Timeout + 1s is
// ErrUnavailable, with no call.
func TestWaiterGivesUp(t *testing.T) {
	srv := redistest.Start(t)
	e := newEnv(t)
	r := e.sharedStore(srv.Addr(), testKey)
	m := e.minter(r.store, func(o *upstream.Options) { o.Timeout = 10 * time.Millisecond })
	s := e.subject("alice", time.Hour)
	lock := lockKeyOf(t, e, srv.Addr(), m, r, s)
	if _, err := redistest.Do(srv.Addr(), "SET", lock, "someone else", "PX", "60000"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Token(context.Background(), s); !isUnavailable(err) {
		t.Fatalf("Token = %v; want ErrUnavailable", err)
	}
	if n := e.as.calls.Load(); n != 0 {
		t.Fatalf("%d calls; want none", n)
	}
}

// TestCallerDeadlineBoundsTheWait: the caller's own deadline ends its
// wait, whatever the lock's.
func TestCallerDeadlineBoundsTheWait(t *testing.T) {
	srv := redistest.Start(t)
	e := newEnv(t)
	r := e.sharedStore(srv.Addr(), testKey)
	m := e.minter(r.store, nil)
	s := e.subject("alice", time.Hour)
	lock := lockKeyOf(t, e, srv.Addr(), m, r, s)
	if _, err := redistest.Do(srv.Addr(), "SET", lock, "someone else", "PX", "60000"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		waitFor(t, "the replica waits on the lock", func() bool { return r.locker.tries.Load() >= 2 })
		cancel()
	}()
	if _, err := m.Token(ctx, s); !isUnavailable(err) || !errors.Is(err, upstream.ErrUnavailable) {
		t.Fatalf("Token = %v; want ErrUnavailable", err)
	}
}

// lockKeyOf finds the fleet lock key of s's credential: it mints once,
// reads the entry's name from Redis, forgets the entry and returns the
// lock's name for it.
func lockKeyOf(t *testing.T, e *env, addr string, m *upstream.Minter, r *replica, s upstream.Subject) string {
	t.Helper()
	before, calls := r.locker.tries.Load(), e.as.calls.Load()
	mustToken(t, m, s)
	vals := redisValues(t, addr)
	if len(vals) != 1 {
		t.Fatalf("want one entry, have %d", len(vals))
	}
	var entry string
	for k := range vals {
		entry = k
	}
	if err := m.Forget(context.Background(), s.Hash); err != nil {
		t.Fatal(err)
	}
	r.locker.tries.Store(before)
	e.as.calls.Store(calls)
	hexHash := entry[strings.LastIndexByte(entry, ':')+1:]
	return "extauthz:v1:upstream-lock:" + hexHash
}

func mustTokenNoFatal(t *testing.T, m *upstream.Minter, s upstream.Subject) upstream.Credential {
	c, err := m.Token(context.Background(), s)
	if err != nil {
		t.Errorf("Token: %v", err)
	}
	return c
}

// TestRedisDownMintsWithoutLock: without Redis there is no lock and no
// shared tier, and still a credential.
func TestRedisDownMintsWithoutLock(t *testing.T) {
	srv := redistest.Start(t)
	e := newEnv(t)
	r := e.sharedStore(srv.Addr(), testKey)
	m := e.minter(r.store, nil)
	srv.Stop()
	s := e.subject("alice", time.Hour)
	if c := mustToken(t, m, s); c.Source != upstream.SourceMinted {
		t.Fatalf("Token = %+v", c)
	}
	if c := mustToken(t, m, s); c.Source != upstream.SourceLocal {
		t.Fatalf("second Token = %+v; want the local copy", c)
	}
}

// TestRefusalSharedAcrossReplicas: a refusal one replica received is the
// answer at the others too, without a call.
func TestRefusalSharedAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	e := newEnv(t)
	e.as.reply(fixed(400, `{"error":"access_denied"}`))
	a, b := e.sharedStore(srv.Addr(), testKey), e.sharedStore(srv.Addr(), testKey)
	s := e.subject("alice", time.Hour)
	if _, err := e.minter(a.store, nil).Token(context.Background(), s); !errors.Is(err, upstream.ErrRefused) {
		t.Fatalf("A: %v; want ErrRefused", err)
	}
	if _, err := e.minter(b.store, nil).Token(context.Background(), s); !errors.Is(err, upstream.ErrRefused) || !strings.Contains(err.Error(), "access_denied") {
		t.Fatalf("B: %v; want the shared refusal", err)
	}
	if n := e.as.calls.Load(); n != 1 {
		t.Fatalf("%d calls; want 1", n)
	}
}

// TestForgetReachesEveryReplica: replica A forgets alice's credential;
// replica B, which held a copy, mints anew.
func TestForgetReachesEveryReplica(t *testing.T) {
	srv := redistest.Start(t)
	e := newEnv(t)
	a, b := e.sharedStore(srv.Addr(), testKey), e.sharedStore(srv.Addr(), testKey)
	ma, mb := e.minter(a.store, nil), e.minter(b.store, nil)
	waitFor(t, "both replicas follow the channel", func() bool {
		reply, err := redistest.Do(srv.Addr(), "PUBSUB", "NUMSUB", upstream.Channel)
		arr, ok := reply.([]any)
		return err == nil && ok && len(arr) == 2 && arr[1] == int64(2)
	})
	s := e.subject("alice", time.Hour)
	mustToken(t, ma, s)
	if c := mustToken(t, mb, s); c.Source != upstream.SourceRedis {
		t.Fatalf("B: %s; want the shared entry", c.Source)
	}
	if c := mustToken(t, mb, s); c.Source != upstream.SourceLocal {
		t.Fatalf("B again: %s; want its local copy", c.Source)
	}
	if err := ma.Forget(context.Background(), s.Hash); err != nil {
		t.Fatalf("Forget: %v", err)
	}
	if c := mustToken(t, mb, s); c.Source != upstream.SourceMinted {
		t.Fatalf("B after A's Forget: %s; want a new mint", c.Source)
	}
	if n := e.as.calls.Load(); n != 2 {
		t.Fatalf("%d calls; want 2", n)
	}
}

func TestNewStoreOptions(t *testing.T) {
	srv := redistest.Start(t)
	e := newEnv(t)
	r := e.sharedStore(srv.Addr(), testKey)
	if _, err := upstream.NewStore(upstream.StoreOptions{Locker: r.locker}); err == nil {
		t.Error("a lock without a shared tier was accepted")
	}
	shared := cache.NewRedis(r.client, cache.RedisOptions{})
	for _, key := range [][]byte{nil, make([]byte, 16)} {
		if _, err := upstream.NewStore(upstream.StoreOptions{Shared: shared, Key: key}); err == nil {
			t.Errorf("a shared tier with a %d-byte key was accepted", len(key))
		}
	}
	if _, err := upstream.DeriveKey(make([]byte, 31)); err == nil {
		t.Error("a 31-byte secret was accepted")
	}
	k1, err1 := upstream.DeriveKey([]byte(strings.Repeat("s", 32)))
	k2, err2 := upstream.DeriveKey([]byte(strings.Repeat("s", 32)))
	k3, err3 := upstream.DeriveKey([]byte(strings.Repeat("t", 32)))
	if err := errors.Join(err1, err2, err3); err != nil || len(k1) != 32 || string(k1) != string(k2) || string(k1) == string(k3) {
		t.Errorf("DeriveKey: %x %x %x %v; want 32 bytes, equal for equal secrets only", k1, k2, k3, err)
	}
}

// TestReplayedExpiredEntryIsAMiss: someone who can write to Redis puts an
// expired entry back with a fresh envelope (Redis's own expiry is outside
// the sealed entry). The expiry sealed inside decides: a miss.
func TestReplayedExpiredEntryIsAMiss(t *testing.T) {
	srv := redistest.Start(t)
	e := newEnv(t)
	a := e.sharedStore(srv.Addr(), testKey)
	s := e.subject("alice", 24*time.Hour)
	first := mustToken(t, e.minter(a.store, nil), s)
	vals := redisValues(t, srv.Addr())
	if len(vals) != 1 {
		t.Fatalf("want one entry, have %d", len(vals))
	}
	e.clock.Advance(usedUntil)
	for k, v := range vals {
		// The envelope: a version byte, then the expiry in Unix ms.
		env := []byte(v)
		binary.BigEndian.PutUint64(env[1:9], uint64(e.clock.Now().Add(time.Hour).UnixMilli()))
		if _, err := redistest.Do(srv.Addr(), "SET", k, string(env), "PX", "3600000"); err != nil {
			t.Fatal(err)
		}
	}
	b := e.sharedStore(srv.Addr(), testKey)
	c := mustToken(t, e.minter(b.store, nil), s)
	if c.Token == first.Token || c.Source != upstream.SourceMinted {
		t.Fatalf("got %+v; want a new mint, not the replayed entry", c)
	}
}
