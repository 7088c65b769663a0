package authz

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/extauthz/extauthz/pkg/token"
	"github.com/extauthz/extauthz/pkg/verdict"
)

// Reason is a bounded label naming why a decision came out as it did. It is
// safe as a metric label: there is a fixed set of them.
type Reason string

// Reasons. Allowed decisions have reasons too.
const (
	ReasonAllowed           Reason = "allowed"
	ReasonMetadata          Reason = "metadata"                        // metadata document answered directly
	ReasonPreflight         Reason = "preflight"                       // CORS preflight let through without a token
	ReasonPublic            Reason = "public"                          // a public path of the resource (resources[].public), no token needed
	ReasonUnmatchedAllowed  Reason = "unmatched_allowed"               // no resource matched, operator allows
	ReasonLoginRedirect     Reason = "login_redirect"                  // a browser without a login cookie sent to sign in
	ReasonNoCredential      Reason = "no_credential"                   //nolint:gosec // a label, not a credential: no Bearer token
	ReasonInvalidRequest    Reason = "invalid_request"                 // token in query or body, malformed or repeated header
	ReasonHeaderMismatch    Reason = "header_mismatch"                 // Mcp-Method/Mcp-Name missing, malformed or disagreeing with the body (MCP -32020)
	ReasonBadMessage        Reason = "bad_message"                     // a body that is not one readable JSON-RPC message, or a resource URI that cannot be normalised
	ReasonMalformed         Reason = "malformed"                       // not a parseable JWT, too large, crit, no exp
	ReasonBadAlgorithm      Reason = "bad_algorithm"                   // alg none, HS*, or not configured
	ReasonUnknownKey        Reason = "unknown_key"                     // kid not in the issuer's key set
	ReasonBadSignature      Reason = "bad_signature"                   // signature does not verify
	ReasonExpired           Reason = "expired"                         // exp passed
	ReasonNotYetValid       Reason = "not_yet_valid"                   // nbf or iat in the future
	ReasonWrongIssuer       Reason = "wrong_issuer"                    // iss not trusted for this resource
	ReasonWrongAudience     Reason = "wrong_audience"                  // aud lacks the resource's canonical URI
	ReasonInsufficientScope Reason = "insufficient_scope"              // a required scope is missing
	ReasonRevoked           Reason = "revoked"                         // revoked through the admin API
	ReasonInactive          Reason = "inactive"                        // introspection: not active (revoked or expired at the server)
	ReasonNotAccessToken    Reason = "not_access_token"                // a refresh or sender-constrained token, or a JWT not typed as an access token
	ReasonUnavailable       Reason = "unavailable"                     // keys cannot be had now
	ReasonUnmatched         Reason = "unmatched"                       // no resource matched, operator denies
	ReasonUnknownResource   Reason = "unknown_resource"                // the route names a resource that is not configured
	ReasonOriginNotAllowed  Reason = "origin_not_allowed"              // a browser Origin the resource does not accept
	ReasonPolicyDenied      Reason = "policy_denied"                   // a CEL policy evaluated to false
	ReasonPolicyError       Reason = "policy_error"                    // a CEL policy failed to evaluate (cost limit, missing key)
	ReasonDPoPProof         Reason = "dpop_proof"                      // DPoP proof missing, malformed, for another request, stale or replayed
	ReasonDPoPNonce         Reason = "dpop_nonce"                      // DPoP proof without the server's current nonce
	ReasonDPoPBinding       Reason = "dpop_binding"                    // the proof key is not the token's (cnf.jkt), or an unbound token with the DPoP scheme
	ReasonDPoPRequired      Reason = "dpop_required"                   // a Bearer credential where DPoP is required
	ReasonDPoPUnavailable   Reason = "dpop_unavailable"                // the proof replay check cannot be made now
	ReasonUpstreamRefused   Reason = "upstream_credential_refused"     // the upstream credential's issuer refused to mint it (invalid_grant, invalid_target, ...)
	ReasonUpstreamUnavail   Reason = "upstream_credential_unavailable" // the upstream credential cannot be minted now
	ReasonInternal          Reason = "internal"                        // a bug: denied, never allowed
)

