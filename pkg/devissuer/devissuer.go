// Package devissuer is a small, real OAuth authorization server for
// development and tests: it generates its own signing keys, serves RFC 8414
// metadata and a JWKS over HTTP, and mints RFC 9068 JWT access tokens —
// printed by `extauthz dev`, or issued by its token endpoint: by
// client_credentials, and by RFC 8693 token exchange of a token it signed
// itself (the grant `extauthz dev` shows upstream credentials with). Tests
// use its key controls to rotate keys and take the JWKS endpoint down.
//
// It is not for production: its client_credentials grant serves anyone who
// asks, and the one client it can authenticate (SetClient, by
// client_secret_basic) is the only client it knows — there is no
// registration, consent or policy on what may be exchanged for what.
package devissuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// Issuer is a development authorization server.
type Issuer struct {
	issuer string // the issuer identifier, e.g. http://127.0.0.1:8080/dev
	path   string // its path, "" or "/dev"
	now    func() time.Time

	// DefaultAudience is the aud of tokens that ask for no resource.
	DefaultAudience string

	mu        sync.RWMutex
	keys      map[string]*key
	active    string   // kid that signs
	published []string // kids in the JWKS, in order

	client client // the one client the token endpoint authenticates; zero: none

	jwksStatus  atomic.Int32 // non-zero: the JWKS endpoint answers this status
	jwksFetches atomic.Int64
}

type key struct {
	kid  string
	alg  jwa.SignatureAlgorithm
	priv crypto.Signer
	pub  jwk.Key
}

// New creates an issuer with one signing key of the given algorithm
// (RS256, PS256, ES256, ES384, EdDSA, ...). now may be nil.
func New(issuer, alg string, now func() time.Time) (*Issuer, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("devissuer: issuer %q is not an absolute URL", issuer)
	}
	if now == nil {
		now = time.Now
	}
	i := &Issuer{issuer: issuer, path: strings.TrimSuffix(u.Path, "/"), now: now, keys: map[string]*key{}}
	kid, err := i.AddKey(alg)
	if err != nil {
		return nil, err
	}
	i.Use(kid)
	return i, nil
}

// Issuer returns the issuer identifier.
func (i *Issuer) Issuer() string { return i.issuer }

// JWKSURL is where the key set is served.
func (i *Issuer) JWKSURL() string { return i.origin() + i.path + "/jwks.json" }

func (i *Issuer) origin() string {
	u, _ := url.Parse(i.issuer)
	return u.Scheme + "://" + u.Host
}

