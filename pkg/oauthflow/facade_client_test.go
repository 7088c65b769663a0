package oauthflow

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseClientMetadata(t *testing.T) {
	t.Parallel()
	c, id, err := parseClientMetadata([]byte(`{
		"redirect_uris": ["http://127.0.0.1:33418/callback", "https://client.example/cb", "http://127.0.0.1:33418/callback"],
		"client_name": "Example — MCP client",
		"client_uri": "https://client.example/",
		"logo_uri": "https://client.example/logo.png",
		"scope": "mcp:tools mcp:read",
		"grant_types": ["authorization_code", "refresh_token", "authorization_code"],
		"response_types": ["code"],
		"token_endpoint_auth_method": "none",
		"contacts": ["a@client.example"],
		"software_statement": "eyJ...",
		"client_id": "chosen-by-the-client",
		"unknown": {"nested": [1, 2, 3]}
	}`), false)
	if err != nil {
		t.Fatal(err)
	}
	if id != "chosen-by-the-client" || c.ClientID != "" {
		t.Errorf("client_id %q, ClientID %q: a registration must not choose its id", id, c.ClientID)
	}
	if !slices.Equal(c.RedirectURIs, []string{"http://127.0.0.1:33418/callback", "https://client.example/cb"}) ||
		!slices.Equal(c.GrantTypes, []string{"authorization_code", "refresh_token"}) ||
		!slices.Equal(c.ResponseTypes, []string{"code"}) || c.TokenEndpointAuthMethod != "none" ||
		c.ClientName != "Example — MCP client" || c.ClientURI != "https://client.example/" || c.Scope != "mcp:tools mcp:read" {
		t.Errorf("parsed %+v", c)
	}

	// RFC 7591 defaults, except the authentication method: public clients only.
	c, _, err = parseClientMetadata([]byte(`{"redirect_uris":["https://client.example/cb"]}`), false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.GrantTypes, []string{"authorization_code"}) || !slices.Equal(c.ResponseTypes, []string{"code"}) ||
		c.TokenEndpointAuthMethod != "none" {
		t.Errorf("defaults %+v", c)
	}
	if _, _, err := parseClientMetadata([]byte(`{"redirect_uris":["https://c.example/cb"],"client_name":null,"scope":null}`), false); err != nil {
		t.Errorf("null members: %v", err)
	}

	redirect := `"redirect_uris":["https://client.example/cb"]`
	refuse := map[string]struct{ body, code string }{
		"not an object":               {`["https://client.example/cb"]`, "invalid_client_metadata"},
		"trailing data":               {`{` + redirect + `} {}`, "invalid_client_metadata"},
		"truncated":                   {`{` + redirect, "invalid_client_metadata"},
		"a repeated member":           {`{` + redirect + `,"redirect_uris":["http://evil.example/cb"]}`, "invalid_client_metadata"},
		"a case variant only":         {`{"Redirect_URIs":["https://client.example/cb"]}`, "invalid_redirect_uri"},
		"no redirect_uris":            {`{"client_name":"x"}`, "invalid_redirect_uri"},
		"empty redirect_uris":         {`{"redirect_uris":[]}`, "invalid_redirect_uri"},
		"a string for redirect_uris":  {`{"redirect_uris":"https://client.example/cb"}`, "invalid_client_metadata"},
		"a null redirect URI":         {`{"redirect_uris":[null]}`, "invalid_redirect_uri"},
		"eleven redirect URIs":        {`{"redirect_uris":["https://c.example/1","https://c.example/2","https://c.example/3","https://c.example/4","https://c.example/5","https://c.example/6","https://c.example/7","https://c.example/8","https://c.example/9","https://c.example/10","https://c.example/11"]}`, "invalid_redirect_uri"},
		"plain http off loopback":     {`{"redirect_uris":["http://client.example/cb"]}`, "invalid_redirect_uri"},
		"a fragment":                  {`{"redirect_uris":["https://client.example/cb#x"]}`, "invalid_redirect_uri"},
		"a wildcard":                  {`{"redirect_uris":["https://*.client.example/cb"]}`, "invalid_redirect_uri"},
		"a private-use scheme":        {`{"redirect_uris":["com.example.app:/cb"]}`, "invalid_redirect_uri"},
		"client_secret_basic":         {`{` + redirect + `,"token_endpoint_auth_method":"client_secret_basic"}`, "invalid_client_metadata"},
		"private_key_jwt":             {`{` + redirect + `,"token_endpoint_auth_method":"private_key_jwt"}`, "invalid_client_metadata"},
		"auth method of another type": {`{` + redirect + `,"token_endpoint_auth_method":1}`, "invalid_client_metadata"},
		"client_credentials":          {`{` + redirect + `,"grant_types":["authorization_code","client_credentials"]}`, "invalid_client_metadata"},
		"implicit":                    {`{` + redirect + `,"grant_types":["implicit"],"response_types":["token"]}`, "invalid_client_metadata"},
		"refresh_token alone":         {`{` + redirect + `,"grant_types":["refresh_token"]}`, "invalid_client_metadata"},
		"no grant types":              {`{` + redirect + `,"grant_types":[]}`, "invalid_client_metadata"},
		"response type token":         {`{` + redirect + `,"response_types":["code","token"]}`, "invalid_client_metadata"},
		"client_uri over http":        {`{` + redirect + `,"client_uri":"http://client.example/"}`, "invalid_client_metadata"},
		"client_uri javascript":       {`{` + redirect + `,"client_uri":"javascript:alert(1)"}`, "invalid_client_metadata"},
		"client_uri with user":        {`{` + redirect + `,"client_uri":"https://bank.example@evil.example/"}`, "invalid_client_metadata"},
		"client_name with RLO":        {`{` + redirect + `,"client_name":"Safe \u202eelppA"}`, "invalid_client_metadata"},
		"client_name with newline":    {`{` + redirect + `,"client_name":"a\nb"}`, "invalid_client_metadata"},
		"client_name too long":        {`{` + redirect + `,"client_name":"` + strings.Repeat("x", MaxClientNameLen+1) + `"}`, "invalid_client_metadata"},
		"client_name not UTF-8":       {`{` + redirect + `,"client_name":"` + "\xff" + `"}`, "invalid_client_metadata"},
		"scope with two spaces":       {`{` + redirect + `,"scope":"a  b"}`, "invalid_client_metadata"},
		"scope with a quote":          {`{` + redirect + `,"scope":"a \""}`, "invalid_client_metadata"},
	}
	for name, c := range refuse {
		_, _, err := parseClientMetadata([]byte(c.body), false)
		var me *MetadataError
		if !errors.As(err, &me) || me.Code != c.code {
			t.Errorf("%s: %v, want %s", name, err, c.code)
		}
	}

	// A metadata document: client_id required, no secret.
	for name, body := range map[string]string{
		"no client_id":             `{` + redirect + `}`,
		"client_secret":            `{` + redirect + `,"client_id":"https://c.example/m","client_secret":"s"}`,
		"client_secret_expires_at": `{` + redirect + `,"client_id":"https://c.example/m","client_secret_expires_at":0}`,
	} {
		if _, _, err := parseClientMetadata([]byte(body), true); err == nil {
			t.Errorf("document with %s: accepted", name)
		}
	}
}

