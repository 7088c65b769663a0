// Package ssftest is a Shared Signals transmitter for tests (OpenID SSF 1.0): it holds an
// ES256 and an RS256 key, serves its configuration document
// (/.well-known/ssf-configuration), its key set and an RFC 8936 polling endpoint on an
// httptest server on a loopback port, signs Security Event Tokens (RFC 8417) — and every kind
// of bad one a receiver must refuse: another key, another audience, a replayed jti, another
// typ, alg none or HS256, duplicate members — and delivers them: pushed as RFC 8935 says,
// returning the receiver's answer, or queued for a receiver's polls, recording its
// acknowledgements and refusals.
//
// It writes its JWS by hand rather than through a JOSE library, so that a test can make any
// SET it likes, including the malformed ones no library would sign. It is test support only:
// nothing outside _test.go files should import it.
package ssftest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ContentType is the media type of a pushed SET (RFC 8935 §2.1).
const ContentType = "application/secevent+jwt"

// Key is a transmitter's signing key.
type Key struct {
	// Kid is the key's id in the key set and in the SETs it signs.
	Kid    string
	alg    string
	signer crypto.Signer
	public map[string]string
}

// NewKey generates a key for alg, ES256 (P-256) or RS256 (RSA 2048), with kid.
func NewKey(alg, kid string) (*Key, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	switch alg {
	case "ES256":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		point, err := k.PublicKey.Bytes() // 0x04 ‖ x ‖ y (RFC 7518 §6.2.1.2)
		if err != nil {
			return nil, err
		}
		return &Key{Kid: kid, alg: alg, signer: k, public: map[string]string{
			"kty": "EC", "crv": "P-256", "x": b64(point[1:33]), "y": b64(point[33:]), "kid": kid, "alg": alg, "use": "sig",
		}}, nil
	case "RS256":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		return &Key{Kid: kid, alg: alg, signer: k, public: map[string]string{
			"kty": "RSA", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes()), "kid": kid, "alg": alg, "use": "sig",
		}}, nil
	}
	return nil, fmt.Errorf("ssftest: unsupported algorithm %q", alg)
}

// Alg is the key's JWS algorithm.
func (k *Key) Alg() string { return k.alg }

// Public is the key's public key.
func (k *Key) Public() crypto.PublicKey { return k.signer.Public() }

