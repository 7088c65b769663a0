package jwks

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// alg is a signature algorithm we can hand keys out for. Small integers
// let the index use a fixed array and an allocation-free map key.
type alg uint8

const (
	algUnknown alg = iota
	algRS256
	algRS384
	algRS512
	algPS256
	algPS384
	algPS512
	algES256
	algES384
	algES512
	algEdDSA
	numAlgs
)

// algMask is a set of algs, one bit per alg.
type algMask uint16

const (
	maskRSA = 1<<algRS256 | 1<<algRS384 | 1<<algRS512 | 1<<algPS256 | 1<<algPS384 | 1<<algPS512
)

// minRSABits is enforced here even though jwx has the same default,
// because jwx's limit is process-global and anyone may lower it.
const minRSABits = 2048

func parseAlg(s string) alg {
	switch s {
	case "RS256":
		return algRS256
	case "RS384":
		return algRS384
	case "RS512":
		return algRS512
	case "PS256":
		return algPS256
	case "PS384":
		return algPS384
	case "PS512":
		return algPS512
	case "ES256":
		return algES256
	case "ES384":
		return algES384
	case "ES512":
		return algES512
	case "EdDSA":
		return algEdDSA
	}
	return algUnknown
}

type kidAlg struct {
	kid string
	alg alg
}

// keySet is an immutable index over the usable keys of one fetched JWKS.
// Lookups are a map read or an array read: no lock, no allocation.
type keySet struct {
	byKID map[kidAlg]crypto.PublicKey
	// only[a] is the key when exactly one usable key fits a, for tokens
	// that carry no kid; nil otherwise.
	only  [numAlgs]crypto.PublicKey
	count int
	// kids are the usable keys' ids, sorted, each once; keys without
	// one are counted but not listed. Diagnostics only (Status).
	kids []string
}

// lookup tolerates a nil set (nothing fetched yet). The returned interface
// values were boxed at build time, so returning them does not allocate.
func (ks *keySet) lookup(kid string, a alg) crypto.PublicKey {
	if ks == nil {
		return nil
	}
	if kid == "" {
		return ks.only[a]
	}
	return ks.byKID[kidAlg{kid, a}]
}

var errNoUsableKeys = errors.New("jwks: the key set has no usable signature verification key")

// buildKeySet parses a JWKS document and indexes the keys usable for
// signature verification. A malformed entry is logged and skipped; a set
// with no usable key at all is an error, so the caller keeps its previous
// set.
func buildKeySet(body []byte, log *slog.Logger) (*keySet, error) {
	// Per-call options rather than jwk.Configure: the defaults are process
	// global, and we must not depend on (or change) what others set there.
	// Non-strict parsing keeps a bad entry as a placeholder instead of
	// failing the whole set, which lets us log it and carry on.
	set, err := jwk.Parse(body,
		jwk.WithStrictKeySetParsing(false),
		jwk.WithRejectDuplicateKID(false),
	)
	if err != nil {
		return nil, fmt.Errorf("jwks: parsing key set: %w", err)
	}

	ks := &keySet{byKID: make(map[kidAlg]crypto.PublicKey, set.Len())}
	var fits [numAlgs]int
	for i := range set.Len() {
		k, ok := set.Key(i)
		if !ok {
			continue
		}
		kid, _ := k.KeyID()
		pub, mask, err := usableKey(k)
		if err != nil {
			log.Warn("jwks: skipping malformed key", "index", i, "kid", kid, "error", err)
			continue
		}
		if mask == 0 {
			log.Debug("jwks: skipping key not usable for signature verification", "index", i, "kid", kid)
			continue
		}
		if pub.private {
			log.Warn("jwks: the key set publishes private key material; only its public part is used", "index", i, "kid", kid)
		}
		ks.count++
		if kid != "" && !slices.Contains(ks.kids, kid) {
			ks.kids = append(ks.kids, kid)
		}
		for a := algUnknown + 1; a < numAlgs; a++ {
			if mask&(1<<a) == 0 {
				continue
			}
			fits[a]++
			if fits[a] == 1 {
				ks.only[a] = pub.key
			} else {
				ks.only[a] = nil
			}
			if kid == "" {
				continue
			}
			// RFC 7517 lets kids repeat (e.g. across key types). For the
			// same kid and alg we cannot tell the keys apart without
			// verifying, so the first one in document order wins.
			if _, dup := ks.byKID[kidAlg{kid, a}]; dup {
				log.Warn("jwks: duplicate kid for the same algorithm; using the first key", "index", i, "kid", kid)
				continue
			}
			ks.byKID[kidAlg{kid, a}] = pub.key
		}
	}
	if ks.count == 0 {
		return nil, errNoUsableKeys
	}
	slices.Sort(ks.kids)
	return ks, nil
}

type publicKey struct {
	key     crypto.PublicKey
	private bool // the JWK carried private material
}

// usableKey returns k's public key and the algs it may verify. A zero mask
// with a nil error means the key is well-formed but not for us (encryption
// key, symmetric key, unsupported type); an error means it is malformed.
func usableKey(k jwk.Key) (publicKey, algMask, error) {
	if uk, ok := k.(jwk.UnsupportedKey); ok {
		return publicKey{}, 0, uk.Reason()
	}
	// Never export an oct key: that would copy a shared secret around for
	// nothing, and a JWKS has no business carrying one anyway.
	if k.KeyType() == jwa.OctetSeq() {
		return publicKey{}, 0, nil
	}
	if use, ok := k.KeyUsage(); ok && use != string(jwk.ForSignature) {
		return publicKey{}, 0, nil
	}
	if ops, ok := k.KeyOps(); ok && !slices.Contains(ops, jwk.KeyOpVerify) {
		return publicKey{}, 0, nil
	}

	var raw any
	if err := jwk.Export(k, &raw); err != nil {
		return publicKey{}, 0, err
	}
	var pub publicKey
	var mask algMask
	switch r := raw.(type) {
	case *rsa.PrivateKey:
		pub.private = true
		raw = &r.PublicKey
	case *ecdsa.PrivateKey:
		pub.private = true
		raw = &r.PublicKey
	case ed25519.PrivateKey:
		pub.private = true
		raw = r.Public()
	}
	switch r := raw.(type) {
	case *rsa.PublicKey:
		if r.N == nil || r.N.BitLen() < minRSABits {
			return publicKey{}, 0, fmt.Errorf("RSA modulus shorter than %d bits", minRSABits)
		}
		mask = maskRSA
	case *ecdsa.PublicKey:
		// ECDH rejects points that are not on the curve.
		if _, err := r.ECDH(); err != nil {
			return publicKey{}, 0, fmt.Errorf("invalid EC public key: %w", err)
		}
		switch r.Curve {
		case elliptic.P256():
			mask = 1 << algES256
		case elliptic.P384():
			mask = 1 << algES384
		case elliptic.P521():
			mask = 1 << algES512
		}
	case ed25519.PublicKey:
		if len(r) != ed25519.PublicKeySize {
			return publicKey{}, 0, errors.New("invalid Ed25519 public key length")
		}
		mask = 1 << algEdDSA
	default:
		// X25519, secp256k1 and anything else: not a kind we serve.
		return publicKey{}, 0, nil
	}
	if ka, ok := k.Algorithm(); ok {
		mask &= 1 << parseAlg(ka.String())
	}
	pub.key = raw
	return pub, mask, nil
}
