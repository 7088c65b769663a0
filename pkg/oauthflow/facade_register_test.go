package oauthflow_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/cache"
	"github.com/extauthz/extauthz/pkg/oauthflow"
)

var facadeClock = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func facadeKey(seed byte) oauthflow.Key {
	var k oauthflow.Key
	for i := range k {
		k[i] = seed + byte(i)*3
	}
	return k
}

// regEnv is a registration endpoint, its store and clock.
type regEnv struct {
	store *oauthflow.FacadeStore
	reg   *oauthflow.Registration
	clock *testkit.Clock
	event map[string]int
}

func newRegEnv(t *testing.T, so oauthflow.FacadeStoreOptions, ro oauthflow.RegistrationOptions) *regEnv {
	t.Helper()
	e := &regEnv{clock: testkit.NewClockAt(facadeClock), event: map[string]int{}}
	so.Key, so.Now = facadeKey(1), e.clock.Now
	s, err := oauthflow.NewFacadeStore(so)
	if err != nil {
		t.Fatal(err)
	}
	e.store = s
	ro.Store, ro.Now = s, e.clock.Now
	ro.OnEvent = func(ev string) { e.event[ev]++ } // ServeHTTP is called from the test goroutine only
	e.reg, err = oauthflow.NewRegistration(ro)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *regEnv) post(body, contentType, remote string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/oauth/register", strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if remote != "" {
		req.RemoteAddr = remote
	}
	r := httptest.NewRecorder()
	e.reg.ServeHTTP(r, req)
	return r
}

type oauthErr struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func decodeErr(t *testing.T, r *httptest.ResponseRecorder) oauthErr {
	t.Helper()
	var e oauthErr
	if err := json.Unmarshal(r.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body %q: %v", r.Body, err)
	}
	return e
}

// What the MCP TypeScript SDK registers (1.x, 2.x), and what it gets back.
const sdkRegistration = `{
	"redirect_uris": ["http://localhost:6274/oauth/callback"],
	"token_endpoint_auth_method": "none",
	"grant_types": ["authorization_code", "refresh_token"],
	"response_types": ["code"],
	"client_name": "MCP Inspector",
	"client_uri": "https://github.com/modelcontextprotocol/inspector",
	"scope": "mcp:tools"
}`

func TestRegistration(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			so := oauthflow.FacadeStoreOptions{}
			if backend == "redis" {
				srv := redistest.Start(t)
				rc, err := cache.NewRedisClient(cache.RedisClientOptions{URL: "redis://" + srv.Addr(), Timeout: 5 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = rc.Close() })
				so.Redis, so.Timeout = rc, 5*time.Second
			}
			e := newRegEnv(t, so, oauthflow.RegistrationOptions{})
			r := e.post(sdkRegistration, "application/json", "")
			if r.Code != http.StatusCreated || r.Header().Get("Content-Type") != "application/json" ||
				r.Header().Get("Cache-Control") != "no-store" {
				t.Fatalf("HTTP %d %v %s", r.Code, r.Header(), r.Body)
			}
			var got map[string]any
			if err := json.Unmarshal(r.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			id, _ := got["client_id"].(string)
			if len(id) < 22 {
				t.Fatalf("client_id %q: fewer than 128 bits", id)
			}
			delete(got, "client_id")
			want := map[string]any{
				"client_id_issued_at":        float64(facadeClock.Unix()),
				"redirect_uris":              []any{"http://localhost:6274/oauth/callback"},
				"token_endpoint_auth_method": "none",
				"grant_types":                []any{"authorization_code", "refresh_token"},
				"response_types":             []any{"code"},
				"client_name":                "MCP Inspector",
				"client_uri":                 "https://github.com/modelcontextprotocol/inspector",
				"scope":                      "mcp:tools",
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("answer\n got %v\nwant %v", got, want)
			}
			for _, secret := range []string{"client_secret", "registration_access_token"} {
				if strings.Contains(r.Body.String(), secret) {
					t.Errorf("the answer has %s", secret)
				}
			}

			c, found, err := e.store.Client(t.Context(), id)
			if err != nil || !found {
				t.Fatalf("the registered client: %v, %v", found, err)
			}
			if c.ClientName != "MCP Inspector" || !c.RedirectURIAllowed("http://localhost:6274/oauth/callback") ||
				c.RedirectURIAllowed("http://localhost:6275/oauth/callback") || !c.AllowsGrant("refresh_token") || c.MetadataDocument {
				t.Errorf("resolved %+v", c)
			}
			// Another registration of the same metadata is another client.
			r2 := e.post(sdkRegistration, "application/json", "")
			if r2.Code != http.StatusCreated || strings.Contains(r2.Body.String(), id) {
				t.Errorf("second registration: %d %s", r2.Code, r2.Body)
			}
			if e.event["client_registered"] != 2 {
				t.Errorf("events %v", e.event)
			}
		})
	}
}

