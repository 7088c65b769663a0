package upstream_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/jwks"
	"github.com/extauthz/extauthz/pkg/token"
	"github.com/extauthz/extauthz/pkg/upstream"
)

const (
	issuer       = "https://as.example.com"
	clientID     = "gate:way"
	clientSecret = "s3cr%et+CLIENT-SECRET"
	upstreamAud  = "https://mcp.example.com"
)

// answer is what the token endpoint replies to its nth call (from 1).
type answer func(n int64, form url.Values) (status int, header http.Header, body string)

// tokenAnswer replies with token tok, Bearer, issued as an access token,
// for expiresIn seconds (0: no expires_in).
func tokenAnswer(tok string, expiresIn int) (int, http.Header, string) {
	m := map[string]any{
		"access_token":      tok,
		"token_type":        "Bearer",
		"issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
	}
	if expiresIn > 0 {
		m["expires_in"] = expiresIn
	}
	b, _ := json.Marshal(m)
	return http.StatusOK, nil, string(b)
}

// tokenServer is a token endpoint on a loopback port: it records every
// request, answers as the test says (by default a fresh opaque token
// "minted-<n>" for 600s), and can hold its answers until released.
type tokenServer struct {
	*httptest.Server
	calls  atomic.Int64
	answer atomic.Pointer[answer]

	mu      sync.Mutex
	forms   []url.Values
	headers []http.Header
	issued  []string
	hold    chan struct{} // non-nil: answers wait until it is closed
	arrived chan int64    // non-nil: each call's number is sent here on arrival
}

func newTokenServer(t testing.TB) *tokenServer {
	t.Helper()
	s := &tokenServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.calls.Add(1)
		if r.Method != http.MethodPost || r.URL.Path != "/token" {
			http.Error(w, "not here", http.StatusNotFound)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.forms = append(s.forms, r.PostForm)
		s.headers = append(s.headers, r.Header.Clone())
		hold, arrived := s.hold, s.arrived
		s.mu.Unlock()
		if arrived != nil {
			arrived <- n
		}
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		a := s.answer.Load()
		var (
			status int
			header http.Header
			body   string
		)
		if a == nil {
			status, header, body = tokenAnswer(fmt.Sprintf("minted-%d", n), 600)
		} else {
			status, header, body = (*a)(n, r.PostForm)
		}
		var m struct {
			AccessToken string `json:"access_token"`
		}
		if json.Unmarshal([]byte(body), &m) == nil && m.AccessToken != "" {
			s.mu.Lock()
			s.issued = append(s.issued, m.AccessToken)
			s.mu.Unlock()
		}
		for k, v := range header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return s
}

// reply sets how the endpoint answers; nil: the default.
func (s *tokenServer) reply(a answer) {
	if a == nil {
		s.answer.Store(nil)
		return
	}
	s.answer.Store(&a)
}

func (s *tokenServer) endpoint(context.Context) (string, error) { return s.URL + "/token", nil }

// form returns the form of the ith call (from 0).
func (s *tokenServer) form(t *testing.T, i int) (url.Values, http.Header) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= len(s.forms) {
		t.Fatalf("the token endpoint had %d calls; want call %d", len(s.forms), i+1)
	}
	return s.forms[i], s.headers[i]
}

// holdAnswers makes calls wait until the returned release is called, and
// reports each arrival on the returned channel.
func (s *tokenServer) holdAnswers(t *testing.T) (arrived <-chan int64, release func()) {
	t.Helper()
	ch := make(chan struct{})
	arr := make(chan int64, 1000)
	s.mu.Lock()
	s.hold, s.arrived = ch, arr
	s.mu.Unlock()
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release)
	return arr, release
}

func (s *tokenServer) issuedTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.issued...)
}

// env is what a test's minters share: a clock, a log, and everything
// secret that must never appear in the log.
type env struct {
	t       *testing.T
	clock   *testkit.Clock
	logs    *testkit.LockedBuffer
	log     *slog.Logger
	as      *tokenServer
	secrets []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, clock: testkit.NewClock(), logs: &testkit.LockedBuffer{}, as: newTokenServer(t)}
	e.log = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.secrets = []string{clientSecret, url.QueryEscape(clientSecret)}
	t.Cleanup(func() {
		logs := e.logs.String()
		for _, s := range append(e.secrets, e.as.issuedTokens()...) {
			if strings.Contains(logs, s) {
				t.Errorf("the log holds a secret or token %q:\n%s", s, logs)
			}
		}
		for _, f := range e.as.forms {
			if a := f.Get("client_assertion"); a != "" && strings.Contains(logs, a) {
				t.Errorf("the log holds a client assertion")
			}
		}
	})
	return e
}