// Failures the decision itself detects (the token package has its own).
var (
	ErrNoCredential      = errors.New("no bearer credential")
	ErrInvalidRequest    = errors.New("invalid request")
	ErrInsufficientScope = errors.New("token lacks a required scope")
	ErrUnmatched         = errors.New("no protected resource matches the request")
	ErrUnknownResource   = errors.New("the route names an unknown resource")
	ErrResourceNotNamed  = errors.New("the route does not name a resource (require_explicit_resource)")
	ErrInternal          = errors.New("internal error")
	ErrOriginNotAllowed  = errors.New("origin not allowed")
	ErrPolicyDenied      = errors.New("denied by policy")
	ErrPolicyFailed      = errors.New("policy could not be evaluated")
	// The credential a resource's upstream_token asks for: refused by its
	// issuer for this caller (definitive), or not to be had now.
	ErrUpstreamRefused     = errors.New("upstream credential refused")
	ErrUpstreamUnavailable = errors.New("upstream credential unavailable")

	// The invalid requests, each with its own answer.
	ErrTokenInQuery    = fmt.Errorf("%w: access token in the query string", ErrInvalidRequest)
	ErrTokenInBody     = fmt.Errorf("%w: access token in the request body", ErrInvalidRequest)
	ErrMalformedHeader = fmt.Errorf("%w: malformed or repeated Authorization header", ErrInvalidRequest)
	ErrAmbiguousPath   = fmt.Errorf("%w: ambiguous request path", ErrInvalidRequest)
	ErrBadTarget       = fmt.Errorf("%w: malformed host or path", ErrInvalidRequest)
	// The MCP operation the rules need cannot be read, or is read two ways.
	ErrOperationMismatch = fmt.Errorf("%w: Mcp-Method/Mcp-Name headers and JSON-RPC body disagree", ErrInvalidRequest)
	ErrBadMCPHeader      = fmt.Errorf("%w: invalid Mcp-Method or Mcp-Name header", ErrInvalidRequest)
	ErrMethodHeader      = fmt.Errorf("%w: a request declaring MCP 2026-07-28 or later without Mcp-Method", ErrInvalidRequest)
	ErrBadOperation      = fmt.Errorf("%w: unreadable MCP operation", ErrInvalidRequest)
	ErrBodyNotJSON       = fmt.Errorf("%w: JSON-RPC body is not JSON", ErrInvalidRequest)
	ErrUnknownOperation  = fmt.Errorf("%w: MCP method unknown", ErrInvalidRequest)
	ErrBodyRequired      = fmt.Errorf("%w: JSON-RPC body not forwarded", ErrInvalidRequest)
	ErrAmbiguousURI      = fmt.Errorf("%w: resource URI cannot be normalised", ErrInvalidRequest)
	// Mcp-* headers without the body, from a client that does not declare
	// a protocol revision whose servers check them against the body.
	ErrUntrustedHeaders   = fmt.Errorf("%w: Mcp-* headers without a body before MCP 2026-07-28", ErrInvalidRequest)
	ErrBadProtocolVersion = fmt.Errorf("%w: malformed MCP-Protocol-Version", ErrInvalidRequest)
	// Refused by a transport before the request reaches the engine
	// (Refusal): it cannot be read, or it is over the header limits.
	ErrUndecodable  = fmt.Errorf("%w: undecodable authorization request", ErrInvalidRequest)
	ErrHeaderLimits = fmt.Errorf("%w: request headers over the gateway's limits", ErrInvalidRequest)
)

// class is one row of the denial table (DESIGN.md, "Denials").
type class struct {
	status      int
	oauthError  string // RFC 6750 §3.1 error code; "" for none
	reason      Reason
	description string // what the client is told; never the error's own text
	challenge   bool   // answer with a Bearer challenge
}

