package jwks

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/extauthz/extauthz/internal/testkit"
)

const interval = 10 * time.Second

func newTestSource(t *testing.T, locate Locator, clk *testkit.Clock, opts Options) *Source {
	t.Helper()
	opts.Now = clk.Now
	if opts.UnknownKIDInterval == 0 {
		opts.UnknownKIDInterval = interval
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	return New(locate, opts)
}

func mustKey(t *testing.T, s *Source, kid, alg string, want crypto.PublicKey) {
	t.Helper()
	got, err := s.Key(t.Context(), kid, alg)
	if err != nil {
		t.Fatalf("Key(%q, %q): %v", kid, alg, err)
	}
	if !sameKey(got, want) {
		t.Fatalf("Key(%q, %q) returned a different key (%T)", kid, alg, got)
	}
}

func mustErr(t *testing.T, s *Source, kid, alg string, want error) error {
	t.Helper()
	got, err := s.Key(t.Context(), kid, alg)
	if !errors.Is(err, want) {
		t.Fatalf("Key(%q, %q) = %T, %v; want %v", kid, alg, got, err, want)
	}
	if got != nil {
		t.Fatalf("Key(%q, %q) returned a key with error %v", kid, alg, err)
	}
	return err
}

func wantFetches(t *testing.T, s *Source, srv *jwksServer, n int64) {
	t.Helper()
	if got := s.Fetches(); got != n {
		t.Fatalf("Fetches() = %d, want %d", got, n)
	}
	if srv != nil {
		if got := srv.hits.Load(); got != n {
			t.Fatalf("server saw %d requests, want %d", got, n)
		}
	}
}

func TestRotation(t *testing.T) {
	clk := testkit.NewClockAt(clockStart)
	srv := newJWKSServer(t)
	oldKey := newRSAKey(t)
	newKey := newECKey(t, elliptic.P256())
	srv.serve(setJSON(t, jwkJSON(t, &oldKey.PublicKey, kidAlgMembers("old", "RS256"))))
	s := newTestSource(t, srv.locator(), clk, Options{})

	mustKey(t, s, "old", "RS256", &oldKey.PublicKey)
	wantFetches(t, s, srv, 1)

	// The issuer rotates: only the new key is published now.
	srv.serve(setJSON(t, jwkJSON(t, &newKey.PublicKey, kidAlgMembers("new", "ES256"))))

	// Within the interval the held set is authoritative, and nothing is fetched.
	clk.Advance(interval - time.Nanosecond)
	_ = mustErr(t, s, "new", "ES256", ErrKeyNotFound)
	mustKey(t, s, "old", "RS256", &oldKey.PublicKey)
	wantFetches(t, s, srv, 1)

	// Once the interval has passed, the unknown kid triggers the refetch.
	clk.Advance(time.Nanosecond)
	mustKey(t, s, "new", "ES256", &newKey.PublicKey)
	wantFetches(t, s, srv, 2)

	// The retired key is gone from the current, successfully fetched set.
	_ = mustErr(t, s, "old", "RS256", ErrKeyNotFound)
	wantFetches(t, s, srv, 2)
}

// flood asks for n random kids from 16 goroutines, and for a known kid in
// between, which must keep working throughout.
func flood(t *testing.T, s *Source, n int, knownKID string, known crypto.PublicKey) {
	t.Helper()
	const workers = 16
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				kid := rand.Text()
				if _, err := s.Key(context.Background(), kid, "RS256"); !errors.Is(err, ErrKeyNotFound) {
					errs <- fmt.Errorf("random kid: got %v, want ErrKeyNotFound", err)
					return
				}
				if k, err := s.Key(context.Background(), knownKID, "RS256"); err != nil || !sameKey(k, known) {
					errs <- fmt.Errorf("known kid during flood: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestUnknownKIDFlood(t *testing.T) {
	clk := testkit.NewClockAt(clockStart)
	srv := newJWKSServer(t)
	key := newRSAKey(t)
	srv.serve(setJSON(t, jwkJSON(t, &key.PublicKey, kidAlgMembers("k1", "RS256"))))
	s := newTestSource(t, srv.locator(), clk, Options{})

	// Nothing fetched yet: the first miss fetches, every other caller joins
	// that fetch or finds it began less than an interval ago.
	mustKey(t, s, "k1", "RS256", &key.PublicKey)
	flood(t, s, 1000, "k1", &key.PublicKey)
	wantFetches(t, s, srv, 1)

	// Half an interval later: still no refetch.
	clk.Advance(interval / 2)
	flood(t, s, 1000, "k1", &key.PublicKey)
	wantFetches(t, s, srv, 1)

	// Each further interval allows exactly one refetch, however many misses.
	const n = 5
	for i := range n {
		clk.Advance(interval)
		flood(t, s, 1000, "k1", &key.PublicKey)
		wantFetches(t, s, srv, int64(i)+2)
	}

	// A long quiet period is still worth only one fetch.
	clk.Advance(100 * interval)
	flood(t, s, 1000, "k1", &key.PublicKey)
	wantFetches(t, s, srv, n+2)
}

func TestUnsupportedAlgNeverFetches(t *testing.T) {
	clk := testkit.NewClockAt(clockStart)
	srv := newJWKSServer(t)
	s := newTestSource(t, srv.locator(), clk, Options{})
	for _, alg := range []string{"", "none", "HS256", "rs256", "ES256K", "RSA-OAEP"} {
		_ = mustErr(t, s, "k1", alg, ErrKeyNotFound)
	}
	wantFetches(t, s, srv, 0)
}

func TestEndpointDown(t *testing.T) {
	t.Run("after a good fetch", func(t *testing.T) {
		clk := testkit.NewClockAt(clockStart)
		srv := newJWKSServer(t)
		k1, k2 := newRSAKey(t), newECKey(t, elliptic.P256())
		srv.serve(setJSON(t, jwkJSON(t, &k1.PublicKey, kidAlgMembers("k1", "RS256"))))
		s := newTestSource(t, srv.locator(), clk, Options{})
		mustKey(t, s, "k1", "RS256", &k1.PublicKey)
		fetchedAt := clk.Now()

		srv.fail(http.StatusInternalServerError)
		clk.Advance(interval)
		err := mustErr(t, s, "unknown", "RS256", ErrUnavailable)
		if errors.Is(err, ErrKeyNotFound) {
			t.Fatalf("an unknown kid during an outage must not look invalid: %v", err)
		}
		if !strings.Contains(err.Error(), "500") {
			t.Errorf("error does not say why: %v", err)
		}
		wantFetches(t, s, srv, 2)

		// The last good keys keep serving known kids.
		mustKey(t, s, "k1", "RS256", &k1.PublicKey)
		if !s.Ready() {
			t.Error("Ready() = false while holding the last good keys")
		}
		st := s.Status()
		if st.LastError == nil || st.Keys != 1 || !st.LastSuccess.Equal(fetchedAt) || !st.LastAttempt.Equal(clk.Now()) {
			t.Errorf("Status() = %+v", st)
		}

		// The issuer rotated during the outage; until a fetch succeeds the
		// new kid cannot be told from a bogus one.
		srv.serve(setJSON(t,
			jwkJSON(t, &k1.PublicKey, kidAlgMembers("k1", "RS256")),
			jwkJSON(t, &k2.PublicKey, kidAlgMembers("k2", "ES256"))))
		_ = mustErr(t, s, "k2", "ES256", ErrUnavailable)
		wantFetches(t, s, srv, 2)

		clk.Advance(interval)
		mustKey(t, s, "k2", "ES256", &k2.PublicKey)
		_ = mustErr(t, s, "unknown", "RS256", ErrKeyNotFound)
		if st := s.Status(); st.LastError != nil || st.Keys != 2 || !slices.Equal(st.KeyIDs, []string{"k1", "k2"}) {
			t.Errorf("Status() after recovery = %+v", st)
		}
	})

	t.Run("never fetched", func(t *testing.T) {
		clk := testkit.NewClockAt(clockStart)
		srv := newJWKSServer(t)
		srv.fail(http.StatusInternalServerError)
		s := newTestSource(t, srv.locator(), clk, Options{})
		_ = mustErr(t, s, "k1", "RS256", ErrUnavailable)
		_ = mustErr(t, s, "", "RS256", ErrUnavailable)
		wantFetches(t, s, srv, 1)
		if s.Ready() {
			t.Error("Ready() = true without a key set")
		}
		if st := s.Status(); !st.LastSuccess.IsZero() || st.LastError == nil || st.Keys != 0 {
			t.Errorf("Status() = %+v", st)
		}
	})

	t.Run("locator fails", func(t *testing.T) {
		clk := testkit.NewClockAt(clockStart)
		srv := newJWKSServer(t)
		key := newRSAKey(t)
		srv.serve(setJSON(t, jwkJSON(t, &key.PublicKey, kidAlgMembers("k1", "RS256"))))
		errDiscovery := errors.New("discovery failed")
		var broken bool
		var mu sync.Mutex
		locate := func(ctx context.Context) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			if broken {
				return "", errDiscovery
			}
			return srv.locator()(ctx)
		}
		setBroken := func(b bool) { mu.Lock(); broken = b; mu.Unlock() }
		s := newTestSource(t, locate, clk, Options{})

		setBroken(true)
		err := mustErr(t, s, "k1", "RS256", ErrUnavailable)
		if !errors.Is(err, errDiscovery) {
			t.Errorf("error does not wrap the locator's: %v", err)
		}
		if s.Fetches() != 1 || srv.hits.Load() != 0 {
			t.Errorf("Fetches() = %d, server hits = %d; want 1, 0", s.Fetches(), srv.hits.Load())
		}

		setBroken(false)
		clk.Advance(interval)
		mustKey(t, s, "k1", "RS256", &key.PublicKey)
	})

	t.Run("no usable key keeps the previous set", func(t *testing.T) {
		clk := testkit.NewClockAt(clockStart)
		srv := newJWKSServer(t)
		key := newRSAKey(t)
		encOnly := setJSON(t, jwkJSON(t, &key.PublicKey, map[string]any{jwk.KeyIDKey: "enc", jwk.KeyUsageKey: "enc"}))
		srv.serve(encOnly)
		s := newTestSource(t, srv.locator(), clk, Options{})
		_ = mustErr(t, s, "enc", "RS256", ErrUnavailable)
		if s.Ready() || !errors.Is(s.Status().LastError, errNoUsableKeys) {
			t.Fatalf("a set without usable keys counted as success: Ready=%v Status=%+v", s.Ready(), s.Status())
		}

		srv.serve(setJSON(t, jwkJSON(t, &key.PublicKey, kidAlgMembers("k1", "RS256"))))
		clk.Advance(interval)
		mustKey(t, s, "k1", "RS256", &key.PublicKey)

		srv.serve(encOnly)
		clk.Advance(interval)
		_ = mustErr(t, s, "enc", "RS256", ErrUnavailable)
		mustKey(t, s, "k1", "RS256", &key.PublicKey)
	})
}

// rsa1024JWK is written by hand because jwx refuses to import such a key,
// but an issuer can still publish one.
func rsa1024JWK(t *testing.T, kid string) json.RawMessage {
	t.Helper()
	n := new(big.Int).Lsh(big.NewInt(1), 1023)
	n.Add(n, big.NewInt(0x1f)) // 1024 bits, odd; primality is irrelevant here
	b, err := json.Marshal(map[string]string{
		"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(n.Bytes()),
		"e": "AQAB",
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKeyFiltering(t *testing.T) {
	clk := testkit.NewClockAt(clockStart)
	srv := newJWKSServer(t)
	rsaKey := newRSAKey(t)
	ec256 := newECKey(t, elliptic.P256())
	ec384 := newECKey(t, elliptic.P384())
	ec521 := newECKey(t, elliptic.P521())
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	srv.serve(setJSON(t,
		jwkJSON(t, &rsaKey.PublicKey, map[string]any{jwk.KeyIDKey: "rsa"}),
		jwkJSON(t, &rsaKey.PublicKey, map[string]any{jwk.KeyIDKey: "enc", jwk.KeyUsageKey: "enc"}),
		jwkJSON(t, &rsaKey.PublicKey, map[string]any{jwk.KeyIDKey: "ops-sign", jwk.KeyOpsKey: jwk.KeyOperationList{jwk.KeyOpSign}}),
		jwkJSON(t, &ec256.PublicKey, map[string]any{jwk.KeyIDKey: "ops-verify", jwk.KeyOpsKey: jwk.KeyOperationList{jwk.KeyOpSign, jwk.KeyOpVerify}}),
		jwkJSON(t, &rsaKey.PublicKey, kidAlgMembers("alg-ps256", "PS256")),
		rsa1024JWK(t, "rsa1024"),
		jwkJSON(t, &ec384.PublicKey, kidAlgMembers("p384", "")),
		jwkJSON(t, &ec384.PublicKey, kidAlgMembers("p384-as-es256", "ES256")),
		jwkJSON(t, &ec521.PublicKey, kidAlgMembers("p521", "ES512")),
		jwkJSON(t, edPub, kidAlgMembers("ed", "EdDSA")),
		jwkJSON(t, []byte("0123456789abcdef0123456789abcdef"), kidAlgMembers("oct", "HS256")),
		jwkJSON(t, rsaKey, kidAlgMembers("private", "RS256")),
		json.RawMessage(`{"kty":"RSA","kid":"garbage","n":"!!!","e":"AQAB"}`),
		jwkJSON(t, x25519.PublicKey(), map[string]any{jwk.KeyIDKey: "x25519"}),
	))
	logs := &testkit.LockedBuffer{}
	s := newTestSource(t, srv.locator(), clk, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})

	rsaPub := &rsaKey.PublicKey
	tests := []struct {
		kid, alg string
		want     crypto.PublicKey // nil: ErrKeyNotFound
	}{
		{"rsa", "RS256", rsaPub},
		{"rsa", "RS512", rsaPub},
		{"rsa", "PS384", rsaPub},
		{"rsa", "ES256", nil},
		{"rsa", "EdDSA", nil},
		{"enc", "RS256", nil},
		{"ops-sign", "RS256", nil},
		{"ops-verify", "ES256", &ec256.PublicKey},
		{"alg-ps256", "PS256", rsaPub},
		{"alg-ps256", "RS256", nil},
		{"rsa1024", "RS256", nil},
		{"p384", "ES384", &ec384.PublicKey},
		{"p384", "ES256", nil},
		{"p384", "ES512", nil},
		{"p384-as-es256", "ES256", nil},
		{"p384-as-es256", "ES384", nil},
		{"p521", "ES512", &ec521.PublicKey},
		{"ed", "EdDSA", edPub},
		{"ed", "ES256", nil},
		{"oct", "HS256", nil},
		{"oct", "RS256", nil},
		{"private", "RS256", rsaPub},
		{"garbage", "RS256", nil},
		{"x25519", "EdDSA", nil},
		{"missing", "RS256", nil},
	}
	for _, tc := range tests {
		t.Run(tc.kid+"/"+tc.alg, func(t *testing.T) {
			if tc.want == nil {
				_ = mustErr(t, s, tc.kid, tc.alg, ErrKeyNotFound)
				return
			}
			mustKey(t, s, tc.kid, tc.alg, tc.want)
		})
	}

	t.Run("private material is reduced to the public key", func(t *testing.T) {
		k, err := s.Key(t.Context(), "private", "RS256")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := k.(*rsa.PublicKey); !ok {
			t.Fatalf("got %T, want *rsa.PublicKey", k)
		}
	})

	// rsa, ops-verify, alg-ps256, p384, p521, ed, private.
	if got := s.Status().Keys; got != 7 {
		t.Errorf("Status().Keys = %d, want 7", got)
	}
	// The ids the status page lists: the usable keys', sorted; the
	// skipped ones (enc, oct, garbage, rsa1024, ...) are not there.
	if got, want := s.Status().KeyIDs, []string{"alg-ps256", "ed", "ops-verify", "p384", "p521", "private", "rsa"}; !slices.Equal(got, want) {
		t.Errorf("Status().KeyIDs = %v, want %v", got, want)
	}
	// All misses above were answered from the one fetch: the clock stood still.
	wantFetches(t, s, srv, 1)
	for _, kid := range []string{"garbage", "rsa1024"} {
		if !strings.Contains(logs.String(), "kid="+kid) {
			t.Errorf("skipped key %q was not logged; logs:\n%s", kid, logs)
		}
	}
}

func TestKeyWithoutKID(t *testing.T) {
	clk := testkit.NewClockAt(clockStart)
	rsa1, rsa2 := newRSAKey(t), newRSAKey(t)
	ec := newECKey(t, elliptic.P256())

	t.Run("one candidate per alg", func(t *testing.T) {
		srv := newJWKSServer(t)
		srv.serve(setJSON(t,
			jwkJSON(t, &rsa1.PublicKey, kidAlgMembers("a", "")),
			jwkJSON(t, &ec.PublicKey, map[string]any{}), // no kid at all
		))
		s := newTestSource(t, srv.locator(), clk, Options{})
		mustKey(t, s, "", "RS256", &rsa1.PublicKey)
		mustKey(t, s, "", "PS512", &rsa1.PublicKey)
		mustKey(t, s, "", "ES256", &ec.PublicKey)
		_ = mustErr(t, s, "", "ES384", ErrKeyNotFound)
	})

	t.Run("two candidates", func(t *testing.T) {
		srv := newJWKSServer(t)
		srv.serve(setJSON(t,
			jwkJSON(t, &rsa1.PublicKey, kidAlgMembers("a", "")),
			jwkJSON(t, &rsa2.PublicKey, kidAlgMembers("b", "")),
		))
		s := newTestSource(t, srv.locator(), clk, Options{})
		_ = mustErr(t, s, "", "RS256", ErrKeyNotFound)
		mustKey(t, s, "b", "RS256", &rsa2.PublicKey)
	})

	t.Run("alg decides among candidates", func(t *testing.T) {
		srv := newJWKSServer(t)
		srv.serve(setJSON(t,
			jwkJSON(t, &rsa1.PublicKey, kidAlgMembers("a", "RS256")),
			jwkJSON(t, &rsa2.PublicKey, kidAlgMembers("b", "PS256")),
		))
		s := newTestSource(t, srv.locator(), clk, Options{})
		mustKey(t, s, "", "RS256", &rsa1.PublicKey)
		mustKey(t, s, "", "PS256", &rsa2.PublicKey)
		_ = mustErr(t, s, "", "RS384", ErrKeyNotFound)
	})
}

func TestDuplicateKIDFirstWins(t *testing.T) {
	clk := testkit.NewClockAt(clockStart)
	srv := newJWKSServer(t)
	rsa1, rsa2 := newRSAKey(t), newRSAKey(t)
	ec := newECKey(t, elliptic.P256())
	srv.serve(setJSON(t,
		jwkJSON(t, &rsa1.PublicKey, kidAlgMembers("dup", "")),
		jwkJSON(t, &rsa2.PublicKey, kidAlgMembers("dup", "")),
		jwkJSON(t, &ec.PublicKey, kidAlgMembers("dup", "")),
	))
	s := newTestSource(t, srv.locator(), clk, Options{})
	mustKey(t, s, "dup", "RS256", &rsa1.PublicKey)
	mustKey(t, s, "dup", "ES256", &ec.PublicKey)
}

func TestFetchRules(t *testing.T) {
	key := newRSAKey(t)
	good := setJSON(t, jwkJSON(t, &key.PublicKey, kidAlgMembers("k1", "RS256")))

	t.Run("accept header", func(t *testing.T) {
		srv := newJWKSServer(t)
		srv.serve(good)
		s := newTestSource(t, srv.locator(), testkit.NewClockAt(clockStart), Options{})
		mustKey(t, s, "k1", "RS256", &key.PublicKey)
		if got := *srv.lastAccept.Load(); got != "application/jwk-set+json, application/json" {
			t.Errorf("Accept = %q", got)
		}
	})

	for _, status := range []int{http.StatusCreated, http.StatusNonAuthoritativeInfo, http.StatusNoContent, http.StatusNotModified, http.StatusNotFound, http.StatusServiceUnavailable} {
		t.Run(fmt.Sprintf("status %d", status), func(t *testing.T) {
			srv := newJWKSServer(t)
			srv.resp.Store(&response{status: status, body: good})
			s := newTestSource(t, srv.locator(), testkit.NewClockAt(clockStart), Options{})
			_ = mustErr(t, s, "k1", "RS256", ErrUnavailable)
		})
	}

	t.Run("body cap", func(t *testing.T) {
		srv := newJWKSServer(t)
		srv.serve(good)
		s := newTestSource(t, srv.locator(), testkit.NewClockAt(clockStart), Options{MaxBytes: int64(len(good)) - 1})
		err := mustErr(t, s, "k1", "RS256", ErrUnavailable)
		if !strings.Contains(err.Error(), "exceeds") {
			t.Errorf("error = %v", err)
		}
		s = newTestSource(t, srv.locator(), testkit.NewClockAt(clockStart), Options{MaxBytes: int64(len(good))})
		mustKey(t, s, "k1", "RS256", &key.PublicKey)
	})

	t.Run("not JSON", func(t *testing.T) {
		srv := newJWKSServer(t)
		srv.serve([]byte("<html>login</html>"))
		s := newTestSource(t, srv.locator(), testkit.NewClockAt(clockStart), Options{})
		_ = mustErr(t, s, "k1", "RS256", ErrUnavailable)
	})

	t.Run("redirect to loopback http is followed", func(t *testing.T) {
		target := newJWKSServer(t)
		target.serve(good)
		redirector := httptest.NewServer(http.RedirectHandler(target.URL+"/jwks", http.StatusFound))
		t.Cleanup(redirector.Close)
		s := newTestSource(t, func(context.Context) (string, error) { return redirector.URL, nil }, testkit.NewClockAt(clockStart), Options{})
		mustKey(t, s, "k1", "RS256", &key.PublicKey)
	})

	t.Run("redirect to plain http elsewhere is refused", func(t *testing.T) {
		redirector := httptest.NewServer(http.RedirectHandler("http://jwks.example.invalid/jwks", http.StatusFound))
		t.Cleanup(redirector.Close)
		s := newTestSource(t, func(context.Context) (string, error) { return redirector.URL, nil }, testkit.NewClockAt(clockStart), Options{})
		err := mustErr(t, s, "k1", "RS256", ErrUnavailable)
		if !strings.Contains(err.Error(), "refusing redirect") {
			t.Errorf("error = %v", err)
		}
	})

	t.Run("caller's client keeps the redirect rule", func(t *testing.T) {
		redirector := httptest.NewServer(http.RedirectHandler("http://jwks.example.invalid/jwks", http.StatusFound))
		t.Cleanup(redirector.Close)
		client := &http.Client{}
		s := newTestSource(t, func(context.Context) (string, error) { return redirector.URL, nil }, testkit.NewClockAt(clockStart), Options{HTTPClient: client})
		err := mustErr(t, s, "k1", "RS256", ErrUnavailable)
		if !strings.Contains(err.Error(), "refusing redirect") {
			t.Errorf("error = %v", err)
		}
		if client.CheckRedirect != nil {
			t.Error("the caller's client was modified")
		}
	})
}

func TestCheckRedirect(t *testing.T) {
	req := func(u string) *http.Request {
		r, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	tests := []struct {
		from, to string
		ok       bool
	}{
		{"https://idp.example/jwks", "https://cdn.example/jwks", true},
		{"https://idp.example/jwks", "http://idp.example/jwks", false},
		{"http://127.0.0.1:8080/jwks", "http://127.0.0.1:9090/jwks", true},
		{"http://localhost:8080/jwks", "http://[::1]:9090/jwks", true},
		{"http://localhost:8080/jwks", "https://idp.example/jwks", true},
		{"http://127.0.0.1:8080/jwks", "http://idp.example/jwks", false},
		{"http://idp.internal/jwks", "http://127.0.0.1/jwks", false},
		{"http://idp.internal/jwks", "http://idp.internal/other", false},
		{"https://idp.example/jwks", "ftp://idp.example/jwks", false},
	}
	for _, tc := range tests {
		t.Run(tc.from+"->"+tc.to, func(t *testing.T) {
			err := checkRedirect(req(tc.to), []*http.Request{req(tc.from)})
			if (err == nil) != tc.ok {
				t.Errorf("checkRedirect = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	t.Run("too many", func(t *testing.T) {
		via := make([]*http.Request, maxRedirects)
		for i := range via {
			via[i] = req("https://idp.example/jwks")
		}
		if checkRedirect(req("https://idp.example/jwks"), via) == nil {
			t.Error("redirect loop not stopped")
		}
	})
}

// A caller that gives up must not cancel the fetch others share.
func TestCallerContextBoundsOnlyItsWait(t *testing.T) {
	key := newRSAKey(t)
	good := setJSON(t, jwkJSON(t, &key.PublicKey, kidAlgMembers("k1", "RS256")))
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		_, _ = w.Write(good)
	}))
	t.Cleanup(srv.Close)
	s := newTestSource(t, func(context.Context) (string, error) { return srv.URL, nil }, testkit.NewClockAt(clockStart), Options{})

	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := s.Key(ctx, "k1", "RS256")
		errc <- err
	}()
	<-entered
	cancel()
	err := <-errc
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Key = %v, want ErrUnavailable wrapping context.Canceled", err)
	}

	close(release)
	mustKey(t, s, "k1", "RS256", &key.PublicKey)
	if s.Fetches() != 1 {
		t.Errorf("Fetches() = %d, want 1: the shared fetch was cancelled or repeated", s.Fetches())
	}
}

func TestRefreshInterval(t *testing.T) {
	const lo, hi = 5 * time.Minute, time.Hour
	tests := []struct {
		name   string
		header []string
		want   time.Duration
	}{
		{"absent", nil, hi},
		{"empty", []string{""}, hi},
		{"within bounds", []string{"max-age=600"}, 10 * time.Minute},
		{"below min", []string{"max-age=30"}, lo},
		{"zero", []string{"max-age=0"}, lo},
		{"above max", []string{"max-age=86400"}, hi},
		{"huge", []string{"max-age=99999999999999999999999"}, hi},
		{"with other directives", []string{"public, max-age=900, must-revalidate"}, 15 * time.Minute},
		{"case and spaces", []string{"Public ,  MAX-AGE=900"}, 15 * time.Minute},
		{"quoted", []string{`max-age="900"`}, 15 * time.Minute},
		{"no-store", []string{"max-age=900, no-store"}, lo},
		{"no-cache", []string{"no-cache"}, lo},
		{"qualified no-cache", []string{`no-cache="set-cookie", max-age=900`}, lo},
		{"negative ignored", []string{"max-age=-5"}, hi},
		{"garbage ignored", []string{"max-age=soon"}, hi},
		{"empty value ignored", []string{"max-age="}, hi},
		{"fraction ignored", []string{"max-age=1.5"}, hi},
		{"first max-age wins", []string{"max-age=600, max-age=1200"}, 10 * time.Minute},
		{"malformed then valid", []string{"max-age=x, max-age=1200"}, 20 * time.Minute},
		{"across header lines", []string{"public", "max-age=1200"}, 20 * time.Minute},
		{"s-maxage is for shared caches", []string{"s-maxage=600"}, hi},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := refreshInterval(tc.header, lo, hi); got != tc.want {
				t.Errorf("refreshInterval(%q) = %v, want %v", tc.header, got, tc.want)
			}
		})
	}
}

func FuzzRefreshInterval(f *testing.F) {
	f.Add("max-age=600")
	f.Add(`public, max-age="99999999999999999999", no-cache`)
	f.Fuzz(func(t *testing.T, h string) {
		const lo, hi = time.Minute, time.Hour
		if got := refreshInterval([]string{h}, lo, hi); got < lo || got > hi {
			t.Fatalf("refreshInterval(%q) = %v, outside [%v, %v]", h, got, lo, hi)
		}
	})
}

func TestRunRetriesWithBackoff(t *testing.T) {
	key := newRSAKey(t)
	good := setJSON(t, jwkJSON(t, &key.PublicKey, kidAlgMembers("k1", "RS256")))
	srv := newJWKSServer(t)
	srv.fail(http.StatusInternalServerError)
	s := newTestSource(t, srv.locator(), testkit.NewClockAt(clockStart), Options{MinRefresh: 3 * time.Second})

	// Run's waits are handed to the test one by one instead of elapsing.
	waits := make(chan time.Duration)
	release := make(chan struct{})
	s.wait = func(ctx context.Context, d time.Duration) error {
		select {
		case waits <- d:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		s.Run(ctx)
		close(done)
	}()

	step := func(want time.Duration, fetches int64, ready bool) {
		t.Helper()
		if got := <-waits; got != want {
			t.Fatalf("wait = %v, want %v", got, want)
		}
		wantFetches(t, s, srv, fetches)
		if s.Ready() != ready {
			t.Fatalf("Ready() = %v, want %v", s.Ready(), ready)
		}
	}

	// Failures back off 1s, 2s, then stop at min(MinRefresh, 1m) = 3s.
	step(time.Second, 1, false)
	release <- struct{}{}
	step(2*time.Second, 2, false)
	release <- struct{}{}
	step(3*time.Second, 3, false)
	release <- struct{}{}
	step(3*time.Second, 4, false)

	// Success: the next fetch is scheduled by max-age.
	srv.resp.Store(&response{status: http.StatusOK, body: good, cacheControl: "max-age=600"})
	release <- struct{}{}
	step(10*time.Minute, 5, true)
	mustKey(t, s, "k1", "RS256", &key.PublicKey)

	// A later failure keeps the keys and restarts the backoff from 1s.
	srv.fail(http.StatusBadGateway)
	release <- struct{}{}
	step(time.Second, 6, true)
	mustKey(t, s, "k1", "RS256", &key.PublicKey)

	cancel()
	<-done
}

func TestKeyHitDoesNotAllocate(t *testing.T) {
	srv := newJWKSServer(t)
	rsaKey := newRSAKey(t)
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv.serve(setJSON(t,
		jwkJSON(t, &rsaKey.PublicKey, kidAlgMembers("rsa", "RS256")),
		jwkJSON(t, edPub, kidAlgMembers("ed", "EdDSA")),
	))
	s := newTestSource(t, srv.locator(), testkit.NewClockAt(clockStart), Options{})
	ctx := t.Context()
	for _, tc := range []struct{ kid, alg string }{{"rsa", "RS256"}, {"ed", "EdDSA"}, {"", "EdDSA"}} {
		allocs := testing.AllocsPerRun(100, func() {
			if k, err := s.Key(ctx, tc.kid, tc.alg); err != nil || k == nil {
				t.Fatalf("Key(%q, %q): %v", tc.kid, tc.alg, err)
			}
		})
		if allocs != 0 {
			t.Errorf("Key(%q, %q) allocates %v times per hit", tc.kid, tc.alg, allocs)
		}
	}
}

func BenchmarkKeyHit(b *testing.B) {
	key := newRSAKey(b)
	ec := newECKey(b, elliptic.P256())
	body := setJSON(b,
		jwkJSON(b, &key.PublicKey, kidAlgMembers("rsa", "RS256")),
		jwkJSON(b, &ec.PublicKey, kidAlgMembers("ec", "ES256")),
	)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) }))
	b.Cleanup(ts.Close)
	s := New(func(context.Context) (string, error) { return ts.URL, nil }, Options{})
	ctx := context.Background()
	if _, err := s.Key(ctx, "rsa", "RS256"); err != nil {
		b.Fatal(err)
	}

	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Key(ctx, "ec", "ES256"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Key(ctx, "rsa", "RS256"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
