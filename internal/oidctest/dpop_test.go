package oidctest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/dpoptest"
)

// dpopKey is a fresh ES256 key, as a signer and as the test client's view of it.
func dpopKey(t *testing.T) (*ecdsa.PrivateKey, *dpoptest.Key) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := dpoptest.KeyFrom(priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, k
}

// tokenClaims decodes a JWT's header and claims without verifying it.
func tokenClaims(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	for i, into := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, into) != nil {
			t.Fatalf("JWT part %d does not decode: %v", i, err)
		}
	}
	return header, claims
}

// rawTokenRequest posts form to the token endpoint as c with the given DPoP header values and
// returns the whole answer.
func rawTokenRequest(ctx context.Context, t *testing.T, s *Server, c Client, form url.Values, proofs ...string) (int, http.Header, string) {
	t.Helper()
	m, err := s.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req, err := newPost(ctx, m.TokenEndpoint, c, form)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

func cnfJKT(claims map[string]any) string {
	cnf, _ := claims["cnf"].(map[string]any)
	jkt, _ := cnf["jkt"].(string)
	return jkt
}

// TestDPoP: with the library's default, a token request with a proof gets a token bound to
// the proof's key (JWT with cnf.jkt, opaque introspected with cnf.jkt, through
// client_credentials and the authorization code flow); one without gets a Bearer token as
// before; bad and replayed proofs are refused.
func TestDPoP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	gateway := Client{ID: "gateway", Secret: "gateway-secret"}
	app := Client{ID: "app", AuthMethod: "none", GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{"http://127.0.0.1:1/cb"}}
	s := Start(t, Options{
		Clients: []Client{gateway, app},
		Resources: []Resource{
			{Resource: jwtResource, Scope: "mcp:tools", Format: "jwt"},
			{Resource: opaqueResource, Scope: "mcp:tools", Format: "opaque"},
		},
	})
	priv, key := dpopKey(t)

	t.Run("discovery", func(t *testing.T) {
		status, body := get(ctx, t, s.Issuer+"/.well-known/oauth-authorization-server")
		var md struct {
			Algs []string `json:"dpop_signing_alg_values_supported"`
		}
		if status != http.StatusOK || json.Unmarshal([]byte(body), &md) != nil || !slices.Contains(md.Algs, "ES256") {
			t.Errorf("metadata: HTTP %d, dpop_signing_alg_values_supported %v; want ES256 in it", status, md.Algs)
		}
	})

	t.Run("jwt bound to the key", func(t *testing.T) {
		tok, err := s.ClientCredentialsDPoP(ctx, gateway, jwtResource, "mcp:tools", priv)
		if err != nil {
			t.Fatal(err)
		}
		header, claims := tokenClaims(t, tok)
		if header["typ"] != "at+jwt" || cnfJKT(claims) != key.JKT() || claims["aud"] != jwtResource || claims["scope"] != "mcp:tools" {
			t.Errorf("header %v claims %v: want typ at+jwt, cnf.jkt %s, aud %s, scope mcp:tools", header, claims, key.JKT(), jwtResource)
		}
	})

	t.Run("opaque bound, introspected with cnf.jkt", func(t *testing.T) {
		tok, err := s.ClientCredentialsDPoP(ctx, gateway, opaqueResource, "mcp:tools", priv)
		if err != nil {
			t.Fatal(err)
		}
		in, err := s.Introspect(ctx, gateway, tok)
		if err != nil {
			t.Fatal(err)
		}
		if in["active"] != true || cnfJKT(in) != key.JKT() || in["token_type"] != "DPoP" {
			t.Errorf("introspection %v: want active, cnf.jkt %s, token_type DPoP", in, key.JKT())
		}
	})

	t.Run("without a proof, Bearer as before", func(t *testing.T) {
		tok, err := s.ClientCredentials(ctx, gateway, jwtResource, "mcp:tools")
		if err != nil {
			t.Fatal(err)
		}
		if _, claims := tokenClaims(t, tok); claims["cnf"] != nil {
			t.Errorf("a token requested without a proof has cnf %v", claims["cnf"])
		}
		status, _, body := rawTokenRequest(ctx, t, s, gateway, url.Values{"grant_type": {"client_credentials"}, "resource": {jwtResource}})
		if status != http.StatusOK || !strings.Contains(body, `"token_type":"Bearer"`) {
			t.Errorf("HTTP %d %s, want a Bearer token", status, body)
		}
	})

	t.Run("authorization code bound to the key", func(t *testing.T) {
		_, code, verifier := userCode(ctx, t, s, app, "alice", jwtResource)
		tr, err := s.TokenDPoP(ctx, app, url.Values{
			"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {app.RedirectURIs[0]},
			"code_verifier": {verifier}, "resource": {jwtResource},
		}, priv)
		if err != nil {
			t.Fatal(err)
		}
		_, claims := tokenClaims(t, tr.AccessToken)
		if tr.TokenType != "DPoP" || cnfJKT(claims) != key.JKT() || claims["sub"] != "alice" {
			t.Errorf("token_type %q, claims %v: want DPoP, cnf.jkt %s, sub alice", tr.TokenType, claims, key.JKT())
		}
	})

	t.Run("bad and replayed proofs refused", func(t *testing.T) {
		m, err := s.Metadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		form := func() url.Values {
			return url.Values{"grant_type": {"client_credentials"}, "resource": {jwtResource}}
		}
		good := key.MustSign(t, dpoptest.Proof{Method: "POST", URL: m.TokenEndpoint})
		if status, _, body := rawTokenRequest(ctx, t, s, gateway, form(), good); status != http.StatusOK {
			t.Fatalf("good proof: HTTP %d %s", status, body)
		}
		for name, proof := range map[string]string{
			"replayed":    good,
			"wrong htu":   key.MustSign(t, dpoptest.Proof{Method: "POST", URL: m.Issuer + "/elsewhere"}),
			"wrong htm":   key.MustSign(t, dpoptest.Proof{Method: "GET", URL: m.TokenEndpoint}),
			"stale iat":   key.MustSign(t, dpoptest.Proof{Method: "POST", URL: m.TokenEndpoint, IssuedAt: time.Now().Add(-time.Hour)}),
			"alg none":    key.MustSign(t, dpoptest.Proof{Method: "POST", URL: m.TokenEndpoint, Alg: "none"}),
			"private jwk": key.MustSign(t, dpoptest.Proof{Method: "POST", URL: m.TokenEndpoint, PrivateJWK: true}),
		} {
			status, _, body := rawTokenRequest(ctx, t, s, gateway, form(), proof)
			var e struct{ Error string }
			_ = json.Unmarshal([]byte(body), &e)
			// A replay is the grant's error (invalid_grant); the others the proof's.
			want := "invalid_dpop_proof"
			if name == "replayed" {
				want = "invalid_grant"
			}
			if status != http.StatusBadRequest || e.Error != want {
				t.Errorf("%s: HTTP %d %s, want 400 %s", name, status, body, want)
			}
		}
	})
}