// subject is a verified incoming token expiring in ttl; its text is kept
// as a secret that must never be logged.
func (e *env) subject(name string, ttl time.Duration) upstream.Subject {
	var b [8]byte
	_, _ = rand.Read(b[:])
	raw := "subject-" + name + "-" + hex.EncodeToString(b[:])
	e.secrets = append(e.secrets, raw)
	return upstream.Subject{Raw: raw, Hash: token.CacheHash(raw), Expiry: e.clock.Now().Add(ttl)}
}

// localStore is an in-process store.
func (e *env) localStore() *upstream.Store {
	e.t.Helper()
	s, err := upstream.NewStore(upstream.StoreOptions{Now: e.clock.Now, Logger: e.log})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// testKey is the stores' encryption key.
var testKey = func() []byte {
	k, err := upstream.DeriveKey([]byte("an operator secret of at least thirty-two bytes"))
	if err != nil {
		panic(err)
	}
	return k
}()

// replica is one gateway process's store over the Redis at addr.
type replica struct {
	store  *upstream.Store
	client redis.UniversalClient
	locker *countingLocker
}

// sharedStore is a store over the Redis at addr, with a fleet lock
// (counting its attempts) and following invalidations, as one replica.
func (e *env) sharedStore(addr string, key []byte) *replica {
	e.t.Helper()
	client, err := cache.NewRedisClient(cache.RedisClientOptions{URL: "redis://" + addr, Timeout: time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { client.Close() })
	r := &replica{client: client, locker: &countingLocker{Locker: upstream.NewRedisLocker(client)}}
	r.store, err = upstream.NewStore(upstream.StoreOptions{
		Shared: cache.NewRedis(client, cache.RedisOptions{Timeout: time.Second, Now: e.clock.Now}),
		Locker: r.locker,
		Key:    key,
		Now:    e.clock.Now,
		Logger: e.log,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.store.Run(ctx); close(done) }()
	e.t.Cleanup(func() { cancel(); <-done })
	return r
}

// countingLocker is a Locker that counts the attempts to take a lock.
type countingLocker struct {
	upstream.Locker
	tries atomic.Int64
}

func (l *countingLocker) TryLock(ctx context.Context, key string, ttl time.Duration) (func(), bool, error) {
	l.tries.Add(1)
	return l.Locker.TryLock(ctx, key, ttl)
}

// minter builds a Minter on store with the test defaults (exchange mode,
// client_secret_basic, one audience and scope), changed by mod.
func (e *env) minter(store *upstream.Store, mod func(*upstream.Options)) *upstream.Minter {
	e.t.Helper()
	o := upstream.Options{
		Name:          "files",
		Mode:          upstream.ModeExchange,
		Issuer:        issuer,
		TokenEndpoint: e.as.endpoint,
		ClientID:      clientID,
		ClientSecret:  clientSecret,
		Audience:      []string{upstreamAud},
		Scopes:        []string{"files:read"},
		ExpiryMargin:  30 * time.Second,
		RefreshAhead:  0.2,
		Now:           e.clock.Now,
		Logger:        e.log,
		Store:         store,
	}
	if mod != nil {
		mod(&o)
	}
	m, err := upstream.New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// mustToken is Token that must succeed.
func mustToken(t *testing.T, m *upstream.Minter, s upstream.Subject) upstream.Credential {
	t.Helper()
	c, err := m.Token(context.Background(), s)
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	return c
}

// hashOf is the cache hash of a token's text.
func hashOf(raw string) [32]byte { return token.CacheHash(raw) }

// isUnavailable reports whether err is an ErrUnavailable (and only that).
func isUnavailable(err error) bool {
	return errors.Is(err, upstream.ErrUnavailable) && !errors.Is(err, upstream.ErrRefused)
}

// unusedKeys is a key source that is never asked (its URL serves nothing).
func unusedKeys(t *testing.T) *jwks.Source {
	t.Helper()
	return jwks.New(func(context.Context) (string, error) { return "http://127.0.0.1:1/jwks", nil }, jwks.Options{})
}

// waitFor polls cond until it holds, failing after 20s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startRedis starts a Redis for the test and returns its address.
func startRedis(t *testing.T) string {
	t.Helper()
	return redistest.Start(t).Addr()
}
