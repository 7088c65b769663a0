package oidctest

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	jwtResource    = "http://127.0.0.1:1/mcp"
	opaqueResource = "http://127.0.0.1:1/opaque"
	// otherAudResource's tokens carry another aud than the resource requested.
	otherAudResource = "http://127.0.0.1:1/other-aud"
)

func TestServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	clientKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	gateway := Client{ID: "gateway", Secret: "gateway-secret", AuthMethod: "client_secret_basic"}
	other := Client{ID: "other", Secret: "other-secret"}
	pkjwt := Client{ID: "pkjwt", AuthMethod: "private_key_jwt", JWKS: PublicJWKS(t, "client-key", &clientKey.PublicKey)}

	s := Start(t, Options{
		Clients: []Client{gateway, other, pkjwt},
		Resources: []Resource{
			{Resource: jwtResource, Scope: "mcp:tools", Format: "jwt", TTL: 120 * time.Second},
			{Resource: opaqueResource, Scope: "mcp:tools mcp:read", Format: "opaque"},
			{Resource: otherAudResource, Scope: "mcp:tools", Audience: "https://elsewhere.example/mcp"},
		},
		Scopes: []string{"mcp:read"},
	})
	if want := fmt.Sprintf("http://127.0.0.1:%d", s.Port); s.Issuer != want {
		t.Fatalf("Issuer = %q, want %q", s.Issuer, want)
	}

	t.Run("root issuer metadata", func(t *testing.T) {
		status, body := get(ctx, t, s.Issuer+"/.well-known/oauth-authorization-server")
		if status != http.StatusOK {
			t.Fatalf("GET RFC 8414 metadata: HTTP %d %s", status, body)
		}
		var md Metadata
		if err := json.Unmarshal([]byte(body), &md); err != nil {
			t.Fatal(err)
		}
		if md.Issuer != s.Issuer || md.IntrospectionEndpoint == "" || md.RevocationEndpoint == "" {
			t.Errorf("RFC 8414 metadata %+v: want issuer %q and introspection and revocation endpoints", md, s.Issuer)
		}
	})

	t.Run("jwt access token", func(t *testing.T) {
		tok, err := s.ClientCredentials(ctx, gateway, jwtResource, "mcp:tools")
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			t.Fatalf("token %q has %d dot-separated parts, want 3", tok, len(parts))
		}
		var header struct{ Alg, Typ, Kid string }
		var claims struct {
			Iss      string `json:"iss"`
			Aud      any    `json:"aud"`
			Sub      string `json:"sub"`
			ClientID string `json:"client_id"`
			Scope    string `json:"scope"`
			Iat      int64  `json:"iat"`
			Exp      int64  `json:"exp"`
		}
		decodeSegment(t, parts[0], &header)
		decodeSegment(t, parts[1], &claims)
		if claims.Aud != jwtResource {
			t.Errorf("aud = %#v, want %q", claims.Aud, jwtResource)
		}
		if claims.Iss != s.Issuer {
			t.Errorf("iss = %q, want %q", claims.Iss, s.Issuer)
		}
		if claims.ClientID != "gateway" || claims.Sub != "gateway" || claims.Scope != "mcp:tools" {
			t.Errorf("client_id, sub, scope = %q, %q, %q; want gateway, gateway, mcp:tools",
				claims.ClientID, claims.Sub, claims.Scope)
		}
		if claims.Exp-claims.Iat != 120 {
			t.Errorf("exp - iat = %d, want the resource's TTL 120", claims.Exp-claims.Iat)
		}
		if header.Alg != "RS256" || header.Typ != "at+jwt" || header.Kid == "" {
			t.Errorf("header = %+v, want alg RS256, typ at+jwt and a kid", header)
		}
		verifyRS256(ctx, t, s, tok, header.Kid)

		// JWT access tokens are not introspectable with oidc-provider.
		_, err = s.Introspect(ctx, gateway, tok)
		var re *ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest || re.Code != "unsupported_token_type" {
			t.Errorf("Introspect(jwt) error = %v, want HTTP 400 unsupported_token_type", err)
		}
	})

	t.Run("opaque token introspection and revocation", func(t *testing.T) {
		tok, err := s.ClientCredentials(ctx, gateway, opaqueResource, "mcp:tools")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(tok, ".") != 0 {
			t.Fatalf("opaque token %q looks like a JWT", tok)
		}
		// Another confidential client (e.g. the gateway introspecting end users' tokens)
		// may introspect it too.
		for _, as := range []Client{gateway, other} {
			got, err := s.Introspect(ctx, as, tok)
			if err != nil {
				t.Fatalf("Introspect as %s: %v", as.ID, err)
			}
			iat, _ := got["iat"].(float64)
			exp, _ := got["exp"].(float64)
			want := map[string]any{
				"active":     true,
				"client_id":  "gateway",
				"iss":        s.Issuer,
				"aud":        opaqueResource,
				"scope":      "mcp:tools",
				"token_type": "Bearer",
				"iat":        iat,
				"exp":        exp,
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Introspect as %s = %v, want %v", as.ID, got, want)
			}
			if exp-iat != defaultTTL.Seconds() {
				t.Errorf("exp - iat = %v, want the default TTL %v", exp-iat, defaultTTL.Seconds())
			}
		}

		if err := s.Revoke(ctx, gateway, tok); err != nil {
			t.Fatal(err)
		}
		got, err := s.Introspect(ctx, gateway, tok)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]any{"active": false}; !reflect.DeepEqual(got, want) {
			t.Errorf("Introspect after Revoke = %v, want %v", got, want)
		}
	})

	t.Run("audience override", func(t *testing.T) {
		tok, err := s.ClientCredentials(ctx, gateway, otherAudResource, "mcp:tools")
		if err != nil {
			t.Fatal(err)
		}
		var claims struct {
			Aud any `json:"aud"`
		}
		decodeSegment(t, strings.Split(tok, ".")[1], &claims)
		if claims.Aud != "https://elsewhere.example/mcp" {
			t.Errorf("aud = %#v, want the configured audience", claims.Aud)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		var re *ResponseError
		_, err := s.ClientCredentials(ctx, gateway, "http://127.0.0.1:1/unknown", "mcp:tools")
		if !errors.As(err, &re) || re.Code != "invalid_target" {
			t.Errorf("unknown resource: error = %v, want invalid_target", err)
		}
		bad := gateway
		bad.Secret = "wrong"
		_, err = s.ClientCredentials(ctx, bad, jwtResource, "mcp:tools")
		if !errors.As(err, &re) || re.StatusCode != http.StatusUnauthorized || re.Code != "invalid_client" {
			t.Errorf("wrong secret: error = %v, want HTTP 401 invalid_client", err)
		}
	})

	t.Run("private_key_jwt introspection audiences", func(t *testing.T) {
		tok, err := s.ClientCredentials(ctx, gateway, opaqueResource, "mcp:read")
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.Metadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			aud  string
			want int
		}{
			{s.Issuer, http.StatusOK},
			{m.TokenEndpoint, http.StatusOK},
			{m.IntrospectionEndpoint, http.StatusOK},
			{s.Issuer + "/", http.StatusUnauthorized},
			{m.RevocationEndpoint, http.StatusUnauthorized},
		} {
			form := url.Values{
				"token":                 {tok},
				"client_id":             {pkjwt.ID},
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
				"client_assertion":      {clientAssertion(t, clientKey, "client-key", pkjwt.ID, tc.aud)},
			}
			status, body := postForm(ctx, t, m.IntrospectionEndpoint, form)
			if status != tc.want {
				t.Errorf("aud %s: HTTP %d %s, want %d", tc.aud, status, body, tc.want)
				continue
			}
			if status == http.StatusOK && !strings.Contains(body, `"active":true`) {
				t.Errorf("aud %s: %s, want an active token", tc.aud, body)
			}
		}
	})
}

