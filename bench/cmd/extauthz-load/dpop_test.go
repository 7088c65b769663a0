package main

import (
	"context"
	"errors"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/pkg/dpop"
)

// TestDPoPRequests: every request of a pool carries the bound token with
// the DPoP scheme and a proof the gateway's own verifier (pkg/dpop, as
// extauthz serve configures it for the resource) accepts for that
// request and key binding, each exactly once; the pools reuse their memory
// without handing out a proof twice.
func TestDPoPRequests(t *testing.T) {
	t.Parallel()
	rs := testIssuer(t, "RS256")
	d, err := newDPoPClient(rs)
	if err != nil {
		t.Fatal(err)
	}
	v, err := dpop.NewVerifier(dpop.Options{Replay: dpop.NewMemoryReplay(1000, time.Now)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var p proofPool
	var first string
	for round, n := range []int{300, 120} { // the second fill reuses the first's memory
		if err := d.fill(ctx, &p, n); err != nil {
			t.Fatal(err)
		}
		if len(p.reqs) != n {
			t.Fatalf("round %d: %d requests, want %d", round, len(p.reqs), n)
		}
		for i, b := range p.reqs {
			var req authv3.CheckRequest
			if err := proto.Unmarshal(b, &req); err != nil {
				t.Fatalf("round %d request %d: %v", round, i, err)
			}
			h := req.GetAttributes().GetRequest().GetHttp()
			if got, want := h.GetHeaders()["authorization"], "DPoP "+d.token; got != want {
				t.Fatalf("round %d request %d: authorization %.40q…, want the DPoP scheme and the bound token", round, i, got)
			}
			proof := h.GetHeaders()["dpop"]
			res, err := v.Verify(ctx, dpop.Proof{Header: proof, Method: h.GetMethod(),
				URI: h.GetHeaders()["x-forwarded-proto"] + "://" + h.GetHost() + h.GetPath(), AccessToken: d.token, JKT: d.jkt})
			if err != nil {
				t.Fatalf("round %d request %d: the proof is refused: %v", round, i, err)
			}
			if res.JKT != d.jkt {
				t.Errorf("round %d request %d: proof key %s, want %s", round, i, res.JKT, d.jkt)
			}
			if first == "" {
				first = proof
			}
		}
	}
	// The verifier is not fooled: a proof sent again, or for another
	// token, is refused.
	if _, err := v.Verify(ctx, dpop.Proof{Header: first, Method: "POST", URI: resourceURI, AccessToken: d.token, JKT: d.jkt}); !errors.Is(err, dpop.ErrInvalidProof) {
		t.Errorf("replayed proof: %v, want invalid", err)
	}
	other := string(d.proof(nil, time.Now()))
	if _, err := v.Verify(ctx, dpop.Proof{Header: other, Method: "POST", URI: resourceURI, AccessToken: d.token + "x", JKT: d.jkt}); !errors.Is(err, dpop.ErrInvalidProof) {
		t.Errorf("proof for another token: %v, want invalid", err)
	}
}

// TestRawVerifyCPU: the raw verify of each algorithm is timed, and a positive figure; an
// unknown algorithm is an error, not a zero.
func TestRawVerifyCPU(t *testing.T) {
	for _, alg := range []string{"ES256", "RS256", "EdDSA"} {
		us, err := rawVerifyCPU(alg, 50)
		if err != nil {
			t.Fatal(err)
		}
		if us <= 0 {
			t.Errorf("%s: %v µs per raw verify", alg, us)
		}
	}
	if _, err := rawVerifyCPU("HS256", 1); err == nil {
		t.Error("HS256: no error")
	}
}
