package token

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// thumbprint is a JWK SHA-256 thumbprint (RFC 7638): the example of RFC
// 9449 §6.1.
const thumbprint = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"

// TestGrantKeySeparatesBindings: interning by Key must never hand a bound
// token an unbound grant (it would pass as Bearer), nor one bound to
// another key.
func TestGrantKeySeparatesBindings(t *testing.T) {
	other := strings.Repeat("A", 43)
	base := Grant{Issuer: "https://auth.example.com", ClientID: "c", Audience: []string{"a"}, Scopes: []string{"x"}, Scope: "x"}
	var grants []Grant
	for _, ttl := range []time.Duration{0, time.Minute} {
		for _, jkt := range []string{"", thumbprint, other} {
			g := base
			g.CacheTTL, g.JKT = ttl, jkt
			grants = append(grants, g)
		}
	}
	seen := map[string]Grant{}
	for _, g := range grants {
		k := g.Key()
		if prev, dup := seen[k]; dup {
			t.Fatalf("grants %+v and %+v share a key", prev, g)
		}
		seen[k] = g
	}
	same := base
	same.JKT = thumbprint
	again := base
	again.JKT = thumbprint
	if same.Key() != again.Key() {
		t.Fatal("equal bound grants have different keys")
	}
}

// TestGrantKeyIsInjective: interning hands a token the table's grant with the same Key, so two
// grants that differ in any field must never share one. Audiences and scopes are strings from
// the token (scp and aud arrays may hold any characters, control characters included), so no
// separator can be trusted to be absent from them.
func TestGrantKeyIsInjective(t *testing.T) {
	pairs := [][2]Grant{
		// one scope holding a separator against two scopes
		{{Issuer: "i", Scopes: []string{"a\x01b"}}, {Issuer: "i", Scopes: []string{"a", "b"}}},
		// an audience running into the scopes
		{{Issuer: "i", Audience: []string{"x\x01\x00y"}}, {Issuer: "i", Audience: []string{"x"}, Scopes: []string{"y"}}},
		// the client id running into the audiences
		{{Issuer: "i", ClientID: "c\x00a\x01"}, {Issuer: "i", ClientID: "c", Audience: []string{"a"}}},
		// the issuer running into the client id
		{{Issuer: "i\x00c"}, {Issuer: "i", ClientID: "c"}},
		// a scope that spells a binding marker and a thumbprint
		{{Issuer: "i", Scopes: []string{"x\x01\x02" + thumbprint}}, {Issuer: "i", Scopes: []string{"x"}, JKT: thumbprint}},
		// an empty list against a list of one empty string
		{{Issuer: "i", Scopes: []string{""}}, {Issuer: "i"}},
	}
	for _, p := range pairs {
		if p[0].Key() == p[1].Key() {
			t.Errorf("grants %q and %q share a key", p[0], p[1])
		}
	}
}

// FuzzGrantKey: two grants have the same Key exactly when every field a Key covers is equal.
func FuzzGrantKey(f *testing.F) {
	f.Add("i", "c", "a", "x y", "", "i", "c", "a", "x\x01y", "")
	f.Add("i", "c\x00", "", "", "", "i", "c", "\x00", "", "")
	f.Fuzz(func(t *testing.T, iss1, cl1, aud1, sc1, jkt1, iss2, cl2, aud2, sc2, jkt2 string) {
		// Lists are split on a tab, so that their items may hold every other character.
		list := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, "\t")
		}
		a := Grant{Issuer: iss1, ClientID: cl1, Audience: list(aud1), Scopes: list(sc1), JKT: jkt1}
		b := Grant{Issuer: iss2, ClientID: cl2, Audience: list(aud2), Scopes: list(sc2), JKT: jkt2}
		equal := a.Issuer == b.Issuer && a.ClientID == b.ClientID && a.JKT == b.JKT &&
			slices.Equal(a.Audience, b.Audience) && slices.Equal(a.Scopes, b.Scopes)
		if (a.Key() == b.Key()) != equal {
			t.Fatalf("grants %q and %q: keys equal %v, fields equal %v", a, b, a.Key() == b.Key(), equal)
		}
	})
}
