package token

import (
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
