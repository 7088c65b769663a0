package introspect

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/extauthz/extauthz/pkg/token"
)

const issuer = "https://as.example.com"

// server is an introspection endpoint on a loopback port that records
// what it was sent and answers with a status and body chosen by the test.
type server struct {
	*httptest.Server
	status int
	body   string
	delay  time.Duration
	form   atomic.Pointer[http.Request]
	calls  atomic.Int32
}

func newServer(t *testing.T) *server {
	s := &server{status: http.StatusOK, body: `{"active":false}`}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.form.Store(r)
		if s.delay > 0 {
			select {
			case <-time.After(s.delay):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(s.status)
		_, _ = w.Write([]byte(s.body))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) client(t *testing.T, mod func(*Options)) *Client {
	t.Helper()
	o := Options{
		Issuer:       issuer,
		Endpoint:     func(context.Context) (string, error) { return s.URL + "/introspect", nil },
		ClientID:     "gate way",
		ClientSecret: "s3cr:et",
		Timeout:      2 * time.Second,
		CacheTTL:     30 * time.Second,
		Now:          func() time.Time { return now },
	}
	if mod != nil {
		mod(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var now = time.Unix(1_800_000_000, 0)

func active(extra string) string { return activeAs("Bearer", extra) }

// activeAs is an active answer with token_type tokenType.
func activeAs(tokenType, extra string) string {
	return `{"active":true,"iss":"` + issuer + `","sub":"alice","client_id":"app","scope":"mcp:tools mcp:read",` +
		`"aud":["https://mcp.example.com/mcp"],"exp":1800000600,"iat":1799999990,"token_type":"` + tokenType + `"` + extra + `}`
}

// jkt is a JWK SHA-256 thumbprint (RFC 7638; the example of RFC 9449 §6.1),
// x5t a certificate's (RFC 8705 §3.1).
const (
	jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	x5t = "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"
)

func TestActiveTokenWithClientSecretBasic(t *testing.T) {
	s := newServer(t)
	s.body = active("")
	c, err := s.client(t, nil).Introspect(context.Background(), "opaque-token.1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "alice" || c.ClientID != "app" || c.Scope != "mcp:tools mcp:read" || c.Issuer != issuer ||
		strings.Join(c.Audience, " ") != "https://mcp.example.com/mcp" || !c.Expiry.Equal(time.Unix(1800000600, 0)) ||
		c.CacheTTL != 30*time.Second {
		t.Errorf("claims %+v %+v", c, c.Grant)
	}
	r := s.form.Load()
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" ||
		r.PostForm.Get("token") != "opaque-token.1" || r.PostForm.Get("token_type_hint") != "access_token" {
		t.Errorf("request %s %v %v", r.Method, r.Header, r.PostForm)
	}
	// RFC 6749 §2.3.1: id and secret are form-encoded, then base64.
	id, secret, ok := r.BasicAuth()
	if !ok || id != "gate+way" || secret != "s3cr%3Aet" {
		t.Errorf("basic auth %q %q %v", id, secret, ok)
	}
	if r.PostForm.Has("client_secret") {
		t.Error("secret sent in the body as well")
	}
}

func TestClientSecretPost(t *testing.T) {
	s := newServer(t)
	s.body = active("")
	if _, err := s.client(t, func(o *Options) { o.AuthMethod = ClientSecretPost }).Introspect(context.Background(), "t"); err != nil {
		t.Fatal(err)
	}
	r := s.form.Load()
	if _, _, ok := r.BasicAuth(); ok {
		t.Error("Authorization header sent with client_secret_post")
	}
	if r.PostForm.Get("client_id") != "gate way" || r.PostForm.Get("client_secret") != "s3cr:et" {
		t.Errorf("form %v", r.PostForm)
	}
}

func TestPrivateKeyJWT(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := NewAssertionSigner(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), "k1")
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t)
	s.body = active("")
	c := s.client(t, func(o *Options) { o.AuthMethod, o.ClientSecret, o.Signer = PrivateKeyJWT, "", signer })
	var jtis []string
	for range 2 {
		if _, err := c.Introspect(context.Background(), "t"); err != nil {
			t.Fatal(err)
		}
		r := s.form.Load()
		if r.PostForm.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" ||
			r.PostForm.Has("client_secret") {
			t.Fatalf("form %v", r.PostForm)
		}
		msg, err := jws.Verify([]byte(r.PostForm.Get("client_assertion")), jws.WithKey(jwa.ES256(), &key.PublicKey))
		if err != nil {
			t.Fatalf("assertion does not verify with the client's key: %v", err)
		}
		var claims struct {
			Iss, Sub, Aud, Jti string
			Iat, Exp           int64
		}
		if err := json.Unmarshal(msg, &claims); err != nil {
			t.Fatal(err)
		}
		if claims.Iss != "gate way" || claims.Sub != "gate way" || claims.Aud != issuer || claims.Jti == "" ||
			claims.Iat != now.Unix() || claims.Exp != now.Add(time.Minute).Unix() {
			t.Errorf("assertion claims %+v", claims)
		}
		jtis = append(jtis, claims.Jti)
	}
	if jtis[0] == jtis[1] {
		t.Error("jti reused across assertions")
	}
}

func TestAnswers(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		names  token.ClaimNames
		want   error // nil: active
		check  func(*token.Claims) bool
	}{
		{"inactive", 200, `{"active":false}`, token.ClaimNames{}, token.ErrInactive, nil},
		{"active missing", 200, `{"sub":"alice"}`, token.ClaimNames{}, token.ErrInactive, nil},
		{"active as a string", 200, `{"active":"true","exp":1800000600}`, token.ClaimNames{}, token.ErrInactive, nil},
		{"refresh token", 200, active(`,"token_type":"refresh_token"`), token.ClaimNames{}, token.ErrNotAccessToken, nil},
		// RFC 9449 §6.2: a DPoP-bound token is active, its claims carry
		// the thumbprint (refused as Bearer by the decision).
		{"dpop bound", 200, active(`,"cnf":{"jkt":"` + jkt + `"}`), token.ClaimNames{}, nil, func(c *token.Claims) bool {
			return c.JKT == jkt && c.Subject == "alice"
		}},
		{"dpop bound, typed DPoP (oidc-provider)", 200, activeAs("DPoP", `,"cnf":{"jkt":"`+jkt+`"}`), token.ClaimNames{}, nil, func(c *token.Claims) bool {
			return c.JKT == jkt
		}},
		{"dpop bound, typed bearer", 200, activeAs("bearer", `,"cnf":{"jkt":"`+jkt+`"}`), token.ClaimNames{}, nil, func(c *token.Claims) bool {
			return c.JKT == jkt
		}},
		{"cnf null is no binding", 200, active(`,"cnf":null`), token.ClaimNames{}, nil, func(c *token.Claims) bool { return c.JKT == "" }},
		{"no cnf is no binding", 200, active(``), token.ClaimNames{}, nil, func(c *token.Claims) bool { return c.JKT == "" }},
		{"typed DPoP without cnf", 200, activeAs("DPoP", ``), token.ClaimNames{}, token.ErrNotAccessToken, nil},
		{"typed DPoP with an mTLS cnf", 200, activeAs("DPoP", `,"cnf":{"x5t#S256":"`+x5t+`"}`), token.ClaimNames{}, token.ErrNotAccessToken, nil},
		{"dpop bound refresh token", 200, activeAs("refresh_token", `,"cnf":{"jkt":"`+jkt+`"}`), token.ClaimNames{}, token.ErrNotAccessToken, nil},
		{"mtls bound (x5t#S256)", 200, active(`,"cnf":{"x5t#S256":"` + x5t + `"}`), token.ClaimNames{}, token.ErrNotAccessToken, nil},
		{"jkt and x5t#S256", 200, active(`,"cnf":{"jkt":"` + jkt + `","x5t#S256":"` + x5t + `"}`), token.ClaimNames{}, token.ErrNotAccessToken, nil},
		{"cnf jwk", 200, active(`,"cnf":{"jwk":{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}`), token.ClaimNames{}, token.ErrNotAccessToken, nil},
		{"cnf empty", 200, active(`,"cnf":{}`), token.ClaimNames{}, token.ErrNotAccessToken, nil},
		{"cnf a string", 200, active(`,"cnf":"` + jkt + `"`), token.ClaimNames{}, token.ErrNotAccessToken, nil},
		{"jkt too short", 200, active(`,"cnf":{"jkt":"` + jkt[:42] + `"}`), token.ClaimNames{}, token.ErrNotAccessToken, nil},
		{"jkt padded", 200, active(`,"cnf":{"jkt":"` + jkt + `="}`), token.ClaimNames{}, token.ErrNotAccessToken, nil},
		{"jkt twice", 200, active(`,"cnf":{"jkt":"` + jkt + `","jkt":"` + jkt + `"}`), token.ClaimNames{}, token.ErrNotAccessToken, nil},
		{"JKT", 200, active(`,"cnf":{"JKT":"` + jkt + `"}`), token.ClaimNames{}, token.ErrNotAccessToken, nil},
		{"other issuer", 200, `{"active":true,"iss":"https://evil.example.com","exp":1800000600}`, token.ClaimNames{}, token.ErrUnknownIssuer, nil},
		{"expired", 200, `{"active":true,"exp":1799990000}`, token.ClaimNames{}, token.ErrExpired, nil},
		{"not yet valid", 200, `{"active":true,"exp":1800000600,"nbf":1800009000}`, token.ClaimNames{}, token.ErrNotYetValid, nil},
		// Kept for revocation watermarks (pkg/revocation), as from a JWT.
		{"iat and sid", 200, active(`,"sid":"s-1"`), token.ClaimNames{}, nil, func(c *token.Claims) bool {
			return c.IssuedAt == 1799999990 && c.SessionID == "s-1"
		}},
		{"no iat, no sid", 200, `{"active":true,"sub":"alice","exp":1800000600}`, token.ClaimNames{}, nil, func(c *token.Claims) bool {
			return c.IssuedAt == 0 && c.SessionID == ""
		}},
		{"sid not a string", 200, active(`,"sid":7`), token.ClaimNames{}, token.ErrUnavailable, nil},
		{"no iss and no exp", 200, `{"active":true,"scope":"a"}`, token.ClaimNames{}, nil, func(c *token.Claims) bool {
			return c.Issuer == issuer && c.Expiry.Equal(now.Add(30*time.Second))
		}},
		{"claim names", 200, `{"active":true,"exp":1800000600,"client_id":"3n4b","scp":["x","y"],"cid":"okta-app"}`,
			token.ClaimNames{Audience: "client_id", Scope: "scp", ClientID: "cid"}, nil, func(c *token.Claims) bool {
				return strings.Join(c.Audience, ",") == "3n4b" && c.Scope == "x y" && c.ClientID == "okta-app"
			}},
		{"server error", 500, `oops`, token.ClaimNames{}, token.ErrUnavailable, nil},
		{"rate limited", 429, ``, token.ClaimNames{}, token.ErrUnavailable, nil},
		{"client refused", 401, `{"error":"invalid_client"}`, token.ClaimNames{}, token.ErrUnavailable, nil},
		{"not json", 200, `<html>`, token.ClaimNames{}, token.ErrUnavailable, nil},
		{"json array", 200, `[{"active":true}]`, token.ClaimNames{}, token.ErrUnavailable, nil},
		{"huge", 200, `{"active":true,"x":"` + strings.Repeat("a", 70<<10) + `"}`, token.ClaimNames{}, token.ErrUnavailable, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			s.status, s.body = tc.status, tc.body
			c, err := s.client(t, func(o *Options) { o.Claims = tc.names }).Introspect(context.Background(), "t")
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				// Only the server's own verdicts may be cached.
				transient := errors.Is(err, token.ErrUnavailable) || errors.Is(err, token.ErrNotYetValid)
				if token.Definitive(err) == transient {
					t.Errorf("Definitive(%v) = %v", err, token.Definitive(err))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("claims %+v %+v", c, c.Grant)
			}
		})
	}
}

func TestSlowServerIsUnavailableWithinTheDeadline(t *testing.T) {
	s := newServer(t)
	s.body, s.delay = active(""), 5*time.Second
	c := s.client(t, func(o *Options) { o.Timeout = 50 * time.Millisecond })
	start := time.Now()
	_, err := c.Introspect(context.Background(), "t")
	if !errors.Is(err, token.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	// Not a timing assertion on speed: the call must not wait for the
	// server's 5s answer.
	if waited := time.Since(start); waited >= s.delay {
		t.Errorf("waited %v for a server slower than the deadline", waited)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	elsewhere := newServer(t)
	elsewhere.body = active("")
	s := newServer(t)
	s.status, s.body = http.StatusTemporaryRedirect, ""
	s.Config.Handler = http.RedirectHandler(elsewhere.URL+"/steal", http.StatusPermanentRedirect)
	if _, err := s.client(t, nil).Introspect(context.Background(), "t"); !errors.Is(err, token.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	if elsewhere.calls.Load() != 0 {
		t.Error("the token was sent on to the redirect target")
	}
}

func TestEndpointUnknown(t *testing.T) {
	s := newServer(t)
	c := s.client(t, func(o *Options) {
		o.Endpoint = func(context.Context) (string, error) { return "", errors.New("discovery failed") }
	})
	if _, err := c.Introspect(context.Background(), "t"); !errors.Is(err, token.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	if s.calls.Load() != 0 {
		t.Error("called an endpoint it did not know")
	}
}

func TestNewRefusesIncompleteOptions(t *testing.T) {
	ep := func(context.Context) (string, error) { return "https://as/introspect", nil }
	for _, o := range []Options{
		{Endpoint: ep, ClientID: "c", ClientSecret: "s"},
		{Issuer: issuer, ClientID: "c", ClientSecret: "s"},
		{Issuer: issuer, Endpoint: ep, ClientSecret: "s"},
		{Issuer: issuer, Endpoint: ep, ClientID: "c"},
		{Issuer: issuer, Endpoint: ep, ClientID: "c", AuthMethod: PrivateKeyJWT},
		{Issuer: issuer, Endpoint: ep, ClientID: "c", ClientSecret: "s", AuthMethod: "client_secret_jwt"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestAssertionSignerKeys(t *testing.T) {
	if _, err := NewAssertionSigner([]byte("not pem"), ""); err == nil {
		t.Error("accepted a non-PEM key")
	}
	key, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(key)
	if _, err := NewAssertionSigner(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), ""); err == nil {
		t.Error("accepted a P-224 key")
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if _, err := NewAssertionSigner(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), ""); err == nil {
		t.Error("accepted a public key")
	}
}
