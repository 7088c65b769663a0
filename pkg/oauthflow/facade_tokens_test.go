package oauthflow_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/jwks"
	"github.com/extauthz/extauthz/pkg/oauthflow"
	"github.com/extauthz/extauthz/pkg/token"
)

const mcpResource = "https://mcp.example.com/mcp"

func pemOf(t *testing.T, typ string, der []byte) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pkcs8(t *testing.T, k any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf(t, "PRIVATE KEY", der)
}

func ecKey(t *testing.T, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func rsaKey(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParseSigningKeyPEM(t *testing.T) {
	t.Parallel()
	ec := ecKey(t, elliptic.P256())
	rk := rsaKey(t, 2048)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(ec)
	for name, in := range map[string][]byte{
		"PKCS #8 EC":             pkcs8(t, ec),
		"SEC 1":                  pemOf(t, "EC PRIVATE KEY", sec1),
		"PKCS #1":                pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)),
		"PKCS #8 RSA":            pkcs8(t, rk),
		"PKCS #8 Ed25519":        pkcs8(t, ed),
		"with a certificate too": append(pemOf(t, "CERTIFICATE", []byte("not parsed")), pkcs8(t, ec)...),
	} {
		if _, err := oauthflow.ParseSigningKeyPEM(in); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	enc := &pem.Block{Type: "EC PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: sec1}
	for name, in := range map[string][]byte{
		"empty":              nil,
		"no key":             pemOf(t, "CERTIFICATE", []byte("x")),
		"two keys":           append(pkcs8(t, ec), pkcs8(t, rk)...),
		"encrypted PKCS #8":  pemOf(t, "ENCRYPTED PRIVATE KEY", []byte("x")),
		"encrypted SEC 1":    pem.EncodeToMemory(enc),
		"garbage in a block": pemOf(t, "PRIVATE KEY", []byte("garbage")),
	} {
		if _, err := oauthflow.ParseSigningKeyPEM(in); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), string(sec1[:8])) {
			t.Errorf("%s: the error shows key material", name)
		}
	}
}

