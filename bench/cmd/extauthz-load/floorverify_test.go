package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
)

// testIssuer starts an issuer of alg for the test, stopped when it ends.
func testIssuer(t *testing.T, alg string) *issuer {
	t.Helper()
	iss, err := startIssuer(alg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(iss.close)
	return iss
}

func checkHeaders(headers map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Headers: headers}}}}
}

func pkixBase64(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// TestFloorVerifyServer: floor-verify-server allows a token whose
// signature checks with its key, for each algorithm the full-* scenarios
// mint, and refuses a token signed by another key, a changed payload, a
// changed signature and a header with no JWS: it checks a signature on
// every Check, or the limit it measures would be an always-allow server's.
func TestFloorVerifyServer(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			iss := testIssuer(t, alg)
			other := testIssuer(t, alg)
			fv, err := newFloorVerifyServer(verifyFlags{alg: alg, header: "authorization",
				key: pkixBase64(t, iss.dev.PublicKey(iss.ActiveKID()))})
			if err != nil {
				t.Fatal(err)
			}
			good, err := mintToken(iss)
			if err != nil {
				t.Fatal(err)
			}
			foreign, err := mintToken(other)
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.Split(good, ".")
			payload := parts[0] + "." + flipB64(parts[1]) + "." + parts[2]
			sig := parts[0] + "." + parts[1] + "." + flipB64(parts[2])
			for _, c := range []struct {
				name, header string
				ok           bool
			}{
				{"good", "Bearer " + good, true},
				{"dpop scheme", "DPoP " + good, true},
				{"another key", "Bearer " + foreign, false},
				{"changed payload", "Bearer " + payload, false},
				{"changed signature", "Bearer " + sig, false},
				{"no JWS", "Bearer abc", false},
				{"none", "", false},
			} {
				resp, err := fv.Check(context.Background(), checkHeaders(map[string]string{"authorization": c.header}))
				if err != nil {
					t.Fatal(err)
				}
				if got := resp.GetStatus().GetCode() == int32(codes.OK); got != c.ok {
					t.Errorf("%s: allowed %v, want %v", c.name, got, c.ok)
				}
			}
		})
	}
}

// flipB64 changes the first character of a base64url segment to another
// that decodes.
func flipB64(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

// TestFloorVerifyServerProof: with --verify-header dpop it checks the DPoP
// proof's signature with the client's key, not the token's.
func TestFloorVerifyServerProof(t *testing.T) {
	iss := testIssuer(t, "RS256")
	d, err := newDPoPClient(iss)
	if err != nil {
		t.Fatal(err)
	}
	fv, err := newFloorVerifyServer(verifyFlags{alg: "ES256", header: "dpop", key: pkixBase64(t, &d.key.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	proof := string(d.proof(nil, time.Now()))
	for _, c := range []struct {
		name, proof string
		ok          bool
	}{
		{"good", proof, true},
		{"changed signature", proof[:strings.LastIndexByte(proof, '.')+1] + flipB64(proof[strings.LastIndexByte(proof, '.')+1:]), false},
		{"the token instead", d.token, false},
	} {
		resp, err := fv.Check(context.Background(), checkHeaders(map[string]string{"authorization": "DPoP " + d.token, "dpop": c.proof}))
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetStatus().GetCode() == int32(codes.OK); got != c.ok {
			t.Errorf("%s: allowed %v, want %v", c.name, got, c.ok)
		}
	}
}

// TestFloorVerifyFlags: a key that does not go with the algorithm, a
// header other than the two, and a key that is not base64 PKIX are
// refused at start.
func TestFloorVerifyFlags(t *testing.T) {
	iss := testIssuer(t, "ES256")
	key := pkixBase64(t, iss.dev.PublicKey(iss.ActiveKID()))
	for _, v := range []verifyFlags{
		{alg: "RS256", key: key, header: "authorization"},
		{alg: "EdDSA", key: key, header: "authorization"},
		{alg: "ES256", key: key, header: "cookie"},
		{alg: "ES256", key: "not base64!", header: "authorization"},
		{alg: "ES256", key: base64.StdEncoding.EncodeToString([]byte("not a key")), header: "authorization"},
	} {
		if _, err := newFloorVerifyServer(v); err == nil {
			t.Errorf("%s/%s accepted", v.alg, v.header)
		}
	}
}

// TestDERSignature: the ECDSA signature's DER form drops leading zeros and
// adds one before a number whose top bit is set, as ASN.1 INTEGERs want.
func TestDERSignature(t *testing.T) {
	r := append([]byte{0, 0x01}, make([]byte, 30)...)
	s := append([]byte{0x80}, make([]byte, 31)...)
	der := appendDERSignature(nil, r, s)
	want := append([]byte{0x30, 2 + 31 + 2 + 33, 0x02, 31, 0x01}, make([]byte, 30)...)
	want = append(append(want, 0x02, 33, 0, 0x80), make([]byte, 31)...)
	if string(der) != string(want) {
		t.Errorf("got % x\nwant % x", der, want)
	}
}

// TestInterleaveOrder: each measurement in turn, then in reverse, so
// that a drift linear over a cycle weighs on all alike.
func TestInterleaveOrder(t *testing.T) {
	for n, want := range map[int]string{1: "[0 0]", 2: "[0 1 1 0]", 3: "[0 1 2 2 1 0]"} {
		if got := fmt.Sprint(interleaveOrder(n)); got != want {
			t.Errorf("%d: %s, want %s", n, got, want)
		}
	}
}

// TestDERSignatureAllocs: the floor's conversion allocates nothing, so
// that it adds no work a verifier need not do.
func TestDERSignatureAllocs(t *testing.T) {
	r, s := make([]byte, 32), make([]byte, 32)
	r[0], s[5] = 0x80, 1
	var buf [72]byte
	if n := testing.AllocsPerRun(100, func() { _ = appendDERSignature(buf[:0], r, s) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}
