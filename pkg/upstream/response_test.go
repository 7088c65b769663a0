package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extauthz/extauthz/pkg/upstream"
)

// fixed answers every call with the same status and body.
func fixed(status int, body string) answer {
	return func(int64, url.Values) (int, http.Header, string) { return status, nil, body }
}

// TestUnusableAnswers: a 200 that does not give a Bearer access token the
// gateway can put in a header is no credential: 503, a loud log, and
// nothing cached (the next request asks again).
func TestUnusableAnswers(t *testing.T) {
	const at = `"issued_token_type":"urn:ietf:params:oauth:token-type:access_token"`
	cases := []struct{ name, body string }{
		{"token_type N_A", `{"access_token":"UNUSABLE-t0ken","token_type":"N_A",` + at + `,"expires_in":60}`},
		{"token_type DPoP", `{"access_token":"UNUSABLE-t0ken","token_type":"DPoP",` + at + `,"expires_in":60}`},
		{"no token_type", `{"access_token":"UNUSABLE-t0ken",` + at + `,"expires_in":60}`},
		{"issued a JWT, not an access token", `{"access_token":"UNUSABLE-t0ken","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:jwt","expires_in":60}`},
		{"issued an ID token", `{"access_token":"UNUSABLE-t0ken","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:id_token","expires_in":60}`},
		{"issued a refresh token", `{"access_token":"UNUSABLE-t0ken","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:refresh_token","expires_in":60}`},
		{"no issued_token_type", `{"access_token":"UNUSABLE-t0ken","token_type":"Bearer","expires_in":60}`},
		{"no access_token", `{"token_type":"Bearer",` + at + `,"expires_in":60}`},
		{"empty access_token", `{"access_token":"","token_type":"Bearer",` + at + `,"expires_in":60}`},
		{"access_token is a number", `{"access_token":12,"token_type":"Bearer",` + at + `,"expires_in":60}`},
		{"header injection", `{"access_token":"UNUSABLE-t0ken\r\nX-Admin: 1","token_type":"Bearer",` + at + `,"expires_in":60}`},
		{"space in the token", `{"access_token":"UNUSABLE a b","token_type":"Bearer",` + at + `,"expires_in":60}`},
		{"expires_in as a word", `{"access_token":"UNUSABLE-t0ken","token_type":"Bearer",` + at + `,"expires_in":"soon"}`},
		{"expires_in negative", `{"access_token":"UNUSABLE-t0ken","token_type":"Bearer",` + at + `,"expires_in":-1}`},
		{"expires_in zero", `{"access_token":"UNUSABLE-t0ken","token_type":"Bearer",` + at + `,"expires_in":0}`},
		{"expires_in fractional", `{"access_token":"UNUSABLE-t0ken","token_type":"Bearer",` + at + `,"expires_in":1.5}`},
		{"not JSON", `<html>hello</html>`},
		{"a JSON array", `[{"access_token":"UNUSABLE-t0ken"}]`},
		{"empty", ``},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.as.reply(fixed(http.StatusOK, tc.body))
			m := e.minter(e.localStore(), nil)
			s := e.subject("alice", time.Hour)
			for i := range 2 {
				if c, err := m.Token(context.Background(), s); !isUnavailable(err) {
					t.Fatalf("Token %d = %+v, %v; want ErrUnavailable", i, c, err)
				}
			}
			if n := e.as.calls.Load(); n != 2 {
				t.Fatalf("token endpoint called %d times; want 2 (nothing cached)", n)
			}
			if !strings.Contains(e.logs.String(), `"level":"ERROR"`) {
				t.Fatalf("no loud log:\n%s", e.logs.String())
			}
		})
	}
}

// TestUsableAnswers: what a Bearer access token may look like.
func TestUsableAnswers(t *testing.T) {
	const at = `"issued_token_type":"urn:ietf:params:oauth:token-type:access_token"`
	cases := []struct{ name, mode, body, token string }{
		{"bearer in lower case", upstream.ModeExchange, `{"access_token":"t0k~+/=","token_type":"bearer",` + at + `,"expires_in":60}`, "t0k~+/="},
		{"BEARER", upstream.ModeExchange, `{"access_token":"t","token_type":"BEARER",` + at + `}`, "t"},
		{"expires_in as a numeric string", upstream.ModeExchange, `{"access_token":"t","token_type":"Bearer",` + at + `,"expires_in":"60"}`, "t"},
		{"extra members", upstream.ModeExchange, `{"access_token":"t","token_type":"Bearer",` + at + `,"scope":"x","refresh_token":"r"}`, "t"},
		{"client credentials without issued_token_type", upstream.ModeClientCredentials, `{"access_token":"t","token_type":"Bearer","expires_in":60}`, "t"},
		{"five segments (a JWE) are opaque", upstream.ModeExchange, `{"access_token":"a.b.c.d.e","token_type":"Bearer",` + at + `}`, "a.b.c.d.e"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.as.reply(fixed(http.StatusOK, tc.body))
			m := e.minter(e.localStore(), func(o *upstream.Options) { o.Mode = tc.mode })
			if c := mustToken(t, m, e.subject("alice", time.Hour)); c.Token != tc.token {
				t.Fatalf("Token = %q; want %q", c.Token, tc.token)
			}
		})
	}
}

