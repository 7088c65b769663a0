package authz

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/token"
	"github.com/extauthz/extauthz/pkg/verdict"
)

// minterStub stands in for pkg/upstream behind the engine's interface: it
// records what the engine asked and answers as told.
type minterStub struct {
	mu        sync.Mutex
	calls     []string // resource names asked for
	forgotten []string
	hashes    [][32]byte
	answer    func(resource string) (UpstreamCredential, bool, error)
}

func (m *minterStub) Credential(_ context.Context, resource, raw string, hash [32]byte, _ time.Time) (UpstreamCredential, bool, error) {
	m.mu.Lock()
	m.calls = append(m.calls, resource)
	m.hashes = append(m.hashes, hash)
	m.mu.Unlock()
	if hash != token.CacheHash(raw) {
		return UpstreamCredential{}, false, errors.New("hash is not the token's")
	}
	return m.answer(resource)
}

func (m *minterStub) Forget(_ context.Context, resource string, _ [32]byte) {
	m.mu.Lock()
	m.forgotten = append(m.forgotten, resource)
	m.mu.Unlock()
}

type retryErr struct {
	error
	after time.Duration
}

func (r retryErr) RetryAfter() time.Duration { return r.after }
func (r retryErr) Unwrap() error             { return r.error }

// upstreamFixture: resource "minted" exchanges the client's token, "plain"
// mints nothing; both need mcp:tools.
func upstreamFixture(t *testing.T, m UpstreamCredentials) (*Engine, *devissuer.Issuer) {
	t.Helper()
	clock := testkit.NewClock()
	iss, _ := testkit.Issuer(t, "ES256", "", testResource, clock.Now)
	as := []config.AuthorizationServer{{Issuer: iss.Issuer(), JWKSURI: iss.JWKSURL()}}
	cfg := &config.Config{Resources: []config.Resource{
		{Name: "minted", Resource: testResource, RequiredScopes: []string{"mcp:tools"}, AuthorizationServers: as,
			UpstreamToken: config.UpstreamToken{Mode: "exchange", ClientID: "gw", ClientSecret: config.Secret{Env: "X"},
				Audience: []string{"https://api.example.com"}}},
		{Name: "plain", Resource: testResource + "2", Hosts: []string{"mcp.example.com"}, PathPrefix: "/mcp2",
			Audiences: []string{testResource}, RequiredScopes: []string{"mcp:tools"}, AuthorizationServers: as},
	}}
	e, err := NewEngine(validPolicy(t, cfg), Options{Verifier: issuerVerifier(t, iss, clock), Cache: verdict.LocalCache(100, clock.Now),
		MaxTTL: time.Minute, NegativeTTL: time.Second, RevokedTTL: time.Hour, Now: clock.Now, Upstream: m})
	if err != nil {
		t.Fatal(err)
	}
	return e, iss
}

