package introspect

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// assertionLifetime is how long a client assertion is valid: long enough
// for clock skew, short enough that a captured one is soon worthless.
const assertionLifetime = time.Minute

// AssertionSigner signs RFC 7523 client assertions for private_key_jwt.
type AssertionSigner struct {
	key crypto.Signer
	alg jwa.SignatureAlgorithm
	kid string
}

// NewAssertionSigner parses a PEM private key — PKCS#8, PKCS#1 RSA or SEC 1
// EC — and picks its algorithm: RS256 for RSA (at least 2048 bits), ES256
// or ES384 for P-256 or P-384, EdDSA for Ed25519. kid, when not empty, is
// sent in the header so the server can pick among the client's keys.
func NewAssertionSigner(pemData []byte, kid string) (*AssertionSigner, error) {
	block, _ := pem.Decode(pemData)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing the private key: %w", err)
	}
	s := &AssertionSigner{kid: kid}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits is too small (at least 2048)", k.N.BitLen())
		}
		s.key, s.alg = k, jwa.RS256()
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			s.key, s.alg = k, jwa.ES256()
		case elliptic.P384():
			s.key, s.alg = k, jwa.ES384()
		default:
			return nil, errors.New("EC keys must be on P-256 or P-384")
		}
	case ed25519.PrivateKey:
		s.key, s.alg = k, jwa.EdDSA()
	default:
		return nil, fmt.Errorf("unsupported private key type %T", key)
	}
	return s, nil
}

// Algorithm names the JWS algorithm of the assertions.
func (s *AssertionSigner) Algorithm() string { return s.alg.String() }

// Sign makes a fresh assertion for one request: iss and sub are the
// client id, aud the authorization server's issuer identifier (RFC 7523
// §3; the issuer rather than an endpoint URL, so that an assertion cannot
// be replayed at another server's endpoint that trusts the same key), a
// unique jti, and a lifetime of one minute.
func (s *AssertionSigner) Sign(clientID, audience string, now time.Time) (string, error) {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	payload, err := json.Marshal(map[string]any{
		"iss": clientID,
		"sub": clientID,
		"aud": audience,
		"jti": hex.EncodeToString(jti[:]),
		"iat": now.Unix(),
		"exp": now.Add(assertionLifetime).Unix(),
	})
	if err != nil {
		return "", err
	}
	h := jws.NewHeaders()
	if err := h.Set(jws.TypeKey, "JWT"); err != nil {
		return "", err
	}
	if s.kid != "" {
		if err := h.Set(jws.KeyIDKey, s.kid); err != nil {
			return "", err
		}
	}
	out, err := jws.Sign(payload, jws.WithKey(s.alg, s.key, jws.WithProtectedHeaders(h)))
	if err != nil {
		return "", err
	}
	return string(out), nil
}
