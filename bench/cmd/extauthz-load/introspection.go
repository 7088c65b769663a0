package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
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
// introspection scenarios: it runs in this process, on a loopback port,
// for as long as the harness runs. It checks the gateway's
// client_secret_basic credentials on every call and answers active:true,
// with the claims of mintToken, for the tokens it minted, and active:false
// for any other.
type introspectionServer struct {
	issuer     string // http://127.0.0.1:PORT
	endpoint   string // issuer + "/introspect"
	secret     string
	secretFile string // where the gateway reads the secret from (0600)
	delay      time.Duration
	key        []byte // HMAC key of the tokens
	active     []byte // the active:true answer, the same for every token
	srv        *http.Server

	calls    atomic.Int64 // every POST to the endpoint
	inactive atomic.Int64 // answered active:false
	refused  atomic.Int64 // bad client credentials or a bad request
	conns    atomic.Int64 // TCP connections accepted
}

// startIntrospection serves a new introspection endpoint on 127.0.0.1:0
// that waits delay before every answer (a stand-in for the authorization
// server's own work: a database lookup, say). The client secret is written
// to dir.
func startIntrospection(dir string, delay time.Duration) (*introspectionServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &introspectionServer{
		issuer: "http://" + ln.Addr().String(),
		delay:  delay,
		key:    make([]byte, 32),
	}
	s.endpoint = s.issuer + "/introspect"
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		ln.Close()
		return nil, err
	}
	if _, err := rand.Read(s.key); err != nil {
		ln.Close()
		return nil, err
	}
	s.secret = hex.EncodeToString(secret)
	s.secretFile = filepath.Join(dir, "introspection-client-secret")
	if err := os.WriteFile(s.secretFile, []byte(s.secret+"\n"), 0o600); err != nil {
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
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.conns.Add(1)
			}
		}}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *introspectionServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if s.srv.Shutdown(ctx) != nil {
		_ = s.srv.Close()
	}
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
// client authenticated with HTTP Basic (RFC 6749 §2.3.1: both parts
// form-encoded before base64).
func (s *introspectionServer) introspect(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		s.refused.Add(1)
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if !s.authenticated(r) {
		s.refused.Add(1)
		w.Header().Set("WWW-Authenticate", `Basic realm="introspection"`)
		writeJSON(w, http.StatusUnauthorized, []byte(`{"error":"invalid_client"}`))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil || r.PostForm.Get("token") == "" {
		s.refused.Add(1)
		writeJSON(w, http.StatusBadRequest, []byte(`{"error":"invalid_request"}`))
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

func (s *introspectionServer) authenticated(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	id, err1 := url.QueryUnescape(user)
	secret, err2 := url.QueryUnescape(pass)
	if err1 != nil || err2 != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(id), []byte(introspectClientID)) == 1 &&
		subtle.ConstantTimeCompare([]byte(secret), []byte(s.secret)) == 1
}

func writeJSON(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(body)
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
	return buildSet(ctx, "opaque", n, func() (string, error) { return s.mint(), nil })
}