// TestRefusals: the server's definitive refusals are ErrRefused, naming
// the code (never the server's text), and are cached for RefusalTTL.
func TestRefusals(t *testing.T) {
	codes := []string{"invalid_grant", "invalid_target", "unauthorized_client", "invalid_scope", "access_denied", "invalid_request"}
	for _, status := range []int{400, 401, 403} {
		for _, code := range codes {
			t.Run(code+"/"+http.StatusText(status), func(t *testing.T) {
				e := newEnv(t)
				e.as.reply(fixed(status, `{"error":"`+code+`","error_description":"SERVER-TEXT for alice"}`))
				m := e.minter(e.localStore(), func(o *upstream.Options) { o.RefusalTTL = 10 * time.Second })
				s := e.subject("alice", time.Hour)
				_, err := m.Token(context.Background(), s)
				if !errors.Is(err, upstream.ErrRefused) || errors.Is(err, upstream.ErrUnavailable) {
					t.Fatalf("Token = %v; want ErrRefused", err)
				}
				if !strings.Contains(err.Error(), code) || strings.Contains(err.Error(), "SERVER-TEXT") {
					t.Fatalf("error %q: want the code, not the server's text", err)
				}
				if logs := e.logs.String(); !strings.Contains(logs, code) || strings.Contains(logs, "SERVER-TEXT") {
					t.Fatalf("log: want the code, not the server's text:\n%s", logs)
				}
				e.clock.Advance(10*time.Second - time.Millisecond)
				if _, err2 := m.Token(context.Background(), s); err2 != err || e.as.calls.Load() != 1 {
					t.Fatalf("second Token = %v after %d calls; want the cached refusal", err2, e.as.calls.Load())
				}
				e.clock.Advance(time.Millisecond)
				e.as.reply(nil)
				if c := mustToken(t, m, s); c.Source != upstream.SourceMinted || e.as.calls.Load() != 2 {
					t.Fatalf("after RefusalTTL: %+v, %d calls; want a new mint", c, e.as.calls.Load())
				}
			})
		}
	}
}

// TestGatewayRefused: a refusal of the gateway's own client, or of a
// request it should not have made, is for an operator to fix: 503, a
// loud log naming the configuration, nothing cached.
func TestGatewayRefused(t *testing.T) {
	cases := []struct {
		name, mode string
		status     int
		body, log  string
	}{
		{"invalid_client", upstream.ModeExchange, 401, `{"error":"invalid_client"}`, "check upstream_token client credentials"},
		{"invalid_request without a subject", upstream.ModeClientCredentials, 400, `{"error":"invalid_request"}`, "check upstream_token client credentials"},
		{"unsupported_grant_type", upstream.ModeExchange, 400, `{"error":"unsupported_grant_type"}`, "check upstream_token"},
		{"no error code", upstream.ModeExchange, 403, `forbidden`, "check upstream_token"},
		{"an error code outside the grammar", upstream.ModeExchange, 400, `{"error":"invalid_grant\"\n"}`, "check upstream_token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.as.reply(fixed(tc.status, tc.body))
			m := e.minter(e.localStore(), func(o *upstream.Options) { o.Mode = tc.mode })
			s := e.subject("alice", time.Hour)
			for range 2 {
				if _, err := m.Token(context.Background(), s); !isUnavailable(err) {
					t.Fatalf("Token = %v; want ErrUnavailable", err)
				}
			}
			if n := e.as.calls.Load(); n != 2 {
				t.Fatalf("%d calls; want 2 (nothing cached)", n)
			}
			if logs := e.logs.String(); !strings.Contains(logs, tc.log) || !strings.Contains(logs, `"level":"ERROR"`) {
				t.Fatalf("log lacks %q at error level:\n%s", tc.log, logs)
			}
		})
	}
}

