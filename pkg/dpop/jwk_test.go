package dpop_test

import (
	"testing"

	"github.com/extauthz/extauthz/pkg/dpop"
)

// RFC 7638 §3.1: the example RSA key of RFC 7517 Appendix A.1 and its
// SHA-256 thumbprint. The JSON has the members in another order and with
// whitespace, which the thumbprint must not depend on.
func TestThumbprintRFC7638(t *testing.T) {
	t.Parallel()
	const key = `{
     "kty": "RSA",
     "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
     "e": "AQAB",
     "alg": "RS256",
     "kid": "2011-04-29"
    }`
	got, err := dpop.Thumbprint([]byte(key), "RS256")
	if err != nil {
		t.Fatal(err)
	}
	const want = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
	if got != want {
		t.Fatalf("thumbprint %s, want %s", got, want)
	}
}

// EC and OKP thumbprints agree with jwx's, and do not depend on optional
// members or their order.
func TestThumbprintMatchesJWX(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"ES256", "ES384", "ES512", "EdDSA", "RS256"} {
		k := newKey(t, alg)
		pub := k.jwk()
		want := jwxThumbprint(t, pub)
		pub["kid"], pub["use"] = "some-id", "sig"
		got, err := dpop.Thumbprint(mustJSON(t, pub), alg)
		if err != nil || got != want {
			t.Errorf("%s: thumbprint %s, %v; jwx says %s", alg, got, err, want)
		}
	}
}
