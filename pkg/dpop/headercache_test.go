package dpop_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extauthz/extauthz/pkg/dpop"
)

// headerJSON is the JSON of k's usual header, with the jwk's member
// set to value (JSON text) when member is not "".
func headerJSON(t *testing.T, k *testKey, alg, member, value string) string {
	t.Helper()
	j := jsonOf(t, k.jwk())
	if member != "" {
		j = j[:len(j)-1] + `,"` + member + `":` + value + `}`
	}
	return `{"typ":"dpop+jwt","alg":"` + alg + `","jwk":` + j + `}`
}

// A header differing by one byte from a kept one is another header: read
// afresh, never answered by the kept entry. The attack each case stands
// for: the signature is made with the kept header's key, so that a cache
// that matched loosely (by key, by prefix, by a short hash) would verify
// it with that key and accept it.
func TestHeaderCacheNearMissIsRead(t *testing.T) {
	t.Parallel()
	es := newKey(t, "ES256")
	rs := newKey(t, "RS256")
	esHeader := headerJSON(t, es, "ES256", "", "")
	rsHeader := headerJSON(t, rs, "RS256", "", "")
	// x with one character changed (its first: the last one carries
	// padding bits that must stay zero).
	x := es.jwk()["x"].(string)
	other := "A"
	if x[0] == 'A' {
		other = "B"
	}
	oneByte := strings.Replace(esHeader, `"x":"`+x, `"x":"`+other+x[1:], 1)
	if len(oneByte) != len(esHeader) || oneByte == esHeader {
		t.Fatal("the edit did not change one byte")
	}

	tests := []struct {
		name   string
		kept   string   // header verified first, and kept
		signer *testKey // signs the near miss: the kept header's key
		header string   // the near miss
		want   string
	}{
		{"jwk x differs by one byte", esHeader, es, oneByte, "jwk: "},
		{"alg differs: PS256 header, RS256 signature", rsHeader, rs, headerJSON(t, rs, "PS256", "", ""),
			"signature does not verify"},
		{"jwk with a private member", esHeader, es, headerJSON(t, es, "ES256", "d", `"AAAA"`), `private key member "d"`},
		{"jwk alg that does not fit", esHeader, es, headerJSON(t, es, "ES256", "alg", `"ES384"`), "key is for alg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, dpop.Options{})
			if _, err := f.verify(raw(t, tt.signer, tt.kept, jsonOf(t, f.claims()))); err != nil {
				t.Fatal(err)
			}
			if n := dpop.HeaderCacheLen(f.v); n != 1 {
				t.Fatalf("%d headers kept after one proof, want 1", n)
			}
			for i := range 2 { // and not kept as a refusal either
				_, err := f.verify(raw(t, tt.signer, tt.header, jsonOf(t, f.claims())))
				if !errors.Is(err, dpop.ErrInvalidProof) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("near miss, try %d: %v; want %q", i, err, tt.want)
				}
			}
			if n := dpop.HeaderCacheLen(f.v); n != 1 {
				t.Fatalf("%d headers kept after the near misses, want 1", n)
			}
		})
	}
}

// The same key under another header text (here, another alg name for the
// same algorithm, and a kid) is its own entry, and every entry gives the
// key's thumbprint, on the proof that read it and on those that found it.
func TestHeaderCacheSameKeyOtherText(t *testing.T) {
	t.Parallel()
	f := newFixture(t, dpop.Options{Algorithms: []string{"EdDSA", "Ed25519"}})
	k := newKey(t, "EdDSA")
	want := jwxThumbprint(t, k.jwk())
	headers := []string{
		headerJSON(t, k, "EdDSA", "", ""),
		headerJSON(t, k, "Ed25519", "", ""),
		`{"typ":"dpop+jwt","alg":"EdDSA","kid":"k1","jwk":` + jsonOf(t, k.jwk()) + `}`,
	}
	for round := range 3 {
		for i, h := range headers {
			res, err := f.verify(raw(t, k, h, jsonOf(t, f.claims())))
			if err != nil || res.JKT != want {
				t.Fatalf("round %d, header %d: JKT %q, %v; want %s", round, i, res.JKT, err, want)
			}
		}
		if n := dpop.HeaderCacheLen(f.v); n != len(headers) {
			t.Fatalf("round %d: %d headers kept, want %d", round, n, len(headers))
		}
	}
}