// TestDPoPOptions: with RequireNonce a proof without a nonce is refused with use_dpop_nonce
// and the nonce to use, and TokenDPoP retries with it; with Disabled the proof is ignored and
// the token is Bearer.
func TestDPoPOptions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	gateway := Client{ID: "gateway", Secret: "gateway-secret"}
	resources := []Resource{{Resource: jwtResource, Scope: "mcp:tools"}}
	priv, key := dpopKey(t)

	t.Run("RequireNonce", func(t *testing.T) {
		s := Start(t, Options{Clients: []Client{gateway}, Resources: resources, DPoP: DPoP{RequireNonce: true}})
		m, err := s.Metadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		proof := key.MustSign(t, dpoptest.Proof{Method: "POST", URL: m.TokenEndpoint})
		status, h, body := rawTokenRequest(ctx, t, s, gateway, url.Values{"grant_type": {"client_credentials"}}, proof)
		if status != http.StatusBadRequest || !strings.Contains(body, `"use_dpop_nonce"`) || h.Get("DPoP-Nonce") == "" {
			t.Errorf("a proof without a nonce: HTTP %d, DPoP-Nonce %q, %s; want 400 use_dpop_nonce with a nonce", status, h.Get("DPoP-Nonce"), body)
		}
		tok, err := s.ClientCredentialsDPoP(ctx, gateway, jwtResource, "mcp:tools", priv)
		if err != nil {
			t.Fatal(err)
		}
		if _, claims := tokenClaims(t, tok); cnfJKT(claims) != key.JKT() {
			t.Errorf("claims %v, want cnf.jkt %s", claims, key.JKT())
		}
	})

	t.Run("Disabled", func(t *testing.T) {
		s := Start(t, Options{Clients: []Client{gateway}, Resources: resources, DPoP: DPoP{Disabled: true}})
		tr, err := s.TokenDPoP(ctx, gateway, url.Values{"grant_type": {"client_credentials"}, "resource": {jwtResource}}, priv)
		if err != nil {
			t.Fatal(err)
		}
		if _, claims := tokenClaims(t, tr.AccessToken); tr.TokenType != "Bearer" || claims["cnf"] != nil {
			t.Errorf("token_type %q, cnf %v; want Bearer and none", tr.TokenType, claims["cnf"])
		}
		if _, err := s.ClientCredentialsDPoP(ctx, gateway, jwtResource, "mcp:tools", priv); err == nil || !strings.Contains(err.Error(), "did not bind") {
			t.Errorf("ClientCredentialsDPoP = %v, want an error saying the token is not bound", err)
		}
		status, body := get(ctx, t, s.Issuer+"/.well-known/oauth-authorization-server")
		if status != http.StatusOK || strings.Contains(body, "dpop_signing_alg_values_supported") {
			t.Errorf("metadata: HTTP %d %s; want no DPoP algorithms", status, body)
		}
	})

	t.Run("both", func(t *testing.T) {
		if _, err := (Options{DPoP: DPoP{Disabled: true, RequireNonce: true}}).config(); err == nil {
			t.Error("Disabled with RequireNonce accepted")
		}
	})
}