// denials maps each failure class to its answer. Order matters only in
// that the first match wins; classes do not overlap.
var denials = []struct {
	err error
	class
}{
	{ErrNoCredential, class{http.StatusUnauthorized, "", ReasonNoCredential, "a bearer token is required", true}},
	{ErrTokenInQuery, class{http.StatusBadRequest, "invalid_request", ReasonInvalidRequest, "access tokens are accepted only in the Authorization header, not in the query string", true}},
	{ErrTokenInBody, class{http.StatusBadRequest, "invalid_request", ReasonInvalidRequest, "access tokens are accepted only in the Authorization header, not in the body", true}},
	{ErrDPoPRepeated, class{http.StatusBadRequest, "invalid_request", ReasonInvalidRequest, "a request carries exactly one DPoP header", true}},
	{ErrMalformedHeader, class{http.StatusBadRequest, "invalid_request", ReasonInvalidRequest, "the Authorization header must carry exactly one Bearer token", true}},
	{ErrAmbiguousPath, class{http.StatusBadRequest, "invalid_request", ReasonInvalidRequest, "the request path is ambiguous: another reading of it (decoded, letter case, \\ or ; parameters) routes elsewhere", true}},
	{ErrBadTarget, class{http.StatusBadRequest, "invalid_request", ReasonInvalidRequest, "the request's host or path is malformed", true}},
	// The shape of the MCP request, judged once the token is known to be
	// good. No Bearer challenge: RFC 6750 §3.1's invalid_request is about
	// how the request presents its credential, and a new token cannot fix
	// any of these. The ones with a JSON-RPC code are answered with a
	// JSON-RPC error (see jsonRPCCode).
	{ErrOperationMismatch, class{http.StatusBadRequest, "invalid_request", ReasonHeaderMismatch, "Header mismatch: the Mcp-Method or Mcp-Name header does not match the JSON-RPC body", false}},
	{ErrBadMCPHeader, class{http.StatusBadRequest, "invalid_request", ReasonHeaderMismatch, "Header mismatch: an Mcp-Method or Mcp-Name header is malformed (invalid characters or =?base64?...?= encoding), or one is missing or not expected for the method", false}},
	{ErrMethodHeader, class{http.StatusBadRequest, "invalid_request", ReasonHeaderMismatch, "Header mismatch: the required Mcp-Method header is missing", false}},
	{ErrUnknownOperation, class{http.StatusBadRequest, "invalid_request", ReasonHeaderMismatch, "Header mismatch: the MCP method is unknown: send the Mcp-Method and Mcp-Name headers", false}},
	{ErrBodyNotJSON, class{http.StatusBadRequest, "invalid_request", ReasonBadMessage, "Parse error: the body is not JSON text in UTF-8", false}},
	{ErrBadOperation, class{http.StatusBadRequest, "invalid_request", ReasonBadMessage, "Invalid Request: the body is not one JSON-RPC message the gateway can read unambiguously", false}},
	{ErrAmbiguousURI, class{http.StatusBadRequest, "invalid_request", ReasonBadMessage, "Invalid params: the resource URI cannot be normalised unambiguously", false}},
	{ErrBodyRequired, class{http.StatusBadRequest, "invalid_request", ReasonInvalidRequest, "the JSON-RPC body must reach the gateway (mcp.require_body): configure the proxy to forward it", false}},
	{ErrUntrustedHeaders, class{http.StatusBadRequest, "invalid_request", ReasonInvalidRequest, "the Mcp-Method and Mcp-Name headers are trusted without the JSON-RPC body only from MCP 2026-07-28 on: send MCP-Protocol-Version 2026-07-28 or later, or have the proxy forward the body", false}},
	{ErrBadProtocolVersion, class{http.StatusBadRequest, "invalid_request", ReasonInvalidRequest, "the MCP-Protocol-Version header is not a protocol revision (YYYY-MM-DD)", false}},
	// Refused before routing (Refusal): which resource the request was
	// for is not known, so there is no challenge to give.
	{ErrUndecodable, class{http.StatusBadRequest, "invalid_request", ReasonInvalidRequest, "the authorization request cannot be decoded", false}},
	{ErrHeaderLimits, class{http.StatusBadRequest, "invalid_request", ReasonInvalidRequest, "the request has too many headers, or headers too large", false}},
	{ErrInvalidRequest, class{http.StatusBadRequest, "invalid_request", ReasonInvalidRequest, "the request is malformed", true}},
	{token.ErrMalformed, class{http.StatusUnauthorized, "invalid_token", ReasonMalformed, "the access token is malformed", true}},
	{token.ErrCritical, class{http.StatusUnauthorized, "invalid_token", ReasonMalformed, "the access token has unsupported critical headers", true}},
	{token.ErrMissingExpiry, class{http.StatusUnauthorized, "invalid_token", ReasonMalformed, "the access token has no expiry", true}},
	{token.ErrAlgorithm, class{http.StatusUnauthorized, "invalid_token", ReasonBadAlgorithm, "the access token's algorithm is not accepted", true}},
	{token.ErrUnknownIssuer, class{http.StatusUnauthorized, "invalid_token", ReasonWrongIssuer, "the access token's issuer is not trusted", true}},
	{token.ErrUnknownKey, class{http.StatusUnauthorized, "invalid_token", ReasonUnknownKey, "the access token's signing key is unknown", true}},
	{token.ErrSignature, class{http.StatusUnauthorized, "invalid_token", ReasonBadSignature, "the access token's signature is invalid", true}},
	{token.ErrExpired, class{http.StatusUnauthorized, "invalid_token", ReasonExpired, "the access token expired", true}},
	{token.ErrInactive, class{http.StatusUnauthorized, "invalid_token", ReasonInactive, "the access token is not active", true}},
	{token.ErrNotAccessToken, class{http.StatusUnauthorized, "invalid_token", ReasonNotAccessToken, "the token is not a bearer access token", true}},
	{token.ErrNotYetValid, class{http.StatusUnauthorized, "invalid_token", ReasonNotYetValid, "the access token is not yet valid", true}},
	{verdict.ErrWrongAudience, class{http.StatusUnauthorized, "invalid_token", ReasonWrongAudience, "the access token is not meant for this resource", true}},
	{verdict.ErrRevoked, class{http.StatusUnauthorized, "invalid_token", ReasonRevoked, "the access token has been revoked", true}},
	// DPoP (RFC 9449 §7.1, §9): the errors go in the DPoP challenge.
	{ErrDPoPProof, class{http.StatusUnauthorized, "invalid_dpop_proof", ReasonDPoPProof, "the DPoP proof is invalid", true}},
	{ErrDPoPNonce, class{http.StatusUnauthorized, "use_dpop_nonce", ReasonDPoPNonce, "the DPoP proof must carry the nonce of the DPoP-Nonce header", true}},
	{ErrDPoPBinding, class{http.StatusUnauthorized, "invalid_token", ReasonDPoPBinding, "invalid DPoP key binding", true}},
	{ErrDPoPRequired, class{http.StatusUnauthorized, "invalid_token", ReasonDPoPRequired, "this resource accepts DPoP-bound access tokens only", true}},
	{ErrDPoPUnavailable, class{http.StatusServiceUnavailable, "temporarily_unavailable", ReasonDPoPUnavailable, "the DPoP proof cannot be checked now; retry later", false}},
	{ErrInsufficientScope, class{http.StatusForbidden, "insufficient_scope", ReasonInsufficientScope, "the access token lacks a required scope", true}},
	{token.ErrUnavailable, class{http.StatusServiceUnavailable, "temporarily_unavailable", ReasonUnavailable, "the token cannot be verified now; retry later", false}},
	// The resource mints a credential for its upstream, and cannot: never
	// an allow without it. No challenge: another token of the client's
	// would not change the issuer's answer.
	{ErrUpstreamRefused, class{http.StatusForbidden, "forbidden", ReasonUpstreamRefused, "the gateway cannot obtain a credential for the upstream on this caller's behalf", false}},
	{ErrUpstreamUnavailable, class{http.StatusServiceUnavailable, "temporarily_unavailable", ReasonUpstreamUnavail, "a credential for the upstream cannot be obtained now; retry later", false}},
	{ErrOriginNotAllowed, class{http.StatusForbidden, "forbidden", ReasonOriginNotAllowed, "requests from this origin are not accepted", false}},
	{ErrPolicyDenied, class{http.StatusForbidden, "forbidden", ReasonPolicyDenied, "the request is not allowed by policy", false}},
	{ErrPolicyFailed, class{http.StatusForbidden, "forbidden", ReasonPolicyError, "the request is not allowed by policy", false}},
	{ErrUnmatched, class{http.StatusForbidden, "forbidden", ReasonUnmatched, "no protected resource matches this request", false}},
	{ErrUnknownResource, class{http.StatusForbidden, "forbidden", ReasonUnknownResource, "no protected resource matches this request", false}},
	{ErrResourceNotNamed, class{http.StatusForbidden, "forbidden", ReasonUnknownResource, "no protected resource matches this request", false}},
}

