package oauthflow

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"
)

// MaxCodeTTL is the longest an authorization code of the facade lives.
const MaxCodeTTL = 60 * time.Second

// ErrInvalidGrant is a code or refresh token the facade refuses: unknown, expired, used
// already, issued to another client or for another redirect URI, a PKCE verifier that does
// not match, a refresh family revoked. The token endpoint answers invalid_grant (RFC 6749
// §5.2). Errors wrap it with the reason, for the log; the client is told only invalid_grant.
var ErrInvalidGrant = errors.New("facade: invalid grant")

// AuthCode is what an authorization code of the facade stands for, from the authorization
// request it answers to the token request that redeems it.
type AuthCode struct {
	// ClientID and RedirectURI are the authorization request's; the token request must send
	// the same (RFC 6749 §4.1.3).
	ClientID    string
	RedirectURI string
	// CodeChallenge is the request's S256 PKCE challenge (RFC 7636): base64url of a SHA-256.
	CodeChallenge string
	// Resource is the resource's canonical URI (RFC 8707), the access token's audience.
	Resource string
	// Scopes are the scopes granted.
	Scopes []string
	// Subject is the user, as the upstream provider's verified token named them.
	Subject string
	// UpstreamIssuer and UpstreamRefreshToken are the provider's, for the refresh family the
	// token request starts; "" when the provider issued no refresh token.
	UpstreamIssuer       string
	UpstreamRefreshToken string
	// AuthTime is when the user signed in at the provider.
	AuthTime time.Time
	// Expires is set by IssueCode.
	Expires time.Time
}

// codeRecord is the stored form of an AuthCode, under short JSON names.
type codeRecord struct {
	ClientID      string   `json:"cid"`
	RedirectURI   string   `json:"ru"`
	CodeChallenge string   `json:"cc"`
	Resource      string   `json:"res"`
	Scopes        []string `json:"scp,omitempty"`
	Subject       string   `json:"sub"`
	UpIssuer      string   `json:"uiss,omitempty"`
	UpRefresh     string   `json:"urt,omitempty"`
	AuthTime      int64    `json:"at,omitempty"`
	Expires       int64    `json:"exp"` // Unix milliseconds
}

// CodeRedemption is what a token request presents with a code.
type CodeRedemption struct {
	ClientID     string
	RedirectURI  string
	CodeVerifier string
}

// validChallenge reports whether s can be an S256 code challenge: the unpadded base64url of 32
// bytes, 43 characters.
func validChallenge(s string) bool {
	if len(s) != 43 {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(b) == sha256.Size && base64.RawURLEncoding.EncodeToString(b) == s
}

// validVerifier reports whether s is an RFC 7636 §4.1 code_verifier: 43 to 128 characters of
// [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
func validVerifier(s string) bool {
	if len(s) < 43 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			return false
		}
	}
	return true
}

// pkceS256Matches reports whether verifier is the one challenge was made from (RFC 7636 §4.6),
// comparing in constant time.
func pkceS256Matches(verifier, challenge string) bool {
	if !validVerifier(verifier) {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}

// IssueCode stores c under a new random code (256 bits) for ttl (at most MaxCodeTTL; 0 means
// MaxCodeTTL) and returns the code. Only the code's SHA-256 names the entry, so a leaked key
// list yields no code.
func (s *FacadeStore) IssueCode(ctx context.Context, c *AuthCode, ttl time.Duration) (string, error) {
	switch {
	case c == nil:
		return "", errors.New("facade: nil code")
	case ttl < 0 || ttl > MaxCodeTTL:
		return "", fmt.Errorf("facade: code lifetime %v outside (0, %v]", ttl, MaxCodeTTL)
	case c.ClientID == "", c.RedirectURI == "", c.Resource == "", c.Subject == "":
		return "", errors.New("facade: a code needs a client, a redirect URI, a resource and a subject")
	case !validChallenge(c.CodeChallenge):
		return "", errors.New("facade: a code needs an S256 code challenge")
	}
	if ttl == 0 {
		ttl = MaxCodeTTL
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	code, err := NewID()
	if err != nil {
		return "", err
	}
	exp := s.now().Add(ttl)
	c.Expires = exp
	rec := codeRecord{
		ClientID: c.ClientID, RedirectURI: c.RedirectURI, CodeChallenge: c.CodeChallenge,
		Resource: c.Resource, Scopes: c.Scopes, Subject: c.Subject,
		UpIssuer: c.UpstreamIssuer, UpRefresh: c.UpstreamRefreshToken, Expires: exp.UnixMilli(),
	}
	if !c.AuthTime.IsZero() {
		rec.AuthTime = c.AuthTime.Unix()
	}
	key := storageKey(facadeCodePrefix, code)
	val, err := s.seal.sealJSON(key, &rec)
	if err != nil {
		return "", err
	}
	ok, err := s.b.add(ctx, key, val, ttl)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", errors.New("facade: code collision") // 256 random bits: never
	}
	return code, nil
}

// RedeemCode spends code and returns what it stands for if the token request p matches it.
// The code is removed first, atomically (Redis GETDEL), whatever follows: of any number of
// concurrent redemptions, on any replicas, at most one sees it, and a code presented with a
// wrong verifier is spent too, so a verifier cannot be guessed at (RFC 6749 §4.1.2: a code is
// used once). Then: not expired; issued to p.ClientID; for p.RedirectURI, exactly; and
// p.CodeVerifier is the PKCE S256 verifier of its challenge (RFC 7636 §4.6), compared in
// constant time. Any failure wraps ErrInvalidGrant; a store failure is returned as it is.
func (s *FacadeStore) RedeemCode(ctx context.Context, code string, p CodeRedemption) (*AuthCode, error) {
	if len(code) < MinIDLen || len(code) > 64 {
		return nil, fmt.Errorf("%w: not a code", ErrInvalidGrant)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key := storageKey(facadeCodePrefix, code)
	val, ok, err := s.b.getdel(ctx, key)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: unknown, expired or already used code", ErrInvalidGrant)
	}
	var rec codeRecord
	if err := s.seal.openJSON(key, val, &rec); err != nil {
		return nil, fmt.Errorf("%w: the stored code does not open", ErrInvalidGrant)
	}
	switch {
	case !s.now().Before(time.UnixMilli(rec.Expires)):
		return nil, fmt.Errorf("%w: expired code", ErrInvalidGrant)
	case subtle.ConstantTimeCompare([]byte(rec.ClientID), []byte(p.ClientID)) != 1:
		return nil, fmt.Errorf("%w: the code was issued to another client", ErrInvalidGrant)
	case subtle.ConstantTimeCompare([]byte(rec.RedirectURI), []byte(p.RedirectURI)) != 1:
		return nil, fmt.Errorf("%w: redirect_uri differs from the authorization request's", ErrInvalidGrant)
	case !pkceS256Matches(p.CodeVerifier, rec.CodeChallenge):
		return nil, fmt.Errorf("%w: the code_verifier does not match the code_challenge", ErrInvalidGrant)
	}
	c := &AuthCode{
		ClientID: rec.ClientID, RedirectURI: rec.RedirectURI, CodeChallenge: rec.CodeChallenge,
		Resource: rec.Resource, Scopes: slices.Clone(rec.Scopes), Subject: rec.Subject,
		UpstreamIssuer: rec.UpIssuer, UpstreamRefreshToken: rec.UpRefresh,
		Expires: time.UnixMilli(rec.Expires),
	}
	if rec.AuthTime != 0 {
		c.AuthTime = time.Unix(rec.AuthTime, 0)
	}
	return c, nil
}