// sign signs input as the key's algorithm says (RFC 7518 §3.3, §3.4).
func (k *Key) sign(input []byte) ([]byte, error) {
	sum := sha256.Sum256(input)
	switch s := k.signer.(type) {
	case *ecdsa.PrivateKey:
		r, ss, err := ecdsa.Sign(rand.Reader, s, sum[:])
		if err != nil {
			return nil, err
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		ss.FillBytes(out[32:])
		return out, nil
	case *rsa.PrivateKey:
		return rsa.SignPKCS1v15(rand.Reader, s, crypto.SHA256, sum[:])
	}
	return nil, fmt.Errorf("ssftest: unsupported key %T", k.signer)
}

// Options configure a Transmitter.
type Options struct {
	// Path is the issuer's path after the server's URL ("" or "/tenant1").
	Path string
	// Audience is the aud of its SETs: the receiver's audience.
	Audience string
	// Now is the clock of iat (nil: time.Now).
	Now func() time.Time
	// JWKSURI replaces the jwks_uri of the configuration document ("" is the server's own
	// key set).
	JWKSURI string
	// DocumentIssuer replaces the issuer the configuration document names ("" is Issuer):
	// a document a receiver must not trust.
	DocumentIssuer string
	// PollToken, when set, is the bearer token its polling endpoint requires.
	PollToken string
}

// Transmitter is a test SET transmitter on an httptest server.
type Transmitter struct {
	// Issuer is the iss of its SETs: the server's URL plus Options.Path.
	Issuer string
	// Audience is the aud of its SETs.
	Audience string
	// ES256 and RS256 are the keys its key set publishes.
	ES256, RS256 *Key
	// Rogue is an ES256 key the key set does not publish, with ES256's kid: a SET it signs
	// claims a published key but its signature does not verify.
	Rogue *Key
	// Server serves the configuration document and the key set.
	Server *httptest.Server

	now      func() time.Time
	jwksURI  string
	fetches  atomic.Int64
	jtiCount atomic.Int64
	extra    atomic.Pointer[[]*Key] // published after ES256 and RS256

	pollMu    sync.Mutex
	queue     []queued            // SETs to deliver by poll, in order
	acks      []string            // jtis acknowledged, in order
	setErrs   map[string]SETError // refusals received, by jti
	pollCount int                 // polls answered 200
}

// queued is a SET waiting in the polling queue, under its jti.
type queued struct{ jti, set string }

// SETError is a receiver's refusal of one polled SET (RFC 8936 §2.2).
type SETError struct {
	Err         string `json:"err"`
	Description string `json:"description"`
}

// New starts a transmitter; its server is closed when the test ends.
func New(tb testing.TB, o Options) *Transmitter {
	tb.Helper()
	t := &Transmitter{Audience: o.Audience, now: o.Now}
	if t.now == nil {
		t.now = time.Now
	}
	var err error
	if t.ES256, err = NewKey("ES256", "es-1"); err != nil {
		tb.Fatal(err)
	}
	if t.RS256, err = NewKey("RS256", "rs-1"); err != nil {
		tb.Fatal(err)
	}
	if t.Rogue, err = NewKey("ES256", "es-1"); err != nil {
		tb.Fatal(err)
	}
	mux := http.NewServeMux()
	t.Server = httptest.NewServer(mux)
	tb.Cleanup(t.Server.Close)
	t.Issuer = t.Server.URL + o.Path
	t.jwksURI = o.JWKSURI
	if t.jwksURI == "" {
		t.jwksURI = t.Server.URL + "/jwks"
	}
	docIssuer := o.DocumentIssuer
	if docIssuer == "" {
		docIssuer = t.Issuer
	}
	mux.HandleFunc("GET /.well-known/ssf-configuration"+o.Path, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{
			"spec_version":               "1_0",
			"issuer":                     docIssuer,
			"jwks_uri":                   t.jwksURI,
			"delivery_methods_supported": []string{"urn:ietf:rfc:8935"},
		})
	})
	mux.HandleFunc("POST /poll", func(w http.ResponseWriter, r *http.Request) {
		if o.PollToken != "" && r.Header.Get("Authorization") != "Bearer "+o.PollToken {
			w.Header().Set("WWW-Authenticate", "Bearer")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		t.servePoll(w, r)
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		t.fetches.Add(1)
		keys := []map[string]string{t.ES256.public, t.RS256.public}
		if extra := t.extra.Load(); extra != nil {
			for _, k := range *extra {
				keys = append(keys, k.public)
			}
		}
		writeJSON(w, map[string]any{"keys": keys})
	})
	return t
}

// servePoll answers one poll (RFC 8936 §2.2, §2.3): it records the acknowledgements and
// refusals, drops those SETs from the queue, and returns up to maxEvents of the others —
// every SET not answered yet is delivered again.
func (t *Transmitter) servePoll(w http.ResponseWriter, r *http.Request) {
	var req struct {
		MaxEvents         *int                `json:"maxEvents"`
		ReturnImmediately bool                `json:"returnImmediately"`
		Ack               []string            `json:"ack"`
		SetErrs           map[string]SETError `json:"setErrs"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || r.Header.Get("Content-Type") != "application/json" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"err":"invalid_request","description":"not a poll request"}`)
		return
	}
	t.pollMu.Lock()
	defer t.pollMu.Unlock()
	answered := map[string]bool{}
	for _, jti := range req.Ack {
		t.acks = append(t.acks, jti)
		answered[jti] = true
	}
	for jti, e := range req.SetErrs {
		if t.setErrs == nil {
			t.setErrs = map[string]SETError{}
		}
		t.setErrs[jti] = e
		answered[jti] = true
	}
	var rest []queued
	for _, q := range t.queue {
		if !answered[q.jti] {
			rest = append(rest, q)
		}
	}
	t.queue = rest
	maxEvents := len(rest)
	if req.MaxEvents != nil {
		maxEvents = min(*req.MaxEvents, maxEvents)
	}
	sets := map[string]string{}
	for _, q := range rest[:maxEvents] {
		sets[q.jti] = q.set
	}
	t.pollCount++
	writeJSON(w, map[string]any{"sets": sets, "moreAvailable": maxEvents < len(rest)})
}

