package check_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/jwks"
	"github.com/extauthz/extauthz/pkg/upstream"
	"github.com/extauthz/extauthz/pkg/verdict"
)

const (
	benchUpstreamAud    = "https://api.example.com/upstream"
	benchGatewayID      = "gateway"
	benchGatewaySecret  = "gateway-secret" //nolint:gosec // a test client's secret
	benchTokenExchange  = "urn:ietf:params:oauth:grant-type:token-exchange"
	benchAccessTokenURN = "urn:ietf:params:oauth:token-type:access_token"
)

// exchangeEndpoint is an RFC 8693 token endpoint on a loopback httptest
// server: it authenticates the gateway (client_secret_basic) and answers
// an exchange for benchUpstreamAud with a JWT of iss, whose JWKS iss
// serves. It counts the exchanges it answered.
func exchangeEndpoint(b *testing.B, iss *devissuer.Issuer) (string, *atomic.Int64) {
	b.Helper()
	var minted atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok || id != benchGatewayID || secret != benchGatewaySecret {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		if r.ParseForm() != nil || r.PostForm.Get("grant_type") != benchTokenExchange ||
			r.PostForm.Get("subject_token") == "" || r.PostForm.Get("audience") != benchUpstreamAud {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		tok, err := iss.Mint(devissuer.Token{Subject: "alice", ClientID: benchGatewayID, Audience: []string{benchUpstreamAud}, TTL: time.Hour})
		if err != nil {
			http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
			return
		}
		minted.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"access_token": tok, "token_type": "Bearer", "issued_token_type": benchAccessTokenURN, "expires_in": 3600,
		})
	}))
	b.Cleanup(srv.Close)
	return srv.URL + "/token", &minted
}

// minterCredentials is the engine's view of one pkg/upstream Minter, as
// cmd/extauthz adapts them (there, one per resource).
type minterCredentials struct{ m *upstream.Minter }

func (c minterCredentials) Credential(ctx context.Context, _, raw string, hash [32]byte, expiry time.Time) (authz.UpstreamCredential, bool, error) {
	cred, err := c.m.Token(ctx, upstream.Subject{Raw: raw, Hash: hash, Expiry: expiry})
	if err != nil {
		return authz.UpstreamCredential{}, true, err
	}
	return authz.UpstreamCredential{Token: cred.Token, Authorization: cred.Authorization, Expiry: cred.Expiry, Source: cred.Source}, true, nil
}

func (c minterCredentials) Forget(ctx context.Context, _ string, hash [32]byte) {
	_ = c.m.Forget(ctx, hash)
}

// BenchmarkCheckCacheHitUpstream is the common path on a resource without
// and with an upstream_token (mode exchange): the same cache hit, plus, on
// the minting resource, the lookup of the credential minted for the token
// (a real pkg/upstream Minter, in-process tier, minted once in the
// warm-up by a loopback token endpoint) and its Authorization header in
// the answer. The difference is what minting costs per request once warm.
func BenchmarkCheckCacheHitUpstream(b *testing.B) {
	for _, minting := range []bool{false, true} {
		name := "plain"
		if minting {
			name = "exchange"
		}
		b.Run(name, func(b *testing.B) {
			var (
				up     authz.UpstreamCredentials
				edit   func(*config.Resource)
				minted *atomic.Int64
			)
			if minting {
				upIss, _ := testkit.Issuer(b, "ES256", "", benchUpstreamAud, nil)
				var endpoint string
				endpoint, minted = exchangeEndpoint(b, upIss)
				store, err := upstream.NewStore(upstream.StoreOptions{})
				if err != nil {
					b.Fatal(err)
				}
				m, err := upstream.New(upstream.Options{
					Name: "mcp", Mode: upstream.ModeExchange, Issuer: upIss.Issuer(),
					TokenEndpoint: func(context.Context) (string, error) { return endpoint, nil },
					Keys:          jwks.New(func(context.Context) (string, error) { return upIss.JWKSURL(), nil }, jwks.Options{}),
					ClientID:      benchGatewayID, ClientSecret: benchGatewaySecret,
					Audience: []string{benchUpstreamAud}, Store: store,
				})
				if err != nil {
					b.Fatal(err)
				}
				up = minterCredentials{m}
				edit = func(r *config.Resource) {
					r.UpstreamToken = config.UpstreamToken{Mode: config.UpstreamModeExchange, Issuer: upIss.Issuer(),
						TokenEndpoint: endpoint, JWKSURI: upIss.JWKSURL(), ClientID: benchGatewayID,
						ClientSecret: config.Secret{Env: "UNUSED"}, Audience: []string{benchUpstreamAud}}
				}
			}
			s, iss := benchServerUpstream(b, "RS256", func() authz.VerdictStore { return verdict.LocalCache(100000, nil) }, edit, up)
			tok := realisticToken(b, iss)
			req, err := check.MCPToolCall(resourceURI, tok).Proto()
			if err != nil {
				b.Fatal(err)
			}
			resp, _ := s.Check(context.Background(), req)
			var authzHeader string
			for _, h := range resp.GetOkResponse().GetHeaders() {
				if h.GetHeader().GetKey() == "authorization" {
					authzHeader = h.GetHeader().GetValue()
				}
			}
			switch {
			case resp.GetStatus().GetCode() != 0:
				b.Fatalf("warm-up denied: %v", resp)
			case minting && (!strings.HasPrefix(authzHeader, "Bearer ") || strings.Contains(authzHeader, tok)):
				b.Fatal("warm-up: the minted token is not what the upstream gets")
			case !minting && authzHeader != "":
				b.Fatal("warm-up: an authorization header set without upstream_token")
			}
			runCheck(b, s, req)
			if minted != nil && minted.Load() != 1 {
				b.Fatalf("%d exchanges, want 1 (the warm-up's): the measured Checks were not all hits", minted.Load())
			}
		})
	}
}