// internalClass answers anything unforeseen: a denial, never an allow.
var internalClass = class{http.StatusServiceUnavailable, "temporarily_unavailable", ReasonInternal, "the request cannot be authorized now; retry later", false}

// Refusal is the denial of a request a transport refuses before the
// engine sees it, from the table like every other: ErrUndecodable,
// ErrHeaderLimits, or ErrInternal (anything unforeseen, a panic: the 503
// of internalClass). It names no resource and carries no challenge.
func Refusal(err error) Decision {
	return denial(nil, err)
}

// classify finds the row for err. A context cancelled or timed out while
// verifying means we could not decide in time: unavailable, not invalid.
func classify(err error) class {
	for _, d := range denials {
		if errors.Is(err, d.err) {
			return d.class
		}
	}
	return internalClass
}

// JSON-RPC error codes of the MCP-shape refusals: -32020 HeaderMismatch
// (MCP 2026-07-28, Streamable HTTP "Server Validation": 400 with this code
// when a required Mcp-* header is missing or malformed or disagrees with
// the body), and the JSON-RPC 2.0 codes for a body that is not JSON
// (-32700), not a readable request (-32600) or has unusable params
// (-32602).
const (
	rpcHeaderMismatch = -32020
	rpcParseError     = -32700
	rpcInvalidRequest = -32600
	rpcInvalidParams  = -32602
)

// jsonRPCCode returns the JSON-RPC error code a denial answers with, or 0
// for the OAuth-style {"error":...} body.
func jsonRPCCode(err error) int {
	switch {
	case errors.Is(err, ErrOperationMismatch), errors.Is(err, ErrBadMCPHeader),
		errors.Is(err, ErrMethodHeader), errors.Is(err, ErrUnknownOperation):
		return rpcHeaderMismatch
	case errors.Is(err, ErrBodyNotJSON):
		return rpcParseError
	case errors.Is(err, ErrBadOperation):
		return rpcInvalidRequest
	case errors.Is(err, ErrAmbiguousURI):
		return rpcInvalidParams
	}
	return 0
}
