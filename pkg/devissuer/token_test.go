package devissuer_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/devissuer"
)

const (
	grantExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	accessToken   = "urn:ietf:params:oauth:token-type:access_token"
	resource      = "http://127.0.0.1:8080/mcp"
	upstreamAPI   = "https://upstream.example/api"
	clientID      = "extauthz-dev"
	clientSecret  = "s3cret/with+form:chars"
)

// fixture is an issuer with the gateway's client set, on a settable clock.
type fixture struct {
	iss   *devissuer.Issuer
	url   string // token endpoint
	clock *testkit.Clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	clock := testkit.NewClock()
	iss, srv := testkit.Issuer(t, "ES256", "/dev", resource, clock.Now)
	iss.SetClient(clientID, clientSecret)
	return &fixture{iss: iss, url: srv.URL + "/dev/token", clock: clock}
}

// answer is a token endpoint's answer.
type answer struct {
	status int
	header http.Header
	body   map[string]any
}

// post sends a token request; user and pass, when user is not empty, go
// in client_secret_basic (form-encoded first, RFC 6749 §2.3.1).
func post(t *testing.T, endpoint string, form url.Values, user, pass string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if err := json.NewDecoder(resp.Body).Decode(&a.body); err != nil {
		t.Fatalf("token endpoint answered %d, not JSON: %v", resp.StatusCode, err)
	}
	return a
}

