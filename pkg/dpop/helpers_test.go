package dpop_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/dpop"
)

// The request every test proof is made for, unless a test says otherwise.
const (
	testMethod = "POST"
	testURI    = "https://mcp.example.com/mcp"
	testToken  = "eyJhbGciOiJFUzI1NiJ9.eyJjbmYiOnt9fQ.c2ln" // any string: only its hash is checked
)

// t0 is the fixed instant the tests' clocks start at.
var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// testKey is a client's proof key for one algorithm.
type testKey struct {
	alg  string
	priv crypto.Signer
}

// privateKeys are generated once per test binary (RSA generation is slow)
// and shared by the tests, which never modify them.
var privateKeys sync.Map // kind → crypto.Signer

func privateKey(tb testing.TB, kind string) crypto.Signer {
	tb.Helper()
	if k, ok := privateKeys.Load(kind); ok {
		return k.(crypto.Signer)
	}
	var k crypto.Signer
	var err error
	switch kind {
	case "P-256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "P-384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "P-521":
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "Ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	case "RSA":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		tb.Fatalf("no key kind %q", kind)
	}
	if err != nil {
		tb.Fatal(err)
	}
	actual, _ := privateKeys.LoadOrStore(kind, k)
	return actual.(crypto.Signer)
}

// kindOf is the key kind an algorithm signs with.
func kindOf(alg string) string {
	switch alg {
	case "ES256":
		return "P-256"
	case "ES384":
		return "P-384"
	case "ES512":
		return "P-521"
	case "EdDSA", "Ed25519":
		return "Ed25519"
	}
	return "RSA"
}

// newKey is the shared key for alg.
func newKey(tb testing.TB, alg string) *testKey {
	return &testKey{alg: alg, priv: privateKey(tb, kindOf(alg))}
}

// freshKey is a key no other test uses.
func freshKey(tb testing.TB, alg string) *testKey {
	tb.Helper()
	var k crypto.Signer
	var err error
	switch kindOf(alg) {
	case "P-256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "Ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		tb.Fatalf("freshKey: %s not supported", alg)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return &testKey{alg: alg, priv: k}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwk is the public JWK of the key, as a client puts it in the header.
func (k *testKey) jwk() map[string]any {
	switch p := k.priv.Public().(type) {
	case *ecdsa.PublicKey:
		b, err := p.Bytes()
		if err != nil {
			panic(err)
		}
		size := (len(b) - 1) / 2
		return map[string]any{"kty": "EC", "crv": p.Curve.Params().Name, "x": b64(b[1 : 1+size]), "y": b64(b[1+size:])}
	case ed25519.PublicKey:
		return map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(p)}
	case *rsa.PublicKey:
		return map[string]any{"kty": "RSA", "n": b64(p.N.Bytes()), "e": b64(big.NewInt(int64(p.E)).Bytes())}
	}
	panic("unknown key type")
}

// header is the usual proof header for the key.
func (k *testKey) header() map[string]any {
	return map[string]any{"typ": "dpop+jwt", "alg": k.alg, "jwk": k.jwk()}
}

// sign makes a compact JWS of the given header and claims JSON, signed
// with the key for k.alg, whatever the header says.
func (k *testKey) sign(tb testing.TB, header, claims []byte) string {
	tb.Helper()
	input := b64(header) + "." + b64(claims)
	return input + "." + b64(k.signature(tb, input))
}

func (k *testKey) signature(tb testing.TB, input string) []byte {
	tb.Helper()
	var h crypto.Hash
	switch k.alg {
	case "ES256", "RS256", "PS256":
		h = crypto.SHA256
	case "ES384", "RS384", "PS384":
		h = crypto.SHA384
	case "ES512", "RS512", "PS512":
		h = crypto.SHA512
	}
	switch p := k.priv.(type) {
	case ed25519.PrivateKey:
		return ed25519.Sign(p, []byte(input))
	case *ecdsa.PrivateKey:
		hh := h.New()
		hh.Write([]byte(input))
		r, s, err := ecdsa.Sign(rand.Reader, p, hh.Sum(nil))
		if err != nil {
			tb.Fatal(err)
		}
		size := (p.Curve.Params().BitSize + 7) / 8
		sig := make([]byte, 2*size)
		r.FillBytes(sig[:size])
		s.FillBytes(sig[size:])
		return sig
	case *rsa.PrivateKey:
		hh := h.New()
		hh.Write([]byte(input))
		var sig []byte
		var err error
		if k.alg[0] == 'P' {
			sig, err = rsa.SignPSS(rand.Reader, p, h, hh.Sum(nil), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, p, h, hh.Sum(nil))
		}
		if err != nil {
			tb.Fatal(err)
		}
		return sig
	}
	tb.Fatal("unknown key type")
	return nil
}

// proof signs header and claims, given as values encoding/json marshals
// (maps, or json.RawMessage for hostile JSON).
func (k *testKey) proof(tb testing.TB, header, claims any) string {
	tb.Helper()
	return k.sign(tb, mustJSON(tb, header), mustJSON(tb, claims))
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	if raw, ok := v.(json.RawMessage); ok {
		return raw
	}
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// ath is base64url(SHA-256(token)), computed here independently.
func ath(token string) string {
	h := sha256.Sum256([]byte(token))
	return b64(h[:])
}

// fixture is a verifier on a fake clock with an in-memory replay store.
type fixture struct {
	clock *testkit.Clock
	store *dpop.MemoryReplay
	v     *dpop.Verifier
}

func newFixture(tb testing.TB, o dpop.Options) *fixture {
	tb.Helper()
	f := &fixture{clock: testkit.NewClockAt(t0)}
	if o.Now == nil {
		o.Now = f.clock.Now
	}
	if o.Replay == nil {
		f.store = dpop.NewMemoryReplay(1<<16, f.clock.Now)
		o.Replay = f.store
	}
	v, err := dpop.NewVerifier(o)
	if err != nil {
		tb.Fatal(err)
	}
	f.v = v
	return f
}

// claims are a good proof's claims for the test request, now.
func (f *fixture) claims() map[string]any {
	return map[string]any{
		"jti": rand.Text(),
		"htm": testMethod,
		"htu": testURI,
		"iat": f.clock.Now().Unix(),
		"ath": ath(testToken),
	}
}

// verify checks a proof for the test request.
func (f *fixture) verify(proof string) (dpop.Result, error) {
	return f.v.Verify(context.Background(), dpop.Proof{Header: proof, Method: testMethod, URI: testURI, AccessToken: testToken})
}

const cryptoSHA256 = crypto.SHA256

func b64dec(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
