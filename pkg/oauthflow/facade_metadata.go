package oauthflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// FacadePath is the path under the gateway's public URL that the facade's issuer has by
// default: the facade is https://gateway.example/oauth, beside the browser sign-in's
// /oauth/login and /oauth/callback.
const FacadePath = "/oauth"

// Facade endpoint paths under the issuer, the defaults of [FacadeMetadataOptions].
const (
	FacadeAuthorizePath = "/authorize"
	FacadeTokenPath     = "/token"
	FacadeRegisterPath  = "/register"
	FacadeRevokePath    = "/revoke"
	FacadeJWKSPath      = "/jwks"
)

// The grant types, client authentication method and response type the facade supports, as
// RFC 7591 §2 and RFC 8414 §2 name them.
const (
	grantAuthorizationCode = "authorization_code"
	grantRefreshToken      = "refresh_token"
	authMethodNone         = "none"
	responseTypeCode       = "code"
)

// wellKnownAS is the RFC 8414 §3 well-known URI suffix.
const wellKnownAS = "/.well-known/oauth-authorization-server"

// FacadeIssuer returns the facade's issuer identifier for a gateway reached at publicURL
// (scheme://host[:port], as [Options.PublicURL]): publicURL + [FacadePath].
func FacadeIssuer(publicURL string) (string, error) {
	u, err := url.Parse(publicURL)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") ||
		u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("facade: public URL %q must be scheme://host[:port]", publicURL)
	}
	iss := u.Scheme + "://" + u.Host + FacadePath
	if err := checkIssuer(iss); err != nil {
		return "", err
	}
	return iss, nil
}

// checkIssuer enforces what RFC 8414 §2 asks of an issuer identifier (https, no query, no
// fragment), plain http only on a loopback host for development, and a path that the
// well-known URI can be built from without ambiguity: only unreserved characters and single
// slashes, no dot segments, no trailing slash.
func checkIssuer(iss string) error {
	u, err := url.Parse(iss)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.ForceQuery ||
		u.Fragment != "" || strings.Contains(iss, "#") || u.Opaque != "" {
		return fmt.Errorf("facade: issuer %q must be an absolute URL without query or fragment", iss)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		return fmt.Errorf("facade: issuer %q must be https (plain http only on a loopback host)", iss)
	}
	if u.Scheme+"://"+u.Host+u.Path != iss {
		return fmt.Errorf("facade: issuer %q is not in its plain form (scheme://host[:port]/path)", iss)
	}
	if p := u.Path; p != "" {
		if !plainPath(p) {
			return fmt.Errorf("facade: issuer path %q must be /segment[/segment…] of unreserved characters, without a trailing slash", p)
		}
	}
	return nil
}

// plainPath reports whether p is "/seg[/seg…]" with each segment non-empty, made of RFC 3986
// unreserved characters, and neither "." nor "..".
func plainPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		for i := 0; i < len(seg); i++ {
			if !unreserved(seg[i]) {
				return false
			}
		}
	}
	return true
}

// unreserved reports whether c is an RFC 3986 §2.3 unreserved character.
func unreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// FacadeMetadataPath is where the facade's RFC 8414 document is served for issuer: the
// well-known segment inserted between the host and the issuer's path (RFC 8414 §3.1), so
// "https://gw.example/oauth" has "/.well-known/oauth-authorization-server/oauth". This is the
// first address MCP clients try for an issuer with a path (MCP authorization, "Authorization
// Server Metadata Discovery"), and the only one the facade serves: see [FacadeMetadata].
func FacadeMetadataPath(issuer string) (string, error) {
	if err := checkIssuer(issuer); err != nil {
		return "", err
	}
	u, _ := url.Parse(issuer) // checked above
	return wellKnownAS + u.Path, nil
}

// FacadeMetadataOptions configures [NewFacadeMetadata].
type FacadeMetadataOptions struct {
	// Issuer is the facade's issuer identifier, such as [FacadeIssuer]'s: https (plain http
	// only on a loopback host), no query or fragment. Required.
	Issuer string
	// ScopesSupported are the scopes clients may ask for (the union of the facade resources'
	// scopes), published as scopes_supported; none: the member is left out.
	ScopesSupported []string
	// The endpoints, each an absolute URL; empty: Issuer + FacadeAuthorizePath, FacadeTokenPath,
	// FacadeRegisterPath, FacadeRevokePath and FacadeJWKSPath.
	AuthorizationEndpoint, TokenEndpoint, RegistrationEndpoint, RevocationEndpoint, JWKSURI string
	// DisableRegistration leaves registration_endpoint out: clients must use Client ID
	// Metadata Documents.
	DisableRegistration bool
	// DisableClientIDMetadataDocuments publishes client_id_metadata_document_supported: false.
	DisableClientIDMetadataDocuments bool
}

