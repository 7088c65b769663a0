package token

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/jwks"
)

// keyMap is an in-process KeySource over an issuer's published keys.
type keyMap struct {
	iss *devissuer.Issuer
	err error
}

func (k keyMap) Key(_ context.Context, kid, _ string) (crypto.PublicKey, error) {
	if k.err != nil {
		return nil, k.err
	}
	if pk := k.iss.PublicKey(kid); pk != nil {
		return pk, nil
	}
	return nil, jwks.ErrKeyNotFound
}

const aud = "https://mcp.example.com/mcp"

func setup(t *testing.T, alg string, now time.Time) (*devissuer.Issuer, *IssuerSet) {
	t.Helper()
	iss, err := devissuer.New("https://auth.example.com", alg, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	iss.DefaultAudience = aud
	v, err := NewIssuerSet(Options{
		Issuers:    map[string]Issuer{iss.Issuer(): {Keys: keyMap{iss: iss}}},
		Algorithms: append(slices.Clone(DefaultAlgorithms), "ES512"),
		Leeway:     time.Minute,
		Now:        func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return iss, v
}

func trusted(iss *devissuer.Issuer) map[string]struct{} { return map[string]struct{}{iss.Issuer(): {}} }

func TestEveryAcceptedAlgorithmVerifies(t *testing.T) {
	now := time.Now()
	for _, alg := range []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			iss, v := setup(t, alg, now)
			tok, err := iss.Mint(devissuer.Token{Subject: "alice", ClientID: "c1", Scopes: []string{"a", "b"}})
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Verify(context.Background(), tok, trusted(iss))
			if err != nil {
				t.Fatal(err)
			}
			if c.Subject != "alice" || c.ClientID != "c1" || strings.Join(c.Scopes, " ") != "a b" || c.Issuer != iss.Issuer() ||
				strings.Join(c.Audience, " ") != aud || c.Expiry.Unix() != now.Add(time.Hour).Unix() || c.Scope != "a b" {
				t.Errorf("claims %+v", c)
			}
		})
	}
}

