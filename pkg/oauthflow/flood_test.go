package oauthflow_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/oauthflow"
	"github.com/extauthz/extauthz/pkg/token"
)

// refuseVerifier verifies nothing: the flood never reaches a callback.
type refuseVerifier struct{}

func (refuseVerifier) Verify(context.Context, string, map[string]struct{}) (*token.Claims, error) {
	return nil, token.ErrMalformed
}

// floodRequests is how many unauthenticated sign-ins the flood starts.
const floodRequests = 20000

// TestLoginFloodRedis: a flood of unauthenticated GET /oauth/login with the longest return
// path accepted stores nothing in the Redis that sessions (and verdicts, and revocations)
// share: no key, no write command, no memory. Each answer still starts a real sign-in (a 302
// to the authorization endpoint and a login-state cookie), and that cookie stays well under
// the 4096 bytes browsers keep for one cookie.
func TestLoginFloodRedis(t *testing.T) {
	srv := redistest.Start(t)
	rc, err := cache.NewRedisClient(cache.RedisClientOptions{URL: "redis://" + srv.Addr(), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rc.Close() })

	md := func(context.Context) (*oauthflow.Metadata, error) {
		return &oauthflow.Metadata{
			Issuer: "https://auth.example.com", AuthorizationEndpoint: "https://auth.example.com/authorize",
			TokenEndpoint: "https://auth.example.com/token", CodeChallengeMethodsSupported: []string{"S256"},
			AuthorizationResponseIssParameterSupported: true,
		}, nil
	}
	h, err := oauthflow.New(oauthflow.Options{
		Clients: map[string]*oauthflow.Client{"mcp": {
			ResourceURI: "https://mcp.example.com/mcp", Issuer: "https://auth.example.com", Metadata: md,
			ClientID: "extauthz-web", ClientSecret: "secret", Scopes: scopes,
		}},
		Route:     route,
		Sessions:  newStore(t, rc, 1),
		Verifier:  refuseVerifier{},
		PublicURL: "https://mcp.example.com",
	})
	if err != nil {
		t.Fatal(err)
	}

	// The longest accepted return path, of a character that JSON with HTML escaping writes as
	// six bytes ("\u003c"): the worst case of a JSON-encoded state.
	rd := "/mcp/" + strings.Repeat("<", oauthflow.MaxReturnPath-len("/mcp/"))
	target := "/oauth/login?" + url.Values{"rd": {rd}}.Encode()
	tooLong := httptest.NewRecorder()
	h.ServeHTTP(tooLong, httptest.NewRequest(http.MethodGet, "/oauth/login?"+url.Values{"rd": {rd + "x"}}.Encode(), nil))
	if tooLong.Code != http.StatusBadRequest {
		t.Fatalf("a return path of %d bytes: HTTP %d, want 400", len(rd)+1, tooLong.Code)
	}

	before := redisFigures(t, srv.Addr())
	var redirects, largest atomic.Int64
	var wg sync.WaitGroup
	const workers = 8
	for w := range workers {
		wg.Go(func() {
			for i := w; i < floodRequests; i += workers {
				r := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodGet, target, nil)
				req.RemoteAddr = "203.0.113.7:" + strconv.Itoa(1024+i%60000) // one client
				h.ServeHTTP(r, req)
				if r.Code != http.StatusFound || !strings.HasPrefix(r.Header().Get("Location"), "https://auth.example.com/authorize?") {
					t.Errorf("request %d: HTTP %d Location %q, want 302 to the authorization endpoint", i, r.Code, r.Header().Get("Location"))
					return
				}
				for _, c := range r.Result().Cookies() {
					if strings.HasPrefix(c.Name, "__Host-extauthz-session-state-") {
						redirects.Add(1)
						if n := int64(len(c.Name) + len(c.Value)); n > largest.Load() {
							largest.Store(n) // a race between workers can only lose a tie
						}
					}
				}
			}
		})
	}
	wg.Wait()
	after := redisFigures(t, srv.Addr())

	t.Logf("%d GET /oauth/login with a %d-byte rd: Redis keys %d -> %d, used_memory %d -> %d bytes (%+d), "+
		"SET calls %d -> %d; login-state cookie name+value at most %d bytes",
		floodRequests, len(rd), before.keys, after.keys, before.usedMemory, after.usedMemory,
		after.usedMemory-before.usedMemory, before.setCalls, after.setCalls, largest.Load())
	if redirects.Load() != floodRequests {
		t.Errorf("%d login-state cookies set, want one per request (%d)", redirects.Load(), floodRequests)
	}
	if after.keys != before.keys {
		t.Errorf("the flood added %d keys to Redis, want none", after.keys-before.keys)
	}
	if after.setCalls != before.setCalls {
		t.Errorf("the flood made %d SET calls to Redis, want none", after.setCalls-before.setCalls)
	}
	// used_memory moves a little with the INFO calls themselves; 20,000 stored states of the
	// old design took about 60 MB.
	if grew := after.usedMemory - before.usedMemory; grew > 1<<20 {
		t.Errorf("Redis used_memory grew by %d bytes during the flood, want (next to) nothing", grew)
	}
	if n := largest.Load(); n > 3072 {
		t.Errorf("a login-state cookie of %d bytes (name and value), want at most 3072 (browsers keep 4096)", n)
	}
}

// redisFigure is what the flood test reads from Redis before and after.
type redisFigure struct {
	keys, usedMemory, setCalls int64
}

func redisFigures(t *testing.T, addr string) redisFigure {
	t.Helper()
	var f redisFigure
	n, err := redistest.Do(addr, "DBSIZE")
	if err != nil {
		t.Fatal(err)
	}
	f.keys = n.(int64)
	f.usedMemory = infoField(t, addr, "memory", "used_memory:")
	f.setCalls = infoField(t, addr, "commandstats", "cmdstat_set:calls=")
	return f
}

// infoField reads the integer after prefix in INFO section; 0 when absent (a command never
// called has no commandstats line).
func infoField(t *testing.T, addr, section, prefix string) int64 {
	t.Helper()
	v, err := redistest.Do(addr, "INFO", section)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(v.(string), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
			num, _, _ := strings.Cut(rest, ",")
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil {
				t.Fatalf("INFO %s: %q", section, line)
			}
			return n
		}
	}
	return 0
}