// FuzzClientMetadata: a registration request and a metadata document are attacker input.
// parseClientMetadata never panics, and what it accepts is a public client of the facade's
// rules.
func FuzzClientMetadata(f *testing.F) {
	f.Add([]byte(`{"redirect_uris":["https://client.example/cb"],"client_name":"x","grant_types":["authorization_code","refresh_token"]}`), false)
	f.Add([]byte(`{"redirect_uris":["http://127.0.0.1:1/cb"],"client_id":"https://c.example/m"}`), true)
	f.Add([]byte(`{"redirect_uris":["http://evil.example/cb"],"redirect_uris":["https://client.example/cb"]}`), false)
	f.Add([]byte(`{"redirect_uris":["https://c.example/"],"token_endpoint_auth_method":"none","scope":"a b"}`), false)
	f.Fuzz(func(t *testing.T, body []byte, doc bool) {
		c, id, err := parseClientMetadata(body, doc)
		if err != nil {
			var me *MetadataError
			if !errors.As(err, &me) || (me.Code != "invalid_client_metadata" && me.Code != "invalid_redirect_uri") {
				t.Fatalf("error %v is not a MetadataError", err)
			}
			return
		}
		if doc && id == "" {
			t.Fatal("a document without client_id accepted")
		}
		if c.TokenEndpointAuthMethod != "none" || len(c.RedirectURIs) == 0 || len(c.RedirectURIs) > MaxRedirectURIs ||
			!slices.Contains(c.GrantTypes, "authorization_code") || !slices.Equal(c.ResponseTypes, []string{"code"}) {
			t.Fatalf("accepted %+v", c)
		}
		for _, u := range c.RedirectURIs {
			if checkRedirectURI(u) != nil {
				t.Fatalf("accepted redirect URI %q", u)
			}
		}
		for _, g := range c.GrantTypes {
			if g != "authorization_code" && g != "refresh_token" {
				t.Fatalf("accepted grant type %q", g)
			}
		}
	})
}