// TestTransientFailures: overload and outages are ErrUnavailable, with the
// server's Retry-After (429 and 503 only) bounded to 1s..60s, else 5s;
// and are never cached.
func TestTransientFailures(t *testing.T) {
	// HTTP dates have whole seconds.
	now := time.Now().Truncate(time.Second)
	cases := []struct {
		name   string
		status int
		header http.Header
		want   time.Duration
	}{
		{"500", 500, nil, 5 * time.Second},
		{"502", 502, nil, 5 * time.Second},
		{"500 with Retry-After is not trusted", 500, http.Header{"Retry-After": {"7"}}, 5 * time.Second},
		{"503 Retry-After 7", 503, http.Header{"Retry-After": {"7"}}, 7 * time.Second},
		{"503 without Retry-After", 503, nil, 5 * time.Second},
		{"429 Retry-After 120", 429, http.Header{"Retry-After": {"120"}}, time.Minute},
		{"429 Retry-After huge", 429, http.Header{"Retry-After": {"99999999999999999999"}}, time.Minute},
		{"429 Retry-After 0", 429, http.Header{"Retry-After": {"0"}}, time.Second},
		{"429 Retry-After garbage", 429, http.Header{"Retry-After": {"soon"}}, 5 * time.Second},
		{"503 Retry-After date", 503, http.Header{"Retry-After": {now.Add(20 * time.Second).UTC().Format(http.TimeFormat)}}, 20 * time.Second},
		{"503 Retry-After past date", 503, http.Header{"Retry-After": {now.Add(-time.Hour).UTC().Format(http.TimeFormat)}}, time.Second},
		{"a redirect", 307, http.Header{"Location": {"http://127.0.0.1:1/token"}}, 5 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.as.reply(func(int64, url.Values) (int, http.Header, string) { return tc.status, tc.header, `{}` })
			m := e.minter(e.localStore(), func(o *upstream.Options) { o.Now = func() time.Time { return now } })
			s := upstream.Subject{Raw: "t", Hash: hashOf("t"), Expiry: now.Add(time.Hour)}
			for range 2 {
				_, err := m.Token(context.Background(), s)
				if !isUnavailable(err) {
					t.Fatalf("Token = %v; want ErrUnavailable", err)
				}
				if got := upstream.RetryAfter(err); got != tc.want {
					t.Fatalf("RetryAfter = %v; want %v", got, tc.want)
				}
				// Also as a caller finds it through its own wrapping.
				var ra interface{ RetryAfter() time.Duration }
				if !errors.As(fmt.Errorf("%w: %w", errors.New("callers' own"), err), &ra) || ra.RetryAfter() != tc.want {
					t.Fatalf("the error's RetryAfter method: %v; want %v", ra, tc.want)
				}
			}
			if n := e.as.calls.Load(); n != 2 {
				t.Fatalf("%d calls; want 2 (nothing cached)", n)
			}
		})
	}
}

// TestRedirectNotFollowed: a redirect would resend the incoming token and
// the gateway's credentials wherever it points.
func TestRedirectNotFollowed(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		status, _, body := tokenAnswer("stolen", 60)
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(other.Close)
	for _, status := range []int{301, 302, 303, 307, 308} {
		e := newEnv(t)
		e.as.reply(func(int64, url.Values) (int, http.Header, string) {
			return status, http.Header{"Location": {other.URL + "/token"}}, ``
		})
		m := e.minter(e.localStore(), nil)
		if _, err := m.Token(context.Background(), e.subject("alice", time.Hour)); !isUnavailable(err) {
			t.Fatalf("%d: Token = %v; want ErrUnavailable", status, err)
		}
	}
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("the redirect was followed %d times", n)
	}
}

func TestLargeAnswer(t *testing.T) {
	e := newEnv(t)
	pad := strings.Repeat("x", 64<<10)
	e.as.reply(fixed(http.StatusOK, `{"access_token":"t","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","pad":"`+pad+`"}`))
	m := e.minter(e.localStore(), nil)
	if _, err := m.Token(context.Background(), e.subject("alice", time.Hour)); !isUnavailable(err) {
		t.Fatalf("Token = %v; want ErrUnavailable", err)
	}
}

func TestEndpointDown(t *testing.T) {
	e := newEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there any more
	m := e.minter(e.localStore(), func(o *upstream.Options) {
		o.TokenEndpoint = func(context.Context) (string, error) { return "http://" + addr + "/token", nil }
	})
	_, err = m.Token(context.Background(), e.subject("alice", time.Hour))
	if !isUnavailable(err) || upstream.RetryAfter(err) != 5*time.Second {
		t.Fatalf("Token = %v (retry after %v); want ErrUnavailable, 5s", err, upstream.RetryAfter(err))
	}
	// An endpoint that cannot be discovered now.
	m = e.minter(e.localStore(), func(o *upstream.Options) {
		o.TokenEndpoint = func(context.Context) (string, error) { return "", errors.New("metadata unreachable") }
	})
	if _, err := m.Token(context.Background(), e.subject("alice", time.Hour)); !isUnavailable(err) {
		t.Fatalf("Token = %v; want ErrUnavailable", err)
	}
}

// TestEndpointTimeout: a server that does not answer within Timeout is
// ErrUnavailable, and the next request tries again.
func TestEndpointTimeout(t *testing.T) {
	e := newEnv(t)
	e.as.holdAnswers(t)
	m := e.minter(e.localStore(), func(o *upstream.Options) { o.Timeout = 50 * time.Millisecond })
	s := e.subject("alice", time.Hour)
	for range 2 {
		if _, err := m.Token(context.Background(), s); !isUnavailable(err) {
			t.Fatalf("Token = %v; want ErrUnavailable", err)
		}
	}
	if n := e.as.calls.Load(); n != 2 {
		t.Fatalf("%d calls; want 2", n)
	}
}

func TestRetryAfterOfOtherErrors(t *testing.T) {
	for _, err := range []error{nil, upstream.ErrRefused, errors.New("other")} {
		if d := upstream.RetryAfter(err); d != 0 {
			t.Errorf("RetryAfter(%v) = %v; want 0", err, d)
		}
	}
	if d := upstream.RetryAfter(upstream.ErrUnavailable); d != 5*time.Second {
		t.Errorf("RetryAfter(ErrUnavailable) = %v; want 5s", d)
	}
}