func TestRegistrationRefusals(t *testing.T) {
	t.Parallel()
	e := newRegEnv(t, oauthflow.FacadeStoreOptions{}, oauthflow.RegistrationOptions{
		PerAddress: &oauthflow.RateLimit{}, Global: &oauthflow.RateLimit{}, // unlimited: this test is about the metadata
	})
	ok := `"redirect_uris":["https://client.example/cb"]`
	cases := []struct {
		name, body, contentType string
		status                  int
		code                    string
	}{
		{"text/plain", `{` + ok + `}`, "text/plain", http.StatusUnsupportedMediaType, "invalid_client_metadata"},
		{"no content type", `{` + ok + `}`, "", http.StatusUnsupportedMediaType, "invalid_client_metadata"},
		{"form", "redirect_uris=https://client.example/cb", "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType, "invalid_client_metadata"},
		{"a body over 16 KiB", `{` + ok + `,"x":"` + strings.Repeat("a", oauthflow.MaxRegistrationBytes) + `"}`, "application/json", http.StatusRequestEntityTooLarge, "invalid_client_metadata"},
		{"not JSON", `redirect_uris`, "application/json", http.StatusBadRequest, "invalid_client_metadata"},
		{"a repeated member", `{` + ok + `,"redirect_uris":["http://evil.example/cb"]}`, "application/json", http.StatusBadRequest, "invalid_client_metadata"},
		{"a confidential client", `{` + ok + `,"token_endpoint_auth_method":"client_secret_post"}`, "application/json", http.StatusBadRequest, "invalid_client_metadata"},
		{"no redirect URI", `{"client_name":"x"}`, "application/json", http.StatusBadRequest, "invalid_redirect_uri"},
		{"plain http", `{"redirect_uris":["http://client.example/cb"]}`, "application/json", http.StatusBadRequest, "invalid_redirect_uri"},
		{"a loopback look-alike", `{"redirect_uris":["http://127.0.0.1.evil.example/cb"]}`, "application/json", http.StatusBadRequest, "invalid_redirect_uri"},
		{"a fragment", `{"redirect_uris":["https://client.example/cb#x"]}`, "application/json", http.StatusBadRequest, "invalid_redirect_uri"},
		{"a wildcard", `{"redirect_uris":["https://client.example/*"]}`, "application/json", http.StatusBadRequest, "invalid_redirect_uri"},
		{"javascript", `{"redirect_uris":["javascript://client.example/%0aalert(1)"]}`, "application/json", http.StatusBadRequest, "invalid_redirect_uri"},
		{"implicit", `{` + ok + `,"response_types":["token"]}`, "application/json", http.StatusBadRequest, "invalid_client_metadata"},
		{"client_credentials", `{` + ok + `,"grant_types":["client_credentials"]}`, "application/json", http.StatusBadRequest, "invalid_client_metadata"},
		{"a bidi override in the name", `{` + ok + `,"client_name":"Bank \u202Eevil"}`, "application/json", http.StatusBadRequest, "invalid_client_metadata"},
		{"client_uri over http", `{` + ok + `,"client_uri":"http://client.example"}`, "application/json", http.StatusBadRequest, "invalid_client_metadata"},
	}
	for _, c := range cases {
		r := e.post(c.body, c.contentType, "")
		if r.Code != c.status {
			t.Errorf("%s: HTTP %d, want %d (%s)", c.name, r.Code, c.status, r.Body)
			continue
		}
		if got := decodeErr(t, r); got.Error != c.code {
			t.Errorf("%s: error %q, want %q", c.name, got.Error, c.code)
		}
	}
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		r := httptest.NewRecorder()
		e.reg.ServeHTTP(r, httptest.NewRequest(m, "/oauth/register", strings.NewReader(`{`+ok+`}`)))
		if r.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s: HTTP %d", m, r.Code)
		}
	}
	r := httptest.NewRecorder()
	pre := httptest.NewRequest(http.MethodOptions, "/oauth/register", nil)
	pre.Header.Set("Origin", "https://inspector.example")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	e.reg.ServeHTTP(r, pre)
	if r.Code != http.StatusNoContent || r.Header().Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(r.Header().Get("Access-Control-Allow-Headers"), "Content-Type") {
		t.Errorf("preflight: %d %v", r.Code, r.Header())
	}
	if e.event["client_registered"] != 0 || e.event["registration_refused"] != len(cases) {
		t.Errorf("events %v, want %d refusals", e.event, len(cases))
	}
}

