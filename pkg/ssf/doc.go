// Package ssf is the gateway's Shared Signals Framework receiver (OpenID
// SSF 1.0): the RFC 8935 push endpoint to which identity providers send
// Security Event Tokens (RFC 8417), each verified like a token — the
// transmitter's key set (from its SSF configuration document), iss, aud,
// iat, typ secevent+jwt, jti remembered fleet-wide — and its CAEP or RISC
// event turned into a revocation watermark (pkg/revocation) for the
// subject, session or email it names (RFC 9493 subject identifiers).
//
// It also polls the transmitters configured so (RFC 8936), for a gateway
// they cannot reach; a polled SET is judged as a pushed one.
//
// It is not a transmitter, and it does not manage streams (the SSF 1.0
// stream management API: the stream is configured at the transmitter,
// with this endpoint and the audience). It does not store or check
// watermarks: the revocation.Revoker it is given does.
//
// # What a push goes through, in order
//
//  1. POST, Content-Type application/secevent+jwt, a body of at most
//     MaxBytes.
//  2. Authorization: a bearer token, if present, must be a configured
//     transmitter's push token (compared in constant time).
//  3. The SET is a signed JWT in compact serialization, canonical
//     base64url, its header and claims strict JSON (no repeated member, no
//     case variant of a member read here, valid UTF-8); iss is a configured
//     transmitter, and the push is authenticated as that transmitter when
//     it has a push token.
//  4. The header: typ secevent+jwt (RFC 8417 §2.3), no crit, b64 or cty;
//     alg in the transmitter's list (never none or HS*); the key by kid
//     from the transmitter's key set; the signature. A kid the key set
//     lacks is a 503, not a 400, while the set was fetched before the SET
//     was issued (a rotation the rate-limited refetch has not seen yet).
//  5. The claims: aud contains the receiver's audience; iat present, not
//     in the future beyond Leeway, not older than MaxAge; exp, if present,
//     not passed; jti present; events holds exactly one event, an object.
//  6. jti not seen before (per issuer, across replicas with Redis).
//  7. The event: a known type is mapped to a watermark (see decide) and
//     stored through the Revoker; the SSF verification event and unknown
//     types are acknowledged with no effect.
//  8. 202, and only then is the jti remembered: a SET whose revocation
//     could not be stored (503) is accepted when the transmitter retries.
package ssf
