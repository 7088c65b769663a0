package upstream_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/jwks"
	"github.com/extauthz/extauthz/pkg/upstream"
)

// jwtEnv is an env whose token endpoint answers JWTs signed by a
// development issuer, whose JWKS the minter verifies them with.
type jwtEnv struct {
	*env
	iss  *devissuer.Issuer
	keys *jwks.Source
}

func newJWTEnv(t *testing.T) *jwtEnv {
	t.Helper()
	e := newEnv(t)
	iss, _ := testkit.Issuer(t, "ES256", "", "", e.clock.Now)
	keys := jwks.New(func(context.Context) (string, error) { return iss.JWKSURL(), nil }, jwks.Options{Now: e.clock.Now})
	return &jwtEnv{env: e, iss: iss, keys: keys}
}

// answerJWT makes the endpoint answer tok (and expires_in, if > 0).
func (e *jwtEnv) answerJWT(t *testing.T, tok string, expiresIn int) {
	t.Helper()
	e.as.reply(func(int64, url.Values) (int, http.Header, string) { return tokenAnswer(tok, expiresIn) })
}

func (e *jwtEnv) minter(mod func(*upstream.Options)) *upstream.Minter {
	return e.env.minter(e.localStore(), func(o *upstream.Options) {
		o.Issuer, o.Keys = e.iss.Issuer(), e.keys
		if mod != nil {
			mod(o)
		}
	})
}