func TestIssuerPath(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	s := Start(t, Options{IssuerPath: "/tenant1"})
	if !strings.HasSuffix(s.Issuer, "/tenant1") {
		t.Fatalf("Issuer = %q, want it to end with /tenant1", s.Issuer)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", s.Port)
	for _, path := range []string{
		"/.well-known/oauth-authorization-server/tenant1", // RFC 8414, path-inserted
		"/.well-known/openid-configuration/tenant1",       // OIDC path-inserted variant
		"/tenant1/.well-known/openid-configuration",       // OIDC Discovery, path-appended
	} {
		status, body := get(ctx, t, base+path)
		if status != http.StatusOK {
			t.Errorf("GET %s: HTTP %d %s", path, status, body)
			continue
		}
		var md Metadata
		if err := json.Unmarshal([]byte(body), &md); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		if md.Issuer != s.Issuer {
			t.Errorf("GET %s: issuer %q, want %q", path, md.Issuer, s.Issuer)
		}
		if md.TokenEndpoint != s.Issuer+"/token" {
			t.Errorf("GET %s: token_endpoint %q, want %q", path, md.TokenEndpoint, s.Issuer+"/token")
		}
	}
	// The root issuer's metadata location belongs to no issuer here.
	if status, body := get(ctx, t, base+"/.well-known/oauth-authorization-server"); status != http.StatusNotFound {
		t.Errorf("GET root RFC 8414 metadata: HTTP %d %s, want 404", status, body)
	}
}

// decodeSegment decodes one base64url JWT segment into v.
func decodeSegment(t *testing.T, seg string, v any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("decoding JWT segment %q: %v", seg, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decoding JWT segment %s: %v", b, err)
	}
}

// verifyRS256 checks tok's signature with the key kid from the server's jwks_uri, and that
// kid is the key's RFC 7638 thumbprint.
func verifyRS256(ctx context.Context, t *testing.T, s *Server, tok, kid string) {
	t.Helper()
	m, err := s.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	status, body := get(ctx, t, m.JWKSURI)
	if status != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d %s", m.JWKSURI, status, body)
	}
	var set struct {
		Keys []struct{ Kty, Kid, Use, Alg, N, E string }
	}
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		t.Fatal(err)
	}
	for _, k := range set.Keys {
		if k.Kid != kid {
			continue
		}
		thumb := sha256.Sum256([]byte(`{"e":"` + k.E + `","kty":"RSA","n":"` + k.N + `"}`))
		if got := base64.RawURLEncoding.EncodeToString(thumb[:]); got != kid {
			t.Errorf("kid %q is not the key's RFC 7638 thumbprint %q", kid, got)
		}
		if k.Use != "sig" || k.Alg != "RS256" {
			t.Errorf("key use, alg = %q, %q; want sig, RS256", k.Use, k.Alg)
		}
		n, _ := base64.RawURLEncoding.DecodeString(k.N)
		e, _ := base64.RawURLEncoding.DecodeString(k.E)
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		i := strings.LastIndexByte(tok, '.')
		sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
		if err != nil {
			t.Fatal(err)
		}
		digest := sha256.Sum256([]byte(tok[:i]))
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
			t.Errorf("JWT signature does not verify with key %s: %v", kid, err)
		}
		return
	}
	t.Errorf("kid %q not in %s: %s", kid, m.JWKSURI, body)
}