// PollEndpoint is the transmitter's polling endpoint.
func (t *Transmitter) PollEndpoint() string { return t.Server.URL + "/poll" }

// Queue adds SETs to the polling queue, each under its own jti.
func (t *Transmitter) Queue(tb testing.TB, sets ...string) {
	tb.Helper()
	for _, s := range sets {
		parts := strings.Split(s, ".")
		var c struct {
			JTI string `json:"jti"`
		}
		b, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil || json.Unmarshal(b, &c) != nil {
			tb.Fatalf("ssftest: no jti in %q", s)
		}
		t.QueueAs(c.JTI, s)
	}
}

// QueueAs adds a SET to the polling queue under jti, which may not be its own.
func (t *Transmitter) QueueAs(jti, set string) {
	t.pollMu.Lock()
	defer t.pollMu.Unlock()
	t.queue = append(t.queue, queued{jti, set})
}

// Acks are the jtis receivers acknowledged by poll, in order.
func (t *Transmitter) Acks() []string {
	t.pollMu.Lock()
	defer t.pollMu.Unlock()
	return append([]string(nil), t.acks...)
}

// SETErrs are the refusals receivers sent by poll, by jti.
func (t *Transmitter) SETErrs() map[string]SETError {
	t.pollMu.Lock()
	defer t.pollMu.Unlock()
	out := map[string]SETError{}
	for k, v := range t.setErrs {
		out[k] = v
	}
	return out
}

// Polls is how many polls were answered 200.
func (t *Transmitter) Polls() int {
	t.pollMu.Lock()
	defer t.pollMu.Unlock()
	return t.pollCount
}

// Publish adds k to the key set it serves from now on: a rotation.
func (t *Transmitter) Publish(k *Key) {
	for {
		old := t.extra.Load()
		var next []*Key
		if old != nil {
			next = append(next, *old...)
		}
		next = append(next, k)
		if t.extra.CompareAndSwap(old, &next) {
			return
		}
	}
}

// ConfigurationURL is where the transmitter's configuration document is served.
func (t *Transmitter) ConfigurationURL() string {
	return t.Server.URL + "/.well-known/ssf-configuration" + strings.TrimPrefix(t.Issuer, t.Server.URL)
}

// JWKSURI is the transmitter's key set.
func (t *Transmitter) JWKSURI() string { return t.Server.URL + "/jwks" }

// KeyFetches is how many times its key set was fetched.
func (t *Transmitter) KeyFetches() int64 { return t.fetches.Load() }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// SET describes one Security Event Token. The zero value of every field but Event gives a
// good SET: iss the transmitter, aud its audience, iat now, a fresh jti, typ secevent+jwt,
// signed ES256 with the published key. The other fields make bad ones.
type SET struct {
	// Event is the event type URI; Payload its event object (nil: {}).
	Event   string
	Payload map[string]any
	// Subject, if set, is the sub_id claim (SSF 1.0): see IssSub, Email, Opaque, Complex.
	Subject map[string]any

	// Key signs it (nil: ES256). Rogue makes a signature that does not verify.
	Key *Key
	// JTI is jti (empty: a fresh one). Sending the same jti twice is a replay.
	JTI string
	// IssuedAt is iat (zero: now).
	IssuedAt time.Time
	// Audience replaces aud (a string or a list).
	Audience any
	// Typ replaces the typ header member.
	Typ string
	// Alg replaces the alg header member and chooses the signature: "none" sends an empty
	// one, "HS256" an HMAC-SHA256 keyed with the key's public JWK JSON (the classic
	// algorithm confusion), anything else the key's own signature.
	Alg string
	// Header and Claims add members to the JWS header and the claims, or replace members
	// already there.
	Header, Claims map[string]any
	// Omit names header members and claims to leave out ("iat", "jti", "typ", "aud"…).
	Omit []string
}

// IssSub is an iss_sub subject identifier (RFC 9493).
func IssSub(iss, sub string) map[string]any {
	return map[string]any{"format": "iss_sub", "iss": iss, "sub": sub}
}

// Email is an email subject identifier (RFC 9493).
func Email(email string) map[string]any { return map[string]any{"format": "email", "email": email} }

// Opaque is an opaque subject identifier (RFC 9493).
func Opaque(id string) map[string]any { return map[string]any{"format": "opaque", "id": id} }

