package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	// upstream is an exchange target that is a URI, so also a client_credentials resource.
	upstream = "https://upstream.example/api"
	// longLived is an exchange target whose TTL exceeds every subject token's.
	longLived = "https://long.example/api"
	// logical is an exchange target that is no URI: exchange only.
	logical = "billing-service"
)

// exchangeClaims are the claims of an exchanged access token.
type exchangeClaims struct {
	Iss      string         `json:"iss"`
	Sub      string         `json:"sub"`
	Aud      any            `json:"aud"`
	ClientID string         `json:"client_id"`
	Scope    string         `json:"scope"`
	Iat      int64          `json:"iat"`
	Exp      int64          `json:"exp"`
	Jti      string         `json:"jti"`
	Act      map[string]any `json:"act"`
}

// exchangeFixture is one server with token exchange configured, and its clients.
type exchangeFixture struct {
	s       *Server
	gateway Client // may exchange
	alice   Client // a service whose tokens are exchanged; may not exchange
	app     Client // public client of the authorization code flow
}

func startExchangeServer(t *testing.T, invalidTokenError string) exchangeFixture {
	t.Helper()
	f := exchangeFixture{
		gateway: Client{ID: "gateway", Secret: "gateway-secret", GrantTypes: []string{"client_credentials", GrantTokenExchange}},
		alice:   Client{ID: "alice-svc", Secret: "alice-secret"},
		app: Client{ID: "app", AuthMethod: "none", GrantTypes: []string{"authorization_code"},
			RedirectURIs: []string{"http://127.0.0.1:1/cb"}},
	}
	f.s = Start(t, Options{
		Clients: []Client{f.gateway, f.alice, f.app},
		Resources: []Resource{
			{Resource: jwtResource, Scope: "mcp:tools", Format: "jwt", TTL: 600 * time.Second},
			{Resource: opaqueResource, Scope: "mcp:tools", Format: "opaque"},
		},
		TokenExchange: TokenExchange{
			Targets: []ExchangeTarget{
				{Audience: upstream, Scope: "up:read up:write", TTL: 120 * time.Second},
				{Audience: longLived, Scope: "long:read", TTL: time.Hour},
				{Audience: logical, Scope: "bill"},
			},
			InvalidTokenError: invalidTokenError,
		},
	})
	return f
}

