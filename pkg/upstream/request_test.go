package upstream_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/extauthz/extauthz/pkg/introspect"
	"github.com/extauthz/extauthz/pkg/upstream"
)

// wantForm checks that form holds exactly want (the client authentication
// parameters, checked apart, are left out when skipAuth).
func wantForm(t *testing.T, form url.Values, want url.Values, skipAuth bool) {
	t.Helper()
	got := url.Values{}
	for k, v := range form {
		if skipAuth && (k == "client_id" || k == "client_secret" || k == "client_assertion" || k == "client_assertion_type") {
			continue
		}
		got[k] = v
	}
	if got.Encode() != want.Encode() {
		t.Fatalf("form\n got %s\nwant %s", got.Encode(), want.Encode())
	}
}

func TestExchangeRequest(t *testing.T) {
	e := newEnv(t)
	m := e.minter(e.localStore(), func(o *upstream.Options) {
		o.Audience = []string{upstreamAud, "https://mcp2.example.com"}
		o.Resource = []string{"https://mcp.example.com/files", "https://mcp.example.com/docs"}
		o.Scopes = []string{"files:read", "files:write"}
	})
	s := e.subject("alice", time.Hour)
	c := mustToken(t, m, s)
	if c.Token != "minted-1" || c.Source != upstream.SourceMinted {
		t.Fatalf("Token = %+v; want minted-1, minted", c)
	}
	form, h := e.as.form(t, 0)
	wantForm(t, form, url.Values{
		"grant_type":           {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":        {s.Raw},
		"subject_token_type":   {"urn:ietf:params:oauth:token-type:access_token"},
		"requested_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
		"audience":             {upstreamAud, "https://mcp2.example.com"},
		"resource":             {"https://mcp.example.com/files", "https://mcp.example.com/docs"},
		"scope":                {"files:read files:write"},
	}, false)
	if got := h.Get("Accept"); got != "application/json" {
		t.Errorf("Accept = %q", got)
	}
	if got := h.Get("Content-Type"); got != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type = %q", got)
	}
}

func TestClientCredentialsRequest(t *testing.T) {
	e := newEnv(t)
	m := e.minter(e.localStore(), func(o *upstream.Options) {
		o.Mode = upstream.ModeClientCredentials
		o.Resource = []string{"https://mcp.example.com/files"}
	})
	// One token serves every request, whoever sent it.
	for _, s := range []upstream.Subject{e.subject("alice", time.Hour), e.subject("bob", time.Hour), {}} {
		if c := mustToken(t, m, s); c.Token != "minted-1" {
			t.Fatalf("Token = %+v; want the one minted-1", c)
		}
	}
	if n := e.as.calls.Load(); n != 1 {
		t.Fatalf("token endpoint called %d times; want 1", n)
	}
	form, _ := e.as.form(t, 0)
	wantForm(t, form, url.Values{
		"grant_type": {"client_credentials"},
		"audience":   {upstreamAud},
		"resource":   {"https://mcp.example.com/files"},
		"scope":      {"files:read"},
	}, false)
}

// ecPEM is a fresh P-256 private key in PKCS#8 PEM, and its public key.
func ecPEM(t *testing.T) ([]byte, *ecdsa.PublicKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), &k.PublicKey
}

func TestClientAuthentication(t *testing.T) {
	pemKey, pub := ecPEM(t)
	signer, err := introspect.NewAssertionSigner(pemKey, "gw-key")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		mod   func(*upstream.Options)
		check func(t *testing.T, form url.Values, basicUser, basicPass string, basic bool)
	}{
		{"client_secret_basic", nil, func(t *testing.T, form url.Values, user, pass string, basic bool) {
			// RFC 6749 §2.3.1: each part form-encoded before base64.
			if !basic || user != url.QueryEscape(clientID) || pass != url.QueryEscape(clientSecret) {
				t.Fatalf("basic auth %v %q %q; want the form-encoded id and secret", basic, user, pass)
			}
			if form.Has("client_secret") || form.Has("client_id") {
				t.Fatal("the credentials are also in the form")
			}
		}},
		{"client_secret_post", func(o *upstream.Options) { o.AuthMethod = introspect.ClientSecretPost }, func(t *testing.T, form url.Values, _, _ string, basic bool) {
			if basic || form.Get("client_id") != clientID || form.Get("client_secret") != clientSecret {
				t.Fatalf("form %v (basic %v); want client_id and client_secret in the form", form, basic)
			}
		}},
		{"private_key_jwt", func(o *upstream.Options) {
			o.AuthMethod, o.ClientSecret, o.Signer = introspect.PrivateKeyJWT, "", signer
		}, func(t *testing.T, form url.Values, _, _ string, basic bool) {
			if basic || form.Has("client_secret") || form.Get("client_id") != clientID ||
				form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
				t.Fatalf("form %v (basic %v)", form, basic)
			}
			payload, err := jws.Verify([]byte(form.Get("client_assertion")), jws.WithKey(jwa.ES256(), pub))
			if err != nil {
				t.Fatalf("assertion does not verify: %v", err)
			}
			var c struct {
				Iss, Sub, Aud, Jti string
				Exp                int64
			}
			if err := json.Unmarshal(payload, &c); err != nil {
				t.Fatal(err)
			}
			// RFC 7523 §3: aud is the authorization server, by its issuer identifier.
			if c.Iss != clientID || c.Sub != clientID || c.Aud != issuer || c.Jti == "" || c.Exp == 0 {
				t.Fatalf("assertion claims %+v", c)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			m := e.minter(e.localStore(), tc.mod)
			mustToken(t, m, e.subject("alice", time.Hour))
			form, h := e.as.form(t, 0)
			user, pass, basic := basicAuth(h.Get("Authorization"))
			tc.check(t, form, user, pass, basic)
		})
	}
}