func TestClaimShapes(t *testing.T) {
	now := time.Now()
	iss, v := setup(t, "ES256", now)
	base := func() map[string]any {
		return map[string]any{"iss": iss.Issuer(), "sub": "s", "aud": aud, "exp": now.Add(time.Hour).Unix()}
	}
	with := func(k string, val any) map[string]any { m := base(); m[k] = val; return m }
	cases := []struct {
		name   string
		claims map[string]any
		check  func(*Claims) bool
	}{
		{"aud array", with("aud", []string{"x", aud}), func(c *Claims) bool { return len(c.Audience) == 2 }},
		{"aud string with space stays one value", with("aud", "a b"), func(c *Claims) bool { return len(c.Audience) == 1 }},
		{"scp array", with("scp", []string{"a", "b"}), func(c *Claims) bool { return strings.Join(c.Scopes, ",") == "a,b" }},
		{"scp string", with("scp", "a b"), func(c *Claims) bool { return strings.Join(c.Scopes, ",") == "a,b" }},
		{"scope wins over scp", func() map[string]any { m := with("scope", "x"); m["scp"] = []string{"y"}; return m }(), func(c *Claims) bool { return strings.Join(c.Scopes, ",") == "x" }},
		{"azp when no client_id", with("azp", "app"), func(c *Claims) bool { return c.ClientID == "app" }},
		{"fractional exp", with("exp", float64(now.Add(time.Hour).Unix())+0.5), func(c *Claims) bool { return c.Expiry.After(now) }},
		{"expired within leeway", with("exp", now.Add(-30*time.Second).Unix()), func(c *Claims) bool { return true }},
		{"nbf within leeway", with("nbf", now.Add(30*time.Second).Unix()), func(c *Claims) bool { return true }},
		// iat and sid are kept for revocation watermarks: iat in whole
		// seconds, rounded down; absent, 0 (the epoch).
		{"iat kept", with("iat", 1_700_000_000), func(c *Claims) bool { return c.IssuedAt == 1_700_000_000 }},
		{"fractional iat rounded down", with("iat", 1_700_000_000.9), func(c *Claims) bool { return c.IssuedAt == 1_700_000_000 }},
		{"no iat is the epoch", base(), func(c *Claims) bool { return c.IssuedAt == 0 && c.SessionID == "" }},
		{"sid kept", with("sid", "08a5019c-17e1-4977-8f42-65a12843ea02"), func(c *Claims) bool { return c.SessionID == "08a5019c-17e1-4977-8f42-65a12843ea02" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok, err := iss.Sign(c.claims, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := v.Verify(context.Background(), tok, trusted(iss))
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(got) {
				t.Errorf("claims %+v", got)
			}
		})
	}
}

func seg(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestRejections(t *testing.T) {
	now := time.Now()
	iss, v := setup(t, "RS256", now)
	good, _ := iss.Mint(devissuer.Token{Subject: "s"})
	h, p, _ := strings.Cut(good, ".")
	p, sig, _ := strings.Cut(p, ".")
	claims := func(mut func(map[string]any)) string {
		m := map[string]any{"iss": iss.Issuer(), "sub": "s", "aud": aud, "exp": now.Add(time.Hour).Unix()}
		mut(m)
		tok, err := iss.Sign(m, nil)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	hdr := func(extra map[string]any) string {
		tok, err := iss.Sign(map[string]any{"iss": iss.Issuer(), "aud": aud, "exp": now.Add(time.Hour).Unix()}, extra)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	cases := []struct {
		name string
		tok  string
		want error
	}{
		{"empty", "", ErrMalformed},
		{"two parts", h + "." + p, ErrMalformed},
		{"JWE shape", "a.b.c.d.e", ErrMalformed},
		{"empty signature", h + "." + p + ".", ErrMalformed},
		{"header not base64", "!!." + p + "." + sig, ErrMalformed},
		{"header padded base64", h + "==." + p + "." + sig, ErrMalformed},
		{"header not JSON object", seg([]string{"x"}) + "." + p + "." + sig, ErrMalformed},
		{"claims not JSON", h + "." + base64.RawURLEncoding.EncodeToString([]byte("{nope")) + "." + sig, ErrMalformed},
		{"claims trailing data", h + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"x"} {}`)) + "." + sig, ErrMalformed},
		{"exp not a number", claims(func(m map[string]any) { m["exp"] = "tomorrow" }), ErrMalformed},
		{"too large", strings.Repeat("a", 16<<10+1), ErrMalformed},
		{"alg none", seg(map[string]string{"alg": "none"}) + "." + p + "." + sig, ErrAlgorithm},
		{"alg HS256", seg(map[string]string{"alg": "HS256", "kid": iss.ActiveKID()}) + "." + p + "." + sig, ErrAlgorithm},
		{"alg mismatch with key", seg(map[string]string{"alg": "ES256", "kid": iss.ActiveKID()}) + "." + p + "." + sig, ErrSignature},
		{"crit", hdr(map[string]any{"crit": []string{"x"}, "x": true}), ErrCritical},
		{"b64 false", seg(map[string]any{"alg": "RS256", "b64": false}) + "." + p + "." + sig, ErrCritical},
		{"signature from another token", h + "." + seg(map[string]any{"iss": iss.Issuer(), "aud": aud, "exp": now.Add(time.Hour).Unix(), "sub": "admin"}) + "." + sig, ErrSignature},
		{"unknown kid", hdr(map[string]any{"kid": "nope"}), ErrUnknownKey},
		{"no iss", claims(func(m map[string]any) { delete(m, "iss") }), ErrUnknownIssuer},
		{"untrusted iss", claims(func(m map[string]any) { m["iss"] = "https://evil.example" }), ErrUnknownIssuer},
		{"iss differs by trailing slash", claims(func(m map[string]any) { m["iss"] = iss.Issuer() + "/" }), ErrUnknownIssuer},
		{"no exp", claims(func(m map[string]any) { delete(m, "exp") }), ErrMissingExpiry},
		{"expired beyond leeway", claims(func(m map[string]any) { m["exp"] = now.Add(-61 * time.Second).Unix() }), ErrExpired},
		{"nbf beyond leeway", claims(func(m map[string]any) { m["nbf"] = now.Add(61 * time.Second).Unix() }), ErrNotYetValid},
		{"iat in the future", claims(func(m map[string]any) { m["iat"] = now.Add(time.Hour).Unix() }), ErrNotYetValid},
		// A session a watermark could not match is no token to accept.
		{"sid not a string", claims(func(m map[string]any) { m["sid"] = 42 }), ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := v.Verify(context.Background(), c.tok, trusted(iss))
			if !errors.Is(err, c.want) || got != nil {
				t.Fatalf("got %v, %v; want %v", got, err, c.want)
			}
		})
	}
	t.Run("issuer trusted globally but not by this resource", func(t *testing.T) {
		if _, err := v.Verify(context.Background(), good, map[string]struct{}{"https://other": {}}); !errors.Is(err, ErrUnknownIssuer) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestKeysUnavailable(t *testing.T) {
	now := time.Now()
	iss, _ := setup(t, "ES256", now)
	v, err := NewIssuerSet(Options{Issuers: map[string]Issuer{iss.Issuer(): {Keys: keyMap{iss: iss, err: fmt.Errorf("fetch: %w", jwks.ErrUnavailable)}}}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := iss.Mint(devissuer.Token{Subject: "s"})
	_, err = v.Verify(context.Background(), tok, trusted(iss))
	if !errors.Is(err, ErrUnavailable) || Definitive(err) {
		t.Fatalf("got %v (definitive %v), want a transient ErrUnavailable", err, Definitive(err))
	}
}

func TestRefusesSymmetricAlgorithms(t *testing.T) {
	for _, a := range []string{"none", "HS256", "HS512"} {
		if _, err := NewIssuerSet(Options{Algorithms: []string{a}}); err == nil {
			t.Errorf("%s accepted", a)
		}
	}
}

// Provider quirks: the claims that hold audiences, scopes and client id
// are named per issuer.
func TestClaimNames(t *testing.T) {
	now := time.Now()
	iss, err := devissuer.New("https://auth.example.com", "RS256", func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	exp := now.Add(time.Hour).Unix()
	cases := []struct {
		name   string
		names  ClaimNames
		claims map[string]any
		aud    []string
		scopes []string
		client string
	}{
		{"default is strict: aud, scope, client_id", ClaimNames{},
			map[string]any{"aud": "r", "scope": "a b", "client_id": "c", "azp": "z"}, []string{"r"}, []string{"a", "b"}, "c"},
		{"aws cognito: no aud, client_id stands in", ClaimNames{Audience: "client_id"},
			map[string]any{"client_id": "3n4b", "scope": "mcp/tools", "token_use": "access"}, []string{"3n4b"}, []string{"mcp/tools"}, "3n4b"},
		{"cognito without the setting has no audience", ClaimNames{},
			map[string]any{"client_id": "3n4b", "scope": "mcp/tools"}, nil, []string{"mcp/tools"}, "3n4b"},
		{"entra id v2: scp string, azp", ClaimNames{Scope: "scp", ClientID: "azp"},
			map[string]any{"aud": "api://mcp", "scp": "Tools.Call Files.Read", "azp": "app-guid"}, []string{"api://mcp"}, []string{"Tools.Call", "Files.Read"}, "app-guid"},
		{"okta: scp array, cid", ClaimNames{Scope: "scp", ClientID: "cid"},
			map[string]any{"aud": "api://default", "scp": []string{"mcp:tools"}, "cid": "0oa1"}, []string{"api://default"}, []string{"mcp:tools"}, "0oa1"},
		{"kept claims for policies", ClaimNames{Keep: []string{"tenant", "groups", "absent"}},
			map[string]any{"aud": "r", "scope": "a", "tenant": "acme", "groups": []string{"ops"}}, []string{"r"}, []string{"a"}, ""},
		{"a named claim that is absent grants nothing", ClaimNames{Scope: "roles"},
			map[string]any{"aud": "r", "scope": "a"}, []string{"r"}, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewIssuerSet(Options{
				Issuers: map[string]Issuer{iss.Issuer(): {Keys: keyMap{iss: iss}, Claims: tc.names}},
				Now:     func() time.Time { return now },
			})
			if err != nil {
				t.Fatal(err)
			}
			claims := map[string]any{"iss": iss.Issuer(), "sub": "s", "exp": exp}
			for k, val := range tc.claims {
				claims[k] = val
			}
			tok, err := iss.Sign(claims, nil)
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Verify(context.Background(), tok, trusted(iss))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Audience, tc.aud) || !slices.Equal(c.Scopes, tc.scopes) || (tc.client != "" && c.ClientID != tc.client) {
				t.Errorf("audience %q scopes %q client %q", c.Audience, c.Scopes, c.ClientID)
			}
			// Only the claims asked for are kept, and only when present.
			wantExtra := map[string]any{}
			for _, k := range tc.names.Keep {
				if v, ok := tc.claims[k]; ok {
					b, _ := json.Marshal(v)
					var decoded any
					_ = json.Unmarshal(b, &decoded)
					wantExtra[k] = decoded
				}
			}
			if len(wantExtra) == 0 {
				wantExtra = nil
			}
			if fmt.Sprint(c.Extra) != fmt.Sprint(wantExtra) {
				t.Errorf("kept claims %v, want %v", c.Extra, wantExtra)
			}
		})
	}
}

// fakeIntrospector records what it was asked and answers active.
type fakeIntrospector struct {
	issuer string
	asked  []string
}

func (f *fakeIntrospector) Introspect(_ context.Context, raw string) (*Claims, error) {
	f.asked = append(f.asked, raw)
	return &Claims{Subject: "introspected", Expiry: time.Now().Add(time.Hour), Grant: &Grant{Issuer: f.issuer}}, nil
}

// Which tokens are verified locally and which are introspected, and at
// which server.
func TestModes(t *testing.T) {
	now := time.Now()
	newIss := func(name string) *devissuer.Issuer {
		i, err := devissuer.New("https://"+name+".example.com", "ES256", func() time.Time { return now })
		if err != nil {
			t.Fatal(err)
		}
		i.DefaultAudience = aud
		return i
	}
	local, auto, remote, stranger := newIss("local"), newIss("auto"), newIss("remote"), newIss("stranger")
	autoIn := &fakeIntrospector{issuer: auto.Issuer()}
	remoteIn := &fakeIntrospector{issuer: remote.Issuer()}
	v, err := NewIssuerSet(Options{
		Issuers: map[string]Issuer{
			local.Issuer():  {Keys: keyMap{iss: local}},
			auto.Issuer():   {Mode: ModeAuto, Keys: keyMap{iss: auto}, Introspector: autoIn},
			remote.Issuer(): {Mode: ModeIntrospection, Introspector: remoteIn},
		},
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	mint := func(i *devissuer.Issuer) string {
		tok, err := i.Mint(devissuer.Token{Subject: "local"})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	noIss, err := local.Sign(map[string]any{"sub": "x", "aud": aud, "exp": now.Add(time.Hour).Unix()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	set := func(is ...*devissuer.Issuer) map[string]struct{} {
		m := map[string]struct{}{}
		for _, i := range is {
			m[i.Issuer()] = struct{}{}
		}
		return m
	}
	cases := []struct {
		name    string
		raw     string
		trusted map[string]struct{}
		want    error
		subject string
		asked   *fakeIntrospector
	}{
		{"jwt mode: local", mint(local), set(local, auto), nil, "local", nil},
		{"auto mode: its own JWT is verified locally", mint(auto), set(local, auto), nil, "local", nil},
		{"auto mode: an opaque token is introspected", "opaque-1", set(local, auto), nil, "introspected", autoIn},
		{"auto mode: a JWT without iss is introspected", noIss, set(auto), nil, "introspected", autoIn},
		{"introspection mode: even its JWT is introspected", mint(remote), set(local, remote), nil, "introspected", remoteIn},
		{"untrusted issuer: never sent to the introspecting server", mint(stranger), set(auto), ErrUnknownIssuer, "", nil},
		{"issuer trusted elsewhere only: refused", mint(local), set(auto), ErrUnknownIssuer, "", nil},
		{"opaque with no introspecting server", "opaque-2", set(local), ErrMalformed, "", nil},
		{"two introspecting servers: no guess", "opaque-3", set(auto, remote), ErrMalformed, "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			autoIn.asked, remoteIn.asked = nil, nil
			c, err := v.Verify(context.Background(), tc.raw, tc.trusted)
			if !errors.Is(err, tc.want) || (err == nil && c.Subject != tc.subject) {
				t.Fatalf("Verify = %+v, %v; want subject %q, err %v", c, err, tc.subject, tc.want)
			}
			for _, in := range []*fakeIntrospector{autoIn, remoteIn} {
				want := 0
				if in == tc.asked {
					want = 1
				}
				if len(in.asked) != want {
					t.Errorf("introspector of %s asked %d times, want %d", in.issuer, len(in.asked), want)
				}
			}
		})
	}
}
