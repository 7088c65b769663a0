package e2e

// DPoP (RFC 9449, docs/dpop.md) through nginx and Caddy: resource "dpop" (dpop.mode allowed),
// reached through their catch-all (decided by host and path, so the shipped files need no
// location of their own for it). The token is bound by oidc-provider to the test client's key
// (cnf.jkt); the client (internal/dpoptest) signs a proof per request. The proxies pass the
// request's DPoP header to the gateway with the rest of its headers: nginx's auth_request
// subrequest and Caddy's forward_auth request carry it without any configuration of their own.
//
//	client ──Authorization: DPoP <token>, DPoP: <proof>──▶ nginx / Caddy ──▶ recorder ──▶ server-everything
//	                                                          │ auth_request / forward_auth
//	                                                          ▼
//	                                                       extauthz (htu from Host and the original URI)

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/dpoptest"
)

// dpopPath is resource "dpop" on every front; dpopNoncePath is "dpop-nonce".
const (
	dpopPath      = "/dpop/mcp"
	dpopNoncePath = "/dpop-nonce/mcp"
)

// dpopResourceConfig is resource "dpop" of a front's gateway, to append to its resources.
func dpopResourceConfig(frontURL, issuer string) string {
	return fmt.Sprintf(`  - name: dpop
    resource: "%[1]s%[3]s"
    required_scopes: ["mcp:tools"]
    authorization_servers: [{issuer: %[2]q}]
    dpop: {mode: allowed}
  - name: dpop-nonce
    resource: "%[1]s%[4]s"
    required_scopes: ["mcp:tools"]
    authorization_servers: [{issuer: %[2]q}]
    dpop: {mode: allowed, nonce: true}
`, frontURL, issuer, dpopPath, dpopNoncePath)
}

// testDPoP: a DPoP-bound token with a good proof passes f to the MCP server, which sees
// neither the token nor any header carrying it; the same proof again is refused at f (401
// with the DPoP challenge, relayed by f), and nothing more reaches the MCP server.
func testDPoP(t *testing.T, st *stack, f *front) {
	u := f.resourceURL(dpopPath)
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := dpoptest.KeyFrom(priv)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := st.as.ClientCredentialsDPoP(context.Background(), serviceClient, u, "mcp:tools", priv)
	if err != nil {
		t.Fatal(err)
	}
	proof := key.MustSign(t, dpoptest.Proof{Method: http.MethodPost, URL: u, AccessToken: tok})
	headers := [][2]string{{"Authorization", "DPoP " + tok}, {"DPoP", proof}}

	mark := st.rec.len()
	resp := st.sendRaw(t, u, headers)
	got := st.rec.since(mark)
	if len(got) != 1 {
		t.Fatalf("a bound token with a good proof: %d %q %s; the MCP server received %d requests, want 1",
			resp.StatusCode, resp.Header.Get("WWW-Authenticate"), resp.Body, len(got))
	}
	r := got[0]
	t.Logf("the MCP server got %s %s and answered %d; DPoP header passed on: %t", r.Method, r.Path, resp.StatusCode, r.Header.Get("DPoP") != "")
	if r.Header.Get("Authorization") != "" {
		t.Errorf("the MCP server got an Authorization header")
	}
	for name, values := range r.Header {
		for _, v := range values {
			if strings.Contains(v, tok) {
				t.Errorf("the MCP server got the token in %s", name)
			}
		}
	}
	if id := r.Header.Get("X-Extauthz-Client-Id"); id != serviceClient.ID {
		t.Errorf("X-Extauthz-Client-Id %q, want %s", id, serviceClient.ID)
	}

	mark = st.rec.len()
	resp = st.sendRaw(t, u, headers)
	www := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(www, `DPoP error="invalid_dpop_proof"`) || !strings.Contains(www, `algs="ES256`) ||
		!strings.HasPrefix(www, "Bearer ") {
		t.Errorf("the proof replayed: %d %q; want 401 with Bearer …, DPoP error=\"invalid_dpop_proof\", algs=…", resp.StatusCode, www)
	}
	if got := st.rec.since(mark); len(got) != 0 {
		t.Errorf("a replayed proof reached the MCP server: %v", got)
	}
}

// testDPoPNonce: at a resource that requires server nonces (RFC 9449 §9), a proof without one
// is refused with use_dpop_nonce and the nonce in DPoP-Nonce, relayed by f; a proof with it
// passes. Once the nonce's slot has passed (2 s), a proof still carrying it passes too (the
// previous slot's is accepted), and, when nextOn200, the MCP server's answer comes with the new nonce in
// DPoP-Nonce (§8.2; nginx adds it from the gateway's answer, Caddy cannot: its forward_auth
// copies the answer's headers onto the upstream request only), with which the next proof passes.
func testDPoPNonce(t *testing.T, st *stack, f *front, nextOn200 bool) {
	u := f.resourceURL(dpopNoncePath)
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := dpoptest.KeyFrom(priv)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := st.as.ClientCredentialsDPoP(context.Background(), serviceClient, u, "mcp:tools", priv)
	if err != nil {
		t.Fatal(err)
	}
	// send proves with nonce; reached says whether the request got to the MCP server (which
	// answers 404 on this path: the gateway's allow is that it reached it).
	send := func(nonce string) (resp response, reached bool) {
		proof := key.MustSign(t, dpoptest.Proof{Method: http.MethodPost, URL: u, AccessToken: tok, Nonce: nonce})
		mark := st.rec.len()
		resp = st.sendRaw(t, u, [][2]string{{"Authorization", "DPoP " + tok}, {"DPoP", proof}})
		return resp, len(st.rec.since(mark)) == 1
	}
	// fetchNonce asks without a nonce: 401 use_dpop_nonce with the one to use.
	fetchNonce := func() string {
		resp, reached := send("")
		www, nonce := resp.Header.Get("WWW-Authenticate"), resp.Header.Get("DPoP-Nonce")
		if reached || resp.StatusCode != http.StatusUnauthorized || !strings.Contains(www, `DPoP error="use_dpop_nonce"`) || nonce == "" {
			t.Fatalf("a proof without a nonce: %d %q, DPoP-Nonce %q, reached the server %t; want 401 use_dpop_nonce with a nonce", resp.StatusCode, www, nonce, reached)
		}
		return nonce
	}
	nonce := fetchNonce()
	if resp, reached := send(nonce); !reached {
		t.Fatalf("a proof with the nonce: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), resp.Body)
	}
	if !nextOn200 {
		return
	}
	// Keep proving with the same nonce until its slot has passed: the answer that
	// hands out the next nonce. Should the machine stall past two slots, the old
	// nonce is refused (use_dpop_nonce): start again from a new one.
	for restarts, tries := 0, 0; ; tries++ {
		if tries == 200 {
			t.Fatal("no answer handed out a new DPoP-Nonce in 200 tries (slots of 2 s)")
		}
		resp, reached := send(nonce)
		next := resp.Header.Get("DPoP-Nonce")
		switch {
		case !reached && resp.StatusCode == http.StatusUnauthorized && strings.Contains(resp.Header.Get("WWW-Authenticate"), "use_dpop_nonce") && restarts < 3:
			restarts++
			nonce = fetchNonce()
			continue
		case !reached:
			t.Fatalf("a proof with a nonce of this or the previous slot: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), resp.Body)
		case next == "":
			time.Sleep(100 * time.Millisecond) // the slot has not turned yet
			continue
		case next == nonce:
			t.Fatalf("the answer handed out the nonce the proof carried, %q", next)
		}
		if resp, reached := send(next); !reached {
			t.Fatalf("a proof with the nonce handed out with the answer: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		return
	}
}