// claims verifies a JWT with the issuer's key named in its header and
// returns its header and claims.
func claims(t *testing.T, iss *devissuer.Issuer, raw string) (map[string]any, map[string]any) {
	t.Helper()
	msg, err := jws.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	kid, _ := h.KeyID()
	alg, _ := h.Algorithm()
	payload, err := jws.Verify([]byte(raw), jws.WithKey(alg, iss.PublicKey(kid)))
	if err != nil {
		t.Fatalf("minted token does not verify: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	typ, _ := h.Type()
	return map[string]any{"kid": kid, "alg": alg.String(), "typ": typ}, c
}

func (f *fixture) subject(t *testing.T, tok devissuer.Token) string {
	t.Helper()
	if tok.Subject == "" {
		tok.Subject = "dev-user"
	}
	if tok.ClientID == "" {
		tok.ClientID = "dev-client"
	}
	raw, err := f.iss.Mint(tok)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func exchangeForm(subject string) url.Values {
	return url.Values{
		"grant_type":         {grantExchange},
		"subject_token":      {subject},
		"subject_token_type": {accessToken},
		"audience":           {upstreamAPI},
	}
}

// TestExchange: what the gateway asks for (RFC 8693 §2.1, with its own
// client-credentials token as the actor) is answered as §2.2.1 says, with
// a token for the audience alone, naming the user, the exchanging client
// and the actor.
func TestExchange(t *testing.T) {
	f := newFixture(t)
	subject := f.subject(t, devissuer.Token{Scopes: []string{"mcp:tools"}})

	// The actor: the gateway's own token, as pkg/upstream asks for it.
	act := post(t, f.url, url.Values{"grant_type": {"client_credentials"}, "audience": {upstreamAPI}}, clientID, clientSecret)
	if act.status != 200 {
		t.Fatalf("actor token: %d %v", act.status, act.body)
	}
	_, ac := claims(t, f.iss, act.body["access_token"].(string))
	if ac["sub"] != clientID || ac["client_id"] != clientID || ac["aud"] != upstreamAPI {
		t.Errorf("actor token claims %v: want sub and client_id %s, aud %s", ac, clientID, upstreamAPI)
	}

	form := exchangeForm(subject)
	form.Set("requested_token_type", accessToken)
	form.Set("scope", "repo:read")
	form.Set("actor_token", act.body["access_token"].(string))
	form.Set("actor_token_type", accessToken)
	a := post(t, f.url, form, clientID, clientSecret)
	if a.status != 200 {
		t.Fatalf("exchange: %d %v", a.status, a.body)
	}
	if a.body["issued_token_type"] != accessToken || a.body["token_type"] != "Bearer" ||
		a.body["expires_in"] != float64(900) || a.body["scope"] != "repo:read" {
		t.Errorf("exchange answer %v", a.body)
	}
	if cc := a.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store (RFC 6749 §5.1)", cc)
	}
	h, c := claims(t, f.iss, a.body["access_token"].(string))
	if h["typ"] != "at+jwt" {
		t.Errorf("typ %v, want at+jwt", h["typ"])
	}
	want := map[string]any{
		"iss": f.iss.Issuer(), "sub": "dev-user", "aud": upstreamAPI, "client_id": clientID,
		"scope": "repo:read", "act": map[string]any{"sub": clientID},
	}
	for k, v := range want {
		if got, _ := json.Marshal(c[k]); string(got) != mustJSON(v) {
			t.Errorf("claim %s = %s, want %s", k, got, mustJSON(v))
		}
	}
	if exp := int64(c["exp"].(float64)); exp != f.clock.Now().Add(15*time.Minute).Unix() {
		t.Errorf("exp %d, want now + 15m", exp)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestExchangeNeverOutlivesTheSubject: a subject token with two minutes
// left gives a token with two minutes left, and no act appears without
// an actor.
func TestExchangeNeverOutlivesTheSubject(t *testing.T) {
	f := newFixture(t)
	subject := f.subject(t, devissuer.Token{TTL: 2 * time.Minute})
	_, sc := claims(t, f.iss, subject)
	a := post(t, f.url, exchangeForm(subject), clientID, clientSecret)
	if a.status != 200 {
		t.Fatalf("exchange: %d %v", a.status, a.body)
	}
	_, c := claims(t, f.iss, a.body["access_token"].(string))
	if c["exp"] != sc["exp"] || a.body["expires_in"] != float64(120) {
		t.Errorf("exp %v expires_in %v; want the subject's exp %v, 120", c["exp"], a.body["expires_in"], sc["exp"])
	}
	if _, ok := c["act"]; ok {
		t.Errorf("act %v without an actor token", c["act"])
	}
	if _, ok := c["scope"]; ok {
		t.Errorf("scope %v, none asked for", c["scope"])
	}
}

// TestExchangeNestsPriorActors: a subject token that already names an
// actor keeps it, below the new one (RFC 8693 §4.1).
func TestExchangeNestsPriorActors(t *testing.T) {
	f := newFixture(t)
	subject := f.subject(t, devissuer.Token{Extra: map[string]any{"act": map[string]any{"sub": "first-hop"}}})
	actor := f.subject(t, devissuer.Token{Subject: "second-hop"})
	form := exchangeForm(subject)
	form.Set("actor_token", actor)
	form.Set("actor_token_type", accessToken)
	a := post(t, f.url, form, clientID, clientSecret)
	if a.status != 200 {
		t.Fatalf("exchange: %d %v", a.status, a.body)
	}
	_, c := claims(t, f.iss, a.body["access_token"].(string))
	if got, want := mustJSON(c["act"]), `{"act":{"sub":"first-hop"},"sub":"second-hop"}`; got != want {
		t.Errorf("act %s, want %s", got, want)
	}
}

// TestExchangeRefusesHostileSubjectTokens: only a token this issuer
// signed with a key it publishes, with that key's algorithm, typed as an
// access token, naming it, valid now, is exchanged; anything else is
// invalid_request (RFC 8693 §2.2.2).
func TestExchangeRefusesHostileSubjectTokens(t *testing.T) {
	f := newFixture(t)
	other, _ := testkit.Issuer(t, "ES256", "/dev", resource, f.clock.Now)
	good := f.subject(t, devissuer.Token{})
	kid := f.iss.ActiveKID()
	now := f.clock.Now()
	sign := func(iss *devissuer.Issuer, claims, header map[string]any) string {
		raw, err := iss.Sign(claims, header)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	valid := func() map[string]any {
		return map[string]any{"iss": f.iss.Issuer(), "sub": "dev-user", "aud": resource,
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	}
	with := func(k string, v any) map[string]any {
		c := valid()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	seg := func(v any) string { return base64.RawURLEncoding.EncodeToString([]byte(mustJSON(v))) }
	parts := strings.Split(good, ".")

	// An HMAC "signed" with the public key, which a verifier taking alg
	// from the header would accept.
	der, err := x509.MarshalPKIXPublicKey(f.iss.PublicKey(kid))
	if err != nil {
		t.Fatal(err)
	}
	hsInput := seg(map[string]any{"alg": "HS256", "kid": kid, "typ": "at+jwt"}) + "." + seg(valid())
	mac := hmac.New(sha256.New, der)
	mac.Write([]byte(hsInput))
	hs256 := hsInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	// A key the issuer no longer publishes (rotated out).
	retired := f.subject(t, devissuer.Token{})
	next, err := f.iss.AddKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	f.iss.Use(next)
	f.iss.Publish(next)
	good = f.subject(t, devissuer.Token{})
	newKID := next

	for name, tok := range map[string]string{
		"another issuer's":                    sign(other, map[string]any{"iss": other.Issuer(), "sub": "dev-user", "exp": now.Add(time.Hour).Unix()}, nil),
		"another issuer's, naming this one":   sign(other, valid(), nil),
		"another issuer's key under this kid": sign(other, valid(), map[string]any{"kid": newKID}),
		"alg none":                            seg(map[string]any{"alg": "none", "kid": newKID, "typ": "at+jwt"}) + "." + seg(valid()) + ".",
		"HS256 keyed with the public key":     hs256,
		"expired":                             sign(f.iss, with("exp", now.Add(-time.Second).Unix()), nil),
		"expiring now":                        sign(f.iss, with("exp", now.Unix()), nil),
		"not yet valid":                       sign(f.iss, with("nbf", now.Add(time.Minute).Unix()), nil),
		"no exp":                              sign(f.iss, with("exp", nil), nil),
		"no sub":                              sign(f.iss, with("sub", nil), nil),
		"iss of another issuer":               sign(f.iss, with("iss", other.Issuer()), nil),
		"not an access token (typ JWT)":       sign(f.iss, valid(), map[string]any{"typ": "JWT"}),
		"an ID token's typ":                   sign(f.iss, valid(), map[string]any{"typ": "id_token+jwt"}),
		"signed by a retired key":             retired,
		"claims swapped under the signature":  strings.Join([]string{strings.Split(good, ".")[0], seg(with("sub", "admin")), strings.Split(good, ".")[2]}, "."),
		"a signature of another token":        strings.Join([]string{strings.Split(good, ".")[0], strings.Split(good, ".")[1], parts[2]}, "."),
		"crit header":                         sign(f.iss, valid(), map[string]any{"crit": []string{"exp"}, "exp": 1}),
		"two segments":                        parts[0] + "." + parts[1],
		"garbage":                             "not-a-token",
		"an exp that is not a number":         sign(f.iss, with("exp", "tomorrow"), nil),
	} {
		t.Run(name, func(t *testing.T) {
			a := post(t, f.url, exchangeForm(tok), clientID, clientSecret)
			if a.status != 400 || a.body["error"] != "invalid_request" {
				t.Errorf("got %d %v, want 400 invalid_request", a.status, a.body)
			}
			// The same token as the actor is refused too.
			form := exchangeForm(good)
			form.Set("actor_token", tok)
			form.Set("actor_token_type", accessToken)
			if a := post(t, f.url, form, clientID, clientSecret); a.status != 400 || a.body["error"] != "invalid_request" {
				t.Errorf("as actor_token: got %d %v, want 400 invalid_request", a.status, a.body)
			}
		})
	}
	// The control: the good token, under the key now in use.
	if a := post(t, f.url, exchangeForm(good), clientID, clientSecret); a.status != 200 {
		t.Errorf("the good token: %d %v", a.status, a.body)
	}
}

// TestExchangeRequestErrors: RFC 8693 §2.2.2's codes for what is wrong
// with the request itself.
func TestExchangeRequestErrors(t *testing.T) {
	f := newFixture(t)
	good := f.subject(t, devissuer.Token{})
	for _, tc := range []struct {
		name   string
		edit   func(url.Values)
		status int
		code   string
	}{
		{"no audience", func(v url.Values) { v.Del("audience") }, 400, "invalid_target"},
		{"empty audience", func(v url.Values) { v.Set("audience", "") }, 400, "invalid_target"},
		{"two audiences", func(v url.Values) { v.Add("audience", "https://other.example") }, 400, "invalid_target"},
		{"a resource", func(v url.Values) { v.Set("resource", "https://other.example/api") }, 400, "invalid_target"},
		{"no subject_token", func(v url.Values) { v.Del("subject_token") }, 400, "invalid_request"},
		{"subject_token_type of an ID token", func(v url.Values) { v.Set("subject_token_type", "urn:ietf:params:oauth:token-type:id_token") }, 400, "invalid_request"},
		{"no subject_token_type", func(v url.Values) { v.Del("subject_token_type") }, 400, "invalid_request"},
		{"requested_token_type refresh token", func(v url.Values) {
			v.Set("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token")
		}, 400, "invalid_request"},
		{"actor_token without its type", func(v url.Values) { v.Set("actor_token", good) }, 400, "invalid_request"},
		{"actor_token_type without a token", func(v url.Values) { v.Set("actor_token_type", accessToken) }, 400, "invalid_request"},
		{"subject_token twice", func(v url.Values) { v.Add("subject_token", good) }, 400, "invalid_request"},
		{"another grant", func(v url.Values) { v.Set("grant_type", "password") }, 400, "unsupported_grant_type"},
		{"no grant", func(v url.Values) { v.Del("grant_type") }, 400, "unsupported_grant_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := exchangeForm(good)
			tc.edit(form)
			if a := post(t, f.url, form, clientID, clientSecret); a.status != tc.status || a.body["error"] != tc.code {
				t.Errorf("got %d %v, want %d %s", a.status, a.body, tc.status, tc.code)
			}
		})
	}
}

// TestTokenEndpointClientAuthentication: only the client set by SetClient
// may exchange, by client_secret_basic alone; it must authenticate for
// client_credentials too, while anyone else still gets a dev token.
func TestTokenEndpointClientAuthentication(t *testing.T) {
	f := newFixture(t)
	good := f.subject(t, devissuer.Token{})
	bare, srv := testkit.Issuer(t, "ES256", "", resource, nil)
	bareSubject, err := bare.Mint(devissuer.Token{Subject: "dev-user"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		endpoint   string
		form       url.Values
		user, pass string
		status     int
		sub        string // of the token, on success
	}{
		{"exchange without authentication", f.url, exchangeForm(good), "", "", 401, ""},
		{"exchange with the wrong secret", f.url, exchangeForm(good), clientID, "wrong", 401, ""},
		{"exchange as an unknown client", f.url, exchangeForm(good), "someone", clientSecret, 401, ""},
		{"exchange with client_secret_post", f.url, with(exchangeForm(good), "client_id", clientID, "client_secret", clientSecret), "", "", 401, ""},
		{"exchange with a client assertion", f.url, with(exchangeForm(good), "client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion", good), "", "", 401, ""},
		{"exchange naming another client_id", f.url, with(exchangeForm(good), "client_id", "someone"), clientID, clientSecret, 401, ""},
		{"exchange at an issuer with no client", srv.URL + "/token", exchangeForm(bareSubject), clientID, clientSecret, 401, ""},
		{"client_credentials as the client, unauthenticated", f.url, url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}}, "", "", 401, ""},
		{"client_credentials with the wrong secret", f.url, url.Values{"grant_type": {"client_credentials"}}, clientID, "wrong", 401, ""},
		{"client_credentials as the client", f.url, url.Values{"grant_type": {"client_credentials"}}, clientID, clientSecret, 200, clientID},
		{"client_credentials for anyone else", f.url, url.Values{"grant_type": {"client_credentials"}, "client_id": {"cli"}}, "", "", 200, "cli"},
		{"client_credentials for nobody", f.url, url.Values{"grant_type": {"client_credentials"}}, "", "", 200, "dev-client"},
		{"exchange as the client", f.url, exchangeForm(good), clientID, clientSecret, 200, "dev-user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := post(t, tc.endpoint, tc.form, tc.user, tc.pass)
			if a.status != tc.status {
				t.Fatalf("got %d %v, want %d", a.status, a.body, tc.status)
			}
			if tc.status == 401 {
				if a.body["error"] != "invalid_client" || !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Basic") {
					t.Errorf("got %v, WWW-Authenticate %q; want invalid_client and a Basic challenge", a.body, a.header.Get("WWW-Authenticate"))
				}
				return
			}
			_, c := claims(t, f.iss, a.body["access_token"].(string))
			if c["sub"] != tc.sub {
				t.Errorf("sub %v, want %s", c["sub"], tc.sub)
			}
		})
	}
}

func with(v url.Values, kv ...string) url.Values {
	for i := 0; i < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// TestClientCredentialsAudiences: resource (RFC 8707) and audience both
// name the token's aud; neither, the default audience.
func TestClientCredentialsAudiences(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		form url.Values
		aud  string
	}{
		{url.Values{}, `"` + resource + `"`},
		{url.Values{"resource": {"http://127.0.0.1:8080/other"}}, `"http://127.0.0.1:8080/other"`},
		{url.Values{"audience": {upstreamAPI}}, `"` + upstreamAPI + `"`},
		{url.Values{"resource": {"http://127.0.0.1:8080/other"}, "audience": {upstreamAPI}}, `["http://127.0.0.1:8080/other","` + upstreamAPI + `"]`},
	} {
		tc.form.Set("grant_type", "client_credentials")
		a := post(t, f.url, tc.form, "", "")
		if a.status != 200 {
			t.Fatalf("%v: %d %v", tc.form, a.status, a.body)
		}
		if _, c := claims(t, f.iss, a.body["access_token"].(string)); mustJSON(c["aud"]) != tc.aud {
			t.Errorf("%v: aud %s, want %s", tc.form, mustJSON(c["aud"]), tc.aud)
		}
	}
}

// TestMetadataAdvertisesTheGrants: RFC 8414 grant_types_supported names
// token exchange, and client_secret_basic appears once a client is set.
func TestMetadataAdvertisesTheGrants(t *testing.T) {
	iss, err := devissuer.New("http://127.0.0.1:8080/dev", "ES256", nil)
	if err != nil {
		t.Fatal(err)
	}
	md := iss.Metadata()
	if g := md["grant_types_supported"].([]string); !slices.Contains(g, grantExchange) || !slices.Contains(g, "client_credentials") {
		t.Errorf("grant_types_supported %v", g)
	}
	if m := md["token_endpoint_auth_methods_supported"].([]string); slices.Contains(m, "client_secret_basic") {
		t.Errorf("auth methods %v before SetClient", m)
	}
	iss.SetClient(clientID, clientSecret)
	if m := iss.Metadata()["token_endpoint_auth_methods_supported"].([]string); !slices.Contains(m, "client_secret_basic") {
		t.Errorf("auth methods %v after SetClient", m)
	}
}
