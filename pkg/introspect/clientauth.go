package introspect

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// clientAssertionType is the client_assertion_type of a JWT assertion
// (RFC 7523 §2.2).
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// ClientAuth is how the gateway authenticates as a confidential client
// at an authorization server's endpoints: its introspection endpoint
// (this package) and its token endpoint (package upstream). One
// implementation, so that every request the gateway makes as a client
// encodes its credentials the same way.
type ClientAuth struct {
	// Method is ClientSecretBasic (also when empty), ClientSecretPost or
	// PrivateKeyJWT.
	Method string
	// ClientID is the gateway's client identifier at the server.
	ClientID string
	// ClientSecret, for the client_secret_* methods.
	ClientSecret string
	// Signer signs private_key_jwt client assertions.
	Signer *AssertionSigner
	// Audience is the aud of private_key_jwt assertions: the server's
	// issuer identifier rather than the endpoint's URL (RFC 7523 §3; see
	// AssertionSigner.Sign).
	Audience string
}

// Validate reports an unknown method, or a method without the credential
// it needs. The errors name no secret.
func (a ClientAuth) Validate() error {
	switch a.method() {
	case ClientSecretBasic, ClientSecretPost:
		if a.ClientSecret == "" {
			return fmt.Errorf("%s needs a client secret", a.method())
		}
	case PrivateKeyJWT:
		if a.Signer == nil {
			return errors.New("private_key_jwt needs a private key")
		}
	default:
		return fmt.Errorf("unknown client authentication method %q", a.Method)
	}
	return nil
}

func (a ClientAuth) method() string {
	if a.Method == "" {
		return ClientSecretBasic
	}
	return a.Method
}

// Apply makes req, a POST to one of the server's endpoints, carry form
// as its application/x-www-form-urlencoded body, authenticated as this
// client, and ask for a JSON answer. form itself is left as it was: the
// client's parameters go into a copy. now is the clock of a
// private_key_jwt assertion, signed afresh for every request (a unique
// jti, one minute of life). req's body may be read again (GetBody), so
// that a transport can retry it.
func (a ClientAuth) Apply(req *http.Request, form url.Values, now time.Time) error {
	f := make(url.Values, len(form)+3)
	for k, v := range form {
		f[k] = v
	}
	switch a.method() {
	case ClientSecretBasic:
		// RFC 6749 §2.3.1: both parts form-urlencoded before base64, so
		// that a ':' in the id, or any '%' or '+', reads back as it was.
		req.SetBasicAuth(url.QueryEscape(a.ClientID), url.QueryEscape(a.ClientSecret))
	case ClientSecretPost:
		f.Set("client_id", a.ClientID)
		f.Set("client_secret", a.ClientSecret)
	case PrivateKeyJWT:
		if a.Signer == nil {
			return errors.New("private_key_jwt needs a private key")
		}
		assertion, err := a.Signer.Sign(a.ClientID, a.Audience, now)
		if err != nil {
			return fmt.Errorf("signing the client assertion: %w", err)
		}
		f.Set("client_id", a.ClientID)
		f.Set("client_assertion_type", clientAssertionType)
		f.Set("client_assertion", assertion)
	default:
		// Never an unauthenticated request: Validate refuses the method
		// first, and this is the same refusal should a caller skip it.
		return fmt.Errorf("unknown client authentication method %q", a.Method)
	}
	encoded := f.Encode()
	req.Body = io.NopCloser(strings.NewReader(encoded))
	req.ContentLength = int64(len(encoded))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(encoded)), nil }
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	return nil
}
