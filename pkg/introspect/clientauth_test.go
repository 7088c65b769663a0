package introspect

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// seen is what an authorization server's endpoint received.
type seen struct {
	header http.Header
	form   url.Values
}

// recordingEndpoint is an endpoint on a loopback port that keeps every
// request it is sent.
func recordingEndpoint(t *testing.T) (*httptest.Server, func() []seen) {
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, seen{header: r.Header.Clone(), form: r.PostForm})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	return srv, func() []seen {
		mu.Lock()
		defer mu.Unlock()
		return append([]seen(nil), got...)
	}
}

// TestClientAuth: what an authorization server receives from each method,
// with an id and a secret that need form-urlencoding, sent twice each.
func TestClientAuth(t *testing.T) {
	const (
		id       = "gate: way%+"  // ':' ' ' '%' '+'
		secret   = "s3cr:et %2B+" // a ':' before base64 would end the id early
		audience = "https://as.example.com"
	)
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
	now := time.Unix(1_800_000_000, 0)
	// The request's own parameters, which every method must leave as
	// they are, in the body and in the caller's map.
	request := url.Values{"token": {"opaque+token/1="}, "token_type_hint": {"access_token"}}

	cases := []struct {
		name  string
		auth  ClientAuth
		check func(t *testing.T, got []seen)
	}{
		{"client_secret_basic", ClientAuth{Method: ClientSecretBasic, ClientID: id, ClientSecret: secret}, func(t *testing.T, got []seen) {
			for _, s := range got {
				// RFC 6749 §2.3.1: each part form-urlencoded, then
				// joined by ':' and base64-encoded.
				want := "Basic " + base64.StdEncoding.EncodeToString([]byte("gate%3A+way%25%2B:s3cr%3Aet+%252B%2B"))
				if h := s.header.Get("Authorization"); h != want {
					t.Errorf("Authorization %q, want %q", h, want)
				}
				r := &http.Request{Header: s.header}
				user, pass, _ := r.BasicAuth()
				if u, err := url.QueryUnescape(user); err != nil || u != id {
					t.Errorf("the id decodes to %q (%v)", u, err)
				}
				if p, err := url.QueryUnescape(pass); err != nil || p != secret {
					t.Errorf("the secret decodes to %q (%v)", p, err)
				}
				for _, k := range []string{"client_id", "client_secret", "client_assertion", "client_assertion_type"} {
					if s.form.Has(k) {
						t.Errorf("%s in the body as well", k)
					}
				}
			}
		}},
		{"empty method is client_secret_basic", ClientAuth{ClientID: id, ClientSecret: secret}, func(t *testing.T, got []seen) {
			for _, s := range got {
				if !strings.HasPrefix(s.header.Get("Authorization"), "Basic ") || s.form.Has("client_secret") {
					t.Errorf("Authorization %q, form %v", s.header.Get("Authorization"), s.form)
				}
			}
		}},
		{"client_secret_post", ClientAuth{Method: ClientSecretPost, ClientID: id, ClientSecret: secret}, func(t *testing.T, got []seen) {
			for _, s := range got {
				if h := s.header.Get("Authorization"); h != "" {
					t.Errorf("Authorization %q sent with client_secret_post", h)
				}
				if s.form.Get("client_id") != id || s.form.Get("client_secret") != secret || s.form.Has("client_assertion") {
					t.Errorf("form %v", s.form)
				}
			}
		}},
		{"private_key_jwt", ClientAuth{Method: PrivateKeyJWT, ClientID: id, ClientSecret: secret, Signer: signer, Audience: audience}, func(t *testing.T, got []seen) {
			jtis := map[string]bool{}
			for _, s := range got {
				if h := s.header.Get("Authorization"); h != "" {
					t.Errorf("Authorization %q sent with private_key_jwt", h)
				}
				if s.form.Get("client_id") != id || s.form.Has("client_secret") ||
					s.form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
					t.Fatalf("form %v", s.form)
				}
				assertion := s.form.Get("client_assertion")
				payload, err := jws.Verify([]byte(assertion), jws.WithKey(jwa.ES256(), &key.PublicKey))
				if err != nil {
					t.Fatalf("the assertion does not verify with the client's key: %v", err)
				}
				msg, err := jws.Parse([]byte(assertion))
				if err != nil {
					t.Fatal(err)
				}
				if kid, _ := msg.Signatures()[0].ProtectedHeaders().KeyID(); kid != "k1" {
					t.Errorf("kid %q, want k1", kid)
				}
				var c struct {
					Iss, Sub, Aud, Jti string
					Iat, Exp           int64
				}
				if err := json.Unmarshal(payload, &c); err != nil {
					t.Fatal(err)
				}
				// RFC 7523 §3: iss and sub are the client, aud the
				// server (by its issuer identifier), with a jti and an exp.
				if c.Iss != id || c.Sub != id || c.Aud != audience || c.Jti == "" {
					t.Errorf("assertion claims %+v", c)
				}
				if c.Iat != now.Unix() || c.Exp != now.Add(time.Minute).Unix() {
					t.Errorf("assertion valid from %d to %d, want a minute from %d", c.Iat, c.Exp, now.Unix())
				}
				if jtis[c.Jti] {
					t.Errorf("jti %q reused", c.Jti)
				}
				jtis[c.Jti] = true
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.auth.Validate(); err != nil {
				t.Fatal(err)
			}
			srv, got := recordingEndpoint(t)
			for range 2 {
				req, err := http.NewRequest(http.MethodPost, srv.URL+"/token", nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := tc.auth.Apply(req, request, now); err != nil {
					t.Fatal(err)
				}
				// The body can be read again, as a retrying transport does.
				again, err := req.GetBody()
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(again)
				if int64(len(b)) != req.ContentLength {
					t.Errorf("GetBody gives %d bytes, ContentLength says %d", len(b), req.ContentLength)
				}
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d", resp.StatusCode)
				}
			}
			if len(request) != 2 {
				t.Fatalf("the caller's form was changed: %v", request)
			}
			all := got()
			if len(all) != 2 {
				t.Fatalf("%d requests received, want 2", len(all))
			}
			for _, s := range all {
				if ct := s.header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
					t.Errorf("Content-Type %q", ct)
				}
				if a := s.header.Get("Accept"); a != "application/json" {
					t.Errorf("Accept %q", a)
				}
				if s.form.Get("token") != "opaque+token/1=" || s.form.Get("token_type_hint") != "access_token" {
					t.Errorf("the request's own parameters: %v", s.form)
				}
			}
			tc.check(t, all)
		})
	}
}

