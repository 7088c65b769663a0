package oauthflow

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/extauthz/extauthz/pkg/token"
)

// DefaultAccessTokenTTL is the lifetime of a facade access token unless configured.
const DefaultAccessTokenTTL = time.Hour

// minRSABits is the smallest RSA key the facade signs with.
const minRSABits = 2048

// ParseSigningKeyPEM reads one private key from PEM: PKCS #8 ("PRIVATE KEY"), SEC 1 ("EC
// PRIVATE KEY") or PKCS #1 ("RSA PRIVATE KEY"); ECDSA, RSA or Ed25519. Encrypted PEM, and PEM
// with more than one private key, are refused. Errors never include key material.
func ParseSigningKeyPEM(data []byte) (crypto.Signer, error) {
	var found crypto.Signer
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		var k any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("facade: encrypted private keys are not supported")
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("facade: a %s block that does not parse", b.Type)
		}
		if _, ok := b.Headers["Proc-Type"]; ok {
			return nil, errors.New("facade: encrypted private keys are not supported")
		}
		if found != nil {
			return nil, errors.New("facade: more than one private key in the PEM")
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, errors.New("facade: the private key cannot sign")
		}
		found = s
	}
	if found == nil {
		return nil, errors.New("facade: no private key in the PEM")
	}
	return found, nil
}

// SigningKey is one key the facade signs access tokens with, or published for verifying them.
type SigningKey struct {
	Signer crypto.Signer
	// Alg is the JWS algorithm; "" takes the key's usual one: ES256 (P-256), ES384 (P-384),
	// RS256 (RSA, at least 2048 bits; PS256 may be chosen) or EdDSA (Ed25519).
	Alg string
}

// keyAlg checks k's algorithm against its key type and returns it.
func keyAlg(k SigningKey) (jwa.SignatureAlgorithm, error) {
	var allowed []string
	switch pk := k.Signer.Public().(type) {
	case *ecdsa.PublicKey:
		switch pk.Curve {
		case elliptic.P256():
			allowed = []string{"ES256"}
		case elliptic.P384():
			allowed = []string{"ES384"}
		default:
			return jwa.SignatureAlgorithm{}, errors.New("facade: ECDSA keys must be P-256 or P-384")
		}
	case *rsa.PublicKey:
		if pk.N.BitLen() < minRSABits {
			return jwa.SignatureAlgorithm{}, fmt.Errorf("facade: RSA keys must have at least %d bits", minRSABits)
		}
		allowed = []string{"RS256", "PS256"}
	case ed25519.PublicKey:
		allowed = []string{"EdDSA"}
	default:
		return jwa.SignatureAlgorithm{}, errors.New("facade: unsupported key type")
	}
	name := k.Alg
	if name == "" {
		name = allowed[0]
	}
	for _, a := range allowed {
		if a == name {
			alg, ok := jwa.LookupSignatureAlgorithm(name)
			if !ok {
				break
			}
			return alg, nil
		}
	}
	return jwa.SignatureAlgorithm{}, fmt.Errorf("facade: algorithm %q does not fit the key (want one of %s)", name, strings.Join(allowed, ", "))
}

// TokenSignerOptions configures [NewTokenSigner].
type TokenSignerOptions struct {
	// Issuer is the facade's issuer identifier, the tokens' iss; required.
	Issuer string
	// Keys are every key the facade publishes; at least one. Rotation: add the new key,
	// publish it long enough for every verifier's key set to have it (the JWKS is cacheable
	// for five minutes), make it Active, and remove the old key once the tokens it signed have
	// expired.
	Keys []SigningKey
	// Active is the kid (RFC 7638 thumbprint, see [TokenSigner.KeyIDs]) of the key that signs;
	// "" means the first key.
	Active string
	// TTL is an access token's lifetime (default 1h).
	TTL time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// TokenSigner mints the facade's access tokens, RFC 9068 JWTs, and publishes the keys that
// verify them. It is safe for concurrent use.
type TokenSigner struct {
	issuer string
	keys   []signerKey
	active int
	ttl    time.Duration
	now    func() time.Time
	jwks   []byte
}

type signerKey struct {
	kid    string
	alg    jwa.SignatureAlgorithm
	signer crypto.Signer
}

// NewTokenSigner checks o and builds the signer.
func NewTokenSigner(o TokenSignerOptions) (*TokenSigner, error) {
	if err := checkIssuer(o.Issuer); err != nil {
		return nil, err
	}
	if len(o.Keys) == 0 {
		return nil, errors.New("facade: no signing keys")
	}
	if o.TTL < 0 {
		return nil, errors.New("facade: negative access token lifetime")
	}
	s := &TokenSigner{issuer: o.Issuer, ttl: cmp.Or(o.TTL, DefaultAccessTokenTTL), now: o.Now, active: -1}
	if s.now == nil {
		s.now = time.Now
	}
	set := jwk.NewSet()
	for i, k := range o.Keys {
		if k.Signer == nil {
			return nil, fmt.Errorf("facade: signing key %d is nil", i)
		}
		alg, err := keyAlg(k)
		if err != nil {
			return nil, fmt.Errorf("facade: signing key %d: %w", i, err)
		}
		pub, err := jwk.PublicKeyOf(k.Signer.Public())
		if err != nil {
			return nil, fmt.Errorf("facade: signing key %d: %w", i, err)
		}
		tp, err := pub.Thumbprint(crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("facade: signing key %d: thumbprint: %w", i, err)
		}
		kid := base64.RawURLEncoding.EncodeToString(tp)
		for _, other := range s.keys {
			if other.kid == kid {
				return nil, fmt.Errorf("facade: signing key %d is listed twice", i)
			}
		}
		for _, kv := range []struct {
			name string
			v    any
		}{{jwk.KeyIDKey, kid}, {jwk.AlgorithmKey, alg}, {jwk.KeyUsageKey, "sig"}} {
			if err := pub.Set(kv.name, kv.v); err != nil {
				return nil, fmt.Errorf("facade: signing key %d: %w", i, err)
			}
		}
		if err := set.AddKey(pub); err != nil {
			return nil, fmt.Errorf("facade: signing key %d: %w", i, err)
		}
		s.keys = append(s.keys, signerKey{kid: kid, alg: alg, signer: k.Signer})
		if kid == o.Active || (o.Active == "" && i == 0) {
			s.active = i
		}
	}
	if s.active < 0 {
		return nil, fmt.Errorf("facade: the active key %q is not among the keys", o.Active)
	}
	body, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("facade: encoding the key set: %w", err)
	}
	s.jwks = body
	return s, nil
}

