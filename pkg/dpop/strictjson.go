package dpop

import (
	"errors"

	"github.com/extauthz/extauthz/internal/strictjson"
)

// A proof's header and claims are read by this package and may be read
// again by whatever logs or forwards them; JSON readers disagree on an
// ambiguous object (a repeated member, a member whose name differs from a
// known one only in case, invalid UTF-8). A proof whose meaning depends on
// the reader is refused, so the JSON is checked strictly before anything
// is read from it, by the rules pkg/token applies to access tokens
// (internal/strictjson).

// maxJSONDepth bounds nesting (arrays and objects). A proof nests two
// levels (the jwk inside the header); the bound keeps the recursive scan's
// stack small.
const maxJSONDepth = 16

// jsonReader reads headers, jwks and claims. The member names and the
// values that every proof holds are so common that not allocating a
// string for each pays.
var jsonReader = strictjson.NewReader(maxJSONDepth,
	"typ", "alg", "jwk", "kid", "kty", "crv", "x", "y", "n", "e", "use",
	"jti", "htm", "htu", "iat", "ath", "nonce",
	"dpop+jwt", "ES256", "ES384", "ES512", "EdDSA", "Ed25519", "RS256", "PS256",
	"EC", "RSA", "OKP", "P-256", "P-384", "P-521", "sig",
	"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS",
)

// errTrailing is strictjson.ErrTrailing in this package's words, as its
// refusals have always said it.
var errTrailing = errors.New("trailing data after the JSON object")

// objectMembers checks that data is exactly one unambiguous JSON object
// (strictjson.Reader.Members), and calls fn with the unescaped name and
// the raw value of each top-level member, in order, stopping at fn's
// first error.
func objectMembers(data []byte, fn func(name string, value []byte) error) error {
	err := jsonReader.Members(data, fn)
	if errors.Is(err, strictjson.ErrTrailing) {
		return errTrailing
	}
	return err
}

// jsonString decodes a raw JSON value that objectMembers has already
// checked; ok is false when it is not a string.
func jsonString(raw []byte) (string, bool) { return jsonReader.String(raw) }

// jsonBytes is jsonString without the copy (strictjson.Reader.Bytes): the
// result may be a slice of raw, not to be modified.
func jsonBytes(raw []byte) ([]byte, bool) { return jsonReader.Bytes(raw) }

// caseVariant reports whether name differs from one of known only in case
// (Unicode simple folding, as broad as encoding/json's matching): a member
// that a case-insensitive reader would take for one this package reads.
func caseVariant(name string, known []string) bool {
	return strictjson.CaseVariant(name, known...)
}
