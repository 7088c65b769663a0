package revocation_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/revocation"
	"github.com/extauthz/extauthz/pkg/token"
)

// waitGuard bounds how long a test waits for what should happen promptly
// (a message, a reconnection): a bug ends the test with a message instead
// of hanging it. It is no assertion about speed.
const waitGuard = 30 * time.Second

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitGuard)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const retention = 25 * time.Hour

// observed records what a replica's Store reports.
type observed struct {
	mu                 sync.Mutex
	revocations, lives []string
	delays             []time.Duration
	refused            int
}

func (o *observed) Revocation(source string) {
	o.mu.Lock()
	o.revocations = append(o.revocations, source)
	o.mu.Unlock()
}
func (o *observed) WatermarkLive(source string, d time.Duration) {
	o.mu.Lock()
	o.lives, o.delays = append(o.lives, source), append(o.delays, d)
	o.mu.Unlock()
}
func (o *observed) RefusedByWatermark() { o.mu.Lock(); o.refused++; o.mu.Unlock() }

// replica is one gateway's Store: its own Redis client, sharing the
// fleet's Redis and clock.
type replica struct {
	*revocation.Store
	obs *observed
	log *testkit.LockedBuffer
}

// newClient is a client as the gateway builds it (no retries, deadlines
// from the context), with timeouts that a loaded machine meets.
func newClient(t *testing.T, addr string) redis.UniversalClient {
	t.Helper()
	c, err := cache.NewRedisClient(cache.RedisClientOptions{URL: "redis://" + addr, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// startReplica builds a Store on Redis at addr (none when ""), loads what
// Redis holds, and runs it until the test ends.
func startReplica(t *testing.T, addr string, clock *testkit.Clock) *replica {
	t.Helper()
	r := &replica{obs: &observed{}, log: &testkit.LockedBuffer{}}
	o := revocation.StoreOptions{Retention: retention, Now: clock.Now, Observer: r.obs,
		Logger: slog.New(slog.NewJSONHandler(r.log, nil))}
	if addr != "" {
		o.Redis = newClient(t, addr)
	}
	var err error
	if r.Store, err = revocation.NewStore(o); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// waitSubscribers waits until n replicas follow the channel.
func waitSubscribers(t *testing.T, addr string, n int64) {
	t.Helper()
	poll(t, "subscribers", func() bool {
		reply, err := redistest.Do(addr, "PUBSUB", "NUMSUB", revocation.DefaultChannel)
		kv, _ := reply.([]any)
		return err == nil && len(kv) == 2 && kv[1] == n
	})
}

// waitFollowing waits until every replica reads the channel's messages:
// past its subscription's confirmation, on which it reads the whole set
// from Redis before it reads any message. A watermark stored while that
// read is still to come would be loaded by it, not received live. An
// announcement no replica can decode marks the point: each logs it once
// it reads messages.
func waitFollowing(t *testing.T, addr string, replicas ...*replica) {
	t.Helper()
	if _, err := redistest.Do(addr, "PUBLISH", revocation.DefaultChannel, "not a watermark"); err != nil {
		t.Fatal(err)
	}
	for i, r := range replicas {
		poll(t, fmt.Sprintf("replica %d reading messages", i), func() bool {
			return strings.Contains(r.log.String(), "revocation announcement ignored")
		})
	}
}

var t0 = time.Unix(1_800_000_000, 0)

// token of sub issued at iat.
func tok(sub string, iat time.Time, sid string) *token.Claims {
	return &token.Claims{Subject: sub, IssuedAt: iat.Unix(), SessionID: sid, Grant: &token.Grant{Issuer: "https://as.example", ClientID: "app"}}
}

func TestStoreAcrossReplicas(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	clock := testkit.NewClockAt(t0)
	a, b := startReplica(t, srv.Addr(), clock), startReplica(t, srv.Addr(), clock)
	waitSubscribers(t, srv.Addr(), 2)
	// B must learn of the revocation live: a watermark stored before B's
	// read on confirmation would be loaded, and not counted live.
	waitFollowing(t, srv.Addr(), a, b)

	alice, bob := tok("alice", t0.Add(-time.Minute), "s-1"), tok("bob", t0.Add(-time.Minute), "s-2")
	eventTime := t0.Add(-2 * time.Second)
	err := a.Revoke(t.Context(), revocation.Watermark{Subject: "alice", Source: "admin", Event: "admin", EventTime: eventTime})
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if !a.Revoked(alice) {
		t.Fatal("not revoked on the replica that revoked, once Revoke returned")
	}
	poll(t, "alice revoked on B", func() bool { return b.Revoked(alice) })
	if a.Revoked(bob) || b.Revoked(bob) {
		t.Fatal("bob revoked too")
	}
	if later := tok("alice", t0.Add(time.Second), ""); b.Revoked(later) {
		t.Fatal("a token issued after Before revoked")
	}

	t.Run("observed", func(t *testing.T) {
		a.obs.mu.Lock()
		defer a.obs.mu.Unlock()
		if len(a.obs.revocations) != 1 || a.obs.revocations[0] != "admin" {
			t.Errorf("A counted revocations %v", a.obs.revocations)
		}
		if len(a.obs.delays) != 1 || a.obs.delays[0] != 2*time.Second {
			t.Errorf("A's delays %v, want [2s] (the fake clock stands still)", a.obs.delays)
		}
		b.obs.mu.Lock()
		defer b.obs.mu.Unlock()
		if len(b.obs.revocations) != 0 || len(b.obs.delays) != 1 || b.obs.lives[0] != "admin" {
			t.Errorf("B counted revocations %v, live %v %v", b.obs.revocations, b.obs.lives, b.obs.delays)
		}
		if b.obs.refused == 0 {
			t.Error("B counted no token refused")
		}
	})

	t.Run("the audit line", func(t *testing.T) {
		line := a.log.String()
		for _, want := range []string{`"msg":"revocation"`, `"log":"audit"`, `"subject":"alice"`, `"source":"admin"`, `"held":"fleet"`} {
			if !strings.Contains(line, want) {
				t.Errorf("audit line lacks %s: %s", want, line)
			}
		}
		if strings.Contains(b.log.String(), `"msg":"revocation"`) {
			t.Error("B wrote an audit line for a revocation made through A")
		}
	})

	t.Run("a session, then a replica started later loads both", func(t *testing.T) {
		if err := b.Revoke(t.Context(), revocation.Watermark{SessionID: "s-2", Before: t0, Source: "ssf:https://as.example"}); err != nil {
			t.Fatal(err)
		}
		poll(t, "bob's session revoked on A", func() bool { return a.Revoked(bob) })
		if strings.Contains(b.log.String(), "s-2") {
			t.Error("the audit line names the session id")
		}
		c := startReplica(t, srv.Addr(), clock)
		if !c.Revoked(alice) || !c.Revoked(bob) || c.Len() != 2 {
			t.Fatalf("the new replica holds %d: alice %v, bob %v", c.Len(), c.Revoked(alice), c.Revoked(bob))
		}
	})
}

// A replica whose subscription broke reads the whole set once it is back:
// what was announced meanwhile (here, written straight into Redis, as if
// the announcement were lost) is caught up with.
func TestStoreCatchesUpAfterResubscribing(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	clock := testkit.NewClockAt(t0)
	b := startReplica(t, srv.Addr(), clock)
	waitSubscribers(t, srv.Addr(), 1)

	// Another replica stores a watermark, and its announcement never
	// reaches b.
	other, err := revocation.NewStore(revocation.StoreOptions{Redis: newClient(t, srv.Addr()), Retention: retention, Now: clock.Now,
		Channel: "extauthz:v1:nobody-listens"})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Revoke(t.Context(), revocation.Watermark{Subject: "carol", Before: t0}); err != nil {
		t.Fatal(err)
	}
	carol := tok("carol", t0.Add(-time.Hour), "")
	if b.Revoked(carol) {
		t.Fatal("b has it already: this test needs it missed")
	}
	// Redis drops the subscription's connection; b reconnects.
	if _, err := redistest.Do(srv.Addr(), "CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
		t.Fatal(err)
	}
	poll(t, "carol revoked on b after it resubscribed", func() bool { return b.Revoked(carol) })
}

func TestStoreExpiry(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	clock := testkit.NewClockAt(t0)
	a := startReplica(t, srv.Addr(), clock)
	ctx := t.Context()
	if err := a.Revoke(ctx, revocation.Watermark{Subject: "alice", Before: t0}); err != nil {
		t.Fatal(err)
	}
	if err := a.Revoke(ctx, revocation.Watermark{Subject: "bob", Before: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	zcard := func() int64 {
		n, err := redistest.Do(srv.Addr(), "ZCARD", revocation.DefaultKey)
		if err != nil {
			t.Fatal(err)
		}
		return n.(int64)
	}
	alice := tok("alice", t0.Add(-time.Minute), "")
	clock.Advance(retention - time.Millisecond)
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !a.Revoked(alice) || a.Len() != 2 || zcard() != 2 {
		t.Fatalf("before the expiry: revoked %v, held %d, in Redis %d", a.Revoked(alice), a.Len(), zcard())
	}
	clock.Advance(time.Millisecond)
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if a.Revoked(alice) || a.Len() != 1 || zcard() != 1 {
		t.Fatalf("at the expiry: revoked %v, held %d, in Redis %d", a.Revoked(alice), a.Len(), zcard())
	}
	// A replica started now does not load it either.
	if c := startReplica(t, srv.Addr(), clock); c.Len() != 1 {
		t.Fatalf("a new replica holds %d", c.Len())
	}
}

func TestStoreWithoutRedis(t *testing.T) {
	t.Parallel()
	clock := testkit.NewClockAt(t0)
	a := startReplica(t, "", clock)
	err := a.Revoke(t.Context(), revocation.Watermark{Subject: "alice", Source: "admin"})
	if !errors.Is(err, revocation.ErrNoSharedTier) {
		t.Fatalf("Revoke = %v, want ErrNoSharedTier", err)
	}
	if !a.Revoked(tok("alice", t0, "")) || a.Shared() {
		t.Fatal("not held here")
	}
	if err := a.Revoke(t.Context(), revocation.Watermark{Before: t0}); !errors.Is(err, revocation.ErrNoSelector) {
		t.Fatalf("no selector: %v", err)
	}
	clock.Advance(retention)
	if err := a.Sync(t.Context()); err != nil || a.Len() != 0 {
		t.Fatalf("Sync = %v, held %d after the retention", err, a.Len())
	}
}

// With Redis configured and down, a watermark holds here and Revoke
// fails, so that the sender retries; once Redis is back, a retry reaches
// the other replicas.
func TestStoreRedisDown(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	clock := testkit.NewClockAt(t0)
	a := startReplica(t, srv.Addr(), clock)
	srv.Stop()
	w := revocation.Watermark{Subject: "alice", Before: t0, Source: "admin"}
	err := a.Revoke(t.Context(), w)
	if err == nil || errors.Is(err, revocation.ErrNoSharedTier) {
		t.Fatalf("Revoke = %v, want a Redis failure", err)
	}
	alice := tok("alice", t0, "")
	if !a.Revoked(alice) {
		t.Fatal("not held here")
	}
	if !strings.Contains(a.log.String(), `"held":"replica, Redis failed"`) {
		t.Errorf("audit line: %s", a.log.String())
	}
	srv.Restart()
	b := startReplica(t, srv.Addr(), clock)
	waitSubscribers(t, srv.Addr(), 2)
	poll(t, "the retry stored", func() bool { return a.Revoke(t.Context(), w) == nil })
	poll(t, "alice revoked on b", func() bool { return b.Revoked(alice) })
}

// Redis's contents are not trusted to be well formed: what cannot be read
// is skipped, the rest held; a member a later release writes with a
// selector this one does not know is held without it (revoking more
// tokens, never fewer).
func TestStoreReadsWhatItCan(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	clock := testkit.NewClockAt(t0)
	score := func(d time.Duration) string { return fmt.Sprint(t0.Add(d).UnixMilli()) }
	for _, m := range [][2]string{
		{score(time.Hour), "not json"},
		{score(time.Hour), `{"before":1800000000000,"expires":1800003600000}`}, // no selector
		{score(time.Hour), fmt.Sprintf(`{"sub":"dave","tenant":"acme","before":%d,"expires":%s}`, t0.UnixMilli(), score(time.Hour))},
		{score(-time.Hour), fmt.Sprintf(`{"sub":"erin","before":%d,"expires":%s}`, t0.UnixMilli(), score(-time.Hour))}, // expired
	} {
		if _, err := redistest.Do(srv.Addr(), "ZADD", revocation.DefaultKey, m[0], m[1]); err != nil {
			t.Fatal(err)
		}
	}
	a := startReplica(t, srv.Addr(), clock)
	if !a.Revoked(tok("dave", t0, "")) || a.Revoked(tok("erin", t0, "")) || a.Len() != 1 {
		t.Fatalf("held %d: dave %v, erin %v", a.Len(), a.Revoked(tok("dave", t0, "")), a.Revoked(tok("erin", t0, "")))
	}
	if !strings.Contains(a.log.String(), `"count":2`) {
		t.Errorf("the unreadable entries were not reported: %s", a.log.String())
	}
}