// Only the header of an accepted proof is kept: neither a header refused
// when read, whatever it holds, nor a well-formed one whose proof fails a
// later check: the request, the signature, the token's binding, the
// nonce, the replay store.
func TestHeaderCacheKeepsOnlyAccepted(t *testing.T) {
	t.Parallel()
	es := newKey(t, "ES256")
	thief := freshKey(t, "ES256")
	nonces, err := dpop.NewNonces([]byte(strings.Repeat("k", dpop.MinNonceKeyBytes)), time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	request := func(proof string) dpop.Proof {
		return dpop.Proof{Header: proof, Method: testMethod, URI: testURI, AccessToken: testToken}
	}
	tests := []struct {
		name  string
		o     dpop.Options
		proof func(t *testing.T, f *fixture) dpop.Proof
		want  error
		text  string
	}{
		{"private key member", dpop.Options{}, func(t *testing.T, f *fixture) dpop.Proof {
			return request(raw(t, es, headerJSON(t, es, "ES256", "d", `"AAAA"`), jsonOf(t, f.claims())))
		}, dpop.ErrInvalidProof, `private key member "d"`},
		{"symmetric key member", dpop.Options{}, func(t *testing.T, f *fixture) dpop.Proof {
			return request(raw(t, es, headerJSON(t, es, "ES256", "k", `"AAAA"`), jsonOf(t, f.claims())))
		}, dpop.ErrInvalidProof, `private key member "k"`},
		{"for another request", dpop.Options{}, func(t *testing.T, f *fixture) dpop.Proof {
			c := f.claims()
			c["htm"] = "GET"
			return request(es.proof(t, es.header(), c))
		}, dpop.ErrInvalidProof, "htm"},
		{"signed by another key", dpop.Options{}, func(t *testing.T, f *fixture) dpop.Proof {
			return request(raw(t, thief, headerJSON(t, es, "ES256", "", ""), jsonOf(t, f.claims())))
		}, dpop.ErrInvalidProof, "signature does not verify"},
		{"by a key the token is not bound to", dpop.Options{}, func(t *testing.T, f *fixture) dpop.Proof {
			p := request(thief.proof(t, thief.header(), f.claims()))
			p.JKT = jwxThumbprint(t, es.jwk())
			return p
		}, dpop.ErrKeyMismatch, "not the key the access token is bound to"},
		{"without the nonce", dpop.Options{Nonces: nonces}, func(t *testing.T, f *fixture) dpop.Proof {
			return request(es.proof(t, es.header(), f.claims()))
		}, dpop.ErrUseNonce, "no nonce"},
		{"with the replay store full", dpop.Options{Replay: fullStore{}}, func(t *testing.T, f *fixture) dpop.Proof {
			return request(es.proof(t, es.header(), f.claims()))
		}, dpop.ErrUnavailable, "replay store full"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tt.o)
			for i := range 2 {
				_, err := f.v.Verify(t.Context(), tt.proof(t, f))
				if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
					t.Fatalf("try %d: %v; want %v, %q", i, err, tt.want, tt.text)
				}
			}
			if n := dpop.HeaderCacheLen(f.v); n != 0 {
				t.Fatalf("%d headers kept", n)
			}
		})
	}
}

// fullStore is a replay store that can record nothing more.
type fullStore struct{}

func (fullStore) Claim(context.Context, string, time.Duration) (bool, error) {
	return false, dpop.ErrReplayFull
}

// The cache holds at most Options.HeaderCacheEntries headers, whatever
// the number of distinct ones verified; a header pushed out is read again,
// and its proofs still verify.
func TestHeaderCacheBoundThroughVerify(t *testing.T) {
	t.Parallel()
	const limit = 4
	f := newFixture(t, dpop.Options{HeaderCacheEntries: limit, Algorithms: []string{"EdDSA"}})
	k := newKey(t, "EdDSA")
	want := jwxThumbprint(t, k.jwk())
	header := func(i int) string {
		return `{"typ":"dpop+jwt","alg":"EdDSA","kid":"` + fmt.Sprint(i) + `","jwk":` + jsonOf(t, k.jwk()) + `}`
	}
	for i := range 6 * limit {
		res, err := f.verify(raw(t, k, header(i), jsonOf(t, f.claims())))
		if err != nil || res.JKT != want {
			t.Fatalf("header %d: %q, %v", i, res.JKT, err)
		}
		if n, want := dpop.HeaderCacheLen(f.v), min(i+1, limit); n != want {
			t.Fatalf("after %d headers: %d kept, want %d", i+1, n, want)
		}
	}
	if res, err := f.verify(raw(t, k, header(0), jsonOf(t, f.claims()))); err != nil || res.JKT != want {
		t.Fatalf("the first header again: %q, %v", res.JKT, err)
	}
	if n := dpop.HeaderCacheLen(f.v); n != limit {
		t.Fatalf("%d kept, want %d", n, limit)
	}
}

// Concurrent proofs of a few keys, each key's header read by whichever
// proof comes first and found by the others: all verify, with their keys'
// thumbprints, and each header is kept once.
func TestHeaderCacheConcurrent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, dpop.Options{Algorithms: []string{"ES256", "EdDSA"}})
	keys := []*testKey{newKey(t, "ES256"), newKey(t, "EdDSA"), freshKey(t, "ES256"), freshKey(t, "EdDSA")}
	const perKey = 16
	type job struct {
		proof, jkt string
	}
	var jobs []job
	for _, k := range keys {
		for range perKey {
			jobs = append(jobs, job{k.proof(t, k.header(), f.claims()), jwxThumbprint(t, k.jwk())})
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(jobs))
	for _, j := range jobs {
		wg.Go(func() {
			res, err := f.verify(j.proof)
			if err == nil && res.JKT != j.jkt {
				err = fmt.Errorf("JKT %s, want %s", res.JKT, j.jkt)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := dpop.HeaderCacheLen(f.v); n != len(keys) {
		t.Fatalf("%d headers kept, want %d", n, len(keys))
	}
}

func TestNewVerifierRefusesNegativeHeaderCache(t *testing.T) {
	t.Parallel()
	_, err := dpop.NewVerifier(dpop.Options{Replay: dpop.NewMemoryReplay(1, nil), HeaderCacheEntries: -1})
	if err == nil || !strings.Contains(err.Error(), "HeaderCacheEntries is negative") {
		t.Fatalf("NewVerifier: %v", err)
	}
}
