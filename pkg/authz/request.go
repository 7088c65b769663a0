// Package authz is the decision pipeline: a plain request in, an allow or
// deny decision out. It routes the request to a protected resource, extracts
// the bearer credential (RFC 6750), verifies the token through a
// token.Verifier behind a cache of verdicts (package verdict holds and
// encodes them), checks issuer, audience (RFC 8707) and scopes, and shapes
// the answer of the denial table (RFC 6750 §3, RFC 9728 §5.1).
//
// It imports no Envoy types: the gRPC Check server (package check) and any
// HTTP front end translate to and from Request and Decision.
//
// The package is over ~1,500 lines because it is the whole decision, DESIGN.md's steps 2–7,
// one file per step or concern (route, bearer, rules, upstream, cors, revoke, the
// denial table); splitting it would put the steps of one decision in different packages.
package authz

import (
	"strconv"

	"github.com/extauthz/extauthz/pkg/mcp"
	"github.com/extauthz/extauthz/pkg/token"
)

// Request is one HTTP request to authorize, as the proxy describes it.
type Request struct {
	Method string
	Scheme string
	// Host is the :authority (or Host) as sent; it may carry a port.
	Host string
	// Path is the request target as sent: path and query string.
	Path string
	// Headers maps lower-case names to values; a repeated header's values
	// are joined with "," (as Envoy's CheckRequest headers map does).
	Headers map[string]string
	// Body is the request body when the proxy sends it; usually nil.
	Body []byte
	// ContextExtensions are the proxy route's per-route settings; the key
	// "resource" names the protected resource explicitly.
	ContextExtensions map[string]string
	// Underscored lists the names in Headers that hold "_", when the
	// translator recorded them while building Headers (UnderscoredKnown);
	// otherwise the decision scans Headers for them. An allowed request
	// loses the "_" spellings of the identity headers.
	Underscored      []string
	UnderscoredKnown bool
}

// Header is one header name and value.
type Header struct {
	Name, Value string
}

// Source says where a token's verdict came from: a metric label and a
// trace attribute.
type Source string

// The sources of a verdict.
const (
	SourceNone     Source = ""         // no token was verified or looked up
	SourceLocal    Source = "local"    // the in-process cache
	SourceRedis    Source = "redis"    // the shared cache
	SourceVerified Source = "verified" // a verification (or a wait for one)
)

// Decision is the answer to one Request.
type Decision struct {
	// Allow: let the request through to the upstream.
	Allow bool
	// Status is the HTTP status the client gets when the request is not
	// let through: a denial (400, 401, 403, 503) or a direct answer such as
	// the metadata document (200).
	Status int
	// Reason is a bounded label for metrics and logs.
	Reason Reason
	// Resource is the name of the protected resource the request was routed
	// to, "" when none.
	Resource string

	// For answers that are not let through:
	Challenge   string   // WWW-Authenticate value; "" for none
	RetryAfter  int      // seconds; 0 for none
	ContentType string   // of Body
	Body        []byte   // short JSON error, or the document of a direct answer
	Extra       []Header // further response headers (CORS, caching of documents)

	// For allowed requests:
	Upstream []Header      // headers to set on the upstream request (overwriting)
	Remove   []string      // headers to remove from the upstream request
	Claims   *token.Claims // the verified token, nil when none was needed
	// Respond are headers for the client's response to an allowed request
	// (Envoy's response_headers_to_add; the HTTP mode's answer carries
	// them for the proxy to copy): a new DPoP-Nonce (RFC 9449 §8.2).
	Respond []Header
	// UpstreamCredential says where the minted upstream token set in
	// Upstream came from ("local", "redis" or "minted"); "" when the
	// resource mints none.
	UpstreamCredential string

	// Claims is also set on a denial decided after the token was verified
	// (a missing scope, a policy), for the audit log. Source says where
	// the token's verdict came from ("" when no token was looked at), and
	// Operation is the MCP operation when the resource needed it.
	Source    Source
	Operation mcp.Operation

	// Err is the detailed cause of a denial, for logs only: it may name
	// things a client must not learn.
	Err error
}

// ResponseHeaders are the headers of the answer sent to the client when the
// request is not let through, in a stable order.
func (d *Decision) ResponseHeaders() []Header {
	h := make([]Header, 0, 4+len(d.Extra))
	if d.Challenge != "" {
		h = append(h, Header{"www-authenticate", d.Challenge})
	}
	if d.ContentType != "" {
		h = append(h, Header{"content-type", d.ContentType})
	}
	if d.RetryAfter > 0 {
		h = append(h, Header{"retry-after", strconv.Itoa(d.RetryAfter)})
	}
	h = append(h, d.Extra...)
	if d.Status >= 400 {
		// Denials must never be stored by a cache on the way back.
		h = append(h, Header{"cache-control", "no-store"})
	}
	return h
}
