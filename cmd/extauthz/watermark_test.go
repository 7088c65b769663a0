package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/revocation"
)

// revoke posts body to the replica's POST /revocations with the admin
// token bearer ("" for none).
func (in *instance) revoke(t *testing.T, bearer string, body any) (int, http.Header, revocationResponse, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", "http://"+in.app.lnAdmin.Addr().String()+"/revocations", bytes.NewReader(b))
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw bytes.Buffer
	_, _ = raw.ReadFrom(resp.Body)
	var out revocationResponse
	_ = json.Unmarshal(raw.Bytes(), &out)
	return resp.StatusCode, resp.Header, out, raw.String()
}

// mintFor mints a token of sub with the resource's scope, issued at iat
// (zero: now).
func mintFor(t *testing.T, iss *devissuer.Issuer, sub string, iat time.Time) string {
	t.Helper()
	tok, err := iss.Mint(devissuer.Token{Subject: sub, Scopes: []string{"mcp:tools"}, IssuedAt: iat})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// waitRevocationSubscribers waits until n replicas follow the revocation
// channel.
func waitRevocationSubscribers(t *testing.T, addr string, n int64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d revocation subscribers", n), func() bool {
		reply, err := redistest.Do(addr, "PUBSUB", "NUMSUB", revocation.DefaultChannel)
		arr, ok := reply.([]any)
		return err == nil && ok && len(arr) == 2 && arr[1] == n
	})
}

// revokedAnswer reports whether a Check's answer is the revoked row: 401
// invalid_token, "the access token has been revoked".
func revokedAnswer(status int, challenge string) bool {
	return status == 401 && strings.Contains(challenge, `error="invalid_token"`) && strings.Contains(challenge, "has been revoked")
}

func TestRevocationsAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	iss, _ := startIssuer(t, sharedResource)
	a, b := startInstance(t, srv.Addr(), iss), startInstance(t, srv.Addr(), iss)
	waitRevocationSubscribers(t, srv.Addr(), 2)

	xavier, yolanda := mintFor(t, iss, "xavier", time.Time{}), mintFor(t, iss, "yolanda", time.Time{})
	// Both verified on B, then cached there: the next Checks are hits.
	for _, tok := range []string{xavier, yolanda} {
		for range 2 {
			if st, _ := b.decide(t, tok); st != 200 {
				t.Fatalf("B before the revocation: %d", st)
			}
		}
	}

	t.Run("refused", func(t *testing.T) {
		for name, c := range map[string]struct {
			bearer string
			body   any
			status int
			want   string
		}{
			"no admin token":        {"", map[string]string{"sub": "xavier"}, 401, "admin token"},
			"wrong admin token":     {"nope", map[string]string{"sub": "xavier"}, 401, "admin token"},
			"no selector":           {adminToken, map[string]string{}, 400, "at least one of sub"},
			"only before":           {adminToken, map[string]string{"before": "2026-01-01T00:00:00Z"}, 400, "at least one of sub"},
			"claim without value":   {adminToken, map[string]string{"claim": "email"}, 400, "claim and value"},
			"claim not kept":        {adminToken, map[string]string{"claim": "email", "value": "x@example.com"}, 400, "keep_claims"},
			"before not RFC 3339":   {adminToken, map[string]string{"sub": "xavier", "before": "yesterday"}, 400, "RFC 3339"},
			"before in the future":  {adminToken, map[string]string{"sub": "xavier", "before": time.Now().Add(time.Hour).Format(time.RFC3339)}, 400, "future"},
			"unknown member":        {adminToken, map[string]string{"subject": "xavier"}, 400, "body must be JSON"},
			"a selector over 4 KiB": {adminToken, map[string]string{"sub": strings.Repeat("x", 4097)}, 400, "longer than"},
		} {
			st, _, _, raw := a.revoke(t, c.bearer, c.body)
			if st != c.status || !strings.Contains(raw, c.want) {
				t.Errorf("%s: %d %s; want %d with %q", name, st, raw, c.status, c.want)
			}
		}
		if st, _ := b.decide(t, xavier); st != 200 {
			t.Fatalf("a refused call revoked something: %d", st)
		}
	})

	st, _, res, raw := a.revoke(t, adminToken, map[string]string{"sub": "xavier", "iss": iss.Issuer()})
	if st != 200 || !res.Revoked || !res.Shared || res.Held != "fleet" {
		t.Fatalf("POST /revocations on A: %d %s", st, raw)
	}
	if st, ch := a.decide(t, xavier); !revokedAnswer(st, ch) {
		t.Fatalf("A, once the call returned: %d %s", st, ch)
	}
	waitFor(t, "xavier's cached token refused on B", func() bool { return revokedAnswer(b.decide(t, xavier)) })

	before := b.stats.snapshot()
	if st, _ := b.decide(t, yolanda); st != 200 {
		t.Fatalf("yolanda's cached token on B: %d", st)
	}
	if got := b.stats.snapshot(); got.LocalHits != before.LocalHits+1 {
		t.Fatalf("yolanda's token was not served from B's cache: %+v then %+v", before, got)
	}
	// A token of xavier's issued after the watermark (a second later:
	// iat has whole seconds, and the watermark's own second is refused).
	after := mintFor(t, iss, "xavier", time.Now().Add(2*time.Second))
	for name, in := range map[string]*instance{"A": a, "B": b} {
		if st, _ := in.decide(t, after); st != 200 {
			t.Errorf("%s: xavier's token issued after the watermark: %d", name, st)
		}
	}

	t.Run("a replica started afterwards refuses it", func(t *testing.T) {
		c := startInstance(t, srv.Addr(), iss)
		if st, ch := c.decide(t, xavier); !revokedAnswer(st, ch) {
			t.Fatalf("C: %d %s", st, ch)
		}
		if st, _ := c.decide(t, yolanda); st != 200 {
			t.Fatalf("C, yolanda: %d", st)
		}
	})

	t.Run("the metrics", func(t *testing.T) {
		resp, err := http.Get("http://" + a.app.lnAdmin.Addr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		for _, want := range []string{`extauthz_revocations_total{source="admin"} 1`, "extauthz_revocation_watermarks 1",
			`extauthz_revocation_propagation_delay_seconds_count{source="admin"} 1`, "extauthz_revocation_tokens_refused_total"} {
			if !strings.Contains(body.String(), want) {
				t.Errorf("A's /metrics lacks %s", want)
			}
		}
	})
}

