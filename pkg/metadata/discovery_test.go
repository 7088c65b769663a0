package metadata

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestDiscoveryURLs(t *testing.T) {
	for _, tc := range []struct {
		issuer string
		want   []string
	}{
		{"https://as.example.com", []string{
			"https://as.example.com/.well-known/oauth-authorization-server",
			"https://as.example.com/.well-known/openid-configuration",
		}},
		{"https://as.example.com/", []string{
			"https://as.example.com/.well-known/oauth-authorization-server",
			"https://as.example.com/.well-known/openid-configuration",
		}},
		// The order MCP clients use: RFC 8414 inserted, OIDC inserted, OIDC appended.
		{"https://as.example.com/tenant1", []string{
			"https://as.example.com/.well-known/oauth-authorization-server/tenant1",
			"https://as.example.com/.well-known/openid-configuration/tenant1",
			"https://as.example.com/tenant1/.well-known/openid-configuration",
		}},
	} {
		got, err := DiscoveryURLs(tc.issuer)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("DiscoveryURLs(%q) = %q, %v", tc.issuer, got, err)
		}
	}
	if _, err := DiscoveryURLs("as.example.com"); err == nil {
		t.Error("a relative issuer was accepted")
	}
}

// asServer answers metadata only at the paths in docs, recording the
// order of requests. A doc's "issuer" of "" is replaced by the real one.
type asServer struct {
	*httptest.Server
	mu    sync.Mutex
	seen  []string
	docs  map[string]map[string]any
	fails atomic.Int32 // answer 503 to this many more requests
}

func newAS(t *testing.T) *asServer {
	s := &asServer{docs: map[string]map[string]any{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen = append(s.seen, r.URL.Path)
		doc, ok := s.docs[r.URL.Path]
		s.mu.Unlock()
		if s.fails.Add(-1) >= 0 {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		s.fails.Store(0)
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *asServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

func TestDiscoverPathIssuerInOrder(t *testing.T) {
	for _, tc := range []struct {
		name, at string
		tried    []string
	}{
		{"rfc 8414 inserted", "/.well-known/oauth-authorization-server/tenant1", []string{"/.well-known/oauth-authorization-server/tenant1"}},
		{"oidc inserted", "/.well-known/openid-configuration/tenant1", []string{
			"/.well-known/oauth-authorization-server/tenant1", "/.well-known/openid-configuration/tenant1"}},
		{"oidc appended", "/tenant1/.well-known/openid-configuration", []string{
			"/.well-known/oauth-authorization-server/tenant1", "/.well-known/openid-configuration/tenant1",
			"/tenant1/.well-known/openid-configuration"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newAS(t)
			issuer := s.URL + "/tenant1"
			s.docs[tc.at] = map[string]any{"issuer": issuer, "jwks_uri": s.URL + "/keys", "introspection_endpoint": s.URL + "/introspect"}
			md, err := Discover(context.Background(), s.Client(), issuer)
			if err != nil {
				t.Fatal(err)
			}
			if md.JWKSURI != s.URL+"/keys" || md.IntrospectionEndpoint != s.URL+"/introspect" {
				t.Errorf("metadata %+v", md)
			}
			if got := s.requests(); !slices.Equal(got, tc.tried) {
				t.Errorf("requests %q, want %q", got, tc.tried)
			}
		})
	}
}

func TestDiscoverRefusesAnotherIssuer(t *testing.T) {
	s := newAS(t)
	issuer := s.URL + "/tenant1"
	// Each placement names a different issuer than the one configured:
	// the root issuer, a trailing slash, another tenant.
	s.docs["/.well-known/oauth-authorization-server/tenant1"] = map[string]any{"issuer": s.URL, "jwks_uri": s.URL + "/a"}
	s.docs["/.well-known/openid-configuration/tenant1"] = map[string]any{"issuer": issuer + "/", "jwks_uri": s.URL + "/b"}
	s.docs["/tenant1/.well-known/openid-configuration"] = map[string]any{"issuer": s.URL + "/tenant2", "jwks_uri": s.URL + "/c"}
	_, err := Discover(context.Background(), s.Client(), issuer)
	if !errors.Is(err, ErrIssuerMismatch) {
		t.Fatalf("err = %v, want ErrIssuerMismatch", err)
	}
	if n := len(s.requests()); n != 3 {
		t.Errorf("%d requests, want all 3 placements tried", n)
	}
}

func TestSourceRetriesUntilTheServerAnswers(t *testing.T) {
	s := newAS(t)
	s.docs["/.well-known/oauth-authorization-server"] = map[string]any{"issuer": s.URL, "jwks_uri": s.URL + "/keys"}
	s.fails.Store(4) // both URLs of the first two attempts
	// A frozen clock: "less than a second after the failure" holds
	// however slowly the test runs.
	frozen := time.Now()
	src := NewSource(s.URL, SourceOptions{HTTPClient: s.Client(), Now: func() time.Time { return frozen }})
	waits := make(chan time.Duration, 10)
	step := make(chan struct{})
	src.wait = func(ctx context.Context, d time.Duration) error {
		waits <- d
		select {
		case <-step:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if src.Ready() {
		t.Fatal("ready before any discovery")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go src.Run(ctx)

	if d := <-waits; d != time.Second {
		t.Errorf("first retry after %v, want 1s", d)
	}
	if src.Ready() {
		t.Error("ready after a failed discovery")
	}
	// Get does not start another fetch within a second of a failure.
	before := len(s.requests())
	if _, err := src.Get(context.Background()); err == nil {
		t.Error("Get succeeded while the server is down")
	}
	if len(s.requests()) != before {
		t.Error("Get fetched again right after a failure")
	}
	step <- struct{}{}
	if d := <-waits; d != 2*time.Second {
		t.Errorf("second retry after %v, want 2s (doubling)", d)
	}
	step <- struct{}{}
	if d := <-waits; d != time.Hour {
		t.Errorf("after success waits %v, want the 1h refresh", d)
	}
	if !src.Ready() {
		t.Fatal("not ready after a successful discovery")
	}
	md, err := src.Get(context.Background())
	if err != nil || md.JWKSURI != s.URL+"/keys" {
		t.Fatalf("Get = %+v, %v", md, err)
	}

	// A failed refresh keeps the last good document.
	s.fails.Store(2)
	step <- struct{}{}
	if d := <-waits; d != time.Second {
		t.Errorf("failed refresh retried after %v, want 1s", d)
	}
	if md, err := src.Get(context.Background()); err != nil || md.JWKSURI != s.URL+"/keys" {
		t.Errorf("after a failed refresh Get = %+v, %v", md, err)
	}
}

func TestSourceGetFetchesWithoutRun(t *testing.T) {
	s := newAS(t)
	s.docs["/.well-known/openid-configuration"] = map[string]any{"issuer": s.URL, "jwks_uri": s.URL + "/keys"}
	src := NewSource(s.URL, SourceOptions{HTTPClient: s.Client()})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if md, err := src.Get(context.Background()); err != nil || md.JWKSURI != s.URL+"/keys" {
				t.Errorf("Get = %+v, %v", md, err)
			}
		})
	}
	wg.Wait()
	// 20 concurrent callers share one attempt (two URLs).
	if got := s.requests(); len(got) != 2 || !strings.HasSuffix(got[1], "openid-configuration") {
		t.Errorf("requests %q, want one shared attempt", got)
	}
}