// A flood from one address is cut at its burst, with Retry-After; another address goes on
// until the global burst; time refills both.
func TestRegistrationRateLimits(t *testing.T) {
	t.Parallel()
	e := newRegEnv(t, oauthflow.FacadeStoreOptions{}, oauthflow.RegistrationOptions{
		PerAddress: &oauthflow.RateLimit{PerSecond: 0.1, Burst: 3},
		Global:     &oauthflow.RateLimit{PerSecond: 1, Burst: 5},
	})
	body := `{"redirect_uris":["https://client.example/cb"]}`
	for i := range 3 {
		if r := e.post(body, "application/json", "198.51.100.7:4000"); r.Code != http.StatusCreated {
			t.Fatalf("registration %d: %d", i, r.Code)
		}
	}
	r := e.post(body, "application/json", "198.51.100.7:4001")
	if r.Code != http.StatusTooManyRequests || r.Header().Get("Retry-After") != "10" || decodeErr(t, r).Error == "" {
		t.Fatalf("fourth from one address: %d Retry-After %q", r.Code, r.Header().Get("Retry-After"))
	}
	// A refused request costs nothing, and the body of an over-limit request is not read:
	// even an invalid one is 429.
	if r := e.post("garbage", "text/plain", "198.51.100.7:4002"); r.Code != http.StatusTooManyRequests {
		t.Errorf("an invalid request over the limit: %d", r.Code)
	}
	// The same /64 is the same subscriber; IPv4-mapped is IPv4.
	for i, addr := range []string{"[2001:db8:1:2::1]:1", "[2001:db8:1:2::ffff]:1"} {
		if r := e.post(body, "application/json", addr); r.Code != http.StatusCreated {
			t.Fatalf("IPv6 %d: %d", i, r.Code)
		}
	}
	// Five registered: the global burst is spent.
	if r := e.post(body, "application/json", "[2001:db8:9::1]:1"); r.Code != http.StatusTooManyRequests || r.Header().Get("Retry-After") != "1" {
		t.Fatalf("over the global burst: %d Retry-After %q", r.Code, r.Header().Get("Retry-After"))
	}
	e.clock.Advance(time.Second)
	if r := e.post(body, "application/json", "[2001:db8:9::1]:1"); r.Code != http.StatusCreated {
		t.Fatalf("a second later: %d", r.Code)
	}
	if r := e.post(body, "application/json", "[::ffff:198.51.100.7]:1"); r.Code != http.StatusTooManyRequests {
		t.Errorf("the limited IPv4 address as IPv4-mapped IPv6: %d", r.Code)
	}
	e.clock.Advance(10 * time.Second)
	if r := e.post(body, "application/json", "198.51.100.7:4000"); r.Code != http.StatusCreated {
		t.Errorf("ten seconds later: %d", r.Code)
	}
	if e.event["registration_limited"] != 4 {
		t.Errorf("events %v", e.event)
	}

	// Behind a proxy: ClientAddress reads the address it forwards.
	fwd := newRegEnv(t, oauthflow.FacadeStoreOptions{}, oauthflow.RegistrationOptions{
		PerAddress:    &oauthflow.RateLimit{PerSecond: 0.1, Burst: 1},
		ClientAddress: func(r *http.Request) string { return oauthflow.AddressKey(r.Header.Get("X-Test-Client")) },
	})
	for i, client := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.1"} {
		req := httptest.NewRequest(http.MethodPost, "/oauth/register", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Test-Client", client)
		r := httptest.NewRecorder()
		fwd.reg.ServeHTTP(r, req)
		if want := []int{201, 201, 429}[i]; r.Code != want {
			t.Errorf("forwarded client %d (%s): %d, want %d", i, client, r.Code, want)
		}
	}
}

