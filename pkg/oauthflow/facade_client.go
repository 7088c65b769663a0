package oauthflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Bounds of client metadata, registered or in a Client ID Metadata Document.
const (
	// MaxRedirectURIs is the most redirect URIs one client may have.
	MaxRedirectURIs = 10
	// MaxClientNameLen bounds client_name, in bytes of UTF-8.
	MaxClientNameLen = 200
	// MaxClientURILen bounds client_uri.
	MaxClientURILen = 1024
	// MaxClientScopeLen bounds the scope a client registers.
	MaxClientScopeLen = 1024
)

// RegisteredClient is an MCP client the facade knows: registered with it (RFC 7591), or
// described by the Client ID Metadata Document at its client_id. Every public client the facade
// accepts has TokenEndpointAuthMethod "none" and proves itself with PKCE alone.
type RegisteredClient struct {
	ClientID string
	// ClientName is what the client calls itself: unverified, shown as such to the user.
	ClientName string
	// ClientURI is the client's home page, https; "" when none.
	ClientURI string
	// RedirectURIs are compared as whole strings (see [RegisteredClient.RedirectURIAllowed]).
	RedirectURIs            []string
	GrantTypes              []string
	ResponseTypes           []string
	TokenEndpointAuthMethod string
	// Scope is the space-separated scope the client registered, "" when none; informational:
	// what a client may be granted is decided at authorization.
	Scope string
	// IssuedAt is when the client was registered; zero for a metadata document.
	IssuedAt time.Time
	// MetadataDocument says the client was described by the document at its client_id URL.
	MetadataDocument bool
}

// RedirectURIAllowed reports whether uri is one of the client's redirect URIs: the same
// string, or for a registered loopback IP literal over plain http the same URI with another
// port (RFC 8252 §7.3).
func (c *RegisteredClient) RedirectURIAllowed(uri string) bool {
	for _, r := range c.RedirectURIs {
		if redirectURIMatches(r, uri) {
			return true
		}
	}
	return false
}

// AllowsGrant reports whether the client registered grant type g.
func (c *RegisteredClient) AllowsGrant(g string) bool { return slices.Contains(c.GrantTypes, g) }

// clientRecord is the stored form of a registered client, under short JSON names.
type clientRecord struct {
	ID           string   `json:"id"`
	Name         string   `json:"n,omitempty"`
	URI          string   `json:"u,omitempty"`
	Redirects    []string `json:"r"`
	Grants       []string `json:"g"`
	Responses    []string `json:"rt"`
	AuthMethod   string   `json:"am"`
	Scope        string   `json:"s,omitempty"`
	IssuedAtUnix int64    `json:"iat,omitempty"`
}

// MetadataError is client metadata the facade refuses, with the RFC 7591 §3.2.2 error code
// it answers: invalid_redirect_uri or invalid_client_metadata. Its description names the
// rule, never the value.
type MetadataError struct {
	Code        string
	Description string
}

func (e *MetadataError) Error() string { return e.Code + ": " + e.Description }

func badMetadata(format string, args ...any) *MetadataError {
	return &MetadataError{Code: "invalid_client_metadata", Description: fmt.Sprintf(format, args...)}
}

func badRedirect(err error) *MetadataError {
	return &MetadataError{Code: "invalid_redirect_uri", Description: "the client metadata has " + err.Error()}
}