// Without Redis a watermark holds on the replica that received it, which
// says so; with Redis configured and down, it holds there too, and the
// answer is a 503 to retry.
func TestRevocationsHeldHere(t *testing.T) {
	iss, _ := startIssuer(t, sharedResource)

	t.Run("no Redis configured", func(t *testing.T) {
		a := startInstanceCache(t, "", iss)
		tok := mintFor(t, iss, "xavier", time.Time{})
		if st, _ := a.decide(t, tok); st != 200 {
			t.Fatalf("before: %d", st)
		}
		st, _, res, raw := a.revoke(t, adminToken, map[string]string{"sub": "xavier"})
		if st != 200 || res.Shared || res.Held != "replica" || !strings.Contains(res.Note, "no Redis") {
			t.Fatalf("POST /revocations: %d %s", st, raw)
		}
		if st, ch := a.decide(t, tok); !revokedAnswer(st, ch) {
			t.Fatalf("after: %d %s", st, ch)
		}
	})

	t.Run("Redis down", func(t *testing.T) {
		srv := redistest.Start(t)
		a := startInstance(t, srv.Addr(), iss)
		tok := mintFor(t, iss, "xavier", time.Time{})
		if st, _ := a.decide(t, tok); st != 200 {
			t.Fatalf("before: %d", st)
		}
		srv.Stop()
		st, h, res, raw := a.revoke(t, adminToken, map[string]string{"sub": "xavier"})
		if st != 503 || h.Get("Retry-After") == "" || res.Shared || res.Held != "replica" || !res.Revoked {
			t.Fatalf("POST /revocations with Redis down: %d %v %s", st, h, raw)
		}
		if st, ch := a.decide(t, tok); !revokedAnswer(st, ch) {
			t.Fatalf("after: %d %s", st, ch)
		}
	})
}