// FacadeMetadataDocument is the facade's RFC 8414 authorization server metadata. Members that
// RFC 8414 gives a default the facade does not follow are always written: the revocation
// endpoint's authentication would otherwise default to client_secret_basic, and the response
// modes to query and fragment.
type FacadeMetadataDocument struct {
	Issuer                                     string   `json:"issuer"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint"`
	TokenEndpoint                              string   `json:"token_endpoint"`
	RegistrationEndpoint                       string   `json:"registration_endpoint,omitempty"`
	RevocationEndpoint                         string   `json:"revocation_endpoint"`
	JWKSURI                                    string   `json:"jwks_uri"`
	ScopesSupported                            []string `json:"scopes_supported,omitempty"`
	ResponseTypesSupported                     []string `json:"response_types_supported"`
	ResponseModesSupported                     []string `json:"response_modes_supported"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethodsSupported     []string `json:"revocation_endpoint_auth_methods_supported"`
	AuthorizationResponseIssParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
	ClientIDMetadataDocumentSupported          bool     `json:"client_id_metadata_document_supported"`
}

// FacadeMetadata serves the facade's RFC 8414 document at [FacadeMetadata.Path]. It serves no
// OpenID Connect discovery document: the facade issues no ID tokens and has no userinfo
// endpoint, and MCP asks an authorization server for one of the two only (MCP clients try
// the RFC 8414 address first). It is safe for concurrent use.
type FacadeMetadata struct {
	doc  FacadeMetadataDocument
	body []byte
	path string
}

// NewFacadeMetadata checks o and builds the document.
func NewFacadeMetadata(o FacadeMetadataOptions) (*FacadeMetadata, error) {
	path, err := FacadeMetadataPath(o.Issuer)
	if err != nil {
		return nil, err
	}
	iu, _ := url.Parse(o.Issuer)
	endpoint := func(name, given, suffix string) (string, error) {
		if given == "" {
			return o.Issuer + suffix, nil
		}
		u, err := url.Parse(given)
		if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" || strings.Contains(given, "#") {
			return "", fmt.Errorf("facade: %s %q is not an absolute URL without fragment", name, given)
		}
		if u.Scheme != "https" && (u.Scheme != "http" || iu.Scheme != "http" || !isLoopback(u.Hostname())) {
			return "", fmt.Errorf("facade: %s %q must be https", name, given)
		}
		return given, nil
	}
	doc := FacadeMetadataDocument{
		Issuer:                                     o.Issuer,
		ResponseTypesSupported:                     []string{responseTypeCode},
		ResponseModesSupported:                     []string{"query"},
		GrantTypesSupported:                        []string{grantAuthorizationCode, grantRefreshToken},
		CodeChallengeMethodsSupported:              []string{"S256"},
		TokenEndpointAuthMethodsSupported:          []string{authMethodNone},
		RevocationEndpointAuthMethodsSupported:     []string{authMethodNone},
		AuthorizationResponseIssParameterSupported: true,
		ClientIDMetadataDocumentSupported:          !o.DisableClientIDMetadataDocuments,
	}
	var errs []error
	var e error
	doc.AuthorizationEndpoint, e = endpoint("authorization endpoint", o.AuthorizationEndpoint, FacadeAuthorizePath)
	errs = append(errs, e)
	doc.TokenEndpoint, e = endpoint("token endpoint", o.TokenEndpoint, FacadeTokenPath)
	errs = append(errs, e)
	if !o.DisableRegistration {
		doc.RegistrationEndpoint, e = endpoint("registration endpoint", o.RegistrationEndpoint, FacadeRegisterPath)
		errs = append(errs, e)
	}
	doc.RevocationEndpoint, e = endpoint("revocation endpoint", o.RevocationEndpoint, FacadeRevokePath)
	errs = append(errs, e)
	doc.JWKSURI, e = endpoint("jwks_uri", o.JWKSURI, FacadeJWKSPath)
	errs = append(errs, e)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if o.DisableRegistration && o.DisableClientIDMetadataDocuments {
		return nil, errors.New("facade: with neither registration nor Client ID Metadata Documents no client can identify itself")
	}
	for _, s := range o.ScopesSupported {
		if !validScopeToken(s) {
			return nil, fmt.Errorf("facade: invalid scope %q", s)
		}
	}
	doc.ScopesSupported = append([]string(nil), o.ScopesSupported...)
	body, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("facade: encoding the metadata: %w", err)
	}
	return &FacadeMetadata{doc: doc, body: body, path: path}, nil
}

// Path is where the document is served: [FacadeMetadataPath] of the issuer.
func (m *FacadeMetadata) Path() string { return m.path }

// Document returns a copy of the document.
func (m *FacadeMetadata) Document() FacadeMetadataDocument {
	d := m.doc
	d.ScopesSupported = append([]string(nil), m.doc.ScopesSupported...)
	return d
}

// ServeHTTP answers GET and HEAD of Path with the document (200, application/json, cacheable
// for five minutes, readable from any origin: it is public, and browser-based MCP clients
// fetch it) and a CORS preflight with 204; another method is 405 and another path 404.
func (m *FacadeMetadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != m.path {
		http.NotFound(w, r)
		return
	}
	servePublicJSON(w, r, m.body)
}

// servePublicJSON answers a public, cacheable JSON document (metadata, key set).
func servePublicJSON(w http.ResponseWriter, r *http.Request, body []byte) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "GET, HEAD")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// validScopeToken reports whether s is an RFC 6749 §3.3 scope-token: one or more of
// %x21 / %x23-5B / %x5D-7E.
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