// clientAssertion is an RFC 7523 client authentication JWT, signed RS256, with a fresh jti.
func clientAssertion(t *testing.T, key *rsa.PrivateKey, kid, clientID, aud string) string {
	t.Helper()
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	now := time.Now().Unix()
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	payload, _ := json.Marshal(map[string]any{
		"iss": clientID, "sub": clientID, "aud": aud,
		"jti": base64.RawURLEncoding.EncodeToString(jti), "iat": now, "exp": now + 60,
	})
	input := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func get(ctx context.Context, t *testing.T, u string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return send(t, req)
}

func postForm(ctx context.Context, t *testing.T, u string, form url.Values) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return send(t, req)
}

func send(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestRegistrationIgnoresScope: oidc-provider limits a dynamically registered client to the
// scope it registered with, unless the option drops that scope from the registration.
func TestRegistrationIgnoresScope(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		t.Run(fmt.Sprintf("RegistrationIgnoresScope=%v", ignore), func(t *testing.T) {
			s := Start(t, Options{
				Resources:                []Resource{{Resource: jwtResource, Scope: "mcp:tools mcp:admin"}},
				RegistrationIgnoresScope: ignore,
			})
			// Each subtest's own deadline, counted once its server is up.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			m, err := s.Metadata(ctx)
			if err != nil {
				t.Fatal(err)
			}
			reg, _ := json.Marshal(map[string]any{
				"grant_types": []string{"client_credentials"}, "response_types": []string{}, "redirect_uris": []string{},
				"token_endpoint_auth_method": "client_secret_basic", "scope": "mcp:tools",
			})
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.RegistrationEndpoint, strings.NewReader(string(reg)))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			status, body := send(t, req)
			var c struct {
				ClientID     string  `json:"client_id"`
				ClientSecret string  `json:"client_secret"`
				Scope        *string `json:"scope"`
			}
			if status != http.StatusCreated || json.Unmarshal([]byte(body), &c) != nil || c.ClientID == "" {
				t.Fatalf("registration: HTTP %d %s", status, body)
			}
			if (c.Scope == nil) != ignore {
				t.Errorf("registered client scope = %v, want it dropped: %v", c.Scope, ignore)
			}
			_, err = s.ClientCredentials(ctx, Client{ID: c.ClientID, Secret: c.ClientSecret}, jwtResource, "mcp:tools mcp:admin")
			var re *ResponseError
			switch {
			case ignore && err != nil:
				t.Errorf("a scope outside the registration request: %v, want a token", err)
			case !ignore && (!errors.As(err, &re) || re.Code != "invalid_scope"):
				t.Errorf("a scope outside the registered one: %v, want invalid_scope", err)
			}
		})
	}
}
