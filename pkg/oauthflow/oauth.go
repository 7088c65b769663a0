package oauthflow

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxResponseBytes bounds a token or revocation response body.
const maxResponseBytes = 1 << 20

// tokenResponse is the part of an RFC 6749 §5.1 token response the flow reads.
type tokenResponse struct {
	AccessToken  string  `json:"access_token"`
	TokenType    string  `json:"token_type"`
	ExpiresIn    seconds `json:"expires_in"`
	RefreshToken string  `json:"refresh_token"`
	IDToken      string  `json:"id_token"`
	// RefreshTokenExpiresIn is not in RFC 6749, but several servers send it.
	RefreshTokenExpiresIn seconds `json:"refresh_token_expires_in"`
}

// seconds is a lifetime in seconds, sent as a JSON number or, by some servers, a numeric
// string. Zero means absent.
type seconds int64

func (s *seconds) UnmarshalJSON(b []byte) error {
	b = bytes.Trim(b, `"`)
	if string(b) == "null" || len(b) == 0 {
		*s = 0
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > 1e10 {
		return errors.New("not a number of seconds")
	}
	*s = seconds(f)
	return nil
}

func (s seconds) duration() time.Duration { return time.Duration(s) * time.Second }

// endpointError is a failed call to the token or revocation endpoint. It never holds a token.
type endpointError struct {
	endpoint string // "token" or "revocation"
	status   int    // 0: no HTTP answer
	code     string // the OAuth error code, when the answer had one
	detail   string // what went wrong otherwise
}

func (e *endpointError) Error() string {
	var b strings.Builder
	b.WriteString(e.endpoint)
	b.WriteString(" endpoint")
	if e.status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.status)
	}
	if e.code != "" {
		b.WriteString(": ")
		b.WriteString(e.code)
	}
	if e.detail != "" {
		b.WriteString(": ")
		b.WriteString(e.detail)
	}
	return b.String()
}

// definitive reports whether the server refused the request for good (an OAuth error answer,
// or a success that is not one), as opposed to a failure that may pass (no answer, 5xx, 429).
func (e *endpointError) definitive() bool {
	switch {
	case e.status == 0, e.status >= 500, e.status == http.StatusTooManyRequests:
		return false
	}
	return true
}

// requestToken posts form to the token endpoint with the client's authentication and returns
// the token response.
func (h *Handler) requestToken(ctx context.Context, c *Client, md *Metadata, form url.Values) (*tokenResponse, error) {
	if md.TokenEndpoint == "" {
		return nil, &endpointError{endpoint: "token", detail: "the metadata has no token_endpoint"}
	}
	status, body, err := h.post(ctx, c, md.TokenEndpoint, form)
	if err != nil {
		return nil, &endpointError{endpoint: "token", detail: err.Error()}
	}
	if status != http.StatusOK {
		return nil, &endpointError{endpoint: "token", status: status, code: errorCode(body)}
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, &endpointError{endpoint: "token", status: status, detail: "the response is not a token response"}
	}
	if tr.AccessToken == "" {
		return nil, &endpointError{endpoint: "token", status: status, detail: "the response has no access_token"}
	}
	if !strings.EqualFold(tr.TokenType, "Bearer") {
		// DPoP-bound or other tokens cannot be presented as a Check expects.
		return nil, &endpointError{endpoint: "token", status: status, detail: fmt.Sprintf("token_type %q is not Bearer", oauthErrorCode(tr.TokenType))}
	}
	return &tr, nil
}

// revoke revokes tok at the revocation endpoint (RFC 7009) with the client's authentication.
func (h *Handler) revoke(ctx context.Context, c *Client, md *Metadata, tok, hint string) error {
	status, body, err := h.post(ctx, c, md.RevocationEndpoint, url.Values{"token": {tok}, "token_type_hint": {hint}})
	if err != nil {
		return &endpointError{endpoint: "revocation", detail: err.Error()}
	}
	if status != http.StatusOK {
		return &endpointError{endpoint: "revocation", status: status, code: errorCode(body)}
	}
	return nil
}

// post sends an application/x-www-form-urlencoded request with client authentication and
// returns the status and body. Errors never contain the form.
func (h *Handler) post(ctx context.Context, c *Client, endpoint string, form url.Values) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, nil)
	if err != nil {
		return 0, nil, errors.New("invalid endpoint URL")
	}
	if err := c.clientAuth().Apply(req, form, h.now()); err != nil {
		return 0, nil, errors.New("signing the client assertion failed")
	}
	resp, err := h.http.Do(req)
	if err != nil {
		// url.Error names the endpoint and the cause, never the body.
		if ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			return 0, nil, ue.Err
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return 0, nil, errors.New("reading the response failed")
	}
	if len(body) > maxResponseBytes {
		return 0, nil, errors.New("response larger than 1 MiB")
	}
	return resp.StatusCode, body, nil
}

// errorCode returns the OAuth error code of an error answer, "" when it has none.
func errorCode(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		return ""
	}
	return oauthErrorCode(e.Error)
}

// pkce returns a new code verifier (32 random bytes, base64url: 43 characters) and its S256
// challenge.
func pkce() (verifier, challenge string, err error) {
	verifier, err = randomString()
	if err != nil {
		return "", "", err
	}
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// supportsS256 reports whether the metadata lists S256 among the PKCE methods.
func supportsS256(md *Metadata) bool {
	return slices.Contains(md.CodeChallengeMethodsSupported, "S256")
}

// idTokenNonceMatches reports whether the ID token's nonce claim equals nonce. The token's
// signature is not verified: see the package documentation, "ID tokens".
func idTokenNonceMatches(idToken, nonce string) bool {
	parts := strings.Split(idToken, ".")
	if len(parts) != 3 {
		return false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	var claims struct {
		Nonce string `json:"nonce"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Nonce == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(claims.Nonce), []byte(nonce)) == 1
}
