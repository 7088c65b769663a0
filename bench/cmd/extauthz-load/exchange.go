package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/extauthz/extauthz/pkg/devissuer"
)

// The gateway's client at the local token endpoint, and the upstream it
// asks tokens for (hit-upstream).
const (
	exchangeClientID = "extauthz-gateway"
	upstreamAudience = "https://api.example.com/upstream"
	upstreamScope    = "upstream:read"
	// exchangeTTL is the expires_in (and exp) of every minted token: it
	// outlives any run, so that no measured Check finds its credential
	// due for a refresh.
	exchangeTTL = 3 * time.Hour
)

// RFC 8693 names (§2.1, §3).
const (
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange" //nolint:gosec // a grant type name, not a credential
	tokenTypeAccess    = "urn:ietf:params:oauth:token-type:access_token"   //nolint:gosec // a token type name, not a credential
)

// exchangeServer is the local RFC 8693 token endpoint of hit-upstream (a
// localEndpoint). It checks the gateway's client_secret_basic credentials
// on every call and answers each exchange asking for upstreamAudience
// with an ES256 JWT for that audience, naming the subject token's sub,
// signed by a key it serves as a JWKS. It remembers every token it
// minted, so that an answer of the gateway can be checked to carry one of
// them.
type exchangeServer struct {
	localEndpoint        // endpoint: issuer + "/token"
	jwksURI       string // issuer + "/jwks.json"
	dev           *devissuer.Issuer

	mu     sync.Mutex
	issued map[string]struct{}

	minted   atomic.Int64 // answered with a token
	tokenLen atomic.Int64 // bytes of the last token minted
}

// startExchange serves a new token endpoint and its JWKS on 127.0.0.1:0.
// The client secret is written to dir.
func startExchange(dir string) (*exchangeServer, error) {
	s := &exchangeServer{issued: map[string]struct{}{}}
	ln, err := s.listen(dir, endpointSpec{
		path: "/token", clientID: exchangeClientID, realm: "token",
		secretFile: "exchange-client-secret",
	})
	if err != nil {
		return nil, err
	}
	if s.dev, err = devissuer.New(s.issuer, "ES256", nil); err != nil {
		ln.Close()
		return nil, err
	}
	s.jwksURI = s.dev.JWKSURL()
	mux := http.NewServeMux()
	mux.HandleFunc("/token", s.exchange)
	// Only the development issuer's JWKS: its own token endpoint
	// authenticates nobody and does no exchange.
	mux.Handle("GET "+strings.TrimPrefix(s.jwksURI, s.issuer), s.dev.Handler())
	s.serve(ln, mux)
	return s, nil
}

// exchange is the RFC 8693 §2 token endpoint: POST, form-encoded, the
// client authenticated with HTTP Basic (localEndpoint.accept).
func (s *exchangeServer) exchange(w http.ResponseWriter, r *http.Request) {
	if !s.accept(w, r) {
		return
	}
	f := r.PostForm
	if f.Get("grant_type") != grantTokenExchange {
		s.refuse(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	if f.Get("subject_token_type") != tokenTypeAccess ||
		(f.Has("requested_token_type") && f.Get("requested_token_type") != tokenTypeAccess) {
		s.refuse(w, http.StatusBadRequest, "invalid_request")
		return
	}
	// The gateway verified the subject token before asking; this endpoint
	// only reads whom it names.
	sub, ok := subjectOf(f.Get("subject_token"))
	if !ok {
		s.refuse(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	if aud := f["audience"]; len(aud) != 1 || aud[0] != upstreamAudience {
		s.refuse(w, http.StatusBadRequest, "invalid_target") // RFC 8693 §2.2.2
		return
	}
	tok, err := s.dev.Mint(devissuer.Token{
		Subject:  sub,
		ClientID: exchangeClientID,
		Audience: []string{upstreamAudience},
		Scopes:   strings.Fields(f.Get("scope")),
		TTL:      exchangeTTL,
	})
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, []byte(`{"error":"server_error"}`))
		return
	}
	body, err := json.Marshal(map[string]any{
		"access_token":      tok,
		"token_type":        "Bearer",
		"issued_token_type": tokenTypeAccess,
		"expires_in":        int(exchangeTTL / time.Second),
		"scope":             f.Get("scope"),
	})
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, []byte(`{"error":"server_error"}`))
		return
	}
	s.mu.Lock()
	s.issued[tok] = struct{}{}
	s.mu.Unlock()
	s.minted.Add(1)
	s.tokenLen.Store(int64(len(tok)))
	writeJSON(w, http.StatusOK, body)
}

