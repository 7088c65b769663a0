package oauthflow

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/cache"
)

// facadeHarness is one facade store backend under test: a store on a fake clock (which decides
// the sealed expiries in both backends, and the in-process backend's too), and what a test
// needs to look behind it.
type facadeHarness struct {
	t      *testing.T
	key    Key
	o      FacadeStoreOptions
	s      *FacadeStore
	server *redistest.Server     // nil in process
	client redis.UniversalClient // nil in process
	clock  *testkit.Clock
}

// facadeBoth runs f as parallel subtests "memory" and "redis", each with its own backend (a
// redis-server of the test's own).
func facadeBoth(t *testing.T, o FacadeStoreOptions, f func(t *testing.T, h *facadeHarness)) {
	t.Helper()
	for _, kind := range []backendKind{inProcess, inRedis} {
		name := map[backendKind]string{inProcess: "memory", inRedis: "redis"}[kind]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, newFacadeHarness(t, kind, o))
		})
	}
}

func newFacadeHarness(t *testing.T, kind backendKind, o FacadeStoreOptions) *facadeHarness {
	t.Helper()
	h := &facadeHarness{t: t, key: testKey(t, 9), clock: testkit.NewClockAt(clockStart)}
	o.Key, o.Now = h.key, h.clock.Now
	if kind == inRedis {
		h.server = redistest.Start(t)
		c, err := cache.NewRedisClient(cache.RedisClientOptions{URL: "redis://" + h.server.Addr(), Timeout: semanticsTimeout})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		h.client = c
		o.Redis, o.Timeout = c, semanticsTimeout
	}
	h.o = o
	s, err := NewFacadeStore(o)
	if err != nil {
		t.Fatal(err)
	}
	h.s = s
	return h
}

// replica is another store on the same backing state: another gateway replica on the same
// Redis, or, in process, the same memory.
func (h *facadeHarness) replica() *FacadeStore {
	h.t.Helper()
	s, err := NewFacadeStore(h.o)
	if err != nil {
		h.t.Fatal(err)
	}
	if h.client == nil {
		s.b = h.s.b
	}
	return s
}

// raw returns every stored key and value, the client index aside.
func (h *facadeHarness) raw() map[string][]byte {
	h.t.Helper()
	out := map[string][]byte{}
	if h.client != nil {
		ctx := h.t.Context()
		keys, err := h.client.Keys(ctx, "*").Result()
		if err != nil {
			h.t.Fatal(err)
		}
		for _, k := range keys {
			if k == facadeClientIndex {
				continue
			}
			v, err := h.client.Get(ctx, k).Bytes()
			if err != nil {
				h.t.Fatal(err)
			}
			out[k] = v
		}
		return out
	}
	m := h.s.b.(*facadeMemory)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, mp := range []map[string]facadeEntry{m.clients, m.entries} {
		for k, e := range mp {
			out[k] = bytes.Clone(e.val)
		}
	}
	return out
}

// setRaw overwrites the value at a storage key, keeping it alive.
func (h *facadeHarness) setRaw(key string, v []byte) {
	h.t.Helper()
	if h.client != nil {
		if err := h.client.Set(h.t.Context(), key, v, time.Hour).Err(); err != nil {
			h.t.Fatal(err)
		}
		return
	}
	m := h.s.b.(*facadeMemory)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, mp := range []map[string]facadeEntry{m.clients, m.entries} {
		if _, ok := mp[key]; ok {
			mp[key] = facadeEntry{val: v, exp: h.clock.Now().Add(time.Hour)}
			return
		}
	}
	h.t.Fatalf("no entry at %s", key)
}