// basicAuth decodes a Basic Authorization header.
func basicAuth(h string) (user, pass string, ok bool) {
	b64, ok := strings.CutPrefix(h, "Basic ")
	if !ok {
		return "", "", false
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(b), ":")
	return user, pass, ok
}

// TestActorToken: with Actor, the exchange also carries the gateway's own
// client_credentials token (same audience and resource, no scope), minted
// once and cached like any other.
func TestActorToken(t *testing.T) {
	e := newEnv(t)
	e.as.reply(func(n int64, form url.Values) (int, http.Header, string) {
		if form.Get("grant_type") == "client_credentials" {
			return tokenAnswer("actor-token", 600)
		}
		return tokenAnswer("exchanged-"+form.Get("subject_token")[:13], 600)
	})
	m := e.minter(e.localStore(), func(o *upstream.Options) { o.Actor = true })
	alice, bob := e.subject("alice", time.Hour), e.subject("bob", time.Hour)
	for _, s := range []upstream.Subject{alice, bob, alice} {
		mustToken(t, m, s)
	}
	var grants []string
	for i := range int(e.as.calls.Load()) {
		form, _ := e.as.form(t, i)
		grants = append(grants, form.Get("grant_type"))
		if form.Get("grant_type") == "client_credentials" {
			wantForm(t, form, url.Values{"grant_type": {"client_credentials"}, "audience": {upstreamAud}}, false)
			continue
		}
		if form.Get("actor_token") != "actor-token" || form.Get("actor_token_type") != "urn:ietf:params:oauth:token-type:access_token" {
			t.Fatalf("exchange without the actor token: %v", form)
		}
	}
	want := []string{"client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange", "urn:ietf:params:oauth:grant-type:token-exchange"}
	if !slices.Equal(grants, want) {
		t.Fatalf("grants %v; want one actor token, then one exchange per subject", grants)
	}
}

// TestActorRefusedIsUnavailable: the gateway's own token being refused is
// the gateway's problem, not the user's: 503, not 403.
func TestActorRefusedIsUnavailable(t *testing.T) {
	e := newEnv(t)
	e.as.reply(func(int64, url.Values) (int, http.Header, string) {
		return 400, nil, `{"error":"unauthorized_client"}`
	})
	m := e.minter(e.localStore(), func(o *upstream.Options) { o.Actor = true })
	_, err := m.Token(t.Context(), e.subject("alice", time.Hour))
	if !isUnavailable(err) {
		t.Fatalf("Token = %v; want ErrUnavailable", err)
	}
	if !strings.Contains(e.logs.String(), "actor") {
		t.Fatalf("no loud log about the actor token:\n%s", e.logs.String())
	}
}

func TestNewRefusesIncompleteOptions(t *testing.T) {
	e := newEnv(t)
	store := e.localStore()
	base := func() upstream.Options {
		return upstream.Options{
			Name: "files", Mode: upstream.ModeExchange, Issuer: issuer, TokenEndpoint: e.as.endpoint,
			ClientID: clientID, ClientSecret: clientSecret, Audience: []string{upstreamAud}, Store: store,
		}
	}
	cases := map[string]func(*upstream.Options){
		"no name":                func(o *upstream.Options) { o.Name = "" },
		"unknown mode":           func(o *upstream.Options) { o.Mode = "impersonate" },
		"no issuer":              func(o *upstream.Options) { o.Issuer = "" },
		"no endpoint":            func(o *upstream.Options) { o.TokenEndpoint = nil },
		"no client":              func(o *upstream.Options) { o.ClientID = "" },
		"no store":               func(o *upstream.Options) { o.Store = nil },
		"no target":              func(o *upstream.Options) { o.Audience = nil },
		"no secret":              func(o *upstream.Options) { o.ClientSecret = "" },
		"no signer":              func(o *upstream.Options) { o.AuthMethod = introspect.PrivateKeyJWT },
		"unknown auth":           func(o *upstream.Options) { o.AuthMethod = "tls_client_auth" },
		"actor without exchange": func(o *upstream.Options) { o.Mode, o.Actor = upstream.ModeClientCredentials, true },
		"refresh ahead of 1":     func(o *upstream.Options) { o.RefreshAhead = 1 },
		"HS256":                  func(o *upstream.Options) { o.Keys, o.Algorithms = unusedKeys(t), []string{"HS256"} },
		"none":                   func(o *upstream.Options) { o.Keys, o.Algorithms = unusedKeys(t), []string{"none"} },
		"negative refresh ahead": func(o *upstream.Options) { o.RefreshAhead = -0.1 },
		"negative margin":        func(o *upstream.Options) { o.ExpiryMargin = -time.Second },
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			o := base()
			mod(&o)
			if _, err := upstream.New(o); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
	if _, err := upstream.New(base()); err != nil {
		t.Fatalf("New refused the base options: %v", err)
	}
}
