package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/extauthz/extauthz/pkg/ssf"
)

// ssfAudience is the aud of the transmitter's SETs: the audience the
// gateways' ssf section names, as a stream is configured at a transmitter.
const ssfAudience = "https://mcp.example.com/ssf"

// setContentType is the media type of a pushed SET (RFC 8935 §2.1).
const setContentType = "application/secevent+jwt"

// transmitter is the revocation scenario's Shared Signals transmitter
// (OpenID SSF 1.0): one ES256 key, its configuration document
// (/.well-known/ssf-configuration) and key set served over http on a
// loopback port, and CAEP session-revoked Security Event Tokens (RFC 8417)
// signed with that key and pushed as RFC 8935 says. The gateways discover
// its key set from the document, as they would a real transmitter's.
type transmitter struct {
	issuer string
	key    *ecdsa.PrivateKey
	header string // the JWS protected header, base64url: alg, kid, typ
	srv    *httptest.Server
	client *http.Client

	jtiPrefix string
	jtiNext   atomic.Uint64
	// The gateways' fetches of the document and of the key set.
	docFetches, keyFetches atomic.Int64
}

// transmitterKID is the kid of the transmitter's one key.
const transmitterKID = "load-es256"

// startTransmitter serves a new transmitter on a loopback httptest server.
func startTransmitter() (*transmitter, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	pt, err := key.PublicKey.Bytes() // 0x04 || X || Y (RFC 7518 §6.2.1.2)
	if err != nil {
		return nil, err
	}
	hdr, err := json.Marshal(map[string]string{"alg": "ES256", "kid": transmitterKID, "typ": "secevent+jwt"})
	if err != nil {
		return nil, err
	}
	var prefix [6]byte
	if _, err := rand.Read(prefix[:]); err != nil {
		return nil, err
	}
	t := &transmitter{key: key, header: b64url(hdr), jtiPrefix: b64url(prefix[:]),
		client: &http.Client{Timeout: 10 * time.Second}}
	jwks, err := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "x": b64url(pt[1:33]), "y": b64url(pt[33:65]),
		"kid": transmitterKID, "alg": "ES256", "use": "sig",
	}}})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	t.srv = httptest.NewServer(mux)
	t.issuer = t.srv.URL
	doc, err := json.Marshal(map[string]any{
		"spec_version":               "1_0",
		"issuer":                     t.issuer,
		"jwks_uri":                   t.issuer + "/jwks",
		"delivery_methods_supported": []string{"urn:ietf:rfc:8935"},
	})
	if err != nil {
		t.srv.Close()
		return nil, err
	}
	serve := func(n *atomic.Int64, body []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			n.Add(1)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		}
	}
	// The issuer has no path: the document is at the well-known path itself.
	mux.HandleFunc("GET /.well-known/ssf-configuration", serve(&t.docFetches, doc))
	mux.HandleFunc("GET /jwks", serve(&t.keyFetches, jwks))
	return t, nil
}

func (t *transmitter) close() { t.srv.Close() }

// config is the ssf section of a gateway that trusts the transmitter to
// revoke the tokens of tokenIssuer.
func (t *transmitter) config(tokenIssuer string) string {
	return fmt.Sprintf("ssf:\n  audience: %q\n  transmitters:\n    - {issuer: %q, token_issuer: %q, algorithms: [ES256]}\n",
		ssfAudience, t.issuer, tokenIssuer)
}

// set signs a SET of one event about subject (an RFC 9493 subject
// identifier, the SSF 1.0 sub_id claim), issued at now, with a jti no
// other SET of this transmitter has.
func (t *transmitter) set(event string, subject map[string]any, payload map[string]any, now time.Time) (string, error) {
	if payload == nil {
		payload = map[string]any{}
	}
	claims := map[string]any{
		"iss":    t.issuer,
		"aud":    ssfAudience,
		"iat":    now.Unix(),
		"jti":    fmt.Sprintf("%s-%d", t.jtiPrefix, t.jtiNext.Add(1)),
		"events": map[string]any{event: payload},
	}
	if subject != nil {
		claims["sub_id"] = subject
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	input := t.header + "." + b64url(c)
	sig, err := signES256(t.key, []byte(input))
	if err != nil {
		return "", err
	}
	return input + "." + b64url(sig[:]), nil
}

// sessionRevoked is a CAEP session-revoked SET for the session sid: a
// complex subject whose session is the opaque id sid (SSF 1.0 §3), which
// the gateway compares with its tokens' sid claim; event_timestamp is now.
func (t *transmitter) sessionRevoked(sid string, now time.Time) (string, error) {
	return t.set(ssf.EventSessionRevoked,
		map[string]any{"format": "complex", "session": map[string]any{"format": "opaque", "id": sid}},
		map[string]any{"event_timestamp": now.Unix()}, now)
}

// verification is an SSF verification SET: acknowledged, revoking nothing.
func (t *transmitter) verification(now time.Time) (string, error) {
	return t.set(ssf.EventVerification, nil, nil, now)
}

// push sends a SET to a receiver's push endpoint as RFC 8935 §2.1 says
// (POST, Content-Type application/secevent+jwt, Accept application/json)
// and returns its status, with the body of a refusal for the report.
func (t *transmitter) push(ctx context.Context, url, set string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte(set)))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", setContentType)
	req.Header.Set("Accept", "application/json")
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return resp.StatusCode, "", err
	}
	return resp.StatusCode, string(body), nil
}
