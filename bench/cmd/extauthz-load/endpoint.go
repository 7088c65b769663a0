package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// localEndpoint is what the harness's local authorization server
// endpoints share — the introspection endpoint of the introspection
// scenarios and the token endpoint of hit-upstream: an HTTP server on a
// loopback port, in this process, for as long as the harness runs; the
// gateway's client there, with a client_secret_basic secret written to a
// file for the gateway to read; the checks every request passes before
// the endpoint's own; and the counts of calls and refusals.
type localEndpoint struct {
	issuer     string // http://127.0.0.1:PORT
	endpoint   string // issuer + the endpoint's path
	clientID   string
	realm      string // of the Basic challenge that refuses a client
	secret     string
	secretFile string // where the gateway reads the secret from (0600)
	srv        *http.Server

	calls   atomic.Int64 // every request to the endpoint
	refused atomic.Int64 // bad client credentials or a bad request
	conns   atomic.Int64 // TCP connections accepted
}

// endpointSpec names one local endpoint.
type endpointSpec struct {
	path       string // the endpoint's, below the issuer
	clientID   string // the gateway's client
	realm      string // of the Basic challenge
	secretFile string // the secret's file name in the harness's directory
}

// listen opens 127.0.0.1:0 for the endpoint and writes a new client
// secret to dir. The caller then serves the listener, or closes it if it
// fails first.
func (e *localEndpoint) listen(dir string, spec endpointSpec) (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e.issuer = "http://" + ln.Addr().String()
	e.endpoint = e.issuer + spec.path
	e.clientID, e.realm = spec.clientID, spec.realm
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		ln.Close()
		return nil, err
	}
	e.secret = hex.EncodeToString(secret)
	e.secretFile = filepath.Join(dir, spec.secretFile)
	if err := os.WriteFile(e.secretFile, []byte(e.secret+"\n"), 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// serve serves h on ln until close, counting the connections accepted.
func (e *localEndpoint) serve(ln net.Listener, h http.Handler) {
	e.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				e.conns.Add(1)
			}
		}}
	go func() { _ = e.srv.Serve(ln) }()
}

func (e *localEndpoint) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if e.srv.Shutdown(ctx) != nil {
		_ = e.srv.Close()
	}
}

// accept counts a call and reads its form: a POST, form-encoded (at most
// 64 KiB), the gateway's client authenticated with HTTP Basic. Anything
// else it refuses, counts and answers; the endpoint then stops there.
func (e *localEndpoint) accept(w http.ResponseWriter, r *http.Request) bool {
	e.calls.Add(1)
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		e.refused.Add(1)
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return false
	}
	if !e.authenticated(r) {
		e.refuse(w, http.StatusUnauthorized, "invalid_client")
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		e.refuse(w, http.StatusBadRequest, "invalid_request")
		return false
	}
	return true
}

// refuse answers an OAuth error (RFC 6749 §5.2) and counts it.
func (e *localEndpoint) refuse(w http.ResponseWriter, code int, oauthErr string) {
	e.refused.Add(1)
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="`+e.realm+`"`)
	}
	writeJSON(w, code, []byte(`{"error":"`+oauthErr+`"}`))
}

// authenticated checks client_secret_basic: RFC 6749 §2.3.1 has both
// parts form-encoded before base64.
func (e *localEndpoint) authenticated(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	id, err1 := url.QueryUnescape(user)
	secret, err2 := url.QueryUnescape(pass)
	if err1 != nil || err2 != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(id), []byte(e.clientID)) == 1 &&
		subtle.ConstantTimeCompare([]byte(secret), []byte(e.secret)) == 1
}

func writeJSON(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}
