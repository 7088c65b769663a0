package check_test

import (
	"context"
	"crypto/elliptic"
	"math/big"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
	"github.com/extauthz/extauthz/pkg/jwks"
	"github.com/extauthz/extauthz/pkg/metadata"
	"github.com/extauthz/extauthz/pkg/token"
	"github.com/extauthz/extauthz/pkg/verdict"
)

const dRevoked = "the access token has been revoked"

// startAlgGateway is a gateway whose "mcp" resource trusts one issuer per
// algorithm, every algorithm the gateway implements being accepted.
func startAlgGateway(t *testing.T, algs ...string) (*gateway, map[string]*devissuer.Issuer) {
	t.Helper()
	g := &gateway{clock: testkit.NewClock(), srcs: map[string]*jwks.Source{}}
	byAlg := map[string]*devissuer.Issuer{}
	var servers []config.AuthorizationServer
	issuers := map[string]token.Issuer{}
	for _, alg := range algs {
		iss, _ := issuerServer(t, alg, "/"+alg)
		byAlg[alg] = iss
		servers = append(servers, config.AuthorizationServer{Issuer: iss.Issuer()})
		src := jwks.New(func(ctx context.Context) (string, error) {
			md, err := metadata.Discover(ctx, http.DefaultClient, iss.Issuer())
			if err != nil {
				return "", err
			}
			return md.JWKSURI, nil
		}, jwks.Options{Now: g.clock.Now, Timeout: 2 * time.Second})
		issuers[iss.Issuer()] = token.Issuer{Keys: src}
		g.srcs[iss.Issuer()] = src
	}
	all := []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
	cfg := &config.Config{
		Tokens: config.Tokens{Algorithms: all},
		Resources: []config.Resource{{
			Name: "mcp", Resource: resourceURI, Hosts: []string{"mcp.example.com"},
			AuthorizationServers: servers,
			ScopesSupported:      []string{"mcp:tools", "mcp:write"},
			RequiredScopes:       []string{"mcp:tools", "mcp:write"},
		}},
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	v, err := token.NewIssuerSet(token.Options{Issuers: issuers, Algorithms: all, Leeway: time.Minute, Now: g.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	p, err := authz.NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := authz.NewEngine(p, authz.Options{Verifier: v, Cache: verdict.LocalCache(1000, g.clock.Now),
		MaxTTL: time.Minute, NegativeTTL: time.Minute, Now: g.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	g.client, g.engine = checkClient(t, e), e
	return g, byAlg
}

func tokenRequest(tok string) check.EnvoyRequest {
	return check.EnvoyRequest{URL: resourceURI, Headers: bearer(tok)}
}

// TestRevokedECDSATokenCannotBeRespelled: an ECDSA signature (r, s) has a
// second valid form (r, n−s) that anyone holding the token can compute. A
// revocation keyed by the hash of the token's text did not cover it: the
// other form was a new key, verified, and was allowed. Whichever form is
// revoked, neither may pass afterwards, whether or not the other form was
// seen before the revocation.
func TestRevokedECDSATokenCannotBeRespelled(t *testing.T) {
	algs := []string{"ES256", "ES384", "ES512"}
	g, issuers := startAlgGateway(t, algs...)
	for _, alg := range algs {
		curve := testkit.ECDSACurve(t, alg)
		for _, revokeHigh := range []bool{false, true} {
			for _, seenBefore := range []bool{false, true} {
				name := alg + map[bool]string{false: "/revoke the low-s form", true: "/revoke the high-s form"}[revokeHigh] +
					map[bool]string{false: "", true: ", other form seen before"}[seenBefore]
				t.Run(name, func(t *testing.T) {
					tok := testkit.MintECDSA(t, curve, revokeHigh, func() (string, error) {
						return issuers[alg].Mint(devissuer.Token{Subject: "alice", ClientID: "client-1", Scopes: []string{"mcp:tools", "mcp:write"}})
					})
					other, _ := testkit.OtherECDSASpelling(t, tok, curve)
					cases := []hostileCase{{"the token is allowed", tokenRequest(tok), 200, ""}}
					if seenBefore {
						cases = append(cases, hostileCase{"its other form verifies too", tokenRequest(other), 200, ""})
					}
					runHostile(t, g, cases)
					if _, err := g.engine.Revoke(context.Background(), authz.Revocation{Token: tok}); err != nil {
						t.Fatal(err)
					}
					runHostile(t, g, []hostileCase{
						{"the revoked token", tokenRequest(tok), 401, dRevoked},
						{"its other form", tokenRequest(other), 401, dRevoked},
					})
				})
			}
		}
	}
}

// TestWrongSignatureNeverSharesAnAllow: signatures that are not the other
// ECDSA form of a valid one, sent with its header and claims once the
// valid token's allow is cached, are checked on their own and refused: an
// s out of range (0, n ≥ n), and an EdDSA signature whose second half,
// read as a big-endian number s, is replaced by n−s for the P-256 order n —
// what a gateway guessing the algorithm from the signature's length (64
// bytes for both) would take for the other form of an ES256 signature.
// The EdDSA signature with S + L, the same scalar not reduced, is
// refused by the verifier (Ed25519 as Go implements it is not malleable).
func TestWrongSignatureNeverSharesAnAllow(t *testing.T) {
	g, issuers := startAlgGateway(t, "ES256", "EdDSA")
	n := elliptic.P256().Params().N
	// withSecondHalf replaces the second half of tok's signature.
	withSecondHalf := func(tok string, half []byte) string {
		h, p, sig := segments(tok)
		raw, _ := b64dec(sig)
		return h + "." + p + "." + b64(append(raw[:len(raw)/2:len(raw)/2], half...))
	}
	secondHalf := func(tok string) []byte {
		_, _, sig := segments(tok)
		raw, _ := b64dec(sig)
		return raw[len(raw)/2:]
	}
	bigEndian := func(v *big.Int) []byte { return v.FillBytes(make([]byte, 32)) }
	es := mint(t, issuers["ES256"], devissuer.Token{})
	ed := mint(t, issuers["EdDSA"], devissuer.Token{})
	if _, _, sig := segments(ed); len(sig) != len(segmentsSig(es)) {
		t.Fatalf("an EdDSA signature is 64 bytes, like an ES256 one")
	}
	edS := new(big.Int).SetBytes(secondHalf(ed)) // big-endian, as ES256 reads it
	// S + L, little-endian as Ed25519 encodes its scalar.
	l, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
	le := func(b []byte) []byte { b = append([]byte(nil), b...); slices.Reverse(b); return b }
	sPlusL := le(bigEndian(new(big.Int).Add(new(big.Int).SetBytes(le(secondHalf(ed))), l)))
	allOnes := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))
	runHostile(t, g, []hostileCase{
		{"control: the ES256 token", tokenRequest(es), 200, ""},
		{"control: the EdDSA token", tokenRequest(ed), 200, ""},
		{"ES256 with s = n", tokenRequest(withSecondHalf(es, bigEndian(n))), 401, dSignature},
		{"ES256 with s = 2^256−1", tokenRequest(withSecondHalf(es, bigEndian(allOnes))), 401, dSignature},
		{"ES256 with s = 0", tokenRequest(withSecondHalf(es, make([]byte, 32))), 401, dSignature},
		{"EdDSA with its second half s replaced by n(P-256)−s", tokenRequest(withSecondHalf(ed, bigEndian(new(big.Int).Sub(n, edS)))), 401, dSignature},
		{"EdDSA with S + L", tokenRequest(withSecondHalf(ed, sPlusL)), 401, dSignature},
		{"the ES256 token, still allowed", tokenRequest(es), 200, ""},
		{"the EdDSA token, still allowed", tokenRequest(ed), 200, ""},
	})
}

func segmentsSig(tok string) string { _, _, s := segments(tok); return s }
