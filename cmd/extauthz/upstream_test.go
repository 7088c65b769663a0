package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/extauthz/extauthz/internal/oidctest"
	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/pkg/check"
)

// The upstream API the minted tokens are for, and the gateway's client at
// the real authorization server (allowed to exchange tokens and to get its
// own client-credentials token, the actor).
const (
	upstreamAPI           = "https://api.example.com/repo"
	upstreamGatewayID     = "gateway-minter"
	upstreamGatewaySecret = "minter-secret-0123456789"
	upstreamEncryptionKey = "an-encryption-key-of-at-least-32-bytes!!"
)

// mintingAS is oidc-provider with RFC 8693 token exchange to upstreamAPI,
// an application client whose tokens the gateway receives, and the
// gateway's client.
func mintingAS(t *testing.T) (*oidctest.Server, oidctest.Client) {
	t.Helper()
	app := oidctest.Client{ID: "app", Secret: "app-secret-0123456789", Scope: "mcp:tools"}
	s := oidctest.Start(t, oidctest.Options{
		Clients: []oidctest.Client{
			app,
			{ID: upstreamGatewayID, Secret: upstreamGatewaySecret, GrantTypes: []string{"client_credentials", oidctest.GrantTokenExchange}},
		},
		Resources: []oidctest.Resource{{Resource: jwtResource, Scope: "mcp:tools", Format: "jwt"}},
		TokenExchange: oidctest.TokenExchange{Targets: []oidctest.ExchangeTarget{
			{Audience: upstreamAPI, Scope: "repo:read repo:write", TTL: 300 * time.Second},
		}},
	})
	t.Setenv("EXTAUTHZ_TEST_MINTER_SECRET", upstreamGatewaySecret)
	t.Setenv("EXTAUTHZ_TEST_UPSTREAM_KEY", upstreamEncryptionKey)
	return s, app
}

// mintingGateway runs a gateway whose resource mcp exchanges the client's
// token for one to upstreamAPI (with the gateway as actor), on Redis when
// redisAddr is set.
func mintingGateway(t *testing.T, as *oidctest.Server, redisAddr, upstreamKeys string) *gateway {
	t.Helper()
	cache := ""
	if redisAddr != "" {
		cache = fmt.Sprintf(`cache: {redis_url: "redis://%s", redis: {timeout: 500ms}}
upstream: {token_encryption_key: {env: EXTAUTHZ_TEST_UPSTREAM_KEY}}
`, redisAddr)
	}
	g := startGateway(t, cache+fmt.Sprintf(`
resources:
  - name: mcp
    resource: %q
    required_scopes: ["mcp:tools"]
    authorization_servers: [{issuer: %q}]
    upstream_token:
      mode: exchange
      client_id: %s
      client_secret: {env: EXTAUTHZ_TEST_MINTER_SECRET}
      audience: [%q]
      scopes: ["repo:read"]
      actor: true
      %s
`, jwtResource, as.Issuer, upstreamGatewayID, upstreamAPI, upstreamKeys))
	g.waitReady(t)
	return g
}

// answer is what a Check tells the client (denied) or the upstream
// (allowed): the status and every header.
type answer struct {
	status  int
	headers map[string]string
}

