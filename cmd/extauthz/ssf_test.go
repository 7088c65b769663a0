package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/internal/ssftest"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/ssf"
)

const ssfAudience = "https://gateway.example.com/ssf"

// startSSFInstance runs a replica sharing Redis at redisAddr whose HTTP
// listener receives tr's SETs at /ssf/events, revoking tokens of iss.
func startSSFInstance(t *testing.T, redisAddr string, iss *devissuer.Issuer, tr *ssftest.Transmitter) *instance {
	t.Helper()
	return startInstanceYAML(t, fmt.Sprintf(`listen: {grpc: "127.0.0.1:0", http: "127.0.0.1:0", admin: "127.0.0.1:0"}
cache: {redis_url: "redis://%s", redis: {timeout: 500ms}}
ssf:
  audience: %q
  transmitters: [{issuer: %q, jwks_uri: %q, token_issuer: %q}]
`, redisAddr, ssfAudience, tr.Issuer, tr.JWKSURI(), iss.Issuer()), iss)
}

// ssfURL is where a replica receives SETs.
func (in *instance) ssfURL() string { return "http://" + in.app.lnHTTP.Addr().String() + "/ssf/events" }

// mintSession mints a token of sub in session sid carrying email.
func mintSession(t *testing.T, iss *devissuer.Issuer, sub, sid, email string) string {
	t.Helper()
	tok, err := iss.Mint(devissuer.Token{Subject: sub, Scopes: []string{"mcp:tools"}, Extra: map[string]any{"sid": sid, "email": email}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestSSFRevocationAcrossReplicas: Security Event Tokens pushed to
// replica A (RFC 8935) revoke, on replica B, the cached tokens they name —
// a CAEP session-revoked the session's, a credential-change by email the
// user's (the email claim is kept from the tokens because a transmitter
// compares it) — and no other; a bad SET is refused with its RFC 8935
// error and revokes nothing.
func TestSSFRevocationAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	iss, _ := startIssuer(t, sharedResource)
	tr := ssftest.New(t, ssftest.Options{Audience: ssfAudience})
	a, b := startSSFInstance(t, srv.Addr(), iss, tr), startSSFInstance(t, srv.Addr(), iss, tr)
	waitRevocationSubscribers(t, srv.Addr(), 2)

	laptop := mintSession(t, iss, "xavier", "sess-laptop", "xavier@example.com")
	phone := mintSession(t, iss, "xavier", "sess-phone", "xavier@example.com")
	yolanda := mintSession(t, iss, "yolanda", "sess-y", "yolanda@example.com")
	for _, tok := range []string{laptop, phone, yolanda} {
		for range 2 { // verified, then a hit
			if st, _ := b.decide(t, tok); st != 200 {
				t.Fatalf("B before any SET: %d", st)
			}
		}
	}

	bad := tr.Sign(t, ssftest.SET{Event: ssf.EventSessionRevoked, Subject: ssftest.Complex(nil, ssftest.Opaque("sess-phone")),
		Audience: "https://another.example.com"})
	if r := ssftest.Push(t, a.ssfURL(), bad, ssftest.PushOptions{}); r.Status != http.StatusBadRequest || r.Err != "invalid_audience" {
		t.Fatalf("a SET for another audience: %d %q %q", r.Status, r.Err, r.Description)
	}

	set := tr.Sign(t, ssftest.SET{Event: ssf.EventSessionRevoked, Subject: ssftest.Complex(ssftest.IssSub(iss.Issuer(), "xavier"), ssftest.Opaque("sess-laptop"))})
	if r := ssftest.Push(t, a.ssfURL(), set, ssftest.PushOptions{}); r.Status != http.StatusAccepted {
		t.Fatalf("session-revoked pushed to A: %d %q %q", r.Status, r.Err, r.Description)
	}
	waitFor(t, "the laptop session's cached token refused on B", func() bool { return revokedAnswer(b.decide(t, laptop)) })
	for name, tok := range map[string]string{"xavier's phone session": phone, "yolanda": yolanda} {
		if st, _ := b.decide(t, tok); st != 200 {
			t.Errorf("B, %s after the session was revoked: %d", name, st)
		}
	}
	if r := ssftest.Push(t, b.ssfURL(), set, ssftest.PushOptions{}); r.Status != http.StatusBadRequest || r.Err != "invalid_request" {
		t.Errorf("the same SET replayed to B: %d %q %q", r.Status, r.Err, r.Description)
	}

	cred := tr.Sign(t, ssftest.SET{Event: ssf.EventCredentialChange, Subject: ssftest.Email("xavier@example.com"),
		Payload: map[string]any{"credential_type": "password", "change_type": "update"}})
	if r := ssftest.Push(t, b.ssfURL(), cred, ssftest.PushOptions{}); r.Status != http.StatusAccepted {
		t.Fatalf("credential-change pushed to B: %d %q %q", r.Status, r.Err, r.Description)
	}
	waitFor(t, "xavier's other session refused on A", func() bool { return revokedAnswer(a.decide(t, phone)) })
	if st, _ := a.decide(t, yolanda); st != 200 {
		t.Errorf("A, yolanda after xavier's credential change: %d", st)
	}
	// A token of xavier's issued after the event passes.
	later, err := iss.Mint(devissuer.Token{Subject: "xavier", Scopes: []string{"mcp:tools"}, IssuedAt: time.Now().Add(2 * time.Second),
		Extra: map[string]any{"sid": "sess-laptop", "email": "xavier@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := b.decide(t, later); st != 200 {
		t.Errorf("B, xavier's token issued after both events: %d", st)
	}
}
