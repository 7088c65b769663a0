package ssftest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// The transmitter's SETs, checked with an independent JOSE library (jwx)
// against the key set it serves, found through its configuration
// document: good ones verify with the published key, Rogue's do not.
func TestSETsVerifyWithItsPublishedKeys(t *testing.T) {
	tr := New(t, Options{Audience: "https://rp.example.com", Path: "/t1"})
	var doc map[string]any
	getJSON(t, tr.ConfigurationURL(), &doc)
	if doc["issuer"] != tr.Issuer || doc["jwks_uri"] != tr.JWKSURI() || !strings.HasSuffix(tr.Issuer, "/t1") {
		t.Fatalf("configuration %v; issuer %s", doc, tr.Issuer)
	}
	resp, err := http.Get(tr.JWKSURI()) //nolint:noctx // a test against its own server
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	set, err := jwk.ParseReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*Key{tr.ES256, tr.RS256} {
		key, ok := set.LookupKeyID(k.Kid)
		if !ok {
			t.Fatalf("kid %s not published", k.Kid)
		}
		alg, _ := jwa.LookupSignatureAlgorithm(k.Alg())
		tok := tr.Sign(t, SET{Event: "urn:e", Key: k, Subject: Opaque("x")})
		payload, err := jws.Verify([]byte(tok), jws.WithKey(alg, key))
		if err != nil {
			t.Fatalf("%s: %v", k.Alg(), err)
		}
		var c map[string]any
		_ = json.Unmarshal(payload, &c)
		if c["iss"] != tr.Issuer || c["aud"] != "https://rp.example.com" || c["jti"] == "" {
			t.Fatalf("claims %v", c)
		}
		msg, _ := jws.Parse([]byte(tok))
		if typ, _ := msg.Signatures()[0].ProtectedHeaders().Type(); typ != "secevent+jwt" {
			t.Fatalf("typ %q", typ)
		}
	}
	es, _ := set.LookupKeyID(tr.ES256.Kid)
	if _, err := jws.Verify([]byte(tr.Sign(t, SET{Event: "urn:e", Key: tr.Rogue})), jws.WithKey(jwa.ES256(), es)); err == nil {
		t.Fatal("a Rogue SET verifies with the published key")
	}
	if none := tr.Sign(t, SET{Event: "urn:e", Alg: "none"}); !strings.HasSuffix(none, ".") {
		t.Fatalf("alg none: %s", none)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url) //nolint:noctx // a test against its own server
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
