package dpoptest

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// Transport is an http.RoundTripper that sends every request with Authorization: DPoP
// <Token> and a fresh proof signed by Key for the request's method and URL, bound to Token
// by ath. It remembers the last DPoP-Nonce a server sent and puts it in the following proofs;
// a 401 with error="use_dpop_nonce" and a new nonce is retried once with it (RFC 9449 §9),
// when the request's body can be sent again.
type Transport struct {
	Key   *Key
	Token string
	Base  http.RoundTripper // nil: http.DefaultTransport

	mu    sync.Mutex
	nonce string
}

// Nonce is the last DPoP-Nonce the server sent, or "".
func (t *Transport) Nonce() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nonce
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.Key == nil || t.Token == "" {
		return nil, errors.New("dpoptest: Transport needs a Key and a Token")
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	nonce := t.Nonce()
	resp, err := t.send(base, req, nonce)
	if err != nil {
		return nil, err
	}
	fresh := resp.Header.Get("DPoP-Nonce")
	if fresh == "" {
		return resp, nil
	}
	t.mu.Lock()
	t.nonce = fresh
	t.mu.Unlock()
	if resp.StatusCode != http.StatusUnauthorized || fresh == nonce || !useNonce(resp.Header) ||
		(req.Body != nil && req.Body != http.NoBody && req.GetBody == nil) {
		return resp, nil
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	again := req
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil, fmt.Errorf("dpoptest: body for the retry with a nonce: %w", err)
		}
		again = req.Clone(req.Context())
		again.Body = body
	}
	return t.send(base, again, fresh)
}

// send sends a copy of req with the token and a new proof.
func (t *Transport) send(base http.RoundTripper, req *http.Request, nonce string) (*http.Response, error) {
	proof, err := t.Key.Sign(Proof{Method: req.Method, URL: HTU(req.URL), AccessToken: t.Token, Nonce: nonce})
	if err != nil {
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Body = req.Body
	r.Header.Set("Authorization", "DPoP "+t.Token)
	r.Header.Set("DPoP", proof)
	return base.RoundTrip(r)
}

// useNonce reports whether a WWW-Authenticate value asks for a DPoP nonce.
func useNonce(h http.Header) bool {
	for _, v := range h.Values("WWW-Authenticate") {
		if strings.Contains(v, `error="use_dpop_nonce"`) {
			return true
		}
	}
	return false
}
