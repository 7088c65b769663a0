package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// The client the gateway introspects as.
const introspectClientID = "loadtest"

// Opaque tokens: a random nonce and an HMAC tag over it, base64url without
// padding. The endpoint recognises its own tokens by recomputing the tag,
// so it keeps no table of them however many are minted.
const (
	opaqueNonceBytes = 16
	opaqueTagBytes   = 16
	// opaqueTokenLen is the length of every token: 32 bytes, 43 characters.
	opaqueTokenLen = (8*(opaqueNonceBytes+opaqueTagBytes) + 5) / 6
)

// introspectionServer is the local RFC 7662 authorization server of the
// introspection scenarios (a localEndpoint). It checks the gateway's
// client_secret_basic credentials on every call and answers active:true,
// with the claims of mintToken, for the tokens it minted, and active:false
// for any other.
type introspectionServer struct {
	localEndpoint // endpoint: issuer + "/introspect"

	delay  time.Duration
	key    []byte // HMAC key of the tokens
	active []byte // the active:true answer, the same for every token

	inactive atomic.Int64 // answered active:false
}

// startIntrospection serves a new introspection endpoint on 127.0.0.1:0
// that waits delay before every answer (a stand-in for the authorization
// server's own work: a database lookup, say). The client secret is written
// to dir.
func startIntrospection(dir string, delay time.Duration) (*introspectionServer, error) {
	s := &introspectionServer{delay: delay, key: make([]byte, 32)}
	ln, err := s.listen(dir, endpointSpec{
		path: "/introspect", clientID: introspectClientID, realm: "introspection",
		secretFile: "introspection-client-secret",
	})
	if err != nil {
		return nil, err
	}
	if _, err := rand.Read(s.key); err != nil {
		ln.Close()
		return nil, err
	}
	// The claims of mintToken, as an RFC 7662 answer. The tokens outlive any
	// run (ws-1m included), like the JWTs.
	now := time.Now()
	s.active, err = json.Marshal(map[string]any{
		"active":     true,
		"iss":        s.issuer,
		"sub":        "user-7f3c9a2e-4b1d-4c8e-9f6a-1d2e3f4a5b6c",
		"client_id":  "mcp-client-0a1b2c3d",
		"scope":      "mcp:tools mcp:resources openid profile",
		"aud":        resourceURI,
		"exp":        now.Add(3 * time.Hour).Unix(),
		"iat":        now.Unix(),
		"token_type": "Bearer",
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/introspect", s.introspect)
	s.serve(ln, mux)
	return s, nil
}

// mint returns a new opaque token that the endpoint will call active.
func (s *introspectionServer) mint() string {
	var b [opaqueNonceBytes + opaqueTagBytes]byte
	_, _ = rand.Read(b[:opaqueNonceBytes]) // never fails (crypto/rand)
	m := hmac.New(sha256.New, s.key)
	m.Write(b[:opaqueNonceBytes])
	copy(b[opaqueNonceBytes:], m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// issued reports whether tok is one of the endpoint's tokens.
func (s *introspectionServer) issued(tok string) bool {
	if len(tok) != opaqueTokenLen {
		return false
	}
	var b [opaqueNonceBytes + opaqueTagBytes]byte
	if n, err := base64.RawURLEncoding.Decode(b[:], []byte(tok)); err != nil || n != len(b) {
		return false
	}
	m := hmac.New(sha256.New, s.key)
	m.Write(b[:opaqueNonceBytes])
	return hmac.Equal(m.Sum(nil)[:opaqueTagBytes], b[opaqueNonceBytes:])
}

var inactiveBody = []byte(`{"active":false}`)

// introspect is the RFC 7662 §2 endpoint: POST, form-encoded token, the
// client authenticated with HTTP Basic (localEndpoint.accept).
func (s *introspectionServer) introspect(w http.ResponseWriter, r *http.Request) {
	if !s.accept(w, r) {
		return
	}
	if r.PostForm.Get("token") == "" {
		s.refuse(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	if !s.issued(r.PostForm.Get("token")) {
		s.inactive.Add(1)
		writeJSON(w, http.StatusOK, inactiveBody)
		return
	}
	writeJSON(w, http.StatusOK, s.active)
}

// introspectionTimeout is the gateway's introspection.timeout for a given
// service delay: the default 300ms, or more when the delay would come close
// to it, so that a deliberately slow endpoint measures latency, not
// timeouts.
func introspectionTimeout(delay time.Duration) time.Duration {
	return min(10*time.Second, max(300*time.Millisecond, 2*delay+100*time.Millisecond))
}

// introspectionConfig is the authorization server entry of the
// introspection scenarios, indented for extauthzConfig's list.
func (s *introspectionServer) config() string {
	var b strings.Builder
	fmt.Fprintf(&b, "      - issuer: %q\n", s.issuer)
	fmt.Fprintf(&b, "        token_mode: introspection\n")
	fmt.Fprintf(&b, "        introspection:\n")
	fmt.Fprintf(&b, "          endpoint: %q\n", s.endpoint)
	fmt.Fprintf(&b, "          client_id: %s\n", introspectClientID)
	fmt.Fprintf(&b, "          auth_method: client_secret_basic\n")
	fmt.Fprintf(&b, "          client_secret: {file: %q}\n", s.secretFile)
	fmt.Fprintf(&b, "          timeout: %s\n", introspectionTimeout(s.delay))
	fmt.Fprintf(&b, "          cache_ttl: 60s\n")
	return b.String()
}

// opaqueSet mints n opaque tokens and builds their requests on every core.
func opaqueSet(ctx context.Context, s *introspectionServer, n int) (*tokenSet, error) {
	return buildSet(ctx, "opaque", n, func(int) (string, error) { return s.mint(), nil })
}