func TestNewTokenSignerRefuses(t *testing.T) {
	t.Parallel()
	iss := "https://gw.example.com/oauth"
	ec := oauthflow.SigningKey{Signer: ecKey(t, elliptic.P256())}
	for name, o := range map[string]oauthflow.TokenSignerOptions{
		"no keys":           {Issuer: iss},
		"no issuer":         {Keys: []oauthflow.SigningKey{ec}},
		"an http issuer":    {Issuer: "http://gw.example.com/oauth", Keys: []oauthflow.SigningKey{ec}},
		"RSA 1024":          {Issuer: iss, Keys: []oauthflow.SigningKey{{Signer: rsaKey(t, 1024)}}},
		"P-521":             {Issuer: iss, Keys: []oauthflow.SigningKey{{Signer: ecKey(t, elliptic.P521())}}},
		"ES256 on RSA":      {Issuer: iss, Keys: []oauthflow.SigningKey{{Signer: rsaKey(t, 2048), Alg: "ES256"}}},
		"RS256 on EC":       {Issuer: iss, Keys: []oauthflow.SigningKey{{Signer: ec.Signer, Alg: "RS256"}}},
		"HS256":             {Issuer: iss, Keys: []oauthflow.SigningKey{{Signer: ec.Signer, Alg: "HS256"}}},
		"none":              {Issuer: iss, Keys: []oauthflow.SigningKey{{Signer: ec.Signer, Alg: "none"}}},
		"a key twice":       {Issuer: iss, Keys: []oauthflow.SigningKey{ec, ec}},
		"an unknown active": {Issuer: iss, Keys: []oauthflow.SigningKey{ec}, Active: "nope"},
		"a nil signer":      {Issuer: iss, Keys: []oauthflow.SigningKey{{}}},
		"a negative TTL":    {Issuer: iss, Keys: []oauthflow.SigningKey{ec}, TTL: -time.Second},
	} {
		if _, err := oauthflow.NewTokenSigner(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// verifierFor is pkg/token's JWT verifier, as a resource trusting the facade builds it, with
// the facade's key set fetched over HTTP from jwksURL.
func verifierFor(t *testing.T, issuer, jwksURL string, now func() time.Time) *token.IssuerSet {
	t.Helper()
	src := jwks.New(func(context.Context) (string, error) { return jwksURL, nil }, jwks.Options{Now: now})
	v, err := token.NewIssuerSet(token.Options{
		Issuers: map[string]token.Issuer{issuer: {Mode: token.ModeJWT, Keys: src}},
		Leeway:  time.Minute,
		Now:     now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The tokens the facade mints verify with pkg/token as any trusted issuer's do, through its
// published key set: the facade can be a trusted issuer of the resource. Changed, they do not.
func TestMintedTokensVerify(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		key  crypto.Signer
		alg  string
	}{
		{"ES256", ecKey(t, elliptic.P256()), ""},
		{"ES384", ecKey(t, elliptic.P384()), ""},
		{"RS256", rsaKey(t, 2048), ""},
		{"PS256", rsaKey(t, 2048), "PS256"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			clock := testkit.NewClockAt(time.Now().Truncate(time.Second))
			mux := http.NewServeMux()
			srv := httptest.NewServer(mux)
			defer srv.Close()
			issuer := srv.URL + "/oauth"
			signer, err := oauthflow.NewTokenSigner(oauthflow.TokenSignerOptions{
				Issuer: issuer, Keys: []oauthflow.SigningKey{{Signer: c.key, Alg: c.alg}}, Now: clock.Now,
			})
			if err != nil {
				t.Fatal(err)
			}
			mux.Handle("/oauth/jwks", signer)
			v := verifierFor(t, issuer, srv.URL+"/oauth/jwks", clock.Now)
			trusted := map[string]struct{}{issuer: {}}

			raw, exp, err := signer.Mint(oauthflow.AccessToken{
				Subject: "user-42", ClientID: "client-1", Audience: mcpResource,
				Scopes: []string{"mcp:tools", "mcp:read"}, AuthTime: clock.Now().Add(-time.Minute),
			})
			if err != nil {
				t.Fatal(err)
			}
			if !exp.Equal(clock.Now().Add(time.Hour)) {
				t.Errorf("expiry %v, want an hour from now", exp)
			}
			claims, err := v.Verify(t.Context(), raw, trusted)
			if err != nil {
				t.Fatalf("pkg/token refuses the facade's token: %v", err)
			}
			// In process, the signer is the key source itself: every key is held, so the
			// gateway verifies the facade's tokens without the network.
			inProcess, err := token.NewIssuerSet(token.Options{Issuers: map[string]token.Issuer{issuer: {Keys: signer}}, Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			if held, err := inProcess.VerifyHeld(raw, trusted); err != nil || held.Subject != claims.Subject || !held.Expiry.Equal(claims.Expiry) {
				t.Errorf("verified with the signer's held keys: %+v, %v", held, err)
			}
			if k := signer.HeldKey(signer.ActiveKeyID(), "HS256"); k != nil {
				t.Errorf("HeldKey hands out the key for another alg: %T", k)
			}
			if k := signer.HeldKey("not-a-kid", jwsAlg(t, raw)); k != nil {
				t.Errorf("HeldKey for an unknown kid: %T", k)
			}
			if claims.Subject != "user-42" || claims.ClientID != "client-1" || claims.Issuer != issuer ||
				!claims.HasAudience(map[string]struct{}{mcpResource: {}}) || claims.Scope != "mcp:tools mcp:read" ||
				!claims.Expiry.Equal(exp) {
				t.Errorf("verified claims %+v %+v", claims, claims.Grant)
			}

			header, payload := decodeJWT(t, raw)
			if header["typ"] != "at+jwt" || header["alg"] != map[string]string{"ES256": "ES256", "ES384": "ES384", "RS256": "RS256", "PS256": "PS256"}[c.name] ||
				header["kid"] != signer.ActiveKeyID() {
				t.Errorf("header %v", header)
			}
			for _, claim := range []string{"iss", "sub", "aud", "client_id", "scope", "iat", "exp", "jti", "auth_time"} {
				if _, ok := payload[claim]; !ok {
					t.Errorf("no %s claim: %v", claim, payload)
				}
			}
			if jti, _ := payload["jti"].(string); len(jti) < 22 {
				t.Errorf("jti %q: fewer than 128 bits", jti)
			}

			// Tampered: the payload changed under the same signature; the signature changed.
			parts := strings.Split(raw, ".")
			payload["sub"] = "admin"
			forged, _ := json.Marshal(payload)
			for name, tok := range map[string]string{
				"another subject":     parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2],
				"a changed signature": parts[0] + "." + parts[1] + "." + flipLast(parts[2]),
				"no signature":        parts[0] + "." + parts[1] + ".",
			} {
				if _, err := v.Verify(t.Context(), tok, trusted); !errors.Is(err, token.ErrSignature) && !errors.Is(err, token.ErrMalformed) {
					t.Errorf("%s: %v, want a signature or format refusal", name, err)
				}
			}
			// Expired: refused past exp (and the leeway).
			clock.Advance(time.Hour + 2*time.Minute)
			if _, err := v.Verify(t.Context(), raw, trusted); !errors.Is(err, token.ErrExpired) {
				t.Errorf("an hour and two minutes later: %v, want ErrExpired", err)
			}
		})
	}
}

func flipLast(s string) string {
	b := []byte(s)
	i := len(b) - 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func decodeJWT(t *testing.T, raw string) (header, payload map[string]any) {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", raw)
	}
	for i, dst := range []*map[string]any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, payload
}

// Rotation: both keys published, the active one signs; tokens of the other still verify;
// a key that is not published does not; the key set holds no private part; kids are RFC 7638
// thumbprints.
func TestTokenSignerRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey := ecKey(t, elliptic.P256()), rsaKey(t, 2048)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	issuer := srv.URL + "/oauth"
	before, err := oauthflow.NewTokenSigner(oauthflow.TokenSignerOptions{Issuer: issuer, Keys: []oauthflow.SigningKey{{Signer: oldKey}}})
	if err != nil {
		t.Fatal(err)
	}
	probe, err := oauthflow.NewTokenSigner(oauthflow.TokenSignerOptions{Issuer: issuer, Keys: []oauthflow.SigningKey{{Signer: newKey}}})
	if err != nil {
		t.Fatal(err)
	}
	during, err := oauthflow.NewTokenSigner(oauthflow.TokenSignerOptions{
		Issuer: issuer, Keys: []oauthflow.SigningKey{{Signer: oldKey}, {Signer: newKey}}, Active: probe.ActiveKeyID(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if during.ActiveKeyID() != probe.ActiveKeyID() || during.KeyIDs()[0] != before.ActiveKeyID() {
		t.Fatalf("kids %v, active %s", during.KeyIDs(), during.ActiveKeyID())
	}
	// RFC 7638 §3: the SHA-256 of {"crv","kty","x","y"} in that order, without spaces.
	pub := oldKey.PublicKey
	xy, _ := pub.Bytes()
	canon := `{"crv":"P-256","kty":"EC","x":"` + base64.RawURLEncoding.EncodeToString(xy[1:33]) +
		`","y":"` + base64.RawURLEncoding.EncodeToString(xy[33:]) + `"}`
	sum := sha256.Sum256([]byte(canon))
	if want := base64.RawURLEncoding.EncodeToString(sum[:]); before.ActiveKeyID() != want {
		t.Errorf("kid %s, want the RFC 7638 thumbprint %s", before.ActiveKeyID(), want)
	}

	mux.Handle("/oauth/jwks", during)
	v := verifierFor(t, issuer, srv.URL+"/oauth/jwks", nil)
	trusted := map[string]struct{}{issuer: {}}
	at := oauthflow.AccessToken{Subject: "u", ClientID: "c", Audience: mcpResource}
	for name, s := range map[string]*oauthflow.TokenSigner{"the old key": before, "the new key": during} {
		raw, _, err := s.Mint(at)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(t.Context(), raw, trusted); err != nil {
			t.Errorf("a token of %s: %v", name, err)
		}
	}
	stranger, err := oauthflow.NewTokenSigner(oauthflow.TokenSignerOptions{Issuer: issuer, Keys: []oauthflow.SigningKey{{Signer: ecKey(t, elliptic.P256())}}})
	if err != nil {
		t.Fatal(err)
	}
	raw, _, err := stranger.Mint(at)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), raw, trusted); err == nil {
		t.Error("a token of an unpublished key verified")
	}

	r := httptest.NewRecorder()
	during.ServeHTTP(r, httptest.NewRequest(http.MethodGet, "/oauth/jwks", nil))
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(r.Body.Bytes(), &set); err != nil || r.Code != http.StatusOK || len(set.Keys) != 2 {
		t.Fatalf("JWKS %d %s", r.Code, r.Body)
	}
	for i, k := range set.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if _, ok := k[private]; ok {
				t.Errorf("key %d publishes %q", i, private)
			}
		}
		if k["kid"] != during.KeyIDs()[i] || k["use"] != "sig" || k["alg"] != []string{"ES256", "RS256"}[i] {
			t.Errorf("key %d: %v", i, k)
		}
	}
}

func TestMintRefuses(t *testing.T) {
	t.Parallel()
	clock := testkit.NewClockAt(facadeClock)
	s, err := oauthflow.NewTokenSigner(oauthflow.TokenSignerOptions{
		Issuer: "https://gw.example.com/oauth", Keys: []oauthflow.SigningKey{{Signer: ecKey(t, elliptic.P256())}},
		TTL: 10 * time.Minute, Now: clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, at := range map[string]oauthflow.AccessToken{
		"no subject":     {ClientID: "c", Audience: mcpResource},
		"no client":      {Subject: "u", Audience: mcpResource},
		"no audience":    {Subject: "u", ClientID: "c"},
		"a spaced scope": {Subject: "u", ClientID: "c", Audience: mcpResource, Scopes: []string{"a b"}},
	} {
		if _, _, err := s.Mint(at); err == nil {
			t.Errorf("%s: minted", name)
		}
	}
	// A shorter TTL per token is honoured; a longer one is not.
	for ttl, want := range map[time.Duration]time.Duration{time.Hour: 10 * time.Minute, time.Minute: time.Minute} {
		_, exp, err := s.Mint(oauthflow.AccessToken{Subject: "u", ClientID: "c", Audience: mcpResource, TTL: ttl})
		if err != nil || !exp.Equal(facadeClock.Add(want)) {
			t.Errorf("a per-token TTL of %v: exp in %v, %v; want %v", ttl, exp.Sub(facadeClock), err, want)
		}
	}
}

// jwsAlg is the alg of a JWS's header.
func jwsAlg(t *testing.T, raw string) string {
	t.Helper()
	h, _ := decodeJWT(t, raw)
	alg, _ := h["alg"].(string)
	return alg
}