// KeyIDs returns the kids of the keys, in the order given: the base64url RFC 7638 SHA-256
// thumbprints of their public keys.
func (s *TokenSigner) KeyIDs() []string {
	ids := make([]string, len(s.keys))
	for i, k := range s.keys {
		ids[i] = k.kid
	}
	return ids
}

// ActiveKeyID is the kid of the key that signs.
func (s *TokenSigner) ActiveKeyID() string { return s.keys[s.active].kid }

// AccessToken is what one facade access token says.
type AccessToken struct {
	// Subject is the user (sub).
	Subject string
	// ClientID is the MCP client the token was issued to (client_id).
	ClientID string
	// Audience is the resource's canonical URI (aud, RFC 8707).
	Audience string
	// Scopes are granted (scope, space-separated); none: no scope claim.
	Scopes []string
	// AuthTime is when the user signed in at the provider (auth_time); zero: left out.
	AuthTime time.Time
	// TTL overrides the signer's lifetime for this token when positive and shorter.
	TTL time.Duration
}

// Mint signs an RFC 9068 access token for t: header typ "at+jwt", alg and kid of the active
// key; claims iss, sub, aud, client_id, scope, iat, exp, jti (128 random bits or more), and
// auth_time when known. It returns the token and its expiry.
func (s *TokenSigner) Mint(t AccessToken) (string, time.Time, error) {
	if t.Subject == "" || t.ClientID == "" || t.Audience == "" {
		return "", time.Time{}, errors.New("facade: an access token needs a subject, a client and an audience")
	}
	for _, sc := range t.Scopes {
		if !validScopeToken(sc) {
			return "", time.Time{}, errors.New("facade: invalid scope")
		}
	}
	jti, err := NewID()
	if err != nil {
		return "", time.Time{}, err
	}
	now := s.now()
	ttl := s.ttl
	if t.TTL > 0 && t.TTL < ttl {
		ttl = t.TTL
	}
	exp := now.Add(ttl).Truncate(time.Second)
	claims := map[string]any{
		"iss":       s.issuer,
		"sub":       t.Subject,
		"aud":       t.Audience,
		"client_id": t.ClientID,
		"iat":       now.Unix(),
		"exp":       exp.Unix(),
		"jti":       jti,
	}
	if len(t.Scopes) > 0 {
		claims["scope"] = strings.Join(t.Scopes, " ")
	}
	if !t.AuthTime.IsZero() {
		claims["auth_time"] = t.AuthTime.Unix()
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", time.Time{}, errors.New("facade: encoding the claims")
	}
	k := s.keys[s.active]
	h := jws.NewHeaders()
	if err := h.Set(jws.KeyIDKey, k.kid); err != nil {
		return "", time.Time{}, err
	}
	if err := h.Set(jws.TypeKey, "at+jwt"); err != nil {
		return "", time.Time{}, err
	}
	out, err := jws.Sign(payload, jws.WithKey(k.alg, k.signer, jws.WithProtectedHeaders(h)))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("facade: signing the access token: %w", err)
	}
	return string(out), exp, nil
}

// JWKS returns the public key set (RFC 7517): every key, its kid, alg and use "sig".
func (s *TokenSigner) JWKS() []byte { return append([]byte(nil), s.jwks...) }

// ServeHTTP serves the key set at the facade's jwks_uri: GET and HEAD, application/json,
// cacheable for five minutes, readable from any origin.
func (s *TokenSigner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	servePublicJSON(w, r, s.jwks)
}

// Key returns the public key kid names, for verifying the facade's tokens in process
// (token.KeySource): the gateway trusts its own facade without fetching its key set over the
// network. A kid the signer does not hold, or an alg that is not the key's, is
// token.ErrUnknownKey.
func (s *TokenSigner) Key(_ context.Context, kid, alg string) (crypto.PublicKey, error) {
	for _, k := range s.keys {
		if k.kid == kid {
			if k.alg.String() != alg {
				return nil, fmt.Errorf("%w: kid %q is for %s, not %s", token.ErrUnknownKey, kid, k.alg, alg)
			}
			return k.signer.Public(), nil
		}
	}
	return nil, fmt.Errorf("%w: kid %q is not one of the facade's keys", token.ErrUnknownKey, kid)
}

// HeldKey is Key as a token.HeldKeySource: every key of the facade is held in process, so a
// token of the facade is verified on the caller's goroutine. nil where Key refuses.
func (s *TokenSigner) HeldKey(kid, alg string) crypto.PublicKey {
	k, err := s.Key(context.Background(), kid, alg)
	if err != nil {
		return nil
	}
	return k
}