// TestClientAuthRefuses: a method without its credential, or one it does
// not know, is refused by Validate with an error that names no secret, and
// Apply never sends such a request unauthenticated.
func TestClientAuthRefuses(t *testing.T) {
	const secret = "do-not-log-me"
	cases := []struct {
		name string
		auth ClientAuth
		want string
	}{
		{"basic without a secret", ClientAuth{ClientID: "c"}, "client_secret_basic needs a client secret"},
		{"post without a secret", ClientAuth{Method: ClientSecretPost, ClientID: "c"}, "client_secret_post needs a client secret"},
		{"private_key_jwt without a key", ClientAuth{Method: PrivateKeyJWT, ClientID: "c", ClientSecret: secret}, "private_key_jwt needs a private key"},
		{"client_secret_jwt", ClientAuth{Method: "client_secret_jwt", ClientID: "c", ClientSecret: secret}, `unknown client authentication method "client_secret_jwt"`},
		{"tls_client_auth", ClientAuth{Method: "tls_client_auth", ClientID: "c", ClientSecret: secret}, `unknown client authentication method "tls_client_auth"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.auth.Validate()
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Validate: %v, want %q", err, tc.want)
			}
			if tc.auth.ClientSecret == "" {
				return // an empty secret is for Validate to refuse, as New does
			}
			req, err := http.NewRequest(http.MethodPost, "https://as.example.com/token", nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.auth.Apply(req, url.Values{"grant_type": {"client_credentials"}}, time.Now()); err == nil {
				t.Fatal("Apply accepted it")
			} else if strings.Contains(err.Error(), secret) {
				t.Errorf("the error names the secret: %v", err)
			}
			if req.Header.Get("Authorization") != "" || req.Body != nil {
				t.Errorf("a request was prepared anyway: %v, body %v", req.Header, req.Body != nil)
			}
		})
	}
}