// subjectOf reads the sub claim of a JWT without verifying it.
func subjectOf(jwt string) (string, bool) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "", false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", false
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(payload, &c) != nil || c.Sub == "" {
		return "", false
	}
	return c.Sub, true
}

// issuedToken reports whether tok is one this endpoint minted.
func (s *exchangeServer) issuedToken(tok string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.issued[tok]
	return ok
}

// config is the upstream_token block of hit-upstream's resource, indented
// for extauthzConfig: everything configured, nothing discovered.
func (s *exchangeServer) config() string {
	var b strings.Builder
	fmt.Fprintf(&b, "    upstream_token:\n")
	fmt.Fprintf(&b, "      mode: exchange\n")
	fmt.Fprintf(&b, "      issuer: %q\n", s.issuer)
	fmt.Fprintf(&b, "      token_endpoint: %q\n", s.endpoint)
	fmt.Fprintf(&b, "      jwks_uri: %q\n", s.jwksURI)
	fmt.Fprintf(&b, "      client_id: %s\n", exchangeClientID)
	fmt.Fprintf(&b, "      auth_method: client_secret_basic\n")
	fmt.Fprintf(&b, "      client_secret: {file: %q}\n", s.secretFile)
	fmt.Fprintf(&b, "      audience: [%q]\n", upstreamAudience)
	fmt.Fprintf(&b, "      scopes: [%q]\n", upstreamScope)
	return b.String()
}

// answerCheck returns the check of hit-upstream's sampled answers: an
// allowed answer that sets exactly one authorization header upstream,
// replacing the request's (OVERWRITE_IF_EXISTS_OR_ADD, and not removed
// after), whose value is "Bearer " and a token this endpoint minted —
// never client, the client's own token. The errors name no token.
func (s *exchangeServer) answerCheck(client string) func(*authv3.CheckResponse) error {
	return func(resp *authv3.CheckResponse) error {
		ok := resp.GetOkResponse()
		if ok == nil {
			return errors.New("upstream credential: the answer has no OkHttpResponse")
		}
		for _, name := range ok.GetHeadersToRemove() {
			if strings.EqualFold(name, "authorization") {
				return errors.New("upstream credential: authorization is in headers_to_remove")
			}
		}
		var vals []*corev3.HeaderValueOption
		for _, h := range ok.GetHeaders() {
			if strings.EqualFold(h.GetHeader().GetKey(), "authorization") {
				vals = append(vals, h)
			}
		}
		if len(vals) != 1 {
			return fmt.Errorf("upstream credential: %d authorization headers set, want 1", len(vals))
		}
		if a := vals[0].GetAppendAction(); a != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			return fmt.Errorf("upstream credential: authorization set with %v, want OVERWRITE_IF_EXISTS_OR_ADD", a)
		}
		tok, bearer := strings.CutPrefix(vals[0].GetHeader().GetValue(), "Bearer ")
		switch {
		case !bearer:
			return errors.New("upstream credential: the authorization header is not Bearer")
		case tok == client:
			return errors.New("upstream credential: the client's own token is sent upstream")
		case !s.issuedToken(tok):
			return errors.New("upstream credential: a Bearer token the token endpoint did not mint")
		}
		return nil
	}
}