func TestTokenExchange(t *testing.T) {
	f := startExchangeServer(t, "")
	s, gateway, alice := f.s, f.gateway, f.alice
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	aliceJWT, err := s.ClientCredentials(ctx, alice, jwtResource, "mcp:tools")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("discovery lists the grant", func(t *testing.T) {
		status, body := get(ctx, t, s.Issuer+"/.well-known/oauth-authorization-server")
		var md struct {
			GrantTypes []string `json:"grant_types_supported"`
		}
		if status != http.StatusOK || json.Unmarshal([]byte(body), &md) != nil {
			t.Fatalf("metadata: HTTP %d %s", status, body)
		}
		if !slices.Contains(md.GrantTypes, GrantTokenExchange) {
			t.Errorf("grant_types_supported = %v, want %s in it", md.GrantTypes, GrantTokenExchange)
		}
	})

	t.Run("jwt subject", func(t *testing.T) {
		// A raw request, to see the headers too.
		m, err := s.Metadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		form := url.Values{
			"grant_type": {GrantTokenExchange}, "subject_token": {aliceJWT},
			"subject_token_type": {TokenTypeAccessToken}, "audience": {upstream},
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.TokenEndpoint, strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(gateway.ID, gateway.Secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if cc := resp.Header.Get("Cache-Control"); resp.StatusCode != http.StatusOK || cc != "no-store" {
			t.Errorf("HTTP %d, Cache-Control %q; want 200 and no-store", resp.StatusCode, cc)
		}
		var got map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatal(err)
		}
		claims := checkExchanged(ctx, t, s, got, "up:read up:write", 120)
		want := exchangeClaims{Iss: s.Issuer, Sub: alice.ID, Aud: upstream, ClientID: gateway.ID,
			Scope: "up:read up:write", Iat: claims.Iat, Exp: claims.Iat + 120, Jti: claims.Jti}
		if !reflect.DeepEqual(claims, want) {
			t.Errorf("claims = %+v, want %+v", claims, want)
		}
		if claims.Jti == "" {
			t.Error("no jti")
		}
	})

	t.Run("opaque client credentials subject, resource and scope", func(t *testing.T) {
		subject, err := s.ClientCredentials(ctx, alice, opaqueResource, "mcp:tools")
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Exchange(ctx, gateway, subject, url.Values{"resource": {upstream}, "scope": {"up:read"}})
		if err != nil {
			t.Fatal(err)
		}
		claims := checkExchanged(ctx, t, s, got, "up:read", 120)
		if claims.Sub != alice.ID || claims.Aud != upstream || claims.ClientID != gateway.ID || claims.Act != nil {
			t.Errorf("claims = %+v, want sub %s, aud %s, client_id %s, no act", claims, alice.ID, upstream, gateway.ID)
		}
	})

	t.Run("opaque user subject, lifetime capped by the subject's", func(t *testing.T) {
		subject := userAccessToken(ctx, t, s, f.app, "alice", opaqueResource)
		intro, err := s.Introspect(ctx, gateway, subject)
		if err != nil {
			t.Fatal(err)
		}
		subjectExp, _ := intro["exp"].(float64)
		if intro["active"] != true || intro["sub"] != "alice" || subjectExp == 0 {
			t.Fatalf("the user's token introspects as %v, want active, sub alice and an exp", intro)
		}
		// The same audience as both parameters names one target.
		got, err := s.Exchange(ctx, gateway, subject, url.Values{"audience": {longLived}, "resource": {longLived}})
		if err != nil {
			t.Fatal(err)
		}
		claims := checkExchanged(ctx, t, s, got, "long:read", -1)
		if claims.Sub != "alice" || claims.Aud != longLived {
			t.Errorf("sub, aud = %q, %v; want alice, %s", claims.Sub, claims.Aud, longLived)
		}
		if claims.Exp != int64(subjectExp) {
			t.Errorf("exp = %d, want the subject token's %d, before the target's one-hour TTL", claims.Exp, int64(subjectExp))
		}
	})

	t.Run("logical audience", func(t *testing.T) {
		got, err := s.Exchange(ctx, gateway, aliceJWT, url.Values{"audience": {logical}})
		if err != nil {
			t.Fatal(err)
		}
		if claims := checkExchanged(ctx, t, s, got, "bill", int64(defaultTTL.Seconds())); claims.Aud != logical {
			t.Errorf("aud = %v, want %s", claims.Aud, logical)
		}
	})

	t.Run("client credentials for a target: the actor token", func(t *testing.T) {
		actor, err := s.ClientCredentials(ctx, gateway, upstream, "up:read")
		if err != nil {
			t.Fatal(err)
		}
		var c exchangeClaims
		decodeSegment(t, strings.Split(actor, ".")[1], &c)
		if c.Aud != upstream || c.Sub != gateway.ID || c.Scope != "up:read" || c.Exp-c.Iat != 120 {
			t.Errorf("actor token claims = %+v, want aud %s, sub gateway, scope up:read, the target's TTL 120", c, upstream)
		}

		got, err := s.Exchange(ctx, gateway, aliceJWT, url.Values{
			"audience": {upstream}, "actor_token": {actor}, "actor_token_type": {TokenTypeAccessToken},
			"requested_token_type": {TokenTypeAccessToken},
		})
		if err != nil {
			t.Fatal(err)
		}
		claims := checkExchanged(ctx, t, s, got, "up:read up:write", 120)
		if want := map[string]any{"sub": gateway.ID}; claims.Sub != alice.ID || !reflect.DeepEqual(claims.Act, want) {
			t.Errorf("sub, act = %q, %v; want %s, %v", claims.Sub, claims.Act, alice.ID, want)
		}

		// Exchanged again with an opaque actor token: the earlier actor nests inside the new.
		opaqueActor, err := s.ClientCredentials(ctx, alice, opaqueResource, "mcp:tools")
		if err != nil {
			t.Fatal(err)
		}
		again, err := s.Exchange(ctx, gateway, got["access_token"].(string), url.Values{
			"audience": {logical}, "actor_token": {opaqueActor}, "actor_token_type": {TokenTypeAccessToken},
		})
		if err != nil {
			t.Fatal(err)
		}
		claims = checkExchanged(ctx, t, s, again, "bill", -1)
		want := map[string]any{"sub": alice.ID, "act": map[string]any{"sub": gateway.ID}}
		if claims.Sub != alice.ID || !reflect.DeepEqual(claims.Act, want) {
			t.Errorf("sub, act = %q, %v; want %s, %v", claims.Sub, claims.Act, alice.ID, want)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		revoked, err := s.ClientCredentials(ctx, alice, opaqueResource, "mcp:tools")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Revoke(ctx, alice, revoked); err != nil {
			t.Fatal(err)
		}
		// alice's token with another sub: only its signature is wrong.
		parts := strings.Split(aliceJWT, ".")
		var payload map[string]any
		decodeSegment(t, parts[1], &payload)
		payload["sub"] = "mallory"
		forgedPayload, err := json.Marshal(payload)
		if err != nil {
			t.Fatal(err)
		}
		forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString(forgedPayload) + "." + parts[2]
		wrongSecret := gateway
		wrongSecret.Secret = "wrong"

		for _, tc := range []struct {
			name    string
			as      Client
			subject string
			form    url.Values
			status  int
			code    string
		}{
			{"unknown audience", gateway, aliceJWT, url.Values{"audience": {"https://unknown.example"}}, 400, "invalid_target"},
			{"unknown resource", gateway, aliceJWT, url.Values{"resource": {"https://unknown.example"}}, 400, "invalid_target"},
			{"two targets", gateway, aliceJWT, url.Values{"audience": {upstream, logical}}, 400, "invalid_target"},
			{"no target", gateway, aliceJWT, url.Values{}, 400, "invalid_request"},
			{"garbage subject", gateway, "garbage", url.Values{"audience": {upstream}}, 400, "invalid_request"},
			{"forged subject", gateway, forged, url.Values{"audience": {upstream}}, 400, "invalid_request"},
			{"revoked subject", gateway, revoked, url.Values{"audience": {upstream}}, 400, "invalid_request"},
			{"garbage actor", gateway, aliceJWT, url.Values{"audience": {upstream},
				"actor_token": {"garbage"}, "actor_token_type": {TokenTypeAccessToken}}, 400, "invalid_request"},
			{"actor token without type", gateway, aliceJWT, url.Values{"audience": {upstream}, "actor_token": {aliceJWT}}, 400, "invalid_request"},
			{"subject token type", gateway, aliceJWT, url.Values{"audience": {upstream},
				"subject_token_type": {"urn:ietf:params:oauth:token-type:id_token"}}, 400, "invalid_request"},
			{"requested token type", gateway, aliceJWT, url.Values{"audience": {upstream},
				"requested_token_type": {"urn:ietf:params:oauth:token-type:refresh_token"}}, 400, "invalid_request"},
			{"scope outside the target", gateway, aliceJWT, url.Values{"audience": {upstream}, "scope": {"up:read long:read"}}, 400, "invalid_scope"},
			{"client without the grant", alice, aliceJWT, url.Values{"audience": {upstream}}, 400, "unauthorized_client"},
			{"wrong client secret", wrongSecret, aliceJWT, url.Values{"audience": {upstream}}, 401, "invalid_client"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.Exchange(ctx, tc.as, tc.subject, tc.form)
				var re *ResponseError
				if !errors.As(err, &re) || re.StatusCode != tc.status || re.Code != tc.code {
					t.Errorf("Exchange = %v, %v; want HTTP %d %s", got, err, tc.status, tc.code)
				}
			})
		}
	})

	t.Run("counter", func(t *testing.T) {
		before, err := s.Exchanges(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Exchange(ctx, gateway, aliceJWT, url.Values{"audience": {upstream}}); err != nil {
			t.Fatal(err)
		}
		if n, err := s.Exchanges(ctx); err != nil || n != before+1 {
			t.Fatalf("Exchanges after one exchange = %d, %v; want %d", n, err, before+1)
		}
		// Refused ones count, whatever refused them; other grants do not.
		bad := gateway
		bad.Secret = "wrong"
		_, _ = s.Exchange(ctx, bad, aliceJWT, url.Values{"audience": {upstream}})
		_, _ = s.Exchange(ctx, alice, aliceJWT, url.Values{"audience": {upstream}})
		_, _ = s.Exchange(ctx, gateway, "garbage", url.Values{"audience": {upstream}})
		if _, err := s.ClientCredentials(ctx, gateway, upstream, ""); err != nil {
			t.Fatal(err)
		}
		if n, err := s.Exchanges(ctx); err != nil || n != before+4 {
			t.Errorf("Exchanges = %d, %v; want %d", n, err, before+4)
		}
	})

	t.Run("behaviour", func(t *testing.T) {
		t.Cleanup(func() {
			if err := s.SetExchangeBehaviour(context.Background(), ExchangeBehaviour{}); err != nil {
				t.Error(err)
			}
		})
		before, err := s.Exchanges(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetExchangeBehaviour(ctx, ExchangeBehaviour{Status: 503, RetryAfter: 7 * time.Second}); err != nil {
			t.Fatal(err)
		}
		for i := range 2 { // until changed, not once
			_, err := s.Exchange(ctx, gateway, aliceJWT, url.Values{"audience": {upstream}})
			var re *ResponseError
			if !errors.As(err, &re) || re.StatusCode != http.StatusServiceUnavailable || re.Code != "temporarily_unavailable" ||
				re.Header.Get("Retry-After") != "7" {
				t.Fatalf("exchange %d under status 503: %v (headers %v), want HTTP 503 temporarily_unavailable, Retry-After 7", i, err, re)
			}
		}

		if err := s.SetExchangeBehaviour(ctx, ExchangeBehaviour{Status: 400, Error: "invalid_grant"}); err != nil {
			t.Fatal(err)
		}
		_, err = s.Exchange(ctx, gateway, aliceJWT, url.Values{"audience": {upstream}})
		var re *ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest || re.Code != "invalid_grant" || re.Header.Get("Retry-After") != "" {
			t.Fatalf("exchange under status 400 invalid_grant: %v", err)
		}

		if err := s.SetExchangeBehaviour(ctx, ExchangeBehaviour{}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Exchange(ctx, gateway, aliceJWT, url.Values{"audience": {upstream}})
		if err != nil {
			t.Fatalf("exchange after ok: %v", err)
		}
		checkExchanged(ctx, t, s, got, "up:read up:write", 120)

		// Slow: answered normally after the delay.
		if err := s.SetExchangeBehaviour(ctx, ExchangeBehaviour{Delay: 20 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		got, err = s.Exchange(ctx, gateway, aliceJWT, url.Values{"audience": {upstream}})
		if err != nil {
			t.Fatalf("slow exchange: %v", err)
		}
		checkExchanged(ctx, t, s, got, "up:read up:write", 120)

		if n, err := s.Exchanges(ctx); err != nil || n != before+5 {
			t.Errorf("Exchanges = %d, %v; want %d: the forced answers count too", n, err, before+5)
		}

		// A request still waiting is counted already: what a caller that gave up sees.
		if err := s.SetExchangeBehaviour(ctx, ExchangeBehaviour{Delay: 10 * time.Minute}); err != nil {
			t.Fatal(err)
		}
		reqCtx, cancelReq := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := s.Exchange(reqCtx, gateway, aliceJWT, url.Values{"audience": {upstream}})
			done <- err
		}()
		for {
			n, err := s.Exchanges(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n == before+6 {
				break
			}
			select {
			case err := <-done:
				t.Fatalf("the delayed exchange returned %v before it was counted", err)
			case <-ctx.Done():
				t.Fatal("the delayed exchange was never counted")
			case <-time.After(20 * time.Millisecond):
			}
		}
		select {
		case err := <-done:
			t.Errorf("the exchange delayed 10 minutes has returned: %v", err)
		default:
		}
		cancelReq()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("the canceled exchange returned %v, want context.Canceled", err)
		}
	})

	t.Run("bad behaviour", func(t *testing.T) {
		var re *ResponseError
		if err := s.SetExchangeBehaviour(ctx, ExchangeBehaviour{Status: 200}); !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest {
			t.Errorf("status 200: %v, want HTTP 400 from the server", err)
		}
		if err := s.SetExchangeBehaviour(ctx, ExchangeBehaviour{RetryAfter: time.Second}); err == nil {
			t.Error("RetryAfter without Status: no error")
		}
	})
}

// TestTokenExchangeInvalidGrant: the error code for invalid subject and actor tokens is
// configurable; parameter errors stay invalid_request.
func TestTokenExchangeInvalidGrant(t *testing.T) {
	f := startExchangeServer(t, "invalid_grant")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	subject, err := f.s.ClientCredentials(ctx, f.alice, jwtResource, "mcp:tools")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		subject string
		form    url.Values
		code    string
	}{
		{"garbage subject", "garbage", url.Values{"audience": {upstream}}, "invalid_grant"},
		{"garbage actor", subject, url.Values{"audience": {upstream},
			"actor_token": {"garbage"}, "actor_token_type": {TokenTypeAccessToken}}, "invalid_grant"},
		{"subject token type", subject, url.Values{"audience": {upstream},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"}}, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.s.Exchange(ctx, f.gateway, tc.subject, tc.form)
			var re *ResponseError
			if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest || re.Code != tc.code {
				t.Errorf("Exchange: %v, want HTTP 400 %s", err, tc.code)
			}
		})
	}
	if _, err := f.s.Exchange(ctx, f.gateway, subject, url.Values{"audience": {upstream}}); err != nil {
		t.Errorf("a valid exchange: %v", err)
	}
}

// TestTokenExchangeConfig: the AUTHSERVER_CONFIG tokenExchange document built from Options.
func TestTokenExchangeConfig(t *testing.T) {
	cfg, err := Options{TokenExchange: TokenExchange{Targets: []ExchangeTarget{
		{Audience: upstream, Scope: "a b", TTL: 1500 * time.Millisecond},
		{Audience: logical},
	}, InvalidTokenError: "invalid_grant"}}.config()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(cfg.TokenExchange)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"targets":[{"audience":"https://upstream.example/api","scope":"a b","ttl":2},` +
		`{"audience":"billing-service","scope":"","ttl":300}],"invalidTokenError":"invalid_grant"}`
	if string(b) != want {
		t.Errorf("tokenExchange = %s, want %s", b, want)
	}

	if cfg, err := (Options{}).config(); err != nil || cfg.TokenExchange != nil {
		t.Errorf("no TokenExchange: tokenExchange = %+v, %v; want it omitted", cfg.TokenExchange, err)
	}
	if _, err := (Options{TokenExchange: TokenExchange{Targets: []ExchangeTarget{{Scope: "a"}}}}).config(); err == nil {
		t.Error("a target without Audience: no error")
	}
}

// checkExchanged checks a token exchange response (issued_token_type, token_type, scope,
// expires_in: wantTTL unless negative) and its token (header, signature against the server's
// JWKS, exp - iat = expires_in), and returns the token's claims.
func checkExchanged(ctx context.Context, t *testing.T, s *Server, resp map[string]any, scope string, wantTTL int64) exchangeClaims {
	t.Helper()
	tok, _ := resp["access_token"].(string)
	expiresIn, _ := resp["expires_in"].(float64)
	if resp["issued_token_type"] != TokenTypeAccessToken || resp["token_type"] != "Bearer" || resp["scope"] != scope ||
		expiresIn <= 0 || (wantTTL >= 0 && int64(expiresIn) != wantTTL) {
		t.Errorf("response %v: want issued_token_type %s, token_type Bearer, scope %q, expires_in %d",
			resp, TokenTypeAccessToken, scope, wantTTL)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("access_token %q is not a JWT", tok)
	}
	var header struct{ Alg, Typ, Kid string }
	var claims exchangeClaims
	decodeSegment(t, parts[0], &header)
	decodeSegment(t, parts[1], &claims)
	if header.Alg != "RS256" || header.Typ != "at+jwt" || header.Kid == "" {
		t.Errorf("header = %+v, want alg RS256, typ at+jwt and a kid", header)
	}
	verifyRS256(ctx, t, s, tok, header.Kid)
	if claims.Exp-claims.Iat != int64(expiresIn) {
		t.Errorf("exp - iat = %d, want expires_in %v", claims.Exp-claims.Iat, expiresIn)
	}
	if claims.Iss != s.Issuer || claims.Scope != scope || claims.Jti == "" {
		t.Errorf("iss, scope, jti = %q, %q, %q; want %q, %q and a jti", claims.Iss, claims.Scope, claims.Jti, s.Issuer, scope)
	}
	return claims
}

// userAccessToken signs user in through the authorization code flow with PKCE as the public
// client app and returns the access token for resource.
func userAccessToken(ctx context.Context, t *testing.T, s *Server, app Client, user, resource string) string {
	t.Helper()
	m, code, verifier := userCode(ctx, t, s, app, user, resource)
	status, body := postForm(ctx, t, m.TokenEndpoint, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {app.RedirectURIs[0]},
		"code_verifier": {verifier}, "client_id": {app.ID}, "resource": {resource},
	})
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if status != http.StatusOK || json.Unmarshal([]byte(body), &tr) != nil || tr.AccessToken == "" {
		t.Fatalf("authorization code token request: HTTP %d %s", status, body)
	}
	return tr.AccessToken
}

// userCode signs user in as the public client app (authorization request with PKCE, for
// resource, redirected to app's first redirect URI) and returns the code and its verifier.
func userCode(ctx context.Context, t *testing.T, s *Server, app Client, user, resource string) (m Metadata, code, verifier string) {
	t.Helper()
	m, err := s.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	verifier = base64.RawURLEncoding.EncodeToString(secret)
	challenge := sha256.Sum256([]byte(verifier))
	redirect := app.RedirectURIs[0]
	authz, err := url.Parse(m.AuthorizationEndpoint + "?" + url.Values{
		"client_id": {app.ID}, "response_type": {"code"}, "redirect_uri": {redirect},
		"scope": {"openid mcp:tools"}, "resource": {resource}, "state": {"st"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(challenge[:])}, "code_challenge_method": {"S256"},
	}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	callback := SignIn(t, browser, authz, user, "/cb", false)
	code = callback.Query().Get("code")
	if code == "" {
		t.Fatalf("callback %s has no code", callback.Redacted())
	}
	return m, code, verifier
}
