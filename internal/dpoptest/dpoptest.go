// Package dpoptest is a DPoP client for tests (RFC 9449): it holds a client's key, signs
// proofs for requests (typ dpop+jwt, the public jwk, jti, htm, htu, iat, and ath and nonce
// when given), and makes every kind of bad proof a resource server must refuse: wrong htm or
// htu, stale iat, wrong ath, a jwk that is not the signing key, private members in the jwk,
// alg none or HS256, missing claims. Transport is an http.RoundTripper that sends a
// DPoP-bound token with a fresh proof per request and retries once with the server's nonce.
//
// It writes its JWS by hand rather than through a JOSE library, so that a test can make any
// proof it likes, including the malformed ones no library would sign. It is test support
// only: nothing outside _test.go files and other test helpers should import it.
package dpoptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"slices"
	"time"
)

// Key is a client's DPoP key: the private key, its JWS algorithm and its public JWK.
type Key struct {
	signer crypto.Signer
	alg    string
	hash   crypto.Hash // digest signed (0 for EdDSA, which signs the message)
	size   int         // ECDSA: bytes of r and of s
	public map[string]string
	secret map[string]string // the private members, for proofs that leak them
	jkt    string
}

// NewKey generates an ES256 (P-256) key, the algorithm DPoP clients use most.
func NewKey() (*Key, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return KeyFrom(k)
}

// KeyFrom wraps a private key: ECDSA P-256, P-384 or P-521 (ES256, ES384, ES512), Ed25519
// (EdDSA) or RSA (RS256).
func KeyFrom(s crypto.Signer) (*Key, error) {
	k := &Key{signer: s, public: map[string]string{}, secret: map[string]string{}}
	b64 := base64.RawURLEncoding.EncodeToString
	switch priv := s.(type) {
	case *ecdsa.PrivateKey:
		switch priv.Curve {
		case elliptic.P256():
			k.alg, k.hash, k.size = "ES256", crypto.SHA256, 32
		case elliptic.P384():
			k.alg, k.hash, k.size = "ES384", crypto.SHA384, 48
		case elliptic.P521():
			k.alg, k.hash, k.size = "ES512", crypto.SHA512, 66
		default:
			return nil, fmt.Errorf("dpoptest: unsupported curve %s", priv.Curve.Params().Name)
		}
		point, err := priv.PublicKey.Bytes() // 0x04 ‖ x ‖ y, each full size (RFC 7518 §6.2.1.2)
		if err != nil {
			return nil, err
		}
		d, err := priv.Bytes()
		if err != nil {
			return nil, err
		}
		k.public = map[string]string{"kty": "EC", "crv": priv.Curve.Params().Name,
			"x": b64(point[1 : 1+k.size]), "y": b64(point[1+k.size:])}
		k.secret["d"] = b64(d)
	case ed25519.PrivateKey:
		k.alg = "EdDSA"
		k.public = map[string]string{"kty": "OKP", "crv": "Ed25519", "x": b64(priv.Public().(ed25519.PublicKey))}
		k.secret["d"] = b64(priv.Seed())
	case *rsa.PrivateKey:
		k.alg, k.hash = "RS256", crypto.SHA256
		k.public = map[string]string{"kty": "RSA", "n": b64(priv.N.Bytes()), "e": b64(big.NewInt(int64(priv.E)).Bytes())}
		priv.Precompute()
		k.secret = map[string]string{"d": b64(priv.D.Bytes()), "p": b64(priv.Primes[0].Bytes()), "q": b64(priv.Primes[1].Bytes()),
			"dp": b64(priv.Precomputed.Dp.Bytes()), "dq": b64(priv.Precomputed.Dq.Bytes()), "qi": b64(priv.Precomputed.Qinv.Bytes())}
	default:
		return nil, fmt.Errorf("dpoptest: unsupported key type %T", s)
	}
	k.jkt = thumbprint(k.public)
	return k, nil
}