// mint signs a token of the development issuer; extra claims override.
func (e *jwtEnv) mint(t *testing.T, aud []string, extra map[string]any) string {
	t.Helper()
	tok, err := e.iss.Mint(devissuer.Token{Subject: "alice", Audience: aud, TTL: 10 * time.Minute, Extra: extra})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestMintedJWTRefused: a minted JWT is verified like an incoming one,
// and must be for no audience the gateway did not ask for. Any failure is
// 503 (the server misbehaves; the client did nothing wrong), logged, and
// not cached.
func TestMintedJWTRefused(t *testing.T) {
	e := newJWTEnv(t)
	other, err := devissuer.New(e.iss.Issuer(), "ES256", e.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	now := e.clock.Now()
	hs256, err := jws.Sign([]byte(`{"iss":"`+e.iss.Issuer()+`","aud":"`+upstreamAud+`","exp":`+itoa(now.Add(time.Hour).Unix())+`}`),
		jws.WithKey(jwa.HS256(), []byte("a shared secret of thirty-two bytes!")))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, token, why string }{
		{"signed by another key", func() string {
			tok, err := other.Sign(map[string]any{"iss": e.iss.Issuer(), "aud": upstreamAud, "exp": now.Add(time.Hour).Unix()},
				map[string]any{"kid": e.iss.ActiveKID()})
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}(), "token signature invalid"},
		{"alg none", b64(`{"alg":"none","typ":"at+jwt"}`) + "." + b64(`{"iss":"`+e.iss.Issuer()+`","aud":"`+upstreamAud+`","exp":`+itoa(now.Add(time.Hour).Unix())+`}`) + ".", "not a JWS compact serialization"},
		{"alg none with a signature", b64(`{"alg":"none","typ":"at+jwt"}`) + "." + b64(`{"iss":"`+e.iss.Issuer()+`","aud":"`+upstreamAud+`","exp":`+itoa(now.Add(time.Hour).Unix())+`}`) + ".c2ln", "not accepted: \\\"none"},
		{"HS256", string(hs256), "not accepted: \\\"HS256"},
		{"another issuer", e.mint(t, []string{upstreamAud}, map[string]any{"iss": "https://evil.example.com"}), "issuer not trusted"},
		{"no iss", e.mint(t, []string{upstreamAud}, map[string]any{"iss": nil}), "issuer not trusted"},
		{"no exp", e.mint(t, []string{upstreamAud}, map[string]any{"exp": nil}), "no expiry"},
		{"expired", e.mint(t, []string{upstreamAud}, map[string]any{"exp": now.Add(-time.Second).Unix()}), "token expired"},
		{"a wider audience", e.mint(t, []string{upstreamAud, "https://other.example.com"}, nil), "other.example.com\\\" was not asked for"},
		{"another audience", e.mint(t, []string{"https://other.example.com"}, nil), "other.example.com\\\" was not asked for"},
		{"no audience", e.mint(t, []string{}, nil), "no aud"},
		{"audience differing in case", e.mint(t, []string{strings.ToUpper(upstreamAud)}, nil), "MCP.EXAMPLE.COM\\\" was not asked for"},
		{"a refresh token", func() string {
			tok, err := e.iss.Sign(map[string]any{"iss": e.iss.Issuer(), "aud": upstreamAud, "exp": now.Add(time.Hour).Unix()}, map[string]any{"typ": "rt+jwt"})
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}(), "typ \\\"rt+jwt"},
		{"sender-constrained (cnf.jkt, not a thumbprint)", e.mint(t, []string{upstreamAud}, map[string]any{"cnf": map[string]any{"jkt": "abc"}}), "sender-constrained (cnf)"},
		{"sender-constrained (cnf.x5t#S256)", e.mint(t, []string{upstreamAud}, map[string]any{"cnf": map[string]any{"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}}), "sender-constrained (cnf)"},
		{"DPoP-bound (cnf.jkt)", e.mint(t, []string{upstreamAud}, map[string]any{"cnf": map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}), "sender-constrained (cnf.jkt, DPoP-bound)"},
		{"not a JWT at all", "a.b.c", "signature: invalid base64url"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.answerJWT(t, tc.token, 0)
			m := e.minter(nil)
			s := e.subject("alice", time.Hour)
			before := e.as.calls.Load()
			for range 2 {
				if c, err := m.Token(context.Background(), s); !isUnavailable(err) {
					t.Fatalf("Token = %+v, %v; want ErrUnavailable", c, err)
				}
			}
			if n := e.as.calls.Load() - before; n != 2 {
				t.Fatalf("%d calls; want 2 (nothing cached)", n)
			}
			line := lastLine(e.logs.String())
			if !strings.Contains(line, "a JWT the gateway does not accept") || !strings.Contains(line, tc.why) {
				t.Fatalf("want a loud log saying %q; got\n%s", tc.why, e.logs.String())
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestMintedJWTWithoutKeys: with no key set configured, a minted JWT
// cannot be checked, and is not passed on.
func TestMintedJWTWithoutKeys(t *testing.T) {
	e := newJWTEnv(t)
	e.answerJWT(t, e.mint(t, []string{upstreamAud}, nil), 0)
	m := e.minter(func(o *upstream.Options) { o.Keys = nil })
	if _, err := m.Token(context.Background(), e.subject("alice", time.Hour)); !isUnavailable(err) {
		t.Fatalf("Token = %v; want ErrUnavailable", err)
	}
	if !strings.Contains(e.logs.String(), "no keys") {
		t.Fatalf("no loud log naming the missing keys:\n%s", e.logs.String())
	}
}

// TestMintedJWTAccepted: narrower or equal audiences pass, and the JWT's
// own exp bounds the credential (below a longer expires_in).
func TestMintedJWTAccepted(t *testing.T) {
	const second = "https://mcp2.example.com"
	cases := []struct {
		name           string
		audience, res  []string
		aud            []string
		typ            any // the typ header; nil: the issuer's at+jwt
		expiresIn, ttl int // seconds
		wantTTL        time.Duration
	}{
		{"the audience asked for", []string{upstreamAud}, nil, []string{upstreamAud}, nil, 0, 600, 600 * time.Second},
		{"one of two audiences asked for", []string{upstreamAud, second}, nil, []string{second}, nil, 0, 600, 600 * time.Second},
		{"both audiences asked for", []string{upstreamAud, second}, nil, []string{second, upstreamAud}, nil, 0, 600, 600 * time.Second},
		{"the resource, when no audience is asked for", nil, []string{upstreamAud + "/files"}, []string{upstreamAud + "/files"}, nil, 0, 600, 600 * time.Second},
		{"typ JWT", []string{upstreamAud}, nil, []string{upstreamAud}, "JWT", 0, 600, 600 * time.Second},
		{"exp before expires_in", []string{upstreamAud}, nil, []string{upstreamAud}, nil, 3600, 600, 600 * time.Second},
		{"expires_in before exp", []string{upstreamAud}, nil, []string{upstreamAud}, nil, 300, 600, 300 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newJWTEnv(t)
			claims := map[string]any{"iss": e.iss.Issuer(), "sub": "alice", "exp": e.clock.Now().Add(time.Duration(tc.ttl) * time.Second).Unix()}
			if len(tc.aud) == 1 {
				claims["aud"] = tc.aud[0]
			} else {
				claims["aud"] = tc.aud
			}
			var header map[string]any
			if tc.typ != nil {
				header = map[string]any{"typ": tc.typ}
			}
			tok, err := e.iss.Sign(claims, header)
			if err != nil {
				t.Fatal(err)
			}
			e.answerJWT(t, tok, tc.expiresIn)
			m := e.minter(func(o *upstream.Options) { o.Audience, o.Resource, o.RefreshAhead = tc.audience, tc.res, 0 })
			s := e.subject("alice", 2*time.Hour)
			c := mustToken(t, m, s)
			if c.Token != tok {
				t.Fatal("not the minted token")
			}
			// exp has whole seconds.
			if want := e.clock.Now().Add(tc.wantTTL); c.Expiry.Sub(want).Abs() >= time.Second {
				t.Fatalf("Expiry %v; want about %v", c.Expiry, want)
			}
			// Cached until the expiry less the margin (30s).
			e.clock.Advance(tc.wantTTL - 32*time.Second)
			if c := mustToken(t, m, s); c.Source != upstream.SourceLocal {
				t.Fatalf("before the margin: %s; want a local hit", c.Source)
			}
			e.clock.Advance(2 * time.Second)
			if c := mustToken(t, m, s); c.Source != upstream.SourceMinted {
				t.Fatalf("within the margin: %s; want a new mint", c.Source)
			}
		})
	}
}

// TestClientCredentialsAtDevIssuer: the development issuer's own token
// endpoint (RFC 8707 resource → aud) gives a JWT that verifies.
func TestClientCredentialsAtDevIssuer(t *testing.T) {
	e := newEnv(t)
	iss, srv := testkit.Issuer(t, "RS256", "/dev", "", e.clock.Now)
	iss.SetClient(clientID, clientSecret) // the gateway's client, authenticated with client_secret_basic
	keys := jwks.New(func(context.Context) (string, error) { return iss.JWKSURL(), nil }, jwks.Options{Now: e.clock.Now})
	m := e.minter(e.localStore(), func(o *upstream.Options) {
		o.Mode, o.Issuer, o.Keys = upstream.ModeClientCredentials, iss.Issuer(), keys
		o.Audience, o.Resource, o.Scopes = nil, []string{upstreamAud}, []string{"files:read"}
		o.TokenEndpoint = func(context.Context) (string, error) { return srv.URL + "/dev/token", nil }
	})
	c := mustToken(t, m, upstream.Subject{})
	if c.Source != upstream.SourceMinted || strings.Count(c.Token, ".") != 2 {
		t.Fatalf("Token = %+v", c)
	}
	if c2 := mustToken(t, m, upstream.Subject{}); c2.Token != c.Token || c2.Source != upstream.SourceLocal {
		t.Fatalf("second Token = %+v; want the cached one", c2)
	}
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return l[len(l)-1]
}
