package testkit

import (
	"crypto/elliptic"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/pkg/devissuer"
)

// ECDSACurve is the curve of a JWS ECDSA algorithm (RFC 7518 §3.4).
func ECDSACurve(tb testing.TB, alg string) elliptic.Curve {
	tb.Helper()
	switch alg {
	case "ES256":
		return elliptic.P256()
	case "ES384":
		return elliptic.P384()
	case "ES512":
		return elliptic.P521()
	}
	tb.Fatalf("testkit: %q is not an ECDSA algorithm", alg)
	return nil
}

// OtherECDSASpelling returns tok with its signature (r, s) replaced by
// (r, n−s): the second valid ECDSA signature of the same header and
// claims, which anyone can compute from the first without the key. It
// also reports whether s was in the upper half (n/2 < s). The arithmetic
// is done here with math/big, independently of the gateway's own.
func OtherECDSASpelling(tb testing.TB, tok string, curve elliptic.Curve) (other string, highS bool) {
	tb.Helper()
	dot := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	size := (curve.Params().BitSize + 7) / 8
	if dot < 0 || err != nil || len(sig) != 2*size {
		tb.Fatalf("testkit: not an ECDSA %s JWS: %.40s…", curve.Params().Name, tok)
	}
	n := curve.Params().N
	s := new(big.Int).SetBytes(sig[size:])
	highS = s.Cmp(new(big.Int).Rsh(n, 1)) > 0
	flipped := make([]byte, 2*size)
	copy(flipped, sig[:size])
	new(big.Int).Sub(n, s).FillBytes(flipped[size:])
	return tok[:dot+1] + base64.RawURLEncoding.EncodeToString(flipped), highS
}

// MintECDSA mints tokens with mint until one's s is in the upper half of
// [1, n) (highS) or in the lower half (!highS); each half holds about
// every other signature, as signers pick s at random.
func MintECDSA(tb testing.TB, curve elliptic.Curve, highS bool, mint func() (string, error)) string {
	tb.Helper()
	for range 64 {
		tok, err := mint()
		if err != nil {
			tb.Fatal(err)
		}
		if _, high := OtherECDSASpelling(tb, tok, curve); high == highS {
			return tok
		}
	}
	tb.Fatalf("testkit: no signature with high s = %v in 64 tries", highS)
	return ""
}

// MintFunc adapts an issuer's Mint to MintECDSA.
func MintFunc(iss *devissuer.Issuer, t devissuer.Token) func() (string, error) {
	return func() (string, error) { return iss.Mint(t) }
}