// pttl is the Redis key's remaining life (Redis only).
func (h *facadeHarness) pttl(key string) time.Duration {
	h.t.Helper()
	d, err := h.client.PTTL(h.t.Context(), key).Result()
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

func sampleClient(t *testing.T) *RegisteredClient {
	t.Helper()
	return &RegisteredClient{
		ClientID:                newID(t),
		ClientName:              "Example MCP client",
		ClientURI:               "https://client.example/",
		RedirectURIs:            []string{"http://127.0.0.1:33418/callback", "https://client.example/cb"},
		GrantTypes:              []string{grantAuthorizationCode, grantRefreshToken},
		ResponseTypes:           []string{responseTypeCode},
		TokenEndpointAuthMethod: authMethodNone,
		Scope:                   "mcp:tools",
		IssuedAt:                clockStart,
	}
}

func equalClient(a, b *RegisteredClient) bool {
	return fmt.Sprintf("%+v", *a) == fmt.Sprintf("%+v", *b)
}

func TestFacadeStoreOptions(t *testing.T) {
	t.Parallel()
	k := testKey(t, 9)
	for name, o := range map[string]FacadeStoreOptions{
		"no key":            {},
		"negative timeout":  {Key: k, Timeout: -1},
		"short client ttl":  {Key: k, ClientTTL: time.Second},
		"negative max":      {Key: k, MaxClients: -1},
		"idle over max":     {Key: k, RefreshIdleTTL: 48 * time.Hour, RefreshMaxTTL: 24 * time.Hour},
		"short refresh ttl": {Key: k, RefreshIdleTTL: time.Second},
	} {
		if _, err := NewFacadeStore(o); err == nil {
			t.Errorf("%s: NewFacadeStore accepted %+v", name, o)
		}
	}
}

// ---- registered clients ----

func TestFacadeClients(t *testing.T) {
	t.Parallel()
	facadeBoth(t, FacadeStoreOptions{}, func(t *testing.T, h *facadeHarness) {
		ctx := t.Context()
		c := sampleClient(t)
		if err := h.s.RegisterClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		got, ok, err := h.replica().Client(ctx, c.ClientID)
		if err != nil || !ok || !equalClient(got, c) {
			t.Fatalf("Client = %+v, %v, %v; want %+v", got, ok, err, c)
		}
		if err := h.s.RegisterClient(ctx, c); err == nil {
			t.Error("the same client id registered twice")
		}
		for _, id := range []string{"", "short", newID(t), strings.Repeat("a", 65)} {
			if got, ok, err := h.s.Client(ctx, id); ok || err != nil || got != nil {
				t.Errorf("Client(%q) = %+v, %v, %v; want absent", id, got, ok, err)
			}
		}
		if err := h.s.DeleteClient(ctx, c.ClientID); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := h.s.Client(ctx, c.ClientID); ok {
			t.Error("a deleted client is still there")
		}
	})
}

// A client that is used lives on; one that is not expires after ClientTTL.
func TestFacadeClientTTLRefreshedOnUse(t *testing.T) {
	t.Parallel()
	facadeBoth(t, FacadeStoreOptions{ClientTTL: 30 * 24 * time.Hour}, func(t *testing.T, h *facadeHarness) {
		ctx := t.Context()
		used, unused := sampleClient(t), sampleClient(t)
		for _, c := range []*RegisteredClient{used, unused} {
			if err := h.s.RegisterClient(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		if h.client != nil {
			// Redis expires keys by its own clock: shorten the key, then see a use restore it.
			k := clientKey(used.ClientID)
			if err := h.client.PExpire(ctx, k, time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := h.s.Client(ctx, used.ClientID); err != nil || !ok {
				t.Fatalf("Client = %v, %v", ok, err)
			}
			if d := h.pttl(k); d < 29*24*time.Hour {
				t.Errorf("after a use the client has %v left, want ~30 days", d)
			}
			score, err := h.client.ZScore(ctx, facadeClientIndex, k).Result()
			if err != nil || int64(score) < time.Now().Add(29*24*time.Hour).UnixMilli() {
				t.Errorf("the index scores the used client %v (%v), want ~30 days ahead", score, err)
			}
			return
		}
		for range 3 {
			h.clock.Advance(20 * 24 * time.Hour)
			if _, ok, err := h.s.Client(ctx, used.ClientID); err != nil || !ok {
				t.Fatalf("a client used every 20 days expired: %v, %v", ok, err)
			}
		}
		if _, ok, _ := h.s.Client(ctx, unused.ClientID); ok {
			t.Error("a client unused for 60 days is still registered")
		}
	})
}

// MaxClients bounds the live clients, whatever the concurrency, in both backends; a deleted
// or expired client frees its place.
func TestFacadeMaxClients(t *testing.T) {
	t.Parallel()
	facadeBoth(t, FacadeStoreOptions{MaxClients: 5}, func(t *testing.T, h *facadeHarness) {
		ctx := t.Context()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var ok []string
		full := 0
		for range 20 {
			wg.Go(func() {
				c := sampleClient(t)
				err := h.replica().RegisterClient(ctx, c)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ok = append(ok, c.ClientID)
				case errors.Is(err, ErrTooManyClients):
					full++
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if len(ok) != 5 || full != 15 {
			t.Fatalf("%d registered, %d refused as too many; want 5 and 15", len(ok), full)
		}
		if err := h.s.DeleteClient(ctx, ok[0]); err != nil {
			t.Fatal(err)
		}
		if err := h.s.RegisterClient(ctx, sampleClient(t)); err != nil {
			t.Fatalf("after a deletion: %v", err)
		}
		if err := h.s.RegisterClient(ctx, sampleClient(t)); !errors.Is(err, ErrTooManyClients) {
			t.Fatalf("a sixth client: %v, want ErrTooManyClients", err)
		}
		if h.client == nil {
			h.clock.Advance(DefaultClientTTL)
			if err := h.s.RegisterClient(ctx, sampleClient(t)); err != nil {
				t.Fatalf("after every client expired: %v", err)
			}
		}
	})
}

// In Redis, a client that expired no longer counts: the index drops members past their
// expiry, by Redis's clock.
func TestFacadeRedisIndexForgetsExpired(t *testing.T) {
	t.Parallel()
	h := newFacadeHarness(t, inRedis, FacadeStoreOptions{})
	ctx := t.Context()
	b := h.s.b
	if ok, err := b.addClient(ctx, clientKey("a"), []byte("v"), 50*time.Millisecond, 1); err != nil || !ok {
		t.Fatalf("addClient = %v, %v", ok, err)
	}
	if _, err := b.addClient(ctx, clientKey("b"), []byte("v"), time.Minute, 1); !errors.Is(err, ErrTooManyClients) {
		t.Fatalf("a second client with room for one: %v", err)
	}
	deadline := time.Now().Add(eventually)
	for {
		ok, err := b.addClient(ctx, clientKey("b"), []byte("v"), time.Minute, 1)
		if err == nil && ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the expired client still counts after %v: %v, %v", eventually, ok, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := h.client.ZCard(ctx, facadeClientIndex).Val(); n != 1 {
		t.Errorf("the index holds %d members, want 1", n)
	}
}

// The in-process store bounds codes and families with MaxEntries: beyond it, ErrFull.
func TestFacadeMemoryMaxEntries(t *testing.T) {
	t.Parallel()
	h := newFacadeHarness(t, inProcess, FacadeStoreOptions{MaxEntries: 3})
	ctx := t.Context()
	for i := range 3 {
		if _, err := h.s.IssueCode(ctx, sampleCode(t), 0); err != nil {
			t.Fatalf("code %d: %v", i, err)
		}
	}
	if _, err := h.s.IssueCode(ctx, sampleCode(t), 0); !errors.Is(err, ErrFull) {
		t.Fatalf("a fourth code: %v, want ErrFull", err)
	}
	if _, err := h.s.StartFamily(ctx, sampleFamily()); !errors.Is(err, ErrFull) {
		t.Fatalf("a family in a full store: %v, want ErrFull", err)
	}
	h.clock.Advance(MaxCodeTTL + time.Second)
	if _, err := h.s.IssueCode(ctx, sampleCode(t), 0); err != nil {
		t.Fatalf("after the codes expired: %v", err)
	}
}

// Nothing stored names a client id, a code, a refresh token or a family id, or holds the
// provider's refresh token, a redirect URI or the client's name in the clear; a record moved
// under another key, or written with another key, does not open.
func TestFacadeStoredFormRevealsNothing(t *testing.T) {
	t.Parallel()
	facadeBoth(t, FacadeStoreOptions{}, func(t *testing.T, h *facadeHarness) {
		ctx := t.Context()
		c := sampleClient(t)
		if err := h.s.RegisterClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		ac := sampleCode(t)
		code, err := h.s.IssueCode(ctx, ac, 0)
		if err != nil {
			t.Fatal(err)
		}
		f := sampleFamily()
		rt, err := h.s.StartFamily(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		secrets := []string{
			c.ClientID, c.ClientName, c.RedirectURIs[1], code, ac.CodeChallenge, ac.UpstreamRefreshToken,
			ac.Subject, rt, f.ID, f.UpstreamRefreshToken,
		}
		raw := h.raw()
		if len(raw) != 3 {
			t.Fatalf("%d entries stored, want 3", len(raw))
		}
		for k, v := range raw {
			for _, s := range secrets {
				if strings.Contains(k, s) || bytes.Contains(v, []byte(s)) {
					t.Errorf("entry %s shows %q", k, s)
				}
			}
		}

		// A code's sealed record copied over the client's: the client does not open.
		h.setRaw(clientKey(c.ClientID), raw[storageKey(facadeCodePrefix, code)])
		if _, _, err := h.s.Client(ctx, c.ClientID); !errors.Is(err, ErrCorrupt) {
			t.Errorf("a code's record under the client's key: %v, want ErrCorrupt", err)
		}
		// A store with another key opens nothing.
		o := h.o
		o.Key = testKey(t, 10)
		other, err := NewFacadeStore(o)
		if err != nil {
			t.Fatal(err)
		}
		if h.client == nil {
			other.b = h.s.b
		}
		if _, err := other.RedeemCode(ctx, code, CodeRedemption{ClientID: ac.ClientID, RedirectURI: ac.RedirectURI, CodeVerifier: sampleVerifier}); !errors.Is(err, ErrInvalidGrant) {
			t.Errorf("a code under another key: %v, want ErrInvalidGrant", err)
		}
		if _, _, err := other.RotateRefresh(ctx, rt, f.ClientID, nil); !errors.Is(err, ErrInvalidGrant) {
			t.Errorf("a refresh token under another key: %v, want ErrInvalidGrant", err)
		}
	})
}

// The client scripts name two keys of one hash tag: they run on a Cluster, as does the rest.
func TestFacadeRedisCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	c, err := cache.NewRedisClient(cache.RedisClientOptions{ClusterAddrs: cl.Addrs(), Timeout: semanticsTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	clock := testkit.NewClockAt(clockStart)
	s, err := NewFacadeStore(FacadeStoreOptions{Key: testKey(t, 9), Redis: c, Timeout: semanticsTimeout, MaxClients: 3, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var ids []string
	for range 3 {
		rc := sampleClient(t)
		if err := s.RegisterClient(ctx, rc); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rc.ClientID)
	}
	if err := s.RegisterClient(ctx, sampleClient(t)); !errors.Is(err, ErrTooManyClients) {
		t.Fatalf("a fourth client: %v", err)
	}
	for _, id := range ids {
		if _, ok, err := s.Client(ctx, id); err != nil || !ok {
			t.Fatalf("Client = %v, %v", ok, err)
		}
	}
	if err := s.DeleteClient(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	for range 10 { // codes and families spread over the nodes
		code, err := s.IssueCode(ctx, sampleCode(t), 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.RedeemCode(ctx, code, sampleRedemption()); err != nil {
			t.Fatal(err)
		}
		rt, err := s.StartFamily(ctx, sampleFamily())
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.RotateRefresh(ctx, rt, "client-1", nil); err != nil {
			t.Fatal(err)
		}
	}
}

// Every call gives up after Timeout with Redis frozen, and the error names no secret.
func TestFacadeRedisTimeout(t *testing.T) {
	t.Parallel()
	h := newFacadeHarness(t, inRedis, FacadeStoreOptions{})
	o := h.o
	o.Timeout = 100 * time.Millisecond
	s, err := NewFacadeStore(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	c := sampleClient(t)
	if err := s.RegisterClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	code, err := s.IssueCode(ctx, sampleCode(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := s.StartFamily(ctx, sampleFamily())
	if err != nil {
		t.Fatal(err)
	}
	h.server.Freeze()
	defer h.server.Thaw()
	calls := map[string]func() error{
		"RegisterClient": func() error { return s.RegisterClient(ctx, sampleClient(t)) },
		"Client":         func() error { _, _, err := s.Client(ctx, c.ClientID); return err },
		"IssueCode":      func() error { _, err := s.IssueCode(ctx, sampleCode(t), 0); return err },
		"RedeemCode":     func() error { _, err := s.RedeemCode(ctx, code, sampleRedemption()); return err },
		"StartFamily":    func() error { _, err := s.StartFamily(ctx, sampleFamily()); return err },
		"RotateRefresh":  func() error { _, _, err := s.RotateRefresh(ctx, rt, "client-1", nil); return err },
		"RevokeRefresh":  func() error { return s.RevokeRefresh(ctx, rt, "client-1") },
	}
	for name, call := range calls {
		err := call()
		if err == nil || errors.Is(err, ErrInvalidGrant) {
			t.Errorf("%s with Redis frozen: %v, want a store error", name, err)
			continue
		}
		for _, secret := range []string{c.ClientID, code, rt} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s error names a secret: %v", name, err)
			}
		}
	}
}