// Complex is a complex subject (SSF 1.0) of a user and a session, either of which
// may be nil.
func Complex(user, session map[string]any) map[string]any {
	m := map[string]any{"format": "complex"}
	if user != nil {
		m["user"] = user
	}
	if session != nil {
		m["session"] = session
	}
	return m
}

// Sign makes the SET s describes.
func (t *Transmitter) Sign(tb testing.TB, s SET) string {
	tb.Helper()
	header, claims := t.Parts(s)
	h, err := json.Marshal(header)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	return t.SignRaw(tb, s, h, c)
}

// Parts are the header and claims s describes, before they are encoded.
func (t *Transmitter) Parts(s SET) (header, claims map[string]any) {
	k := s.Key
	if k == nil {
		k = t.ES256
	}
	alg := k.alg
	if s.Alg != "" {
		alg = s.Alg
	}
	header = map[string]any{"alg": alg, "kid": k.Kid, "typ": "secevent+jwt"}
	if s.Typ != "" {
		header["typ"] = s.Typ
	}
	iat := s.IssuedAt
	if iat.IsZero() {
		iat = t.now()
	}
	jti := s.JTI
	if jti == "" {
		jti = t.NewJTI()
	}
	payload := s.Payload
	if payload == nil {
		payload = map[string]any{}
	}
	claims = map[string]any{
		"iss":    t.Issuer,
		"aud":    t.Audience,
		"iat":    iat.Unix(),
		"jti":    jti,
		"events": map[string]any{s.Event: payload},
	}
	if s.Audience != nil {
		claims["aud"] = s.Audience
	}
	if s.Subject != nil {
		claims["sub_id"] = s.Subject
	}
	for n, v := range s.Header {
		header[n] = v
	}
	for n, v := range s.Claims {
		claims[n] = v
	}
	for _, n := range s.Omit {
		delete(header, n)
		delete(claims, n)
	}
	return header, claims
}

// SignRaw signs a header and claims given as bytes (say with a member written twice), with
// s's Key and Alg.
func (t *Transmitter) SignRaw(tb testing.TB, s SET, header, claims []byte) string {
	tb.Helper()
	k := s.Key
	if k == nil {
		k = t.ES256
	}
	b64 := base64.RawURLEncoding.EncodeToString
	input := b64(header) + "." + b64(claims)
	switch s.Alg {
	case "none":
		return input + "."
	case "HS256":
		pub, _ := json.Marshal(k.public)
		m := hmac.New(sha256.New, pub)
		m.Write([]byte(input))
		return input + "." + b64(m.Sum(nil))
	}
	sig, err := k.sign([]byte(input))
	if err != nil {
		tb.Fatal(err)
	}
	return input + "." + b64(sig)
}

// NewJTI is a fresh jti.
func (t *Transmitter) NewJTI() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("set-%d-%s", t.jtiCount.Add(1), base64.RawURLEncoding.EncodeToString(b[:]))
}

// PushOptions change how a SET is pushed.
type PushOptions struct {
	// Token, if set, is sent as Authorization: Bearer.
	Token string
	// ContentType replaces application/secevent+jwt.
	ContentType string
}

// Response is a receiver's answer to a push: its status, headers and, for a refusal, the
// RFC 8935 §2.3 error.
type Response struct {
	Status      int
	Header      http.Header
	Body        []byte
	Err         string
	Description string
}

// Push sends set to url as RFC 8935 §2.1 says (POST, Content-Type
// application/secevent+jwt, Accept application/json) and reads the answer.
func Push(tb testing.TB, url, set string, p PushOptions) Response {
	tb.Helper()
	req, err := http.NewRequestWithContext(tb.Context(), http.MethodPost, url, bytes.NewReader([]byte(set)))
	if err != nil {
		tb.Fatal(err)
	}
	ct := ContentType
	if p.ContentType != "" {
		ct = p.ContentType
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Accept", "application/json")
	if p.Token != "" {
		req.Header.Set("Authorization", "Bearer "+p.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	out := Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		var e struct {
			Err         string `json:"err"`
			Description string `json:"description"`
		}
		if err := json.Unmarshal(body, &e); err != nil {
			tb.Fatalf("ssftest: the receiver's error body is not JSON: %q", body)
		}
		out.Err, out.Description = e.Err, e.Description
	}
	return out
}