func (g *gateway) answer(t *testing.T, url, tok string) answer {
	t.Helper()
	req, err := check.EnvoyRequest{Method: "POST", URL: url, Headers: [][2]string{{"authorization", "Bearer " + tok}}}.Proto()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := g.client.Check(context.Background(), req)
	if err != nil {
		t.Errorf("Check: %v", err)
		return answer{}
	}
	a := answer{headers: map[string]string{}}
	if resp.GetStatus().GetCode() == 0 {
		a.status = 200
		for _, h := range resp.GetOkResponse().GetHeaders() {
			a.headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		for _, name := range resp.GetOkResponse().GetHeadersToRemove() {
			if name == "authorization" {
				a.headers["removed:authorization"] = "yes"
			}
		}
		return a
	}
	dr := resp.GetDeniedResponse()
	a.status = int(dr.GetStatus().GetCode())
	for _, h := range dr.GetHeaders() {
		a.headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	return a
}

// jwtClaims decodes a JWT's payload (the gateway verified it).
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d segments", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// redisValues returns every string value held in the Redis at addr.
func redisValues(t *testing.T, addr string) map[string]string {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	ctx := context.Background()
	keys, err := rc.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		if v, err := rc.Get(ctx, k).Result(); err == nil {
			out[k] = v
		}
	}
	return out
}

// TestUpstreamTokenMintedOnceForTheFleet: two replicas on one Redis, many
// concurrent first requests of one client: exactly one token exchange at
// the real server, every request carries the same minted token (for the
// upstream API, naming the gateway as actor) and never the client's, Redis
// never holds it in the clear, and a purge on one replica stops the other
// from using it.
func TestUpstreamTokenMintedOnceForTheFleet(t *testing.T) {
	as, app := mintingAS(t)
	rs := redistest.Start(t)
	a := mintingGateway(t, as, rs.Addr(), "")
	b := mintingGateway(t, as, rs.Addr(), "")
	ctx := context.Background()
	subject, err := as.ClientCredentials(ctx, app, jwtResource, "mcp:tools")
	if err != nil {
		t.Fatal(err)
	}
	before, err := as.Exchanges(ctx)
	if err != nil {
		t.Fatal(err)
	}

	const n = 24
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			g := a
			if i%2 == 1 {
				g = b
			}
			answers[i] = g.answer(t, jwtResource, subject)
		})
	}
	wg.Wait()
	minted := ""
	for i, ans := range answers {
		if ans.status != 200 {
			t.Fatalf("request %d: status %d %v", i, ans.status, ans.headers)
		}
		got := strings.TrimPrefix(ans.headers["authorization"], "Bearer ")
		switch {
		case got == "" || got == subject:
			t.Fatalf("request %d: the upstream gets authorization %q, want a minted token, never the client's", i, ans.headers["authorization"])
		case minted == "":
			minted = got
		case got != minted:
			t.Fatalf("request %d got another minted token than request 0", i)
		}
		if ans.headers["removed:authorization"] != "" {
			t.Errorf("request %d: authorization both set and removed", i)
		}
	}
	after, err := as.Exchanges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after-before != 1 {
		t.Errorf("%d concurrent first requests on two replicas made %d token exchanges, want 1", n, after-before)
	}
	c := jwtClaims(t, minted)
	act, _ := c["act"].(map[string]any)
	if c["aud"] != upstreamAPI || c["sub"] != app.ID || c["scope"] != "repo:read" || act["sub"] != upstreamGatewayID {
		t.Errorf("minted token claims %v: want aud %s, sub %s, scope repo:read, act.sub %s", c, upstreamAPI, app.ID, upstreamGatewayID)
	}

	// At rest in Redis: encrypted.
	values := redisValues(t, rs.Addr())
	held := 0
	for k, v := range values {
		if strings.Contains(v, minted) || strings.Contains(v, strings.Split(minted, ".")[1]) {
			t.Errorf("Redis key %s holds the minted token in the clear", k)
		}
		if strings.Contains(k, "upstream") && !strings.Contains(k, "lock") {
			held++
		}
	}
	if held == 0 {
		t.Errorf("no minted token in Redis (keys %v): the replicas do not share it", keysOf(values))
	}

	// A purge on A: B refuses the token and holds no minted one for it.
	a.purge(t, subject)
	if ans := b.answer(t, jwtResource, subject); ans.status != 401 || ans.headers["authorization"] != "" {
		t.Errorf("after a purge on A, B answers %d with upstream authorization %q; want 401", ans.status, ans.headers["authorization"])
	}
	// The minted token for the client's goes; the gateway's own actor
	// token, minted for no one in particular, stays.
	left := 0
	for k := range redisValues(t, rs.Addr()) {
		if strings.Contains(k, "upstream") && !strings.Contains(k, "lock") {
			left++
		}
	}
	if held != 2 || left != 1 {
		t.Errorf("minted tokens in Redis: %d before the purge, %d after; want 2 (the exchanged and the actor's) and 1 (the actor's)", held, left)
	}
	if n, _ := as.Exchanges(ctx); n != after {
		t.Errorf("the purged token was exchanged again (%d exchanges)", n-after)
	}
}

func keysOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestUpstreamTokenFailuresAreDenials: the token endpoint down, slow,
// limiting or refusing never lets a request through without the
// credential: 503 with the server's Retry-After, or 403 for a refusal.
func TestUpstreamTokenFailuresAreDenials(t *testing.T) {
	as, app := mintingAS(t)
	g := mintingGateway(t, as, "", "timeout: 1s")
	ctx := context.Background()
	fresh := func() string { // a new client token: a new cache key
		tok, err := as.ClientCredentials(ctx, app, jwtResource, "mcp:tools")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tests := []struct {
		name       string
		behave     oidctest.ExchangeBehaviour
		status     int
		retryAfter string
	}{
		{"503 with Retry-After", oidctest.ExchangeBehaviour{Status: 503, RetryAfter: 7 * time.Second}, 503, "7"},
		{"429", oidctest.ExchangeBehaviour{Status: 429}, 503, "5"},
		{"500", oidctest.ExchangeBehaviour{Status: 500}, 503, "5"},
		{"slower than the timeout", oidctest.ExchangeBehaviour{Delay: 3 * time.Second}, 503, "5"},
		{"invalid_grant", oidctest.ExchangeBehaviour{Status: 400, Error: "invalid_grant"}, 403, ""},
		{"invalid_target", oidctest.ExchangeBehaviour{Status: 400, Error: "invalid_target"}, 403, ""},
		{"invalid_client", oidctest.ExchangeBehaviour{Status: 401, Error: "invalid_client"}, 503, "5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := as.SetExchangeBehaviour(ctx, tt.behave); err != nil {
				t.Fatal(err)
			}
			ans := g.answer(t, jwtResource, fresh())
			if ans.status != tt.status || ans.headers["retry-after"] != tt.retryAfter || ans.headers["authorization"] != "" {
				t.Errorf("status %d, retry-after %q, upstream authorization %q; want %d, %q, none",
					ans.status, ans.headers["retry-after"], ans.headers["authorization"], tt.status, tt.retryAfter)
			}
		})
	}
	// Back to normal: the next request is allowed with a minted token.
	if err := as.SetExchangeBehaviour(ctx, oidctest.ExchangeBehaviour{}); err != nil {
		t.Fatal(err)
	}
	if ans := g.answer(t, jwtResource, fresh()); ans.status != 200 || !strings.HasPrefix(ans.headers["authorization"], "Bearer ") {
		t.Errorf("after recovery: %d %v", ans.status, ans.headers)
	}
}

// TestUpstreamTokenUnknownTargetIsRefused: an audience the server does not
// serve is refused there (invalid_target), and the request with it: 403,
// never an allow without the credential.
func TestUpstreamTokenUnknownTargetIsRefused(t *testing.T) {
	as, app := mintingAS(t)
	g := startGateway(t, fmt.Sprintf(`
resources:
  - name: mcp
    resource: %q
    required_scopes: ["mcp:tools"]
    authorization_servers: [{issuer: %q}]
    upstream_token:
      mode: exchange
      client_id: %s
      client_secret: {env: EXTAUTHZ_TEST_MINTER_SECRET}
      audience: ["https://not-a-target.example.com"]
`, jwtResource, as.Issuer, upstreamGatewayID))
	g.waitReady(t)
	tok, err := as.ClientCredentials(context.Background(), app, jwtResource, "mcp:tools")
	if err != nil {
		t.Fatal(err)
	}
	if ans := g.answer(t, jwtResource, tok); ans.status != 403 || ans.headers["authorization"] != "" {
		t.Errorf("unknown target: %d %v, want 403 without a credential", ans.status, ans.headers)
	}
}

// TestCheckCommandRedactsTheUpstreamCredential: `extauthz check` says which
// credential the upstream would get without printing it.
func TestCheckCommandRedactsTheUpstreamCredential(t *testing.T) {
	as, app := mintingAS(t)
	g := mintingGateway(t, as, "", "")
	tok, err := as.ClientCredentials(context.Background(), app, jwtResource, "mcp:tools")
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := checkCmd(context.Background(), []string{"--addr", g.app.lnGRPC.Addr().String(), "--url", jwtResource, "--method", "POST", "--token", tok}, &out, &errOut)
	if code != 0 {
		t.Fatalf("check exited %d: %s %s", code, out.String(), errOut.String())
	}
	minted := strings.TrimPrefix(g.answer(t, jwtResource, tok).headers["authorization"], "Bearer ")
	s := out.String()
	if minted == "" || strings.Contains(s, minted) || strings.Contains(s, tok) {
		t.Fatalf("check prints a live token:\n%s", s)
	}
	for _, want := range []string{"authorization: Bearer [redacted upstream credential", "aud \"" + upstreamAPI + "\"", `act {"sub":"` + upstreamGatewayID + `"}`} {
		if !strings.Contains(s, want) {
			t.Errorf("check output lacks %q:\n%s", want, s)
		}
	}
}
