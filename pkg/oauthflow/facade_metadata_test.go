package oauthflow_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/pkg/metadata"
	"github.com/extauthz/extauthz/pkg/oauthflow"
)

func TestFacadeIssuer(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://gw.example.com":      "https://gw.example.com/oauth",
		"https://gw.example.com/":     "https://gw.example.com/oauth",
		"https://gw.example.com:8443": "https://gw.example.com:8443/oauth",
		"http://127.0.0.1:8080":       "http://127.0.0.1:8080/oauth",
		"http://localhost:8080":       "http://localhost:8080/oauth",
		"http://gw.example.com":       "",
		"https://gw.example.com/base": "",
		"https://gw.example.com?x=1":  "",
		"https://user@gw.example.com": "",
		"gw.example.com":              "",
		"":                            "",
	} {
		got, err := oauthflow.FacadeIssuer(in)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("FacadeIssuer(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// The well-known path is RFC 8414 §3.1's insertion, which is the first address MCP clients
// try (pkg/metadata.DiscoveryURLs lists them in their order); issuers that could be read two
// ways are refused.
func TestFacadeMetadataPath(t *testing.T) {
	t.Parallel()
	for iss, want := range map[string]string{
		"https://gw.example.com/oauth":        "/.well-known/oauth-authorization-server/oauth",
		"https://gw.example.com/tenant/oauth": "/.well-known/oauth-authorization-server/tenant/oauth",
		"https://gw.example.com":              "/.well-known/oauth-authorization-server",
	} {
		got, err := oauthflow.FacadeMetadataPath(iss)
		if err != nil || got != want {
			t.Errorf("FacadeMetadataPath(%q) = %q, %v; want %q", iss, got, err, want)
		}
		urls, err := metadata.DiscoveryURLs(iss)
		if err != nil || !strings.HasSuffix(urls[0], want) {
			t.Errorf("MCP clients try %v first for %q, not %q", urls, iss, want)
		}
	}
	for _, iss := range []string{
		"https://gw.example.com/oauth/",
		"https://gw.example.com/oauth?x=1",
		"https://gw.example.com/oauth?",
		"https://gw.example.com/oauth#f",
		"https://gw.example.com/a/../oauth",
		"https://gw.example.com/./oauth",
		"https://gw.example.com//oauth",
		"https://gw.example.com/o%2Fauth",
		"https://gw.example.com/o auth",
		"HTTPS://gw.example.com/oauth",
		"http://gw.example.com/oauth",
		"https://user:pw@gw.example.com/oauth",
		"/oauth",
	} {
		if got, err := oauthflow.FacadeMetadataPath(iss); err == nil {
			t.Errorf("FacadeMetadataPath(%q) = %q, want an error", iss, got)
		}
	}
}

func TestFacadeMetadataDocument(t *testing.T) {
	t.Parallel()
	m, err := oauthflow.NewFacadeMetadata(oauthflow.FacadeMetadataOptions{
		Issuer:          "https://gw.example.com/oauth",
		ScopesSupported: []string{"mcp:tools", "mcp:admin"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.Path() != "/.well-known/oauth-authorization-server/oauth" {
		t.Fatalf("Path = %q", m.Path())
	}
	r := httptest.NewRecorder()
	m.ServeHTTP(r, httptest.NewRequest(http.MethodGet, m.Path(), nil))
	if r.Code != http.StatusOK || r.Header().Get("Content-Type") != "application/json" ||
		r.Header().Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(r.Header().Get("Cache-Control"), "max-age=") {
		t.Fatalf("GET: %d %v", r.Code, r.Header())
	}
	var got map[string]any
	if err := json.Unmarshal(r.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"issuer":                                         "https://gw.example.com/oauth",
		"authorization_endpoint":                         "https://gw.example.com/oauth/authorize",
		"token_endpoint":                                 "https://gw.example.com/oauth/token",
		"registration_endpoint":                          "https://gw.example.com/oauth/register",
		"revocation_endpoint":                            "https://gw.example.com/oauth/revoke",
		"jwks_uri":                                       "https://gw.example.com/oauth/jwks",
		"scopes_supported":                               []any{"mcp:tools", "mcp:admin"},
		"response_types_supported":                       []any{"code"},
		"response_modes_supported":                       []any{"query"},
		"grant_types_supported":                          []any{"authorization_code", "refresh_token"},
		"code_challenge_methods_supported":               []any{"S256"},
		"token_endpoint_auth_methods_supported":          []any{"none"},
		"revocation_endpoint_auth_methods_supported":     []any{"none"},
		"authorization_response_iss_parameter_supported": true,
		"client_id_metadata_document_supported":          true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("document\n got %v\nwant %v", got, want)
	}

	// What the gateway's own discovery client reads of it, served at the issuer's origin.
	srv := httptest.NewServer(m)
	defer srv.Close()
	local, err := oauthflow.NewFacadeMetadata(oauthflow.FacadeMetadataOptions{Issuer: srv.URL + "/oauth"})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = local
	as, err := metadata.Discover(t.Context(), srv.Client(), srv.URL+"/oauth")
	if err != nil {
		t.Fatal(err)
	}
	if as.Issuer != srv.URL+"/oauth" || as.RegistrationEndpoint != srv.URL+"/oauth/register" ||
		!reflect.DeepEqual(as.CodeChallengeMethodsSupported, []string{"S256"}) || !as.AuthorizationResponseIssParameterSupported {
		t.Errorf("discovered %+v", as)
	}

	for _, c := range []struct {
		method, path string
		status       int
	}{
		{http.MethodHead, m.Path(), http.StatusOK},
		{http.MethodOptions, m.Path(), http.StatusNoContent},
		{http.MethodPost, m.Path(), http.StatusMethodNotAllowed},
		{http.MethodGet, "/.well-known/oauth-authorization-server", http.StatusNotFound},
		{http.MethodGet, "/.well-known/openid-configuration/oauth", http.StatusNotFound},
		{http.MethodGet, "/oauth/.well-known/openid-configuration", http.StatusNotFound},
		{http.MethodGet, m.Path() + "/", http.StatusNotFound},
	} {
		r := httptest.NewRecorder()
		m.ServeHTTP(r, httptest.NewRequest(c.method, c.path, nil))
		body, _ := io.ReadAll(r.Body)
		if r.Code != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, r.Code, c.status)
		}
		if c.method == http.MethodHead && len(body) != 0 {
			t.Errorf("HEAD answered a body")
		}
	}
}

func TestFacadeMetadataOptions(t *testing.T) {
	t.Parallel()
	m, err := oauthflow.NewFacadeMetadata(oauthflow.FacadeMetadataOptions{
		Issuer:                           "https://gw.example.com/oauth",
		DisableRegistration:              true,
		AuthorizationEndpoint:            "https://login.gw.example.com/authorize",
		DisableClientIDMetadataDocuments: false,
	})
	if err != nil {
		t.Fatal(err)
	}
	d := m.Document()
	if d.RegistrationEndpoint != "" || d.AuthorizationEndpoint != "https://login.gw.example.com/authorize" || !d.ClientIDMetadataDocumentSupported {
		t.Errorf("document %+v", d)
	}
	r := httptest.NewRecorder()
	m.ServeHTTP(r, httptest.NewRequest(http.MethodGet, m.Path(), nil))
	if strings.Contains(r.Body.String(), "registration_endpoint") || strings.Contains(r.Body.String(), "scopes_supported") {
		t.Errorf("document %s", r.Body)
	}
	for name, o := range map[string]oauthflow.FacadeMetadataOptions{
		"no issuer":            {},
		"no way to identify":   {Issuer: "https://gw.example.com/oauth", DisableRegistration: true, DisableClientIDMetadataDocuments: true},
		"an http endpoint":     {Issuer: "https://gw.example.com/oauth", TokenEndpoint: "http://gw.example.com/token"},
		"a relative endpoint":  {Issuer: "https://gw.example.com/oauth", TokenEndpoint: "/token"},
		"an endpoint with #":   {Issuer: "https://gw.example.com/oauth", JWKSURI: "https://gw.example.com/jwks#x"},
		"a scope with a space": {Issuer: "https://gw.example.com/oauth", ScopesSupported: []string{"a b"}},
		"a scope with a quote": {Issuer: "https://gw.example.com/oauth", ScopesSupported: []string{`a"`}},
		"an empty scope":       {Issuer: "https://gw.example.com/oauth", ScopesSupported: []string{""}},
	} {
		if _, err := oauthflow.NewFacadeMetadata(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