// thumbprint is the RFC 7638 SHA-256 thumbprint of a public JWK: the required members only,
// in lexicographic order, no whitespace (json.Marshal sorts a map's keys and adds none).
func thumbprint(pub map[string]string) string {
	var required []string
	switch pub["kty"] {
	case "EC":
		required = []string{"crv", "kty", "x", "y"}
	case "OKP":
		required = []string{"crv", "kty", "x"}
	case "RSA":
		required = []string{"e", "kty", "n"}
	}
	m := make(map[string]string, len(required))
	for _, name := range required {
		m[name] = pub[name]
	}
	b, _ := json.Marshal(m) // strings only: cannot fail
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Alg is the JWS algorithm of the key's proofs.
func (k *Key) Alg() string { return k.alg }

// Signer is the private key.
func (k *Key) Signer() crypto.Signer { return k.signer }

// JKT is the RFC 7638 SHA-256 thumbprint of the public key, base64url: the cnf.jkt of the
// tokens bound to this key (RFC 9449 §6.1).
func (k *Key) JKT() string { return k.jkt }

// PublicJWK is a copy of the public key as the jwk header member of the key's proofs.
func (k *Key) PublicJWK() map[string]any {
	out := make(map[string]any, len(k.public))
	for n, v := range k.public {
		out[n] = v
	}
	return out
}

// Proof describes one DPoP proof. The zero value of every field but Method and URL gives a
// good proof: a fresh random jti, iat now, typ dpop+jwt, the key's algorithm and public jwk.
// The other fields make bad ones.
type Proof struct {
	Method string // htm
	// URL is htu, sent as given: RFC 9449 §4.2 says without query and fragment, and a test
	// may send them to see that the server ignores them.
	URL string
	// AccessToken, if set, is bound by ath = base64url(SHA-256(AccessToken)) (§4.2).
	AccessToken string
	// Nonce, if set, is the nonce claim: a value from the server's DPoP-Nonce header (§8, §9).
	Nonce string
	// IssuedAt is iat (whole seconds); zero means now.
	IssuedAt time.Time
	// JTI is jti; empty means 16 random bytes, base64url.
	JTI string

	// ATH, if set, is sent as ath whatever AccessToken is: a proof for another token.
	ATH string
	// Typ replaces the typ header member ("dpop+jwt").
	Typ string
	// Alg replaces the alg header member, and chooses the signature: "none" sends an empty
	// one, "HS256" an HMAC-SHA256 under HMACKey, anything else the key's own signature
	// (which then does not match the alg the header names).
	Alg string
	// HMACKey is the HS256 secret; empty means the public JWK's JSON, the key of the classic
	// algorithm-confusion attack.
	HMACKey []byte
	// PrivateJWK adds the key's private members (d, and p, q, dp, dq, qi for RSA) to the jwk.
	PrivateJWK bool
	// JWK, if set, replaces the jwk header member: say another key's public key, while the
	// proof is still signed with this one.
	JWK map[string]any
	// Header and Claims add members to the JWS header and the claims, or replace members
	// already there.
	Header, Claims map[string]any
	// Omit names header members and claims to leave out ("jti", "iat", "typ", "jwk"…).
	Omit []string
}

// Sign makes the proof p describes, signed with k (unless p.Alg says otherwise).
func (k *Key) Sign(p Proof) (string, error) {
	if p.Method == "" || p.URL == "" {
		return "", errors.New("dpoptest: a proof needs Method and URL")
	}
	jwk := p.JWK
	if jwk == nil {
		jwk = k.PublicJWK()
		if p.PrivateJWK {
			for n, v := range k.secret {
				jwk[n] = v
			}
		}
	}
	alg := k.alg
	if p.Alg != "" {
		alg = p.Alg
	}
	header := map[string]any{"typ": "dpop+jwt", "alg": alg, "jwk": jwk}
	if p.Typ != "" {
		header["typ"] = p.Typ
	}

	jti := p.JTI
	if jti == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		jti = base64.RawURLEncoding.EncodeToString(b)
	}
	iat := p.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	claims := map[string]any{"jti": jti, "htm": p.Method, "htu": p.URL, "iat": iat.Unix()}
	if p.AccessToken != "" {
		claims["ath"] = ATH(p.AccessToken)
	}
	if p.ATH != "" {
		claims["ath"] = p.ATH
	}
	if p.Nonce != "" {
		claims["nonce"] = p.Nonce
	}
	for n, v := range p.Header {
		header[n] = v
	}
	for n, v := range p.Claims {
		claims[n] = v
	}
	for _, n := range p.Omit {
		delete(header, n)
		delete(claims, n)
	}

	h, err := json.Marshal(header)
	if err != nil {
		return "", fmt.Errorf("dpoptest: header: %w", err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("dpoptest: claims: %w", err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	input := b64(h) + "." + b64(c)

	var sig []byte
	switch alg {
	case "none":
	case "HS256":
		key := p.HMACKey
		if len(key) == 0 {
			key, _ = json.Marshal(k.public)
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(input))
		sig = mac.Sum(nil)
	default:
		if sig, err = k.signature(input); err != nil {
			return "", err
		}
	}
	return input + "." + b64(sig), nil
}

// MustSign is Sign for tests: an error fails tb.
func (k *Key) MustSign(tb interface {
	Helper()
	Fatalf(string, ...any)
}, p Proof) string {
	tb.Helper()
	s, err := k.Sign(p)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	return s
}

// signature is the JWS signature of input with the key's own algorithm (RFC 7518 §3).
func (k *Key) signature(input string) ([]byte, error) {
	if k.alg == "EdDSA" {
		return k.signer.Sign(rand.Reader, []byte(input), crypto.Hash(0))
	}
	var digest []byte
	switch k.hash {
	case crypto.SHA256:
		d := sha256.Sum256([]byte(input))
		digest = d[:]
	case crypto.SHA384:
		d := sha512.Sum384([]byte(input))
		digest = d[:]
	case crypto.SHA512:
		d := sha512.Sum512([]byte(input))
		digest = d[:]
	}
	der, err := k.signer.Sign(rand.Reader, digest, k.hash)
	if err != nil || k.size == 0 {
		return der, err // RSA PKCS #1 v1.5: the signature as it is
	}
	// ECDSA: the signer gives ASN.1 DER; JWS wants r ‖ s, each the curve's size (§3.4).
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &rs); err != nil {
		return nil, fmt.Errorf("dpoptest: ECDSA signature: %w", err)
	}
	out := make([]byte, 2*k.size)
	rs.R.FillBytes(out[:k.size])
	rs.S.FillBytes(out[k.size:])
	return out, nil
}

// ATH is the ath claim for an access token: base64url(SHA-256(token)) (RFC 9449 §4.2).
func ATH(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// HTU is u as a proof's htu: without query and fragment (RFC 9449 §4.2).
func HTU(u *url.URL) string {
	c := *u
	c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = "", false, "", ""
	c.User = nil
	return c.String()
}

// Headers are the request headers that present token with proofs: Authorization: DPoP
// <token> and one DPoP header per proof (two make the request RFC 9449 §4.3 step 1 refuses).
// An empty token sends no Authorization header.
func Headers(token string, proofs ...string) [][2]string {
	var hs [][2]string
	if token != "" {
		hs = append(hs, [2]string{"authorization", "DPoP " + token})
	}
	for _, p := range proofs {
		hs = append(hs, [2]string{"dpop", p})
	}
	return slices.Clip(hs)
}
