package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/token"
)

const (
	sharedResource = "https://mcp.example.com/mcp"
	adminToken     = "test-admin-token-4f1c"
)

// instance is one running gateway replica.
type instance struct {
	app    *app
	stats  *counters
	client authv3.AuthorizationClient
}

// flush waits until the replica's verdicts have reached Redis: its writes
// to the shared tier are sent in the background, after the Check answered.
func (in *instance) flush(t *testing.T) {
	t.Helper()
	if err := in.app.cache.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// startInstance runs a replica using the given standalone Redis and issuer.
func startInstance(t *testing.T, redisAddr string, iss *devissuer.Issuer) *instance {
	t.Helper()
	return startInstanceWith(t, fmt.Sprintf("redis_url: \"redis://%s\"", redisAddr), iss)
}

// startInstanceWith runs a replica whose cache section starts with
// redisKeys (the Redis mode).
func startInstanceWith(t *testing.T, redisKeys string, iss *devissuer.Issuer) *instance {
	t.Helper()
	return startInstanceCache(t, fmt.Sprintf(`
cache:
  %s
  redis:
    %s
    timeout: 500ms        # generous: the race detector slows everything down
    circuit_failures: 2
    circuit_cooldown: 200ms
`, topLevel(redisKeys), nested(redisKeys)), iss)
}

// startInstanceCache runs a replica whose configuration has the given
// cache section.
func startInstanceCache(t *testing.T, cacheSection string, iss *devissuer.Issuer) *instance {
	t.Helper()
	return startInstanceYAML(t, `listen: {grpc: "127.0.0.1:0", http: "off", admin: "127.0.0.1:0"}`+"\n"+cacheSection, iss)
}

// startInstanceYAML runs a replica whose configuration is top (listen
// and further sections) and resource mcp, which trusts iss.
func startInstanceYAML(t *testing.T, top string, iss *devissuer.Issuer) *instance {
	t.Helper()
	t.Setenv("EXTAUTHZ_TEST_ADMIN_TOKEN", adminToken)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
admin: {token: {env: EXTAUTHZ_TEST_ADMIN_TOKEN}}
%s
resources:
  - name: mcp
    resource: %q
    authorization_servers: [{issuer: %q, jwks_uri: %q}]
    required_scopes: ["mcp:tools"]
`, top, sharedResource, iss.Issuer(), iss.JWKSURL())))
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{stats: &counters{}}
	in.app, err = newApp(cfg, newLogger(io.Discard, "error", "json"), appOptions{observer: in.stats})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- in.app.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("instance: %v", err)
		}
	})
	conn, err := grpc.NewClient(in.app.lnGRPC.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	in.client = authv3.NewAuthorizationClient(conn)
	waitFor(t, "keys", func() bool { ok, _ := in.app.ready(); return ok })
	return in
}

// topLevel and nested split a mode's YAML: redis_url lives in cache, the
// Sentinel and Cluster blocks in cache.redis.
func topLevel(keys string) string {
	if strings.HasPrefix(keys, "redis_url") {
		return keys
	}
	return ""
}

func nested(keys string) string {
	if strings.HasPrefix(keys, "redis_url") {
		return ""
	}
	return keys
}

// decide sends a Check for the token; it returns the HTTP status the
// client would see (200 when allowed) and the challenge.
func (in *instance) decide(t *testing.T, tok string) (int, string) {
	t.Helper()
	st, ch, err := in.tryDecide(tok)
	if err != nil {
		t.Fatal(err)
	}
	return st, ch
}

// tryDecide is decide for goroutines other than the test's own.
func (in *instance) tryDecide(tok string) (int, string, error) {
	req, err := check.EnvoyRequest{Method: "POST", URL: sharedResource, Headers: [][2]string{{"authorization", "Bearer " + tok}}}.Proto()
	if err != nil {
		return 0, "", err
	}
	resp, err := in.client.Check(context.Background(), req)
	if err != nil {
		return 0, "", fmt.Errorf("Check: %w", err)
	}
	if resp.GetStatus().GetCode() == 0 {
		return 200, "", nil
	}
	d := resp.GetDeniedResponse()
	for _, h := range d.GetHeaders() {
		if h.GetHeader().GetKey() == "www-authenticate" {
			return int(d.GetStatus().GetCode()), h.GetHeader().GetValue(), nil
		}
	}
	return int(d.GetStatus().GetCode()), "", nil
}

func (in *instance) purge(t *testing.T, bearer string, body any) (int, purgeResponse) {
	t.Helper()
	st, out, err := in.tryPurge(bearer, body)
	if err != nil {
		t.Fatal(err)
	}
	return st, out
}

// tryPurge is purge for goroutines other than the test's own.
func (in *instance) tryPurge(bearer string, body any) (int, purgeResponse, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", "http://"+in.app.lnAdmin.Addr().String()+"/cache/purge", bytes.NewReader(b))
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, purgeResponse{}, err
	}
	defer resp.Body.Close()
	var out purgeResponse
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, nil
}

func mintScoped(t *testing.T, iss *devissuer.Issuer, ttl time.Duration) string {
	t.Helper()
	tok, err := iss.Mint(devissuer.Token{Subject: "alice", Scopes: []string{"mcp:tools"}, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func waitSubscribers(t *testing.T, addr string, n int64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d invalidation subscribers", n), func() bool {
		reply, err := redistest.Do(addr, "PUBSUB", "NUMSUB", cache.InvalidationChannel)
		arr, ok := reply.([]any)
		return err == nil && ok && len(arr) == 2 && arr[1] == n
	})
}

func TestReplicasShareVerificationsAndRevocations(t *testing.T) {
	srv := redistest.Start(t)
	iss, _ := startIssuer(t, sharedResource)
	a, b := startInstance(t, srv.Addr(), iss), startInstance(t, srv.Addr(), iss)
	waitSubscribers(t, srv.Addr(), 2)

	tok := mintScoped(t, iss, time.Hour)
	if st, _ := a.decide(t, tok); st != 200 {
		t.Fatalf("A: %d", st)
	}
	a.flush(t)
	before := b.stats.snapshot()
	if st, _ := b.decide(t, tok); st != 200 {
		t.Fatalf("B: %d", st)
	}
	if got := b.stats.snapshot(); got.RedisHits != before.RedisHits+1 {
		t.Fatalf("B's Check was not served from Redis: %+v then %+v", before, got)
	}

	t.Run("purge needs the admin token", func(t *testing.T) {
		if st, _ := a.purge(t, "", map[string]string{"token": tok}); st != 401 {
			t.Errorf("no token: %d", st)
		}
		if st, _ := a.purge(t, "wrong", map[string]string{"token": tok}); st != 401 {
			t.Errorf("wrong token: %d", st)
		}
		if st, _ := a.purge(t, adminToken, map[string]string{"token": tok, "token_sha256": strings.Repeat("a", 64)}); st != 400 {
			t.Errorf("both token and hash: %d", st)
		}
	})

	st, res := a.purge(t, adminToken, map[string]string{"token": tok})
	if st != 200 || !res.Revoked || res.Replicas != 2 || res.Acknowledged != 2 || !res.Shared {
		t.Fatalf("purge through A: %d %+v", st, res)
	}
	for name, in := range map[string]*instance{"A": a, "B": b} {
		st, ch := in.decide(t, tok)
		if st != 401 || !strings.Contains(ch, `error="invalid_token"`) || !strings.Contains(ch, "revoked") {
			t.Errorf("%s after the purge: %d %s", name, st, ch)
		}
	}

	t.Run("purge by hash through B", func(t *testing.T) {
		other := mintScoped(t, iss, time.Hour)
		if st, _ := a.decide(t, other); st != 200 {
			t.Fatalf("A: %d", st)
		}
		sum := sha256.Sum256([]byte(other))
		if st, res := b.purge(t, adminToken, map[string]string{"token_sha256": hex.EncodeToString(sum[:]), "resource": "mcp"}); st != 200 || res.Acknowledged != 2 {
			t.Fatalf("purge: %d %+v", st, res)
		}
		if st, _ := a.decide(t, other); st != 401 {
			t.Fatalf("A after the purge through B: %d", st)
		}
	})

	t.Run("a revoked token stays revoked after the local tier forgets it", func(t *testing.T) {
		c := startInstance(t, srv.Addr(), iss) // a replica that never saw it
		if st, _ := c.decide(t, tok); st != 401 {
			t.Fatalf("new replica: %d", st)
		}
	})
}

func TestCachedEntryNeverOutlivesToken(t *testing.T) {
	srv := redistest.Start(t)
	iss, _ := startIssuer(t, sharedResource)
	a := startInstance(t, srv.Addr(), iss)
	tok := mintScoped(t, iss, 3*time.Second)
	if st, _ := a.decide(t, tok); st != 200 {
		t.Fatalf("%d", st)
	}
	a.flush(t)
	reply, err := redistest.Do(srv.Addr(), "PTTL", cache.Key{Namespace: a.app.engine.Policy().CacheNamespace("mcp"), Hash: token.CacheHash(tok)}.String())
	ms, ok := reply.(int64)
	if err != nil || !ok || ms <= 0 || ms > 3000 {
		t.Fatalf("PTTL of the token's entry = %v (%v); want 0 < ttl <= 3000 ms (the token's own lifetime)", reply, err)
	}
}

func TestRedisOutageKeepsDecisionsCorrect(t *testing.T) {
	srv := redistest.Start(t)
	iss, _ := startIssuer(t, sharedResource)
	a := startInstance(t, srv.Addr(), iss)
	valid := mintScoped(t, iss, time.Hour)
	bad := valid[:len(valid)-4] + "AAAA"

	// Checks run all along; every answer must be right.
	var wrong, total atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tok, want := valid, 200
				switch i % 3 {
				case 1:
					tok, want = bad, 401
				case 2:
					// a token never seen before: verified locally, Redis or not
					var err error
					if tok, err = iss.Mint(devissuer.Token{Subject: "bob", Scopes: []string{"mcp:tools"}}); err != nil {
						wrong.Add(1)
						continue
					}
				}
				if st, _, err := a.tryDecide(tok); err != nil || st != want {
					wrong.Add(1)
				}
				total.Add(1)
			}
		}()
	}
	waitFor(t, "traffic", func() bool { return total.Load() > 20 })
	srv.Stop()
	waitFor(t, "the circuit to open", func() bool { return a.stats.snapshot().CircuitOpen })
	n := total.Load()
	waitFor(t, "traffic during the outage", func() bool { return total.Load() > n+50 })
	srv.Restart()
	waitFor(t, "the circuit to close", func() bool { return !a.stats.snapshot().CircuitOpen })
	n = total.Load()
	waitFor(t, "traffic after recovery", func() bool { return total.Load() > n+20 })
	close(stop)
	wg.Wait()
	if wrong.Load() != 0 {
		t.Fatalf("%d of %d decisions were wrong around a Redis outage", wrong.Load(), total.Load())
	}

	// Hits come back: a token verified by A after the restart is a Redis
	// hit for a replica that never saw it.
	tok := mintScoped(t, iss, time.Hour)
	if st, _ := a.decide(t, tok); st != 200 {
		t.Fatalf("A: %d", st)
	}
	a.flush(t)
	b := startInstance(t, srv.Addr(), iss)
	if st, _ := b.decide(t, tok); st != 200 || b.stats.snapshot().RedisHits != 1 {
		t.Fatalf("B: %d, %+v; want a Redis hit", st, b.stats.snapshot())
	}
}

// TestRedisModesThroughConfig: Sentinel and Cluster, configured as an
// operator would, share verdicts between replicas.
func TestRedisModesThroughConfig(t *testing.T) {
	iss, _ := startIssuer(t, sharedResource)
	modes := map[string]func(t *testing.T) string{
		"sentinel": func(t *testing.T) string {
			s := redistest.StartSentinel(t)
			return fmt.Sprintf("sentinel: {master_name: %s, addresses: [%q]}", s.MasterName(), s.SentinelAddrs()[0])
		},
		"cluster": func(t *testing.T) string {
			c := redistest.StartCluster(t, 3)
			addrs, _ := json.Marshal(c.Addrs())
			return fmt.Sprintf("cluster: {addresses: %s}", addrs)
		},
	}
	for name, start := range modes {
		t.Run(name, func(t *testing.T) {
			keys := start(t)
			a, b := startInstanceWith(t, keys, iss), startInstanceWith(t, keys, iss)
			tok := mintScoped(t, iss, time.Hour)
			if st, _ := a.decide(t, tok); st != 200 {
				t.Fatalf("A: %d", st)
			}
			a.flush(t)
			if st, _ := b.decide(t, tok); st != 200 || b.stats.snapshot().RedisHits != 1 {
				t.Fatalf("B: %d, %+v; want a Redis hit", st, b.stats.snapshot())
			}
			waitFor(t, "both subscribed", func() bool {
				st, res := a.purge(t, adminToken, map[string]string{"token": mintScoped(t, iss, time.Hour)})
				return st == 200 && res.Replicas == 2
			})
			if st, res := a.purge(t, adminToken, map[string]string{"token": tok}); st != 200 || res.Acknowledged != 2 {
				t.Fatalf("purge: %d %+v", st, res)
			}
			if st, _ := b.decide(t, tok); st != 401 {
				t.Fatalf("B after the purge: %d", st)
			}
		})
	}
}

// TestRevokedECDSATokenCannotBeRespelledAcrossReplicas: an ECDSA signature
// (r, s) has a second valid form (r, n−s) that anyone holding the token
// can compute. Two replicas share a real Redis; a token allowed and then
// purged must stay refused on both in either form, whichever form was
// purged, and purging by hash takes the hash of the low-s form, which the
// purge answer reports.
func TestRevokedECDSATokenCannotBeRespelledAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	for _, alg := range []string{"ES256", "ES384"} {
		t.Run(alg, func(t *testing.T) {
			iss, _ := testkit.Issuer(t, alg, "/"+alg, sharedResource, nil)
			curve := testkit.ECDSACurve(t, alg)
			a, b := startInstance(t, srv.Addr(), iss), startInstance(t, srv.Addr(), iss)
			waitFor(t, "both subscribed", func() bool {
				st, res := a.purge(t, adminToken, map[string]string{"token": mintScoped(t, iss, time.Hour)})
				return st == 200 && res.Replicas >= 2
			})
			mint := func(highS bool) (tok, other string) {
				tok = testkit.MintECDSA(t, curve, highS, func() (string, error) {
					return iss.Mint(devissuer.Token{Subject: "alice", Scopes: []string{"mcp:tools"}})
				})
				other, _ = testkit.OtherECDSASpelling(t, tok, curve)
				return tok, other
			}
			refused := func(t *testing.T, what string, in *instance, tok string) {
				t.Helper()
				if st, ch := in.decide(t, tok); st != 401 || !strings.Contains(ch, "revoked") {
					t.Errorf("%s: %d %s; want 401 revoked", what, st, ch)
				}
			}
			for _, c := range []struct {
				name  string
				highS bool
			}{{"purge the low-s form", false}, {"purge the high-s form", true}} {
				t.Run(c.name, func(t *testing.T) {
					tok, other := mint(c.highS)
					low := tok
					if c.highS {
						low = other
					}
					if st, _ := a.decide(t, tok); st != 200 {
						t.Fatalf("A: %d", st)
					}
					st, res := a.purge(t, adminToken, map[string]string{"token": tok})
					if st != 200 || res.Acknowledged < 2 {
						t.Fatalf("purge: %d %+v", st, res)
					}
					if sum := sha256.Sum256([]byte(low)); res.TokenSHA256 != hex.EncodeToString(sum[:]) {
						t.Errorf("purge answer token_sha256 = %q, want the SHA-256 of the low-s form", res.TokenSHA256)
					}
					refused(t, "B, the other form", b, other)
					refused(t, "A, the other form", a, other)
					refused(t, "B, the purged form", b, tok)
				})
			}
			t.Run("purge by the hash of the low-s form", func(t *testing.T) {
				tok, other := mint(true)
				if st, _ := a.decide(t, tok); st != 200 {
					t.Fatalf("A: %d", st)
				}
				sum := sha256.Sum256([]byte(other))
				if st, res := b.purge(t, adminToken, map[string]string{"token_sha256": hex.EncodeToString(sum[:])}); st != 200 || res.Acknowledged < 2 {
					t.Fatalf("purge: %d %+v", st, res)
				}
				refused(t, "A, the high-s form", a, tok)
				refused(t, "B, the low-s form", b, other)
			})
		})
	}
}