// parseClientMetadata reads a registration request or a Client ID Metadata Document: one JSON
// object whose member names are compared exactly (encoding/json alone would also take
// "Redirect_URIs") and appear once. Members the facade does not know are ignored (RFC 7591
// §2); those it knows are checked (see checkClientMetadata). inDocument selects the rules of
// a metadata document: client_id is required (the caller compares it with the URL), and a
// client secret is refused.
func parseClientMetadata(body []byte, inDocument bool) (c *RegisteredClient, clientID string, err error) {
	members, err := jsonMembers(body)
	if err != nil {
		return nil, "", badMetadata("%s", err.Error())
	}
	c = &RegisteredClient{}
	str := func(name string, dst *string) error {
		raw, ok := members[name]
		if !ok || string(raw) == "null" {
			return nil
		}
		if json.Unmarshal(raw, dst) != nil {
			return badMetadata("%s is not a string", name)
		}
		return nil
	}
	list := func(name string, dst *[]string) error {
		raw, ok := members[name]
		if !ok || string(raw) == "null" {
			return nil
		}
		if json.Unmarshal(raw, dst) != nil {
			return badMetadata("%s is not an array of strings", name)
		}
		if *dst == nil {
			*dst = []string{} // present and empty: refused below where it matters
		}
		return nil
	}
	if err := errors.Join(
		list("redirect_uris", &c.RedirectURIs),
		list("grant_types", &c.GrantTypes),
		list("response_types", &c.ResponseTypes),
		str("token_endpoint_auth_method", &c.TokenEndpointAuthMethod),
		str("client_name", &c.ClientName),
		str("client_uri", &c.ClientURI),
		str("scope", &c.Scope),
		str("client_id", &clientID),
	); err != nil {
		var me *MetadataError
		errors.As(err, &me)
		return nil, "", me
	}
	if inDocument {
		// draft-ietf-oauth-client-id-metadata-document §4.1: a document describes a client
		// without a shared secret.
		for _, name := range []string{"client_secret", "client_secret_expires_at"} {
			if _, ok := members[name]; ok {
				return nil, "", badMetadata("a metadata document must not have %s", name)
			}
		}
		if clientID == "" {
			return nil, "", badMetadata("the metadata document has no client_id")
		}
	}
	if err := checkClientMetadata(c); err != nil {
		return nil, "", err
	}
	return c, clientID, nil
}

// checkClientMetadata enforces the facade's rules on a client's metadata and fills in RFC
// 7591's defaults. A public client only: token_endpoint_auth_method absent (RFC 7591's default
// would be client_secret_basic; the facade registers "none" instead, which §3.2.1 lets it do
// and the answer shows) or "none". redirect_uris required, 1–MaxRedirectURIs, each per
// checkRedirectURI; duplicates dropped. grant_types a subset of authorization_code and
// refresh_token that includes authorization_code (default: authorization_code);
// response_types exactly code (default). client_name at most MaxClientNameLen bytes of UTF-8
// without control or format characters (no bidirectional overrides on a consent page);
// client_uri an https URL; scope space-separated scope tokens. logo_uri, contacts, tos_uri,
// policy_uri, jwks, jwks_uri and software_statement are ignored, and never stored.
func checkClientMetadata(c *RegisteredClient) error {
	switch c.TokenEndpointAuthMethod {
	case "":
		c.TokenEndpointAuthMethod = authMethodNone
	case authMethodNone:
	default:
		return badMetadata("token_endpoint_auth_method must be none: the facade registers public clients only")
	}

	if len(c.RedirectURIs) == 0 {
		return &MetadataError{Code: "invalid_redirect_uri", Description: "redirect_uris is required"}
	}
	if len(c.RedirectURIs) > MaxRedirectURIs {
		return &MetadataError{Code: "invalid_redirect_uri", Description: "more than " + strconv.Itoa(MaxRedirectURIs) + " redirect_uris"}
	}
	uris := make([]string, 0, len(c.RedirectURIs))
	for _, u := range c.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			return badRedirect(err)
		}
		if !slices.Contains(uris, u) {
			uris = append(uris, u)
		}
	}
	c.RedirectURIs = uris

	if c.GrantTypes == nil {
		c.GrantTypes = []string{grantAuthorizationCode}
	}
	grants := make([]string, 0, 2)
	for _, g := range c.GrantTypes {
		if g != grantAuthorizationCode && g != grantRefreshToken {
			return badMetadata("grant_types may hold only authorization_code and refresh_token")
		}
		if !slices.Contains(grants, g) {
			grants = append(grants, g)
		}
	}
	if !slices.Contains(grants, grantAuthorizationCode) {
		return badMetadata("grant_types must include authorization_code")
	}
	c.GrantTypes = grants

	if c.ResponseTypes == nil {
		c.ResponseTypes = []string{responseTypeCode}
	}
	for _, r := range c.ResponseTypes {
		if r != responseTypeCode {
			return badMetadata("response_types may hold only code")
		}
	}
	c.ResponseTypes = []string{responseTypeCode}

	if err := checkClientName(c.ClientName); err != nil {
		return err
	}
	if c.ClientURI != "" {
		if err := checkClientURI(c.ClientURI); err != nil {
			return err
		}
	}
	if c.Scope != "" {
		if len(c.Scope) > MaxClientScopeLen {
			return badMetadata("scope longer than %d bytes", MaxClientScopeLen)
		}
		for s := range strings.SplitSeq(c.Scope, " ") {
			if !validScopeToken(s) {
				return badMetadata("scope is not space-separated scope tokens")
			}
		}
	}
	return nil
}