// Registration closes at MaxClients, with 503 and Retry-After, and the refused attempts
// store nothing.
func TestRegistrationMaxClients(t *testing.T) {
	t.Parallel()
	e := newRegEnv(t, oauthflow.FacadeStoreOptions{MaxClients: 2}, oauthflow.RegistrationOptions{
		PerAddress: &oauthflow.RateLimit{}, Global: &oauthflow.RateLimit{},
	})
	body := `{"redirect_uris":["https://client.example/cb"]}`
	for range 2 {
		if r := e.post(body, "application/json", ""); r.Code != http.StatusCreated {
			t.Fatal(r.Code)
		}
	}
	r := e.post(body, "application/json", "")
	if r.Code != http.StatusServiceUnavailable || r.Header().Get("Retry-After") == "" || decodeErr(t, r).Error != "temporarily_unavailable" {
		t.Fatalf("over MaxClients: %d %v %s", r.Code, r.Header(), r.Body)
	}
	e.clock.Advance(oauthflow.DefaultClientTTL)
	if r := e.post(body, "application/json", ""); r.Code != http.StatusCreated {
		t.Fatalf("after the clients expired: %d", r.Code)
	}
}

func TestRegistrationOptions(t *testing.T) {
	t.Parallel()
	if _, err := oauthflow.NewRegistration(oauthflow.RegistrationOptions{}); err == nil {
		t.Error("a registration without a store")
	}
	s, err := oauthflow.NewFacadeStore(oauthflow.FacadeStoreOptions{Key: facadeKey(1)})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []oauthflow.RateLimit{{PerSecond: -1, Burst: 1}, {PerSecond: 1, Burst: 0}} {
		if _, err := oauthflow.NewRegistration(oauthflow.RegistrationOptions{Store: s, Global: &l}); err == nil {
			t.Errorf("rate limit %+v accepted", l)
		}
	}
}

func TestAddressKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"192.0.2.1":            "192.0.2.1",
		"::ffff:192.0.2.1":     "192.0.2.1",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2::1%eth0": "2001:db8:1:2::/64",
		"fe80::1":              "fe80::/64",
		"not an address":       "not an address",
	} {
		if got := oauthflow.AddressKey(in); got != want {
			t.Errorf("AddressKey(%q) = %q, want %q", in, got, want)
		}
	}
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	req.RemoteAddr = "[2001:db8::7]:" + strconv.Itoa(443)
	if got := oauthflow.RemoteAddressKey(req); got != "2001:db8::/64" {
		t.Errorf("RemoteAddressKey = %q", got)
	}
}
