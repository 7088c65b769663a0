package dpoptest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/extauthz/extauthz/pkg/dpop"
)

const (
	target = "https://mcp.example.com/mcp"
	token  = "an-access-token"
)

func keys(t *testing.T) map[string]*Key {
	t.Helper()
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	out := map[string]*Key{}
	for _, s := range []crypto.Signer{p256, p384, ed, rk} {
		k, err := KeyFrom(s)
		if err != nil {
			t.Fatal(err)
		}
		out[k.Alg()] = k
	}
	return out
}

// decode splits a proof into its header and claims.
func decode(t *testing.T, proof string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(proof, ".")
	if len(parts) != 3 {
		t.Fatalf("proof has %d parts", len(parts))
	}
	for i, into := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

// TestProofsVerifyWithAnotherImplementation: jwx, knowing nothing of this package, verifies
// every algorithm's proof with the jwk it carries, and computes the same thumbprint.
func TestProofsVerifyWithAnotherImplementation(t *testing.T) {
	for alg, k := range keys(t) {
		t.Run(alg, func(t *testing.T) {
			proof := k.MustSign(t, Proof{Method: "POST", URL: target, AccessToken: token, Nonce: "n-1"})
			header, claims := decode(t, proof)
			raw, _ := json.Marshal(header["jwk"])
			pub, err := jwk.ParseKey(raw)
			if err != nil {
				t.Fatal(err)
			}
			a, ok := jwa.LookupSignatureAlgorithm(alg)
			if !ok {
				t.Fatalf("jwx does not know %s", alg)
			}
			if _, err := jws.Verify([]byte(proof), jws.WithKey(a, pub)); err != nil {
				t.Errorf("jwx refuses the proof: %v", err)
			}
			tp, err := pub.Thumbprint(crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if got := base64.RawURLEncoding.EncodeToString(tp); got != k.JKT() {
				t.Errorf("JKT %s, jwx computes %s", k.JKT(), got)
			}
			if header["typ"] != "dpop+jwt" || header["alg"] != alg {
				t.Errorf("header %v", header)
			}
			iat, _ := claims["iat"].(float64)
			if claims["htm"] != "POST" || claims["htu"] != target || claims["ath"] != ATH(token) ||
				claims["nonce"] != "n-1" || len(claims["jti"].(string)) < 16 || time.Since(time.Unix(int64(iat), 0)) > time.Minute {
				t.Errorf("claims %v", claims)
			}
			if _, private := header["jwk"].(map[string]any)["d"]; private {
				t.Error("the jwk carries d")
			}
		})
	}
}

// TestKnobs: what each knob puts in the proof.
func TestKnobs(t *testing.T) {
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewKey()
	base := Proof{Method: "GET", URL: target}
	with := func(f func(*Proof)) Proof { p := base; f(&p); return p }

	h, _ := decode(t, k.MustSign(t, with(func(p *Proof) { p.PrivateJWK = true })))
	if d, _ := h["jwk"].(map[string]any)["d"].(string); d == "" {
		t.Errorf("PrivateJWK: jwk %v has no d", h["jwk"])
	}
	h, _ = decode(t, k.MustSign(t, with(func(p *Proof) { p.JWK = other.PublicJWK() })))
	if h["jwk"].(map[string]any)["x"] != other.PublicJWK()["x"] {
		t.Error("JWK: not the other key's")
	}
	none := k.MustSign(t, with(func(p *Proof) { p.Alg = "none" }))
	if h, _ = decode(t, none); h["alg"] != "none" || !strings.HasSuffix(none, ".") {
		t.Errorf("alg none: %v, %q", h, none)
	}
	hs := k.MustSign(t, with(func(p *Proof) { p.Alg = "HS256"; p.HMACKey = []byte("0123456789abcdef0123456789abcdef") }))
	if _, err := jws.Verify([]byte(hs), jws.WithKey(jwa.HS256(), []byte("0123456789abcdef0123456789abcdef"))); err != nil {
		t.Errorf("HS256 proof does not verify with its secret: %v", err)
	}
	_, c := decode(t, k.MustSign(t, with(func(p *Proof) {
		p.IssuedAt = time.Unix(1000, 0)
		p.JTI = "fixed"
		p.ATH = "wrong"
		p.Omit = []string{"htm", "typ"}
		p.Claims = map[string]any{"extra": true}
	})))
	if c["iat"] != 1000.0 || c["jti"] != "fixed" || c["ath"] != "wrong" || c["htm"] != nil || c["extra"] != true {
		t.Errorf("claims %v", c)
	}
	if _, err := k.Sign(Proof{Method: "GET"}); err == nil {
		t.Error("a proof without a URL was signed")
	}
	if got := Headers("tok", "p1", "p2"); len(got) != 3 || got[0] != [2]string{"authorization", "DPoP tok"} || got[2][1] != "p2" {
		t.Errorf("Headers = %v", got)
	}
	u, _ := url.Parse("https://user@h.example:8443/a/b?q=1#f")
	if got := HTU(u); got != "https://h.example:8443/a/b" {
		t.Errorf("HTU = %q", got)
	}
}

// TestTheGatewaysVerifierAgrees: pkg/dpop accepts the good proofs and refuses each bad one,
// for the reason the knob was meant to produce.
func TestTheGatewaysVerifierAgrees(t *testing.T) {
	k, _ := NewKey()
	other, _ := NewKey()
	v, err := dpop.NewVerifier(dpop.Options{Replay: dpop.NewMemoryReplay(0, nil)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	verify := func(p string, jkt string) error {
		_, err := v.Verify(ctx, dpop.Proof{Header: p, Method: "POST", URI: target, AccessToken: token, JKT: jkt})
		return err
	}
	good := Proof{Method: "POST", URL: target, AccessToken: token}
	for alg, key := range keys(t) {
		if err := verify(key.MustSign(t, good), key.JKT()); err != nil {
			t.Errorf("%s: good proof refused: %v", alg, err)
		}
	}
	replayed := k.MustSign(t, good)
	if err := verify(replayed, k.JKT()); err != nil {
		t.Fatalf("good proof refused: %v", err)
	}
	bad := map[string]Proof{
		"replayed":      {},
		"wrong htm":     {Method: "GET"},
		"wrong htu":     {URL: target + "/other"},
		"stale iat":     {IssuedAt: time.Now().Add(-10 * time.Minute)},
		"future iat":    {IssuedAt: time.Now().Add(10 * time.Minute)},
		"wrong ath":     {ATH: ATH("another token")},
		"no ath":        {AccessToken: "-"},
		"private jwk":   {PrivateJWK: true},
		"other jwk":     {JWK: other.PublicJWK()},
		"alg none":      {Alg: "none"},
		"alg HS256":     {Alg: "HS256"},
		"typ jwt":       {Typ: "JWT"},
		"no jti":        {Omit: []string{"jti"}},
		"no iat":        {Omit: []string{"iat"}},
		"no jwk":        {Omit: []string{"jwk"}},
		"another alg":   {Alg: "ES384"},
		"crit":          {Header: map[string]any{"crit": []string{"exp"}}},
		"key not bound": {}, // signed by other, below
	}
	for name, p := range bad {
		t.Run(name, func(t *testing.T) {
			full := good
			if p.Method != "" {
				full.Method = p.Method
			}
			if p.URL != "" {
				full.URL = p.URL
			}
			if p.AccessToken == "-" {
				full.AccessToken = ""
			}
			full.IssuedAt, full.ATH, full.PrivateJWK, full.JWK, full.Alg, full.Typ, full.Omit, full.Header =
				p.IssuedAt, p.ATH, p.PrivateJWK, p.JWK, p.Alg, p.Typ, p.Omit, p.Header
			proof := k.MustSign(t, full)
			switch name {
			case "replayed":
				proof = replayed
			case "key not bound":
				proof = other.MustSign(t, full)
			}
			err := verify(proof, k.JKT())
			if !errors.Is(err, dpop.ErrInvalidProof) {
				t.Fatalf("Verify = %v, want ErrInvalidProof", err)
			}
			if name == "key not bound" && !errors.Is(err, dpop.ErrKeyMismatch) {
				t.Errorf("Verify = %v, want ErrKeyMismatch", err)
			}
		})
	}
}

// TestTransportRetriesWithTheNonce: against a resource server that demands nonces (pkg/dpop
// behind httptest), the first request is refused with use_dpop_nonce, retried once with the
// nonce and its body, and allowed; the next request carries the nonce at once.
func TestTransportRetriesWithTheNonce(t *testing.T) {
	nonces, err := dpop.NewNonces([]byte(strings.Repeat("k", 32)), time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := dpop.NewVerifier(dpop.Options{Replay: dpop.NewMemoryReplay(0, nil), Nonces: nonces})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := NewKey()
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		body, _ := io.ReadAll(r.Body)
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "DPoP ")
		uri := "http://" + r.Host + r.URL.Path
		_, err := v.Verify(r.Context(), dpop.Proof{Header: r.Header.Get("DPoP"), Method: r.Method, URI: uri, AccessToken: tok, JKT: key.JKT()})
		switch {
		case !ok || tok != token:
			w.WriteHeader(http.StatusBadRequest)
		case errors.Is(err, dpop.ErrUseNonce):
			w.Header().Set("DPoP-Nonce", nonces.Current())
			w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce", algs="ES256"`)
			w.WriteHeader(http.StatusUnauthorized)
		case err != nil:
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, err)
		default:
			fmt.Fprintf(w, "ok %s", body)
		}
	}))
	defer srv.Close()

	tr := &Transport{Key: key, Token: token}
	c := &http.Client{Transport: tr}
	for i, wantRequests := range []int32{2, 3} {
		resp, err := c.Post(srv.URL+"/mcp?x=1", "text/plain", strings.NewReader("hello"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ok hello" || requests.Load() != wantRequests {
			t.Errorf("request %d: %d %q after %d requests at the server, want 200 \"ok hello\" after %d", i, resp.StatusCode, b, requests.Load(), wantRequests)
		}
	}
	if tr.Nonce() != nonces.Current() {
		t.Errorf("Nonce() = %q, want the server's", tr.Nonce())
	}
}
