// Package dpop verifies DPoP proofs (RFC 9449) for a resource server: the
// proof a client sends in a DPoP header beside Authorization: DPoP <token>,
// showing that it holds the private key the token is bound to. It is the
// library the authorization engine calls; the engine reads the headers,
// rebuilds the URI the client addressed, matches the result's thumbprint
// with the token's cnf.jkt, and turns the errors into challenges (RFC 9449
// §7.1). It is not for issuing proofs, nor for an authorization server's
// token endpoint (no refresh-token binding, no nonce on the token
// response), nor does it read access tokens.
//
// # What Verify checks, in order
//
// Cheap and definitive checks come first, the signature next, and only a
// proof that passed everything reaches the replay store, so that garbage
// costs neither a round trip nor a place in the store.
//
//  1. Size and form (RFC 9449 §4.3 step 2): at most MaxProofBytes, a JWS in
//     compact serialization of three parts, each canonical unpadded
//     base64url (RFC 7515 §2): one proof has one spelling.
//  2. Strict JSON (steps 2–3): header and claims are single JSON objects,
//     valid UTF-8, no member repeated at any depth, and no member whose
//     name differs from one read here only in case: readers disagree on
//     those, and a proof must mean one thing to all of them.
//  3. Header (steps 4, 5, 7; §4.2): typ is dpop+jwt (media-type rules:
//     ASCII case-insensitive, "application/" optional, RFC 7515 §4.1.9);
//     alg is one of Options.Algorithms (never none or HS*); no crit (RFC
//     7515 §4.1.11: no extension is understood), b64, cty, zip, enc; the
//     key is the jwk and nothing else (jku, x5u, x5c, x5t refused). The jwk
//     is a public key of the type and curve alg uses (EC P-256/384/521,
//     OKP Ed25519, RSA 2048–8192 bits), in its one valid encoding (full-size
//     EC coordinates, minimal RSA integers), its point on the curve; any
//     private or symmetric member (d, p, q, dp, dq, qi, oth, k) or kty oct
//     is refused, and so are a jwk alg other than the header's, use other
//     than sig, key_ops without verify.
//  4. Claims (§4.2): jti a non-empty string of at most MaxJTIBytes, htm and
//     htu strings, iat a number; ath and nonce read when present. Other
//     claims are ignored.
//  5. The request (steps 8, 9, 11, 12): htm equals the method exactly; htu
//     equals the request URI once both are normalised as RFC 3986 §6.2.2
//     and §6.2.3 say (case, percent-encoding, default port, empty path;
//     query and fragment ignored) and nothing more, a dot segment being
//     refused rather than resolved (see normalizeURI); iat is within
//     [now − MaxAge, now + Leeway] (§11.1); ath is base64url(SHA-256) of the
//     access token whenever there is one.
//  6. The signature (step 6) verifies with the jwk. ECDSA signatures are
//     r ‖ s of the curve's size (RFC 7518 §3.4), PSS uses a salt as long as
//     the hash (§3.5).
//  7. The thumbprint (RFC 7638) of the jwk is computed, and compared with
//     Proof.JKT, the token's cnf.jkt, when the engine gives it (§6.1).
//  8. The nonce (step 10, §9), when Options.Nonces is set: missing or not
//     current is ErrUseNonce (the client retries with Nonces.Current()),
//     not a string is ErrInvalidProof. After the signature, so that only an
//     authentic proof is told to retry.
//  9. Replay (§11.1): the store claims hex SHA-256(thumbprint ‖ jti) for
//     MaxAge + Leeway, the longest time the proof stays acceptable. jti
//     need only be unique per key, and keying on it rather than on the
//     proof's bytes means a re-encoded ECDSA signature is the same proof.
//     A replay is ErrInvalidProof; a store that cannot answer is
//     ErrUnavailable, and the proof is refused.
//
// # Headers already read
//
// Every proof a client makes with one key carries the same header
// segment. What reading it gave in steps 1–3 and 7 (the algorithm, the
// parsed key, its thumbprint) is kept, under the segment's exact text,
// once a proof carrying it has been accepted; a later proof with the same
// segment skips those readings, and nothing else. A header differing by
// one byte is another entry, read afresh; one that is refused is never
// kept. The cache is bounded (Options.HeaderCacheEntries, by default
// DefaultHeaderCacheEntries), the oldest entry going first.
//
// # Replay stores and nonces
//
// MemoryReplay protects one replica; RedisReplay the whole fleet, asking
// a MemoryReplay first. Nonces are stateless: HMAC-SHA256 of a time slot
// under a key all replicas share, valid for the current and the previous
// slot. See each type for its failure modes.
package dpop
