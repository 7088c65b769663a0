package token

import "github.com/extauthz/extauthz/internal/strictjson"

// Tokens are read strictly (see internal/strictjson): the header and the
// claims must be unambiguous JSON objects before anything is read from
// them, and an ambiguous one is malformed.

// maxJSONDepth bounds the nesting of a header or claims set (arrays and
// objects). Real tokens nest two or three levels; the bound keeps the
// recursive scan's stack small whatever tokens.max_bytes is.
const maxJSONDepth = 64

// jsonReader reads headers, claims sets and cnf objects. The names and
// values nearly every token holds are known to it, so that reading them
// allocates nothing: each would otherwise be a new string per member per
// verification.
var jsonReader = strictjson.NewReader(maxJSONDepth, knownStrings()...)

// knownStrings are the header parameters and claims gateways read, those
// issuers commonly add (RFC 7519, RFC 9068, OpenID Connect), and the
// header values of an access token.
func knownStrings() []string {
	k := append([]string{}, headerNames...)
	k = append(k, standardClaims...)
	k = append(k, "jti", "acr", "amr", "auth_time", "act", "may_act", "groups", "roles", "entitlements",
		"nonce", "email", "email_verified", "name", "preferred_username", "tid", "oid", "ver", "uid", "cid",
		"at+jwt", "application/at+jwt", "JWT", "jkt")
	for n := range sigAlgs {
		k = append(k, n)
	}
	return k
}

var errDuplicate = strictjson.ErrDuplicate

// members checks that data is exactly one unambiguous JSON object
// (strictjson.Reader.Members) and calls fn with the unescaped name and the
// raw value of each top-level member, in order, stopping at fn's first
// error.
//
// Values are left for encoding/json to decode one member at a time: unlike
// decoding the whole object into a struct, that matches names exactly.
func members(data []byte, fn func(name string, value []byte) error) error {
	return jsonReader.Members(data, fn)
}

// caseVariant reports whether name differs from one of want only in case:
// a member a case-insensitive reader would take for one the gateway reads.
func caseVariant(name string, want ...string) bool {
	return strictjson.CaseVariant(name, want...)
}
