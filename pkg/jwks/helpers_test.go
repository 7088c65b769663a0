package jwks

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// clockStart is where the tests' clocks (testkit.NewClockAt) start: a fixed
// instant, so that failures reproduce.
var clockStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// response is what the fake JWKS endpoint answers with.
type response struct {
	status       int
	body         []byte
	cacheControl string
}

// jwksServer is a real HTTP server on a loopback port 0 whose answer the
// test swaps at will, and which counts the requests it sees.
type jwksServer struct {
	*httptest.Server
	hits       atomic.Int64
	resp       atomic.Pointer[response]
	lastAccept atomic.Pointer[string]
}

func newJWKSServer(t *testing.T) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.fail(http.StatusServiceUnavailable)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		accept := r.Header.Get("Accept")
		s.lastAccept.Store(&accept)
		resp := s.resp.Load()
		if resp.cacheControl != "" {
			w.Header().Set("Cache-Control", resp.cacheControl)
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(resp.status)
		_, _ = w.Write(resp.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(body []byte) {
	s.resp.Store(&response{status: http.StatusOK, body: body})
}

func (s *jwksServer) fail(status int) {
	s.resp.Store(&response{status: status, body: []byte(`{"error":"down"}`)})
}

func (s *jwksServer) locator() Locator {
	return func(context.Context) (string, error) { return s.URL + "/jwks", nil }
}

// testLogger sends logs to the test's output, shown on failure or -v.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newECKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// jwkJSON serializes raw with jwx and sets the given JWK members
// (kid, alg, use, key_ops...).
func jwkJSON(t testing.TB, raw any, members map[string]any) json.RawMessage {
	t.Helper()
	k, err := jwk.Import(raw)
	if err != nil {
		t.Fatalf("jwk.Import(%T): %v", raw, err)
	}
	for name, v := range members {
		if err := k.Set(name, v); err != nil {
			t.Fatalf("set %s: %v", name, err)
		}
	}
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func kidAlgMembers(kid, alg string) map[string]any {
	m := map[string]any{jwk.KeyIDKey: kid, jwk.KeyUsageKey: "sig"}
	if alg != "" {
		m[jwk.AlgorithmKey] = alg
	}
	return m
}

func setJSON(t testing.TB, keys ...json.RawMessage) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameKey reports whether got is the public key want.
func sameKey(got, want crypto.PublicKey) bool {
	e, ok := got.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(want)
}

// Fetches counts fetch attempts since New, including those whose Locator
// failed; each attempt sends at most one GET.
func (s *Source) Fetches() int64 {
	return s.fetches.Load()
}
