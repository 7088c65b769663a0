package metadata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// AuthorizationServer is the part of RFC 8414 / OpenID Connect Discovery
// metadata the gateway uses.
type AuthorizationServer struct {
	Issuer                                     string   `json:"issuer"`
	JWKSURI                                    string   `json:"jwks_uri"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint,omitempty"`
	TokenEndpoint                              string   `json:"token_endpoint,omitempty"`
	IntrospectionEndpoint                      string   `json:"introspection_endpoint,omitempty"`
	RevocationEndpoint                         string   `json:"revocation_endpoint,omitempty"`
	RegistrationEndpoint                       string   `json:"registration_endpoint,omitempty"`
	ScopesSupported                            []string `json:"scopes_supported,omitempty"`
	ResponseTypesSupported                     []string `json:"response_types_supported,omitempty"`
	GrantTypesSupported                        []string `json:"grant_types_supported,omitempty"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported,omitempty"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	AuthorizationResponseIssParameterSupported bool     `json:"authorization_response_iss_parameter_supported,omitempty"`
}

// ErrIssuerMismatch means that a metadata document names another issuer. RFC 8414
// §3.3 forbids using such a document (it would let one server impersonate
// another).
var ErrIssuerMismatch = errors.New("metadata issuer does not match the configured issuer")

// DiscoveryURLs lists where an issuer's metadata may be, in the order MCP
// clients try them (MCP authorization, "Authorization Server Metadata
// Discovery"): RFC 8414 with the well-known segment inserted before the
// issuer's path, then OpenID Connect discovery inserted, then appended.
func DiscoveryURLs(issuer string) ([]string, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("issuer %q is not an absolute URL", issuer)
	}
	origin := u.Scheme + "://" + u.Host
	p := strings.TrimSuffix(u.EscapedPath(), "/")
	if p == "" {
		return []string{
			origin + "/.well-known/oauth-authorization-server",
			origin + "/.well-known/openid-configuration",
		}, nil
	}
	return []string{
		origin + "/.well-known/oauth-authorization-server" + p,
		origin + "/.well-known/openid-configuration" + p,
		origin + p + "/.well-known/openid-configuration",
	}, nil
}

// maxDocumentBytes bounds a metadata document; real ones are a few KiB.
const maxDocumentBytes = 1 << 20

// Discover fetches the issuer's metadata from the first DiscoveryURLs entry
// that answers 200 with a document whose issuer equals the configured one
// byte for byte. Not-found answers move on to the next URL; the returned
// error describes every attempt.
func Discover(ctx context.Context, client *http.Client, issuer string) (*AuthorizationServer, error) {
	urls, err := DiscoveryURLs(issuer)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, u := range urls {
		md, err := fetchDocument(ctx, client, u)
		if err == nil && md.Issuer != issuer {
			err = fmt.Errorf("%w: got %q", ErrIssuerMismatch, md.Issuer)
		}
		if err == nil {
			return md, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", u, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("discovery for issuer %q failed: %w", issuer, errors.Join(errs...))
}

func fetchDocument(ctx context.Context, client *http.Client, u string) (*AuthorizationServer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxDocumentBytes {
		return nil, errors.New("document larger than 1 MiB")
	}
	var md AuthorizationServer
	if err := json.Unmarshal(body, &md); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	return &md, nil
}
