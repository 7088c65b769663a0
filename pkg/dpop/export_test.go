package dpop

// NormalizeURI exposes normalizeURI to the tests of the htu comparison.
var NormalizeURI = normalizeURI

// Thumbprint parses a jwk as a proof's header would carry it for alg and
// returns its RFC 7638 thumbprint.
func Thumbprint(jwkJSON []byte, alg string) (string, error) {
	var k jwk
	if err := parseJWK(&k, jwkJSON, lookupAlgorithm(alg)); err != nil {
		return "", err
	}
	return k.thumbprint(), nil
}

// HeaderCacheLen is the number of headers v keeps.
func HeaderCacheLen(v *Verifier) int { return v.headers.size() }

// PreparedHeld is the number of P-256 and Ed25519 proof keys held
// prepared.
func PreparedHeld() int { return preparedP256Keys.Held() + preparedEd25519Keys.Held() }
