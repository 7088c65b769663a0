// Package metadata holds the discovery side of OAuth for protected
// resources: the RFC 9728 protected-resource metadata document and its
// well-known URLs, the RFC 6750 / RFC 9728 WWW-Authenticate challenge, and
// the client for authorization-server metadata (RFC 8414 and OpenID Connect
// discovery).
//
// It builds and parses documents and headers; it does not decide requests.
//
// In this tree "metadata" alone means OAuth metadata in this sense: the
// RFC 9728 protected-resource document and the RFC 8414 authorization-server
// document. Envoy's per-request key/value data is always called "dynamic
// metadata" (pkg/check), never plain metadata.
package metadata

import (
	"encoding/json"
	"net/url"
	"strings"
)

// WellKnownPrefix is the RFC 9728 §3 well-known path.
const WellKnownPrefix = "/.well-known/oauth-protected-resource"

// ProtectedResource is the RFC 9728 §2 metadata document.
type ProtectedResource struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers,omitempty"`
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	ResourceName           string   `json:"resource_name,omitempty"`
	ResourceDocumentation  string   `json:"resource_documentation,omitempty"`
	// RFC 9728 §2: the JWS algorithms accepted for DPoP proofs, and whether
	// only DPoP-bound tokens are accepted (RFC 9449).
	DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported,omitempty"`
	DPoPBoundAccessTokensRequired bool     `json:"dpop_bound_access_tokens_required,omitempty"`
}

// JSON encodes the document. Encoding a struct of strings cannot fail.
func (p ProtectedResource) JSON() []byte {
	b, _ := json.Marshal(p)
	return b
}

// WellKnownPath is the path of the metadata document for a resource
// identifier: the well-known prefix inserted between host and path, with a
// path of just "/" dropped (RFC 9728 §3.1). The resource "https://h/mcp"
// gives "/.well-known/oauth-protected-resource/mcp".
func WellKnownPath(resource string) string {
	u, err := url.Parse(resource)
	if err != nil {
		return WellKnownPrefix
	}
	p := u.EscapedPath()
	if p == "/" {
		p = ""
	}
	return WellKnownPrefix + p
}

// MetadataURL is the absolute URL of a resource's metadata document as
// served by the gateway at base (scheme://host[:port], no trailing slash).
// An empty base means the resource's own origin, as RFC 9728 §3.1 derives it.
func MetadataURL(base, resource string) string { //nolint:revive // metadata.MetadataURL reads as what it returns
	if base == "" {
		if u, err := url.Parse(resource); err == nil {
			base = u.Scheme + "://" + u.Host
		}
	}
	return strings.TrimSuffix(base, "/") + WellKnownPath(resource)
}