func checkClientName(s string) error {
	if len(s) > MaxClientNameLen {
		return badMetadata("client_name longer than %d bytes", MaxClientNameLen)
	}
	if !utf8.ValidString(s) {
		return badMetadata("client_name is not UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return badMetadata("client_name has a control or formatting character")
		}
	}
	return nil
}

func checkClientURI(s string) error {
	if len(s) > MaxClientURILen {
		return badMetadata("client_uri longer than %d bytes", MaxClientURILen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f || strings.IndexByte("\\\"<>{}|^`#", c) >= 0 {
			return badMetadata("client_uri is not a plain https URL")
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Opaque != "" || u.String() != s {
		return badMetadata("client_uri is not a plain https URL")
	}
	return nil
}

// jsonMembers splits one JSON object into its members, refusing anything else: text that is
// not UTF-8 (RFC 8259 §8.1; encoding/json would quietly turn it into U+FFFD), another JSON
// value, trailing data, or a member name that repeats (two values for one name would be read
// differently by different parsers).
func jsonMembers(body []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(body) {
		return nil, errors.New("the body is not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, errors.New("the body is not a JSON object")
	}
	members := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errors.New("the body is not a JSON object")
		}
		name, _ := tok.(string)
		if _, dup := members[name]; dup {
			return nil, errors.New("a member name repeats")
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, errors.New("the body is not a JSON object")
		}
		members[name] = v
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, errors.New("the body is not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return members, nil
}

// clientKey is where a registered client is stored.
func clientKey(clientID string) string { return storageKey(facadeClientPrefix, clientID) }

// RegisterClient stores c, whose ClientID and IssuedAt the caller has set, for the store's
// ClientTTL. It refuses a client id that is taken, and answers ErrTooManyClients when
// MaxClients clients are live.
func (s *FacadeStore) RegisterClient(ctx context.Context, c *RegisteredClient) error {
	if c == nil || len(c.ClientID) < MinIDLen {
		return fmt.Errorf("facade: client id shorter than %d characters (use NewID)", MinIDLen)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	key := clientKey(c.ClientID)
	rec := clientRecord{
		ID: c.ClientID, Name: c.ClientName, URI: c.ClientURI, Redirects: c.RedirectURIs,
		Grants: c.GrantTypes, Responses: c.ResponseTypes, AuthMethod: c.TokenEndpointAuthMethod,
		Scope: c.Scope,
	}
	if !c.IssuedAt.IsZero() {
		rec.IssuedAtUnix = c.IssuedAt.Unix()
	}
	val, err := s.seal.sealJSON(key, &rec)
	if err != nil {
		return err
	}
	ok, err := s.b.addClient(ctx, key, val, s.clientTTL, s.maxClients)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("facade: client id already registered")
	}
	return nil
}

// Client returns the registered client clientID and restarts its ClientTTL: a client in use
// does not expire. An absent or expired one is (nil, false, nil); one that does not open is
// ErrCorrupt. An id that NewID could not have made is absent, without a call to the store.
func (s *FacadeStore) Client(ctx context.Context, clientID string) (*RegisteredClient, bool, error) {
	if len(clientID) < MinIDLen || len(clientID) > 64 {
		return nil, false, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	key := clientKey(clientID)
	val, ok, err := s.b.touchClient(ctx, key, s.clientTTL)
	if err != nil || !ok {
		return nil, false, err
	}
	var rec clientRecord
	if err := s.seal.openJSON(key, val, &rec); err != nil {
		return nil, false, err
	}
	if rec.ID != clientID {
		return nil, false, ErrCorrupt
	}
	c := &RegisteredClient{
		ClientID: rec.ID, ClientName: rec.Name, ClientURI: rec.URI, RedirectURIs: rec.Redirects,
		GrantTypes: rec.Grants, ResponseTypes: rec.Responses, TokenEndpointAuthMethod: rec.AuthMethod,
		Scope: rec.Scope,
	}
	if rec.IssuedAtUnix != 0 {
		c.IssuedAt = time.Unix(rec.IssuedAtUnix, 0)
	}
	return c, true, nil
}

// DeleteClient removes the registered client clientID; an absent one is not an error.
func (s *FacadeStore) DeleteClient(ctx context.Context, clientID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.b.delClient(ctx, clientKey(clientID))
}