func bearer(t *testing.T, iss *devissuer.Issuer, scope string) string {
	t.Helper()
	tok, err := iss.Mint(devissuer.Token{Subject: "alice", Scopes: []string{scope}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func checkPath(e *Engine, tok, path string) Decision {
	return e.Check(context.Background(), &Request{Method: http.MethodPost, Host: "mcp.example.com", Path: path,
		Headers: map[string]string{"authorization": "Bearer " + tok}})
}

func headerValue(hs []Header, name string) (string, bool) {
	for _, h := range hs {
		if h.Name == name {
			return h.Value, true
		}
	}
	return "", false
}

// The upstream gets the minted token in Authorization, never the client's,
// and still the identity headers.
func TestUpstreamCredentialReplacesTheClientsToken(t *testing.T) {
	m := &minterStub{answer: func(string) (UpstreamCredential, bool, error) {
		return UpstreamCredential{Token: "minted-for-api", Source: "minted"}, true, nil
	}}
	e, iss := upstreamFixture(t, m)
	tok := bearer(t, iss, "mcp:tools")
	d := checkPath(e, tok, "/mcp")
	if !d.Allow {
		t.Fatalf("denied: %d %s %v", d.Status, d.Reason, d.Err)
	}
	if got, _ := headerValue(d.Upstream, "authorization"); got != "Bearer minted-for-api" {
		t.Errorf("upstream authorization = %q, want the minted token", got)
	}
	if slices.Contains(d.Remove, "authorization") {
		t.Errorf("authorization both set and removed: %v", d.Remove)
	}
	if sub, _ := headerValue(d.Upstream, "x-extauthz-subject"); sub != "alice" {
		t.Errorf("subject header = %q", sub)
	}
	if d.UpstreamCredential != "minted" {
		t.Errorf("UpstreamCredential = %q", d.UpstreamCredential)
	}
	for _, h := range d.Upstream {
		if h.Value == "Bearer "+tok || h.Value == tok {
			t.Fatalf("the client's token goes upstream in %s", h.Name)
		}
	}

	// A resource without upstream_token: the client's token is removed
	// and nothing is minted.
	d = checkPath(e, tok, "/mcp2")
	if !d.Allow || !slices.Contains(d.Remove, "authorization") {
		t.Fatalf("plain resource: allow %v, remove %v", d.Allow, d.Remove)
	}
	if _, set := headerValue(d.Upstream, "authorization"); set {
		t.Error("plain resource sets an upstream authorization")
	}
	if !slices.Equal(m.calls, []string{"minted"}) {
		t.Errorf("minter asked for %v, want only the minting resource", m.calls)
	}
}

// Nothing is minted for a request that is refused anyway: a bad token, a
// missing scope. An attacker must not be able to make the gateway call the
// token endpoint without a token that passes.
func TestUpstreamCredentialOnlyForAllowedRequests(t *testing.T) {
	m := &minterStub{answer: func(string) (UpstreamCredential, bool, error) {
		return UpstreamCredential{Token: "x", Source: "minted"}, true, nil
	}}
	e, iss := upstreamFixture(t, m)
	if d := checkPath(e, "garbage.token.here", "/mcp"); d.Allow || d.Status != http.StatusUnauthorized {
		t.Errorf("garbage token: allow %v status %d", d.Allow, d.Status)
	}
	if d := checkPath(e, bearer(t, iss, "other"), "/mcp"); d.Allow || d.Status != http.StatusForbidden {
		t.Errorf("missing scope: allow %v status %d", d.Allow, d.Status)
	}
	if len(m.calls) != 0 {
		t.Errorf("minter asked %d times for refused requests", len(m.calls))
	}
}

// Never an allow without the credential: refused → 403, unavailable →
// 503 with the issuer's Retry-After, anything else → 503, no minter → 503.
func TestUpstreamCredentialFailuresDeny(t *testing.T) {
	tests := []struct {
		name       string
		minter     UpstreamCredentials
		status     int
		reason     Reason
		retryAfter int
	}{
		{"refused", &minterStub{answer: func(string) (UpstreamCredential, bool, error) {
			return UpstreamCredential{}, false, fmt.Errorf("%w: invalid_target", ErrUpstreamRefused)
		}}, http.StatusForbidden, ReasonUpstreamRefused, 0},
		{"unavailable with retry-after", &minterStub{answer: func(string) (UpstreamCredential, bool, error) {
			return UpstreamCredential{}, false, retryErr{fmt.Errorf("%w: status 429", ErrUpstreamUnavailable), 7 * time.Second}
		}}, http.StatusServiceUnavailable, ReasonUpstreamUnavail, 7},
		{"unclassified error", &minterStub{answer: func(string) (UpstreamCredential, bool, error) {
			return UpstreamCredential{}, false, errors.New("boom")
		}}, http.StatusServiceUnavailable, ReasonUpstreamUnavail, 5},
		{"minter knows no such resource", &minterStub{answer: func(string) (UpstreamCredential, bool, error) {
			return UpstreamCredential{}, false, nil
		}}, http.StatusServiceUnavailable, ReasonUpstreamUnavail, 5},
		{"empty token", &minterStub{answer: func(string) (UpstreamCredential, bool, error) {
			return UpstreamCredential{Source: "minted"}, true, nil
		}}, http.StatusServiceUnavailable, ReasonUpstreamUnavail, 5},
		{"no minter", nil, http.StatusServiceUnavailable, ReasonUpstreamUnavail, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, iss := upstreamFixture(t, tt.minter)
			d := checkPath(e, bearer(t, iss, "mcp:tools"), "/mcp")
			if d.Allow || d.Status != tt.status || d.Reason != tt.reason || d.RetryAfter != tt.retryAfter {
				t.Fatalf("allow %v status %d reason %s retry-after %d; want %d %s %d", d.Allow, d.Status, d.Reason, d.RetryAfter, tt.status, tt.reason, tt.retryAfter)
			}
			if d.Challenge != "" {
				t.Errorf("challenge %q: another token of the client's would not help", d.Challenge)
			}
			if len(d.Upstream) != 0 {
				t.Errorf("a denial carries upstream headers: %v", d.Upstream)
			}
			if d.Claims == nil || d.Claims.Subject != "alice" {
				t.Error("the denial does not say whose request it was (audit log)")
			}
		})
	}
}

// A revocation drops what was minted for the token, and the revoked token
// is refused before any minted token is looked at.
func TestRevokeForgetsMintedTokens(t *testing.T) {
	m := &minterStub{answer: func(string) (UpstreamCredential, bool, error) {
		return UpstreamCredential{Token: "x", Source: "local"}, true, nil
	}}
	e, iss := upstreamFixture(t, m)
	tok := bearer(t, iss, "mcp:tools")
	if d := checkPath(e, tok, "/mcp"); !d.Allow {
		t.Fatal("not allowed before the revocation")
	}
	if _, err := e.Revoke(context.Background(), Revocation{Token: tok}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.forgotten, []string{"minted"}) {
		t.Errorf("forgotten %v, want the minting resource only", m.forgotten)
	}
	if d := checkPath(e, tok, "/mcp"); d.Allow || d.Reason != ReasonRevoked {
		t.Errorf("after revocation: allow %v reason %s", d.Allow, d.Reason)
	}
	if len(m.calls) != 1 {
		t.Errorf("minter asked %d times, want once (before the revocation)", len(m.calls))
	}
}