// AddKey generates a key, publishes it in the JWKS and returns its kid. It
// does not sign with it until Use.
func (i *Issuer) AddKey(alg string) (string, error) {
	a, ok := jwa.LookupSignatureAlgorithm(alg)
	if !ok {
		return "", fmt.Errorf("devissuer: unknown algorithm %q", alg)
	}
	priv, err := generate(alg)
	if err != nil {
		return "", err
	}
	pub, err := jwk.PublicKeyOf(priv.Public())
	if err != nil {
		return "", err
	}
	kid := randomID(8)
	for _, set := range []struct {
		k string
		v any
	}{{jwk.KeyIDKey, kid}, {jwk.AlgorithmKey, a}, {jwk.KeyUsageKey, "sig"}} {
		if err := pub.Set(set.k, set.v); err != nil {
			return "", err
		}
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys[kid] = &key{kid: kid, alg: a, priv: priv, pub: pub}
	i.published = append(i.published, kid)
	return kid, nil
}

func generate(alg string) (crypto.Signer, error) {
	switch {
	case strings.HasPrefix(alg, "RS"), strings.HasPrefix(alg, "PS"):
		return rsa.GenerateKey(rand.Reader, 2048)
	case alg == "ES256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case alg == "ES384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case alg == "ES512":
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case alg == "EdDSA":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("devissuer: cannot generate a key for %q", alg)
}

// PublicKey returns the public half of a key, nil if unknown.
func (i *Issuer) PublicKey(kid string) crypto.PublicKey {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if k := i.keys[kid]; k != nil {
		return k.priv.Public()
	}
	return nil
}

// ActiveKID is the kid that signs.
func (i *Issuer) ActiveKID() string {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.active
}

// Use makes kid the signing key.
func (i *Issuer) Use(kid string) {
	i.mu.Lock()
	i.active = kid
	i.mu.Unlock()
}

// Publish sets exactly which kids the JWKS lists (rotation: publish the
// new key, sign with it, then stop publishing the old one).
func (i *Issuer) Publish(kids ...string) {
	i.mu.Lock()
	i.published = append([]string(nil), kids...)
	i.mu.Unlock()
}

// SetJWKSStatus makes the JWKS endpoint answer status with no key set (an
// outage); 0 restores it.
func (i *Issuer) SetJWKSStatus(status int) { i.jwksStatus.Store(int32(status)) } //nolint:gosec // an HTTP status

// JWKSFetches counts requests to the JWKS endpoint.
func (i *Issuer) JWKSFetches() int64 { return i.jwksFetches.Load() }

// Token describes a token to mint.
type Token struct {
	Subject  string
	ClientID string
	Audience []string // nil: DefaultAudience
	Scopes   []string
	TTL      time.Duration // 0: one hour
	// NotBefore and IssuedAt default to now.
	NotBefore, IssuedAt time.Time
	// Extra claims are added as given and override the ones above.
	Extra map[string]any
}

// Mint signs a token with the active key.
func (i *Issuer) Mint(t Token) (string, error) {
	now := i.now()
	if t.TTL == 0 {
		t.TTL = time.Hour
	}
	if t.IssuedAt.IsZero() {
		t.IssuedAt = now
	}
	if t.NotBefore.IsZero() {
		t.NotBefore = t.IssuedAt
	}
	aud := t.Audience
	if aud == nil && i.DefaultAudience != "" {
		aud = []string{i.DefaultAudience}
	}
	c := map[string]any{
		"iss": i.issuer,
		"sub": t.Subject,
		"exp": now.Add(t.TTL).Unix(),
		"iat": t.IssuedAt.Unix(),
		"nbf": t.NotBefore.Unix(),
		"jti": randomID(16),
	}
	if len(aud) == 1 {
		c["aud"] = aud[0]
	} else if len(aud) > 1 {
		c["aud"] = aud
	}
	if t.ClientID != "" {
		c["client_id"] = t.ClientID
	}
	if len(t.Scopes) > 0 {
		c["scope"] = strings.Join(t.Scopes, " ")
	}
	for k, v := range t.Extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return i.Sign(c, nil)
}

// Sign signs arbitrary claims with the active key; extra header fields are
// added to the protected header (tests use it to craft hostile tokens).
func (i *Issuer) Sign(claims map[string]any, header map[string]any) (string, error) {
	i.mu.RLock()
	k := i.keys[i.active]
	i.mu.RUnlock()
	if k == nil {
		return "", errors.New("devissuer: no active key")
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	h := jws.NewHeaders()
	if err := h.Set(jws.KeyIDKey, k.kid); err != nil {
		return "", err
	}
	if err := h.Set(jws.TypeKey, "at+jwt"); err != nil {
		return "", err
	}
	for name, v := range header {
		if err := h.Set(name, v); err != nil {
			return "", err
		}
	}
	out, err := jws.Sign(payload, jws.WithKey(k.alg, k.priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		return "", err
	}
	return string(out), nil
}

// Metadata is the RFC 8414 document.
func (i *Issuer) Metadata() map[string]any {
	return map[string]any{
		"issuer":                                i.issuer,
		"jwks_uri":                              i.JWKSURL(),
		"token_endpoint":                        i.origin() + i.path + "/token",
		"grant_types_supported":                 []string{grantClientCredentials, grantTokenExchange},
		"token_endpoint_auth_methods_supported": i.authMethods(),
		"response_types_supported":              []string{},
	}
}

// Handler serves the metadata at the RFC 8414 path-inserted well-known URL,
// the JWKS and the token endpoint. Mount it at the root of the issuer's
// origin.
func (i *Issuer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server"+i.path, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, i.Metadata())
	})
	mux.HandleFunc("GET "+i.path+"/jwks.json", i.serveJWKS)
	mux.HandleFunc("POST "+i.path+"/token", i.serveToken)
	return mux
}

func (i *Issuer) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	i.jwksFetches.Add(1)
	if st := i.jwksStatus.Load(); st != 0 {
		http.Error(w, "unavailable", int(st))
		return
	}
	set := jwk.NewSet()
	i.mu.RLock()
	for _, kid := range i.published {
		if k := i.keys[kid]; k != nil {
			_ = set.AddKey(k.pub)
		}
	}
	i.mu.RUnlock()
	w.Header().Set("Cache-Control", "max-age=300")
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_ = json.NewEncoder(w).Encode(set)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
