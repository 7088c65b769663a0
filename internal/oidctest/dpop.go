package oidctest

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/extauthz/extauthz/internal/dpoptest"
)

// TokenResponse is a successful answer of the token endpoint.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"` // "DPoP" for a DPoP-bound token, else "Bearer"
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token"`
}

// TokenDPoP sends a token request with the parameters in form (grant_type and the rest) as c,
// authenticated like ClientCredentials, with a DPoP proof (RFC 9449 section 5) signed by key
// for the token endpoint. If the server asks for a nonce (400 use_dpop_nonce with a DPoP-Nonce
// header) the request is sent once more, with a new proof carrying it. form is not modified.
// key is ECDSA P-256 (ES256), Ed25519 or another key dpoptest.KeyFrom takes, though
// oidc-provider accepts only ES256 and EdDSA by default. A refusal is a *ResponseError.
//
// The server binds the token to key when it supports DPoP (TokenType "DPoP"); with
// Options.DPoP.Disabled it ignores the proof and answers with a Bearer token.
func (s *Server) TokenDPoP(ctx context.Context, c Client, form url.Values, key crypto.Signer) (TokenResponse, error) {
	k, err := dpoptest.KeyFrom(key)
	if err != nil {
		return TokenResponse{}, fmt.Errorf("oidctest: %w", err)
	}
	m, err := s.Metadata(ctx)
	if err != nil {
		return TokenResponse{}, err
	}
	nonce := ""
	for try := 0; ; try++ {
		f := url.Values{}
		for name, v := range form {
			f[name] = append([]string(nil), v...)
		}
		req, err := newPost(ctx, m.TokenEndpoint, c, f)
		if err != nil {
			return TokenResponse{}, err
		}
		proof, err := k.Sign(dpoptest.Proof{Method: http.MethodPost, URL: m.TokenEndpoint, Nonce: nonce})
		if err != nil {
			return TokenResponse{}, fmt.Errorf("oidctest: %w", err)
		}
		req.Header.Set("DPoP", proof)
		body, err := s.do(req, "token")
		var re *ResponseError
		if try == 0 && errors.As(err, &re) && re.Code == "use_dpop_nonce" && re.Header.Get("DPoP-Nonce") != "" {
			nonce = re.Header.Get("DPoP-Nonce")
			continue
		}
		if err != nil {
			return TokenResponse{}, err
		}
		var tr TokenResponse
		if err := json.Unmarshal(body, &tr); err != nil {
			return TokenResponse{}, fmt.Errorf("oidctest: decoding token response: %w", err)
		}
		if tr.AccessToken == "" {
			return TokenResponse{}, fmt.Errorf("oidctest: token response without access_token: %s", body)
		}
		return tr, nil
	}
}

// ClientCredentialsDPoP is ClientCredentials with a DPoP proof signed by key: it returns an
// access token bound to key (its cnf.jkt is key's RFC 7638 thumbprint, dpoptest.Key.JKT). A
// token that the server did not bind (token_type other than DPoP) is an error.
func (s *Server) ClientCredentialsDPoP(ctx context.Context, c Client, resource, scope string, key crypto.Signer) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	if resource != "" {
		form.Set("resource", resource)
	}
	if scope != "" {
		form.Set("scope", scope)
	}
	tr, err := s.TokenDPoP(ctx, c, form, key)
	if err != nil {
		return "", err
	}
	if !strings.EqualFold(tr.TokenType, "DPoP") {
		return "", fmt.Errorf("oidctest: token_type %q, want DPoP: the server did not bind the token", tr.TokenType)
	}
	return tr.AccessToken, nil
}
